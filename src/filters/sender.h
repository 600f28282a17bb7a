/*
 * sender.h: the sender-domain filter's pure parts, for its unit test.
 */
#ifndef MOAT_SENDER_H
#define MOAT_SENDER_H

#include <stdbool.h>
#include <stddef.h>

#include "../core/dns.h"

/* What the MAIL FROM domain's DNS says about mail to it. */
enum sender_result {
	SENDER_PENDING,		/* not known yet (or: ask for A/AAAA) */
	SENDER_OK,		/* an MX, or no MX and an A/AAAA */
	SENDER_NULLMX,		/* RFC 7505 null MX: accepts no mail */
	SENDER_UNKNOWN,		/* NXDOMAIN, or no MX and no A/AAAA */
	SENDER_TEMPFAIL,	/* a lookup failed: we do not know */
};

/* From the MX answer alone: OK (an exchange), NULLMX (only "0 ."
 * records), UNKNOWN (NXDOMAIN), TEMPFAIL, or PENDING when there is no
 * MX (NODATA): then the A and AAAA answers decide (RFC 5321 §5.1). */
enum sender_result	sender_from_mx(const struct dns_answer *);
/* With no MX: OK when either address lookup found one, else TEMPFAIL
 * when either failed, else UNKNOWN. */
enum sender_result	sender_from_addr(enum dns_status a,
			    enum dns_status aaaa);
/* True when name can exist in DNS: 1..253 octets, labels of 1..63
 * (RFC 1035 §2.3.4). */
bool			sender_askable(const char *name);
/* The domain of a MAIL FROM path that is worth asking DNS about,
 * lowercased without a trailing dot into out; -1 for an address
 * literal, a name that is not ASCII, or one that does not fit. */
int			sender_domain(const char *domain, char *out,
			    size_t outlen);

#endif
