/*
 * limited.c: limited addresses (issue 11, the seed's spamgourmet plugin;
 * limited.h for the forms). At RCPT, a local recipient whose local part
 * is user.N.count or user.date.DD-MM-YYYY (separators, keywords and the
 * date's format per domain) is either refused (550 5.7.1: the N+1th
 * message, a date that is over) or unwrapped in place to user@domain,
 * so that recipient validation and delivery see the real mailbox: limited
 * runs before recipients in [pipeline].
 *
 * Counting: a count address's messages are counted in the store under
 * limited:<lower-case full address>, expiring ttl days after the last
 * count. At RCPT a reservation adds one through the store's writer
 * thread (one writer host-wide, so two workers never both take the last
 * one) and the hook waits for it (PENDING); a new value past N is
 * refused and the one added is taken back. A reservation is kept only
 * when the transaction's message is accepted (the session's message
 * count grew); a recipient refused after limited (recipient validation)
 * is given back at DATA, a transaction that ends otherwise (RSET, a
 * refusal at DATA, a disconnect) at the next MAIL, RCPT or disconnect
 * of the session. So, while the store answers, no more than N messages
 * ever pass; a refusal may meet a count that a reservation given back
 * later would have freed. Two forms of one mailbox in one transaction
 * (user.1.count and User.2.count) are one recipient: the core answers
 * the second as a duplicate and does not accept it, so its reservation
 * is given back.
 *
 * Invariants: date addresses never touch the store. A store that cannot
 * be read or written (or answers past the deadline) never holds mail:
 * the address is unwrapped and passes uncounted (no opinion), with a
 * warning logged, as greylist does; the limit is a convenience for the
 * address's owner, not a security boundary worth refusing mail for. A job
 * whose session or step is gone gives its reservation back in done().
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../core/log.h"
#include "../store/store.h"
#include "filter.h"
#include "limited.h"
#include "policy.h"

#define LIMITED_PREFIX	"limited:"
#define LIMITED_RESV	16	/* count addresses in one transaction */

extern const struct filter filter_limited;

struct limited_conf {
	bool		 enabled;
	char		*sep;
	char		*count_kw;
	char		*date_kw;
	char		*date_fmt;
	long long	 max;
	long long	 ttl;		/* days */
	char		*reply_count;
	char		*reply_date;
};

static const struct opt limited_opts[] = {
	{ "enabled", OPT_BOOL, "yes", 0, 0,
	    offsetof(struct limited_conf, enabled),
	    "recognise limited addresses (per domain)" },
	{ "separator", OPT_STR, ".", 0, 0,
	    offsetof(struct limited_conf, sep),
	    "between the user, N or the date keyword, and the rest" },
	{ "count_keyword", OPT_STR, "count", 0, 0,
	    offsetof(struct limited_conf, count_kw),
	    "the last word of user.N.count" },
	{ "date_keyword", OPT_STR, "date", 0, 0,
	    offsetof(struct limited_conf, date_kw),
	    "the word ahead of the date of user.date.DATE" },
	{ "date_format", OPT_STR, "DD-MM-YYYY", 0, 0,
	    offsetof(struct limited_conf, date_fmt),
	    "DD, MM and YYYY once each, e.g. YYYY-MM-DD" },
	{ "max_count", OPT_INT, "100", 1, 1000000,
	    offsetof(struct limited_conf, max),
	    "the largest N of user.N.count" },
	{ "ttl", OPT_INT, "365", 1, 3650,
	    offsetof(struct limited_conf, ttl),
	    "days a count is kept after its last message" },
	{ "reply_count", OPT_STR, "This address has reached its message "
	    "limit", 0, 0, offsetof(struct limited_conf, reply_count),
	    "550 5.7.1 text past N; %s is the address" },
	{ "reply_date", OPT_STR, "This address has expired", 0, 0,
	    offsetof(struct limited_conf, reply_date),
	    "550 5.7.1 text after the date; %s is the address" },
	OPT_END
};

