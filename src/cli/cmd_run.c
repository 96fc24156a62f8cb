/* cmd_run.c — `moeflash run MODEL --tokens "ids" -n N [--temp 0] --print-ids`:
 * evaluates the prompt and generates N tokens, printing their ids. */
#include "cli/args.h"
#include "cli/cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int usage(int rc)
{
    fprintf(rc ? stderr : stdout,
            "usage: moeflash run MODEL --tokens \"ids\" [-n N] [--print-ids] [--temp T] [--top-k K] [--top-p P]\n"
            "                          [--min-p P] [--repeat-penalty R] [--seed S] [--threads N] [--cache SIZE]\n"
            "                          [--ctx N] [--stats] [--stats-json FILE]\n");
    return rc;
}

int cmd_run(int argc, char **argv)
{
    cli_common c;
    cli_common_default(&c);
    const char *model = NULL, *tokens = NULL, *prompt = NULL;
    long n_gen = 128;
    bool print_ids = false;
    for (int i = 1; i < argc; i++) {
        int r = cli_common_flag(&c, argc, argv, &i);
        if (r < 0) return 2;
        if (r) continue;
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) return usage(0);
        if (!strcmp(argv[i], "--tokens") && i + 1 < argc) tokens = argv[++i];
        else if (!strcmp(argv[i], "-p") && i + 1 < argc) prompt = argv[++i];
        else if (!strcmp(argv[i], "-n") && i + 1 < argc) {
            char *end;
            n_gen = strtol(argv[++i], &end, 10);
            if (*end || n_gen < 0) { fprintf(stderr, "moeflash run: -n: expected a count, found '%s'\n", argv[i]); return 2; }
        } else if (!strcmp(argv[i], "--print-ids")) print_ids = true;
        else if (argv[i][0] != '-' && !model) model = argv[i];
        else { fprintf(stderr, "moeflash run: unexpected argument '%s'\n", argv[i]); return usage(2); }
    }
    if (!model || (!tokens && !prompt)) return usage(2);
    if (prompt) {
        fprintf(stderr, "moeflash run: -p needs the tokenizer, which is not built yet; use --tokens\n");
        return 2;
    }
    int32_t *ids;
    size_t n;
    if (cli_parse_ids(tokens, &ids, &n) || n == 0) {
        fprintf(stderr, "moeflash run: --tokens: expected a list of token ids, found '%s'\n", tokens);
        return 2;
    }
    mf_error e;
    int rc = 1;
    mf_model *m = mf_model_open(model, &c.model, &e);
    mf_session *s = NULL;
    mf_sampler *smp = NULL;
    int32_t *hist = NULL;
    if (!m) goto done;
    const uint32_t V = mf_model_get_info(m)->n_vocab;
    s = mf_session_new(m, c.n_ctx, &e);
    if (!s) goto done;
    smp = mf_sampler_new(&c.sampler, V);
    hist = malloc((n + (size_t)n_gen + 1) * sizeof *hist);
    if (!smp || !hist) { mf_fail(&e, "out of memory"); goto done; }
    memcpy(hist, ids, n * sizeof *ids);
    size_t nh = n;
    if (mf_eval(s, ids, n, NULL, &e)) goto done;
    for (long k = 0; k < n_gen; k++) {
        int32_t t = mf_sample(smp, mf_session_logits(s), hist, nh);
        mf_sampler_accept(smp, t);
        hist[nh++] = t;
        if (print_ids) {
            printf(k ? " %d" : "%d", t);
            fflush(stdout);
        }
        if (k + 1 < n_gen && mf_eval(s, &t, 1, NULL, &e)) goto done;
    }
    if (print_ids) printf("\n");
    cli_print_stats(m, &c);
    rc = 0;
done:
    if (rc) fprintf(stderr, "moeflash: %s\n", e.msg);
    free(hist);
    free(ids);
    mf_sampler_free(smp);
    mf_session_free(s);
    mf_model_close(m);
    return rc;
}
