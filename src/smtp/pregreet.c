/*
 * pregreet.c: the memory of clients that passed the pre-greeting test,
 * shared by the workers: one GCRA cell per address (core/window.c) in a
 * table made at config load, before the fork, so a client that waited
 * once is greeted at once by whichever worker the kernel hands it next.
 * A pass is one event of a limit of one per ttl: the cell's TAT is the
 * end of the pass, and a peek that finds it in the future finds the
 * pass. Bounded (PREGREET_CACHE cells, no allocation per client); when
 * the cells a new pass may take are all held, the pass nearest to its
 * end makes room, so an attacker cycling addresses costs clients one
 * more wait, never the memory itself. An IPv6 client is remembered by
 * its /64. A restart forgets (hot state).
 */
#include <stdio.h>
#include <string.h>

#include "../core/addr.h"
#include "../core/window.h"
#include "pregreet.h"

static struct window_table *pg_table;

int
pregreet_table(void)
{
	if (pg_table == NULL && (pg_table = window_table_shared("pregreet",
	    PREGREET_CACHE)) != NULL)
		window_table_evict(pg_table);	/* full: the oldest pass goes */
	return pg_table != NULL ? 0 : -1;
}

static struct window_limit
pass_limit(long long ttl)
{
	struct window_limit l;

	l.count = 1;
	l.period_ms = ttl * 1000 < WINDOW_MAX_PERIOD_MS ?
	    (uint64_t)ttl * 1000 : WINDOW_MAX_PERIOD_MS;
	return l;
}

/* The key: addr.h's name (an IPv6 client by its /64). */
static size_t
pass_key(const char *ip, char *out, size_t n)
{
	if (addr_client(ip, out, n) == -1)
		snprintf(out, n, "%s", ip);
	return strlen(out);
}

bool
pregreet_remembered(const char *ip, long long ttl)
{
	struct window_limit	l = pass_limit(ttl);
	char			k[ADDR_CLIENT_MAX];
	size_t			n;

	if (ttl <= 0 || (pg_table == NULL && pregreet_table() == -1))
		return false;
	n = pass_key(ip, k, sizeof(k));
	return window_peek(pg_table, &l, k, n, window_now_ms()) > 0;
}

void
pregreet_remember(const char *ip, long long ttl)
{
	struct window_limit	l = pass_limit(ttl);
	char			k[ADDR_CLIENT_MAX];
	size_t			n;

	if (ttl <= 0 || (pg_table == NULL && pregreet_table() == -1))
		return;
	n = pass_key(ip, k, sizeof(k));
	(void)window_take(pg_table, &l, k, n, 1, window_now_ms());
}