/* A count the session holds: given back unless its message is
 * accepted. */
struct lim_resv {
	char		key[STORE_KEY_MAX + 1];
	size_t		rcpt;		/* index in txn->rcpts */
	time_t		expires;
};

struct lim_job;

struct lim_data {
	unsigned	 seq;		/* the reservations' txn->seq */
	unsigned	 messages;	/* s->messages at that txn's start */
	struct lim_resv	 resv[LIMITED_RESV];
	size_t		 n;
	struct lim_job	*job;
	char		 reply[LIMIT_REPLY_LINE + 1];
};

struct lim_job {
	struct store_batch	 b;
	struct step_token	 tok;
	struct lim_data		*ld;	/* NULL: the session is gone */
	struct store		*st;
	struct event_base	*base;
	uint64_t		 sid;
	long long		 max;
	size_t			 rcpt;
	unsigned		 seq;
	size_t			 user_len;
	char			 text[LIMIT_REPLY_LINE + 1];	/* template */
};

/* Worker-wide counts, in the log lines. */
static unsigned long long lim_refused, lim_given_back;

static int
limited_init(const void *vconf, void **state, char *err, size_t errlen)
{
	const struct limited_conf	*conf = vconf;
	char				 why[128];

	*state = NULL;
	if (limited_sep_check(conf->sep) == -1) {
		snprintf(err, errlen, "limited: separator \"%.20s\": 1 to %d "
		    "punctuation characters other than @, \" and \\",
		    conf->sep, LIMITED_SEP_MAX);
		return -1;
	}
	if (limited_keyword_check(conf->count_kw) == -1 ||
	    limited_keyword_check(conf->date_kw) == -1) {
		snprintf(err, errlen, "limited: count_keyword, "
		    "date_keyword: 1 to %d letters, digits, - or _",
		    LIMITED_KEYWORD_MAX);
		return -1;
	}
	if (strcasecmp(conf->count_kw, conf->date_kw) == 0) {
		snprintf(err, errlen, "limited: count_keyword and "
		    "date_keyword are both \"%.32s\"", conf->count_kw);
		return -1;
	}
	if (limited_format_check(conf->date_fmt, why, sizeof(why)) == -1) {
		snprintf(err, errlen, "limited: date_format \"%.32s\": %s",
		    conf->date_fmt, why);
		return -1;
	}
	return 0;
}

static void
limited_data_free(void *data)
{
	struct lim_data *ld = data;

	if (ld->job != NULL)
		ld->job->ld = NULL;	/* its done() gives back, frees */
	free(ld);
}

static struct lim_data *
lim_data_get(struct session *s)
{
	return filter_data_new(s, &filter_limited, sizeof(struct lim_data));
}

static void
giveback_done(struct store_batch *b)
{
	uint64_t sid = (uint64_t)(uintptr_t)b->arg;

	if (b->rc == -1)
		log_msg(LVL_WARN, sid, "event=limited_store action=giveback "
		    "key=\"%s\" error=\"%s\"", b->op[0].key, b->err);
	free(b);
}

/* Takes one count back (nobody waits for it). */
static void
giveback(struct store *st, struct event_base *base, uint64_t sid,
    const char *key, time_t expires)
{
	struct store_batch	*b;
	struct store_op		*op;

	if (st == NULL || base == NULL ||
	    (b = calloc(1, sizeof(*b))) == NULL)
		return;
	if ((op = store_batch_add(b, STORE_INCR, key)) == NULL) {
		free(b);
		return;
	}
	op->num = -1;
	op->expires = expires;
	b->done = giveback_done;
	b->arg = (void *)(uintptr_t)sid;
	lim_given_back++;
	log_msg(LVL_INFO, sid, "event=limited action=giveback key=\"%s\" "
	    "total_given_back=%llu", key, lim_given_back);
	if (store_batch_submit(st, base, b) == -1) {
		log_msg(LVL_WARN, sid, "event=limited_store action=giveback "
		    "error=\"writer not running\"");
		free(b);
	}
}

