/*
 * session.h: one SMTP conversation (RFC 5321) with one client.
 *
 * The smtp layer owns the socket, the state machine, replies and limits.
 * It asks the layers above through struct session_ops, wired by the
 * daemon: the filter pipeline for verdicts, delivery for the queue stage.
 * Every such request completes through session_resume() or
 * session_queued(), possibly later (async), and finds the session by id.
 *
 * Invariants: one state field, changed only by session_set_state(); the
 * state alone says what the next input bytes mean (a command line, message
 * data, a chunk to discard, or nothing yet: ST_WAIT, ST_TLS, ST_QUIT keep
 * input buffered); nothing is answered 250 at end of data until the queue
 * stage reports the message durable. Every async step is named by a
 * struct step_token (session id + step generation); a completion whose
 * token is not the step now pending is dropped.
 */
#ifndef MOAT_SESSION_H
#define MOAT_SESSION_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

#include "../core/buf.h"
#include "data.h"
#include "parse.h"
#include "verdict.h"

struct event_base;
struct bufferevent;
struct event;
struct ssl_ctx_st;
struct auth_conf;
struct auth_sasl;
struct policy;
struct backend;
struct session;

/*
 * The protocol state. Command states read lines, data states read message
 * bytes, the others read nothing (input stays buffered). The legal
 * commands per state are in command.c's table.
 */
enum state {
	ST_CONNECT,	/* nothing said yet */
	ST_PREGREET,	/* "220-" said, waiting: input now is early talk */
	ST_GREET,	/* greeted, waiting for HELO/EHLO */
	ST_HELO,	/* ready for MAIL */
	ST_MAIL,	/* MAIL accepted, no recipient yet */
	ST_RCPT,	/* at least one recipient accepted */
	ST_DATA,	/* reading a DATA message */
	ST_BDAT,	/* reading a BDAT chunk of the message */
	ST_BDAT_SKIP,	/* reading a refused BDAT chunk, to drop it */
	ST_BDAT_NEXT,	/* a chunk taken: only BDAT, RSET, NOOP, QUIT */
	ST_BDAT_FAILED,	/* a chunk refused: BDATs are dropped until RSET */
	ST_AUTH,	/* the next line is a SASL response (RFC 4954 §4) */
	ST_WAIT,	/* a stage or queue step is pending (s->pending) */
	ST_TLS,		/* TLS handshake after STARTTLS */
	ST_QUIT,	/* closing once output is flushed */
	ST_COUNT
};

/* Protocol findings of a session (session.proto). */
#define PROTO_PIPELINING	0x01	/* pipelined without PIPELINING */
#define PROTO_BARE_LF		0x02	/* a bare LF in a command line */

/* Names one async step of one session: a hook call or a queue step. */
struct step_token {
	uint64_t	sid;
	uint32_t	gen;
};

/* Pipeline stages, in the order a session meets them (ARCHITECTURE §2). */
enum stage {
	STAGE_CONNECT, STAGE_HELO, STAGE_MAIL, STAGE_RCPT, STAGE_DATA,
	STAGE_DATA_POST, STAGE_QUEUE, STAGE_DISCONNECT,
	STAGE_AUTH,	/* an AUTH check or its failure delay; no filters */
	STAGE_COUNT
};

extern const char *const stage_names[STAGE_COUNT];
extern const char *const state_names[ST_COUNT];

/* Evidence: what a check saw, with its weight (ARCHITECTURE §2). */
#define LIMIT_EVIDENCE	32	/* per session; more are counted only */
#define LIMIT_WOULD	16	/* observe-mode verdicts per session */

struct evidence {
	const char	*filter;	/* static */
	const char	*name;		/* static or config storage */
	double		 score;
	double		 ms;		/* lookup time, 0 when none */
	char		 detail[112];	/* zone=answer, reason... */
};

/* What an observe-mode filter would have done. */
struct would {
	const char	*filter;
	enum stage	 stage;
	unsigned	 txn;		/* s->messages + 1 when it was said */
	char		 rcpt[72];	/* at RCPT: the recipient */
	char		 reply[128];
};

