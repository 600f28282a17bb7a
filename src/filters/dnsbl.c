/*
 * dnsbl.c: the client's address against weighted DNS block and allow
 * lists (DNSBL/DNSWL), in Postfix postscreen's zone syntax:
 *
 *   zen.example*2  bl.example=127.0.0.[2..11]*1  wl.example=127.0.[0..255].[10..255]*-2
 *
 * A zone's weight counts when its answer passes the zone's return-code
 * filter (each octet a number or a bracketed list of n and n..m items,
 * separated by ';'). Lookups start at connect and run while the client
 * says EHLO; the decision is taken at RCPT, under the recipient's policy:
 * at or over reject_threshold the recipient is refused (postmaster@ and
 * abuse@ stay reachable); otherwise the total weight is a DNSBL symbol
 * (× score_factor) for the score filter. At or under allow_threshold
 * (< 0) the client is allow-listed: the session's client_allowed is set,
 * which the other connection checks honour.
 *
 * Answer hygiene: an address outside 127.0.0.0/8, or one of the "you may
 * not query" answers (127.255.255.0/24, DBL's 127.0.1.255, DNSWL's
 * 127.0.0.255), is an error, never a listing, whatever the filter says;
 * so is any DNS failure (DNS_TEMPFAIL), and a lookup past the decision's
 * deadline counts as no data.
 *
 * Zone health: a zone must list 127.0.0.2 and must not list 127.0.0.1
 * (RFC 5782 §5). Each worker checks on first use and every
 * health_interval seconds after; a zone that fails is taken out of
 * service (logged) until it passes again.
 *
 * The zone table is the default policy's: [domain] sections change the
 * thresholds, factor and texts only (their zones setting is ignored).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include "../core/dns.h"
#include "../core/log.h"
#include "dnsbl.h"
#include "filter.h"
#include "policy.h"

#define DNSBL_ZONES_MAX	16

struct dnsbl_conf {
	char	*zones;
	char	*reply_map;
	double	 reject_threshold;
	double	 allow_threshold;
	double	 score_factor;
	long long reply_code;
	char	*reply_text;
	long long health_interval;
};

struct dnsbl_state {
	struct dnsbl_zone	 zone[DNSBL_ZONES_MAX];
	size_t		 n;
	long long	 health_interval;
};

static const struct opt dnsbl_opts[] = {
	{ "zones", OPT_STR, "", 0, 0, offsetof(struct dnsbl_conf, zones),
	    "zones in postscreen syntax: zone[=a.b.c.d filter][*weight] ..." },
	{ "reply_map", OPT_STR, "", 0, 0, offsetof(struct dnsbl_conf,
	    reply_map), "zone=shown-name ...: names in replies (hides "
	    "secret zone names, e.g. DQS keys)" },
	{ "reject_threshold", OPT_FLOAT, "1", -1000, 1000,
	    offsetof(struct dnsbl_conf, reject_threshold), "total weight "
	    "at which a recipient is refused (0: never refuse, score only)" },
	{ "allow_threshold", OPT_FLOAT, "0", -1000, 0,
	    offsetof(struct dnsbl_conf, allow_threshold), "total weight at "
	    "or under which the client is allow-listed (0: never)" },
	{ "score_factor", OPT_FLOAT, "1", 0, 1000,
	    offsetof(struct dnsbl_conf, score_factor), "DNSBL symbol score "
	    "per unit of weight, when not refused" },
	{ "reply_code", OPT_INT, "554", 400, 599,
	    offsetof(struct dnsbl_conf, reply_code), "reply code of a "
	    "refusal (5xx refuses, 4xx defers)" },
	{ "reply_text", OPT_STR, "Service unavailable; client [%s] blocked "
	    "using %s", 0, 0, offsetof(struct dnsbl_conf, reply_text),
	    "refusal text: the first %s is the client address, the second "
	    "the zone" },
	{ "health_interval", OPT_INT, "300", 10, 86400,
	    offsetof(struct dnsbl_conf, health_interval), "seconds between "
	    "zone health checks (127.0.0.2 listed, 127.0.0.1 not)" },
	OPT_END
};

extern const struct filter filter_dnsbl;

/* ---- zone syntax (pure) --------------------------------------------- */

