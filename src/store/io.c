/* io.c — pread/direct reader threads, the io_uring backend, fault injection.
 *
 * Reader threads take requests from the current batch by an atomic index,
 * so K experts x 3 extents spread over the threads with no queue to lock;
 * the caller waits on a counter of outstanding requests. The caller also
 * reads (it would only wait otherwise), so --io-threads 1 is plain pread.
 */
#include "store/io.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef MF_HAVE_URING
#include <liburing.h>
#endif

struct io_backend {
    io_kind kind;
    int n_threads;
    pthread_t *th;
    pthread_mutex_t mu;
    pthread_cond_t go, done;
    io_req *batch;
    int n_batch;
    atomic_int next;        /* next request to take */
    int active;             /* workers inside the current batch */
    unsigned gen;
    bool stop;
    /* fault injection */
    atomic_uint_fast64_t reads;
    uint64_t fault_at;
    io_fault_kind fault;
#ifdef MF_HAVE_URING
    struct io_uring ring;
    bool ring_ok;
#endif
};

const char *io_kind_name(io_kind k)
{
    return k == IO_DIRECT ? "direct" : k == IO_URING ? "uring" : "pread";
}

void io_inject_fault(io_backend *b, uint64_t nth, io_fault_kind kind)
{
    b->fault_at = atomic_load(&b->reads) + nth;
    b->fault = kind;
}

/* Returns the fault to apply to this read (counted once per request). */
static io_fault_kind take_fault(io_backend *b)
{
    uint64_t k = atomic_fetch_add(&b->reads, 1) + 1;
    return b->fault != IO_FAULT_NONE && k == b->fault_at ? b->fault : IO_FAULT_NONE;
}

static void do_pread(io_backend *b, io_req *r)
{
    io_fault_kind f = take_fault(b);
    if (f == IO_FAULT_EIO) { r->err = EIO; return; }
    if (f == IO_FAULT_ENOMEM) { r->err = ENOMEM; return; }
    r->got = 0;
    while (r->got < r->len) {
        ssize_t n = pread(r->fd, (char *)r->dst + r->got, r->len - r->got, (off_t)(r->off + r->got));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) { r->err = errno; return; }
        if (n == 0) break;
        r->got += (uint64_t)n;
    }
    if (f == IO_FAULT_SHORT) r->got = r->need / 2; /* as if the file ended there */
    r->err = r->got >= r->need ? 0 : -1;
}

static void run_share(io_backend *b)
{
    for (;;) {
        int i = atomic_fetch_add(&b->next, 1);
        if (i >= b->n_batch) return;
        do_pread(b, &b->batch[i]);
    }
}

static void *worker(void *arg)
{
    io_backend *b = arg;
    unsigned seen = 0;
    pthread_mutex_lock(&b->mu);
    for (;;) {
        while (!b->stop && b->gen == seen) pthread_cond_wait(&b->go, &b->mu);
        if (b->stop) break;
        seen = b->gen;
        b->active++;
        pthread_mutex_unlock(&b->mu);
        run_share(b);
        pthread_mutex_lock(&b->mu);
        if (--b->active == 0) pthread_cond_broadcast(&b->done);
    }
    pthread_mutex_unlock(&b->mu);
    return NULL;
}

io_backend *io_open(io_kind kind, int n_threads, const char **why)
{
    io_backend *b = calloc(1, sizeof *b);
    if (!b) { *why = "out of memory"; return NULL; }
    b->kind = kind;
    if (n_threads < 1) n_threads = kind == IO_URING ? 32 : 4;
    b->n_threads = n_threads;
    pthread_mutex_init(&b->mu, NULL);
    pthread_cond_init(&b->go, NULL);
    pthread_cond_init(&b->done, NULL);
    if (kind == IO_URING) {
#ifdef MF_HAVE_URING
        unsigned depth = (unsigned)(n_threads < 8 ? 8 : n_threads > 4096 ? 4096 : n_threads);
        int rc = io_uring_queue_init(depth, &b->ring, 0);
        if (rc < 0) {
            *why = "io_uring_queue_init failed (kernel without io_uring, or it is disabled)";
            free(b);
            return NULL;
        }
        b->ring_ok = true;
        return b;
#else
        *why = "this build has no io_uring (liburing-dev was not installed)";
        free(b);
        return NULL;
#endif
    }
    /* the caller is one reader; n_threads - 1 more */
    b->th = calloc((size_t)n_threads, sizeof *b->th);
    if (!b->th) { *why = "out of memory"; free(b); return NULL; }
    for (int i = 1; i < n_threads; i++)
        if (pthread_create(&b->th[i], NULL, worker, b) != 0) { b->n_threads = i; break; }
    return b;
}

