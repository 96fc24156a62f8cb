/* test_gguf.c — the GGUF reader against the golden listings, hostile input
 * (every truncation, random corruption), the writer and split files. */
#include "t.h"
#include "gguf.h"
#include "quant/quant.h"

#include <inttypes.h>
#include <stdarg.h>
#include <math.h>
#include <dirent.h>
#include <unistd.h>

/* ---- the listing format of golden/README.md ---- */

typedef struct sbuf { char *p; size_t n, cap; } sbuf;

static void sb_put(sbuf *b, const char *s, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        b->cap = (b->n + n + 1) * 2;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}
static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    sb_put(b, tmp, (size_t)n);
}

/* Python's json.dumps(s, ensure_ascii=False). */
static void sb_json_str(sbuf *b, const char *p, uint64_t n)
{
    sb_put(b, "\"", 1);
    for (uint64_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        switch (c) {
        case '"': sb_put(b, "\\\"", 2); break;
        case '\\': sb_put(b, "\\\\", 2); break;
        case '\n': sb_put(b, "\\n", 2); break;
        case '\r': sb_put(b, "\\r", 2); break;
        case '\t': sb_put(b, "\\t", 2); break;
        case '\b': sb_put(b, "\\b", 2); break;
        case '\f': sb_put(b, "\\f", 2); break;
        default:
            if (c < 0x20) sb_printf(b, "\\u%04x", c);
            else sb_put(b, (const char *)&c, 1);
        }
    }
    sb_put(b, "\"", 1);
}

/* numpy's repr of a float32: the shortest digits that round-trip, printed
 * as Python prints floats (scientific below 1e-4 and from 1e16). */
static void sb_f32(sbuf *b, float f)
{
    if (f == 0) { sb_put(b, signbit(f) ? "-0.0" : "0.0", signbit(f) ? 4 : 3); return; }
    if (isnan(f)) { sb_put(b, "nan", 3); return; }
    if (isinf(f)) { sb_put(b, f < 0 ? "-inf" : "inf", f < 0 ? 4 : 3); return; }
    char e[64];
    int p;
    for (p = 1; p <= 9; p++) {
        snprintf(e, sizeof e, "%.*e", p - 1, (double)f);
        if (strtof(e, NULL) == f) break;
    }
    /* e = "-d.ddde[+-]XX": digits and exponent */
    char digits[16];
    int nd = 0, neg = e[0] == '-';
    const char *q = e + neg;
    for (; *q && *q != 'e'; q++)
        if (*q != '.') digits[nd++] = *q;
    while (nd > 1 && digits[nd - 1] == '0') nd--;
    int exp = atoi(q + 1);
    if (neg) sb_put(b, "-", 1);
    if (exp < -4 || exp >= 16) {
        sb_put(b, digits, 1);
        if (nd > 1) { sb_put(b, ".", 1); sb_put(b, digits + 1, (size_t)nd - 1); }
        sb_printf(b, "e%c%02d", exp < 0 ? '-' : '+', abs(exp));
    } else if (exp < 0) {
        sb_put(b, "0.", 2);
        for (int i = 0; i < -exp - 1; i++) sb_put(b, "0", 1);
        sb_put(b, digits, (size_t)nd);
    } else {
        for (int i = 0; i <= exp; i++) sb_put(b, i < nd ? &digits[i] : "0", 1);
        sb_put(b, ".", 1);
        if (nd > exp + 1) sb_put(b, digits + exp + 1, (size_t)(nd - exp - 1));
        else sb_put(b, "0", 1);
    }
}

static void sb_value(sbuf *b, const gguf_value *v);

