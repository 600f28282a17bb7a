/*
 * clamav.c: the message, as the client sent it plus our Received, through
 * clamd's zINSTREAM (clamd(8)): 4-byte big-endian length-prefixed chunks
 * and a zero-length end, written as the socket drains while the reply is
 * read (clamd refuses mid-stream at its StreamMaxLength and closes).
 *
 * - "stream: NAME FOUND": action reject is 554 5.7.1 with the name
 *   (text), the message kept in the quarantine with quarantine = yes
 *   (and [quarantine] virus = yes); action tag adds CLAM_VIRUS (virus_score) and an X-Virus
 *   header, and delivers.
 * - "stream: OK": CLAM_CLEAN evidence.
 * - clamd down, slow, an error, its size limit: the fail mode (defer:
 *   451 4.4.3; continue: delivered), with CLAM_FAIL evidence saying why.
 *   The outage itself is logged by the service client, once.
 * - A message over max_size is not sent (CLAM_SKIPPED evidence).
 * Per domain: scan (on/off), action, texts, max_size, timeout, fail.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/log.h"
#include "../deliver/quarantine.h"
#include "clamav.h"
#include "policy.h"
#include "scan.h"

struct clamav_conf {
	struct svc_opts	 svc;
	char		*fail;
	bool		 scan;
	long long	 max_size;
	char		*action;
	double		 virus_score;
	char		*text;
	char		*header;
	bool		 quarantine;
};

#define CC(f)	offsetof(struct clamav_conf, f)

static const struct opt clamav_opts[] = {
	SCAN_SVC_OPTS(struct clamav_conf, "/var/run/clamav/clamd.ctl",
	    "30000", "defer"),
	{ "scan", OPT_BOOL, "yes", 0, 0, CC(scan),
	    "scan this policy's mail (no: the filter does nothing)" },
	{ "max_size", OPT_SIZE, "20M", 0, 1024LL * 1024 * 1024, CC(max_size),
	    "larger messages are not scanned (keep it under clamd's "
	    "StreamMaxLength)" },
	{ "action", OPT_STR, "reject", 0, 0, CC(action),
	    "a virus found: reject (554 5.7.1) or tag (CLAM_VIRUS and a "
	    "header)" },
	{ "virus_score", OPT_FLOAT, "100", -1000, 1000, CC(virus_score),
	    "score of CLAM_VIRUS when action is tag" },
	{ "text", OPT_STR, "Virus found: %s", 0, 0, CC(text),
	    "reply text; %s is the virus name" },
	{ "header", OPT_STR, "X-Virus", 0, 0, CC(header),
	    "header naming the virus when action is tag" },
	{ "quarantine", OPT_BOOL, "no", 0, 0, CC(quarantine),
	    "keep refused viruses in the quarantine (also needs "
	    "[quarantine] virus = yes; released only with --force)" },
	OPT_END
};

static int
clamav_init(const void *vconf, void **state, char *err, size_t errlen)
{
	const struct clamav_conf	*conf = vconf;
	struct sockaddr_storage		 ss;
	socklen_t			 len;

	*state = NULL;
	if (svc_addr_parse(conf->svc.address, &ss, &len) == -1) {
		snprintf(err, errlen, "address: '%s' is not /path, unix:/path "
		    "or ip:port", conf->svc.address);
		return -1;
	}
	if (strcmp(conf->action, "reject") != 0 &&
	    strcmp(conf->action, "tag") != 0) {
		snprintf(err, errlen, "action: '%s' is not reject or tag",
		    conf->action);
		return -1;
	}
	return scan_fail_parse(conf->fail, err, errlen);
}

/* The reply's end: parsed here, decided in the hook. */
static int
clamav_reply(void *arg, enum svc_status st, const char *reply, size_t len)
{
	struct scan	*sc = arg;
	int		 rc = 0;

	if (st == SVC_OK) {
		switch (scanproto_clamd(reply, len, &sc->clam)) {
		case CLAMD_CLEAN:
		case CLAMD_FOUND:
		case CLAMD_SIZE:	/* the message's fault, not clamd's */
			break;
		default:
			rc = -1;
		}
	}
	scan_done(sc, st);
	return rc;
}

