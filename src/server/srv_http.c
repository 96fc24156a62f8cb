/* srv_http.c — the HTTP side of `moeflash serve`, on libmicrohttpd.
 *
 * One thread per connection (libmicrohttpd's), so a request may block:
 * a non-streaming chat waits for its job, a streaming one waits inside the
 * SSE reader for the worker's next chunk. While waiting, the thread polls
 * its socket for a hang-up and cancels the job when the client is gone —
 * that is how a disconnect stops a generation. No thread here evaluates a
 * token; bodies are capped, JSON is jansson's, and every failure is an
 * OpenAI error object with a 4xx/5xx status, never a crash.
 */
#include "server/srv.h"

#if defined(MF_HAVE_MICROHTTPD) && defined(MF_HAVE_JANSSON)

#include <errno.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

struct srv_server {
    srv_config cfg;
    char *host, *api_key, *model_id;
    mf_chat_template *tmpl;
    srv_ctx cx;
    srv_worker *w;
    struct MHD_Daemon *d;
    int port;
    long created;
    atomic_int active;          /* generation requests not yet answered in full */
    atomic_ulong http_total, http_2xx, http_4xx, http_5xx, rejected;
};

typedef struct conn {          /* one HTTP request */
    srv_buf body;
    bool too_large;
    bool active;                /* counted in srv_server.active */
    srv_job *job;               /* a non-streaming job while it runs */
} conn;

typedef struct stream {         /* an SSE response */
    srv_job *j;
    int fd;
} stream;

void srv_config_default(srv_config *c)
{
    memset(c, 0, sizeof *c);
    c->host = "127.0.0.1";
    c->port = 8080;
    c->batch = 256;
    c->queue_max = 64;
    c->body_max = (size_t)8 << 20;
    c->max_connections = 256;
    mf_sampler_params_default(&c->sampler);
}

/* ---- responses ---- */

static enum MHD_Result respond(srv_server *s, struct MHD_Connection *c, unsigned status, const char *ctype, char *body)
{
    static char oom[] = "{\"error\":{\"message\":\"out of memory\",\"type\":\"server_error\",\"param\":null,\"code\":null}}";
    struct MHD_Response *r = body ? MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE)
                                  : MHD_create_response_from_buffer(sizeof oom - 1, oom, MHD_RESPMEM_PERSISTENT);
    if (!r) { free(body); return MHD_NO; }
    if (!body) status = 500, ctype = "application/json";
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    MHD_add_response_header(r, "Access-Control-Allow-Origin", "*");
    if (status == 429 || status == 503) MHD_add_response_header(r, "Retry-After", "1");
    atomic_fetch_add(status < 300 ? &s->http_2xx : status < 500 ? &s->http_4xx : &s->http_5xx, 1);
    enum MHD_Result rc = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result respond_json(srv_server *s, struct MHD_Connection *c, unsigned status, char *body)
{
    return respond(s, c, status, "application/json", body);
}

static enum MHD_Result respond_err(srv_server *s, struct MHD_Connection *c, const srv_err *er)
{
    return respond_json(s, c, (unsigned)er->status, srv_error_json(er));
}

static enum MHD_Result fail(srv_server *s, struct MHD_Connection *c, int status, const char *type, const char *code,
                            const char *fmt, const char *arg)
{
    srv_err er;
    srv_errf(&er, status, type, code, NULL, fmt, arg);
    return respond_err(s, c, &er);
}

/* True when the client hung up (or reset). A half-closed socket counts as
 * gone: an HTTP client waits for its answer with the socket open. */
static bool peer_closed(int fd)
{
    struct pollfd p = { .fd = fd, .events = POLLRDHUP };
    return fd >= 0 && poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL));
}

static int conn_fd(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    return ci ? ci->connect_fd : -1;
}

