/* cmd_tokenize.c — placeholder until the tokenizer lands (issue 6). */
#include "cli/cli.h"
#include <stdio.h>
int cmd_tokenize(int argc, char **argv) { (void)argc; (void)argv; fprintf(stderr, "moeflash: tokenize is not built yet\n"); return 1; }
int cmd_detokenize(int argc, char **argv) { (void)argc; (void)argv; fprintf(stderr, "moeflash: detokenize is not built yet\n"); return 1; }
