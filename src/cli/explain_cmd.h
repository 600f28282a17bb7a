/*
 * explain_cmd.h: `moatctl explain` (explain_cmd.c).
 */
#ifndef MOAT_EXPLAIN_CMD_H
#define MOAT_EXPLAIN_CMD_H

/* The configuration moatctl reads without -c. */
#define MOATCTL_CONF	"/etc/moat/moat.conf"

/* Runs `explain [--log FILE] SESSION_ID` (argv after "explain"), the
 * log found from conf's [server] json_log; the exit status. */
int	cmd_explain(const char *conf, int argc, char **argv);

#endif
