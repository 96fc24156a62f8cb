/* pool.c — a fork-join pool: one job at a time, published through a
 * generation counter. Workers spin on the counter for a short while after
 * each job (the next matvec of a decode step follows within microseconds)
 * and then sleep on a condition variable, so an idle engine uses no CPU.
 * The thread indices of a job are claimed, not assigned: the caller runs
 * index 0 and then claims whatever indices no worker has started, so a
 * worker the OS has not scheduled yet (a shared machine, a busy core)
 * never keeps the caller spinning; a claim carries the job's generation,
 * so a late worker cannot take an index of the next job.
 * The counters the caller writes and the one the workers write sit on
 * cache lines of their own, so a spinning worker does not slow the
 * caller's stores (or the other way round). The scratch buffer is
 * allocated here, once, so a matvec never allocates. */
#include "threads/pool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Pauses a worker spins for the next job before it sleeps (~0.5 ms), and
 * the caller for the last worker before it yields its core. With more
 * threads than cores spinning only steals the core from the thread that
 * has the work: then both give up almost at once. */
#define POOL_SPIN 20000
#define POOL_SPIN_OVERSUBSCRIBED 64

struct mf_pool {
    int n;
    pthread_t *th;
    pthread_mutex_t mu;
    pthread_cond_t wake;
    void *scratch;
    int spin;               /* POOL_SPIN, or less when oversubscribed */
    /* written by the caller once per job */
    _Alignas(64) atomic_uint gen;   /* bumped once per job */
    atomic_int sleepers;
    atomic_bool stop;
    pool_fn fn;
    void *ctx;
    /* written by every thread */
    _Alignas(64) atomic_uint_fast64_t claim; /* generation << 32 | next index to run */
    _Alignas(64) atomic_int pending; /* indices 1..n-1 not finished yet */
};

/* Runs the indices of job generation g that nobody has claimed yet. */
static void run_claims(mf_pool *p, unsigned g, pool_fn fn, void *ctx)
{
    uint_fast64_t c = atomic_load_explicit(&p->claim, memory_order_acquire);
    for (;;) {
        if ((unsigned)(c >> 32) != g || (int)(uint32_t)c >= p->n) return;
        if (!atomic_compare_exchange_weak_explicit(&p->claim, &c, c + 1, memory_order_acq_rel, memory_order_acquire))
            continue;
        fn(ctx, (int)(uint32_t)c, p->n);
        atomic_fetch_sub_explicit(&p->pending, 1, memory_order_release);
        c = atomic_load_explicit(&p->claim, memory_order_acquire);
    }
}

typedef struct { mf_pool *p; } worker_arg;

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield");
#endif
}

static void *worker(void *arg)
{
    worker_arg *wa = arg;
    mf_pool *p = wa->p;
    free(wa);
    unsigned seen = 0;
    for (;;) {
        unsigned g;
        int spins = 0;
        while ((g = atomic_load_explicit(&p->gen, memory_order_acquire)) == seen && !atomic_load(&p->stop)) {
            if (++spins < p->spin) {
                /* let a runnable thread have the core now and then: the
                 * caller, when the machine has more threads than cores */
                if (spins % 256 == 0) sched_yield();
                else cpu_relax();
                continue;
            }
            pthread_mutex_lock(&p->mu);
            atomic_fetch_add(&p->sleepers, 1);
            while (atomic_load(&p->gen) == seen && !atomic_load(&p->stop)) pthread_cond_wait(&p->wake, &p->mu);
            atomic_fetch_sub(&p->sleepers, 1);
            pthread_mutex_unlock(&p->mu);
            spins = 0;
        }
        if (atomic_load(&p->stop)) return NULL;
        seen = g;
        /* fn and ctx are this job's while one of its indices is unclaimed
         * or running: the caller cannot publish the next job before */
        run_claims(p, g, p->fn, p->ctx);
    }
}

int pool_cpu_count(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

mf_pool *pool_new(int n_threads)
{
    if (n_threads <= 0) n_threads = pool_cpu_count();
    if (n_threads > 256) n_threads = 256;
    mf_pool *p = aligned_alloc(64, sizeof *p);
    if (!p) return NULL;
    memset(p, 0, sizeof *p);
    p->scratch = aligned_alloc(64, POOL_SCRATCH_BYTES);
    if (!p->scratch) { free(p); return NULL; }
    p->n = n_threads;
    p->spin = n_threads > pool_cpu_count() ? POOL_SPIN_OVERSUBSCRIBED : POOL_SPIN;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    p->th = calloc((size_t)n_threads, sizeof *p->th);
    if (!p->th) { free(p->scratch); free(p); return NULL; }
    for (int i = 1; i < n_threads; i++) {
        worker_arg *wa = malloc(sizeof *wa);
        if (!wa) { p->n = i; break; }
        wa->p = p;
        if (pthread_create(&p->th[i], NULL, worker, wa) != 0) { free(wa); p->n = i; break; }
    }
    return p;
}

void pool_free(mf_pool *p)
{
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->stop, true);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->n; i++) pthread_join(p->th[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->wake);
    free(p->th);
    free(p->scratch);
    free(p);
}

void *pool_scratch(mf_pool *p, size_t *bytes)
{
    *bytes = p ? POOL_SCRATCH_BYTES : 0;
    return p ? p->scratch : NULL;
}

int pool_threads(const mf_pool *p) { return p ? p->n : 1; }

void pool_run(mf_pool *p, pool_fn fn, void *ctx)
{
    if (!p || p->n == 1) { fn(ctx, 0, 1); return; }
    p->fn = fn;
    p->ctx = ctx;
    const unsigned g = atomic_load_explicit(&p->gen, memory_order_relaxed) + 1;
    atomic_store(&p->pending, p->n - 1);
    atomic_store(&p->claim, (uint_fast64_t)g << 32 | 1u);
    atomic_fetch_add(&p->gen, 1); /* seq_cst: pairs with the sleepers count */
    if (atomic_load(&p->sleepers) > 0) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->wake);
        pthread_mutex_unlock(&p->mu);
    }
    fn(ctx, 0, p->n);
    run_claims(p, g, fn, ctx);
    for (int spins = 0; atomic_load_explicit(&p->pending, memory_order_acquire) > 0; spins++) {
        if (spins < p->spin) cpu_relax();
        else sched_yield();
    }
}

void pool_split(size_t n, size_t align, int ith, int nth, size_t *lo, size_t *hi)
{
    if (align == 0) align = 1;
    size_t blocks = (n + align - 1) / align;
    size_t b0 = blocks * (size_t)ith / (size_t)nth, b1 = blocks * (size_t)(ith + 1) / (size_t)nth;
    *lo = b0 * align < n ? b0 * align : n;
    *hi = b1 * align < n ? b1 * align : n;
}
