/* test_sampler.c — the sampler chain: greedy, top-k, top-p, min-p,
 * temperature, repetition penalty and seeding, on small hand-made logits. */
#include "t.h"
#include "moeflash.h"

#include <math.h>

static mf_sampler *mk(float temp, int top_k, float top_p, float min_p, float pen, uint64_t seed, uint32_t V)
{
    mf_sampler_params p;
    mf_sampler_params_default(&p);
    p.temperature = temp;
    p.top_k = top_k;
    p.top_p = top_p;
    p.min_p = min_p;
    p.repeat_penalty = pen;
    p.repeat_last_n = 8;
    p.seed = seed;
    return mf_sampler_new(&p, V);
}

TEST(sampler_greedy_and_ties)
{
    float l[6] = { 0.5f, 2.0f, -1.0f, 2.0f, 1.9f, 0.0f };
    mf_sampler *s = mk(0, 0, 1, 0, 1, 1, 6);
    REQUIRE(s);
    CHECK(mf_sample(s, l, NULL, 0) == 1); /* tie: the lowest id */
    mf_sampler_free(s);
    /* top-k 1 is greedy at any temperature */
    s = mk(5.0f, 1, 1, 0, 1, 7, 6);
    for (int i = 0; i < 50; i++) CHECK(mf_sample(s, l, NULL, 0) == 1);
    mf_sampler_free(s);
}

TEST(sampler_truncations)
{
    float l[5] = { 3.0f, 2.0f, 1.0f, 0.0f, -1.0f };
    /* top-p 0.5: softmax(3,2,1,0,-1) top prob is 0.636 >= 0.5, only id 0 */
    mf_sampler *s = mk(1.0f, 0, 0.5f, 0, 1, 3, 5);
    for (int i = 0; i < 100; i++) CHECK(mf_sample(s, l, NULL, 0) == 0);
    mf_sampler_free(s);
    /* min-p 0.3: p1/p0 = e^-1 = 0.37 kept, p2/p0 = 0.135 dropped */
    s = mk(1.0f, 0, 1.0f, 0.3f, 1, 5, 5);
    int seen[5] = { 0 };
    for (int i = 0; i < 2000; i++) seen[mf_sample(s, l, NULL, 0)]++;
    CHECK(seen[0] > 0 && seen[1] > 0 && seen[2] == 0 && seen[3] == 0 && seen[4] == 0);
    mf_sampler_free(s);
    /* top-k 2 */
    s = mk(1.0f, 2, 1.0f, 0, 1, 9, 5);
    memset(seen, 0, sizeof seen);
    for (int i = 0; i < 2000; i++) seen[mf_sample(s, l, NULL, 0)]++;
    CHECK(seen[0] > 0 && seen[1] > 0 && seen[2] + seen[3] + seen[4] == 0);
    /* the kept pair keeps its ratio: p1/p0 = e^-1 ~ 0.37 */
    double r = (double)seen[1] / seen[0];
    CHECKF(r > 0.3 && r < 0.45, "ratio %g", r);
    mf_sampler_free(s);
}

TEST(sampler_temperature_distribution)
{
    float l[3] = { 1.0f, 0.0f, -1.0f };
    mf_sampler *s = mk(1.0f, 0, 1.0f, 0, 1, 11, 3);
    int seen[3] = { 0 };
    const int N = 30000;
    for (int i = 0; i < N; i++) seen[mf_sample(s, l, NULL, 0)]++;
    double z = exp(1.0) + 1 + exp(-1.0);
    double want[3] = { exp(1.0) / z, 1 / z, exp(-1.0) / z };
    for (int i = 0; i < 3; i++)
        CHECKF(fabs((double)seen[i] / N - want[i]) < 0.015, "id %d: %g vs %g", i, (double)seen[i] / N, want[i]);
    mf_sampler_free(s);
    /* a high temperature flattens */
    s = mk(100.0f, 0, 1.0f, 0, 1, 11, 3);
    memset(seen, 0, sizeof seen);
    for (int i = 0; i < N; i++) seen[mf_sample(s, l, NULL, 0)]++;
    for (int i = 0; i < 3; i++) CHECKF(fabs((double)seen[i] / N - 1.0 / 3) < 0.02, "id %d: %d", i, seen[i]);
    mf_sampler_free(s);
}

TEST(sampler_seed_reproducible)
{
    float l[16];
    for (int i = 0; i < 16; i++) l[i] = (float)(i % 5) * 0.3f;
    int a[64], b[64], c[64];
    mf_sampler *s1 = mk(1.0f, 0, 1.0f, 0, 1, 42, 16), *s2 = mk(1.0f, 0, 1.0f, 0, 1, 42, 16), *s3 = mk(1.0f, 0, 1.0f, 0, 1, 43, 16);
    for (int i = 0; i < 64; i++) {
        a[i] = mf_sample(s1, l, NULL, 0);
        b[i] = mf_sample(s2, l, NULL, 0);
        c[i] = mf_sample(s3, l, NULL, 0);
    }
    CHECK(memcmp(a, b, sizeof a) == 0);
    CHECK(memcmp(a, c, sizeof a) != 0);
    mf_sampler_free(s1), mf_sampler_free(s2), mf_sampler_free(s3);
}

TEST(sampler_repeat_penalty)
{
    float l[4] = { 2.0f, 1.8f, -0.5f, 0.1f };
    mf_sampler *s = mk(0, 0, 1, 0, 1.5f, 1, 4);
    int32_t prev[2] = { 0, 0 };
    /* 2.0 / 1.5 = 1.33 < 1.8: the repeated top token loses */
    CHECK(mf_sample(s, l, prev, 2) == 1);
    CHECK(mf_sample(s, l, NULL, 0) == 0);
    /* through the accepted-token ring as well */
    mf_sampler_accept(s, 0);
    CHECK(mf_sample(s, l, NULL, 0) == 1);
    mf_sampler_free(s);
    /* a negative logit is multiplied: -0.5 * 1.5 = -0.75 stays below 0.1 */
    float m[3] = { -0.5f, -0.6f, -3.0f };
    s = mk(0, 0, 1, 0, 1.5f, 1, 3);
    int32_t p2[1] = { 0 };
    CHECK(mf_sample(s, m, p2, 1) == 1);
    mf_sampler_free(s);
}

/* top-k keeps exactly the k best under (logit desc, id asc), ties at the
 * boundary included: a vocabulary of many equal logits, near-uniform draws. */
TEST(sampler_top_k_set_with_ties)
{
    enum { V = 1000, K = 37, DRAWS = 40000 };
    static float l[V];
    static int rank[V], seen[V];
    uint64_t x = 12345;
    for (int i = 0; i < V; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        l[i] = (float)((x >> 33) % 50);
    }
    /* rank[i]: how many ids come before i in the order */
    for (int i = 0; i < V; i++) {
        rank[i] = 0;
        for (int j = 0; j < V; j++) rank[i] += l[j] > l[i] || (l[j] == l[i] && j < i);
    }
    mf_sampler *s = mk(1000.0f, K, 1.0f, 0, 1, 77, V);
    for (int i = 0; i < DRAWS; i++) seen[mf_sample(s, l, NULL, 0)]++;
    mf_sampler_free(s);
    int in = 0, out = 0;
    for (int i = 0; i < V; i++) {
        if (rank[i] < K) in += seen[i] > 0;
        else out += seen[i];
    }
    CHECKF(in == K && out == 0, "%d of the %d best drawn, %d draws outside them", in, K, out);
}
