/* cmd_tokenize.c — `moeflash tokenize` and `moeflash detokenize`: text to
 * token ids and back with a model's vocabulary, through the public API
 * only. With --json and a .jsonl file, each line (a JSON string, or an
 * object with a "text" string) gives one JSON array of ids, so a corpus can
 * be compared with another tokenizer's line by line. */
#include "cli/cli.h"
#include "moeflash.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef MF_HAVE_JANSSON
#include <jansson.h>
#endif

static const char tok_usage[] =
    "usage: moeflash tokenize MODEL (-p TEXT | -f FILE) [--json] [--no-parse-special] [--bos | --no-bos]\n"
    "  -p TEXT             the text\n"
    "  -f FILE             the text is the file's bytes, verbatim (FILE - = stdin)\n"
    "  --json              print a JSON array; with a .jsonl FILE, one array per line\n"
    "                      (each line a JSON string or an object with a \"text\" string)\n"
    "  --no-parse-special  control tokens written in the text (<|im_start|>) are plain text\n"
    "  --bos, --no-bos     add BOS or not (default: the model's add_bos_token)\n";

static const char detok_usage[] =
    "usage: moeflash detokenize MODEL --ids \"ID ...\" [--no-special]\n"
    "  --ids \"ID ...\"      token ids separated by spaces or commas (- = read them from stdin)\n"
    "  --no-special        do not print control tokens (<|im_end|>, <s>)\n"
    "The text is written as is; a newline is added only when stdout is a terminal.\n";

/* Whole file (or stdin for "-") into memory. */
static char *read_all(const char *path, size_t *len)
{
    FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0;
    char *p = malloc(cap);
    while (p) {
        if (n == cap) {
            char *q = realloc(p, cap *= 2);
            if (!q) { free(p); p = NULL; break; }
            p = q;
        }
        size_t k = fread(p + n, 1, cap - n, f);
        n += k;
        if (k == 0) break;
    }
    int err = ferror(f);
    if (f != stdin) fclose(f);
    if (err) { free(p); errno = EIO; return NULL; }
    *len = n;
    return p;
}

static void print_ids(FILE *out, const int32_t *ids, size_t n, bool json)
{
    if (json) fputc('[', out);
    for (size_t i = 0; i < n; i++) fprintf(out, "%s%d", i ? (json ? ", " : " ") : "", ids[i]);
    if (json) fputc(']', out);
    fputc('\n', out);
}

static int tokenize_print(const mf_vocab *v, const char *text, size_t len, bool parse_special, bool bos, bool json)
{
    int32_t *ids;
    size_t n;
    mf_error e;
    if (mf_tokenize(v, text, len, parse_special, bos, &ids, &n, &e)) {
        fprintf(stderr, "moeflash: %s\n", e.msg);
        return 1;
    }
    print_ids(stdout, ids, n, json);
    free(ids);
    return 0;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

static int tokenize_jsonl(const mf_vocab *v, const char *path, char *data, size_t len, bool parse_special, bool bos)
{
#ifdef MF_HAVE_JANSSON
    size_t lineno = 0;
    for (char *line = data, *end = data + len; line < end;) {
        char *nl = memchr(line, '\n', (size_t)(end - line));
        size_t n = nl ? (size_t)(nl - line) : (size_t)(end - line);
        lineno++;
        char *next = line + n + (nl != NULL);
        size_t k = 0;
        while (k < n && (line[k] == ' ' || line[k] == '\t' || line[k] == '\r')) k++;
        if (k == n) { line = next; continue; }         /* blank line */
        json_error_t je;
        json_t *o = json_loadb(line, n, JSON_ALLOW_NUL | JSON_DECODE_ANY, &je);
        json_t *s = o && json_is_object(o) ? json_object_get(o, "text") : o;
        if (!o || !json_is_string(s)) {
            fprintf(stderr, "moeflash: %s:%zu: expected a JSON string or an object with a \"text\" string%s%s\n",
                    path, lineno, o ? "" : ": ", o ? "" : je.text);
            json_decref(o);
            return 1;
        }
        int rc = tokenize_print(v, json_string_value(s), json_string_length(s), parse_special, bos, true);
        json_decref(o);
        if (rc) return rc;
        line = next;
    }
    return 0;
#else
    (void)v; (void)data; (void)len; (void)parse_special; (void)bos;
    fprintf(stderr, "moeflash: %s: reading .jsonl needs jansson, which this build lacks\n", path);
    return 1;
#endif
}

static bool is_help(const char *a) { return !strcmp(a, "-h") || !strcmp(a, "--help"); }

int cmd_tokenize(int argc, char **argv)
{
    const char *model = NULL, *text = NULL, *file = NULL;
    bool json = false, parse_special = true;
    int bos = -1;   /* -1: the model's default */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (is_help(a)) { fputs(tok_usage, stdout); return 0; }
        if (!strcmp(a, "-p") && i + 1 < argc) text = argv[++i];
        else if (!strcmp(a, "-f") && i + 1 < argc) file = argv[++i];
        else if (!strcmp(a, "--json")) json = true;
        else if (!strcmp(a, "--no-parse-special")) parse_special = false;
        else if (!strcmp(a, "--bos")) bos = 1;
        else if (!strcmp(a, "--no-bos")) bos = 0;
        else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "moeflash tokenize: unknown or incomplete option '%s'\n%s", a, tok_usage);
            return 2;
        } else if (!model) model = a;
        else { fprintf(stderr, "moeflash tokenize: unexpected argument '%s'\n%s", a, tok_usage); return 2; }
    }
    if (!model || (!text) == (!file)) {
        fprintf(stderr, "moeflash tokenize: %s\n%s", !model ? "no MODEL given" : "give exactly one of -p TEXT and -f FILE",
                tok_usage);
        return 2;
    }

    char *data = NULL;
    size_t len = 0;
    if (file) {
        data = read_all(file, &len);
        if (!data) {
            fprintf(stderr, "moeflash: %s: cannot read: %s\n", file, strerror(errno));
            return 1;
        }
    }
    mf_error e;
    mf_vocab *v = mf_vocab_open(model, &e);
    if (!v) {
        fprintf(stderr, "moeflash: %s\n", e.msg);
        free(data);
        return 1;
    }
    bool add_bos = bos < 0 ? mf_vocab_add_bos(v) : bos == 1;
    int rc;
    if (file && json && ends_with(file, ".jsonl")) rc = tokenize_jsonl(v, file, data, len, parse_special, add_bos);
    else if (file) rc = tokenize_print(v, data, len, parse_special, add_bos, json);
    else rc = tokenize_print(v, text, strlen(text), parse_special, add_bos, json);
    if (fflush(stdout) != 0 && rc == 0) {
        fprintf(stderr, "moeflash: writing the ids: %s\n", strerror(errno));
        rc = 1;
    }
    mf_vocab_free(v);
    free(data);
    return rc;
}

