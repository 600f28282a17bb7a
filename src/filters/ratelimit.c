/*
 * ratelimit.c: rate limits in and out (POLICY-RESEARCH §4, issue 11).
 *
 * Inbound, for clients that are neither relay nor authenticated: per
 * client IP (an IPv6 client by its /64) connections at connect (421
 * 4.7.1 and close), messages at MAIL and recipients at RCPT; messages
 * per client network (/24, IPv6 /48), per envelope sender address and
 * per sender domain at MAIL; messages per recipient address at RCPT.
 * Past a limit: 451 4.7.1 with the time after which one more fits.
 * Bounces (the null sender) per recipient address: past the limit the
 * recipient is held for bounce_hold, during which every bounce to it
 * gets 550 5.7.1 (a joe-job's backscatter comes from innocent MTAs that
 * would retry a 4xx for days; docs/FILTERS.md says why 5xx).
 *
 * Outbound, for the site's own senders (relay clients and authenticated
 * users, where spam from a hacked account shows first): messages and
 * recipients per authenticated user (s->auth_user), or per relay client
 * address without AUTH. Past a limit, out_action says: defer (451
 * 4.7.1) or suspend: the store key "suspend:SUBJECT" is written (writer
 * thread, never waited for) and every later MAIL and RCPT of that
 * subject gets 550 5.7.1 until moatctl suspend lift removes it. MAIL
 * reads the key (a direct LMDB read on the loop, as karma does). Each
 * outbound message that reaches DATA adds to the hour's counters
 * "out:YYYYMMDDHH:{m,r}:SUBJECT" (one batch per message, never waited
 * for) that moatctl top-senders sums.
 *
 * Counters: GCRA cells in one core/window table per process, made at the
 * first init(), which runs in the master at config load, before the
 * workers are forked: the workers share it (MAP_SHARED), so a client
 * spread over the workers meets one limit. The master publishes it as
 * var_dir/run/ratelimit.win, where moatctl rate peeks at it with keys
 * built by the same ratelimit_key(). It survives reloads (the new
 * config is loaded before the old is freed) and not restarts. No store
 * write per event: the counters are hot state.
 *
 * Per-domain knobs: every option may be set in a [domain x] section; at
 * RCPT the recipient's domain's policy applies (a client policy's when
 * one is set), at connect and MAIL the default's. Different limits on
 * one key count in different cells. An event refused by a limit is not
 * counted in it; the limits checked before it (in the order of the
 * option table) have counted it.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/log.h"
#include "../core/window.h"
#include "../store/store.h"
#include "filter.h"
#include "policy.h"
#include "ratelimit.h"

#define RL_CELLS	65536	/* 1 MB shared, for every policy */
#define RL_TEXT		160	/* a reply text we compose */

extern const struct filter filter_ratelimit;

static const char *const rl_names[RL_KINDS + 1] = {
	"in_connections", "in_messages", "in_recipients", "in_net_messages",
	"in_sender_messages", "in_domain_messages", "in_rcpt_messages",
	"bounces_per_rcpt", "out_messages", "out_recipients", "bounce_hold",
};

static const char rl_by[RL_KINDS + 1] = {
	'i', 'i', 'i', 'n', 'a', 'd', 'a', 'a', 'o', 'o', 'a',
};

struct ratelimit_conf {
	char		*limit[RL_KINDS];
	char		*text;		/* 451 text, %s: the retry time */
	char		*out_action;	/* defer | suspend */
	char		*suspend_text;
	long long	 bounce_hold;	/* seconds */
	char		*bounce_text;	/* 550 text, %s: the hold left */
	long long	 top_retention;	/* hours, 0: no counting */
};

struct ratelimit_state {
	struct window_limit	 lim[RL_KINDS + 1];	/* + the hold */
	bool			 suspend;
	struct window_table	*table;		/* "ratelimit", shared */
};

/* Per session: reply texts (they must outlive the hook, one per stage),
 * the outbound subject's suspension, the transaction already counted
 * for top-senders. */
struct ratelimit_data {
	char		text[STAGE_COUNT][RL_TEXT];
	bool		suspended;
	bool		refusal_logged;
	unsigned	top_seq;
};


#define RL_OPT(k, i, h) { k, OPT_STR, "", 0, 0, \
	offsetof(struct ratelimit_conf, limit) + (i) * sizeof(char *), h }

