/* apcheck native explorer core: the state store, the search loop, lock helpers, symmetry and the
 * stuck-thread analysis. Included at the end of a generated model file (see core.h). Every choice
 * of order (successors, first violations, edges) mirrors apcheck/explore/engine.py, so both cores
 * number the states alike. */

#define EMPTY UINT32_MAX
#ifndef SWEEPS
#define SWEEPS 256   /* sweeps of the stuck-thread analysis before its worklist finishes the fixpoint */
#endif

enum { EV_DEFECT = 1, EV_EDGE = 2, EV_DONE = 3 };

/* an event of the expansion in progress, merged in state order (merge) */
static void log_event(Ctx *c, int type, int a, int b, int x, int y) {
    if (c->nev == c->ecap) {
        uint64_t cap = c->ecap ? c->ecap * 2 : 256;
        void *e = realloc(c->ev, cap * sizeof(Event));
        if (!e) { c->error = E_NOMEM; return; }
        c->ev = e;
        c->ecap = cap;
    }
    c->ev[c->nev++] = (Event){type, a, b, x, y};
}

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
    if (h == MINE && blocking) { defect(c, w, t, D_SELF_DEADLOCK); return -1; }
    if (h != FREE) return 0;
    V nv = mode == READ ? -((-v) | ((V)1 << t)) : t + 1;
    V *th = thread_of(w, t);
    V *held = th + 2 + NLOC;
    if (blocking && th[1]) {
        /* lockdep's dependency rule (check_prevs_add): from the most recent held lock back, an
         * edge from each trylock and from the first lock a blocking acquire took, then stop */
        int cb = INST_CLASS[inst];
        for (V i = th[1] - 1; i >= 0; i--) {
            int ca = INST_CLASS[held[2 * i]];
            if (__atomic_load_n(&c->s->edges[ca * NC + cb].seq, __ATOMIC_RELAXED) < 0) log_event(c, EV_EDGE, ca, cb, (int32_t)held[2 * i + 1], pc);
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
    defect(c, w, t, D_RELEASE_NOT_HELD);
    return -1;
}

#define NOMEM(s) do { if (!(s)->error) (s)->error = E_NOMEM; } while (0)

/* ---- work split over the workers ----------------------------------------------------------- */

#define PAR_MIN 65536   /* below this many items one thread does it: a thread's start costs more */

typedef void (*PartFn)(Search *s, uint64_t lo, uint64_t hi, int k, void *arg);
typedef struct { Search *s; uint64_t lo, hi; int k; PartFn fn; void *arg; } Part;

static void *run_part(void *p) {
    Part *x = p;
    x->fn(x->s, x->lo, x->hi, x->k, x->arg);
    return NULL;
}

/* the parts to split n items into: one per worker, or one for few items */
static int parts_for(Search *s, uint64_t n) {
    int nw = n < PAR_MIN ? 1 : s->nworkers;
    return nw > 64 ? 64 : nw;
}

/* fn over [0, n) in nw contiguous parts (part k in [n*k/nw, n*(k+1)/nw)), at once; the caller runs
 * part 0, and a part whose thread could not start */
static void parallel_for(Search *s, uint64_t n, int nw, PartFn fn, void *arg) {
    Part parts[64];
    pthread_t t[64];
    int started[64] = {0};
    for (int k = 0; k < nw; k++)
        parts[k] = (Part){s, n * (uint64_t)k / nw, n * (uint64_t)(k + 1) / nw, k, fn, arg};
    for (int k = 1; k < nw; k++) started[k] = pthread_create(&t[k], NULL, run_part, &parts[k]) == 0;
    run_part(&parts[0]);
    for (int k = 1; k < nw; k++) {
        if (started[k]) pthread_join(t[k], NULL);
        else run_part(&parts[k]);
    }
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

/* the bytes the search has allocated (the store, the table, the transitions, the workers' logs) */
static uint64_t allocated(Search *s) {
    uint64_t out = s->cap * (NP * 8 + 4 + 1 + 4 + (s->dfs ? 12 : 0)) + s->lcap * 8 + (s->tmask + 1) * 8
                   + s->tcap * 5 + s->scap * 4 + (s->can_move ? s->n * 8 : 0) + (s->dist ? dist_bytes(s) : 0);
    for (int p = 0; p < 2; p++)
        for (int k = 0; s->workers[p] && k < s->nworkers; k++)
            out += s->workers[p][k].scap * (sizeof(Succ) + NP * 8) + s->workers[p][k].ecap * sizeof(Event);
    return out;
}

/* may the search allocate `more` bytes? Else the error says which limit (the search stops) */
static int room(Search *s, uint64_t more) {
    if (s->max_bytes && allocated(s) + more > s->max_bytes) { s->error = E_LIMIT; return 0; }
    return 1;
}

static int grow_states(Search *s) {
    uint64_t cap = s->cap ? s->cap * 2 : 4096;
    if (!room(s, (cap - s->cap) * (NP * 8 + 4 + 1 + 4 + (s->dfs ? 12 : 0)))) return 0;
    void *a = realloc(s->arena, cap * NP * sizeof(uint64_t));
    if (!a) return 0;
    s->arena = a;
#define GROW(field, type) { void *p = realloc(s->field, cap * sizeof(type)); if (!p) return 0; s->field = p; }
    GROW(parent, uint32_t) GROW(flags, uint8_t) GROW(tcount, uint32_t)
    if (s->dfs) GROW(depth, uint32_t) GROW(tstart, uint64_t)  /* BFS: depth by layer, transitions in order */
    if (s->dist && !dist_grow(s, cap)) return 0;
    s->cap = cap;
    return 1;
}

/* Table slots hold the state's index in the low 32 bits and the high 32 bits of its hash above, so
 * a probe compares a stored state only where the hashes agree (one cache miss per lookup, not one
 * per slot probed). */
#define SLOT_EMPTY UINT64_MAX
#define TAG(h) ((h) >> 32)

typedef struct { uint64_t *tab, size; } Rehash;

static void clear_part(Search *s, uint64_t lo, uint64_t hi, int k, void *arg) {
    Rehash *r = arg;
    memset(r->tab + lo, 0xFF, (hi - lo) * sizeof(uint64_t));
}

/* the states [lo, hi) into the new table; parts run at once, so a slot is claimed atomically */
static void rehash_part(Search *s, uint64_t lo, uint64_t hi, int k, void *arg) {
    Rehash *r = arg;
    for (uint64_t i = lo; i < hi; i++) {
        uint64_t full = hash_words(s->arena + i * NP), h = full & (r->size - 1), val = TAG(full) << 32 | i;
        for (;;) {
            uint64_t expected = SLOT_EMPTY;
            if (__atomic_compare_exchange_n(&r->tab[h], &expected, val, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
                break;
            h = (h + 1) & (r->size - 1);
        }
    }
}

static int grow_table(Search *s) {
    uint64_t size = s->table ? (s->tmask + 1) * 2 : 1 << 14;
    if (!room(s, size * sizeof(uint64_t))) return 0;
    uint64_t *tab = malloc(size * sizeof(uint64_t));
    if (!tab) return 0;
    Rehash r = {tab, size};
    parallel_for(s, size, parts_for(s, size), clear_part, &r);
    parallel_for(s, s->n, parts_for(s, s->n), rehash_part, &r);
    free(s->table);
    s->table = tab;
    s->tmask = size - 1;
    return 1;
}

/* the index of packed state p (hash h); -1 when absent (and not added) or on an error. Without
 * `add` it only reads, and the workers call it at once while nothing is added. */
static int64_t find(Search *s, const uint64_t *p, uint64_t hash, int add, int *added) {
    uint64_t h = hash & s->tmask, tag = TAG(hash), e;
    /* the merge of one block adds states while the next block's expansion looks states up: a slot
     * is published (release) after its state is stored, and read with acquire */
    while ((e = __atomic_load_n(&s->table[h], __ATOMIC_ACQUIRE)) != SLOT_EMPTY) {
        if (e >> 32 == tag && cmp_words(s->arena + (e & 0xFFFFFFFFULL) * NP, p) == 0) return (int64_t)(e & 0xFFFFFFFFULL);
        h = (h + 1) & s->tmask;
    }
    if (!add) return -1;
    if (s->n >= EMPTY - 1) { NOMEM(s); return -1; }
    if (s->n == s->cap && !grow_states(s)) { NOMEM(s); return -1; }
    uint64_t j = s->n++;
    memcpy(s->arena + j * NP, p, NP * sizeof(uint64_t));
    s->flags[j] = 0;
    if (s->dfs) s->tstart[j] = 0;
    s->tcount[j] = 0;
    __atomic_store_n(&s->table[h], tag << 32 | j, __ATOMIC_RELEASE);
    if (s->n * 4 > (s->tmask + 1) * 3 && !grow_table(s)) { NOMEM(s); return -1; }
    *added = 1;
    return (int64_t)j;
}

/* Depths: DFS stores one per state; BFS adds states in order of depth, so it keeps where each
 * depth's states begin (layer[d]). */
static int set_depth(Search *s, uint64_t j, int64_t d) {
    if (s->dfs) { s->depth[j] = (uint32_t)d; return 1; }
    if (d < (int64_t)s->nlayers) return 1;
    if (s->nlayers == s->lcap) {
        uint64_t cap = s->lcap ? s->lcap * 2 : 256;
        void *l = realloc(s->layer, cap * sizeof(uint64_t));
        if (!l) { NOMEM(s); return 0; }
        s->layer = l;
        s->lcap = cap;
    }
    s->layer[s->nlayers] = j;
    __atomic_store_n(&s->nlayers, s->nlayers + 1, __ATOMIC_RELEASE);
    return 1;
}

static int64_t depth_of(Search *s, uint64_t i) {
    if (s->dfs) return s->depth[i];
    uint64_t lo = 0, hi = __atomic_load_n(&s->nlayers, __ATOMIC_ACQUIRE);  /* the last layer starting at or before i */
    while (hi - lo > 1) {
        uint64_t mid = (lo + hi) / 2;
        if (s->layer[mid] <= i) lo = mid; else hi = mid;
    }
    return (int64_t)lo;
}

/* the least packing of w over the symmetry group: packed fields compare as the Python explorer's
 * tuples, so this is its representative (explore/symmetry.py) */
static void canon(Ctx *c, const V *w, uint64_t *out) {
    pack(c, w, out);
    if (!c->s->symmetry) return;
    for (int k = 0; k < NPERM; k++) {
        apply_perm(k, w, c->tmp);
        pack(c, c->tmp, c->pk2);
        if (cmp_words(c->pk2, out) < 0) memcpy(out, c->pk2, sizeof(c->pk2));
    }
}

/* bit k: invariant k judged violated in w; bit 32 + k: cover k holds */
static uint64_t props_of(Ctx *c, const V *w) {
    uint64_t bits = 0;
    for (int k = 0; k < NINV; k++)
        if (!prop_inv(c, k, w) && !inv_masked(k, w)) bits |= 1ULL << k;
    for (int k = 0; k < NCOV; k++)
        if (prop_cov(c, k, w)) bits |= 1ULL << (32 + k);
    return bits;
}

/* Per thread blocked at an acquire, the other threads holding the lock it waits for (0 for the
 * others) (semantics.py: holders_waited_for). */
static void holders_waited_for(Ctx *c, const V *w, uint64_t *waits) {
    for (int t = 0; t < NT; t++) {
        V inst; int mode;
        waits[t] = 0;
        if (!waiting_on(c, w, t, &inst, &mode)) continue;
        V v = w[LOFF + inst];
        if (holder(v, t, mode) != OTHER) continue;
        waits[t] = (v > 0 ? 1ULL << (v - 1) : (uint64_t)(-v)) & ~(1ULL << t);
    }
}

/* The threads blocked at an acquire that wait, directly or through others, on a wait-for cycle of
 * lock holders (semantics.py: waits_forever). */
static uint64_t waits_forever(Ctx *c, const V *w) {
    uint64_t waits[NT], left = 0;
    holders_waited_for(c, w, waits);
    for (int t = 0; t < NT; t++) if (waits[t]) left |= 1ULL << t;
    for (int changed = 1; changed;) {
        changed = 0;
        for (int t = 0; t < NT; t++)
            if ((left >> t & 1) && !(waits[t] & left)) { left &= ~(1ULL << t); changed = 1; }
    }
    return left;
}

/* ---- phase 1: expanding states (in parallel) ----------------------------------------------- */

/* a successor of the state being expanded: canonicalized into the worker's log */
static void emit(Ctx *c, V *w, int t) {
    if (c->error) return;
    if (c->nsucc == c->scap) {
        uint64_t cap = c->scap ? c->scap * 2 : 256;
        void *x = realloc(c->succ, cap * sizeof(Succ));
        if (!x) { c->error = E_NOMEM; return; }
        c->succ = x;
        void *p = realloc(c->pk, cap * NP * sizeof(uint64_t));
        if (!p) { c->error = E_NOMEM; return; }
        c->pk = p;
        c->scap = cap;
    }
    canon(c, w, c->pk + c->nsucc * NP);
    c->succ[c->nsucc++].mover = t;
}

/* thread t hits a defect in w: reported, and the successor has the thread dead where it stands,
 * keeping its locks and what the step did so far (semantics.py: _death) */
static void defect(Ctx *c, V *w, int t, int kind) {
    c->defects++;
    log_event(c, EV_DEFECT, kind, t, 0, 0);
    V *th = thread_of(w, t);
    th[0] = DEAD;
    memset(th + 2, 0, NLOC * sizeof(V));
    emit(c, w, t);
}

/* thread t returns successfully from operation op: logged until the merge knows its first time */
static void completed(Ctx *c, int op, int t) {
    if (__atomic_load_n(&c->s->done_state[op], __ATOMIC_RELAXED) < 0) log_event(c, EV_DONE, op, t, 0, 0);
}

/* Expand state i into the worker's logs, then look its successors up (read only): first every
 * hash and its table slot (prefetched), then the stored state the slot points to (prefetched),
 * then the lookups, so the cache misses overlap. Successors not found get their properties. */
static void expand_one(Ctx *c, uint64_t i, StateLog *log) {
    Search *s = c->s;
    log->worker = c->id;
    log->succ = c->nsucc;
    log->ev = c->nev;
    log->defects = 0;
    log->skipped = 0;
    if (s->max_depth >= 0 && depth_of(s, i) >= s->max_depth) { log->skipped = 1; log->nsucc = log->nev = 0; return; }
    V w[NW];
    unpack(s->arena + i * NP, w);
    c->cur = (int64_t)i;
    c->defects = 0;
    expand(c, w);
    uint64_t a = log->succ, b = c->nsucc;
    for (uint64_t k = a; k < b; k++) {
        uint64_t h = hash_words(c->pk + k * NP);
        c->succ[k].hash = h;
        __builtin_prefetch(&s->table[h & s->tmask]);
    }
    for (uint64_t k = a; k < b; k++) {
        uint64_t e = __atomic_load_n(&s->table[c->succ[k].hash & s->tmask], __ATOMIC_RELAXED);
        if (e != SLOT_EMPTY && e >> 32 == TAG(c->succ[k].hash)) __builtin_prefetch(s->arena + (e & 0xFFFFFFFFULL) * NP);
    }
    for (uint64_t k = a; k < b; k++) {
        int added = 0;
        Succ *x = &c->succ[k];
        x->found = find(s, c->pk + k * NP, x->hash, 0, &added);
        x->props = 0;
        if (x->found < 0 && (NINV + NCOV > 0 || s->first)) {
            unpack(c->pk + k * NP, c->tmp);   /* the properties are symmetric: any renaming judges alike */
            x->props = props_of(c, c->tmp);
            if (s->first == 1 && waits_forever(c, c->tmp)) x->props |= 1ULL << 63;
        }
    }
    log->nsucc = b - a;
    log->nev = c->nev - log->ev;
    log->defects = c->defects;
}

#define CHUNK 32

static void *work(void *arg) {
    Ctx *c = arg;
    Search *s = c->s;
    for (;;) {  /* runs of CHUNK states: the workers write their states' logs on lines of their own */
        uint64_t first = __atomic_fetch_add(&s->next, CHUNK, __ATOMIC_RELAXED);
        if (first >= c->hi || c->error || __atomic_load_n(&s->stop, __ATOMIC_RELAXED)) break;
        for (uint64_t i = first; i < first + CHUNK && i < c->hi && !c->error; i++)
            expand_one(c, i, &c->logs[i - c->lo]);
    }
    return NULL;
}

/* ---- phase 2: merging in state order (sequential) ------------------------------------------ */

static inline int frontier_left(Search *s) { return s->dfs ? s->sp > 0 : s->cursor < s->n; }

static int push(Search *s, uint64_t j) {
    if (s->sp == s->scap) {
        uint64_t cap = s->scap ? s->scap * 2 : 4096;
        void *st = realloc(s->stack, cap * sizeof(uint32_t));
        if (!st) { NOMEM(s); return 0; }
        s->stack = st;
        s->scap = cap;
    }
    s->stack[s->sp++] = (uint32_t)j;
    return 1;
}

/* state i's events (in worker c's log): the first defect of each kind, operation returns and
 * lock-order edges, as found in state order */
static void merge_events(Search *s, uint64_t i, Ctx *c, const StateLog *log) {
    for (uint64_t k = log->ev; k < log->ev + log->nev; k++) {
        Event *e = &c->ev[k];
        if (e->type == EV_DEFECT) {
            int prop = e->a == D_SELF_DEADLOCK ? 0 : 1;   /* deadlock | defects */
            if (s->def_state[prop] < 0) {
                s->def_state[prop] = (int64_t)i;
                s->def_thread[prop] = e->b;
                s->def_kind[prop] = e->a;
            }
            s->flags[i] |= 2;
        } else if (e->type == EV_DONE) {
            if (s->done_state[e->a] < 0) {
                s->done_thread[e->a] = e->b;
                __atomic_store_n(&s->done_state[e->a], (int64_t)i, __ATOMIC_RELAXED);
            }
        } else {
            Edge *g = &s->edges[e->a * NC + e->b];
            if (g->seq < 0) {
                g->a_site = e->c;
                g->b_site = e->d;
                g->origin = (int64_t)i;
                __atomic_store_n(&g->seq, s->nedges++, __ATOMIC_RELAXED);
            }
        }
    }
}

/* state i's log: its defects and edges, then its successors, added where new. 0 on an error. */
static int merge(Search *s, uint64_t i, StateLog *log, int par) {
    Ctx *c = &s->workers[par][log->worker];
    int64_t d = depth_of(s, i);
    s->flags[i] |= 1;
    if (s->dfs) s->tstart[i] = s->ntrans;
    s->tcount[i] = 0;
    s->transitions += log->nsucc;   /* a defect's step is one of them (the thread dies there) */
    merge_events(s, i, c, log);
    if (s->ntrans + log->nsucc > s->tcap) {
        uint64_t cap = s->tcap ? s->tcap : 16384;
        while (cap < s->ntrans + log->nsucc) cap *= 2;
        if (!room(s, (cap - s->tcap) * 5)) return 0;
        void *dd = realloc(s->tdst, cap * sizeof(uint32_t));
        if (!dd) { NOMEM(s); return 0; }
        s->tdst = dd;
        void *m = realloc(s->tmover, cap);
        if (!m) { NOMEM(s); return 0; }
        s->tmover = m;
        s->tcap = cap;
    }
    for (uint64_t k = log->succ; k < log->succ + log->nsucc; k++) {
        Succ *x = &c->succ[k];
        int64_t j = x->found;
        if (j < 0) {
            int added = 0;
            j = find(s, c->pk + k * NP, x->hash, 1, &added);
            if (j < 0) return 0;
            if (added) {
                s->parent[j] = (uint32_t)i;
                if (!set_depth(s, (uint64_t)j, d + 1)) return 0;
                if (d + 1 > s->deepest) s->deepest = d + 1;
                for (int q = 0; q < NINV; q++)
                    if (s->inv_first[q] < 0 && (x->props >> q & 1)) s->inv_first[q] = j;
                for (int q = 0; q < NCOV; q++)
                    if (s->cov_first[q] < 0 && (x->props >> (32 + q) & 1)) s->cov_first[q] = j;
                if (s->cycle_state < 0 && (x->props >> 63 & 1)) s->cycle_state = j;
                if (s->dfs && !push(s, (uint64_t)j)) return 0;
            }
        }
        s->tdst[s->ntrans] = (uint32_t)j;
        s->tmover[s->ntrans] = (uint8_t)x->mover;
        s->ntrans++;
        s->tcount[i]++;
    }
    return 1;
}

/* ---- the interface (ctypes, native/search.py) -------------------------------------------- */

#define BLOCK 4096   /* BFS: states expanded together (phase 1) before their merge (phase 2) */

/* a search with its configuration and an empty store (NULL: no memory) */
static Search *search_new(uint64_t max_states, int64_t max_depth, int dfs, int closure_edges, int merge_releases,
                          int symmetry, int nworkers, int first, uint64_t max_bytes, struct Dist *dist) {
    Search *s = calloc(1, sizeof(Search));
    if (!s) return NULL;
    s->max_states = max_states;
    s->max_depth = max_depth;
    s->dfs = dfs;
    s->closure_edges = closure_edges;
    s->merge = merge_releases;
    s->symmetry = symmetry && NPERM > 0;
    s->nworkers = nworkers < 1 ? 1 : nworkers;
    s->first = first;
    s->max_bytes = max_bytes;
    s->dist = dist;
    s->cycle_state = -1;
    for (int k = 0; k < NINV + 1; k++) s->inv_first[k] = -1;
    for (int k = 0; k < NCOV + 1; k++) s->cov_first[k] = -1;
    for (int k = 0; k < 2; k++) s->def_state[k] = s->def_thread[k] = s->def_kind[k] = -1;
    for (int k = 0; k < NOPS + 1; k++) s->done_state[k] = s->done_thread[k] = -1;
    for (int k = 0; k < NC * NC + 1; k++) s->edges[k].seq = -1;
    s->workers[0] = calloc(s->nworkers, sizeof(Ctx));
    s->workers[1] = calloc(s->nworkers, sizeof(Ctx));
    if (!s->workers[0] || !s->workers[1] || !grow_states(s) || !grow_table(s)) { NOMEM(s); return s; }
    for (int p = 0; p < 2; p++)
        for (int k = 0; k < s->nworkers; k++) {
            Ctx *c = &s->workers[p][k];
            c->s = s;
            c->id = k;
            c->merge = merge_releases;
            c->closure_edges = closure_edges;
        }
    return s;
}

Search *ap_new(uint64_t max_states, int64_t max_depth, int dfs, int closure_edges, int merge_releases,
               int symmetry, int nworkers, int first, uint64_t max_bytes) {
    Search *s = search_new(max_states, max_depth, dfs, closure_edges, merge_releases, symmetry, nworkers, first,
                           max_bytes, NULL);
    if (!s || s->error) return s;
    Ctx *c = &s->workers[0][0];
    V w[NW];
    memset(w, 0, sizeof(w));
    init_state(w);
    canon(c, w, s->pk);
    int added = 0;
    int64_t j = find(s, s->pk, hash_words(s->pk), 1, &added);
    if (j < 0) return s;
    s->parent[0] = EMPTY;
    if (!set_depth(s, 0, 0)) return s;
    uint64_t bits = props_of(c, w);
    for (int q = 0; q < NINV; q++) if (bits >> q & 1) s->inv_first[q] = 0;
    for (int q = 0; q < NCOV; q++) if (bits >> (32 + q) & 1) s->cov_first[q] = 0;
    if (c->error) s->error = c->error;
    if (dfs) push(s, 0);
    return s;
}

int ap_error(Search *s) { return s->error; }
int64_t ap_cycle_state(Search *s) { return s->cycle_state; }

/* ---- blocks --------------------------------------------------------------------------------- */

typedef struct { pthread_t t[64]; int started; int nw; } Crew;

/* phase 1 of block [lo, hi) in worker set par: the helper threads start; the caller joins in
 * later (finish_expand) */
static int start_expand(Search *s, int par, uint64_t lo, uint64_t hi, Crew *crew) {
    if (hi - lo > s->logcap[par]) {
        void *l = realloc(s->logs[par], (hi - lo) * sizeof(StateLog));
        if (!l) { NOMEM(s); return 0; }
        s->logs[par] = l;
        s->logcap[par] = hi - lo;
    }
    /* helpers only for a full block: a small frontier costs less alone than a thread's start */
    int nw = hi - lo < BLOCK ? 1 : s->nworkers;
    s->next = lo;
    s->stop = 0;
    for (int k = 0; k < nw; k++) {
        Ctx *c = &s->workers[par][k];
        c->nsucc = c->nev = 0;
        c->lo = lo;
        c->hi = hi;
        c->logs = s->logs[par];
    }
    crew->nw = nw;
    crew->started = 0;
    for (int k = 1; k < nw && k < 64; k++) {
        if (pthread_create(&crew->t[k], NULL, work, &s->workers[par][k]) != 0) break;
        crew->started = k;
    }
    return 1;
}

static int finish_expand(Search *s, int par, Crew *crew) {
    work(&s->workers[par][0]);
    for (int k = 1; k <= crew->started; k++) pthread_join(crew->t[k], NULL);
    for (int k = 0; k < crew->nw; k++)
        if (s->workers[par][k].error) { s->error = s->workers[par][k].error; return 0; }
    return 1;
}

static int found_violation(Search *s) {
    for (int q = 0; q < NINV; q++) if (s->inv_first[q] >= 0) return 1;
    return s->def_state[0] >= 0 || s->def_state[1] >= 0;
}

/* every invariant violated and every cover reached (a search for those only can stop) */
static int all_decided(Search *s) {
    if (NINV + NCOV == 0) return 0;
    for (int q = 0; q < NINV; q++) if (s->inv_first[q] < 0) return 0;
    for (int q = 0; q < NCOV; q++) if (s->cov_first[q] < 0) return 0;
    return 1;
}

/* phase 2 of block [lo, hi) from *at: S_RUNNING, or why it stopped; S_FULL (with *at the state not yet
 * merged) when the next state could make the store grow while workers read it */
static int merge_block(Search *s, int par, uint64_t lo, uint64_t *at, uint64_t hi) {
    for (; *at < hi; ++*at) {
        uint64_t i = *at;
        StateLog *log = &s->logs[par][i - lo];
        if (s->room && !log->skipped && s->n + log->nsucc > s->room) return S_FULL;
        if (!s->dfs) s->cursor = i + 1;
        if (log->skipped) { s->depth_limited = 1; continue; }
        if (!merge(s, i, log, par)) { s->flags[i] &= ~1; return S_ERROR; }  /* partly merged: unexpanded */
        if (s->max_states && s->n >= s->max_states && frontier_left(s)) { ++*at; return S_MAX_STATES; }
        if (s->first == 1 && frontier_left(s) && (found_violation(s) || s->cycle_state >= 0)) { ++*at; return S_FIRST; }
        if (s->first == 2 && frontier_left(s) && all_decided(s)) { ++*at; return S_FIRST; }
    }
    return S_RUNNING;
}

/* room for the layers a block can add, so depth_of may read them while the merge adds states */
static int reserve_layers(Search *s, uint64_t layers) {
    if (s->lcap < s->nlayers + layers) {
        void *l = realloc(s->layer, (s->nlayers + layers) * sizeof(uint64_t));
        if (!l) { NOMEM(s); return 0; }
        s->layer = l;
        s->lcap = s->nlayers + layers;
    }
    return 1;
}

/* the most states the store holds before find() would grow the arena or the table */
static uint64_t room_now(Search *s) {
    uint64_t table = (s->tmask + 1) / 4 * 3;
    return s->cap < table ? s->cap : table;
}

/* expand up to `budget` states; S_RUNNING when there is more to do. With several workers, BFS
 * merges each block while the workers expand the next one (the next block's states all exist
 * before the merge starts, and its lookups of states the merge adds meanwhile may miss them,
 * which the next merge looks up again). The store does not move while they read it: a merge that
 * needs it to grow waits for the expansion to end, then goes on alone. */
int ap_run(Search *s, uint64_t budget) {
    Crew crew;
    while (budget > 0) {
        if (s->error) return S_ERROR;
        if (!s->pending) {
            if (!frontier_left(s)) return S_DONE;
            uint64_t lo, hi;
            if (s->dfs) { lo = s->stack[--s->sp]; hi = lo + 1; }
            else {
                lo = s->cursor;
                hi = s->n;
                if (hi - lo > BLOCK) hi = lo + BLOCK;
            }
            if (!start_expand(s, 0, lo, hi, &crew) || !finish_expand(s, 0, &crew)) return S_ERROR;
            s->pending = 1;
            s->plo = lo;
            s->phi = hi;
            s->ppar = 0;
        }
        int par = s->ppar;
        uint64_t lo = s->plo, hi = s->phi, at = lo;
        uint64_t nlo = hi, nhi = s->n;   /* the next block: states that exist now */
        if (nhi - nlo > BLOCK) nhi = nlo + BLOCK;
        int overlap = !s->dfs && s->nworkers > 1 && nlo < nhi;
        s->pending = 0;
        budget = budget > hi - lo ? budget - (hi - lo) : 0;
        if (overlap) {
            if (!reserve_layers(s, hi - lo + 2)) return S_ERROR;
            s->room = room_now(s);
            if (!start_expand(s, 1 - par, nlo, nhi, &crew)) { s->room = 0; return S_ERROR; }
            int status = merge_block(s, par, lo, &at, hi);
            if (status != S_RUNNING && status != S_FULL) s->stop = 1;
            int ok = finish_expand(s, 1 - par, &crew);
            s->room = 0;
            if (status == S_FULL) status = merge_block(s, par, lo, &at, hi);
            if (status != S_RUNNING) return status;
            if (!ok) return S_ERROR;
            s->pending = 1;
            s->plo = nlo;
            s->phi = nhi;
            s->ppar = 1 - par;
        } else {
            int status = merge_block(s, par, lo, &at, hi);
            if (status != S_RUNNING) return status;
        }
    }
    if (s->error) return S_ERROR;
    return s->pending || frontier_left(s) ? S_RUNNING : S_DONE;
}

/* counters: states, transitions, deepest, frontier, depth-limited, bytes allocated */
void ap_stats(Search *s, uint64_t *out) {
    out[0] = s->n;
    out[1] = s->transitions;
    out[2] = (uint64_t)s->deepest;
    out[3] = s->dfs ? s->sp : s->n - s->cursor;
    out[4] = (uint64_t)s->depth_limited;
    out[5] = allocated(s);
}

void ap_state(Search *s, uint64_t i, V *out) { memset(out, 0, NW * sizeof(V)); unpack(s->arena + i * NP, out); }
int64_t ap_parent(Search *s, uint64_t i) { return s->parent[i] == EMPTY ? -1 : (int64_t)s->parent[i]; }
int64_t ap_depth(Search *s, uint64_t i) { return depth_of(s, i); }
int64_t ap_inv_first(Search *s, int k) { return s->inv_first[k]; }
int64_t ap_cov_first(Search *s, int k) { return s->cov_first[k]; }
void ap_defect(Search *s, int prop, int64_t *out) {
    out[0] = s->def_state[prop]; out[1] = s->def_thread[prop]; out[2] = s->def_kind[prop];
}
/* operation op's first successful return: the state and the thread (-1: none) */
void ap_completion(Search *s, int op, int64_t *out) {
    out[0] = s->done_state[op];
    out[1] = s->done_thread[op];
}

/* the edges in the order found: (class a, class b, site a, site b, origin) each */
int64_t ap_edges(Search *s, int64_t *out) {
    for (int k = 0; k < NC * NC; k++) {
        Edge *e = &s->edges[k];
        if (e->seq < 0) continue;
        int64_t *o = out + 5 * e->seq;
        o[0] = k / NC; o[1] = k % NC; o[2] = e->a_site; o[3] = e->b_site; o[4] = e->origin;
    }
    return s->nedges;
}

/* the canonical form of w, unpacked into out; its index, or -1 if the search did not store it */
int64_t ap_canon(Search *s, const V *w, V *out) {
    uint64_t p[NP];
    canon(&s->workers[0][0], w, p);
    memset(out, 0, NW * sizeof(V));
    unpack(p, out);
    int added = 0;
    return find(s, p, hash_words(p), 0, &added);
}

/* The rest of the fixpoint where the sweeps did not settle: a worklist over the predecessors. */
static int propagate(Search *c, uint64_t *mask) {
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

/* The dead threads of w and the threads that wait, directly or through others, for a lock one of
 * them holds (semantics.py: defect_bound). */
static uint64_t defect_bound(Ctx *c, const V *w) {
    uint64_t out = 0;
    for (int t = 0; t < NT; t++) if (thread_of((V *)w, t)[0] == DEAD) out |= 1ULL << t;
    if (!out) return 0;
    uint64_t waits[NT];
    holders_waited_for(c, w, waits);
    for (int changed = 1; changed;) {
        changed = 0;
        for (int t = 0; t < NT; t++)
            if (!(out >> t & 1) && (waits[t] & out)) { out |= 1ULL << t; changed = 1; }
    }
    return out;
}

/* The stuck-thread analysis runs over parts of the states at once; each part knows where its
 * transitions begin (BFS stores them in state order, so a state's begin where the previous
 * state's end; DFS keeps each state's start). */
typedef struct {
    uint64_t *mask;
    uint64_t tbase[65];     /* the first transition of each part's first state (BFS) */
    int changed[64];
    int64_t first[64];      /* the first stuck state of each part, and its threads */
    uint64_t stuck[64];
    int any_dead;
} Stuck;

static inline uint64_t first_transition(Search *c, uint64_t i, uint64_t end) {
    return c->dfs ? c->tstart[i] : end - c->tcount[i];
}

/* the threads that move in each state of the part (and, after a defect, those it leaves waiting) */
static void movers_part(Search *c, uint64_t lo, uint64_t hi, int k, void *arg) {
    Stuck *x = arg;
    uint64_t full = NT >= 64 ? ~0ULL : ((1ULL << NT) - 1), end = x->tbase[k + 1];
    V w[NW];
    for (uint64_t i = hi; i-- > lo;) {
        uint64_t start = first_transition(c, i, end), m = 0;
        if (!(c->flags[i] & 1)) m = full;
        else {
            for (uint64_t j = start; j < start + c->tcount[i]; j++) m |= 1ULL << c->tmover[j];
            if (x->any_dead) { unpack(c->arena + i * NP, w); m |= defect_bound(&c->workers[0][k], w); }
        }
        x->mask[i] = m;
        end = start;
    }
}

/* one sweep of the part, from its last state to its first: each state takes its successors'
 * masks. Parts read each other's masks while they grow (relaxed atomics): a value read is one the
 * fixpoint has reached, and a round in which no part changed anything read only final values. */
static void sweep_part(Search *c, uint64_t lo, uint64_t hi, int k, void *arg) {
    Stuck *x = arg;
    uint64_t end = x->tbase[k + 1];
    int changed = 0;
    for (uint64_t i = hi; i-- > lo;) {
        uint64_t start = first_transition(c, i, end);
        end = start;
        if (!(c->flags[i] & 1)) continue;
        uint64_t old = __atomic_load_n(&x->mask[i], __ATOMIC_RELAXED), m = old;
        for (uint64_t j = start; j < start + c->tcount[i]; j++) m |= __atomic_load_n(&x->mask[c->tdst[j]], __ATOMIC_RELAXED);
        if (m != old) { __atomic_store_n(&x->mask[i], m, __ATOMIC_RELAXED); changed = 1; }
    }
    x->changed[k] = changed;
}

static void stuck_part(Search *c, uint64_t lo, uint64_t hi, int k, void *arg) {
    Stuck *x = arg;
    V w[NW];
    x->first[k] = -1;
    for (uint64_t i = lo; i < hi; i++) {
        unpack(c->arena + i * NP, w);
        uint64_t busy = 0;
        for (int t = 0; t < NT; t++) if (thread_of(w, t)[0] >= 0) busy |= 1ULL << t;
        uint64_t stuck = busy & ~x->mask[i];
        if (stuck) { x->first[k] = (int64_t)i; x->stuck[k] = stuck; return; }
    }
}

/* The first state (in index order) with a busy thread that can never move again: its index and
 * mask in out[0], out[1] (-1 if none). can_move[i]: the threads that can take a step in i or in
 * a state reachable from it; unexpanded states (limits) count as "every thread can move", so a
 * truncated search never reports a false deadlock; a dead thread and those waiting behind it count
 * as moving (a defect is why they never move again) (engine.py: find_stuck). The masks start as
 * the threads that move in each state; sweeps then run until nothing changes, and where SWEEPS do
 * not settle, a worklist over the predecessors finishes the fixpoint. */
int ap_find_stuck(Search *c, int64_t *out) {
    uint64_t n = c->n;
    Stuck *x = calloc(1, sizeof(Stuck));
    uint64_t *mask = calloc(n ? n : 1, sizeof(uint64_t));
    if (!x || !mask) { free(x); free(mask); c->error = E_NOMEM; return 0; }
    x->mask = mask;
    x->any_dead = c->def_state[0] >= 0 || c->def_state[1] >= 0;   /* else no state has a dead thread */
    int nw = parts_for(c, n);
    if (!c->dfs) {   /* where each part's transitions begin */
        uint64_t t = 0, i = 0;
        for (int k = 0; k < nw; k++) {
            for (uint64_t lo = n * (uint64_t)k / nw; i < lo; i++) t += c->tcount[i];
            x->tbase[k] = t;
        }
        x->tbase[nw] = c->ntrans;
    }
    parallel_for(c, n, nw, movers_part, x);
    int changed = 1;
    for (int round = 0; changed && round < SWEEPS; round++) {
        parallel_for(c, n, nw, sweep_part, x);
        changed = 0;
        for (int k = 0; k < nw; k++) changed |= x->changed[k];
    }
    if (changed && !propagate(c, mask)) { free(mask); free(x); return 0; }
    free(c->can_move);
    c->can_move = mask;
    parallel_for(c, n, nw, stuck_part, x);
    out[0] = -1; out[1] = 0;
    for (int k = 0; k < nw; k++)
        if (x->first[k] >= 0) { out[0] = x->first[k]; out[1] = (int64_t)x->stuck[k]; break; }
    free(x);
    return 1;
}

/* coverage, summed over the workers: per instruction the times executed, then per operation the
 * returns, then the successful returns (NCODE + 2 * NOPS values) */
void ap_coverage(Search *s, uint64_t *out) {
    memset(out, 0, (NCODE + 2 * NOPS) * sizeof(uint64_t));
    for (int p = 0; p < 2; p++)
        for (int k = 0; s->workers[p] && k < s->nworkers; k++) {
            Ctx *c = &s->workers[p][k];
            for (int i = 0; i < NCODE; i++) out[i] += c->executed[i];
            for (int i = 0; i < NOPS; i++) { out[NCODE + i] += c->returned[i]; out[NCODE + NOPS + i] += c->succeeded[i]; }
        }
}

uint64_t ap_can_move(Search *c, uint64_t i) { return c->can_move ? c->can_move[i] : ~0ULL; }

void ap_free(Search *c) {
    if (!c) return;
    free(c->arena); free(c->table); free(c->parent); free(c->depth); free(c->flags); free(c->tstart);
    free(c->tcount); free(c->tdst); free(c->tmover); free(c->stack); free(c->can_move); free(c->layer);
    for (int p = 0; p < 2; p++) {
        free(c->logs[p]);
        for (int k = 0; c->workers[p] && k < c->nworkers; k++) {
            free(c->workers[p][k].succ); free(c->workers[p][k].pk); free(c->workers[p][k].ev);
        }
        free(c->workers[p]);
    }
    dist_free(c->dist);
    free(c);
}

#include "partition.c"

