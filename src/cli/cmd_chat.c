/* cmd_chat.c — `moeflash chat MODEL`: an interactive multi-turn chat.
 *
 * Each turn re-renders the whole conversation with the model's template
 * and hands the tokens to the generator, which keeps the KV cache of what
 * it already evaluated: only the new user message (and whatever the
 * re-tokenized last reply does not share with the sampled tokens) is
 * evaluated. Line editing and history come from libedit when stdin is a
 * terminal; otherwise lines are read plainly, so the command can be
 * scripted. Ctrl-C stops the reply being written, not the program.
 */
#include "cli/args.h"
#include "cli/cli.h"
#include "cli/term.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef MF_HAVE_EDIT
#include <editline/readline.h>
#endif

#define DIM "\033[2m"
#define RESET "\033[0m"

static int usage(int rc)
{
    fprintf(rc ? stderr : stdout,
            "usage: moeflash chat MODEL [options]\n"
            "  --system TEXT        the system message\n"
            "  --system-file FILE   the system message from a file\n"
            "  -n N                 at most N tokens per reply (default: until the model ends it)\n"
            "  --hide-thinking      do not show the model's thinking (<think>...</think>, or\n"
            "                       gpt-oss's analysis channel)\n"
            "  --no-thinking        ask the template not to think (enable_thinking false)\n"
            "  --template FILE      a Jinja chat template instead of the model's\n"
            "common: --temp T --top-k K --top-p P --min-p P --repeat-penalty R --seed S\n"
            "        --threads N --cache SIZE|auto --io pread|direct|uring --ctx N --batch N\n"
            "        --experts-used K   route each token to K experts instead of the model's (faster, less exact)\n"
            "        --stats (a line after each reply) --stats-json FILE (at exit)\n"
            "in the chat: /clear forgets the conversation, /stats, /help, /exit (or Ctrl-D);\n"
            "Ctrl-C stops the current reply; a line ending in \\ continues on the next.\n");
    return rc;
}

static volatile sig_atomic_t interrupted;
static void on_sigint(int sig) { (void)sig; interrupted = 1; }

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

/* ---- the conversation ---- */

typedef struct conv {
    mf_chat_msg *msg;           /* contents are owned (malloc'd) */
    size_t n, cap;
} conv;

static int conv_add(conv *c, const char *role, const char *content, size_t len)
{
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 16;
        mf_chat_msg *m = realloc(c->msg, cap * sizeof *m);
        if (!m) return -1;
        c->msg = m;
        c->cap = cap;
    }
    char *s = malloc(len + 1);
    if (!s) return -1;
    memcpy(s, content, len);
    s[len] = 0;
    c->msg[c->n++] = (mf_chat_msg){ role, s };
    return 0;
}

static void conv_truncate(conv *c, size_t n)
{
    while (c->n > n) free((char *)c->msg[--c->n].content);
}

/* ---- one reply ---- */

typedef struct turn {
    reply_view view;
    term_bar bar;
    char *text;                 /* the reply as generated (thinking included) */
    size_t len, cap;
    bool oom;
} turn;

static int on_text(void *user, const char *s, size_t n)
{
    turn *t = user;
    term_bar_end(&t->bar);
    if (t->len + n + 1 > t->cap) {
        size_t cap = t->cap ? t->cap : 4096;
        while (cap < t->len + n + 1) cap *= 2;
        char *p = realloc(t->text, cap);
        if (!p) { t->oom = true; return 1; }
        t->text = p;
        t->cap = cap;
    }
    memcpy(t->text + t->len, s, n);
    t->len += n;
    t->text[t->len] = 0;
    if (reply_view_write(&t->view, s, n)) { t->oom = true; return 1; }
    return 0;
}

static int on_prefill(void *user, size_t done, size_t total)
{
    turn *t = user;
    term_bar_update(&t->bar, done, total);
    return 0;
}

static int on_cancel(void *user) { (void)user; return interrupted; }

/* ---- input ---- */

typedef struct input {
    bool edit;                  /* libedit on a terminal */
    char hist_path[4096];
} input;

#ifdef MF_HAVE_EDIT
/* libedit's character source. A SIGINT that lands while libedit is busy
 * (not blocked in read) would otherwise be lost and the prompt would not
 * notice it: so wait in short slices and look at the flag between them.
 * -1 ends the line; read_line then sees the flag and starts over. */