struct session_evidence {
	struct evidence	 ev[LIMIT_EVIDENCE];
	size_t		 nev, dropped;
	struct would	 w[LIMIT_WOULD];
	size_t		 nw;
};

struct rcpt {
	struct path	 path;
	char		 addr[LIMIT_LOCAL_PART + LIMIT_DOMAIN + 2]; /* l@d */
	struct verdict	 verdict;	/* final word at RCPT */
	char		 reply[LIMIT_REPLY_LINE + 1]; /* the reply we gave */
	bool		 accepted;
	bool		 exempt;	/* postmaster@/abuse@: delay-deny skips */
	bool		 local;		/* domain is one of ours */
	/* Non-zero: a filter took this recipient (a training address);
	 * it is accepted but never handed to delivery. The value is the
	 * filter's own (bayes: the class to learn). */
	int		 consumed;
	const struct policy *policy;	/* of its domain */
	int		 result;	/* delivery reply code, 0: none */
};

struct txn {
	struct path		 from;
	struct mail_params	 params;
	struct rcpt		*rcpts;		/* every RCPT tried */
	size_t			 nrcpt, cap, naccepted;
	size_t			 nconsumed;	/* accepted, not delivered */
	const struct policy	*policy;	/* of the first accepted rcpt */
	struct rcpt		*cur;		/* recipient being checked */
	struct buf		 msg;		/* headers we add + message */
	size_t			 msg_start;	/* where the client's part starts */
	struct symbol		 sym[LIMIT_SYMBOLS];
	size_t			 nsym;
	double			 score;
	struct verdict		 delayed;	/* delay-deny from MAIL stage */
	struct verdict		 result;	/* end-of-data verdict */
	char			 result_text[LIMIT_REPLY_LINE + 1];
	/* Text of a data_post verdict that its filter composed. */
	char			 verdict_text[LIMIT_REPLY_LINE + 1];
	/* The quarantine ID the refused message was kept under, or "". */
	char			 quarantine[20];
	struct backend		*backend;	/* forward delivery in progress */
	unsigned		 data_flags;
	struct timespec		 t_mail, t_data, t_data_end, t_queued;
	bool			 active;	/* MAIL given */
	bool			 chunked;	/* BDAT, not DATA */
	bool			 queue_msg;	/* queue stage has the message */
	bool			 logged;
	bool			 spill_failed;	/* kept in memory, logged */
	unsigned		 seq;		/* the session's n-th MAIL */
	uint64_t		 skip;		/* filters this transaction skips
						 * (an allow-listed sender) */
	long long		 msgmem;	/* reserved of the budget */
};

struct session_ops {
	/* Runs a stage's filters; completes with session_resume(). */
	void	(*stage)(struct session *, enum stage);
	/* The policy for a recipient domain (never NULL). */
	const struct policy *(*policy_for)(const char *domain);
	/* True when the recipient domain is one we accept mail for. */
	bool	(*is_local)(const struct policy *, const char *domain);
	/* Queue stage for one recipient (backend RCPT) and the message;
	 * both complete with session_queued(). */
	void	(*queue_rcpt)(struct session *, struct rcpt *);
	void	(*queue_data)(struct session *);
	/* Ends the backend side of a transaction (RSET, QUIT, error). */
	void	(*queue_abort)(struct session *);
	/* Called once when the session is freed. */
	void	(*closed)(struct session *);
};

