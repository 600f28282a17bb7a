/*
 * addr.h: the name a client address is counted under by the checks that
 * remember clients (karma, failed AUTHs, the pre-greeting memory): an
 * IPv4 address as it is (an IPv4-mapped IPv6 address as its IPv4 form),
 * an IPv6 address as its /64, "2001:db8:1:2::/64" (a host has a whole
 * /64 to pick addresses from). A name it made is given back unchanged.
 */
#ifndef MOAT_ADDR_H
#define MOAT_ADDR_H

#include <stddef.h>

/* Room for a name: an IPv6 address, "/64" and the NUL. */
#define ADDR_CLIENT_MAX	52

/* 0, or -1 when ip is not an address or out (n bytes) is too small. */
int	addr_client(const char *ip, char *out, size_t n);

#endif