static int edit_getc(FILE *f)
{
    (void)f;
    for (;;) {
        if (interrupted) return -1;
        struct pollfd pf = { 0, POLLIN, 0 };
        int r = poll(&pf, 1, 100);
        if (r < 0 && errno != EINTR) return -1;
        if (r <= 0) continue;
        unsigned char c;
        ssize_t n = read(0, &c, 1);
        if (n == 1) return c;
        if (n == 0 || errno != EINTR) return -1;
    }
}
#endif

/* One line without its newline (malloc'd), or NULL at end of input.
 * *again: interrupted (Ctrl-C at the prompt), ask again. */
static char *read_line(input *in, const char *prompt, bool *again)
{
    *again = false;
    interrupted = 0;
#ifdef MF_HAVE_EDIT
    if (in->edit) {
        char *l = readline(prompt);
        if (interrupted) { /* Ctrl-C: drop what was typed */
            free(l);
            *again = true;
            fputc('\n', stdout);
            return NULL;
        }
        return l;
    }
#endif
    if (isatty(0)) { fputs(prompt, stdout); fflush(stdout); }
    char *l = NULL;
    size_t cap = 0;
    errno = 0;
    ssize_t n = getline(&l, &cap, stdin);
    if (n < 0) {
        free(l);
        if (errno == EINTR) { clearerr(stdin); *again = true; fputc('\n', stdout); }
        return NULL;
    }
    if (n && l[n - 1] == '\n') l[--n] = 0;
    return l;
}

/* A message: lines joined while they end in a backslash. */
static char *read_message(input *in, bool *again)
{
    char *msg = NULL;
    size_t len = 0;
    for (;;) {
        char *l = read_line(in, msg ? "... " : "> ", again);
        if (!l) { free(msg); return NULL; }
        size_t n = strlen(l);
        bool more = n && l[n - 1] == '\\';
        if (more) l[--n] = 0;
        char *m = realloc(msg, len + n + 2);
        if (!m) { free(l); free(msg); return NULL; }
        msg = m;
        memcpy(msg + len, l, n);
        len += n;
        if (more) msg[len++] = '\n';
        msg[len] = 0;
        free(l);
        if (!more) break;
    }
#ifdef MF_HAVE_EDIT
    if (in->edit && len) add_history(msg);
#endif
    return msg;
}

/* ---- the REPL ---- */

typedef struct chat {
    cli_common c;
    mf_model *m;
    const mf_vocab *v;
    mf_chat_template *tmpl;
    mf_gen *g;
    conv cv;
    size_t n_keep;              /* messages /clear keeps (the system message) */
    long n_gen;
    int think;                  /* enable_thinking: -1 not set, 0, 1 */
    bool hide_think;
    bool have_turn;
    mf_gen_result last;
} chat;

static void print_turn_stats(const chat *ch)
{
    size_t n_tok;
    mf_gen_tokens(ch->g, &n_tok);
    const mf_gen_result *r = &ch->last;
    fprintf(stderr,
            "last turn: %zu prompt tokens evaluated, %zu reused from the KV cache, %zu generated (%s); "
            "prefill %.1f tok/s, decode %.1f tok/s; session %zu of %u positions\n",
            r->n_prompt_eval, r->n_reused, r->n_generated, mf_finish_name(r->finish),
            r->prefill_s > 0 ? r->n_prompt_eval / r->prefill_s : 0, r->decode_s > 0 ? r->n_generated / r->decode_s : 0,
            n_tok, mf_session_n_ctx(mf_gen_session(ch->g)));
}

