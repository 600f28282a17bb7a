/*
 * pipeline.c: runs the enabled filters' hooks in [pipeline] order.
 *
 * Per stage the session's pl_index says which filter is next; a PENDING
 * hook parks the session with a timer, and filter_resume() or the timer
 * picks up from the same index. Every hook call is a new step of the
 * session (its own token): a completion that comes back after its hook
 * timed out, or after the session moved on or closed, is dropped rather
 * than taken for the hook pending now. Verdicts of the early stages are applied
 * by the session (delay-deny); here every hook is only asked once.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <string.h>

#include "../core/log.h"
#include "../core/svc.h"
#include "policy.h"

struct pipeline	*pipeline_active;

const struct policy *
pipeline_policy_for(const char *domain)
{
	struct pipeline	*pl = pipeline_active;
	size_t		 i;

	for (i = 0; i < pl->ndomains; i++)
		if (strcasecmp(pl->domains[i]->domain, domain) == 0)
			return pl->domains[i];
	return pl->def;
}

bool
pipeline_is_local(const struct policy *p, const char *domain)
{
	struct pipeline	*pl = pipeline_active;
	const char	*d;
	size_t		 n = strlen(domain);

	(void)p;
	if (domain[0] == '[')
		return false;
	if (strset_has(&pl->local, domain, n))
		return true;
	if (pl->morercpthosts != NULL &&
	    cdbfile_has(pl->morercpthosts, domain, n) == 1)
		return true;
	/* ".example.com" entries cover subdomains. */
	for (d = strchr(domain, '.'); d != NULL; d = strchr(d + 1, '.')) {
		if (strset_has(&pl->local, d, strlen(d)))
			return true;
		if (pl->morercpthosts != NULL &&
		    cdbfile_has(pl->morercpthosts, d, strlen(d)) == 1)
			return true;
	}
	return false;
}

/* Which policy a stage runs under: the recipient's at RCPT, the
 * transaction's from DATA on, the default before a recipient is known. */
static const struct policy *
stage_policy(struct session *s, enum stage st)
{
	if (s->client_policy != NULL)
		return s->client_policy;
	if (st == STAGE_RCPT && s->txn->cur != NULL)
		return s->txn->cur->policy;
	if ((st == STAGE_DATA || st == STAGE_DATA_POST) &&
	    s->txn->policy != NULL)
		return s->txn->policy;
	return pipeline_active->def;
}

/* The pipeline's per-session data: each filter's data and work count. */
struct pl_session {
	void		*data[FILTER_MAX + 1];	/* + unregistered (tests) */
	unsigned	 work[FILTER_MAX + 1];
	long long	 wait_ms;		/* of the hook waiting now */
};

static struct pl_session *
pl_session(struct session *s, bool make)
{
	if (s->pl_data == NULL && make)
		s->pl_data = calloc(1, sizeof(struct pl_session));
	return s->pl_data;
}

void *
filter_data(struct session *s, const struct filter *f)
{
	struct pl_session *ps = pl_session(s, false);

	return ps != NULL ? ps->data[filter_index(f)] : NULL;
}

int
filter_data_set(struct session *s, const struct filter *f, void *data)
{
	struct pl_session *ps = pl_session(s, true);

	if (ps == NULL)
		return -1;
	ps->data[filter_index(f)] = data;
	return 0;
}

void *
filter_data_new(struct session *s, const struct filter *f, size_t size)
{
	void *d = filter_data(s, f);

	if (d != NULL)
		return d;
	if ((d = calloc(1, size)) == NULL)
		return NULL;
	if (filter_data_set(s, f, d) == -1) {
		free(d);
		return NULL;
	}
	return d;
}

unsigned
filter_work_pending(struct session *s, const struct filter *f)
{
	struct pl_session *ps = pl_session(s, false);

	return ps != NULL ? ps->work[filter_index(f)] : 0;
}

