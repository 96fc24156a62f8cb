/* io.h — the I/O backends of the expert store: an asynchronous queue of
 * reads with two priorities.
 *
 * The store submits the extents of the experts it needs now (demand) and
 * of the experts it expects next (prefetch), and later waits for the ones
 * it needs. Demand reads are always taken before queued prefetch reads; a
 * queued prefetch can be cancelled (its expert was not chosen after all)
 * or promoted to demand (it was, and the layer is waiting for it).
 *   pread   reader threads doing pread; a caller waiting for demand reads
 *           takes queued demand reads itself rather than sleep
 *   direct  the same threads on O_DIRECT descriptors; the caller passes
 *           4 KiB-aligned supersets of the extents and aligned buffers
 *   uring   one io_uring (liburing) owned by one thread that fills it from
 *           the lists: demand reads as they come, prefetch reads only while
 *           few (depth / 8) are in the kernel, where a demand read could
 *           not overtake them; short reads are resubmitted for the rest
 * Fault injection (tests) fails the Nth submitted demand read (or, with
 * IO_FAULT_PREFETCH, the Nth prefetch read) with EIO, a short read or
 * ENOMEM; counting submissions, not completions, keeps it deterministic
 * when reads run in parallel. Errors come back as errno values per
 * request; the store turns them into a message naming the file and offset.
 * All calls but the reader threads' own come from one thread (the store's).
 */
#ifndef MF_STORE_IO_H
#define MF_STORE_IO_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum io_kind { IO_PREAD, IO_DIRECT, IO_URING } io_kind;
typedef enum io_prio { IO_DEMAND, IO_PREFETCH } io_prio;
typedef enum io_state { IO_IDLE, IO_QUEUED, IO_RUNNING, IO_DONE } io_state;
typedef enum io_fault_kind { IO_FAULT_NONE, IO_FAULT_EIO, IO_FAULT_SHORT, IO_FAULT_ENOMEM } io_fault_kind;
/* or'ed into a fault kind: count prefetch reads instead of demand reads */
#define IO_FAULT_PREFETCH 0x100

typedef struct io_req {
    int fd;
    uint64_t off;          /* file offset (aligned for direct) */
    uint64_t len;          /* bytes to read */
    uint64_t need;         /* bytes that must arrive (<= len; the rest may lie past EOF) */
    void *dst;
    int err;               /* out: 0, an errno, or -1 for a short read */
    uint64_t got;          /* out: bytes read */
    /* the backend's, between io_submit and IO_DONE */
    _Atomic int state;     /* io_state */
    int prio;              /* io_prio; promotion changes it while queued */
    io_fault_kind fault;   /* decided at submission */
    struct io_req *prev, *next;
} io_req;

typedef struct io_backend io_backend;

/* n_threads reader threads (pread/direct) or the ring depth (uring).
 * Returns NULL with *why set (a static string) when unavailable. */
io_backend *io_open(io_kind kind, int n_threads, const char **why);
/* Waits for the reads in progress (their buffers may be freed after). */
void io_close(io_backend *b);
const char *io_kind_name(io_kind k);

/* Queues r[0..n) at priority prio. Each must be IO_IDLE or IO_DONE. */
void io_submit(io_backend *b, io_req *const *r, int n, io_prio prio);
/* All or nothing: when every one of r[0..n) is still queued, removes them
 * (state IO_IDLE) and returns true; otherwise changes nothing. */
bool io_cancel(io_backend *b, io_req *const *r, int n);
/* Queued prefetch reads among r[0..n) become demand reads. */
void io_promote(io_backend *b, io_req *const *r, int n);
/* Returns when every one of r[0..n) is IO_DONE (or IO_IDLE). */
void io_wait(io_backend *b, io_req *const *r, int n);
static inline bool io_done(io_req *r)
{
    int s = atomic_load_explicit(&r->state, memory_order_acquire);
    return s == IO_DONE || s == IO_IDLE;
}

/* Test hook: while held, the reader threads take no reads (a caller
 * waiting for demand reads still does them): queued reads stay queued. */
void io_hold(io_backend *b, bool hold);
/* Test hook: the nth demand read submitted from now (1 = the next) fails
 * with kind; kind | IO_FAULT_PREFETCH counts prefetch reads instead. */
void io_inject_fault(io_backend *b, uint64_t nth, int kind);

#endif
