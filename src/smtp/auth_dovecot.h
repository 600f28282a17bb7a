/*
 * auth_dovecot.h: a client of Dovecot's authentication socket, the
 * protocol Dovecot offers Postfix (the "auth-client" listener): one
 * connection per check, VERSION/CPID and Dovecot's handshake up to DONE,
 * then one "AUTH ... PLAIN ... resp=" and its OK or FAIL.
 *
 * Everything runs on the worker's loop, nothing blocks; the caller owns
 * the timeout (the session's step timer) and cancels a request it no
 * longer waits for. A request ends exactly once: by its callback (and is
 * then freed) or by auth_dovecot_cancel(), never both.
 */
#ifndef MOAT_AUTH_DOVECOT_H
#define MOAT_AUTH_DOVECOT_H

#include <stdbool.h>
#include <stddef.h>

#include "session.h"

struct event_base;
struct auth_dovecot_req;

/* Longest line we read from Dovecot (its own limit is 8 KiB). */
#define AUTH_DOVECOT_LINE_MAX	8192

/* Results: 1 the credentials are good (user: Dovecot's name for the
 * user, or NULL), 0 they are not, -1 no answer (temporary failure). */
typedef void (*auth_dovecot_cb)(struct step_token, int result,
    const char *user);

struct auth_dovecot_args {
	const char	*socket;	/* path of auth-client */
	const char	*service;	/* "smtp" */
	const char	*user, *pass;
	size_t		 passlen;
	const char	*lip, *rip;	/* our and the client's address */
	bool		 secured;	/* the client talks TLS */
	bool		 no_penalty;	/* Dovecot's own failure penalty off */
};

/* Starts a check; NULL when it cannot start (no callback then). */
struct auth_dovecot_req	*auth_dovecot_start(struct event_base *,
			    const struct auth_dovecot_args *,
			    struct step_token, auth_dovecot_cb);
/* Drops a request: no callback comes. */
void			 auth_dovecot_cancel(struct auth_dovecot_req *);

#endif
