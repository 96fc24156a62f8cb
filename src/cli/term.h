/* term.h — what `run` and `chat` show on a terminal besides the text: a
 * loading indicator, a prefill progress bar (both on stderr, only when it
 * is a terminal) and the filter that dims or hides a model's thinking
 * (<think>...</think>) in the streamed reply. Display only. */
#ifndef MF_CLI_TERM_H
#define MF_CLI_TERM_H

#include "moeflash.h"

#include <stdbool.h>
#include <stdio.h>

/* Opens a model; when stderr is a terminal and opening takes over a
 * second, shows the time spent and the bytes read so far. */
mf_model *term_open_model(const char *path, const mf_model_params *p, mf_error *e);

/* Prefill progress: pass term_bar_update as mf_gen_params.on_prefill with
 * a term_bar as user (or call it from one). Shows a bar once evaluating the
 * prompt has taken half a second; term_bar_end erases it. */
typedef struct term_bar {
    bool tty, shown;
    double t0;
} term_bar;
void term_bar_begin(term_bar *b);
int term_bar_update(void *bar, size_t done, size_t total);
void term_bar_end(term_bar *b);

/* The reply filter: text between <think> and </think> is written dimmed
 * (on a terminal) or not at all (hide); the tags themselves are not
 * written. Tags split across pieces are recognised. */
typedef struct think_filter {
    FILE *out;
    bool color, hide, in_think, placeholder;
    char tag[16];
    size_t ntag;
} think_filter;
/* in_think: the prompt already opened <think> (the template did). */
void think_begin(think_filter *f, FILE *out, bool hide, bool in_think);
void think_write(think_filter *f, const char *s, size_t n);
void think_end(think_filter *f);
/* Whether the rendered prompt ends inside an open <think> block. */
bool think_prompt_open(const char *prompt, size_t len);

#endif