void
clamav_start(struct session *s, const struct policy *p)
{
	const struct clamav_conf	*conf = scan_conf(p, &filter_clamav);
	struct svc_call			 call;
	struct scan			*sc;

	if (conf == NULL || !conf->scan || filter_skipped(s, &filter_clamav) ||
	    (sc = scan_get(s, &filter_clamav)) == NULL || sc->st != SCAN_NONE)
		return;
	if ((long long)s->txn->msg.len > conf->max_size) {
		sc->st = SCAN_SKIPPED;
		filter_evidence(s, &filter_clamav, "CLAM_SKIPPED", 0, 0,
		    "size %zu over max_size %lld", s->txn->msg.len,
		    conf->max_size);
		return;
	}
	memset(&call, 0, sizeof(call));
	/* The NUL-terminated form ("z"): the reply ends with a NUL too. */
	call.head = CLAMD_INSTREAM;
	call.headlen = sizeof(CLAMD_INSTREAM);
	call.frame = SVC_FRAME_LEN32;
	call.end = SVC_END_NUL;
	call.done = clamav_reply;
	call.total_ms = conf->svc.total_ms;
	(void)scan_start(sc, s, svc_get(s->base, "clamd", &conf->svc), &call);
}

static struct verdict
clamav_found(struct filter_call *c, const struct clamav_conf *conf,
    struct scan *sc)
{
	struct txn *t = c->s->txn;

	filter_evidence(c->s, &filter_clamav, "CLAM_VIRUS",
	    strcmp(conf->action, "tag") == 0 ? conf->virus_score : 0, sc->ms,
	    "%s", sc->clam.name);
	log_msg(LVL_INFO, c->s->id, "event=virus name=%s action=%s",
	    sc->clam.name, conf->action);
	if (strcmp(conf->action, "tag") == 0) {
		(void)session_symbol(c->s, "CLAM_VIRUS", conf->virus_score);
		if (conf->header[0] != '\0')
			(void)session_add_header(c->s, conf->header,
			    sc->clam.name);
		return VERDICT(V_CONTINUE);
	}
	filter_reply_format(t->verdict_text, sizeof(t->verdict_text),
	    conf->text, sc->clam.name, "");
	if (conf->quarantine) {
		char reason[CLAMD_NAME_MAX + 8];

		snprintf(reason, sizeof(reason), "virus:%s", sc->clam.name);
		/* PENDING while the copy is made durable (.cancel). */
		return quarantine_keep(c, reason, verdict_make(V_DENY, 554,
		    "5.7.1", t->verdict_text));
	}
	return verdict_make(V_DENY, 554, "5.7.1", t->verdict_text);
}

static struct verdict
clamav_data_post(struct filter_call *c)
{
	const struct clamav_conf	*conf = c->conf;
	struct scan			*sc;
	struct verdict			 v;
	const char			*why;

	scan_start_all(c);
	if (!conf->scan || (sc = filter_data(c->s, &filter_clamav)) == NULL ||
	    sc->seq != c->s->txn->seq || sc->st == SCAN_NONE ||
	    sc->st == SCAN_SKIPPED)
		return VERDICT(V_CONTINUE);
	if ((v = scan_wait(c, sc, conf->svc.total_ms)).code != V_CONTINUE)
		return v;
	if (sc->status == SVC_OK && sc->clam.result == CLAMD_CLEAN) {
		filter_evidence(c->s, &filter_clamav, "CLAM_CLEAN", 0, sc->ms,
		    "stream: OK");
		return VERDICT(V_CONTINUE);
	}
	if (sc->status == SVC_OK && sc->clam.result == CLAMD_FOUND)
		return clamav_found(c, conf, sc);
	why = sc->status != SVC_OK ? svc_status_name(sc->status) :
	    sc->clam.result == CLAMD_SIZE ? "size_limit" :
	    sc->clam.result == CLAMD_ERROR ? "error" : "bad_reply";
	filter_evidence(c->s, &filter_clamav, "CLAM_FAIL", 0, sc->ms,
	    "%s%s%s fail=%s", why, sc->clam.name[0] ? " " : "",
	    sc->clam.name, conf->fail);
	return scan_failed(conf->fail, "Virus scan unavailable; try again "
	    "later");
}

const struct filter filter_clamav = {
	.name = "clamav",
	.summary = "scan the message with clamd (INSTREAM): refuse or tag "
	    "viruses",
	.opts = clamav_opts,
	.conf_size = sizeof(struct clamav_conf),
	.init = clamav_init,
	.hook = {
		[STAGE_DATA_POST] = clamav_data_post,
	},
	.cancel = quarantine_cancel,
	.data_free = scan_free,
	.fail = FAIL_DEFER,
};
