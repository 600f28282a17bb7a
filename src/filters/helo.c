/*
 * helo.c: the classic HELO/EHLO tests (Postfix's
 * reject_non_fqdn_helo_hostname, reject_invalid_helo_hostname,
 * reject_unknown_helo_hostname; the seeds' helo checks), each a scored
 * symbol:
 *
 *   HELO_NOT_FQDN     a name without a dot (RFC 5321 §4.1.1.1 asks for
 *                     the client's FQDN or an address literal)
 *   HELO_BARE_IP      an IPv4 address not in brackets (§4.1.3)
 *   HELO_LITERAL      an address literal that is not the client's
 *   HELO_OURS         our hostname, or our address, from a client that
 *                     is not us
 *   HELO_NO_RESOLVE   a dotted name with no A and no AAAA (NXDOMAIN or
 *                     NODATA for both)
 *   HELO_LOCALHOST    localhost, localhost.localdomain
 *
 * The lookups start at HELO and run while the client goes on; the
 * decision is taken at RCPT under the recipient's policy: the scores of
 * what was found add up, and at or over reject_threshold the recipient
 * is refused (reply_code, reply_text naming the heaviest finding);
 * otherwise each finding is a symbol for the score filter. A temporary
 * DNS failure, or a lookup past the decision's deadline, is no data:
 * never HELO_NO_RESOLVE, never a refusal. Trusted, authenticated and
 * allow-listed clients, and postmaster@/abuse@, are not judged.
 *
 * A new HELO/EHLO (after STARTTLS, or a client that says it twice)
 * replaces what the earlier one started.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../core/dns.h"
#include "dnsbl.h"
#include "filter.h"
#include "helo.h"

struct helo_conf {
	double		 score[HELO_CHECKS];
	char		*text[HELO_CHECKS];
	double		 reject_threshold;
	long long	 reply_code;
	char		*reply_text;
};

#define SCORE(key, c, def, help)					\
	{ "score_" key, OPT_FLOAT, def, -100, 100,			\
	    offsetof(struct helo_conf, score[HELO_##c]), help }
#define TEXT(key, c, def)						\
	{ "text_" key, OPT_STR, def, 0, 0,				\
	    offsetof(struct helo_conf, text[HELO_##c]),			\
	    "reason in reply_text for HELO_" #c }

static const struct opt helo_opts[] = {
	SCORE("ours", OURS, "5",
	    "our hostname or address from another host (HELO_OURS)"),
	SCORE("localhost", LOCALHOST, "3", "localhost (HELO_LOCALHOST)"),
	SCORE("literal", LITERAL, "1",
	    "an address literal that is not the client's (HELO_LITERAL)"),
	SCORE("bare_ip", BARE_IP, "2",
	    "an address without brackets (HELO_BARE_IP)"),
	SCORE("not_fqdn", NOT_FQDN, "1",
	    "the name has no dot (HELO_NOT_FQDN)"),
	SCORE("no_resolve", NO_RESOLVE, "1",
	    "the name has no A/AAAA (HELO_NO_RESOLVE)"),
	TEXT("ours", OURS, "you are not me"),
	TEXT("localhost", LOCALHOST, "you are not localhost"),
	TEXT("literal", LITERAL, "address literal is not yours"),
	TEXT("bare_ip", BARE_IP, "address literals need brackets"),
	TEXT("not_fqdn", NOT_FQDN, "need fully-qualified hostname"),
	TEXT("no_resolve", NO_RESOLVE, "Host not found"),
	{ "reject_threshold", OPT_FLOAT, "5", -1000, 1000,
	    offsetof(struct helo_conf, reject_threshold), "sum of scores at "
	    "which a recipient is refused (0: never, score only)" },
	{ "reply_code", OPT_INT, "550", 400, 599,
	    offsetof(struct helo_conf, reply_code),
	    "reply code of a refusal (5xx refuses, 4xx defers)" },
	{ "reply_text", OPT_STR, "Helo command rejected: %s", 0, 0,
	    offsetof(struct helo_conf, reply_text), "refusal text: the "
	    "first %s is the heaviest finding's text_*, the second the "
	    "HELO name" },
	OPT_END
};

static const char *const check_names[HELO_CHECKS] = {
	[HELO_OURS] = "HELO_OURS", [HELO_LOCALHOST] = "HELO_LOCALHOST",
	[HELO_LITERAL] = "HELO_LITERAL", [HELO_BARE_IP] = "HELO_BARE_IP",
	[HELO_NOT_FQDN] = "HELO_NOT_FQDN",
	[HELO_NO_RESOLVE] = "HELO_NO_RESOLVE",
};

extern const struct filter filter_helo;

/* ---- pure parts --------------------------------------------------------- */

