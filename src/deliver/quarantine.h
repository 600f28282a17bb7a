/*
 * quarantine.h: messages refused at end of data, kept for the operator
 * (docs/QUARANTINE.md).
 *
 * A content filter that refuses a message at data_post may keep it: it
 * returns quarantine_keep()'s verdict instead of its DENY. The message is
 * written once, on the delivery pool, as a Maildir-style file
 * <dir>/new/<ID> (LF line ends, an X-Moat-Quarantine-* header block in
 * front), and indexed in the store under "q:<ID>" (envelope, client,
 * symbols, reason, session, domain, time, expiry, size, release state).
 * The index is authoritative: moatctl reads the envelope from it, never
 * from the file's header block.
 *
 * IDs sort by age: thirteen hex digits of the time kept in microseconds,
 * then five random ones. Retention and the caps (total bytes, messages) are applied after
 * every keep and by `moatctl quarantine trim`, oldest first; each drop is
 * logged.
 *
 * Layering: this module sits in deliver/ (it writes on the delivery pool
 * as maildir.c does); content filters call quarantine_keep(), the one
 * call from filters/ into deliver/.
 */
#ifndef MOAT_QUARANTINE_H
#define MOAT_QUARANTINE_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "../core/buf.h"
#include "../core/config.h"
#include "../core/limits.h"
#include "../smtp/verdict.h"

struct filter_call;
struct store_txn;

#define QUARANTINE_ID_LEN	18	/* 13 hex of time (µs), 5 random */
#define QUARANTINE_REASON_MAX	64	/* "virus:Eicar-Test-Signature" */
#define QUARANTINE_SYMBOLS_MAX	1024	/* "NAME=1.50 NAME=-2.00" */
/* Recipients kept in a record; a transaction has at most
 * [server] max_recipients, and this bounds the record whatever it is. */
#define QUARANTINE_RCPTS_MAX	1000
/* Bytes of one index record (the recipients dominate). */
#define QUARANTINE_RECORD_MAX	(QUARANTINE_RCPTS_MAX * \
				    (LIMIT_LOCAL_PART + LIMIT_DOMAIN + 8) + 4096)

/* [quarantine]: where, how long, how much. */
struct quarantine_conf {
	char		*dir;		/* "": <var_dir>/quarantine */
	long long	 retention_days;
	long long	 max_size;	/* bytes of all kept files */
	long long	 max_messages;
	bool		 virus;		/* keep reasons starting "virus" */
	bool		 reply_id;	/* name the ID in the refusal */
};

extern const struct opt quarantine_opts[];

/* Release states of a record. */
enum quarantine_state {
	QS_HELD,	/* kept, never released */
	QS_RELEASING,	/* a release started (moatctl) and has not ended */
	QS_RELEASED,	/* delivered once; a second release is refused */
};

/* One index record. rcpts: nrcpt addresses, each NUL-terminated, one
 * after the other (owned; quarantine_rec_free). */
struct quarantine_rec {
	char			 id[QUARANTINE_ID_LEN + 1];
	time_t			 time, expires, released_at;
	long long		 size;		/* bytes of the file */
	long long		 hdrlen;	/* its X-Moat block */
	long long		 client_off;	/* the client's part, after it */
	char			 session[17];
	char			 ip[48];
	char			 helo[LIMIT_HELO + 1];
	char			 from[LIMIT_LOCAL_PART + LIMIT_DOMAIN + 2];
	char			 domain[LIMIT_DOMAIN + 1];
	char			 reason[QUARANTINE_REASON_MAX];
	char			 symbols[QUARANTINE_SYMBOLS_MAX];
	double			 score;
	enum quarantine_state	 state;
	char			*rcpts;
	size_t			 nrcpt, rcptlen;
};

/*
 * Sets the quarantine the process uses (moatd's config, moatctl's):
 * a copy of c, with dir resolved against var_dir. Like store_configure().
 */
void	quarantine_configure(const struct quarantine_conf *c,
	    const char *var_dir);
/* The settings and directory configured (dir is absolute or as given). */
const struct quarantine_conf *quarantine_conf_active(void);
const char *quarantine_dir(void);

