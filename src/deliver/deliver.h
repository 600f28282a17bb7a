/*
 * deliver.h: the queue stage (ARCHITECTURE §4). moat never says 250 to a
 * message it could lose: every method reports success only once the
 * message is durable (fsync'd in a Maildir, or the backend said 250, or
 * qmail-queue exited 0).
 *
 * Methods: maildir (embedded default), smtp and lmtp forward with
 * per-domain routes in qmail smtproutes format, and qmail-queue.
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
	long long	 pool_idle;
	long long	 pool_max;
	bool		 starttls;
	/* derived at load time */
	enum deliver_method	 m;
	struct route		*routes;
	size_t			 nroutes;
};

extern const struct opt deliver_opts[];

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
void		forward_abort(struct session *);
void		forward_init(struct event_base *, const char *helo);
void		forward_fini(void);
void		qmailqueue_data(struct session *,
		    const struct deliver_conf *);
void		qmailqueue_init(struct event_base *);

/* The message with LF line ends, as Maildir and qmail store it (the
 * reader guarantees CRLF-only input); -1 on OOM. */
int	deliver_lf(const struct buf *msg, struct buf *out);
/* The route for a recipient domain, NULL when none. */
const struct route *route_for(const struct deliver_conf *, const char *);

#endif
