/* template.h — the Jinja chat-template interpreter (internal API).
 *
 * A template is parsed once into an AST (tmpl_parse) and rendered any number
 * of times against variables given as one JSON object (tmpl_render). The
 * language is the Jinja2 subset that real chat templates use, with the
 * environment Hugging Face's apply_chat_template sets up: trim_blocks and
 * lstrip_blocks on, loop controls, tojson as json.dumps (ensure_ascii off,
 * separators ", " and ": ", keys in their order), raise_exception and
 * strftime_now. Every error names the template line and column.
 *
 * Rendering is bounded: output size, memory, evaluation steps and macro
 * recursion all have limits, so a hostile template fails with a message
 * instead of hanging or exhausting memory.
 */
#ifndef MF_TEMPLATE_H
#define MF_TEMPLATE_H

#include "moeflash.h"

#include <stddef.h>
#include <stdint.h>

typedef struct tmpl tmpl;

typedef struct tmpl_limits {
    size_t max_output;   /* bytes of rendered text (also of any captured block) */
    size_t max_memory;   /* bytes of values the render may allocate */
    uint64_t max_steps;  /* evaluation steps (statements, loop iterations, items) */
    int max_depth;       /* nested macro calls */
} tmpl_limits;

/* 64 MiB output, 512 MiB memory, 50M steps (about a second), 200 nested calls. */
void tmpl_limits_default(tmpl_limits *l);

/* Parses src (len bytes; need not be NUL-terminated). On a syntax error
 * returns NULL and e says "line L, column C: what was wrong". */
tmpl *tmpl_parse(const char *src, size_t len, mf_error *e);
void tmpl_free(tmpl *t);

/* Renders t with the members of the JSON object vars_json as variables.
 * *out is malloc'd and NUL-terminated (the text may itself contain NUL
 * bytes: use *out_len). lim NULL means the defaults. */
int tmpl_render(const tmpl *t, const char *vars_json, size_t vars_len,
                const tmpl_limits *lim, char **out, size_t *out_len, mf_error *e);

/* Parse and render in one call (vars_json NUL-terminated, may be NULL). */
int tmpl_render_src(const char *src, const char *vars_json,
                    char **out, size_t *out_len, mf_error *e);

#endif