static void
resv_drop(struct session *s, struct lim_data *ld, size_t i)
{
	struct store	*st;
	char		 err[256];

	if ((st = store_shared(err, sizeof(err))) == NULL)
		log_msg(LVL_WARN, s->id, "event=limited_store error=\"%s\"",
		    err);
	else
		giveback(st, s->base, s->id, ld->resv[i].key,
		    ld->resv[i].expires);
	ld->resv[i] = ld->resv[--ld->n];
}

/*
 * Settles the reservations of a transaction that is over (or, ending,
 * of the session): kept when its message was accepted, else given back.
 */
static void
settle(struct session *s, struct lim_data *ld, bool ending)
{
	bool accepted = s->messages > ld->messages;

	if (ld->n == 0 || (!ending && s->txn != NULL &&
	    s->txn->seq == ld->seq))
		return;
	if (accepted)
		ld->n = 0;
	while (ld->n > 0)
		resv_drop(s, ld, ld->n - 1);
}

static void
unwrap(struct rcpt *r, size_t user_len)
{
	r->path.local[user_len] = '\0';
	snprintf(r->addr, sizeof(r->addr), "%s@%s", r->path.local,
	    r->path.domain);
}

static struct verdict
refuse(char *buf, size_t n, const char *tmpl, const char *addr)
{
	filter_reply_format(buf, n, tmpl, addr, "");
	return verdict_make(V_DENY, 550, "5.7.1", buf);
}

/* The reservation's outcome, on the loop. */
static void
job_done(struct store_batch *b)
{
	struct lim_job		*j = b->arg;
	struct lim_data		*ld = j->ld;
	struct session		*s = session_find(j->sid);
	struct rcpt		*r;
	long long		 v = b->op[0].num;
	bool			 live;

	live = ld != NULL && session_step_live(s, j->tok) &&
	    s->pending == STAGE_RCPT && s->txn != NULL &&
	    s->txn->seq == j->seq && s->txn->cur != NULL;
	if (ld != NULL)
		ld->job = NULL;
	if (b->rc == -1) {
		log_msg(LVL_WARN, j->sid, "event=limited_store action=count "
		    "key=\"%s\" error=\"%s\"", b->op[0].key, b->err);
		if (live) {
			unwrap(s->txn->cur, j->user_len);
			filter_resume(j->tok, VERDICT(V_CONTINUE));
		}
		free(j);
		return;
	}
	if (!live || v > j->max) {
		/* Over the limit, or nobody to hold it: not kept. */
		giveback(j->st, j->base, j->sid, b->op[0].key,
		    b->op[0].expires);
		if (live) {
			lim_refused++;
			filter_evidence(s, &filter_limited, "LIMITED_COUNT", 0,
			    0, "%s %lld/%lld limit reached", s->txn->cur->addr,
			    j->max, j->max);
			log_msg(LVL_INFO, j->sid, "event=limited action=refuse "
			    "reason=count rcpt=%s max=%lld total_refused=%llu",
			    s->txn->cur->addr, j->max, lim_refused);
			filter_resume(j->tok, refuse(ld->reply,
			    sizeof(ld->reply), j->text, s->txn->cur->addr));
		}
		free(j);
		return;
	}
	r = s->txn->cur;
	filter_evidence(s, &filter_limited, "LIMITED_COUNT", 0, 0,
	    "%s %lld/%lld", r->addr, v, j->max);
	log_msg(LVL_INFO, j->sid, "event=limited action=count rcpt=%s "
	    "count=%lld max=%lld", r->addr, v, j->max);
	if (ld->n < LIMITED_RESV) {
		struct lim_resv *rv = &ld->resv[ld->n++];

		snprintf(rv->key, sizeof(rv->key), "%s", b->op[0].key);
		rv->rcpt = j->rcpt;
		rv->expires = b->op[0].expires;
	}
	unwrap(r, j->user_len);
	filter_resume(j->tok, VERDICT(V_CONTINUE));
	free(j);
}

