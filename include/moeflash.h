/* moeflash — public API.
 *
 * Everything the CLI and the server use goes through this header: open a
 * model, create a session, evaluate tokens, read logits, sample, tokenize,
 * render a chat, read stats. Functions that can fail on outside input return
 * a status (0 ok, -1 error) and fill an mf_error with a message that names
 * the file, the offset or key, what was expected and what was found.
 */
#ifndef MOEFLASH_H
#define MOEFLASH_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MF_ERROR_MAX 1024
typedef struct mf_error {
    char msg[MF_ERROR_MAX];
} mf_error;

/* Formats msg into e (if e is not NULL) and returns -1, so that a failing
 * path reads `return mf_fail(e, "...", ...);`. */
int mf_fail(mf_error *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Prefixes the message already in e with more context ("while X: <msg>"). */
int mf_fail_wrap(mf_error *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* ---- tokenizer (src/tokenizer; owned by the tokenizer work) ---- */

/* ---- end tokenizer ---- */

/* ---- chat templates (src/template; owned by the template work) ---- */

/* ---- end chat templates ---- */

/* Prints what `moeflash inspect` shows: architecture, hyperparameters,
 * metadata, the tensor table and the memory plan. Works for any GGUF. */
int mf_inspect(const char *path, FILE *out, mf_error *e);

#ifdef __cplusplus
}
#endif
#endif