/* Parses "1 2 3", "1,2,3" or "[1, 2, 3]". Returns -1 (and the offending
 * text in *bad) when something else is there. */
static int parse_ids(const char *s, int32_t **ids, size_t *n, const char **bad)
{
    size_t cap = 16, k = 0;
    int32_t *p = malloc(cap * sizeof *p);
    if (!p) return -1;
    for (const char *c = s; *c;) {
        if (strchr(" \t\r\n,[]", *c)) { c++; continue; }
        char *end;
        errno = 0;
        long long x = strtoll(c, &end, 10);
        if (end == c || errno || x < INT32_MIN || x > INT32_MAX) { *bad = c; free(p); return -1; }
        if (k == cap) {
            int32_t *q = realloc(p, (cap *= 2) * sizeof *q);
            if (!q) { free(p); *bad = c; return -1; }
            p = q;
        }
        p[k++] = (int32_t)x;
        c = end;
    }
    *ids = p;
    *n = k;
    return 0;
}

int cmd_detokenize(int argc, char **argv)
{
    const char *model = NULL, *ids_arg = NULL;
    bool special = true;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (is_help(a)) { fputs(detok_usage, stdout); return 0; }
        if (!strcmp(a, "--ids") && i + 1 < argc) ids_arg = argv[++i];
        else if (!strcmp(a, "--no-special")) special = false;
        else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "moeflash detokenize: unknown or incomplete option '%s'\n%s", a, detok_usage);
            return 2;
        } else if (!model) model = a;
        else { fprintf(stderr, "moeflash detokenize: unexpected argument '%s'\n%s", a, detok_usage); return 2; }
    }
    if (!model || !ids_arg) {
        fprintf(stderr, "moeflash detokenize: %s\n%s", !model ? "no MODEL given" : "no --ids given", detok_usage);
        return 2;
    }
    char *stdin_ids = NULL;
    if (!strcmp(ids_arg, "-")) {
        size_t len;
        stdin_ids = read_all("-", &len);
        char *q = stdin_ids ? realloc(stdin_ids, len + 1) : NULL;
        if (!q) {
            fprintf(stderr, "moeflash: stdin: cannot read the ids: %s\n", strerror(errno));
            free(stdin_ids);
            return 1;
        }
        stdin_ids = q;
        stdin_ids[len] = 0;
        ids_arg = stdin_ids;
    }
    int32_t *ids;
    size_t n;
    const char *bad = NULL;
    if (parse_ids(ids_arg, &ids, &n, &bad)) {
        fprintf(stderr, "moeflash detokenize: --ids: expected integers separated by spaces or commas, found '%.20s'\n",
                bad ? bad : "");
        free(stdin_ids);
        return 2;
    }
    free(stdin_ids);

    mf_error e;
    mf_vocab *v = mf_vocab_open(model, &e);
    if (!v) {
        fprintf(stderr, "moeflash: %s\n", e.msg);
        free(ids);
        return 1;
    }
    char *text;
    size_t len;
    int rc = 0;
    if (mf_detokenize(v, ids, n, special, &text, &len, &e)) {
        fprintf(stderr, "moeflash: %s: %s\n", model, e.msg);
        rc = 1;
    } else {
        fwrite(text, 1, len, stdout);
        if (isatty(STDOUT_FILENO)) fputc('\n', stdout);
        if (fflush(stdout) != 0) {
            fprintf(stderr, "moeflash: writing the text: %s\n", strerror(errno));
            rc = 1;
        }
        free(text);
    }
    mf_vocab_free(v);
    free(ids);
    return rc;
}