static void deadline(struct timespec *t, long ms)
{
    clock_gettime(CLOCK_REALTIME, t);
    t->tv_nsec += (ms % 1000) * 1000000L;
    t->tv_sec += ms / 1000 + t->tv_nsec / 1000000000L;
    t->tv_nsec %= 1000000000L;
}

/* ---- SSE ---- */

#define IDLE_S 600u  /* an idle keep-alive connection is closed after this */
#define POLL_MS 100
#define PING_MS 15000 /* an SSE comment while a request waits in the queue */

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    stream *st = cls;
    srv_job *j = st->j;
    long idle = 0;
    pthread_mutex_lock(&j->mu);
    for (;;) {
        if (j->out.n) {
            size_t n = j->out.n < max ? j->out.n : max;
            memcpy(buf, j->out.p, n);
            srv_buf_drop(&j->out, n);
            pthread_mutex_unlock(&j->mu);
            return (ssize_t)n;
        }
        if (j->done) break;
        struct timespec t;
        deadline(&t, POLL_MS);
        if (pthread_cond_timedwait(&j->cv, &j->mu, &t) != ETIMEDOUT) continue;
        if (peer_closed(st->fd)) {
            atomic_store(&j->cancel, true);
            pthread_mutex_unlock(&j->mu);
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
        if ((idle += POLL_MS) >= PING_MS && max >= 14) {
            pthread_mutex_unlock(&j->mu);
            memcpy(buf, ": keep-alive\n\n", 14);
            return 14;
        }
    }
    pthread_mutex_unlock(&j->mu);
    return MHD_CONTENT_READER_END_OF_STREAM;
}

static void stream_free(void *cls)
{
    stream *st = cls;
    atomic_store(&st->j->cancel, true); /* a no-op when it is done */
    srv_job_unref(st->j);
    free(st);
}

/* ---- endpoints ---- */

static enum MHD_Result too_large(srv_server *s, struct MHD_Connection *c)
{
    char lim[32];
    snprintf(lim, sizeof lim, "%zu", s->cfg.body_max);
    return fail(s, c, 413, "invalid_request_error", "request_too_large", "the request body is larger than %s bytes", lim);
}

static enum MHD_Result wait_and_answer(srv_server *s, struct MHD_Connection *c, srv_job *j, int fd);

static enum MHD_Result generate(srv_server *s, struct MHD_Connection *c, conn *cn, srv_kind kind)
{
    if (cn->too_large) return too_large(s, c);
    json_error_t je;
    json_t *rq = json_loadb(cn->body.p ? cn->body.p : "", cn->body.n, 0, &je);
    srv_buf_free(&cn->body);
    srv_err er;
    if (!rq) {
        srv_errf(&er, 400, "invalid_request_error", NULL, NULL,
                 "We could not parse the JSON body of your request: %s (line %d, column %d)", je.text, je.line, je.column);
        return respond_err(s, c, &er);
    }
    srv_job *j = srv_request_parse(&s->cx, kind, rq, &er);
    json_decref(rq);
    if (!j) return respond_err(s, c, &er);
    int q = srv_worker_submit(s->w, j);
    if (q) {
        srv_job_unref(j);
        if (q == -1) atomic_fetch_add(&s->rejected, 1);
        char qn[32];
        snprintf(qn, sizeof qn, "%d", s->cfg.queue_max > 0 ? s->cfg.queue_max : 64);
        return q == -1 ? fail(s, c, 429, "server_busy", "rate_limit_exceeded",
                              "the server is busy: its queue of %s requests is full; retry later", qn)
                       : fail(s, c, 503, "server_error", NULL, "the server is %s", "shutting down");
    }
    atomic_fetch_add(&s->active, 1); /* until on_completed: the answer was sent */
    cn->active = true;
    int fd = conn_fd(c);
    if (j->stream) {
        stream *st = calloc(1, sizeof *st);
        struct MHD_Response *r = st ? MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, stream_read, st, stream_free)
                                    : NULL;
        if (!r) {
            atomic_store(&j->cancel, true);
            srv_job_unref(j);
            free(st);
            return MHD_NO;
        }
        *st = (stream){ j, fd };
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
        MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
        MHD_add_response_header(r, "Access-Control-Allow-Origin", "*");
        MHD_add_response_header(r, "X-Accel-Buffering", "no");
        atomic_fetch_add(&s->http_2xx, 1);
        enum MHD_Result rc = MHD_queue_response(c, 200, r);
        MHD_destroy_response(r); /* the response (and st) live until the stream ends */
        return rc;
    }
    cn->job = j; /* on_completed drops it */
    return wait_and_answer(s, c, j, fd);
}

