/*
 * greylist_cmd.h: `moatctl greylist ...` (docs/GREYLIST.md).
 */
#ifndef MOAT_GREYLIST_CMD_H
#define MOAT_GREYLIST_CMD_H

struct store;

/* Runs one greylist subcommand (argv[0] is its name) on st: list, pass
 * KEY, remove KEY. The exit status (1: nothing to remove, 2: usage). */
int	greylist_cmd(struct store *st, int argc, char **argv);
/* The subcommands' synopsis, for moatctl's usage. */
extern const char greylist_cmd_usage[];

#endif
