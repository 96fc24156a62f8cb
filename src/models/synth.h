/* synth.h — synthetic random-weight qwen3moe models (declared in the
 * public header: the demo and the benchmarks use them). */
#ifndef MF_SYNTH_H
#define MF_SYNTH_H

#include "moeflash.h"

#endif