static void sb_scalar_elem(sbuf *b, const gguf_value *a, uint64_t i)
{
    switch (a->v.arr.etype) {
    case GGUF_FLOAT32: sb_f32(b, (float)gguf_arr_float(a, i)); break;
    case GGUF_FLOAT64: sb_printf(b, "%.17g", gguf_arr_float(a, i)); break;
    case GGUF_BOOL: sb_printf(b, "%s", gguf_arr_int(a, i) ? "true" : "false"); break;
    case GGUF_UINT64: sb_printf(b, "%" PRIu64, (uint64_t)gguf_arr_int(a, i)); break;
    default: sb_printf(b, "%" PRId64, gguf_arr_int(a, i)); break;
    }
}

static void sb_value(sbuf *b, const gguf_value *v)
{
    switch (v->type) {
    case GGUF_STRING: sb_json_str(b, v->v.s.p, v->v.s.n); break;
    case GGUF_FLOAT32: sb_f32(b, (float)v->v.f); break;
    case GGUF_FLOAT64: sb_printf(b, "%.17g", v->v.f); break;
    case GGUF_BOOL: sb_printf(b, "%s", v->v.u ? "true" : "false"); break;
    case GGUF_INT8: case GGUF_INT16: case GGUF_INT32: case GGUF_INT64: sb_printf(b, "%" PRId64, v->v.i); break;
    case GGUF_ARRAY: {
        uint64_t n = v->v.arr.n < 8 ? v->v.arr.n : 8;
        sb_put(b, "[", 1);
        for (uint64_t i = 0; i < n; i++) {
            if (i) sb_put(b, ", ", 2);
            if (v->v.arr.items) sb_value(b, &v->v.arr.items[i]);
            else sb_scalar_elem(b, v, i);
        }
        sb_put(b, "]", 1);
        break;
    }
    default: sb_printf(b, "%" PRIu64, v->v.u); break;
    }
}

static void listing_meta(const gguf_file *f, sbuf *b)
{
    for (uint64_t i = 0; i < f->n_kv; i++) {
        const gguf_kv *kv = &f->kv[i];
        sb_printf(b, "%s\t", kv->key);
        if (kv->val.type == GGUF_ARRAY)
            sb_printf(b, "ARRAY[%s,%" PRIu64 "]\t", gguf_vtype_name(kv->val.v.arr.etype), kv->val.v.arr.n);
        else
            sb_printf(b, "%s\t", gguf_vtype_name(kv->val.type));
        sb_value(b, &kv->val);
        sb_put(b, "\n", 1);
    }
}

static void listing_tensors(const gguf_file *f, sbuf *b)
{
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const gguf_tensor *t = &f->tensors[i];
        sb_printf(b, "%s\t%s\t", t->name, quant_type(t->type)->name);
        for (uint32_t d = 0; d < t->n_dims; d++) sb_printf(b, "%s%" PRIu64, d ? "," : "", t->ne[d]);
        sb_printf(b, "\t%" PRIu64 "\t%" PRIu64 "\n", t->offset, t->nbytes);
    }
}

/* Compares line by line; reports the first differing line. */
static int compare_text(t_state *t_, const char *what, const char *got, const char *want)
{
    int line = 1;
    const char *g = got, *w = want;
    while (*g || *w) {
        const char *ge = strchr(g, '\n'), *we = strchr(w, '\n');
        size_t gl = ge ? (size_t)(ge - g) : strlen(g), wl = we ? (size_t)(we - w) : strlen(w);
        if (gl != wl || memcmp(g, w, gl) != 0) {
            t_failf(t_, __FILE__, __LINE__, "%s line %d:\n    got:  %.*s\n    want: %.*s", what, line,
                    (int)(gl > 300 ? 300 : gl), g, (int)(wl > 300 ? 300 : wl), w);
            return -1;
        }
        g += gl + (ge != NULL);
        w += wl + (we != NULL);
        line++;
    }
    return line - 1;
}

