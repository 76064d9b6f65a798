/* apcheck native explorer core: one partition of the distributed search (explore/distributed.py).
 * Included at the end of core.c.
 *
 * A partition stores the states whose hash falls to it (owner). Each BFS level, it expands its
 * states of the level into one outbox per partition (records: the canonical packed successor, then
 * a word with the source's index and the thread that moved), and inserts the records the others
 * sent it. A stored state keeps its parent as (partition, index), and every transition into it as a
 * predecessor (partition, index), so the stuck-thread analysis runs where the states are: masks
 * flow backwards, within a partition by a worklist and between partitions in rounds of messages
 * (records: the predecessor's index, the mask). Expansion, events, properties and masks are
 * core.c's own, so a partition judges every state as the single-machine search does. */

#define INITIAL UINT64_MAX   /* a record's second word for the initial state: no source */

struct Dist {
    int me, nparts;
    uint16_t *ppart;                 /* per state: its parent's partition */
    uint64_t *movers;                /* per state: the threads that moved in its expansion */
    uint32_t *pdst, *psrc;           /* per transition into this partition: the state reached, the */
    uint16_t *pfrom;                 /* source's index and partition */
    uint64_t npred, pcap;
    uint64_t **out, *nout, *ocap;    /* per partition: the words to send it */
    /* the stuck-thread analysis: predecessors grouped by state, and the states whose mask changed
     * since their predecessors last heard of it */
    uint64_t *pstart;
    uint32_t *queue, *changed;      /* changed: the states whose remote predecessors hear of them next */
    uint8_t *queued;                 /* bit 0 queued, bit 1 in `changed` */
    uint64_t qhead, qsize;
};

static uint64_t dist_bytes(const Search *s) {
    const struct Dist *d = s->dist;
    uint64_t out = s->cap * (2 + 8) + d->pcap * 10;
    for (int p = 0; p < d->nparts; p++) out += d->ocap[p] * 8;
    if (d->pstart) out += (s->n + 1) * 8 + s->n * 9;
    return out;
}

static int dist_grow(Search *s, uint64_t cap) {
    struct Dist *d = s->dist;
    if (!room(s, (cap - s->cap) * 10)) return 0;
    void *a = realloc(d->ppart, cap * sizeof(uint16_t));
    if (!a) return 0;
    d->ppart = a;
    void *m = realloc(d->movers, cap * sizeof(uint64_t));
    if (!m) return 0;
    d->movers = m;
    return 1;
}

static void dist_free(struct Dist *d) {
    if (!d) return;
    free(d->ppart); free(d->movers); free(d->pdst); free(d->psrc); free(d->pfrom);
    for (int p = 0; d->out && p < d->nparts; p++) free(d->out[p]);
    free(d->out); free(d->nout); free(d->ocap);
    free(d->pstart); free(d->queue); free(d->changed); free(d->queued);
    free(d);
}

/* the partition that stores packed state p (bits of its hash the table's slot and tag do not
 * decide alone) */
static inline int owner(const uint64_t *p, int nparts) {
    uint64_t h = hash_words(p) * 0xD6E8FEB86659FD93ULL;
    return (int)((h >> 32) % (uint64_t)nparts);
}

/* room for `words` more words in partition p's outbox */
static int outbox_room(Search *s, int p, uint64_t words) {
    struct Dist *d = s->dist;
    if (d->nout[p] + words <= d->ocap[p]) return 1;
    uint64_t cap = d->ocap[p] ? d->ocap[p] : 4096;
    while (cap < d->nout[p] + words) cap *= 2;
    if (!room(s, (cap - d->ocap[p]) * 8)) return 0;
    void *o = realloc(d->out[p], cap * sizeof(uint64_t));
    if (!o) { NOMEM(s); return 0; }
    d->out[p] = o;
    d->ocap[p] = cap;
    return 1;
}

/* partition `me` of `nparts`, with an empty store (NULL: no memory) */
Search *ap_part_new(int me, int nparts, int closure_edges, int merge_releases, int symmetry, int first,
                    uint64_t max_bytes) {
    struct Dist *d = calloc(1, sizeof(struct Dist));
    if (!d) return NULL;
    d->me = me;
    d->nparts = nparts;
    d->out = calloc(nparts, sizeof(uint64_t *));
    d->nout = calloc(nparts, sizeof(uint64_t));
    d->ocap = calloc(nparts, sizeof(uint64_t));
    if (!d->out || !d->nout || !d->ocap) { dist_free(d); return NULL; }
    Search *s = search_new(0, -1, 0, closure_edges, merge_releases, symmetry, 1, first, max_bytes, d);
    if (!s) dist_free(d);
    return s;
}

