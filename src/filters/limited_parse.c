/*
 * limited_parse.c: the forms of a limited address (limited.h), parsed
 * from the end of the local part so that the user part may hold the
 * separator itself (john.doe.3.count is john.doe's).
 *
 * Invariants: reads only the len bytes given (the local part as the
 * client sent it, at most LIMIT_LOCAL_PART in the daemon, anything in
 * the fuzz harness); no allocation, no state; a form that does not
 * parse exactly is LIMITED_NONE, never a guess. Keywords match without
 * case, separators and the date's literal characters exactly.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "limited.h"

int
limited_format_check(const char *fmt, char *err, size_t errlen)
{
	const char	*p = fmt;
	int		 dd = 0, mm = 0, yyyy = 0;

	if (strlen(fmt) > LIMITED_FORMAT_MAX) {
		snprintf(err, errlen, "longer than %d bytes",
		    LIMITED_FORMAT_MAX);
		return -1;
	}
	while (*p != '\0') {
		if (strncmp(p, "YYYY", 4) == 0) {
			yyyy++;
			p += 4;
		} else if (strncmp(p, "DD", 2) == 0) {
			dd++;
			p += 2;
		} else if (strncmp(p, "MM", 2) == 0) {
			mm++;
			p += 2;
		} else if (isalnum((unsigned char)*p) || *p == '@' ||
		    *p == '"' || *p == '\\' || isspace((unsigned char)*p) ||
		    !isprint((unsigned char)*p)) {
			snprintf(err, errlen, "'%c' is neither DD, MM, YYYY "
			    "nor punctuation", isprint((unsigned char)*p) ?
			    *p : '?');
			return -1;
		} else
			p++;
	}
	if (dd != 1 || mm != 1 || yyyy != 1) {
		snprintf(err, errlen, "needs DD, MM and YYYY once each (as "
		    "in DD-MM-YYYY or YYYY-MM-DD)");
		return -1;
	}
	return 0;
}

static bool
punct_ok(int c)
{
	return ispunct(c) && c != '@' && c != '"' && c != '\\';
}

int
limited_sep_check(const char *s)
{
	size_t i, n = strlen(s);

	if (n == 0 || n > LIMITED_SEP_MAX)
		return -1;
	for (i = 0; i < n; i++)
		if (!punct_ok((unsigned char)s[i]))
			return -1;
	return 0;
}

int
limited_keyword_check(const char *s)
{
	size_t i, n = strlen(s);

	if (n == 0 || n > LIMITED_KEYWORD_MAX)
		return -1;
	for (i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '-' &&
		    s[i] != '_')
			return -1;
	return 0;
}

/* The number of digits at s (n of them), -1 when one is not a digit. */
static int
digits(const char *s, size_t n)
{
	int	v = 0;
	size_t	i;

	for (i = 0; i < n; i++) {
		if (!isdigit((unsigned char)s[i]))
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

static int
month_days(int y, int m)
{
	static const int days[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30,
	    31, 30, 31 };

	if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
		return 29;
	return days[m - 1];
}

/* The length of the date fmt describes (DD and MM 2, YYYY 4). */
static size_t
format_len(const char *fmt)
{
	size_t n = 0;

	while (*fmt != '\0') {
		if (strncmp(fmt, "YYYY", 4) == 0)
			fmt += 4, n += 4;
		else if (strncmp(fmt, "DD", 2) == 0 ||
		    strncmp(fmt, "MM", 2) == 0)
			fmt += 2, n += 2;
		else
			fmt++, n++;
	}
	return n;
}

/* Reads exactly format_len(fmt) bytes at s as a real calendar day. */
static int
parse_date(const char *fmt, const char *s, struct limited_addr *a)
{
	int y = -1, m = -1, d = -1;

	while (*fmt != '\0') {
		if (strncmp(fmt, "YYYY", 4) == 0) {
			y = digits(s, 4);
			fmt += 4, s += 4;
		} else if (strncmp(fmt, "DD", 2) == 0) {
			d = digits(s, 2);
			fmt += 2, s += 2;
		} else if (strncmp(fmt, "MM", 2) == 0) {
			m = digits(s, 2);
			fmt += 2, s += 2;
		} else if (*fmt++ != *s++)
			return -1;
	}
	if (y < 1900 || m < 1 || m > 12 || d < 1 || d > month_days(y, m))
		return -1;
	a->y = y;
	a->m = m;
	a->d = d;
	return 0;
}

/* user sep N sep count */
static bool
parse_count(const struct limited_form *f, const char *l, size_t len,
    struct limited_addr *a)
{
	size_t		sl = strlen(f->sep), kl = strlen(f->count_kw);
	size_t		end, start, i;
	long long	n = 0;

	if (sl == 0 || kl == 0 || len < 2 * sl + kl + 2)
		return false;
	end = len - kl - sl;	/* where the trailing sep starts */
	if (strncasecmp(l + len - kl, f->count_kw, kl) != 0 ||
	    memcmp(l + end, f->sep, sl) != 0)
		return false;
	for (start = end; start > 0 && isdigit((unsigned char)l[start - 1]);
	    start--)
		;
	/* 1 to 18 digits, no leading zero, a separator and a user ahead. */
	if (start == end || end - start > 18 || l[start] == '0' ||
	    start < sl + 1 || memcmp(l + start - sl, f->sep, sl) != 0)
		return false;
	for (i = start; i < end; i++)
		n = n * 10 + (l[i] - '0');
	if (n > f->max)
		return false;
	a->kind = LIMITED_COUNT;
	a->n = n;
	a->user_len = start - sl;
	return true;
}

/* user sep date sep DATE */
static bool
parse_datefm(const struct limited_form *f, const char *l, size_t len,
    struct limited_addr *a)
{
	size_t	sl = strlen(f->sep), kl = strlen(f->date_kw);
	size_t	dl = format_len(f->date_fmt), at;

	if (sl == 0 || kl == 0 || dl == 0 || len < 2 * sl + kl + dl + 1)
		return false;
	at = len - dl - sl - kl - sl;	/* the user's length */
	if (memcmp(l + at, f->sep, sl) != 0 ||
	    strncasecmp(l + at + sl, f->date_kw, kl) != 0 ||
	    memcmp(l + at + sl + kl, f->sep, sl) != 0 ||
	    parse_date(f->date_fmt, l + len - dl, a) == -1)
		return false;
	a->kind = LIMITED_DATE;
	a->user_len = at;
	return true;
}

enum limited_kind
limited_parse(const struct limited_form *f, const char *local, size_t len,
    struct limited_addr *a)
{
	memset(a, 0, sizeof(*a));
	if (parse_count(f, local, len, a) || parse_datefm(f, local, len, a))
		return a->kind;
	memset(a, 0, sizeof(*a));
	return LIMITED_NONE;
}

bool
limited_date_over(const struct limited_addr *a, time_t now)
{
	struct tm	tm;
	long		today, day;

	if (localtime_r(&now, &tm) == NULL)
		return false;
	today = (long)(tm.tm_year + 1900) * 10000 + (tm.tm_mon + 1) * 100 +
	    tm.tm_mday;
	day = (long)a->y * 10000 + a->m * 100 + a->d;
	return day < today;
}
