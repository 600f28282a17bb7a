/*
 * fcrdns.c: the client's reverse DNS, the seeds' "paranoid" check
 * (tcpserver -p, rhost-check): a PTR for the address, a name of it that
 * resolves back to the address (forward-confirmed rDNS), a name that does
 * not look generic (the address's octets inside it, or a dynamic-pool
 * word), and TLD rules on the verified name.
 *
 * Lookups start at connect; the session's rdns / rdns_verified are set
 * when they end (evidence other filters key on: greylisting, rhsbl). The
 * decision is taken at RCPT under the recipient's policy: the scores of
 * what was found add up; at or over reject_threshold the recipient is
 * refused with reply_code (450 by default, as Postfix's
 * reject_unknown_client_hostname: a DNS hiccup must not bounce mail),
 * otherwise the sum is an RDNS symbol for the score filter. A temporary
 * DNS failure, or a lookup past the decision's deadline, is no data and
 * scores nothing. Allow-listed (DNSWL), trusted and authenticated
 * clients, and postmaster@/abuse@, are not judged.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "../core/dns.h"
#include "../core/log.h"
#include "fcrdns.h"
#include "filter.h"

#define FCRDNS_NAMES	5	/* PTR names checked forward */

struct fcrdns_conf {
	double	 score_no_ptr;
	double	 score_not_confirmed;
	double	 score_generic;
	double	 score_tld;
	char	*tlds;
	char	*generic_words;
	double	 reject_threshold;
	long long reply_code;
	char	*reply_text;
};

static const struct opt fcrdns_opts[] = {
	{ "score_no_ptr", OPT_FLOAT, "3", -100, 100,
	    offsetof(struct fcrdns_conf, score_no_ptr),
	    "the address has no PTR record (RDNS_NONE)" },
	{ "score_not_confirmed", OPT_FLOAT, "2", -100, 100,
	    offsetof(struct fcrdns_conf, score_not_confirmed),
	    "no PTR name resolves back to the address (RDNS_NOT_CONFIRMED)" },
	{ "score_generic", OPT_FLOAT, "1", -100, 100,
	    offsetof(struct fcrdns_conf, score_generic),
	    "the name looks generic or dynamic (RDNS_GENERIC)" },
	{ "score_tld", OPT_FLOAT, "2", -100, 100,
	    offsetof(struct fcrdns_conf, score_tld),
	    "the verified name is under one of tlds (RDNS_TLD)" },
	{ "tlds", OPT_STR, "", 0, 0, offsetof(struct fcrdns_conf, tlds),
	    "TLDs (or domains) whose clients score score_tld, space-"
	    "separated" },
	{ "generic_words", OPT_STR, "dyn dynamic dhcp pool ppp dsl adsl "
	    "cable dialup dial-up broadband customer unassigned", 0, 0,
	    offsetof(struct fcrdns_conf, generic_words),
	    "labels (or label prefixes) that mark a generic name" },
	{ "reject_threshold", OPT_FLOAT, "0", -1000, 1000,
	    offsetof(struct fcrdns_conf, reject_threshold),
	    "sum at which a recipient is refused (0: never, score only; "
	    "tcpserver -p is 2)" },
	{ "reply_code", OPT_INT, "450", 400, 599,
	    offsetof(struct fcrdns_conf, reply_code),
	    "reply code of a refusal" },
	{ "reply_text", OPT_STR, "Client host rejected: cannot find your "
	    "hostname", 0, 0, offsetof(struct fcrdns_conf, reply_text),
	    "refusal text" },
	OPT_END
};

extern const struct filter filter_fcrdns;

/* ---- pure parts --------------------------------------------------------- */

/* True when the digits run at p equals the number v (no leading zeros
 * beyond "0" itself). */
static bool
num_at(const char *p, size_t len, unsigned v)
{
	char	d[4];
	int	n = snprintf(d, sizeof(d), "%u", v);

	return (size_t)n == len && memcmp(p, d, len) == 0;
}

bool
fcrdns_generic(const char *name, const unsigned char ip[4],
    const char *words)
{
	const char	*p = name, *run[16];
	size_t		 runlen[16], nrun = 0, i, wl;
	const char	*w, *lab;

	/* The decimal runs of the name, in order. */
	while (*p != '\0' && nrun < 16) {
		if (isdigit((unsigned char)*p)) {
			run[nrun] = p;
			while (isdigit((unsigned char)*p))
				p++;
			runlen[nrun] = (size_t)(p - run[nrun]);
			nrun++;
		} else
			p++;
	}
	/* All four octets as consecutive runs, in either order. */
	for (i = 0; ip != NULL && i + 4 <= nrun; i++) {
		if (num_at(run[i], runlen[i], ip[0]) &&
		    num_at(run[i + 1], runlen[i + 1], ip[1]) &&
		    num_at(run[i + 2], runlen[i + 2], ip[2]) &&
		    num_at(run[i + 3], runlen[i + 3], ip[3]))
			return true;
		if (num_at(run[i], runlen[i], ip[3]) &&
		    num_at(run[i + 1], runlen[i + 1], ip[2]) &&
		    num_at(run[i + 2], runlen[i + 2], ip[1]) &&
		    num_at(run[i + 3], runlen[i + 3], ip[0]))
			return true;
	}
	/* A label that starts with one of the words. */
	for (w = words; w != NULL && *w != '\0'; ) {
		while (*w == ' ' || *w == '\t')
			w++;
		wl = strcspn(w, " \t");
		if (wl == 0)
			break;
		for (lab = name; lab != NULL; lab = strchr(lab, '.')) {
			if (*lab == '.')
				lab++;
			if (strncasecmp(lab, w, wl) == 0 &&
			    (lab[wl] == '\0' || lab[wl] == '.' ||
			    lab[wl] == '-' || isdigit((unsigned char)lab[wl])))
				return true;
		}
		w += wl;
	}
	return false;
}

