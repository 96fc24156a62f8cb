/* term.c — loading indicator, prefill bar and the thinking filter (see
 * term.h). Everything here is display: it never changes what is generated.
 *
 * Opening a model has no progress callback, so the loading indicator is a
 * watcher thread that, after a second, shows the elapsed time and the
 * bytes this process has read so far (/proc/self/io rchar): the resident
 * weights being read is what takes the time. */
#include "cli/term.h"

#include <inttypes.h>
#include <pthread.h>
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

/* ---- thinking ---- */

static const char open_tag[] = "<think>", close_tag[] = "</think>";

void think_begin(think_filter *f, FILE *out, bool hide, bool in_think)
{
    memset(f, 0, sizeof *f);
    f->out = out;
    f->color = isatty(fileno(out));
    f->hide = hide;
    if (in_think) {
        f->in_think = true;
        if (f->color && !hide) fputs(DIM, out);
        if (f->color && hide) { fputs(DIM "(thinking...)" RESET, out); f->placeholder = true; }
    }
}

static void put_text(think_filter *f, const char *s, size_t n)
{
    if (f->in_think && f->hide) return;
    fwrite(s, 1, n, f->out);
}

static void set_think(think_filter *f, bool on)
{
    if (on == f->in_think) return;
    f->in_think = on;
    if (on) {
        if (f->color && !f->hide) fputs(DIM, f->out);
        if (f->color && f->hide) { fputs(DIM "(thinking...)" RESET, f->out); f->placeholder = true; }
    } else {
        if (f->color && !f->hide) fputs(RESET, f->out);
        if (f->placeholder) { fputs(ERASE, f->out); f->placeholder = false; }
    }
}

/* Whether tag[0..n) is the beginning of a tag. */
static bool tag_prefix(const char *t, size_t n)
{
    return (n <= sizeof open_tag - 1 && !memcmp(t, open_tag, n)) ||
           (n <= sizeof close_tag - 1 && !memcmp(t, close_tag, n));
}

void think_write(think_filter *f, const char *s, size_t n)
{
    size_t run = 0; /* s[run..i) is plain text not yet written */
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (f->ntag == 0 && c != '<') continue;
        if (f->ntag == 0) { put_text(f, s + run, i - run); run = i; }
        f->tag[f->ntag++] = c;
        if (!tag_prefix(f->tag, f->ntag)) {
            /* not a tag after all: its bytes are text; a '<' may start one */
            bool restart = c == '<';
            put_text(f, f->tag, f->ntag - restart);
            f->ntag = 0;
            if (restart) f->tag[f->ntag++] = c;
        } else if (f->ntag == sizeof open_tag - 1 && !memcmp(f->tag, open_tag, f->ntag)) {
            set_think(f, true);
            f->ntag = 0;
        } else if (f->ntag == sizeof close_tag - 1 && !memcmp(f->tag, close_tag, f->ntag)) {
            set_think(f, false);
            f->ntag = 0;
        }
        run = i + 1;
    }
    if (f->ntag == 0) put_text(f, s + run, n - run);
    fflush(f->out);
}

void think_end(think_filter *f)
{
    put_text(f, f->tag, f->ntag);
    f->ntag = 0;
    set_think(f, false);
    fflush(f->out);
}

bool think_prompt_open(const char *prompt, size_t len)
{
    /* the last <think> after the last </think> */
    const char *open = NULL, *close = NULL;
    for (const char *p = prompt; p + sizeof open_tag - 1 <= prompt + len; p++) {
        if (!memcmp(p, open_tag, sizeof open_tag - 1)) open = p;
        else if (p + sizeof close_tag - 1 <= prompt + len && !memcmp(p, close_tag, sizeof close_tag - 1)) close = p;
    }
    return open && (!close || close < open);
}
