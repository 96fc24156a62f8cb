/* replay.c — routing traces through the store, simulated or for real, and
 * Belady's bound.
 *
 * The simulation is not a model of the store: it is the store, opened
 * without files (store_open_sim), so a policy's hit rate in `--sim` is the
 * hit rate the engine would see, and the I/O replay only adds the time.
 * Belady's MIN (Belady 1966) obeys the same rules: a step's experts are
 * pinned together, every miss is inserted.
 */
#include "store/replay.h"
#include "gguf.h"
#include "quant/quant.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void replay_trace_free(replay_trace *t)
{
    free(t->start);
    free(t->layer);
    free(t->decode);
    free(t->ids);
    memset(t, 0, sizeof *t);
}

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap) return 0;
    size_t n = *cap ? *cap * 2 : 1024;
    while (n < need) n *= 2;
    void *q = realloc(*p, n * elem);
    if (!q) return -1;
    *p = q;
    *cap = n;
    return 0;
}

/* "key=value" of a header line into out (up to n bytes), or 0 when absent. */
static int header_field(const char *line, const char *key, char *out, size_t n)
{
    size_t kl = strlen(key);
    for (const char *p = line; (p = strstr(p, key)); p++) {
        if ((p != line && p[-1] != ' ' && p[-1] != '#') || p[kl] != '=') continue;
        p += kl + 1;
        size_t i = 0;
        while (p[i] && p[i] != ' ' && p[i] != '\n' && p[i] != '\r' && i + 1 < n) out[i] = p[i], i++;
        out[i] = 0;
        return 1;
    }
    return 0;
}

static int parse_header(const char *path, int ln, const char *line, replay_trace *t, mf_error *e)
{
    char v[160];
    if (header_field(line, "n_layer", v, sizeof v)) {
        unsigned long L = 0, E = 0, K = 0;
        char ve[32], vk[32];
        if (!header_field(line, "n_expert", ve, sizeof ve) || !header_field(line, "n_expert_used", vk, sizeof vk) ||
            (L = strtoul(v, NULL, 10)) == 0 || (E = strtoul(ve, NULL, 10)) == 0 || (K = strtoul(vk, NULL, 10)) == 0 ||
            L > 4096 || E > 65536 || K > E)
            return mf_fail(e, "%s: line %d: expected n_layer=L n_expert=E n_expert_used=K (K <= E), found '%s'", path,
                           ln, line);
        t->n_layer = (uint32_t)L, t->n_expert = (uint32_t)E, t->n_used = (uint32_t)K;
        if (header_field(line, "model", v, sizeof v)) snprintf(t->model, sizeof t->model, "%s", v);
        if (header_field(line, "arch", v, sizeof t->arch)) memcpy(t->arch, v, sizeof t->arch);
    } else if (header_field(line, "expert_bytes", v, sizeof v)) {
        uint64_t b = strtoull(v, NULL, 10);
        if (b > t->max_expert_bytes) t->max_expert_bytes = b;
    }
    return 0;
}