bool
fcrdns_under(const char *name, const char *list)
{
	size_t	n = strlen(name), wl;
	const char *w;

	for (w = list; *w != '\0'; ) {
		while (*w == ' ' || *w == '\t')
			w++;
		wl = strcspn(w, " \t");
		if (wl == 0)
			break;
		if (*w == '.') {
			w++;
			wl--;
		}
		if (wl > 0 && n >= wl && strncasecmp(name + n - wl, w, wl) ==
		    0 && (n == wl || name[n - wl - 1] == '.'))
			return true;
		w += wl;
	}
	return false;
}

/* ---- per session -------------------------------------------------------- */

struct fwd {
	struct fcrdns_sess	*fs;
	struct dns_req		*req;
	char			 name[256];
};

struct fcrdns_sess {
	uint64_t	 sid;
	struct dns_req	*ptr;
	struct fwd	 fwd[FCRDNS_NAMES];
	size_t		 nfwd;
	int		 family;
	unsigned char	 addr[16];
	bool		 have_ptr;	/* a PTR answer came */
	bool		 no_ptr;	/* NXDOMAIN/NODATA */
	bool		 tempfail;
	bool		 confirmed;
	char		 name[256];	/* verified, or the first PTR name */
	unsigned	 symbol_txn;
	double		 ms;
};

static void
fcrdns_data_free(void *data)
{
	struct fcrdns_sess	*fs = data;
	size_t			 i;

	if (fs->ptr != NULL)
		dns_cancel(fs->ptr);
	for (i = 0; i < fs->nfwd; i++)
		if (fs->fwd[i].req != NULL)
			dns_cancel(fs->fwd[i].req);
	free(fs);
}

/* The session this data belongs to, or NULL (then the work is moot). */
static struct session *
owner(struct fcrdns_sess *fs)
{
	struct session *s = session_find(fs->sid);

	return s != NULL && filter_data(s, &filter_fcrdns) == fs ? s : NULL;
}

static void
fwd_done(const struct dns_answer *a, void *arg)
{
	struct fwd		*f = arg;
	struct fcrdns_sess	*fs = f->fs;
	struct session		*s = owner(fs);
	size_t			 i, len = fs->family == AF_INET6 ? 16 : 4;

	f->req = NULL;
	fs->ms += a->ms;
	if (a->status == DNS_TEMPFAIL)
		fs->tempfail = true;
	for (i = 0; a->status == DNS_OK && i < a->n && !fs->confirmed; i++)
		if (a->rr[i].family == fs->family &&
		    memcmp(a->rr[i].addr, fs->addr, len) == 0) {
			fs->confirmed = true;
			snprintf(fs->name, sizeof(fs->name), "%s", f->name);
		}
	if (s == NULL)
		return;
	if (fs->confirmed && !s->rdns_verified) {
		snprintf(s->rdns, sizeof(s->rdns), "%s", fs->name);
		s->rdns_verified = true;
		filter_evidence(s, &filter_fcrdns, "RDNS_CONFIRMED", 0, fs->ms,
		    "%s", fs->name);
	}
	filter_work_done(s, &filter_fcrdns);
}

static void
ptr_done(const struct dns_answer *a, void *arg)
{
	struct fcrdns_sess	*fs = arg;
	struct session		*s = owner(fs);
	size_t			 i;

	fs->ptr = NULL;
	fs->ms = a->ms;
	if (s == NULL)
		return;
	if (a->status == DNS_TEMPFAIL)
		fs->tempfail = true;
	else if (a->status != DNS_OK || a->n == 0)
		fs->no_ptr = true;
	else {
		fs->have_ptr = true;
		snprintf(fs->name, sizeof(fs->name), "%s", a->rr[0].str);
		snprintf(s->rdns, sizeof(s->rdns), "%s", a->rr[0].str);
	}
	for (i = 0; fs->have_ptr && i < a->n && fs->nfwd < FCRDNS_NAMES;
	    i++) {
		struct fwd *f = &fs->fwd[fs->nfwd];

		if (a->rr[i].str == NULL || a->rr[i].str[0] == '\0')
			continue;
		f->fs = fs;
		snprintf(f->name, sizeof(f->name), "%s", a->rr[i].str);
		fs->nfwd++;
		filter_work_add(s, &filter_fcrdns);
		if ((f->req = dns_query(fs->family == AF_INET6 ? DNS_AAAA :
		    DNS_A, f->name, fwd_done, f)) == NULL)
			filter_work_done(s, &filter_fcrdns);
	}
	filter_work_done(s, &filter_fcrdns);
}

