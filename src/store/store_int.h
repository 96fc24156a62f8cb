/* store_int.h — the store's private state, shared by store.c (index,
 * slots, open/close, stats) and store_fetch.c (acquire, release,
 * prefetch). Nothing outside src/store includes it. */
#ifndef MF_STORE_INT_H
#define MF_STORE_INT_H

#include "store/store.h"
#include "store/io.h"
#include "store/policy.h"

#define STORE_ALIGN 4096ull
#define ALIGN_UP(x) (((x) + STORE_ALIGN - 1) / STORE_ALIGN * STORE_ALIGN)

/* A slot holds (or is being filled with) one expert. While reads are in
 * flight (`loading`) its memory belongs to the I/O backend; `prefetched`
 * marks a fill a prefetch made that its layer has not settled yet. Both
 * make the slot unavailable as a victim, like the running layer's pins. */
typedef struct slot {
    uint8_t *mem;
    int32_t layer, id;        /* -1: empty */
    int32_t pins;
    uint8_t loading;          /* reads in flight */
    uint8_t prefetched;       /* a prefetch fill, not settled by its layer */
    uint8_t pf_fill;          /* the fill in flight (or last) was a prefetch */
    uint8_t failed;           /* the last fill failed (its bytes are not whole) */
    uint8_t nreq;
    io_req *req;              /* STORE_ROLE_COUNT of them, this slot's own */
    store_expert view;
} slot;

struct store {
    const gguf_file *f;
    uint32_t n_layer, n_expert, min_slots;
    store_tensor *roles;      /* n_layer x STORE_ROLE_COUNT */
    int *fds;                 /* one per file part (O_DIRECT for direct) */
    io_kind io;
    io_backend *backend;
    store_policy *policy;
    char *hot_set;
    uint64_t slot_bytes;
    uint32_t n_slots;
    slot *slots;
    io_req *reqs;             /* n_slots x STORE_ROLE_COUNT, owned by the slots */
    uint8_t *arena;
    int32_t *where;           /* (layer, expert) -> slot or -1 */
    uint64_t *uses;           /* (layer, expert) -> times acquired */
    bool sim;                 /* no files: misses cost nothing */
    uint64_t sim_bytes;       /* bytes a simulated miss counts */
    bool prefetch_on;
    bool plan_on;             /* room for a batch's next wave (two waves of K) */
    /* bookkeeping, all sized at open */
    int32_t *loading;         /* slots with reads in flight */
    uint32_t n_loading;
    int32_t *pf;              /* slots with an unsettled prefetch */
    uint32_t n_pf;
    int32_t *wait_slot;       /* acquire: slots it waits for (max min_slots) */
    io_req **batch;           /* reads to submit or wait for (n_slots x roles) */
    int32_t *guess;           /* the last prefetch guess (n_expert) */
    int32_t *guard;           /* prefetch: slots of the guess it pinned (n_expert) */
    int guess_layer, guess_n, guess_k;
    bool guess_planned;       /* the guess is a batch's next wave, not a prediction */
    store_stats st;
};

/* store.c */
bool store_slot_busy(void *ctx, uint32_t i);
void store_unmap(store *s, slot *sl);

/* store_fetch.c */
void store_reap(store *s);

#endif