void
helo_parse(const char *helo, struct helo_facts *f)
{
	size_t	n = strlen(helo), i;
	char	ip[64];

	memset(f, 0, sizeof(*f));
	if (n > 0 && helo[n - 1] == '.')
		n--;
	if (n >= sizeof(f->name))
		n = sizeof(f->name) - 1;
	for (i = 0; i < n; i++)
		f->name[i] = (char)(helo[i] >= 'A' && helo[i] <= 'Z' ?
		    helo[i] - 'A' + 'a' : helo[i]);
	f->name[n] = '\0';
	if (f->name[0] == '[') {
		f->literal = true;
		if (n < 3 || f->name[n - 1] != ']' || n - 2 >= sizeof(ip))
			return;
		snprintf(ip, sizeof(ip), "%.*s", (int)(n - 2), f->name + 1);
		if (strncmp(ip, "ipv6:", 5) == 0) {
			if (inet_pton(AF_INET6, ip + 5, f->addr) == 1)
				f->family = AF_INET6;
		} else if (inet_pton(AF_INET, ip, f->addr) == 1)
			f->family = AF_INET;
		return;
	}
	if (inet_pton(AF_INET, f->name, f->addr) == 1) {
		f->bare_ip = true;
		f->family = AF_INET;
	}
}

/* The address of a socket address, an IPv4-mapped IPv6 one as IPv4;
 * its family, or 0. */
static int
sock_addr(const struct sockaddr_storage *ss, unsigned char out[16])
{
	const struct sockaddr_in6	*s6 = (const void *)ss;
	const struct sockaddr_in	*s4 = (const void *)ss;

	if (ss->ss_family == AF_INET) {
		memcpy(out, &s4->sin_addr, 4);
		return AF_INET;
	}
	if (ss->ss_family != AF_INET6)
		return 0;
	if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
		memcpy(out, s6->sin6_addr.s6_addr + 12, 4);
		return AF_INET;
	}
	memcpy(out, &s6->sin6_addr, 16);
	return AF_INET6;
}

static bool
same_addr(int fa, const unsigned char *a, int fb, const unsigned char *b)
{
	return fa != 0 && fa == fb &&
	    memcmp(a, b, fa == AF_INET ? 4 : 16) == 0;
}

unsigned
helo_static(const struct helo_facts *f, const struct sockaddr_storage *peer,
    const struct sockaddr_storage *local, const char *hostname)
{
	unsigned char	pa[16], la[16];
	int		pf = sock_addr(peer, pa), lf = sock_addr(local, la);
	unsigned	bits = 0;
	size_t		hn = hostname != NULL ? strlen(hostname) : 0;
	bool		us = same_addr(pf, pa, lf, la);

	if (hn > 0 && hostname[hn - 1] == '.')
		hn--;
	if (strcmp(f->name, "localhost") == 0 ||
	    strcmp(f->name, "localhost.localdomain") == 0)
		bits |= HELO_BIT(HELO_LOCALHOST);
	else if (!f->literal && !f->bare_ip && strchr(f->name, '.') == NULL)
		bits |= HELO_BIT(HELO_NOT_FQDN);
	if (f->bare_ip)
		bits |= HELO_BIT(HELO_BARE_IP);
	if (f->literal && !same_addr(f->family, f->addr, pf, pa))
		bits |= HELO_BIT(HELO_LITERAL);
	if (!us && ((hn > 0 && strlen(f->name) == hn &&
	    strncasecmp(f->name, hostname, hn) == 0) ||
	    same_addr(f->family, f->addr, lf, la)))
		bits |= HELO_BIT(HELO_OURS);
	return bits;
}

