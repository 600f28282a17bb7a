/*
 * tpool.h: a small pool of threads for blocking work that must not run on
 * a worker's loop (fsync of a Maildir file).
 *
 * work() runs on a pool thread and may touch only its job; done() runs
 * afterwards on the loop thread, in submission order of completion. A job
 * owns everything work() reads: nothing it points at may be freed by the
 * loop while it is queued or running.
 */
#ifndef MOAT_TPOOL_H
#define MOAT_TPOOL_H

struct event_base;

/* Starts n threads whose completions are delivered on base; -1 on error. */
int	tpool_start(struct event_base *, int n);
/* Queues a job; -1 when the pool is not running or memory is short. */
int	tpool_submit(void (*work)(void *), void (*done)(void *), void *arg);
/* Stops the threads after the queued jobs and runs the last done()s. */
void	tpool_stop(void);

#endif
