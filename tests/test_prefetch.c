/* test_prefetch.c — prefetch changes when bytes arrive, never which bytes
 * are computed with: logits bit-identical with and without it (golden and
 * synthetic models, every I/O backend, several cache sizes); its counters
 * add up; a failed prefetch read is absorbed and a failed demand read still
 * reaches the caller; the read queue puts demand first, cancels and
 * promotes queued prefetches; a guess never evicts pinned experts. */
#include "t.h"
#include "moeflash.h"
#include "gguf.h"
#include "store/io.h"
#include "store/store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

static const int32_t prompt[] = { 785, 3974, 13876, 38835, 34208, 916, 279, 15678, 5562, 13, 362, 20980 };

typedef struct run_out {
    int rows;
    mf_stats st;
} run_out;

/* The prompt then 8 greedy tokens; logits of every position into out. */
static run_out run(t_state *t_, const char *path, const mf_model_params *mp, float *out)
{
    run_out r = { -1, { 0 } };
    mf_error e;
    mf_model *m = mf_model_open(path, mp, &e);
    CHECKF(m, "%s", e.msg);
    if (!m) return r;
    const uint32_t V = mf_model_get_info(m)->n_vocab;
    mf_session *s = mf_session_new(m, 64, &e);
    int32_t ids[12];
    for (int i = 0; i < 12; i++) ids[i] = prompt[i] % (int32_t)V;
    if (s && mf_eval(s, ids, 12, out, &e) == 0) {
        r.rows = 12;
        for (int k = 0; k < 8; k++) {
            const float *l = mf_session_logits(s);
            int32_t t = 0;
            for (uint32_t i = 1; i < V; i++) t = l[i] > l[t] ? (int32_t)i : t;
            if (mf_eval(s, &t, 1, out + (size_t)r.rows * V, &e)) { CHECKF(0, "%s", e.msg); r.rows = -1; break; }
            r.rows++;
        }
    } else {
        CHECKF(0, "%s", s ? e.msg : "no session");
    }
    mf_model_stats(m, &r.st);
    mf_session_free(s);
    mf_model_close(m);
    return r;
}

/* Bytes of one slot: all-experts cache bytes / experts. */
static uint64_t slot_bytes(t_state *t_, const char *path, uint32_t *K, uint32_t *V)
{
    mf_model_params mp;
    mf_model_params_default(&mp);
    mf_error e;
    mf_model *m = mf_model_open(path, &mp, &e);
    CHECKF(m, "%s", e.msg);
    if (!m) return 0;
    const mf_model_info *in = mf_model_get_info(m);
    mf_stats st;
    mf_model_stats(m, &st);
    *K = in->n_expert_used;
    *V = in->n_vocab;
    uint64_t slot = st.cache_bytes / ((uint64_t)in->n_layer * in->n_expert);
    mf_model_close(m);
    return slot;
}

static void check_identical(t_state *t_, const char *path)
{
    uint32_t K = 0, V = 0;
    uint64_t slot = slot_bytes(t_, path, &K, &V);
    REQUIRE(slot > 0);
    const size_t n = (size_t)20 * V;
    float *ref = malloc(n * sizeof(float)), *got = malloc(n * sizeof(float));
    REQUIRE(ref && got);
    mf_model_params mp;
    mf_model_params_default(&mp);
    mp.no_prefetch = true;
    run_out r0 = run(t_, path, &mp, ref);
    REQUIRE(r0.rows == 20);
    CHECK(r0.st.prefetch_issued == 0);
    static const char *ios[] = { "pread", "direct", "uring" };
    const uint64_t sizes[] = { 2 * K, 3 * K, 1000000 };
    const char *policies[] = { NULL, "lru" };
    uint64_t issued_small = 0;
    for (int io = 0; io < 3; io++)
        for (int si = 0; si < 3; si++)
            for (int pi = 0; pi < 2; pi++) {
                mf_model_params p = mp;
                p.io = ios[io];
                p.cache_bytes = sizes[si] * slot + slot / 2;
                p.no_prefetch = false;
                p.policy = policies[pi];
                memset(got, 0, n * sizeof(float));
                run_out r = run(t_, path, &p, got);
                CHECKF(r.rows == 20 && memcmp(ref, got, n * sizeof(float)) == 0,
                       "%s: --io %s, cache %llu experts, policy %s: logits with prefetch differ", path, ios[io],
                       (unsigned long long)sizes[si], policies[pi] ? policies[pi] : "default");
                /* every guess is settled by its layer within the token */
                CHECKF(r.st.prefetch_issued == r.st.prefetch_used + r.st.prefetch_wasted,
                       "issued %llu != used %llu + wasted %llu", (unsigned long long)r.st.prefetch_issued,
                       (unsigned long long)r.st.prefetch_used, (unsigned long long)r.st.prefetch_wasted);
                CHECK(r.st.predicted_right <= r.st.predicted_in_guess && r.st.predicted_in_guess <= r.st.predicted);
                CHECK(r.st.prefetch_late <= r.st.cache_misses);
                if (si < 2) issued_small += r.st.prefetch_issued;
            }
    CHECKF(issued_small > 0, "%s: small caches never prefetched", path);
    free(ref);
    free(got);
}

