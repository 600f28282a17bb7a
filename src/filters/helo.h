/*
 * helo.h: the HELO filter's pure parts, for its unit test.
 */
#ifndef MOAT_HELO_H
#define MOAT_HELO_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "../core/limits.h"

/* The checks, one bit each (HELO_BIT(HELO_x)). */
enum helo_check {
	/* Specific before generic: a tie names the first in replies. */
	HELO_OURS,		/* our hostname or address, from elsewhere */
	HELO_LOCALHOST,		/* localhost, localhost.localdomain */
	HELO_LITERAL,		/* [address] that is not the client's */
	HELO_BARE_IP,		/* an IPv4 address not in brackets */
	HELO_NOT_FQDN,		/* a name without a dot */
	HELO_NO_RESOLVE,	/* no A or AAAA (NXDOMAIN/NODATA) */
	HELO_CHECKS
};
#define HELO_BIT(c)	(1u << (c))

/* What a HELO argument is. */
struct helo_facts {
	char		 name[LIMIT_HELO + 1];	/* lowercased, no final dot */
	bool		 literal;	/* [a.b.c.d] or [IPv6:...] */
	bool		 bare_ip;	/* a.b.c.d without brackets */
	int		 family;	/* of the address; 0: none or bad */
	unsigned char	 addr[16];
};

/* Reads a HELO argument (as the session keeps it). */
void		helo_parse(const char *helo, struct helo_facts *);
/* The checks that need no DNS, as HELO_BIT()s: peer is the client,
 * local the address it connected to, hostname ours. */
unsigned	helo_static(const struct helo_facts *,
		    const struct sockaddr_storage *peer,
		    const struct sockaddr_storage *local,
		    const char *hostname);
/* True when the name is worth a DNS lookup (a dotted name, not an
 * address and not localhost). */
bool		helo_resolvable(const struct helo_facts *);

#endif
