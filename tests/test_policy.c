/* test_policy.c — each eviction policy's decisions, table-driven: a script
 * of steps, inserts, hits and removals, and the victim expected at each
 * question; then whole traces through the simulated store (the cyclic
 * decode pattern that sends LRU to 0%), the hot-set file, Belady's bound
 * and the replay of the shared traces (sim = real store path). */
#include "t.h"
#include "store/policy.h"
#include "store/replay.h"
#include "store/store.h"

#include <stdio.h>
#include <sys/wait.h>

enum { STEP, INS, PRE, HIT, REM, VIC, END };

typedef struct op {
    int op;          /* STEP layer | INS/PRE/HIT slot layer expert | REM slot | VIC layer expert pinned expect */
    int slot, layer, expert;
    unsigned pinned; /* VIC: bit i set = slot i pinned */
    int expect;      /* VIC: the slot expected */
} op;

static bool pinned_mask(void *ctx, uint32_t slot) { return (*(unsigned *)ctx >> slot) & 1; }

static void run_script(t_state *t_, const char *name, const store_policy_params *pp, const op *ops)
{
    mf_error e;
    store_policy *p = policy_new(name, pp, &e);
    REQUIREF(p, "%s: %s", name, e.msg);
    CHECK(!strcmp(p->ops->name, name));
    for (int i = 0; ops[i].op != END; i++) {
        const op *o = &ops[i];
        switch (o->op) {
        case STEP: p->ops->on_step(p, o->layer); break;
        case INS: p->ops->on_insert(p, (uint32_t)o->slot, o->layer, o->expert, true); break;
        case PRE: p->ops->on_insert(p, (uint32_t)o->slot, o->layer, o->expert, false); break;
        case HIT: p->ops->on_hit(p, (uint32_t)o->slot, o->layer, o->expert); break;
        case REM: p->ops->on_remove(p, (uint32_t)o->slot); break;
        case VIC: {
            unsigned mask = o->pinned;
            int64_t v = p->ops->victim(p, o->layer, o->expert, pinned_mask, &mask);
            CHECKF(v == o->expect, "%s: script line %d: victim %lld, expected %d", name, i, (long long)v, o->expect);
            break;
        }
        }
    }
    p->ops->free(p);
}

/* n steps of layer l with nothing used (time passing) */
#define IDLE(l) { STEP, 0, l, 0, 0, 0 }

TEST(policy_lru_table)
{
    store_policy_params pp = { 3, 2, 4, 1, NULL };
    const op ops[] = {
        { VIC, 0, 0, 0, 0, 0 },                       /* all empty: the first */
        { STEP, 0, 0, 0, 0, 0 }, { INS, 0, 0, 0, 0, 0 },
        { VIC, 0, 0, 1, 0, 1 },                       /* empty slots first */
        { STEP, 0, 1, 0, 0, 0 }, { INS, 1, 1, 0, 0, 0 },
        { STEP, 0, 0, 0, 0, 0 }, { INS, 2, 0, 1, 0, 0 },
        { VIC, 0, 1, 1, 0, 0 },                       /* full: the oldest */
        { HIT, 0, 0, 0, 0, 0 },
        { VIC, 0, 1, 1, 0, 1 },                       /* slot 0 used again: slot 1 is oldest */
        { VIC, 0, 1, 1, 1u << 1, 2 },                 /* pinned slots are skipped */
        { VIC, 0, 1, 1, 7u, -1 },                     /* all pinned: none */
        { REM, 2, 0, 0, 0, 0 },
        { VIC, 0, 1, 1, 0, 2 },                       /* an emptied slot goes first */
        { END, 0, 0, 0, 0, 0 },
    };
    run_script(t_, "lru", &pp, ops);
}

