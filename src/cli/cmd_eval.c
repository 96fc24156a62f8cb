/* cmd_eval.c — `moeflash eval MODEL --tokens "ids" --logits-out FILE`:
 * float32 logits, one row of n_vocab per position, as the goldens store them. */
#include "cli/args.h"
#include "cli/cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int usage(int rc)
{
    fprintf(rc ? stderr : stdout,
            "usage: moeflash eval MODEL --tokens \"ids\" --logits-out FILE [--threads N] [--cache SIZE] [--ctx N] [--stats]\n"
            "                  [--experts-used K]   (K routed experts per token instead of the model's)\n");
    return rc;
}

int cmd_eval(int argc, char **argv)
{
    cli_common c;
    cli_common_default(&c);
    const char *model = NULL, *tokens = NULL, *out = NULL;
    for (int i = 1; i < argc; i++) {
        int r = cli_common_flag(&c, argc, argv, &i);
        if (r < 0) return 2;
        if (r) continue;
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) return usage(0);
        if (!strcmp(argv[i], "--tokens") && i + 1 < argc) tokens = argv[++i];
        else if (!strcmp(argv[i], "--logits-out") && i + 1 < argc) out = argv[++i];
        else if (argv[i][0] != '-' && !model) model = argv[i];
        else { fprintf(stderr, "moeflash eval: unexpected argument '%s'\n", argv[i]); return usage(2); }
    }
    if (!model || !tokens || !out) return usage(2);
    int32_t *ids;
    size_t n;
    if (cli_parse_ids(tokens, &ids, &n) || n == 0) {
        fprintf(stderr, "moeflash eval: --tokens: expected a list of token ids, found '%s'\n", tokens);
        return 2;
    }
    mf_error e;
    int rc = 1;
    mf_model *m = mf_model_open(model, &c.model, &e);
    mf_session *s = NULL;
    float *logits = NULL;
    FILE *fp = NULL;
    if (!m) goto done;
    const uint32_t V = mf_model_get_info(m)->n_vocab;
    s = mf_session_new(m, c.n_ctx ? c.n_ctx : (uint32_t)n, &e);
    if (!s) goto done;
    logits = malloc(n * V * sizeof(float));
    if (!logits) { mf_fail(&e, "out of memory for %zu x %u logits", n, V); goto done; }
    if (mf_eval(s, ids, n, logits, &e)) goto done;
    fp = strcmp(out, "-") ? fopen(out, "wb") : stdout;
    if (!fp) { mf_fail(&e, "%s: cannot create: %s", out, strerror(errno)); goto done; }
    if (fwrite(logits, sizeof(float), n * V, fp) != n * V || (fp != stdout && fclose(fp) != 0)) {
        fp = NULL;
        mf_fail(&e, "%s: write failed: %s", out, strerror(errno));
        goto done;
    }
    fp = NULL;
    cli_print_stats(m, &c);
    rc = 0;
done:
    if (rc) fprintf(stderr, "moeflash: %s\n", e.msg);
    if (fp && fp != stdout) fclose(fp);
    free(logits);
    free(ids);
    mf_session_free(s);
    mf_model_close(m);
    return rc;
}
