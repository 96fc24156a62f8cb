/* test_quant.c — the scalar reference kernels against ggml's own numbers:
 * every golden block type must dequantize bit for bit to the values ggml
 * produces (golden/dequant, see its README), every dot product must equal
 * the double-precision dot of the dequantized row, and the half/bfloat16
 * conversions are checked over all 65536 inputs. Quantizers are in
 * test_quant_quantize.c. */
#include "t.h"

#include "quant/quant.h"
#include "quant/ref.h"

#include <math.h>

/* splitmix64: deterministic test data. */
static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* uniform in [-1, 1) */
static float rng_float(uint64_t *s)
{
    return (float)((double)(rng_next(s) >> 11) * 0x1.0p-52 - 1.0);
}

static uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* One line of golden/dequant/index.tsv. */
typedef struct golden_row {
    char type[16];
    unsigned block_elems, block_bytes, blocks, values;
} golden_row;

/* Parses index.tsv into rows; returns the count, -1 if it cannot be read. */
static int golden_index(golden_row *rows, int max)
{
    char *text = t_read_file(t_shared("golden/dequant/index.tsv"), NULL);
    if (!text) return -1;
    int n = 0;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line && n < max; line = strtok_r(NULL, "\n", &save)) {
        golden_row r;
        if (sscanf(line, "%15s %u %u %u %u", r.type, &r.block_elems, &r.block_bytes, &r.blocks, &r.values) == 5)
            rows[n++] = r;
    }
    free(text);
    return n;
}

/* The golden blocks of one type and the floats they decode to. */
typedef struct golden_data {
    void *bin;
    float *f32;
    size_t bin_len, f32_len;
} golden_data;

static bool golden_load(const char *type, golden_data *g)
{
    char rel[64];
    snprintf(rel, sizeof rel, "golden/dequant/%s.bin", type);
    g->bin = t_read_file(t_shared(rel), &g->bin_len);
    snprintf(rel, sizeof rel, "golden/dequant/%s.f32", type);
    g->f32 = t_read_file(t_shared(rel), &g->f32_len);
    return g->bin && g->f32;
}

static void golden_free(golden_data *g)
{
    free(g->bin);
    free(g->f32);
}

TEST(quant_type_table)
{
    golden_row rows[64];
    int n = golden_index(rows, 64);
    REQUIREF(n > 0, "cannot read %s", t_shared("golden/dequant/index.tsv"));
    for (int i = 0; i < n; i++) {
        int t = quant_type_by_name(rows[i].type);
        CHECKF(t >= 0, "%s: no such type", rows[i].type);
        if (t < 0) continue;
        const quant_type_info *ti = quant_type((uint32_t)t);
        REQUIRE(ti);
        CHECKF(ti->block_elems == rows[i].block_elems && ti->block_bytes == rows[i].block_bytes,
               "%s: table has %u values in %u bytes, index.tsv %u in %u", rows[i].type, ti->block_elems,
               ti->block_bytes, rows[i].block_elems, rows[i].block_bytes);
        CHECKF(ti->dequant && ti->dot, "%s: no reference kernel", rows[i].type);
        CHECK(quant_row_bytes((uint32_t)t, rows[i].values) == (size_t)rows[i].blocks * rows[i].block_bytes);
    }
    CHECK(quant_type(MF_TYPE_F32)->dequant == quant_dequant_f32);
    CHECK(quant_row_bytes(MF_TYPE_Q4_K, 255) == 0);
    CHECK(quant_type(3 + MF_TYPE_COUNT) == NULL);
    CHECK(quant_type(4) == NULL); /* retired id */
}

