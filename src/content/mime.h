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
 */
#ifndef MOAT_MIME_H
#define MOAT_MIME_H

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
};

/* Adds the features of msg (len bytes, CRLF or LF lines) to t. */
void	mime_scan(const char *msg, size_t len, const struct mime_limits *,
	    struct tok *t, struct mime_stats *);

/* Calls fn with the whole text of each message attached to msg
 * (message/rfc822 parts, as forwarded "as attachment"), up to max_parts
 * of them within max_depth; returns how many. The whole of msg is
 * parsed: callers bound it (training mail: the SMTP size limit, read
 * off the loop). */
int	mime_each_attached(const char *msg, size_t len,
	    const struct mime_limits *, void (*fn)(void *, const char *,
	    size_t), void *arg);

#endif
