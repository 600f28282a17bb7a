/*
 * tpool.c: thread pools with completions on the loop (see tpool.h).
 *
 * A pool is a fixed slot (enum tpool_id), so a module finds its pool
 * without holding a pointer that could outlive it. In each pool one mutex
 * guards both queues (to do, done); an eventfd wakes the loop when
 * something is done. Jobs are few and coarse (one per message), so one
 * lock per pool is plenty.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <event2/event.h>

#include "tpool.h"

struct job {
	void		(*work)(void *);
	void		(*done)(void *);
	void		*arg;
	struct job	*next;
};

struct queue {
	struct job	*head, *tail;
};

struct pool {
	pthread_mutex_t	 mu;
	pthread_cond_t	 cv;
	struct queue	 todo, finished;
	pthread_t	 threads[TPOOL_MAX];
	int		 nthreads;
	int		 efd;
	struct event	*ev;
	int		 stopping;
	int		 pending;	/* queued or running (loop's count) */
	int		 waiting;	/* in todo */
	int		 max_queued;	/* 0: no bound */
};

static struct pool pools[TPOOL_COUNT];

static void
push(struct queue *q, struct job *j)
{
	j->next = NULL;
	if (q->tail != NULL)
		q->tail->next = j;
	else
		q->head = j;
	q->tail = j;
}

static struct job *
pop(struct queue *q)
{
	struct job *j = q->head;

	if (j != NULL && (q->head = j->next) == NULL)
		q->tail = NULL;
	return j;
}

static void *
run(void *arg)
{
	struct pool	*p = arg;
	struct job	*j;
	uint64_t	 one = 1;

	pthread_mutex_lock(&p->mu);
	for (;;) {
		while ((j = pop(&p->todo)) == NULL && !p->stopping)
			pthread_cond_wait(&p->cv, &p->mu);
		if (j == NULL)
			break;
		p->waiting--;
		pthread_mutex_unlock(&p->mu);
		j->work(j->arg);
		pthread_mutex_lock(&p->mu);
		push(&p->finished, j);
		(void)!write(p->efd, &one, sizeof(one));
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

/* On the loop: run done() for everything finished. */
static void
drain(evutil_socket_t fd, short what, void *arg)
{
	struct pool	*p = arg;
	uint64_t	 n;
	struct job	*j;

	(void)what;
	(void)!read(fd, &n, sizeof(n));
	for (;;) {
		pthread_mutex_lock(&p->mu);
		j = pop(&p->finished);
		pthread_mutex_unlock(&p->mu);
		if (j == NULL)
			return;
		p->pending--;
		j->done(j->arg);
		free(j);
	}
}

int
tpool_start_pool(enum tpool_id id, struct event_base *base, int n,
    int max_queued)
{
	struct pool	*p;
	int		 i;

	if (id >= TPOOL_COUNT || n < 1 || n > TPOOL_MAX || max_queued < 0)
		return -1;
	p = &pools[id];
	if (p->nthreads > 0)
		return -1;
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	if ((p->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) == -1)
		return -1;
	p->ev = event_new(base, p->efd, EV_READ | EV_PERSIST, drain, p);
	if (p->ev == NULL || event_add(p->ev, NULL) == -1) {
		if (p->ev != NULL)
			event_free(p->ev);
		close(p->efd);
		p->ev = NULL;
		p->efd = -1;
		return -1;
	}
	p->stopping = 0;
	p->pending = p->waiting = 0;
	p->max_queued = max_queued;
	for (i = 0; i < n; i++) {
		if (pthread_create(&p->threads[i], NULL, run, p) != 0)
			break;
		p->nthreads++;
	}
	return p->nthreads > 0 ? 0 : -1;
}

bool
tpool_running(enum tpool_id id)
{
	return id < TPOOL_COUNT && pools[id].nthreads > 0;
}

int
tpool_pending(enum tpool_id id)
{
	return id < TPOOL_COUNT ? pools[id].pending : 0;
}

int
tpool_submit_to(enum tpool_id id, void (*work)(void *), void (*done)(void *),
    void *arg)
{
	struct pool	*p;
	struct job	*j;

	if (!tpool_running(id)) {
		errno = ESRCH;
		return -1;
	}
	p = &pools[id];
	if ((j = malloc(sizeof(*j))) == NULL)
		return -1;
	j->work = work;
	j->done = done;
	j->arg = arg;
	pthread_mutex_lock(&p->mu);
	if (p->max_queued > 0 && p->waiting >= p->max_queued) {
		pthread_mutex_unlock(&p->mu);
		free(j);
		errno = EAGAIN;
		return -1;
	}
	push(&p->todo, j);
	p->waiting++;
	p->pending++;
	pthread_cond_signal(&p->cv);
	pthread_mutex_unlock(&p->mu);
	return 0;
}

int
tpool_start(struct event_base *base, int n)
{
	return tpool_start_pool(TPOOL_DELIVERY, base, n, 0);
}

int
tpool_submit(void (*work)(void *), void (*done)(void *), void *arg)
{
	return tpool_submit_to(TPOOL_DELIVERY, work, done, arg);
}

static void
pool_stop(struct pool *p)
{
	int i;

	if (p->nthreads == 0)
		return;
	pthread_mutex_lock(&p->mu);
	p->stopping = 1;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	for (i = 0; i < p->nthreads; i++)
		pthread_join(p->threads[i], NULL);
	p->nthreads = 0;
	drain(p->efd, EV_READ, p);
	event_free(p->ev);
	p->ev = NULL;
	close(p->efd);
	p->efd = -1;
	pthread_cond_destroy(&p->cv);
	pthread_mutex_destroy(&p->mu);
}

void
tpool_stop(void)
{
	/* In the order work flows: a scoring job's done() may queue
	 * learning, and a finished step may queue a delivery. */
	static const enum tpool_id order[] = { TPOOL_CONTENT, TPOOL_LEARN,
	    TPOOL_STORE, TPOOL_DELIVERY };
	size_t i;

	for (i = 0; i < sizeof(order) / sizeof(order[0]); i++)
		pool_stop(&pools[order[i]]);
}
