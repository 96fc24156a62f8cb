/* test_matmul.c — op_matmul equals op_matvec token by token, bit for bit,
 * for every weight type the goldens use, with and without a pool, for
 * several weights of different types in one call (rows handed out in
 * chunks that cross from one weight to the next), and falls back to token
 * by token when its buffer is too small. */
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

/* Two weights of different types and row counts sharing one input (an
 * expert's gate and up): every T from 1 to 19 (token blocks of 8 with every
 * remainder), 1 and 2 threads, against op_matvec_multi token by token. The
 * outputs of both weights are rows[0] floats per token apart. */
TEST(matmul_multi_weight)
{
    enum { NE0 = 512, TMAX = 19 };
    const int rows[2] = { 301, 77 };
    const uint32_t types[2] = { MF_TYPE_Q4_K, MF_TYPE_Q6_K };
    mf_weight w[2];
    const mf_weight *wp[2] = { &w[0], &w[1] };
    uint64_t s = 99;
    float *row = malloc(sizeof(float) * NE0), *X = malloc(sizeof(float) * NE0 * TMAX);
    float *Y[2], *Z[2];
    REQUIRE(row && X);
    for (int i = 0; i < 2; i++) {
        const size_t rb = quant_row_bytes(types[i], NE0);
        uint8_t *wd = malloc(rb * (size_t)rows[i]);
        Y[i] = malloc(sizeof(float) * (size_t)rows[0] * TMAX);
        Z[i] = malloc(sizeof(float) * (size_t)rows[0] * TMAX);
        REQUIRE(wd && Y[i] && Z[i]);
        for (int r = 0; r < rows[i]; r++) {
            for (int k = 0; k < NE0; k++) {
                s = s * 6364136223846793005ull + 1442695040888963407ull;
                row[k] = (float)((int64_t)(s >> 33) % 2001 - 1000) / 1000.0f;
            }
            REQUIRE(quant_quantize_row(types[i], row, wd + (size_t)r * rb, NE0) == rb);
        }
        w[i] = (mf_weight){ .name = "w", .type = types[i], .n_dims = 2, .ne = { NE0, (uint64_t)rows[i], 1, 1 },
                            .row_bytes = rb, .data = wd };
    }
    for (int i = 0; i < NE0 * TMAX; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        X[i] = (float)((int64_t)(s >> 33) % 2001 - 1000) / 300.0f;
    }
    const size_t qb = op_matmul_qbytes(2, wp, TMAX);
    void *q = malloc(qb);
    REQUIRE(q);
    for (int nt = 1; nt <= 2; nt++) {
        mf_pool *pool = pool_new(nt);
        REQUIRE(pool);
        for (int T = 1; T <= TMAX; T++) {
            for (int t = 0; t < T; t++) {
                float *z[2] = { Z[0] + (size_t)t * rows[0], Z[1] + (size_t)t * rows[0] };
                op_matvec_multi(pool, 2, wp, X + (size_t)t * NE0, z);
            }
            for (int i = 0; i < 2; i++) memset(Y[i], 0xff, sizeof(float) * (size_t)rows[0] * TMAX); /* NaN: a row left out shows */
            op_matmul(pool, 2, wp, X, NE0, T, Y, (size_t)rows[0], q, qb);
            int same = 1;
            for (int i = 0; i < 2; i++)
                for (int t = 0; t < T; t++)
                    same &= memcmp(Y[i] + (size_t)t * rows[0], Z[i] + (size_t)t * rows[0], sizeof(float) * (size_t)rows[i]) == 0;
            CHECKF(same, "%d threads, T=%d: matmul of q4_K + q6_K differs from matvec", nt, T);
        }
        pool_free(pool);
    }
    for (int i = 0; i < 2; i++) {
        free((void *)w[i].data);
        free(Y[i]);
        free(Z[i]);
    }
    free(q), free(X), free(row);
}

/* op_matvec_each: weights of different types and sizes, each with its own
 * input, equal bit for bit to one op_matvec each; with 1 and 2 threads and
 * without a pool (the float path), and more weights than one dispatch
 * takes (the per-weight fallback). */
TEST(matvec_each_equals_matvec)
{
    enum { NW = 70, NE0 = 512 };
    static const uint32_t types[] = { MF_TYPE_Q4_K, MF_TYPE_Q6_K, MF_TYPE_Q8_0, MF_TYPE_F32, MF_TYPE_Q5_K };
    mf_weight w[NW];
    const mf_weight *wp[NW];
    float *x[NW], *y[NW], *z[NW];
    const float *xp[NW];
    uint64_t s = 99;
    float *row = malloc(sizeof(float) * NE0);
    REQUIRE(row);
    for (int i = 0; i < NW; i++) {
        const uint32_t type = types[i % 5];
        const int ne1 = 16 + 37 * (i % 7);
        const size_t rb = quant_row_bytes(type, NE0);
        uint8_t *wd = malloc(rb * (size_t)ne1);
        x[i] = malloc(sizeof(float) * NE0);
        y[i] = malloc(sizeof(float) * (size_t)ne1);
        z[i] = malloc(sizeof(float) * (size_t)ne1);
        REQUIRE(wd && x[i] && y[i] && z[i]);
        for (int r = 0; r < ne1; r++) {
            for (int k = 0; k < NE0; k++) {
                s = s * 6364136223846793005ull + 1442695040888963407ull;
                row[k] = (float)((int64_t)(s >> 33) % 2001 - 1000) / 1000.0f;
            }
            REQUIRE(quant_quantize_row(type, row, wd + (size_t)r * rb, NE0) == rb);
        }
        for (int k = 0; k < NE0; k++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            x[i][k] = (float)((int64_t)(s >> 33) % 2001 - 1000) / 300.0f;
        }
        w[i] = (mf_weight){ .name = "w", .type = type, .n_dims = 2, .ne = { NE0, (uint64_t)ne1, 1, 1 }, .row_bytes = rb, .data = wd };
        wp[i] = &w[i];
        xp[i] = x[i];
    }
    mf_pool *pools[3] = { NULL, pool_new(1), pool_new(2) };
    static const int counts[] = { 1, 8, NW };
    for (int p = 0; p < 3; p++)
        for (int c = 0; c < 3; c++) {
            const int n = counts[c];
            for (int i = 0; i < n; i++) {
                op_matvec(pools[p], wp[i], xp[i], z[i]);
                memset(y[i], 0xff, sizeof(float) * w[i].ne[1]);
            }
            op_matvec_each(pools[p], n, wp, xp, y);
            for (int i = 0; i < n; i++)
                CHECKF(memcmp(y[i], z[i], sizeof(float) * w[i].ne[1]) == 0, "pool %d, %d weights: weight %d (%s) differs",
                       p, n, i, quant_type(w[i].type)->name);
        }
    pool_free(pools[1]);
    pool_free(pools[2]);
    for (int i = 0; i < NW; i++) free((void *)w[i].data), free(x[i]), free(y[i]), free(z[i]);
    free(row);
}
