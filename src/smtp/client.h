/*
 * client.h: an asynchronous SMTP/LMTP client for one backend connection.
 *
 * The connection greets, says EHLO (LHLO for LMTP, RFC 2033), switches to
 * TLS when the backend offers STARTTLS and a TLS context is given, and is
 * then ready for transactions. Commands are queued with a callback each;
 * with PIPELINING they are sent at once, otherwise one at a time. Every
 * reply reaches its callback in order; a dead or silent backend fails
 * every waiting callback with code 0. The owner frees the client.
 */
#ifndef MOAT_CLIENT_H
#define MOAT_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

struct event_base;
struct ssl_ctx_st;
struct client;

/* code 0: no reply (connection failed, closed or timed out). */
typedef void (*client_cb)(void *arg, int code, const char *text);

struct client_opts {
	const char		*helo;
	bool			 lmtp;
	struct ssl_ctx_st	*tls;		/* NULL: never STARTTLS */
	long long		 timeout;	/* seconds per reply */
};

/* Connects; ready(arg, code, text) fires once with 250 when usable. */
struct client	*client_new(struct event_base *, const struct sockaddr *,
		    socklen_t, const struct client_opts *, client_cb ready,
		    void *arg);
/* Queues a command line (without CRLF); cb gets its reply. */
int		 client_cmd(struct client *, const char *line, client_cb,
		    void *arg);
/* Sends DATA, then the message dot-stuffed and the final dot; cb is
 * called exactly nreplies times (LMTP: one per recipient), with the
 * DATA refusal repeated if there was no 354.
 * The message bytes must stay valid until the last reply. */
int		 client_data(struct client *, const char *msg, size_t len,
		    int nreplies, client_cb, void *arg);
/* True when nothing is queued or in flight and the link is up. */
bool		 client_idle(const struct client *);
bool		 client_has(const struct client *, const char *capability);
bool		 client_tls(const struct client *);
/* Re-points callbacks of queued commands whose arg is old to NULL cb. */
void		 client_forget(struct client *, void *arg);
/* Called when an idle client's link drops (for pools). */
void		 client_on_close(struct client *, void (*)(void *), void *);
void		 client_free(struct client *);

#endif
