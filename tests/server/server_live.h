/* server_live.h — the live-server tests of tests/test_server.c that need
 * time or other processes (included there only): client disconnects, a
 * full queue, 32 concurrent clients, the official `openai` npm client and
 * the `moeflash serve` binary. Every wait has a deadline. */
#ifndef MF_TEST_SERVER_LIVE_H
#define MF_TEST_SERVER_LIVE_H

#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

static void sleep_ms(int ms) { nanosleep(&(struct timespec){ ms / 1000, (ms % 1000) * 1000000L }, NULL); }

/* Waits (at most seconds) until the metric reaches at least want. */
static double wait_metric(int port, const char *name, double want, double seconds)
{
    double end = hc_now() + seconds, v;
    while ((v = metric(port, name)) < want && hc_now() < end) sleep_ms(20);
    return v;
}

#define CANCELLED "moeflash_requests_outcome_total{outcome=\"cancelled\"}"
#define SLOW(n, extra) CHAT(", \"ignore_eos\": true, \"max_tokens\": " #n ", \"mf_test_delay_ms\": 20" extra)

TEST(server_client_disconnect_stops_generation)
{
    live L;
    REQUIRE(!live_start(&L, NULL));
    /* A stream: read its first chunk, hang up. 2000 tokens at 20 ms would
     * take 40 s; the generation must stop within a token or two. */
    const char *req = SLOW(2000, ", \"stream\": true");
    int fd = hc_connect(L.port);
    REQUIRE(fd >= 0);
    hc_send(fd, "POST", "/v1/chat/completions", NULL, req, strlen(req));
    char buf[8192];
    size_t got = 0;
    double end = hc_now() + 30;
    while (got < sizeof buf - 1 && hc_now() < end) {
        ssize_t k = hc_read_some(fd, buf + got, sizeof buf - 1 - got, end);
        if (k <= 0) break;
        got += (size_t)k;
        buf[got] = 0;
        if (strstr(buf, "data: ")) break;
    }
    CHECKF(strstr(buf, "chat.completion.chunk"), "%s", buf);
    double t0 = hc_now();
    close(fd);
    CHECK(wait_metric(L.port, CANCELLED, 1, 10) == 1);
    CHECKF(hc_now() - t0 < 5, "cancelled after %.1f s", hc_now() - t0);
    CHECK(metric(L.port, "moeflash_requests_running") == 0);
    CHECK(metric(L.port, "moeflash_generated_tokens_total") < 1000);

    /* A non-streaming request whose client leaves while it runs. */
    fd = hc_connect(L.port);
    REQUIRE(fd >= 0);
    hc_send(fd, "POST", "/v1/chat/completions", NULL, SLOW(2000, ""), strlen(SLOW(2000, "")));
    REQUIRE(wait_metric(L.port, "moeflash_requests_running", 1, 10) == 1);
    t0 = hc_now();
    close(fd);
    CHECK(wait_metric(L.port, CANCELLED, 2, 10) == 2);
    CHECKF(hc_now() - t0 < 5, "cancelled after %.1f s", hc_now() - t0);

    hc_res r;
    CHECK(hc_post(L.port, "/v1/chat/completions", CHAT(", \"mf_test_reply\": \"still here\""), &r) == 200);
    CHECK(r.body && strstr(r.body, "still here")); hc_free(&r);
    live_stop(&L);
}

typedef struct bg_req { int port; const char *body; hc_res r; } bg_req;
static void *bg_post(void *arg)
{
    bg_req *b = arg;
    hc_post(b->port, "/v1/chat/completions", b->body, &b->r);
    return NULL;
}

