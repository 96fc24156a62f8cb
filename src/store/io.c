/* io.c — the read queue, the pread/direct reader threads, the io_uring
 * backend and fault injection.
 *
 * One idea: two intrusive FIFO lists (demand, prefetch) under one mutex.
 * A reader thread always takes the head of the demand list before it looks
 * at the prefetch list, so a demand read waits at most for the reads
 * already running, never for queued prefetches; cancelling or promoting a
 * queued read is an unlink. Completion is a per-request state stored with
 * release order after the bytes have landed, so the store may read the
 * slot as soon as it sees IO_DONE. Nothing here allocates after io_open.
 */
#include "store/io.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef MF_HAVE_URING
#include <liburing.h>
#include <poll.h>
#include <sys/eventfd.h>
#endif

typedef struct io_list { io_req *head, *tail; } io_list;

struct io_backend {
    io_kind kind;
    int n_threads;
    pthread_t *th;
    pthread_mutex_t mu;
    pthread_cond_t work, done;
    io_list q[2];           /* by io_prio */
    int running;            /* reads taken by threads and not yet done */
    bool stop, hold;
    uint64_t submitted[2];  /* by the class a read was submitted as */
    uint64_t fault_at[2];
    io_fault_kind fault[2];
#ifdef MF_HAVE_URING
    struct io_uring ring;
    bool ring_ok, armed, waiting;
    int efd;
    unsigned depth, pf_cap;
    unsigned inflight[2];
    pthread_t ring_th;
    bool ring_th_ok;
#endif
};

const char *io_kind_name(io_kind k)
{
    return k == IO_DIRECT ? "direct" : k == IO_URING ? "uring" : "pread";
}

void io_inject_fault(io_backend *b, uint64_t nth, int kind)
{
    int c = kind & IO_FAULT_PREFETCH ? IO_PREFETCH : IO_DEMAND;
    pthread_mutex_lock(&b->mu);
    b->fault_at[c] = b->submitted[c] + nth;
    b->fault[c] = (io_fault_kind)(kind & 0xff);
    pthread_mutex_unlock(&b->mu);
}

/* ---- the two lists (callers hold mu) ---- */

static void list_push(io_list *l, io_req *r)
{
    r->next = NULL;
    r->prev = l->tail;
    if (l->tail) l->tail->next = r;
    else l->head = r;
    l->tail = r;
}

static void list_unlink(io_list *l, io_req *r)
{
    if (r->prev) r->prev->next = r->next;
    else l->head = r->next;
    if (r->next) r->next->prev = r->prev;
    else l->tail = r->prev;
    r->prev = r->next = NULL;
}

static io_req *take(io_backend *b, bool demand_only)
{
    io_list *l = b->q[IO_DEMAND].head ? &b->q[IO_DEMAND] : demand_only ? NULL : &b->q[IO_PREFETCH];
    if (!l || !l->head) return NULL;
    io_req *r = l->head;
    list_unlink(l, r);
    atomic_store_explicit(&r->state, IO_RUNNING, memory_order_relaxed);
    return r;
}

/* ---- reading ---- */

static void do_pread(io_req *r)
{
    r->got = 0;
    r->err = 0;
    if (r->fault == IO_FAULT_EIO) { r->err = EIO; return; }
    if (r->fault == IO_FAULT_ENOMEM) { r->err = ENOMEM; return; }
    while (r->got < r->len) {
        ssize_t n = pread(r->fd, (char *)r->dst + r->got, r->len - r->got, (off_t)(r->off + r->got));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) { r->err = errno; return; }
        if (n == 0) break;
        r->got += (uint64_t)n;
    }
    if (r->fault == IO_FAULT_SHORT) r->got = r->need / 2; /* as if the file ended there */
    r->err = r->got >= r->need ? 0 : -1;
}

/* Runs r outside the lock (mu held on entry and on return). */
static void run_one(io_backend *b, io_req *r)
{
    b->running++;
    pthread_mutex_unlock(&b->mu);
    do_pread(r);
    pthread_mutex_lock(&b->mu);
    b->running--;
    atomic_store_explicit(&r->state, IO_DONE, memory_order_release);
    pthread_cond_broadcast(&b->done);
}

