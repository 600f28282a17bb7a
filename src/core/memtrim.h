/*
 * memtrim.h: gives a worker's freed heap back to the system after a
 * burst of closing sessions (plain or TLS).
 */
#ifndef MOAT_MEMTRIM_H
#define MOAT_MEMTRIM_H

#include <stddef.h>

struct event_base;

/* Starts the trim timer on the worker's loop; live() says how many
 * sessions the worker holds (the timer runs while there are some, and
 * once more after the last one). */
void	memtrim_start(struct event_base *, size_t (*live)(void));
/* Arms the timer if it is idle (a session started). */
void	memtrim_poke(void);
/* Frees the timer; before the event base is freed. */
void	memtrim_stop(void);

#endif
