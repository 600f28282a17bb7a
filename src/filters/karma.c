/*
 * karma.c: the adaptive blacklist and greytraps (issue 11, docs/FILTERS.md
 * "karma").
 *
 * The seeds' rule: a client IP that made more than `attempts` attempts
 * in `window` of which more than `ratio` were bad is blocked for `block`
 * seconds. An attempt is a recipient's outcome: bad when it was refused
 * as unknown (550 5.1.1), was a greytrap (worth trap_weight bad ones),
 * or was accepted for a message then refused at data_post (spam, virus);
 * good when it was accepted for a message that passed, or for a
 * transaction that never sent one. Other refusals (relay, greylisting,
 * rate limits) count neither way.
 *
 * Outcomes are read from the transaction's recipients (their reply and
 * verdict) at the filter's next hook or at disconnect: a recipient is
 * classified once every later hook could see its final word. A message
 * refused at data_post leaves no transaction behind; it shows as one
 * that reached karma's DATA hook but never its DATA_POST hook, which is
 * why karma goes last in [pipeline] (after the content checks).
 *
 * Counts: two fixed buckets per IP and kind (total, bad) as GCRA cells
 * of one core/window table mapped shared at the first init() (in the
 * master, before the fork), so every worker counts in the same cells;
 * each cell's emission interval is two windows, so its rounded-up count
 * is exact while the bucket is current or previous. Hot state: a restart
 * forgets it. Blocks, the decisions, go to the store ("block:IP", the
 * value "UNTIL REASON" with the same expiry) through the writer thread,
 * never waited for; moatctl block edits them and a connect reads them
 * (a direct LMDB read on the loop).
 *
 * Security decisions: relay (trusted), authenticated and allow-listed
 * (DNSWL, access allow rules: the pipeline skips the hooks) clients are
 * never counted nor refused; with at_rcpt, or on a listener that asks
 * for AUTH, a blocked client is refused at RCPT instead, so postmaster@
 * and abuse@ stay reachable and an authenticated user is not refused.
 * The refusal is 554 5.7.1, never 4xx: retries would stampede.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/lists.h"
#include "../core/log.h"
#include "../store/store.h"
#include "filter.h"
#include "karma.h"

#define KARMA_CELLS	65536	/* 1 MB shared, every policy */
#define KARMA_BUCKET_MAX 10000	/* counts per bucket past which we stop */

extern const struct filter filter_karma;

struct karma_conf {
	long long	 attempts;
	long long	 window;
	double		 ratio;
	long long	 block;
	bool		 at_rcpt;
	char		*greytraps;
	long long	 trap_weight;
	bool		 trap_block;
	long long	 trap_ttl;
	char		*text;
};

struct karma_state {
	struct karma_rule	rule;
	struct strset		traps;
};

/* Per session: the transaction followed, what of it is counted, the
 * block (and its reply text, which must outlive the hook). */
struct karma_data {
	unsigned	seq;		/* txn->seq followed, 0: none */
	size_t		seen;		/* its recipients classified */
	unsigned	pend;		/* accepted, message outcome unknown */
	unsigned	data_seq;	/* reached karma's DATA hook */
	unsigned	post_seq;	/* reached karma's DATA_POST hook */
	unsigned	good, bad;	/* not yet counted */
	bool		blocked;
	time_t		until;
	char		reason[KARMA_REASON_MAX + 1];
	char		text[LIMIT_REPLY_LINE + 1];
};

static struct window_table	*karma_table;
static unsigned			 karma_refs;

static const struct opt karma_opts[] = {
	{ "attempts", OPT_INT, "10", 1, 100000,
	    offsetof(struct karma_conf, attempts),
	    "block only past this many attempts (recipients) in the window" },
	{ "window", OPT_INT, "3600", 1, 7 * 86400,
	    offsetof(struct karma_conf, window),
	    "seconds over which attempts are counted (sliding)" },
	{ "ratio", OPT_FLOAT, "0.5", 0, 1, offsetof(struct karma_conf, ratio),
	    "block when more than this share of the attempts were bad" },
	{ "block", OPT_INT, "14400", 1, 366 * 86400,
	    offsetof(struct karma_conf, block), "seconds a client is blocked" },
	{ "at_rcpt", OPT_BOOL, "no", 0, 0, offsetof(struct karma_conf, at_rcpt),
	    "refuse a blocked client at RCPT (postmaster@, abuse@ reachable) "
	    "instead of at connect" },
	{ "greytraps", OPT_PATH, "", 0, 0,
	    offsetof(struct karma_conf, greytraps),
	    "file of trap addresses, one per line (exact, no case)" },
	{ "trap_weight", OPT_INT, "10", 0, 1000,
	    offsetof(struct karma_conf, trap_weight),
	    "bad attempts a RCPT to a greytrap counts as" },
	{ "trap_block", OPT_BOOL, "yes", 0, 0,
	    offsetof(struct karma_conf, trap_block),
	    "a greytrap hit blocks the client at once" },
	{ "trap_ttl", OPT_INT, "86400", 1, 366 * 86400,
	    offsetof(struct karma_conf, trap_ttl),
	    "seconds a greytrap hit blocks for" },
	{ "text", OPT_STR, "Blocked (%s), try again in %s", 0, 0,
	    offsetof(struct karma_conf, text),
	    "554 reply text; %s the reason, %s the time left" },
	OPT_END
};

