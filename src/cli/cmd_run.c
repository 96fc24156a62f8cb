/* cmd_run.c — `moeflash run MODEL -p TEXT [-n N] [--chat]`: generates from
 * a prompt and streams the text to stdout as it is produced; or, with
 * --tokens "ids" --print-ids, works on token ids alone (no vocabulary
 * needed).
 *
 * The output follows llama.cpp's examples: the prompt's text, then the
 * generated text, then one newline; with --chat only the reply (the
 * template's markup is not the user's text), shown as chat shows it:
 * thinking (<think>, gpt-oss's analysis channel) dimmed on a terminal,
 * then the answer. Stats go to stderr at the end.
 */
#include "cli/args.h"
#include "cli/cli.h"
#include "cli/term.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_STOP 16

static int usage(int rc)
{
    fprintf(rc ? stderr : stdout,
            "usage: moeflash run MODEL -p TEXT [-n N] [options]\n"
            "       moeflash run MODEL --tokens \"ids\" [-n N] --print-ids [options]\n"
            "  -p TEXT              the prompt; its text is printed, then the generated text\n"
            "  -f FILE              the prompt from a file\n"
            "  -n N                 tokens to generate (default 128; -1: until the end of text)\n"
            "  --chat               wrap the prompt in the model's chat template (ChatML when it\n"
            "                       has none) and print only the reply (thinking dimmed)\n"
            "  --system TEXT        a system message (--chat)\n"
            "  --system-file FILE   the system message from a file (--chat)\n"
            "  --no-thinking        ask the template not to think (enable_thinking false)\n"
            "  --raw-special        special tokens written in the prompt (<|im_start|>) are plain\n"
            "                       text (default: parsed as the tokens, as llama.cpp does)\n"
            "  --special            print control tokens' text in the output\n"
            "  --stop TEXT          stop when TEXT appears (not printed); repeatable\n"
            "  --tokens \"ids\"       the prompt as token ids; --print-ids prints generated ids\n"
            "common: --temp T --top-k K --top-p P --min-p P --repeat-penalty R --seed S\n"
            "        --threads N --cache SIZE|auto --io pread|direct|uring --ctx N --batch N\n"
            "        --experts-used K   route each token to K experts instead of the model's (faster, less exact)\n"
            "        --stats --stats-json FILE\n");
    return rc;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) { fprintf(stderr, "moeflash: %s: %s\n", path, strerror(errno)); return NULL; }
    size_t n = 0, cap = 4096;
    char *p = malloc(cap);
    while (p) {
        n += fread(p + n, 1, cap - n - 1, f);
        if (n < cap - 1) break;
        char *q = realloc(p, cap *= 2);
        if (!q) { free(p); p = NULL; } else p = q;
    }
    bool bad = !p || ferror(f);
    fclose(f);
    if (bad) { fprintf(stderr, "moeflash: %s: %s\n", path, p ? "read error" : "out of memory"); free(p); return NULL; }
    p[n] = 0;
    return p;
}

static volatile sig_atomic_t interrupted;
static void on_sigint(int sig) { (void)sig; interrupted = 1; }

typedef struct run_io {
    term_bar bar;
    bool bar_open;
    reply_view *view;           /* --chat: the reply's parts; else raw text */
} run_io;

static int on_text(void *user, const char *s, size_t n)
{
    run_io *io = user;
    if (io->bar_open) { term_bar_end(&io->bar); io->bar_open = false; }
    if (io->view) return reply_view_write(io->view, s, n);
    fwrite(s, 1, n, stdout);
    fflush(stdout);
    return 0;
}

static int on_prefill(void *user, size_t done, size_t total)
{
    run_io *io = user;
    term_bar_update(&io->bar, done, total);
    if (done >= total) { term_bar_end(&io->bar); io->bar_open = false; }
    return 0;
}

static int on_cancel(void *user) { (void)user; return interrupted; }

