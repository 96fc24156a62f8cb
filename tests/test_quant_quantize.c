/* test_quant_quantize.c — the quantizers of quant/quantize.h: exact output
 * on small hand-checked vectors, round-trip error within what each format
 * allows, and byte-identity with llama-quantize on the golden models (the
 * same f32 tensors quantized by llama.cpp, golden/README.md). */
#include "t.h"

#include "quant/quant.h"
#include "quant/quantize.h"

#include <inttypes.h>
#include <math.h>

static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double rng_unit(uint64_t *s) { return (double)(rng_next(s) >> 11) * 0x1.0p-53; }

/* Roughly Gaussian (sum of 4 uniforms), like trained weights. */
static float rng_weight(uint64_t *s)
{
    return (float)((rng_unit(s) + rng_unit(s) + rng_unit(s) + rng_unit(s) - 2.0) * 0.05);
}

/* Q8_0 of x[j] = j - 16: amax 16, d = 16/127 (fp16 0x3008 = 0.1259765625),
 * q = round((j - 16) * 127/16) = 8k, pulled one step toward zero for
 * |k| >= 9 since 127/16 = 8 - 1/16 (k = j - 16). */
TEST(quant_quantize_q8_0_exact)
{
    float x[32];
    for (int j = 0; j < 32; j++) x[j] = (float)(j - 16);
    static const int8_t want[32] = {
        -127, -119, -111, -103, -95, -87, -79, -71, -64, -56, -48, -40, -32, -24, -16, -8,
        0, 8, 16, 24, 32, 40, 48, 56, 64, 71, 79, 87, 95, 103, 111, 119,
    };
    block_q8_0 b;
    REQUIRE(quant_quantize_row(MF_TYPE_Q8_0, x, &b, 32) == sizeof b);
    CHECKF(b.d == 0x3008, "d = 0x%04x", b.d);
    for (int j = 0; j < 32; j++) CHECKF(b.qs[j] == want[j], "qs[%d] = %d, want %d", j, b.qs[j], want[j]);
    float y[32];
    quant_type(MF_TYPE_Q8_0)->dequant(&b, y, 32);
    for (int j = 0; j < 32; j++) CHECKF(y[j] == (float)want[j] * 0.1259765625f, "y[%d] = %g", j, (double)y[j]);
}

/* Q4_0 of x[j] = (j - 16) / 4: the largest magnitude is x[0] = -4, so
 * d = -4 / -8 = 0.5 (fp16 0x3800), q = trunc(x/d + 8.5) = (j + 1) / 2,
 * clamped to 15 for j = 31. Value j sits in the low nibble of qs[j],
 * value j + 16 in the high nibble. */
TEST(quant_quantize_q4_0_exact)
{
    float x[32];
    for (int j = 0; j < 32; j++) x[j] = (float)(j - 16) * 0.25f;
    static const uint8_t want[16] = {
        0x80, 0x91, 0x91, 0xa2, 0xa2, 0xb3, 0xb3, 0xc4, 0xc4, 0xd5, 0xd5, 0xe6, 0xe6, 0xf7, 0xf7, 0xf8,
    };
    block_q4_0 b;
    REQUIRE(quant_quantize_row(MF_TYPE_Q4_0, x, &b, 32) == sizeof b);
    CHECKF(b.d == 0x3800, "d = 0x%04x", b.d);
    for (int j = 0; j < 16; j++) CHECKF(b.qs[j] == want[j], "qs[%d] = 0x%02x, want 0x%02x", j, b.qs[j], want[j]);
    float y[32];
    quant_type(MF_TYPE_Q4_0)->dequant(&b, y, 32);
    for (int j = 0; j < 32; j++) {
        const int q = j == 31 ? 15 : (j + 1) / 2;
        CHECKF(y[j] == (float)(q - 8) * 0.5f, "y[%d] = %g", j, (double)y[j]);
    }
    /* all zero: d = 0 and every value decodes to 0 */
    memset(x, 0, sizeof x);
    quant_quantize_row(MF_TYPE_Q4_0, x, &b, 32);
    quant_type(MF_TYPE_Q4_0)->dequant(&b, y, 32);
    for (int j = 0; j < 32; j++) CHECK(y[j] == 0.0f);
}

TEST(quant_quantize_unsupported)
{
    float x[256] = { 0 };
    uint8_t buf[1024];
    CHECK(quant_quantize_row(MF_TYPE_IQ2_XXS, x, buf, 256) == 0);
    CHECK(quant_quantize_row(MF_TYPE_Q8_1, x, buf, 32) == 0);
    CHECK(quant_quantize_row(MF_TYPE_Q4_K, x, buf, 128) == 0); /* not a whole block */
    CHECK(quant_quantize_row(MF_TYPE_COUNT + 7, x, buf, 256) == 0);
    CHECK(quant_quantize_row(MF_TYPE_Q4_K, x, buf, 256) == sizeof(block_q4_K));
}