/* the initial state, canonical, into its owner's outbox */
int ap_part_initial(Search *s) {
    Ctx *c = &s->workers[0][0];
    V w[NW];
    memset(w, 0, sizeof(w));
    init_state(w);
    canon(c, w, s->pk);
    int p = owner(s->pk, s->dist->nparts);
    if (!outbox_room(s, p, NP + 1)) return 0;
    uint64_t *r = s->dist->out[p] + s->dist->nout[p];
    memcpy(r, s->pk, NP * sizeof(uint64_t));
    r[NP] = INITIAL;
    s->dist->nout[p] += NP + 1;
    return !c->error;
}

/* expand this partition's states [lo, hi) (one BFS level): events as merge() takes them, the
 * successors into their owners' outboxes. 0 on an error. */
int ap_part_expand(Search *s, uint64_t lo, uint64_t hi) {
    struct Dist *d = s->dist;
    Ctx *c = &s->workers[0][0];
    V w[NW];
    for (uint64_t i = lo; i < hi; i++) {
        c->nsucc = c->nev = 0;
        c->defects = 0;
        c->cur = (int64_t)i;
        unpack(s->arena + i * NP, w);
        expand(c, w);
        if (c->error) { s->error = c->error; return 0; }
        StateLog log = {0, c->nsucc, 0, c->nev, c->defects, 0, 0};
        s->flags[i] |= 1;
        s->transitions += c->nsucc;
        merge_events(s, i, c, &log);
        uint64_t movers = 0;
        for (uint64_t k = 0; k < c->nsucc; k++) {
            const uint64_t *pk = c->pk + k * NP;
            int p = owner(pk, d->nparts);
            if (!outbox_room(s, p, NP + 1)) return 0;
            uint64_t *r = d->out[p] + d->nout[p];
            memcpy(r, pk, NP * sizeof(uint64_t));
            r[NP] = (uint64_t)c->succ[k].mover << 32 | i;
            d->nout[p] += NP + 1;
            movers |= 1ULL << c->succ[k].mover;
        }
        d->movers[i] = movers;
    }
    return 1;
}

/* partition p's outbox: its words (*out points at them until the next call that writes it) */
uint64_t ap_part_outbox(Search *s, int p, uint64_t **out) {
    *out = s->dist->out[p];
    return s->dist->nout[p];
}

void ap_part_clear(Search *s) {
    for (int p = 0; p < s->dist->nparts; p++) s->dist->nout[p] = 0;
}

/* the records partition `from` sent (nwords words; NULL: this partition's own outbox), at depth
 * `depth`: each state stored where new, with its parent, depth and properties, and each transition
 * as a predecessor. The states added, or -1 on an error. */
int64_t ap_part_insert(Search *s, const uint64_t *recs, uint64_t nwords, int from, int64_t depth) {
    struct Dist *d = s->dist;
    if (!recs) { recs = d->out[d->me]; nwords = d->nout[d->me]; }   /* what this partition sent itself */
    Ctx *c = &s->workers[0][0];
    int64_t added_here = 0;
    while ((int64_t)s->nlayers < depth)   /* depths this partition got no state of: empty layers */
        if (!set_depth(s, s->n, (int64_t)s->nlayers)) return -1;
    for (uint64_t at = 0; at + NP + 1 <= nwords; at += NP + 1) {
        const uint64_t *pk = recs + at;
        uint64_t meta = pk[NP];
        int added = 0;
        int64_t j = find(s, pk, hash_words(pk), 1, &added);
        if (j < 0) return -1;
        if (added) {
            added_here++;
            s->parent[j] = meta == INITIAL ? EMPTY : (uint32_t)meta;
            d->ppart[j] = meta == INITIAL ? 0 : (uint16_t)from;
            d->movers[j] = 0;
            if (!set_depth(s, (uint64_t)j, depth)) return -1;
            if (depth > s->deepest) s->deepest = depth;
            unpack(pk, c->tmp);
            uint64_t props = NINV + NCOV > 0 ? props_of(c, c->tmp) : 0;
            for (int q = 0; q < NINV; q++)
                if (s->inv_first[q] < 0 && (props >> q & 1)) s->inv_first[q] = j;
            for (int q = 0; q < NCOV; q++)
                if (s->cov_first[q] < 0 && (props >> (32 + q) & 1)) s->cov_first[q] = j;
            if (s->first == 1 && s->cycle_state < 0 && waits_forever(c, c->tmp)) s->cycle_state = j;
            if (c->error) { s->error = c->error; return -1; }
        }
        if (meta == INITIAL) continue;
        if (d->npred == d->pcap) {
            uint64_t cap = d->pcap ? d->pcap * 2 : 16384;
            if (!room(s, (cap - d->pcap) * 10)) return -1;
            void *a = realloc(d->pdst, cap * sizeof(uint32_t));
            if (!a) { NOMEM(s); return -1; }
            d->pdst = a;
            void *b = realloc(d->psrc, cap * sizeof(uint32_t));
            if (!b) { NOMEM(s); return -1; }
            d->psrc = b;
            void *f = realloc(d->pfrom, cap * sizeof(uint16_t));
            if (!f) { NOMEM(s); return -1; }
            d->pfrom = f;
            d->pcap = cap;
        }
        d->pdst[d->npred] = (uint32_t)j;
        d->psrc[d->npred] = (uint32_t)meta;
        d->pfrom[d->npred] = (uint16_t)from;
        d->npred++;
    }
    return added_here;
}

