/*
 * scan.c: the content scanners' shared per-session scan (scan.h).
 *
 * The body of a request is the transaction's message, pulled a piece at
 * a time as the service's socket drains: never copied whole. The message
 * may move (a header added by a filter, a realloc) while a scan is under
 * way, so a scan keeps neither a pointer nor an offset from the start:
 * it finds the session by id and counts what is left from the end (a
 * header inserted before what was sent is not sent; total bytes stay
 * those announced). Its transaction over (refused by another filter,
 * session gone), the pull aborts the request.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../core/log.h"
#include "clamav.h"
#include "policy.h"
#include "scan.h"
#include "spamassassin.h"

/* Bytes handed to svc per pull. */
#define SCAN_PIECE	16384

static long long
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct scan *
scan_get(struct session *s, const struct filter *f)
{
	struct scan *sc = filter_data(s, f);

	if (sc == NULL) {
		if ((sc = calloc(1, sizeof(*sc))) == NULL ||
		    filter_data_set(s, f, sc) == -1) {
			free(sc);
			return NULL;
		}
		sc->f = f;
		sc->sid = s->id;
		sc->seq = s->txn->seq;
	}
	if (sc->seq != s->txn->seq) {
		if (sc->st == SCAN_RUNNING)
			scan_stop(sc, s, SVC_EABORT);
		sc->seq = s->txn->seq;
		sc->st = SCAN_NONE;
	}
	return sc;
}

/* True while the scan's transaction is at end of data, its message
 * still there. */
static struct session *
scan_session(const struct scan *sc)
{
	struct session *s = session_find(sc->sid);

	if (s == NULL || s->txn == NULL || s->txn->seq != sc->seq ||
	    s->state != ST_WAIT || s->pending != STAGE_DATA_POST)
		return NULL;
	return s;
}

int
scan_pull(void *arg, size_t max, const char **p, size_t *n)
{
	struct scan	*sc = arg;
	struct session	*s;
	size_t		 len;

	if (sc->left == 0)
		return 0;
	if ((s = scan_session(sc)) == NULL || s->txn->msg.len < sc->left)
		return -1;
	len = sc->left < max ? sc->left : max;
	if (len > SCAN_PIECE)
		len = SCAN_PIECE;
	*p = s->txn->msg.data + (s->txn->msg.len - sc->left);
	*n = len;
	sc->left -= len;
	return 1;
}

int
scan_start(struct scan *sc, struct session *s, struct svc *v,
    const struct svc_call *call)
{
	struct svc_call c = *call;

	sc->left = s->txn->msg.len;
	sc->t0 = mono_ms();
	sc->ms = 0;
	c.pull = scan_pull;
	c.arg = sc;
	c.sid = s->id;
	sc->req = v == NULL ? NULL : svc_start(v, &c, &sc->status);
	if (v == NULL)
		sc->status = SVC_ECONNECT;
	if (sc->req == NULL) {
		sc->st = SCAN_DONE;
		return -1;
	}
	sc->st = SCAN_RUNNING;
	filter_work_add(s, sc->f);
	return 0;
}

void
scan_done(struct scan *sc, enum svc_status st)
{
	struct session *s = session_find(sc->sid);

	sc->req = NULL;
	sc->status = st;
	sc->ms = (double)(mono_ms() - sc->t0);
	sc->st = SCAN_DONE;
	if (s != NULL && filter_data(s, sc->f) == sc)
		filter_work_done(s, sc->f);
}

void
scan_stop(struct scan *sc, struct session *s, enum svc_status st)
{
	if (sc->st != SCAN_RUNNING)
		return;
	svc_cancel(sc->req);
	sc->req = NULL;
	sc->status = st;
	sc->ms = (double)(mono_ms() - sc->t0);
	sc->st = SCAN_DONE;
	filter_work_done(s, sc->f);
}

void
scan_free(void *data)
{
	struct scan *sc = data;

	if (sc == NULL)
		return;
	svc_cancel(sc->req);
	free(sc);
}

const void *
scan_conf(const struct policy *p, const struct filter *f)
{
	size_t i;

	for (i = 0; i < pipeline_active->n; i++)
		if (pipeline_active->order[i] == f)
			return p->conf[filter_index(f)];
	return NULL;
}

void
scan_start_all(struct filter_call *c)
{
	clamav_start(c->s, c->policy);
	spamassassin_start(c->s, c->policy);
}

struct verdict
scan_wait(struct filter_call *c, struct scan *sc, long long timeout_ms)
{
	struct verdict v;

	if (sc->st != SCAN_RUNNING)
		return VERDICT(V_CONTINUE);
	if (!c->late) {
		/* A little past the service's own total timeout, so that
		 * the client's timeout (and its health count) comes first. */
		v = filter_wait(c, timeout_ms + 500);
		if (v.code == V_PENDING)
			return v;
	}
	if (sc->st == SCAN_RUNNING)
		scan_stop(sc, c->s, SVC_ETIMEOUT);
	return VERDICT(V_CONTINUE);
}

int
scan_fail_parse(const char *fail, char *err, size_t errlen)
{
	if (strcmp(fail, "defer") == 0 || strcmp(fail, "continue") == 0)
		return 0;
	snprintf(err, errlen, "fail: '%s' is not defer or continue", fail);
	return -1;
}

struct verdict
scan_failed(const char *fail, const char *what)
{
	if (strcmp(fail, "defer") != 0)
		return VERDICT(V_CONTINUE);
	return verdict_make(V_DEFER, 451, "4.4.3", what);
}