/* Answers the conversation's last (user) message. */
static int reply(chat *ch)
{
    mf_error e;
    int32_t *ids = NULL;
    size_t n = 0;
    char *text = NULL;
    size_t n_before = ch->cv.n - 1;
    if (mf_chat_tokenize(ch->tmpl, ch->v, ch->cv.msg, ch->cv.n, ch->think, &ids, &n, &text, &e)) {
        fprintf(stderr, "moeflash: %s\n", e.msg);
        conv_truncate(&ch->cv, n_before);
        return 0;
    }
    turn t = { 0 };
    mf_reply_params rp;
    mf_reply_params_init(&rp, mf_model_get_info(ch->m)->arch, text, strlen(text));
    rp.tools = true; /* shown as such; no tools are offered, but a model may still call one */
    if (reply_view_begin(&t.view, stdout, ch->hide_think, &rp, &e)) {
        fprintf(stderr, "moeflash: %s\n", e.msg);
        conv_truncate(&ch->cv, n_before);
        free(ids);
        free(text);
        return 0;
    }
    term_bar_begin(&t.bar);
    mf_gen_params gp;
    mf_gen_params_default(&gp);
    gp.max_tokens = ch->n_gen;
    gp.special = rp.format == MF_REPLY_HARMONY; /* its markers are control tokens: the splitter reads them */
    gp.n_batch = ch->c.batch > 0 ? (uint32_t)ch->c.batch : 256; /* progress between batches */
    gp.on_text = on_text;
    gp.on_prefill = on_prefill;
    gp.cancel = on_cancel;
    gp.user = &t;
    interrupted = 0;
    int rc = mf_gen_run(ch->g, ids, n, &gp, &ch->last, &e);
    ch->have_turn = true;
    term_bar_end(&t.bar);
    reply_view_end(&t.view);
    t.oom |= t.view.oom;
    fputc('\n', stdout);
    fflush(stdout);
    if (rc || t.oom) {
        fprintf(stderr, "moeflash: %s\n", t.oom ? "out of memory for the reply" : e.msg);
        conv_truncate(&ch->cv, n_before);
        mf_error e2;
        if (mf_gen_reset(ch->g, &e2)) fprintf(stderr, "moeflash: %s\n", e2.msg);
    } else {
        const mf_gen_result *r = &ch->last;
        bool tty = isatty(2);
        if (r->finish == MF_FINISH_CANCEL) fprintf(stderr, "%s[stopped]%s\n", tty ? DIM : "", tty ? RESET : "");
        if (r->finish == MF_FINISH_CTX)
            fprintf(stderr, "moeflash: the context is full (--ctx %u); /clear starts over\n",
                    mf_session_n_ctx(mf_gen_session(ch->g)));
        /* Templates that know <think> take the reply whole and drop the
         * thinking themselves; harmony's (gpt-oss) wants the final text. */
        bool harmony = rp.format == MF_REPLY_HARMONY;
        const char *keep = harmony ? t.view.content : t.text;
        size_t keep_len = harmony ? t.view.len : t.len;
        if (r->finish == MF_FINISH_CANCEL && t.len == 0) conv_truncate(&ch->cv, n_before); /* stopped before a word */
        else if (conv_add(&ch->cv, "assistant", keep ? keep : "", keep_len)) fprintf(stderr, "moeflash: out of memory\n");
        if (ch->c.stats) {
            if (tty) fputs(DIM, stderr);
            print_turn_stats(ch);
            if (tty) fputs(RESET, stderr);
        }
    }
    reply_view_free(&t.view);
    free(t.text);
    free(ids);
    free(text);
    return 0;
}

static void repl(chat *ch)
{
    input in = { 0 };
#ifdef MF_HAVE_EDIT
    in.edit = isatty(0) && isatty(1);
    if (in.edit) {
        rl_catch_signals = 0; /* our SIGINT handler: Ctrl-C at the prompt gives a fresh line */
        rl_getc_function = edit_getc;
        using_history();
        if (cli_cache_path(in.hist_path, sizeof in.hist_path, "chat_history") == 0) read_history(in.hist_path);
        else in.hist_path[0] = 0;
    }
#endif
    for (;;) {
        bool again;
        char *msg = read_message(&in, &again);
        if (!msg) {
            if (again) continue;
            break;
        }
        char *s = msg;
        while (*s == ' ' || *s == '\t') s++;
        if (!strcmp(s, "/exit") || !strcmp(s, "/quit")) { free(msg); break; }
        if (!strcmp(s, "/help")) {
            fprintf(stderr, "/clear forgets the conversation, /stats shows what the last turn evaluated and the "
                            "engine's counters, /exit quits; Ctrl-C stops a reply\n");
        } else if (!strcmp(s, "/clear")) {
            conv_truncate(&ch->cv, ch->n_keep); /* the KV cache of the system message stays useful */
            fprintf(stderr, "(conversation cleared)\n");
        } else if (!strcmp(s, "/stats")) {
            if (ch->have_turn) print_turn_stats(ch);
            cli_common c = ch->c;
            c.stats = true;
            c.stats_json = NULL;
            cli_print_stats(ch->m, &c);
        } else if (s[0] == '/' && s[1] && !strchr(s, ' ')) {
            fprintf(stderr, "unknown command %s (/help lists them)\n", s);
        } else if (*s) {
            if (conv_add(&ch->cv, "user", msg, strlen(msg))) fprintf(stderr, "moeflash: out of memory\n");
            else reply(ch);
        }
        free(msg);
    }
#ifdef MF_HAVE_EDIT
    if (in.edit && in.hist_path[0]) write_history(in.hist_path);
#endif
}

