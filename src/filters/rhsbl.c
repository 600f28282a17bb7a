/*
 * rhsbl.c: domain names against weighted right-hand-side block lists
 * (RHSBL, Spamhaus DBL-style, RFC 5782 §2.2): the HELO name, the MAIL
 * FROM domain and the client's verified reverse DNS name, each source
 * switchable, in dnsbl's zone syntax and with its answer hygiene:
 *
 *   dbl.example=127.0.1.[2..99]*2  uribl.example*1  dwl.example*-2
 *
 * The name is asked as given (lowercased, no trailing dot) under each
 * zone; address literals and bare addresses are skipped, and the null
 * sender skips the sender source. Lookups start when the name is known:
 * the HELO name at HELO, the sender domain at MAIL, the verified rDNS
 * name (fcrdns sets it, maybe while the client talks) at the first of
 * HELO, MAIL or RCPT that sees it. The decision is taken at RCPT under
 * the recipient's policy: the weights of the listing zones add up (a
 * zone counts once per distinct name, so a sender domain equal to the
 * HELO name is not counted twice); at or over reject_threshold the
 * recipient is refused (postmaster@ and abuse@ stay reachable),
 * otherwise the total (× score_factor) is an RHSBL symbol.
 *
 * Answer hygiene (dnsbl_answer): an address outside 127/8 or a "you may
 * not query" answer (127.255.255.0/24, DBL's 127.0.1.255) is an error,
 * never a listing; a DNS failure, or a lookup past the decision's
 * deadline, is no data.
 *
 * Zone health (RFC 5782 §5): a domain list must list TEST and must not
 * list INVALID. Each worker checks on first use and every
 * health_interval seconds; a failing zone is out of service (logged)
 * until it passes again. The zone table is the default policy's:
 * [domain] sections change the thresholds, factor, sources and texts.
 *
 * The zone word parser, the answer check and the reply formatter are
 * dnsbl's (dnsbl.h); the loop that splits the zones and reply_map
 * settings is a copy of dnsbl_init's.
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
#include "rhsbl.h"

#define RHSBL_ZONES_MAX	16
#define RHSBL_WORDS_MAX	64	/* words of zones / reply_map */

struct rhsbl_conf {
	char		*zones;
	char		*reply_map;
	double		 reject_threshold;
	double		 score_factor;
	long long	 reply_code;
	char		*reply_text;
	long long	 health_interval;
	bool		 check[RHSBL_SOURCES];
};

struct rhsbl_state {
	struct dnsbl_zone	 zone[RHSBL_ZONES_MAX];
	size_t			 n;
	long long		 health_interval;
};

static const struct opt rhsbl_opts[] = {
	{ "zones", OPT_STR, "", 0, 0, offsetof(struct rhsbl_conf, zones),
	    "domain zones, postscreen syntax: zone[=a.b.c.d filter]"
	    "[*weight] ..." },
	{ "reply_map", OPT_STR, "", 0, 0, offsetof(struct rhsbl_conf,
	    reply_map), "zone=shown-name ...: names in replies (hides "
	    "secret zone names, e.g. DQS keys)" },
	{ "reject_threshold", OPT_FLOAT, "1", -1000, 1000,
	    offsetof(struct rhsbl_conf, reject_threshold), "total weight "
	    "at which a recipient is refused (0: never refuse, score only)" },
	{ "score_factor", OPT_FLOAT, "1", 0, 1000,
	    offsetof(struct rhsbl_conf, score_factor), "RHSBL symbol score "
	    "per unit of weight, when not refused" },
	{ "reply_code", OPT_INT, "554", 400, 599,
	    offsetof(struct rhsbl_conf, reply_code), "reply code of a "
	    "refusal (5xx refuses, 4xx defers)" },
	{ "reply_text", OPT_STR, "Service unavailable; domain %s blocked "
	    "using %s", 0, 0, offsetof(struct rhsbl_conf, reply_text),
	    "refusal text: the first %s is the listed name, the second the "
	    "zone" },
	{ "health_interval", OPT_INT, "300", 10, 86400,
	    offsetof(struct rhsbl_conf, health_interval), "seconds between "
	    "zone health checks (TEST listed, INVALID not)" },
	{ "check_helo", OPT_BOOL, "yes", 0, 0,
	    offsetof(struct rhsbl_conf, check[RHSBL_HELO]),
	    "look the HELO name up" },
	{ "check_sender", OPT_BOOL, "yes", 0, 0,
	    offsetof(struct rhsbl_conf, check[RHSBL_SENDER]),
	    "look the MAIL FROM domain up" },
	{ "check_rdns", OPT_BOOL, "yes", 0, 0,
	    offsetof(struct rhsbl_conf, check[RHSBL_RDNS]),
	    "look the client's verified rDNS name up (needs fcrdns)" },
	OPT_END
};

