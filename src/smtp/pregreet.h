/*
 * pregreet.h: clients that passed the pre-greeting test, remembered by
 * every worker so they are not made to wait again (postscreen's cache,
 * without the reconnect postscreen forces).
 */
#ifndef MOAT_PREGREET_H
#define MOAT_PREGREET_H

#include <stdbool.h>

#define PREGREET_CACHE	65536	/* addresses remembered, all workers */

/* Makes the table the workers share: at config load, in the master,
 * before the fork. -1 when it cannot be mapped. */
int	pregreet_table(void);
/* True when ip passed within the last ttl seconds. */
bool	pregreet_remembered(const char *ip, long long ttl);
/* Remembers that ip passed, for ttl seconds. A full table remembers
 * nothing more: the client waits once more, never a refusal. */
void	pregreet_remember(const char *ip, long long ttl);

#endif