/* A non-streaming job: waits for it (or for its client to leave). */
static enum MHD_Result wait_and_answer(srv_server *s, struct MHD_Connection *c, srv_job *j, int fd)
{
    /* No idle timeout while the model works (a long reply on a big model
     * takes minutes); setting it again afterwards restarts its clock. */
    MHD_set_connection_option(c, MHD_CONNECTION_OPTION_TIMEOUT, 0u);
    pthread_mutex_lock(&j->mu);
    while (!j->done) {
        struct timespec t;
        deadline(&t, POLL_MS);
        if (pthread_cond_timedwait(&j->cv, &j->mu, &t) == ETIMEDOUT && !j->done && peer_closed(fd)) {
            atomic_store(&j->cancel, true);
            pthread_mutex_unlock(&j->mu);
            return MHD_NO; /* nobody to answer */
        }
    }
    pthread_mutex_unlock(&j->mu);
    MHD_set_connection_option(c, MHD_CONNECTION_OPTION_TIMEOUT, IDLE_S);
    if (j->err.status) return respond_err(s, c, &j->err);
    return respond_json(s, c, 200, srv_result_json(j));
}

static char *metrics_text(srv_server *s)
{
    srv_metrics m;
    srv_worker_metrics(s->w, &m);
    const mf_stats *st = &m.engine;
    uint64_t lookups = st->cache_hits + st->cache_misses;
    srv_buf b = { 0 };
#define METRIC(name, type, help, fmt, ...) \
    srv_buf_addf(&b, "# HELP moeflash_" name " " help "\n# TYPE moeflash_" name " " type "\nmoeflash_" name " " fmt "\n", __VA_ARGS__)
    METRIC("requests_total", "counter", "Generations the worker finished (all outcomes).", "%llu", (unsigned long long)m.requests);
    srv_buf_addf(&b, "# HELP moeflash_requests_outcome_total Generations by outcome.\n"
                     "# TYPE moeflash_requests_outcome_total counter\n"
                     "moeflash_requests_outcome_total{outcome=\"ok\"} %llu\n"
                     "moeflash_requests_outcome_total{outcome=\"cancelled\"} %llu\n"
                     "moeflash_requests_outcome_total{outcome=\"failed\"} %llu\n",
                 (unsigned long long)m.requests_ok, (unsigned long long)m.requests_cancelled,
                 (unsigned long long)m.requests_failed);
    METRIC("http_requests_total", "counter", "HTTP requests received.", "%lu", atomic_load(&s->http_total));
    srv_buf_addf(&b, "# HELP moeflash_http_responses_total HTTP responses by status class.\n"
                     "# TYPE moeflash_http_responses_total counter\n"
                     "moeflash_http_responses_total{class=\"2xx\"} %lu\n"
                     "moeflash_http_responses_total{class=\"4xx\"} %lu\n"
                     "moeflash_http_responses_total{class=\"5xx\"} %lu\n",
                 atomic_load(&s->http_2xx), atomic_load(&s->http_4xx), atomic_load(&s->http_5xx));
    METRIC("requests_rejected_total", "counter", "Requests refused because the queue was full (429).", "%lu",
           atomic_load(&s->rejected));
    METRIC("queue_depth", "gauge", "Requests waiting for the worker.", "%d", m.queued);
    METRIC("requests_running", "gauge", "Generations running (0 or 1).", "%d", m.running);
    METRIC("prompt_tokens_total", "counter", "Prompt tokens evaluated (reused KV cache excluded).", "%llu",
           (unsigned long long)m.prompt_tokens);
    METRIC("prompt_tokens_cached_total", "counter", "Prompt tokens taken from the previous conversation's KV cache.",
           "%llu", (unsigned long long)m.cached_tokens);
    METRIC("generated_tokens_total", "counter", "Tokens generated.", "%llu", (unsigned long long)m.generated_tokens);
    METRIC("prompt_seconds_total", "counter", "Time spent in prefill.", "%.6f", m.prefill_s);
    METRIC("decode_seconds_total", "counter", "Time spent generating.", "%.6f", m.decode_s);
    METRIC("prompt_tokens_per_second", "gauge", "Prefill speed since start.", "%.3f",
           m.prefill_s > 0 ? (double)m.prompt_tokens / m.prefill_s : 0.0);
    METRIC("decode_tokens_per_second", "gauge", "Decode speed since start.", "%.3f",
           m.decode_s > 0 ? (double)m.generated_tokens / m.decode_s : 0.0);
    METRIC("expert_cache_hits_total", "counter", "Routed experts found in the cache.", "%llu",
           (unsigned long long)st->cache_hits);
    METRIC("expert_cache_misses_total", "counter", "Routed experts read from disk.", "%llu",
           (unsigned long long)st->cache_misses);
    METRIC("expert_cache_hit_ratio", "gauge", "Hits over lookups since start.", "%.6f",
           lookups ? (double)st->cache_hits / (double)lookups : 0.0);
    METRIC("expert_cache_bytes", "gauge", "Expert cache budget.", "%llu", (unsigned long long)st->cache_bytes);
    METRIC("expert_bytes_read_total", "counter", "Bytes of experts read from disk.", "%llu",
           (unsigned long long)st->bytes_read);
    METRIC("io_wait_seconds_total", "counter", "Time the engine waited for expert reads.", "%.6f", st->io_wait_s);
    METRIC("context_size", "gauge", "Tokens of context per conversation.", "%u", s->cx.n_ctx);
#undef METRIC
    return b.p;
}

