/*
 * scanproto.h: the wire formats of the content scanners, as pure
 * functions (bytes in, result out): clamd's replies (clamd(8): INSTREAM)
 * and spamd's requests and replies (SpamAssassin spamd/PROTOCOL,
 * SPAMC/1.5). Replies are outside input: every length is capped before
 * anything is copied, and what is kept is printable ASCII.
 */
#ifndef MOAT_SCANPROTO_H
#define MOAT_SCANPROTO_H

#include <stdbool.h>
#include <stddef.h>

/* clamd: a reply line is short; a longer one is garbage. */
#define CLAMD_REPLY_MAX		1024
/* A virus name as kept (and quoted in a reply line); longer ones are cut. */
#define CLAMD_NAME_MAX		96
/* The command that starts a stream (NUL-terminated command form). */
#define CLAMD_INSTREAM		"zINSTREAM"

enum clamd_result {
	CLAMD_CLEAN,	/* stream: OK */
	CLAMD_FOUND,	/* stream: NAME FOUND */
	CLAMD_SIZE,	/* INSTREAM size limit exceeded. ERROR */
	CLAMD_ERROR,	/* ... ERROR */
	CLAMD_BAD,	/* anything else */
};

struct clamd_reply {
	enum clamd_result	 result;
	char			 name[CLAMD_NAME_MAX + 1]; /* FOUND, ERROR */
};

/* Reads one clamd reply (without its NUL); an optional "N: " session
 * prefix is skipped. Returns the result (also in out->result). */
enum clamd_result scanproto_clamd(const char *, size_t, struct clamd_reply *);

/* spamd: the reply's header section, one header line, and what of the
 * rule names is kept (comma-joined; more are counted only). */
#define SPAMD_HEAD_MAX		4096
#define SPAMD_LINE_MAX		1000
#define SPAMD_RULE_MAX		64	/* one rule name */
#define SPAMD_RULES_MAX		1024	/* the joined names */
/* A User: value: a local part or domain name, printable, no spaces. */
#define SPAMD_USER_MAX		256

struct spamd_reply {
	int		 code;		/* sysexits, 0: EX_OK */
	bool		 spam;
	double		 score, threshold;
	size_t		 nrules, dropped;
	char		 rules[SPAMD_RULES_MAX + 1];
};

/*
 * Reads a spamd reply to SYMBOLS or REPORT (report: the body is a report
 * whose table lists " pts RULE description"). 0 with out filled (a code
 * other than 0 is spamd's error: no score), -1 when it is not a reply.
 */
int	scanproto_spamd(const char *, size_t, bool report,
	    struct spamd_reply *);
/* Writes the request head: "CMD SPAMC/1.5", Content-length, User (when
 * user is not NULL or empty), blank line. Length, or -1 when it does not
 * fit or user is not a plain name. */
int	scanproto_spamd_head(char *out, size_t n, bool report, size_t len,
	    const char *user);

#endif
