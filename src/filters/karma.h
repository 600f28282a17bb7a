/*
 * karma.h: the adaptive blacklist and greytraps (docs/FILTERS.md,
 * "karma"): what the filter, moatctl block and the tests share.
 *
 * Hot counts live in a core/window table shared by the workers; only
 * blocks are persisted, as store keys "block:IP" whose value is
 * "UNTIL REASON" (UNTIL: the epoch second the block ends, which is also
 * the key's expiry) so the time left can be told to the client.
 */
#ifndef MOAT_KARMA_H
#define MOAT_KARMA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "../core/window.h"

#define KARMA_BLOCK	"block:"
#define KARMA_REASON_MAX 48	/* fits STORE_VAL_MAX with UNTIL */

/* The seeds' rule: more than attempts in window, more than ratio bad. */
struct karma_rule {
	uint64_t	attempts;
	uint64_t	window_ms;
	double		ratio;
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
/* True when the tally breaks the rule. */
bool	karma_decide(const struct karma_rule *, struct karma_tally);
/* "block:IP" into out; -1 when it does not fit. */
int	karma_block_key(char *out, size_t n, const char *ip);
/* The block value "UNTIL REASON" (reason cut, CR/LF dropped); its
 * length. */
size_t	karma_block_fmt(char *out, size_t n, time_t until,
	    const char *reason);
/* Parses a block value; -1 when it is not one. */
int	karma_block_parse(const void *val, size_t len, time_t *until,
	    char *reason, size_t n);
/* "45s", "12m", "3h05m": a duration for a reply. */
void	karma_fmt_left(char *out, size_t n, long long secs);

#endif
