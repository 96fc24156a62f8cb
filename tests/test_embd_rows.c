/* test_embd_rows.c — an untied token embedding stays on disk and each token
 * reads its one row (op_get_row → weight_read_row). Checked: the memory plan
 * leaves it out of the resident bytes and a process's peak RSS shows it; a
 * tied model (embedding = output head) keeps it resident and computes the
 * same logits as its untied twin, batched and token by token, split or not;
 * and a file cut inside the embedding after open fails the tokens whose rows
 * are gone with the file, tensor, row and byte offset named, while the
 * session goes on with the other rows. Rows longer than the read buffer
 * are read in pieces that dequantize to the same floats. */
#include "t.h"
#include "gguf.h"
#include "moeflash.h"
#include "engine/plan.h"
#include "quant/quant.h"
#include "models/ops.h"

#include <inttypes.h>
#include <sys/stat.h>
#include <unistd.h>

typedef enum copy_mode {
    COPY_EMBD_LAST,   /* token_embd.weight moved to the end of the file */
    COPY_TIED,        /* without output.weight: the embedding is the head */
    COPY_OUT_IS_EMBD, /* output.weight := token_embd's bytes and type: the
                         untied twin of COPY_TIED, computing the same logits */
} copy_mode;

/* Writes a copy of the GGUF at src to <tmp>/<tag>.gguf, or with per_part > 0
 * as a split set of per_part tensors a part; returns the path to open (the
 * first part), in a static buffer per call slot, or NULL. */
static const char *write_copy(t_state *t_, const char *src, const char *tag, copy_mode mode, uint64_t per_part)
{
    static char out[4][1024];
    static int slot;
    char *path = out[slot++ % 4];
    mf_error e;
    gguf_file *f = gguf_open(src, &e);
    CHECKF(f, "%s", e.msg);
    if (!f) return NULL;
    const gguf_tensor *embd = gguf_find_tensor(f, "token_embd.weight");
    CHECKF(embd, "%s has no token_embd.weight", src);
    gguf_writer *w = gguf_writer_new();
    for (uint64_t i = 0; i < f->n_kv; i++)
        if (strncmp(f->kv[i].key, "split.", 6)) gguf_w_value(w, f->kv[i].key, &f->kv[i].val);
    int rc = embd ? 0 : -1;
    uint64_t n_written = 0;
    for (uint64_t i = 0; rc == 0 && i < f->n_tensors; i++) {
        const gguf_tensor *t = &f->tensors[i];
        if (mode == COPY_EMBD_LAST && t == embd) continue;
        if (!strcmp(t->name, "output.weight") && mode == COPY_TIED) continue;
        if (!strcmp(t->name, "output.weight") && mode == COPY_OUT_IS_EMBD)
            rc = gguf_w_tensor(w, t->name, embd->type, embd->n_dims, embd->ne, embd->data, &e);
        else rc = gguf_w_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data, &e);
        n_written++;
    }
    if (rc == 0 && mode == COPY_EMBD_LAST) {
        rc = gguf_w_tensor(w, embd->name, embd->type, embd->n_dims, embd->ne, embd->data, &e);
        n_written++;
    }
    char prefix[768];
    snprintf(prefix, sizeof prefix, "%s/%s", t_tmpdir(), tag);
    if (per_part) {
        const int count = (int)((n_written + per_part - 1) / per_part);
        gguf_split_path(path, 1024, prefix, 1, count);
        if (rc == 0) rc = gguf_w_write(w, prefix, per_part, &e);
    } else {
        snprintf(path, 1024, "%s.gguf", prefix);
        if (rc == 0) rc = gguf_w_write(w, path, 0, &e);
    }
    CHECKF(rc == 0, "%s: %s", tag, e.msg);
    gguf_writer_free(w);
    gguf_close(f);
    return rc ? NULL : path;
}

/* The logits of ids, one row each, evaluated in one call (n_batch 0:
 * batched prefill) or token by token (n_batch 1). */
