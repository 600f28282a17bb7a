/*
 * rhsbl.h: the RHSBL filter's pure parts, for its unit test. Zone words
 * and answers are dnsbl.h's (the same syntax and hygiene).
 */
#ifndef MOAT_RHSBL_H
#define MOAT_RHSBL_H

#include <stddef.h>

/* Where a domain name comes from. */
enum rhsbl_source { RHSBL_HELO, RHSBL_SENDER, RHSBL_RDNS, RHSBL_SOURCES };

/*
 * The name to look up for a domain: lowercased, without a trailing dot,
 * into out. -1 for what is not a domain name worth asking: empty, an
 * address literal or a bare IPv4 address, non-ASCII, a name without a
 * dot, or one that does not fit.
 */
int	rhsbl_name(const char *domain, char *out, size_t outlen);

#endif
