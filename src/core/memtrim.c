/*
 * memtrim.c: giving freed heap back.
 *
 * glibc returns memory to the system only from the top of the heap
 * (M_TRIM_THRESHOLD); after thousands of sessions close, their pages sit
 * free below live ones and the worker's RSS stays at its peak for good.
 * malloc_trim(0) releases every whole free page. It walks the free
 * lists, so it runs from a timer (every MEMTRIM_PERIOD_MS while the
 * worker has sessions, and once more after the last) and only when the
 * heap's free bytes rose by MEMTRIM_MIN_FREED since their low point:
 * after a burst of closes, not for each one, and not again for pages
 * already given back. Lowering M_TRIM_THRESHOLD instead would not reach
 * pages below a live block, and would make each burst pay brk calls on
 * the loop; M_ARENA_MAX does not matter here, as sessions allocate on
 * the loop's thread (the main arena) only. Measured in bench/README.md
 * (idle TLS sessions): one trim after 10,000 closes, about 30 ms.
 */
#include <stdint.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include <event2/event.h>

#include "memtrim.h"

#define MEMTRIM_PERIOD_MS	2000
#define MEMTRIM_MIN_FREED	(1u << 20)

static struct event	*trim_ev;
static size_t		 trim_low = SIZE_MAX;	/* free bytes, low point */
static size_t		(*trim_live)(void);

void
memtrim_poke(void)
{
	struct timeval tv = { MEMTRIM_PERIOD_MS / 1000,
	    (MEMTRIM_PERIOD_MS % 1000) * 1000 };

	if (trim_ev != NULL && !evtimer_pending(trim_ev, NULL))
		evtimer_add(trim_ev, &tv);
}

static void
memtrim_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
#ifdef __GLIBC__
	{
		struct mallinfo2 mi = mallinfo2();

		if (mi.fordblks < trim_low)
			trim_low = mi.fordblks;
		if (mi.fordblks - trim_low >= MEMTRIM_MIN_FREED) {
			malloc_trim(0);
			trim_low = mi.fordblks;
		}
	}
#endif
	/* No session: nothing more will be freed until one starts. */
	if (trim_live != NULL && trim_live() > 0)
		memtrim_poke();
}

void
memtrim_start(struct event_base *base, size_t (*live)(void))
{
	trim_live = live;
	if (trim_ev == NULL)
		trim_ev = evtimer_new(base, memtrim_tick, NULL);
}

void
memtrim_stop(void)
{
	if (trim_ev != NULL)
		event_free(trim_ev);
	trim_ev = NULL;
}