static float *eval_ids(t_state *t_, const char *path, int n_batch, const int32_t *ids, int n, uint32_t *V)
{
    mf_model_params mp;
    mf_model_params_default(&mp);
    mp.n_batch = n_batch;
    mf_error e;
    mf_model *m = mf_model_open(path, &mp, &e);
    CHECKF(m, "%s", e.msg);
    if (!m) return NULL;
    *V = mf_model_get_info(m)->n_vocab;
    float *out = malloc(sizeof(float) * (size_t)n * *V);
    mf_session *s = mf_session_new(m, (uint32_t)n + 4, &e);
    int ok = out && s && mf_eval(s, ids, (size_t)n, out, &e) == 0;
    CHECKF(ok, "%s: %s", path, e.msg);
    mf_session_free(s);
    mf_model_close(m);
    if (!ok) free(out);
    return ok ? out : NULL;
}

static int plan_of(t_state *t_, const char *path, mf_plan *p)
{
    mf_error e;
    gguf_file *f = gguf_open(path, &e);
    CHECKF(f, "%s", e.msg);
    if (!f) return -1;
    int rc = plan_compute(f, p, &e);
    CHECKF(rc == 0, "%s", e.msg);
    gguf_close(f);
    return rc;
}

static const char *const models[] = {
    "golden/qwen3moe-q4_k_m.gguf", "golden/qwen35moe-q8_0.gguf", "golden/deepseek2-q8_0.gguf",
    "golden/glm4moe-q4_k_m.gguf",  "golden/gpt-oss-mxfp4.gguf",  "models/stories260K-moe/stories260K-dense.gguf",
};

static const int32_t seq[] = { 1, 17, 300, 42, 511, 0, 256, 99, 7, 123, 480, 64 };
#define N_SEQ ((int)(sizeof seq / sizeof seq[0]))

TEST(embd_plan_untied_on_disk_tied_resident)
{
    for (size_t i = 0; i < sizeof models / sizeof models[0]; i++) {
        const char *src = t_shared(models[i]);
        mf_plan orig, tied;
        const char *tp = write_copy(t_, src, "plan-tied", COPY_TIED, 0);
        REQUIRE(tp && plan_of(t_, src, &orig) == 0);
        if (plan_of(t_, tp, &tied)) { plan_free(&orig); return; }
        mf_error e;
        gguf_file *f = gguf_open(src, &e);
        REQUIREF(f, "%s", e.msg);
        const uint64_t embd = gguf_find_tensor(f, "token_embd.weight")->nbytes;
        const uint64_t out = gguf_find_tensor(f, "output.weight")->nbytes;
        gguf_close(f);
        CHECKF(orig.row_read_bytes == embd, "%s: %" PRIu64 " bytes read per token, the embedding is %" PRIu64,
               models[i], orig.row_read_bytes, embd);
        CHECKF(orig.resident_bytes + orig.row_read_bytes + orig.expert_bytes == orig.total_bytes,
               "%s: resident + embedding + experts != total", models[i]);
        /* tied: the embedding is resident, the output head is gone */
        CHECKF(tied.row_read_bytes == 0, "%s tied: %" PRIu64 " bytes read per token", models[i], tied.row_read_bytes);
        CHECKF(tied.resident_bytes == orig.resident_bytes - out + embd, "%s tied: resident %" PRIu64 ", expected %" PRIu64,
               models[i], tied.resident_bytes, orig.resident_bytes - out + embd);
        printf("  %-48s resident %" PRIu64 ", embedding on disk %" PRIu64 "; tied copy resident %" PRIu64 "\n", models[i],
               orig.resident_bytes, orig.row_read_bytes, tied.resident_bytes);
        plan_free(&orig), plan_free(&tied);
    }
}

/* Tied (embedding resident, also the head) against its untied twin (the
 * same matrix as output.weight, the embedding read from disk), one file and
 * split with the embedding in the last part; batched and token by token:
 * every logit bit-identical. */