static void *worker(void *arg)
{
    io_backend *b = arg;
    pthread_mutex_lock(&b->mu);
    for (;;) {
        io_req *r = NULL;
        while (!b->stop && (b->hold || !(r = take(b, false)))) pthread_cond_wait(&b->work, &b->mu);
        if (!r) break;
        run_one(b, r);
    }
    pthread_mutex_unlock(&b->mu);
    return NULL;
}

/* ---- io_uring: one thread owns the ring ----
 *
 * It fills the ring from the two lists (demand first; prefetch reads only
 * while fewer than `pf_cap` are in the kernel, so a demand read never
 * queues behind many of them there, where we cannot reorder), waits for a
 * completion, and sleeps on the `work` condition when nothing is in
 * flight. A submission while it waits in the kernel wakes it through an
 * eventfd it keeps a poll armed on. */

#ifdef MF_HAVE_URING
#define RING_WAKE ((void *)1)

static void ring_finish(io_backend *b, io_req *r)
{
    b->inflight[r->prio]--;
    atomic_store_explicit(&r->state, IO_DONE, memory_order_release);
    pthread_cond_broadcast(&b->done);
}

/* mu held */
static void ring_complete(io_backend *b, struct io_uring_cqe *cqe)
{
    io_req *r = io_uring_cqe_get_data(cqe);
    if (r == RING_WAKE) {
        uint64_t v;
        if (read(b->efd, &v, sizeof v) < 0) { /* nothing to drain */ }
        b->armed = false;
        return;
    }
    if (!r) return;
    if (cqe->res < 0) { r->err = -cqe->res; ring_finish(b, r); return; }
    r->got += (uint64_t)cqe->res;
    if (cqe->res > 0 && r->got < r->len) {
        /* short read: ask for the rest (its completion freed this entry) */
        struct io_uring_sqe *sqe = io_uring_get_sqe(&b->ring);
        if (sqe) {
            io_uring_prep_read(sqe, r->fd, (char *)r->dst + r->got, (unsigned)(r->len - r->got), r->off + r->got);
            io_uring_sqe_set_data(sqe, r);
            return;
        }
    }
    r->err = r->got >= r->need ? 0 : -1;
    ring_finish(b, r);
}

/* mu held: moves queued reads into the ring; returns whether any sqe was added. */
static bool ring_fill(io_backend *b)
{
    bool added = false;
    while (b->inflight[IO_DEMAND] + b->inflight[IO_PREFETCH] < b->depth) {
        io_list *l = b->q[IO_DEMAND].head ? &b->q[IO_DEMAND]
                     : b->inflight[IO_PREFETCH] < b->pf_cap ? &b->q[IO_PREFETCH] : NULL;
        if (!l || !l->head) break;
        io_req *r = l->head;
        list_unlink(l, r);
        atomic_store_explicit(&r->state, IO_RUNNING, memory_order_relaxed);
        r->got = 0;
        r->err = 0;
        b->inflight[r->prio]++;
        if (r->fault != IO_FAULT_NONE) {
            if (r->fault == IO_FAULT_SHORT) r->got = r->need / 2, r->err = -1;
            else r->err = r->fault == IO_FAULT_EIO ? EIO : ENOMEM;
            ring_finish(b, r);
            continue;
        }
        struct io_uring_sqe *sqe = io_uring_get_sqe(&b->ring);
        if (!sqe) { /* cannot happen: the ring has depth + 1 entries */
            r->err = EAGAIN;
            ring_finish(b, r);
            continue;
        }
        io_uring_prep_read(sqe, r->fd, r->dst, (unsigned)r->len, r->off);
        io_uring_sqe_set_data(sqe, r);
        added = true;
    }
    return added;
}