static const char *const source_names[RHSBL_SOURCES] = {
	"helo", "sender", "rdns",
};
static const char *const listing_names[RHSBL_SOURCES] = {
	"RHSBL_HELO", "RHSBL_SENDER", "RHSBL_RDNS",
};

extern const struct filter filter_rhsbl;

/* ---- pure parts --------------------------------------------------------- */

int
rhsbl_name(const char *domain, char *out, size_t outlen)
{
	size_t		n = strlen(domain), i;
	unsigned char	a[16];

	if (n > 0 && domain[n - 1] == '.')
		n--;
	if (n == 0 || n >= outlen || domain[0] == '[')
		return -1;
	for (i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)domain[i];

		if (ch >= 0x80 || ch <= ' ')
			return -1;
		out[i] = (char)(ch >= 'A' && ch <= 'Z' ? ch - 'A' + 'a' : ch);
	}
	out[n] = '\0';
	/* No empty label: not at the ends, not between two dots. */
	if (strchr(out, '.') == NULL || out[0] == '.' || out[n - 1] == '.' ||
	    strstr(out, "..") != NULL || inet_pton(AF_INET, out, a) == 1 ||
	    inet_pton(AF_INET6, out, a) == 1)
		return -1;
	return 0;
}

/* "a b, c" into words of a copy; -1 past RHSBL_WORDS_MAX. */
static int
words_of(const char *key, const char *val, char **copy, char **w,
    char *err, size_t errlen)
{
	int n;

	if ((*copy = strdup(val)) == NULL)
		return -1;
	if ((n = config_words(*copy, w, RHSBL_WORDS_MAX)) == -1)
		snprintf(err, errlen, "%s: more than %d words", key,
		    RHSBL_WORDS_MAX);
	return n;
}

static int
rhsbl_init(const void *vconf, void **state, char *err, size_t errlen)
{
	const struct rhsbl_conf	*conf = vconf;
	struct rhsbl_state	*st;
	char			*copy = NULL, *w[RHSBL_WORDS_MAX], *eq;
	int			 n, i;
	size_t			 k;

	if ((st = calloc(1, sizeof(*st))) == NULL)
		return -1;
	*state = st;
	st->health_interval = conf->health_interval;
	if ((n = words_of("zones", conf->zones, &copy, w, err, errlen)) == -1)
		goto fail;
	for (i = 0; i < n; i++) {
		if (st->n == RHSBL_ZONES_MAX) {
			snprintf(err, errlen, "zones: more than %d",
			    RHSBL_ZONES_MAX);
			goto fail;
		}
		if (dnsbl_parse_zone(w[i], &st->zone[st->n], err, errlen) ==
		    -1)
			goto fail;
		st->n++;
	}
	free(copy);
	if ((n = words_of("reply_map", conf->reply_map, &copy, w, err,
	    errlen)) == -1)
		goto fail;
	for (i = 0; i < n; i++) {
		if ((eq = strchr(w[i], '=')) == NULL || eq == w[i] ||
		    eq[1] == '\0') {
			snprintf(err, errlen, "reply_map: '%s' is not "
			    "zone=name", w[i]);
			goto fail;
		}
		*eq = '\0';
		for (k = 0; k < st->n; k++)
			if (strcasecmp(st->zone[k].name, w[i]) == 0)
				snprintf(st->zone[k].shown,
				    sizeof(st->zone[k].shown), "%s", eq + 1);
	}
	free(copy);
	return 0;
fail:
	free(copy);
	return -1;
}

static void
rhsbl_fini(void *state)
{
	free(state);
}

/* ---- per session -------------------------------------------------------- */

