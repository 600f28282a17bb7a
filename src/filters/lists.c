/*
 * lists.c: deny and allow lists for the client's address, its verified
 * rDNS name, its HELO, the sender and the recipient (qmail badmailfrom,
 * badrcptto and badhelo files, @domain and .domain entries, qregex
 * patterns; lists.h for the format, docs/FILTERS.md for the rules).
 *
 * Allow: an allow-listed client (IP at connect, HELO at HELO, verified
 * rDNS at the first RCPT that sees it) skips the filters named by
 * client_skip for the session; an allow-listed sender skips those named
 * by sender_skip for the transaction (filter_skip). Both come from the
 * default policy's lists, since a skip is not per recipient. An allow
 * entry also cancels its group's deny entries (client: IP, rDNS, HELO;
 * sender; recipient). Nothing here reaches relay control, which the core
 * decides before any filter (ARCHITECTURE, Relay control).
 *
 * Deny: the sender at MAIL under the default policy (applied at RCPT by
 * delay-deny, like badmailfrom); the recipient, the client and its HELO
 * at RCPT under the recipient's policy, whose [domain] section may name
 * its own files (a non-default policy's sender lists are checked at RCPT
 * too). postmaster@ and abuse@ are not judged on the client or sender,
 * nor are trusted or authenticated clients; the recipient lists apply
 * to every recipient.
 *
 * Every decision names its rule: the entry's "lists:file:line" is the
 * verdict's `by` and is in the evidence.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/log.h"
#include "filter.h"
#include "lists.h"
#include "policy.h"

enum { DENY, ALLOW };

struct lists_conf {
	char		*file[LISTS_KINDS][2][2];	/* [kind][allow][regex] */
	char		*client_skip;
	char		*sender_skip;
	long long	 match_limit;
	long long	 depth_limit;
	long long	 client_code, helo_code, sender_code, rcpt_code;
	char		*client_text, *helo_text, *sender_text, *rcpt_text;
};

struct lists_state {
	struct lists_set	*set[LISTS_KINDS][2];	/* NULL: empty */
};

#define F(k, a, r)	offsetof(struct lists_conf, file[k][a][r])
#define LIST_OPTS(name, k, what)					\
	{ name "_deny", OPT_PATH, "", 0, 0, F(k, DENY, 0),		\
	    what " refused: exact, @domain, .domain, /pattern/" },	\
	{ name "_deny_regex", OPT_PATH, "", 0, 0, F(k, DENY, 1),	\
	    what " refused: every line a pattern (qregex)" },		\
	{ name "_allow", OPT_PATH, "", 0, 0, F(k, ALLOW, 0),		\
	    what " allowed: exact, @domain, .domain, /pattern/" },	\
	{ name "_allow_regex", OPT_PATH, "", 0, 0, F(k, ALLOW, 1),	\
	    what " allowed: every line a pattern" }

