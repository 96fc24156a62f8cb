/* t.h — the test harness. A test is `TEST(name) { ... }` in any tests file;
 * it registers itself at start-up and runs in the one runner, which prints
 * a line per test and ends with "N passed, N failed". CHECK records a
 * failure with file:line and goes on; REQUIRE stops the test. Tests are
 * plain C, deterministic, and find the shared data through t_shared(). */
#ifndef MF_T_H
#define MF_T_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct t_state { int failures; const char *name; } t_state;
typedef void (*t_fn)(t_state *t_);

void t_register(const char *name, t_fn fn);
void t_failf(t_state *t_, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* ../shared (or $MF_SHARED), joined with rel; a static buffer per call slot. */
const char *t_shared(const char *rel);
/* A fresh scratch directory for this run (removed at exit). */
const char *t_tmpdir(void);
/* Whole file into memory; NULL if missing. */
void *t_read_file(const char *path, size_t *len);
/* True when running under the sanitizers (make asan): heavy loops shrink. */
bool t_asan(void);

#define TEST(name) \
    static void test_##name(t_state *t_); \
    __attribute__((constructor)) static void reg_##name(void) { t_register(#name, test_##name); } \
    static void test_##name(t_state *t_)

#define CHECK(cond) do { if (!(cond)) t_failf(t_, __FILE__, __LINE__, "CHECK(%s)", #cond); } while (0)
#define CHECKF(cond, ...) do { if (!(cond)) t_failf(t_, __FILE__, __LINE__, __VA_ARGS__); } while (0)
#define REQUIRE(cond) do { if (!(cond)) { t_failf(t_, __FILE__, __LINE__, "REQUIRE(%s)", #cond); return; } } while (0)
#define REQUIREF(cond, ...) do { if (!(cond)) { t_failf(t_, __FILE__, __LINE__, __VA_ARGS__); return; } } while (0)

#endif