/* ---- Counting and the decision (karma.h) --------------------------- */

static uint64_t
bucket_peek(struct window_table *t, const struct window_limit *l,
    unsigned char *k, size_t n, char kind, uint64_t b, unsigned cost,
    uint64_t now)
{
	k[0] = (unsigned char)kind;
	memcpy(k + 1, &b, sizeof(b));
	if (cost == 0)
		return window_peek(t, l, k, n, now);
	return window_take(t, l, k, n, cost, now).used;
}

struct karma_tally
karma_count(struct window_table *t, const struct karma_rule *r,
    const void *key, size_t keylen, unsigned good, unsigned bad,
    uint64_t now_ms)
{
	struct karma_tally	 y = { 0, 0 };
	struct window_limit	 l;
	unsigned char		 k[1 + 8 + 64];
	uint64_t		 b, cap, cur_t, cur_b, prev_t, prev_b;
	double			 w;
	size_t			 n;

	if (r->window_ms == 0)
		return y;
	n = keylen < 64 ? keylen : 64;
	memcpy(k + 9, key, n);
	n += 9;
	/* Emission interval 2 windows: exact counts for two buckets. */
	cap = WINDOW_MAX_PERIOD_MS / (2 * r->window_ms);
	if (cap > KARMA_BUCKET_MAX)
		cap = KARMA_BUCKET_MAX;
	if (cap == 0)
		cap = 1;
	l.count = cap;
	l.period_ms = cap * 2 * r->window_ms;
	b = now_ms / r->window_ms;
	w = 1.0 - (double)(now_ms % r->window_ms) / (double)r->window_ms;
	cur_t = bucket_peek(t, &l, k, n, 't', b, good + bad, now_ms);
	cur_b = bucket_peek(t, &l, k, n, 'b', b, bad, now_ms);
	prev_t = b > 0 ? bucket_peek(t, &l, k, n, 't', b - 1, 0, now_ms) : 0;
	prev_b = b > 0 ? bucket_peek(t, &l, k, n, 'b', b - 1, 0, now_ms) : 0;
	y.total = (double)cur_t + w * (double)prev_t;
	y.bad = (double)cur_b + w * (double)prev_b;
	return y;
}

bool
karma_decide(const struct karma_rule *r, struct karma_tally y)
{
	/* Half-counted previous buckets: compare with a little slack so
	 * 10.9999 does not pass for "more than 10". */
	if (y.total < (double)r->attempts + 1 - 1e-9)
		return false;
	return y.bad > r->ratio * y.total + 1e-9;
}

int
karma_block_key(char *out, size_t n, const char *ip)
{
	if ((size_t)snprintf(out, n, KARMA_BLOCK "%s", ip) >= n)
		return -1;
	return 0;
}

size_t
karma_block_fmt(char *out, size_t n, time_t until, const char *reason)
{
	size_t	len, i;
	int	w;

	w = snprintf(out, n, "%lld ", (long long)until);
	if (w < 0 || (size_t)w >= n)
		return 0;
	len = (size_t)w;
	for (i = 0; reason[i] != '\0' && i < KARMA_REASON_MAX &&
	    len + 1 < n; i++)
		if (reason[i] != '\r' && reason[i] != '\n')
			out[len++] = reason[i];
	out[len] = '\0';
	return len;
}

int
karma_block_parse(const void *val, size_t len, time_t *until,
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
	*until = (time_t)u;
	snprintf(reason, n, "%s", *end == ' ' ? end + 1 : "");
	return 0;
}