int replay_trace_load(const char *path, replay_trace *t, mf_error *e)
{
    memset(t, 0, sizeof *t);
    FILE *fp = fopen(path, "r");
    if (!fp) return mf_fail(e, "%s: cannot open the trace: %s", path, strerror(errno));
    char *line = NULL;
    size_t cap = 0, cap_ids = 0, cap_steps = 0;
    int ln = 0, rc = 0;
    long prev[4] = { -1, -1, -1, -1 };
    while (!rc && getline(&line, &cap, fp) > 0) {
        ln++;
        if (ln == 1 && strncmp(line, "# route_trace v1", 16)) {
            rc = mf_fail(e, "%s: line 1: expected '# route_trace v1' (the format of ../shared/traces/README.md)", path);
            break;
        }
        if (line[0] == '#') { rc = parse_header(path, ln, line, t, e); continue; }
        if (!strncmp(line, "turn,", 5) || line[0] == '\n') continue;
        if (!t->n_layer) { rc = mf_fail(e, "%s: line %d: a row before the n_layer/n_expert header", path, ln); break; }
        long f[6];
        char *p = line, *end;
        for (int i = 0; i < 6 && !rc; i++) {
            errno = 0;
            f[i] = strtol(p, &end, 10);
            if (end == p || errno || f[i] < 0 || (*end != ',' && i < 5))
                rc = mf_fail(e, "%s: line %d: field %d: expected a non-negative integer (turn,phase,step,layer,slot,expert,...)",
                             path, ln, i + 1);
            p = end + 1;
        }
        if (rc) break;
        if ((uint64_t)f[3] >= t->n_layer || (uint64_t)f[5] >= t->n_expert) {
            rc = mf_fail(e, "%s: line %d: layer %ld, expert %ld: expected layer < %u and expert < %u", path, ln, f[3],
                         f[5], t->n_layer, t->n_expert);
            break;
        }
        bool new_step = f[0] != prev[0] || f[1] != prev[1] || f[2] != prev[2] || f[3] != prev[3];
        if (new_step) {
            if (grow((void **)&t->start, &cap_steps, t->n_steps + 2, sizeof *t->start) ||
                !(t->layer = realloc(t->layer, cap_steps * sizeof *t->layer)) ||
                !(t->decode = realloc(t->decode, cap_steps))) {
                rc = mf_fail(e, "out of memory");
                break;
            }
            t->start[t->n_steps] = t->n_ids;
            t->layer[t->n_steps] = (int32_t)f[3];
            t->decode[t->n_steps] = f[1] == 1;
            t->n_steps++;
            memcpy(prev, f, sizeof prev);
        }
        if (grow((void **)&t->ids, &cap_ids, t->n_ids + 1, sizeof *t->ids)) { rc = mf_fail(e, "out of memory"); break; }
        /* a repeated expert in one step is one lookup */
        bool dup = false;
        for (uint32_t i = t->start[t->n_steps - 1]; i < t->n_ids; i++) dup |= t->ids[i] == (int32_t)f[5];
        if (!dup) t->ids[t->n_ids++] = (int32_t)f[5];
        uint32_t k = t->n_ids - t->start[t->n_steps - 1];
        if (k > t->max_k) t->max_k = k;
    }
    free(line);
    fclose(fp);
    if (!rc && t->n_steps == 0) rc = mf_fail(e, "%s: no routing rows", path);
    if (rc) { replay_trace_free(t); return rc; }
    t->start[t->n_steps] = t->n_ids;
    return 0;
}

static void count_step(const replay_trace *t, uint32_t s, const store_stats *a, const store_stats *b, replay_result *r)
{
    uint64_t h = b->hits - a->hits, m = b->misses - a->misses;
    if (t->decode[s]) r->decode_hits += h, r->decode_misses += m;
}

static int run_store(const replay_trace *t, store *st, replay_result *r, mf_error *e)
{
    const store_expert *out[1024];
    if (t->max_k > 1024) return mf_fail(e, "a step of %u experts: at most 1024 are supported", t->max_k);
    store_stats a, b;
    store_get_stats(st, &a);
    store_stats first = a;
    double t0 = now_s();
    for (uint32_t s = 0; s < t->n_steps; s++) {
        const int32_t *ids = t->ids + t->start[s];
        int n = (int)(t->start[s + 1] - t->start[s]);
        if (store_acquire(st, t->layer[s], ids, n, out, e)) return mf_fail_wrap(e, "replaying step %u", s);
        store_release(st, t->layer[s], ids, n);
        store_get_stats(st, &b);
        count_step(t, s, &a, &b, r);
        a = b;
    }
    r->seconds = now_s() - t0;
    r->hits = b.hits - first.hits;
    r->misses = b.misses - first.misses;
    r->bytes_read = b.bytes_read - first.bytes_read;
    r->reads = b.reads - first.reads;
    r->io_wait_s = b.io_wait_s - first.io_wait_s;
    return 0;
}