static bool authorized(srv_server *s, struct MHD_Connection *c)
{
    if (!s->api_key) return true;
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!h || strncasecmp(h, "Bearer ", 7)) return false;
    h += 7;
    size_t n = strlen(h), k = strlen(s->api_key);
    unsigned char diff = n != k; /* compared in constant time */
    for (size_t i = 0; i < n; i++) diff |= (unsigned char)(h[i] ^ s->api_key[i % (k ? k : 1)]);
    return !diff;
}

static enum MHD_Result route(srv_server *s, struct MHD_Connection *c, conn *cn, const char *url, const char *method)
{
    bool get = !strcmp(method, "GET") || !strcmp(method, "HEAD"), post = !strcmp(method, "POST");
    if (!strcmp(method, "OPTIONS")) {
        struct MHD_Response *r = MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
        if (!r) return MHD_NO;
        MHD_add_response_header(r, "Access-Control-Allow-Origin", "*");
        MHD_add_response_header(r, "Access-Control-Allow-Methods", "GET, POST, OPTIONS");
        MHD_add_response_header(r, "Access-Control-Allow-Headers", "Authorization, Content-Type");
        enum MHD_Result rc = MHD_queue_response(c, 204, r);
        MHD_destroy_response(r);
        return rc;
    }
    if (!strcmp(url, "/health") || !strcmp(url, "/v1/health")) {
        if (!get) goto wrong_method;
        return respond_json(s, c, 200, strdup("{\"status\":\"ok\"}"));
    }
    if (!authorized(s, c))
        return fail(s, c, 401, "invalid_request_error", "invalid_api_key",
                    "Incorrect API key provided. Send it as 'Authorization: Bearer KEY'%s", "");
    const char *p = !strncmp(url, "/v1/", 4) ? url + 3 : url;
    if (!strcmp(p, "/chat/completions") || !strcmp(p, "/completions")) {
        if (!post) goto wrong_method;
        return generate(s, c, cn, p[1] == 'c' && p[2] == 'h' ? SRV_CHAT : SRV_COMPLETION);
    }
    if (!strcmp(p, "/models")) {
        if (!get) goto wrong_method;
        return respond_json(s, c, 200, srv_models_json(s->model_id, s->created, NULL));
    }
    if (!strncmp(p, "/models/", 8)) {
        if (!get) goto wrong_method;
        if (strcmp(p + 8, s->model_id))
            return fail(s, c, 404, "invalid_request_error", "model_not_found", "The model '%s' does not exist", p + 8);
        return respond_json(s, c, 200, srv_models_json(s->model_id, s->created, s->model_id));
    }
    if (!strcmp(url, "/metrics")) {
        if (!get) goto wrong_method;
        return respond(s, c, 200, "text/plain; version=0.0.4; charset=utf-8", metrics_text(s));
    }
    return fail(s, c, 404, "invalid_request_error", NULL, "Invalid URL (%s)", url);
wrong_method:
    return fail(s, c, 405, "invalid_request_error", "method_not_allowed", "Method %s is not allowed here", method);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
    srv_server *s = cls;
    conn *cn = *con_cls;
    if (!cn) {
        if (!(cn = calloc(1, sizeof *cn))) return MHD_NO;
        *con_cls = cn;
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        cn->too_large = cl && strtoull(cl, NULL, 10) > s->cfg.body_max;
        if (cn->too_large) return too_large(s, c); /* answered before the body is read */
        return MHD_YES;
    }
    if (*upload_size) {
        if (!cn->too_large && cn->body.n + *upload_size > s->cfg.body_max) {
            cn->too_large = true;
            srv_buf_free(&cn->body);
        }
        if (!cn->too_large && srv_buf_add(&cn->body, upload, *upload_size)) return MHD_NO;
        *upload_size = 0;
        return MHD_YES;
    }
    atomic_fetch_add(&s->http_total, 1);
    enum MHD_Result rc = route(s, c, cn, url, method);
    if (s->cfg.verbose) {
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_HTTP_STATUS);
        fprintf(stderr, "moeflash serve: %s %s -> %u\n", method, url, ci ? ci->http_status : 0);
    }
    return rc;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    srv_server *s = cls;
    conn *cn = *con_cls;
    if (!cn) return;
    if (cn->active) atomic_fetch_sub(&s->active, 1);
    if (cn->job) {
        atomic_store(&cn->job->cancel, true);
        srv_job_unref(cn->job);
    }
    srv_buf_free(&cn->body);
    free(cn);
    *con_cls = NULL;
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    srv_server *s = cls;
    if (!s->cfg.verbose) return;
    fprintf(stderr, "moeflash serve: libmicrohttpd: ");
    vfprintf(stderr, fmt, ap);
}

