/* apcheck native explorer core: the state store, the search loop, lock helpers, symmetry and the
 * stuck-thread analysis. Included at the end of a generated model file (see core.h). Every choice
 * of order (successors, first violations, edges) mirrors apcheck/explore/engine.py, so both cores
 * number the states alike. */

#define EMPTY UINT32_MAX

/* ---- lock words and held locks (semantics.py: _holder, _acquire, _release) ---------------- */

static inline V *thread_of(V *w, int t) { return w + TOFF0 + t * TW; }

static inline uint64_t held_classes(const V *th) {
    uint64_t m = 0;
    const V *h = th + 2 + NLOC;
    for (V i = 0; i < th[1]; i++) m |= 1ULL << INST_CLASS[h[2 * i]];
    return m;
}

static inline int holds_instance(const V *th, V inst) {
    const V *h = th + 2 + NLOC;
    for (V i = 0; i < th[1]; i++) if (h[2 * i] == inst) return 1;
    return 0;
}

/* every instance in [base, base+count) held (EVERY guards) */
static inline int holds_all(const V *th, int base, int count) {
    for (int k = base; k < base + count; k++) if (!holds_instance(th, k)) return 0;
    return 1;
}

/* 1 acquired, 0 not (taken), -1 a defect was reported */
static int do_acquire(Ctx *c, V *w, int t, int pc, V inst, int mode, int blocking) {
    V v = w[LOFF + inst];
    int h = holder(v, t, mode);
    if (h == MINE && blocking) { defect(c, t, D_SELF_DEADLOCK); return -1; }
    if (h != FREE) return 0;
    V nv = mode == READ ? -((-v) | ((V)1 << t)) : t + 1;
    V *th = thread_of(w, t);
    V *held = th + 2 + NLOC;
    if (blocking && th[1]) {
        /* lockdep's dependency rule (check_prevs_add): from the most recent held lock back, an
         * edge from each trylock and from the first lock a blocking acquire took, then stop */
        int cb = INST_CLASS[inst];
        for (V i = th[1] - 1; i >= 0; i--) {
            Edge *e = &c->edges[INST_CLASS[held[2 * i]] * NC + cb];
            if (e->seq < 0) {
                e->a_site = (int32_t)held[2 * i + 1];
                e->b_site = pc;
                e->origin = c->cur;
                e->seq = c->nedges++;
            }
            if (CODE_KIND[held[2 * i + 1]] != K_TRY && !c->closure_edges) break;
        }
    }
    if (th[1] >= HELD_LIMIT[t]) { c->error = E_TOO_MANY; return -1; }
    w[LOFF + inst] = nv;
    held[2 * th[1]] = inst;
    held[2 * th[1] + 1] = pc;
    th[1]++;
    return 1;
}

/* 0 released, -1 a defect was reported */
static int do_release(Ctx *c, V *w, int t, V inst) {
    V *th = thread_of(w, t);
    V *held = th + 2 + NLOC;
    for (V i = th[1] - 1; i >= 0; i--) {
        if (held[2 * i] == inst) {
            for (V k = i; k < th[1] - 1; k++) {
                held[2 * k] = held[2 * k + 2];
                held[2 * k + 1] = held[2 * k + 3];
            }
            th[1]--;
            held[2 * th[1]] = 0;
            held[2 * th[1] + 1] = 0;
            V v = w[LOFF + inst];
            w[LOFF + inst] = v > 0 ? 0 : -((-v) & ~((V)1 << t));
            return 0;
        }
    }
    defect(c, t, D_RELEASE_NOT_HELD);
    return -1;
}

/* ---- the state store ---------------------------------------------------------------------- */

static inline uint64_t hash_words(const uint64_t *p) {
    uint64_t h = 0x9E3779B97F4A7C15ULL;
    for (int i = 0; i < NP; i++) {
        h ^= p[i];
        h *= 0xBF58476D1CE4E5B9ULL;
        h ^= h >> 31;
    }
    h *= 0x94D049BB133111EBULL;
    return h ^ (h >> 29);
}

