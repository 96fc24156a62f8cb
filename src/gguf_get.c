/* gguf_get.c — lookups and typed getters over a parsed GGUF file. A
 * required key that is missing or of another type is an error naming the
 * file, the key's byte offset, what was expected and what was found. */
#include "gguf.h"
#include "gguf_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* ---- lookups and getters ---- */

const gguf_kv *gguf_find(const gguf_file *f, const char *key)
{
    for (uint64_t i = 0; i < f->n_kv; i++)
        if (strcmp(f->kv[i].key, key) == 0) return &f->kv[i];
    return NULL;
}

const gguf_tensor *gguf_find_tensor(const gguf_file *f, const char *name)
{
    for (uint64_t i = 0; i < f->n_tensors; i++)
        if (strcmp(f->tensors[i].name, name) == 0) return &f->tensors[i];
    return NULL;
}

static const char *fname(const gguf_file *f) { return f->n_parts ? f->parts[0].path : "<gguf>"; }

static int need_key(const gguf_file *f, const char *key, const gguf_kv **kv, mf_error *e)
{
    *kv = gguf_find(f, key);
    if (!*kv) return mf_fail(e, "%s: metadata key %s is missing", fname(f), key);
    return 0;
}

static int wrong_type(const gguf_file *f, const gguf_kv *kv, const char *want, mf_error *e)
{
    return mf_fail(e, "%s at byte %" PRIu64 ": key %s: expected %s, found %s", fname(f), kv->offset, kv->key,
                   want, gguf_vtype_name(kv->val.type));
}

static int as_uint(const gguf_file *f, const gguf_kv *kv, uint64_t max, const char *want, uint64_t *out, mf_error *e)
{
    uint64_t v;
    if (gguf_scalar_as_u64(&kv->val, &v)) return wrong_type(f, kv, want, e);
    if (v > max)
        return mf_fail(e, "%s: key %s: expected at most %" PRIu64 ", found %" PRIu64, fname(f), kv->key, max, v);
    *out = v;
    return 0;
}

int gguf_get_u32(const gguf_file *f, const char *key, uint32_t *out, mf_error *e)
{
    const gguf_kv *kv;
    uint64_t v;
    if (need_key(f, key, &kv, e) || as_uint(f, kv, UINT32_MAX, "an unsigned 32-bit integer", &v, e)) return -1;
    *out = (uint32_t)v;
    return 0;
}

int gguf_get_u64(const gguf_file *f, const char *key, uint64_t *out, mf_error *e)
{
    const gguf_kv *kv;
    return need_key(f, key, &kv, e) || as_uint(f, kv, UINT64_MAX, "an unsigned integer", out, e) ? -1 : 0;
}

int gguf_get_i32(const gguf_file *f, const char *key, int32_t *out, mf_error *e)
{
    const gguf_kv *kv;
    if (need_key(f, key, &kv, e)) return -1;
    int64_t v;
    switch (kv->val.type) {
    case GGUF_INT8: case GGUF_INT16: case GGUF_INT32: case GGUF_INT64: v = kv->val.v.i; break;
    case GGUF_UINT8: case GGUF_UINT16: case GGUF_UINT32: case GGUF_UINT64:
        v = kv->val.v.u > INT64_MAX ? INT64_MAX : (int64_t)kv->val.v.u; break;
    default: return wrong_type(f, kv, "an integer", e);
    }
    if (v < INT32_MIN || v > INT32_MAX)
        return mf_fail(e, "%s: key %s: %" PRId64 " does not fit in 32 bits", fname(f), key, v);
    *out = (int32_t)v;
    return 0;
}

int gguf_get_f32(const gguf_file *f, const char *key, float *out, mf_error *e)
{
    const gguf_kv *kv;
    if (need_key(f, key, &kv, e)) return -1;
    if (kv->val.type != GGUF_FLOAT32 && kv->val.type != GGUF_FLOAT64) return wrong_type(f, kv, "FLOAT32", e);
    *out = (float)kv->val.v.f;
    return 0;
}

int gguf_get_bool(const gguf_file *f, const char *key, bool *out, mf_error *e)
{
    const gguf_kv *kv;
    if (need_key(f, key, &kv, e)) return -1;
    if (kv->val.type != GGUF_BOOL) return wrong_type(f, kv, "BOOL", e);
    *out = kv->val.v.u != 0;
    return 0;
}

int gguf_get_str(const gguf_file *f, const char *key, const char **out, mf_error *e)
{
    const gguf_kv *kv;
    if (need_key(f, key, &kv, e)) return -1;
    if (kv->val.type != GGUF_STRING) return wrong_type(f, kv, "STRING", e);
    char *s = gguf_arena_strdup(&((gguf_file *)f)->arena, kv->val.v.s.p, kv->val.v.s.n);
    if (!s) return mf_fail(e, "out of memory");
    *out = s;
    return 0;
}

int gguf_get_arr(const gguf_file *f, const char *key, gguf_vtype etype, const gguf_value **out, mf_error *e)
{
    const gguf_kv *kv;
    if (need_key(f, key, &kv, e)) return -1;
    if (kv->val.type != GGUF_ARRAY || kv->val.v.arr.etype != etype) {
        char want[64];
        snprintf(want, sizeof want, "ARRAY[%s]", gguf_vtype_name(etype));
        if (kv->val.type == GGUF_ARRAY)
            return mf_fail(e, "%s at byte %" PRIu64 ": key %s: expected %s, found ARRAY[%s]", fname(f), kv->offset, key,
                           want, gguf_vtype_name(kv->val.v.arr.etype));
        return wrong_type(f, kv, want, e);
    }
    *out = &kv->val;
    return 0;
}

int gguf_opt_u32(const gguf_file *f, const char *key, uint32_t def, uint32_t *out, mf_error *e)
{
    if (!gguf_find(f, key)) { *out = def; return 0; }
    return gguf_get_u32(f, key, out, e);
}

int gguf_opt_f32(const gguf_file *f, const char *key, float def, float *out, mf_error *e)
{
    if (!gguf_find(f, key)) { *out = def; return 0; }
    return gguf_get_f32(f, key, out, e);
}

int gguf_opt_bool(const gguf_file *f, const char *key, bool def, bool *out, mf_error *e)
{
    if (!gguf_find(f, key)) { *out = def; return 0; }
    return gguf_get_bool(f, key, out, e);
}

int64_t gguf_arr_int(const gguf_value *a, uint64_t i)
{
    gguf_value v;
    gguf_scalar_from(&v, a->v.arr.etype, a->v.arr.raw + i * gguf_vtype_size[a->v.arr.etype]);
    switch (v.type) {
    case GGUF_INT8: case GGUF_INT16: case GGUF_INT32: case GGUF_INT64: return v.v.i;
    case GGUF_FLOAT32: case GGUF_FLOAT64: return (int64_t)v.v.f;
    default: return (int64_t)v.v.u;
    }
}

double gguf_arr_float(const gguf_value *a, uint64_t i)
{
    gguf_value v;
    gguf_scalar_from(&v, a->v.arr.etype, a->v.arr.raw + i * gguf_vtype_size[a->v.arr.etype]);
    switch (v.type) {
    case GGUF_INT8: case GGUF_INT16: case GGUF_INT32: case GGUF_INT64: return (double)v.v.i;
    case GGUF_FLOAT32: case GGUF_FLOAT64: return v.v.f;
    default: return (double)v.v.u;
    }
}

const char *gguf_arch_key(char *buf, size_t n, const char *arch, const char *suffix)
{
    snprintf(buf, n, "%s.%s", arch, suffix);
    return buf;
}