struct lookup {
	struct rhsbl_sess	*rs;
	struct dns_req		*req;
	size_t			 zone;
	bool			 done;
	bool			 tempfail;
	int			 result;	/* 1 listed, 0 not, -1 error */
	unsigned char		 answer[4];
	double			 ms;
};

/* One source's name and its lookups, one per zone in service. */
struct source {
	char			 name[LIMIT_DOMAIN + 1];	/* "": none */
	bool			 noted;		/* evidence made */
	size_t			 n;
	struct lookup		 lk[RHSBL_ZONES_MAX];
};

struct rhsbl_sess {
	uint64_t		 sid;
	struct rhsbl_state	*st;
	struct source		 src[RHSBL_SOURCES];
	unsigned		 symbol_txn;
};

static struct session *
owner(struct rhsbl_sess *rs)
{
	struct session *s = session_find(rs->sid);

	return s != NULL && filter_data(s, &filter_rhsbl) == rs ? s : NULL;
}

/* Drops a source's lookups in flight (each counted done) and its name. */
static void
source_stop(struct session *s, struct source *src)
{
	size_t i;

	for (i = 0; i < src->n; i++)
		if (src->lk[i].req != NULL) {
			dns_cancel(src->lk[i].req);
			src->lk[i].req = NULL;
			if (s != NULL)
				filter_work_done(s, &filter_rhsbl);
		}
	memset(src, 0, sizeof(*src));
}

static void
rhsbl_data_free(void *data)
{
	struct rhsbl_sess	*rs = data;
	int			 i;

	for (i = 0; i < RHSBL_SOURCES; i++)
		source_stop(NULL, &rs->src[i]);
	free(rs);
}

static void
lookup_done(const struct dns_answer *a, void *arg)
{
	struct lookup		*lk = arg;
	struct rhsbl_sess	*rs = lk->rs;
	const struct dnsbl_zone	*z = &rs->st->zone[lk->zone];
	struct session		*s = owner(rs);
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
	if (s == NULL)
		return;
	if (lk->result == -1)
		log_msg(LVL_WARN, s->id, "event=rhsbl_refused zone=%s "
		    "answer=%u.%u.%u.%u", z->name, lk->answer[0],
		    lk->answer[1], lk->answer[2], lk->answer[3]);
	filter_work_done(s, &filter_rhsbl);
}

/* ---- zone health (RFC 5782 §5; zone_health.c) ------------------------- */

/* Starts a zone's check when one is due, or joins the one running. */
static void
health_maybe(struct session *s, struct rhsbl_state *st, struct dnsbl_zone *z)
{
	char listed[DNS_NAME_MAX + 16], clean[DNS_NAME_MAX + 16];

	if (z->checking)
		zone_health_join(s, &filter_rhsbl, z);
	else if (zone_health_due(z, st->health_interval)) {
		snprintf(listed, sizeof(listed), "test.%s", z->name);
		snprintf(clean, sizeof(clean), "invalid.%s", z->name);
		zone_health_start(s, &filter_rhsbl, z, listed, clean, "rhsbl",
		    "TEST must be listed and INVALID not");
	}
}

/* ---- sources ------------------------------------------------------------ */

/* True when some policy looks at the source (the lookups are shared;
 * each recipient's policy decides whether they count). */
static bool
source_wanted(enum rhsbl_source which)
{
	const struct pipeline		*pl = pipeline_active;
	const struct rhsbl_conf		*conf;
	size_t				 k = filter_index(&filter_rhsbl), i;

	if ((conf = pl->def->conf[k]) != NULL && conf->check[which])
		return true;
	for (i = 0; i < pl->ndomains; i++)
		if ((conf = pl->domains[i]->conf[k]) != NULL &&
		    conf->check[which])
			return true;
	return false;
}

/* Points a source at a domain (NULL or unusable: none) and starts its
 * lookups; the same name again changes nothing. */
static void
source_set(struct session *s, struct rhsbl_sess *rs,
    enum rhsbl_source which, const char *domain)
{
	struct source	*src = &rs->src[which];
	struct rhsbl_state *st = rs->st;
	char		 name[LIMIT_DOMAIN + 1], q[DNS_NAME_MAX + 2];
	size_t		 i;