/* ---- life cycle ---- */

static char *default_id(const char *path, const char *fallback)
{
    const char *b = path ? strrchr(path, '/') : NULL;
    b = b ? b + 1 : path;
    if (!b || !*b) return strdup(fallback ? fallback : "model");
    size_t n = strlen(b);
    if (n > 5 && !strcmp(b + n - 5, ".gguf")) n -= 5;
    return strndup(b, n);
}

static void server_free(srv_server *s)
{
    if (s->d) MHD_stop_daemon(s->d);
    srv_worker_free(s->w);
    mf_chat_template_free(s->tmpl);
    free(s->host);
    free(s->api_key);
    free(s->model_id);
    free(s);
}

srv_server *srv_start(mf_model *m, const srv_config *cfg, mf_error *e)
{
    srv_server *s = calloc(1, sizeof *s);
    if (!s) { mf_fail(e, "out of memory"); return NULL; }
    s->cfg = *cfg;
    if (!s->cfg.body_max) s->cfg.body_max = (size_t)8 << 20;
    s->created = (long)time(NULL);
    const mf_model_info *info = mf_model_get_info(m);
    s->host = strdup(cfg->host ? cfg->host : "127.0.0.1");
    s->api_key = cfg->api_key && *cfg->api_key ? strdup(cfg->api_key) : NULL;
    s->model_id = cfg->model_id ? strdup(cfg->model_id) : default_id(cfg->model_path, info->name);
    if (!s->host || !s->model_id || (cfg->api_key && *cfg->api_key && !s->api_key)) { mf_fail(e, "out of memory"); goto fail; }
    s->cx.vocab = mf_model_vocab(m, e);
    if (!s->cx.vocab) { mf_fail_wrap(e, "serving needs the model's vocabulary"); goto fail; }
    if (!(s->tmpl = cfg->model_path ? mf_chat_template_from_model(cfg->model_path, cfg->chat_template, e)
                                    : mf_chat_template_new(cfg->chat_template, NULL, NULL, e))) {
        mf_fail_wrap(e, "while loading the chat template");
        goto fail;
    }
    if (!(s->w = srv_worker_start(m, cfg->n_ctx, cfg->batch, cfg->queue_max, e))) goto fail;
    s->cx.tmpl = s->tmpl;
    s->cx.model_id = s->model_id;
    s->cx.model_name = info->name;
    s->cx.n_ctx = srv_worker_n_ctx(s->w);
    s->cx.default_max_tokens = cfg->default_max_tokens;
    s->cx.sampler = cfg->sampler;
    s->cx.test_hooks = cfg->test_hooks;

    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE }, *ai;
    char port[16];
    snprintf(port, sizeof port, "%d", cfg->port);
    int gr = getaddrinfo(s->host, port, &hints, &ai);
    if (gr) { mf_fail(e, "--host %s: %s", s->host, gai_strerror(gr)); goto fail; }
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ERROR_LOG;
    if (ai->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
    errno = 0;
    s->d = MHD_start_daemon(flags, (uint16_t)cfg->port, NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR, ai->ai_addr,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)(cfg->max_connections > 0 ? cfg->max_connections : 256),
                            MHD_OPTION_CONNECTION_TIMEOUT, IDLE_S, MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                            MHD_OPTION_EXTERNAL_LOGGER, mhd_log, s, MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!s->d) {
        mf_fail(e, "could not listen on %s:%d: %s", s->host, cfg->port, errno ? strerror(errno) : "libmicrohttpd failed");
        goto fail;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : cfg->port;
    return s;
fail:
    server_free(s);
    return NULL;
}

int srv_port(const srv_server *s) { return s->port; }
const char *srv_model_id(const srv_server *s) { return s->model_id; }

void srv_stop(srv_server *s)
{
    if (!s) return;
    srv_worker_stop(s->w); /* waiting requests get their 503 or end of stream */
    /* Let those answers reach their clients before the sockets close. */
    for (int i = 0; i < 200 && atomic_load(&s->active) > 0; i++) nanosleep(&(struct timespec){ 0, 10 * 1000000L }, NULL);
    MHD_stop_daemon(s->d);
    s->d = NULL;
    server_free(s);
}

#else /* built without libmicrohttpd or jansson */

#include "server/srv.h"
#include <string.h>

void srv_config_default(srv_config *c) { memset(c, 0, sizeof *c); }
srv_server *srv_start(mf_model *m, const srv_config *c, mf_error *e)
{
    mf_fail(e, "this moeflash was built without libmicrohttpd and jansson (install libmicrohttpd-dev and libjansson-dev)");
    return NULL;
}
int srv_port(const srv_server *s) { return 0; }
const char *srv_model_id(const srv_server *s) { return ""; }
void srv_stop(srv_server *s) {}

#endif
