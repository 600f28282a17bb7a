/*
 * parse.h: pure parsers for SMTP command lines (bytes in, result out).
 *
 * Nothing here allocates, touches a socket or keeps state between calls;
 * every length is checked against a named limit before anything is copied.
 */
#ifndef MOAT_PARSE_H
#define MOAT_PARSE_H

#include <stdbool.h>
#include <stddef.h>

#include "../core/limits.h"
#include "../core/str.h"

enum verb {
	VERB_UNKNOWN, VERB_HELO, VERB_EHLO, VERB_MAIL, VERB_RCPT, VERB_DATA,
	VERB_BDAT, VERB_RSET, VERB_NOOP, VERB_QUIT, VERB_VRFY, VERB_EXPN,
	VERB_HELP, VERB_STARTTLS, VERB_AUTH, VERB_COUNT
};

/* Why a parse failed; the session maps these to replies. */
enum parse_err {
	PARSE_OK = 0,
	PARSE_NUL,		/* NUL byte in the command */
	PARSE_CTRL,		/* other control byte (CR, TAB, DEL...) */
	PARSE_8BIT,		/* 8-bit byte where only ASCII is allowed */
	PARSE_BAD_UTF8,		/* 8-bit bytes that are not UTF-8 */
	PARSE_SYNTAX,		/* malformed path or argument */
	PARSE_TOO_LONG,		/* path, local part or domain past its limit */
	PARSE_PARAM,		/* unknown ESMTP parameter */
	PARSE_PARAM_VALUE,	/* bad ESMTP parameter value */
};

struct command {
	enum verb	verb;
	struct str	arg;	/* after the verb and its space, trimmed */
	bool		has8bit;
};

/*
 * Splits a command line (CRLF already removed) into verb and argument.
 * NUL is always refused; 8-bit bytes are only reported (has8bit), the
 * caller decides whether the verb may carry them (RFC 6531 §3.3).
 */
enum parse_err	parse_command(const char *line, size_t len, struct command *);

struct path {
	char	local[LIMIT_LOCAL_PART + 1];	/* as sent, quotes kept */
	char	domain[LIMIT_DOMAIN + 1];	/* lowercased when ASCII */
	bool	null;		/* <> */
	bool	quoted;		/* local part was a quoted string */
	bool	literal;	/* domain is an address literal [..] */
	bool	route;		/* a source route was given (and dropped) */
	bool	utf8;		/* contains non-ASCII (needs SMTPUTF8) */
	char	route_hosts[LIMIT_PATH + 1];	/* "a,b" from @a,@b: */
};

/*
 * Parses "<path>" at the start of s (after "FROM:" or "TO:"), per
 * RFC 5321 §4.1.2; rest gets what follows the '>' (ESMTP parameters).
 * null_ok allows "<>"; postmaster_ok allows the bare "<Postmaster>" of
 * §4.1.1.3. utf8 allows RFC 6531 UTF-8 in local part and domain.
 */
enum parse_err	parse_path(struct str s, struct path *, struct str *rest,
		    bool null_ok, bool postmaster_ok, bool utf8);

/* Verifies that the domain is a syntactically valid RFC 5321 Domain or
 * address literal; used for HELO/EHLO arguments too. */
bool		parse_domain_ok(const char *s, size_t n, bool utf8);

enum body_type { BODY_7BIT, BODY_8BITMIME, BODY_BINARYMIME };

struct mail_params {
	long long	size;		/* SIZE=, -1 when not given */
	enum body_type	body;
	bool		smtputf8;
	bool		auth;		/* AUTH= given (RFC 4954 §5) */
};

/* Parses MAIL FROM ESMTP parameters (RFC 1870, 6152, 3030, 6531,
 * 4954). */
enum parse_err	parse_mail_params(struct str, struct mail_params *);
/* RCPT TO takes no parameters we support; anything is PARSE_PARAM. */
enum parse_err	parse_rcpt_params(struct str);

/* Parses "BDAT <size> [LAST]" arguments (RFC 3030 §2). */
enum parse_err	parse_bdat(struct str, long long *size, bool *last);

/* Length of the UTF-8 sequence at s (at most n bytes, n > 0), 0 when it
 * is malformed: overlong, a surrogate, past U+10FFFF (RFC 3629). */
size_t		parse_utf8_len(const unsigned char *s, size_t n);
/* True when the bytes are well-formed UTF-8 (RFC 3629). */
bool		utf8_valid(const char *, size_t);

#endif
