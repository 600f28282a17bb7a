/*
 * worker.h: a worker process: one libevent loop accepting from the shared
 * listening sockets; every connection a session (ARCHITECTURE §1).
 */
#ifndef MOAT_WORKER_H
#define MOAT_WORKER_H

#include "conf.h"

/* Runs until drained; returns the process exit code. */
int	worker_run(struct moat_config *, const int *fds, int nfds, int slot);
/* One session on fd 0/1 (tcpserver/inetd); returns the exit code. */
int	worker_stdio(struct moat_config *);

#endif
