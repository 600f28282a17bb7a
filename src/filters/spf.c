/*
 * spf.c: SPF (RFC 7208) for each transaction's MAIL FROM (the null
 * sender: postmaster@HELO), on moat's own evaluator (spf_eval.c) over the
 * worker's resolver. The check starts at MAIL and runs while the client
 * names its recipients; the decision is taken at RCPT under the
 * recipient's policy: each result has an action (reject, defer or score)
 * and a score; fail is refused by default (550 5.7.23 with the domain's
 * explanation, RFC 7372), temperror and a check past the deadline are no
 * data. At end of data the message gets Received-SPF (RFC 7208 §9.1)
 * and Authentication-Results (RFC 8601) fields; a client's own
 * Authentication-Results claiming our host name is removed by the core.
 *
 * The result is evidence (SPF_PASS ... with the deciding mechanism), and
 * spf_session_result() hands the SPF-validated sender domain to the
 * checks that key on it (greylisting).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "../core/dns.h"
#include "../core/log.h"
#include "filter.h"
#include "spf.h"
#include "spf_eval.h"

enum spf_action { SPF_SCORE, SPF_REJECT, SPF_DEFER };

/* An explanation in a reply: what fits a 512-octet reply line (RFC 5321
 * §4.5.3.1.5) after "550 5.7.23 ". */
#define SPF_REPLY_TEXT_MAX	400

struct spf_conf {
	double		 score[SPF_PERMERROR + 1];
	char		*action_fail, *action_softfail, *action_permerror,
			*action_temperror;
	char		*reply_text;
	bool		 headers;
};

#define SC(r)	(offsetof(struct spf_conf, score) + (r) * sizeof(double))

static const struct opt spf_opts[] = {
	{ "score_pass", OPT_FLOAT, "-1", -100, 100, SC(SPF_PASS),
	    "score of SPF_PASS" },
	{ "score_fail", OPT_FLOAT, "5", -100, 100, SC(SPF_FAIL),
	    "score of SPF_FAIL (when not refused)" },
	{ "score_softfail", OPT_FLOAT, "2", -100, 100, SC(SPF_SOFTFAIL),
	    "score of SPF_SOFTFAIL" },
	{ "score_neutral", OPT_FLOAT, "0", -100, 100, SC(SPF_NEUTRAL),
	    "score of SPF_NEUTRAL" },
	{ "score_none", OPT_FLOAT, "0", -100, 100, SC(SPF_NONE),
	    "score of SPF_NONE (no record)" },
	{ "score_permerror", OPT_FLOAT, "0.5", -100, 100, SC(SPF_PERMERROR),
	    "score of SPF_PERMERROR (a broken record)" },
	{ "score_temperror", OPT_FLOAT, "0", -100, 100, SC(SPF_TEMPERROR),
	    "score of SPF_TEMPERROR" },
	{ "action_fail", OPT_STR, "reject", 0, 0,
	    offsetof(struct spf_conf, action_fail),
	    "fail: reject (550 5.7.23), defer (451 4.7.24) or score" },
	{ "action_softfail", OPT_STR, "score", 0, 0,
	    offsetof(struct spf_conf, action_softfail),
	    "softfail: reject, defer or score" },
	{ "action_permerror", OPT_STR, "score", 0, 0,
	    offsetof(struct spf_conf, action_permerror),
	    "permerror: reject (550 5.7.24), defer or score" },
	{ "action_temperror", OPT_STR, "score", 0, 0,
	    offsetof(struct spf_conf, action_temperror),
	    "temperror: defer (451 4.7.24) or score (never reject)" },
	{ "reply_text", OPT_STR, "SPF check failed for %s", 0, 0,
	    offsetof(struct spf_conf, reply_text), "refusal text when the "
	    "domain gives no explanation; %s is the sender domain" },
	{ "headers", OPT_BOOL, "yes", 0, 0, offsetof(struct spf_conf,
	    headers), "add Received-SPF and Authentication-Results" },
	OPT_END
};

extern const struct filter filter_spf;

