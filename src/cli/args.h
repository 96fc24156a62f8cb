/* args.h — the common flags of the commands (DESIGN.md's contract) and
 * small parsing helpers. Parsing only: no logic a test would want. */
#ifndef MF_CLI_ARGS_H
#define MF_CLI_ARGS_H

#include "moeflash.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct cli_common {
    mf_model_params model;
    mf_sampler_params sampler;
    uint32_t n_ctx;
    const char *io;
    int io_threads;
    int batch;
    bool no_prefetch;
    bool stats;
    const char *stats_json;
} cli_common;

void cli_common_default(cli_common *c);
/* Consumes argv[*i] (and its value) if it is a common flag: 1 consumed,
 * 0 not a common flag, -1 bad value (message printed). */
int cli_common_flag(cli_common *c, int argc, char **argv, int *i);
/* "512M", "8G", "1024" (bytes), "auto" (0). -1 on a bad size. */
int cli_parse_size(const char *s, uint64_t *out);
/* "1 2 3" or "1,2,3" -> ids (malloc'd). -1 on a bad list. */
int cli_parse_ids(const char *s, int32_t **ids, size_t *n);
void cli_print_stats(const mf_model *m, const cli_common *c);
/* buf = the cache directory ($MF_CACHE_DIR, $XDG_CACHE_HOME/moeflash,
 * ~/.cache/moeflash or /tmp/moeflash-cache), created, joined with name. */
int cli_cache_path(char *buf, size_t n, const char *name);
/* Makes sure the synthetic model `preset` exists in the cache directory
 * (writing it, with progress on stderr, if not); its path into buf. */
int cli_synthetic_model(char *buf, size_t n, const char *preset);
/* The same for mf_synth_write_arch's presets; n_layer > 0 overrides the
 * layer count (and names the file after it). */
int cli_synthetic_arch_model(char *buf, size_t n, const char *preset, int n_layer);

#endif
