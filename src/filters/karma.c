/*
 * karma.c: the adaptive blacklist and greytraps (issue 11, docs/FILTERS.md
 * "karma").
 *
 * The rule: a client that made more than `attempts` connections in
 * `window` of which more than `ratio` were bad, the share judged by the
 * lower bound of its Wilson score interval at `ratio_z` (so 9 bad of 11
 * blocks and 6 of 11 does not), is blocked for `block` seconds; blocked
 * again within `offence_memory`, for twice its last block (at most
 * `block_max`). A client is an IPv4 address or an IPv6 /64
 * (karma_client()): the window key and the store keys are its name.
 *
 * An attempt is a connection, with one outcome: bad when anything bad
 * happened in it (a recipient refused as unknown, a message refused at
 * data_post, a DNSBL listing, talking before the greeting, a protocol
 * violation or `errors` errors, a rate-limit refusal, a failed AUTH),
 * counted once, as soon as it is seen; a greytrap makes it worth
 * `trap_weight` bad ones. Good, counted at disconnect, when nothing was
 * bad and a message was accepted (ham) or a greylisting retry passed.
 * Anything else (a probe that quits, relay refusals) counts neither way.
 *
 * Outcomes are read from the transaction's recipients (their reply and
 * verdict) and from the session (its fields, the other filters'
 * evidence) at the filter's next hook or at disconnect. A message
 * refused at data_post leaves no transaction behind; it shows as one
 * that reached karma's DATA hook but never its DATA_POST hook, which is
 * why karma goes last in [pipeline] (after the content checks).
 *
 * Counts: two fixed buckets per client and kind (total, bad) as GCRA
 * cells of one core/window table mapped shared at the first init() (in
 * the master, before the fork; published as var_dir/run/karma.win), so
 * every worker counts in the same cells; each cell's emission interval
 * is two windows, so its rounded-up count is exact while the bucket is
 * current or previous. Hot state: a restart forgets it. Decisions go to
 * the store ("block:CLIENT" "UNTIL #N REASON" with the same expiry,
 * "offence:CLIENT" "N TTL" for offence_memory) through the writer
 * thread, never waited for; moatctl block edits them and a connect reads
 * them (a direct LMDB read on the loop). At connect the history becomes
 * evidence for the other checks: KARMA_GOOD, KARMA_BAD.
 *
 * Security decisions: relay (trusted), authenticated and allow-listed
 * (DNSWL, access allow rules: the pipeline skips the hooks) clients are
 * never counted nor refused; with at_rcpt, or on a listener that asks
 * for AUTH, a blocked client is refused at RCPT instead, so postmaster@
 * and abuse@ stay reachable and an authenticated user is not refused.
 * The refusal is 554 5.7.1, never 4xx: retries would stampede.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/addr.h"
#include "../core/config.h"
#include "../core/lists.h"
#include "../core/log.h"
#include "../store/store.h"
#include "filter.h"
#include "karma.h"
#include "policy.h"

#define KARMA_CELLS	65536	/* 1 MB shared, every policy */
#define KARMA_BUCKET_MAX 10000	/* counts per bucket past which we stop */

extern const struct filter filter_karma;

struct karma_conf {
	long long	 attempts;
	long long	 window;
	double		 ratio;
	double		 ratio_z;
	long long	 block;
	long long	 block_max;
	long long	 offence_memory;
	long long	 good_min;
	long long	 errors;
	bool		 at_rcpt;
	char		*greytraps;
	char		*trap_domains;
	long long	 trap_weight;
	bool		 trap_block;
	long long	 trap_ttl;
	char		*text;
};

struct karma_state {
	struct karma_rule	rule;
	struct strset		traps;
	struct strset		trap_doms;	/* lower case */
	struct window_table	*table;		/* "karma", shared */
};

/* Per session: the client's name, the transaction followed, what of the
 * connection is counted, the block (and its reply text, which must
 * outlive the hook). */
