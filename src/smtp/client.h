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
/* The message to send after a 354, asked for only then: the owner looks
 * its transaction up afresh; -1 when it is gone (the link is closed, for
 * a backend that said 354 cannot be told "never mind" but by a close). */
typedef int (*client_body_fn)(void *arg, const char **msg, size_t *len);

struct client_opts {
	const char		*helo;
	bool			 lmtp;
	struct ssl_ctx_st	*tls;		/* NULL: never STARTTLS */
	long long		 timeout;	/* seconds per reply */
	/* Seconds for the replies after the message's final dot: RFC 5321
	 * §4.5.3.2.6 asks for 10 minutes, the backend may be delivering. */
	long long		 timeout_data_end;
};

/* Connects; ready(arg, code, text) fires once with 250 when usable. */
struct client	*client_new(struct event_base *, const struct sockaddr *,
		    socklen_t, const struct client_opts *, client_cb ready,
		    void *arg);
/* Queues a command line (without CRLF); cb gets its reply. */
int		 client_cmd(struct client *, const char *line, client_cb,
		    void *arg);
/* Sends DATA; at the 354 asks body(arg) for the message and sends it
 * dot-stuffed with the final dot (copied into the output at once, so the
 * bytes need to live only for that call). cb is called exactly nreplies
 * times (LMTP: one per recipient), with the DATA refusal repeated if
 * there was no 354, or with code 0 when body() said the message is gone. */
int		 client_data(struct client *, client_body_fn body,
		    int nreplies, client_cb, void *arg);
/* True when nothing is queued or in flight and the link is up. */
bool		 client_idle(const struct client *);
bool		 client_has(const struct client *, const char *capability);
bool		 client_tls(const struct client *);
/* Re-points callbacks of queued commands whose arg is old to NULL cb. */
void		 client_forget(struct client *, void *arg);
/* Cancels everything at once: no callback runs any more, nothing more is
 * read or written; the link is unusable and the owner frees it (safe to
 * call inside one of the client's callbacks). */
void		 client_abort(struct client *);
/* Called when an idle client's link drops (for pools). */
void		 client_on_close(struct client *, void (*)(void *), void *);
void		 client_free(struct client *);

#endif