static const struct opt ratelimit_opts[] = {
	RL_OPT("in_connections", RL_IN_CONN,
	    "connections per client IP (/64 for IPv6), N/period; 421 past it"),
	RL_OPT("in_messages", RL_IN_MSG,
	    "messages (MAILs) per client IP, N/period: 451 4.7.1 past it"),
	RL_OPT("in_recipients", RL_IN_RCPT,
	    "recipients per client IP, N/period: 451 4.7.1 past it"),
	RL_OPT("in_net_messages", RL_IN_NET,
	    "messages per client network (/24, IPv6 /48), N/period"),
	RL_OPT("in_sender_messages", RL_IN_SENDER,
	    "messages per envelope sender address, N/period"),
	RL_OPT("in_domain_messages", RL_IN_DOMAIN,
	    "messages per envelope sender domain, N/period"),
	RL_OPT("in_rcpt_messages", RL_IN_TO,
	    "messages per recipient address, N/period"),
	RL_OPT("bounces_per_rcpt", RL_BOUNCE,
	    "bounces (null sender) per recipient address, N/period; past "
	    "it the recipient is held (550 5.7.1 for bounces)"),
	RL_OPT("out_messages", RL_OUT_MSG,
	    "messages per authenticated user or relay client, N/period"),
	RL_OPT("out_recipients", RL_OUT_RCPT,
	    "recipients per authenticated user or relay client, N/period"),
	{ "text", OPT_STR, "Rate limit exceeded, retry after %s", 0, 0,
	    offsetof(struct ratelimit_conf, text),
	    "reply text; %s is the time after which one more fits" },
	{ "out_action", OPT_STR, "defer", 0, 0,
	    offsetof(struct ratelimit_conf, out_action),
	    "past an out_ limit: defer (451) or suspend the user or relay "
	    "client (550 until moatctl suspend lift)" },
	{ "suspend_text", OPT_STR, "Account suspended for sending too much "
	    "mail, contact the postmaster", 0, 0,
	    offsetof(struct ratelimit_conf, suspend_text),
	    "550 5.7.1 text for a suspended user or relay client" },
	{ "bounce_hold", OPT_INT, "3600", 1, 7 * 86400,
	    offsetof(struct ratelimit_conf, bounce_hold),
	    "seconds bounces to a recipient past bounces_per_rcpt are "
	    "refused" },
	{ "bounce_text", OPT_STR, "Too many bounces to this recipient, "
	    "refused for %s", 0, 0, offsetof(struct ratelimit_conf,
	    bounce_text),
	    "550 5.7.1 text for a held bounce; %s the time left" },
	{ "top_retention", OPT_INT, "48", 0, 24 * 366,
	    offsetof(struct ratelimit_conf, top_retention),
	    "hours the per-hour outbound counters (moatctl top-senders) are "
	    "kept; 0: not counted" },
	OPT_END
};

/* ---- Shared with moatctl (ratelimit.h) ------------------------------ */

const char *
ratelimit_name(enum rl_kind k)
{
	return k <= RL_HOLD ? rl_names[k] : "?";
}

char
ratelimit_by(enum rl_kind k)
{
	return k <= RL_HOLD ? rl_by[k] : '?';
}

/* An IP address's bytes, cut to its network for the kind: 4 (IPv4, or
 * 3 for a /24), 8 (/64) or 6 (/48) bytes and a '6'. 0 when not an IP. */
static size_t
key_ip(unsigned char *k, const char *ip, bool net)
{
	struct in6_addr	a6;
	struct in_addr	a4;

	if (inet_pton(AF_INET, ip, &a4) == 1) {
		memcpy(k, &a4, 4);
		return net ? 3 : 4;
	}
	if (inet_pton(AF_INET6, ip, &a6) != 1)
		return 0;
	if (IN6_IS_ADDR_V4MAPPED(&a6)) {
		memcpy(k, &a6.s6_addr[12], 4);
		return net ? 3 : 4;
	}
	memcpy(k, &a6, net ? 6 : 8);
	k[net ? 6 : 8] = '6';
	return net ? 7 : 9;
}