/* Limits and texts of the SMTP server, filled from [server]. */
struct smtp_conf {
	char		*hostname;
	long long	 max_message_size;
	/* Pre-greeting test (pregreet_*): the wait before the final 220
	 * (0: off), the shorter one past pregreet_busy sessions, what is
	 * done with an early talker (drop: 554 at once; else refused at
	 * RCPT), and how long a client that waited is remembered. */
	long long	 pregreet_wait_ms;
	long long	 pregreet_busy_wait_ms;
	long long	 pregreet_busy;
	bool		 pregreet_drop;
	long long	 pregreet_ttl;
	bool		 non_smtp_drop;		/* HTTP/header lines: 554 */
	double		 score_pipelining;	/* PROTO_PIPELINING */
	double		 score_bare_lf;		/* PROTO_BARE_LF */
	long long	 message_memory;	/* kept in RAM, then spilled */
	long long	 message_memory_budget;	/* per worker */
	const char	*spool_dir;		/* where spills go */
	long long	 max_recipients;
	long long	 max_errors;
	long long	 max_command_line;	/* with CRLF, RFC 5321 4.5.3.1.4 */
	long long	 max_line;		/* text line, RFC 5321 4.5.3.1.6 */
	long long	 max_header_lines;
	long long	 timeout_command;
	long long	 timeout_data;
	long long	 timeout_filter;	/* a pending filter or queue step */
	/* Deadlines: whole units, however slowly the bytes trickle in. */
	long long	 deadline_command;	/* one command line */
	long long	 deadline_message;	/* DATA, or BDAT to LAST */
	long long	 deadline_tls;		/* a STARTTLS handshake */
	bool		 delay_deny;
	bool		 smtputf8;
	bool		 chunking;
	bool		 pipelining;
	char		*banner;
	/* SMTP AUTH (auth.h); NULL or backend none: not offered. */
	const struct auth_conf	*auth;
	/* The listener's policy (a submission port): MAIL needs AUTH
	 * first (530 5.7.0); TLS from the first byte (RFC 8314 §3.3);
	 * filters the session skips (filter_skip names). */
	bool		 auth_required;
	bool		 implicit_tls;
	const char	*skip_filters;
	const char	*listener;	/* "mx", "submission", "smtps" */
};

struct session {
	uint64_t		 id;
	enum state		 state;
	struct event_base	*base;
	struct bufferevent	*bev;
	struct event		*timer;		/* pending-step timeout */
	/* One timer for the deadlines (monotonic ms, 0: none): the line
	 * (or TLS handshake) under way and the message under way. */
	struct event		*deadline;
	long long		 line_due, msg_due;
	const struct smtp_conf	*conf;
	const struct session_ops *ops;
	struct ssl_ctx_st	*tls_ctx;	/* NULL: no STARTTLS */
	struct sockaddr_storage	 peer, local;
	socklen_t		 peerlen, locallen;
	char			 ip[48];	/* client address, text */
	char			 helo[LIMIT_HELO + 1];
	/* The client's reverse DNS name (fcrdns): the first PTR name, or
	 * the one that resolved back to the address (rdns_verified). */
	char			 rdns[LIMIT_DOMAIN + 1];
	bool			 rdns_verified;
	char			 tls_info[96];	/* "TLSv1.3 TLS_AES_..." */
	bool			 esmtp;
	bool			 tls;
	bool			 trusted;	/* relay client */
	/* SMTP AUTH succeeded: a relay client, known as auth_user (the
	 * backend's name for it), evidence for rate limits and outbound
	 * checks. Never reset within the session (RFC 4954 §4: one AUTH
	 * per session). */
	bool			 authenticated;
	char			 auth_user[256];
	const char		*auth_mech;	/* static: PLAIN, LOGIN */
	unsigned		 auth_failures;
	struct auth_sasl	*sasl;		/* an exchange under way */
	/* Allow-listed by a connection check (a DNSWL): the other
	 * connection-level checks (fcrdns, helo, rhsbl) skip it. */
	bool			 client_allowed;
	/* The pre-greeting test: 0 not run, 1 waited (passed), 2 was
	 * remembered, 3 talked early. */
	unsigned char		 pregreet;
	/* Protocol findings (PROTO_*), scored in each transaction. */
	unsigned char		 proto;
	/* Filters this session skips (bits by registry slot): set by an
	 * allow rule for the client (filter_skip). Never relay control,
	 * which is the core's. */
	uint64_t		 skip;
	/* Set by a client rule (filter_client_policy): the policy whose
	 * knobs the filters use for this session. */
	const struct policy	*client_policy;
	bool			 stdio;
	unsigned		 errors;
	unsigned		 messages;
	unsigned		 ntxn;		/* MAILs given (txn->seq) */
	/* ST_WAIT: which step is pending, its generation, and the state
	 * the session returns to when it completes. */
	enum stage		 pending;	/* STAGE_COUNT: none */
	uint32_t		 step_gen;
	enum state		 wait_return;
	bool			 skip_line;	/* discarding an overlong line */
	struct verdict		 delayed;	/* delay-deny from connect/helo */
	struct data_reader	 dr;
	long long		 bdat_left;	/* of the chunk being read */
	bool			 bdat_last;
	/* The reply to a refused chunk, given once its bytes are read. */
	char			 bdat_reply[LIMIT_REPLY_LINE + 1];
	struct txn		*txn;		/* NULL between transactions */
	struct timespec		 t_connect;
	void			*owner;		/* the worker's bookkeeping */
	struct session_evidence	*sev;		/* lazily, see filter.h */
	void			*pl_data;	/* the pipeline's, opaque */
	bool			 pl_waiting;	/* a hook waits (filter_wait) */
	/* Storage for the pipeline while a stage runs or is pending. */
	unsigned		 pl_index;
	void			(*timer_cb)(struct session *);
	struct session		*hnext;		/* id hash chain */
	bool			 in_process;	/* inside session_process() */
	bool			 tls_shut;	/* close_notify queued */
	/* Plain socket: replies are written by session_flush(), libevent's
	 * write event only takes over when the socket is full. */
	bool			 direct;
	bool			 peer_eof;	/* the client sent EOF */
	long long		 tmo_read;	/* read timeout armed, -1 none */
	struct bufferevent	*tmo_bev;	/* ... on this bufferevent */
};

