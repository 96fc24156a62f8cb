/* gguf.h — reading GGUF v2/v3 files as llama.cpp writes them, split files
 * included, and writing them (gguf_write.c).
 *
 * A file is mapped read-only; metadata values and tensor infos are parsed
 * through a bounded cursor, so every count, length, offset and type is
 * checked before use. Strings point into the mapping (not NUL-terminated);
 * keys and tensor names are copied and NUL-terminated. The reader knows
 * nothing about models.
 */
#ifndef MF_GGUF_H
#define MF_GGUF_H

#include "moeflash.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum gguf_vtype {
    GGUF_UINT8 = 0, GGUF_INT8 = 1, GGUF_UINT16 = 2, GGUF_INT16 = 3,
    GGUF_UINT32 = 4, GGUF_INT32 = 5, GGUF_FLOAT32 = 6, GGUF_BOOL = 7,
    GGUF_STRING = 8, GGUF_ARRAY = 9, GGUF_UINT64 = 10, GGUF_INT64 = 11,
    GGUF_FLOAT64 = 12, GGUF_VTYPE_COUNT
} gguf_vtype;

#define GGUF_MAX_DIMS 4
#define GGUF_DEFAULT_ALIGNMENT 32

typedef struct gguf_str { const char *p; uint64_t n; } gguf_str;

typedef struct gguf_value gguf_value;
struct gguf_value {
    gguf_vtype type;
    union {
        uint64_t u;      /* UINT8..UINT64, BOOL */
        int64_t i;       /* INT8..INT64 */
        double f;        /* FLOAT32, FLOAT64 */
        gguf_str s;      /* STRING */
        struct {
            gguf_vtype etype;
            uint64_t n;
            const uint8_t *raw;  /* scalar elements, little-endian, in the map */
            gguf_value *items;   /* STRING and ARRAY elements (n of them) */
        } arr;
    } v;
};

typedef struct gguf_kv {
    char *key;
    gguf_value val;
    uint64_t offset;     /* byte offset of the key in its file */
} gguf_kv;

typedef struct gguf_tensor {
    char *name;
    uint32_t type;       /* mf_type */
    uint32_t n_dims;
    uint64_t ne[GGUF_MAX_DIMS];  /* ne[0] contiguous; unused dims are 1 */
    uint64_t nelem;
    uint64_t nbytes;
    int file;            /* index into gguf_file.parts */
    uint64_t offset;     /* absolute byte offset in that part */
    const void *data;    /* in that part's mapping */
} gguf_tensor;

typedef struct gguf_part {
    char *path;
    int fd;
    const uint8_t *map;
    uint64_t size;
    uint64_t data_offset;   /* start of the tensor data section */
} gguf_part;

typedef struct gguf_file {
    uint32_t version;
    uint32_t alignment;
    gguf_kv *kv;            /* the first part's metadata, in file order */
    uint64_t n_kv;
    gguf_tensor *tensors;   /* all parts' tensors, in file order */
    uint64_t n_tensors;
    gguf_part *parts;
    int n_parts;
    struct gguf_arena *arena;
    void *resident;         /* tensors copied by gguf_load_tensors */
} gguf_file;

/* Opens path (the first part of a split model opens all parts). On error
 * returns NULL and e names the file, the byte offset and what was wrong. */
gguf_file *gguf_open(const char *path, mf_error *e);
/* Parses one in-memory buffer (no split handling); used by the fuzzer. */
gguf_file *gguf_open_buffer(const void *buf, size_t len, const char *name, mf_error *e);
void gguf_close(gguf_file *f);

/* Reads the tensors want() selects into anonymous memory (one buffer,
 * 64-byte aligned) and points their data there; the others' data becomes
 * NULL, and the file mappings are released. After this the file can be
 * truncated or changed without a SIGBUS: only explicit reads see it. */
int gguf_load_tensors(gguf_file *f, bool (*want)(const gguf_tensor *t, void *ctx), void *ctx, mf_error *e);

/* Reads n bytes at byte off of part `part` (pread: safe from several
 * threads, no mapping involved). A short read (the file shrank) or an I/O
 * error is an error naming the file, the byte offset and the cause. */