static inline int cmp_words(const uint64_t *a, const uint64_t *b) {
    for (int i = 0; i < NP; i++) if (a[i] != b[i]) return a[i] < b[i] ? -1 : 1;
    return 0;
}

static int grow_states(Ctx *c) {
    uint64_t cap = c->cap ? c->cap * 2 : 4096;
    void *a = realloc(c->arena, cap * NP * sizeof(uint64_t));
    if (!a) return 0;
    c->arena = a;
#define GROW(field, type) { void *p = realloc(c->field, cap * sizeof(type)); if (!p) return 0; c->field = p; }
    GROW(parent, uint32_t) GROW(flags, uint8_t) GROW(tcount, uint32_t)
    if (c->dfs) GROW(depth, uint32_t) GROW(tstart, uint64_t)  /* BFS: depth by layer, transitions in order */
    c->cap = cap;
    return 1;
}

static int grow_table(Ctx *c) {
    uint64_t size = c->table ? (c->tmask + 1) * 2 : 1 << 14;
    uint32_t *tab = malloc(size * sizeof(uint32_t));
    if (!tab) return 0;
    memset(tab, 0xFF, size * sizeof(uint32_t));
    for (uint64_t i = 0; i < c->n; i++) {
        uint64_t h = hash_words(c->arena + i * NP) & (size - 1);
        while (tab[h] != EMPTY) h = (h + 1) & (size - 1);
        tab[h] = (uint32_t)i;
    }
    free(c->table);
    c->table = tab;
    c->tmask = size - 1;
    return 1;
}

/* the index of packed state p (hash h); -1 when absent (and not added) or on an error */
static int64_t find(Ctx *c, const uint64_t *p, uint64_t h, int add, int *added) {
    h &= c->tmask;
    while (c->table[h] != EMPTY) {
        uint32_t j = c->table[h];
        if (cmp_words(c->arena + (uint64_t)j * NP, p) == 0) return j;
        h = (h + 1) & c->tmask;
    }
    if (!add) return -1;
    if (c->n >= EMPTY - 1) { c->error = E_NOMEM; return -1; }
    if (c->n == c->cap && !grow_states(c)) { c->error = E_NOMEM; return -1; }
    uint64_t j = c->n++;
    memcpy(c->arena + j * NP, p, NP * sizeof(uint64_t));
    c->flags[j] = 0;
    if (c->dfs) c->tstart[j] = 0;
    c->tcount[j] = 0;
    c->table[h] = (uint32_t)j;
    if (c->n * 4 > (c->tmask + 1) * 3 && !grow_table(c)) { c->error = E_NOMEM; return -1; }
    *added = 1;
    return (int64_t)j;
}

/* Depths: DFS stores one per state; BFS adds states in order of depth, so it keeps where each
 * depth's states begin (layer[d]). */
static int set_depth(Ctx *c, uint64_t j, int64_t d) {
    if (c->dfs) { c->depth[j] = (uint32_t)d; return 1; }
    if (d < (int64_t)c->nlayers) return 1;
    if (c->nlayers == c->lcap) {
        uint64_t cap = c->lcap ? c->lcap * 2 : 256;
        void *l = realloc(c->layer, cap * sizeof(uint64_t));
        if (!l) { c->error = E_NOMEM; return 0; }
        c->layer = l;
        c->lcap = cap;
    }
    c->layer[c->nlayers++] = j;
    return 1;
}

static int64_t depth_of(Ctx *c, uint64_t i) {
    if (c->dfs) return c->depth[i];
    uint64_t lo = 0, hi = c->nlayers;  /* the last layer starting at or before i */
    while (hi - lo > 1) {
        uint64_t mid = (lo + hi) / 2;
        if (c->layer[mid] <= i) lo = mid; else hi = mid;
    }
    return (int64_t)lo;
}

