/*
 * karma_cmd.h: `moatctl block ...` and `moatctl client IP`, the adaptive
 * blacklist's blocks and a client's history (docs/FILTERS.md, "karma").
 */
#ifndef MOAT_KARMA_CMD_H
#define MOAT_KARMA_CMD_H

struct moat_config;
struct store;

/* Runs one block subcommand (argv[0] is its name) on st: list, add IP
 * [--reason R] [--for DURATION] [REASON], remove IP. The exit status
 * (1: nothing to remove or a store error, 2: usage). */
int	block_cmd(struct store *st, int argc, char **argv);
/* `client IP [--json]` (argv[0] the IP): the client's block, offences
 * and karma window counts (these need cf, which may be NULL). */
int	karma_client_cmd(const struct moat_config *cf, struct store *st, int argc,
	    char **argv);
/* The subcommands' synopsis, for moatctl's usage. */
extern const char block_cmd_usage[];

#endif
