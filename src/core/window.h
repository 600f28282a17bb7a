/*
 * window.h: rate windows (N events per period) kept as GCRA cells in a
 * fixed table of memory that every worker of a generation shares.
 *
 * Why GCRA (the generic cell rate algorithm) and not fixed buckets: one
 * 64-bit word per key (the theoretical arrival time, TAT) gives a window
 * that slides continuously, with no burst of 2N at a bucket edge, and it
 * is updated by one compare-and-swap: no lock a dying worker could leave
 * held (POLICY-RESEARCH §4).
 *
 * Where the table lives: window_table_shared() maps it MAP_SHARED and
 * anonymous. Filters create theirs in init(), which runs in the master
 * when the configuration is loaded, before the workers are forked: every
 * worker then counts in the same table, so a client that the kernel
 * spreads over the workers meets one limit, not one per worker. The
 * daemon's master then publishes the named tables (window_publish):
 * their cells move into files var_dir/run/NAME.win, still shared, so
 * that moatctl can read the counters (window_table_open) without asking
 * the daemon. The files are made anew at every start: the table is not
 * persisted (hot counters: a restart forgets them; blocks that must
 * survive belong in the store), and a TAT is on a clock that restarts
 * with the machine.
 *
 * Keys are hashed with a random seed per table (kept in cell 0, the
 * header, which window_table_open reads): a client choosing its sender
 * or recipient cannot aim keys at another key's cells to take them all.
 *
 * A table set to evict (window_table_evict: memories, such as AUTH
 * failures and pre-greeting passes, where a full table must not switch
 * the check off) gives a new key the probed cell nearest to the end of
 * its debt instead.
 *
 * Invariants: a cell whose TAT is in the past holds no debt and may be
 * taken by another key; a key probes at most WINDOW_PROBE cells; with
 * none free the event is allowed (fail open, counted in `full`): a full
 * table must not refuse good clients. Counts are exact for one process
 * and approximate only when two processes race for the same free cell.
 */
#ifndef MOAT_WINDOW_H
#define MOAT_WINDOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WINDOW_PROBE	16	/* cells probed per key */
#define WINDOW_MAX_COUNT 1000000	/* N in N/period */
#define WINDOW_MAX_PERIOD_MS (366LL * 86400 * 1000)

/* N events per period; count 0 means no limit. */
struct window_limit {
	uint64_t	count;
	uint64_t	period_ms;
};

/* The answer to one window_take(). */
struct window_result {
	bool		allowed;
	bool		full;		/* no free cell: allowed */
	uint64_t	used;		/* events in the window, this one
					 * included when allowed */
	uint64_t	retry_ms;	/* refused: when one more fits */
};

struct window_table;

/*
 * Parses "N/period": period is a number with a unit (ms, s, m, h, d) or a
 * bare unit ("100/h"); "" or "0" is no limit. -1 with err set when bad
 * or out of bounds.
 */
int	window_limit_parse(const char *, struct window_limit *, char *err,
	    size_t errlen);
/* A table of at least `cells` cells (rounded up to a power of two),
 * shared with processes forked later when shared; NULL on failure. */
struct window_table *window_table_new(size_t cells, bool shared);
void	window_table_free(struct window_table *);
/* A full probe evicts the cell nearest to the end of its debt instead of
 * letting the event through uncounted. */
void	window_table_evict(struct window_table *);
/* window_table_new(cells, true) under a name (a file name's stem) that
 * window_publish() gives it; the table of that name when there is one
 * already (every policy, and every configuration a reload loads, counts
 * in the same cells). Each call is one reference: window_table_free()
 * frees it with the last. */
struct window_table *window_table_shared(const char *name, size_t cells);
/* Moves every named table not yet published into dir/NAME.win (dir made
 * when missing); 0, or -1 with err set. The master calls it before
 * forking workers, after each config load. */
int	window_publish(const char *dir, char *err, size_t errlen);
/* A published table, read-only (moatctl): window_peek() works on it.
 * NULL with err set. */
struct window_table *window_table_open(const char *path, char *err,
	    size_t errlen);
/*
 * Counts `cost` events for key under limit at now_ms (a monotonic clock:
 * window_now_ms(), or a test's). Refused events are not counted. The key
 * is hashed together with the limit, so two different limits on the same
 * key keep separate cells.
 */
struct window_result window_take(struct window_table *,
	    const struct window_limit *, const void *key, size_t keylen,
	    unsigned cost, uint64_t now_ms);
/* Gives back cost events taken for key (a reservation that turned out
 * not to be one), never below none. */
void	window_return(struct window_table *, const struct window_limit *,
	    const void *key, size_t keylen, unsigned cost, uint64_t now_ms);
/* Events counted in the window now, without taking one. */
uint64_t window_peek(struct window_table *, const struct window_limit *,
	    const void *key, size_t keylen, uint64_t now_ms);
/* CLOCK_MONOTONIC in ms: one clock for every process of the machine. */
uint64_t window_now_ms(void);

#endif
