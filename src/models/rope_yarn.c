/* rope_yarn.c — the RoPE frequency table with linear or YaRN scaling.
 *
 * RoPE (Su et al. 2021, arXiv:2104.09864): pair i of a head rotates by
 * theta_i = pos * base^(-2i/n_rot).
 *
 * YaRN (arXiv:2309.00071, section 3.2 "NTK-by-parts" and 3.4): with the
 * scale s = 1/factor, a pair whose wavelength 2*pi*base^(2i/n_rot) fits
 * many times into the original context keeps its angle (extrapolation),
 * one whose wavelength exceeds it is interpolated (theta * s), and a linear
 * ramp blends between them. The ramp is in pair units between the
 * "correction dims" d(beta) = n_rot * ln(n_ctx_orig / (2 pi beta)) /
 * (2 ln base), i.e. the pair that turns beta times over n_ctx_orig:
 *   low = max(0, floor d(beta_fast)), high = min(n_rot - 1, ceil d(beta_slow))
 *   mix_i = 1 - clamp((i - low) / max(0.001, high - low), 0, 1)
 *   theta_i = s * theta_ext * (1 - mix_i) + theta_ext * mix_i
 * and the rotated vector is scaled by 1 + 0.1 ln(1/s) (the paper's
 * sqrt(1/t), applied to q and k alike). The floor/ceil of the correction
 * dims is how GGUF runtimes (ggml) compute them; the golden README's
 * gpt-oss section states this is the behaviour to match.
 */
#include "models/rope_yarn.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

int rope_params_load(const gguf_file *f, const char *arch, int n_rot, int neox, uint32_t n_ctx_train,
                     rope_params *p, mf_error *e)
{
    char k[160];
    const char *path = f->parts[0].path;
    float factor;
    memset(p, 0, sizeof *p);
    p->n_rot = n_rot;
    p->neox = neox;
    if (n_rot <= 0 || n_rot % 2 || n_rot > 2 * ROPE_MAX_PAIRS)
        return mf_fail(e, "%s: %s: %d rotary dims: expected an even number in 2..%d", path, arch, n_rot, 2 * ROPE_MAX_PAIRS);
    if (gguf_opt_f32(f, gguf_arch_key(k, sizeof k, arch, "rope.freq_base"), 10000.0f, &p->freq_base, e) ||
        gguf_opt_f32(f, gguf_arch_key(k, sizeof k, arch, "rope.scaling.factor"), 1.0f, &factor, e) ||
        gguf_opt_u32(f, gguf_arch_key(k, sizeof k, arch, "rope.scaling.original_context_length"), n_ctx_train,
                     &p->n_ctx_orig, e) ||
        /* The YaRN paper's defaults (alpha = 1, beta = 32), also gpt-oss's
         * and DeepSeek's configs; read when the file states them. */
        gguf_opt_f32(f, gguf_arch_key(k, sizeof k, arch, "rope.scaling.yarn_beta_fast"), 32.0f, &p->beta_fast, e) ||
        gguf_opt_f32(f, gguf_arch_key(k, sizeof k, arch, "rope.scaling.yarn_beta_slow"), 1.0f, &p->beta_slow, e) ||
        gguf_opt_f32(f, gguf_arch_key(k, sizeof k, arch, "rope.scaling.attn_factor"), 1.0f, &p->attn_factor, e))
        return -1;
    const char *type = "none";
    if (gguf_find(f, gguf_arch_key(k, sizeof k, arch, "rope.scaling.type")) && gguf_get_str(f, k, &type, e)) return -1;
    if (!strcmp(type, "yarn")) p->yarn = 1;
    else if (strcmp(type, "none") && strcmp(type, "linear"))
        return mf_fail(e, "%s: key %s: rope scaling \"%s\" is not supported (expected none, linear or yarn)", path, k, type);
    if (!(p->freq_base > 0.0f) || !isfinite(p->freq_base))
        return mf_fail(e, "%s: %s.rope.freq_base is %g: expected > 0", path, arch, (double)p->freq_base);
    if (factor == 0.0f) factor = 1.0f; /* 0 is written for "no scaling" */
    if (!(factor >= 1.0f) || !isfinite(factor))
        return mf_fail(e, "%s: %s.rope.scaling.factor is %g: expected >= 1", path, arch, (double)factor);
    p->freq_scale = 1.0f / factor;
    if (p->yarn && (p->n_ctx_orig == 0 || !(p->beta_fast > 0.0f) || !(p->beta_slow > 0.0f)))
        return mf_fail(e, "%s: %s: YaRN needs original_context_length > 0 and positive betas (found %u, %g, %g)", path,
                       arch, p->n_ctx_orig, (double)p->beta_fast, (double)p->beta_slow);
    if (!(p->attn_factor > 0.0f) || !isfinite(p->attn_factor))
        return mf_fail(e, "%s: %s.rope.scaling.attn_factor is %g: expected > 0", path, arch, (double)p->attn_factor);
    return 0;
}

/* The pair index that completes `rot` rotations over n_ctx_orig positions. */
static double corr_dim(const rope_params *p, double rot)
{
    return p->n_rot * log(p->n_ctx_orig / (rot * 2.0 * M_PI)) / (2.0 * log(p->freq_base));
}

void rope_table_init(rope_table *t, const rope_params *p)
{
    const int half = p->n_rot / 2;
    const double s = p->freq_scale;
    double low = 0, high = 0;
    memset(t, 0, sizeof *t);
    t->n_rot = p->n_rot;
    t->neox = p->neox;
    t->mscale = p->attn_factor;
    if (p->yarn) {
        low = floor(corr_dim(p, p->beta_fast));
        high = ceil(corr_dim(p, p->beta_slow));
        if (low < 0) low = 0;
        if (high > p->n_rot - 1) high = p->n_rot - 1;
        t->mscale = (float)(p->attn_factor * (1.0 + 0.1 * log(1.0 / s)));
    }
    for (int i = 0; i < half; i++) {
        double theta = pow((double)p->freq_base, -2.0 * i / p->n_rot);
        double mul = s;  /* linear interpolation (Chen et al. 2023) */
        if (p->yarn) {
            double y = (i - low) / fmax(0.001, high - low);
            double mix = 1.0 - fmin(1.0, fmax(0.0, y));
            mul = s * (1.0 - mix) + mix;
        }
        t->freq[i] = theta * mul;
    }
}

void rope_table_apply(const rope_table *t, float *x, int n_heads, int head_dim, uint32_t pos)
{
    const int half = t->n_rot / 2;
    for (int i = 0; i < half; i++) {
        double theta = (double)pos * t->freq[i];
        float c = (float)cos(theta) * t->mscale, sn = (float)sin(theta) * t->mscale;
        int a = t->neox ? i : 2 * i, b = t->neox ? i + half : 2 * i + 1;
        for (int h = 0; h < n_heads; h++) {
            float *v = x + (size_t)h * head_dim;
            float x0 = v[a], x1 = v[b];
            v[a] = x0 * c - x1 * sn;
            v[b] = x0 * sn + x1 * c;
        }
    }
}