static const struct opt lists_opts[] = {
	LIST_OPTS("helo", LISTS_HELO, "HELO names"),
	LIST_OPTS("sender", LISTS_SENDER, "MAIL FROM addresses"),
	LIST_OPTS("rcpt", LISTS_RCPT, "RCPT TO addresses"),
	LIST_OPTS("rdns", LISTS_RDNS, "verified client rDNS names"),
	LIST_OPTS("ip", LISTS_IP, "client addresses (address, CIDR)"),
	{ "client_skip", OPT_STR, "dnsbl fcrdns helo rhsbl", 0, 0,
	    offsetof(struct lists_conf, client_skip), "filters an "
	    "allow-listed client (IP, rDNS, HELO) skips for the session" },
	{ "sender_skip", OPT_STR, "sender spf rhsbl", 0, 0,
	    offsetof(struct lists_conf, sender_skip), "filters an "
	    "allow-listed sender skips for the transaction" },
	{ "match_limit", OPT_INT, "100000", 1000, 100000000,
	    offsetof(struct lists_conf, match_limit), "PCRE2 match limit "
	    "per pattern and subject (past it: no match)" },
	{ "depth_limit", OPT_INT, "5000", 100, 10000000,
	    offsetof(struct lists_conf, depth_limit), "PCRE2 depth limit "
	    "per pattern and subject (past it: no match)" },
	{ "client_code", OPT_INT, "554", 400, 599,
	    offsetof(struct lists_conf, client_code), "reply code for a "
	    "denied client address or rDNS name (4xx defers)" },
	{ "client_text", OPT_STR, "Client host rejected: %s", 0, 0,
	    offsetof(struct lists_conf, client_text), "its text (%s: the "
	    "address or name) unless the entry has one" },
	{ "helo_code", OPT_INT, "550", 400, 599,
	    offsetof(struct lists_conf, helo_code), "reply code for a "
	    "denied HELO" },
	{ "helo_text", OPT_STR, "Helo command rejected: %s", 0, 0,
	    offsetof(struct lists_conf, helo_text), "its text (%s: the "
	    "HELO name)" },
	{ "sender_code", OPT_INT, "553", 400, 599,
	    offsetof(struct lists_conf, sender_code), "reply code for a "
	    "denied sender" },
	{ "sender_text", OPT_STR, "Sender address rejected", 0, 0,
	    offsetof(struct lists_conf, sender_text), "its text (%s: the "
	    "address)" },
	{ "rcpt_code", OPT_INT, "550", 400, 599,
	    offsetof(struct lists_conf, rcpt_code), "reply code for a "
	    "denied recipient (5xx: 5.1.1)" },
	{ "rcpt_text", OPT_STR, "Recipient address rejected", 0, 0,
	    offsetof(struct lists_conf, rcpt_text), "its text (%s: the "
	    "address)" },
	OPT_END
};

extern const struct filter filter_lists;

static const char *const kind_key[LISTS_KINDS] = {
	"helo", "sender", "rcpt", "rdns", "ip"
};

/* Evidence names, [kind][allow]. */
static const char *const ev_name[LISTS_KINDS][2] = {
	{ "LISTS_HELO_DENY", "LISTS_HELO_ALLOW" },
	{ "LISTS_SENDER_DENY", "LISTS_SENDER_ALLOW" },
	{ "LISTS_RCPT_DENY", "LISTS_RCPT_ALLOW" },
	{ "LISTS_RDNS_DENY", "LISTS_RDNS_ALLOW" },
	{ "LISTS_IP_DENY", "LISTS_IP_ALLOW" },
};

/* ---- load --------------------------------------------------------- */

/* Every word of a skip option must name a filter (or be "all"). */
static int
skip_check(const char *key, const char *names, char *err, size_t errlen)
{
	char	w[64];
	size_t	n;

	while (*names != '\0') {
		names += strspn(names, " ,\t");
		if ((n = strcspn(names, " ,\t")) == 0)
			break;
		snprintf(w, sizeof(w), "%.*s", (int)n, names);
		if (n >= sizeof(w) || (strcmp(w, "all") != 0 &&
		    filter_find(w) == NULL)) {
			snprintf(err, errlen, "%s: '%s' is not a filter", key,
			    w);
			return -1;
		}
		names += n;
	}
	return 0;
}

static int
lists_init(const void *vconf, void **state, char *err, size_t errlen)
{
	const struct lists_conf	*conf = vconf;
	struct lists_state	*st;
	const char		*path;
	int			 k, a, r;

	if ((st = calloc(1, sizeof(*st))) == NULL)
		return -1;
	*state = st;
	if (skip_check("client_skip", conf->client_skip, err, errlen) == -1 ||
	    skip_check("sender_skip", conf->sender_skip, err, errlen) == -1)
		return -1;
	for (k = 0; k < LISTS_KINDS; k++)
		for (a = 0; a < 2; a++)
			for (r = 0; r < 2; r++) {
				path = conf->file[k][a][r];
				if (path == NULL || path[0] == '\0')
					continue;
				if (st->set[k][a] == NULL && (st->set[k][a] =
				    lists_set_new((enum lists_kind)k,
				    (uint32_t)conf->match_limit,
				    (uint32_t)conf->depth_limit)) == NULL) {
					snprintf(err, errlen, "%s: out of "
					    "memory", kind_key[k]);
					return -1;
				}
				if (lists_set_load(st->set[k][a], path, r == 1,
				    err, errlen) == -1 ||
				    lists_set_finish(st->set[k][a]) == -1)
					return -1;
			}
	return 0;
}