void
filter_work_add(struct session *s, const struct filter *f)
{
	struct pl_session *ps = pl_session(s, true);

	if (ps != NULL)
		ps->work[filter_index(f)]++;
}

static void	pipeline_rerun(struct session *, bool late);

void
filter_work_done(struct session *s, const struct filter *f)
{
	struct pl_session	*ps = pl_session(s, false);
	size_t			 k = filter_index(f);

	if (ps == NULL || ps->work[k] == 0)
		return;
	/* The last piece of work in: a hook of this filter that waits for
	 * it is called again. */
	if (--ps->work[k] == 0 && s->pl_waiting && s->state == ST_WAIT &&
	    s->pending < STAGE_QUEUE && s->pl_index < pipeline_active->n &&
	    pipeline_active->order[s->pl_index] == f)
		pipeline_rerun(s, false);
}

void
filter_evidence(struct session *s, const struct filter *f, const char *name,
    double score, double ms, const char *fmt, ...)
{
	struct evidence	*e;
	va_list		 ap;

	if (s->sev == NULL && (s->sev = calloc(1, sizeof(*s->sev))) == NULL)
		return;
	if (s->sev->nev >= LIMIT_EVIDENCE) {
		s->sev->dropped++;
		return;
	}
	e = &s->sev->ev[s->sev->nev++];
	e->filter = f->name;
	e->name = name;
	e->score = score;
	e->ms = ms;
	va_start(ap, fmt);
	vsnprintf(e->detail, sizeof(e->detail), fmt, ap);
	va_end(ap);
	log_msg(LVL_DEBUG, s->id, "event=evidence filter=%s name=%s "
	    "score=%.2f ms=%.1f detail=\"%s\"", f->name, name, score, ms,
	    e->detail);
}

void
filter_reply_format(char *out, size_t n, const char *tmpl, const char *a,
    const char *b)
{
	const char	*arg[2] = { a, b };
	size_t		 o = 0, k;
	int		 used = 0;

	if (n == 0)
		return;
	for (; *tmpl != '\0' && o + 1 < n; tmpl++) {
		if (tmpl[0] == '%' && tmpl[1] == '%') {
			out[o++] = '%';
			tmpl++;
		} else if (tmpl[0] == '%' && tmpl[1] == 's' && used < 2) {
			for (k = 0; arg[used][k] != '\0' && o + 1 < n; k++)
				if (arg[used][k] != '\r' && arg[used][k] != '\n')
					out[o++] = arg[used][k];
			used++;
			tmpl++;
		} else if (tmpl[0] != '\r' && tmpl[0] != '\n')
			out[o++] = *tmpl;
	}
	out[o] = '\0';
}

int
filter_client_policy(struct session *s, const char *name)
{
	struct pipeline	*pl = pipeline_active;
	size_t		 i;

	for (i = 0; i < pl->ndomains; i++)
		if (strcasecmp(pl->domains[i]->domain, name) == 0) {
			s->client_policy = pl->domains[i];
			log_msg(LVL_DEBUG, s->id, "event=client_policy "
			    "policy=%s", name);
			return 0;
		}
	return -1;
}

bool
filter_skipped(const struct session *s, const struct filter *f)
{
	size_t	 k = filter_index(f);
	uint64_t bit = k < 64 ? (uint64_t)1 << k : 0;

	return (s->skip & bit) != 0 || (s->txn != NULL &&
	    (s->txn->skip & bit) != 0);
}

