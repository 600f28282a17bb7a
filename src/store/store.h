/*
 * store.h: moat's state (ARCHITECTURE §3): keys with values and an expiry,
 * counters, and the classifier's token table.
 *
 * Every call runs inside a transaction (store_begin .. store_commit or
 * store_abort): a reader sees one consistent snapshot, a writer's changes
 * land all at once or not at all. The calls take arrays so that a backend
 * on the network (Redis) can serve one call with one round trip; the LMDB
 * backend (lmdb.c) is embedded and shared by every process on the host:
 * moatd's workers read while moatctl writes.
 *
 * A store handle belongs to one process: open it after fork().
 */
#ifndef MOAT_STORE_H
#define MOAT_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct store;
struct store_txn;

/* One classifier feature: a 64-bit hash and what was learnt of it. */
struct store_token {
	uint64_t	hash;
	uint32_t	spam;	/* spam messages that had it */
	uint32_t	ham;	/* ham messages that had it */
	uint32_t	day;	/* day (since the epoch) it was last learnt */
	float		weight;	/* the perceptron's weight (classifier.h) */
};

/* Opens (creating) the store in dir; map_size bounds its size on disk.
 * NULL with err set. */
struct store	*store_open(const char *dir, size_t map_size, char *err,
		    size_t errlen);
void		 store_close(struct store *);
/* The last error's text. */
const char	*store_error(const struct store *);

/* Starts a transaction; NULL with store_error() set. Only one write
 * transaction runs at a time host-wide; others wait. */
struct store_txn *store_begin(struct store *, bool write);
int		 store_commit(struct store_txn *);
void		 store_abort(struct store_txn *);

/* Reads a value: its length, or -1 when absent or expired (a longer
 * value is cut to cap). */
long		 store_get(struct store_txn *, const char *key, void *val,
		    size_t cap);
/* Writes a value that expires at `expires` (0: never). */
int		 store_put(struct store_txn *, const char *key,
		    const void *val, size_t len, time_t expires);
/* Deletes a key; 0 whether or not it was there. */
int		 store_del(struct store_txn *, const char *key);
/* Adds delta to a counter (absent or expired counts as 0); the new value
 * in *out when out is not NULL. */
int		 store_incr(struct store_txn *, const char *key, long long delta,
		    time_t expires, long long *out);

/* Calls fn with every live key starting with prefix and its value, in
 * key order; fn returns false to stop. */
int		 store_scan(struct store_txn *, const char *prefix,
		    bool (*fn)(void *, const char *key, const void *val,
		    size_t len), void *arg);

/* Fills spam/ham/day/weight of each token by hash (0 for unknown ones). */
int		 store_tokens_get(struct store_txn *, struct store_token *,
		    size_t n);
/* Adds dspam/dham (which may be negative; counts stop at 0) to each hash,
 * stamping `day` and keeping its weight; a token whose counts reach 0 is
 * removed. */
int		 store_tokens_add(struct store_txn *, const uint64_t *hashes,
		    size_t n, int dspam, int dham, uint32_t day);
/* Number of tokens in the table. */
long long	 store_tokens_count(struct store_txn *);
/* Calls fn for every token, in hash order; fn returns false to stop. */
int		 store_tokens_each(struct store_txn *,
		    bool (*fn)(void *, const struct store_token *), void *arg);
/* Sets every token's weight to fn(arg, hash), writing only those that
 * change; how many changed, -1 on error. */
long long	 store_tokens_reweigh(struct store_txn *,
		    float (*fn)(void *, uint64_t hash), void *arg);
/* Removes the given hashes outright. */
int		 store_tokens_del(struct store_txn *, const uint64_t *hashes,
		    size_t n);
/*
 * The process's own store. The configuration names it once
 * (store_configure: LMDB directory, map size); the first store_shared()
 * in each process opens it (after fork, as LMDB asks). NULL with err set
 * when it cannot be opened; the next call tries again.
 */
void		 store_configure(const char *dir, size_t map_size);
struct store	*store_shared(char *err, size_t errlen);

/* Bytes the store occupies on disk. */
long long	 store_disk_size(struct store *);

#endif