TEST(prefetch_identical_golden) { check_identical(t_, t_shared("golden/qwen3moe-q4_k_m.gguf")); }

static const char *synthetic(t_state *t_)
{
    static char path[512];
    snprintf(path, sizeof path, "%s/synth-prefetch.gguf", t_tmpdir());
    struct stat sb;
    if (stat(path, &sb) == 0) return path;
    mf_synth_shape s;
    mf_synth_preset("demo", &s); /* 64 experts, top-8 */
    s.n_layer = 3;
    mf_error e;
    CHECKF(mf_synth_write(path, &s, &e) == 0, "%s", e.msg);
    return path;
}

TEST(prefetch_identical_synthetic) { check_identical(t_, synthetic(t_)); }

TEST(prefetch_counters_and_accuracy)
{
    /* the synthetic models' residual stream dominates the sub-layer
     * outputs, as in trained models: the next-layer guess is right far
     * more often than chance (8 of 64) */
    const char *path = synthetic(t_);
    uint32_t K = 0, V = 0;
    uint64_t slot = slot_bytes(t_, path, &K, &V);
    REQUIRE(slot > 0);
    float *out = malloc((size_t)20 * V * sizeof(float));
    REQUIRE(out);
    mf_model_params mp;
    mf_model_params_default(&mp);
    mp.cache_bytes = 4 * K * slot;
    mp.n_batch = 1; /* prefetch works token by token; a batched prompt needs no guess */
    run_out r = run(t_, path, &mp, out);
    REQUIRE(r.rows == 20);
    /* layers 1 and 2 are guessed from the previous layer, layer 0 from the embedding */
    CHECK(r.st.predicted == 20ull * 3 * K);
    double acc = (double)r.st.predicted_right / (double)r.st.predicted;
    printf("  predictor %.1f%% (top-K), %.1f%% (guess); issued %llu, used %llu, wasted %llu, late %llu\n", 100 * acc,
           100.0 * r.st.predicted_in_guess / r.st.predicted, (unsigned long long)r.st.prefetch_issued,
           (unsigned long long)r.st.prefetch_used, (unsigned long long)r.st.prefetch_wasted,
           (unsigned long long)r.st.prefetch_late);
    CHECKF(acc > 0.5, "predictor accuracy %.3f", acc);
    CHECK(r.st.prefetch_issued > 0 && r.st.prefetch_used > 0);
    CHECK(r.st.prefetch_issued == r.st.prefetch_used + r.st.prefetch_wasted);
    /* --no-prefetch: nothing issued, nothing guessed */
    mp.no_prefetch = true;
    r = run(t_, path, &mp, out);
    CHECK(r.st.prefetch_issued == 0 && r.st.predicted == 0);
    free(out);
}

TEST(prefetch_read_failures)
{
    const char *path = synthetic(t_);
    uint32_t K = 0, V = 0;
    uint64_t slot = slot_bytes(t_, path, &K, &V);
    REQUIRE(slot > 0);
    static const char *ios[] = { "pread", "direct", "uring" };
    for (int io = 0; io < 3; io++) {
        mf_model_params mp;
        mf_model_params_default(&mp);
        mp.io = ios[io];
        mp.cache_bytes = 3 * K * slot;
        mp.n_batch = 1; /* prefetch works token by token */
        mf_error e;
        /* reference: token 300 then 301, clean */
        mf_model *m = mf_model_open(path, &mp, &e);
        REQUIREF(m, "%s", e.msg);
        mf_session *s = mf_session_new(m, 16, &e);
        int32_t ids[2] = { 300, 301 };
        REQUIRE(s && mf_eval(s, ids, 2, NULL, &e) == 0);
        float *clean = malloc(V * sizeof(float));
        memcpy(clean, mf_session_logits(s), V * sizeof(float));
        mf_session_free(s);
        mf_model_close(m);
        for (int kind = 1; kind <= 3; kind++) {
            /* a prefetch read fails: absorbed, read again as demand when needed */
            m = mf_model_open(path, &mp, &e);
            REQUIREF(m, "%s", e.msg);
            s = mf_session_new(m, 16, &e);
            REQUIRE(s);
            mf_model_inject_io_fault(m, 1, kind | IO_FAULT_PREFETCH);
            CHECKF(mf_eval(s, ids, 2, NULL, &e) == 0, "io %s kind %d: a failed prefetch reached the caller: %s",
                   ios[io], kind, e.msg);
            CHECKF(memcmp(clean, mf_session_logits(s), V * sizeof(float)) == 0, "io %s kind %d: logits differ", ios[io],
                   kind);
            mf_stats st;
            mf_model_stats(m, &st);
            CHECK(st.prefetch_issued > 0);
            mf_session_free(s);
            mf_model_close(m);
            /* a demand read fails: reported, with prefetch on */
            m = mf_model_open(path, &mp, &e);
            REQUIREF(m, "%s", e.msg);
            s = mf_session_new(m, 16, &e);
            REQUIRE(s);
            mf_model_inject_io_fault(m, 1, kind);
            CHECKF(mf_eval(s, ids, 2, NULL, &e) == -1 && strstr(e.msg, "at byte"), "io %s kind %d: %s", ios[io], kind,
                   e.msg);
            /* the session goes on and gives the clean result */
            mf_session_truncate(s, 0, &e);
            REQUIREF(mf_eval(s, ids, 2, NULL, &e) == 0, "%s", e.msg);
            CHECKF(memcmp(clean, mf_session_logits(s), V * sizeof(float)) == 0, "io %s kind %d: logits after a failure",
                   ios[io], kind);
            mf_session_free(s);
            mf_model_close(m);
        }
        free(clean);
    }
}