/* the least packing of w over the symmetry group (explore/symmetry.py: any canonical form counts
 * the same orbits; this one compares packed words) */
static void canon(Ctx *c, const V *w, uint64_t *out) {
    pack(c, w, out);
    if (!c->symmetry) return;
    for (int k = 0; k < NPERM; k++) {
        apply_perm(k, w, c->tmp);
        pack(c, c->tmp, c->pk2);
        if (cmp_words(c->pk2, out) < 0) memcpy(out, c->pk2, sizeof(c->pk2));
    }
}

static void check_props(Ctx *c, const V *w, int64_t j) {
    for (int k = 0; k < NINV; k++)
        if (c->inv_first[k] < 0 && !prop_inv(c, k, w) && !inv_masked(k, w)) c->inv_first[k] = j;
    for (int k = 0; k < NCOV; k++)
        if (c->cov_first[k] < 0 && prop_cov(c, k, w)) c->cov_first[k] = j;
}

/* A successor: canonicalized into the batch of the expansion in progress (flush looks the batch up) */
static void emit(Ctx *c, V *w, int t) {
    c->transitions++;
    if (c->error) return;
    if (c->nb == c->bcap) {
        uint64_t cap = c->bcap ? c->bcap * 2 : 64;
        void *b = realloc(c->batch, cap * NP * sizeof(uint64_t));
        if (!b) { c->error = E_NOMEM; return; }
        c->batch = b;
        void *m = realloc(c->bmover, cap * sizeof(uint64_t));
        if (!m) { c->error = E_NOMEM; return; }
        c->bmover = m;
        c->bcap = cap;
    }
    canon(c, w, c->batch + c->nb * NP);
    c->bmover[c->nb++] = (uint64_t)t;
}

/* Look the successors of one expansion up, in the order they were found: first every hash and its
 * table slot (prefetched), then the stored state the slot points to (prefetched), then the lookups,
 * so the cache misses of one expansion overlap. */
static void flush(Ctx *c) {
    uint64_t nb = c->nb;
    c->nb = 0;
    if (c->error) return;
    for (uint64_t i = 0; i < nb; i++) {
        uint64_t h = hash_words(c->batch + i * NP);
        c->bmover[i] |= h << 8;   /* the mover fits in the low 8 bits; keep the hash's high bits */
        __builtin_prefetch(&c->table[(h << 8 >> 8) & c->tmask]);
    }
    for (uint64_t i = 0; i < nb; i++) {
        uint32_t j = c->table[((c->bmover[i] >> 8)) & c->tmask];
        if (j != EMPTY) __builtin_prefetch(c->arena + (uint64_t)j * NP);
    }
    if (c->ntrans + nb > c->tcap) {
        uint64_t cap = c->tcap ? c->tcap : 16384;
        while (cap < c->ntrans + nb) cap *= 2;
        void *d = realloc(c->tdst, cap * sizeof(uint32_t));
        if (!d) { c->error = E_NOMEM; return; }
        c->tdst = d;
        void *m = realloc(c->tmover, cap);
        if (!m) { c->error = E_NOMEM; return; }
        c->tmover = m;
        c->tcap = cap;
    }
    for (uint64_t i = 0; i < nb; i++) {
        const uint64_t *p = c->batch + i * NP;
        int t = (int)(c->bmover[i] & 0xFF);
        int added = 0;
        int64_t j = find(c, p, c->bmover[i] >> 8, 1, &added);
        if (j < 0) return;
        if (added) {
            c->parent[j] = (uint32_t)c->cur;
            if (!set_depth(c, j, c->cur_depth + 1)) return;
            if (c->cur_depth + 1 > c->deepest) c->deepest = c->cur_depth + 1;
            if (NINV + NCOV > 0) {
                unpack(p, c->tmp);   /* the properties are symmetric: any renaming judges alike */
                check_props(c, c->tmp, j);
            }
            if (c->dfs) {
                if (c->sp == c->scap) {
                    uint64_t cap = c->scap ? c->scap * 2 : 4096;
                    void *st = realloc(c->stack, cap * sizeof(uint32_t));
                    if (!st) { c->error = E_NOMEM; return; }
                    c->stack = st;
                    c->scap = cap;
                }
                c->stack[c->sp++] = (uint32_t)j;
            }
        }
        c->tdst[c->ntrans] = (uint32_t)j;
        c->tmover[c->ntrans] = (uint8_t)t;
        c->ntrans++;
        c->tcount[c->cur]++;
    }
}

