/* cmd_replay.c — `moeflash replay TRACE`: a routing trace through the
 * expert store, with Belady's offline optimum at the same size as the
 * bound. Parsing and printing only; the replay is src/store/replay.c
 * (a developer tool, like serve's server, it reaches past moeflash.h). */
#include "cli/args.h"
#include "cli/cli.h"
#include "store/policy.h"
#include "store/replay.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int usage(int rc)
{
    fprintf(rc ? stderr : stdout,
            "usage: moeflash replay TRACE --expert-bytes N [--cache SIZE|P%%[,...]] [--policy P[,...]|all]\n"
            "                       [--io pread|direct|uring] [--io-threads N] [--sim] [--hot-set FILE]\n"
            "                       [--scratch FILE]\n"
            "  TRACE            a route_trace v1 file (../shared/traces)\n"
            "  --expert-bytes   bytes of one expert (the slot size); --sim: default the trace's largest\n"
            "  --cache          bytes (512M, 2G) or a share of all experts (25%%); default 25%%\n"
            "  --policy         %s; default %s\n"
            "  --sim            no I/O: the store's bookkeeping and policy only (lists allowed)\n"
            "  --scratch FILE   the scratch model for I/O (default: in the cache directory)\n"
            "Prints hit rate, bytes read, reads/s and Belady's hit rate, then one JSON line.\n",
            policy_names(), policy_default_name());
    return rc;
}

/* "25%" (of all experts) or a size in bytes -> slots. */
static int parse_cache(const char *v, const replay_trace *t, uint64_t expert_bytes, uint32_t *slots)
{
    uint64_t all = (uint64_t)t->n_layer * t->n_expert;
    size_t n = strlen(v);
    if (n > 1 && v[n - 1] == '%') {
        char *end;
        double pct = strtod(v, &end);
        if (end != v + n - 1 || pct <= 0 || pct > 100) return -1;
        *slots = (uint32_t)(all * pct / 100.0 + 0.5);
        return 0;
    }
    uint64_t b;
    if (cli_parse_size(v, &b) || b == 0 || !expert_bytes) return -1;
    uint64_t s = b / expert_bytes;
    *slots = (uint32_t)(s > all ? all : s);
    return 0;
}

static double rate(uint64_t h, uint64_t m) { return h + m ? (double)h / (double)(h + m) : 0; }

/* The next comma-separated item of *list into buf (NULL at the end). */
static const char *next_item(const char **list, char *buf, size_t n)
{
    if (!*list || !**list) return NULL;
    const char *c = strchr(*list, ',');
    size_t len = c ? (size_t)(c - *list) : strlen(*list);
    snprintf(buf, n, "%.*s", (int)(len < n ? len : n - 1), *list);
    *list = c ? c + 1 : NULL;
    return buf;
}

typedef struct row {
    char policy[32];
    uint32_t slots;
    replay_result r, opt;
} row;

static void json_row(FILE *out, const replay_trace *t, const row *w, uint64_t eb, const char *io, bool flat)
{
    double sec = w->r.seconds > 0 ? w->r.seconds : 0;
    fprintf(out,
            "%s\"policy\": \"%s\", \"cache_slots\": %u, \"cache_share\": %.4f, \"cache_bytes\": %" PRIu64
            ", \"expert_bytes\": %" PRIu64 ", \"lookups\": %" PRIu64 ", \"hit_rate\": %.4f, \"decode_hit_rate\": %.4f"
            ", \"belady_hit_rate\": %.4f, \"belady_decode_hit_rate\": %.4f, \"bytes_read\": %" PRIu64
            ", \"reads\": %" PRIu64 ", \"seconds\": %.3f, \"reads_per_s\": %.1f, \"read_mb_s\": %.1f, \"io\": \"%s\"}",
            flat ? "" : "{", w->policy, w->slots, (double)w->slots / ((double)t->n_layer * t->n_expert),
            (uint64_t)w->slots * eb, eb, w->r.hits + w->r.misses, rate(w->r.hits, w->r.misses),
            rate(w->r.decode_hits, w->r.decode_misses), rate(w->opt.hits, w->opt.misses),
            rate(w->opt.decode_hits, w->opt.decode_misses), w->r.bytes_read, w->r.reads, sec,
            sec > 0 ? (double)w->r.reads / sec : 0, sec > 0 ? (double)w->r.bytes_read / sec / 1e6 : 0, io);
}

