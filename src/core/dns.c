/*
 * dns.c: the process's resolver (see dns.h and docs/DNS.md).
 *
 * Owns the c-ares channel, one libevent event per c-ares socket (added and
 * removed by c-ares' socket-state callback), one timer that follows
 * ares_timeout() after every call into c-ares, the table of entries and
 * the queue of answers to hand over on the next loop turn.
 *
 * An entry is one (type, lowercased name). It is either pending (one
 * c-ares query in flight, its waiters in e->waiters) or answered; an
 * answered entry is in the cache (hash table + LRU list, at most
 * cache_size of them) or out of the table, kept only by the requests that
 * still have to read it. Invariants:
 * - every entry in the hash table is pending or cached; only pending
 *   entries have a c-ares query, and a pending entry stays in the table
 *   until c-ares answers, even with no waiter left (the answer fills the
 *   cache);
 * - e->refs counts the requests pointing at e (waiting or deferred) plus
 *   one while answers are handed out; an entry out of the table is freed
 *   when refs drops to 0;
 * - a request is in exactly one list: its entry's waiters (pending) or
 *   the deferred queue (answered, callback on the next loop turn);
 * - no user callback runs inside dns_query(), dns_cancel(), dns_fini().
 */
#include <limits.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netinet/in.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include <ares.h>
#include <event2/event.h>

#include "dns.h"

/* RFC 1035 §4.1.1: the fixed header. */
#define HDR_LEN		12
/* Smallest and largest hash tables (entries share chains beyond). */
#define BUCKETS_MIN	256
#define BUCKETS_MAX	(1u << 20)

struct dns_req;

struct dns_entry {
	LIST_ENTRY(dns_entry)	 hlink;		/* hash chain */
	TAILQ_ENTRY(dns_entry)	 lru;		/* cached: newest first */
	TAILQ_HEAD(, dns_req)	 waiters;	/* pending: who wants it */
	unsigned		 refs;
	uint32_t		 hash;
	enum dns_type		 type;
	bool			 pending;
	bool			 linked;	/* in the hash table */
	bool			 cached;	/* in the LRU list too */
	bool			 starting;	/* inside ares_query() */
	int64_t			 expires;	/* cached: monotonic ms */
	struct dns_answer	 ans;		/* status, ttl, n, rr */
	char			 name[];
};

struct dns_req {
	TAILQ_ENTRY(dns_req)	 link;		/* waiters or deferred */
	struct dns_entry	*e;
	dns_cb			 cb;
	void			*arg;
	bool			 deferred;
	bool			 cached;	/* a cache hit */
	uint64_t		 turn;		/* deferred: queued at */
	struct timespec		 start;
};

struct sockev {
	ares_socket_t		 fd;
	struct event		*ev;
};

LIST_HEAD(chain, dns_entry);

static struct {
	bool			 up;
	struct event_base	*base;
	ares_channel		 ch;
	struct event		*timer;		/* follows ares_timeout() */
	struct event		*defer_ev;	/* hands over deferred */
	struct sockev		*socks;
	size_t			 nsocks, socksz;
	struct chain		*buckets;
	size_t			 nbuckets;	/* a power of two */
	TAILQ_HEAD(dns_lru, dns_entry) lru;
	TAILQ_HEAD(, dns_req)	 deferred;
	uint64_t		 turn;
	long long		 ttl_min, ttl_max, cache_size;
	struct dns_stats	 st;
} D;

/* ---- the pure part: reply parsing ---- */

static unsigned
rd16(const unsigned char *p)
{
	return (unsigned)p[0] << 8 | p[1];
}

/* RFC 2181 §8: a TTL with the top bit set is taken as zero. */
static long
rd_ttl(const unsigned char *p)
{
	uint32_t v = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | p[3];

	return (v & 0x80000000u) ? 0 : (long)v;
}

/* Steps over a (possibly compressed) name in b[*off..end); false when it
 * runs past end or uses a reserved label type (RFC 6891 §5). */