/* Every type in golden/dequant: bit-identical to ggml's dequantize_row_*. */
TEST(quant_dequant_golden)
{
    golden_row rows[64];
    int n = golden_index(rows, 64);
    REQUIREF(n >= 25, "index.tsv: %d types", n);
    for (int i = 0; i < n; i++) {
        const golden_row *r = &rows[i];
        int t = quant_type_by_name(r->type);
        const quant_type_info *ti = t >= 0 ? quant_type((uint32_t)t) : NULL;
        if (!ti || !ti->dequant) {
            CHECKF(0, "%s: no dequantizer", r->type);
            continue;
        }
        golden_data g;
        if (!golden_load(r->type, &g)) {
            CHECKF(0, "%s: golden files missing", r->type);
            golden_free(&g);
            continue;
        }
        if (g.bin_len != (size_t)r->blocks * r->block_bytes || g.f32_len != (size_t)r->values * 4) {
            CHECKF(0, "%s: %zu/%zu bytes, index says %u blocks, %u values", r->type, g.bin_len, g.f32_len,
                   r->blocks, r->values);
            golden_free(&g);
            continue;
        }
        float *out = malloc((size_t)r->values * sizeof(float));
        REQUIRE(out);
        ti->dequant(g.bin, out, r->values);
        if (memcmp(out, g.f32, (size_t)r->values * sizeof(float)) != 0) {
            unsigned k = 0, bad = 0;
            for (unsigned j = 0; j < r->values; j++)
                if (f32_bits(out[j]) != f32_bits(g.f32[j]) && !bad++) k = j;
            CHECKF(0, "%s: %u of %u values differ; first at %u (block %u): got %.9g (0x%08x), want %.9g (0x%08x)",
                   r->type, bad, r->values, k, k / r->block_elems, (double)out[k], f32_bits(out[k]),
                   (double)g.f32[k], f32_bits(g.f32[k]));
        }
        free(out);
        golden_free(&g);
    }
}

/* dot(row, x) against the double-precision dot of the dequantized row. The
 * reference sums in float within a block only, so the error is a few float
 * ulps of sum|w x| per block; 1e-5 of sum|w x| has a wide margin. Also:
 * with x a unit vector the dot is exactly the dequantized value. */
static void check_dot(t_state *t_, const char *name, const quant_type_info *ti, const void *row, size_t n,
                      uint64_t *seed)
{
    float *w = malloc(n * sizeof(float)), *x = malloc(n * sizeof(float));
    if (!w || !x) { free(w); free(x); CHECK(0); return; }
    ti->dequant(row, w, n);
    for (size_t j = 0; j < n; j++) x[j] = rng_float(seed);
    double ref = 0, mag = 0;
    for (size_t j = 0; j < n; j++) {
        ref += (double)w[j] * (double)x[j];
        mag += fabs((double)w[j] * (double)x[j]);
    }
    const float got = ti->dot(row, x, n);
    CHECKF(fabs((double)got - ref) <= 1e-5 * mag + 1e-30, "%s: dot %.9g, double %.9g (sum|wx| %.3g, n %zu)", name,
           (double)got, ref, mag, n);
    memset(x, 0, n * sizeof(float));
    for (size_t k = 0; k < n; k += n / 7 + 1) {
        x[k] = 1.0f;
        const float e = ti->dot(row, x, n);
        CHECKF(f32_bits(e) == f32_bits(w[k]) || (e == 0 && w[k] == 0), "%s: dot with e_%zu = %.9g, value %.9g",
               name, k, (double)e, (double)w[k]);
        x[k] = 0.0f;
    }
    free(w);
    free(x);
}

TEST(quant_dot_matches_dequant)
{
    uint64_t seed = 42;
    golden_row rows[64];
    int n = golden_index(rows, 64);
    REQUIRE(n > 0);
    for (int i = 0; i < n; i++) {
        int t = quant_type_by_name(rows[i].type);
        const quant_type_info *ti = t >= 0 ? quant_type((uint32_t)t) : NULL;
        if (!ti || !ti->dot) {
            CHECKF(0, "%s: no dot", rows[i].type);
            continue;
        }
        golden_data g;
        if (golden_load(rows[i].type, &g)) {
            check_dot(t_, rows[i].type, ti, g.bin, rows[i].values, &seed);
            /* a one-block row too */
            check_dot(t_, rows[i].type, ti, g.bin, ti->block_elems, &seed);
        } else {
            CHECKF(0, "%s: golden files missing", rows[i].type);
        }
        golden_free(&g);
    }
    /* f32 is not in the golden set; odd lengths exercise the last chunk */
    const size_t lens[] = { 1, 31, 33, 100, 4096 };
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        float *row = malloc(lens[i] * sizeof(float));
        REQUIRE(row);
        for (size_t j = 0; j < lens[i]; j++) row[j] = rng_float(&seed) * 3.0f;
        check_dot(t_, "f32", quant_type(MF_TYPE_F32), row, lens[i], &seed);
        free(row);
    }
}

