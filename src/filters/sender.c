/*
 * sender.c: the MAIL FROM domain must be able to take mail back (the
 * seeds' mfcheck and require_resolvable_fromhost, Postfix's
 * reject_unknown_sender_domain): it has an MX, or no MX and an A or
 * AAAA record (RFC 5321 §5.1, the implicit MX). A null MX (RFC 7505: one
 * MX "0 .") says the domain accepts no mail, so it can take no bounce.
 *
 * The lookups start at MAIL (MX first; A and AAAA only when there is no
 * MX) and run while the client sends RCPT; the decision is taken at RCPT
 * under the recipient's policy, which says per outcome what happens:
 * reject, defer or score. Codes: a null MX is 550 5.7.27 (RFC 7505
 * §4.2, "Sender address has null MX"); an unknown domain 550 5.1.8 (RFC
 * 3463 "Bad sender's system address"); a temporary DNS failure 451
 * 4.1.8, never a 5xx (tempfail_action refuses "reject" at load). A
 * lookup past the decision's deadline is no data and decides nothing.
 *
 * Skipped: the null sender (bounces, RFC 5321 §4.5.5), address literals,
 * names that are not ASCII (no IDNA here), trusted, authenticated and
 * allow-listed clients, postmaster@ and abuse@.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/dns.h"
#include "dnsbl.h"
#include "filter.h"
#include "sender.h"

enum sender_action { ACT_REJECT, ACT_DEFER, ACT_SCORE };

struct sender_conf {
	char		*nullmx_action;
	char		*unknown_action;
	char		*tempfail_action;
	double		 score_nullmx;
	double		 score_unknown;
	double		 score_tempfail;
	long long	 reject_code;
	long long	 defer_code;
	char		*nullmx_text;
	char		*unknown_text;
	char		*tempfail_text;
};

/* The actions, parsed once per policy. */
struct sender_state {
	enum sender_action	 nullmx, unknown, tempfail;
};

static const struct opt sender_opts[] = {
	{ "nullmx_action", OPT_STR, "reject", 0, 0,
	    offsetof(struct sender_conf, nullmx_action),
	    "domain with a null MX (RFC 7505): reject, defer or score" },
	{ "unknown_action", OPT_STR, "reject", 0, 0,
	    offsetof(struct sender_conf, unknown_action),
	    "domain not found, or no MX and no A/AAAA: reject, defer or "
	    "score" },
	{ "tempfail_action", OPT_STR, "defer", 0, 0,
	    offsetof(struct sender_conf, tempfail_action),
	    "DNS failed: defer or score (never reject)" },
	{ "score_nullmx", OPT_FLOAT, "5", -100, 100,
	    offsetof(struct sender_conf, score_nullmx),
	    "SENDER_NULLMX score when nullmx_action = score" },
	{ "score_unknown", OPT_FLOAT, "5", -100, 100,
	    offsetof(struct sender_conf, score_unknown),
	    "SENDER_UNKNOWN score when unknown_action = score" },
	{ "score_tempfail", OPT_FLOAT, "0", -100, 100,
	    offsetof(struct sender_conf, score_tempfail),
	    "SENDER_TEMPFAIL score when tempfail_action = score" },
	{ "reject_code", OPT_INT, "550", 500, 599,
	    offsetof(struct sender_conf, reject_code),
	    "reply code of a rejection" },
	{ "defer_code", OPT_INT, "451", 400, 499,
	    offsetof(struct sender_conf, defer_code),
	    "reply code of a deferral" },
	{ "nullmx_text", OPT_STR, "Sender address rejected: domain %s "
	    "accepts no mail (null MX)", 0, 0,
	    offsetof(struct sender_conf, nullmx_text),
	    "null MX reply text (%s: the domain)" },
	{ "unknown_text", OPT_STR, "Sender address rejected: domain %s not "
	    "found", 0, 0, offsetof(struct sender_conf, unknown_text),
	    "unknown domain reply text (%s: the domain)" },
	{ "tempfail_text", OPT_STR, "Sender address rejected: cannot "
	    "resolve domain %s, try again later", 0, 0,
	    offsetof(struct sender_conf, tempfail_text),
	    "DNS failure reply text (%s: the domain)" },
	OPT_END
};

extern const struct filter filter_sender;

/* ---- pure parts --------------------------------------------------------- */

