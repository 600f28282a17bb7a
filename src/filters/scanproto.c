/*
 * scanproto.c: clamd and spamd wire formats (scanproto.h). Pure: no I/O,
 * no allocation; every input length is checked before it is scanned.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "scanproto.h"

/* Copies up to max bytes of p, printable ASCII kept, others '?'. */
static void
keep_text(char *out, size_t max, const char *p, size_t n)
{
	size_t i;

	if (n > max)
		n = max;
	for (i = 0; i < n; i++)
		out[i] = p[i] > ' ' && p[i] < 0x7f ? p[i] : '?';
	out[n] = '\0';
}

static bool
ends_with(const char *p, size_t n, const char *s)
{
	size_t k = strlen(s);

	return n >= k && memcmp(p + n - k, s, k) == 0;
}

static bool
has(const char *p, size_t n, const char *s)
{
	size_t k = strlen(s), i;

	for (i = 0; i + k <= n; i++)
		if (memcmp(p + i, s, k) == 0)
			return true;
	return false;
}

enum clamd_result
scanproto_clamd(const char *p, size_t n, struct clamd_reply *out)
{
	size_t i;

	memset(out, 0, sizeof(*out));
	out->result = CLAMD_BAD;
	if (n > CLAMD_REPLY_MAX)
		return out->result;
	while (n > 0 && (p[n - 1] == '\n' || p[n - 1] == '\r' ||
	    p[n - 1] == ' '))
		n--;
	/* "12: stream: OK" in an IDSESSION. */
	for (i = 0; i < n && i < 10 && p[i] >= '0' && p[i] <= '9'; i++)
		;
	if (i > 0 && i + 1 < n && p[i] == ':' && p[i + 1] == ' ') {
		p += i + 2;
		n -= i + 2;
	}
	if (ends_with(p, n, " ERROR")) {
		out->result = has(p, n, "size limit exceeded") ? CLAMD_SIZE :
		    CLAMD_ERROR;
		keep_text(out->name, CLAMD_NAME_MAX, p, n - 6);
		return out->result;
	}
	if (n < 8 || memcmp(p, "stream: ", 8) != 0)
		return out->result;
	p += 8;
	n -= 8;
	if (n == 2 && memcmp(p, "OK", 2) == 0)
		return out->result = CLAMD_CLEAN;
	if (ends_with(p, n, " FOUND") && n > 6) {
		keep_text(out->name, CLAMD_NAME_MAX, p, n - 6);
		return out->result = CLAMD_FOUND;
	}
	return out->result;
}

/* A number of at most 31 characters at p (n bytes); -1 if none. */
static int
num(const char *p, size_t n, double *v)
{
	char	 b[32], *end;
	size_t	 i = 0;

	while (i < n && i < sizeof(b) - 1 && (p[i] == '-' || p[i] == '+' ||
	    p[i] == '.' || (p[i] >= '0' && p[i] <= '9')))
		i++;
	if (i == 0 || i == sizeof(b) - 1)
		return -1;
	memcpy(b, p, i);
	b[i] = '\0';
	*v = strtod(b, &end);
	if (*end != '\0' || !isfinite(*v))
		return -1;
	return (int)i;
}

static bool
rule_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	    (c >= '0' && c <= '9') || c == '_';
}

/* Adds a rule name (p, n) to out; bad names are skipped. */
static void
add_rule(struct spamd_reply *out, const char *p, size_t n)
{
	size_t	 i, at = strlen(out->rules);

	if (n == 0 || n > SPAMD_RULE_MAX)
		return;
	for (i = 0; i < n; i++)
		if (!rule_char(p[i]))
			return;
	if (at + (at > 0) + n > SPAMD_RULES_MAX) {
		out->dropped++;
		return;
	}
	if (at > 0)
		out->rules[at++] = ',';
	memcpy(out->rules + at, p, n);
	out->rules[at + n] = '\0';
	out->nrules++;
}

/* "Spam: True ; 1005.2 / 5.0" */
static int
spam_header(const char *p, size_t n, struct spamd_reply *out)
{
	size_t	 i = 0;
	int	 k;

	while (i < n && p[i] == ' ')
		i++;
	if (n - i >= 4 && strncasecmp(p + i, "True", 4) == 0)
		out->spam = true, i += 4;
	else if (n - i >= 3 && strncasecmp(p + i, "Yes", 3) == 0)
		out->spam = true, i += 3;
	else if (n - i >= 5 && strncasecmp(p + i, "False", 5) == 0)
		i += 5;
	else if (n - i >= 2 && strncasecmp(p + i, "No", 2) == 0)
		i += 2;
	else
		return -1;
	while (i < n && p[i] == ' ')
		i++;
	if (i >= n || p[i++] != ';')
		return -1;
	while (i < n && p[i] == ' ')
		i++;
	if ((k = num(p + i, n - i, &out->score)) == -1)
		return -1;
	for (i += (size_t)k; i < n && p[i] == ' '; i++)
		;
	if (i >= n || p[i++] != '/')
		return -1;
	while (i < n && p[i] == ' ')
		i++;
	if ((k = num(p + i, n - i, &out->threshold)) == -1)
		return -1;
	return 0;
}

