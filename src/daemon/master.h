/*
 * master.h: the supervising process (ARCHITECTURE §1).
 */
#ifndef MOAT_MASTER_H
#define MOAT_MASTER_H

#include "conf.h"

/* Binds, forks workers and supervises them; returns the exit code. */
int	master_run(struct moat_config *);

#endif