	if (domain == NULL || !source_wanted(which) ||
	    rhsbl_name(domain, name, sizeof(name)) == -1)
		name[0] = '\0';
	if (strcmp(name, src->name) == 0)
		return;
	source_stop(s, src);
	snprintf(src->name, sizeof(src->name), "%s", name);
	for (i = 0; name[0] != '\0' && i < st->n; i++) {
		struct lookup *lk = &src->lk[src->n];

		health_maybe(s, st, &st->zone[i]);
		if (st->zone[i].health == -1)
			continue;	/* out of service */
		if ((size_t)snprintf(q, sizeof(q), "%s.%s", name,
		    st->zone[i].name) > DNS_NAME_MAX)
			continue;	/* cannot be listed */
		lk->rs = rs;
		lk->zone = i;
		src->n++;
		filter_work_add(s, &filter_rhsbl);
		if ((lk->req = dns_query(DNS_A, q, lookup_done, lk)) == NULL) {
			lk->done = true;
			lk->tempfail = true;
			filter_work_done(s, &filter_rhsbl);
		}
	}
}

/* The verified rDNS name, once fcrdns has it. */
static void
rdns_maybe(struct session *s, struct rhsbl_sess *rs)
{
	if (s->rdns_verified && rs->src[RHSBL_RDNS].name[0] == '\0')
		source_set(s, rs, RHSBL_RDNS, s->rdns);
}

/* The session's data, made on first use; NULL when the filter has
 * nothing to do for it. */
static struct rhsbl_sess *
sess_get(struct filter_call *c)
{
	struct rhsbl_state	*st;
	struct rhsbl_sess	*rs = c->data;
	struct session		*s = c->s;

	if (rs != NULL)
		return rs;
	st = pipeline_active->def->state[filter_index(&filter_rhsbl)];
	if (st == NULL || st->n == 0 || s->trusted || s->authenticated)
		return NULL;
	if ((rs = calloc(1, sizeof(*rs))) == NULL)
		return NULL;
	rs->sid = s->id;
	rs->st = st;
	if (filter_data_set(s, &filter_rhsbl, rs) == -1) {
		free(rs);
		return NULL;
	}
	return rs;
}

static struct verdict
rhsbl_helo(struct filter_call *c)
{
	struct rhsbl_sess *rs = sess_get(c);

	if (rs != NULL) {
		source_set(c->s, rs, RHSBL_HELO, c->s->helo);
		rdns_maybe(c->s, rs);
	}
	return VERDICT(V_CONTINUE);
}

static struct verdict
rhsbl_mail(struct filter_call *c)
{
	struct rhsbl_sess	*rs = sess_get(c);
	const struct path	*from = &c->s->txn->from;

	if (rs != NULL) {
		source_set(c->s, rs, RHSBL_SENDER, from->null ||
		    from->literal ? NULL : from->domain);
		rdns_maybe(c->s, rs);
	}
	return VERDICT(V_CONTINUE);
}

/* One lookup as evidence. */
static void
note(struct session *s, enum rhsbl_source which, const struct source *src,
    const struct lookup *lk, const struct dnsbl_zone *z)
{
	const char *sn = source_names[which];

	if (!lk->done || lk->tempfail)
		filter_evidence(s, &filter_rhsbl, "RHSBL_NODATA", 0, lk->ms,
		    "%s %s: %s %s", sn, src->name, z->name, lk->done ?
		    "lookup failed" : "no answer by the deadline");
	else if (lk->result == -1)
		filter_evidence(s, &filter_rhsbl, "RHSBL_ERROR", 0, lk->ms,
		    "%s %s: %s=%u.%u.%u.%u error answer, not a listing", sn,
		    src->name, z->name, lk->answer[0], lk->answer[1],
		    lk->answer[2], lk->answer[3]);
	else if (lk->result == 1 && z->health != 1)
		filter_evidence(s, &filter_rhsbl, "RHSBL_ZONE_DOWN", 0,
		    lk->ms, "%s %s: %s=%u.%u.%u.%u zone not in service", sn,
		    src->name, z->name, lk->answer[0], lk->answer[1],
		    lk->answer[2], lk->answer[3]);
	else if (lk->result == 1)
		filter_evidence(s, &filter_rhsbl, listing_names[which],
		    z->weight, lk->ms, "%s: %s=%u.%u.%u.%u weight %g",
		    src->name, z->name, lk->answer[0], lk->answer[1],
		    lk->answer[2], lk->answer[3], z->weight);
}

