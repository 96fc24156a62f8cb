/* gguf_write.c — the project's GGUF writer: synthetic models for tests and
 * benchmarks, split sets, and copies of real files. It writes GGUF v3 with
 * the default 32-byte alignment, metadata in the order it was added and
 * tensors in the order they were added, as gguf-py does. Tensor bytes are
 * either copied at add time or produced by a callback while writing, so a
 * model larger than memory can be written. */
#include "gguf.h"
#include "quant/quant.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct wkv {
    char *key;
    gguf_value val;     /* strings and arrays point into owned memory */
    void *own;          /* what val points into */
} wkv;

typedef struct wtensor {
    char *name;
    uint32_t type, n_dims;
    uint64_t ne[GGUF_MAX_DIMS];
    uint64_t nbytes;
    void *data;         /* owned copy, or NULL with fill */
    gguf_fill_fn fill;
    void *ctx;
} wtensor;

struct gguf_writer {
    wkv *kv;
    size_t n_kv, cap_kv;
    wtensor *t;
    size_t n_t, cap_t;
    int oom;
};

gguf_writer *gguf_writer_new(void) { return calloc(1, sizeof(gguf_writer)); }

static void free_value(gguf_value *v)
{
    if (v->type == GGUF_ARRAY && v->v.arr.items) {
        for (uint64_t i = 0; i < v->v.arr.n; i++) free_value(&v->v.arr.items[i]);
        free(v->v.arr.items);
    }
}

void gguf_writer_free(gguf_writer *w)
{
    if (!w) return;
    for (size_t i = 0; i < w->n_kv; i++) {
        free(w->kv[i].key);
        free_value(&w->kv[i].val);
        free(w->kv[i].own);
    }
    for (size_t i = 0; i < w->n_t; i++) {
        free(w->t[i].name);
        free(w->t[i].data);
    }
    free(w->kv);
    free(w->t);
    free(w);
}

static wkv *add_kv(gguf_writer *w, const char *key)
{
    if (w->n_kv == w->cap_kv) {
        size_t cap = w->cap_kv ? w->cap_kv * 2 : 32;
        wkv *n = realloc(w->kv, cap * sizeof *n);
        if (!n) { w->oom = 1; return NULL; }
        w->kv = n;
        w->cap_kv = cap;
    }
    wkv *kv = &w->kv[w->n_kv];
    memset(kv, 0, sizeof *kv);
    kv->key = strdup(key);
    if (!kv->key) { w->oom = 1; return NULL; }
    w->n_kv++;
    return kv;
}

void gguf_w_u32(gguf_writer *w, const char *key, uint32_t v)
{
    wkv *kv = add_kv(w, key);
    if (kv) { kv->val.type = GGUF_UINT32; kv->val.v.u = v; }
}
void gguf_w_i32(gguf_writer *w, const char *key, int32_t v)
{
    wkv *kv = add_kv(w, key);
    if (kv) { kv->val.type = GGUF_INT32; kv->val.v.i = v; }
}
void gguf_w_u64(gguf_writer *w, const char *key, uint64_t v)
{
    wkv *kv = add_kv(w, key);
    if (kv) { kv->val.type = GGUF_UINT64; kv->val.v.u = v; }
}
void gguf_w_f32(gguf_writer *w, const char *key, float v)
{
    wkv *kv = add_kv(w, key);
    if (kv) { kv->val.type = GGUF_FLOAT32; kv->val.v.f = v; }
}
void gguf_w_bool(gguf_writer *w, const char *key, bool v)
{
    wkv *kv = add_kv(w, key);
    if (kv) { kv->val.type = GGUF_BOOL; kv->val.v.u = v; }
}
void gguf_w_str(gguf_writer *w, const char *key, const char *v)
{
    wkv *kv = add_kv(w, key);
    if (!kv) return;
    kv->own = strdup(v);
    if (!kv->own) { w->oom = 1; return; }
    kv->val.type = GGUF_STRING;
    kv->val.v.s.p = kv->own;
    kv->val.v.s.n = strlen(v);
}