static struct verdict
count_rcpt(struct filter_call *c, const struct limited_addr *a)
{
	const struct limited_conf	*conf = c->conf;
	struct session			*s = c->s;
	struct rcpt			*r = s->txn->cur;
	struct lim_data			*ld;
	struct lim_job			*j;
	struct store_op			*op;
	struct store			*st;
	char				 key[STORE_KEY_MAX + 1], err[256];
	size_t				 i;

	snprintf(key, sizeof(key), "%s%s", LIMITED_PREFIX, r->addr);
	for (i = sizeof(LIMITED_PREFIX) - 1; key[i] != '\0'; i++)
		key[i] = (char)tolower((unsigned char)key[i]);
	if ((ld = lim_data_get(s)) == NULL) {
		unwrap(r, a->user_len);
		return VERDICT(V_CONTINUE);
	}
	settle(s, ld, false);
	if (ld->n == 0) {
		ld->seq = s->txn->seq;
		ld->messages = s->messages;
	}
	/* The same address twice in one transaction: one message. */
	for (i = 0; i < ld->n; i++)
		if (strcmp(ld->resv[i].key, key) == 0) {
			unwrap(r, a->user_len);
			return VERDICT(V_CONTINUE);
		}
	if (ld->n == LIMITED_RESV)
		return verdict_make(V_DEFER, 452, "4.5.3", "Too many limited "
		    "addresses in one message");
	if ((st = store_shared(err, sizeof(err))) == NULL) {
		log_msg(LVL_WARN, s->id, "event=limited_store error=\"%s\"",
		    err);
		unwrap(r, a->user_len);
		return VERDICT(V_CONTINUE);
	}
	if ((j = calloc(1, sizeof(*j))) == NULL ||
	    (op = store_batch_add(&j->b, STORE_INCR, key)) == NULL) {
		free(j);
		unwrap(r, a->user_len);
		return VERDICT(V_CONTINUE);
	}
	op->num = 1;
	op->expires = store_now() + (time_t)conf->ttl * 86400;
	j->b.done = job_done;
	j->b.arg = j;
	j->tok = c->step;
	j->ld = ld;
	j->st = st;
	j->base = s->base;
	j->sid = s->id;
	j->max = a->n;
	j->rcpt = s->txn->rcpts != NULL ? (size_t)(r - s->txn->rcpts) : 0;
	j->seq = s->txn->seq;
	j->user_len = a->user_len;
	snprintf(j->text, sizeof(j->text), "%s", conf->reply_count);
	if (s->base == NULL || store_batch_submit(st, s->base, &j->b) == -1) {
		log_msg(LVL_WARN, s->id, "event=limited_store action=count "
		    "error=\"writer not running\"");
		free(j);
		unwrap(r, a->user_len);
		return VERDICT(V_CONTINUE);
	}
	ld->job = j;
	return VERDICT(V_PENDING);
}

static struct verdict
date_rcpt(struct filter_call *c, const struct limited_addr *a)
{
	const struct limited_conf	*conf = c->conf;
	struct session			*s = c->s;
	struct rcpt			*r = s->txn->cur;
	struct lim_data			*ld;

	if (limited_date_over(a, store_now())) {
		lim_refused++;
		filter_evidence(s, &filter_limited, "LIMITED_DATE", 0, 0,
		    "%s until %04d-%02d-%02d expired", r->addr, a->y, a->m,
		    a->d);
		log_msg(LVL_INFO, s->id, "event=limited action=refuse "
		    "reason=date rcpt=%s total_refused=%llu", r->addr,
		    lim_refused);
		if ((ld = lim_data_get(s)) == NULL)
			return verdict_make(V_DENY, 550, "5.7.1",
			    "This address has expired");
		return refuse(ld->reply, sizeof(ld->reply),
		    conf->reply_date, r->addr);
	}
	filter_evidence(s, &filter_limited, "LIMITED_DATE", 0, 0,
	    "%s until %04d-%02d-%02d", r->addr, a->y, a->m, a->d);
	unwrap(r, a->user_len);
	return VERDICT(V_CONTINUE);
}