TEST(embd_rows_from_disk_equal_resident)
{
    for (size_t i = 0; i < sizeof models / sizeof models[0]; i++) {
        const char *src = t_shared(models[i]);
        const char *tied = write_copy(t_, src, "eq-tied", COPY_TIED, 0);
        const char *twin = write_copy(t_, src, "eq-twin", COPY_OUT_IS_EMBD, 0);
        REQUIRE(tied && twin);
        char twin_path[1024];
        snprintf(twin_path, sizeof twin_path, "%s", twin);
        const char *split = write_copy(t_, twin_path, "eq-twin-split", COPY_EMBD_LAST, 12);
        REQUIRE(split);
        uint32_t V = 0;
        float *ref = eval_ids(t_, tied, 1, seq, N_SEQ, &V);
        REQUIRE(ref);
        const char *paths[3] = { tied, twin_path, split };
        for (int p = 0; p < 3; p++)
            for (int b = 0; b < 2; b++) {
                if (p == 0 && b == 1) continue; /* the reference itself */
                uint32_t V2 = 0;
                float *got = eval_ids(t_, paths[p], b, seq, N_SEQ, &V2);
                CHECKF(got && V2 == V && memcmp(got, ref, sizeof(float) * V * N_SEQ) == 0,
                       "%s: %s, %s: logits differ from the tied model's token by token", models[i],
                       p == 0 ? "tied" : p == 1 ? "untied twin" : "untied twin split", b ? "token by token" : "batched");
                free(got);
            }
        free(ref);
        printf("  %-48s tied = untied (1 file, split), batched and token by token: %d rows\n", models[i], N_SEQ);
    }
}

/* Opens path (the embedding last in its part), cuts that part inside the
 * embedding after open, at row `cut` plus half a row, then: rows below
 * still work; a row past the cut fails (token by token and in a batch)
 * naming the part's file, the tensor, the row and a byte offset; and the
 * session carries on with good rows, giving the reference's logits. */
static void check_cut(t_state *t_, const char *model, uint64_t per_part)
{
    const char *src = t_shared(model);
    char path[1024], tag[64];
    snprintf(tag, sizeof tag, "cut-%s", per_part ? "split" : "one");
    const char *p = write_copy(t_, src, tag, COPY_EMBD_LAST, per_part);
    REQUIRE(p);
    snprintf(path, sizeof path, "%s", p);
    /* reference: the order of evaluation below, on the untouched model */
    const int32_t good[5] = { 5, 7, 9, 11, 12 };
    uint32_t V = 0;
    float *ref = eval_ids(t_, src, 1, good, 5, &V);
    REQUIRE(ref);

    mf_error e;
    gguf_file *f = gguf_open(path, &e);
    REQUIREF(f, "%s", e.msg);
    const gguf_tensor *t = gguf_find_tensor(f, "token_embd.weight");
    REQUIRE(t);
    char part[1024];
    snprintf(part, sizeof part, "%s", f->parts[t->file].path);
    const uint64_t row = t->nbytes / t->ne[1], cut_row = 256;
    const uint64_t cut_at = t->offset + cut_row * row + row / 2;
    const int last = t->offset + t->nbytes == f->parts[t->file].size;
    gguf_close(f);
    REQUIREF(last, "%s: the embedding is not the end of its part", part);

    mf_model *m = mf_model_open(path, NULL, &e);
    REQUIREF(m, "%s", e.msg);
    mf_session *s = mf_session_new(m, 32, &e);
    REQUIREF(s, "%s", e.msg);
    float *logits = malloc(sizeof(float) * V * 2);
    REQUIRE(logits);
    CHECKF(mf_eval(s, good, 1, NULL, &e) == 0, "%s", e.msg);
    REQUIRE(truncate(part, (off_t)cut_at) == 0);
    CHECKF(mf_eval(s, good + 1, 1, NULL, &e) == 0, "%s: row 7 after the cut: %s", model, e.msg);

    const int32_t bad = 400;
    int rc = mf_eval(s, &bad, 1, NULL, &e);
    CHECKF(rc != 0, "%s: row %d past the cut gave no error", model, bad);
    if (rc) {
        char want[64];
        snprintf(want, sizeof want, "row %d", bad);
        CHECKF(strstr(e.msg, part) && strstr(e.msg, "token_embd.weight") && strstr(e.msg, want) &&
                   strstr(e.msg, "at byte ") && strstr(e.msg, "end of file"),
               "%s: the error does not name the file, tensor, row and offset: %s", model, e.msg);
        printf("  %s\n", e.msg);
    }
    CHECKF(mf_session_n_past(s) == 2, "%s: n_past %u after the failed token", model, mf_session_n_past(s));
    CHECKF(mf_eval(s, good + 2, 1, NULL, &e) == 0, "%s: the session is unusable after the error: %s", model, e.msg);
    if (mf_session_n_past(s) == 3)
        CHECKF(memcmp(mf_session_logits(s), ref + 2 * (size_t)V, sizeof(float) * V) == 0,
               "%s: logits after the failed token differ from the reference", model);
    /* a batch with a row past the cut fails before any layer runs */
    const int32_t mixed[2] = { 11, bad };
    CHECKF(mf_eval(s, mixed, 2, NULL, &e) != 0 && strstr(e.msg, "token_embd.weight"), "%s: batch: %s", model,
           e.msg);
    CHECKF(mf_eval(s, good + 3, 2, logits, &e) == 0, "%s: batch after the error: %s", model, e.msg);
    CHECKF(memcmp(logits, ref + 3 * (size_t)V, sizeof(float) * V * 2) == 0,
           "%s: batch logits after the failed batch differ from the reference", model);
    free(logits);
    mf_session_free(s);
    mf_model_close(m);
    free(ref);
}

