/*
 * spamassassin.c: spamd's score for the message (SpamAssassin
 * spamd/PROTOCOL, SPAMC/1.5): SYMBOLS (or REPORT) with Content-length
 * and, per policy, a User: (a fixed name, the first recipient or its
 * domain), the message as the client sent it plus our Received.
 *
 * spamd's score × factor becomes the SA_SCORE symbol; the rule names are
 * evidence (and one log line). The score filter then applies the domain's
 * tag and reject thresholds to the total, as for every symbol. This
 * filter never refuses by itself; spamd down or slow is the fail mode
 * (continue by default: the message is scored without it; defer: 451).
 *
 * Cost: a message over the policy's reject threshold already (the score
 * filter's, by what ran before) is not sent, nor is one over max_size;
 * evidence says so (SA_SKIPPED).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/log.h"
#include "policy.h"
#include "scan.h"
#include "score.h"
#include "spamassassin.h"

struct sa_conf {
	struct svc_opts	 svc;
	char		*fail;
	bool		 scan;
	long long	 max_size;
	double		 factor;
	char		*command;
	char		*user_mode;
	char		*user;
};

#define SAC(f)	offsetof(struct sa_conf, f)

static const struct opt sa_opts[] = {
	SCAN_SVC_OPTS(struct sa_conf, "127.0.0.1:783", "30000", "continue"),
	{ "scan", OPT_BOOL, "yes", 0, 0, SAC(scan),
	    "check this policy's mail (no: the filter does nothing)" },
	{ "max_size", OPT_SIZE, "512k", 0, 1024LL * 1024 * 1024,
	    SAC(max_size), "larger messages are not sent to spamd" },
	{ "factor", OPT_FLOAT, "1", -100, 100, SAC(factor),
	    "SA_SCORE is spamd's score times this" },
	{ "command", OPT_STR, "symbols", 0, 0, SAC(command),
	    "symbols or report (both give the rule names)" },
	{ "user_mode", OPT_STR, "none", 0, 0, SAC(user_mode),
	    "User: sent to spamd: none, fixed (user), recipient (the "
	    "first one) or domain (its domain)" },
	{ "user", OPT_STR, "", 0, 0, SAC(user),
	    "the User: for user_mode fixed" },
	OPT_END
};

static int
sa_init(const void *vconf, void **state, char *err, size_t errlen)
{
	const struct sa_conf	*conf = vconf;
	struct sockaddr_storage	 ss;
	socklen_t		 len;
	const char		*m = conf->user_mode;

	*state = NULL;
	if (svc_addr_parse(conf->svc.address, &ss, &len) == -1) {
		snprintf(err, errlen, "address: '%s' is not /path, unix:/path "
		    "or ip:port", conf->svc.address);
		return -1;
	}
	if (strcmp(conf->command, "symbols") != 0 &&
	    strcmp(conf->command, "report") != 0) {
		snprintf(err, errlen, "command: '%s' is not symbols or report",
		    conf->command);
		return -1;
	}
	if (strcmp(m, "none") != 0 && strcmp(m, "fixed") != 0 &&
	    strcmp(m, "recipient") != 0 && strcmp(m, "domain") != 0) {
		snprintf(err, errlen, "user_mode: '%s' is not none, fixed, "
		    "recipient or domain", m);
		return -1;
	}
	return scan_fail_parse(conf->fail, err, errlen);
}

/* The User: for this transaction, "" for none. */
static const char *
sa_user(const struct sa_conf *conf, const struct txn *t)
{
	const struct rcpt	*r = NULL;
	size_t			 i;

	for (i = 0; i < t->nrcpt && r == NULL; i++)
		if (t->rcpts[i].accepted)
			r = &t->rcpts[i];
	if (strcmp(conf->user_mode, "fixed") == 0)
		return conf->user;
	if (r == NULL)
		return "";
	if (strcmp(conf->user_mode, "recipient") == 0)
		return r->addr;
	if (strcmp(conf->user_mode, "domain") == 0)
		return r->path.domain;
	return "";
}

static int
sa_reply(void *arg, enum svc_status st, const char *reply, size_t len)
{
	struct scan			*sc = arg;
	const struct spamd_reply	*r = &sc->sa;
	int				 rc = 0;

	if (st == SVC_OK) {
		/* A report reply names its rules in a table. */
		sc->parsed = scanproto_spamd(reply, len, sc->parsed == 1,
		    &sc->sa);
		rc = sc->parsed == -1 || r->code != 0 ? -1 : 0;
	}
	scan_done(sc, st);
	return rc;
}

