/*
 * shared.c: what a process has of the store (store.h): its one handle,
 * its queue of batches for the LMDB writer thread, and its incremental
 * expiry sweep.
 *
 * A handle opened before fork() is not used by the child: the pid it
 * was opened in is kept and a child opens its own. The writer queue and
 * the sweep's state are touched on the loop thread only; the writer job
 * owns the batches it took until its done() hands them back.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "../core/tpool.h"
#include "store.h"

static char		 shared_dir[PATH_MAX];
static size_t		 shared_map;
static struct store	*shared;
static pid_t		 shared_pid;

void
store_configure(const char *dir, size_t map_size)
{
	if (strcmp(dir, shared_dir) == 0 && map_size == shared_map)
		return;
	snprintf(shared_dir, sizeof(shared_dir), "%s", dir);
	shared_map = map_size;
	if (shared != NULL && shared_pid == getpid())
		store_close(shared);
	shared = NULL;
}

struct store *
store_shared(char *err, size_t errlen)
{
	if (shared != NULL && shared_pid == getpid())
		return shared;
	if (shared_dir[0] == '\0') {
		snprintf(err, errlen, "no store configured");
		return NULL;
	}
	/* A parent's handle is dropped, never closed, in the child. */
	shared = store_open(shared_dir, shared_map, err, errlen);
	shared_pid = getpid();
	return shared;
}

/* ---- Batches --------------------------------------------------------- */

struct store_op *
store_batch_add(struct store_batch *b, enum store_op_kind kind,
    const char *key)
{
	struct store_op	*op;
	size_t		 n = strlen(key);

	if (b->n >= STORE_BATCH_MAX || n == 0 || n > STORE_KEY_MAX)
		return NULL;
	op = &b->op[b->n++];
	memset(op, 0, sizeof(*op));
	op->kind = kind;
	memcpy(op->key, key, n + 1);
	op->result = -1;
	return op;
}

static bool
batch_writes(const struct store_batch *b)
{
	size_t i;

	for (i = 0; i < b->n; i++)
		if (b->op[i].kind != STORE_GET)
			return true;
	return false;
}

/* One operation inside t; -1 on a store error. */
static int
op_run(struct store_txn *t, struct store_batch *b, struct store_op *op)
{
	long	n;
	int	rc = 0;

	switch (op->kind) {
	case STORE_GET:
		n = store_get(t, op->key, op->val, sizeof(op->val));
		op->len = n < 0 ? 0 : (size_t)n < sizeof(op->val) ?
		    (size_t)n : sizeof(op->val);
		op->result = n;
		break;
	case STORE_PUT:
		rc = store_put(t, op->key, op->val, op->len, op->expires);
		op->result = rc == 0;
		break;
	case STORE_PUT_NEW:
	case STORE_CAS:
		rc = store_cas(t, op->key, op->kind == STORE_PUT_NEW ||
		    op->expect_absent ? NULL : op->expect, op->elen, op->val,
		    op->len, op->expires);
		op->result = rc;
		break;
	case STORE_DEL:
		rc = store_del(t, op->key);
		op->result = rc == 0;
		break;
	case STORE_INCR:
		rc = store_incr(t, op->key, op->num, op->expires, &op->num);
		op->result = rc == 0;
		break;
	case STORE_SWEEP:
		rc = store_sweep(t, op->key, sizeof(op->key),
		    (size_t)op->num, b->count_prefix, &b->sweep);
		op->result = rc == 0;
		break;
	}
	return rc < 0 ? -1 : 0;
}

static int
batch_ops(struct store *st, struct store_txn *t, struct store_batch *b)
{
	size_t i;

	for (i = 0; i < b->n; i++)
		if (op_run(t, b, &b->op[i]) == -1) {
			snprintf(b->err, sizeof(b->err), "%s",
			    store_error(st));
			return -1;
		}
	return 0;
}

int
store_batch_run(struct store *st, struct store_batch *b)
{
	struct store_txn *t;

	b->rc = -1;
	if ((t = store_begin(st, batch_writes(b))) == NULL) {
		snprintf(b->err, sizeof(b->err), "%s", store_error(st));
		return -1;
	}
	if (batch_ops(st, t, b) == -1) {
		store_abort(t);
		return -1;
	}
	if (store_commit(t) == -1) {
		snprintf(b->err, sizeof(b->err), "%s", store_error(st));
		return -1;
	}
	b->rc = 0;
	return 0;
}

/* ---- The writer: queued batches, one transaction per job ------------- */

struct writer_job {
	struct store		*st;
	struct store_batch	*head;
};

static struct store_batch	*wq_head, *wq_tail;	/* waiting */
static bool			 wq_running;		/* a job out */
static size_t			 wq_pending;
static struct event_base	*wq_base;

/* On the writer thread: every batch of the job in one transaction. A
 * store error aborts it all (an LMDB transaction that failed is dead):
 * every batch then reports -1 and none was applied. */
static void
writer_work(void *arg)
{
	struct writer_job	*j = arg;
	struct store_batch	*b;
	struct store_txn	*t;
	int			 rc = -1;

	if ((t = store_begin(j->st, true)) != NULL) {
		for (rc = 0, b = j->head; b != NULL && rc == 0; b = b->next)
			rc = batch_ops(j->st, t, b);
		if (rc == 0)
			rc = store_commit(t);
		else
			store_abort(t);
	}
	for (b = j->head; b != NULL; b = b->next) {
		b->rc = rc;
		if (rc == -1 && b->err[0] == '\0')
			snprintf(b->err, sizeof(b->err), "%s",
			    store_error(j->st));
	}
}

