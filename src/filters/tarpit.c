/*
 * tarpit.c: slows down clients that misbehave (POLICY-RESEARCH §3.2).
 *
 * A session's bad events are s->errors: the core counts there every
 * permanently refused recipient (5xx, rcpt_refuse) and every protocol
 * error (unknown command, syntax, bad sequence). Temporary refusals
 * (greylisting, rate limits) are not misbehaviour and do not count.
 * From the `after`-th bad event on, each MAIL,
 * RCPT and DATA reply waits: `delay` ms, doubling with every further
 * bad event, at most max_delay per reply and session_max per session
 * (far inside RFC 5321 §4.5.3.2's 5-minute client timeouts, and below
 * [server] timeout_filter, so the pipeline's timeout never fires). The
 * wait is a timer on the worker's event base: the hook returns PENDING
 * and the timer resumes it with the call's step token (a stale token is
 * dropped by filter_resume). No sleep, no worker time: other sessions
 * are served meanwhile. At most max_sessions sessions per worker are
 * tarpitted at once (a flood of bad clients must not hold every slot);
 * past it a session goes undelayed. Authenticated and relay clients are
 * never tarpitted.
 *
 * Bad evidence counts too: every evidence_step points of the positive
 * scores on the session's evidence (a DNSBL listing, a bad HELO, bad
 * karma history) is one more bad event, so a listed client starts
 * slowed and one with more against it waits longer; the same caps hold.
 * And the seeds' tarpit patch: past the rcpt_after-th recipient of a
 * transaction, every further RCPT reply waits rcpt_delay ms (or the
 * error delay when that is longer), whatever the client's record: a
 * client spraying recipients pays for each.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include <event2/event.h>

#include "../core/log.h"
#include "../smtp/session.h"
#include "filter.h"
#include "policy.h"
#include "tarpit.h"

extern const struct filter filter_tarpit;

struct tarpit_data {
	struct event		*ev;
	struct step_token	 tok;
	long long		 spent;		/* ms delayed so far */
	bool			 counted;	/* in tarpit_active */
	bool			 full_logged;
};

static unsigned	tarpit_active;	/* tarpitted, this worker */

static const struct opt tarpit_opts[] = {
	{ "after", OPT_INT, "3", 1, 1000, offsetof(struct tarpit_conf,
	    after), "refused recipients and errors before replies slow "
	    "down" },
	{ "delay", OPT_INT, "1000", 1, 60000, offsetof(struct tarpit_conf,
	    delay), "first delay, ms; doubles with each further bad event" },
	{ "max_delay", OPT_INT, "8000", 1, 60000, offsetof(struct
	    tarpit_conf, max_delay), "most delay of one reply, ms" },
	{ "session_max", OPT_INT, "60000", 0, 600000, offsetof(struct
	    tarpit_conf, session_max), "most delay of one session, ms" },
	{ "max_sessions", OPT_INT, "64", 0, 100000, offsetof(struct
	    tarpit_conf, max_sessions), "sessions tarpitted at once, per "
	    "worker" },
	{ "evidence_step", OPT_FLOAT, "5", 0, 1000, offsetof(struct
	    tarpit_conf, evidence_step), "positive evidence score that "
	    "counts as one bad event (0: evidence is not counted)" },
	{ "rcpt_after", OPT_INT, "50", 0, 100000, offsetof(struct
	    tarpit_conf, rcpt_after), "recipients of a transaction before "
	    "each further RCPT waits rcpt_delay (0: off)" },
	{ "rcpt_delay", OPT_INT, "1000", 1, 60000, offsetof(struct
	    tarpit_conf, rcpt_delay), "ms each RCPT past rcpt_after waits" },
	OPT_END
};

long long
tarpit_delay(const struct tarpit_conf *conf, unsigned bad, long long spent)
{
	long long	d = conf->delay;
	unsigned	n;

	if (bad < conf->after || spent >= conf->session_max)
		return 0;
	for (n = bad - (unsigned)conf->after; n > 0 && d < conf->max_delay;
	    n--)
		d *= 2;
	if (d > conf->max_delay)
		d = conf->max_delay;
	if (d > conf->session_max - spent)
		d = conf->session_max - spent;
	return d;
}

unsigned
tarpit_bad(const struct tarpit_conf *conf, unsigned errors, double sum)
{
	double extra;

	if (conf->evidence_step <= 0 || sum <= 0)
		return errors;
	extra = sum / conf->evidence_step;
	return errors + (extra > 1000 ? 1000 : (unsigned)extra);
}

