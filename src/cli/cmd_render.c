/* cmd_render.c — `moeflash render MODEL --chat FILE [--template FILE]`:
 * prints the prompt the model's chat template makes of a request, byte for
 * byte (no newline added). FILE `-` is stdin. */
#include "cli/cli.h"
#include "moeflash.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out)
{
    fprintf(out,
            "usage: moeflash render MODEL --chat FILE [--template FILE]\n"
            "  --chat FILE       a JSON request {\"messages\": [...], \"tools\": [...] or null,\n"
            "                    \"add_generation_prompt\": bool, \"enable_thinking\": bool}; - reads stdin\n"
            "  --template FILE   render with this Jinja template instead of the model's\n");
}

/* The whole of path (or stdin for "-"), NUL-terminated; NULL on error. */
static char *slurp(const char *path, size_t *len)
{
    FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
    if (!f) { fprintf(stderr, "moeflash: %s: %s\n", path, strerror(errno)); return NULL; }
    size_t n = 0, cap = 1 << 16;
    char *p = malloc(cap);
    while (p) {
        n += fread(p + n, 1, cap - n - 1, f);
        if (n < cap - 1) break;
        char *q = realloc(p, cap *= 2);
        if (!q) { free(p); p = NULL; }
        else p = q;
    }
    bool bad = !p || ferror(f);
    if (f != stdin) fclose(f);
    if (bad) {
        fprintf(stderr, "moeflash: %s: %s\n", path, p ? "read error" : "out of memory");
        free(p);
        return NULL;
    }
    p[n] = 0;
    if (len) *len = n;
    return p;
}

int cmd_render(int argc, char **argv)
{
    const char *model = NULL, *chat = NULL, *tmpl_path = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) { usage(stdout); return 0; }
        if (!strcmp(argv[i], "--chat") && i + 1 < argc) chat = argv[++i];
        else if (!strcmp(argv[i], "--template") && i + 1 < argc) tmpl_path = argv[++i];
        else if (argv[i][0] == '-' || model) {
            fprintf(stderr, "moeflash render: unexpected argument '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        } else model = argv[i];
    }
    if (!model || !chat) { usage(stderr); return 2; }

    size_t len;
    char *request = slurp(chat, &len);
    if (!request) return 1;
    if (strlen(request) != len) {
        fprintf(stderr, "moeflash: %s: NUL byte in the request (write it as \\u0000 in JSON)\n", chat);
        free(request);
        return 1;
    }
    char *tsrc = tmpl_path ? slurp(tmpl_path, NULL) : NULL;
    if (tmpl_path && !tsrc) { free(request); return 1; }

    mf_error e;
    char *out;
    size_t n;
    int rc = mf_chat_render_model(model, tsrc, request, &out, &n, &e);
    free(request);
    free(tsrc);
    if (rc) {
        fprintf(stderr, "moeflash: %s\n", e.msg);
        return 1;
    }
    bool ok = fwrite(out, 1, n, stdout) == n && fflush(stdout) == 0;
    free(out);
    if (!ok) { fprintf(stderr, "moeflash: writing the prompt: %s\n", strerror(errno)); return 1; }
    return 0;
}