static void
octet_add(struct octet_set *o, unsigned lo, unsigned hi)
{
	unsigned v;

	for (v = lo; v <= hi && v < 256; v++)
		o->bits[v / 8] |= (unsigned char)(1u << (v % 8));
}

static bool
octet_has(const struct octet_set *o, unsigned char v)
{
	return (o->bits[v / 8] >> (v % 8)) & 1;
}

/* A decimal 0..255 at *p; advances *p. -1 when there is none. */
static int
parse_byte(const char **p)
{
	unsigned	v = 0;
	int		n = 0;

	while (**p >= '0' && **p <= '9' && n < 4) {
		v = v * 10 + (unsigned)(**p - '0');
		(*p)++;
		n++;
	}
	return n == 0 || n > 3 || v > 255 ? -1 : (int)v;
}

/* "2", "[2..11]", "[2;4;6..8]": one octet of a filter. */
static int
parse_octet(const char **p, struct octet_set *o)
{
	int lo, hi;

	if (**p != '[') {
		if ((lo = parse_byte(p)) == -1)
			return -1;
		octet_add(o, (unsigned)lo, (unsigned)lo);
		return 0;
	}
	(*p)++;
	for (;;) {
		if ((lo = parse_byte(p)) == -1)
			return -1;
		hi = lo;
		if ((*p)[0] == '.' && (*p)[1] == '.') {
			*p += 2;
			if ((hi = parse_byte(p)) == -1 || hi < lo)
				return -1;
		}
		octet_add(o, (unsigned)lo, (unsigned)hi);
		if (**p == ';') {
			(*p)++;
			continue;
		}
		if (**p != ']')
			return -1;
		(*p)++;
		return 0;
	}
}

int
dnsbl_parse_zone(const char *w, struct dnsbl_zone *z, char *err, size_t errlen)
{
	const char	*p = w, *end;
	size_t		 n;
	int		 i;
	char		*wend;

	memset(z, 0, sizeof(*z));
	z->weight = 1;
	n = strcspn(p, "=*");
	if (n == 0 || n >= sizeof(z->name) || !parse_domain_ok(p, n, false))
		goto bad;
	memcpy(z->name, p, n);
	z->name[n] = '\0';
	for (i = 0; z->name[i] != '\0'; i++)
		if (z->name[i] >= 'A' && z->name[i] <= 'Z')
			z->name[i] = (char)(z->name[i] - 'A' + 'a');
	snprintf(z->shown, sizeof(z->shown), "%s", z->name);
	p += n;
	if (*p == '=') {
		p++;
		z->filtered = true;
		for (i = 0; i < 4; i++) {
			if (parse_octet(&p, &z->oct[i]) == -1)
				goto bad;
			if (i < 3 && *p++ != '.')
				goto bad;
		}
	}
	if (*p == '*') {
		p++;
		z->weight = strtod(p, &wend);
		if (wend == p || z->weight < -1000 || z->weight > 1000)
			goto bad;
		p = wend;
	}
	end = p;
	if (*end != '\0')
		goto bad;
	return 0;
bad:
	snprintf(err, errlen, "zones: '%s' is not zone[=a.b.c.d][*weight]", w);
	return -1;
}

int
dnsbl_answer(const struct dnsbl_zone *z, const unsigned char a[4])
{
	int i;

	if (a[0] != 127 || (a[1] == 255 && a[2] == 255) ||
	    (a[1] == 0 && a[2] == 1 && a[3] == 255) ||
	    (a[1] == 0 && a[2] == 0 && a[3] == 255))
		return -1;
	if (!z->filtered)
		return 1;
	for (i = 0; i < 4; i++)
		if (!octet_has(&z->oct[i], a[i]))
			return 0;
	return 1;
}