static bool
skip_name(const unsigned char *b, size_t end, size_t *off)
{
	size_t	o = *off;

	for (;;) {
		if (o >= end)
			return false;
		if (b[o] == 0) {
			*off = o + 1;
			return true;
		}
		if ((b[o] & 0xc0) == 0xc0) {
			if (o + 2 > end)
				return false;
			*off = o + 2;
			return true;
		}
		if (b[o] & 0xc0)
			return false;
		o += 1 + (size_t)b[o];
	}
}

/* One resource record at *off: its type, TTL and where its data lies. */
static bool
next_rr(const unsigned char *b, size_t len, size_t *off, unsigned *type,
    long *ttl, size_t *rdoff, size_t *rdlen)
{
	size_t	o = *off;

	if (!skip_name(b, len, &o) || o + 10 > len)
		return false;
	*type = rd16(b + o);
	*ttl = rd_ttl(b + o + 4);
	*rdlen = rd16(b + o + 8);
	*rdoff = o + 10;
	if (*rdlen > len - *rdoff)
		return false;
	*off = *rdoff + *rdlen;
	return true;
}

/* RFC 2308 §5: a negative answer lives min(SOA TTL, SOA MINIMUM). */
static long
soa_ttl(const unsigned char *b, size_t rdoff, size_t rdlen, long ttl)
{
	size_t	o = rdoff, end = rdoff + rdlen;
	long	min;

	if (!skip_name(b, end, &o) || !skip_name(b, end, &o) || o + 20 > end)
		return -1;
	min = rd_ttl(b + o + 16);
	return min < ttl ? min : ttl;
}

long
dns_answer_ttl(const unsigned char *b, size_t len)
{
	size_t		off = HDR_LEN, rdoff, rdlen;
	unsigned	qd, an, ns, i, type;
	long		ttl, min = -1, v;

	if (b == NULL || len < HDR_LEN)
		return -1;
	qd = rd16(b + 4);
	an = rd16(b + 6);
	ns = rd16(b + 8);
	for (i = 0; i < qd; i++) {
		if (!skip_name(b, len, &off) || off + 4 > len)
			return -1;
		off += 4;
	}
	for (i = 0; i < an; i++) {
		if (!next_rr(b, len, &off, &type, &ttl, &rdoff, &rdlen))
			return -1;
		if (min < 0 || ttl < min)
			min = ttl;
	}
	if (an > 0)
		return min;
	for (i = 0; i < ns; i++) {
		if (!next_rr(b, len, &off, &type, &ttl, &rdoff, &rdlen))
			return -1;
		if (type != ns_t_soa)
			continue;
		if ((v = soa_ttl(b, rdoff, rdlen, ttl)) < 0)
			return -1;
		if (min < 0 || v < min)
			min = v;
	}
	/* No SOA: RFC 2308 §5 says do not cache; the caller clamps 0 up to
	 * ttl_min, a short bound a caching resolver can afford (docs/DNS.md). */
	return min < 0 ? 0 : min;
}

/* ASCII only: DNS names compare case-insensitively in ASCII (RFC 4343
 * §3), whatever the process's locale. */
static char
lower(unsigned char c)
{
	return (char)(c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c);
}

/* Whether s[0..len) ends in a dot that is not escaped ("\\." is a dot
 * inside a label in c-ares' presentation form, RFC 1035 §5.1). */
static bool
ends_in_dot(const char *s, size_t len)
{
	size_t	bs = 0;

	if (len == 0 || s[len - 1] != '.')
		return false;
	while (bs + 1 < len && s[len - 2 - bs] == '\\')
		bs++;
	return bs % 2 == 0;
}

/* A name from c-ares as we hand it out: lowercased, no trailing dot. A
 * label byte that is not printable, a dot or a backslash inside a label
 * stay in c-ares' escaped form (\DDD, \., \\), which dns_query() refuses:
 * such a name is never looked up again. */
static char *
name_dup(const char *s, size_t *lenp)
{
	size_t	 len = strlen(s), i;
	char	*d;

	if (ends_in_dot(s, len))
		len--;
	if ((d = malloc(len + 1)) == NULL)
		return NULL;
	for (i = 0; i < len; i++)
		d[i] = lower((unsigned char)s[i]);
	d[len] = '\0';
	*lenp = len;
	return d;
}