TEST(server_queue_full_is_429)
{
    srv_config c;
    srv_config_default(&c);
    c.queue_max = 1;
    live L;
    REQUIRE(!live_start(&L, &c));
    int fd = hc_connect(L.port); /* A: runs slowly */
    REQUIRE(fd >= 0);
    hc_send(fd, "POST", "/v1/chat/completions", NULL, SLOW(1000, ""), strlen(SLOW(1000, "")));
    REQUIRE(wait_metric(L.port, "moeflash_requests_running", 1, 10) == 1);
    bg_req b = { .port = L.port, .body = CHAT(", \"mf_test_reply\": \"B done\"") }; /* B: waits in the queue */
    pthread_t th;
    REQUIRE(!pthread_create(&th, NULL, bg_post, &b));
    CHECK(wait_metric(L.port, "moeflash_queue_depth", 1, 10) == 1);
    hc_res r; /* C: no room */
    CHECK(hc_post(L.port, "/v1/chat/completions", CHAT(""), &r) == 429 && is_error_object(&r) && strstr(r.head, "Retry-After"));
    hc_free(&r);
    CHECK(hc_post(L.port, "/v1/completions", "{\"prompt\": \"x\", \"stream\": true}", &r) == 429); hc_free(&r);
    CHECK(hc_get(L.port, "/health", &r) == 200); hc_free(&r); /* other endpoints still answer */
    close(fd); /* A's client leaves: B runs */
    pthread_join(th, NULL);
    CHECKF(b.r.status == 200 && strstr(b.r.body, "B done"), "%d %s", b.r.status, BODY(b.r));
    hc_free(&b.r);
    CHECK(metric(L.port, "moeflash_requests_rejected_total") == 2);
    live_stop(&L);
}

/* srv_stop with a stream running and one queued: both clients get an
 * error event and [DONE] before the sockets close, and stop is prompt. */
TEST(server_stop_ends_streams_cleanly)
{
    live L;
    REQUIRE(!live_start(&L, NULL));
    bg_req a = { .port = L.port, .body = SLOW(2000, ", \"stream\": true") };
    bg_req b = { .port = L.port, .body = CHAT(", \"stream\": true, \"mf_test_reply\": \"never\"") };
    pthread_t ta, tb;
    REQUIRE(!pthread_create(&ta, NULL, bg_post, &a));
    REQUIRE(wait_metric(L.port, "moeflash_requests_running", 1, 10) == 1);
    REQUIRE(!pthread_create(&tb, NULL, bg_post, &b));
    CHECK(wait_metric(L.port, "moeflash_queue_depth", 1, 10) == 1);
    double t0 = hc_now();
    live_stop(&L);
    CHECKF(hc_now() - t0 < 5, "stop took %.1f s", hc_now() - t0);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    bg_req *r[2] = { &a, &b };
    for (int i = 0; i < 2; i++) {
        bool done;
        int bad;
        json_t *ev = sse_events(&r[i]->r, &done, &bad);
        json_t *last = json_array_get(ev, json_array_size(ev) - 1);
        CHECKF(r[i]->r.status == 200 && done && !bad && jeq(last, "error.message", "the server is shutting down"),
               "request %d: %d %s", i, r[i]->r.status, BODY(r[i]->r));
        CHECK(!strstr(BODY(r[i]->r), "never"));
        json_decref(ev);
        hc_free(&r[i]->r);
    }
}

/* ---- load ---- */

#define CLIENTS 32
#define PER_CLIENT 4

typedef struct lt {
    int port, id;
    int good, good_ok, bad, bad_ok;
    char why[256];
} lt;

