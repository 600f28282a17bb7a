/*
 * karma_cmd.h: `moatctl block ...`, the adaptive blacklist's blocks
 * (docs/FILTERS.md, "karma").
 */
#ifndef MOAT_KARMA_CMD_H
#define MOAT_KARMA_CMD_H

struct store;

/* Runs one block subcommand (argv[0] is its name) on st: list, add IP
 * [--reason R] [--ttl S], remove IP. The exit status (1: nothing to
 * remove or a store error, 2: usage). */
int	block_cmd(struct store *st, int argc, char **argv);
/* The subcommands' synopsis, for moatctl's usage. */
extern const char block_cmd_usage[];

#endif