size_t
ratelimit_key(unsigned char *out, size_t cap, enum rl_kind k,
    const char *subject, bool user)
{
	size_t	n, i, m;
	char	by;

	n = strnlen(subject, RL_SUBJECT_MAX + 1);
	if (k > RL_HOLD || n == 0 || n > RL_SUBJECT_MAX || cap < n + 3 ||
	    cap < 12)
		return 0;
	out[0] = (unsigned char)('a' + k);	/* kinds count apart */
	by = rl_by[k];
	if (by == 'i' || by == 'n') {
		out[1] = 'i';
		m = key_ip(out + 2, subject, by == 'n');
		return m == 0 ? 0 : m + 2;
	}
	if (by == 'o' && !user) {
		out[1] = 'r';
		m = key_ip(out + 2, subject, false);
		return m == 0 ? 0 : m + 2;
	}
	out[1] = by == 'o' ? 'u' : (unsigned char)by;
	for (i = 0; i < n; i++)
		out[2 + i] = by == 'o' ? (unsigned char)subject[i] :
		    (unsigned char)tolower((unsigned char)subject[i]);
	return n + 2;
}

const struct window_limit *
ratelimit_limits(const void *state)
{
	const struct ratelimit_state *rs = state;

	return rs != NULL ? rs->lim : NULL;
}

int
ratelimit_suspend_key(char *out, size_t n, const char *subject)
{
	if (subject[0] == '\0' ||
	    (size_t)snprintf(out, n, RL_SUSPEND "%s", subject) >= n)
		return -1;
	return 0;
}

size_t
ratelimit_suspend_fmt(char *out, size_t n, time_t since, const char *reason)
{
	size_t	len, i;
	int	w;

	w = snprintf(out, n, "%lld ", (long long)since);
	if (w < 0 || (size_t)w >= n)
		return 0;
	len = (size_t)w;
	for (i = 0; reason[i] != '\0' && i < RL_REASON_MAX && len + 1 < n;
	    i++)
		if (reason[i] != '\r' && reason[i] != '\n')
			out[len++] = reason[i];
	out[len] = '\0';
	return len;
}

int
ratelimit_suspend_parse(const void *val, size_t len, time_t *since,
    char *reason, size_t n)
{
	char		 v[STORE_VAL_MAX + 1], *end;
	long long	 u;

	if (len == 0 || len > STORE_VAL_MAX)
		return -1;
	memcpy(v, val, len);
	v[len] = '\0';
	if (!isdigit((unsigned char)v[0]))
		return -1;
	u = strtoll(v, &end, 10);
	if (*end != ' ' && *end != '\0')
		return -1;
	*since = (time_t)u;
	snprintf(reason, n, "%s", *end == ' ' ? end + 1 : "");
	return 0;
}

int
ratelimit_top_prefix(char *out, size_t n, time_t t)
{
	struct tm	tm;
	char		h[16];

	if (gmtime_r(&t, &tm) == NULL ||
	    strftime(h, sizeof(h), "%Y%m%d%H", &tm) == 0 ||
	    (size_t)snprintf(out, n, RL_TOP "%s:", h) >= n)
		return -1;
	return 0;
}

/* ---- Init ------------------------------------------------------------ */

static void
ratelimit_fini(void *state)
{
	struct ratelimit_state *st = state;

	if (st != NULL)
		window_table_free(st->table);
	free(st);
}

static int
ratelimit_init(const void *vconf, void **state, char *err, size_t errlen)
{
	const struct ratelimit_conf	*conf = vconf;
	struct ratelimit_state		*st;
	char				 msg[200];
	int				 i;

	if ((st = calloc(1, sizeof(*st))) == NULL)
		return -1;
	*state = st;
	if ((st->table = window_table_shared("ratelimit", RL_CELLS)) == NULL) {
		snprintf(err, errlen, "cannot map the rate table");
		free(st);
		*state = NULL;
		return -1;
	}
	for (i = 0; i < RL_KINDS; i++)
		if (window_limit_parse(conf->limit[i], &st->lim[i], msg,
		    sizeof(msg)) == -1) {
			snprintf(err, errlen, "%s: %s", rl_names[i], msg);
			return -1;
		}
	st->lim[RL_HOLD].count = 1;
	st->lim[RL_HOLD].period_ms = (uint64_t)conf->bounce_hold * 1000;
	if (strcmp(conf->out_action, "suspend") == 0)
		st->suspend = true;
	else if (strcmp(conf->out_action, "defer") != 0) {
		snprintf(err, errlen, "out_action: '%s' is not defer or "
		    "suspend", conf->out_action);
		return -1;
	}
	return 0;
}