static int
dnsbl_init(const void *vconf, void **state, char *err, size_t errlen)
{
	const struct dnsbl_conf	*conf = vconf;
	struct dnsbl_state	*st;
	char			*copy, *w, *save = NULL, *eq;
	size_t			 i;

	if ((st = calloc(1, sizeof(*st))) == NULL)
		return -1;
	*state = st;
	st->health_interval = conf->health_interval;
	if ((copy = strdup(conf->zones)) == NULL)
		return -1;
	for (w = strtok_r(copy, " \t,", &save); w != NULL;
	    w = strtok_r(NULL, " \t,", &save)) {
		if (st->n == DNSBL_ZONES_MAX) {
			snprintf(err, errlen, "zones: more than %d",
			    DNSBL_ZONES_MAX);
			free(copy);
			return -1;
		}
		if (dnsbl_parse_zone(w, &st->zone[st->n], err, errlen) == -1) {
			free(copy);
			return -1;
		}
		st->n++;
	}
	free(copy);
	if ((copy = strdup(conf->reply_map)) == NULL)
		return -1;
	for (w = strtok_r(copy, " \t,", &save); w != NULL;
	    w = strtok_r(NULL, " \t,", &save)) {
		if ((eq = strchr(w, '=')) == NULL || eq == w || eq[1] == '\0') {
			snprintf(err, errlen, "reply_map: '%s' is not "
			    "zone=name", w);
			free(copy);
			return -1;
		}
		*eq = '\0';
		for (i = 0; i < st->n; i++)
			if (strcasecmp(st->zone[i].name, w) == 0)
				snprintf(st->zone[i].shown,
				    sizeof(st->zone[i].shown), "%s", eq + 1);
	}
	free(copy);
	return 0;
}

static void
dnsbl_fini(void *state)
{
	free(state);
}

/* ---- per session ------------------------------------------------------ */

struct lookup {
	struct dnsbl_sess	*ds;
	struct dns_req		*req;
	size_t			 zone;
	bool			 done;
	bool			 tempfail;
	int			 result;	/* 1 listed, 0 not, -1 error */
	unsigned char		 answer[4];
	double			 ms;
};

struct dnsbl_sess {
	uint64_t		 sid;
	struct dnsbl_state	*st;
	struct lookup		 lk[DNSBL_ZONES_MAX];
	size_t			 n;
	bool			 tallied;	/* weight and evidence made */
	double			 weight;
	size_t			 top;		/* heaviest listing zone */
	unsigned		 symbol_txn;	/* txn seq given the symbol */
};

static void
dnsbl_data_free(void *data)
{
	struct dnsbl_sess	*ds = data;
	size_t			 i;

	for (i = 0; i < ds->n; i++)
		if (ds->lk[i].req != NULL)
			dns_cancel(ds->lk[i].req);
	free(ds);
}

static void
lookup_done(const struct dns_answer *a, void *arg)
{
	struct lookup		*lk = arg;
	struct dnsbl_sess	*ds = lk->ds;
	struct dnsbl_zone		*z = &ds->st->zone[lk->zone];
	struct session		*s = session_find(ds->sid);
	size_t			 i;
	int			 r;

	lk->req = NULL;
	lk->done = true;
	lk->result = 0;
	for (i = 0; a->status == DNS_OK && i < a->n; i++) {
		if (a->rr[i].family != AF_INET)
			continue;
		r = dnsbl_answer(z, a->rr[i].addr);
		if (r == -1) {
			lk->result = -1;
			memcpy(lk->answer, a->rr[i].addr, 4);
			break;
		}
		if (r == 1 && lk->result == 0) {
			lk->result = 1;
			memcpy(lk->answer, a->rr[i].addr, 4);
		}
	}
	lk->tempfail = a->status == DNS_TEMPFAIL;
	lk->ms = a->ms;
	/* A session that is gone took its data with it (its lookups were
	 * cancelled); this one is ours. */
	if (s == NULL || filter_data(s, &filter_dnsbl) != ds)
		return;
	if (lk->result == -1)
		log_msg(LVL_WARN, s->id, "event=dnsbl_refused zone=%s "
		    "answer=%u.%u.%u.%u", z->name, lk->answer[0],
		    lk->answer[1], lk->answer[2], lk->answer[3]);
	filter_work_done(s, &filter_dnsbl);
}

