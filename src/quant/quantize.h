/* quantize.h — float rows to the block formats, for the project's own GGUF
 * writer (and for tests that need quantized data).
 *
 * These are reference-quality, deterministic round-to-nearest quantizers
 * that follow ggml's quantize_row_*_ref algorithms operation for operation
 * (no importance matrix), so a row quantized here is normally byte-identical
 * to what llama-quantize writes for the same float row. They are not fast
 * and do not need to be: they run once per tensor at conversion time.
 *
 * Inputs must be finite (a NaN or Inf weight has no meaningful encoding).
 */
#ifndef MF_QUANT_QUANTIZE_H
#define MF_QUANT_QUANTIZE_H

#include <stddef.h>
#include <stdint.h>

/* Quantize n floats from src into dst as type (an mf_type id). n must be a
 * multiple of the type's block size and dst must hold quant_row_bytes(type,
 * n) bytes, aligned as the block struct. Returns the bytes written, or 0 if
 * the type has no quantizer or n is not a multiple of its block size.
 * Supported: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K,
 * Q4_K, Q5_K, Q6_K, Q8_K. */
size_t quant_quantize_row(uint32_t type, const float *src, void *dst, size_t n);

/* The per-type quantizers behind it (same contract, no checks). */
#define QUANT_QUANTIZE_DECL(t) void quant_quantize_##t(const float *src, void *dst, size_t n);
QUANT_QUANTIZE_DECL(q4_0)
QUANT_QUANTIZE_DECL(q4_1)
QUANT_QUANTIZE_DECL(q5_0)
QUANT_QUANTIZE_DECL(q5_1)
QUANT_QUANTIZE_DECL(q8_0)
QUANT_QUANTIZE_DECL(q2_K)
QUANT_QUANTIZE_DECL(q3_K)
QUANT_QUANTIZE_DECL(q4_K)
QUANT_QUANTIZE_DECL(q5_K)
QUANT_QUANTIZE_DECL(q6_K)
QUANT_QUANTIZE_DECL(q8_K)

#endif