TEST(embd_file_cut_inside_embedding)
{
    check_cut(t_, "golden/qwen3moe-q8_0.gguf", 0);
    check_cut(t_, "golden/qwen35moe-q8_0.gguf", 0); /* recurrent state: must not be left broken */
    check_cut(t_, "golden/deepseek2-q4_k_m.gguf", 0);
    check_cut(t_, "golden/gpt-oss-mxfp4.gguf", 16);   /* split: the error names the last part */
}

/* Peak RSS of `moeflash run` on a model whose embedding dominates (64 MiB
 * f16 against an 18 MiB q4_K head): untied, it stays out of memory; the
 * tied copy (the embedding is the head) holds it. */
static uint64_t run_peak_rss(t_state *t_, const char *bin, const char *path)
{
    char cmd[3072], json[600];
    snprintf(json, sizeof json, "%s/embd-rss.json", t_tmpdir());
    snprintf(cmd, sizeof cmd, "'%s' run '%s' --tokens '300 301 302 303' -n 4 --temp 0 --cache 4M --stats-json '%s' > /dev/null",
             bin, path, json);
    CHECKF(system(cmd) == 0, "%s failed", cmd);
    char *js = t_read_file(json, NULL);
    CHECK(js);
    if (!js) return 0;
    const char *p = strstr(js, "\"peak_rss_bytes\": ");
    uint64_t rss = p ? strtoull(p + 18, NULL, 10) : 0;
    CHECK(rss > 0);
    free(js);
    unlink(json);
    return rss;
}

TEST(embd_not_resident_peak_rss)
{
    const char *bin = getenv("MF_BIN");
    REQUIREF(bin, "MF_BIN is not set (run through make test)");
    char path[512];
    snprintf(path, sizeof path, "%s/synth-embd.gguf", t_tmpdir());
    mf_synth_shape sh;
    mf_synth_preset("tiny", &sh);
    sh.n_vocab = 131072;
    sh.words_vocab = false;
    sh.embd_type = MF_TYPE_F16;
    mf_error e;
    REQUIREF(mf_synth_write(path, &sh, &e) == 0, "%s", e.msg);
    const char *tied = write_copy(t_, path, "synth-embd-tied", COPY_TIED, 0);
    REQUIRE(tied);
    const uint64_t embd = (uint64_t)sh.n_embd * sh.n_vocab * 2, out = (uint64_t)sh.n_embd * sh.n_vocab * 144 / 256;
    uint64_t r_untied = run_peak_rss(t_, bin, path);
    uint64_t r_tied = run_peak_rss(t_, bin, tied);
    printf("  peak RSS untied %.1f MB, tied %.1f MB; embedding %.1f MB, output head %.1f MB\n", r_untied / 1e6,
           r_tied / 1e6, embd / 1e6, out / 1e6);
    /* the tied copy holds the embedding and no head: embd - out more */
    CHECKF(r_tied > r_untied && r_tied - r_untied >= (embd - out) * 3 / 4,
           "peak RSS untied %" PRIu64 ", tied %" PRIu64 ": the untied embedding looks resident", r_untied, r_tied);
    CHECKF(r_untied < embd, "peak RSS untied %" PRIu64 " >= the embedding's %" PRIu64 " bytes", r_untied, embd);
    unlink(path);
    unlink(tied);
}