static void defect(Ctx *c, int t, int kind) {
    c->transitions++;
    int prop = kind == D_SELF_DEADLOCK ? 0 : 1;   /* deadlock | defects */
    if (c->def_state[prop] < 0) {
        c->def_state[prop] = c->cur;
        c->def_thread[prop] = t;
        c->def_kind[prop] = kind;
    }
    c->flags[c->cur] |= 2;
}

/* ---- the interface (ctypes, native/engine.py) ------------------------------------------- */

Ctx *ap_new(uint64_t max_states, int64_t max_depth, int dfs, int closure_edges, int merge, int symmetry) {
    Ctx *c = calloc(1, sizeof(Ctx));
    if (!c) return NULL;
    c->max_states = max_states;
    c->max_depth = max_depth;
    c->dfs = dfs;
    c->closure_edges = closure_edges;
    c->merge = merge;
    c->symmetry = symmetry && NPERM > 0;
    for (int k = 0; k < NINV + 1; k++) c->inv_first[k] = -1;
    for (int k = 0; k < NCOV + 1; k++) c->cov_first[k] = -1;
    for (int k = 0; k < 2; k++) c->def_state[k] = c->def_thread[k] = c->def_kind[k] = -1;
    for (int k = 0; k < NC * NC + 1; k++) c->edges[k].seq = -1;
    if (!grow_states(c) || !grow_table(c)) { c->error = E_NOMEM; return c; }
    V w[NW];
    memset(w, 0, sizeof(w));
    init_state(w);
    canon(c, w, c->best);
    int added = 0;
    int64_t j = find(c, c->best, hash_words(c->best), 1, &added);
    if (j < 0) return c;
    c->parent[0] = EMPTY;
    if (!set_depth(c, 0, 0)) return c;
    c->cur = 0;
    check_props(c, w, 0);
    if (dfs) {
        c->stack = malloc(4096 * sizeof(uint32_t));
        if (!c->stack) { c->error = E_NOMEM; return c; }
        c->scap = 4096;
        c->stack[c->sp++] = 0;
    }
    return c;
}

int ap_error(Ctx *c) { return c->error; }

static inline int frontier_left(Ctx *c) { return c->dfs ? c->sp > 0 : c->cursor < c->n; }

/* expand up to `budget` states; S_RUNNING when there is more to do */
int ap_run(Ctx *c, uint64_t budget) {
    V s[NW];
    while (budget--) {
        if (c->error) return S_ERROR;
        if (!frontier_left(c)) return S_DONE;
        int64_t i = c->dfs ? (int64_t)c->stack[--c->sp] : (int64_t)c->cursor++;
        int64_t d = depth_of(c, i);
        if (c->max_depth >= 0 && d >= c->max_depth) { c->depth_limited = 1; continue; }
        c->flags[i] |= 1;
        c->cur = i;
        c->cur_depth = d;
        if (c->dfs) c->tstart[i] = c->ntrans;
        c->tcount[i] = 0;
        unpack(c->arena + (uint64_t)i * NP, s);
        expand(c, s);
        flush(c);
        if (c->error) return S_ERROR;
        if (c->max_states && c->n >= c->max_states && frontier_left(c)) return S_MAX_STATES;
    }
    if (c->error) return S_ERROR;
    return frontier_left(c) ? S_RUNNING : S_DONE;
}