/*
 * The weight of what came in by the decision, once per session: only
 * zones in service count (a zone whose health is unknown or failing
 * says nothing), a lookup not done or failed is no data, an error answer
 * is never a listing. Each finding is evidence.
 */
static void
dnsbl_tally(struct session *s, struct dnsbl_sess *ds)
{
	const struct dnsbl_zone	*z;
	const struct lookup	*lk;
	size_t			 i;

	if (ds->tallied)
		return;
	ds->tallied = true;
	for (i = 0; i < ds->n; i++) {
		lk = &ds->lk[i];
		z = &ds->st->zone[lk->zone];
		if (!lk->done || lk->tempfail)
			filter_evidence(s, &filter_dnsbl, "DNSBL_NODATA", 0,
			    lk->ms, "%s: %s", z->name, lk->done ?
			    "lookup failed" : "no answer by the deadline");
		else if (lk->result == -1)
			filter_evidence(s, &filter_dnsbl, "DNSBL_ERROR", 0,
			    lk->ms, "%s=%u.%u.%u.%u: error answer, not a "
			    "listing", z->name, lk->answer[0], lk->answer[1],
			    lk->answer[2], lk->answer[3]);
		else if (lk->result == 1 && z->health != 1)
			filter_evidence(s, &filter_dnsbl, "DNSBL_ZONE_DOWN",
			    0, lk->ms, "%s=%u.%u.%u.%u: zone not in service, "
			    "not counted", z->name, lk->answer[0],
			    lk->answer[1], lk->answer[2], lk->answer[3]);
		else if (lk->result == 1) {
			ds->weight += z->weight;
			if (z->weight > 0 && (ds->top == (size_t)-1 ||
			    z->weight > ds->st->zone[ds->top].weight))
				ds->top = lk->zone;
			filter_evidence(s, &filter_dnsbl, z->weight < 0 ?
			    "DNSWL" : "DNSBL", z->weight, lk->ms,
			    "%s=%u.%u.%u.%u weight %g", z->name,
			    lk->answer[0], lk->answer[1], lk->answer[2],
			    lk->answer[3], z->weight);
		}
	}
}

/* ---- zone health (zone_health.c) ------------------------------------- */

/* Starts a zone's check when one is due, or joins the one running. */
static void
health_maybe(struct session *s, struct dnsbl_state *st,
    struct dnsbl_zone *z)
{
	char		 listed[300], clean[300];
	unsigned char	 two[4] = { 127, 0, 0, 2 }, one[4] = { 127, 0, 0, 1 };

	if (z->checking)
		zone_health_join(s, &filter_dnsbl, z);
	else if (zone_health_due(z, st->health_interval) &&
	    dns_reverse(AF_INET, two, z->name, listed, sizeof(listed)) == 0 &&
	    dns_reverse(AF_INET, one, z->name, clean, sizeof(clean)) == 0)
		zone_health_start(s, &filter_dnsbl, z, listed, clean, "dnsbl",
		    "127.0.0.2 must be listed and 127.0.0.1 not");
}

/* The refusal text: reply_text with its first %s the client address and
 * the second the zone's shown name ("%%" a percent sign); configuration
 * text is never used as a printf format. */
void
dnsbl_reply_format(char *out, size_t n, const char *tmpl, const char *ip,
    const char *zone)
{
	filter_reply_format(out, n, tmpl, ip, zone);
}

/* ---- hooks ------------------------------------------------------------ */

static struct dnsbl_state *
zone_table(void)
{
	return pipeline_active->def->state[filter_index(&filter_dnsbl)];
}

