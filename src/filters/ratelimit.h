/*
 * ratelimit.h: what the ratelimit filter (docs/FILTERS.md, "ratelimit")
 * shares with moatctl rate, suspend and top-senders.
 *
 * Invariants: a window cell is found by hashing the limit with the key
 * bytes, so moatctl can peek at a counter only with exactly the bytes
 * the filter took it with: both build them with ratelimit_key(), never
 * by hand. Suspensions are store keys "suspend:SUBJECT" (SUBJECT: the
 * authenticated user, or a relay client's address as moatd prints it)
 * whose value is "SINCE REASON" and which never expire; the outbound
 * volume is counted in store counters "out:YYYYMMDDHH:m:SUBJECT"
 * (messages) and "out:YYYYMMDDHH:r:SUBJECT" (recipients), one pair per
 * UTC hour, expiring after the retention.
 */
#ifndef MOAT_RATELIMIT_H
#define MOAT_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "../core/window.h"

/* The limits (one option each), then the bounce hold's cell. */
enum rl_kind {
	RL_IN_CONN,	/* connections per client IP (/64) */
	RL_IN_MSG,	/* MAILs per client IP */
	RL_IN_RCPT,	/* RCPTs per client IP */
	RL_IN_NET,	/* MAILs per client /24 (IPv6: /48) */
	RL_IN_SENDER,	/* MAILs per envelope sender address */
	RL_IN_DOMAIN,	/* MAILs per envelope sender domain */
	RL_IN_TO,	/* RCPTs per recipient address */
	RL_BOUNCE,	/* null-sender RCPTs per recipient address */
	RL_OUT_MSG,	/* MAILs per user or relay client */
	RL_OUT_RCPT,	/* RCPTs per user or relay client */
	RL_KINDS,
	RL_HOLD = RL_KINDS	/* a recipient's bounce hold (1/bounce_hold) */
};

#define RL_KEY_MAX	400	/* window key bytes: kind, tag, subject */
#define RL_SUBJECT_MAX	320	/* an address, a user, an IP */
#define RL_SUSPEND	"suspend:"
#define RL_TOP		"out:"
#define RL_REASON_MAX	40	/* fits STORE_VAL_MAX with SINCE */

/* The option name of a kind ("in_recipients"); "bounce_hold" for
 * RL_HOLD. */
const char	*ratelimit_name(enum rl_kind);
/* What a kind counts by: 'i' a client IP, 'n' its network, 'a' an
 * address, 'd' a domain, 'o' an outbound user or relay client. */
char		 ratelimit_by(enum rl_kind);
/*
 * The window key of subject under kind k into out (cap bytes): the
 * kind, then for IP kinds the address's bytes (IPv4, or an IPv6 /64;
 * RL_IN_NET: /24, IPv6 /48; a v4-mapped IPv6 address counts as IPv4),
 * for address and domain kinds the text lowercased, for outbound kinds
 * 'u' and the user when user is true, else 'r' and the relay client's
 * address bytes. Its length; 0 when subject is not of that kind (not
 * an IP address, empty, longer than RL_SUBJECT_MAX).
 */
size_t		 ratelimit_key(unsigned char *out, size_t cap, enum rl_kind k,
		    const char *subject, bool user);
/* The parsed limits of one policy's filter state: RL_KINDS of them and
 * the hold (count 1, period bounce_hold); NULL for a NULL state. */
const struct window_limit *ratelimit_limits(const void *state);

/* "suspend:SUBJECT" into out; -1 when it does not fit. */
int		 ratelimit_suspend_key(char *out, size_t n,
		    const char *subject);
/* The value "SINCE REASON" (reason cut to RL_REASON_MAX, CR/LF
 * dropped); its length. */
size_t		 ratelimit_suspend_fmt(char *out, size_t n, time_t since,
		    const char *reason);
/* Parses a suspension's value; -1 when it is not one. */
int		 ratelimit_suspend_parse(const void *val, size_t len,
		    time_t *since, char *reason, size_t n);
/* "out:YYYYMMDDHH:" for the UTC hour of t into out; -1 when it does not
 * fit. A counter's key is that, 'm' or 'r', ':' and the subject. */
int		 ratelimit_top_prefix(char *out, size_t n, time_t t);

#endif
