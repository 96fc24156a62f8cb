/* kern_scalar.c — the scalar kernels: the specification every SIMD kernel
 * must equal bit for bit (integer types), and the fallback on CPUs without
 * one.
 *
 * Activations (kernels.h says which weight type takes which):
 * - Q8_0, per 32 values: amax = max |x|, d = amax / 127 stored as fp16,
 *   q = round-half-even(x * (127 / amax)) (0 when amax is 0): llama.cpp's
 *   x86 quantize_row_q8_0.
 * - Q8_K, per 256 values: iscale = 127 / amax, q = min(127,
 *   round-half-even(x * iscale)), d = 1 / iscale (float), bsums = sums of
 *   each 16 q: llama.cpp's quantize_row_q8_K_ref up to the sign of d and q
 *   (it divides by the signed value of largest magnitude; the products
 *   d * q are the same).
 *
 * Dot products: per block, exact integer sums of weight levels times
 * activation q; then the block's float contribution, written out in each
 * kernel below (separately rounded operations in the order written); then
 * kern_acc4_finish. Scale factors are formed first (weight scale times
 * activation scale), then multiplied by the converted integer sum, as
 * llama.cpp's kernels do. The float types call the float reference
 * (ref.h), which is also their specification.
 */
#include "quant/kern_impl.h"
#include "quant/iq_tables.h"
#include "quant/ref.h"

KERN_NO_FP_CONTRACT

static inline float fp16(mf_fp16 h) { return quant_fp16_to_f32(h); }

/* ---- activations ---- */

static void act_q8_0(const float *x, void *dst, size_t n)
{
    block_q8_0 *y = dst;
    for (size_t i = 0; i < n / QK8_0; i++, x += QK8_0) {
        float amax = 0.0f;
        for (int j = 0; j < QK8_0; j++) {
            const float a = x[j] < 0 ? -x[j] : x[j];
            amax = a > amax ? a : amax;
        }
        const float d = amax / 127.0f;
        const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
        y[i].d = quant_f32_to_fp16(d);
        for (int j = 0; j < QK8_0; j++) y[i].qs[j] = (int8_t)kern_nearest_int(x[j] * id);
    }
}

static void act_q8_K(const float *x, void *dst, size_t n)
{
    block_q8_K *y = dst;
    for (size_t i = 0; i < n / QK_K; i++, x += QK_K) {
        float amax = 0.0f;
        for (int j = 0; j < QK_K; j++) {
            const float a = x[j] < 0 ? -x[j] : x[j];
            amax = a > amax ? a : amax;
        }
        if (amax == 0.0f) {
            memset(&y[i], 0, sizeof y[i]);
            continue;
        }
        const float iscale = 127.0f / amax;
        for (int j = 0; j < QK_K; j++) {
            const int v = kern_nearest_int(iscale * x[j]);
            y[i].qs[j] = (int8_t)(v < 127 ? v : 127);
        }
        for (int j = 0; j < QK_K / 16; j++) {
            int s = 0;
            for (int l = 0; l < 16; l++) s += y[i].qs[16 * j + l];
            y[i].bsums[j] = (int16_t)s;
        }
        y[i].d = 1.0f / iscale;
    }
}

/* ---- 32-value blocks with Q8_0 activations ---- */

/* contribution: (float)isum * (d_w * d_x) */
static float dot_q8_0(const void *row, const void *act, size_t n)
{
    const block_q8_0 *w = row;
    const block_q8_0 *a = act;
    float acc[4] = { 0 };
    for (size_t b = 0; b < n / QK8_0; b++) {
        int isum = 0;
        for (int j = 0; j < QK8_0; j++) isum += w[b].qs[j] * a[b].qs[j];
        acc[b & 3] += (float)isum * (fp16(w[b].d) * fp16(a[b].d));
    }
    return kern_acc4_finish(acc);
}

