/* io.h — the I/O backends of the expert store.
 *
 * A backend reads a batch of extents into memory and returns when all are
 * done (or one failed): the K experts of a layer are read in parallel.
 *   pread   reader threads doing pread (portable default)
 *   direct  the same threads on O_DIRECT descriptors; the caller passes
 *           4 KiB-aligned supersets of the extents and aligned buffers
 *   uring   one io_uring (liburing), every extent of the batch submitted
 *           at once; short reads are resubmitted for the rest
 * A fault-injecting wrapper (tests) fails the Nth read with EIO, a short
 * read or ENOMEM. Errors come back as errno values per request; the store
 * turns them into a message naming the file and offset.
 */
#ifndef MF_STORE_IO_H
#define MF_STORE_IO_H

#include <stddef.h>
#include <stdint.h>

typedef enum io_kind { IO_PREAD, IO_DIRECT, IO_URING } io_kind;

typedef struct io_req {
    int fd;
    uint64_t off;          /* file offset (aligned for direct) */
    uint64_t len;          /* bytes to read */
    uint64_t need;         /* bytes that must arrive (<= len; the rest may lie past EOF) */
    void *dst;
    int err;               /* out: 0, an errno, or -1 for a short read */
    uint64_t got;          /* out: bytes read */
} io_req;

typedef enum io_fault_kind { IO_FAULT_NONE, IO_FAULT_EIO, IO_FAULT_SHORT, IO_FAULT_ENOMEM } io_fault_kind;

typedef struct io_backend io_backend;

/* n_threads reader threads (pread/direct) or the ring depth (uring).
 * Returns NULL with *why set (a static string) when unavailable. */
io_backend *io_open(io_kind kind, int n_threads, const char **why);
void io_close(io_backend *b);
/* Reads every request; returns 0 when all succeeded, else -1 (see err). */
int io_read_batch(io_backend *b, io_req *r, int n);
const char *io_kind_name(io_kind k);
/* Test hook: the nth read from now (1 = the next) fails with kind. */
void io_inject_fault(io_backend *b, uint64_t nth, io_fault_kind kind);

#endif