/*
 * For a data_post hook that refuses the message with deny (whose text
 * must outlive the session step: the txn's verdict_text, or static):
 * keeps the message when this refusal may be kept, else returns deny.
 * Kept only when the policy does not observe the calling filter, and
 * for a reason starting "virus" only with [quarantine] virus = yes.
 *
 * When keeping, it starts a job on the delivery pool (the message copied,
 * or, when spilled, written from a dup of its descriptor) and returns
 * V_PENDING: the hook returns that, and its filter must have
 * .cancel = quarantine_cancel and .fail = FAIL_DEFER (a copy that does
 * not become durable within the filter timeout is a 451, never a
 * delivery). Once the copy is durable (or failed: logged, the refusal
 * stands without an ID), filter_resume(c->step, deny) follows, with the
 * ID in the transaction (the JSON line's "quarantine") and, when
 * reply_id, appended to deny's text if it is the txn's verdict_text.
 * reason: "spam", "virus:NAME", ... (cut at QUARANTINE_REASON_MAX).
 */
struct verdict	quarantine_keep(struct filter_call *c, const char *reason,
		    struct verdict deny);
/* The filter's cancel: a keep still in flight for c->step writes nothing
 * (if it has not yet linked its file). */
void		quarantine_cancel(struct filter_call *c);

/* The parts below are pure or take a store transaction and a clock, for
 * moatctl and the unit tests. */

/* A new ID for a message kept at now_us (microseconds since the
 * epoch). */
void	quarantine_id_make(long long now_us, char out[QUARANTINE_ID_LEN + 1]);
/* True for a well-formed ID (exactly QUARANTINE_ID_LEN hex digits). */
bool	quarantine_id_ok(const char *);
/* <dir>/<sub>/<id>; -1 when it does not fit. */
int	quarantine_path(const char *dir, const char *sub, const char *id,
	    char *out, size_t outlen);

/* Record text (one "key=value" line per field); -1 past the cap. */
int	quarantine_rec_encode(const struct quarantine_rec *, struct buf *);
/* Parses a record; -1 when malformed. r is zeroed first. */
int	quarantine_rec_decode(const char *, size_t, struct quarantine_rec *);
/* Adds a recipient; -1 past QUARANTINE_RCPTS_MAX or on OOM. */
int	quarantine_rec_rcpt(struct quarantine_rec *, const char *addr);
/* The i-th recipient. */
const char *quarantine_rec_rcpt_at(const struct quarantine_rec *, size_t i);
void	quarantine_rec_free(struct quarantine_rec *);

/* Index: add (counting its bytes), read, rewrite (same size), delete. */
int	quarantine_index_add(struct store_txn *, const struct quarantine_rec *);
/* 0 found, 1 absent, -1 error. */
int	quarantine_index_get(struct store_txn *, const char *id,
	    struct quarantine_rec *);
int	quarantine_index_put(struct store_txn *, const struct quarantine_rec *);
int	quarantine_index_del(struct store_txn *, const struct quarantine_rec *);
/* Totals kept (bytes, messages). */
int	quarantine_totals(struct store_txn *, long long *bytes,
	    long long *count);

/*
 * Whether a release of r may start: NULL when it may, else why not. A
 * released message never is again; one being released (an interrupted
 * release) and one refused for a virus (reason "virus...") only with
 * force.
 */
const char *quarantine_release_refused(const struct quarantine_rec *r,
	    bool force);

/* Why a record is dropped by quarantine_trim. */
enum quarantine_drop { QD_AGE, QD_SIZE, QD_COUNT };

/*
 * Drops, oldest first, every record expired at now, then as many of the
 * oldest as it takes to bring the totals within c's caps (a record in
 * QS_RELEASING is never dropped for a cap). fn is told each record
 * dropped (its file is the caller's to remove, after the commit). The
 * number dropped, -1 on error.
 */
long	quarantine_trim(struct store_txn *, const struct quarantine_conf *c,
	    time_t now, void (*fn)(void *, const struct quarantine_rec *,
	    enum quarantine_drop), void *arg);
/* Calls fn with every record, oldest first; fn returns false to stop. */
int	quarantine_each(struct store_txn *,
	    bool (*fn)(void *, const struct quarantine_rec *), void *arg);

extern const char *const quarantine_drop_names[];

#endif
