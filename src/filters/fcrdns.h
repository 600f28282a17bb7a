/*
 * fcrdns.h: the rDNS filter's pure parts, for its unit test.
 */
#ifndef MOAT_FCRDNS_H
#define MOAT_FCRDNS_H

#include <stdbool.h>

/* True when name looks generic: the IPv4 address's four octets appear
 * in it as consecutive numbers (either order; ip NULL: not checked), or
 * one of its labels starts with one of words (space-separated). */
bool	fcrdns_generic(const char *name, const unsigned char ip[4],
	    const char *words);
/* True when name is, or is under, one of the space-separated domains
 * of list (a leading dot is allowed). */
bool	fcrdns_under(const char *name, const char *list);

#endif