/* levels q - 8; contribution as q8_0 */
static float dot_q4_0(const void *row, const void *act, size_t n)
{
    const block_q4_0 *w = row;
    const block_q8_0 *a = act;
    float acc[4] = { 0 };
    for (size_t b = 0; b < n / QK4_0; b++) {
        int isum = 0;
        for (int j = 0; j < QK4_0 / 2; j++) {
            isum += ((w[b].qs[j] & 0x0f) - 8) * a[b].qs[j];
            isum += ((w[b].qs[j] >> 4) - 8) * a[b].qs[j + QK4_0 / 2];
        }
        acc[b & 3] += (float)isum * (fp16(w[b].d) * fp16(a[b].d));
    }
    return kern_acc4_finish(acc);
}

/* levels (q | h << 4) - 16; contribution as q8_0 */
static float dot_q5_0(const void *row, const void *act, size_t n)
{
    const block_q5_0 *w = row;
    const block_q8_0 *a = act;
    float acc[4] = { 0 };
    for (size_t b = 0; b < n / QK5_0; b++) {
        uint32_t qh;
        memcpy(&qh, w[b].qh, 4);
        int isum = 0;
        for (int j = 0; j < QK5_0 / 2; j++) {
            const int q0 = ((w[b].qs[j] & 0x0f) | (int)((qh >> j) & 1) << 4) - 16;
            const int q1 = ((w[b].qs[j] >> 4) | (int)((qh >> (j + 16)) & 1) << 4) - 16;
            isum += q0 * a[b].qs[j] + q1 * a[b].qs[j + QK5_0 / 2];
        }
        acc[b & 3] += (float)isum * (fp16(w[b].d) * fp16(a[b].d));
    }
    return kern_acc4_finish(acc);
}

/* value q*d + m: contribution (float)isum * (d_w * d_x) + (float)asum * (m_w * d_x),
 * isum = sum q * a, asum = sum a */
static float dot_q4_1(const void *row, const void *act, size_t n)
{
    const block_q4_1 *w = row;
    const block_q8_0 *a = act;
    float acc[4] = { 0 };
    for (size_t b = 0; b < n / QK4_1; b++) {
        int isum = 0, asum = 0;
        for (int j = 0; j < QK4_1 / 2; j++) {
            isum += (w[b].qs[j] & 0x0f) * a[b].qs[j] + (w[b].qs[j] >> 4) * a[b].qs[j + QK4_1 / 2];
            asum += a[b].qs[j] + a[b].qs[j + QK4_1 / 2];
        }
        const float dx = fp16(a[b].d);
        acc[b & 3] += (float)isum * (fp16(w[b].d) * dx) + (float)asum * (fp16(w[b].m) * dx);
    }
    return kern_acc4_finish(acc);
}

static float dot_q5_1(const void *row, const void *act, size_t n)
{
    const block_q5_1 *w = row;
    const block_q8_0 *a = act;
    float acc[4] = { 0 };
    for (size_t b = 0; b < n / QK5_1; b++) {
        uint32_t qh;
        memcpy(&qh, w[b].qh, 4);
        int isum = 0, asum = 0;
        for (int j = 0; j < QK5_1 / 2; j++) {
            const int q0 = (w[b].qs[j] & 0x0f) | (int)((qh >> j) & 1) << 4;
            const int q1 = (w[b].qs[j] >> 4) | (int)((qh >> (j + 16)) & 1) << 4;
            isum += q0 * a[b].qs[j] + q1 * a[b].qs[j + QK5_1 / 2];
            asum += a[b].qs[j] + a[b].qs[j + QK5_1 / 2];
        }
        const float dx = fp16(a[b].d);
        acc[b & 3] += (float)isum * (fp16(w[b].d) * dx) + (float)asum * (fp16(w[b].m) * dx);
    }
    return kern_acc4_finish(acc);
}