TEST(policy_lru_layer_table)
{
    store_policy_params pp = { 4, 2, 4, 1, NULL }; /* quota: 2 slots per layer */
    const op ops[] = {
        { INS, 0, 0, 0, 0, 0 }, { INS, 1, 0, 1, 0, 0 }, { INS, 2, 1, 0, 0, 0 }, { INS, 3, 1, 1, 0, 0 },
        { HIT, 0, 0, 0, 0, 0 },
        { VIC, 0, 0, 2, 0, 1 },                       /* layer 0 at its quota: its own oldest */
        { VIC, 0, 1, 2, 0, 2 },                       /* layer 1 likewise, though slot 1 is older */
        { REM, 3, 0, 0, 0, 0 }, { INS, 3, 0, 3, 0, 0 }, /* layer 0 now holds 3 slots, layer 1 one */
        { VIC, 0, 1, 2, 0, 1 },                       /* layer 1 under quota: oldest of the layer over it */
        { VIC, 0, 1, 2, 1u << 1, 0 },
        { VIC, 0, 1, 2, 1u << 0 | 1u << 1 | 1u << 3, 2 }, /* nothing over quota free: oldest anywhere */
        { END, 0, 0, 0, 0, 0 },
    };
    run_script(t_, "lru-layer", &pp, ops);
}

TEST(policy_lfu_table)
{
    store_policy_params pp = { 3, 1, 8, 1, NULL };
    op ops[200];
    int n = 0;
#define OP(...) ops[n++] = (op){ __VA_ARGS__ }
    OP(STEP, 0, 0, 0, 0, 0); OP(INS, 0, 0, 0, 0, 0); OP(HIT, 0, 0, 0, 0, 0); OP(HIT, 0, 0, 0, 0, 0); /* (0,0): 3 uses */
    OP(STEP, 0, 0, 0, 0, 0); OP(INS, 1, 0, 1, 0, 0);                                                /* (0,1): 1 use */
    OP(STEP, 0, 0, 0, 0, 0); OP(INS, 2, 0, 2, 0, 0); OP(HIT, 2, 0, 2, 0, 0);                         /* (0,2): 2 uses */
    OP(VIC, 0, 0, 3, 0, 1);                        /* the least used, though not the oldest */
    OP(PRE, 1, 0, 3, 0, 0);                        /* a prefetch insert is not a use */
    OP(VIC, 0, 0, 4, 0, 1);
    OP(HIT, 1, 0, 3, 0, 0); OP(HIT, 1, 0, 3, 0, 0); OP(HIT, 1, 0, 3, 0, 0); OP(HIT, 1, 0, 3, 0, 0);
    OP(VIC, 0, 0, 4, 0, 2);                        /* now (0,2) is the least used */
    /* the history survives eviction: (0,0) back in slot 2 has its 3 uses + 1 */
    OP(INS, 2, 0, 0, 0, 0);
    OP(VIC, 0, 0, 4, 1u << 1, 0);                  /* slot 0 still says (0,0) too: equal counts, older slot */
    OP(END, 0, 0, 0, 0, 0);
#undef OP
    run_script(t_, "lfu", &pp, ops);
}

TEST(policy_lrfu_table)
{
    /* half-life 8 tokens = 8 steps with one layer */
    store_policy_params pp = { 2, 1, 8, 1, NULL };
    op ops[200];
    int n = 0;
#define OP(...) ops[n++] = (op){ __VA_ARGS__ }
    OP(STEP, 0, 0, 0, 0, 0); OP(INS, 0, 0, 0, 0, 0); OP(HIT, 0, 0, 0, 0, 0); OP(HIT, 0, 0, 0, 0, 0); /* 3 uses */
    for (int i = 0; i < 8; i++) OP(STEP, 0, 0, 0, 0, 0);                                          /* one half-life */
    OP(INS, 1, 0, 1, 0, 0);                                                                           /* 1 use, now */
    OP(VIC, 0, 0, 2, 0, 1);                        /* 3 x 1/2 > 1: the frequent one stays */
    for (int i = 0; i < 16; i++) OP(STEP, 0, 0, 0, 0, 0);                                         /* two more */
    OP(HIT, 1, 0, 1, 0, 0);                        /* (0,1): 1/4 + 1 against 3/8 */
    OP(VIC, 0, 0, 2, 0, 0);                        /* recency wins now */
    OP(END, 0, 0, 0, 0, 0);
#undef OP
    run_script(t_, "lrfu", &pp, ops);
}

