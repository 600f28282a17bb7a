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
#include <stdlib.h>
#include <strings.h>
#include <string.h>

#include "../core/log.h"
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
	if (st == STAGE_RCPT && s->txn->cur != NULL)
		return s->txn->cur->policy;
	if ((st == STAGE_DATA || st == STAGE_DATA_POST) &&
	    s->txn->policy != NULL)
		return s->txn->policy;
	return pipeline_active->def;
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
		if (f->hook[st] == NULL)
			continue;
		(void)session_step_begin(s);
		call_init(&c, s, f, p);
		v = f->hook[st](&c);
		if (v.code == V_PENDING) {
			session_timer(s, pl->timeout, pipeline_timeout);
			return;
		}
		if (v.code != V_CONTINUE) {
			v.by = f->name;
			session_resume(s->id, v);
			return;
		}
	}
	session_resume(s->id, VERDICT(V_CONTINUE));
}

void
filter_resume(struct step_token tok, struct verdict v)
{
	struct session *s = session_find(tok.sid);

	if (!session_step_live(s, tok) || s->pending >= STAGE_QUEUE) {
		log_msg(LVL_DEBUG, tok.sid, "event=stale_completion");
		return;		/* gone, timed out, or moved on */
	}
	session_timer(s, 0, NULL);
	if (v.code == V_CONTINUE) {
		s->pl_index++;
		pipeline_run(s);
		return;
	}
	v.by = pipeline_active->order[s->pl_index]->name;
	session_resume(tok.sid, v);
}

/* Disconnect: cancel a hook still pending, then tell every filter. */
static void
pipeline_disconnect(struct session *s)
{
	struct pipeline		*pl = pipeline_active;
	struct filter_call	 c;
	size_t			 i;

	if (s->state == ST_WAIT && s->pending < STAGE_QUEUE &&
	    s->pl_index < pl->n &&
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
}

void
pipeline_stage(struct session *s, enum stage st)
{
	if (st == STAGE_DISCONNECT) {
		pipeline_disconnect(s);
		return;
	}
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