/* levels kvalues_iq4nl[q]; contribution as q8_0 */
static float dot_iq4_nl(const void *row, const void *act, size_t n)
{
    const block_iq4_nl *w = row;
    const block_q8_0 *a = act;
    float acc[4] = { 0 };
    for (size_t b = 0; b < n / QK4_NL; b++) {
        int isum = 0;
        for (int j = 0; j < QK4_NL / 2; j++) {
            isum += quant_kvalues_iq4nl[w[b].qs[j] & 0x0f] * a[b].qs[j];
            isum += quant_kvalues_iq4nl[w[b].qs[j] >> 4] * a[b].qs[j + QK4_NL / 2];
        }
        acc[b & 3] += (float)isum * (fp16(w[b].d) * fp16(a[b].d));
    }
    return kern_acc4_finish(acc);
}

/* levels kvalues_mxfp4[q] (E2M1 doubled); contribution
 * (float)isum * (2^(e-128) * d_x) */
static float dot_mxfp4(const void *row, const void *act, size_t n)
{
    const block_mxfp4 *w = row;
    const block_q8_0 *a = act;
    float acc[4] = { 0 };
    for (size_t b = 0; b < n / QK_MXFP4; b++) {
        int isum = 0;
        for (int j = 0; j < QK_MXFP4 / 2; j++) {
            isum += quant_kvalues_mxfp4[w[b].qs[j] & 0x0f] * a[b].qs[j];
            isum += quant_kvalues_mxfp4[w[b].qs[j] >> 4] * a[b].qs[j + QK_MXFP4 / 2];
        }
        acc[b & 3] += (float)isum * (kern_e8m0_half(w[b].e) * fp16(a[b].d));
    }
    return kern_acc4_finish(acc);
}

/* ---- K-quants with Q8_K activations ---- */

/* isum = sum_j sc_j * sum (q * a) over sub-block j, isum_m = sum_j m_j *
 * (sum a over sub-block j); contribution
 * (d_x * d_w) * (float)isum - (d_x * dmin_w) * (float)isum_m */
static float dot_q4_K(const void *row, const void *act, size_t n)
{
    const block_q4_K *w = row;
    const block_q8_K *a = act;
    float acc[4] = { 0 };
    for (size_t b = 0; b < n / QK_K; b++) {
        uint8_t sc[16];
        kern_k4_scales(w[b].scales, sc);
        int isum = 0, isum_m = 0;
        for (int j = 0; j < 8; j++) {
            const uint8_t *q = w[b].qs + 32 * (j / 2);
            const int8_t *y = a[b].qs + 32 * j;
            int s = 0;
            for (int l = 0; l < 32; l++) s += ((q[l] >> (4 * (j % 2))) & 0x0f) * y[l];
            isum += sc[j] * s;
            isum_m += sc[8 + j] * (a[b].bsums[2 * j] + a[b].bsums[2 * j + 1]);
        }
        const float d = a[b].d * fp16(w[b].d), dmin = a[b].d * fp16(w[b].dmin);
        acc[b & 3] += d * (float)isum - dmin * (float)isum_m;
    }
    return kern_acc4_finish(acc);
}

/* as q4_K with 5-bit levels */
static float dot_q5_K(const void *row, const void *act, size_t n)
{
    const block_q5_K *w = row;
    const block_q8_K *a = act;
    float acc[4] = { 0 };
    for (size_t b = 0; b < n / QK_K; b++) {
        uint8_t sc[16];
        kern_k4_scales(w[b].scales, sc);
        int isum = 0, isum_m = 0;
        for (int j = 0; j < 8; j++) {
            const uint8_t *q = w[b].qs + 32 * (j / 2);
            const int8_t *y = a[b].qs + 32 * j;
            int s = 0;
            for (int l = 0; l < 32; l++)
                s += (((q[l] >> (4 * (j % 2))) & 0x0f) | ((w[b].qh[l] >> j) & 1) << 4) * y[l];
            isum += sc[j] * s;
            isum_m += sc[8 + j] * (a[b].bsums[2 * j] + a[b].bsums[2 * j + 1]);
        }
        const float d = a[b].d * fp16(w[b].d), dmin = a[b].d * fp16(w[b].dmin);
        acc[b & 3] += d * (float)isum - dmin * (float)isum_m;
    }
    return kern_acc4_finish(acc);
}

