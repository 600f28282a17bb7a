/*
 * quarantine_cmd.h: `moatctl quarantine ...` (docs/QUARANTINE.md).
 */
#ifndef MOAT_QUARANTINE_CMD_H
#define MOAT_QUARANTINE_CMD_H

struct moat_config;
struct store;
struct bayes_conf;

/* Runs one quarantine subcommand (argv[0] is its name); the exit status.
 * cf is the loaded configuration (its [quarantine], policies and
 * delivery), st the process's store, bayes the [bayes] settings for
 * learn. */
int	quarantine_cmd(struct moat_config *cf, struct store *st,
	    const struct bayes_conf *bayes, int argc, char **argv);
/* The subcommands' synopsis, for moatctl's help and usage. */
extern const char quarantine_cmd_usage[];

#endif
