/* replay.h — routing traces (../shared/traces, format in its README)
 * replayed through the store: as a pure simulation (no I/O, the store's
 * own bookkeeping and policy), through the real store and I/O path against
 * a scratch model on disk, and through Belady's offline-optimal policy,
 * the bound every policy is measured against. `moeflash replay` prints
 * what these return. */
#ifndef MF_STORE_REPLAY_H
#define MF_STORE_REPLAY_H

#include "moeflash.h"
#include "store/store.h"

#include <stdbool.h>
#include <stdint.h>

/* One step is one (token, layer) lookup of up to K experts, in the order
 * the recording engine ran them. */
typedef struct replay_trace {
    char model[160], arch[48];
    uint32_t n_layer, n_expert, n_used;
    uint64_t max_expert_bytes;   /* the largest `expert_bytes` in the header (0: none) */
    uint32_t n_steps, n_ids, max_k;
    uint32_t *start;             /* n_steps + 1: step s has ids[start[s] .. start[s + 1]) */
    int32_t *layer;              /* per step */
    uint8_t *decode;             /* per step: 1 in the decode phase */
    int32_t *ids;
} replay_trace;

typedef struct replay_result {
    uint64_t hits, misses;           /* every lookup */
    uint64_t decode_hits, decode_misses;
    uint64_t bytes_read, reads;
    double seconds, io_wait_s;
} replay_result;

/* Reads a trace; errors name the file, line and field. */
int replay_trace_load(const char *path, replay_trace *t, mf_error *e);
void replay_trace_free(replay_trace *t);

/* The trace through a simulated store of n_slots slots under policy (the
 * store's own code, misses cost expert_bytes and no time). */
int replay_sim(const replay_trace *t, const char *policy, const char *hot_set, uint32_t n_slots,
               uint64_t expert_bytes, replay_result *r, mf_error *e);
/* Belady's MIN with the store's rules (a step's experts are pinned
 * together): on a miss evict the expert used again farthest in the future. */
int replay_belady(const replay_trace *t, uint32_t n_slots, replay_result *r, mf_error *e);

/* A GGUF at path whose layers hold n_expert routed experts of about
 * expert_bytes each (three roles), filled with bytes, written once and
 * reused when it exists with the same shape. */
int replay_scratch_model(const char *path, const replay_trace *t, uint64_t expert_bytes, mf_error *e);
/* The trace through a real store opened on the scratch model at path with
 * p (I/O backend, threads, cache, policy); the file is dropped from the
 * page cache first so reads reach the disk (pread can still be served by
 * the cache when the machine has room). */
int replay_io(const replay_trace *t, const char *path, const store_params *p, replay_result *r, mf_error *e);

#endif
