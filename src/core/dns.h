/*
 * dns.h: asynchronous DNS for a worker's event loop (c-ares on libevent).
 *
 * One resolver per process, driven by the process's event_base: c-ares'
 * socket-state callback adds and removes libevent events for its sockets,
 * and one timer follows ares_timeout(). Queries for the same (type, name)
 * in flight at the same time share one c-ares query (every waiter gets
 * the answer); answers are cached per process with their TTL clamped to
 * [ttl_min, ttl_max] (negative answers too; temporary failures never).
 *
 * A timeout, SERVFAIL, REFUSED or an unusable answer is DNS_TEMPFAIL:
 * "no data", never a listing or a refusal by itself. Callbacks run on the
 * loop thread, never from inside dns_query() (a cached answer is handed
 * over on the next loop turn), and never after dns_cancel().
 *
 * Changes to the first draft of this API (docs/DNS.md has the why):
 * - dns_parse() and dns_answer_free(): the reply parsing as a pure
 *   function (raw reply in, answer out), so that the fuzzer and a test's
 *   fake resolver go through the very code the resolver uses.
 * - struct dns_stats counts upstream (queries sent to the resolver) and
 *   cached (entries now in the cache) besides the first draft's fields.
 * - DNS_NAME_MAX and DNS_RR_MAX name the limits on names and records.
 * - answer.ttl of a cached answer is what is left of it, not the
 *   original TTL.
 * - dns_fini() must not be called from a dns callback.
 * - dns_conf_check(): the config loader's check of a [dns] section.
 */
#ifndef MOAT_DNS_H
#define MOAT_DNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;

/* RFC 1035 §2.3.4: 255 octets on the wire, 253 as text without the
 * trailing dot; a query for a longer name is refused (dns_query NULL). */
#define DNS_NAME_MAX	253
/* Records one answer keeps (A/AAAA/PTR/TXT/MX); the rest are dropped. A
 * reply is at most 64 KiB (TCP), so this bounds only the count. */
#define DNS_RR_MAX	64

enum dns_type { DNS_A, DNS_AAAA, DNS_PTR, DNS_TXT, DNS_MX, DNS_TYPE_COUNT };

enum dns_status {
	DNS_OK,		/* records follow (n > 0) */
	DNS_NXDOMAIN,	/* the name does not exist */
	DNS_NODATA,	/* the name exists, no record of this type */
	DNS_TEMPFAIL,	/* timeout, SERVFAIL, REFUSED, malformed: no data */
};

/* One record. A/AAAA: family and addr; PTR: str (the name); TXT: str
 * (the record's strings joined, len bytes, may hold NULs); MX: pref and
 * str (the exchange; "" with pref 0 is a null MX, RFC 7505). Names are
 * lowercased and have no trailing dot. */
struct dns_rr {
	int		 family;	/* AF_INET, AF_INET6; 0 otherwise */
	unsigned char	 addr[16];
	unsigned	 pref;
	char		*str;
	size_t		 len;
};

struct dns_answer {
	enum dns_status	 status;
	enum dns_type	 type;
	const char	*name;		/* as queried: lowercased, no dot */
	uint32_t	 ttl;		/* clamped; cached: what is left */
	bool		 cached;	/* served from the cache */
	double		 ms;		/* time it took (0 when cached) */
	size_t		 n;
	struct dns_rr	*rr;
};

struct dns_conf {
	char		*resolver;	/* "host[:port][,host[:port]...]";
					 * "" reads /etc/resolv.conf */
	long long	 timeout_ms;	/* per try */
	long long	 tries;
	long long	 ttl_min, ttl_max;	/* seconds */
	long long	 cache_size;	/* entries */
};

/* Answers reach the caller through this; a is valid only during it. */
typedef void (*dns_cb)(const struct dns_answer *a, void *arg);

struct dns_req;

/* Checks conf as dns_init() would (bounds, ttl_min <= ttl_max, the
 * resolver list's syntax) without starting anything: for the config
 * loader, so a bad [dns] section is refused at start or reload. */
int		 dns_conf_check(const struct dns_conf *, char *err,
		    size_t errlen);
/* Starts the resolver on base; -1 with err set. Again (reload) after
 * dns_fini(). Call it in the worker after fork (c-ares sockets and the
 * cache are per process), once per event_base. */
int		 dns_init(struct event_base *, const struct dns_conf *,
		    char *err, size_t errlen);
/* Cancels every query (no callback runs) and frees the cache. Never from
 * inside a dns callback. Safe when dns_init() failed or never ran. */
void		 dns_fini(void);
/* Looks name up. NULL only on OOM or a name that cannot be asked (too
 * long, empty): then cb is never called. */
struct dns_req	*dns_query(enum dns_type, const char *name, dns_cb, void *arg);
/* The callback of req will not run; req is freed. The upstream query
 * goes on and its answer fills the cache. Not for a req whose callback
 * has run (req is gone by then). */
void		 dns_cancel(struct dns_req *);
/* Builds the reverse name of an address: "4.3.2.1.in-addr.arpa" for PTR
 * (zone NULL), or "4.3.2.1.zone" for a DNSBL (IPv6: nibbles, RFC 5782).
 * -1 when it does not fit. */
int		 dns_reverse(int family, const void *addr, const char *zone,
		    char *out, size_t outlen);
/* Counters since dns_init (for logs and moatctl). */
struct dns_stats {
	uint64_t	queries;	/* dns_query() calls answered or pending */
	uint64_t	cache_hits;	/* served from the cache */
	uint64_t	shared;		/* joined a query already in flight */
	uint64_t	upstream;	/* queries sent to the resolver */
	uint64_t	timeouts;	/* upstream queries that timed out */
	uint64_t	tempfails;	/* upstream answers that were TEMPFAIL */
	uint64_t	cached;		/* entries in the cache now */
};
void		 dns_stats(struct dns_stats *);

/*
 * dns_answer_ttl: the smallest TTL of the answer section of a raw DNS
 * reply (for NXDOMAIN/NODATA: the SOA minimum of the authority section,
 * RFC 2308), or -1 when the reply is malformed. Pure: bytes in, number
 * out; fuzzed (tests/fuzz/fuzz_dns.c).
 */
long		 dns_answer_ttl(const unsigned char *buf, size_t len);

/*
 * dns_parse: the answer to a type query in the raw reply buf (as c-ares
 * hands it over): the status from the header's RCODE and answer count
 * (NXDOMAIN; NOERROR and no record of the type: NODATA; any other RCODE
 * or an unparsable reply: TEMPFAIL), the records (c-ares' parsers, names
 * lowercased, at most DNS_RR_MAX) and the TTL of dns_answer_ttl()
 * (unclamped; 0 for a negative answer without SOA). Sets a->status,
 * a->type, a->ttl, a->n, a->rr; -1 only when out of memory. Pure; the
 * records are freed with dns_answer_free().
 */
int		 dns_parse(enum dns_type, const unsigned char *buf, size_t len,
		    struct dns_answer *a);
void		 dns_answer_free(struct dns_answer *);

#endif