/* Quantize random weights, dequantize, compare. The bounds on the RMS error
 * relative to the RMS of the data are about 1.3x what the formats reach on
 * this data, which is close to the rounding noise of each format: a step of
 * amax/127 (q8_0: 0.0052), amax/8 (q4_0: 0.083), ... down to q2_K (0.29).
 * The max error of a value is half a step of its sub-block, checked loosely
 * as a multiple of the RMS bound. Also: rows of zeros stay zero, a constant
 * row and a row with one outlier decode sensibly. */
TEST(quant_quantize_roundtrip)
{
    static const struct { uint32_t type; double rel_rms; } cases[] = {
        { MF_TYPE_F32, 0.0 },       { MF_TYPE_F16, 3.0e-4 },   { MF_TYPE_BF16, 2.2e-3 },
        { MF_TYPE_Q8_0, 7.0e-3 },   { MF_TYPE_Q8_K, 8.5e-3 },  { MF_TYPE_Q6_K, 2.2e-2 },
        { MF_TYPE_Q5_0, 5.5e-2 },   { MF_TYPE_Q5_1, 4.8e-2 },  { MF_TYPE_Q5_K, 4.6e-2 },
        { MF_TYPE_Q4_0, 1.1e-1 },   { MF_TYPE_Q4_1, 1.0e-1 },  { MF_TYPE_Q4_K, 9.0e-2 },
        { MF_TYPE_Q3_K, 1.9e-1 },   { MF_TYPE_Q2_K, 3.7e-1 },
    };
    const size_t n = t_asan() ? 1024 : 8192;
    float *x = malloc(n * sizeof(float)), *y = malloc(n * sizeof(float));
    void *q = malloc(n * sizeof(float) + 64);
    REQUIRE(x && y && q);
    uint64_t seed = 7;
    for (size_t j = 0; j < n; j++) x[j] = rng_weight(&seed);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const uint32_t t = cases[c].type;
        const quant_type_info *ti = quant_type(t);
        REQUIRE(ti);
        const size_t bytes = quant_quantize_row(t, x, q, n);
        CHECKF(bytes == quant_row_bytes(t, n), "%s: %zu bytes", ti->name, bytes);
        ti->dequant(q, y, n);
        double se = 0, sx = 0, emax = 0;
        for (size_t j = 0; j < n; j++) {
            const double e = (double)y[j] - (double)x[j];
            se += e * e;
            sx += (double)x[j] * x[j];
            emax = fmax(emax, fabs(e));
        }
        const double rel = sqrt(se / sx), rms = sqrt(sx / (double)n);
        CHECKF(rel <= cases[c].rel_rms, "%s: relative RMS error %.4g > %.4g", ti->name, rel, cases[c].rel_rms);
        CHECKF(emax <= 6 * cases[c].rel_rms * rms, "%s: max error %.4g, RMS of data %.4g", ti->name, emax, rms);
    }
    /* zeros, a constant, and one large value among small ones */
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const uint32_t t = cases[c].type;
        const quant_type_info *ti = quant_type(t);
        float z[256], w[256];
        memset(z, 0, sizeof z);
        quant_quantize_row(t, z, q, 256);
        ti->dequant(q, w, 256);
        for (int j = 0; j < 256; j++) CHECKF(w[j] == 0.0f, "%s: zero row decodes to %g at %d", ti->name, (double)w[j], j);
        for (int j = 0; j < 256; j++) z[j] = 0.75f;
        quant_quantize_row(t, z, q, 256);
        ti->dequant(q, w, 256);
        for (int j = 0; j < 256; j++)
            CHECKF(fabsf(w[j] - 0.75f) <= 0.75f * 0.07f, "%s: constant 0.75 decodes to %g", ti->name, (double)w[j]);
        for (int j = 0; j < 256; j++) z[j] = rng_weight(&seed);
        z[77] = 4.0f;
        quant_quantize_row(t, z, q, 256);
        ti->dequant(q, w, 256);
        CHECKF(fabsf(w[77] - 4.0f) <= 4.0f * 0.07f, "%s: outlier 4 decodes to %g", ti->name, (double)w[77]);
    }
    free(x);
    free(y);
    free(q);
}