/* The sum of the positive evidence scores on the session. */
static double
evidence_sum(const struct session *s)
{
	double	sum = 0;
	size_t	i;

	if (s->sev == NULL)
		return 0;
	for (i = 0; i < s->sev->nev && i < LIMIT_EVIDENCE; i++)
		if (s->sev->ev[i].score > 0)
			sum += s->sev->ev[i].score;
	return sum;
}

static void
tarpit_data_free(void *p)
{
	struct tarpit_data *d = p;

	if (d->ev != NULL)
		event_free(d->ev);
	if (d->counted)
		tarpit_active--;
	free(d);
}

static void
tarpit_fire(evutil_socket_t fd, short what, void *arg)
{
	struct tarpit_data *d = arg;

	(void)fd;
	(void)what;
	filter_resume(d->tok, VERDICT(V_CONTINUE));
}

static void
tarpit_cancel(struct filter_call *c)
{
	struct tarpit_data *d = filter_data(c->s, &filter_tarpit);

	if (d != NULL && d->ev != NULL)
		evtimer_del(d->ev);
}

static struct tarpit_data *
tarpit_data(struct filter_call *c)
{
	return filter_data_new(c->s, &filter_tarpit,
	    sizeof(struct tarpit_data));
}

/* Arms the session's timer for ms; false when it cannot. */
static bool
tarpit_arm(struct filter_call *c, struct tarpit_data *d, long long ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	if (d->ev == NULL && (c->s->base == NULL || (d->ev =
	    evtimer_new(c->s->base, tarpit_fire, d)) == NULL))
		return false;
	d->tok = c->step;
	return evtimer_add(d->ev, &tv) == 0;
}

static struct verdict
tarpit_run(struct filter_call *c, bool rcpt)
{
	const struct tarpit_conf	*conf = c->conf;
	struct tarpit_data		*d;
	long long			 ms, cap;
	unsigned			 bad;

	if (c->s->authenticated || c->s->trusted ||
	    (d = tarpit_data(c)) == NULL)
		return VERDICT(V_CONTINUE);
	bad = tarpit_bad(conf, c->s->errors, evidence_sum(c->s));
	ms = tarpit_delay(conf, bad, d->spent);
	if (rcpt && conf->rcpt_after > 0 &&
	    c->s->txn != NULL && c->s->txn->nrcpt > (size_t)conf->rcpt_after &&
	    ms < conf->rcpt_delay && d->spent < conf->session_max)
		ms = conf->rcpt_delay < conf->session_max - d->spent ?
		    conf->rcpt_delay : conf->session_max - d->spent;
	if (ms == 0)
		return VERDICT(V_CONTINUE);
	/* Below the pipeline's own timeout for a pending hook. */
	cap = pipeline_active != NULL && pipeline_active->timeout > 1 ?
	    pipeline_active->timeout * 1000 - 500 : 500;
	if (ms > cap)
		ms = cap;
	if (!d->counted) {
		if (tarpit_active >= (unsigned)conf->max_sessions) {
			if (!d->full_logged)
				log_msg(LVL_INFO, c->s->id, "event=tarpit_full "
				    "active=%u", tarpit_active);
			d->full_logged = true;
			return VERDICT(V_CONTINUE);
		}
		d->counted = true;
		tarpit_active++;
		filter_evidence(c->s, &filter_tarpit, "tarpit", 0, 0,
		    "bad=%u rcpts=%zu first_delay_ms=%lld", bad,
		    c->s->txn != NULL ? c->s->txn->nrcpt : 0, ms);
	}
	if (!tarpit_arm(c, d, ms))
		return VERDICT(V_CONTINUE);
	d->spent += ms;
	log_msg(LVL_DEBUG, c->s->id, "event=tarpit bad=%u delay_ms=%lld "
	    "spent_ms=%lld", bad, ms, d->spent);
	return VERDICT(V_PENDING);
}

static struct verdict
tarpit_hook(struct filter_call *c)
{
	return tarpit_run(c, false);
}

static struct verdict
tarpit_rcpt(struct filter_call *c)
{
	return tarpit_run(c, true);
}

const struct filter filter_tarpit = {
	.name = "tarpit",
	.summary = "delay the replies of clients with refused recipients "
	    "or errors (a timer, doubling, capped)",
	.opts = tarpit_opts,
	.conf_size = sizeof(struct tarpit_conf),
	.hook = {
		[STAGE_MAIL] = tarpit_hook,
		[STAGE_RCPT] = tarpit_rcpt,
		[STAGE_DATA] = tarpit_hook,
	},
	.cancel = tarpit_cancel,
	.data_free = tarpit_data_free,
	.fail = FAIL_CONTINUE,
};
