/*
 * zone_health.c: the health check of a DNS list zone, shared by dnsbl
 * (RFC 5782 §5: 127.0.0.2 must be listed, 127.0.0.1 must not) and rhsbl
 * (TEST listed, INVALID not). A zone that fails is out of service (its
 * listings are not counted) until a check passes again.
 *
 * One check per zone and worker at a time, every health_interval. The
 * session that starts it, and every session that asks while it runs,
 * wait for it as for their own lookups (filter work; a list that grows,
 * bounded by the worker's sessions), so
 * no decision meets a zone whose health is still unknown just after a
 * start. Invariant: the zone's state is set before the waiting sessions
 * are resumed (their decision runs from filter_work_done). A session
 * that is gone is skipped (found by id); the check itself stays
 * reachable from the zone (z->hc) until its answers are in.
 */
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "../core/dns.h"
#include "../core/log.h"
#include "dnsbl.h"
#include "filter.h"

struct zone_check {
	uint64_t		*sid;		/* sessions waiting */
	size_t			 nsid, cap;
	const struct filter	*f;
	struct dnsbl_zone	*z;
	const char		*what, *why;		/* for the log */
	struct dns_req		*listed, *clean;
	int			 ok;	/* answers that were right */
	bool			 tempfail;
	int			 in;
};

static void
check_done(const struct dns_answer *a, struct zone_check *h,
    bool want_listed)
{
	struct session	*s;
	size_t		 i;
	bool		 listed = false;

	for (i = 0; a->status == DNS_OK && i < a->n; i++)
		if (a->rr[i].family == AF_INET &&
		    dnsbl_answer(h->z, a->rr[i].addr) == 1)
			listed = true;
	if (a->status == DNS_TEMPFAIL)
		h->tempfail = true;
	else if (listed == want_listed)
		h->ok++;
	if (++h->in < 2)
		return;
	h->z->checking = false;
	h->z->hc = NULL;
	h->z->checked = time(NULL);
	if (h->tempfail)
		h->z->checked = 0;	/* no verdict: the next one asks */
	else if (h->ok == 2) {
		if (h->z->health == -1)
			log_msg(LVL_WARN, 0, "event=%s_zone zone=%s "
			    "state=back_in_service", h->what, h->z->name);
		h->z->health = 1;
	} else {
		if (h->z->health != -1)
			log_msg(LVL_WARN, 0, "event=%s_zone zone=%s "
			    "state=out_of_service why=\"%s\"", h->what,
			    h->z->name, h->why);
		h->z->health = -1;
	}
	for (i = 0; i < h->nsid; i++)
		if ((s = session_find(h->sid[i])) != NULL &&
		    filter_data(s, h->f) != NULL)
			filter_work_done(s, h->f);
	free(h->sid);
	free(h);
}

static void
check_listed(const struct dns_answer *a, void *arg)
{
	struct zone_check *h = arg;

	h->listed = NULL;
	check_done(a, h, true);
}

static void
check_clean(const struct dns_answer *a, void *arg)
{
	struct zone_check *h = arg;

	h->clean = NULL;
	check_done(a, h, false);
}

bool
zone_health_due(const struct dnsbl_zone *z, long long interval)
{
	return !z->checking && (z->health == 0 ||
	    time(NULL) - z->checked >= interval);
}

/* Adds s to the sessions waiting for h; false when out of memory. */
static bool
waiter_add(struct zone_check *h, const struct session *s)
{
	uint64_t	*n;
	size_t		 cap;

	if (h->nsid == h->cap) {
		cap = h->cap != 0 ? h->cap * 2 : 8;
		if ((n = reallocarray(h->sid, cap, sizeof(*n))) == NULL)
			return false;
		h->sid = n;
		h->cap = cap;
	}
	h->sid[h->nsid++] = s->id;
	return true;
}

void
zone_health_join(struct session *s, const struct filter *f,
    struct dnsbl_zone *z)
{
	struct zone_check *h = z->hc;

	if (z->checking && h != NULL && waiter_add(h, s))
		filter_work_add(s, f);
}

void
zone_health_start(struct session *s, const struct filter *f,
    struct dnsbl_zone *z, const char *listed, const char *clean,
    const char *what, const char *why)
{
	struct zone_check *h;

	if (z->checking || (h = calloc(1, sizeof(*h))) == NULL)
		return;
	if (!waiter_add(h, s)) {
		free(h);
		return;
	}
	h->f = f;
	h->z = z;
	h->what = what;
	h->why = why;
	z->checking = true;
	z->hc = h;
	filter_work_add(s, f);
	if ((h->listed = dns_query(DNS_A, listed, check_listed, h)) == NULL) {
		z->checking = false;
		z->hc = NULL;
		filter_work_done(s, f);
		free(h->sid);
		free(h);
		return;
	}
	if ((h->clean = dns_query(DNS_A, clean, check_clean, h)) == NULL)
		h->in++;	/* counted as a failed answer */
}
