/*
 * greylist.h: what the greylist filter shares with its tests and with
 * moatctl: the records it keeps in the store, their keys, and its pure
 * helpers (sender normalisation, org domains, pool keys).
 *
 * Keys (store.h, one namespace "gl:"):
 *   gl:t:<pool>|<sender>|<rcpt>	the triplet, under the strongest pool key
 *   gl:a:<pool>|<sender>|<rcpt>	the same triplet under a weaker pool key
 *   gl:n:<first>|<sender>|<rcpt>	one per first attempt: what the sweep
 *					counts as never retried
 *   gl:p:<pool>			a pool that passed
 *   gl:c:<remote>|<local>		a known correspondent: local mailed
 *					remote (both normalised)
 *   gl:m:<name>			a host-wide counter (8 bytes, no expiry)
 * A pool key is spf:<org domain>, rdns:<host>, net:<a.b.c.0/24 | v6/64>
 * or ip:<address>. Values but counters are a struct greylist_rec.
 */
#ifndef MOAT_GREYLIST_H
#define MOAT_GREYLIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GREYLIST_TRIPLET	"gl:t:"
#define GREYLIST_ALIAS		"gl:a:"
#define GREYLIST_PASS		"gl:p:"
#define GREYLIST_NEVER		"gl:n:"
#define GREYLIST_CORRESP	"gl:c:"
#define GREYLIST_METRIC		"gl:m:"
#define GREYLIST_M_DEFERRED	"gl:m:deferred"
#define GREYLIST_M_PASSED	"gl:m:passed"
#define GREYLIST_M_NEVER	"gl:m:never_retried"
#define GREYLIST_M_DELAY	"gl:m:delay:"	/* + a bucket's name */
#define GREYLIST_BUCKETS	6
#define GREYLIST_POOLS		4	/* spf, rdns, net, ip */
#define GREYLIST_POOL_MAX	300	/* "rdns:" + a domain name */
#define GREYLIST_ADDR_MAX	330	/* a normalised local@domain */

/* A triplet: first and last attempt, attempts. A pass: first pass, last
 * use, uses. Times in seconds since the epoch (store_now()). */
struct greylist_rec {
	int64_t		first;
	int64_t		last;
	uint32_t	count;
	uint32_t	flags;		/* 0: reserved */
};

struct session;
struct greylist_state;

/* The delay histogram of passed retries: bucket i counts delays below
 * its bound (the last one: the rest). */
static inline const char *
greylist_bucket_name(size_t i)
{
	static const char *const name[GREYLIST_BUCKETS] = { "lt5m",
	    "lt15m", "lt1h", "lt4h", "lt24h", "ge24h" };

	return i < GREYLIST_BUCKETS ? name[i] : "";
}

static inline size_t
greylist_bucket(long long delay)
{
	static const long long below[GREYLIST_BUCKETS - 1] = { 300, 900,
	    3600, 4 * 3600, 86400 };
	size_t i;

	for (i = 0; i < GREYLIST_BUCKETS - 1; i++)
		if (delay < below[i])
			return i;
	return GREYLIST_BUCKETS - 1;
}

/* Normalises an envelope sender for the triplet (the proposal's G4):
 * lowercased; BATV (prvs=TAG=user, btv1==TAG==user) unwrapped; SRS0/SRS1
 * reduced to "srs@<forwarder>"; +ext cut; digit runs, and hex runs of 8
 * or more with a digit, become '#'; the null sender is "<>". The length
 * written, cut at n - 1. */
size_t	greylist_norm_sender(const char *local, const char *domain,
	    bool null, char *out, size_t n);
/* The registrable (org) domain of name by the public suffix list loaded
 * in st (the last two labels when none was loaded); 0, or -1 when name
 * is a public suffix itself or not a name. */
int	greylist_org_domain(const struct greylist_state *, const char *name,
	    char *out, size_t n);
/* The pool keys of the session's client, strongest first; how many. */
size_t	greylist_pool_keys(const struct greylist_state *, struct session *,
	    char keys[][GREYLIST_POOL_MAX], size_t max);
/* True when selective mode greylists the client: some suspicion holds
 * (its name, for the log, in *why). KARMA_GOOD evidence on the session
 * (the karma filter, at connect) clears every suspicion; KARMA_BAD is
 * one. */
bool	greylist_suspect(struct session *, bool no_history, const char **why);
/* True when the session holds evidence of that name (any filter's). */
bool	greylist_has_evidence(const struct session *, const char *name);
/* gl:c:<remote>|<local> for a remote address (normalised as a sender)
 * and a local one (lowercased); -1 when it does not fit a store key. */
int	greylist_corresp_key(const char *rlocal, const char *rdomain,
	    const char *local_addr, char *out, size_t n);

#endif