/* --tokens ... --print-ids: ids in, ids out. */
static int run_ids(const char *model, const cli_common *c, const char *tokens, long n_gen)
{
    int32_t *ids;
    size_t n;
    if (cli_parse_ids(tokens, &ids, &n) || n == 0) {
        fprintf(stderr, "moeflash run: --tokens: expected a list of token ids, found '%s'\n", tokens);
        return 2;
    }
    mf_error e;
    int rc = 1;
    mf_model *m = term_open_model(model, &c->model, &e);
    mf_session *s = NULL;
    mf_sampler *smp = NULL;
    int32_t *hist = NULL;
    if (!m) goto done;
    if (n_gen < 0) n_gen = mf_model_get_info(m)->n_ctx_train;
    s = mf_session_new(m, c->n_ctx, &e);
    if (!s) goto done;
    smp = mf_sampler_new(&c->sampler, mf_model_get_info(m)->n_vocab);
    hist = malloc((n + (size_t)n_gen + 1) * sizeof *hist);
    if (!smp || !hist) { mf_fail(&e, "out of memory"); goto done; }
    memcpy(hist, ids, n * sizeof *ids);
    size_t nh = n;
    if (mf_eval(s, ids, n, NULL, &e)) goto done;
    for (long k = 0; k < n_gen; k++) {
        int32_t t = mf_sample(smp, mf_session_logits(s), hist, nh);
        mf_sampler_accept(smp, t);
        hist[nh++] = t;
        printf(k ? " %d" : "%d", t);
        fflush(stdout);
        if (k + 1 < n_gen && mf_eval(s, &t, 1, NULL, &e)) goto done;
    }
    printf("\n");
    cli_print_stats(m, c);
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

int cmd_run(int argc, char **argv)
{
    cli_common c;
    cli_common_default(&c);
    const char *model = NULL, *tokens = NULL, *prompt = NULL, *prompt_file = NULL;
    const char *system = NULL, *system_file = NULL;
    const char *stop[MAX_STOP];
    size_t n_stop = 0;
    long n_gen = 128;
    bool print_ids = false, chat = false, raw_special = false, special = false, no_think = false;
    for (int i = 1; i < argc; i++) {
        int r = cli_common_flag(&c, argc, argv, &i);
        if (r < 0) return 2;
        if (r) continue;
        const char *a = argv[i];
        bool val = i + 1 < argc;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) return usage(0);
        if (!strcmp(a, "--tokens") && val) tokens = argv[++i];
        else if (!strcmp(a, "-p") && val) prompt = argv[++i];
        else if (!strcmp(a, "-f") && val) prompt_file = argv[++i];
        else if (!strcmp(a, "--system") && val) system = argv[++i];
        else if (!strcmp(a, "--system-file") && val) system_file = argv[++i];
        else if (!strcmp(a, "--stop") && val) {
            if (n_stop == MAX_STOP || !argv[i + 1][0]) {
                fprintf(stderr, "moeflash run: --stop: at most %d non-empty strings\n", MAX_STOP);
                return 2;
            }
            stop[n_stop++] = argv[++i];
        } else if (!strcmp(a, "-n") && val) {
            char *end;
            n_gen = strtol(argv[++i], &end, 10);
            if (*end || n_gen < -1) { fprintf(stderr, "moeflash run: -n: expected a count, found '%s'\n", argv[i]); return 2; }
        } else if (!strcmp(a, "--print-ids")) print_ids = true;
        else if (!strcmp(a, "--chat")) chat = true;
        else if (!strcmp(a, "--raw-special")) raw_special = true;
        else if (!strcmp(a, "--special")) special = true;
        else if (!strcmp(a, "--no-thinking")) no_think = true;
        else if (a[0] != '-' && !model) model = a;
        else { fprintf(stderr, "moeflash run: unexpected argument '%s'\n", a); return usage(2); }
    }
    if (!model || !!tokens + !!prompt + !!prompt_file != 1) return usage(2);
    if (system && system_file) { fprintf(stderr, "moeflash run: --system and --system-file exclude each other\n"); return 2; }
    if ((system || system_file || no_think) && !chat) { fprintf(stderr, "moeflash run: --system and --no-thinking need --chat\n"); return 2; }
    if (tokens) {
        if (chat) { fprintf(stderr, "moeflash run: --chat needs a text prompt (-p or -f)\n"); return 2; }
        return run_ids(model, &c, tokens, n_gen);
    }
    if (print_ids) { fprintf(stderr, "moeflash run: --print-ids goes with --tokens\n"); return 2; }

    char *text = prompt_file ? slurp(prompt_file) : NULL, *sys = system_file ? slurp(system_file) : NULL;
    if ((prompt_file && !text) || (system_file && !sys)) { free(text); free(sys); return 1; }
    if (!prompt) prompt = text;
    if (system_file) system = sys;

    mf_error e;
    int rc = 1;
    mf_chat_template *tmpl = NULL;
    mf_gen *g = NULL;
    int32_t *ids = NULL;
    size_t n = 0;
    char *chat_text = NULL;
    reply_view view = { 0 };
    mf_reply_params rp = { .format = MF_REPLY_PLAIN };
    mf_model *m = term_open_model(model, &c.model, &e);
    if (!m) goto done;
    const mf_vocab *v = mf_model_vocab(m, &e);
    if (!v) goto done;
    if (chat) {
        tmpl = mf_chat_template_from_model(model, NULL, &e);
        if (!tmpl) goto done;
        mf_chat_msg msgs[2];
        size_t nm = 0;
        if (system) msgs[nm++] = (mf_chat_msg){ "system", system };
        msgs[nm++] = (mf_chat_msg){ "user", prompt };
        if (mf_chat_tokenize(tmpl, v, msgs, nm, no_think ? 0 : -1, &ids, &n, &chat_text, &e)) goto done;
        /* the reply as chat shows it: thinking (<think>, harmony's analysis
         * channel) dimmed on a terminal, tool calls on their own lines */
        mf_reply_params_init(&rp, mf_model_get_info(m)->arch, chat_text, strlen(chat_text));
        rp.tools = true;
        if (reply_view_begin(&view, stdout, false, &rp, &e)) goto done;
    } else if (mf_tokenize(v, prompt, strlen(prompt), !raw_special, mf_vocab_add_bos(v), &ids, &n, &e)) {
        goto done;
    }
    if (n == 0) { mf_fail(&e, "the prompt is empty (no tokens)"); goto done; }
    g = mf_gen_new(m, c.n_ctx, &c.sampler, &e);
    if (!g) goto done;

    struct sigaction sa = { .sa_handler = on_sigint };
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    run_io io = { .bar_open = true, .view = chat ? &view : NULL };
    term_bar_begin(&io.bar);
    mf_gen_params gp;
    mf_gen_params_default(&gp);
    gp.max_tokens = n_gen;
    gp.stop = stop;
    gp.n_stop = n_stop;
    gp.special = special || rp.format == MF_REPLY_HARMONY; /* harmony's markers are control tokens */
    gp.echo_prompt = !chat;
    gp.n_batch = c.batch > 0 ? (uint32_t)c.batch : 256; /* the same on a terminal or not */
    gp.on_text = on_text;
    gp.on_prefill = on_prefill;
    gp.cancel = on_cancel;
    gp.user = &io;
    mf_gen_result r;
    int grc = mf_gen_run(g, ids, n, &gp, &r, &e);
    term_bar_end(&io.bar);
    if (chat) reply_view_end(&view);
    printf("\n");
    fflush(stdout);
    if (grc) goto done;
    if (view.oom) { mf_fail(&e, "out of memory for the reply"); goto done; }
    if (r.finish == MF_FINISH_CTX) fprintf(stderr, "moeflash: stopped: the context of %u positions is full (--ctx)\n",
                                           mf_session_n_ctx(mf_gen_session(g)));
    cli_print_stats(m, &c);
    rc = r.finish == MF_FINISH_CANCEL ? 130 : 0;
done:
    if (rc == 1) fprintf(stderr, "moeflash: %s\n", e.msg);
    reply_view_free(&view);
    free(chat_text);
    free(ids);
    free(text);
    free(sys);
    mf_gen_free(g);
    mf_chat_template_free(tmpl);
    mf_model_close(m);
    return rc;
}