static void w_arr_raw(gguf_writer *w, const char *key, gguf_vtype et, const void *v, uint64_t n, size_t esz)
{
    wkv *kv = add_kv(w, key);
    if (!kv) return;
    kv->own = malloc(n * esz + 1);
    if (!kv->own) { w->oom = 1; return; }
    memcpy(kv->own, v, n * esz);
    kv->val.type = GGUF_ARRAY;
    kv->val.v.arr.etype = et;
    kv->val.v.arr.n = n;
    kv->val.v.arr.raw = kv->own;
}
void gguf_w_arr_i32(gguf_writer *w, const char *key, const int32_t *v, uint64_t n) { w_arr_raw(w, key, GGUF_INT32, v, n, 4); }
void gguf_w_arr_f32(gguf_writer *w, const char *key, const float *v, uint64_t n) { w_arr_raw(w, key, GGUF_FLOAT32, v, n, 4); }

void gguf_w_arr_str(gguf_writer *w, const char *key, const char *const *v, uint64_t n)
{
    wkv *kv = add_kv(w, key);
    if (!kv) return;
    size_t total = 0;
    for (uint64_t i = 0; i < n; i++) total += strlen(v[i]);
    char *buf = malloc(total + 1);
    gguf_value *items = calloc(n + 1, sizeof *items);
    if (!buf || !items) { free(buf); free(items); w->oom = 1; return; }
    kv->own = buf;
    for (uint64_t i = 0; i < n; i++) {
        size_t l = strlen(v[i]);
        memcpy(buf, v[i], l);
        items[i].type = GGUF_STRING;
        items[i].v.s.p = buf;
        items[i].v.s.n = l;
        buf += l;
    }
    kv->val.type = GGUF_ARRAY;
    kv->val.v.arr.etype = GGUF_STRING;
    kv->val.v.arr.n = n;
    kv->val.v.arr.items = items;
}

/* Deep copy of a value whose strings/raw point into someone else's memory:
 * the copy keeps pointers into src's storage for strings and raw arrays,
 * which stays valid while the source file is open (documented in gguf.h
 * terms: copy before closing the source is the caller's job). */
static int copy_value(gguf_value *dst, const gguf_value *src)
{
    *dst = *src;
    if (src->type == GGUF_ARRAY && src->v.arr.items) {
        dst->v.arr.items = calloc(src->v.arr.n + 1, sizeof(gguf_value));
        if (!dst->v.arr.items) return -1;
        for (uint64_t i = 0; i < src->v.arr.n; i++)
            if (copy_value(&dst->v.arr.items[i], &src->v.arr.items[i])) return -1;
    }
    return 0;
}

void gguf_w_value(gguf_writer *w, const char *key, const gguf_value *v)
{
    wkv *kv = add_kv(w, key);
    if (kv && copy_value(&kv->val, v)) w->oom = 1;
}

static wtensor *add_tensor(gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
                           const uint64_t *ne, mf_error *e)
{
    const quant_type_info *ti = quant_type(type);
    if (!ti) { mf_fail(e, "gguf writer: tensor %s: unknown type %u", name, type); return NULL; }
    if (n_dims == 0 || n_dims > GGUF_MAX_DIMS) { mf_fail(e, "gguf writer: tensor %s: n_dims %u", name, n_dims); return NULL; }
    if (w->n_t == w->cap_t) {
        size_t cap = w->cap_t ? w->cap_t * 2 : 64;
        wtensor *n = realloc(w->t, cap * sizeof *n);
        if (!n) { mf_fail(e, "out of memory"); return NULL; }
        w->t = n;
        w->cap_t = cap;
    }
    wtensor *t = &w->t[w->n_t];
    memset(t, 0, sizeof *t);
    uint64_t nelem = 1;
    for (uint32_t d = 0; d < GGUF_MAX_DIMS; d++) {
        t->ne[d] = d < n_dims ? ne[d] : 1;
        nelem *= t->ne[d];
    }
    if (t->ne[0] % ti->block_elems) {
        mf_fail(e, "gguf writer: tensor %s: ne0 %" PRIu64 " not a multiple of %u", name, t->ne[0], ti->block_elems);
        return NULL;
    }
    t->nbytes = nelem / ti->block_elems * ti->block_bytes;
    t->type = type;
    t->n_dims = n_dims;
    t->name = strdup(name);
    if (!t->name) { mf_fail(e, "out of memory"); return NULL; }
    w->n_t++;
    return t;
}

