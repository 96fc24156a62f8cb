/* gguf.c — the GGUF v2/v3 reader.
 *
 * One idea: everything read from the file goes through a bounded cursor
 * (struct cur) that knows the file name and its own byte offset, so a bad
 * count or length is reported as "<file> at byte N: <what>: expected X,
 * found Y" and never read past the end. Tensor data must lie inside the file,
 * aligned, without overlaps; element counts and byte sizes are checked for
 * overflow. Nothing here asserts on file data. Split models
 * (<prefix>-00001-of-0000N.gguf) are opened part by part and their tensor
 * tables joined; metadata is the first part's.
 */
#include "gguf.h"
#include "gguf_internal.h"
#include "quant/quant.h"

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define GGUF_MAGIC "GGUF"
/* Limits that no real file reaches; they bound what hostile counts can make
 * us allocate before the cursor runs out of bytes. */
#define GGUF_MAX_NESTING 8
#define GGUF_MAX_NAME 65535

/* ---- arena: every allocation of a parsed file, freed at once ---- */

struct gguf_arena {
    struct gguf_arena *next;
    size_t used, cap;
    _Alignas(16) unsigned char mem[];
};

static void *arena_alloc(gguf_arena **a, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    if (!*a || (*a)->cap - (*a)->used < n) {
        size_t cap = n > (1u << 20) ? n : (1u << 20);
        gguf_arena *b = malloc(sizeof *b + cap);
        if (!b) return NULL;
        b->next = *a;
        b->used = 0;
        b->cap = cap;
        *a = b;
    }
    void *p = (*a)->mem + (*a)->used;
    (*a)->used += n;
    return p;
}

static void arena_free(gguf_arena *a)
{
    while (a) {
        gguf_arena *n = a->next;
        free(a);
        a = n;
    }
}

/* ---- bounded cursor ---- */

typedef struct cur {
    const uint8_t *p;
    uint64_t len, pos;
    const char *file;
    mf_error *e;
    gguf_arena **arena;
} cur;