int
filter_skip(struct session *s, const char *names, bool txn_only)
{
	uint64_t		 mask = 0;
	const struct filter	*f;
	char			 w[64];
	size_t			 n;

	while (*names != '\0') {
		while (*names == ' ' || *names == ',' || *names == '\t')
			names++;
		if ((n = strcspn(names, " ,\t")) == 0)
			break;
		if (n >= sizeof(w))
			return -1;
		memcpy(w, names, n);
		w[n] = '\0';
		names += n;
		if (strcmp(w, "all") == 0)
			mask = ~(uint64_t)0;
		else if ((f = filter_find(w)) == NULL)
			return -1;
		else if (filter_index(f) < 64)
			mask |= (uint64_t)1 << filter_index(f);
	}
	if (txn_only && s->txn != NULL)
		s->txn->skip |= mask;
	else if (!txn_only)
		s->skip |= mask;
	log_msg(LVL_DEBUG, s->id, "event=skip filters=%llx txn=%d",
	    (unsigned long long)mask, txn_only);
	return 0;
}

static void
call_init(struct filter_call *c, struct session *s, const struct filter *f,
    const struct policy *p)
{
	size_t i = filter_index(f);

	c->s = s;
	c->conf = p->conf[i];
	c->state = p->state[i];
	c->policy = p;
	c->step = session_step(s);
	c->late = false;
	c->data = filter_data(s, f);
}

struct verdict
filter_wait(struct filter_call *c, long long deadline_ms)
{
	struct session *s = c->s;

	if (c->late || filter_work_pending(s, pipeline_active->order[
	    s->pl_index]) == 0)
		return VERDICT(V_CONTINUE);	/* nothing (more) to wait for */
	if (deadline_ms <= 0)
		deadline_ms = s->pending == STAGE_RCPT ?
		    pipeline_active->deadline_rcpt :
		    pipeline_active->deadline_other;
	s->pl_waiting = true;
	((struct pl_session *)s->pl_data)->wait_ms = deadline_ms;
	return VERDICT(V_PENDING);
}

static void	pipeline_run(struct session *);

static void
pipeline_timeout(struct session *s)
{
	const struct filter	*f = pipeline_active->order[s->pl_index];
	struct filter_call	 c;
	struct verdict		 v;

	log_msg(LVL_WARN, s->id, "event=filter_timeout filter=%s stage=%s",
	    f->name, stage_names[s->pending]);
	call_init(&c, s, f, stage_policy(s, s->pending));
	if (f->cancel != NULL)
		f->cancel(&c);
	if (f->fail == FAIL_CONTINUE) {
		s->pl_index++;
		pipeline_run(s);
		return;
	}
	v = verdict_make(V_DEFER, 451, "4.4.3", "Temporary failure of a "
	    "check, try again later");
	v.by = f->name;
	session_resume(s->id, v);
}

/* A filter_wait() deadline passed: the hook decides with what it has. */
static void
pipeline_wait_expired(struct session *s)
{
	log_msg(LVL_INFO, s->id, "event=evidence_deadline filter=%s "
	    "stage=%s pending=%u", pipeline_active->order[s->pl_index]->name,
	    stage_names[s->pending], filter_work_pending(s,
	    pipeline_active->order[s->pl_index]));
	pipeline_rerun(s, true);
}

/* True when the filter runs in observe mode under the policy. */
static bool
observing(const struct policy *p, const struct filter *f)
{
	return p->observe_all || p->observe[filter_index(f)];
}

/*
 * Observe mode: a refusal is logged (would_reject in the JSON line) and
 * turned into no opinion; an ACCEPT into no opinion too, so an observed
 * allow-list skips nothing.
 */
static struct verdict
observe(struct session *s, const struct filter *f, enum stage st,
    struct verdict v)
{
	struct would	*w;
	int		 code = v.smtp;
	bool		 temp = v.code == V_DEFER;