static void
lists_fini(void *state)
{
	struct lists_state	*st = state;
	int			 k;

	for (k = 0; k < LISTS_KINDS; k++) {
		lists_set_free(st->set[k][DENY]);
		lists_set_free(st->set[k][ALLOW]);
	}
	free(st);
}

/* ---- per session ---------------------------------------------------- */

#define LISTS_SEEN	16	/* entries noted once per session */

/* Made on a session's first use of a list (none when no list is set). */
struct lists_sess {
	/* The MAIL refusal's text outlives the hook (delay-deny); RCPT's
	 * go into the transaction's verdict_text, as dnsbl's. */
	char			 mail_text[LIMIT_REPLY_LINE + 1];
	const struct lists_entry *seen[LISTS_SEEN];
	size_t			 nseen;
	bool			 rdns_checked;
};

/* True when the state has any list of the kinds in mask (bit = kind). */
static bool
has_lists(const struct lists_state *st, unsigned mask, int allow)
{
	int k;

	for (k = 0; st != NULL && k < LISTS_KINDS; k++)
		if ((mask & (1u << k)) != 0 && st->set[k][allow] != NULL)
			return true;
	return false;
}

static struct lists_sess *
sess(struct filter_call *c)
{
	struct lists_sess *ls = c->data;

	if (ls == NULL && (ls = calloc(1, sizeof(*ls))) != NULL &&
	    filter_data_set(c->s, &filter_lists, ls) == -1) {
		free(ls);
		ls = NULL;
	}
	c->data = ls;
	return ls;
}

/* The entry in evidence, once per session: its rule (a long path is
 * shown by its tail, so the line survives) and what matched. */
static void
note(struct session *s, struct lists_sess *ls, enum lists_kind k, int allow,
    const struct lists_entry *e, const char *subject)
{
	size_t	i, n = strlen(e->file);

	for (i = 0; i < ls->nseen; i++)
		if (ls->seen[i] == e)
			return;
	if (ls->nseen < LISTS_SEEN)
		ls->seen[ls->nseen++] = e;
	filter_evidence(s, &filter_lists, ev_name[k][allow], 0, 0,
	    "%s%s:%d %.40s", n > 56 ? "..." : "", n > 56 ? e->file + n - 53 :
	    e->file, e->line, subject);
}

/* A pattern that gave up at its limits: said once, counted as no match. */
static void
limited_note(struct session *s, struct lists_sess *ls, enum lists_kind k)
{
	log_msg(LVL_INFO, s->id, "event=lists_pattern_limit list=%s",
	    kind_key[k]);
	if (ls != NULL && ls->nseen < LISTS_SEEN) {
		ls->seen[ls->nseen++] = NULL;
		filter_evidence(s, &filter_lists, "LISTS_PATTERN_LIMIT", 0, 0,
		    "%s: a pattern hit its match limit", kind_key[k]);
	}
}

/* The matching entry of a list of the state, noted in evidence. */
static const struct lists_entry *
find(struct session *s, struct lists_sess *ls, const struct lists_state *st,
    enum lists_kind k, int allow, const char *subject)
{
	const struct lists_entry	*e;
	bool				 limited = false;

	if (st == NULL || st->set[k][allow] == NULL)
		return NULL;
	e = lists_match(st->set[k][allow], subject, k == LISTS_IP ?
	    (const struct sockaddr *)&s->peer : NULL, &limited);
	if (limited)
		limited_note(s, ls, k);
	if (e != NULL && ls != NULL)
		note(s, ls, k, allow, e, subject);
	return e;
}

/* The client's subject of a kind: its address, rDNS name or HELO; NULL
 * when it has none (rDNS not verified, no HELO yet). */
static const char *
client_subject(const struct session *s, enum lists_kind k)
{
	if (k == LISTS_IP)
		return s->ip;
	if (k == LISTS_RDNS)
		return s->rdns_verified && s->rdns[0] != '\0' ? s->rdns : NULL;
	return s->helo[0] != '\0' ? s->helo : NULL;
}

