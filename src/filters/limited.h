/*
 * limited.h: limited addresses (issue 11, the seed's spamgourmet
 * plugin): the forms of a recipient's local part that the limited
 * filter recognises, parsed without any other part of moat (the fuzz
 * harness links limited_parse.c alone).
 *
 *   user<sep>N<sep><count>       accepts N messages (1 <= N <= max)
 *   user<sep><date><sep>DATE     accepts mail through the end of DATE
 *
 * <sep>, <count>, <date> and DATE's format are configured per domain
 * (defaults ".", "count", "date", "DD-MM-YYYY"). Anything else, and a
 * malformed form (N = 0, N past max, a leading zero, 31-02-2026), is not
 * a limited address (LIMITED_NONE).
 */
#ifndef MOAT_LIMITED_H
#define MOAT_LIMITED_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#define LIMITED_SEP_MAX		8	/* bytes of a separator */
#define LIMITED_KEYWORD_MAX	32	/* bytes of a keyword */
#define LIMITED_FORMAT_MAX	32	/* bytes of a date format */

enum limited_kind { LIMITED_NONE, LIMITED_COUNT, LIMITED_DATE };

struct limited_form {
	const char	*sep;
	const char	*count_kw;
	const char	*date_kw;
	const char	*date_fmt;	/* DD, MM, YYYY once each */
	long long	 max;		/* largest N */
};

struct limited_addr {
	enum limited_kind	kind;
	size_t			user_len;	/* the user: local[0..len) */
	long long		n;		/* LIMITED_COUNT */
	int			y, m, d;	/* LIMITED_DATE */
};

/* 0 when fmt is a usable date format: DD, MM and YYYY once each, other
 * characters neither letters nor digits; else -1 with err set. */
int	limited_format_check(const char *fmt, char *err, size_t errlen);
/* 0 when s is a usable separator (1 to LIMITED_SEP_MAX bytes of
 * punctuation other than '@', '"', '\\'), or keyword (1 to
 * LIMITED_KEYWORD_MAX letters, digits, '-' or '_'); else -1. */
int	limited_sep_check(const char *s);
int	limited_keyword_check(const char *s);
/* Parses the local part (len bytes, not NUL-terminated) under form. */
enum limited_kind limited_parse(const struct limited_form *,
	    const char *local, size_t len, struct limited_addr *);
/* True when a date address has expired at now: its day (server local
 * time) is over. */
bool	limited_date_over(const struct limited_addr *, time_t now);

#endif