/* ---- Per session ------------------------------------------------------ */

static bool
outbound(const struct session *s)
{
	return s->authenticated || s->trusted;
}

/* Who an outbound client is: its user, or its address. */
static const char *
out_subject(const struct session *s)
{
	return s->authenticated ? s->auth_user : s->ip;
}

static struct ratelimit_data *
rl_data(struct filter_call *c)
{
	if (c->data == NULL)
		c->data = filter_data_new(c->s, &filter_ratelimit,
		    sizeof(struct ratelimit_data));
	return c->data;
}

/* "36s", "12m", "3h": the retry time, rounded up. */
static void
fmt_retry(char *out, size_t n, uint64_t ms)
{
	uint64_t s = (ms + 999) / 1000;

	if (s < 120)
		snprintf(out, n, "%llus", (unsigned long long)s);
	else if (s < 7200)
		snprintf(out, n, "%llum", (unsigned long long)(s + 59) / 60);
	else
		snprintf(out, n, "%lluh", (unsigned long long)(s + 3599) /
		    3600);
}

/* The reply: a configured template in the session's data for stage st,
 * or fallback when there is no data. */
static struct verdict
rl_reply(struct filter_call *c, enum stage st, enum verdict_code v,
    int smtp, const char *tmpl, const char *arg, const char *fallback)
{
	struct ratelimit_data *d = rl_data(c);

	if (d != NULL)
		filter_reply_format(d->text[st], sizeof(d->text[st]), tmpl,
		    arg, "");
	return verdict_make(v, smtp, st == STAGE_CONNECT ? "4.7.1" :
	    smtp >= 500 ? "5.7.1" : "4.7.1", d != NULL ? d->text[st] :
	    fallback);
}

/*
 * Counts one event of kind k for subject; the window's answer, with the
 * refusal's evidence and log line when refused. A limit of 0, or a
 * subject that makes no key, always allows.
 */
static struct window_result
rl_take(struct filter_call *c, enum rl_kind k, const char *subject,
    bool user)
{
	const struct ratelimit_state	*rs = c->state;
	const struct window_limit	*l = &rs->lim[k];
	struct window_result		 r = { true, false, 0, 0 };
	unsigned char			 key[RL_KEY_MAX];
	char				 retry[16];
	size_t				 n;

	if (l->count == 0 || (n = ratelimit_key(key, sizeof(key), k,
	    subject, user)) == 0)
		return r;
	r = window_take(rs->table, l, key, n, 1, window_now_ms());
	if (r.allowed)
		return r;
	fmt_retry(retry, sizeof(retry), r.retry_ms);
	filter_evidence(c->s, &filter_ratelimit, rl_names[k], 0, 0,
	    "key=%s used=%llu limit=%llu/%llus retry=%s", subject,
	    (unsigned long long)r.used, (unsigned long long)l->count,
	    (unsigned long long)(l->period_ms / 1000), retry);
	log_msg(LVL_INFO, c->s->id, "event=ratelimit limit=%s used=%llu "
	    "max=%llu period_ms=%llu retry_ms=%llu", rl_names[k],
	    (unsigned long long)r.used, (unsigned long long)l->count,
	    (unsigned long long)l->period_ms,
	    (unsigned long long)r.retry_ms);
	return r;
}

/* Counts an inbound event; the 421 (connect) or 451 past the limit. */
static struct verdict
rl_in(struct filter_call *c, enum rl_kind k, const char *subject,
    enum stage st)
{
	const struct ratelimit_conf	*conf = c->conf;
	struct window_result		 r;
	char				 retry[16];

	r = rl_take(c, k, subject, false);
	if (r.allowed)
		return VERDICT(V_CONTINUE);
	fmt_retry(retry, sizeof(retry), r.retry_ms);
	return rl_reply(c, st, st == STAGE_CONNECT ? V_DENY_DISCONNECT :
	    V_DEFER, st == STAGE_CONNECT ? 421 : 451, conf->text, retry,
	    "Rate limit exceeded");
}

