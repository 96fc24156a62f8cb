/* cli.h — the commands, one file each. */
#ifndef MF_CLI_H
#define MF_CLI_H

int cmd_inspect(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_chat(int argc, char **argv);        /* cmd_chat.c */
int cmd_bench(int argc, char **argv);
int cmd_demo(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);    /* cmd_tokenize.c */
int cmd_detokenize(int argc, char **argv);  /* cmd_tokenize.c */
int cmd_render(int argc, char **argv);      /* cmd_render.c */
int cmd_replay(int argc, char **argv);      /* cmd_replay.c */
int cmd_serve(int argc, char **argv);       /* cmd_serve.c */

#endif