TEST(policy_hot_table)
{
    /* 4 slots: the 2 most used experts are hot after 4 tokens (4 steps) */
    store_policy_params pp = { 4, 1, 8, 1, NULL };
    op ops[200];
    int n = 0;
#define OP(...) ops[n++] = (op){ __VA_ARGS__ }
    OP(INS, 0, 0, 0, 0, 0); OP(HIT, 0, 0, 0, 0, 0); OP(HIT, 0, 0, 0, 0, 0);
    OP(INS, 1, 0, 1, 0, 0); OP(HIT, 1, 0, 1, 0, 0);
    OP(INS, 2, 0, 2, 0, 0);
    OP(INS, 3, 0, 3, 0, 0);
    OP(VIC, 0, 0, 4, 0, 0);                        /* before a refresh: plain LRU */
    for (int i = 0; i < 4; i++) OP(STEP, 0, 0, 0, 0, 0);
    OP(VIC, 0, 0, 4, 0, 2);                        /* (0,0) and (0,1) are hot: the oldest cold one */
    OP(VIC, 0, 0, 4, 1u << 2 | 1u << 3, 0);       /* only hot ones free: the oldest of those */
    OP(END, 0, 0, 0, 0, 0);
#undef OP
    run_script(t_, "hot", &pp, ops);
}

TEST(policy_nextuse_table)
{
    /* 4 layers, decode order: a frequently chosen expert outlives a one-off
     * used later; in a repeating layer (batched prefill) that layer's
     * experts are the ones needed next. */
    store_policy_params pp = { 3, 4, 8, 1, NULL };
    op ops[300];
    int n = 0;
#define OP(...) ops[n++] = (op){ __VA_ARGS__ }
    OP(STEP, 0, 0, 0, 0, 0); OP(INS, 0, 0, 0, 0, 0); /* (0,0) chosen at each of 4 tokens */
    for (int tok = 1; tok < 4; tok++) {
        OP(STEP, 0, 1, 0, 0, 0); OP(STEP, 0, 2, 0, 0, 0); OP(STEP, 0, 3, 0, 0, 0);
        OP(STEP, 0, 0, 0, 0, 0); OP(HIT, 0, 0, 0, 0, 0);
    }
    OP(STEP, 0, 1, 0, 0, 0); OP(INS, 1, 1, 5, 0, 0); /* a one-off, just now */
    OP(STEP, 0, 2, 0, 0, 0); OP(INS, 2, 2, 5, 0, 0); /* another */
    OP(VIC, 0, 2, 6, 1u << 2, 1);                  /* the one-off goes, not the frequent expert */
    /* prefill: layer 3 repeats */
    OP(STEP, 0, 3, 0, 0, 0);
    OP(REM, 2, 0, 0, 0, 0); OP(INS, 2, 3, 1, 0, 0);  /* same history for (3,1) ... */
    OP(REM, 1, 0, 0, 0, 0); OP(INS, 1, 1, 6, 0, 0);  /* ... and (1,6) */
    OP(STEP, 0, 3, 0, 0, 0);
    OP(VIC, 0, 3, 2, 1u << 0, 1);                  /* keep the repeating layer's expert */
    OP(PRE, 1, 3, 7, 0, 0);                        /* a prefetched expert never used: first to go */
    OP(VIC, 0, 3, 3, 0, 1);
    OP(END, 0, 0, 0, 0, 0);
#undef OP
    run_script(t_, "nextuse", &pp, ops);
}

TEST(policy_unknown_and_default)
{
    store_policy_params pp = { 4, 2, 4, 1, NULL };
    mf_error e;
    CHECK(policy_new("fifo", &pp, &e) == NULL);
    CHECKF(strstr(e.msg, "fifo") && strstr(e.msg, "nextuse"), "%s", e.msg);
    store_policy *p = policy_new(NULL, &pp, &e);
    REQUIRE(p);
    CHECK(!strcmp(p->ops->name, policy_default_name()));
    p->ops->free(p);
}

/* A synthetic decode trace: L layers, K = 1; each layer chooses its hot
 * expert 0 at three tokens of four and another at the fourth. */
