/*
 * svc.h: the client for external services (clamd, spamd; later a policy
 * or milter peer): one request at a time per connection, over TCP or a
 * UNIX socket, on the worker's event loop (libevent bufferevents).
 *
 * A request is a head (copied), a body pulled from its owner as the
 * socket drains (never copied whole: a chunk at a time, optionally framed
 * with a 4-byte big-endian length and a zero-length end, clamd's
 * INSTREAM), and a reply read while the body is still being written (a
 * service may answer, and close, before it has it all). The reply ends at
 * a NUL (clamd) or when the peer closes (spamd), and is capped at
 * max_reply bytes.
 *
 * Every request has an owner (its done callback), connect, idle and total
 * timeouts, and a cancel: after svc_cancel() the callback never runs. The
 * callback runs once otherwise, never from inside svc_start().
 *
 * Per worker, each service (keyed by its address) has a pool: at most
 * max_conns connections at once, requests past that wait in a queue
 * (bounded by their own total timeout). Neither clamd's INSTREAM nor
 * spamd keeps a connection after its reply, so connections are not
 * reused.
 *
 * Health, per service and worker: UP; DEGRADED after a failure; DOWN
 * after down_after failures in a row. While DOWN requests fail at once
 * (SVC_DOWN) and one request every retry_ms is let through as a probe; a
 * success brings the service back UP. Each transition is logged once
 * (warn going down, info coming back, with how long and how many requests
 * failed meanwhile), never once per message.
 */
#ifndef MOAT_SVC_H
#define MOAT_SVC_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

struct event_base;
struct svc;
struct svc_req;

/* Services per worker (distinct addresses). */
#define SVC_MAX		16
/* An address as written: "/path", "unix:/path", "1.2.3.4:783",
 * "[::1]:783" (numeric only: nothing is resolved on the loop). */
#define SVC_ADDR_MAX	108
/* Bytes of body kept in the socket's output buffer at most; the rest is
 * pulled from the owner as it drains. */
#define SVC_CHUNK	65536

enum svc_health { SVC_UP, SVC_DEGRADED, SVC_DOWN };

/* How a request ended. */
enum svc_status {
	SVC_OK,		/* a whole reply (or, EOF framing, what came) */
	SVC_EDOWN,	/* not tried: the service is down */
	SVC_ECONNECT,	/* connect failed or timed out */
	SVC_ETIMEOUT,	/* idle or total timeout */
	SVC_EIO,	/* read/write error, or closed before a reply */
	SVC_ETOOBIG,	/* the reply passed max_reply */
	SVC_EABORT,	/* the body's owner gave up (pull returned -1) */
	SVC_EREPLY,	/* a reply the owner found to be a failure (health) */
};

/* A service's settings: embedded in a filter's conf (option table). */
struct svc_opts {
	char		*address;
	long long	 connect_ms;	/* connect timeout */
	long long	 idle_ms;	/* no progress either way */
	long long	 total_ms;	/* the whole request, queue included */
	long long	 max_reply;
	long long	 max_conns;	/* pool: connections at once */
	long long	 down_after;	/* failures in a row before DOWN */
	long long	 retry_ms;	/* probe interval while DOWN */
};

enum svc_frame {
	SVC_FRAME_RAW,		/* body bytes as they are */
	SVC_FRAME_LEN32,	/* uint32 BE length + bytes; 0 ends */
};

enum svc_end {
	SVC_END_NUL,		/* the reply ends at a NUL (not counted) */
	SVC_END_EOF,		/* the reply ends when the peer closes */
};

/*
 * The body, pulled in pieces: sets *p and *n (n <= max) to the next
 * bytes and returns 1; returns 0 at the end, -1 to abort (the body's
 * storage is gone: the request ends with SVC_EABORT). The bytes are
 * copied before pull is called again.
 */
typedef int (*svc_pull)(void *arg, size_t max, const char **p, size_t *n);

/*
 * The end of a request: status, and for SVC_OK the reply (NUL-terminated
 * for convenience, len bytes without it; may hold NULs for EOF framing).
 * Returns 0, or -1 when the reply shows the service failing (an error
 * reply, garbage): it counts against its health like a timeout.
 */
typedef int (*svc_done)(void *arg, enum svc_status, const char *reply,
    size_t len);

struct svc_call {
	const char	*head;		/* sent first, copied */
	size_t		 headlen;
	svc_pull	 pull;		/* NULL: no body */
	enum svc_frame	 frame;
	bool		 shut_wr;	/* half-close once all is written */
	enum svc_end	 end;
	svc_done	 done;
	void		*arg;
	long long	 total_ms;	/* 0: the service's total_ms */
	unsigned long long sid;		/* session, for logs */
};

/* Parses an address; 0, or -1 when it is not one (pure). */
int	svc_addr_parse(const char *, struct sockaddr_storage *, socklen_t *);
/* The worker's service for opts->address (made on first use, on base);
 * NULL when the address is bad or the table is full. opts must outlive
 * the worker (policy storage); the first caller's limits apply. */
struct svc *svc_get(struct event_base *, const char *name,
	    const struct svc_opts *);
/* Starts a request. NULL when it is not tried: *why says SVC_EDOWN
 * (nothing logged per request) or SVC_EIO (out of memory). */
struct svc_req *svc_start(struct svc *, const struct svc_call *,
	    enum svc_status *why);
/* Drops a request: its connection is closed, its callback never runs. */
void	svc_cancel(struct svc_req *);
/* A service's state and what it saw (for moatctl and logs). */
enum svc_health svc_state(const struct svc *);
const char *svc_health_name(enum svc_health);
const char *svc_status_name(enum svc_status);
/* The worker's services: name, address, state; for moatctl. Returns how
 * many there are; fills at most max. */
struct svc_info {
	const char	*name;
	const char	*address;
	enum svc_health	 state;
	unsigned long long requests, failures, skipped;
	long long	 active, queued;
};
size_t	svc_list(struct svc_info *, size_t max);
/* Publishes the worker's services' health under <var_dir>/svc for
 * `moatctl services` (a file per worker, rewritten on changes). */
void	svc_publish_dir(const char *var_dir);
/* Closes every service of the worker (requests in flight are cancelled
 * without callbacks); before the event base is freed. */
void	svc_fini_all(void);

#endif