bool
helo_resolvable(const struct helo_facts *f)
{
	return !f->literal && !f->bare_ip && f->name[0] != '\0' &&
	    strchr(f->name, '.') != NULL &&
	    strcmp(f->name, "localhost.localdomain") != 0;
}

/* ---- per session -------------------------------------------------------- */

struct helo_sess {
	uint64_t		 sid;
	char			 helo[LIMIT_HELO + 1];	/* as the client said */
	struct helo_facts	 f;
	struct dns_req		*a, *aaaa;
	enum dns_status		 st_a, st_aaaa;
	unsigned		 asked, in;	/* lookups started, answered */
	double			 ms;
	bool			 noted;		/* evidence made */
	unsigned		 symbol_txn;
};

static struct session *
owner(struct helo_sess *hs)
{
	struct session *s = session_find(hs->sid);

	return s != NULL && filter_data(s, &filter_helo) == hs ? s : NULL;
}

/* Drops the lookups in flight, each counted done. */
static void
helo_stop(struct session *s, struct helo_sess *hs)
{
	struct dns_req	**r[2] = { &hs->a, &hs->aaaa };
	size_t		  i;

	for (i = 0; i < 2; i++)
		if (*r[i] != NULL) {
			dns_cancel(*r[i]);
			*r[i] = NULL;
			if (s != NULL)
				filter_work_done(s, &filter_helo);
		}
}

static void
helo_data_free(void *data)
{
	helo_stop(NULL, data);
	free(data);
}