	if (v.code == V_ACCEPT)
		return VERDICT(V_CONTINUE);
	if (s->sev == NULL && (s->sev = calloc(1, sizeof(*s->sev))) == NULL)
		return VERDICT(V_CONTINUE);
	if (code == 0)
		code = temp ? 451 : 550;
	log_msg(LVL_INFO, s->id, "event=would_reject filter=%s stage=%s "
	    "code=%d text=\"%s\"", f->name, stage_names[st], code,
	    v.text != NULL ? v.text : "");
	if (s->sev->nw >= LIMIT_WOULD)
		return VERDICT(V_CONTINUE);
	w = &s->sev->w[s->sev->nw++];
	w->filter = f->name;
	w->stage = st;
	w->txn = s->txn != NULL ? s->txn->seq : 0;
	snprintf(w->rcpt, sizeof(w->rcpt), "%.*s", (int)sizeof(w->rcpt) - 1,
	    st == STAGE_RCPT && s->txn != NULL && s->txn->cur != NULL ?
	    s->txn->cur->addr : "");
	snprintf(w->reply, sizeof(w->reply), "%d %s %.*s", code,
	    v.esc != NULL ? v.esc : temp ? "4.7.1" : "5.7.1",
	    (int)sizeof(w->reply) - 12, v.text != NULL ? v.text : temp ?
	    "Try again later" : "Rejected by policy");
	return VERDICT(V_CONTINUE);
}

/* One hook's verdict: true when the stage goes on to the next filter. */
static bool
pipeline_verdict(struct session *s, const struct filter *f,
    const struct policy *p, struct verdict v)
{
	if (v.code == V_PENDING)	/* not a completion's answer */
		v = VERDICT(V_CONTINUE);
	if (v.code != V_CONTINUE && observing(p, f))
		v = observe(s, f, s->pending, v);
	if (v.code != V_CONTINUE) {
		/* A filter may name its rule ("lists:file:line"). */
		if (v.by == NULL)
			v.by = f->name;
		session_resume(s->id, v);
		return false;
	}
	return true;
}

static void
pipeline_run(struct session *s)
{
	struct pipeline		*pl = pipeline_active;
	enum stage		 st = s->pending;
	const struct policy	*p = stage_policy(s, st);
	const struct filter	*f;
	struct filter_call	 c;
	struct verdict		 v;

	for (; s->pl_index < pl->n; s->pl_index++) {
		f = pl->order[s->pl_index];
		if (f->hook[st] == NULL || (filter_skipped(s, f) &&
		    st != STAGE_DISCONNECT))
			continue;
		(void)session_step_begin(s);
		s->pl_waiting = false;
		call_init(&c, s, f, p);
		v = f->hook[st](&c);
		if (v.code == V_PENDING) {
			/* filter_wait() armed its deadline; a plain
			 * PENDING gets the filter timeout. */
			if (s->pl_waiting)
				session_timer_ms(s, ((struct pl_session *)
				    s->pl_data)->wait_ms,
				    pipeline_wait_expired);
			else
				session_timer(s, pl->timeout,
				    pipeline_timeout);
			return;
		}
		if (!pipeline_verdict(s, f, p, v))
			return;
	}
	session_resume(s->id, VERDICT(V_CONTINUE));
}

/* The waiting hook is called again (its work is in, or late). */
static void
pipeline_rerun(struct session *s, bool late)
{
	const struct filter	*f = pipeline_active->order[s->pl_index];
	const struct policy	*p = stage_policy(s, s->pending);
	struct filter_call	 c;
	struct verdict		 v;

	session_timer(s, 0, NULL);
	s->pl_waiting = false;
	(void)session_step_begin(s);
	call_init(&c, s, f, p);
	c.late = late;
	v = f->hook[s->pending](&c);
	if (v.code == V_PENDING && s->pl_waiting) {
		/* Still waiting (more work was started): once more. */
		session_timer_ms(s, ((struct pl_session *)s->pl_data)->wait_ms,
		    pipeline_wait_expired);
		return;
	}
	if (v.code == V_PENDING) {
		session_timer(s, pipeline_active->timeout, pipeline_timeout);
		return;
	}
	if (!pipeline_verdict(s, f, p, v))
		return;
	s->pl_index++;
	pipeline_run(s);
}