/* The value of half h computed independently, in double. */
static double half_value(uint16_t h)
{
    const int e = (h >> 10) & 0x1f, m = h & 0x3ff;
    const double v = e == 0 ? ldexp(m, -24) : ldexp(1024 + m, e - 25);
    return (h & 0x8000) ? -v : v;
}

TEST(quant_fp16_all_halves)
{
    for (uint32_t h = 0; h < 65536; h++) {
        const float f = quant_fp16_to_f32((mf_fp16)h);
        const int e = (h >> 10) & 0x1f, m = h & 0x3ff;
        if (e == 0x1f && m != 0) {
            CHECKF(isnan(f), "half 0x%04x: %g, want NaN", h, (double)f);
            const mf_fp16 back = quant_f32_to_fp16(f);
            CHECKF((back & 0x7c00) == 0x7c00 && (back & 0x3ff) && (back & 0x8000) == (h & 0x8000),
                   "half NaN 0x%04x -> 0x%04x", h, back);
            continue;
        }
        if (e == 0x1f) {
            CHECKF(isinf(f) && (f < 0) == ((h & 0x8000) != 0), "half 0x%04x: %g, want inf", h, (double)f);
        } else {
            CHECKF((double)f == half_value((uint16_t)h), "half 0x%04x: %.9g, want %.9g", h, (double)f,
                   half_value((uint16_t)h));
            CHECKF((signbit(f) != 0) == ((h & 0x8000) != 0), "half 0x%04x: sign", h);
        }
        CHECKF(quant_f32_to_fp16(f) == h, "half 0x%04x -> %g -> 0x%04x", h, (double)f, quant_f32_to_fp16(f));
        /* round to nearest even at the midpoint to the next half up in
         * magnitude, and to nearest just either side of it */
        if (e < 0x1e || (e == 0x1e && m < 0x3ff)) {
            const double a = half_value((uint16_t)h), b = half_value((uint16_t)(h + 1));
            const float mid = (float)((a + b) / 2); /* exact: 12 significant bits */
            const uint16_t even = (h & 1) ? (uint16_t)(h + 1) : (uint16_t)h;
            CHECKF(quant_f32_to_fp16(mid) == even, "midpoint after 0x%04x -> 0x%04x, want 0x%04x", h,
                   quant_f32_to_fp16(mid), even);
            if (mid != 0) {
                CHECK(quant_f32_to_fp16(nextafterf(mid, 0)) == h);
                CHECK(quant_f32_to_fp16(nextafterf(mid, mid * 2)) == (uint16_t)(h + 1));
            }
        }
    }
    /* beyond the range: overflow to inf from the midpoint 65520 on, and
     * underflow to zero below half the smallest subnormal */
    CHECK(quant_f32_to_fp16(65519.0f) == 0x7bff);
    CHECK(quant_f32_to_fp16(65520.0f) == 0x7c00);
    CHECK(quant_f32_to_fp16(-1e30f) == 0xfc00);
    CHECK(quant_f32_to_fp16(0x1.0p-25f) == 0x0000);
    CHECK(quant_f32_to_fp16(0x1.0p-25f * 1.0001f) == 0x0001);
    CHECK(quant_f32_to_fp16(-0.0f) == 0x8000);
}

TEST(quant_bf16_all)
{
    for (uint32_t h = 0; h < 65536; h++) {
        const float f = quant_bf16_to_f32((mf_bf16)h);
        CHECKF(f32_bits(f) == h << 16, "bf16 0x%04x -> 0x%08x", h, f32_bits(f));
        if (isnan(f)) {
            CHECK(isnan(quant_bf16_to_f32(quant_f32_to_bf16(f))));
        } else {
            CHECKF(quant_f32_to_bf16(f) == h, "bf16 0x%04x round trip -> 0x%04x", h, quant_f32_to_bf16(f));
        }
    }
    /* ties to even: 1 + 2^-8 is halfway between 1 and 1 + 2^-7 */
    CHECK(quant_f32_to_bf16(1.0f + 0x1.0p-8f) == 0x3f80);
    CHECK(quant_f32_to_bf16(1.0f + 0x1.0p-7f + 0x1.0p-8f) == 0x3f82);
    CHECK(quant_f32_to_bf16(1.0f + 0x1.0p-8f + 0x1.0p-20f) == 0x3f81);
}