/* isum = sum_s sc_s * sum ((q - 32) * a) over sub-block s of 16;
 * contribution (d_x * d_w) * (float)isum */
static float dot_q6_K(const void *row, const void *act, size_t n)
{
    const block_q6_K *w = row;
    const block_q8_K *a = act;
    float acc[4] = { 0 };
    for (size_t b = 0; b < n / QK_K; b++) {
        int isum = 0;
        for (int h = 0; h < 2; h++) {
            const uint8_t *ql = w[b].ql + 64 * h, *qh = w[b].qh + 32 * h;
            for (int c = 0; c < 4; c++) {
                for (int g = 0; g < 2; g++) {
                    int s = 0;
                    for (int l = 16 * g; l < 16 * g + 16; l++) {
                        const int lo = (ql[32 * (c % 2) + l] >> (4 * (c / 2))) & 0x0f;
                        const int hi = (qh[l] >> (2 * c)) & 3;
                        s += ((lo | hi << 4) - 32) * a[b].qs[128 * h + 32 * c + l];
                    }
                    isum += w[b].scales[8 * h + 2 * c + g] * s;
                }
            }
        }
        const float d = a[b].d * fp16(w[b].d);
        acc[b & 3] += d * (float)isum;
    }
    return kern_acc4_finish(acc);
}

/* isum = sum_s (sc_s & 15) * sum (q * a), isum_m = sum_s (sc_s >> 4) *
 * bsum_s; contribution as q4_K */
static float dot_q2_K(const void *row, const void *act, size_t n)
{
    const block_q2_K *w = row;
    const block_q8_K *a = act;
    float acc[4] = { 0 };
    for (size_t b = 0; b < n / QK_K; b++) {
        int isum = 0, isum_m = 0;
        for (int h = 0; h < 2; h++) {
            const uint8_t *q = w[b].qs + 32 * h;
            for (int c = 0; c < 4; c++) {
                for (int g = 0; g < 2; g++) {
                    const int s_id = 8 * h + 2 * c + g;
                    const int8_t *y = a[b].qs + 128 * h + 32 * c + 16 * g;
                    int s = 0;
                    for (int l = 0; l < 16; l++) s += ((q[16 * g + l] >> (2 * c)) & 3) * y[l];
                    isum += (w[b].scales[s_id] & 0x0f) * s;
                    isum_m += (w[b].scales[s_id] >> 4) * a[b].bsums[s_id];
                }
            }
        }
        const float d = a[b].d * fp16(w[b].d), dmin = a[b].d * fp16(w[b].dmin);
        acc[b & 3] += d * (float)isum - dmin * (float)isum_m;
    }
    return kern_acc4_finish(acc);
}

/* isum = sum_s sc_s * sum ((q - 4 * !hbit) * a); contribution as q6_K */
static float dot_q3_K(const void *row, const void *act, size_t n)
{
    const block_q3_K *w = row;
    const block_q8_K *a = act;
    float acc[4] = { 0 };
    for (size_t b = 0; b < n / QK_K; b++) {
        int8_t sc[16];
        kern_q3_scales(w[b].scales, sc);
        int isum = 0;
        for (int h = 0; h < 2; h++) {
            const uint8_t *q = w[b].qs + 32 * h;
            for (int c = 0; c < 4; c++) {
                const uint8_t hbit = (uint8_t)(1u << (4 * h + c));
                for (int g = 0; g < 2; g++) {
                    const int8_t *y = a[b].qs + 128 * h + 32 * c + 16 * g;
                    int s = 0;
                    for (int l = 0; l < 16; l++) {
                        const int v = ((q[16 * g + l] >> (2 * c)) & 3) - ((w[b].hmask[16 * g + l] & hbit) ? 0 : 4);
                        s += v * y[l];
                    }
                    isum += sc[8 * h + 2 * c + g] * s;
                }
            }
        }
        const float d = a[b].d * fp16(w[b].d);
        acc[b & 3] += d * (float)isum;
    }
    return kern_acc4_finish(acc);
}

