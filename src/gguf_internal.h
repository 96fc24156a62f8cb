/* gguf_internal.h — what the GGUF reader's files share (gguf.c parses,
 * gguf_get.c looks up); not for other modules. */
#ifndef MF_GGUF_INTERNAL_H
#define MF_GGUF_INTERNAL_H

#include "gguf.h"

typedef struct gguf_arena gguf_arena;

extern const uint8_t gguf_vtype_size[GGUF_VTYPE_COUNT];
/* Reads one scalar of type t at p into v. */
void gguf_scalar_from(gguf_value *v, gguf_vtype t, const uint8_t *p);
/* A non-negative integer value as u64; -1 for other types or negatives. */
int gguf_scalar_as_u64(const gguf_value *v, uint64_t *out);
/* A NUL-terminated copy of p[0..n) in the file's arena. */
char *gguf_arena_strdup(gguf_arena **a, const char *p, uint64_t n);

#endif
