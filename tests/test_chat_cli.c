/* test_chat_cli.c — `run -p` and `chat` as a person uses them: `run`
 * prints llama.cpp's text for the three stories260K models; `chat` is
 * driven through a pseudo-terminal (line editing on) for two turns, and
 * its /stats shows that the second turn evaluated only the new message,
 * not the first turn again; piped stdin works without a terminal. */
#include "t.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define QWEN3 "golden/qwen3moe-f32.gguf"

static const char *bin(void)
{
    const char *b = getenv("MF_BIN");
    return b ? b : "./moeflash";
}

/* Runs `moeflash args` (a shell fragment), stdout only (stderr to
 * /dev/null unless err2out), into out; returns the exit status. */
static int sh(const char *args, bool err2out, char *out, size_t cap, size_t *len)
{
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "'%s' %s %s", bin(), args, err2out ? "2>&1" : "2>/dev/null");
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = 0;
    if (len) *len = n;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static char out[1 << 16];

TEST(run_prompt_prints_golden_text)
{
    static const char *models[] = { "stories260K-dense", "stories260K-moe-copies", "stories260K-moe-perturbed" };
    for (int i = 0; i < 3; i++) {
        char rel[256], args[2048];
        snprintf(rel, sizeof rel, "models/stories260K-moe/%s.a.text.txt", models[i]);
        size_t wl, gl;
        char *want = t_read_file(t_shared(rel), &wl);
        REQUIRE(want);
        snprintf(args, sizeof args, "run '%s/models/stories260K-moe/%s.gguf' -p \"Once upon a time\" -n 64 --temp 0",
                 t_shared(""), models[i]);
        CHECKF(sh(args, false, out, sizeof out, &gl) == 0, "%s", models[i]);
        CHECKF(gl == wl && !memcmp(out, want, wl), "%s:\ngot  [%s]\nwant [%s]", models[i], out, want);
        free(want);
    }
}

TEST(run_prompt_flags)
{
    char args[2048];
    const char *m = t_shared("models/stories260K-moe/stories260K-moe-perturbed.gguf");
    /* a stop string split over tokens ends the text before it */
    snprintf(args, sizeof args, "run '%s' -p 'Once upon a time' -n 64 --temp 0 --stop 'ly. Sh'", m);
    CHECK(sh(args, false, out, sizeof out, NULL) == 0);
    CHECKF(!strcmp(out, "Once upon a time, there was a little girl named Li\n"), "[%s]", out);
    /* --chat prints only the reply; usage errors exit 2 */
    snprintf(args, sizeof args, "run '%s' -p 'Once upon a time' -n 4 --temp 0 --chat --system 'You tell stories.'", m);
    CHECK(sh(args, false, out, sizeof out, NULL) == 0);
    CHECKF(strncmp(out, "Once upon", 9) != 0 && strlen(out) > 1, "[%s]", out);
    snprintf(args, sizeof args, "run '%s' -p x --system y", m);
    CHECK(sh(args, true, out, sizeof out, NULL) == 2);
    snprintf(args, sizeof args, "run '%s' -p x --tokens 1", m);
    CHECK(sh(args, true, out, sizeof out, NULL) == 2);
    /* --stats-json carries the prompt tokens of the text prompt */
    char js[600];
    snprintf(js, sizeof js, "%s/run.json", t_tmpdir());
    snprintf(args, sizeof args, "run '%s' -p 'Once upon a time' -n 8 --temp 0 --stats-json '%s'", m, js);
    CHECK(sh(args, false, out, sizeof out, NULL) == 0);
    char *j = t_read_file(js, NULL);
    CHECKF(j && strstr(j, "\"prompt_tokens\": 5") && strstr(j, "\"generated_tokens\": 7"), "%s", j ? j : "(none)");
    free(j);
}

/* ---- a pseudo-terminal ---- */

typedef struct pty {
    int fd;
    pid_t pid;
    char buf[1 << 16];
    size_t n, seen;             /* seen: where the next expect starts */
} pty;

static int pty_start(pty *p, char *const argv[])
{
    memset(p, 0, sizeof *p);
    p->fd = posix_openpt(O_RDWR | O_NOCTTY);
    if (p->fd < 0 || grantpt(p->fd) || unlockpt(p->fd)) return -1;
    const char *name = ptsname(p->fd);
    if (!name) return -1;
    char slave[256];
    snprintf(slave, sizeof slave, "%s", name);
    p->pid = fork();
    if (p->pid < 0) return -1;
    if (p->pid == 0) {
        setsid();
        int s = open(slave, O_RDWR); /* the first terminal opened becomes the controlling one */
        if (s < 0) _exit(127);
        dup2(s, 0), dup2(s, 1), dup2(s, 2);
        if (s > 2) close(s);
        close(p->fd);
        setenv("TERM", "xterm", 1);
        setenv("MF_CACHE_DIR", t_tmpdir(), 1); /* the chat history file */
        execv(argv[0], argv);
        _exit(127);
    }
    return 0;
}

/* Reads until needle appears after p->seen (then moves seen past it) or
 * the timeout; returns whether it appeared. */
static bool pty_expect(pty *p, const char *needle, double timeout_s)
{
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        p->buf[p->n] = 0;
        char *at = strstr(p->buf + p->seen, needle);
        if (at) { p->seen = (size_t)(at - p->buf) + strlen(needle); return true; }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double left = timeout_s - ((double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9);
        if (left <= 0) return false;
        struct pollfd pf = { p->fd, POLLIN, 0 };
        if (poll(&pf, 1, (int)(left * 1000) + 1) <= 0) continue;
        if (p->n + 1 >= sizeof p->buf) return false;
        ssize_t k = read(p->fd, p->buf + p->n, sizeof p->buf - 1 - p->n);
        if (k <= 0) return false; /* the program ended */
        /* drop the terminal's carriage returns: "\n" becomes "\r\n" */
        char *src = p->buf + p->n;
        for (ssize_t i = 0; i < k; i++)
            if (src[i] != '\r') p->buf[p->n++] = src[i];
    }
}