static void cyclic_trace(replay_trace *t, uint32_t L, uint32_t tokens, uint32_t *start, int32_t *layer,
                         uint8_t *decode, int32_t *ids)
{
    memset(t, 0, sizeof *t);
    t->n_layer = L, t->n_expert = 4, t->n_used = 1, t->max_k = 1;
    t->n_steps = L * tokens;
    t->n_ids = t->n_steps;
    for (uint32_t s = 0; s < t->n_steps; s++) {
        start[s] = s;
        layer[s] = (int32_t)(s % L);
        decode[s] = 1;
        ids[s] = s / L % 4 == 3 ? (int32_t)(1 + s % L % 3) : 0;
    }
    start[t->n_steps] = t->n_steps;
    t->start = start, t->layer = layer, t->decode = decode, t->ids = ids;
}

TEST(policy_below_working_set)
{
    /* 8 experts per token; a cache of 6 slots is below one token's
     * working set, and LRU evicts each hot expert just before its reuse */
    uint32_t start[1025];
    int32_t layer[1024], ids[1024];
    uint8_t decode[1024];
    replay_trace t;
    cyclic_trace(&t, 8, 128, start, layer, decode, ids);
    static const struct { const char *policy; double min, max; } want[] = {
        { "lru", 0, 0 },          /* swept by the layer cycle */
        { "lfu", 0, 1 },          /* equal counts fall back to LRU: swept too */
        { "lrfu", 0, 1 },
        { "nextuse", 0.4, 1 },    /* keeps the layers coming next (Belady: 52.6%) */
    };
    replay_result opt;
    mf_error e;
    REQUIRE(replay_belady(&t, 6, &opt, &e) == 0);
    double best = (double)opt.hits / (opt.hits + opt.misses);
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        replay_result r;
        REQUIREF(replay_sim(&t, want[i].policy, NULL, 6, 1000, &r, &e) == 0, "%s", e.msg);
        double h = (double)r.hits / (r.hits + r.misses);
        printf("  %-8s %.1f%% (belady %.1f%%)\n", want[i].policy, 100 * h, 100 * best);
        CHECKF(h >= want[i].min && h <= want[i].max, "%s: hit rate %.3f, expected [%.2f, %.2f]", want[i].policy, h,
               want[i].min, want[i].max);
        CHECKF(h <= best + 1e-9, "%s beats Belady", want[i].policy);
        CHECK(r.bytes_read == r.misses * 1000);
    }
}

TEST(policy_hot_set_file)
{
    char path[600];
    snprintf(path, sizeof path, "%s/hot.txt", t_tmpdir());
    store_policy_params pp = { 4, 2, 8, 1, path };
    mf_error e;
    store_policy *p = policy_new("hot", &pp, &e);
    REQUIREF(p, "%s", e.msg); /* a missing file is an empty history */
    for (int i = 0; i < 5; i++) p->ops->on_insert(p, 0, 1, 6, true);
    for (int i = 0; i < 3; i++) p->ops->on_insert(p, 1, 0, 2, true);
    p->ops->on_insert(p, 2, 0, 3, true);
    REQUIREF(policy_save(p, path, &e) == 0, "%s", e.msg);
    p->ops->free(p);
    /* a new session starts with the learned hot set: (1,6) and (0,2) */
    p = policy_new("hot", &pp, &e);
    REQUIREF(p, "%s", e.msg);
    p->ops->on_insert(p, 0, 1, 6, true);
    p->ops->on_insert(p, 1, 0, 2, true);
    p->ops->on_insert(p, 2, 0, 5, true);
    p->ops->on_insert(p, 3, 0, 7, true);
    unsigned none = 0;
    CHECK(p->ops->victim(p, 0, 1, pinned_mask, &none) == 2);
    p->ops->free(p);
    /* a file for another shape, or damaged, is refused with its line */
    store_policy_params other = { 4, 3, 8, 1, path };
    CHECK(policy_new("hot", &other, &e) == NULL);
    CHECKF(strstr(e.msg, path) && strstr(e.msg, "layers"), "%s", e.msg);
    FILE *fp = fopen(path, "a");
    REQUIRE(fp);
    fputs("0 99 1.0\n", fp);
    fclose(fp);
    CHECK(policy_new("hot", &pp, &e) == NULL);
    CHECKF(strstr(e.msg, "line") && strstr(e.msg, "expert < 8"), "%s", e.msg);
}