static int
parse_a(const unsigned char *buf, int len, struct dns_answer *a)
{
	struct ares_addrttl	v4[DNS_RR_MAX];
	struct ares_addr6ttl	v6[DNS_RR_MAX];
	int			n = DNS_RR_MAX, rc, i;

	if (a->type == DNS_A)
		rc = ares_parse_a_reply(buf, len, NULL, v4, &n);
	else
		rc = ares_parse_aaaa_reply(buf, len, NULL, v6, &n);
	if (rc != ARES_SUCCESS)
		return rc;
	if (n <= 0)
		return ARES_ENODATA;
	if ((a->rr = calloc((size_t)n, sizeof(*a->rr))) == NULL)
		return ARES_ENOMEM;
	for (i = 0; i < n; i++) {
		if (a->type == DNS_A) {
			a->rr[i].family = AF_INET;
			memcpy(a->rr[i].addr, &v4[i].ipaddr, 4);
		} else {
			a->rr[i].family = AF_INET6;
			memcpy(a->rr[i].addr, &v6[i].ip6addr, 16);
		}
	}
	a->n = (size_t)n;
	return ARES_SUCCESS;
}

/* PTR: c-ares puts every PTR name in h_aliases (h_name is the first). */
static int
parse_ptr(const unsigned char *buf, int len, struct dns_answer *a)
{
	static const unsigned char	 any[4];
	struct hostent			*he;
	char				**al;
	size_t				 n = 0;
	int				 rc;

	rc = ares_parse_ptr_reply(buf, len, any, sizeof(any), AF_INET, &he);
	if (rc != ARES_SUCCESS)
		return rc;
	al = he->h_aliases;
	if (al != NULL && al[0] != NULL)
		while (al[n] != NULL && n < DNS_RR_MAX)
			n++;
	else if ((al = &he->h_name)[0] != NULL)
		n = 1;
	if (n == 0 || (a->rr = calloc(n, sizeof(*a->rr))) == NULL)
		rc = n == 0 ? ARES_ENODATA : ARES_ENOMEM;
	for (a->n = 0; rc == ARES_SUCCESS && a->n < n; a->n++)
		if ((a->rr[a->n].str = name_dup(al[a->n],
		    &a->rr[a->n].len)) == NULL)
			rc = ARES_ENOMEM;
	ares_free_hostent(he);
	return rc;
}

/* TXT: a record's strings joined (RFC 7208 §3.3 for SPF, and DNSBL texts
 * are one string anyway). */
static int
parse_txt(const unsigned char *buf, int len, struct dns_answer *a)
{
	struct ares_txt_ext	*tx, *p, *q;
	size_t			 n = 0, sz, off;
	int			 rc;

	if ((rc = ares_parse_txt_reply_ext(buf, len, &tx)) != ARES_SUCCESS)
		return rc;
	for (p = tx; p != NULL; p = p->next)
		if ((p->record_start || p == tx) && n < DNS_RR_MAX)
			n++;
	if (n == 0 || (a->rr = calloc(n, sizeof(*a->rr))) == NULL)
		rc = n == 0 ? ARES_ENODATA : ARES_ENOMEM;
	for (p = tx; rc == ARES_SUCCESS && p != NULL && a->n < n; p = q) {
		for (sz = p->length, q = p->next; q && !q->record_start;
		    q = q->next)
			sz += q->length;
		if ((a->rr[a->n].str = malloc(sz + 1)) == NULL) {
			rc = ARES_ENOMEM;
			break;
		}
		for (off = 0; p != q; p = p->next) {
			memcpy(a->rr[a->n].str + off, p->txt, p->length);
			off += p->length;
		}
		a->rr[a->n].str[sz] = '\0';
		a->rr[a->n++].len = sz;
	}
	ares_free_data(tx);
	return rc;
}