static void
addr_done(const struct dns_answer *ans, struct helo_sess *hs, bool six)
{
	struct session *s = owner(hs);

	*(six ? &hs->aaaa : &hs->a) = NULL;
	*(six ? &hs->st_aaaa : &hs->st_a) = ans->status;
	hs->in++;
	if (ans->ms > hs->ms)
		hs->ms = ans->ms;	/* asked together: the slower counts */
	if (s != NULL)
		filter_work_done(s, &filter_helo);
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

static void
ask(struct session *s, struct helo_sess *hs, bool six)
{
	struct dns_req **r = six ? &hs->aaaa : &hs->a;

	hs->asked++;
	filter_work_add(s, &filter_helo);
	if ((*r = dns_query(six ? DNS_AAAA : DNS_A, hs->f.name, six ?
	    aaaa_done : a_done, hs)) == NULL) {
		*(six ? &hs->st_aaaa : &hs->st_a) = DNS_TEMPFAIL;
		hs->in++;
		filter_work_done(s, &filter_helo);
	}
}

static struct verdict
helo_helo(struct filter_call *c)
{
	struct session		*s = c->s;
	struct helo_sess	*hs = c->data;

	if (s->trusted || s->authenticated)
		return VERDICT(V_CONTINUE);
	if (hs == NULL) {
		if ((hs = calloc(1, sizeof(*hs))) == NULL)
			return VERDICT(V_CONTINUE);
		if (filter_data_set(s, &filter_helo, hs) == -1) {
			free(hs);
			return VERDICT(V_CONTINUE);
		}
	} else if (strcmp(hs->helo, s->helo) == 0)
		return VERDICT(V_CONTINUE);	/* the same name again */
	helo_stop(s, hs);
	memset(hs, 0, sizeof(*hs));
	hs->sid = s->id;
	snprintf(hs->helo, sizeof(hs->helo), "%s", s->helo);
	helo_parse(s->helo, &hs->f);
	if (helo_resolvable(&hs->f)) {
		ask(s, hs, false);
		ask(s, hs, true);
	}
	return VERDICT(V_CONTINUE);
}

/* Every finding, as HELO_BIT()s; *nodata when the lookup said nothing
 * (failed, or not in by the deadline). */
static unsigned
helo_findings(const struct session *s, const struct helo_sess *hs,
    bool *nodata)
{
	unsigned bits = helo_static(&hs->f, &s->peer, &s->local,
	    s->conf != NULL ? s->conf->hostname : NULL);

	*nodata = false;
	if (hs->asked == 0)
		return bits;
	if (hs->st_a == DNS_OK || hs->st_aaaa == DNS_OK)
		return bits;
	if (hs->in < hs->asked || hs->st_a == DNS_TEMPFAIL ||
	    hs->st_aaaa == DNS_TEMPFAIL)
		*nodata = true;
	else
		bits |= HELO_BIT(HELO_NO_RESOLVE);
	return bits;
}

/* What was found, as evidence, once per HELO name. */
static void
helo_note(struct session *s, struct helo_sess *hs,
    const struct helo_conf *conf, unsigned bits, bool nodata)
{
	int i;

	if (hs->noted)
		return;
	hs->noted = true;
	for (i = 0; i < HELO_CHECKS; i++)
		if (bits & HELO_BIT(i))
			filter_evidence(s, &filter_helo, check_names[i],
			    conf->score[i], i == HELO_NO_RESOLVE ? hs->ms : 0,
			    "%s: %s", hs->f.name, conf->text[i]);
	if (nodata)
		filter_evidence(s, &filter_helo, "HELO_NODATA", 0, hs->ms,
		    "%s: %s", hs->f.name, hs->in < hs->asked ? "no answer "
		    "by the deadline" : "lookup failed");
	else if (bits == 0)
		filter_evidence(s, &filter_helo, "HELO_OK", 0, hs->ms, "%s",
		    hs->f.name);
}

static struct verdict
helo_rcpt(struct filter_call *c)
{
	const struct helo_conf	*conf = c->conf;
	struct helo_sess	*hs = c->data;
	struct session		*s = c->s;
	unsigned		 bits;
	double			 sum = 0, top = 0;
	int			 i, worst = -1;
	bool			 nodata;

	if (hs == NULL || s->txn->cur->exempt || s->trusted ||
	    s->authenticated || s->client_allowed || s->helo[0] == '\0')
		return VERDICT(V_CONTINUE);
	if (!c->late && filter_work_pending(s, &filter_helo) > 0)
		return filter_wait(c, 0);
	bits = helo_findings(s, hs, &nodata);
	helo_note(s, hs, conf, bits, nodata);
	for (i = 0; i < HELO_CHECKS; i++)
		if (bits & HELO_BIT(i)) {
			sum += conf->score[i];
			if (worst == -1 || conf->score[i] > top) {
				worst = i;
				top = conf->score[i];
			}
		}
	if (conf->reject_threshold > 0 && sum >= conf->reject_threshold &&
	    worst != -1) {
		/* Configuration text is never a printf format. */
		dnsbl_reply_format(s->txn->verdict_text,
		    sizeof(s->txn->verdict_text), conf->reply_text,
		    conf->text[worst], hs->f.name);
		return verdict_make(conf->reply_code / 100 == 4 ? V_DEFER :
		    V_DENY, (int)conf->reply_code, conf->reply_code / 100 ==
		    4 ? "4.7.1" : "5.7.1", s->txn->verdict_text);
	}
	if (hs->symbol_txn != s->txn->seq) {
		hs->symbol_txn = s->txn->seq;
		for (i = 0; i < HELO_CHECKS; i++)
			if ((bits & HELO_BIT(i)) && conf->score[i] != 0)
				session_symbol(s, check_names[i],
				    conf->score[i]);
	}
	return VERDICT(V_CONTINUE);
}

const struct filter filter_helo = {
	.name = "helo",
	.summary = "HELO tests: not a FQDN, bare IP, foreign literal, our "
	    "name, no A/AAAA, localhost; scored, decided at RCPT per policy",
	.opts = helo_opts,
	.conf_size = sizeof(struct helo_conf),
	.hook = {
		[STAGE_HELO] = helo_helo,
		[STAGE_RCPT] = helo_rcpt,
	},
	.data_free = helo_data_free,
	.fail = FAIL_CONTINUE,
};
