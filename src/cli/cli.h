/* cli.h — the commands, one file each. */
#ifndef MF_CLI_H
#define MF_CLI_H

int cmd_inspect(int argc, char **argv);

#endif