/* MX: "0 ." (RFC 7505 null MX) comes out as pref 0, str "". */
static int
parse_mx(const unsigned char *buf, int len, struct dns_answer *a)
{
	struct ares_mx_reply	*mx, *p;
	size_t			 n = 0;
	int			 rc;

	if ((rc = ares_parse_mx_reply(buf, len, &mx)) != ARES_SUCCESS)
		return rc;
	for (p = mx; p != NULL && n < DNS_RR_MAX; p = p->next)
		n++;
	if (n == 0 || (a->rr = calloc(n, sizeof(*a->rr))) == NULL)
		rc = n == 0 ? ARES_ENODATA : ARES_ENOMEM;
	for (p = mx; rc == ARES_SUCCESS && a->n < n; p = p->next, a->n++) {
		a->rr[a->n].pref = p->priority;
		if ((a->rr[a->n].str = name_dup(p->host,
		    &a->rr[a->n].len)) == NULL)
			rc = ARES_ENOMEM;
	}
	ares_free_data(mx);
	return rc;
}

void
dns_answer_free(struct dns_answer *a)
{
	size_t	i;

	for (i = 0; a->rr != NULL && i < a->n; i++)
		free(a->rr[i].str);
	free(a->rr);
	a->rr = NULL;
	a->n = 0;
}

int
dns_parse(enum dns_type t, const unsigned char *buf, size_t len,
    struct dns_answer *a)
{
	long	ttl;
	int	rc;

	a->type = t;
	a->status = DNS_TEMPFAIL;
	a->ttl = 0;
	a->n = 0;
	a->rr = NULL;
	if (buf == NULL || len > INT_MAX || (ttl = dns_answer_ttl(buf,
	    len)) < 0)
		return 0;
	a->ttl = (uint32_t)ttl;
	switch (buf[3] & 0x0f) {	/* RFC 1035 §4.1.1 RCODE */
	case ns_r_nxdomain:
		a->status = DNS_NXDOMAIN;
		return 0;
	case ns_r_noerror:
		break;
	default:
		return 0;
	}
	if (rd16(buf + 6) == 0) {
		a->status = DNS_NODATA;
		return 0;
	}
	if (t == DNS_A || t == DNS_AAAA)
		rc = parse_a(buf, (int)len, a);
	else if (t == DNS_PTR)
		rc = parse_ptr(buf, (int)len, a);
	else if (t == DNS_TXT)
		rc = parse_txt(buf, (int)len, a);
	else
		rc = parse_mx(buf, (int)len, a);
	if (rc == ARES_SUCCESS && a->n > 0)
		a->status = DNS_OK;
	else {
		dns_answer_free(a);
		if (rc == ARES_ENOMEM)
			return -1;
		a->status = rc == ARES_ENODATA ? DNS_NODATA : DNS_TEMPFAIL;
	}
	return 0;
}

int
dns_reverse(int family, const void *addr, const char *zone, char *out,
    size_t outlen)
{
	static const char	 hex[] = "0123456789abcdef";
	const unsigned char	*a = addr;
	char			 rev[72];
	size_t			 zl, o = 0;
	int			 i, w;

	if (zone == NULL)
		zone = family == AF_INET ? "in-addr.arpa" : "ip6.arpa";
	zl = strlen(zone);
	if (zl > 0 && zone[zl - 1] == '.')
		zl--;
	if (zl == 0 || zone[0] == '.')
		return -1;
	if (family == AF_INET)
		o = (size_t)snprintf(rev, sizeof(rev), "%u.%u.%u.%u", a[3],
		    a[2], a[1], a[0]);
	else if (family == AF_INET6)
		for (i = 15; i >= 0; i--) {	/* RFC 3596 §2.5 */
			rev[o++] = hex[a[i] & 0xf];
			rev[o++] = '.';
			rev[o++] = hex[a[i] >> 4];
			rev[o++] = i > 0 ? '.' : '\0';
		}
	else
		return -1;
	o = strlen(rev);
	if (o + 1 + zl > DNS_NAME_MAX)
		return -1;
	w = snprintf(out, outlen, "%s.%.*s", rev, (int)zl, zone);
	return w < 0 || (size_t)w >= outlen ? -1 : 0;
}

/* ---- the resolver ---- */

static int64_t
now_ms(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double
ms_since(const struct timespec *t0)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)(ts.tv_sec - t0->tv_sec) * 1e3 +
	    (double)(ts.tv_nsec - t0->tv_nsec) / 1e6;
}

