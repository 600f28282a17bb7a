/*
 * ratelimit_cmd.h: `moatctl suspend ...`, `moatctl top-senders` and
 * `moatctl rate`: the ratelimit filter's suspensions, outbound volume
 * and counters (docs/FILTERS.md, "ratelimit").
 */
#ifndef MOAT_RATELIMIT_CMD_H
#define MOAT_RATELIMIT_CMD_H

struct store;
struct moat_config;

/* suspend list | add SUBJECT [REASON...] | lift SUBJECT, [--json]
 * anywhere; argv[0] is the subcommand. The exit status (1: nothing to
 * lift or a store error, 2: usage). */
int	suspend_cmd(struct store *st, int argc, char **argv);
/* top-senders [--hours N] [--json] (argv past the command's name). */
int	top_senders_cmd(struct store *st, int argc, char **argv);
/* rate SUBJECT [--json] (argv past the command's name): needs moatd's
 * published table under cf's var_dir. */
int	rate_cmd(const struct moat_config *cf, int argc, char **argv);
/* Synopses, for moatctl's usage. */
extern const char suspend_cmd_usage[];
extern const char top_senders_cmd_usage[];
extern const char rate_cmd_usage[];

#endif