/* True when an earlier source (of those the policy counts) has the
 * same name: its listings are counted once. */
static bool
counted_before(const struct rhsbl_sess *rs, const struct rhsbl_conf *conf,
    int which)
{
	int i;

	for (i = 0; i < which; i++)
		if (conf->check[i] && strcmp(rs->src[i].name,
		    rs->src[which].name) == 0)
			return true;
	return false;
}

/*
 * The weight of the sources the policy counts, with the heaviest
 * listing (*top_src, *top_zone; -1 when none); evidence made once per
 * source name. Only zones in service count; no data and error answers
 * never list.
 */
static double
rhsbl_tally(struct session *s, struct rhsbl_sess *rs,
    const struct rhsbl_conf *conf, int *top_src, size_t *top_zone)
{
	const struct dnsbl_zone	*z;
	struct source		*src;
	double			 weight = 0;
	size_t			 i;
	int			 w;

	*top_src = -1;
	for (w = 0; w < RHSBL_SOURCES; w++) {
		src = &rs->src[w];
		if (!conf->check[w] || src->name[0] == '\0' ||
		    counted_before(rs, conf, w))
			continue;
		for (i = 0; i < src->n; i++) {
			z = &rs->st->zone[src->lk[i].zone];
			if (!src->noted)
				note(s, (enum rhsbl_source)w, src,
				    &src->lk[i], z);
			if (!src->lk[i].done || src->lk[i].tempfail ||
			    src->lk[i].result != 1 || z->health != 1)
				continue;
			weight += z->weight;
			if (z->weight > 0 && (*top_src == -1 || z->weight >
			    rs->st->zone[*top_zone].weight)) {
				*top_src = w;
				*top_zone = src->lk[i].zone;
			}
		}
		src->noted = true;
	}
	return weight;
}

static struct verdict
rhsbl_rcpt(struct filter_call *c)
{
	const struct rhsbl_conf	*conf = c->conf;
	struct rhsbl_sess	*rs = c->data;
	struct session		*s = c->s;
	char			*text = s->txn->verdict_text;
	double			 weight;
	size_t			 zone = 0;
	int			 top;

	if (rs == NULL || s->txn->cur->exempt || s->trusted ||
	    s->authenticated || s->client_allowed)
		return VERDICT(V_CONTINUE);
	if (!c->late) {
		/* fcrdns, earlier in [pipeline], may have the name now. */
		rdns_maybe(s, rs);
		if (filter_work_pending(s, &filter_rhsbl) > 0)
			return filter_wait(c, 0);
	}
	weight = rhsbl_tally(s, rs, conf, &top, &zone);
	if (conf->reject_threshold > 0 && weight >= conf->reject_threshold &&
	    top != -1) {
		/* Configuration text is never a printf format. */
		dnsbl_reply_format(text, sizeof(s->txn->verdict_text),
		    conf->reply_text, rs->src[top].name,
		    rs->st->zone[zone].shown);
		return verdict_make(conf->reply_code / 100 == 4 ? V_DEFER :
		    V_DENY, (int)conf->reply_code, conf->reply_code / 100 ==
		    4 ? "4.7.1" : "5.7.1", text);
	}
	if (weight != 0 && rs->symbol_txn != s->txn->seq) {
		rs->symbol_txn = s->txn->seq;
		session_symbol(s, weight < 0 ? "RHSWL" : "RHSBL",
		    weight * conf->score_factor);
	}
	return VERDICT(V_CONTINUE);
}

const struct filter filter_rhsbl = {
	.name = "rhsbl",
	.summary = "HELO name, sender domain and verified rDNS name against "
	    "weighted domain block lists, decided at RCPT per policy",
	.opts = rhsbl_opts,
	.conf_size = sizeof(struct rhsbl_conf),
	.init = rhsbl_init,
	.fini = rhsbl_fini,
	.hook = {
		[STAGE_HELO] = rhsbl_helo,
		[STAGE_MAIL] = rhsbl_mail,
		[STAGE_RCPT] = rhsbl_rcpt,
	},
	.data_free = rhsbl_data_free,
	.fail = FAIL_CONTINUE,
};