int gguf_w_tensor(gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
                  const uint64_t *ne, const void *data, mf_error *e)
{
    wtensor *t = add_tensor(w, name, type, n_dims, ne, e);
    if (!t) return -1;
    t->data = malloc(t->nbytes ? t->nbytes : 1);
    if (!t->data) return mf_fail(e, "out of memory for tensor %s (%" PRIu64 " bytes)", name, t->nbytes);
    memcpy(t->data, data, t->nbytes);
    return 0;
}

int gguf_w_tensor_fill(gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
                       const uint64_t *ne, gguf_fill_fn fill, void *ctx, mf_error *e)
{
    wtensor *t = add_tensor(w, name, type, n_dims, ne, e);
    if (!t) return -1;
    t->fill = fill;
    t->ctx = ctx;
    return 0;
}

/* ---- serialisation ---- */

typedef struct wout { FILE *fp; uint64_t pos; int err; } wout;

static void put(wout *o, const void *p, size_t n)
{
    if (o->err || n == 0) return;
    if (fwrite(p, 1, n, o->fp) != n) o->err = errno ? errno : EIO;
    o->pos += n;
}
static void put_u32(wout *o, uint32_t v) { put(o, &v, 4); }
static void put_u64(wout *o, uint64_t v) { put(o, &v, 8); }
static void put_str(wout *o, const char *p, uint64_t n) { put_u64(o, n); put(o, p, n); }

static void put_scalar(wout *o, const gguf_value *v)
{
    switch (v->type) {
    case GGUF_UINT8: case GGUF_BOOL: { uint8_t x = (uint8_t)v->v.u; put(o, &x, 1); break; }
    case GGUF_INT8: { int8_t x = (int8_t)v->v.i; put(o, &x, 1); break; }
    case GGUF_UINT16: { uint16_t x = (uint16_t)v->v.u; put(o, &x, 2); break; }
    case GGUF_INT16: { int16_t x = (int16_t)v->v.i; put(o, &x, 2); break; }
    case GGUF_UINT32: { uint32_t x = (uint32_t)v->v.u; put(o, &x, 4); break; }
    case GGUF_INT32: { int32_t x = (int32_t)v->v.i; put(o, &x, 4); break; }
    case GGUF_FLOAT32: { float x = (float)v->v.f; put(o, &x, 4); break; }
    case GGUF_UINT64: put(o, &v->v.u, 8); break;
    case GGUF_INT64: put(o, &v->v.i, 8); break;
    case GGUF_FLOAT64: put(o, &v->v.f, 8); break;
    default: break;
    }
}

static const uint8_t esize[GGUF_VTYPE_COUNT] = { 1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8 };

static void put_value(wout *o, const gguf_value *v)
{
    if (v->type == GGUF_STRING) { put_str(o, v->v.s.p, v->v.s.n); return; }
    if (v->type != GGUF_ARRAY) { put_scalar(o, v); return; }
    put_u32(o, v->v.arr.etype);
    put_u64(o, v->v.arr.n);
    if (v->v.arr.items) {
        /* strings and nested arrays: each item serialises itself */
        for (uint64_t i = 0; i < v->v.arr.n; i++) put_value(o, &v->v.arr.items[i]);
    } else {
        put(o, v->v.arr.raw, v->v.arr.n * esize[v->v.arr.etype]);
    }
}