static int list_ggufs(const char *dir, char names[][256], int max)
{
    DIR *d = opendir(t_shared(dir));
    if (!d) return 0;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) && n < max) {
        size_t l = strlen(de->d_name);
        if (l > 5 && l + strlen(dir) + 2 <= 256 && !strcmp(de->d_name + l - 5, ".gguf")) {
            memcpy(names[n], dir, strlen(dir));
            names[n][strlen(dir)] = '/';
            memcpy(names[n] + strlen(dir) + 1, de->d_name, l + 1);
            n++;
        }
    }
    closedir(d);
    return n;
}

TEST(gguf_golden_listings)
{
    static char names[64][256];
    int n = list_ggufs("golden", names, 64);
    n += list_ggufs("golden/tokenizer", names + n, 64 - n);
    n += list_ggufs("models/stories260K-moe", names + n, 64 - n);
    REQUIREF(n >= 20, "found only %d golden GGUF files", n);
    for (int i = 0; i < n; i++) {
        mf_error e;
        gguf_file *f = gguf_open(t_shared(names[i]), &e);
        CHECKF(f, "%s: %s", names[i], e.msg);
        if (!f) continue;
        char base[256];
        snprintf(base, sizeof base, "%.*s", (int)(strlen(names[i]) - 5), names[i]);
        char path[300];
        snprintf(path, sizeof path, "%s.meta.txt", base);
        char *want = t_read_file(t_shared(path), NULL);
        CHECKF(want, "missing %s", path);
        sbuf b = { 0 };
        listing_meta(f, &b);
        if (want) CHECKF(compare_text(t_, path, b.p ? b.p : "", want) >= 10, "%s: too few lines", path);
        free(want);
        free(b.p);
        snprintf(path, sizeof path, "%s.tensors.txt", base);
        want = t_read_file(t_shared(path), NULL);
        CHECKF(want, "missing %s", path);
        b = (sbuf){ 0 };
        listing_tensors(f, &b);
        if (want) CHECKF(compare_text(t_, path, b.p ? b.p : "", want) == (int)f->n_tensors, "%s: line count", path);
        free(want);
        free(b.p);
        gguf_close(f);
    }
}

TEST(gguf_getters)
{
    mf_error e;
    gguf_file *f = gguf_open(t_shared("golden/qwen3moe-f32.gguf"), &e);
    REQUIREF(f, "%s", e.msg);
    uint32_t u;
    CHECK(gguf_get_u32(f, "qwen3moe.block_count", &u, &e) == 0 && u == 3);
    float x;
    CHECK(gguf_get_f32(f, "qwen3moe.rope.freq_base", &x, &e) == 0 && x == 1e6f);
    CHECK(gguf_get_u32(f, "qwen3moe.no_such_key", &u, &e) == -1);
    CHECKF(strstr(e.msg, "qwen3moe.no_such_key") && strstr(e.msg, "missing"), "%s", e.msg);
    CHECK(gguf_get_u32(f, "general.architecture", &u, &e) == -1);
    CHECKF(strstr(e.msg, "expected") && strstr(e.msg, "STRING"), "%s", e.msg);
    CHECK(gguf_opt_u32(f, "qwen3moe.absent", 7, &u, &e) == 0 && u == 7);
    const char *s;
    CHECK(gguf_get_str(f, "general.architecture", &s, &e) == 0 && !strcmp(s, "qwen3moe"));
    const gguf_value *arr;
    CHECK(gguf_get_arr(f, "tokenizer.ggml.tokens", GGUF_STRING, &arr, &e) == 0 && arr->v.arr.n == 512);
    CHECK(gguf_get_arr(f, "tokenizer.ggml.tokens", GGUF_INT32, &arr, &e) == -1);
    const gguf_tensor *t = gguf_find_tensor(f, "blk.0.ffn_gate_exps.weight");
    REQUIRE(t);
    CHECK(t->ne[0] == 256 && t->ne[1] == 256 && t->ne[2] == 8 && t->type == MF_TYPE_F32);
    gguf_close(f);
}

