/*
 * pregreet.c: the memory of clients that passed the pre-greeting test,
 * shared by the workers: one GCRA cell per address (core/window.c) in a
 * table made at config load, before the fork, so a client that waited
 * once is greeted at once by whichever worker the kernel hands it next.
 * A pass is one event of a limit of one per ttl: the cell's TAT is the
 * end of the pass, and a peek that finds it in the future finds the
 * pass. Bounded (PREGREET_CACHE cells, no allocation per client); an
 * attacker cycling addresses can only fill it, which costs clients one
 * more wait, never a refusal. A restart forgets (hot state).
 */
#include <string.h>

#include "../core/window.h"
#include "pregreet.h"

static struct window_table *pg_table;

int
pregreet_table(void)
{
	if (pg_table == NULL)
		pg_table = window_table_shared("pregreet", PREGREET_CACHE);
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

bool
pregreet_remembered(const char *ip, long long ttl)
{
	struct window_limit l = pass_limit(ttl);

	if (ttl <= 0 || (pg_table == NULL && pregreet_table() == -1))
		return false;
	return window_peek(pg_table, &l, ip, strlen(ip), window_now_ms()) > 0;
}

void
pregreet_remember(const char *ip, long long ttl)
{
	struct window_limit l = pass_limit(ttl);

	if (ttl <= 0 || (pg_table == NULL && pregreet_table() == -1))
		return;
	(void)window_take(pg_table, &l, ip, strlen(ip), 1, window_now_ms());
}
