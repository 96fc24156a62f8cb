/* fuzz_gguf.c — libFuzzer target for the GGUF parser (`make fuzz`). Every
 * input must give a valid parse or an error with a message; never a crash,
 * an overread (ASan) or undefined behaviour (UBSan). */
#include "gguf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mf_error e;
    e.msg[0] = 0;
    gguf_file *f = gguf_open_buffer(data, size, "fuzz", &e);
    if (!f) {
        if (!e.msg[0]) abort();
        return 0;
    }
    volatile uint8_t sink = 0;
    for (uint64_t i = 0; i < f->n_tensors; i++)
        if (f->tensors[i].nbytes) sink ^= ((const uint8_t *)f->tensors[i].data)[f->tensors[i].nbytes - 1];
    (void)sink;
    gguf_close(f);
    return 0;
}