/* The key of a query: lowercased, one trailing dot dropped; false for a
 * name we will not ask (empty, too long, an empty label or a label past
 * 63 octets, RFC 1035 §2.3.4, or bytes c-ares would read as escapes or
 * that no DNS name should carry). */
static bool
name_key(const char *name, char *key)
{
	size_t	len = strlen(name), i, label = 0;

	if (len > 0 && name[len - 1] == '.')
		len--;
	if (len == 0 || len > DNS_NAME_MAX)
		return false;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];

		if (c <= ' ' || c == 0x7f || c == '\\')
			return false;
		if (c == '.') {
			if (label == 0)
				return false;
			label = 0;
		} else if (++label > 63)
			return false;
		key[i] = lower(c);
	}
	key[len] = '\0';
	return true;
}

/* FNV-1a over the type and the name. */
static uint32_t
key_hash(enum dns_type t, const char *key)
{
	uint32_t	h = 2166136261u ^ (uint32_t)t;

	h *= 16777619u;
	for (; *key != '\0'; key++)
		h = (h ^ (unsigned char)*key) * 16777619u;
	return h;
}

static struct dns_entry *
entry_find(enum dns_type t, const char *key, uint32_t h)
{
	struct dns_entry	*e;

	LIST_FOREACH(e, &D.buckets[h & (D.nbuckets - 1)], hlink)
		if (e->hash == h && e->type == t && strcmp(e->name, key) == 0)
			return e;
	return NULL;
}

static void
entry_free(struct dns_entry *e)
{
	dns_answer_free(&e->ans);
	free(e);
}

static void
entry_unref(struct dns_entry *e)
{
	if (--e->refs == 0 && !e->linked && !e->pending)
		entry_free(e);
}

/* Takes e out of the table (and the cache); freed once nobody reads it. */
static void
entry_unlink(struct dns_entry *e)
{
	if (!e->linked)
		return;
	LIST_REMOVE(e, hlink);
	e->linked = false;
	if (e->cached) {
		TAILQ_REMOVE(&D.lru, e, lru);
		e->cached = false;
		D.st.cached--;
	}
	if (e->refs == 0 && !e->pending)
		entry_free(e);
}

/* An answered entry goes into the cache when it may (not TEMPFAIL, a
 * clamped TTL above 0, a cache at all), else out of the table. The least
 * recently used entries make room. */
static void
entry_store(struct dns_entry *e)
{
	long long	ttl = e->ans.ttl;

	if (ttl < D.ttl_min)
		ttl = D.ttl_min;
	if (ttl > D.ttl_max)
		ttl = D.ttl_max;
	e->ans.ttl = (uint32_t)ttl;
	e->pending = false;
	if (e->ans.status == DNS_TEMPFAIL || ttl == 0 || D.cache_size == 0) {
		entry_unlink(e);
		return;
	}
	e->expires = now_ms() + ttl * 1000;
	e->cached = true;
	TAILQ_INSERT_HEAD(&D.lru, e, lru);
	D.st.cached++;
	while ((long long)D.st.cached > D.cache_size)
		entry_unlink(TAILQ_LAST(&D.lru, dns_lru));
}

static void
deliver(struct dns_req *r)
{
	struct dns_entry	*e = r->e;
	struct dns_answer	 a = e->ans;
	int64_t			 left;

	a.name = e->name;
	a.cached = r->cached;
	a.ms = r->cached ? 0 : ms_since(&r->start);
	if (r->cached) {
		left = e->expires - now_ms();	/* seconds, rounded up */
		a.ttl = left > 0 ? (uint32_t)((left + 999) / 1000) : 0;
	}
	r->cb(&a, r->arg);
	free(r);
	entry_unref(e);
}

static void
rearm(void)
{
	struct timeval	 tv, *tvp;

	if ((tvp = ares_timeout(D.ch, NULL, &tv)) != NULL)
		evtimer_add(D.timer, tvp);
	else
		evtimer_del(D.timer);
}

/* c-ares answered (or gave up): parse, store, hand the answer to every
 * waiter. A waiter's callback may query (a cache hit for this name is
 * deferred, as e is stored first) or cancel other waiters. */