enum sender_result
sender_from_mx(const struct dns_answer *a)
{
	size_t	i, nulls = 0;

	switch (a->status) {
	case DNS_NXDOMAIN:
		return SENDER_UNKNOWN;
	case DNS_TEMPFAIL:
		return SENDER_TEMPFAIL;
	case DNS_NODATA:
		return SENDER_PENDING;
	case DNS_OK:
		break;
	}
	/* RFC 7505 §3: a null MX is the only MX of its domain; one that
	 * sits beside real exchanges (which §3 forbids) is ignored. */
	for (i = 0; i < a->n; i++) {
		if (a->rr[i].str == NULL || a->rr[i].str[0] == '\0')
			nulls++;
		else
			return SENDER_OK;
	}
	return nulls > 0 ? SENDER_NULLMX : SENDER_PENDING;
}

enum sender_result
sender_from_addr(enum dns_status a, enum dns_status aaaa)
{
	if (a == DNS_OK || aaaa == DNS_OK)
		return SENDER_OK;
	if (a == DNS_TEMPFAIL || aaaa == DNS_TEMPFAIL)
		return SENDER_TEMPFAIL;
	return SENDER_UNKNOWN;
}

int
sender_domain(const char *domain, char *out, size_t outlen)
{
	size_t	n = strlen(domain), i;

	if (n > 0 && domain[n - 1] == '.')
		n--;
	if (n == 0 || n >= outlen || domain[0] == '[')
		return -1;
	for (i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)domain[i];

		if (ch >= 0x80)
			return -1;
		out[i] = (char)(ch >= 'A' && ch <= 'Z' ? ch - 'A' + 'a' : ch);
	}
	out[n] = '\0';
	return 0;
}

bool
sender_askable(const char *name)
{
	size_t	n = strlen(name), lab = 0, i;

	if (n == 0 || n > DNS_NAME_MAX)
		return false;
	for (i = 0; i <= n; i++) {
		if (name[i] != '.' && name[i] != '\0') {
			lab++;
			continue;
		}
		if (lab == 0 || lab > 63)
			return false;
		lab = 0;
	}
	return true;
}

static int
parse_action(const char *key, const char *v, bool reject_ok,
    enum sender_action *out, char *err, size_t errlen)
{
	if (reject_ok && strcmp(v, "reject") == 0)
		*out = ACT_REJECT;
	else if (strcmp(v, "defer") == 0)
		*out = ACT_DEFER;
	else if (strcmp(v, "score") == 0)
		*out = ACT_SCORE;
	else {
		snprintf(err, errlen, "%s: '%s' is not %s", key, v, reject_ok ?
		    "reject, defer or score" : "defer or score (a DNS "
		    "failure never rejects)");
		return -1;
	}
	return 0;
}

static int
sender_init(const void *vconf, void **state, char *err, size_t errlen)
{
	const struct sender_conf	*conf = vconf;
	struct sender_state		*st;

	if ((st = calloc(1, sizeof(*st))) == NULL)
		return -1;
	*state = st;
	if (parse_action("nullmx_action", conf->nullmx_action, true,
	    &st->nullmx, err, errlen) == -1 ||
	    parse_action("unknown_action", conf->unknown_action, true,
	    &st->unknown, err, errlen) == -1 ||
	    parse_action("tempfail_action", conf->tempfail_action, false,
	    &st->tempfail, err, errlen) == -1)
		return -1;
	return 0;
}

static void
sender_fini(void *state)
{
	free(state);
}

/* ---- per session -------------------------------------------------------- */

/* The lookups of the current transaction's sender domain. */
struct sender_sess {
	uint64_t		 sid;
	unsigned		 txn;		/* its txn->seq */
	char			 domain[LIMIT_DOMAIN + 1];
	struct dns_req		*mx, *a, *aaaa;
	enum dns_status		 st_a, st_aaaa;
	unsigned		 addr_in;	/* A/AAAA answers in */
	enum sender_result	 result;
	char			 exchange[64];	/* the first MX, for logs */
	double			 ms;
	bool			 noted;		/* evidence made */
	unsigned		 symbol_txn;
};

/* The session this data belongs to, or NULL (then the work is moot). */
static struct session *
owner(struct sender_sess *ss)
{
	struct session *s = session_find(ss->sid);

	return s != NULL && filter_data(s, &filter_sender) == ss ? s : NULL;
}

