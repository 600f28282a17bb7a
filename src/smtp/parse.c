/*
 * parse.c: SMTP command, path and parameter parsers (see parse.h).
 *
 * Grammar references are RFC 5321 §4.1.2 unless noted. The parsers are
 * strict where laxness would let an address mean two things (trailing
 * dots, quoted '@', NUL) and lenient only where common clients differ
 * harmlessly (a space after "FROM:").
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "parse.h"

static const struct {
	const char	*name;
	enum verb	 verb;
} verbs[] = {
	{ "HELO", VERB_HELO }, { "EHLO", VERB_EHLO }, { "MAIL", VERB_MAIL },
	{ "RCPT", VERB_RCPT }, { "DATA", VERB_DATA }, { "BDAT", VERB_BDAT },
	{ "RSET", VERB_RSET }, { "NOOP", VERB_NOOP }, { "QUIT", VERB_QUIT },
	{ "VRFY", VERB_VRFY }, { "EXPN", VERB_EXPN }, { "HELP", VERB_HELP },
	{ "STARTTLS", VERB_STARTTLS }, { "AUTH", VERB_AUTH },
};

size_t
parse_utf8_len(const unsigned char *s, size_t n)
{
	size_t		len, i;
	unsigned	c = s[0], cp;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		len = 2, cp = c & 0x1f;
	else if (c >= 0xe0 && c <= 0xef)
		len = 3, cp = c & 0x0f;
	else if (c >= 0xf0 && c <= 0xf4)
		len = 4, cp = c & 0x07;
	else
		return 0;
	if (len > n)
		return 0;
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	/* Overlong forms, surrogates and code points past U+10FFFF. */
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		return 0;
	return len;
}

bool
utf8_valid(const char *s, size_t n)
{
	size_t i = 0, k;

	while (i < n) {
		if ((k = parse_utf8_len((const unsigned char *)s + i,
		    n - i)) == 0)
			return false;
		i += k;
	}
	return true;
}

enum parse_err
parse_command(const char *line, size_t len, struct command *cmd)
{
	size_t	i, vlen;

	cmd->verb = VERB_UNKNOWN;
	cmd->arg = STR_NULL;
	cmd->has8bit = false;
	for (i = 0; i < len; i++) {
		if (line[i] == '\0')
			return PARSE_NUL;
		if ((unsigned char)line[i] < 0x20 || line[i] == 0x7f)
			return PARSE_CTRL;
		if ((unsigned char)line[i] >= 0x80)
			cmd->has8bit = true;
	}
	for (vlen = 0; vlen < len && line[vlen] != ' '; vlen++)
		;
	for (i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++) {
		if (strlen(verbs[i].name) == vlen &&
		    strncasecmp(line, verbs[i].name, vlen) == 0) {
			cmd->verb = verbs[i].verb;
			break;
		}
	}
	/* The argument, without surrounding blanks. */
	i = vlen;
	while (i < len && line[i] == ' ')
		i++;
	while (len > i && (line[len - 1] == ' ' || line[len - 1] == '\t'))
		len--;
	cmd->arg = str_make(line + i, len - i);
	if (cmd->has8bit && !utf8_valid(line, len))
		return PARSE_BAD_UTF8;
	return PARSE_OK;
}

static bool
is_atext(unsigned char c)
{
	return isalnum(c) || (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c)
	    != NULL);
}

/* One sub-domain: Let-dig [Ldh-str], at most 63 octets (RFC 1035). */
static size_t
subdomain_len(const char *s, size_t n, bool utf8)
{
	size_t	i = 0, k;
	bool	last_hyphen = false;

	while (i < n) {
		unsigned char c = (unsigned char)s[i];

		if (isalnum(c)) {
			last_hyphen = false;
			i++;
		} else if (c == '-' && i > 0) {
			last_hyphen = true;
			i++;
		} else if (c >= 0x80 && utf8 &&
		    (k = parse_utf8_len((const unsigned char *)s + i,
		    n - i)) > 0) {
			last_hyphen = false;
			i += k;
		} else
			break;
	}
	if (i == 0 || last_hyphen || i > 63)
		return 0;
	return i;
}

/* An address literal "[...]": IPv4, "IPv6:...", or a General literal. */
static bool
literal_ok(const char *s, size_t n)
{
	size_t i;

	if (n < 3 || s[0] != '[' || s[n - 1] != ']')
		return false;
	for (i = 1; i < n - 1; i++) {
		unsigned char c = (unsigned char)s[i];

		/* dcontent = %d33-90 / %d94-126 */
		if (c < 33 || c > 126 || c == '[' || c == '\\' || c == ']')
			return false;
	}
	return true;
}

bool
parse_domain_ok(const char *s, size_t n, bool utf8)
{
	size_t i = 0, k;

	if (n == 0 || n > LIMIT_DOMAIN)
		return false;
	if (s[0] == '[')
		return literal_ok(s, n);
	for (;;) {
		if ((k = subdomain_len(s + i, n - i, utf8)) == 0)
			return false;
		i += k;
		if (i == n)
			return true;
		if (s[i] != '.')
			return false;
		i++;		/* a trailing dot leaves nothing: refused */
	}
}

