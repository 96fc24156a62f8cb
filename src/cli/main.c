/* main.c — the moeflash command dispatcher. Each command lives in its own
 * file (cmd_*.c) and uses only the public API and the small helpers in
 * cli.h; exit status 0 ok, 1 runtime error, 2 bad usage. */
#include "cli/cli.h"

#include <stdio.h>
#include <string.h>

static const struct { const char *name; int (*fn)(int, char **); const char *help; } commands[] = {
    { "inspect", cmd_inspect, "inspect MODEL                 architecture, hyperparameters, tensors, memory plan" },
    { "eval", cmd_eval, "eval MODEL --tokens \"ids\" --logits-out FILE   float32 logits of every position" },
    { "run", cmd_run, "run MODEL -p TEXT [-n N] [--chat] | --tokens \"ids\" --print-ids   generate" },
    { "chat", cmd_chat, "chat MODEL [--system TEXT]    interactive multi-turn chat" },
    { "demo", cmd_demo, "demo [--model PATH]           self-contained streaming demonstration" },
    { "bench", cmd_bench, "bench MODEL | --synthetic SHAPE   decode speed against disk and memory rooflines" },
    { "tokenize", cmd_tokenize, "tokenize MODEL -p TEXT | -f FILE [--json]   token ids of a text" },
    { "detokenize", cmd_detokenize, "detokenize MODEL --ids \"...\"   text of token ids" },
    { "render", cmd_render, "render MODEL --chat FILE      the chat prompt the model's template renders" },
    { "replay", cmd_replay, "replay TRACE --expert-bytes N [--cache SIZE] [--policy P] [--sim]   cache-policy replay" },
    { "serve", cmd_serve, "serve MODEL [--host H] [--port P] [--api-key KEY]   OpenAI-compatible HTTP server" },
};

static void usage(FILE *out)
{
    fprintf(out, "usage: moeflash COMMAND [ARGS]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) fprintf(out, "  %s\n", commands[i].help);
    fprintf(out, "\n'moeflash COMMAND --help' for a command's options.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) { usage(stderr); return 2; }
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) { usage(stdout); return 0; }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "moeflash: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