static void *ring_thread(void *arg)
{
    io_backend *b = arg;
    pthread_mutex_lock(&b->mu);
    for (;;) {
        bool added = ring_fill(b);
        unsigned inflight = b->inflight[IO_DEMAND] + b->inflight[IO_PREFETCH];
        if (inflight == 0) {
            if (added) io_uring_submit(&b->ring);
            if (b->stop) break;
            if (!b->q[IO_DEMAND].head && !b->q[IO_PREFETCH].head) pthread_cond_wait(&b->work, &b->mu);
            continue;
        }
        if (!b->armed) { /* a submission from now on wakes the wait below */
            struct io_uring_sqe *sqe = io_uring_get_sqe(&b->ring);
            if (sqe) {
                io_uring_prep_poll_add(sqe, b->efd, POLLIN);
                io_uring_sqe_set_data(sqe, RING_WAKE);
                b->armed = true;
            }
        }
        b->waiting = true;
        pthread_mutex_unlock(&b->mu);
        struct io_uring_cqe *cqe;
        int rc = io_uring_submit_and_wait(&b->ring, 1);
        pthread_mutex_lock(&b->mu);
        b->waiting = false;
        if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) break; /* the ring is broken */
        unsigned head, seen = 0;
        io_uring_for_each_cqe(&b->ring, head, cqe) {
            ring_complete(b, cqe);
            seen++;
        }
        io_uring_cq_advance(&b->ring, seen);
    }
    pthread_mutex_unlock(&b->mu);
    return NULL;
}

/* mu held: a new read is queued */
static void ring_wake(io_backend *b)
{
    pthread_cond_broadcast(&b->work);
    if (b->waiting) {
        uint64_t one = 1;
        if (write(b->efd, &one, sizeof one) < 0) { /* the counter is full: a wake-up is pending anyway */ }
    }
}
#endif

/* ---- the interface ---- */

io_backend *io_open(io_kind kind, int n_threads, const char **why)
{
    io_backend *b = calloc(1, sizeof *b);
    if (!b) { *why = "out of memory"; return NULL; }
    b->kind = kind;
#ifdef MF_HAVE_URING
    b->efd = -1;
#endif
    if (n_threads < 1) n_threads = kind == IO_URING ? 32 : 4;
    b->n_threads = n_threads;
    pthread_mutex_init(&b->mu, NULL);
    pthread_cond_init(&b->work, NULL);
    pthread_cond_init(&b->done, NULL);
    if (kind == IO_URING) {
#ifdef MF_HAVE_URING
        b->depth = (unsigned)(n_threads < 8 ? 8 : n_threads > 4096 ? 4096 : n_threads);
        b->pf_cap = b->depth / 8 < 2 ? 2 : b->depth / 8;
        /* one entry more than the reads in flight, for the wake-up poll */
        int rc = io_uring_queue_init(b->depth + 1, &b->ring, 0);
        if (rc < 0) {
            *why = "io_uring_queue_init failed (kernel without io_uring, or it is disabled)";
            io_close(b);
            return NULL;
        }
        b->ring_ok = true;
        b->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (b->efd < 0 || pthread_create(&b->ring_th, NULL, ring_thread, b) != 0) {
            *why = "cannot start the io_uring thread";
            io_close(b);
            return NULL;
        }
        b->ring_th_ok = true;
        b->n_threads = 0;
        return b;
#else
        *why = "this build has no io_uring (liburing-dev was not installed)";
        io_close(b);
        return NULL;
#endif
    }
    /* every thread reads in the background; a caller waiting for demand
     * reads takes queued ones too */
    b->th = calloc((size_t)n_threads, sizeof *b->th);
    if (!b->th) { *why = "out of memory"; io_close(b); return NULL; }
    for (int i = 0; i < n_threads; i++)
        if (pthread_create(&b->th[i], NULL, worker, b) != 0) {
            b->n_threads = i;
            break;
        }
    if (b->n_threads == 0) { *why = "cannot start a reader thread"; io_close(b); return NULL; }
    return b;
}

