/*
 * karma.h: the adaptive blacklist and greytraps (docs/FILTERS.md,
 * "karma"): what the filter, moatctl block and the tests share.
 *
 * Hot counts live in a core/window table shared by the workers (and
 * published as var_dir/run/karma.win for moatctl); only decisions are
 * persisted: store keys "block:CLIENT" whose value is "UNTIL #N REASON"
 * (UNTIL: the epoch second the block ends, which is also the key's
 * expiry, so the time left can be told; N: the client's offence count)
 * and "offence:CLIENT", value "N TTL" (the count and the last block's
 * length), kept for offence_memory. CLIENT is karma_client()'s name: an
 * IPv4 address, or an IPv6 client's /64 ("2001:db8:1:2::/64"); the
 * window key is the same name, so moatd and moatctl agree on it.
 */
#ifndef MOAT_KARMA_H
#define MOAT_KARMA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "../core/window.h"

#define KARMA_BLOCK	"block:"
#define KARMA_OFFENCE	"offence:"
#define KARMA_REASON_MAX 44	/* fits STORE_VAL_MAX with UNTIL #N */
#define KARMA_CLIENT_MAX 48	/* "xxxx:xxxx:xxxx:xxxx::/64" and NUL */

/*
 * The rule: more than attempts (connections) in window, and the share of
 * bad ones judged by the lower bound of its Wilson score interval at z
 * (z 0: the plain share) more than ratio.
 */
struct karma_rule {
	uint64_t	attempts;
	uint64_t	window_ms;
	double		ratio;
	double		z;
};

/* Attempts and bad ones in the sliding window (estimates). */
struct karma_tally {
	double	total;
	double	bad;
};

/*
 * Counts good and bad outcomes of key at now_ms and returns the window's
 * tally: the current fixed bucket (window_ms long) plus the previous one
 * weighted by how much of it the sliding window still covers.
 */
struct karma_tally karma_count(struct window_table *,
	    const struct karma_rule *, const void *key, size_t keylen,
	    unsigned good, unsigned bad, uint64_t now_ms);
/* The lower bound of the Wilson score interval of bad/total at z. */
double	karma_wilson_lower(double bad, double total, double z);
/* True when the tally breaks the rule. */
bool	karma_decide(const struct karma_rule *, struct karma_tally);
/* The client's name for keys: an IPv4 address (also an IPv4-mapped
 * IPv6 one) as is, an IPv6 address as its /64; -1 when ip is neither. */
int	karma_client(const char *ip, char *out, size_t n);
/* "block:CLIENT" into out; -1 when it does not fit. */
int	karma_block_key(char *out, size_t n, const char *client);
/* "offence:CLIENT" into out; -1 when it does not fit. */
int	karma_offence_key(char *out, size_t n, const char *client);
/* The block value "UNTIL #N REASON" (reason cut, CR/LF dropped; N
 * left out when 0); its length. */
size_t	karma_block_fmt(char *out, size_t n, time_t until,
	    unsigned offences, const char *reason);
/* Parses a block value ("UNTIL REASON" too: offences 0); -1 when it is
 * not one. offences may be NULL. */
int	karma_block_parse(const void *val, size_t len, time_t *until,
	    unsigned *offences, char *reason, size_t n);
/* The offence value "N TTL" and its parser (-1: not one). */
size_t	karma_offence_fmt(char *out, size_t n, unsigned offences,
	    long long ttl);
int	karma_offence_parse(const void *val, size_t len, unsigned *offences,
	    long long *ttl);
/* The next block's length: base the first time, else twice the last
 * one (at least base), never over max unless base is. */
long long karma_next_ttl(long long base, long long max, unsigned offences,
	    long long last);
/* The rule of a [karma] settings struct (moatctl client). */
void	karma_rule_of(const void *conf, struct karma_rule *);
/* "45s", "12m", "3h05m": a duration for a reply. */
void	karma_fmt_left(char *out, size_t n, long long secs);

#endif