static void *load_client(void *arg)
{
    lt *c = arg;
    for (int i = 0; i < PER_CLIENT; i++) {
        int kind = (c->id + i) % 6;
        char body[512], want[64];
        snprintf(want, sizeof want, "reply %d.%d", c->id, i);
        hc_res r;
        int st;
        bool ok;
        if (kind == 0 || kind == 1) {
            snprintf(body, sizeof body, "{\"messages\": [{\"role\": \"user\", \"content\": \"client %d\"}], \"stream\": %s, "
                                        "\"mf_test_reply\": \"%s\"}", c->id, kind ? "true" : "false", want);
            st = hc_post(c->port, "/v1/chat/completions", body, &r);
            char text[256] = "";
            if (kind) {
                bool done;
                int bad;
                json_t *ev = sse_events(&r, &done, &bad);
                sse_text(ev, "content", text, sizeof text);
                ok = done && !bad;
                json_decref(ev);
            } else {
                json_t *o = res_json(&r);
                snprintf(text, sizeof text, "%s", jstr(o, "choices.0.message.content") ? jstr(o, "choices.0.message.content") : "");
                ok = true;
                json_decref(o);
            }
            ok = ok && st == 200 && !strcmp(text, want);
            c->good++, c->good_ok += ok;
        } else if (kind == 4) {
            st = hc_post(c->port, "/v1/completions", "{\"prompt\": \"The quick\", \"temperature\": 0, \"max_tokens\": 2}", &r);
            json_t *o = res_json(&r);
            ok = st == 200 && jint(o, "usage.completion_tokens") >= 0 && jint(o, "usage.completion_tokens") <= 2;
            json_decref(o);
            c->good++, c->good_ok += ok;
        } else {
            static const char *bad[] = { "{\"messages\": [", "{\"model\": \"nope\", \"messages\": [{\"role\": \"user\", \"content\": \"x\"}]}",
                                         "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"max_tokens\": \"many\"}" };
            st = hc_post(c->port, "/v1/chat/completions", bad[(c->id + i) % 3], &r);
            ok = (st == 400 || st == 404) && is_error_object(&r);
            c->bad++, c->bad_ok += ok;
        }
        if (!ok && !c->why[0]) snprintf(c->why, sizeof c->why, "client %d request %d kind %d: %d %.150s", c->id, i, kind, st, r.body ? r.body : "");
        hc_free(&r);
    }
    return NULL;
}

TEST(server_load_32_clients)
{
    live L;
    REQUIRE(!live_start(&L, NULL));
    lt c[CLIENTS];
    pthread_t th[CLIENTS];
    double t0 = hc_now();
    for (int i = 0; i < CLIENTS; i++) {
        c[i] = (lt){ .port = L.port, .id = i };
        REQUIRE(!pthread_create(&th[i], NULL, load_client, &c[i]));
    }
    int good = 0, good_ok = 0, bad = 0, bad_ok = 0;
    for (int i = 0; i < CLIENTS; i++) {
        pthread_join(th[i], NULL);
        good += c[i].good, good_ok += c[i].good_ok, bad += c[i].bad, bad_ok += c[i].bad_ok;
        CHECKF(!c[i].why[0], "%s", c[i].why);
    }
    printf("  %d good and %d bad requests from %d clients in %.2f s\n", good, bad, CLIENTS, hc_now() - t0);
    CHECK(good + bad == CLIENTS * PER_CLIENT && good_ok == good && bad_ok == bad && good > 0 && bad > 0);
    hc_res r;
    CHECK(hc_get(L.port, "/health", &r) == 200); hc_free(&r);
    CHECK(metric(L.port, "moeflash_queue_depth") == 0 && metric(L.port, "moeflash_requests_running") == 0);
    CHECK(metric(L.port, "moeflash_requests_total") == good);
    live_stop(&L);
}

/* ---- other processes ---- */

/* tests/server, from the working directory or next to $MF_BIN. */
static const char *tests_dir(void)
{
    static char d[1024];
    if (!access("tests/server/openai_client.mjs", R_OK)) return "tests/server";
    const char *bin = getenv("MF_BIN");
    const char *slash = bin ? strrchr(bin, '/') : NULL;
    snprintf(d, sizeof d, "%.*s/tests/server", slash ? (int)(slash - bin) : 1, slash ? bin : ".");
    return d;
}