TEST(policy_replay_traces)
{
    /* every shared trace: the default policy beats global LRU at 10%, 25%
     * and 50% of all experts (or both reach Belady's bound), never beats
     * Belady, and below one token's working set does not fall to 0% */
    static const char *traces[] = { "traces/qwen3-30b-a3b.route.csv", "traces/gemma-4-26b-a4b.route.csv",
                                    "traces/gpt-oss-120b.route.csv" };
    for (size_t i = 0; i < 3; i++) {
        replay_trace t;
        mf_error e;
        REQUIREF(replay_trace_load(t_shared(traces[i]), &t, &e) == 0, "%s", e.msg);
        const uint32_t all = t.n_layer * t.n_expert;
        const double shares[] = { 0.10, 0.25, 0.50 };
        for (int k = 0; k < 4; k++) {
            uint32_t slots = k < 3 ? (uint32_t)(all * shares[k] + 0.5) : t.n_layer * t.n_used / 2;
            replay_result lru, def, opt;
            REQUIRE(replay_sim(&t, "lru", NULL, slots, 1, &lru, &e) == 0);
            REQUIRE(replay_sim(&t, NULL, NULL, slots, 1, &def, &e) == 0);
            REQUIRE(replay_belady(&t, slots, &opt, &e) == 0);
            CHECK(def.hits + def.misses == t.n_ids);
            CHECKF(def.hits <= opt.hits, "%s at %u slots: %llu hits, Belady %llu", traces[i], slots,
                   (unsigned long long)def.hits, (unsigned long long)opt.hits);
            if (k < 3)
                CHECKF(def.hits > lru.hits || (def.hits == lru.hits && lru.hits == opt.hits),
                       "%s at %u slots: default %llu hits, lru %llu", traces[i], slots, (unsigned long long)def.hits,
                       (unsigned long long)lru.hits);
            else
                CHECKF(def.decode_hits * 10 > def.decode_hits + def.decode_misses,
                       "%s below the working set: decode hit rate %llu/%llu", traces[i],
                       (unsigned long long)def.decode_hits, (unsigned long long)(def.decode_hits + def.decode_misses));
        }
        replay_trace_free(&t);
    }
}

TEST(policy_trace_errors)
{
    char path[600];
    snprintf(path, sizeof path, "%s/bad.csv", t_tmpdir());
    static const struct { const char *text, *want; } cases[] = {
        { "turn,phase\n", "line 1" },
        { "# route_trace v1\n0,0,0,0,0,1,0.5,0,10\n", "header" },
        { "# route_trace v1\n# model=m arch=a n_layer=2 n_expert=4 n_expert_used=1\n0,0,0,2,0,1,0.5,0,10\n", "line 3" },
        { "# route_trace v1\n# model=m arch=a n_layer=2 n_expert=4 n_expert_used=1\n0,0,0,1,0,x\n", "field 6" },
        { "# route_trace v1\n# model=m arch=a n_layer=2 n_expert=4 n_expert_used=1\n", "no routing rows" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        FILE *fp = fopen(path, "w");
        REQUIRE(fp);
        fputs(cases[i].text, fp);
        fclose(fp);
        replay_trace t;
        mf_error e;
        CHECKF(replay_trace_load(path, &t, &e) == -1 && strstr(e.msg, path) && strstr(e.msg, cases[i].want),
               "case %zu: %s", i, e.msg);
    }
}

/* The last line of a command's output (static buffer), or NULL. */
static const char *last_line(t_state *t_, const char *cmd, int *status)
{
    static char line[8192];
    char buf[8192];
    FILE *p = popen(cmd, "r");
    if (!p) { CHECKF(0, "popen %s", cmd); return NULL; }
    line[0] = 0;
    while (fgets(buf, sizeof buf, p)) memcpy(line, buf, sizeof buf);
    *status = pclose(p);
    return line;
}

TEST(policy_replay_cli)
{
    const char *bin = getenv("MF_BIN");
    REQUIREF(bin, "MF_BIN is not set (run through make test)");
    const char *trace = t_shared("traces/gpt-oss-120b.route.csv");
    char cmd[2048];
    int st;
    /* --sim: one JSON line with the contract's fields */
    snprintf(cmd, sizeof cmd, "'%s' replay '%s' --sim --cache 10%% --policy lru", bin, trace);
    const char *js = last_line(t_, cmd, &st);
    REQUIRE(js);
    CHECKF(st == 0 && js[0] == '{' && strstr(js, "\"hit_rate\": ") && strstr(js, "\"belady_hit_rate\": ") &&
               strstr(js, "\"bytes_read\": ") && strstr(js, "\"policy\": \"lru\""),
           "%s", js);
    /* through the disk: a small scratch model, the same hit rate as --sim */
    char scratch[600];
    snprintf(scratch, sizeof scratch, "%s/replay.gguf", t_tmpdir());
    const char *ios[] = { "pread", "direct", "uring" };
    char sim_rate[32] = "";
    for (int i = 0; i < 3; i++) {
        snprintf(cmd, sizeof cmd, "'%s' replay '%s' --expert-bytes 12K --cache 25%% --io %s --scratch '%s' 2>/dev/null",
                 bin, trace, ios[i], scratch);
        js = last_line(t_, cmd, &st);
        REQUIRE(js);
        const char *h = strstr(js, "\"hit_rate\": ");
        CHECKF(st == 0 && h && strstr(js, "\"reads_per_s\": "), "--io %s: %s", ios[i], js);
        if (!h) continue;
        if (!sim_rate[0]) {
            char c2[2048];
            snprintf(c2, sizeof c2, "'%s' replay '%s' --expert-bytes 12K --cache 25%% --sim", bin, trace);
            const char *j2 = last_line(t_, c2, &st);
            const char *h2 = j2 ? strstr(j2, "\"hit_rate\": ") : NULL;
            REQUIRE(h2);
            snprintf(sim_rate, sizeof sim_rate, "%.18s", h2);
        }
        CHECKF(!strncmp(h, sim_rate, strlen(sim_rate)), "--io %s: %.30s, --sim: %s", ios[i], h, sim_rate);
    }
    /* bad usage: exit status 2 */
    snprintf(cmd, sizeof cmd, "'%s' replay '%s' --cache 10%% 2>/dev/null", bin, trace);
    last_line(t_, cmd, &st);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 2);
    snprintf(cmd, sizeof cmd, "'%s' replay '%s' --sim --policy fifo 2>/dev/null", bin, trace);
    last_line(t_, cmd, &st);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 1);
}