int gguf_pread(const gguf_file *f, int part, uint64_t off, void *buf, size_t n, mf_error *e);

const gguf_kv *gguf_find(const gguf_file *f, const char *key);
const gguf_tensor *gguf_find_tensor(const gguf_file *f, const char *name);
const char *gguf_vtype_name(gguf_vtype t);

/* Getters. Required ones fail with "<file>: key K: expected T, found U" or
 * "missing". Integer getters accept any integer type whose value fits. */
int gguf_get_u32(const gguf_file *f, const char *key, uint32_t *out, mf_error *e);
int gguf_get_u64(const gguf_file *f, const char *key, uint64_t *out, mf_error *e);
int gguf_get_i32(const gguf_file *f, const char *key, int32_t *out, mf_error *e);
int gguf_get_f32(const gguf_file *f, const char *key, float *out, mf_error *e);
int gguf_get_bool(const gguf_file *f, const char *key, bool *out, mf_error *e);
/* A NUL-terminated copy owned by the file (valid until gguf_close). */
int gguf_get_str(const gguf_file *f, const char *key, const char **out, mf_error *e);
/* An array of etype (GGUF_STRING: items; scalars: raw). */
int gguf_get_arr(const gguf_file *f, const char *key, gguf_vtype etype,
                 const gguf_value **out, mf_error *e);

/* Optional keys: def when absent; an error only when present with a wrong
 * type or an out-of-range value. */
int gguf_opt_u32(const gguf_file *f, const char *key, uint32_t def, uint32_t *out, mf_error *e);
int gguf_opt_f32(const gguf_file *f, const char *key, float def, float *out, mf_error *e);
int gguf_opt_bool(const gguf_file *f, const char *key, bool def, bool *out, mf_error *e);

/* Element i of a scalar array value, converted. */
int64_t gguf_arr_int(const gguf_value *a, uint64_t i);
double gguf_arr_float(const gguf_value *a, uint64_t i);

/* The architecture-prefixed key "<arch>.<suffix>" into buf. */
const char *gguf_arch_key(char *buf, size_t n, const char *arch, const char *suffix);

/* ---- writer (gguf_write.c) ---- */

typedef struct gguf_writer gguf_writer;
gguf_writer *gguf_writer_new(void);
void gguf_writer_free(gguf_writer *w);
void gguf_w_u32(gguf_writer *w, const char *key, uint32_t v);
void gguf_w_i32(gguf_writer *w, const char *key, int32_t v);
void gguf_w_u64(gguf_writer *w, const char *key, uint64_t v);
void gguf_w_f32(gguf_writer *w, const char *key, float v);
void gguf_w_bool(gguf_writer *w, const char *key, bool v);
void gguf_w_str(gguf_writer *w, const char *key, const char *v);
void gguf_w_arr_str(gguf_writer *w, const char *key, const char *const *v, uint64_t n);
void gguf_w_arr_i32(gguf_writer *w, const char *key, const int32_t *v, uint64_t n);
void gguf_w_arr_f32(gguf_writer *w, const char *key, const float *v, uint64_t n);
/* Copies a value (of any type, arrays included) read from another file. */
void gguf_w_value(gguf_writer *w, const char *key, const gguf_value *v);
/* Adds a tensor; data (nbytes as the type and shape give) is copied. */
int gguf_w_tensor(gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
                  const uint64_t *ne, const void *data, mf_error *e);
/* Adds a tensor whose bytes are produced at write time by fill (for models
 * larger than memory): fill writes exactly nbytes into dst. */
typedef int (*gguf_fill_fn)(void *ctx, const char *name, void *dst, uint64_t nbytes, mf_error *e);
int gguf_w_tensor_fill(gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
                       const uint64_t *ne, gguf_fill_fn fill, void *ctx, mf_error *e);
/* Writes one file, or with max_tensors_per_part > 0 a split set named
 * <prefix>-00001-of-0000N.gguf ... (path must then be the prefix). */
int gguf_w_write(gguf_writer *w, const char *path, uint64_t max_tensors_per_part, mf_error *e);

/* Split part naming as llama.cpp does it: "<prefix>-%05d-of-%05d.gguf". */
void gguf_split_path(char *buf, size_t n, const char *prefix, int no, int count);

#endif