static void
on_ares(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct dns_entry	*e = arg;
	struct dns_req		*r;

	(void)timeouts;
	if (status == ARES_EDESTRUCTION)
		return;		/* dns_fini() frees e */
	e->refs++;		/* until the last waiter is served */
	e->ans.status = DNS_TEMPFAIL;
	if ((status == ARES_SUCCESS || status == ARES_ENOTFOUND ||
	    status == ARES_ENODATA) && alen > 0 &&
	    dns_parse(e->type, abuf, (size_t)alen, &e->ans) == -1)
		e->ans.status = DNS_TEMPFAIL;
	if (status == ARES_ETIMEOUT)
		D.st.timeouts++;
	if (e->ans.status == DNS_TEMPFAIL)
		D.st.tempfails++;
	entry_store(e);
	while (!e->starting && (r = TAILQ_FIRST(&e->waiters)) != NULL) {
		TAILQ_REMOVE(&e->waiters, r, link);
		deliver(r);
	}
	entry_unref(e);		/* starting: dns_query() defers its waiter */
}

static void
defer(struct dns_req *r)
{
	static const struct timeval	zero;

	r->deferred = true;
	r->turn = D.turn;
	TAILQ_INSERT_TAIL(&D.deferred, r, link);
	if (!evtimer_pending(D.defer_ev, NULL))
		evtimer_add(D.defer_ev, &zero);
}

/* Hands over what was deferred before this turn; what the callbacks defer
 * waits for the next one. */
static void
on_defer(evutil_socket_t fd, short what, void *arg)
{
	struct dns_req	*r;
	uint64_t	 turn = D.turn++;

	(void)fd, (void)what, (void)arg;
	while ((r = TAILQ_FIRST(&D.deferred)) != NULL && r->turn <= turn) {
		TAILQ_REMOVE(&D.deferred, r, link);
		deliver(r);
	}
	if (!TAILQ_EMPTY(&D.deferred) && !evtimer_pending(D.defer_ev, NULL)) {
		static const struct timeval zero;

		evtimer_add(D.defer_ev, &zero);
	}
}

static struct dns_entry *
entry_new(enum dns_type t, const char *key, uint32_t h)
{
	size_t			 len = strlen(key);
	struct dns_entry	*e;

	if ((e = calloc(1, sizeof(*e) + len + 1)) == NULL)
		return NULL;
	memcpy(e->name, key, len + 1);
	e->type = t;
	e->hash = h;
	e->pending = e->linked = true;
	TAILQ_INIT(&e->waiters);
	LIST_INSERT_HEAD(&D.buckets[h & (D.nbuckets - 1)], e, hlink);
	return e;
}

static const int qtypes[DNS_TYPE_COUNT] = {
	[DNS_A] = ns_t_a, [DNS_AAAA] = ns_t_aaaa, [DNS_PTR] = ns_t_ptr,
	[DNS_TXT] = ns_t_txt, [DNS_MX] = ns_t_mx,
};

struct dns_req *
dns_query(enum dns_type t, const char *name, dns_cb cb, void *arg)
{
	char			 key[DNS_NAME_MAX + 1];
	struct dns_entry	*e;
	struct dns_req		*r;
	uint32_t		 h;

	if (!D.up || (unsigned)t >= DNS_TYPE_COUNT || cb == NULL ||
	    name == NULL || !name_key(name, key))
		return NULL;
	h = key_hash(t, key);
	if ((e = entry_find(t, key, h)) != NULL && !e->pending &&
	    e->expires <= now_ms()) {
		entry_unlink(e);
		e = NULL;
	}
	if ((r = calloc(1, sizeof(*r))) == NULL)
		return NULL;
	if (e == NULL && (e = entry_new(t, key, h)) == NULL) {
		free(r);
		return NULL;
	}
	r->e = e;
	r->cb = cb;
	r->arg = arg;
	clock_gettime(CLOCK_MONOTONIC, &r->start);
	e->refs++;
	D.st.queries++;
	if (!e->pending) {			/* a cache hit */
		TAILQ_REMOVE(&D.lru, e, lru);
		TAILQ_INSERT_HEAD(&D.lru, e, lru);
		D.st.cache_hits++;
		r->cached = true;
		defer(r);
		return r;
	}
	TAILQ_INSERT_TAIL(&e->waiters, r, link);
	if (e->refs > 1) {			/* already asked */
		D.st.shared++;
		return r;
	}
	D.st.upstream++;
	e->starting = true;
	ares_query(D.ch, e->name, ns_c_in, qtypes[t], on_ares, e);
	e->starting = false;
	if (!e->pending) {	/* c-ares failed at once: next turn too */
		TAILQ_REMOVE(&e->waiters, r, link);
		defer(r);
	}
	rearm();
	return r;
}