/* The score so far is over the policy's reject threshold. */
static bool
over_reject(const struct policy *p, const struct txn *t, double *reject)
{
	const struct score_conf *sc = scan_conf(p, &filter_score);

	if (sc == NULL)
		return false;
	*reject = sc->reject;
	return t->score >= sc->reject;
}

void
spamassassin_start(struct session *s, const struct policy *p)
{
	const struct sa_conf	*conf = scan_conf(p, &filter_spamassassin);
	struct svc_call		 call;
	struct scan		*sc;
	char			 head[512];
	double			 reject = 0;
	bool			 report;
	int			 n;

	if (conf == NULL || !conf->scan ||
	    filter_skipped(s, &filter_spamassassin) ||
	    (sc = scan_get(s, &filter_spamassassin)) == NULL ||
	    sc->st != SCAN_NONE)
		return;
	if ((long long)s->txn->msg.len > conf->max_size ||
	    over_reject(p, s->txn, &reject)) {
		sc->st = SCAN_SKIPPED;
		if ((long long)s->txn->msg.len > conf->max_size)
			filter_evidence(s, &filter_spamassassin, "SA_SKIPPED",
			    0, 0, "size %zu over max_size %lld",
			    s->txn->msg.len, conf->max_size);
		else
			filter_evidence(s, &filter_spamassassin, "SA_SKIPPED",
			    0, 0, "score %.1f already over reject %.1f",
			    s->txn->score, reject);
		return;
	}
	report = strcmp(conf->command, "report") == 0;
	if ((n = scanproto_spamd_head(head, sizeof(head), report,
	    s->txn->msg.len, sa_user(conf, s->txn))) == -1)
		n = scanproto_spamd_head(head, sizeof(head), report,
		    s->txn->msg.len, NULL);
	memset(&call, 0, sizeof(call));
	call.head = head;
	call.headlen = (size_t)n;
	call.frame = SVC_FRAME_RAW;
	call.shut_wr = true;
	call.end = SVC_END_EOF;
	call.done = sa_reply;
	call.total_ms = conf->svc.total_ms;
	sc->parsed = report;
	(void)scan_start(sc, s, svc_get(s->base, "spamd", &conf->svc), &call);
}

static struct verdict
sa_data_post(struct filter_call *c)
{
	const struct sa_conf	*conf = c->conf;
	struct scan		*sc;
	struct verdict		 v;
	double			 score;

	scan_start_all(c);
	if (!conf->scan ||
	    (sc = filter_data(c->s, &filter_spamassassin)) == NULL ||
	    sc->seq != c->s->txn->seq || sc->st == SCAN_NONE ||
	    sc->st == SCAN_SKIPPED)
		return VERDICT(V_CONTINUE);
	if ((v = scan_wait(c, sc, conf->svc.total_ms)).code != V_CONTINUE)
		return v;
	if (sc->status != SVC_OK || sc->parsed == -1 || sc->sa.code != 0) {
		filter_evidence(c->s, &filter_spamassassin, "SA_FAIL", 0,
		    sc->ms, "%s fail=%s", sc->status != SVC_OK ?
		    svc_status_name(sc->status) : sc->parsed == -1 ?
		    "bad_reply" : "error_code", conf->fail);
		return scan_failed(conf->fail, "Content check unavailable; "
		    "try again later");
	}
	score = sc->sa.score * conf->factor;
	(void)session_symbol(c->s, "SA_SCORE", score);
	filter_evidence(c->s, &filter_spamassassin, "SA_SCORE", score,
	    sc->ms, "%.1f/%.1f %s", sc->sa.score, sc->sa.threshold,
	    sc->sa.rules);
	log_msg(LVL_INFO, c->s->id, "event=spamassassin score=%.1f "
	    "required=%.1f ms=%.0f rules=%s%s", sc->sa.score,
	    sc->sa.threshold, sc->ms, sc->sa.rules[0] ? sc->sa.rules :
	    "none", sc->sa.dropped ? ",..." : "");
	return VERDICT(V_CONTINUE);
}

const struct filter filter_spamassassin = {
	.name = "spamassassin",
	.summary = "score the message with spamd (SPAMC/1.5): SA_SCORE for "
	    "the score filter",
	.opts = sa_opts,
	.conf_size = sizeof(struct sa_conf),
	.init = sa_init,
	.hook = {
		[STAGE_DATA_POST] = sa_data_post,
	},
	.data_free = scan_free,
	.fail = FAIL_CONTINUE,
};