TEST(server_openai_npm_client)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/node_modules/openai/package.json", tests_dir());
    bool ci = getenv("CI") && !strcmp(getenv("CI"), "true");
    if (access(path, R_OK) || system("node --version >/dev/null 2>&1") != 0) {
        /* CI installs it (.ci/run); a developer's machine may not have it. */
        CHECKF(!ci, "CI=true but %s or node is missing: run `npm install --prefix tests/server`", path);
        printf("  skipped: no %s (npm install --prefix tests/server)\n", path);
        return;
    }
    srv_config c;
    srv_config_default(&c);
    c.api_key = "sk-node-test";
    live L;
    REQUIRE(!live_start(&L, &c));
    char cmd[1600];
    snprintf(cmd, sizeof cmd, "cd '%s' && timeout 120 node openai_client.mjs http://127.0.0.1:%d/v1 sk-node-test %s 2>&1",
             tests_dir(), L.port, srv_model_id(L.s));
    FILE *p = popen(cmd, "r");
    REQUIRE(p);
    static char out[1 << 16];
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = 0;
    int st = pclose(p);
    CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0 && strstr(out, "openai client: all checks passed"), "%s", out);
    if (strstr(out, "passed")) printf("  %s", strstr(out, "openai client:"));
    live_stop(&L);
}

static int run_quiet(const char *args)
{
    const char *bin = getenv("MF_BIN") ? getenv("MF_BIN") : "./moeflash";
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "'%s' %s >/dev/null 2>&1", bin, args);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

TEST(server_cli_binary)
{
    const char *bin = getenv("MF_BIN") ? getenv("MF_BIN") : "./moeflash";
    char args[1200];
    CHECK(run_quiet("serve") == 2);
    snprintf(args, sizeof args, "serve '%s' --port 70000", golden_model());
    CHECK(run_quiet(args) == 2);
    CHECK(run_quiet("serve /nonexistent/model.gguf --port 0") == 1);

    int out[2];
    REQUIRE(!pipe(out));
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        dup2(out[1], 1);
        close(out[0]);
        execl(bin, bin, "serve", golden_model(), "--host", "127.0.0.1", "--port", "0", "--api-key", "sk-cli", "--threads",
              "2", "--ctx", "256", (char *)NULL);
        _exit(127);
    }
    close(out[1]);
    char line[512] = "";
    size_t got = 0;
    double end = hc_now() + 60;
    while (!strchr(line, '\n') && got < sizeof line - 1 && hc_now() < end) {
        struct pollfd pf = { .fd = out[0], .events = POLLIN };
        if (poll(&pf, 1, 100) <= 0) continue;
        ssize_t k = read(out[0], line + got, sizeof line - 1 - got);
        if (k <= 0) break;
        got += (size_t)k;
        line[got] = 0;
    }
    int port = 0;
    const char *at = strstr(line, "127.0.0.1:");
    if (at) port = atoi(at + 10);
    CHECKF(port > 0 && strstr(line, "qwen3moe-f32"), "'%s'", line);
    if (port > 0) {
        hc_res r;
        const char *auth = "Authorization: Bearer sk-cli\r\n";
        CHECK(hc_get(port, "/health", &r) == 200); hc_free(&r);
        CHECK(hc_get(port, "/v1/models", &r) == 401); hc_free(&r);
        CHECK(hc_request(port, "GET", "/v1/models", auth, NULL, 0, &r, 10) == 200); hc_free(&r);
        const char *chat = CHAT(", \"temperature\": 0, \"max_tokens\": 3, \"mf_test_reply\": \"ignored without --test-hooks\"");
        CHECK(hc_request(port, "POST", "/v1/chat/completions", auth, chat, strlen(chat), &r, 60) == 200);
        CHECK(r.body && !strstr(r.body, "ignored")); hc_free(&r);
        CHECK(hc_request(port, "GET", "/metrics", auth, NULL, 0, &r, 10) == 200 && strstr(r.body, "moeflash_context_size 256"));
            hc_free(&r);
    }
    kill(pid, SIGTERM);
    int st = 0;
    pid_t w = 0;
    for (end = hc_now() + 30; (w = waitpid(pid, &st, WNOHANG)) == 0 && hc_now() < end;) sleep_ms(20);
    if (w == 0) { kill(pid, SIGKILL); waitpid(pid, &st, 0); }
    CHECKF(w == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0, "serve did not exit cleanly on SIGTERM (status %d)", st);
    close(out[0]);
}

#endif