void
filter_resume(struct step_token tok, struct verdict v)
{
	struct session		*s = session_find(tok.sid);
	const struct filter	*f;
	const struct policy	*p;

	if (!session_step_live(s, tok) || s->pending >= STAGE_QUEUE) {
		log_msg(LVL_DEBUG, tok.sid, "event=stale_completion");
		return;		/* gone, timed out, or moved on */
	}
	session_timer(s, 0, NULL);
	f = pipeline_active->order[s->pl_index];
	p = stage_policy(s, s->pending);
	if (!pipeline_verdict(s, f, p, v))
		return;
	s->pl_index++;
	pipeline_run(s);
}

/* Disconnect: cancel a hook still pending, tell every filter, then free
 * every filter's per-session data (which cancels its work in flight). */
static void
pipeline_disconnect(struct session *s)
{
	struct pipeline		*pl = pipeline_active;
	struct pl_session	*ps = s->pl_data;
	struct filter_call	 c;
	size_t			 i, k;

	if (s->state == ST_WAIT && s->pending < STAGE_QUEUE &&
	    s->pl_index < pl->n && !s->pl_waiting &&
	    pl->order[s->pl_index]->cancel != NULL) {
		call_init(&c, s, pl->order[s->pl_index],
		    stage_policy(s, s->pending));
		pl->order[s->pl_index]->cancel(&c);
	}
	session_timer(s, 0, NULL);
	for (i = 0; i < pl->n; i++) {
		if (pl->order[i]->hook[STAGE_DISCONNECT] == NULL)
			continue;
		call_init(&c, s, pl->order[i], pl->def);
		(void)pl->order[i]->hook[STAGE_DISCONNECT](&c);
	}
	if (ps == NULL)
		return;
	for (i = 0; i < pl->n; i++) {
		k = filter_index(pl->order[i]);
		if (ps->data[k] != NULL && pl->order[i]->data_free != NULL) {
			pl->order[i]->data_free(ps->data[k]);
			ps->data[k] = NULL;
		}
	}
	free(ps);
	s->pl_data = NULL;
}

/*
 * The worker's resolver starts with its first session, on that session's
 * event base (a worker serves one configuration: a reload replaces the
 * worker). A resolver that cannot start is logged once; every lookup is
 * then no data.
 */
static bool	dns_started;

static void
pipeline_dns_start(struct session *s)
{
	char err[256];

	dns_started = true;
	if (s->conf->spool_dir != NULL)
		svc_publish_dir(s->conf->spool_dir);
	if (dns_init(s->base, &pipeline_active->dns, err, sizeof(err)) == -1)
		log_msg(LVL_WARN, 0, "event=dns_error why=\"%s\"", err);
}

void
pipeline_worker_fini(void)
{
	/* Service requests in flight close before the event base goes. */
	svc_fini_all();
	if (dns_started)
		dns_fini();
	dns_started = false;
}

void
pipeline_stage(struct session *s, enum stage st)
{
	if (st == STAGE_DISCONNECT) {
		pipeline_disconnect(s);
		return;
	}
	if (!dns_started)
		pipeline_dns_start(s);
	s->pl_index = 0;
	pipeline_run(s);
}

static void
policy_free(struct policy *p)
{
	size_t i;

	if (p == NULL)
		return;
	for (i = 0; i < filter_count; i++) {
		if (p->state[i] != NULL && filter_registry[i]->fini != NULL)
			filter_registry[i]->fini(p->state[i]);
		if (p->conf[i] != NULL)
			opt_free(filter_registry[i]->opts, p->conf[i]);
		free(p->conf[i]);
	}
	free(p->domain);
	free(p);
}

void
pipeline_free(struct pipeline *pl)
{
	size_t i;

	if (pl == NULL)
		return;
	policy_free(pl->def);
	for (i = 0; i < pl->ndomains; i++)
		policy_free(pl->domains[i]);
	free(pl->domains);
	strset_free(&pl->local);
	cdbfile_close(pl->morercpthosts);
	free(pl);
}
