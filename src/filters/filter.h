/*
 * filter.h: the filter API (ARCHITECTURE §2, docs/FILTERS.md).
 *
 * A filter is one const struct in one file under src/filters/, listed once
 * in registry.c. It declares its options in a table (the generic loader
 * fills them from its INI section and [domain ...] overrides), loads what
 * it needs per policy in init(), and implements hooks. A hook returns a
 * verdict; PENDING means it started async work and will call
 * filter_resume() with the call's step token; if that does not happen
 * within [server] timeout_filter, cancel() is called and the fail mode
 * decides. A completion whose token is no longer the pending step (timed
 * out, session gone, disconnected) is dropped by filter_resume().
 * A filter never writes to the socket, formats a reply or parses INI.
 */
#ifndef MOAT_FILTER_H
#define MOAT_FILTER_H

#include <stddef.h>
#include <stdint.h>

#include "../core/config.h"
#include "../smtp/session.h"

#define FILTER_MAX	32

enum fail_mode {
	FAIL_DEFER,	/* 451 4.4.3 when the check cannot finish */
	FAIL_CONTINUE,	/* carry on as if it had no opinion */
};

struct policy;

/* What a hook sees: the session, and its settings under the policy. */
struct filter_call {
	struct session		*s;
	const void		*conf;	/* the filter's settings struct */
	void			*state;	/* what init() loaded */
	const struct policy	*policy;
	struct step_token	 step;	/* names this call for filter_resume */
	/* Called again after filter_wait(): true when the wait ended at
	 * its deadline (work still pending counts as no data). */
	bool			 late;
	/* The filter's per-session data (filter_data_set), or NULL. */
	void			*data;
};

typedef struct verdict (*filter_hook)(struct filter_call *);

struct filter {
	const char		*name;		/* INI section, [pipeline] */
	const char		*summary;	/* one line */
	const struct opt	*opts;		/* option table */
	size_t			 conf_size;	/* its settings struct */
	/* Loads lists etc. for one policy; -1 with err set. *state is
	 * set as soon as there is one, even when init then fails: the
	 * owner calls fini() on it either way. */
	int			(*init)(const void *conf, void **state,
				    char *err, size_t errlen);
	void			(*fini)(void *state);
	filter_hook		 hook[STAGE_COUNT];
	/* Drops async work of a pending hook (timeout or disconnect). */
	void			(*cancel)(struct filter_call *);
	/* Frees the filter's per-session data at the end of the session,
	 * cancelling any work still in flight for it (no callback of that
	 * work may run afterwards). */
	void			(*data_free)(void *data);
	enum fail_mode		 fail;
};

/* registry.c */
extern const struct filter *const filter_registry[];
extern const size_t filter_count;
const struct filter	*filter_find(const char *name);
/* Index of a filter in the registry (its slot in a policy). */
size_t			 filter_index(const struct filter *);

/* Completes the PENDING hook call named by tok; dropped when stale. */
void	filter_resume(struct step_token tok, struct verdict);

/*
 * Evidence early, decisions where they belong (ARCHITECTURE §2). A filter
 * may start work at one stage (lookups at connect) without holding the
 * session: it keeps its results in per-session data and counts the work
 * in flight. A later hook (RCPT) that needs the results and finds work
 * still pending returns filter_wait(): the session waits until the
 * filter's work count reaches zero or the deadline passes, and the same
 * hook is called again (c->late says the deadline passed; what is still
 * pending then counts as no data).
 */
/* The filter's per-session data; set once, freed by f->data_free. */
void	*filter_data(struct session *, const struct filter *);
int	 filter_data_set(struct session *, const struct filter *, void *);
/* The filter's per-session data, made (size bytes, zeroed) when it has
 * none yet; NULL when it cannot be. */
void	*filter_data_new(struct session *, const struct filter *, size_t);
/* Counts work started for the session (a lookup) and its end. */
void	 filter_work_add(struct session *, const struct filter *);
void	 filter_work_done(struct session *, const struct filter *);
unsigned filter_work_pending(struct session *, const struct filter *);
/* In a hook: wait for this filter's work, at most deadline_ms. */
struct verdict filter_wait(struct filter_call *, long long deadline_ms);
/*
 * Allow rules: f (or, by name, a space-separated list of filters; "all"
 * for every one) is skipped for the rest of the session (client rules)
 * or of the transaction (sender rules). Skipping never reaches relay
 * control, which is the core's. -1 (nothing set) for an unknown name.
 */
int	 filter_skip(struct session *, const char *names, bool txn_only);
/* A client rule sets the policy (a [domain name] section) whose knobs
 * every filter uses for this session, in place of the recipient's;
 * delivery and the one-policy-per-transaction rule still follow the
 * recipient's domain. -1 when there is no such section. */
int	 filter_client_policy(struct session *, const char *name);
/* True when f is skipped for this session or transaction. */
bool	 filter_skipped(const struct session *, const struct filter *);
/* A reply text from a configured template: its first %s is a, the
 * second b, "%%" a percent sign; never used as a printf format; CR and
 * LF dropped; cut at n - 1 bytes. */
void	 filter_reply_format(char *out, size_t n, const char *tmpl,
	    const char *a, const char *b);
/* Records evidence on the session: what a check saw and its weight,
 * logged in the JSON line of every transaction of the session (and in
 * moatctl explain). name is static or config storage. */
void	 filter_evidence(struct session *, const struct filter *,
	    const char *name, double score, double ms, const char *fmt, ...)
	    __attribute__((format(printf, 6, 7)));

#endif
