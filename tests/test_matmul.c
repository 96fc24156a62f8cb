/* test_matmul.c — op_matmul equals op_matvec token by token, bit for bit,
 * for every weight type the goldens use, with and without a pool, and
 * falls back to token by token when its buffer is too small. */
#include "t.h"
#include "models/ops.h"
#include "quant/quant.h"
#include "quant/quantize.h"

static void check_type(t_state *t_, mf_pool *pool, uint32_t type, int ne0, int ne1, int T)
{
    const quant_type_info *ti = quant_type(type);
    size_t rb = quant_row_bytes(type, (uint64_t)ne0);
    uint8_t *wd = malloc(rb * (size_t)ne1);
    float *row = malloc(sizeof(float) * (size_t)ne0);
    uint64_t s = 0x1234 + type;
    for (int r = 0; r < ne1; r++) {
        for (int i = 0; i < ne0; i++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            row[i] = (float)((int64_t)(s >> 33) % 2001 - 1000) / 1000.0f;
        }
        REQUIREF(quant_quantize_row(type, row, wd + (size_t)r * rb, (size_t)ne0) == rb, "cannot quantize %s", ti->name);
    }
    mf_weight w = { .name = "w", .type = type, .n_dims = 2, .ne = { (uint64_t)ne0, (uint64_t)ne1, 1, 1 }, .row_bytes = rb, .data = wd };
    const mf_weight *wp[1] = { &w };
    float *X = malloc(sizeof(float) * (size_t)ne0 * T), *Y = malloc(sizeof(float) * (size_t)ne1 * T);
    float *Z = malloc(sizeof(float) * (size_t)ne1 * T);
    for (int i = 0; i < ne0 * T; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        X[i] = (float)((int64_t)(s >> 33) % 2001 - 1000) / 300.0f;
    }
    for (int t = 0; t < T; t++) op_matvec(pool, &w, X + (size_t)t * ne0, Z + (size_t)t * ne1);
    size_t qb = op_matmul_qbytes(1, wp, T);
    void *q = malloc(qb + 64);
    float *yp[1] = { Y };
    op_matmul(pool, 1, wp, X, (size_t)ne0, T, yp, (size_t)ne1, q, qb + 64);
    CHECKF(memcmp(Y, Z, sizeof(float) * (size_t)ne1 * T) == 0, "%s %dx%d T=%d: matmul differs from matvec", ti->name, ne0, ne1, T);
    memset(Y, 0, sizeof(float) * (size_t)ne1 * T);
    op_matmul(pool, 1, wp, X, (size_t)ne0, T, yp, (size_t)ne1, q, qb ? qb - 1 : 0); /* too small: one by one */
    CHECKF(memcmp(Y, Z, sizeof(float) * (size_t)ne1 * T) == 0, "%s: fallback differs", ti->name);
    free(q), free(wd), free(row), free(X), free(Y), free(Z);
}

TEST(matmul_equals_matvec)
{
    mf_pool *pools[2] = { pool_new(1), pool_new(2) };
    static const uint32_t types[] = { MF_TYPE_F32, MF_TYPE_F16, MF_TYPE_Q8_0, MF_TYPE_Q4_0, MF_TYPE_Q4_K, MF_TYPE_Q5_K, MF_TYPE_Q6_K };
    for (int p = 0; p < 2; p++)
        for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
            check_type(t_, pools[p], types[i], 512, 96, 37);
            check_type(t_, pools[p], types[i], 256, 1024, 5);
        }
    pool_free(pools[0]);
    pool_free(pools[1]);
}