/* isum = sum_j sc_j * sum (kvalues_iq4nl[q] * a) over sub-block j of 32;
 * contribution as q6_K */
static float dot_iq4_xs(const void *row, const void *act, size_t n)
{
    const block_iq4_xs *w = row;
    const block_q8_K *a = act;
    float acc[4] = { 0 };
    for (size_t b = 0; b < n / QK_K; b++) {
        int8_t sc[8];
        kern_iq4xs_scales(&w[b], sc);
        int isum = 0;
        for (int j = 0; j < 8; j++) {
            const uint8_t *q = w[b].qs + 16 * j;
            const int8_t *y = a[b].qs + 32 * j;
            int s = 0;
            for (int l = 0; l < 16; l++)
                s += quant_kvalues_iq4nl[q[l] & 0x0f] * y[l] + quant_kvalues_iq4nl[q[l] >> 4] * y[l + 16];
            isum += sc[j] * s;
        }
        const float d = a[b].d * fp16(w[b].d);
        acc[b & 3] += d * (float)isum;
    }
    return kern_acc4_finish(acc);
}

/* ---- float activations: the reference dot products ---- */

#define FLOAT_DOT(t) \
    static float fdot_##t(const void *row, const void *act, size_t n) { return quant_dot_##t(row, act, n); }
FLOAT_DOT(f32)
FLOAT_DOT(f16)
FLOAT_DOT(bf16)
FLOAT_DOT(q8_K)

void kern_fill_scalar(quant_kernel_set *s)
{
    memset(s, 0, sizeof *s);
    s->simd = QUANT_SIMD_SCALAR;
#define F(t, fn) s->k[t] = (quant_kernel){ .act_type = MF_TYPE_F32, .vec_dot = fn }
#define Q(t, at, fn) s->k[t] = (quant_kernel){ .act_type = at, .vec_dot = fn }
    F(MF_TYPE_F32, fdot_f32);
    F(MF_TYPE_F16, fdot_f16);
    F(MF_TYPE_BF16, fdot_bf16);
    F(MF_TYPE_Q8_K, fdot_q8_K);
    Q(MF_TYPE_Q4_0, MF_TYPE_Q8_0, dot_q4_0);
    Q(MF_TYPE_Q4_1, MF_TYPE_Q8_0, dot_q4_1);
    Q(MF_TYPE_Q5_0, MF_TYPE_Q8_0, dot_q5_0);
    Q(MF_TYPE_Q5_1, MF_TYPE_Q8_0, dot_q5_1);
    Q(MF_TYPE_Q8_0, MF_TYPE_Q8_0, dot_q8_0);
    Q(MF_TYPE_IQ4_NL, MF_TYPE_Q8_0, dot_iq4_nl);
    Q(MF_TYPE_MXFP4, MF_TYPE_Q8_0, dot_mxfp4);
    Q(MF_TYPE_Q2_K, MF_TYPE_Q8_K, dot_q2_K);
    Q(MF_TYPE_Q3_K, MF_TYPE_Q8_K, dot_q3_K);
    Q(MF_TYPE_Q4_K, MF_TYPE_Q8_K, dot_q4_K);
    Q(MF_TYPE_Q5_K, MF_TYPE_Q8_K, dot_q5_K);
    Q(MF_TYPE_Q6_K, MF_TYPE_Q8_K, dot_q6_K);
    Q(MF_TYPE_IQ4_XS, MF_TYPE_Q8_K, dot_iq4_xs);
#undef F
#undef Q
    s->act[MF_TYPE_Q8_0] = act_q8_0;
    s->act[MF_TYPE_Q8_K] = act_q8_K;
    kern_fill_scalar_iq(s);
    kern_fill_scalar_tq(s);
}