/* An allow-listed client skips client_skip's filters for the session. */
static void
client_allow(struct filter_call *c, struct lists_sess *ls, enum lists_kind k)
{
	const struct lists_conf		*conf = c->conf;
	const struct lists_state	*def;
	const char			*sub = client_subject(c->s, k);

	def = pipeline_active->def->state[filter_index(&filter_lists)];
	if (sub == NULL || !has_lists(def, 1u << k, ALLOW) ||
	    (ls == NULL && (ls = sess(c)) == NULL))
		return;
	if (find(c->s, ls, def, k, ALLOW, sub) != NULL)
		(void)filter_skip(c->s, conf->client_skip, false);
}

/* The refusal, with the entry's text or the configured one (its %s the
 * subject, made printable), and the entry's rule as its `by`. */
static struct verdict
refuse(char *buf, size_t n, long long code, const char *esc5,
    const char *tmpl, const struct lists_entry *e, const char *subject)
{
	struct verdict	 v;
	const char	*text = e->text;
	size_t		 i;

	if (text == NULL) {
		filter_reply_format(buf, n, tmpl, subject, "");
		for (i = 0; buf[i] != '\0'; i++)
			if ((unsigned char)buf[i] < 0x20 ||
			    (unsigned char)buf[i] > 0x7e)
				buf[i] = '?';
		text = buf;
	}
	v = verdict_make(code / 100 == 4 ? V_DEFER : V_DENY, (int)code,
	    code / 100 == 4 ? "4.7.1" : esc5, text);
	v.by = lists_rule(e);
	return v;
}

/* A refusal at RCPT: its text in the transaction (outliving the hook). */
static struct verdict
refuse_rcpt(struct filter_call *c, long long code, const char *esc5,
    const char *tmpl, const struct lists_entry *e, const char *subject)
{
	return refuse(c->s->txn->verdict_text, sizeof(c->s->txn->verdict_text),
	    code, esc5, tmpl, e, subject);
}

/* ---- hooks ---------------------------------------------------------- */

static struct verdict
lists_connect(struct filter_call *c)
{
	client_allow(c, c->data, LISTS_IP);
	return VERDICT(V_CONTINUE);
}

static struct verdict
lists_helo(struct filter_call *c)
{
	client_allow(c, c->data, LISTS_HELO);
	return VERDICT(V_CONTINUE);
}

/* "local@domain", or "" for the null sender. */
static void
sender_subject(const struct session *s, char *out, size_t n)
{
	const struct path *p = &s->txn->from;

	if (p->null || p->local[0] == '\0')
		out[0] = '\0';
	else
		snprintf(out, n, "%s%s%s", p->local, p->domain[0] != '\0' ?
		    "@" : "", p->domain);
}

static struct verdict
lists_mail(struct filter_call *c)
{
	const struct lists_conf		*conf = c->conf;
	struct lists_sess		*ls;
	const struct lists_entry	*e;
	char				 from[LISTS_ADDR_MAX + 2];

	if ((!has_lists(c->state, 1u << LISTS_SENDER, ALLOW) &&
	    !has_lists(c->state, 1u << LISTS_SENDER, DENY)) ||
	    (ls = sess(c)) == NULL)
		return VERDICT(V_CONTINUE);
	sender_subject(c->s, from, sizeof(from));
	if (find(c->s, ls, c->state, LISTS_SENDER, ALLOW, from) != NULL) {
		(void)filter_skip(c->s, conf->sender_skip, true);
		return VERDICT(V_CONTINUE);
	}
	if ((e = find(c->s, ls, c->state, LISTS_SENDER, DENY, from)) == NULL)
		return VERDICT(V_CONTINUE);
	return refuse(ls->mail_text, sizeof(ls->mail_text), conf->sender_code,
	    "5.7.1", conf->sender_text, e, from);
}