static int cur_fail(cur *c, const char *what, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int cur_fail(cur *c, const char *what, const char *fmt, ...)
{
    char detail[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    return mf_fail(c->e, "%s at byte %" PRIu64 ": %s: %s", c->file, c->pos, what, detail);
}

static int cur_need(cur *c, uint64_t n, const char *what)
{
    if (c->len - c->pos < n)
        return cur_fail(c, what, "expected %" PRIu64 " more bytes, found %" PRIu64 " (file truncated?)",
                        n, c->len - c->pos);
    return 0;
}

static int cur_bytes(cur *c, void *out, uint64_t n, const char *what)
{
    if (cur_need(c, n, what)) return -1;
    memcpy(out, c->p + c->pos, n);
    c->pos += n;
    return 0;
}

static int cur_u32(cur *c, uint32_t *v, const char *what) { return cur_bytes(c, v, 4, what); }
static int cur_u64(cur *c, uint64_t *v, const char *what) { return cur_bytes(c, v, 8, what); }

/* A GGUF string: u64 length then bytes. Points into the buffer. */
static int cur_str(cur *c, gguf_str *s, const char *what)
{
    if (cur_u64(c, &s->n, what)) return -1;
    if (cur_need(c, s->n, what)) return -1;
    s->p = (const char *)c->p + c->pos;
    c->pos += s->n;
    return 0;
}

char *gguf_arena_strdup(gguf_arena **a, const char *p, uint64_t n)
{
    char *s = arena_alloc(a, n + 1);
    if (!s) return NULL;
    memcpy(s, p, n);
    s[n] = 0;
    return s;
}

const uint8_t gguf_vtype_size[GGUF_VTYPE_COUNT] = {
    [GGUF_UINT8] = 1, [GGUF_INT8] = 1, [GGUF_UINT16] = 2, [GGUF_INT16] = 2,
    [GGUF_UINT32] = 4, [GGUF_INT32] = 4, [GGUF_FLOAT32] = 4, [GGUF_BOOL] = 1,
    [GGUF_UINT64] = 8, [GGUF_INT64] = 8, [GGUF_FLOAT64] = 8,
};

const char *gguf_vtype_name(gguf_vtype t)
{
    static const char *names[GGUF_VTYPE_COUNT] = {
        "UINT8", "INT8", "UINT16", "INT16", "UINT32", "INT32", "FLOAT32",
        "BOOL", "STRING", "ARRAY", "UINT64", "INT64", "FLOAT64",
    };
    return (unsigned)t < GGUF_VTYPE_COUNT ? names[t] : "invalid";
}

/* Reads one scalar of type t at p into v. */
void gguf_scalar_from(gguf_value *v, gguf_vtype t, const uint8_t *p)
{
    v->type = t;
    switch (t) {
    case GGUF_UINT8: v->v.u = p[0]; break;
    case GGUF_BOOL: v->v.u = p[0]; break;
    case GGUF_INT8: v->v.i = (int8_t)p[0]; break;
    case GGUF_UINT16: { uint16_t x; memcpy(&x, p, 2); v->v.u = x; break; }
    case GGUF_INT16: { int16_t x; memcpy(&x, p, 2); v->v.i = x; break; }
    case GGUF_UINT32: { uint32_t x; memcpy(&x, p, 4); v->v.u = x; break; }
    case GGUF_INT32: { int32_t x; memcpy(&x, p, 4); v->v.i = x; break; }
    case GGUF_FLOAT32: { float x; memcpy(&x, p, 4); v->v.f = x; break; }
    case GGUF_UINT64: { uint64_t x; memcpy(&x, p, 8); v->v.u = x; break; }
    case GGUF_INT64: { int64_t x; memcpy(&x, p, 8); v->v.i = x; break; }
    case GGUF_FLOAT64: { double x; memcpy(&x, p, 8); v->v.f = x; break; }
    default: break;
    }
}

static int read_value(cur *c, gguf_value *v, gguf_vtype t, int depth, const char *key)
{
    if ((unsigned)t >= GGUF_VTYPE_COUNT)
        return cur_fail(c, key, "value type: expected 0..12, found %u", (unsigned)t);
    if (t == GGUF_STRING) {
        v->type = t;
        return cur_str(c, &v->v.s, key);
    }
    if (t != GGUF_ARRAY) {
        if (cur_need(c, gguf_vtype_size[t], key)) return -1;
        gguf_scalar_from(v, t, c->p + c->pos);
        if (t == GGUF_BOOL && v->v.u > 1)
            return cur_fail(c, key, "bool: expected 0 or 1, found %" PRIu64, v->v.u);
        c->pos += gguf_vtype_size[t];
        return 0;
    }
    if (depth >= GGUF_MAX_NESTING)
        return cur_fail(c, key, "array nesting: expected at most %d levels", GGUF_MAX_NESTING);
    uint32_t et;
    uint64_t n;
    if (cur_u32(c, &et, key) || cur_u64(c, &n, key)) return -1;
    if (et >= GGUF_VTYPE_COUNT)
        return cur_fail(c, key, "array element type: expected 0..12, found %u", et);
    v->type = GGUF_ARRAY;
    v->v.arr.etype = (gguf_vtype)et;
    v->v.arr.n = n;
    v->v.arr.raw = NULL;
    v->v.arr.items = NULL;
    if (et != GGUF_STRING && et != GGUF_ARRAY) {
        uint64_t sz = gguf_vtype_size[et];
        if (n > (c->len - c->pos) / sz)
            return cur_fail(c, key, "array of %" PRIu64 " %s: expected %" PRIu64 " bytes, found %" PRIu64,
                            n, gguf_vtype_name((gguf_vtype)et), n * sz > n ? n * sz : UINT64_MAX, c->len - c->pos);
        v->v.arr.raw = c->p + c->pos;
        if (et == GGUF_BOOL)
            for (uint64_t i = 0; i < n; i++)
                if (v->v.arr.raw[i] > 1)
                    return cur_fail(c, key, "bool element %" PRIu64 ": expected 0 or 1, found %u", i, v->v.arr.raw[i]);
        c->pos += n * sz;
        return 0;
    }
    /* Strings need at least 8 bytes each, arrays 12: bound n before allocating. */
    uint64_t min_sz = et == GGUF_STRING ? 8 : 12;
    if (n > (c->len - c->pos) / min_sz)
        return cur_fail(c, key, "array of %" PRIu64 " %s: more elements than the remaining %" PRIu64 " bytes can hold",
                        n, gguf_vtype_name((gguf_vtype)et), c->len - c->pos);
    v->v.arr.items = arena_alloc(c->arena, (size_t)n * sizeof(gguf_value) + 1);
    if (!v->v.arr.items) return cur_fail(c, key, "out of memory for %" PRIu64 " array items", n);
    v->v.arr.raw = c->p + c->pos;
    for (uint64_t i = 0; i < n; i++)
        if (read_value(c, &v->v.arr.items[i], (gguf_vtype)et, depth + 1, key)) return -1;
    return 0;
}

int gguf_scalar_as_u64(const gguf_value *v, uint64_t *out)
{
    switch (v->type) {
    case GGUF_UINT8: case GGUF_UINT16: case GGUF_UINT32: case GGUF_UINT64:
        *out = v->v.u; return 0;
    case GGUF_INT8: case GGUF_INT16: case GGUF_INT32: case GGUF_INT64:
        if (v->v.i < 0) return -1;
        *out = (uint64_t)v->v.i; return 0;
    default: return -1;
    }
}

/* ---- one part ---- */

static int parse_part(gguf_file *f, gguf_part *part, mf_error *e)
{
    cur c = { part->map, part->size, 0, part->path, e, &f->arena };
    char magic[4];
    if (cur_bytes(&c, magic, 4, "magic")) return -1;
    if (memcmp(magic, GGUF_MAGIC, 4) != 0)
        return mf_fail(e, "%s at byte 0: magic: expected \"GGUF\", found %02x %02x %02x %02x (not a GGUF file)",
                       part->path, (uint8_t)magic[0], (uint8_t)magic[1], (uint8_t)magic[2], (uint8_t)magic[3]);
    uint32_t version;
    if (cur_u32(&c, &version, "version")) return -1;
    if (version != 2 && version != 3) {
        c.pos = 4;
        if (version == 1) return cur_fail(&c, "version", "expected 2 or 3, found 1 (GGUF v1 is not supported; re-convert the model)");
        if ((version & 0xffff) == 0 && (version >> 24) <= 3)
            return cur_fail(&c, "version", "expected 2 or 3, found %u (a big-endian GGUF; not supported)", version);
        return cur_fail(&c, "version", "expected 2 or 3, found %u", version);
    }
    uint64_t n_tensors, n_kv;
    if (cur_u64(&c, &n_tensors, "tensor count") || cur_u64(&c, &n_kv, "metadata count")) return -1;
    /* each kv needs >= 8+1+4+1 bytes; each tensor info >= 8+4+8+4+8 */
    if (n_kv > (c.len - c.pos) / 13)
        return cur_fail(&c, "metadata count", "%" PRIu64 " entries cannot fit in the %" PRIu64 " bytes left", n_kv, c.len - c.pos);
    if (n_tensors > (c.len - c.pos) / 32)
        return cur_fail(&c, "tensor count", "%" PRIu64 " tensors cannot fit in the %" PRIu64 " bytes left", n_tensors, c.len - c.pos);

    bool first = part == &f->parts[0];
    gguf_kv *kv = arena_alloc(&f->arena, (size_t)n_kv * sizeof *kv + 1);
    if (!kv) return mf_fail(e, "%s: out of memory", part->path);
    uint32_t alignment = GGUF_DEFAULT_ALIGNMENT;
    for (uint64_t i = 0; i < n_kv; i++) {
        kv[i].offset = c.pos;
        gguf_str k;
        if (cur_str(&c, &k, "metadata key")) return -1;
        if (k.n == 0 || k.n > GGUF_MAX_NAME) {
            c.pos = kv[i].offset;
            return cur_fail(&c, "metadata key", "expected a length of 1..%d, found %" PRIu64, GGUF_MAX_NAME, k.n);
        }
        if (memchr(k.p, 0, k.n)) {
            c.pos = kv[i].offset;
            return cur_fail(&c, "metadata key", "contains a NUL byte");
        }
        kv[i].key = gguf_arena_strdup(&f->arena, k.p, k.n);
        if (!kv[i].key) return mf_fail(e, "%s: out of memory", part->path);
        for (uint64_t j = 0; j < i; j++)
            if (strcmp(kv[j].key, kv[i].key) == 0) {
                c.pos = kv[i].offset;
                return cur_fail(&c, kv[i].key, "duplicate metadata key");
            }
        uint32_t t;
        if (cur_u32(&c, &t, kv[i].key)) return -1;
        if (read_value(&c, &kv[i].val, (gguf_vtype)t, 0, kv[i].key)) return -1;
        if (strcmp(kv[i].key, "general.alignment") == 0) {
            uint64_t a;
            if (kv[i].val.type != GGUF_UINT32 || gguf_scalar_as_u64(&kv[i].val, &a) || a == 0 || (a & (a - 1)) || a > (1u << 20))
                return cur_fail(&c, "general.alignment", "expected a UINT32 power of two, found %s",
                                gguf_vtype_name(kv[i].val.type));
            alignment = (uint32_t)a;
        }
    }
    if (first) {
        f->version = version;
        f->kv = kv;
        f->n_kv = n_kv;
        f->alignment = alignment;
    } else {
        /* every later part must say it belongs to this set, at its place */
        uint64_t no = UINT64_MAX, count = UINT64_MAX, want_no = (uint64_t)(part - f->parts);
        for (uint64_t i = 0; i < n_kv; i++) {
            if (strcmp(kv[i].key, "split.no") == 0 && gguf_scalar_as_u64(&kv[i].val, &no)) no = UINT64_MAX;
            if (strcmp(kv[i].key, "split.count") == 0 && gguf_scalar_as_u64(&kv[i].val, &count)) count = UINT64_MAX;
        }
        if (no != want_no || count != (uint64_t)f->n_parts)
            return mf_fail(e, "%s: split.no / split.count: expected %" PRIu64 " / %d, found %s%" PRId64 " / %s%" PRId64
                              " (a part of another set?)", part->path, want_no, f->n_parts,
                           no == UINT64_MAX ? "missing " : "", no == UINT64_MAX ? (int64_t)-1 : (int64_t)no,
                           count == UINT64_MAX ? "missing " : "", count == UINT64_MAX ? (int64_t)-1 : (int64_t)count);
        if (alignment != f->alignment)
            return mf_fail(e, "%s: general.alignment %u differs from the first part's %u", part->path, alignment, f->alignment);
    }

    /* tensor infos */
    uint64_t base = f->n_tensors;
    gguf_tensor *t = f->tensors + base;
    for (uint64_t i = 0; i < n_tensors; i++, t++) {
        uint64_t at = c.pos;
        gguf_str name;
        if (cur_str(&c, &name, "tensor name")) return -1;
        if (name.n == 0 || name.n > GGUF_MAX_NAME || memchr(name.p, 0, name.n)) {
            c.pos = at;
            return cur_fail(&c, "tensor name", "expected 1..%d bytes without NUL, found length %" PRIu64, GGUF_MAX_NAME, name.n);
        }
        t->name = gguf_arena_strdup(&f->arena, name.p, name.n);
        if (!t->name) return mf_fail(e, "%s: out of memory", part->path);
        if (cur_u32(&c, &t->n_dims, t->name)) return -1;
        if (t->n_dims == 0 || t->n_dims > GGUF_MAX_DIMS)
            return cur_fail(&c, t->name, "n_dims: expected 1..%d, found %u", GGUF_MAX_DIMS, t->n_dims);
        t->nelem = 1;
        for (uint32_t d = 0; d < GGUF_MAX_DIMS; d++) {
            t->ne[d] = 1;
            if (d >= t->n_dims) continue;
            if (cur_u64(&c, &t->ne[d], t->name)) return -1;
            if (t->ne[d] == 0 || t->ne[d] > INT64_MAX)
                return cur_fail(&c, t->name, "ne[%u]: expected 1..2^63-1, found %" PRIu64, d, t->ne[d]);
            if (t->nelem > INT64_MAX / t->ne[d])
                return cur_fail(&c, t->name, "element count overflows");
            t->nelem *= t->ne[d];
        }
        if (cur_u32(&c, &t->type, t->name)) return -1;
        const quant_type_info *ti = quant_type(t->type);
        if (!ti)
            return cur_fail(&c, t->name, "type: expected a known ggml type id, found %u", t->type);
        if (t->ne[0] % ti->block_elems)
            return cur_fail(&c, t->name, "ne[0] = %" PRIu64 " is not a multiple of the %s block size %u",
                            t->ne[0], ti->name, ti->block_elems);
        uint64_t blocks = t->nelem / ti->block_elems;
        if (blocks > UINT64_MAX / ti->block_bytes)
            return cur_fail(&c, t->name, "byte size overflows");
        t->nbytes = blocks * ti->block_bytes;
        uint64_t rel;
        if (cur_u64(&c, &rel, t->name)) return -1;
        if (rel % alignment)
            return cur_fail(&c, t->name, "data offset %" PRIu64 " is not a multiple of the alignment %u", rel, alignment);
        t->offset = rel; /* made absolute below, once the data section is known */
        t->file = (int)(part - f->parts);
        for (uint64_t j = 0; j < f->n_tensors + i; j++)
            if (strcmp(f->tensors[j].name, t->name) == 0) {
                c.pos = at;
                return cur_fail(&c, t->name, "duplicate tensor name");
            }
    }
    uint64_t data = (c.pos + alignment - 1) / alignment * alignment;
    if (n_tensors && data > part->size)
        return mf_fail(e, "%s: tensor data section starts at byte %" PRIu64 " past the end of the file (%" PRIu64 " bytes)",
                       part->path, data, part->size);
    part->data_offset = data;
    t = f->tensors + base;
    for (uint64_t i = 0; i < n_tensors; i++, t++) {
        uint64_t room = part->size - data;
        if (t->offset > room || t->nbytes > room - t->offset)
            return mf_fail(e, "%s: tensor %s: data [%" PRIu64 ", +%" PRIu64 ") lies outside the file's %" PRIu64
                              " bytes of tensor data (file truncated?)",
                           part->path, t->name, data + t->offset, t->nbytes, room);
        t->offset += data;
        t->data = part->map + t->offset;
    }
    f->n_tensors += n_tensors;
    return 0;
}

static int cmp_by_offset(const void *a, const void *b)
{
    const gguf_tensor *x = *(gguf_tensor *const *)a, *y = *(gguf_tensor *const *)b;
    if (x->file != y->file) return x->file < y->file ? -1 : 1;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

static int check_overlaps(gguf_file *f, mf_error *e)
{
    if (f->n_tensors < 2) return 0;
    gguf_tensor **v = malloc(f->n_tensors * sizeof *v);
    if (!v) return mf_fail(e, "out of memory");
    for (uint64_t i = 0; i < f->n_tensors; i++) v[i] = &f->tensors[i];
    qsort(v, f->n_tensors, sizeof *v, cmp_by_offset);
    int rc = 0;
    for (uint64_t i = 1; i < f->n_tensors; i++) {
        gguf_tensor *a = v[i - 1], *b = v[i];
        if (a->file == b->file && a->offset + a->nbytes > b->offset) {
            rc = mf_fail(e, "%s: tensors %s [%" PRIu64 ", +%" PRIu64 ") and %s [%" PRIu64 ", +%" PRIu64 ") overlap",
                         f->parts[a->file].path, a->name, a->offset, a->nbytes, b->name, b->offset, b->nbytes);
            break;
        }
    }
    free(v);
    return rc;
}

/* Counts tensors of a part cheaply (header only) so the table can be sized. */
static int peek_tensor_count(const gguf_part *p, uint64_t *n, mf_error *e)
{
    if (p->size >= 4 && memcmp(p->map, GGUF_MAGIC, 4) != 0)
        return mf_fail(e, "%s at byte 0: magic: expected \"GGUF\", found %02x %02x %02x %02x (not a GGUF file)", p->path,
                       p->map[0], p->map[1], p->map[2], p->map[3]);
    if (p->size < 24) return mf_fail(e, "%s: %" PRIu64 " bytes is too short for a GGUF header (24 bytes)", p->path, p->size);
    memcpy(n, p->map + 8, 8);
    if (*n > p->size / 32)
        return mf_fail(e, "%s at byte 8: tensor count: %" PRIu64 " tensors cannot fit in %" PRIu64 " bytes", p->path, *n, p->size);
    return 0;
}

static int map_part(gguf_part *p, const char *path, mf_error *e)
{
    p->fd = -1;
    p->path = strdup(path);
    if (!p->path) return mf_fail(e, "out of memory");
    p->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (p->fd < 0) return mf_fail(e, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(p->fd, &st) != 0) return mf_fail(e, "%s: cannot stat: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode)) return mf_fail(e, "%s: not a regular file", path);
    p->size = (uint64_t)st.st_size;
    if (p->size == 0) return mf_fail(e, "%s: empty file (0 bytes), expected a GGUF header", path);
    void *m = mmap(NULL, p->size, PROT_READ, MAP_SHARED, p->fd, 0);
    if (m == MAP_FAILED) return mf_fail(e, "%s: cannot mmap %" PRIu64 " bytes: %s", path, p->size, strerror(errno));
    p->map = m;
    return 0;
}

void gguf_close(gguf_file *f)
{
    if (!f) return;
    for (int i = 0; i < f->n_parts; i++) {
        gguf_part *p = &f->parts[i];
        if (p->map && p->fd >= 0) munmap((void *)p->map, p->size);
        if (p->fd >= 0) close(p->fd);
        free(p->path);
    }
    free(f->parts);
    free(f->tensors);
    free(f->resident);
    arena_free(f->arena);
    free(f);
}

void gguf_split_path(char *buf, size_t n, const char *prefix, int no, int count)
{
    snprintf(buf, n, "%s-%05d-of-%05d.gguf", prefix, no, count);
}

/* "<prefix>-00001-of-00003.gguf" -> prefix and count; 0 if not that form. */
static int split_prefix(const char *path, char *prefix, size_t n, int *count)
{
    size_t len = strlen(path);
    const char *tail = "-00001-of-00000.gguf";
    size_t tl = strlen(tail);
    if (len < tl || len - tl >= n) return 0;
    const char *s = path + len - tl;
    int no, cnt;
    char dot[8];
    if (sscanf(s, "-%5d-of-%5d.%5s", &no, &cnt, dot) != 3 || strcmp(dot, "gguf") != 0) return 0;
    memcpy(prefix, path, len - tl);
    prefix[len - tl] = 0;
    *count = cnt;
    return no;
}

static int detach_header(gguf_file *f, mf_error *e);

static gguf_file *open_parts(const char **paths, int n_parts, mf_error *e)
{
    gguf_file *f = calloc(1, sizeof *f);
    if (!f) { mf_fail(e, "out of memory"); return NULL; }
    f->parts = calloc((size_t)n_parts, sizeof *f->parts);
    if (!f->parts) { mf_fail(e, "out of memory"); free(f); return NULL; }
    for (int i = 0; i < n_parts; i++) f->parts[i].fd = -1;
    f->n_parts = n_parts;
    uint64_t total = 0;
    for (int i = 0; i < n_parts; i++) {
        uint64_t n;
        if (map_part(&f->parts[i], paths[i], e) || peek_tensor_count(&f->parts[i], &n, e)) goto fail;
        total += n;
    }
    f->tensors = calloc(total + 1, sizeof *f->tensors);
    if (!f->tensors) { mf_fail(e, "out of memory for %" PRIu64 " tensors", total); goto fail; }
    for (int i = 0; i < n_parts; i++)
        if (parse_part(f, &f->parts[i], e)) goto fail;
    if (check_overlaps(f, e) || detach_header(f, e)) goto fail;
    return f;
fail:
    gguf_close(f);
    return NULL;
}

/* Moves every pointer into [from, from+n) to the same place in to. */
static void rebase_value(gguf_value *v, const uint8_t *from, uint64_t n, const uint8_t *to)
{
#define REBASE(p) if ((const uint8_t *)(p) >= from && (const uint8_t *)(p) < from + n) (p) = (void *)(to + ((const uint8_t *)(p) - from))
    if (v->type == GGUF_STRING) {
        REBASE(v->v.s.p);
    } else if (v->type == GGUF_ARRAY) {
        if (v->v.arr.raw) REBASE(v->v.arr.raw);
        if (v->v.arr.items)
            for (uint64_t i = 0; i < v->v.arr.n; i++) rebase_value(&v->v.arr.items[i], from, n, to);
    }
#undef REBASE
}

/* Copies the first part's header (metadata and tensor infos) out of the
 * mapping, so that metadata stays readable whatever happens to the file
 * later (a truncated mapped file raises SIGBUS instead of an error). */
static int detach_header(gguf_file *f, mf_error *e)
{
    gguf_part *p = &f->parts[0];
    uint64_t n = p->data_offset ? p->data_offset : p->size;
    uint8_t *copy = arena_alloc(&f->arena, (size_t)n + 1);
    if (!copy) return mf_fail(e, "%s: out of memory for a %" PRIu64 "-byte header", p->path, n);
    memcpy(copy, p->map, n);
    for (uint64_t i = 0; i < f->n_kv; i++) rebase_value(&f->kv[i].val, p->map, n, copy);
    return 0;
}

int gguf_pread(const gguf_file *f, int part, uint64_t off, void *buf, size_t n, mf_error *e)
{
    const gguf_part *p = &f->parts[part];
    if (p->fd < 0) return mf_fail(e, "%s: reading %zu bytes at byte %" PRIu64 ": no file to read from", p->path, n, off);
    size_t done = 0;
    while (done < n) {
        ssize_t r = pread(p->fd, (uint8_t *)buf + done, n - done, (off_t)(off + done));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0)
            return mf_fail(e, "%s: reading %zu bytes at byte %" PRIu64 ": %s", p->path, n, off + done,
                           r < 0 ? strerror(errno) : "unexpected end of file (the file shrank?)");
        done += (size_t)r;
    }
    return 0;
}

int gguf_load_tensors(gguf_file *f, bool (*want)(const gguf_tensor *t, void *ctx), void *ctx, mf_error *e)
{
    uint64_t total = 0;
    for (uint64_t i = 0; i < f->n_tensors; i++)
        if (want(&f->tensors[i], ctx)) total += (f->tensors[i].nbytes + 63) / 64 * 64;
    uint8_t *buf = NULL;
    if (total && posix_memalign((void **)&buf, 64, (size_t)total) != 0)
        return mf_fail(e, "%s: cannot allocate %" PRIu64 " bytes for the resident weights", f->parts[0].path, total);
    uint64_t at = 0;
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        gguf_tensor *t = &f->tensors[i];
        if (!want(t, ctx)) { t->data = NULL; continue; }
        gguf_part *p = &f->parts[t->file];
        if (gguf_pread(f, t->file, t->offset, buf + at, (size_t)t->nbytes, e)) {
            free(buf);
            return mf_fail_wrap(e, "tensor %s", t->name);
        }
        /* these bytes now live in anonymous memory; the page cache copy can go */
        posix_fadvise(p->fd, (off_t)t->offset, (off_t)t->nbytes, POSIX_FADV_DONTNEED);
        t->data = buf + at;
        at += (t->nbytes + 63) / 64 * 64;
    }
    f->resident = buf;
    /* nothing points into the mappings any more */
    for (int i = 0; i < f->n_parts; i++) {
        gguf_part *p = &f->parts[i];
        if (p->map && p->fd >= 0) munmap((void *)p->map, p->size);
        p->map = NULL;
    }
    return 0;
}

gguf_file *gguf_open(const char *path, mf_error *e)
{
    const char *one[1] = { path };
    gguf_file *f = open_parts(one, 1, e);
    if (!f) return NULL;
    uint32_t count = 1, no = 0;
    const gguf_kv *kc = gguf_find(f, "split.count");
    if (!kc) return f;
    if (gguf_get_u32(f, "split.count", &count, e) || gguf_get_u32(f, "split.no", &no, e)) goto fail;
    if (count <= 1) return f;
    if (no != 0) {
        mf_fail(e, "%s: split.no is %u: open the first part (split.no 0) of a split model", path, no);
        goto fail;
    }
    char prefix[4096];
    int cnt = 0;
    if (split_prefix(path, prefix, sizeof prefix, &cnt) != 1) {
        mf_fail(e, "%s: split.count is %u but the name is not of the form <prefix>-00001-of-%05u.gguf", path, count, count);
        goto fail;
    }
    if ((uint32_t)cnt != count) {
        mf_fail(e, "%s: the name says %d parts, split.count says %u", path, cnt, count);
        goto fail;
    }
    uint64_t want_tensors = 0;
    const gguf_kv *kt = gguf_find(f, "split.tensors.count");
    if (kt && gguf_get_u64(f, "split.tensors.count", &want_tensors, e)) goto fail;
    gguf_close(f);
    f = NULL;

    char **names = calloc(count, sizeof *names);
    if (!names) { mf_fail(e, "out of memory"); return NULL; }
    for (uint32_t i = 0; i < count; i++) {
        names[i] = malloc(strlen(prefix) + 32);
        if (!names[i]) break;
        gguf_split_path(names[i], strlen(prefix) + 32, prefix, (int)i + 1, (int)count);
    }
    for (uint32_t i = 0; i < count && names[i]; i++)
        if (access(names[i], R_OK) != 0) {
            mf_fail(e, "%s: split part %u of %u is missing: %s: %s", path, i + 1, count, names[i], strerror(errno));
            goto free_names;
        }
    f = open_parts((const char **)names, (int)count, e);
    if (f && kt && f->n_tensors != want_tensors) {
        mf_fail(e, "%s: split.tensors.count says %" PRIu64 " tensors, the %u parts hold %" PRIu64,
                path, want_tensors, count, f->n_tensors);
        gguf_close(f);
        f = NULL;
    }
free_names:
    for (uint32_t i = 0; i < count; i++) free(names[i]);
    free(names);
    return f;
fail:
    gguf_close(f);
    return NULL;
}

gguf_file *gguf_open_buffer(const void *buf, size_t len, const char *name, mf_error *e)
{
    gguf_file *f = calloc(1, sizeof *f);
    if (!f) { mf_fail(e, "out of memory"); return NULL; }
    f->parts = calloc(1, sizeof *f->parts);
    if (!f->parts) { free(f); mf_fail(e, "out of memory"); return NULL; }
    f->n_parts = 1;
    gguf_part *p = &f->parts[0];
    p->fd = -1; /* not ours: nothing to unmap */
    p->path = strdup(name ? name : "<buffer>");
    p->map = buf;
    p->size = len;
    uint64_t n;
    if (!p->path || peek_tensor_count(p, &n, e)) goto fail;
    f->tensors = calloc(n + 1, sizeof *f->tensors);
    if (!f->tensors) { mf_fail(e, "out of memory"); goto fail; }
    if (parse_part(f, p, e) || check_overlaps(f, e)) goto fail;
    return f;
fail:
    gguf_close(f);
    return NULL;
}