static void put_pad(wout *o, uint32_t align)
{
    static const uint8_t zero[64];
    while (o->pos % align) put(o, zero, (size_t)(align - o->pos % align) > sizeof zero ? sizeof zero : align - o->pos % align);
}

static int write_part(gguf_writer *w, const char *path, size_t t0, size_t t1, int no, int count, mf_error *e)
{
    const uint32_t align = GGUF_DEFAULT_ALIGNMENT;
    FILE *fp = fopen(path, "wb");
    if (!fp) return mf_fail(e, "%s: cannot create: %s", path, strerror(errno));
    wout o = { fp, 0, 0 };
    put(&o, "GGUF", 4);
    put_u32(&o, 3);
    put_u64(&o, t1 - t0);
    size_t n_kv = (no == 0 ? w->n_kv : 0) + (count > 1 ? 3 : 0);
    put_u64(&o, n_kv);
    if (no == 0)
        for (size_t i = 0; i < w->n_kv; i++) {
            put_str(&o, w->kv[i].key, strlen(w->kv[i].key));
            put_u32(&o, w->kv[i].val.type);
            put_value(&o, &w->kv[i].val);
        }
    if (count > 1) {
        gguf_value v = { .type = GGUF_UINT16 };
        put_str(&o, "split.no", 8); put_u32(&o, GGUF_UINT16); v.v.u = (uint64_t)no; put_value(&o, &v);
        put_str(&o, "split.count", 11); put_u32(&o, GGUF_UINT16); v.v.u = (uint64_t)count; put_value(&o, &v);
        v.type = GGUF_INT32;
        v.v.i = (int64_t)w->n_t;
        put_str(&o, "split.tensors.count", 19); put_u32(&o, GGUF_INT32); put_value(&o, &v);
    }
    uint64_t off = 0;
    for (size_t i = t0; i < t1; i++) {
        wtensor *t = &w->t[i];
        put_str(&o, t->name, strlen(t->name));
        put_u32(&o, t->n_dims);
        for (uint32_t d = 0; d < t->n_dims; d++) put_u64(&o, t->ne[d]);
        put_u32(&o, t->type);
        put_u64(&o, off);
        off += (t->nbytes + align - 1) / align * align;
    }
    put_pad(&o, align);
    void *buf = NULL;
    int rc = 0;
    for (size_t i = t0; i < t1 && !o.err && rc == 0; i++) {
        wtensor *t = &w->t[i];
        if (t->fill) {
            buf = malloc(t->nbytes ? t->nbytes : 1);
            if (!buf) { rc = mf_fail(e, "out of memory writing %s", t->name); break; }
            rc = t->fill(t->ctx, t->name, buf, t->nbytes, e);
            put(&o, buf, t->nbytes);
            free(buf);
            buf = NULL;
        } else {
            put(&o, t->data, t->nbytes);
        }
        put_pad(&o, align);
    }
    if (fclose(fp) != 0 && !o.err) o.err = errno;
    if (rc) return rc;
    if (o.err) return mf_fail(e, "%s: write failed: %s", path, strerror(o.err));
    return 0;
}

int gguf_w_write(gguf_writer *w, const char *path, uint64_t max_tensors_per_part, mf_error *e)
{
    if (w->oom) return mf_fail(e, "gguf writer: out of memory while building %s", path);
    if (max_tensors_per_part == 0 || max_tensors_per_part >= w->n_t)
        return write_part(w, path, 0, w->n_t, 0, 1, e);
    int count = (int)((w->n_t + max_tensors_per_part - 1) / max_tensors_per_part);
    char name[4096];
    for (int no = 0; no < count; no++) {
        size_t t0 = (size_t)no * max_tensors_per_part, t1 = t0 + max_tensors_per_part;
        if (t1 > w->n_t) t1 = w->n_t;
        gguf_split_path(name, sizeof name, path, no + 1, count);
        if (write_part(w, name, t0, t1, no, count, e)) return -1;
    }
    return 0;
}
