/* weights.c — binding tensors by name with their shapes checked. */
#include "models/weights.h"
#include "quant/quant.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static void fmt_shape(char *buf, size_t n, uint32_t n_dims, const uint64_t *ne)
{
    size_t at = 0;
    at += (size_t)snprintf(buf + at, n - at, "{");
    for (uint32_t d = 0; d < n_dims && at < n; d++)
        at += (size_t)snprintf(buf + at, n - at, d ? ", %" PRIu64 : "%" PRIu64, ne[d]);
    if (at < n) snprintf(buf + at, n - at, "}");
}

int bind_weight(binder *b, mf_weight *w, int required, uint32_t n_dims, const uint64_t *ne, const char *fmt, ...)
{
    char name[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    memset(w, 0, sizeof *w);
    const gguf_tensor *t = gguf_find_tensor(b->f, name);
    const char *path = b->f->parts[0].path;
    if (!t) {
        if (!required) return 0;
        b->failed = 1;
        return mf_fail(b->e, "%s: tensor %s is missing", path, name);
    }
    const quant_type_info *ti = quant_type(t->type);
    if (!ti->dot || !ti->dequant) {
        b->failed = 1;
        return mf_fail(b->e, "%s: tensor %s has type %s, which this build cannot compute with", path, name, ti->name);
    }
    int ok = t->n_dims <= n_dims;
    for (uint32_t d = 0; ok && d < GGUF_MAX_DIMS; d++) {
        uint64_t want = d < n_dims ? ne[d] : 1;
        if (want && t->ne[d] != want) ok = 0;
    }
    if (!ok) {
        char want[96], found[96];
        fmt_shape(want, sizeof want, n_dims, ne);
        fmt_shape(found, sizeof found, t->n_dims, t->ne);
        b->failed = 1;
        return mf_fail(b->e, "%s: tensor %s: expected shape %s, found %s", path, name, want, found);
    }
    w->name = t->name;
    w->type = t->type;
    w->n_dims = n_dims;
    memcpy(w->ne, t->ne, sizeof w->ne);
    w->row_bytes = quant_row_bytes(t->type, t->ne[0]);
    w->data = t->data;
    w->file = b->f;
    w->src = t;
    return 0;
}

/* Bytes of one read: whole blocks of the row, at most this much (rows of
 * real models are 2-30 KiB, so usually one read). */
#define WEIGHT_READ_CHUNK 16384

int weight_read_row(const mf_weight *w, uint64_t r, float *out, mf_error *e)
{
    const quant_type_info *ti = quant_type(w->type);
    const gguf_tensor *t = w->src;
    _Alignas(64) uint8_t buf[WEIGHT_READ_CHUNK];
    const size_t blocks = WEIGHT_READ_CHUNK / ti->block_bytes;
    const uint64_t row_off = t->offset + r * w->row_bytes;
    /* blocks are independent: dequantizing a row piece by piece gives the
     * very floats a whole-row dequantization gives */
    for (uint64_t done = 0; done < w->ne[0];) {
        uint64_t n = w->ne[0] - done;
        if (n > blocks * ti->block_elems) n = blocks * ti->block_elems;
        const uint64_t off = row_off + done / ti->block_elems * ti->block_bytes;
        if (gguf_pread(w->file, t->file, off, buf, (size_t)(n / ti->block_elems * ti->block_bytes), e))
            return mf_fail_wrap(e, "tensor %s, row %" PRIu64, w->name, r);
        ti->dequant(buf, out + done, n);
        done += n;
    }
    return 0;
}

int bind_check_f32(binder *b, const mf_weight *w)
{
    if (!w->name || w->type == MF_TYPE_F32) return 0;
    b->failed = 1;
    return mf_fail(b->e, "%s: tensor %s: expected type f32, found %s", b->f->parts[0].path, w->name,
                   quant_type(w->type)->name);
}