/* The next line of [*p, end): its length without CR LF; *p moves past
 * it. -1 at the end of input without a line end. */
static long
line(const char **p, const char *end, size_t *len)
{
	const char *nl = memchr(*p, '\n', (size_t)(end - *p));
	const char *s = *p;

	if (nl == NULL)
		return -1;
	*len = (size_t)(nl - s);
	if (*len > 0 && s[*len - 1] == '\r')
		(*len)--;
	*p = nl + 1;
	return 0;
}

/* SYMBOLS: "A,B,C" on one line, its line end optional. */
static void
body_symbols(const char *p, size_t n, struct spamd_reply *out)
{
	size_t i = 0, start;

	while (i < n) {
		while (i < n && (p[i] == ',' || p[i] == ' ' || p[i] == '\r' ||
		    p[i] == '\n'))
			i++;
		start = i;
		while (i < n && p[i] != ',' && p[i] != '\r' && p[i] != '\n')
			i++;
		add_rule(out, p + start, i - start);
	}
}

/* REPORT: after the "---- ----" line, " 1.0 RULE description" lines;
 * lines that do not start with a score (wrapped descriptions) skipped. */
static void
body_report(const char *p, size_t n, struct spamd_reply *out)
{
	const char	*end = p + n, *s;
	size_t		 len, i, start;
	bool		 table = false;
	double		 v;
	int		 k;

	while (p < end) {
		s = p;
		if (line(&p, end, &len) == -1) {
			len = (size_t)(end - s);
			p = end;
		}
		if (len > SPAMD_LINE_MAX)
			continue;
		if (!table) {
			table = len >= 4 && memcmp(s, "----", 4) == 0;
			continue;
		}
		for (i = 0; i < len && s[i] == ' '; i++)
			;
		if ((k = num(s + i, len - i, &v)) == -1)
			continue;
		for (i += (size_t)k; i < len && s[i] == ' '; i++)
			;
		for (start = i; i < len && s[i] != ' '; i++)
			;
		add_rule(out, s + start, i - start);
	}
}

int
scanproto_spamd(const char *p, size_t n, bool report,
    struct spamd_reply *out)
{
	const char	*end = p + n, *s, *body;
	size_t		 len, hlen = 0;
	double		 clen = -1;
	bool		 score = false;
	int		 k;

	memset(out, 0, sizeof(*out));
	s = p;
	if (line(&p, end, &len) == -1 || len > SPAMD_LINE_MAX ||
	    len < 8 || memcmp(s, "SPAMD/1.", 8) != 0)
		return -1;
	for (k = 8; (size_t)k < len && s[k] >= '0' && s[k] <= '9'; k++)
		;
	if ((size_t)k == 8 || (size_t)k >= len || s[k] != ' ')
		return -1;
	out->code = 0;
	for (k++; (size_t)k < len && s[k] >= '0' && s[k] <= '9' &&
	    out->code < 1000; k++)
		out->code = out->code * 10 + (s[k] - '0');
	if (out->code >= 1000 || ((size_t)k < len && s[k] != ' '))
		return -1;
	for (;;) {
		s = p;
		if (line(&p, end, &len) == -1 || len > SPAMD_LINE_MAX ||
		    (hlen += len + 2) > SPAMD_HEAD_MAX)
			return out->code != 0 && p >= end ? 0 : -1;
		if (len == 0)
			break;
		if (len >= 5 && strncasecmp(s, "Spam:", 5) == 0) {
			if (spam_header(s + 5, len - 5, out) == -1)
				return -1;
			score = true;
		} else if (len >= 15 &&
		    strncasecmp(s, "Content-length:", 15) == 0) {
			for (k = 15; (size_t)k < len && s[k] == ' '; k++)
				;
			if (num(s + k, len - (size_t)k, &clen) == -1 ||
			    clen < 0)
				return -1;
		}
	}
	if (out->code != 0)
		return 0;
	if (!score)
		return -1;
	body = p;
	len = (size_t)(end - body);
	if (clen >= 0 && clen < (double)len)
		len = (size_t)clen;
	if (report)
		body_report(body, len, out);
	else
		body_symbols(body, len, out);
	return 0;
}

int
scanproto_spamd_head(char *out, size_t n, bool report, size_t len,
    const char *user)
{
	size_t	 i;
	int	 w;

	if (user != NULL && user[0] != '\0') {
		if (strlen(user) > SPAMD_USER_MAX)
			return -1;
		for (i = 0; user[i] != '\0'; i++)
			if (user[i] <= ' ' || user[i] >= 0x7f)
				return -1;
		w = snprintf(out, n, "%s SPAMC/1.5\r\nContent-length: %zu\r\n"
		    "User: %s\r\n\r\n", report ? "REPORT" : "SYMBOLS", len,
		    user);
	} else
		w = snprintf(out, n, "%s SPAMC/1.5\r\nContent-length: %zu\r\n"
		    "\r\n", report ? "REPORT" : "SYMBOLS", len);
	return w < 0 || (size_t)w >= n ? -1 : w;
}