/* ---- Suspension ------------------------------------------------------ */

static void
suspend_written(struct store_batch *b)
{
	if (b->rc == -1)
		log_msg(LVL_WARN, 0, "event=ratelimit_store action=suspend "
		    "error=\"%s\"", b->err);
	free(b);
}

/* Suspends the session's outbound subject: at once for this session,
 * and in the store (not waited for) for every later one. */
static void
rl_suspend(struct filter_call *c, struct ratelimit_data *d, enum rl_kind k)
{
	struct store_batch	*b;
	struct store_op		*op;
	struct store		*st;
	char			 key[STORE_KEY_MAX + 1], err[256], why[64];

	if (d != NULL)
		d->suspended = true;
	snprintf(why, sizeof(why), "over %s", rl_names[k]);
	/* Loud, and once: later attempts find the key and are refused
	 * before they count again. */
	log_msg(LVL_WARN, c->s->id, "event=ratelimit action=suspend "
	    "subject=\"%s\" ip=%s reason=\"%s\"", out_subject(c->s), c->s->ip,
	    why);
	filter_evidence(c->s, &filter_ratelimit, "SUSPEND", 0, 0,
	    "subject=%s reason=%s", out_subject(c->s), why);
	if (c->s->base == NULL || ratelimit_suspend_key(key, sizeof(key),
	    out_subject(c->s)) == -1)
		return;
	if ((st = store_shared(err, sizeof(err))) == NULL) {
		log_msg(LVL_WARN, c->s->id, "event=ratelimit_store "
		    "error=\"%s\"", err);
		return;
	}
	if ((b = calloc(1, sizeof(*b))) == NULL)
		return;
	b->done = suspend_written;
	if ((op = store_batch_add(b, STORE_PUT, key)) == NULL) {
		free(b);
		return;
	}
	op->len = ratelimit_suspend_fmt((char *)op->val, sizeof(op->val),
	    store_now(), why);
	op->expires = 0;
	if (store_batch_submit(st, c->s->base, b) == -1) {
		log_msg(LVL_WARN, c->s->id, "event=ratelimit_store "
		    "action=suspend error=\"writer not running\"");
		free(b);
	}
}

/* Reads the outbound subject's suspension (a direct read); true when
 * it is suspended. A store that cannot be read suspends nobody. */
static bool
rl_read_suspend(struct filter_call *c)
{
	struct store_batch	*b;
	struct store_op		*op;
	struct store		*st;
	char			 key[STORE_KEY_MAX + 1], err[256];
	bool			 yes = false;

	if (ratelimit_suspend_key(key, sizeof(key), out_subject(c->s)) == -1)
		return false;
	if ((st = store_shared(err, sizeof(err))) == NULL) {
		log_msg(LVL_WARN, c->s->id, "event=ratelimit_store "
		    "error=\"%s\"", err);
		return false;
	}
	if ((b = calloc(1, sizeof(*b))) == NULL)
		return false;
	if ((op = store_batch_add(b, STORE_GET, key)) != NULL &&
	    store_batch_run(st, b) == 0 && op->result >= 0)
		yes = true;
	free(b);
	return yes;
}

/* The 550 of a suspended subject, its log line once per session. */
static struct verdict
rl_suspended(struct filter_call *c, struct ratelimit_data *d,
    enum stage st)
{
	const struct ratelimit_conf *conf = c->conf;

	if (d == NULL || !d->refusal_logged)
		log_msg(LVL_INFO, c->s->id, "event=ratelimit action=refuse "
		    "reason=suspended subject=\"%s\" ip=%s",
		    out_subject(c->s), c->s->ip);
	if (d != NULL)
		d->refusal_logged = true;
	return rl_reply(c, st, V_DENY, 550, conf->suspend_text, "",
	    "Account suspended");
}

/* True when the policy observes this filter (pipeline.c turns its
 * refusals into would_reject): nothing may be written then. */
static bool
rl_observed(const struct filter_call *c)
{
	return c->policy != NULL && (c->policy->observe_all ||
	    c->policy->observe[filter_index(&filter_ratelimit)]);
}