/* A small file with every value type, nested arrays and a few tensors. */
static int write_small(const char *path, mf_error *e)
{
    gguf_writer *w = gguf_writer_new();
    gguf_w_str(w, "general.architecture", "test");
    gguf_w_u32(w, "test.u32", 42);
    gguf_w_i32(w, "test.i32", -7);
    gguf_w_u64(w, "test.u64", 1ull << 40);
    gguf_w_f32(w, "test.f32", 0.5f);
    gguf_w_bool(w, "test.bool", true);
    const char *strs[] = { "a", "bc", "", "d\"e" };
    gguf_w_arr_str(w, "test.strs", strs, 4);
    int32_t ints[] = { 1, -2, 3 };
    gguf_w_arr_i32(w, "test.ints", ints, 3);
    float fl[] = { 1.5f, -2.25f };
    gguf_w_arr_f32(w, "test.floats", fl, 2);
    /* a nested array: ARRAY[ARRAY[INT32]] */
    gguf_value inner[2], outer;
    for (int i = 0; i < 2; i++) {
        inner[i].type = GGUF_ARRAY;
        inner[i].v.arr.etype = GGUF_INT32;
        inner[i].v.arr.n = 3;
        inner[i].v.arr.raw = (const uint8_t *)ints;
        inner[i].v.arr.items = NULL;
    }
    outer.type = GGUF_ARRAY;
    outer.v.arr.etype = GGUF_ARRAY;
    outer.v.arr.n = 2;
    outer.v.arr.items = inner;
    outer.v.arr.raw = NULL;
    gguf_w_value(w, "test.nested", &outer);
    float data[64];
    for (int i = 0; i < 64; i++) data[i] = (float)i;
    uint64_t ne1[1] = { 64 }, ne2[2] = { 32, 2 }, ne3[3] = { 32, 1, 2 };
    int rc = gguf_w_tensor(w, "a.weight", MF_TYPE_F32, 1, ne1, data, e);
    if (!rc) rc = gguf_w_tensor(w, "b.weight", MF_TYPE_F32, 2, ne2, data, e);
    if (!rc) rc = gguf_w_tensor(w, "c.weight", MF_TYPE_F32, 3, ne3, data, e);
    if (!rc) rc = gguf_w_write(w, path, 0, e);
    gguf_writer_free(w);
    return rc;
}

TEST(gguf_writer_roundtrip)
{
    mf_error e;
    char path[512];
    snprintf(path, sizeof path, "%s/small.gguf", t_tmpdir());
    REQUIREF(write_small(path, &e) == 0, "%s", e.msg);
    gguf_file *f = gguf_open(path, &e);
    REQUIREF(f, "%s", e.msg);
    uint64_t u64;
    int32_t i32;
    CHECK(gguf_get_u64(f, "test.u64", &u64, &e) == 0 && u64 == (1ull << 40));
    CHECK(gguf_get_i32(f, "test.i32", &i32, &e) == 0 && i32 == -7);
    const gguf_kv *kv = gguf_find(f, "test.nested");
    REQUIRE(kv && kv->val.type == GGUF_ARRAY && kv->val.v.arr.n == 2);
    CHECK(kv->val.v.arr.items[1].v.arr.n == 3 && gguf_arr_int(&kv->val.v.arr.items[1], 1) == -2);
    const gguf_value *a;
    CHECK(gguf_get_arr(f, "test.strs", GGUF_STRING, &a, &e) == 0 && a->v.arr.n == 4 && a->v.arr.items[3].v.s.n == 3);
    const gguf_tensor *t = gguf_find_tensor(f, "c.weight");
    REQUIRE(t && t->n_dims == 3 && t->nbytes == 256);
    CHECK(((const float *)t->data)[63] == 63.0f);
    CHECK(t->offset % 32 == 0);
    gguf_close(f);
}