int cmd_chat(int argc, char **argv)
{
    chat ch = { .n_gen = -1, .think = -1 };
    cli_common_default(&ch.c);
    const char *model = NULL, *system = NULL, *system_file = NULL, *tmpl_file = NULL;
    for (int i = 1; i < argc; i++) {
        int r = cli_common_flag(&ch.c, argc, argv, &i);
        if (r < 0) return 2;
        if (r) continue;
        const char *a = argv[i];
        bool val = i + 1 < argc;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) return usage(0);
        if (!strcmp(a, "--system") && val) system = argv[++i];
        else if (!strcmp(a, "--system-file") && val) system_file = argv[++i];
        else if (!strcmp(a, "--template") && val) tmpl_file = argv[++i];
        else if (!strcmp(a, "-n") && val) {
            char *end;
            ch.n_gen = strtol(argv[++i], &end, 10);
            if (*end || ch.n_gen < -1) { fprintf(stderr, "moeflash chat: -n: expected a count, found '%s'\n", argv[i]); return 2; }
        } else if (!strcmp(a, "--hide-thinking")) ch.hide_think = true;
        else if (!strcmp(a, "--no-thinking")) ch.think = 0;
        else if (a[0] != '-' && !model) model = a;
        else { fprintf(stderr, "moeflash chat: unexpected argument '%s'\n", a); return usage(2); }
    }
    if (!model) return usage(2);
    if (system && system_file) { fprintf(stderr, "moeflash chat: --system and --system-file exclude each other\n"); return 2; }

    int rc = 1;
    mf_error e;
    char *sys = system_file ? slurp(system_file) : NULL, *tsrc = tmpl_file ? slurp(tmpl_file) : NULL;
    if ((system_file && !sys) || (tmpl_file && !tsrc)) goto out;
    if (sys) system = sys;
    ch.m = term_open_model(model, &ch.c.model, &e);
    if (!ch.m || !(ch.v = mf_model_vocab(ch.m, &e))) goto fail;
    ch.tmpl = mf_chat_template_from_model(model, tsrc, &e);
    if (!ch.tmpl) goto fail;
    ch.g = mf_gen_new(ch.m, ch.c.n_ctx, &ch.c.sampler, &e);
    if (!ch.g) goto fail;
    if (system && conv_add(&ch.cv, "system", system, strlen(system))) { mf_fail(&e, "out of memory"); goto fail; }
    ch.n_keep = ch.cv.n;

    struct sigaction sa = { .sa_handler = on_sigint }; /* no SA_RESTART: a read at the prompt returns */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    const mf_model_info *mi = mf_model_get_info(ch.m);
    if (isatty(0))
        fprintf(stderr, "moeflash chat: %s (%s, %u experts, top-%u)%s. /help for commands, Ctrl-C stops a reply, "
                        "Ctrl-D or /exit quits.\n",
                mi->name, mi->arch, mi->n_expert, mi->n_expert_used,
                mf_chat_template_is_fallback(ch.tmpl) ? "; no chat template in the model: using ChatML" : "");
    repl(&ch);
    cli_print_stats(ch.m, &ch.c);
    rc = 0;
    goto out;
fail:
    fprintf(stderr, "moeflash: %s\n", e.msg);
out:
    conv_truncate(&ch.cv, 0);
    free(ch.cv.msg);
    mf_gen_free(ch.g);
    mf_chat_template_free(ch.tmpl);
    mf_model_close(ch.m);
    free(sys);
    free(tsrc);
    return rc;
}