/* Drops the lookups in flight, each counted done. */
static void
sender_stop(struct session *s, struct sender_sess *ss)
{
	struct dns_req	**r[3] = { &ss->mx, &ss->a, &ss->aaaa };
	size_t		  i;

	for (i = 0; i < 3; i++)
		if (*r[i] != NULL) {
			dns_cancel(*r[i]);
			*r[i] = NULL;
			if (s != NULL)
				filter_work_done(s, &filter_sender);
		}
}

static void
sender_data_free(void *data)
{
	sender_stop(NULL, data);
	free(data);
}

static void
addr_done(const struct dns_answer *ans, void *arg, bool six)
{
	struct sender_sess	*ss = arg;
	struct session		*s = owner(ss);

	*(six ? &ss->aaaa : &ss->a) = NULL;
	*(six ? &ss->st_aaaa : &ss->st_a) = ans->status;
	ss->ms += ans->ms;
	if (++ss->addr_in == 2)
		ss->result = sender_from_addr(ss->st_a, ss->st_aaaa);
	if (s != NULL)
		filter_work_done(s, &filter_sender);
}

static void
a_done(const struct dns_answer *ans, void *arg)
{
	addr_done(ans, arg, false);
}

static void
aaaa_done(const struct dns_answer *ans, void *arg)
{
	addr_done(ans, arg, true);
}

/* Asks for one address type; false when it could not be asked. */
static bool
ask_addr(struct session *s, struct sender_sess *ss, bool six)
{
	struct dns_req **r = six ? &ss->aaaa : &ss->a;

	filter_work_add(s, &filter_sender);
	*r = dns_query(six ? DNS_AAAA : DNS_A, ss->domain, six ? aaaa_done :
	    a_done, ss);
	if (*r == NULL) {
		filter_work_done(s, &filter_sender);
		return false;
	}
	return true;
}

static void
mx_done(const struct dns_answer *ans, void *arg)
{
	struct sender_sess	*ss = arg;
	struct session		*s = owner(ss);
	size_t			 i;

	ss->mx = NULL;
	ss->ms = ans->ms;
	ss->result = sender_from_mx(ans);
	for (i = 0; ans->status == DNS_OK && i < ans->n; i++)
		if (ans->rr[i].str != NULL && ans->rr[i].str[0] != '\0') {
			snprintf(ss->exchange, sizeof(ss->exchange), "%s",
			    ans->rr[i].str);
			break;
		}
	if (s == NULL)
		return;
	if (ss->result == SENDER_PENDING) {
		/* No MX: the domain's own address is its mail server. */
		bool a = ask_addr(s, ss, false), aaaa = ask_addr(s, ss, true);

		if (!a || !aaaa)
			ss->result = SENDER_TEMPFAIL;
	}
	filter_work_done(s, &filter_sender);
}

static struct verdict
sender_mail(struct filter_call *c)
{
	struct session		*s = c->s;
	struct sender_sess	*ss = c->data;
	char			 dom[LIMIT_DOMAIN + 1];

	if (ss != NULL) {
		/* A new transaction: what an earlier one asked is dropped
		 * (the resolver's cache keeps the answers). */
		sender_stop(s, ss);
		ss->txn = 0;
	}
	if (s->trusted || s->authenticated || s->txn->from.null ||
	    sender_domain(s->txn->from.domain, dom, sizeof(dom)) == -1)
		return VERDICT(V_CONTINUE);
	if (ss == NULL) {
		if ((ss = calloc(1, sizeof(*ss))) == NULL)
			return VERDICT(V_CONTINUE);
		if (filter_data_set(s, &filter_sender, ss) == -1) {
			free(ss);
			return VERDICT(V_CONTINUE);
		}
	}
	memset(ss, 0, sizeof(*ss));
	ss->sid = s->id;
	ss->txn = s->txn->seq;
	snprintf(ss->domain, sizeof(ss->domain), "%s", dom);
	if (!sender_askable(ss->domain)) {
		/* No such name can exist in DNS (RFC 1035 §2.3.4). */
		ss->result = SENDER_UNKNOWN;
		return VERDICT(V_CONTINUE);
	}
	filter_work_add(s, &filter_sender);
	if ((ss->mx = dns_query(DNS_MX, ss->domain, mx_done, ss)) == NULL) {
		ss->result = SENDER_TEMPFAIL;
		filter_work_done(s, &filter_sender);
	}
	return VERDICT(V_CONTINUE);
}