/* Dot-string: Atom *("." Atom); returns its length or 0. */
static size_t
dotstring_len(const char *s, size_t n, bool utf8)
{
	size_t	i = 0, k;
	bool	need_atom = true;

	while (i < n) {
		unsigned char c = (unsigned char)s[i];

		if (is_atext(c)) {
			need_atom = false;
			i++;
		} else if (c >= 0x80 && utf8 &&
		    (k = parse_utf8_len((const unsigned char *)s + i,
		    n - i)) > 0) {
			need_atom = false;
			i += k;
		} else if (c == '.' && !need_atom) {
			need_atom = true;
			i++;
		} else
			break;
	}
	return need_atom ? 0 : i;
}

/* Quoted-string: DQUOTE *QcontentSMTP DQUOTE; returns its length or 0. */
static size_t
quoted_len(const char *s, size_t n, bool utf8)
{
	size_t i = 1, k;

	if (n < 2 || s[0] != '"')
		return 0;
	while (i < n) {
		unsigned char c = (unsigned char)s[i];

		if (c == '"')
			return i + 1;
		if (c == '\\') {
			if (i + 1 >= n || s[i + 1] < 32 || s[i + 1] > 126)
				return 0;
			i += 2;
		} else if (c >= 32 && c <= 126)
			i++;
		else if (c >= 0x80 && utf8 &&
		    (k = parse_utf8_len((const unsigned char *)s + i,
		    n - i)) > 0)
			i += k;
		else
			return 0;
	}
	return 0;
}

/* A-d-l ":" — "@a,@b:" — recorded in p->route_hosts and dropped. */
static enum parse_err
parse_route(const char *s, size_t n, size_t *used, struct path *p)
{
	size_t	i = 0, k, out = 0;

	while (i < n && s[i] == '@') {
		i++;
		for (k = i; k < n && s[k] != ',' && s[k] != ':'; k++)
			;
		if (!parse_domain_ok(s + i, k - i, p->utf8))
			return PARSE_SYNTAX;
		if (out + (k - i) + 2 > sizeof(p->route_hosts))
			return PARSE_TOO_LONG;
		if (out > 0)
			p->route_hosts[out++] = ',';
		memcpy(p->route_hosts + out, s + i, k - i);
		out += k - i;
		p->route_hosts[out] = '\0';
		if (k == n)
			return PARSE_SYNTAX;
		i = k + 1;
		if (s[k] == ':') {
			p->route = true;
			*used = i;
			return PARSE_OK;
		}
	}
	return PARSE_SYNTAX;
}

enum parse_err
parse_path(struct str s, struct path *p, struct str *rest, bool null_ok,
    bool postmaster_ok, bool utf8)
{
	const char	*q;
	size_t		 n, i = 0, k, at, end;
	enum parse_err	 e;

	memset(p, 0, sizeof(*p));
	*rest = STR_NULL;
	/* Tolerate "FROM: <a@b>": blanks before the path. */
	while (s.len > 0 && *s.p == ' ') {
		s.p++;
		s.len--;
	}
	if (s.len == 0 || s.p[0] != '<')
		return PARSE_SYNTAX;
	/* Find the closing '>' outside a quoted string. */
	for (end = 1, k = 0; end < s.len; end++) {
		if (k && s.p[end] == '\\' && end + 1 < s.len)
			end++;
		else if (s.p[end] == '"')
			k = !k;
		else if (!k && s.p[end] == '>')
			break;
	}
	if (end >= s.len)
		return PARSE_SYNTAX;
	if (end + 1 > LIMIT_PATH)
		return PARSE_TOO_LONG;
	*rest = str_make(s.p + end + 1, s.len - end - 1);
	q = s.p + 1;
	n = end - 1;
	p->utf8 = utf8;
	if (n == 0) {
		if (!null_ok)
			return PARSE_SYNTAX;
		p->null = true;
		p->utf8 = false;
		return PARSE_OK;
	}
	if (q[0] == '@') {
		if ((e = parse_route(q, n, &i, p)) != PARSE_OK)
			return e;
	}
	if (q[i] == '"') {
		k = quoted_len(q + i, n - i, utf8);
		p->quoted = true;
	} else
		k = dotstring_len(q + i, n - i, utf8);
	if (k == 0)
		return PARSE_SYNTAX;
	if (k > LIMIT_LOCAL_PART)
		return PARSE_TOO_LONG;
	memcpy(p->local, q + i, k);
	at = i + k;
	if (at == n) {
		/* RFC 5321 §4.1.1.3: "<Postmaster>" without a domain. */
		if (postmaster_ok && !p->route && strcasecmp(p->local,
		    "postmaster") == 0)
			goto done;
		return PARSE_SYNTAX;
	}
	if (q[at] != '@')
		return PARSE_SYNTAX;
	if (!parse_domain_ok(q + at + 1, n - at - 1, utf8))
		return n - at - 1 > LIMIT_DOMAIN ? PARSE_TOO_LONG :
		    PARSE_SYNTAX;
	memcpy(p->domain, q + at + 1, n - at - 1);
	p->literal = p->domain[0] == '[';
	for (i = 0; p->domain[i] != '\0'; i++)
		p->domain[i] = (char)tolower((unsigned char)p->domain[i]);
done:
	for (i = 0; i < n; i++)
		if ((unsigned char)q[i] >= 0x80)
			return PARSE_OK;
	p->utf8 = false;
	return PARSE_OK;
}

