/*
 * scan.h: what the content scanners (clamav, spamassassin) share: their
 * per-session scan of the current message through the service client,
 * and the start of every scanner's work at the first scanner's hook, so
 * that scans of one message run in parallel (ARCHITECTURE "Content
 * scanners").
 *
 * At data_post the first scanner in [pipeline] starts every enabled
 * scanner's request (scan_start_all) and waits for its own; the next one
 * finds its work already under way (or done) and waits for the rest. So
 * each verdict is still its own filter's (observe mode, `by`, the order
 * of refusals) while the services work at the same time. A scan belongs
 * to one transaction (its seq): one left from a transaction that ended
 * early is cancelled before anything else happens.
 */
#ifndef MOAT_SCAN_H
#define MOAT_SCAN_H

#include "../core/svc.h"
#include "filter.h"
#include "scanproto.h"

enum scan_state {
	SCAN_NONE,	/* nothing for this transaction yet */
	SCAN_SKIPPED,	/* decided not to scan (evidence says why) */
	SCAN_RUNNING,	/* a request in flight (counted work) */
	SCAN_DONE,	/* status (and the parsed reply) below */
};

struct scan {
	const struct filter	*f;
	uint64_t		 sid;
	unsigned		 seq;		/* the transaction's */
	enum scan_state		 st;
	struct svc_req		*req;
	size_t			 left;		/* message bytes to send */
	long long		 t0;
	double			 ms;
	enum svc_status		 status;
	int			 parsed;	/* parser's result, -1 bad */
	struct clamd_reply	 clam;
	struct spamd_reply	 sa;
};

/* The service client's options, the same in every scanner's table. */
#define SCAN_SVC_OPTS(T, addr, total, failmode)			\
	{ "address", OPT_STR, addr, 0, 0, offsetof(T, svc.address),	\
	    "the service: /path or unix:/path (a UNIX socket), or "	\
	    "ip:port, [ipv6]:port (numeric)" },				\
	{ "timeout", OPT_INT, total, 10, 600000,			\
	    offsetof(T, svc.total_ms), "milliseconds the whole request "\
	    "may take, queue included; then the fail mode" },		\
	{ "connect_timeout", OPT_INT, "2000", 10, 600000,		\
	    offsetof(T, svc.connect_ms), "milliseconds to connect" },	\
	{ "idle_timeout", OPT_INT, "10000", 10, 600000,			\
	    offsetof(T, svc.idle_ms), "milliseconds without progress "	\
	    "either way" },						\
	{ "max_reply", OPT_SIZE, "64k", 64, 16 * 1024 * 1024,		\
	    offsetof(T, svc.max_reply), "bytes of a reply at most" },	\
	{ "max_conns", OPT_INT, "16", 1, 10000,				\
	    offsetof(T, svc.max_conns), "connections at once per "	\
	    "worker; more requests wait" },				\
	{ "down_after", OPT_INT, "3", 1, 1000,				\
	    offsetof(T, svc.down_after), "failures in a row before "	\
	    "the service is down (requests fail at once)" },		\
	{ "retry", OPT_INT, "10000", 10, 3600000,			\
	    offsetof(T, svc.retry_ms), "milliseconds between probes "	\
	    "of a service that is down" },				\
	{ "fail", OPT_STR, failmode, 0, 0, offsetof(T, fail),		\
	    "when the service is down, slow or fails: defer (451) or "	\
	    "continue" }

/* The filter's scan for the session's transaction (made, or reset when
 * it belonged to an earlier one); NULL on OOM. */
struct scan	*scan_get(struct session *, const struct filter *);
/* Starts the request: the body is txn->msg from 0, pulled in pieces.
 * 0 started (work counted), -1 not (scan->status says why). */
int		 scan_start(struct scan *, struct session *, struct svc *,
		    const struct svc_call *);
/* The body pull for svc (arg: the scan). */
int		 scan_pull(void *arg, size_t max, const char **p, size_t *n);
/* Ends a running scan with status (its request cancelled, work done). */
void		 scan_stop(struct scan *, struct session *, enum svc_status);
/* A request's end: records status and ms, work done (arg: the scan). */
void		 scan_done(struct scan *, enum svc_status);
/* data_free for scanner filters. */
void		 scan_free(void *);
/* Every scanner's start for this transaction (each at most once). */
void		 scan_start_all(struct filter_call *);
/* In a scanner's data_post hook: waits for its scan (PENDING) or returns
 * CONTINUE once it is done, skipped or given up at the deadline. */
struct verdict	 scan_wait(struct filter_call *, struct scan *,
		    long long timeout_ms);
/* The policy's conf of filter f when f is in [pipeline], else NULL. */
const void	*scan_conf(const struct policy *, const struct filter *);
/* "defer" or "continue" (option check in init). */
int		 scan_fail_parse(const char *, char *err, size_t errlen);
/* The fail-mode verdict: a 451 for "defer", CONTINUE otherwise. */
struct verdict	 scan_failed(const char *fail, const char *what);

#endif