static int writer_kick(struct store *, const struct store_batch *);

/* On the loop: each batch's done, then the next job. */
static void
writer_done(void *arg)
{
	struct writer_job	*j = arg;
	struct store_batch	*b, *next;
	struct store		*st = j->st;

	for (b = j->head; b != NULL; b = next) {
		next = b->next;
		b->next = NULL;
		wq_pending--;
		if (b->done != NULL)
			b->done(b);
	}
	free(j);
	wq_running = false;
	(void)writer_kick(st, NULL);
}

/*
 * Hands every waiting batch to one job, unless a job is out. With no job
 * the waiting batches fail: done() reports -1, except for `caller`'s
 * batch, which is being submitted (store_batch_submit returns -1 for it:
 * its done must not run under the caller's feet). -1 when caller's
 * batch failed.
 */
static int
writer_kick(struct store *st, const struct store_batch *caller)
{
	struct writer_job	*j;
	struct store_batch	*b, *next;
	int			 rc = 0;

	if (wq_running || wq_head == NULL)
		return 0;
	if ((j = calloc(1, sizeof(*j))) != NULL) {
		j->st = st;
		j->head = wq_head;
		if (tpool_submit_to(TPOOL_STORE, writer_work, writer_done,
		    j) == 0) {
			wq_head = wq_tail = NULL;
			wq_running = true;
			return 0;
		}
		free(j);
	}
	b = wq_head;
	wq_head = wq_tail = NULL;
	for (; b != NULL; b = next) {
		next = b->next;
		b->next = NULL;
		b->rc = -1;
		snprintf(b->err, sizeof(b->err), "store writer: %s",
		    strerror(errno));
		wq_pending--;
		if (b == caller)
			rc = -1;
		else if (b->done != NULL)
			b->done(b);
	}
	return rc;
}

int
store_batch_submit(struct store *st, struct event_base *base,
    struct store_batch *b)
{
	if (!tpool_running(TPOOL_STORE)) {
		/* One thread: LMDB runs one writer at a time anyway. Not
		 * the classifier's learning thread: a batch of greylist or
		 * karma writes must not queue behind a training job's
		 * tokenizing (only behind its commit, LMDB's one lock). */
		if (tpool_start_pool(TPOOL_STORE, base, 1, 0) == -1)
			return -1;
	}
	wq_base = base;
	b->next = NULL;
	b->rc = -1;
	b->err[0] = '\0';
	if (wq_tail != NULL)
		wq_tail->next = b;
	else
		wq_head = b;
	wq_tail = b;
	wq_pending++;
	return writer_kick(st, b);
}

size_t
store_batch_pending(void)
{
	return wq_pending;
}

/* ---- The incremental expiry sweep ------------------------------------ */

static struct {
	struct store		*st;
	struct event		*ev;
	struct store_batch	 b;
	char			 cursor[STORE_KEY_MAX + 1];
	size_t			 max;
	const char		*prefix;
	void			(*notify)(const struct store_sweep *);
	bool			 busy;
} sw;

static void
sweep_done(struct store_batch *b)
{
	sw.busy = false;
	if (b->rc == -1)
		return;		/* the cursor stays: tried again next tick */
	memcpy(sw.cursor, b->op[0].key, sizeof(sw.cursor));
	if (sw.notify != NULL)
		sw.notify(&b->sweep);
}

static void
sweep_tick(evutil_socket_t fd, short what, void *arg)
{
	struct store_op *op;

	(void)fd;
	(void)what;
	(void)arg;
	if (sw.busy)
		return;		/* the last step is still queued */
	memset(&sw.b, 0, sizeof(sw.b));
	op = &sw.b.op[sw.b.n++];
	op->kind = STORE_SWEEP;
	memcpy(op->key, sw.cursor, sizeof(op->key));
	op->num = (long long)sw.max;
	sw.b.count_prefix = sw.prefix;
	sw.b.done = sweep_done;
	if (store_batch_submit(sw.st, wq_base, &sw.b) == 0)
		sw.busy = true;
}

int
store_sweep_start(struct store *st, struct event_base *base,
    long long interval_ms, size_t max, const char *count_prefix,
    void (*notify)(const struct store_sweep *))
{
	struct timeval tv = { interval_ms / 1000, (interval_ms % 1000) * 1000 };

	if (sw.ev != NULL)
		return 0;
	if (interval_ms <= 0 || max == 0)
		return -1;
	wq_base = base;
	sw.st = st;
	sw.max = max;
	sw.prefix = count_prefix;
	sw.notify = notify;
	sw.cursor[0] = '\0';
	if ((sw.ev = event_new(base, -1, EV_PERSIST, sweep_tick, NULL)) ==
	    NULL)
		return -1;
	return event_add(sw.ev, &tv);
}

void
store_sweep_stop(void)
{
	if (sw.ev != NULL)
		event_free(sw.ev);
	sw.ev = NULL;
	sw.busy = false;
}
