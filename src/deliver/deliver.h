/*
 * deliver.h: the queue stage (ARCHITECTURE §4). moat never says 250 to a
 * message it could lose: every method reports success only once the
 * message is durable (fsync'd in a Maildir, or the backend said 250, or
 * qmail-queue exited 0).
 *
 * Methods: maildir (embedded default), smtp and lmtp forward with
 * per-domain routes in qmail smtproutes format, and qmail-queue.
 *
 * Every asynchronous delivery step (a backend RCPT or message, a Maildir
 * job on the thread pool, a qmail-queue child) is a struct backend hung
 * on txn->backend while it runs. It has an owner (the transaction), a
 * timeout (the method's), a cancel (queue_abort, which txn_reset runs on
 * RSET and on session teardown) and a token, session id + generation:
 * a completion is handed to the session only when the token still names
 * the step the transaction has now, else it is dropped.
 */
#ifndef MOAT_DELIVER_H
#define MOAT_DELIVER_H

#include <stdbool.h>
#include <sys/socket.h>

#include "../core/config.h"
#include "../smtp/session.h"

enum deliver_method { DM_MAILDIR, DM_SMTP, DM_LMTP, DM_QMAILQUEUE };

struct route {
	char			*domain;	/* "" default, ".x" subdomains */
	char			 host[LIMIT_DOMAIN + 1];
	struct sockaddr_storage	 sa;
	socklen_t		 salen;
};

struct deliver_conf {
	char		*method;
	char		*maildir;	/* root: <root>/<domain>/<user>/ */
	char		*smtproutes;	/* qmail smtproutes file */
	char		*route;		/* host:port used when none matches */
	char		*qmail_queue;	/* program */
	char		*delimiter;	/* address extension for maildir */
	long long	 timeout;
	long long	 timeout_data_end;
	long long	 pool_idle;
	long long	 pool_max;
	bool		 starttls;
	/* derived at load time */
	enum deliver_method	 m;
	struct route		*routes;
	size_t			 nroutes;
};

extern const struct opt deliver_opts[];

/* A delivery step in flight (see above); each method embeds one first. */
struct backend {
	uint64_t	 sid;
	uint64_t	 gen;		/* this worker's step counter */
	void		(*cancel)(struct backend *);
};

/* A completion's address: the step's session and generation. */
struct deliver_token {
	uint64_t	 sid;
	uint64_t	 gen;
};

/* Hangs a step on the session's transaction; it is cancelled (cancel
 * runs once, after txn->backend is cleared) if the transaction ends
 * before the step's last completion. */
void	deliver_step_attach(struct session *, struct backend *,
	    void (*cancel)(struct backend *));
/* Starts the step's next round trip: a new generation, and its token. */
struct deliver_token deliver_step_next(struct backend *);
/* Hands a verdict to the session the token names, if that session's
 * transaction still has this step at this generation; last detaches the
 * step first (the reply may end the transaction, which must not cancel
 * it). Returns false when the completion was stale and dropped. The
 * session may be gone when this returns: callers touch only the step. */
bool	deliver_step_done(struct deliver_token, struct verdict, bool last);

/* Checks and derives a policy's settings (routes resolved); -1 + err. */
int	deliver_prepare(struct deliver_conf *, char *err, size_t errlen);
void	deliver_conf_free(struct deliver_conf *);
/* Sets up per-worker state (event base, TLS client context). */
void	deliver_worker_init(struct event_base *, const char *helo);
/* Closes pooled backend connections. */
void	deliver_worker_fini(void);

/* session_ops entries. */
void	deliver_rcpt(struct session *, struct rcpt *);
void	deliver_data(struct session *);
void	deliver_abort(struct session *);

/* The methods. */
struct verdict	maildir_rcpt(struct session *, const struct deliver_conf *,
		    const struct rcpt *);
void		maildir_deliver(struct session *,
		    const struct deliver_conf *);
void		forward_rcpt(struct session *, const struct deliver_conf *,
		    struct rcpt *);
void		forward_data(struct session *, const struct deliver_conf *);
void		forward_init(struct event_base *, const char *helo);
void		forward_fini(void);
void		qmailqueue_data(struct session *,
		    const struct deliver_conf *);
void		qmailqueue_init(struct event_base *);

/* The message with LF line ends, as Maildir and qmail store it (the
 * reader guarantees CRLF-only input); -1 on OOM. */
int	deliver_lf(const struct buf *msg, struct buf *out);
/*
 * The same from a spilled message's file: len bytes of src_fd from
 * offset 0, written to fd with LF line ends, 64 KiB at a time (a pool
 * thread's work: pread, never the mapping). *written gets the LF length
 * (may be NULL). -1 with errno on a read or write error.
 */
int	deliver_lf_fd(int src_fd, size_t len, int fd, long long *written);
/* The route for a recipient domain, NULL when none. */
const struct route *route_for(const struct deliver_conf *, const char *);

#endif
