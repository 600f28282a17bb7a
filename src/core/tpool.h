/*
 * tpool.h: small pools of threads for work that must not run on a
 * worker's loop: blocking I/O (fsync of a Maildir file) and CPU-heavy
 * content work (MIME reads, scoring, learning).
 *
 * Each pool has its own threads and queue, so one kind of work cannot
 * starve another: a burst of training cannot delay a delivery's fsync.
 * work() runs on a pool thread and may touch only its job; done() runs
 * afterwards on the loop thread, in order of completion. A job owns
 * everything work() reads: nothing it points at may be freed by the loop
 * while it is queued or running.
 */
#ifndef MOAT_TPOOL_H
#define MOAT_TPOOL_H

#include <stdbool.h>

struct event_base;

enum tpool_id {
	TPOOL_DELIVERY,	/* Maildir writes and fsyncs (deliver/) */
	TPOOL_CONTENT,	/* MIME reads and scoring (filters/bayes.c) */
	TPOOL_LEARN,	/* learning and refits, one LMDB writer (bayes.c) */
	TPOOL_AUTH,	/* password hash checks (smtp/auth_smtp.c) */
	TPOOL_STORE,	/* the store's batched writes (store/shared.c) */
	TPOOL_COUNT
};

#define TPOOL_MAX	16	/* threads in one pool */

/* Starts pool id with n threads whose completions are delivered on base;
 * at most max_queued jobs wait (0: no bound). -1 on error or when the
 * pool already runs. */
int	tpool_start_pool(enum tpool_id, struct event_base *, int n,
	    int max_queued);
/* True once tpool_start_pool() succeeded, until tpool_stop(). */
bool	tpool_running(enum tpool_id);
/* Queues a job on pool id; -1 with errno ESRCH when the pool is not
 * running, EAGAIN when its queue is full, ENOMEM. */
int	tpool_submit_to(enum tpool_id, void (*work)(void *),
	    void (*done)(void *), void *arg);
/* Jobs queued or running on pool id. */
int	tpool_pending(enum tpool_id);

/* The delivery pool: tpool_start_pool(TPOOL_DELIVERY, base, n, 0) and
 * tpool_submit_to(TPOOL_DELIVERY, ...). */
int	tpool_start(struct event_base *, int n);
int	tpool_submit(void (*work)(void *), void (*done)(void *), void *arg);
/* Stops every running pool: each finishes its queued jobs, and the last
 * done()s run here. The worker calls it once, at exit. */
void	tpool_stop(void);

#endif
