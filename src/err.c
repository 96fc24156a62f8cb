/* err.c — the one error type. A failing function formats what went wrong
 * into the caller's mf_error and returns -1; callers higher up may prefix
 * context. Nothing here allocates, so errors work when memory is short. */
#include "moeflash.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int mf_fail(mf_error *e, const char *fmt, ...)
{
    if (!e) return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    return -1;
}

int mf_fail_wrap(mf_error *e, const char *fmt, ...)
{
    if (!e) return -1;
    char old[MF_ERROR_MAX];
    memcpy(old, e->msg, sizeof old);
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    if (n >= 0 && (size_t)n + 2 < sizeof e->msg) {
        memcpy(e->msg + n, ": ", 2);
        size_t room = sizeof e->msg - (size_t)n - 2;
        size_t len = strnlen(old, room - 1);
        memcpy(e->msg + n + 2, old, len);
        e->msg[n + 2 + len] = 0;
    }
    return -1;
}