static int
action_of(const char *word, enum spf_action *a)
{
	if (strcmp(word, "reject") == 0)
		*a = SPF_REJECT;
	else if (strcmp(word, "defer") == 0)
		*a = SPF_DEFER;
	else if (strcmp(word, "score") == 0)
		*a = SPF_SCORE;
	else
		return -1;
	return 0;
}

static int
spf_init(const void *vconf, void **state, char *err, size_t errlen)
{
	const struct spf_conf	*c = vconf;
	enum spf_action		 a;

	*state = NULL;
	if (action_of(c->action_fail, &a) == -1 ||
	    action_of(c->action_softfail, &a) == -1 ||
	    action_of(c->action_permerror, &a) == -1 ||
	    action_of(c->action_temperror, &a) == -1) {
		snprintf(err, errlen, "action_*: one of reject, defer, score");
		return -1;
	}
	if (a == SPF_REJECT) {
		snprintf(err, errlen, "action_temperror: a DNS failure is "
		    "never a refusal (defer or score)");
		return -1;
	}
	return 0;
}

/* ---- per session -------------------------------------------------------- */

struct spf_sess {
	uint64_t		 sid;
	unsigned		 txn;		/* the MAIL it checks */
	struct spf_check	*check;
	bool			 done;
	struct spf_result	 r;
	double			 ms;
	struct timespec		 t0;
	unsigned		 noted;		/* txn whose evidence is in */
	unsigned		 symbol_txn, header_txn;
};

static const struct spf_resolver resolver = { dns_query, dns_cancel };

static void
spf_data_free(void *data)
{
	struct spf_sess *ss = data;

	if (ss->check != NULL)
		spf_check_cancel(ss->check);
	free(ss);
}

static void
check_done(const struct spf_result *r, void *arg)
{
	struct spf_sess	*ss = arg;
	struct session	*s = session_find(ss->sid);
	struct timespec	 t1;

	ss->check = NULL;
	ss->done = true;
	ss->r = *r;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ss->ms = (double)(t1.tv_sec - ss->t0.tv_sec) * 1000 +
	    (double)(t1.tv_nsec - ss->t0.tv_nsec) / 1e6;
	if (s == NULL || filter_data(s, &filter_spf) != ss)
		return;
	log_msg(LVL_DEBUG, s->id, "event=spf result=%s domain=%s "
	    "mechanism=\"%s\" terms=%u", spf_code_name(r->code), r->domain,
	    r->mechanism, r->dns_terms);
	filter_work_done(s, &filter_spf);
}

static struct verdict
spf_mail(struct filter_call *c)
{
	struct session		*s = c->s;
	const struct txn	*t = s->txn;
	struct spf_sess		*ss = c->data;
	struct spf_params	 p;
	struct spf_check	*chk;

	if (s->trusted || s->authenticated)
		return VERDICT(V_CONTINUE);
	if (ss == NULL) {
		if ((ss = calloc(1, sizeof(*ss))) == NULL ||
		    filter_data_set(s, &filter_spf, ss) == -1) {
			free(ss);
			return VERDICT(V_CONTINUE);
		}
		ss->sid = s->id;
	}
	/* A new MAIL: the last one's check, if still running, is moot. */
	if (ss->check != NULL) {
		spf_check_cancel(ss->check);
		ss->check = NULL;
		filter_work_done(s, &filter_spf);
	}
	memset(&ss->r, 0, sizeof(ss->r));
	ss->done = false;
	ss->txn = t->seq;
	memset(&p, 0, sizeof(p));
	p.family = s->peer.ss_family;
	if (p.family == AF_INET6)
		memcpy(p.addr, &((const struct sockaddr_in6 *)(const void *)
		    &s->peer)->sin6_addr, 16);
	else
		memcpy(p.addr, &((const struct sockaddr_in *)(const void *)
		    &s->peer)->sin_addr, 4);
	p.local = t->from.null ? NULL : t->from.local;
	p.domain = t->from.null ? NULL : t->from.domain;
	p.helo = s->helo;
	p.receiver = s->conf->hostname;
	p.identity = SPF_ID_MAILFROM;
	clock_gettime(CLOCK_MONOTONIC, &ss->t0);
	filter_work_add(s, &filter_spf);
	/* done may run inside start (no DNS needed): then chk is NULL and
	 * the work is already counted done. */
	chk = spf_check_start(&resolver, &p, check_done, ss);
	if (!ss->done)
		ss->check = chk;
	return VERDICT(V_CONTINUE);
}