static struct verdict
limited_rcpt(struct filter_call *c)
{
	const struct limited_conf	*conf = c->conf;
	struct rcpt			*r;
	struct limited_addr		 a;
	struct limited_form		 f;

	if (c->s->txn == NULL || (r = c->s->txn->cur) == NULL)
		return VERDICT(V_CONTINUE);
	if (!conf->enabled || !r->local || r->path.quoted ||
	    r->path.literal || r->path.domain[0] == '\0')
		return VERDICT(V_CONTINUE);
	f.sep = conf->sep;
	f.count_kw = conf->count_kw;
	f.date_kw = conf->date_kw;
	f.date_fmt = conf->date_fmt;
	f.max = conf->max;
	switch (limited_parse(&f, r->path.local, strlen(r->path.local),
	    &a)) {
	case LIMITED_COUNT:
		return count_rcpt(c, &a);
	case LIMITED_DATE:
		return date_rcpt(c, &a);
	default:
		return VERDICT(V_CONTINUE);
	}
}

/* A new transaction: the last one's reservations are settled. */
static struct verdict
limited_mail(struct filter_call *c)
{
	struct lim_data *ld = filter_data(c->s, &filter_limited);

	if (ld != NULL)
		settle(c->s, ld, false);
	return VERDICT(V_CONTINUE);
}

/* Every RCPT is answered: a recipient refused after limited (unknown
 * user) gives its count back. */
static struct verdict
limited_data(struct filter_call *c)
{
	struct lim_data	*ld = filter_data(c->s, &filter_limited);
	struct txn	*t = c->s->txn;
	size_t		 i;

	if (ld == NULL || t == NULL || t->seq != ld->seq)
		return VERDICT(V_CONTINUE);
	for (i = ld->n; i > 0; i--)
		if (ld->resv[i - 1].rcpt >= t->nrcpt ||
		    !t->rcpts[ld->resv[i - 1].rcpt].accepted)
			resv_drop(c->s, ld, i - 1);
	return VERDICT(V_CONTINUE);
}

static struct verdict
limited_disconnect(struct filter_call *c)
{
	struct lim_data *ld = filter_data(c->s, &filter_limited);

	if (ld != NULL)
		settle(c->s, ld, true);
	return VERDICT(V_CONTINUE);
}

/* A reservation that timed out: the recipient passes unwrapped (no
 * opinion, as for a store that cannot be written) and done(), finding
 * the step gone, gives the count back. */
static void
limited_cancel(struct filter_call *c)
{
	struct lim_data	*ld = filter_data(c->s, &filter_limited);
	struct rcpt	*r = c->s->txn != NULL ? c->s->txn->cur : NULL;

	if (ld == NULL || ld->job == NULL)
		return;
	log_msg(LVL_WARN, c->s->id, "event=limited_store action=count "
	    "error=\"timed out\"");
	if (r != NULL && ld->job->seq == c->s->txn->seq)
		unwrap(r, ld->job->user_len);
	ld->job->ld = NULL;
	ld->job = NULL;
}

const struct filter filter_limited = {
	.name = "limited",
	.summary = "limited addresses: user.N.count takes N messages, "
	    "user.date.DD-MM-YYYY mail until that day",
	.opts = limited_opts,
	.conf_size = sizeof(struct limited_conf),
	.init = limited_init,
	.hook = {
		[STAGE_MAIL] = limited_mail,
		[STAGE_RCPT] = limited_rcpt,
		[STAGE_DATA] = limited_data,
		[STAGE_DISCONNECT] = limited_disconnect,
	},
	.cancel = limited_cancel,
	.data_free = limited_data_free,
	.fail = FAIL_CONTINUE,
};