void
dns_cancel(struct dns_req *r)
{
	if (r == NULL)
		return;
	if (r->deferred)
		TAILQ_REMOVE(&D.deferred, r, link);
	else
		TAILQ_REMOVE(&r->e->waiters, r, link);
	entry_unref(r->e);
	free(r);
}

static void
on_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what, (void)arg;
	ares_process_fd(D.ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	rearm();
}

static void
on_sock(evutil_socket_t fd, short what, void *arg)
{
	(void)arg;
	ares_process_fd(D.ch, (what & EV_READ) ? fd : ARES_SOCKET_BAD,
	    (what & EV_WRITE) ? fd : ARES_SOCKET_BAD);
	rearm();
}

/* c-ares opened, changed or closed a socket: one persistent event per
 * socket watches what c-ares wants. */
static void
on_sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
	struct sockev	*s = NULL, *ns;
	size_t		 i;
	short		 what = (readable ? EV_READ : 0) |
			    (writable ? EV_WRITE : 0);

	(void)data;
	for (i = 0; i < D.nsocks && s == NULL; i++)
		if (D.socks[i].fd == fd)
			s = &D.socks[i];
	if (s != NULL) {
		event_free(s->ev);
		s->ev = NULL;
		if (what == 0) {
			*s = D.socks[--D.nsocks];
			return;
		}
	} else if (what == 0)
		return;
	else {
		if (D.nsocks == D.socksz) {
			if ((ns = reallocarray(D.socks, D.socksz + 8,
			    sizeof(*ns))) == NULL)
				return;	/* its query will time out */
			D.socks = ns;
			D.socksz += 8;
		}
		s = &D.socks[D.nsocks++];
		s->fd = fd;
	}
	if ((s->ev = event_new(D.base, fd, what | EV_PERSIST, on_sock,
	    NULL)) == NULL || event_add(s->ev, NULL) == -1) {
		if (s->ev != NULL)
			event_free(s->ev);
		*s = D.socks[--D.nsocks];
	}
}

static int
bounds_check(const struct dns_conf *c, char *err, size_t errlen)
{
	const char	*why = NULL;

	if (c->timeout_ms < 1 || c->timeout_ms > 60000)
		why = "timeout_ms must be 1 to 60000";
	else if (c->tries < 1 || c->tries > 10)
		why = "tries must be 1 to 10";
	else if (c->ttl_min < 0 || c->ttl_max > 604800 ||
	    c->ttl_min > c->ttl_max)
		why = "need 0 <= ttl_min <= ttl_max <= 604800";
	else if (c->cache_size < 0 || c->cache_size > 10000000)
		why = "cache_size must be 0 to 10000000";
	if (why != NULL)
		snprintf(err, errlen, "dns: %s", why);
	return why != NULL ? -1 : 0;
}

static int
channel_init(const struct dns_conf *c, char *err, size_t errlen)
{
	struct ares_options	o;
	int			rc;

	memset(&o, 0, sizeof(o));
	o.flags = ARES_FLAG_NOSEARCH;
	o.timeout = (int)c->timeout_ms;
	o.tries = (int)c->tries;
	o.lookups = (char *)"b";	/* never /etc/hosts */
	o.sock_state_cb = on_sock_state;
	rc = ares_init_options(&D.ch, &o, ARES_OPT_FLAGS | ARES_OPT_TIMEOUTMS |
	    ARES_OPT_TRIES | ARES_OPT_LOOKUPS | ARES_OPT_SOCK_STATE_CB);
	if (rc != ARES_SUCCESS) {
		D.ch = NULL;
		snprintf(err, errlen, "dns: c-ares: %s", ares_strerror(rc));
		return -1;
	}
	if (c->resolver != NULL && c->resolver[0] != '\0' &&
	    (rc = ares_set_servers_ports_csv(D.ch, c->resolver)) !=
	    ARES_SUCCESS) {
		snprintf(err, errlen, "dns: resolver \"%s\": %s", c->resolver,
		    ares_strerror(rc));
		return -1;
	}
	return 0;
}