/* counters: states, transitions, deepest, frontier, depth-limited, bytes allocated */
void ap_stats(Ctx *c, uint64_t *out) {
    out[0] = c->n;
    out[1] = c->transitions;
    out[2] = (uint64_t)c->deepest;
    out[3] = c->dfs ? c->sp : c->n - c->cursor;
    out[4] = (uint64_t)c->depth_limited;
    out[5] = c->cap * (NP * 8 + 4 + 1 + 4 + (c->dfs ? 12 : 0)) + c->lcap * 8 + (c->tmask + 1) * 4 + c->tcap * 5 + c->scap * 4 + c->bcap * (NP + 1) * 8
             + (c->can_move ? c->n * 8 : 0);
}

void ap_state(Ctx *c, uint64_t i, V *out) { memset(out, 0, NW * sizeof(V)); unpack(c->arena + i * NP, out); }
int64_t ap_parent(Ctx *c, uint64_t i) { return c->parent[i] == EMPTY ? -1 : (int64_t)c->parent[i]; }
int64_t ap_depth(Ctx *c, uint64_t i) { return depth_of(c, i); }
int64_t ap_inv_first(Ctx *c, int k) { return c->inv_first[k]; }
int64_t ap_cov_first(Ctx *c, int k) { return c->cov_first[k]; }
void ap_defect(Ctx *c, int prop, int64_t *out) {
    out[0] = c->def_state[prop]; out[1] = c->def_thread[prop]; out[2] = c->def_kind[prop];
}
/* the edges in the order found: (class a, class b, site a, site b, origin) each */
int64_t ap_edges(Ctx *c, int64_t *out) {
    for (int k = 0; k < NC * NC; k++) {
        Edge *e = &c->edges[k];
        if (e->seq < 0) continue;
        int64_t *o = out + 5 * e->seq;
        o[0] = k / NC; o[1] = k % NC; o[2] = e->a_site; o[3] = e->b_site; o[4] = e->origin;
    }
    return c->nedges;
}

/* the canonical form of w, unpacked into out; its index, or -1 if the search did not store it */
int64_t ap_canon(Ctx *c, const V *w, V *out) {
    uint64_t p[NP];
    canon(c, w, p);
    memset(out, 0, NW * sizeof(V));
    unpack(p, out);
    int added = 0;
    return find(c, p, hash_words(p), 0, &added);
}

/* The rest of the fixpoint where the sweeps did not settle: a worklist over the predecessors. */
static int propagate(Ctx *c, uint64_t *mask) {
    uint64_t n = c->n;
    uint64_t *count = calloc(n + 1, sizeof(uint64_t));
    uint32_t *preds = malloc((c->ntrans ? c->ntrans : 1) * sizeof(uint32_t));
    uint32_t *queue = malloc((n ? n : 1) * sizeof(uint32_t));
    uint8_t *queued = malloc(n ? n : 1);
    if (!count || !preds || !queue || !queued) {
        free(count); free(preds); free(queue); free(queued);
        c->error = E_NOMEM;
        return 0;
    }
    uint64_t end = c->ntrans;
    for (uint64_t i = n; i-- > 0;) {
        uint64_t start = c->dfs ? c->tstart[i] : end - c->tcount[i];
        end = start;
        if (c->flags[i] & 1)
            for (uint64_t k = start; k < start + c->tcount[i]; k++) count[c->tdst[k] + 1]++;
    }
    for (uint64_t i = 0; i < n; i++) count[i + 1] += count[i];
    end = c->ntrans;
    for (uint64_t i = n; i-- > 0;) {
        uint64_t start = c->dfs ? c->tstart[i] : end - c->tcount[i];
        end = start;
        if (c->flags[i] & 1)
            for (uint64_t k = start; k < start + c->tcount[i]; k++) preds[count[c->tdst[k]]++] = (uint32_t)i;
    }
    for (uint64_t i = n; i > 0; i--) count[i] = count[i - 1];  /* back to the starts */
    count[0] = 0;
    uint64_t head = 0, size = n;
    for (uint64_t i = 0; i < n; i++) { queue[i] = (uint32_t)i; queued[i] = 1; }
    while (size) {
        uint32_t s = queue[head];
        head = head + 1 == n ? 0 : head + 1;
        size--;
        queued[s] = 0;
        uint64_t ms = mask[s];
        for (uint64_t k = count[s]; k < count[s + 1]; k++) {
            uint32_t p = preds[k];
            if ((mask[p] | ms) != mask[p]) {
                mask[p] |= ms;
                if (!queued[p]) {
                    queued[p] = 1;
                    queue[(head + size) % n] = p;
                    size++;
                }
            }
        }
    }
    free(count); free(preds); free(queue); free(queued);
    return 1;
}