/* Next "KEY[=VALUE]" word of a parameter list. */
static bool
next_param(struct str *s, struct str *key, struct str *val)
{
	size_t i = 0, eq;

	while (s->len > 0 && *s->p == ' ') {
		s->p++;
		s->len--;
	}
	if (s->len == 0)
		return false;
	while (i < s->len && s->p[i] != ' ')
		i++;
	for (eq = 0; eq < i && s->p[eq] != '='; eq++)
		;
	*key = str_make(s->p, eq);
	*val = eq < i ? str_make(s->p + eq + 1, i - eq - 1) : STR_NULL;
	s->p += i;
	s->len -= i;
	return true;
}

/* Parses a decimal of at most 18 digits (no sign, no overflow). */
static int
parse_decimal(struct str v, long long *out)
{
	long long	n = 0;
	size_t		i;

	if (v.len == 0 || v.len > 18)
		return -1;
	for (i = 0; i < v.len; i++) {
		if (v.p[i] < '0' || v.p[i] > '9')
			return -1;
		n = n * 10 + (v.p[i] - '0');
	}
	*out = n;
	return 0;
}

static bool
hex_upper(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F');
}

/*
 * MAIL's AUTH= value (RFC 4954 §5): "<>" or xtext (RFC 3461 §4: "!" to
 * "~" except "+" and "=", and "+" with two upper-case hex digits), at
 * most 500 octets (a mailbox, xtext-encoded; the command line bounds it
 * anyway).
 */
static bool
xtext_ok(struct str v)
{
	size_t i;

	if (v.p == NULL || v.len == 0 || v.len > 500)
		return false;
	if (v.len == 2 && v.p[0] == '<' && v.p[1] == '>')
		return true;
	for (i = 0; i < v.len; i++) {
		unsigned char c = (unsigned char)v.p[i];

		if (c == '+') {
			if (i + 2 >= v.len || !hex_upper(v.p[i + 1]) ||
			    !hex_upper(v.p[i + 2]))
				return false;
			i += 2;
		} else if (c < '!' || c > '~' || c == '=')
			return false;
	}
	return true;
}

enum parse_err
parse_mail_params(struct str s, struct mail_params *mp)
{
	struct str key, val;

	mp->size = -1;
	mp->body = BODY_7BIT;
	mp->smtputf8 = false;
	mp->auth = false;
	if (s.len > 0 && *s.p != ' ')
		return PARSE_SYNTAX;
	while (next_param(&s, &key, &val)) {
		if (str_ieq(key, "SIZE")) {
			if (parse_decimal(val, &mp->size) == -1)
				return PARSE_PARAM_VALUE;
		} else if (str_ieq(key, "BODY")) {
			if (str_ieq(val, "7BIT"))
				mp->body = BODY_7BIT;
			else if (str_ieq(val, "8BITMIME"))
				mp->body = BODY_8BITMIME;
			else if (str_ieq(val, "BINARYMIME"))
				mp->body = BODY_BINARYMIME;
			else
				return PARSE_PARAM_VALUE;
		} else if (str_ieq(key, "SMTPUTF8") && val.p == NULL) {
			mp->smtputf8 = true;
		} else if (str_ieq(key, "AUTH")) {
			/* Taken and not used: we never pass it on, and a
			 * client's claim is worth nothing (RFC 4954 §5). */
			if (!xtext_ok(val))
				return PARSE_PARAM_VALUE;
			mp->auth = true;
		} else
			return PARSE_PARAM;
	}
	return PARSE_OK;
}

enum parse_err
parse_rcpt_params(struct str s)
{
	struct str key, val;

	if (s.len > 0 && *s.p != ' ')
		return PARSE_SYNTAX;
	if (next_param(&s, &key, &val))
		return PARSE_PARAM;
	return PARSE_OK;
}

enum parse_err
parse_bdat(struct str s, long long *size, bool *last)
{
	size_t i = 0;

	while (i < s.len && s.p[i] != ' ')
		i++;
	if (parse_decimal(str_make(s.p, i), size) == -1)
		return PARSE_SYNTAX;
	while (i < s.len && s.p[i] == ' ')
		i++;
	*last = false;
	if (i == s.len)
		return PARSE_OK;
	if (str_ieq(str_make(s.p + i, s.len - i), "LAST")) {
		*last = true;
		return PARSE_OK;
	}
	return PARSE_SYNTAX;
}