void io_close(io_backend *b)
{
    if (!b) return;
    /* queued reads are dropped; those running (in a thread or in the
     * kernel) land before this returns, so their buffers may be freed */
    pthread_mutex_lock(&b->mu);
    b->stop = true;
    b->q[IO_DEMAND].head = b->q[IO_DEMAND].tail = NULL;
    b->q[IO_PREFETCH].head = b->q[IO_PREFETCH].tail = NULL;
    pthread_cond_broadcast(&b->work);
#ifdef MF_HAVE_URING
    if (b->ring_th_ok) ring_wake(b);
#endif
    pthread_mutex_unlock(&b->mu);
    if (b->th)
        for (int i = 0; i < b->n_threads; i++) pthread_join(b->th[i], NULL);
#ifdef MF_HAVE_URING
    if (b->ring_th_ok) pthread_join(b->ring_th, NULL);
    if (b->ring_ok) io_uring_queue_exit(&b->ring);
    if (b->efd >= 0) close(b->efd);
#endif
    pthread_mutex_destroy(&b->mu);
    pthread_cond_destroy(&b->work);
    pthread_cond_destroy(&b->done);
    free(b->th);
    free(b);
}

void io_submit(io_backend *b, io_req *const *r, int n, io_prio prio)
{
    if (n <= 0) return;
    pthread_mutex_lock(&b->mu);
    for (int i = 0; i < n; i++) {
        uint64_t k = ++b->submitted[prio];
        r[i]->fault = b->fault[prio] != IO_FAULT_NONE && k == b->fault_at[prio] ? b->fault[prio] : IO_FAULT_NONE;
        r[i]->prio = prio;
        r[i]->err = 0;
        r[i]->got = 0;
        atomic_store_explicit(&r[i]->state, IO_QUEUED, memory_order_relaxed);
        list_push(&b->q[prio], r[i]);
    }
    if (b->th) pthread_cond_broadcast(&b->work);
#ifdef MF_HAVE_URING
    if (b->ring_th_ok) ring_wake(b);
#endif
    pthread_mutex_unlock(&b->mu);
}

bool io_cancel(io_backend *b, io_req *const *r, int n)
{
    pthread_mutex_lock(&b->mu);
    bool all = true;
    for (int i = 0; i < n && all; i++) all = atomic_load_explicit(&r[i]->state, memory_order_relaxed) == IO_QUEUED;
    for (int i = 0; i < n && all; i++) {
        list_unlink(&b->q[r[i]->prio], r[i]);
        atomic_store_explicit(&r[i]->state, IO_IDLE, memory_order_relaxed);
    }
    pthread_mutex_unlock(&b->mu);
    return all;
}

void io_promote(io_backend *b, io_req *const *r, int n)
{
    pthread_mutex_lock(&b->mu);
    for (int i = 0; i < n; i++) {
        if (r[i]->prio != IO_PREFETCH || atomic_load_explicit(&r[i]->state, memory_order_relaxed) != IO_QUEUED) continue;
        list_unlink(&b->q[IO_PREFETCH], r[i]);
        r[i]->prio = IO_DEMAND;
        list_push(&b->q[IO_DEMAND], r[i]);
    }
#ifdef MF_HAVE_URING
    if (b->ring_th_ok) ring_wake(b);
#endif
    pthread_mutex_unlock(&b->mu);
}

void io_hold(io_backend *b, bool hold)
{
    pthread_mutex_lock(&b->mu);
    b->hold = hold;
    pthread_cond_broadcast(&b->work);
    pthread_mutex_unlock(&b->mu);
}

static bool all_done(io_req *const *r, int n)
{
    for (int i = 0; i < n; i++)
        if (!io_done(r[i])) return false;
    return true;
}

void io_wait(io_backend *b, io_req *const *r, int n)
{
    pthread_mutex_lock(&b->mu);
    while (!all_done(r, n)) {
        io_req *q = b->th ? take(b, true) : NULL; /* the ring has its own thread */
        if (q) run_one(b, q);
        else pthread_cond_wait(&b->done, &b->mu);
    }
    pthread_mutex_unlock(&b->mu);
}