void
karma_fmt_left(char *out, size_t n, long long s)
{
	if (s < 0)
		s = 0;
	if (s < 120)
		snprintf(out, n, "%llds", s);
	else if (s < 7200)
		snprintf(out, n, "%lldm", (s + 59) / 60);
	else
		snprintf(out, n, "%lldh%02lldm", s / 3600, (s % 3600) / 60);
}

/* ---- Init ------------------------------------------------------------ */

static void
karma_fini(void *state)
{
	struct karma_state *ks = state;

	if (ks != NULL)
		strset_free(&ks->traps);
	free(ks);
	if (karma_refs > 0 && --karma_refs == 0) {
		window_table_free(karma_table);
		karma_table = NULL;
	}
}

static int
karma_init(const void *vconf, void **state, char *err, size_t errlen)
{
	const struct karma_conf	*conf = vconf;
	struct karma_state	*ks;

	if ((ks = calloc(1, sizeof(*ks))) == NULL)
		return -1;
	strset_init(&ks->traps);
	*state = ks;
	if (karma_table == NULL && (karma_table =
	    window_table_shared("karma", KARMA_CELLS)) == NULL) {
		snprintf(err, errlen, "cannot map the karma table");
		strset_free(&ks->traps);
		free(ks);
		*state = NULL;
		return -1;
	}
	karma_refs++;
	ks->rule.attempts = (uint64_t)conf->attempts;
	ks->rule.window_ms = (uint64_t)conf->window * 1000;
	ks->rule.ratio = conf->ratio;
	if (conf->greytraps != NULL && conf->greytraps[0] != '\0' &&
	    strset_load(&ks->traps, conf->greytraps, err, errlen) == -1)
		return -1;
	return 0;
}

/* ---- Per session ------------------------------------------------------ */

/* Relay, authenticated and allow-listed clients: never counted nor
 * refused. */
static bool
karma_exempt(const struct session *s)
{
	return s->trusted || s->authenticated || s->client_allowed ||
	    filter_skipped(s, &filter_karma);
}

static struct karma_data *
karma_data_get(struct filter_call *c)
{
	struct karma_data *d = c->data;

	if (d != NULL)
		return d;
	if ((d = calloc(1, sizeof(*d))) == NULL)
		return NULL;
	if (filter_data_set(c->s, &filter_karma, d) == -1) {
		free(d);
		return NULL;
	}
	c->data = d;
	return d;
}

static void
block_written(struct store_batch *b)
{
	if (b->rc == -1)
		log_msg(LVL_WARN, 0, "event=karma_store action=block "
		    "error=\"%s\"", b->err);
	free(b);
}

/* Blocks the session's client for ttl seconds: at once for this
 * session, and in the store (not waited for) for the next ones. */
static void
karma_block(struct filter_call *c, struct karma_data *d, long long ttl,
    const char *reason)
{
	struct store_batch	*b;
	struct store_op		*op;
	struct store		*st;
	char			 key[STORE_KEY_MAX + 1], err[256];
	time_t			 until = store_now() + (time_t)ttl;

	d->blocked = true;
	d->until = until;
	snprintf(d->reason, sizeof(d->reason), "%s", reason);
	log_msg(LVL_INFO, c->s->id, "event=karma action=block ip=%s "
	    "reason=\"%s\" ttl=%lld", c->s->ip, reason, ttl);
	filter_evidence(c->s, &filter_karma, "KARMA_BLOCK", 0, 0,
	    "reason=%s ttl=%lld", reason, ttl);
	if (c->s->base == NULL || karma_block_key(key, sizeof(key),
	    c->s->ip) == -1)
		return;
	if ((st = store_shared(err, sizeof(err))) == NULL) {
		log_msg(LVL_WARN, c->s->id, "event=karma_store error=\"%s\"",
		    err);
		return;
	}
	if ((b = calloc(1, sizeof(*b))) == NULL)
		return;
	b->done = block_written;
	if ((op = store_batch_add(b, STORE_PUT, key)) == NULL) {
		free(b);
		return;
	}
	op->len = karma_block_fmt((char *)op->val, sizeof(op->val), until,
	    reason);
	op->expires = until;
	if (store_batch_submit(st, c->s->base, b) == -1) {
		log_msg(LVL_WARN, c->s->id, "event=karma_store action=block "
		    "error=\"writer not running\"");
		free(b);
	}
}