static const char *const result_names[] = {
	[SENDER_PENDING] = "SENDER_NODATA", [SENDER_OK] = "SENDER_OK",
	[SENDER_NULLMX] = "SENDER_NULLMX", [SENDER_UNKNOWN] = "SENDER_UNKNOWN",
	[SENDER_TEMPFAIL] = "SENDER_TEMPFAIL",
};

/* What was found, as evidence, once per transaction's lookup. */
static void
sender_note(struct session *s, struct sender_sess *ss, double score)
{
	const char *what;

	if (ss->noted)
		return;
	ss->noted = true;
	switch (ss->result) {
	case SENDER_OK:
		what = ss->exchange[0] != '\0' ? ss->exchange : "no MX, has "
		    "an address";
		break;
	case SENDER_NULLMX:
		what = "null MX (0 .)";
		break;
	case SENDER_UNKNOWN:
		what = ss->addr_in == 2 ? "no MX, no A/AAAA" : "NXDOMAIN";
		break;
	case SENDER_TEMPFAIL:
		what = "lookup failed";
		break;
	default:
		what = "no answer by the deadline";
		break;
	}
	filter_evidence(s, &filter_sender, result_names[ss->result], score,
	    ss->ms, "%s: %s", ss->domain, what);
}

/* The verdict for an outcome under the policy's action for it. */
static struct verdict
sender_act(struct session *s, struct sender_sess *ss,
    const struct sender_conf *conf, enum sender_action act, double score,
    const char *tmpl, const char *esc5, const char *esc4)
{
	char *text = s->txn->verdict_text;

	if (act == ACT_SCORE) {
		if (ss->symbol_txn != s->txn->seq && score != 0) {
			ss->symbol_txn = s->txn->seq;
			session_symbol(s, result_names[ss->result], score);
		}
		return VERDICT(V_CONTINUE);
	}
	/* Configuration text is never a printf format. */
	dnsbl_reply_format(text, sizeof(s->txn->verdict_text), tmpl,
	    ss->domain, "");
	if (act == ACT_REJECT)
		return verdict_make(V_DENY, (int)conf->reject_code, esc5, text);
	return verdict_make(V_DEFER, (int)conf->defer_code, esc4, text);
}

static struct verdict
sender_rcpt(struct filter_call *c)
{
	const struct sender_conf	*conf = c->conf;
	const struct sender_state	*st = c->state;
	struct sender_sess		*ss = c->data;
	struct session			*s = c->s;

	if (ss == NULL || ss->txn != s->txn->seq || s->txn->cur->exempt ||
	    s->trusted || s->authenticated || s->client_allowed)
		return VERDICT(V_CONTINUE);
	if (!c->late && filter_work_pending(s, &filter_sender) > 0)
		return filter_wait(c, 0);
	sender_note(s, ss, ss->result == SENDER_NULLMX ? conf->score_nullmx :
	    ss->result == SENDER_UNKNOWN ? conf->score_unknown :
	    ss->result == SENDER_TEMPFAIL ? conf->score_tempfail : 0);
	switch (ss->result) {
	case SENDER_NULLMX:
		return sender_act(s, ss, conf, st->nullmx, conf->score_nullmx,
		    conf->nullmx_text, "5.7.27", "4.7.27");
	case SENDER_UNKNOWN:
		return sender_act(s, ss, conf, st->unknown,
		    conf->score_unknown, conf->unknown_text, "5.1.8", "4.1.8");
	case SENDER_TEMPFAIL:
		return sender_act(s, ss, conf, st->tempfail,
		    conf->score_tempfail, conf->tempfail_text, "4.1.8",
		    "4.1.8");
	default:
		return VERDICT(V_CONTINUE);	/* OK, or no data */
	}
}

const struct filter filter_sender = {
	.name = "sender",
	.summary = "the MAIL FROM domain must have an MX or an address, "
	    "and no null MX (RFC 7505); decided at RCPT per policy",
	.opts = sender_opts,
	.conf_size = sizeof(struct sender_conf),
	.init = sender_init,
	.fini = sender_fini,
	.hook = {
		[STAGE_MAIL] = sender_mail,
		[STAGE_RCPT] = sender_rcpt,
	},
	.data_free = sender_data_free,
	.fail = FAIL_CONTINUE,
};