/*
 * Text from a DNS record (an exp= explanation, a mechanism) made safe for
 * an SMTP reply or a header comment: printable ASCII only (anything else,
 * CR and LF above all, becomes '?'), parentheses and backslashes too in
 * a comment, cut at n - 1 bytes.
 */
static void
clean(char *out, size_t n, const char *in, bool comment)
{
	size_t o = 0;

	for (; *in != '\0' && o + 1 < n; in++) {
		unsigned char ch = (unsigned char)*in;

		out[o++] = ch < 0x20 || ch > 0x7e || (comment && (ch == '(' ||
		    ch == ')' || ch == '\\')) ? '?' : (char)ch;
	}
	out[o] = '\0';
}

static enum spf_action
action_for(const struct spf_conf *c, enum spf_code code)
{
	enum spf_action a = SPF_SCORE;

	switch (code) {
	case SPF_FAIL:
		(void)action_of(c->action_fail, &a);
		break;
	case SPF_SOFTFAIL:
		(void)action_of(c->action_softfail, &a);
		break;
	case SPF_PERMERROR:
		(void)action_of(c->action_permerror, &a);
		break;
	case SPF_TEMPERROR:
		(void)action_of(c->action_temperror, &a);
		break;
	default:
		break;
	}
	return a;
}

static const char *const symbols[SPF_PERMERROR + 1] = {
	[SPF_NONE] = "SPF_NONE", [SPF_NEUTRAL] = "SPF_NEUTRAL",
	[SPF_PASS] = "SPF_PASS", [SPF_FAIL] = "SPF_FAIL",
	[SPF_SOFTFAIL] = "SPF_SOFTFAIL", [SPF_TEMPERROR] = "SPF_TEMPERROR",
	[SPF_PERMERROR] = "SPF_PERMERROR",
};

static struct verdict
spf_rcpt(struct filter_call *c)
{
	const struct spf_conf	*conf = c->conf;
	struct spf_sess		*ss = c->data;
	struct session		*s = c->s;
	struct txn		*t = s->txn;
	enum spf_action		 a;
	bool			 temp;

	if (ss == NULL || ss->txn != t->seq || t->cur->exempt ||
	    s->trusted || s->authenticated)
		return VERDICT(V_CONTINUE);
	if (!c->late && filter_work_pending(s, &filter_spf) > 0)
		return filter_wait(c, 0);
	if (!ss->done) {
		if (ss->noted != t->seq)
			filter_evidence(s, &filter_spf, "SPF_NODATA", 0, 0,
			    "%s: no result by the deadline",
			    t->from.null ? s->helo : t->from.domain);
		ss->noted = t->seq;
		return VERDICT(V_CONTINUE);
	}
	if (ss->noted != t->seq) {
		ss->noted = t->seq;
		filter_evidence(s, &filter_spf, symbols[ss->r.code],
		    conf->score[ss->r.code], ss->ms, "%s: %s%s%s (%u DNS "
		    "terms)", ss->r.domain, spf_code_name(ss->r.code),
		    ss->r.mechanism[0] ? " by " : "", ss->r.mechanism,
		    ss->r.dns_terms);
	}
	a = action_for(conf, ss->r.code);
	if (a == SPF_REJECT || a == SPF_DEFER) {
		temp = a == SPF_DEFER;
		/* The domain's own words, cut to fit a reply line. */
		if (ss->r.code == SPF_FAIL && ss->r.explanation[0] != '\0')
			clean(t->verdict_text, SPF_REPLY_TEXT_MAX,
			    ss->r.explanation, false);
		else
			filter_reply_format(t->verdict_text,
			    sizeof(t->verdict_text), conf->reply_text,
			    ss->r.domain, "");
		/* RFC 7372: 5.7.23 SPF validation failed, 4/5.7.24 SPF
		 * validation error. */
		return verdict_make(temp ? V_DEFER : V_DENY, temp ? 451 : 550,
		    temp ? "4.7.24" : ss->r.code == SPF_FAIL ||
		    ss->r.code == SPF_SOFTFAIL ? "5.7.23" : "5.7.24",
		    t->verdict_text);
	}
	if (ss->symbol_txn != t->seq) {
		ss->symbol_txn = t->seq;
		if (conf->score[ss->r.code] != 0)
			session_symbol(s, symbols[ss->r.code],
			    conf->score[ss->r.code]);
	}
	return VERDICT(V_CONTINUE);
}

