/* cmd_inspect.c — `moeflash inspect MODEL`. */
#include "cli/cli.h"
#include "moeflash.h"

#include <stdio.h>
#include <string.h>

int cmd_inspect(int argc, char **argv)
{
    if (argc != 2 || argv[1][0] == '-') {
        fprintf(stderr, "usage: moeflash inspect MODEL.gguf\n");
        return argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) ? 0 : 2;
    }
    mf_error e;
    if (mf_inspect(argv[1], stdout, &e)) {
        fprintf(stderr, "moeflash: %s\n", e.msg);
        return 1;
    }
    return 0;
}
