/* apcheck native explorer core: types and helpers shared by the generated model code and the
 * search (core.c). The generated file defines the model's dimensions (NW, NP, NT, NC, NI, NINV,
 * NCOV, NPERM, MAXH, NCODE) and the shared codes, includes this header, defines the model
 * functions, then includes core.c. Semantics mirror apcheck/explore/semantics.py exactly; see ARCHITECTURE.md. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>

typedef int64_t V;  /* one value of the wide (unpacked) state */

/* The defect kinds (D_*), the errors that stop the search (E_*) and the status of ap_run (S_*)
 * are enums the generated file defines before this header, from native/codegen.py's tables. */

#define IDLE (-1)
#define DEAD (-2)   /* a thread a defect ended: it keeps its locks forever (semantics.py) */
#define MAX_LOOP_ROUNDS (1 << 17)
#define EXCL 0
#define READ 1

typedef struct {
    int32_t a_site, b_site;
    int64_t origin;
    int64_t seq;  /* order in which the edges were first found; -1 unset */
} Edge;

typedef struct Search Search;

/* What one worker found expanding one state: its successors and events, merged in state order. */
typedef struct {
    uint64_t succ, nsucc;   /* range in the worker's successor log */
    uint64_t ev, nev;       /* range in the worker's event log */
    uint64_t defects;       /* steps that hit a defect (transitions too) */
    int worker;
    int skipped;            /* at the depth limit: not expanded */
} StateLog;

typedef struct {            /* a successor: packed state in the worker's pk log at the same index */
    uint64_t hash;
    int64_t found;          /* its index if the table had it during the expansion, else -1 */
    uint64_t props;         /* where not found: bit k invariant k judged violated, bit 32 + k cover k, bit 63
                             * a wait-for cycle (--first) */
    int mover;
} Succ;

typedef struct {            /* a defect (kind, thread) or a lock-order edge (a, b, site a, site b) */
    int32_t type, a, b, c, d;
} Event;

/* One worker: the model code's context (`Ctx *c` in the generated code). */
typedef struct {
    Search *s;
    int error;
    int merge, closure_edges;
    int64_t cur;            /* the state being expanded */
    uint64_t defects;
    Succ *succ; uint64_t *pk; uint64_t nsucc, scap;
    Event *ev; uint64_t nev, ecap;
    V tmp[NW];
    uint64_t pk2[NP];
    /* the block being expanded (phase 1) */
    uint64_t lo, hi;
    StateLog *logs;         /* the block's state logs (indexed from lo) */
    int id;
    /* coverage (semantics.py: executed, returned, succeeded), summed over the workers */
    uint64_t executed[NCODE], returned[NOPS], succeeded[NOPS];
    char pad[128];          /* no cache line shared with the next worker */
} Ctx;

struct Search {
    /* configuration */
    uint64_t max_states;   /* 0: none */
    int64_t max_depth;     /* -1: none */
    int dfs;
    int closure_edges;
    int merge;             /* private releases merged (reduction) */
    int symmetry;
    int nworkers;
    int first;             /* 1: stop after the expansion that finds the first violation (--first);
                              2: after the one that decides every invariant and cover */
    uint64_t max_bytes;    /* what the store may allocate (0: no limit); beyond, E_LIMIT */
    /* the state store */
    uint64_t *arena;       /* NP words per state */
    uint64_t n, cap;
    uint64_t *table;       /* open addressing: hash tag << 32 | index; all ones empty */
    uint64_t tmask;
    uint32_t *parent, *depth;   /* depth: DFS only */
    uint64_t *layer;            /* BFS: the first state of each depth */
    uint64_t nlayers, lcap;
    uint8_t *flags;        /* bit 0 expanded, bit 1 hit a defect */
    /* transitions, grouped by source */
    uint64_t *tstart;      /* DFS only (BFS stores them in state order) */
    uint32_t *tcount;
    uint32_t *tdst;
    uint8_t *tmover;
    uint64_t ntrans, tcap;
    /* the frontier: BFS a cursor over indices, DFS a stack */
    uint64_t cursor;
    uint32_t *stack;
    uint64_t sp, scap;
    /* blocks: two sets of logs and workers, so one block is merged while the next is expanded */
    StateLog *logs[2];
    uint64_t logcap[2];
    uint64_t next;         /* the next state of the block a worker takes (atomic) */
    int stop;              /* the workers stop early (the merge hit a limit) */
    Ctx *workers[2];
    uint64_t room;         /* while workers read the store: the most states it holds without
                              growing (0: no reader, it grows as needed) */
    int pending;           /* a block expanded and not merged: [plo, phi) in set ppar */
    uint64_t plo, phi;
    int ppar;
    /* results */
    uint64_t transitions;
    int64_t deepest;
    int depth_limited;
    int64_t inv_first[NINV + 1], cov_first[NCOV + 1];
    int64_t def_state[2], def_thread[2], def_kind[2];
    int64_t cycle_state;   /* the first state with a wait-for cycle (--first); -1 none */
    int64_t done_state[NOPS + 1], done_thread[NOPS + 1];   /* each operation's first successful return:
                                                              the state it returned from, its thread */
    Edge edges[NC * NC + 1];
    int64_t nedges;
    uint64_t *can_move;    /* after ap_find_stuck */
    int error;
    uint64_t pk[NP];       /* the initial state, packed (ap_new) */
    struct Dist *dist;     /* a partition of the distributed search (partition.c); NULL otherwise */
};

#define TW (2 + NLOC + 2 * MAXH)   /* a thread in the wide state: pc, nheld, locals, held pairs */

/* who holds a lock word, as seen by thread t wanting it in `mode` (semantics.py: _holder) */
enum { FREE = 0, MINE = 1, OTHER = 2 };
static inline int holder(V v, int t, int mode) {
    if (v == t + 1 || (v < 0 && ((-v) >> t) & 1)) return MINE;
    if (v > 0 || (v < 0 && mode != READ)) return OTHER;
    return FREE;
}

static void emit(Ctx *c, V *w, int t);
static void defect(Ctx *c, V *w, int t, int kind);
static void completed(Ctx *c, int op, int t);
static inline uint64_t held_classes(const V *th);
static inline int holds_instance(const V *th, V inst);
static inline int holds_all(const V *th, int base, int count);
static int do_acquire(Ctx *c, V *w, int t, int pc, V inst, int mode, int blocking);
static int do_release(Ctx *c, V *w, int t, V inst);
/* a partition's per-state columns and buffers (partition.c) */
static int dist_grow(Search *s, uint64_t cap);
static uint64_t dist_bytes(const Search *s);
static void dist_free(struct Dist *d);
