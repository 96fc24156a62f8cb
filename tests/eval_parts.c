/* eval_parts.c — see eval_parts.h. */
#include "eval_parts.h"

mf_model_params eval_params(int n_batch, uint64_t cache, bool prefetch)
{
    mf_model_params mp;
    mf_model_params_default(&mp);
    mp.n_batch = n_batch;
    mp.cache_bytes = cache;
    mp.no_prefetch = !prefetch;
    return mp;
}

int eval_parts(const char *path, const mf_model_params *mp, const int32_t *ids, size_t n, const int *parts,
               size_t n_parts, float *out, mf_stats *st, mf_error *e)
{
    mf_model *m = mf_model_open(path, mp, e);
    if (!m) return -1;
    const size_t V = mf_model_get_info(m)->n_vocab;
    mf_session *s = mf_session_new(m, (uint32_t)n + 8, e);
    int rc = s ? 0 : -1;
    for (size_t i = 0, k = 0; rc == 0 && i < n; k++) {
        size_t len = (size_t)parts[k < n_parts ? k : n_parts - 1];
        if (len > n - i) len = n - i;
        rc = mf_eval(s, ids + i, len, out + i * V, e);
        i += len;
    }
    if (st) mf_model_stats(m, st);
    mf_session_free(s);
    mf_model_close(m);
    return rc;
}
