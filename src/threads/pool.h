/* pool.h — the thread pool for row ranges of matrix-vector work.
 *
 * pool_run(p, fn, ctx) calls fn(ctx, i, n) once for each thread index i in
 * [0, n) — the caller runs index 0, and any index no worker has started by
 * then — and returns when all are done. An index is a share of the work,
 * not an OS thread: two indices never run at once on one thread, but a
 * thread may run several, one after another. Work is
 * split by the callee from (i, n), so the same rows always land in the same
 * place in the output and results do not depend on the thread count.
 * Workers spin briefly between jobs (decode issues many small jobs) and then
 * sleep. Nothing here blocks on I/O and nothing allocates per job.
 *
 * One job at a time: a pool serves one calling thread (a session's), never
 * two at once.
 */
#ifndef MF_POOL_H
#define MF_POOL_H

#include <stddef.h>

typedef struct mf_pool mf_pool;
typedef void (*pool_fn)(void *ctx, int ith, int nth);

mf_pool *pool_new(int n_threads);   /* n_threads <= 0: number of cores */
void pool_free(mf_pool *p);
int pool_threads(const mf_pool *p);
void pool_run(mf_pool *p, pool_fn fn, void *ctx);

/* The input a job shares among its threads (ops.c: a matvec's quantized
 * activations): a 64-byte aligned buffer of *bytes bytes (POOL_SCRATCH_BYTES)
 * allocated with the pool. The thread that calls pool_run fills it before
 * the call; workers only read it. NULL (and *bytes 0) for a NULL pool. */
#define POOL_SCRATCH_BYTES ((size_t)1 << 20)
void *pool_scratch(mf_pool *p, size_t *bytes);

/* The [*lo, *hi) share of n items for thread ith of nth, in blocks of
 * `align` items (the last share takes the remainder). */
void pool_split(size_t n, size_t align, int ith, int nth, size_t *lo, size_t *hi);

int pool_cpu_count(void);

#endif
