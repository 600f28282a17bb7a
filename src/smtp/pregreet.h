/*
 * pregreet.h: clients that passed the pre-greeting test, remembered per
 * worker so they are not made to wait again (postscreen's cache, without
 * the reconnect postscreen forces).
 */
#ifndef MOAT_PREGREET_H
#define MOAT_PREGREET_H

#include <stdbool.h>
#include <time.h>

#define PREGREET_CACHE	65536	/* addresses remembered per worker */

/* True when ip passed within its time (and has not expired at now). */
bool	pregreet_remembered(const char *ip, time_t now);
/* Remembers that ip passed, until now + ttl. The oldest entry of a full
 * bucket makes room. */
void	pregreet_remember(const char *ip, time_t now, long long ttl);
/* Forgets every address (tests). */
void	pregreet_forget_all(void);

#endif