/* Parses a copy of exactly len bytes so that ASan sees any read past it. */
static int parse_copy(const uint8_t *buf, size_t len)
{
    uint8_t *p = malloc(len ? len : 1);
    memcpy(p, buf, len);
    mf_error e;
    e.msg[0] = 0;
    gguf_file *f = gguf_open_buffer(p, len, "trunc", &e);
    int ok = f != NULL;
    if (f) {
        /* touch what a user of the file would: every tensor's bytes */
        volatile uint8_t sink = 0;
        for (uint64_t i = 0; i < f->n_tensors; i++)
            if (f->tensors[i].nbytes) sink ^= ((const uint8_t *)f->tensors[i].data)[f->tensors[i].nbytes - 1];
        (void)sink;
        gguf_close(f);
    } else if (!e.msg[0]) {
        ok = -1; /* failure without a message */
    }
    free(p);
    return ok;
}

TEST(gguf_truncation_every_byte)
{
    mf_error e;
    char path[512];
    snprintf(path, sizeof path, "%s/trunc.gguf", t_tmpdir());
    REQUIREF(write_small(path, &e) == 0, "%s", e.msg);
    size_t len;
    uint8_t *buf = t_read_file(path, &len);
    REQUIRE(buf);
    for (size_t n = 0; n < len; n++) {
        int r = parse_copy(buf, n);
        CHECKF(r == 0, "truncated at %zu of %zu: %s", n, len, r > 0 ? "parsed" : "error without message");
    }
    CHECK(parse_copy(buf, len) == 1);
    free(buf);

    /* a golden file: every byte of the header, then a sample of the data */
    buf = t_read_file(t_shared("golden/glm4moe-q4_k_m.gguf"), &len);
    REQUIRE(buf);
    gguf_file *f = gguf_open_buffer(buf, len, "glm", &e);
    REQUIREF(f, "%s", e.msg);
    size_t hdr = f->parts[0].data_offset;
    gguf_close(f);
    size_t step = t_asan() ? 7 : 1;
    for (size_t n = 0; n < hdr; n += step) CHECKF(parse_copy(buf, n) == 0, "golden truncated at %zu parsed", n);
    for (size_t n = hdr; n < len; n += 4099) CHECKF(parse_copy(buf, n) == 0, "golden truncated at %zu parsed", n);
    free(buf);
}

TEST(gguf_random_corruption)
{
    size_t len;
    uint8_t *orig = t_read_file(t_shared("golden/qwen3moe-q4_k_m.gguf"), &len);
    REQUIRE(orig);
    mf_error e;
    gguf_file *f = gguf_open_buffer(orig, len, "q", &e);
    REQUIREF(f, "%s", e.msg);
    size_t hdr = f->parts[0].data_offset;
    gguf_close(f);
    uint8_t *p = malloc(len);
    uint64_t s = 0x9e3779b97f4a7c15ull;
    int rounds = t_asan() ? 1000 : 4000, parsed = 0, failed = 0;
    for (int r = 0; r < rounds; r++) {
        memcpy(p, orig, len);
        int flips = 1 + r % 4;
        for (int k = 0; k < flips; k++) {
            s ^= s << 13; s ^= s >> 7; s ^= s << 17;
            size_t at = (size_t)(s % hdr);
            uint8_t v = (uint8_t)(s >> 32);
            /* mostly random bytes; sometimes the extremes that break counts */
            p[at] = (r % 3 == 0) ? 0xff : (r % 3 == 1) ? v : (uint8_t)(p[at] ^ (1u << (s >> 60 & 7)));
        }
        gguf_file *g = gguf_open_buffer(p, len, "flip", &e);
        if (g) {
            parsed++;
            gguf_close(g);
        } else {
            failed++;
            CHECKF(e.msg[0], "round %d: error without message", r);
        }
    }
    CHECK(parsed + failed == rounds);
    free(p);
    free(orig);
}

