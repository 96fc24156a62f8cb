/* cmd_serve.c — `moeflash serve MODEL [--host H] [--port P] [--api-key KEY]`:
 * opens the model, starts the OpenAI-compatible server (src/server), prints
 * where it listens and runs until SIGINT or SIGTERM, then stops cleanly:
 * queued requests get 503, the running generation is cancelled. */
#include "cli/args.h"
#include "cli/cli.h"
#include "server/srv.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int usage(int rc)
{
    fprintf(rc ? stderr : stdout,
            "usage: moeflash serve MODEL [--host H] [--port P] [--api-key KEY] [--alias NAME]\n"
            "                            [--chat-template-file FILE] [--queue N] [--max-body SIZE]\n"
            "                            [--max-tokens N] [--verbose] [common flags]\n"
            "  --host H              address to bind (default 127.0.0.1)\n"
            "  --port P              TCP port (default 8080; 0 picks a free one)\n"
            "  --api-key KEY         require 'Authorization: Bearer KEY' (default: none; also $MOEFLASH_API_KEY)\n"
            "  --alias NAME          the model id clients send (default: the file name without .gguf)\n"
            "  --chat-template-file  a Jinja chat template instead of the model's\n"
            "  --queue N             requests allowed to wait for the model (default 64; more get 429)\n"
            "  --max-body SIZE       largest request body (default 8M)\n"
            "  --max-tokens N        default reply limit of a chat (default: the rest of the context)\n"
            "  --ctx N               tokens of context (default: the model's); --batch N: prefill chunk\n"
            "  --temp, --top-k, --top-p, --min-p, --repeat-penalty: defaults a request overrides\n"
            "endpoints: POST /v1/chat/completions, POST /v1/completions, GET /v1/models, GET /health, GET /metrics\n");
    return rc;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *p = NULL;
    size_t n = 0;
    if (!fseek(f, 0, SEEK_END)) {
        long len = ftell(f);
        if (len >= 0 && !fseek(f, 0, SEEK_SET) && (p = malloc((size_t)len + 1))) {
            n = fread(p, 1, (size_t)len, f);
            p[n] = 0;
        }
    }
    fclose(f);
    return p;
}

static int count(const char *flag, const char *v, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end || x < lo || x > hi) {
        fprintf(stderr, "moeflash serve: %s: expected a number in [%ld, %ld], found '%s'\n", flag, lo, hi, v);
        return -1;
    }
    *out = x;
    return 0;
}

int cmd_serve(int argc, char **argv)
{
    cli_common c;
    cli_common_default(&c);
    srv_config sc;
    srv_config_default(&sc);
    sc.api_key = getenv("MOEFLASH_API_KEY");
    const char *model = NULL, *tmpl_file = NULL;
    long x;
    for (int i = 1; i < argc; i++) {
        int r = cli_common_flag(&c, argc, argv, &i);
        if (r < 0) return 2;
        if (r) continue;
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) return usage(0);
        if (!strcmp(a, "--verbose") || !strcmp(a, "-v")) { sc.verbose = true; continue; }
        if (!strcmp(a, "--test-hooks")) { sc.test_hooks = true; continue; } /* mf_test_* request fields, for tests */
        if (a[0] != '-') {
            if (model) { fprintf(stderr, "moeflash serve: unexpected argument '%s'\n", a); return usage(2); }
            model = a;
            continue;
        }
        if (!v) { fprintf(stderr, "moeflash serve: %s needs a value\n", a); return usage(2); }
        i++;
        if (!strcmp(a, "--host")) sc.host = v;
        else if (!strcmp(a, "--port")) { if (count(a, v, 0, 65535, &x)) return 2; sc.port = (int)x; }
        else if (!strcmp(a, "--api-key")) sc.api_key = v;
        else if (!strcmp(a, "--alias")) sc.model_id = v;
        else if (!strcmp(a, "--chat-template-file")) tmpl_file = v;
        else if (!strcmp(a, "--queue")) { if (count(a, v, 1, 1 << 20, &x)) return 2; sc.queue_max = (int)x; }
        else if (!strcmp(a, "--max-tokens")) { if (count(a, v, 1, 1 << 30, &x)) return 2; sc.default_max_tokens = (int)x; }
        else if (!strcmp(a, "--max-body")) {
            uint64_t b;
            if (cli_parse_size(v, &b) || b == 0) {
                fprintf(stderr, "moeflash serve: --max-body: expected a size like 8M, found '%s'\n", v);
                return 2;
            }
            sc.body_max = (size_t)b;
        } else { fprintf(stderr, "moeflash serve: unknown option '%s'\n", a); return usage(2); }
    }
    if (!model) return usage(2);
    char *tmpl = NULL;
    if (tmpl_file && !(tmpl = slurp(tmpl_file))) {
        fprintf(stderr, "moeflash serve: --chat-template-file %s: %s\n", tmpl_file, strerror(errno));
        return 1;
    }
    sc.model_path = model;
    sc.chat_template = tmpl;
    sc.n_ctx = c.n_ctx;
    if (c.batch > 0) sc.batch = c.batch;
    sc.sampler = c.sampler;

    /* Signals are taken by sigwait below, so every thread must block them. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    mf_error e;
    int rc = 1;
    srv_server *s = NULL;
    mf_model *m = mf_model_open(model, &c.model, &e);
    if (m) s = srv_start(m, &sc, &e);
    if (s) {
        bool v6 = strchr(sc.host, ':') != NULL;
        printf("moeflash serve: %s on http://%s%s%s:%d/v1 (%s)\n", srv_model_id(s), v6 ? "[" : "", sc.host, v6 ? "]" : "",
               srv_port(s), sc.api_key ? "API key required" : "no API key");
        fflush(stdout);
        int sig = 0;
        sigwait(&sigs, &sig);
        fprintf(stderr, "moeflash serve: %s, stopping\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
        srv_stop(s);
        rc = 0;
    } else fprintf(stderr, "moeflash serve: %s\n", e.msg);
    if (rc == 0) cli_print_stats(m, &c);
    mf_model_close(m);
    free(tmpl);
    return rc;
}