TEST(prefetch_queue_order)
{
    /* one reader thread, held: the caller's demand read runs at once,
     * queued prefetches wait; a queued prefetch cancels, another is
     * promoted; released, everything completes */
    char path[600];
    snprintf(path, sizeof path, "%s/queue.bin", t_tmpdir());
    FILE *fp = fopen(path, "w");
    REQUIRE(fp);
    static char buf[1 << 16];
    for (size_t i = 0; i < sizeof buf; i++) buf[i] = (char)(i * 7);
    fwrite(buf, 1, sizeof buf, fp);
    fclose(fp);
    int fd = open(path, O_RDONLY);
    REQUIRE(fd >= 0);
    const char *why = NULL;
    io_backend *b = io_open(IO_PREAD, 1, &why);
    REQUIREF(b, "%s", why);
    static char dst[6][4096];
    io_req req[6];
    io_req *p[6];
    memset(req, 0, sizeof req);
    for (int i = 0; i < 6; i++) {
        req[i] = (io_req){ .fd = fd, .off = (uint64_t)i * 4096, .len = 4096, .need = 4096, .dst = dst[i] };
        p[i] = &req[i];
    }
    io_hold(b, true);
    io_submit(b, p, 5, IO_PREFETCH);
    io_submit(b, &p[5], 1, IO_DEMAND);
    io_wait(b, &p[5], 1);
    CHECK(io_done(p[5]) && req[5].err == 0 && memcmp(dst[5], buf + 5 * 4096, 4096) == 0);
    for (int i = 0; i < 5; i++) CHECKF(atomic_load(&req[i].state) == IO_QUEUED, "prefetch %d ran before demand", i);
    CHECK(io_cancel(b, &p[1], 2));              /* queued: cancelled */
    CHECK(atomic_load(&req[1].state) == IO_IDLE && atomic_load(&req[2].state) == IO_IDLE);
    io_promote(b, &p[4], 1);
    CHECK(req[4].prio == IO_DEMAND);
    io_wait(b, &p[4], 1);                       /* the caller reads a promoted one itself */
    CHECK(io_done(p[4]) && atomic_load(&req[0].state) == IO_QUEUED);
    io_hold(b, false);
    io_wait(b, p, 6);
    for (int i = 0; i < 6; i++)
        if (i != 1 && i != 2) CHECKF(req[i].err == 0 && memcmp(dst[i], buf + i * 4096, 4096) == 0, "read %d", i);
    CHECK(!io_cancel(b, &p[0], 1));             /* done: not cancellable */
    io_close(b);
    close(fd);
}