static struct verdict
fcrdns_connect(struct filter_call *c)
{
	struct session		*s = c->s;
	struct fcrdns_sess	*fs;
	char			 name[128];

	if (s->trusted)
		return VERDICT(V_CONTINUE);
	if ((fs = calloc(1, sizeof(*fs))) == NULL)
		return VERDICT(V_CONTINUE);
	fs->sid = s->id;
	fs->family = s->peer.ss_family;
	if (fs->family == AF_INET6)
		memcpy(fs->addr, &((const struct sockaddr_in6 *)(const void *)
		    &s->peer)->sin6_addr, 16);
	else
		memcpy(fs->addr, &((const struct sockaddr_in *)(const void *)
		    &s->peer)->sin_addr, 4);
	if (filter_data_set(s, &filter_fcrdns, fs) == -1 ||
	    dns_reverse(fs->family, fs->addr, NULL, name, sizeof(name)) == -1) {
		free(fs);
		filter_data_set(s, &filter_fcrdns, NULL);
		return VERDICT(V_CONTINUE);
	}
	filter_work_add(s, &filter_fcrdns);
	if ((fs->ptr = dns_query(DNS_PTR, name, ptr_done, fs)) == NULL)
		filter_work_done(s, &filter_fcrdns);
	return VERDICT(V_CONTINUE);
}

/* What was found, scored under conf; evidence noted once. */
static double
fcrdns_score(struct session *s, struct fcrdns_sess *fs,
    const struct fcrdns_conf *conf, bool note)
{
	double	score = 0;

	if (fs->no_ptr) {
		score += conf->score_no_ptr;
		if (note)
			filter_evidence(s, &filter_fcrdns, "RDNS_NONE",
			    conf->score_no_ptr, fs->ms, "no PTR for %s", s->ip);
		return score;
	}
	if (!fs->have_ptr)
		return 0;		/* no data: nothing to say */
	if (!fs->confirmed && !fs->tempfail) {
		score += conf->score_not_confirmed;
		if (note)
			filter_evidence(s, &filter_fcrdns,
			    "RDNS_NOT_CONFIRMED", conf->score_not_confirmed,
			    fs->ms, "%s does not resolve to %s", fs->name,
			    s->ip);
	}
	if (fcrdns_generic(fs->name, fs->family == AF_INET ? fs->addr : NULL,
	    conf->generic_words)) {
		score += conf->score_generic;
		if (note)
			filter_evidence(s, &filter_fcrdns, "RDNS_GENERIC",
			    conf->score_generic, 0, "%s", fs->name);
	}
	if (fs->confirmed && conf->tlds[0] != '\0' &&
	    fcrdns_under(fs->name, conf->tlds)) {
		score += conf->score_tld;
		if (note)
			filter_evidence(s, &filter_fcrdns, "RDNS_TLD",
			    conf->score_tld, 0, "%s", fs->name);
	}
	return score;
}

static struct verdict
fcrdns_rcpt(struct filter_call *c)
{
	const struct fcrdns_conf	*conf = c->conf;
	struct fcrdns_sess		*fs = c->data;
	struct session			*s = c->s;
	double				 score;
	bool				 first;

	if (fs == NULL || s->txn->cur->exempt || s->trusted ||
	    s->authenticated || s->client_allowed)
		return VERDICT(V_CONTINUE);
	if (!c->late && filter_work_pending(s, &filter_fcrdns) > 0)
		return filter_wait(c, 0);
	first = fs->symbol_txn == 0;
	score = fcrdns_score(s, fs, conf, first);
	if (conf->reject_threshold > 0 && score >= conf->reject_threshold) {
		fs->symbol_txn = s->txn->seq;
		return verdict_make(conf->reply_code / 100 == 4 ? V_DEFER :
		    V_DENY, (int)conf->reply_code, conf->reply_code / 100 ==
		    4 ? "4.7.25" : "5.7.25", conf->reply_text);
	}
	if (fs->symbol_txn != s->txn->seq) {
		fs->symbol_txn = s->txn->seq;
		if (score != 0)
			session_symbol(s, "RDNS", score);
	}
	return VERDICT(V_CONTINUE);
}

const struct filter filter_fcrdns = {
	.name = "fcrdns",
	.summary = "client reverse DNS: PTR, forward-confirmed, generic "
	    "names, TLD rules (tcpserver -p)",
	.opts = fcrdns_opts,
	.conf_size = sizeof(struct fcrdns_conf),
	.hook = {
		[STAGE_CONNECT] = fcrdns_connect,
		[STAGE_RCPT] = fcrdns_rcpt,
	},
	.data_free = fcrdns_data_free,
	.fail = FAIL_CONTINUE,
};