/* what stopping early needs to know: out[0] bit k invariant k violated here, bit 32 + k cover k
 * reached; out[1] bit 0 a defect found here, bit 1 a wait-for cycle (--first) */
void ap_part_found(Search *s, uint64_t *out) {
    out[0] = 0;
    for (int q = 0; q < NINV; q++) if (s->inv_first[q] >= 0) out[0] |= 1ULL << q;
    for (int q = 0; q < NCOV; q++) if (s->cov_first[q] >= 0) out[0] |= 1ULL << (32 + q);
    out[1] = (s->def_state[0] >= 0 || s->def_state[1] >= 0) | (s->cycle_state >= 0) << 1;
}

/* the parent of state i: its partition in *part, its index (-1: the initial state) */
int64_t ap_part_parent(Search *s, uint64_t i, int *part) {
    *part = s->dist->ppart[i];
    return s->parent[i] == EMPTY ? -1 : (int64_t)s->parent[i];
}

/* the canonical form of w (unpacked into out) and the partition that stores it */
int ap_part_owner(Search *s, const V *w, V *out, int nparts) {
    uint64_t p[NP];
    canon(&s->workers[0][0], w, p);
    memset(out, 0, NW * sizeof(V));
    unpack(p, out);
    return owner(p, nparts);
}

/* ---- the stuck-thread analysis (core.c: ap_find_stuck), in rounds ------------------------------ */

static void enqueue(struct Dist *d, uint64_t n, uint64_t j) {
    if (d->queued[j] & 1) return;
    d->queued[j] |= 1;
    d->queue[(d->qhead + d->qsize) % n] = (uint32_t)j;
    d->qsize++;
}

/* the masks start as the threads that move in each state (every thread where it was not expanded;
 * with `any_dead`, also the dead threads and those waiting behind them), the predecessors grouped
 * by state, every state queued. 0 on an error. */
int ap_part_stuck_init(Search *s, int any_dead) {
    struct Dist *d = s->dist;
    uint64_t n = s->n, full = NT >= 64 ? ~0ULL : ((1ULL << NT) - 1);
    if (!room(s, (n + 1) * 8 + n * 9 + n * 8 + d->npred * 10)) return 0;
    uint64_t *mask = calloc(n ? n : 1, sizeof(uint64_t));
    d->pstart = calloc(n + 1, sizeof(uint64_t));
    d->queue = malloc((n ? n : 1) * sizeof(uint32_t));
    d->changed = malloc((n ? n : 1) * sizeof(uint32_t));
    d->queued = calloc(n ? n : 1, 1);
    uint32_t *src = malloc((d->npred ? d->npred : 1) * sizeof(uint32_t));
    uint16_t *from = malloc((d->npred ? d->npred : 1) * sizeof(uint16_t));
    if (!mask || !d->pstart || !d->queue || !d->changed || !d->queued || !src || !from) {
        free(mask); free(src); free(from);
        NOMEM(s);
        return 0;
    }
    V w[NW];
    for (uint64_t i = 0; i < n; i++) {
        if (!(s->flags[i] & 1)) mask[i] = full;
        else {
            mask[i] = d->movers[i];
            if (any_dead) { unpack(s->arena + i * NP, w); mask[i] |= defect_bound(&s->workers[0][0], w); }
        }
    }
    for (uint64_t k = 0; k < d->npred; k++) d->pstart[d->pdst[k] + 1]++;
    for (uint64_t i = 0; i < n; i++) d->pstart[i + 1] += d->pstart[i];
    for (uint64_t k = 0; k < d->npred; k++) {
        uint64_t at = d->pstart[d->pdst[k]]++;
        src[at] = d->psrc[k];
        from[at] = d->pfrom[k];
    }
    for (uint64_t i = n; i > 0; i--) d->pstart[i] = d->pstart[i - 1];   /* back to the starts */
    d->pstart[0] = 0;
    free(d->pdst); free(d->psrc); free(d->pfrom);
    d->pdst = NULL;
    d->psrc = src;
    d->pfrom = from;
    free(s->can_move);
    s->can_move = mask;
    d->qhead = d->qsize = 0;
    for (uint64_t i = 0; i < n; i++) enqueue(d, n, i);
    return 1;
}

