/*
 * tpool.c: thread pool with completions on the loop (see tpool.h).
 *
 * One mutex guards both queues (to do, done); an eventfd wakes the loop
 * when something is done. Jobs are few and coarse (one per message), so
 * one lock is plenty.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <event2/event.h>

#include "tpool.h"

#define TPOOL_MAX	16

struct job {
	void		(*work)(void *);
	void		(*done)(void *);
	void		*arg;
	struct job	*next;
};

struct queue {
	struct job	*head, *tail;
};

static pthread_mutex_t	 mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t	 cv = PTHREAD_COND_INITIALIZER;
static struct queue	 todo, finished;
static pthread_t	 threads[TPOOL_MAX];
static int		 nthreads;
static int		 efd = -1;
static struct event	*ev;
static int		 stopping;

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
run(void *unused)
{
	struct job	*j;
	uint64_t	 one = 1;

	(void)unused;
	pthread_mutex_lock(&mu);
	for (;;) {
		while ((j = pop(&todo)) == NULL && !stopping)
			pthread_cond_wait(&cv, &mu);
		if (j == NULL)
			break;
		pthread_mutex_unlock(&mu);
		j->work(j->arg);
		pthread_mutex_lock(&mu);
		push(&finished, j);
		(void)!write(efd, &one, sizeof(one));
	}
	pthread_mutex_unlock(&mu);
	return NULL;
}

/* On the loop: run done() for everything finished. */
static void
drain(evutil_socket_t fd, short what, void *unused)
{
	uint64_t	 n;
	struct job	*j;

	(void)what;
	(void)unused;
	(void)!read(fd, &n, sizeof(n));
	for (;;) {
		pthread_mutex_lock(&mu);
		j = pop(&finished);
		pthread_mutex_unlock(&mu);
		if (j == NULL)
			return;
		j->done(j->arg);
		free(j);
	}
}

int
tpool_start(struct event_base *base, int n)
{
	int i;

	if (n < 1 || n > TPOOL_MAX)
		return -1;
	if ((efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) == -1)
		return -1;
	ev = event_new(base, efd, EV_READ | EV_PERSIST, drain, NULL);
	if (ev == NULL || event_add(ev, NULL) == -1)
		return -1;
	stopping = 0;
	for (i = 0; i < n; i++) {
		if (pthread_create(&threads[i], NULL, run, NULL) != 0)
			break;
		nthreads++;
	}
	return nthreads > 0 ? 0 : -1;
}

int
tpool_submit(void (*work)(void *), void (*done)(void *), void *arg)
{
	struct job *j;

	if (nthreads == 0 || (j = malloc(sizeof(*j))) == NULL)
		return -1;
	j->work = work;
	j->done = done;
	j->arg = arg;
	pthread_mutex_lock(&mu);
	push(&todo, j);
	pthread_cond_signal(&cv);
	pthread_mutex_unlock(&mu);
	return 0;
}

void
tpool_stop(void)
{
	int i;

	if (nthreads == 0)
		return;
	pthread_mutex_lock(&mu);
	stopping = 1;
	pthread_cond_broadcast(&cv);
	pthread_mutex_unlock(&mu);
	for (i = 0; i < nthreads; i++)
		pthread_join(threads[i], NULL);
	nthreads = 0;
	drain(efd, EV_READ, NULL);
	event_free(ev);
	close(efd);
	efd = -1;
}
