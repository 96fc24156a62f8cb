/* cmd_render.c — placeholder until the chat templates land (issue 6). */
#include "cli/cli.h"
#include <stdio.h>
int cmd_render(int argc, char **argv) { (void)argc; (void)argv; fprintf(stderr, "moeflash: render is not built yet\n"); return 1; }