/* The first state (in index order) with a busy thread that can never move again: its index and
 * mask in out[0], out[1] (-1 if none). can_move[i]: the threads that can take a step in i or in
 * a state reachable from it; unexpanded states (limits, defects) count as "every thread can
 * move", so a truncated search never reports a false deadlock (engine.py: find_stuck). */
int ap_find_stuck(Ctx *c, int64_t *out) {
    uint64_t n = c->n;
    uint64_t full = NT >= 64 ? ~0ULL : ((1ULL << NT) - 1);
    uint64_t *mask = calloc(n ? n : 1, sizeof(uint64_t));
    if (!mask) { c->error = E_NOMEM; return 0; }
    /* the threads that move in each state; then sweeps from the last state to the first, each
     * state taking the masks of its successors, until nothing changes (BFS stores the transitions
     * in state order, so each state's begin where the previous state's end) */
    uint64_t end = c->ntrans;
    for (uint64_t i = n; i-- > 0;) {
        uint64_t start = c->dfs ? c->tstart[i] : end - c->tcount[i];
        if (!(c->flags[i] & 1) || (c->flags[i] & 2)) mask[i] = full;
        else for (uint64_t k = start; k < start + c->tcount[i]; k++) mask[i] |= 1ULL << c->tmover[k];
        end = start;
    }
    int changed = 1;
    for (int round = 0; changed && round < 256; round++) {
        changed = 0;
        end = c->ntrans;
        for (uint64_t i = n; i-- > 0;) {
            uint64_t start = c->dfs ? c->tstart[i] : end - c->tcount[i];
            end = start;
            if (!(c->flags[i] & 1) || (c->flags[i] & 2)) continue;
            uint64_t m = mask[i];
            for (uint64_t k = start; k < start + c->tcount[i]; k++) m |= mask[c->tdst[k]];
            if (m != mask[i]) { mask[i] = m; changed = 1; }
        }
    }
    if (changed && !propagate(c, mask)) { free(mask); return 0; }
    free(c->can_move);
    c->can_move = mask;
    out[0] = -1; out[1] = 0;
    V w[NW];
    for (uint64_t i = 0; i < n; i++) {
        unpack(c->arena + i * NP, w);
        uint64_t busy = 0;
        for (int t = 0; t < NT; t++) if (thread_of(w, t)[0] != IDLE) busy |= 1ULL << t;
        uint64_t stuck = busy & ~mask[i];
        if (stuck) { out[0] = (int64_t)i; out[1] = (int64_t)stuck; break; }
    }
    return 1;
}

uint64_t ap_can_move(Ctx *c, uint64_t i) { return c->can_move ? c->can_move[i] : ~0ULL; }

void ap_free(Ctx *c) {
    if (!c) return;
    free(c->arena); free(c->table); free(c->parent); free(c->depth); free(c->flags); free(c->tstart);
    free(c->tcount); free(c->tdst); free(c->tmover); free(c->stack); free(c->can_move); free(c->batch); free(c->bmover); free(c->layer);
    free(c);
}