/* True when the client is on one of the policy's client allow lists. */
static bool
client_allowed(struct session *s, struct lists_sess *ls,
    const struct lists_state *st)
{
	static const enum lists_kind kinds[] = { LISTS_IP, LISTS_RDNS,
	    LISTS_HELO };
	const char	*sub;
	size_t		 i;

	for (i = 0; i < 3; i++)
		if ((sub = client_subject(s, kinds[i])) != NULL &&
		    find(s, ls, st, kinds[i], ALLOW, sub) != NULL)
			return true;
	return false;
}

/* The client's deny entries under the recipient's policy. */
static struct verdict
client_deny(struct filter_call *c, struct lists_sess *ls)
{
	static const enum lists_kind kinds[] = { LISTS_IP, LISTS_RDNS,
	    LISTS_HELO };
	const struct lists_conf		*conf = c->conf;
	const struct lists_entry	*e;
	const char			*sub;
	size_t				 i;

	if (client_allowed(c->s, ls, c->state))
		return VERDICT(V_CONTINUE);
	for (i = 0; i < 3; i++) {
		if ((sub = client_subject(c->s, kinds[i])) == NULL ||
		    (e = find(c->s, ls, c->state, kinds[i], DENY, sub)) ==
		    NULL)
			continue;
		if (kinds[i] == LISTS_HELO)
			return refuse_rcpt(c, conf->helo_code, "5.7.1",
			    conf->helo_text, e, sub);
		return refuse_rcpt(c, conf->client_code, "5.7.1",
		    conf->client_text, e, sub);
	}
	return VERDICT(V_CONTINUE);
}

static struct verdict
lists_rcpt(struct filter_call *c)
{
	const struct lists_conf		*conf = c->conf;
	struct session			*s = c->s;
	const struct rcpt		*r = s->txn->cur;
	struct lists_sess		*ls = c->data;
	const struct lists_entry	*e;
	struct verdict			 v;
	char				 from[LISTS_ADDR_MAX + 2];

	/* fcrdns (before us in [pipeline]) has verified the name by now. */
	if ((ls == NULL || !ls->rdns_checked) && s->rdns_verified) {
		client_allow(c, ls, LISTS_RDNS);
		if ((ls = c->data) != NULL)
			ls->rdns_checked = true;
	}
	if ((!has_lists(c->state, ~0u, ALLOW) &&
	    !has_lists(c->state, ~0u, DENY)) || (ls = sess(c)) == NULL)
		return VERDICT(V_CONTINUE);
	if (find(s, ls, c->state, LISTS_RCPT, ALLOW, r->addr) != NULL)
		return VERDICT(V_CONTINUE);
	if ((e = find(s, ls, c->state, LISTS_RCPT, DENY, r->addr)) != NULL)
		return refuse_rcpt(c, conf->rcpt_code, "5.1.1",
		    conf->rcpt_text, e, r->addr);
	if (r->exempt || s->trusted || s->authenticated)
		return VERDICT(V_CONTINUE);
	v = client_deny(c, ls);
	if (v.code != V_CONTINUE || c->policy == pipeline_active->def)
		return v;
	/* A [domain]'s own sender lists (the default's were read at MAIL). */
	sender_subject(s, from, sizeof(from));
	if (find(s, ls, c->state, LISTS_SENDER, ALLOW, from) == NULL &&
	    (e = find(s, ls, c->state, LISTS_SENDER, DENY, from)) != NULL)
		return refuse_rcpt(c, conf->sender_code, "5.7.1",
		    conf->sender_text, e, from);
	return VERDICT(V_CONTINUE);
}

const struct filter filter_lists = {
	.name = "lists",
	.summary = "deny and allow lists (exact, @domain, .domain, PCRE2) "
	    "for client IP, rDNS, HELO, sender and recipient",
	.opts = lists_opts,
	.conf_size = sizeof(struct lists_conf),
	.init = lists_init,
	.fini = lists_fini,
	.hook = {
		[STAGE_CONNECT] = lists_connect,
		[STAGE_HELO] = lists_helo,
		[STAGE_MAIL] = lists_mail,
		[STAGE_RCPT] = lists_rcpt,
	},
	.data_free = free,
	.fail = FAIL_DEFER,
};
