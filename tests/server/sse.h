/* sse.h — helpers of tests/test_server.c (included there only): an
 * in-process server on a golden model, OpenAI error-object and SSE checks. */
#ifndef MF_TEST_SSE_H
#define MF_TEST_SSE_H

#include "server/srv.h"
#include "http_client.h"

#include <jansson.h>
#include <signal.h>
#include <string.h>

typedef struct live {
    mf_model *m;
    srv_server *s;
    int port;
} live;

static const char *golden_model(void) { return t_shared("golden/qwen3moe-f32.gguf"); }

/* A server on 127.0.0.1, a free port, the golden qwen3moe model and the
 * test hooks (mf_test_reply, mf_test_delay_ms) on; c may be NULL. */
static int live_start(live *L, const srv_config *c)
{
    signal(SIGPIPE, SIG_IGN);
    memset(L, 0, sizeof *L);
    srv_config sc;
    if (c) sc = *c;
    else srv_config_default(&sc);
    sc.host = "127.0.0.1";
    sc.port = 0;
    sc.model_path = golden_model();
    sc.test_hooks = true;
    mf_model_params mp;
    mf_model_params_default(&mp);
    mp.n_threads = 2;
    mf_error e;
    if (!(L->m = mf_model_open(sc.model_path, &mp, &e))) { printf("  %s\n", e.msg); return -1; }
    if (!(L->s = srv_start(L->m, &sc, &e))) {
        printf("  %s\n", e.msg);
        mf_model_close(L->m);
        return -1;
    }
    L->port = srv_port(L->s);
    return 0;
}

static void live_stop(live *L)
{
    srv_stop(L->s);
    mf_model_close(L->m);
}

static json_t *res_json(const hc_res *r) { return r->body ? json_loadb(r->body, r->n, 0, NULL) : NULL; }

/* {"error": {"message": "...", "type": "...", "param": ..., "code": ...}} */
static bool is_error_object(const hc_res *r)
{
    json_t *o = res_json(r);
    json_t *e = json_object_get(o, "error");
    bool ok = json_is_object(e) && json_is_string(json_object_get(e, "message")) &&
              json_string_length(json_object_get(e, "message")) > 0 && json_is_string(json_object_get(e, "type")) &&
              json_object_get(e, "param") && json_object_get(e, "code");
    json_decref(o);
    return ok;
}

static const char *error_field(const hc_res *r, const char *key, char *buf, size_t cap)
{
    json_t *o = res_json(r);
    json_t *v = json_object_get(json_object_get(o, "error"), key);
    snprintf(buf, cap, "%s", json_is_string(v) ? json_string_value(v) : "");
    json_decref(o);
    return buf;
}

/* The events of an SSE body: a JSON array of the parsed `data:` objects;
 * *done: the last event was `data: [DONE]`; *bad: an event that is not
 * JSON, or anything after [DONE]. */
static json_t *sse_events(const hc_res *r, bool *done, int *bad)
{
    json_t *arr = json_array();
    *done = false;
    *bad = 0;
    const char *p = r->body ? r->body : "";
    while (*p) {
        const char *end = strstr(p, "\n\n");
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n >= 6 && !strncmp(p, "data: ", 6)) {
            if (*done) (*bad)++;
            if (n == 12 && !strncmp(p + 6, "[DONE]", 6)) *done = true;
            else {
                json_t *o = json_loadb(p + 6, n - 6, 0, NULL);
                if (!o) (*bad)++;
                else json_array_append_new(arr, o);
            }
        } else if (n && p[0] != ':') (*bad)++;
        p += n + (end ? 2 : 0);
    }
    return arr;
}

/* The text of the deltas' key ("content", "reasoning_content") or of the
 * completions' "text", concatenated. */
static void sse_text(json_t *events, const char *key, char *out, size_t cap)
{
    size_t k = 0, i;
    json_t *ev;
    out[0] = 0;
    json_array_foreach(events, i, ev) {
        json_t *c = json_array_get(json_object_get(ev, "choices"), 0);
        json_t *d = json_object_get(c, "delta");
        json_t *t = d ? json_object_get(d, key) : json_object_get(c, "text");
        if (json_is_string(t)) k += (size_t)snprintf(out + k, k < cap ? cap - k : 0, "%s", json_string_value(t));
    }
}

/* A JSON string's value by path "a.b.0.c" (numbers index arrays). */
static const char *jstr(json_t *o, const char *path)
{
    char key[64];
    while (o && *path) {
        size_t n = strcspn(path, ".");
        snprintf(key, sizeof key, "%.*s", (int)n, path);
        o = json_is_array(o) ? json_array_get(o, strtoul(key, NULL, 10)) : json_object_get(o, key);
        path += n + (path[n] == '.');
    }
    return json_is_string(o) ? json_string_value(o) : NULL;
}

/* Path equals want / starts with prefix (false when absent). */
static bool jeq(json_t *o, const char *path, const char *want)
{
    const char *s = jstr(o, path);
    return s && !strcmp(s, want);
}

static bool jpre(json_t *o, const char *path, const char *prefix)
{
    const char *s = jstr(o, path);
    return s && !strncmp(s, prefix, strlen(prefix));
}

#define BODY(r) ((r).body ? (r).body : "(no body)")

static long long jint(json_t *o, const char *path)
{
    char key[64];
    while (o && *path) {
        size_t n = strcspn(path, ".");
        snprintf(key, sizeof key, "%.*s", (int)n, path);
        o = json_is_array(o) ? json_array_get(o, strtoul(key, NULL, 10)) : json_object_get(o, key);
        path += n + (path[n] == '.');
    }
    return json_is_integer(o) ? (long long)json_integer_value(o) : -1;
}

/* A Prometheus sample's value from /metrics, or -1. */
static double metric(int port, const char *name)
{
    hc_res r;
    double v = -1;
    if (hc_get(port, "/metrics", &r) == 200) {
        char pat[160];
        snprintf(pat, sizeof pat, "\n%s ", name);
        const char *p = strstr(r.body, pat);
        if (p) v = strtod(p + strlen(pat), NULL);
    }
    hc_free(&r);
    return v;
}

#endif
