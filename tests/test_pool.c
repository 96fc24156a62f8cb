/* test_pool.c — every index of every job runs exactly once, whichever
 * thread claims it, also when there are more threads than cores (workers
 * scheduled late) and jobs follow each other at once. */
#include "t.h"
#include "threads/pool.h"

#include <stdatomic.h>
#include <string.h>

typedef struct count_job {
    atomic_int runs[16];
    atomic_int bad;
    int nth;
    unsigned spin;
    atomic_uint sink;
} count_job;

static void count_task(void *ctx, int ith, int nth)
{
    count_job *j = ctx;
    if (nth != j->nth || ith < 0 || ith >= nth) atomic_fetch_add(&j->bad, 1);
    else atomic_fetch_add(&j->runs[ith], 1);
    unsigned x = 0;
    for (unsigned i = 0; i < j->spin * (unsigned)(ith + 1); i++) x = x * 31 + i;
    atomic_fetch_add(&j->sink, x); /* the loop's work is not optimized away */
}

TEST(pool_runs_every_index_once)
{
    static const int threads[] = { 1, 2, 3, 8 };
    for (size_t k = 0; k < sizeof threads / sizeof threads[0]; k++) {
        mf_pool *p = pool_new(threads[k]);
        REQUIRE(p);
        const int n = pool_threads(p);
        CHECK(n == threads[k]);
        for (int job = 0; job < 20000; job++) {
            count_job j;
            memset(&j, 0, sizeof j);
            j.nth = n;
            j.spin = (unsigned)(job % 7) * 50;
            pool_run(p, count_task, &j);
            for (int i = 0; i < n; i++)
                if (atomic_load(&j.runs[i]) != 1) {
                    CHECKF(0, "%d threads, job %d: index %d ran %d times", n, job, i, atomic_load(&j.runs[i]));
                    job = 1 << 30;
                    break;
                }
            CHECK(atomic_load(&j.bad) == 0);
        }
        pool_free(p);
    }
}