struct karma_data {
	char		client[KARMA_CLIENT_MAX];
	bool		read;		/* block and offence read */
	bool		refused;	/* refused at connect: not counted */
	unsigned	seq;		/* txn->seq followed, 0: none */
	size_t		seen;		/* its recipients classified */
	unsigned	pend;		/* accepted, message outcome unknown */
	unsigned	data_seq;	/* reached karma's DATA hook */
	unsigned	post_seq;	/* reached karma's DATA_POST hook */
	unsigned	good, bad;	/* outcomes seen in the connection */
	bool		trap;		/* a greytrap among them */
	unsigned	counted;	/* bad attempts counted for it */
	bool		blocked;
	time_t		until;
	unsigned	offences;	/* blocks within offence_memory */
	long long	last_ttl;	/* the last block's length */
	char		reason[KARMA_REASON_MAX + 1];
	char		text[LIMIT_REPLY_LINE + 1];
};


static const struct opt karma_opts[] = {
	{ "attempts", OPT_INT, "10", 1, 100000,
	    offsetof(struct karma_conf, attempts),
	    "block only past this many attempts (connections) in the window" },
	{ "window", OPT_INT, "3600", 1, 7 * 86400,
	    offsetof(struct karma_conf, window),
	    "seconds over which attempts are counted (sliding)" },
	{ "ratio", OPT_FLOAT, "0.5", 0, 1, offsetof(struct karma_conf, ratio),
	    "block when more than this share of the attempts were bad" },
	{ "ratio_z", OPT_FLOAT, "1.645", 0, 5,
	    offsetof(struct karma_conf, ratio_z),
	    "z of the Wilson lower bound the bad share is judged by "
	    "(0: the plain share)" },
	{ "block", OPT_INT, "14400", 1, 366 * 86400,
	    offsetof(struct karma_conf, block), "seconds a client is blocked" },
	{ "block_max", OPT_INT, "604800", 1, 366 * 86400,
	    offsetof(struct karma_conf, block_max),
	    "seconds a repeat offender's doubled block is capped at" },
	{ "offence_memory", OPT_INT, "2592000", 0, 366 * 86400,
	    offsetof(struct karma_conf, offence_memory),
	    "seconds a block is remembered for doubling the next (0: never)" },
	{ "good_min", OPT_INT, "3", 1, 100000,
	    offsetof(struct karma_conf, good_min),
	    "good connections, and no bad, in the window for KARMA_GOOD" },
	{ "errors", OPT_INT, "3", 0, 1000,
	    offsetof(struct karma_conf, errors),
	    "protocol errors that make a connection bad (0: not counted)" },
	{ "at_rcpt", OPT_BOOL, "no", 0, 0, offsetof(struct karma_conf, at_rcpt),
	    "refuse a blocked client at RCPT (postmaster@, abuse@ reachable) "
	    "instead of at connect" },
	{ "greytraps", OPT_PATH, "", 0, 0,
	    offsetof(struct karma_conf, greytraps),
	    "file of trap addresses, one per line (exact, no case)" },
	{ "trap_domains", OPT_STR, "", 0, 0,
	    offsetof(struct karma_conf, trap_domains),
	    "domains (and their subdomains) whose every address is a trap: "
	    "domains that never had mail" },
	{ "trap_weight", OPT_INT, "10", 0, 1000,
	    offsetof(struct karma_conf, trap_weight),
	    "bad attempts a connection with a RCPT to a greytrap counts as" },
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

	if (r->window_ms == 0 || t == NULL)
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

double
karma_wilson_lower(double bad, double total, double z)
{
	double	p, z2, c, m;

	if (total <= 0)
		return 0;
	p = bad / total;
	if (p > 1)
		p = 1;
	z2 = z * z;
	c = p + z2 / (2 * total);
	m = z * sqrt(p * (1 - p) / total + z2 / (4 * total * total));
	return (c - m) / (1 + z2 / total);
}

bool
karma_decide(const struct karma_rule *r, struct karma_tally y)
{
	/* Half-counted previous buckets: compare with a little slack so
	 * 10.9999 does not pass for "more than 10". */
	if (y.total < (double)r->attempts + 1 - 1e-9)
		return false;
	return karma_wilson_lower(y.bad, y.total, r->z) > r->ratio + 1e-9;
}

int
karma_client(const char *ip, char *out, size_t n)
{
	return addr_client(ip, out, n);
}

int
karma_block_key(char *out, size_t n, const char *client)
{
	if ((size_t)snprintf(out, n, KARMA_BLOCK "%s", client) >= n)
		return -1;
	return 0;
}

int
karma_offence_key(char *out, size_t n, const char *client)
{
	if ((size_t)snprintf(out, n, KARMA_OFFENCE "%s", client) >= n)
		return -1;
	return 0;
}

size_t
karma_block_fmt(char *out, size_t n, time_t until, unsigned offences,
    const char *reason)
{
	size_t	len, i;
	int	w;

	if (offences > 0)
		w = snprintf(out, n, "%lld #%u ", (long long)until,
		    offences);
	else
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
    unsigned *offences, char *reason, size_t n)
{
	char		 v[STORE_VAL_MAX + 1], *end, *e2;
	long long	 u;
	unsigned long	 o = 0;

	if (len == 0 || len > STORE_VAL_MAX)
		return -1;
	memcpy(v, val, len);
	v[len] = '\0';
	if (!isdigit((unsigned char)v[0]))
		return -1;
	u = strtoll(v, &end, 10);
	if (*end != ' ' && *end != '\0')
		return -1;
	if (end[0] == ' ' && end[1] == '#' &&
	    isdigit((unsigned char)end[2])) {
		o = strtoul(end + 2, &e2, 10);
		if ((*e2 != ' ' && *e2 != '\0') || o > UINT_MAX)
			return -1;
		end = e2;
	}
	*until = (time_t)u;
	if (offences != NULL)
		*offences = (unsigned)o;
	snprintf(reason, n, "%s", *end == ' ' ? end + 1 : "");
	return 0;
}

size_t
karma_offence_fmt(char *out, size_t n, unsigned offences, long long ttl)
{
	int w = snprintf(out, n, "%u %lld", offences, ttl);

	return w < 0 || (size_t)w >= n ? 0 : (size_t)w;
}

int
karma_offence_parse(const void *val, size_t len, unsigned *offences,
    long long *ttl)
{
	char		 v[STORE_VAL_MAX + 1], *end;
	unsigned long	 o;

	if (len == 0 || len > STORE_VAL_MAX)
		return -1;
	memcpy(v, val, len);
	v[len] = '\0';
	if (!isdigit((unsigned char)v[0]))
		return -1;
	o = strtoul(v, &end, 10);
	if (*end != ' ' || o > UINT_MAX || !isdigit((unsigned char)end[1]))
		return -1;
	*ttl = strtoll(end + 1, &end, 10);
	if (*end != '\0' || *ttl < 0)
		return -1;
	*offences = (unsigned)o;
	return 0;
}

long long
karma_next_ttl(long long base, long long max, unsigned offences,
    long long last)
{
	long long t;

	if (offences == 0 || last <= 0)
		return base;
	t = last > LLONG_MAX / 2 ? LLONG_MAX : 2 * last;
	if (t > max)
		t = max;
	return t < base ? base : t;
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

void
karma_rule_of(const void *vconf, struct karma_rule *r)
{
	const struct karma_conf *conf = vconf;

	r->attempts = (uint64_t)conf->attempts;
	r->window_ms = (uint64_t)conf->window * 1000;
	r->ratio = conf->ratio;
	r->z = conf->ratio_z;
}

/* ---- Init ------------------------------------------------------------ */

/* "old.example.test spamtrap.example.org": each a domain, lower-cased. */
static int
trap_domains_load(struct karma_state *ks, const char *list, char *err,
    size_t errlen)
{
	char	*copy, *w[64], *p;
	int	 n, i;

	if (list == NULL || list[0] == '\0')
		return 0;
	if ((copy = strdup(list)) == NULL)
		return -1;
	if ((n = config_words(copy, w, 64)) < 0) {
		snprintf(err, errlen, "trap_domains: more than 64 domains");
		free(copy);
		return -1;
	}
	for (i = 0; i < n; i++) {
		for (p = w[i]; *p != '\0'; p++)
			*p = (char)tolower((unsigned char)*p);
		if (w[i][0] == '.' || strchr(w[i], '@') != NULL ||
		    strchr(w[i], '.') == NULL ||
		    strset_add(&ks->trap_doms, w[i], strlen(w[i])) == -1) {
			snprintf(err, errlen, "trap_domains: '%s' is not a "
			    "domain", w[i]);
			free(copy);
			return -1;
		}
	}
	free(copy);
	return 0;
}

static void
karma_fini(void *state)
{
	struct karma_state *ks = state;

	if (ks != NULL) {
		strset_free(&ks->traps);
		strset_free(&ks->trap_doms);
	}
	if (ks != NULL)
		window_table_free(ks->table);
	free(ks);
}

static int
karma_init(const void *vconf, void **state, char *err, size_t errlen)
{
	const struct karma_conf	*conf = vconf;
	struct karma_state	*ks;

	if ((ks = calloc(1, sizeof(*ks))) == NULL)
		return -1;
	strset_init(&ks->traps);
	strset_init(&ks->trap_doms);
	*state = ks;
	if ((ks->table = window_table_shared("karma", KARMA_CELLS)) == NULL) {
		snprintf(err, errlen, "cannot map the karma table");
		strset_free(&ks->traps);
		strset_free(&ks->trap_doms);
		free(ks);
		*state = NULL;
		return -1;
	}
	karma_rule_of(conf, &ks->rule);
	if (conf->greytraps != NULL && conf->greytraps[0] != '\0' &&
	    strset_load(&ks->traps, conf->greytraps, err, errlen) == -1)
		return -1;
	return trap_domains_load(ks, conf->trap_domains, err, errlen);
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
	if ((d = filter_data_new(c->s, &filter_karma, sizeof(*d))) == NULL)
		return NULL;
	/* An address that is not one (stdio sessions): itself. */
	if (karma_client(c->s->ip, d->client, sizeof(d->client)) == -1)
		snprintf(d->client, sizeof(d->client), "%s", c->s->ip);
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

/* Reads the client's block and offence record from the store (a direct
 * read), once per session. */
static void
karma_read(struct filter_call *c, struct karma_data *d)
{
	struct store_batch	*b;
	struct store_op		*bop, *oop;
	struct store		*st;
	char			 key[STORE_KEY_MAX + 1], err[256];
	time_t			 until;
	unsigned		 n;
	long long		 ttl;

	if (d->read)
		return;
	d->read = true;
	if ((st = store_shared(err, sizeof(err))) == NULL) {
		log_msg(LVL_WARN, c->s->id, "event=karma_store error=\"%s\"",
		    err);
		return;
	}
	if ((b = calloc(1, sizeof(*b))) == NULL)
		return;
	bop = karma_block_key(key, sizeof(key), d->client) == 0 ?
	    store_batch_add(b, STORE_GET, key) : NULL;
	oop = karma_offence_key(key, sizeof(key), d->client) == 0 ?
	    store_batch_add(b, STORE_GET, key) : NULL;
	if (store_batch_run(st, b) == 0) {
		if (bop != NULL && bop->result > 0 &&
		    karma_block_parse(bop->val, (size_t)bop->result, &until,
		    NULL, d->reason, sizeof(d->reason)) == 0 &&
		    until > store_now()) {
			d->blocked = true;
			d->until = until;
		}
		if (oop != NULL && oop->result > 0 &&
		    karma_offence_parse(oop->val, (size_t)oop->result, &n,
		    &ttl) == 0) {
			d->offences = n;
			d->last_ttl = ttl;
		}
	}
	free(b);
}

/* Blocks the session's client for base seconds, or longer when it is a
 * repeat offender: at once for this session, and in the store (not
 * waited for) for the next ones, with its offence count. */
static void
karma_block(struct filter_call *c, struct karma_data *d, long long base,
    const char *reason)
{
	const struct karma_conf	*conf = c->conf;
	struct store_batch	*b;
	struct store_op		*op;
	struct store		*st;
	char			 key[STORE_KEY_MAX + 1], err[256];
	long long		 ttl;
	time_t			 now = store_now(), until;

	karma_read(c, d);
	ttl = karma_next_ttl(base, conf->block_max, d->offences,
	    d->last_ttl);
	until = now + (time_t)ttl;
	d->offences++;
	d->last_ttl = ttl;
	d->blocked = true;
	d->until = until;
	snprintf(d->reason, sizeof(d->reason), "%s", reason);
	log_msg(LVL_INFO, c->s->id, "event=karma action=block ip=%s "
	    "client=%s reason=\"%s\" ttl=%lld offence=%u", c->s->ip,
	    d->client, reason, ttl, d->offences);
	filter_evidence(c->s, &filter_karma, "KARMA_BLOCK", 0, 0,
	    "reason=%s ttl=%lld offence=%u", reason, ttl, d->offences);
	if (c->s->base == NULL)
		return;
	if ((st = store_shared(err, sizeof(err))) == NULL) {
		log_msg(LVL_WARN, c->s->id, "event=karma_store error=\"%s\"",
		    err);
		return;
	}
	if ((b = calloc(1, sizeof(*b))) == NULL)
		return;
	b->done = block_written;
	if (karma_block_key(key, sizeof(key), d->client) == 0 &&
	    (op = store_batch_add(b, STORE_PUT, key)) != NULL) {
		op->len = karma_block_fmt((char *)op->val, sizeof(op->val),
		    until, d->offences, reason);
		op->expires = until;
	}
	if (conf->offence_memory > 0 &&
	    karma_offence_key(key, sizeof(key), d->client) == 0 &&
	    (op = store_batch_add(b, STORE_PUT, key)) != NULL) {
		op->len = karma_offence_fmt((char *)op->val, sizeof(op->val),
		    d->offences, ttl);
		op->expires = now + (time_t)conf->offence_memory;
		if (op->expires < until)
			op->expires = until;
	}
	if (b->n == 0 || store_batch_submit(st, c->s->base, b) == -1) {
		log_msg(LVL_WARN, c->s->id, "event=karma_store action=block "
		    "error=\"writer not running\"");
		free(b);
	}
}

/* True when some filter's evidence on the session has this name (any
 * name when name is NULL). */
static bool
has_evidence(const struct session *s, const char *filter, const char *name)
{
	size_t i;

	if (s->sev == NULL)
		return false;
	for (i = 0; i < s->sev->nev; i++)
		if (strcmp(s->sev->ev[i].filter, filter) == 0 &&
		    (name == NULL || strcmp(s->sev->ev[i].name, name) == 0))
			return true;
	return false;
}

/*
 * True when a rate limit keyed on the client itself refused it. Limits
 * keyed on what a third party controls (a sender address or domain, a
 * recipient, the bounce hold, the client's whole /24) are not the
 * client's misbehaviour: a
 * botnet forging @example.com senders must not get example.com's own
 * servers blocked, nor a joe-job the servers that bounce it.
 */
static bool
client_limited(const struct session *s)
{
	static const char *const own[] = { "in_connections", "in_messages",
	    "in_recipients" };
	size_t i, k;

	if (s->sev == NULL)
		return false;
	for (i = 0; i < s->sev->nev; i++)
		for (k = 0; k < sizeof(own) / sizeof(own[0]); k++)
			if (strcmp(s->sev->ev[i].filter, "ratelimit") == 0 &&
			    strcmp(s->sev->ev[i].name, own[k]) == 0)
				return true;
	return false;
}

/* True when the policy only observes f (its refusals did not happen). */
static bool
observed(const struct filter_call *c, const char *name)
{
	const struct filter *f = filter_find(name);

	return c->policy != NULL && (c->policy->observe_all ||
	    (f != NULL && c->policy->observe[filter_index(f)]));
}

/* What made the connection itself bad, or NULL. */
static const char *
karma_conn_bad(struct filter_call *c)
{
	const struct karma_conf	*conf = c->conf;
	const struct session	*s = c->s;

	if (has_evidence(s, "dnsbl", "DNSBL"))
		return "dnsbl";
	if (s->pregreet == 3)
		return "early_talker";
	if (s->proto != 0 || (conf->errors > 0 &&
	    s->errors >= (unsigned)conf->errors))
		return "protocol";
	if (s->auth_failures > 0)
		return "auth_failed";
	if (client_limited(s) && !observed(c, "ratelimit"))
		return "ratelimit";
	return NULL;
}

/*
 * Counts the connection: bad (trap_weight bad ones with a greytrap) once,
 * as soon as anything bad is seen, and blocks when the rule says so;
 * good at the end when nothing was bad and something was good.
 */
static void
karma_settle(struct filter_call *c, struct karma_data *d, bool ending)
{
	const struct karma_state	*ks = c->state;
	const struct karma_conf		*conf = c->conf;
	struct karma_tally		 y;
	const char			*why = NULL;
	unsigned			 want, good = 0, bad = 0;
	char				 r[KARMA_REASON_MAX + 1];

	if (d->refused)
		return;
	if (d->bad == 0 && d->counted == 0)
		why = karma_conn_bad(c);
	want = d->bad > 0 || why != NULL || d->counted > 0 ? 1 : 0;
	if (d->trap && (unsigned)conf->trap_weight > want)
		want = (unsigned)conf->trap_weight;
	if (want > d->counted)
		bad = want - d->counted;
	else if (ending && d->counted == 0 && (d->good > 0 ||
	    has_evidence(c->s, "greylist", "GREYLIST_PASS")))
		good = 1;
	if (good + bad == 0)
		return;
	d->counted += bad;
	y = karma_count(ks->table, &ks->rule, d->client, strlen(d->client),
	    good, bad, window_now_ms());
	log_msg(LVL_DEBUG, c->s->id, "event=karma client=%s good=%u bad=%u "
	    "why=%s window_total=%.1f window_bad=%.1f", d->client, good, bad,
	    why != NULL ? why : d->trap ? "greytrap" : bad > 0 ? "rcpt" :
	    "good", y.total, y.bad);
	if (d->blocked || !karma_decide(&ks->rule, y))
		return;
	/* Not read when karma's connect hook did not run (an earlier
	 * filter refused the connection): a client blocked already is not
	 * blocked again, which would count an offence. */
	karma_read(c, d);
	if (d->blocked)
		return;
	snprintf(r, sizeof(r), "%.0f bad of %.0f connections", y.bad,
	    y.total);
	karma_block(c, d, conf->block, r);
}

/* A trap address, or any address at a trap domain or under one. */
static bool
is_trap(const struct karma_state *ks, const struct rcpt *r)
{
	char		 d[sizeof(r->path.domain)];
	const char	*p;
	size_t		 i;

	if (ks->traps.count > 0 && r->addr[0] != '\0' &&
	    strset_has(&ks->traps, r->addr, strlen(r->addr)))
		return true;
	if (ks->trap_doms.count == 0 || r->path.literal ||
	    r->path.domain[0] == '\0')
		return false;
	for (i = 0; r->path.domain[i] != '\0' && i + 1 < sizeof(d); i++)
		d[i] = (char)tolower((unsigned char)r->path.domain[i]);
	d[i] = '\0';
	for (p = d; p != NULL; p = (p = strchr(p, '.')) != NULL ? p + 1 :
	    NULL)
		if (strset_has(&ks->trap_doms, p, strlen(p)))
			return true;
	return false;
}

/* A greytrap hit: the connection counts trap_weight bad attempts. */
static void
karma_trap(struct filter_call *c, struct karma_data *d,
    const struct rcpt *r)
{
	const struct karma_conf	*conf = c->conf;
	char			 safe[sizeof(r->addr)];
	size_t			 i;

	d->trap = true;
	d->bad++;
	/* A quoted local part may hold spaces, '=' and '"': not a
	 * key=value of its own in the log line. */
	for (i = 0; r->addr[i] != '\0' && i + 1 < sizeof(safe); i++)
		safe[i] = r->addr[i] == ' ' || r->addr[i] == '"' ||
		    r->addr[i] == '=' || (unsigned char)r->addr[i] < 0x20 ?
		    '_' : r->addr[i];
	safe[i] = '\0';
	log_msg(LVL_INFO, c->s->id, "event=karma action=greytrap "
	    "ip=%s rcpt=\"%s\"", c->s->ip, safe);
	if (conf->trap_block && !d->blocked)
		karma_block(c, d, conf->trap_ttl, "greytrap");
}

/* Classifies one recipient whose final word is known. */
static void
karma_rcpt_outcome(struct filter_call *c, struct karma_data *d,
    const struct rcpt *r)
{
	const struct karma_state *ks = c->state;

	if (r->verdict.by != NULL && strcmp(r->verdict.by, "karma") == 0)
		return;		/* counted by the RCPT hook */
	if (is_trap(ks, r))
		karma_trap(c, d, r);
	else if (r->accepted)
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
		else if (d->post_seq == d->seq)
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
			if (d->post_seq == d->seq)
				d->good += d->pend;
			d->pend = 0;
		}
	}
	karma_settle(c, d, ending);
}

static const char *
karma_text(struct filter_call *c, struct karma_data *d)
{
	const struct karma_conf	*conf = c->conf;
	char			 left[24], why[KARMA_REASON_MAX + 24];

	karma_fmt_left(left, sizeof(left), (long long)(d->until -
	    store_now()));
	if (d->offences > 1)
		snprintf(why, sizeof(why), "%s, offence %u", d->reason,
		    d->offences);
	else
		snprintf(why, sizeof(why), "%s", d->reason);
	filter_reply_format(d->text, sizeof(d->text), conf->text, why, left);
	return d->text;
}

/* The client's history as evidence for the other checks: KARMA_BAD
 * with bad connections in the window or a remembered block, KARMA_GOOD
 * with good_min good ones and nothing bad. */
static void
karma_history(struct filter_call *c, struct karma_data *d)
{
	const struct karma_state	*ks = c->state;
	const struct karma_conf		*conf = c->conf;
	struct karma_tally		 y;
	int				 good, bad;

	y = karma_count(ks->table, &ks->rule, d->client, strlen(d->client),
	    0, 0, window_now_ms());
	bad = (int)ceil(y.bad - 1e-9);
	good = (int)floor(y.total - y.bad + 1e-9);
	if (bad > 0 || d->offences > 0)
		filter_evidence(c->s, &filter_karma, "KARMA_BAD", 0, 0,
		    "good=%d bad=%d offences=%u", good, bad, d->offences);
	else if (good >= conf->good_min)
		filter_evidence(c->s, &filter_karma, "KARMA_GOOD", 0, 0,
		    "good=%d bad=%d", good, bad);
}

static struct verdict
karma_connect(struct filter_call *c)
{
	const struct karma_conf	*conf = c->conf;
	struct karma_data	*d;

	if (karma_exempt(c->s) || (d = karma_data_get(c)) == NULL)
		return VERDICT(V_CONTINUE);
	karma_read(c, d);
	if (!d->blocked) {
		karma_history(c, d);
		return VERDICT(V_CONTINUE);
	}
	log_msg(LVL_INFO, c->s->id, "event=karma action=refuse ip=%s "
	    "client=%s reason=\"%s\" offence=%u left=%lld at=%s", c->s->ip,
	    d->client, d->reason, d->offences,
	    (long long)(d->until - store_now()),
	    conf->at_rcpt || c->s->conf->auth_required ? "rcpt" : "connect");
	/* A submission listener: the client may yet authenticate. */
	if (conf->at_rcpt || c->s->conf->auth_required)
		return VERDICT(V_CONTINUE);
	d->refused = true;
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
	const struct txn		*t = c->s->txn;
	struct rcpt			*r = t != NULL ? t->cur : NULL;
	struct karma_data		*d;

	if (karma_exempt(c->s) || r == NULL ||
	    (d = karma_data_get(c)) == NULL)
		return VERDICT(V_CONTINUE);
	karma_follow(c, d, t->rcpts != NULL ? (size_t)(r - t->rcpts) : 0,
	    false);
	if (is_trap(ks, r)) {
		karma_trap(c, d, r);
		karma_settle(c, d, false);
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
	    "connections (unknown recipients, spam, DNSBL, greytraps)",
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
