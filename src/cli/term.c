/* term.c — loading indicator, prefill bar and the reply view (see
 * term.h). Everything here is display: it never changes what is generated.
 *
 * Opening a model has no progress callback, so the loading indicator is a
 * watcher thread that, after a second, shows the elapsed time and the
 * bytes this process has read so far (/proc/self/io rchar): the resident
 * weights being read is what takes the time. */
#include "cli/term.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define DIM "\033[2m"
#define RESET "\033[0m"
#define ERASE "\r\033[K"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- loading ---- */

typedef struct watch {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done, shown;
    const char *name;
    double t0;
    uint64_t rchar0;
} watch;

static uint64_t rchar(void)
{
    FILE *f = fopen("/proc/self/io", "r");
    if (!f) return 0;
    char line[128];
    uint64_t v = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "rchar: %" SCNu64, &v) == 1) break;
    fclose(f);
    return v;
}

static void *watch_main(void *arg)
{
    watch *w = arg;
    pthread_mutex_lock(&w->mu);
    while (!w->done) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 200 * 1000 * 1000;
        if (ts.tv_nsec >= 1000000000) { ts.tv_sec++; ts.tv_nsec -= 1000000000; }
        pthread_cond_timedwait(&w->cv, &w->mu, &ts);
        double el = now_s() - w->t0;
        if (w->done || el < 1.0) continue;
        fprintf(stderr, ERASE DIM "loading %s  %.1fs, %.0f MB read" RESET, w->name, el, (rchar() - w->rchar0) / 1e6);
        fflush(stderr);
        w->shown = true;
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

mf_model *term_open_model(const char *path, const mf_model_params *p, mf_error *e)
{
    if (!isatty(2)) return mf_model_open(path, p, e);
    const char *slash = strrchr(path, '/');
    watch w = { .name = slash ? slash + 1 : path, .t0 = now_s(), .rchar0 = rchar() };
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    pthread_t th;
    bool started = pthread_create(&th, NULL, watch_main, &w) == 0;
    mf_model *m = mf_model_open(path, p, e);
    if (started) {
        pthread_mutex_lock(&w.mu);
        w.done = true;
        pthread_cond_signal(&w.cv);
        pthread_mutex_unlock(&w.mu);
        pthread_join(th, NULL);
    }
    if (w.shown) fputs(ERASE, stderr);
    pthread_cond_destroy(&w.cv);
    pthread_mutex_destroy(&w.mu);
    return m;
}

/* ---- prefill ---- */

void term_bar_begin(term_bar *b)
{
    b->tty = isatty(2);
    b->shown = false;
    b->t0 = now_s();
}

int term_bar_update(void *bar, size_t done, size_t total)
{
    term_bar *b = bar;
    double el = now_s() - b->t0;
    if (!b->tty || total == 0 || (!b->shown && (el < 0.5 || done >= total))) return 0;
    enum { W = 30 };
    char cells[W + 1];
    size_t full = done * W / total;
    for (size_t i = 0; i < W; i++) cells[i] = i < full ? '#' : '.';
    cells[W] = 0;
    fprintf(stderr, ERASE DIM "prompt [%s] %zu/%zu tokens, %.1f tok/s" RESET, cells, done, total, el > 0 ? done / el : 0);
    fflush(stderr);
    b->shown = true;
    return 0;
}

void term_bar_end(term_bar *b)
{
    if (b->shown) fputs(ERASE, stderr);
    b->shown = false;
}

/* ---- the reply ---- */

/* Leaves the part written last: colour off, placeholder erased. */
static void leave_part(reply_view *v)
{
    if (v->part == MF_REPLY_REASONING) {
        if (v->color && !v->hide) fputs(RESET, v->out);
        if (v->placeholder) { fputs(ERASE, v->out); v->placeholder = false; }
    }
}

static void put(reply_view *v, const char *s, size_t n)
{
    if (!n) return;
    fwrite(s, 1, n, v->out);
    v->at_bol = s[n - 1] == '\n';
}

static int on_part(void *user, mf_reply_part part, const char *s, size_t n, const char *args, size_t na)
{
    reply_view *v = user;
    bool shown = !(part == MF_REPLY_REASONING && v->hide);
    if ((int)part != v->part || part == MF_REPLY_TOOL_CALL) {
        bool was_shown = v->part >= 0 && !(v->part == MF_REPLY_REASONING && v->hide);
        leave_part(v);
        /* thinking and the answer on lines of their own */
        if (was_shown && shown && !v->at_bol) put(v, "\n", 1);
        v->part = (int)part;
        if (part == MF_REPLY_REASONING && v->color) {
            if (v->hide) { fputs(DIM "(thinking...)" RESET, v->out); v->placeholder = true; }
            else fputs(DIM, v->out);
        }
    }
    if (part == MF_REPLY_TOOL_CALL) {
        fprintf(v->out, "%s[tool call] %.*s %.*s%s\n", v->color ? DIM : "", (int)n, s, (int)na, args, v->color ? RESET : "");
        v->at_bol = true;
    } else if (shown) put(v, s, n);
    if (part == MF_REPLY_CONTENT) {
        if (v->len + n + 1 > v->cap) {
            size_t cap = v->cap ? v->cap : 1024;
            while (cap < v->len + n + 1) cap *= 2;
            char *q = realloc(v->content, cap);
            if (!q) { v->oom = true; return 1; }
            v->content = q;
            v->cap = cap;
        }
        memcpy(v->content + v->len, s, n);
        v->len += n;
        v->content[v->len] = 0;
    }
    return 0;
}

int reply_view_begin(reply_view *v, FILE *out, bool hide, const mf_reply_params *p, mf_error *e)
{
    memset(v, 0, sizeof *v);
    v->out = out;
    v->color = isatty(fileno(out));
    v->hide = hide;
    v->part = -1;
    v->at_bol = true;
    mf_reply_params q = *p;
    q.emit = on_part;
    q.user = v;
    v->split = mf_reply_new(&q, e);
    return v->split ? 0 : -1;
}

int reply_view_write(reply_view *v, const char *s, size_t n)
{
    int rc = mf_reply_feed(v->split, s, n);
    fflush(v->out);
    return rc;
}

void reply_view_end(reply_view *v)
{
    if (mf_reply_finish(v->split)) v->oom = true;
    leave_part(v);
    v->part = -1;
    fflush(v->out);
}

void reply_view_free(reply_view *v)
{
    mf_reply_free(v->split);
    free(v->content);
    memset(v, 0, sizeof *v);
}