int replay_sim(const replay_trace *t, const char *policy, const char *hot_set, uint32_t n_slots,
               uint64_t expert_bytes, replay_result *r, mf_error *e)
{
    memset(r, 0, sizeof *r);
    store *st = store_open_sim(t->n_layer, t->n_expert, t->max_k, n_slots, expert_bytes, policy, hot_set, e);
    if (!st) return -1;
    int rc = run_store(t, st, r, e);
    store_close(st);
    return rc;
}

int replay_belady(const replay_trace *t, uint32_t n_slots, replay_result *r, mf_error *e)
{
    memset(r, 0, sizeof *r);
    const size_t keys = (size_t)t->n_layer * t->n_expert;
    uint32_t *next = malloc((t->n_ids + 1) * sizeof *next);      /* step of the next use of ids[i] */
    uint32_t *seen = malloc((keys + 1) * sizeof *seen);
    int32_t *where = malloc((keys + 1) * sizeof *where);
    uint32_t *slot_next = malloc(((size_t)n_slots + 1) * sizeof *slot_next);
    uint32_t *slot_pin = malloc(((size_t)n_slots + 1) * sizeof *slot_pin);
    int32_t *slot_key = malloc(((size_t)n_slots + 1) * sizeof *slot_key);
    if (!next || !seen || !where || !slot_next || !slot_pin || !slot_key) {
        free(next), free(seen), free(where), free(slot_next), free(slot_pin), free(slot_key);
        return mf_fail(e, "out of memory");
    }
    for (size_t k = 0; k < keys; k++) seen[k] = UINT32_MAX, where[k] = -1;
    for (uint32_t s = t->n_steps; s-- > 0;)
        for (uint32_t i = t->start[s]; i < t->start[s + 1]; i++) {
            size_t k = (size_t)t->layer[s] * t->n_expert + (size_t)t->ids[i];
            next[i] = seen[k];
            seen[k] = s;
        }
    for (uint32_t j = 0; j < n_slots; j++) slot_key[j] = -1, slot_pin[j] = UINT32_MAX;
    int rc = 0;
    for (uint32_t s = 0; s < t->n_steps && !rc; s++) {
        uint64_t h = 0, m = 0;
        /* hits first: they are pinned before any miss chooses a victim */
        for (uint32_t i = t->start[s]; i < t->start[s + 1]; i++) {
            int32_t w = where[(size_t)t->layer[s] * t->n_expert + (size_t)t->ids[i]];
            if (w >= 0) slot_next[w] = next[i], slot_pin[w] = s, h++;
        }
        for (uint32_t i = t->start[s]; i < t->start[s + 1]; i++) {
            size_t k = (size_t)t->layer[s] * t->n_expert + (size_t)t->ids[i];
            if (where[k] >= 0) continue;
            int64_t v = -1;
            for (uint32_t j = 0; j < n_slots; j++) {
                if (slot_pin[j] == s) continue;
                if (slot_key[j] < 0) { v = j; break; }
                if (v < 0 || slot_next[j] > slot_next[v]) v = j;
            }
            if (v < 0) { rc = mf_fail(e, "belady: %u slots cannot hold one step of %u experts", n_slots, t->max_k); break; }
            if (slot_key[v] >= 0) where[slot_key[v]] = -1;
            slot_key[v] = (int32_t)k;
            where[k] = (int32_t)v;
            slot_next[v] = next[i];
            slot_pin[v] = s;
            m++;
        }
        r->hits += h, r->misses += m;
        if (t->decode[s]) r->decode_hits += h, r->decode_misses += m;
    }
    free(next), free(seen), free(where), free(slot_next), free(slot_pin), free(slot_key);
    return rc;
}