TEST(policy_flags_cli)
{
    /* --policy, --hot-set and --no-prefetch reach the store; the hot set is
     * written at exit and read back by the next run */
    const char *bin = getenv("MF_BIN");
    REQUIREF(bin, "MF_BIN is not set (run through make test)");
    const char *model = t_shared("golden/qwen3moe-q4_k_m.gguf");
    char hot[600], json[600], cmd[3000];
    snprintf(hot, sizeof hot, "%s/model.hot", t_tmpdir());
    snprintf(json, sizeof json, "%s/flags.json", t_tmpdir());
    for (int run = 0; run < 2; run++) {
        snprintf(cmd, sizeof cmd,
                 "'%s' run '%s' --tokens '1 2 3' -n 4 --temp 0 --cache 1M --hot-set '%s' --stats-json '%s' >/dev/null",
                 bin, model, hot, json);
        REQUIRE(system(cmd) == 0);
        char *f = t_read_file(hot, NULL);
        CHECKF(f && !strncmp(f, "# moeflash hot-set v1\nn_layer=3 n_expert=8\n", 43), "%s", f ? f : "(no file)");
        free(f);
    }
    snprintf(cmd, sizeof cmd, "'%s' run '%s' --tokens '1 2 3' -n 4 --temp 0 --policy lru --hot-set '%s' 2>&1 >/dev/null",
             bin, model, hot);
    int st;
    const char *msg = last_line(t_, cmd, &st);
    CHECKF(st != 0 && msg && strstr(msg, "--policy hot"), "%s", msg ? msg : "");
    snprintf(cmd, sizeof cmd, "'%s' run '%s' --tokens '1 2 3' -n 4 --temp 0 --cache 1M --no-prefetch --stats-json '%s' >/dev/null",
             bin, model, json);
    REQUIRE(system(cmd) == 0);
    char *js = t_read_file(json, NULL);
    REQUIRE(js);
    CHECKF(strstr(js, "\"prefetch_issued\": 0,") && strstr(js, "\"prefetch_late\": ") &&
               strstr(js, "\"predictor_accuracy\": "),
           "%s", js);
    free(js);
}