static int
library_init(char *err, size_t errlen)
{
	static bool	lib;

	if (!lib && ares_library_init(ARES_LIB_INIT_ALL) != ARES_SUCCESS) {
		snprintf(err, errlen, "dns: c-ares library init failed");
		return -1;
	}
	lib = true;
	return 0;
}

int
dns_conf_check(const struct dns_conf *c, char *err, size_t errlen)
{
	ares_channel	ch;
	int		rc;

	if (bounds_check(c, err, errlen) == -1 || library_init(err,
	    errlen) == -1)
		return -1;
	if (c->resolver == NULL || c->resolver[0] == '\0')
		return 0;
	if ((rc = ares_init(&ch)) != ARES_SUCCESS) {
		snprintf(err, errlen, "dns: c-ares: %s", ares_strerror(rc));
		return -1;
	}
	if ((rc = ares_set_servers_ports_csv(ch, c->resolver)) != ARES_SUCCESS)
		snprintf(err, errlen, "dns: resolver \"%s\": %s", c->resolver,
		    ares_strerror(rc));
	ares_destroy(ch);
	return rc == ARES_SUCCESS ? 0 : -1;
}

int
dns_init(struct event_base *base, const struct dns_conf *c, char *err,
    size_t errlen)
{
	size_t		i;

	if (D.up)
		dns_fini();
	if (bounds_check(c, err, errlen) == -1 || library_init(err,
	    errlen) == -1)
		return -1;
	memset(&D, 0, sizeof(D));
	D.base = base;
	D.ttl_min = c->ttl_min;
	D.ttl_max = c->ttl_max;
	D.cache_size = c->cache_size;
	TAILQ_INIT(&D.lru);
	TAILQ_INIT(&D.deferred);
	for (D.nbuckets = BUCKETS_MIN; D.nbuckets < BUCKETS_MAX &&
	    D.nbuckets < (size_t)c->cache_size; D.nbuckets <<= 1)
		;
	D.buckets = calloc(D.nbuckets, sizeof(*D.buckets));
	D.timer = evtimer_new(base, on_timer, NULL);
	D.defer_ev = evtimer_new(base, on_defer, NULL);
	if (D.buckets == NULL || D.timer == NULL || D.defer_ev == NULL)
		snprintf(err, errlen, "dns: out of memory");
	else if (channel_init(c, err, errlen) == 0) {
		for (i = 0; i < D.nbuckets; i++)
			LIST_INIT(&D.buckets[i]);
		D.up = true;
		return 0;
	}
	D.up = true;
	dns_fini();
	return -1;
}

void
dns_fini(void)
{
	struct dns_entry	*e;
	struct dns_req		*r;
	size_t			 i;

	if (!D.up)
		return;
	if (D.ch != NULL)
		ares_destroy(D.ch);	/* on_ares sees EDESTRUCTION */
	while ((r = TAILQ_FIRST(&D.deferred)) != NULL)
		dns_cancel(r);
	for (i = 0; D.buckets != NULL && i < D.nbuckets; i++)
		while ((e = LIST_FIRST(&D.buckets[i])) != NULL) {
			while ((r = TAILQ_FIRST(&e->waiters)) != NULL) {
				TAILQ_REMOVE(&e->waiters, r, link);
				free(r);
			}
			e->refs = 0;
			e->pending = false;
			LIST_REMOVE(e, hlink);
			entry_free(e);
		}
	for (i = 0; i < D.nsocks; i++)
		event_free(D.socks[i].ev);
	free(D.socks);
	free(D.buckets);
	if (D.timer != NULL)
		event_free(D.timer);
	if (D.defer_ev != NULL)
		event_free(D.defer_ev);
	memset(&D, 0, sizeof(D));
}

void
dns_stats(struct dns_stats *st)
{
	*st = D.st;
}