/* Bytes [off, off+len) of a file; NULL if it is shorter. */
static void *read_range(const char *path, uint64_t off, size_t len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    void *p = malloc(len ? len : 1);
    if (p && (fseek(f, (long)off, SEEK_SET) != 0 || fread(p, 1, len, f) != len)) {
        free(p);
        p = NULL;
    }
    fclose(f);
    return p;
}

typedef struct tensor_line {
    char name[96], type[16];
    uint64_t off, nbytes;
} tensor_line;

/* Parses <model>.tensors.txt; returns the count or -1. */
static int read_tensors(const char *model, tensor_line *out, int max)
{
    char rel[128];
    snprintf(rel, sizeof rel, "golden/%s.tensors.txt", model);
    char *text = t_read_file(t_shared(rel), NULL);
    if (!text) return -1;
    int n = 0;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line && n < max; line = strtok_r(NULL, "\n", &save)) {
        tensor_line *t = &out[n];
        char shape[64];
        if (sscanf(line, "%95s %15s %63s %" SCNu64 " %" SCNu64, t->name, t->type, shape, &t->off, &t->nbytes) == 5) n++;
    }
    free(text);
    return n;
}

/* llama-quantize (no imatrix) runs ggml's quantize_row_*_ref on each f32
 * tensor; ours must give the same bytes. Checked for every q8_0, q4_K,
 * q5_K and q6_K tensor of the qwen3moe Q8_0 and Q4_K_M models. */
TEST(quant_quantize_matches_llama_quantize)
{
    static const char *models[] = { "qwen3moe-q8_0", "qwen3moe-q4_k_m" };
    static tensor_line src[256], dst[256];
    const int nsrc = read_tensors("qwen3moe-f32", src, 256);
    REQUIREF(nsrc > 0, "cannot read qwen3moe-f32.tensors.txt");
    int checked = 0, per_type[MF_TYPE_COUNT] = { 0 };
    for (size_t m = 0; m < sizeof models / sizeof models[0]; m++) {
        const int ndst = read_tensors(models[m], dst, 256);
        REQUIREF(ndst > 0, "cannot read %s.tensors.txt", models[m]);
        char path[128];
        snprintf(path, sizeof path, "golden/%s.gguf", models[m]);
        for (int i = 0; i < ndst; i++) {
            const int t = quant_type_by_name(dst[i].type);
            if (t != MF_TYPE_Q8_0 && t != MF_TYPE_Q4_K && t != MF_TYPE_Q5_K && t != MF_TYPE_Q6_K) continue;
            if (t_asan() && per_type[t] >= 2) continue; /* a few of each kind are enough under ASan */
            const tensor_line *s = NULL;
            for (int k = 0; k < nsrc; k++)
                if (strcmp(src[k].name, dst[i].name) == 0 && strcmp(src[k].type, "f32") == 0) s = &src[k];
            if (!s) continue;
            const size_t n = (size_t)(s->nbytes / 4);
            float *x = read_range(t_shared("golden/qwen3moe-f32.gguf"), s->off, (size_t)s->nbytes);
            uint8_t *want = read_range(t_shared(path), dst[i].off, (size_t)dst[i].nbytes);
            uint8_t *got = malloc((size_t)dst[i].nbytes);
            if (!x || !want || !got) {
                CHECKF(0, "%s: cannot read the tensor", dst[i].name);
            } else {
                const size_t bytes = quant_quantize_row((uint32_t)t, x, got, n);
                CHECKF(bytes == dst[i].nbytes, "%s: %zu bytes, file has %" PRIu64, dst[i].name, bytes, dst[i].nbytes);
                const size_t bb = quant_type((uint32_t)t)->block_bytes;
                size_t bad = 0, first = 0;
                for (size_t b = 0; bytes == dst[i].nbytes && b < bytes / bb; b++)
                    if (memcmp(got + b * bb, want + b * bb, bb) != 0 && !bad++) first = b;
                CHECKF(bad == 0, "%s (%s in %s): %zu of %zu blocks differ, first block %zu", dst[i].name,
                       dst[i].type, models[m], bad, bytes / bb, first);
                checked++;
                per_type[t]++;
            }
            free(x);
            free(want);
            free(got);
        }
    }
    CHECKF(per_type[MF_TYPE_Q8_0] && per_type[MF_TYPE_Q4_K] && per_type[MF_TYPE_Q5_K] && per_type[MF_TYPE_Q6_K],
           "compared %d q8_0, %d q4_K, %d q5_K, %d q6_K tensors", per_type[MF_TYPE_Q8_0], per_type[MF_TYPE_Q4_K],
           per_type[MF_TYPE_Q5_K], per_type[MF_TYPE_Q6_K]);
    CHECKF(checked >= (t_asan() ? 8 : 20), "only %d tensors compared", checked);
}