/* Rows longer than weight_read_row's 16 KiB buffer are read in several
 * pieces of whole blocks: the same floats as dequantizing the row whole. */
TEST(embd_long_rows_read_in_pieces)
{
    static const struct { uint32_t type; uint64_t ne0; } cases[] = {
        { MF_TYPE_F32, 5000 },          /* 20000 bytes: 2 reads */
        { MF_TYPE_Q8_0, 32 * 1100 },    /* 37400 bytes: 3 reads, blocks of 34 bytes */
        { MF_TYPE_Q4_K, 256 * 130 },    /* 18720 bytes */
    };
    char path[512];
    snprintf(path, sizeof path, "%s/long-rows.gguf", t_tmpdir());
    gguf_writer *w = gguf_writer_new();
    gguf_w_str(w, "general.architecture", "none");
    uint64_t seed = 12345;
    int rc = 0;
    mf_error e;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0] && rc == 0; i++) {
        const uint64_t ne[2] = { cases[i].ne0, 3 };
        const size_t n = quant_row_bytes(cases[i].type, ne[0]) * 3;
        uint8_t *buf = malloc(n);
        REQUIRE(buf);
        /* random bytes, with every half-float scale kept finite */
        for (size_t k = 0; k < n; k++) {
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            buf[k] = (uint8_t)(seed >> 56) & 0x3b;
        }
        if (cases[i].type == MF_TYPE_F32)
            for (size_t k = 0; k < n / 4; k++) ((float *)buf)[k] = (float)k * 0.25f - 100.0f;
        char name[32];
        snprintf(name, sizeof name, "w%zu.weight", i);
        rc = gguf_w_tensor(w, name, cases[i].type, 2, ne, buf, &e);
        free(buf);
    }
    if (rc == 0) rc = gguf_w_write(w, path, 0, &e);
    gguf_writer_free(w);
    REQUIREF(rc == 0, "%s", e.msg);
    gguf_file *f = gguf_open(path, &e);
    REQUIREF(f, "%s", e.msg);
    binder b = { f, &e, 0 };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        mf_weight wt;
        char name[32];
        snprintf(name, sizeof name, "w%zu.weight", i);
        if (bind_weight(&b, &wt, 1, 2, (uint64_t[]){ cases[i].ne0, 3 }, "%s", name)) { CHECKF(0, "%s", e.msg); continue; }
        const void *mapped = wt.data;
        wt.data = NULL; /* as if left on disk */
        float *want = malloc(sizeof(float) * cases[i].ne0), *got = malloc(sizeof(float) * cases[i].ne0);
        REQUIRE(want && got);
        for (uint64_t r = 0; r < 3; r++) {
            quant_type(wt.type)->dequant((const uint8_t *)mapped + r * wt.row_bytes, want, cases[i].ne0);
            memset(got, 0xff, sizeof(float) * cases[i].ne0);
            CHECKF(op_get_row(&wt, r, got, &e) == 0, "%s", e.msg);
            CHECKF(memcmp(want, got, sizeof(float) * cases[i].ne0) == 0, "%s row %" PRIu64 ": read in pieces differs",
                   quant_type(wt.type)->name, r);
        }
        CHECKF(op_get_row(&wt, 3, got, &e) != 0 && strstr(e.msg, "row 3 out of range"), "row 3 of 3: %s", e.msg);
        free(want), free(got);
    }
    gguf_close(f);
}
