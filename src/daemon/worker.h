/*
 * worker.h: a worker process: one libevent loop accepting from the shared
 * listening sockets; every connection a session (ARCHITECTURE §1).
 */
#ifndef MOAT_WORKER_H
#define MOAT_WORKER_H

#include <signal.h>
#include <stdint.h>

#include "conf.h"

/* What the master hands a worker it forks. */
struct worker_spec {
	const int	*fds;		/* the slot's listening sockets */
	const unsigned char *kinds;	/* each one's listener_kind */
	int		 nfds;
	int		 slot;		/* which socket set, for the log */
	int		 region;	/* its connection-count region */
	int		 master_fd;	/* reads EOF once the master is gone */
	uint64_t	*heartbeat;	/* shared: worker_clock_ms() of the
					 * loop's last beat; the master reads */
	long		 heartbeat_ms;	/* beat period; 0: none */
	sigset_t	 sigmask;	/* set once our handlers are (signals
					 * arrive blocked from the fork) */
};

/* The clock heartbeats are written and read in: CLOCK_MONOTONIC in
 * milliseconds, the same in every process. */
uint64_t	worker_clock_ms(void);
/* Runs until drained (SIGTERM, or the master gone); returns the process
 * exit code. */
int	worker_run(struct moat_config *, const struct worker_spec *);
/* One session on fd 0/1 (tcpserver/inetd); returns the exit code. */
int	worker_stdio(struct moat_config *);

#endif