void io_close(io_backend *b)
{
    if (!b) return;
    pthread_mutex_lock(&b->mu);
    b->stop = true;
    pthread_cond_broadcast(&b->go);
    pthread_mutex_unlock(&b->mu);
    if (b->th)
        for (int i = 1; i < b->n_threads; i++) pthread_join(b->th[i], NULL);
#ifdef MF_HAVE_URING
    if (b->ring_ok) io_uring_queue_exit(&b->ring);
#endif
    pthread_mutex_destroy(&b->mu);
    pthread_cond_destroy(&b->go);
    pthread_cond_destroy(&b->done);
    free(b->th);
    free(b);
}

#ifdef MF_HAVE_URING
static int uring_batch(io_backend *b, io_req *r, int n)
{
    struct io_uring *ring = &b->ring;
    int pending = 0, next = 0, failed = 0;
    for (int i = 0; i < n; i++) r[i].got = 0, r[i].err = 0;
    while (next < n || pending) {
        /* fill the ring */
        while (next < n) {
            struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
            if (!sqe) break;
            io_req *q = &r[next];
            io_fault_kind f = take_fault(b);
            if (f == IO_FAULT_EIO || f == IO_FAULT_ENOMEM) {
                q->err = f == IO_FAULT_EIO ? EIO : ENOMEM;
                failed = 1;
                io_uring_prep_nop(sqe);
                io_uring_sqe_set_data(sqe, NULL);
            } else {
                if (f == IO_FAULT_SHORT) { /* as if the file ended half way */
                    q->err = -1;
                    q->got = q->need / 2;
                    failed = 1;
                    io_uring_prep_nop(sqe);
                    io_uring_sqe_set_data(sqe, NULL);
                } else {
                    io_uring_prep_read(sqe, q->fd, q->dst, (unsigned)q->len, q->off);
                    io_uring_sqe_set_data(sqe, q);
                }
            }
            next++;
            pending++;
        }
        int rc = io_uring_submit_and_wait(ring, 1);
        if (rc < 0 && rc != -EINTR) {
            for (int i = 0; i < n; i++) if (!r[i].err && r[i].got < r[i].need) r[i].err = -rc;
            return -1;
        }
        struct io_uring_cqe *cqe;
        unsigned head, seen = 0;
        io_uring_for_each_cqe(ring, head, cqe) {
            seen++;
            pending--;
            io_req *q = io_uring_cqe_get_data(cqe);
            if (!q) continue;
            if (cqe->res < 0) { q->err = -cqe->res; failed = 1; continue; }
            q->got += (uint64_t)cqe->res;
            if (cqe->res > 0 && q->got < q->len) {
                /* short read: ask for the rest */
                struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
                if (sqe) {
                    io_uring_prep_read(sqe, q->fd, (char *)q->dst + q->got, (unsigned)(q->len - q->got), q->off + q->got);
                    io_uring_sqe_set_data(sqe, q);
                    pending++;
                    continue;
                }
            }
            if (q->got < q->need) { q->err = -1; failed = 1; }
        }
        io_uring_cq_advance(ring, seen);
    }
    return failed ? -1 : 0;
}
#endif

int io_read_batch(io_backend *b, io_req *r, int n)
{
    if (n <= 0) return 0;
#ifdef MF_HAVE_URING
    if (b->kind == IO_URING) return uring_batch(b, r, n);
#endif
    for (int i = 0; i < n; i++) r[i].err = 0, r[i].got = 0;
    if (b->n_threads <= 1 || n == 1) {
        for (int i = 0; i < n; i++) do_pread(b, &r[i]);
    } else {
        pthread_mutex_lock(&b->mu);
        b->batch = r;
        b->n_batch = n;
        atomic_store(&b->next, 0);
        b->gen++;
        pthread_cond_broadcast(&b->go);
        pthread_mutex_unlock(&b->mu);
        run_share(b);
        pthread_mutex_lock(&b->mu);
        /* workers that woke late find no request left and leave at once */
        while (b->active > 0) pthread_cond_wait(&b->done, &b->mu);
        b->batch = NULL;
        b->n_batch = 0;
        pthread_mutex_unlock(&b->mu);
    }
    for (int i = 0; i < n; i++)
        if (r[i].err) return -1;
    return 0;
}