/* Counts what d holds and blocks when the rule says so. */
static void
karma_settle(struct filter_call *c, struct karma_data *d)
{
	const struct karma_state	*ks = c->state;
	const struct karma_conf		*conf = c->conf;
	struct karma_tally		 y;
	char				 why[KARMA_REASON_MAX + 1];

	if (d->good + d->bad == 0)
		return;
	y = karma_count(karma_table, &ks->rule, c->s->ip, strlen(c->s->ip),
	    d->good, d->bad, window_now_ms());
	log_msg(LVL_DEBUG, c->s->id, "event=karma ip=%s good=%u bad=%u "
	    "window_total=%.1f window_bad=%.1f", c->s->ip, d->good, d->bad,
	    y.total, y.bad);
	d->good = d->bad = 0;
	if (d->blocked || !karma_decide(&ks->rule, y))
		return;
	snprintf(why, sizeof(why), "%.0f bad of %.0f attempts", y.bad,
	    y.total);
	karma_block(c, d, conf->block, why);
}

static bool
is_trap(const struct karma_state *ks, const struct rcpt *r)
{
	return ks->traps.count > 0 && r->addr[0] != '\0' &&
	    strset_has(&ks->traps, r->addr, strlen(r->addr));
}

/* Classifies one recipient whose final word is known. */
static void
karma_rcpt_outcome(struct filter_call *c, struct karma_data *d,
    const struct rcpt *r)
{
	const struct karma_state	*ks = c->state;
	const struct karma_conf		*conf = c->conf;

	if (r->verdict.by != NULL && strcmp(r->verdict.by, "karma") == 0)
		return;		/* counted by the RCPT hook */
	if (is_trap(ks, r)) {
		d->bad += (unsigned)conf->trap_weight;
		log_msg(LVL_INFO, c->s->id, "event=karma action=greytrap "
		    "ip=%s rcpt=%s", c->s->ip, r->addr);
		if (conf->trap_block && !d->blocked)
			karma_block(c, d, conf->trap_ttl, "greytrap");
	} else if (r->accepted)
		d->pend++;
	else if ((r->verdict.code == V_DENY && r->verdict.esc != NULL &&
	    strcmp(r->verdict.esc, "5.1.1") == 0) ||
	    strncmp(r->reply, "550 5.1.1", 9) == 0)
		d->bad++;
}

/*
 * Brings d up to date with the session: a transaction that is gone
 * settles its accepted recipients (bad when its message reached DATA
 * and not karma's DATA_POST: refused there); then the recipients of the
 * current one before index `upto` are classified, and all is counted.
 */
static void
karma_follow(struct filter_call *c, struct karma_data *d, size_t upto,
    bool ending)
{
	const struct txn	*t = c->s->txn;
	size_t			 i;

	if (d->seq != 0 && (t == NULL || t->seq != d->seq)) {
		if (d->data_seq == d->seq && d->post_seq != d->seq)
			d->bad += d->pend;
		else
			d->good += d->pend;
		d->pend = 0;
		d->seq = 0;
		d->seen = 0;
	}
	if (t != NULL && t->active) {
		if (d->seq == 0) {
			d->seq = t->seq;
			d->seen = 0;
		}
		if (upto > t->nrcpt)
			upto = t->nrcpt;
		for (i = d->seen; i < upto; i++)
			karma_rcpt_outcome(c, d, &t->rcpts[i]);
		if (upto > d->seen)
			d->seen = upto;
		if (ending) {
			d->good += d->pend;
			d->pend = 0;
		}
	}
	karma_settle(c, d);
}

static const char *
karma_text(struct filter_call *c, struct karma_data *d)
{
	const struct karma_conf	*conf = c->conf;
	char			 left[24];

	karma_fmt_left(left, sizeof(left), (long long)(d->until -
	    store_now()));
	filter_reply_format(d->text, sizeof(d->text), conf->text, d->reason,
	    left);
	return d->text;
}

/* Reads the client's block from the store (a direct read). */
static void
karma_read_block(struct filter_call *c, struct karma_data *d)
{
	struct store_batch	*b;
	struct store_op		*op;
	struct store		*st;
	char			 key[STORE_KEY_MAX + 1], err[256];
	time_t			 until;

	if (karma_block_key(key, sizeof(key), c->s->ip) == -1)
		return;
	if ((st = store_shared(err, sizeof(err))) == NULL) {
		log_msg(LVL_WARN, c->s->id, "event=karma_store error=\"%s\"",
		    err);
		return;
	}
	if ((b = calloc(1, sizeof(*b))) == NULL)
		return;
	if ((op = store_batch_add(b, STORE_GET, key)) != NULL &&
	    store_batch_run(st, b) == 0 && op->result > 0 &&
	    karma_block_parse(op->val, (size_t)op->result, &until,
	    d->reason, sizeof(d->reason)) == 0 && until > store_now()) {
		d->blocked = true;
		d->until = until;
	}
	free(b);
}