/* Counts an outbound event; past the limit 451, or the suspension. */
static struct verdict
rl_out(struct filter_call *c, enum rl_kind k, enum stage st)
{
	const struct ratelimit_state	*rs = c->state;
	const struct ratelimit_conf	*conf = c->conf;
	struct ratelimit_data		*d;
	struct window_result		 r;
	char				 retry[16];

	r = rl_take(c, k, out_subject(c->s), c->s->authenticated);
	if (r.allowed)
		return VERDICT(V_CONTINUE);
	/* Observed, the suspension is only what would have been. */
	if (rs->suspend && rl_observed(c))
		return rl_reply(c, st, V_DENY, 550, conf->suspend_text, "",
		    "Account suspended");
	if (rs->suspend) {
		d = rl_data(c);
		rl_suspend(c, d, k);
		return rl_suspended(c, d, st);
	}
	fmt_retry(retry, sizeof(retry), r.retry_ms);
	return rl_reply(c, st, V_DEFER, 451, conf->text, retry,
	    "Rate limit exceeded");
}

/* ---- Hooks ------------------------------------------------------------ */

static struct verdict
ratelimit_connect(struct filter_call *c)
{
	if (outbound(c->s))
		return VERDICT(V_CONTINUE);
	return rl_in(c, RL_IN_CONN, c->s->ip, STAGE_CONNECT);
}

static struct verdict
ratelimit_mail(struct filter_call *c)
{
	const struct path	*from;
	struct ratelimit_data	*d;
	struct verdict		 v;
	char			 addr[RL_SUBJECT_MAX + 1];

	if (outbound(c->s)) {
		d = rl_data(c);
		if ((d != NULL && d->suspended) || rl_read_suspend(c)) {
			if (d != NULL)
				d->suspended = true;
			return rl_suspended(c, d, STAGE_MAIL);
		}
		return rl_out(c, RL_OUT_MSG, STAGE_MAIL);
	}
	v = rl_in(c, RL_IN_MSG, c->s->ip, STAGE_MAIL);
	if (v.code == V_CONTINUE)
		v = rl_in(c, RL_IN_NET, c->s->ip, STAGE_MAIL);
	if (v.code != V_CONTINUE || c->s->txn == NULL ||
	    (from = &c->s->txn->from)->null || from->domain[0] == '\0')
		return v;
	if ((size_t)snprintf(addr, sizeof(addr), "%s@%s", from->local,
	    from->domain) < sizeof(addr))
		v = rl_in(c, RL_IN_SENDER, addr, STAGE_MAIL);
	if (v.code == V_CONTINUE)
		v = rl_in(c, RL_IN_DOMAIN, from->domain, STAGE_MAIL);
	return v;
}

/*
 * The bounce-storm rule: a bounce to a recipient held by an earlier
 * storm is refused; one past bounces_per_rcpt starts the hold.
 */
static struct verdict
rl_bounce(struct filter_call *c, const char *to)
{
	const struct ratelimit_state	*rs = c->state;
	const struct ratelimit_conf	*conf = c->conf;
	const struct window_limit	*hold = &rs->lim[RL_HOLD];
	unsigned char			 key[RL_KEY_MAX];
	char				 left[16];
	uint64_t			 now = window_now_ms();
	struct window_result		 r;
	size_t				 n;

	if (rs->lim[RL_BOUNCE].count == 0 || (n = ratelimit_key(key,
	    sizeof(key), RL_HOLD, to, false)) == 0)
		return VERDICT(V_CONTINUE);
	if (window_peek(rs->table, hold, key, n, now) == 0) {
		if (rl_take(c, RL_BOUNCE, to, false).allowed)
			return VERDICT(V_CONTINUE);
		/* The hold starts: its cell's TAT is where it ends. */
		(void)window_take(rs->table, hold, key, n, 1, now);
		log_msg(LVL_INFO, c->s->id, "event=ratelimit action=hold "
		    "rcpt=\"%s\" hold_s=%lld", to, conf->bounce_hold);
	}
	/* Refused while held: the retry time is the hold left. */
	r = window_take(rs->table, hold, key, n, 1, now);
	fmt_retry(left, sizeof(left), r.allowed ? hold->period_ms :
	    r.retry_ms);
	filter_evidence(c->s, &filter_ratelimit, "bounce_hold", 0, 0,
	    "rcpt=%s left=%s", to, left);
	return rl_reply(c, STAGE_RCPT, V_DENY, 550, conf->bounce_text, left,
	    "Too many bounces to this recipient");
}

