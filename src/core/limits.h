/*
 * limits.h: every limit on client input, named once, with where it comes
 * from. Configurable limits take their defaults from here; the hard caps
 * bound what configuration may ask for.
 */
#ifndef MOAT_LIMITS_H
#define MOAT_LIMITS_H

/* RFC 5321 §4.5.3.1.4: command line, including the CRLF. */
#define LIMIT_COMMAND_LINE	512
/* RFC 1869 §4.1.2 lets ESMTP parameters stretch a MAIL/RCPT line: the
 * default allows 512 more for those we offer (SIZE, BODY, SMTPUTF8); the
 * configured limit (max_command_line) may not pass the hard cap. */
#define LIMIT_COMMAND_LINE_EXT	1024
#define LIMIT_COMMAND_LINE_MAX	4096
/* RFC 5321 §4.5.3.1.6: text line, including the CRLF. */
#define LIMIT_TEXT_LINE		1000
/* Largest text line a configuration may allow. */
#define LIMIT_TEXT_LINE_MAX	65536
/* RFC 5321 §4.5.3.1.3: reverse/forward path, including the brackets. */
#define LIMIT_PATH		256
/* RFC 5321 §4.5.3.1.1: local part. */
#define LIMIT_LOCAL_PART	64
/* RFC 5321 §4.5.3.1.2: domain. */
#define LIMIT_DOMAIN		255
/* RFC 5321 §4.5.3.1.8: at least 100 recipients must be accepted. */
#define LIMIT_RECIPIENTS	100
/* Hard cap on recipients a configuration may allow. */
#define LIMIT_RECIPIENTS_MAX	10000
/* Default and hard cap of a message's size (RFC 1870 SIZE). */
#define LIMIT_MESSAGE_SIZE	(25 * 1024 * 1024)
#define LIMIT_MESSAGE_SIZE_MAX	(1024LL * 1024 * 1024)
/* Header lines (folded continuations count) before the body starts. */
#define LIMIT_HEADER_LINES	1000
/* HELO/EHLO argument, a domain or an address literal. */
#define LIMIT_HELO		LIMIT_DOMAIN
/* Bad or unknown commands before we hang up. */
#define LIMIT_ERRORS		10
/* RFC 5321 §4.5.3.2: timeouts in seconds. */
#define TIMEOUT_GREETING	300	/* §4.5.3.2.1 is for clients; we reuse it */
#define TIMEOUT_COMMAND		300	/* §4.5.3.2.7 server timeout */
#define TIMEOUT_DATA_BLOCK	180	/* §4.5.3.2.5 */
#define TIMEOUT_DATA_END	600	/* §4.5.3.2.6 */
/* Backend (our SMTP/LMTP client side), §4.5.3.2.1-.6 abridged. */
#define TIMEOUT_BACKEND		120
/* A client reply line from a backend, RFC 5321 §4.5.3.1.5. */
#define LIMIT_REPLY_LINE	512
/* Lines of a multi-line backend reply we keep. */
#define LIMIT_REPLY_LINES	32
/* Symbols one transaction may carry. */
#define LIMIT_SYMBOLS		64
/* Client text quoted in a log line. */
#define LIMIT_LOG_QUOTE		200
/* One line of a list file. */
#define LIMIT_LIST_LINE		1024
/* Worker processes. */
#define LIMIT_WORKERS		64
/* Per-IP connection table slots per worker. */
#define LIMIT_CONNTABLE		16384

#endif
