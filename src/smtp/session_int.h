/*
 * session_int.h: what session.c, command.c and txnlog.c share; not for
 * use outside src/smtp.
 */
#ifndef MOAT_SESSION_INT_H
#define MOAT_SESSION_INT_H

#include "session.h"

void	session_set_state(struct session *, enum state);
void	reply(struct session *, int code, const char *esc, const char *fmt,
	    ...) __attribute__((format(printf, 4, 5)));
/* A reply to a client mistake: counts toward max_errors. */
void	reply_error(struct session *, int code, const char *esc,
	    const char *text);
/* Counts a client mistake already answered; 421 and close at the limit. */
void	count_error(struct session *);
/* Answers a DENY/DEFER/DENY_DISCONNECT verdict, with defaults. */
void	reply_verdict(struct session *, const struct verdict *,
	    char *copy, size_t copylen);
/* Starts a stage: marks it pending and calls the pipeline. */
void	session_stage(struct session *, enum stage);
/* Enters ST_WAIT for a step of stage st (a new generation); the state
 * now is where the session returns when the step completes. */
void	session_wait(struct session *, enum stage st);
void	session_quit(struct session *);
void	txn_reset(struct session *);

/* command.c */
void	command_line(struct session *, char *line, size_t len);
void	command_stage_done(struct session *, enum stage, struct verdict);
void	command_queued(struct session *, struct verdict);
void	command_data_done(struct session *);
/* Message bytes were taken: spills the message past message_memory. */
void	command_data_fed(struct session *);
/* Frees the message and returns its memory reservation. */
void	txn_release_message(struct txn *);
/* A refused BDAT chunk has been read: gives its reply. */
void	command_chunk_skipped(struct session *);
void	command_greet(struct session *);
/* Input came while the pre-greeting wait runs. */
void	command_pregreet_talk(struct session *);
/* Records a protocol finding (PROTO_*) once per session. */
void	session_proto_finding(struct session *, unsigned);
/* Goes on with buffered input after a protocol timer (the greeting). */
void	session_kick(struct session *);

/* auth_smtp.c: the AUTH command and its SASL exchange. */
/* True when EHLO offers AUTH to this client (a backend, and TLS or the
 * loopback exception). */
bool	auth_offered(const struct session *);
void	auth_command(struct session *, struct str arg);
/* A line read in ST_AUTH: the client's SASL response. */
void	auth_response(struct session *, const char *line, size_t len);
/* A line past AUTH_LINE_MAX in ST_AUTH or on an AUTH command. */
void	auth_line_too_long(struct session *);
/* The pending AUTH step completed (see session_auth_step). */
void	auth_step_done(struct session *, struct verdict);
/* Teardown: cancels a backend request and wipes the exchange. */
void	auth_session_end(struct session *);

/* txnlog.c */
void	txnlog_transaction(struct session *);
void	txnlog_refused(struct session *, const char *reason);
double	timespec_ms(const struct timespec *from, const struct timespec *to);


/* Writes queued replies straight to a plain socket (see session.c). */
void	session_flush(struct session *);
/* Attaches callbacks to the session's (new) bufferevent. */
void	session_attach(struct session *, struct bufferevent *);
/* Deadlines (session.c): starts the message's (DATA/BDAT) or the TLS
 * handshake's; ends both the message's and the line's on 0. */
void	session_deadline_message(struct session *, bool on);
void	session_deadline_tls(struct session *, bool on);
/* Set once the worker is shutting down: idle sessions get 421. */
extern bool	session_shutting_down;

/* tls.c: switches the session to TLS after "220 Ready" (RFC 3207). */
int	tls_start(struct session *);
void	tls_describe(struct session *);
/* Queues TLS close_notify on the session's link. */
void	tls_shutdown(struct session *);
#endif
