/*
 * mime.h: reads a whole message (RFC 5322 + MIME) into classifier
 * features, with GMime 3: selected headers (RFC 2047 decoded), every text
 * part decoded (base64, quoted-printable) and converted to UTF-8 from its
 * charset, HTML read as text (html.h), attachment types and names
 * (RFC 2231 parameters), nested messages.
 *
 * Named limits bound the work: bytes handed to the parser, nesting depth,
 * parts, and features (tok's max). Past a limit the message is still
 * read as far as the limit and `truncated` is set; nothing is an error.
 *
 * The limits bound what is read, not what it costs: a message of few
 * bytes can still be slow to parse (thousands of nested boundaries). A
 * struct mime_budget bounds that: the thread CPU time one read (or one
 * training mail with everything attached to it) may use. It is checked
 * as GMime reads the message (every 4 KiB) and before each part is
 * walked; once spent, the read stops where it is, `budget` and
 * `truncated` are set, and the message is scored from what was read.
 */
#ifndef MOAT_MIME_H
#define MOAT_MIME_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

struct tok;

/* Defaults of the [bayes] limits. */
#define MIME_MAX_BYTES		(512 * 1024)
#define MIME_MAX_DEPTH		20
#define MIME_MAX_PARTS		200
#define MIME_MAX_HEADERS	200

struct mime_limits {
	long long	max_bytes;	/* of the message, and of text read */
	long long	max_depth;	/* multipart and message nesting */
	long long	max_parts;	/* leaf parts read */
};

struct mime_stats {
	unsigned	parts;
	unsigned	depth;
	size_t		text;		/* bytes of decoded text read */
	bool		truncated;	/* a limit was reached */
	bool		budget;		/* the CPU budget was spent */
};

/* CPU time for one read, on the thread that reads (mime_budget_start). */
struct mime_budget {
	long long		 limit_ns;	/* 0: no limit */
	long long		 start_ns;	/* thread CPU time at start */
	const atomic_bool	*cancel;	/* set: stop as if spent */
	bool			 spent;
};

/* Starts a budget of limit_ns nanoseconds of this thread's CPU time (0:
 * none); cancel, when not NULL, stops the read early too. */
void	mime_budget_start(struct mime_budget *, long long limit_ns,
	    const atomic_bool *cancel);
/* True (and stays true) once the budget is spent or the read cancelled. */
bool	mime_budget_spent(struct mime_budget *);

/* Adds the features of msg (len bytes, CRLF or LF lines) to t. */
void	mime_scan(const char *msg, size_t len, const struct mime_limits *,
	    struct tok *t, struct mime_stats *);
/* The same within a budget (NULL: none), shared by whoever passes it. */
void	mime_scan_budget(const char *msg, size_t len,
	    const struct mime_limits *, struct mime_budget *, struct tok *t,
	    struct mime_stats *);

/* Calls fn with the whole text of each message attached to msg
 * (message/rfc822 parts, as forwarded "as attachment"), up to max_parts
 * of them within max_depth; returns how many. The whole of msg is
 * parsed: callers bound it (training mail: the SMTP size limit, read
 * off the loop, within the budget, which fn should pass on to its own
 * reads; NULL: none). */
int	mime_each_attached(const char *msg, size_t len,
	    const struct mime_limits *, struct mime_budget *,
	    void (*fn)(void *, const char *, size_t), void *arg);

#endif
