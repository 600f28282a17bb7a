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

/*
 * Expiry. Every expiry is compared with store_now(): time(NULL), or the
 * clock a test sets with store_set_clock() (NULL: back to time()).
 */
time_t		 store_now(void);
void		 store_set_clock(time_t (*fn)(void));

/* Compare-and-set: writes val only when the key's live value is exactly
 * expect (elen bytes), or when expect is NULL and the key is absent or
 * expired. 1 written, 0 not (the value differed), -1 on error. Inside a
 * write transaction this is atomic against every other process. */
int		 store_cas(struct store_txn *, const char *key,
		    const void *expect, size_t elen, const void *val,
		    size_t len, time_t expires);
/* store_cas with expect NULL: 1 created, 0 already there. */
int		 store_put_new(struct store_txn *, const char *key,
		    const void *val, size_t len, time_t expires);

/* What one sweep step did. */
struct store_sweep {
	size_t	scanned;	/* keys looked at */
	size_t	removed;	/* expired keys deleted */
	size_t	counted;	/* of those, keys under count_prefix */
	bool	wrapped;	/* the walk reached the end of the table */
};
/*
 * One bounded step of the expiry sweep (needs a write transaction):
 * looks at no more than max keys from *cursor (a key, "" for the first)
 * and deletes the expired ones; cursor (cap bytes) becomes the key the
 * next step starts at, "" after the end. Never a whole-table scan:
 * callers bound the work of a step and spread steps over time.
 */
int		 store_sweep(struct store_txn *, char *cursor, size_t cap,
		    size_t max, const char *count_prefix,
		    struct store_sweep *out);

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

/*
 * Asynchronous calls (async.c), the form filters use: a batch of up to
 * STORE_BATCH_MAX operations run in one transaction, its results read in
 * done(), which runs on the loop that submitted it and carries whatever
 * the caller put in arg (a filter's job with the session's step token).
 * A Redis backend serves the same batch with one pipelined round trip
 * (MULTI/EXEC; CAS as a WATCH or a script). With LMDB:
 *  - a batch of reads may run directly on the loop (store_batch_run): an
 *    LMDB read is a memory-mapped B-tree walk with no lock;
 *  - a batch that writes is queued (store_batch_submit) for the host's
 *    LMDB writer thread (the TPOOL_STORE pool: LMDB has one writer at a
 *    time anyway), which runs every batch queued meanwhile in one write
 *    transaction: one commit (one fsync) for many batches.
 * The caller owns the batch; after submitting it must keep it until
 * done() runs (done may free it). A caller that goes away meanwhile
 * (its session ended) sets its own "gone" mark for done to see.
 */
#define STORE_KEY_MAX	511
#define STORE_VAL_MAX	64
#define STORE_BATCH_MAX	16

enum store_op_kind {
	STORE_GET,	/* val/len out; result: length or -1 (absent) */
	STORE_PUT,	/* val/len/expires in */
	STORE_PUT_NEW,	/* result 1 created, 0 was there */
	STORE_CAS,	/* expect/elen (expect_absent); result 1 or 0 */
	STORE_DEL,
	STORE_INCR,	/* num: delta in, new value out */
	STORE_SWEEP,	/* key: cursor in and out; num: max keys */
};

struct store_op {
	enum store_op_kind	 kind;
	char			 key[STORE_KEY_MAX + 1];
	unsigned char		 val[STORE_VAL_MAX];
	size_t			 len;
	unsigned char		 expect[STORE_VAL_MAX];
	size_t			 elen;
	bool			 expect_absent;
	time_t			 expires;
	long long		 num;
	long			 result;
};

struct event_base;

struct store_batch {
	struct store_op		 op[STORE_BATCH_MAX];
	size_t			 n;
	const char		*count_prefix;	/* STORE_SWEEP: counted */
	struct store_sweep	 sweep;		/* STORE_SWEEP's outcome */
	int			 rc;		/* 0, -1: none applied */
	char			 err[160];
	void			(*done)(struct store_batch *);
	void			*arg;
	struct store_batch	*next;		/* the writer's queue */
};

/* Adds an operation to b; NULL when b is full or the key too long. */
struct store_op	*store_batch_add(struct store_batch *, enum store_op_kind,
		    const char *key);
/* Runs b at once on this thread (a write transaction when an op writes);
 * sets each op's result and b->rc. */
int		 store_batch_run(struct store *, struct store_batch *);
/* Queues b for the writer thread, whose completions run on base; b->done
 * follows, always (with b->rc -1 when it could not run). -1 only when
 * it could not be queued (done then does not run). */
int		 store_batch_submit(struct store *, struct event_base *,
		    struct store_batch *);
/* Batches queued or running. */
size_t		 store_batch_pending(void);

/*
 * The incremental expiry sweep of this process: every interval_ms a
 * timer on base queues one STORE_SWEEP of at most max keys for the
 * writer thread, continuing from where the last one stopped; notify (if
 * any) gets each step's outcome on the loop. Started once per process;
 * later calls change nothing. store_sweep_stop() before base is freed.
 */
int		 store_sweep_start(struct store *, struct event_base *,
		    long long interval_ms, size_t max,
		    const char *count_prefix,
		    void (*notify)(const struct store_sweep *));
void		 store_sweep_stop(void);

#endif
