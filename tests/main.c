/* main.c — the test runner: runs every registered test (or those whose name
 * contains one of the arguments) and ends with "N passed, N failed". */
#include "t.h"

#include <stdarg.h>
#include <limits.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

#define T_MAX 1024
static struct { const char *name; t_fn fn; } t_tests[T_MAX];
static int t_count;

void t_register(const char *name, t_fn fn)
{
    if (t_count == T_MAX) { fprintf(stderr, "too many tests\n"); exit(2); }
    t_tests[t_count].name = name;
    t_tests[t_count].fn = fn;
    t_count++;
}

void t_failf(t_state *t_, const char *file, int line, const char *fmt, ...)
{
    t_->failures++;
    if (t_->failures > 20) return; /* one broken loop must not flood the log */
    fprintf(stdout, "  %s:%d: ", file, line);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stdout, fmt, ap);
    va_end(ap);
    fputc('\n', stdout);
}

const char *t_shared(const char *rel)
{
    static char buf[8][PATH_MAX];
    static int slot;
    char *b = buf[slot++ % 8];
    const char *root = getenv("MF_SHARED");
    snprintf(b, PATH_MAX, "%s/%s", root ? root : "../shared", rel);
    return b;
}

static char t_dir[PATH_MAX];
static void t_cleanup(void)
{
    if (t_dir[0] && !getenv("MF_KEEP_TMP")) {
        char cmd[PATH_MAX + 16];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", t_dir);
        if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", t_dir);
    }
}

const char *t_tmpdir(void)
{
    if (!t_dir[0]) {
        snprintf(t_dir, sizeof t_dir, "%s/moeflash-test-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
        if (!mkdtemp(t_dir)) { perror("mkdtemp"); exit(2); }
        atexit(t_cleanup);
    }
    return t_dir;
}

void *t_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *p = malloc((size_t)n + 1);
    if (p && fread(p, 1, (size_t)n, f) != (size_t)n) { free(p); p = NULL; }
    if (p) p[n] = 0;
    fclose(f);
    if (len) *len = (size_t)n;
    return p;
}

bool t_asan(void) { return getenv("MF_ASAN") != NULL; }

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    struct stat st;
    if (stat(t_shared("golden/README.md"), &st) != 0) {
        fprintf(stdout, "shared data not found at %s (set MF_SHARED)\n", t_shared(""));
        fprintf(stdout, "0 passed, 1 failed\n");
        return 1;
    }
    int passed = 0, failed = 0;
    for (int i = 0; i < t_count; i++) {
        if (argc > 1) {
            int want = 0;
            for (int a = 1; a < argc; a++) want |= strstr(t_tests[i].name, argv[a]) != NULL;
            if (!want) continue;
        }
        t_state st = { 0, t_tests[i].name };
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        t_tests[i].fn(&st);
        clock_gettime(CLOCK_MONOTONIC, &b);
        double s = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) * 1e-9;
        if (st.failures) {
            failed++;
            fprintf(stdout, "FAIL %s (%d failures, %.2fs)\n", t_tests[i].name, st.failures, s);
        } else {
            passed++;
            fprintf(stdout, "ok   %s (%.2fs)\n", t_tests[i].name, s);
        }
    }
    fprintf(stdout, "%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