int cmd_replay(int argc, char **argv)
{
    cli_common c;
    cli_common_default(&c);
    const char *trace_path = NULL, *cache = "25%", *scratch = NULL;
    uint64_t expert_bytes = 0;
    bool sim = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) return usage(0);
        if (!strcmp(argv[i], "--cache") && i + 1 < argc) { cache = argv[++i]; continue; }
        if (!strcmp(argv[i], "--sim")) { sim = true; continue; }
        if (!strcmp(argv[i], "--scratch") && i + 1 < argc) { scratch = argv[++i]; continue; }
        if (!strcmp(argv[i], "--expert-bytes") && i + 1 < argc) {
            if (cli_parse_size(argv[++i], &expert_bytes) || expert_bytes == 0) {
                fprintf(stderr, "moeflash replay: --expert-bytes: expected a size like 3059712 or 256K, found '%s'\n",
                        argv[i]);
                return 2;
            }
            continue;
        }
        int r = cli_common_flag(&c, argc, argv, &i);
        if (r < 0) return 2;
        if (r) continue;
        if (argv[i][0] != '-' && !trace_path) trace_path = argv[i];
        else { fprintf(stderr, "moeflash replay: unexpected argument '%s'\n", argv[i]); return usage(2); }
    }
    if (!trace_path) return usage(2);
    if (!sim && !expert_bytes) {
        fprintf(stderr, "moeflash replay: --expert-bytes N is needed to replay through the disk (or use --sim)\n");
        return 2;
    }
    mf_error e;
    replay_trace t;
    if (replay_trace_load(trace_path, &t, &e)) { fprintf(stderr, "moeflash: %s\n", e.msg); return 1; }
    if (!expert_bytes) expert_bytes = t.max_expert_bytes ? t.max_expert_bytes : 1;
    const char *policies = c.model.policy ? c.model.policy : policy_default_name();
    char every[256];
    if (!strcmp(policies, "all")) {
        snprintf(every, sizeof every, "%s", policy_names());
        for (char *p = every; *p; p++) if (*p == ' ') *p = ',';
        policies = every;
    }
    if (!sim && (strchr(policies, ',') || strchr(cache, ','))) {
        fprintf(stderr, "moeflash replay: lists of policies or sizes need --sim\n");
        replay_trace_free(&t);
        return 2;
    }
    char path[4096];
    if (!sim) {
        if (scratch) snprintf(path, sizeof path, "%s", scratch);
        else {
            char name[160];
            snprintf(name, sizeof name, "replay-%ux%u-%" PRIu64 ".gguf", t.n_layer, t.n_expert, expert_bytes);
            if (cli_cache_path(path, sizeof path, name)) { replay_trace_free(&t); return 1; }
        }
        fprintf(stderr, "scratch model %s (%.2f GB) ...\n", path, (double)t.n_layer * t.n_expert * expert_bytes / 1e9);
        if (replay_scratch_model(path, &t, expert_bytes, &e)) {
            fprintf(stderr, "moeflash: %s\n", e.msg);
            replay_trace_free(&t);
            return 1;
        }
    }
    uint64_t all = (uint64_t)t.n_layer * t.n_expert;
    uint32_t n_decode = 0;
    for (uint32_t i = 0; i < t.n_steps; i++) n_decode += t.decode[i];
    printf("trace %s: %s (%s), %u layers x %u experts, K %u; %u steps (%u decode), %u lookups\n", trace_path, t.model,
           t.arch, t.n_layer, t.n_expert, t.n_used, t.n_steps, n_decode, t.n_ids);
    printf("one token's working set: %u experts (%.1f%% of all); expert %" PRIu64 " bytes; %s\n",
           t.n_layer * t.n_used, 100.0 * t.n_layer * t.n_used / (double)all, expert_bytes,
           sim ? "simulation (no I/O)" : c.io);
    printf("%-10s %7s %6s %9s %8s %8s %8s %10s %9s %9s\n", "policy", "slots", "share", "cache MB", "hit", "decode",
           "belady", "read MB", "reads/s", "MB/s");
    row rows[64];
    int nrows = 0, rc = 0;
    const char *cl = cache;
    char item[64], pol[32];
    while (!rc && next_item(&cl, item, sizeof item)) {
        uint32_t slots;
        if (parse_cache(item, &t, expert_bytes, &slots)) {
            fprintf(stderr, "moeflash replay: --cache: expected a size like 512M or a share like 25%%, found '%s'\n", item);
            rc = 2;
            break;
        }
        if (slots < t.max_k) slots = t.max_k;
        replay_result opt;
        if (replay_belady(&t, slots, &opt, &e)) { fprintf(stderr, "moeflash: %s\n", e.msg); rc = 1; break; }
        const char *pl = policies;
        while (!rc && next_item(&pl, pol, sizeof pol) && nrows < 64) {
            row *w = &rows[nrows];
            snprintf(w->policy, sizeof w->policy, "%s", pol);
            w->slots = slots;
            w->opt = opt;
            int r;
            if (sim) {
                r = replay_sim(&t, pol, c.model.hot_set, slots, expert_bytes, &w->r, &e);
            } else {
                store_params sp = { 0 };
                sp.io = !strcmp(c.io, "direct") ? 1 : !strcmp(c.io, "uring") ? 2 : 0;
                sp.io_threads = c.io_threads;
                sp.policy = pol;
                sp.hot_set = c.model.hot_set;
                sp.cache_slots = slots;
                r = replay_io(&t, path, &sp, &w->r, &e);
            }
            if (r) { fprintf(stderr, "moeflash: %s\n", e.msg); rc = 1; break; }
            double sec = w->r.seconds;
            printf("%-10s %7u %5.1f%% %9.0f %7.2f%% %7.2f%% %7.2f%% %10.1f %9.0f %9.1f\n", pol, slots,
                   100.0 * slots / (double)all, (double)slots * expert_bytes / 1048576.0, 100 * rate(w->r.hits, w->r.misses),
                   100 * rate(w->r.decode_hits, w->r.decode_misses), 100 * rate(opt.hits, opt.misses),
                   w->r.bytes_read / 1e6, !sim && sec > 0 ? w->r.reads / sec : 0,
                   !sim && sec > 0 ? w->r.bytes_read / sec / 1e6 : 0);
            fflush(stdout);
            nrows++;
        }
    }
    if (!rc) {
        const char *io = sim ? "sim" : c.io;
        printf("{\"trace\": \"%s\", \"model\": \"%s\", ", trace_path, t.model);
        if (nrows == 1) {
            json_row(stdout, &t, &rows[0], expert_bytes, io, true);
        } else {
            printf("\"results\": [");
            for (int i = 0; i < nrows; i++) {
                if (i) printf(", ");
                json_row(stdout, &t, &rows[i], expert_bytes, io, false);
            }
            printf("]}");
        }
        printf("\n");
    }
    replay_trace_free(&t);
    return rc;
}
