/* term.h — what `run` and `chat` show on a terminal besides the text: a
 * loading indicator, a prefill progress bar (both on stderr, only when it
 * is a terminal) and the view that dims or hides a model's thinking
 * (<think>...</think>, harmony's analysis channel) in the streamed reply.
 * Display only. */
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

/* The reply as a person reads it. The library's splitter (mf_reply)
 * decides what each piece of the streamed text is; reasoning (<think>,
 * harmony's analysis channel) is written dimmed on a terminal, or not at
 * all with hide (a "(thinking...)" placeholder on a terminal), content as
 * is, a tool call as a dimmed line. The markup itself is never written.
 * The content is also kept: it is what a chat remembers of a harmony
 * reply. */
typedef struct reply_view {
    FILE *out;
    bool color, hide, placeholder;
    int part;                   /* mf_reply_part written last, -1 none */
    bool at_bol;                /* the last byte written ended a line (or none was written) */
    mf_reply *split;
    char *content;              /* the content parts, NUL-terminated */
    size_t len, cap;
    bool oom;
} reply_view;
/* p: format, think_open, tools (emit and user are set here). */
int reply_view_begin(reply_view *v, FILE *out, bool hide, const mf_reply_params *p, mf_error *e);
/* Decoded text as generated; nonzero when out of memory. */
int reply_view_write(reply_view *v, const char *s, size_t n);
/* End of the reply: what was held back is written, the colour reset. */
void reply_view_end(reply_view *v);
void reply_view_free(reply_view *v);

#endif