static struct verdict
karma_connect(struct filter_call *c)
{
	const struct karma_conf	*conf = c->conf;
	struct karma_data	*d;

	if (karma_exempt(c->s) || (d = karma_data_get(c)) == NULL)
		return VERDICT(V_CONTINUE);
	karma_read_block(c, d);
	if (!d->blocked)
		return VERDICT(V_CONTINUE);
	log_msg(LVL_INFO, c->s->id, "event=karma action=refuse ip=%s "
	    "reason=\"%s\" left=%lld at=%s", c->s->ip, d->reason,
	    (long long)(d->until - store_now()),
	    conf->at_rcpt || c->s->conf->auth_required ? "rcpt" : "connect");
	/* A submission listener: the client may yet authenticate. */
	if (conf->at_rcpt || c->s->conf->auth_required)
		return VERDICT(V_CONTINUE);
	return verdict_make(V_DENY_DISCONNECT, 554, "5.7.1", karma_text(c, d));
}

static struct verdict
karma_mail(struct filter_call *c)
{
	struct karma_data *d;

	if (!karma_exempt(c->s) && (d = karma_data_get(c)) != NULL)
		karma_follow(c, d, 0, false);
	return VERDICT(V_CONTINUE);
}

static struct verdict
karma_rcpt(struct filter_call *c)
{
	const struct karma_state	*ks = c->state;
	const struct karma_conf		*conf = c->conf;
	const struct txn		*t = c->s->txn;
	struct rcpt			*r = t != NULL ? t->cur : NULL;
	struct karma_data		*d;

	if (karma_exempt(c->s) || r == NULL ||
	    (d = karma_data_get(c)) == NULL)
		return VERDICT(V_CONTINUE);
	karma_follow(c, d, t->rcpts != NULL ? (size_t)(r - t->rcpts) : 0,
	    false);
	if (is_trap(ks, r)) {
		d->bad += (unsigned)conf->trap_weight;
		log_msg(LVL_INFO, c->s->id, "event=karma action=greytrap "
		    "ip=%s rcpt=%s", c->s->ip, r->addr);
		if (conf->trap_block && !d->blocked)
			karma_block(c, d, conf->trap_ttl, "greytrap");
		karma_settle(c, d);
		if (!d->blocked)
			return verdict_make(V_DENY, 550, "5.1.1",
			    "No such user here");
	}
	if (d->blocked && !r->exempt)
		return verdict_make(V_DENY, 554, "5.7.1", karma_text(c, d));
	return VERDICT(V_CONTINUE);
}

static struct verdict
karma_data_hook(struct filter_call *c)
{
	struct karma_data *d;

	if (karma_exempt(c->s) || (d = karma_data_get(c)) == NULL)
		return VERDICT(V_CONTINUE);
	karma_follow(c, d, (size_t)-1, false);
	if (c->s->txn != NULL)
		d->data_seq = c->s->txn->seq;
	return VERDICT(V_CONTINUE);
}

static struct verdict
karma_data_post(struct filter_call *c)
{
	struct karma_data *d = c->data;

	if (d != NULL && c->s->txn != NULL)
		d->post_seq = c->s->txn->seq;
	return VERDICT(V_CONTINUE);
}

static struct verdict
karma_disconnect(struct filter_call *c)
{
	struct karma_data *d;

	if (!karma_exempt(c->s) && (d = karma_data_get(c)) != NULL)
		karma_follow(c, d, (size_t)-1, true);
	return VERDICT(V_CONTINUE);
}

const struct filter filter_karma = {
	.name = "karma",
	.summary = "adaptive blacklist: blocks clients with mostly bad "
	    "attempts (unknown recipients, spam, greytraps)",
	.opts = karma_opts,
	.conf_size = sizeof(struct karma_conf),
	.init = karma_init,
	.fini = karma_fini,
	.hook = {
		[STAGE_CONNECT] = karma_connect,
		[STAGE_MAIL] = karma_mail,
		[STAGE_RCPT] = karma_rcpt,
		[STAGE_DATA] = karma_data_hook,
		[STAGE_DATA_POST] = karma_data_post,
		[STAGE_DISCONNECT] = karma_disconnect,
	},
	.data_free = free,
	.fail = FAIL_CONTINUE,
};