TEST(gguf_errors_name_what_and_where)
{
    mf_error e;
    uint8_t junk[64] = "NOTGGUF";
    CHECK(gguf_open_buffer(junk, sizeof junk, "junk.bin", &e) == NULL);
    CHECKF(strstr(e.msg, "junk.bin") && strstr(e.msg, "magic"), "%s", e.msg);
    CHECK(gguf_open("/nonexistent/model.gguf", &e) == NULL);
    CHECKF(strstr(e.msg, "/nonexistent/model.gguf"), "%s", e.msg);
    uint8_t v1[24] = { 'G', 'G', 'U', 'F', 1, 0, 0, 0 };
    CHECK(gguf_open_buffer(v1, sizeof v1, "v1.gguf", &e) == NULL);
    CHECKF(strstr(e.msg, "version") && strstr(e.msg, "found 1"), "%s", e.msg);
    /* a tensor whose data runs past the end */
    size_t len;
    uint8_t *buf = t_read_file(t_shared("golden/glm4moe-q4_k_m.gguf"), &len);
    REQUIRE(buf);
    CHECK(gguf_open_buffer(buf, len - 100, "short.gguf", &e) == NULL);
    CHECKF(strstr(e.msg, "short.gguf") && strstr(e.msg, "outside"), "%s", e.msg);
    free(buf);
}

static int same_bytes(const gguf_tensor *a, const gguf_tensor *b)
{
    return a->nbytes == b->nbytes && a->type == b->type && memcmp(a->data, b->data, a->nbytes) == 0;
}

TEST(gguf_split_files)
{
    mf_error e;
    gguf_file *src = gguf_open(t_shared("golden/qwen3moe-q4_k_m.gguf"), &e);
    REQUIREF(src, "%s", e.msg);
    gguf_writer *w = gguf_writer_new();
    for (uint64_t i = 0; i < src->n_kv; i++) gguf_w_value(w, src->kv[i].key, &src->kv[i].val);
    for (uint64_t i = 0; i < src->n_tensors; i++) {
        const gguf_tensor *t = &src->tensors[i];
        REQUIREF(gguf_w_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data, &e) == 0, "%s", e.msg);
    }
    char prefix[512], first[600], part2[600];
    snprintf(prefix, sizeof prefix, "%s/split", t_tmpdir());
    REQUIREF(gguf_w_write(w, prefix, 10, &e) == 0, "%s", e.msg);
    gguf_writer_free(w);
    int count = (int)((src->n_tensors + 9) / 10);
    gguf_split_path(first, sizeof first, prefix, 1, count);
    gguf_file *f = gguf_open(first, &e);
    REQUIREF(f, "%s", e.msg);
    CHECK(f->n_parts == count);
    CHECK(f->n_tensors == src->n_tensors);
    for (uint64_t i = 0; i < src->n_tensors && i < f->n_tensors; i++) {
        const gguf_tensor *t = gguf_find_tensor(f, src->tensors[i].name);
        CHECKF(t && same_bytes(t, &src->tensors[i]), "tensor %s differs", src->tensors[i].name);
        if (t) CHECK(t->file == (int)(i / 10));
    }
    const char *arch;
    CHECK(gguf_get_str(f, "general.architecture", &arch, &e) == 0 && !strcmp(arch, "qwen3moe"));
    gguf_close(f);

    /* a missing part is named */
    gguf_split_path(part2, sizeof part2, prefix, 2, count);
    char moved[700];
    snprintf(moved, sizeof moved, "%s.moved", part2);
    REQUIRE(rename(part2, moved) == 0);
    CHECK(gguf_open(first, &e) == NULL);
    CHECKF(strstr(e.msg, "missing") && strstr(e.msg, "-00002-of-"), "%s", e.msg);
    /* a part of another set (here: part 3 in part 2's place) is refused */
    char part3[600];
    gguf_split_path(part3, sizeof part3, prefix, 3, count);
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", part3, part2);
    REQUIRE(system(cmd) == 0);
    CHECK(gguf_open(first, &e) == NULL);
    CHECKF(strstr(e.msg, "split.no"), "%s", e.msg);
    gguf_close(src);
}