static struct verdict
ratelimit_rcpt(struct filter_call *c)
{
	struct ratelimit_data	*d = c->data;
	const struct txn	*t = c->s->txn;
	const char		*to;
	struct verdict		 v;

	if (outbound(c->s)) {
		if (d != NULL && d->suspended)
			return rl_suspended(c, d, STAGE_RCPT);
		return rl_out(c, RL_OUT_RCPT, STAGE_RCPT);
	}
	v = rl_in(c, RL_IN_RCPT, c->s->ip, STAGE_RCPT);
	if (v.code != V_CONTINUE || t == NULL || t->cur == NULL ||
	    (to = t->cur->addr)[0] == '\0')
		return v;
	if (t->from.null && (v = rl_bounce(c, to)).code != V_CONTINUE)
		return v;
	return rl_in(c, RL_IN_TO, to, STAGE_RCPT);
}

/* ---- Top senders ------------------------------------------------------ */

static void
top_written(struct store_batch *b)
{
	if (b->rc == -1)
		log_msg(LVL_WARN, 0, "event=ratelimit_store action=top "
		    "error=\"%s\"", b->err);
	free(b);
}

/* Adds one message and its recipients to the hour's counters of the
 * outbound subject: one batch, never waited for. */
static void
rl_top_count(struct filter_call *c, long long rcpts)
{
	const struct ratelimit_conf	*conf = c->conf;
	struct store_batch		*b;
	struct store_op			*op;
	struct store			*st;
	char				 key[STORE_KEY_MAX + 1], err[256];
	size_t				 n;
	time_t				 now = store_now();
	int				 i;

	if (c->s->base == NULL || ratelimit_top_prefix(key, sizeof(key),
	    now) == -1)
		return;
	if ((st = store_shared(err, sizeof(err))) == NULL) {
		log_msg(LVL_WARN, c->s->id, "event=ratelimit_store "
		    "error=\"%s\"", err);
		return;
	}
	if ((b = calloc(1, sizeof(*b))) == NULL)
		return;
	b->done = top_written;
	n = strlen(key);
	for (i = 0; i < 2; i++) {
		if ((size_t)snprintf(key + n, sizeof(key) - n, "%c:%s",
		    i == 0 ? 'm' : 'r', out_subject(c->s)) >= sizeof(key) - n ||
		    (op = store_batch_add(b, STORE_INCR, key)) == NULL) {
			free(b);
			return;
		}
		op->num = i == 0 ? 1 : rcpts;
		op->expires = now + (time_t)conf->top_retention * 3600;
	}
	if (store_batch_submit(st, c->s->base, b) == -1) {
		log_msg(LVL_WARN, c->s->id, "event=ratelimit_store "
		    "action=top error=\"writer not running\"");
		free(b);
	}
}

/* An outbound message with recipients reached DATA: counted once. */
static struct verdict
ratelimit_data(struct filter_call *c)
{
	const struct ratelimit_conf	*conf = c->conf;
	const struct txn		*t = c->s->txn;
	struct ratelimit_data		*d;

	if (!outbound(c->s) || conf->top_retention == 0 || t == NULL ||
	    t->naccepted == 0 || (d = rl_data(c)) == NULL ||
	    d->top_seq == t->seq)
		return VERDICT(V_CONTINUE);
	d->top_seq = t->seq;
	rl_top_count(c, (long long)t->naccepted);
	return VERDICT(V_CONTINUE);
}

const struct filter filter_ratelimit = {
	.name = "ratelimit",
	.summary = "connections, messages and recipients per client, "
	    "network, sender and recipient in; per user or relay client "
	    "out, with suspension (GCRA, shared by the workers)",
	.opts = ratelimit_opts,
	.conf_size = sizeof(struct ratelimit_conf),
	.init = ratelimit_init,
	.fini = ratelimit_fini,
	.hook = {
		[STAGE_CONNECT] = ratelimit_connect,
		[STAGE_MAIL] = ratelimit_mail,
		[STAGE_RCPT] = ratelimit_rcpt,
		[STAGE_DATA] = ratelimit_data,
	},
	.data_free = free,
	.fail = FAIL_CONTINUE,
};