static struct verdict
dnsbl_connect(struct filter_call *c)
{
	struct dnsbl_state	*st = zone_table();
	struct session		*s = c->s;
	struct dnsbl_sess	*ds;
	const void		*addr;
	char			 name[300];
	size_t			 i;
	int			 af = s->peer.ss_family;

	if (st == NULL || st->n == 0 || s->trusted)
		return VERDICT(V_CONTINUE);
	addr = af == AF_INET6 ? (const void *)&((const struct sockaddr_in6 *)
	    (const void *)&s->peer)->sin6_addr : (const void *)
	    &((const struct sockaddr_in *)(const void *)&s->peer)->sin_addr;
	if ((ds = calloc(1, sizeof(*ds))) == NULL)
		return VERDICT(V_CONTINUE);
	ds->sid = s->id;
	ds->st = st;
	ds->top = (size_t)-1;
	if (filter_data_set(s, &filter_dnsbl, ds) == -1) {
		free(ds);
		return VERDICT(V_CONTINUE);
	}
	for (i = 0; i < st->n; i++) {
		struct lookup *lk = &ds->lk[ds->n];

		health_maybe(s, st, &st->zone[i]);
		if (st->zone[i].health == -1)
			continue;	/* out of service */
		if (dns_reverse(af, addr, st->zone[i].name, name,
		    sizeof(name)) == -1)
			continue;
		lk->ds = ds;
		lk->zone = i;
		ds->n++;
		filter_work_add(s, &filter_dnsbl);
		if ((lk->req = dns_query(DNS_A, name, lookup_done, lk)) ==
		    NULL) {
			lk->done = true;
			filter_work_done(s, &filter_dnsbl);
		}
	}
	return VERDICT(V_CONTINUE);
}

static struct verdict
dnsbl_rcpt(struct filter_call *c)
{
	const struct dnsbl_conf	*conf = c->conf;
	struct dnsbl_sess	*ds = c->data;
	struct session		*s = c->s;
	const struct rcpt	*r = s->txn->cur;
	struct verdict		 v;
	char			*text;

	if (ds == NULL || r->exempt || s->trusted || s->authenticated)
		return VERDICT(V_CONTINUE);
	if (!c->late && filter_work_pending(s, &filter_dnsbl) > 0)
		return filter_wait(c, 0);
	dnsbl_tally(s, ds);
	if (conf->allow_threshold < 0 && ds->weight <= conf->allow_threshold)
		s->client_allowed = true;
	if (conf->reject_threshold > 0 && ds->weight >=
	    conf->reject_threshold && ds->top != (size_t)-1) {
		/* The text lives in the transaction (a verdict's text must
		 * outlive the call). */
		text = s->txn->verdict_text;
		dnsbl_reply_format(text, sizeof(s->txn->verdict_text),
		    conf->reply_text, s->ip, ds->st->zone[ds->top].shown);
		v = verdict_make(conf->reply_code / 100 == 4 ? V_DEFER :
		    V_DENY, (int)conf->reply_code, conf->reply_code / 100 ==
		    4 ? "4.7.1" : "5.7.1", text);
		return v;
	}
	if (ds->weight != 0 && ds->symbol_txn != s->txn->seq) {
		ds->symbol_txn = s->txn->seq;
		session_symbol(s, ds->weight < 0 ? "DNSWL" : "DNSBL",
		    ds->weight * conf->score_factor);
	}
	return VERDICT(V_CONTINUE);
}

const struct filter filter_dnsbl = {
	.name = "dnsbl",
	.summary = "client address against weighted DNS block and allow "
	    "lists (postscreen syntax), decided at RCPT per policy",
	.opts = dnsbl_opts,
	.conf_size = sizeof(struct dnsbl_conf),
	.init = dnsbl_init,
	.fini = dnsbl_fini,
	.hook = {
		[STAGE_CONNECT] = dnsbl_connect,
		[STAGE_RCPT] = dnsbl_rcpt,
	},
	.data_free = dnsbl_data_free,
	.fail = FAIL_CONTINUE,
};