TEST(prefetch_never_evicts_pinned)
{
    /* the store alone on the golden model: K = 2, 8 experts, 3 layers;
     * 4 slots: layer 0's two pinned experts stay whole while a guess for
     * layer 1 of 6 experts can only take the 2 free slots */
    const char *path = t_shared("golden/qwen3moe-q4_k_m.gguf");
    mf_error e;
    gguf_file *f = gguf_open(path, &e);
    REQUIREF(f, "%s", e.msg);
    store_params sp = { 0 };
    sp.cache_slots = 4;
    store *st = store_open(f, 3, 8, 2, &sp, &e);
    REQUIREF(st, "%s", e.msg);
    REQUIRE(store_prefetch_enabled(st));
    const int32_t l0[2] = { 3, 5 };
    const store_expert *ex[2];
    REQUIRE(store_acquire(st, 0, l0, 2, ex, &e) == 0);
    const store_tensor *roles = store_layer_roles(st, 0);
    uint8_t *want = malloc(roles[STORE_DOWN].expert_bytes);
    REQUIRE(want);
    int fd = open(path, O_RDONLY);
    REQUIRE(fd >= 0);
    const int32_t guess[6] = { 0, 1, 2, 3, 4, 6 };
    store_prefetch(st, 1, guess, 6, 2);
    const int32_t l1[2] = { 1, 7 };
    /* the pinned experts' bytes are intact after the guess's reads */
    for (int i = 0; i < 2; i++) {
        uint64_t off = roles[STORE_DOWN].t->offset + (uint64_t)l0[i] * roles[STORE_DOWN].expert_bytes;
        REQUIRE(pread(fd, want, roles[STORE_DOWN].expert_bytes, (off_t)off) == (ssize_t)roles[STORE_DOWN].expert_bytes);
        CHECKF(memcmp(ex[i]->data[STORE_DOWN], want, roles[STORE_DOWN].expert_bytes) == 0, "expert %d of layer 0", l0[i]);
    }
    store_release(st, 0, l0, 2);
    REQUIRE(store_acquire(st, 1, l1, 2, ex, &e) == 0);
    store_release(st, 1, l1, 2);
    store_stats s;
    store_get_stats(st, &s);
    CHECK(s.prefetch_issued == 2);              /* only the two free slots */
    CHECK(s.prefetch_used == 1 && s.prefetch_wasted == 1); /* expert 1 was right, expert 0 not */
    CHECK(s.predicted == 2 && s.predicted_k == 1 && s.predicted_all == 1); /* 1 in the top-2, 7 nowhere */
    free(want);
    close(fd);
    store_close(st);
    gguf_close(f);
}

TEST(prefetch_stress_store)
{
    /* random choices and random guesses through a store of 4, 5 and 8
     * slots (K = 2): every expert handed out has its file's bytes, with
     * some prefetch reads failing on the way */
    const char *path = t_shared("golden/qwen3moe-q4_k_m.gguf");
    mf_error e;
    gguf_file *f = gguf_open(path, &e);
    REQUIREF(f, "%s", e.msg);
    int fd = open(path, O_RDONLY);
    REQUIRE(fd >= 0);
    static uint8_t want[1 << 20];
    const int sizes[] = { 4, 5, 8 };
    const int steps = t_asan() ? 150 : 600;
    for (int io = 0; io < 3; io++)
        for (int si = 0; si < 3; si++) {
            store_params sp = { 0 };
            sp.io = io;
            sp.cache_slots = (uint32_t)sizes[si];
            sp.io_threads = 1 + si;
            store *st = store_open(f, 3, 8, 2, &sp, &e);
            REQUIREF(st, "%s", e.msg);
            uint64_t seed = 12345 + (uint64_t)io * 7 + (uint64_t)si;
            int bad = 0;
            for (int step = 0; step < steps && !bad; step++) {
                int layer = step % 3;
                int32_t ids[2], guess[3];
                seed = seed * 6364136223846793005ull + 1442695040888963407ull;
                ids[0] = (int32_t)(seed >> 40) % 8;
                ids[1] = (ids[0] + 1 + (int32_t)((seed >> 20) % 7)) % 8;
                for (int g = 0; g < 3; g++) guess[g] = (int32_t)((seed >> (8 * g)) % 8);
                if (step % 37 == 5) store_inject_fault(st, 1, IO_FAULT_EIO | IO_FAULT_PREFETCH);
                const store_expert *ex[2];
                int rc = store_acquire_next(st, layer, ids, 2, ex, (layer + 1) % 3, guess, 3, 2, &e);
                if (rc) { CHECKF(0, "io %d, %d slots, step %d: %s", io, sizes[si], step, e.msg); break; }
                const store_tensor *roles = store_layer_roles(st, layer);
                for (int k = 0; k < 2; k++)
                    for (int r = 0; r < STORE_ROLE_COUNT; r++) {
                        if (!roles[r].t) continue;
                        uint64_t n = roles[r].expert_bytes, off = roles[r].t->offset + (uint64_t)ids[k] * n;
                        REQUIRE(n <= sizeof want && pread(fd, want, n, (off_t)off) == (ssize_t)n);
                        if (memcmp(ex[k]->data[r], want, n)) {
                            CHECKF(0, "io %d, %d slots, step %d: expert %d of layer %d, role %d: wrong bytes", io,
                                   sizes[si], step, ids[k], layer, r);
                            bad = 1;
                        }
                    }
                store_release(st, layer, ids, 2);
            }
            store_stats s;
            store_get_stats(st, &s);
            CHECK(s.prefetch_issued > 0);
            CHECK(s.prefetch_issued >= s.prefetch_used + s.prefetch_wasted);
            store_close(st);
        }
    close(fd);
    gguf_close(f);
}