/*
 * Starts a session on a connected socket (or on a bufferevent for stdio
 * mode). Runs the connect stage and greets. Returns NULL on OOM (the fd is
 * then closed).
 */
struct session *session_new(struct event_base *, struct bufferevent *,
		    const struct sockaddr *peer, socklen_t,
		    const struct sockaddr *local, socklen_t,
		    const struct smtp_conf *, const struct session_ops *,
		    struct ssl_ctx_st *);
/* Finds a live session by id; NULL when it is gone. */
struct session *session_find(uint64_t id);
/* A pending stage finished: applies the verdict and goes on. */
void		session_resume(uint64_t id, struct verdict);
/* Starts a new async step of the session's pending stage (each hook call
 * is one) and returns its token. */
struct step_token session_step_begin(struct session *);
/* The token of the step now pending. */
struct step_token session_step(const struct session *);
/* True when tok names the step the session waits for now. */
bool		session_step_live(const struct session *, struct step_token);
/* A pending AUTH step finished (the check, or the delay after a failed
 * one): V_ACCEPT, V_DENY or V_DEFER; dropped unless tok is still the
 * AUTH step now pending. */
void		session_auth_step(struct step_token, struct verdict);
/* A pending queue step finished (rcpt at the backend, or the message);
 * dropped unless tok is the queue step now pending. */
void		session_queued_step(struct step_token, struct verdict);
/* The same, by session id alone (any queue step of that session). */
void		session_queued(uint64_t id, struct verdict);
/* Adds a scored symbol to the transaction. */
int		session_symbol(struct session *, const char *name, double);
/* Adds a header field in front of the client's message (after ours,
 * before the client's own); value may not hold CR or LF. -1 past the
 * message's size cap. */
int		session_add_header(struct session *, const char *name,
		    const char *value);
/* Puts prefix and a space before the client's Subject (adds a Subject
 * when there is none). */
int		session_prefix_subject(struct session *, const char *prefix);
/* Stops reading new commands and closes once idle (SIGTERM drain). */
void		session_drain(struct session *);
/* Closes at once (shutdown after drain timeout). */
void		session_close(struct session *);
/* Number of live sessions in this process. */
size_t		session_count(void);
/* Arms (secs > 0) or disarms the session's one step timer. */
void		session_timer(struct session *, long long secs,
		    void (*)(struct session *));
/* The same in milliseconds. */
void		session_timer_ms(struct session *, long long ms,
		    void (*)(struct session *));
/*
 * Relay control, in the core RCPT decision before any filter runs: NULL
 * when the recipient may be taken from this client, else the refusal
 * text (554 5.7.1). Only trusted (relay network) or authenticated
 * clients relay; for others, our domains only, without routing tricks.
 */
const char	*smtp_relay_denied(const struct session *,
		    const struct rcpt *);
/* Every live session, for draining. */
void		session_foreach(void (*)(struct session *));

#endif