/* a message of the analysis: a state's index and a mask, in one word where the threads fit in 32 bits */
#define MSG_WORDS (NT <= 32 ? 1 : 2)

/* one round: the queued states' masks to their predecessors, in this partition until nothing
 * changes; then each state whose mask changed, once, to its predecessors in other partitions, as
 * messages in their outboxes. The words written, or -1 on an error. */
int64_t ap_part_stuck_round(Search *s) {
    struct Dist *d = s->dist;
    uint64_t n = s->n, *mask = s->can_move, words = 0, nchanged = 0;
    ap_part_clear(s);
    while (d->qsize) {
        uint32_t j = d->queue[d->qhead];
        d->qhead = d->qhead + 1 == n ? 0 : d->qhead + 1;
        d->qsize--;
        d->queued[j] &= ~1;
        uint64_t m = mask[j];
        for (uint64_t k = d->pstart[j]; k < d->pstart[j + 1]; k++) {
            uint32_t i = d->psrc[k];
            if (d->pfrom[k] == d->me) {
                if ((mask[i] | m) != mask[i]) { mask[i] |= m; enqueue(d, n, i); }
            } else if (!(d->queued[j] & 2)) {
                d->queued[j] |= 2;             /* its remote predecessors hear of it after the loop */
                d->changed[nchanged++] = j;
            }
        }
    }
    for (uint64_t c = 0; c < nchanged; c++) {
        uint32_t j = d->changed[c];
        d->queued[j] &= ~2;
        for (uint64_t k = d->pstart[j]; k < d->pstart[j + 1]; k++) {
            int p = d->pfrom[k];
            if (p == d->me) continue;
            if (!outbox_room(s, p, MSG_WORDS)) return -1;
            if (MSG_WORDS == 1) d->out[p][d->nout[p]++] = mask[j] << 32 | d->psrc[k];
            else { d->out[p][d->nout[p]++] = d->psrc[k]; d->out[p][d->nout[p]++] = mask[j]; }
            words += MSG_WORDS;
        }
    }
    return (int64_t)words;
}

/* the messages another partition sent; the states they change are queued */
void ap_part_stuck_apply(Search *s, const uint64_t *msgs, uint64_t nwords) {
    struct Dist *d = s->dist;
    uint64_t *mask = s->can_move;
    for (uint64_t k = 0; k + MSG_WORDS <= nwords; k += MSG_WORDS) {
        uint64_t i = MSG_WORDS == 1 ? msgs[k] & 0xFFFFFFFFULL : msgs[k], m = MSG_WORDS == 1 ? msgs[k] >> 32 : msgs[k + 1];
        if (i < s->n && (mask[i] | m) != mask[i]) { mask[i] |= m; enqueue(d, s->n, i); }
    }
}

/* after the last round (else none): the first state (in index order, so of the least depth here) with a busy
 * thread that can never move again, in out[0] (-1: none), its stuck threads in out[1] */
void ap_part_stuck_first(Search *s, int64_t *out) {
    V w[NW];
    out[0] = -1;
    out[1] = 0;
    for (uint64_t i = 0; s->can_move && i < s->n; i++) {
        unpack(s->arena + i * NP, w);
        uint64_t busy = 0;
        for (int t = 0; t < NT; t++) if (thread_of(w, t)[0] >= 0) busy |= 1ULL << t;
        uint64_t stuck = busy & ~s->can_move[i];
        if (stuck) { out[0] = (int64_t)i; out[1] = (int64_t)stuck; return; }
    }
}