static void pty_send(pty *p, const char *s)
{
    size_t n = strlen(s);
    while (n) {
        ssize_t k = write(p->fd, s, n);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return;
        s += k, n -= (size_t)k;
    }
}

static int pty_finish(pty *p)
{
    int st = -1;
    for (int i = 0; i < 100; i++) { /* 10 s */
        if (waitpid(p->pid, &st, WNOHANG) == p->pid) break;
        char tmp[4096];
        struct pollfd pf = { p->fd, POLLIN, 0 };
        if (poll(&pf, 1, 100) > 0 && read(p->fd, tmp, sizeof tmp) <= 0) usleep(10000);
        if (i == 99) { kill(p->pid, SIGKILL); waitpid(p->pid, &st, 0); st = -1; }
    }
    close(p->fd);
    return st >= 0 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* "last turn: E prompt tokens evaluated, R reused" after p->seen. */
static bool turn_stats(pty *p, size_t *eval, size_t *reused)
{
    if (!pty_expect(p, "last turn: ", 30)) return false;
    return sscanf(p->buf + p->seen, "%zu prompt tokens evaluated, %zu reused", eval, reused) == 2;
}

TEST(chat_pty_two_turns_reuse_the_cache)
{
    char args[2048];
    size_t n1;
    /* what the first reply must be: run --chat with the same settings */
    snprintf(args, sizeof args, "run '%s' -p 'Hello there' --chat -n 8 --temp 0", t_shared(QWEN3));
    REQUIRE(sh(args, false, out, sizeof out, &n1) == 0 && n1 > 1);
    out[--n1] = 0; /* run's final newline */
    char reply1[4096];
    size_t k = 0;
    for (size_t i = 0; i < n1 && k + 1 < sizeof reply1; i++)
        if (out[i] != '\r') reply1[k++] = out[i];
    reply1[k] = 0;

    static pty p;
    char model[1024];
    snprintf(model, sizeof model, "%s", t_shared(QWEN3));
    char *argv[] = { (char *)bin(), "chat", model, "-n", "8", "--temp", "0", "--threads", "2", NULL };
    REQUIRE(pty_start(&p, argv) == 0);
    CHECKF(pty_expect(&p, "/help for commands", 30), "no banner: [%s]", p.buf);
    REQUIRE(pty_expect(&p, "\n> ", 30));
    pty_send(&p, "Hello there\n");
    CHECKF(pty_expect(&p, reply1, 30), "turn 1: want [%s] in [%s]", reply1, p.buf + p.seen);
    REQUIRE(pty_expect(&p, "\n> ", 30));
    size_t e1 = 0, r1 = 0, e2 = 0, r2 = 0;
    pty_send(&p, "/stats\n");
    CHECKF(turn_stats(&p, &e1, &r1), "[%s]", p.buf);
    CHECK(r1 == 0 && e1 == 19); /* "<|im_start|>user\nHello there<|im_end|>\n<|im_start|>assistant\n" */
    REQUIRE(pty_expect(&p, "\n> ", 30));
    /* Ctrl-C at the prompt gives a fresh prompt, not an exit */
    pty_send(&p, "abc\003");
    REQUIRE(pty_expect(&p, "\n> ", 30));
    pty_send(&p, "How are you\n");
    REQUIRE(pty_expect(&p, "\n> ", 30));
    pty_send(&p, "/stats\n");
    CHECKF(turn_stats(&p, &e2, &r2), "[%s]", p.buf);
    /* the first turn's tokens were not evaluated again */
    CHECKF(e1 > 0 && r2 >= e1 && e2 > 0, "turn 2: %zu evaluated, %zu reused (turn 1: %zu)", e2, r2, e1);
    REQUIRE(pty_expect(&p, "\n> ", 30));
    pty_send(&p, "/exit\n");
    CHECK(pty_finish(&p) == 0);
}

TEST(chat_piped_stdin)
{
    char args[2048];
    /* end of input at once: a clean exit */
    snprintf(args, sizeof args, "chat '%s' -n 4 --temp 0 --system-file /dev/null < /dev/null", t_shared(QWEN3));
    CHECK(sh(args, true, out, sizeof out, NULL) == 0);
    snprintf(args, sizeof args, "chat '%s' -n 4 --temp 0 --stats < '%s/in.txt'", t_shared(QWEN3), t_tmpdir());
    char in[600];
    snprintf(in, sizeof in, "%s/in.txt", t_tmpdir());
    FILE *f = fopen(in, "w");
    REQUIRE(f);
    fputs("hi\n/clear\nhi\n/bogus\n", f);
    fclose(f);
    CHECK(sh(args, true, out, sizeof out, NULL) == 0);
    /* after /clear the same question reuses all but its last token */
    const char *t1 = strstr(out, "last turn: "), *t2 = t1 ? strstr(t1 + 1, "last turn: ") : NULL;
    REQUIRE(t1 && t2);
    size_t e1, r1, e2, r2;
    CHECK(sscanf(t1, "last turn: %zu prompt tokens evaluated, %zu reused", &e1, &r1) == 2);
    CHECK(sscanf(t2, "last turn: %zu prompt tokens evaluated, %zu reused", &e2, &r2) == 2);
    CHECKF(r1 == 0 && r2 + 1 == e1 && e2 == 1, "%s", out);
    CHECKF(strstr(out, "unknown command /bogus"), "%s", out);
    CHECK(sh("chat", true, out, sizeof out, NULL) == 2);
}