/* ---- the scratch model and the I/O replay ---- */

static int fill_bytes(void *ctx, const char *name, void *dst, uint64_t nbytes, mf_error *e)
{
    (void)ctx, (void)name, (void)e;
    uint64_t x = 0x9e3779b97f4a7c15ull, *d = dst;
    for (uint64_t i = 0; i < nbytes / 8; i++) x ^= x << 13, x ^= x >> 7, x ^= x << 17, d[i] = x;
    memset((uint8_t *)dst + nbytes / 8 * 8, 0x5a, nbytes % 8);
    return 0;
}

static uint64_t role_floats(uint64_t expert_bytes) { return (expert_bytes / 3 + 3) / 4; }

/* Whether path is a scratch model of this shape already. */
static bool scratch_ok(const char *path, const replay_trace *t, uint64_t expert_bytes)
{
    struct stat sb;
    if (stat(path, &sb) != 0) return false;
    mf_error e;
    gguf_file *f = gguf_open(path, &e);
    if (!f) return false;
    uint32_t nl = 0, ne = 0;
    uint64_t ok = 0;
    gguf_opt_u32(f, "replay.block_count", 0, &nl, &e);
    gguf_opt_u32(f, "replay.expert_count", 0, &ne, &e);
    for (uint64_t i = 0; i < f->n_tensors; i++)
        ok += f->tensors[i].ne[0] == role_floats(expert_bytes) && f->tensors[i].ne[2] == t->n_expert;
    bool same = nl == t->n_layer && ne == t->n_expert && ok == 3ull * t->n_layer && f->n_tensors == ok;
    gguf_close(f);
    return same;
}

int replay_scratch_model(const char *path, const replay_trace *t, uint64_t expert_bytes, mf_error *e)
{
    if (expert_bytes < 12) return mf_fail(e, "--expert-bytes %" PRIu64 ": expected at least 12", expert_bytes);
    if (scratch_ok(path, t, expert_bytes)) return 0;
    gguf_writer *w = gguf_writer_new();
    if (!w) return mf_fail(e, "out of memory");
    gguf_w_str(w, "general.architecture", "replay");
    gguf_w_str(w, "general.name", "moeflash replay scratch model");
    gguf_w_u32(w, "replay.block_count", t->n_layer);
    gguf_w_u32(w, "replay.expert_count", t->n_expert);
    static const char *const roles[3] = { "gate", "up", "down" };
    int rc = 0;
    for (uint32_t l = 0; l < t->n_layer && !rc; l++)
        for (int r = 0; r < 3 && !rc; r++) {
            char name[96];
            snprintf(name, sizeof name, "blk.%u.ffn_%s_exps.weight", l, roles[r]);
            uint64_t ne[3] = { role_floats(expert_bytes), 1, t->n_expert };
            rc = gguf_w_tensor_fill(w, name, MF_TYPE_F32, 3, ne, fill_bytes, NULL, e);
        }
    if (!rc) {
        char tmp[4200];
        snprintf(tmp, sizeof tmp, "%s.partial", path);
        rc = gguf_w_write(w, tmp, 0, e);
        if (!rc && rename(tmp, path) != 0) rc = mf_fail(e, "%s: cannot rename from %s: %s", path, tmp, strerror(errno));
        if (rc) remove(tmp);
    }
    gguf_writer_free(w);
    return rc;
}

int replay_io(const replay_trace *t, const char *path, const store_params *p, replay_result *r, mf_error *e)
{
    memset(r, 0, sizeof *r);
    gguf_file *f = gguf_open(path, e);
    if (!f) return -1;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        fdatasync(fd);
        posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
        close(fd);
    }
    store *st = store_open(f, t->n_layer, t->n_expert, t->max_k, p, e);
    int rc = -1;
    if (st) {
        rc = run_store(t, st, r, e);
        store_close(st);
    }
    gguf_close(f);
    return rc;
}