/* A quoted-string of text (RFC 5322 §3.2.4): quotes and backslashes
 * escaped, control characters dropped. */
static void
quoted(char *out, size_t n, const char *in)
{
	size_t o = 0;

	if (n < 3)
		return;
	out[o++] = '"';
	for (; *in != '\0' && o + 3 < n; in++) {
		if ((unsigned char)*in < 0x20 || *in == 0x7f)
			continue;
		if (*in == '"' || *in == '\\')
			out[o++] = '\\';
		out[o++] = *in;
	}
	out[o++] = '"';
	out[o] = '\0';
}

/* Received-SPF (RFC 7208 §9.1) and Authentication-Results (RFC 8601). */
static struct verdict
spf_data_post(struct filter_call *c)
{
	const struct spf_conf	*conf = c->conf;
	struct spf_sess		*ss = c->data;
	struct session		*s = c->s;
	struct txn		*t = s->txn;
	char			 v[2048], from[600], mech[SPF_MECH_TEXT_MAX + 1];
	int			 n;
	const char		*res;
	bool			 null = t->from.null;

	if (ss == NULL || !conf->headers || ss->txn != t->seq ||
	    ss->header_txn == t->seq)
		return VERDICT(V_CONTINUE);
	if (!ss->done && !c->late && filter_work_pending(s, &filter_spf) > 0)
		return filter_wait(c, 0);
	if (!ss->done)
		return VERDICT(V_CONTINUE);
	ss->header_txn = t->seq;
	res = spf_code_name(ss->r.code);
	if (snprintf(v, sizeof(v), "%s@%s", null ? "postmaster" :
	    t->from.local, null ? s->helo : t->from.domain) >= (int)sizeof(v))
		return VERDICT(V_CONTINUE);
	quoted(from, sizeof(from), v);
	clean(mech, sizeof(mech), ss->r.mechanism[0] != '\0' ?
	    ss->r.mechanism : "no mechanism matched", true);
	n = snprintf(v, sizeof(v), "%s (%s: %s) client-ip=%s; "
	    "envelope-from=%s; helo=%s; receiver=%s; identity=mailfrom;", res,
	    s->conf->hostname, mech, s->ip, from, s->helo,
	    s->conf->hostname);
	if (n > 0 && (size_t)n < sizeof(v))
		(void)session_add_header(s, "Received-SPF", v);
	n = snprintf(v, sizeof(v), "%s; spf=%s smtp.%s=%s",
	    s->conf->hostname, res, null ? "helo" : "mailfrom", null ?
	    s->helo : t->from.domain);
	if (n > 0 && (size_t)n < sizeof(v))
		(void)session_add_header(s, "Authentication-Results", v);
	return VERDICT(V_CONTINUE);
}

const struct spf_result *
spf_session_result(struct session *s)
{
	struct spf_sess *ss = filter_data(s, &filter_spf);

	if (ss == NULL || s->txn == NULL || ss->txn != s->txn->seq ||
	    !ss->done)
		return NULL;
	return &ss->r;
}

const struct filter filter_spf = {
	.name = "spf",
	.summary = "SPF (RFC 7208) of MAIL FROM, decided at RCPT per policy; "
	    "Received-SPF and Authentication-Results",
	.opts = spf_opts,
	.conf_size = sizeof(struct spf_conf),
	.init = spf_init,
	.hook = {
		[STAGE_MAIL] = spf_mail,
		[STAGE_RCPT] = spf_rcpt,
		[STAGE_DATA_POST] = spf_data_post,
	},
	.data_free = spf_data_free,
	.fail = FAIL_CONTINUE,
};
