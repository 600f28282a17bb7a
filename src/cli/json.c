/*
 * json.c: the strict, bounded JSON reader of json.h.
 *
 * One pass over the input, no recursion: open arrays and objects sit on
 * an explicit stack of max_depth entries. Values are appended to one
 * array in document order (a container's elements follow it, each
 * subtree is contiguous), linked by index while the array may still
 * move, and turned into pointers once it is final. Decoded strings go to
 * one buffer of the input's size: a string never decodes to more bytes
 * than its quoted form takes, terminator included.
 *
 * Every limit is checked before the memory it would cost is taken; on
 * any error the document is freed and nothing is returned.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../smtp/parse.h"
#include "json.h"

struct json_doc {
	struct json_value	*v;
	size_t			 nv, capv;
	char			*strs;		/* decoded strings */
	size_t			 nstrs, capstrs;
};

struct parser {
	const unsigned char		*in;
	size_t				 len, pos;
	const struct json_limits	*lim;
	struct json_doc			*doc;
	size_t				*stack;	/* open containers */
	unsigned			 depth;
	const char			*key;	/* name awaiting its value */
	size_t				 keylen;
	const struct json_value		**names; /* duplicate check */
	size_t				 capnames;
	const char			*err;
};

size_t
json_utf8_len(const unsigned char *s, size_t n)
{
	return parse_utf8_len(s, n);	/* one UTF-8 reader for all of moat */
}

static int
fail(struct parser *p, const char *msg)
{
	if (p->err == NULL)
		p->err = msg;
	return -1;
}

/* RFC 8259 §2: space, tab, line feed, carriage return; nothing else. */
static void
skip_ws(struct parser *p)
{
	while (p->pos < p->len && (p->in[p->pos] == ' ' ||
	    p->in[p->pos] == '\t' || p->in[p->pos] == '\n' ||
	    p->in[p->pos] == '\r'))
		p->pos++;
}

/* Appends a value of type t to the open container (or as the root);
 * its index, or -1 past max_values. */
static long
value_new(struct parser *p, enum json_type t)
{
	struct json_doc		*d = p->doc;
	struct json_value	*v, *nv;
	size_t			 cap;

	if (d->nv >= p->lim->max_values)
		return fail(p, "too many values");
	if (d->nv == d->capv) {
		cap = d->capv ? d->capv * 2 : 16;
		if (cap > p->lim->max_values)
			cap = p->lim->max_values;
		if ((nv = realloc(d->v, cap * sizeof(*nv))) == NULL)
			return fail(p, "out of memory");
		d->v = nv;
		d->capv = cap;
	}
	v = &d->v[d->nv];
	memset(v, 0, sizeof(*v));
	v->type = t;
	v->span = 1;
	if (p->depth > 0) {
		d->v[p->stack[p->depth - 1]].len++;
		v->key = p->key;
		v->keylen = p->keylen;
		p->key = NULL;
		p->keylen = 0;
	}
	return (long)d->nv++;
}

static int
hex4(struct parser *p, unsigned *out)
{
	unsigned	c, i, u = 0;

	if (p->len - p->pos < 4)
		return fail(p, "short \\u escape");
	for (i = 0; i < 4; i++) {
		c = p->in[p->pos + i];
		if (c >= '0' && c <= '9')
			c -= '0';
		else if (c >= 'a' && c <= 'f')
			c = c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			c = c - 'A' + 10;
		else
			return fail(p, "bad hex digit in \\u escape");
		u = u << 4 | c;
	}
	p->pos += 4;
	*out = u;
	return 0;
}

/* A \u escape (p->pos just past "\u"), a surrogate pair taken whole
 * (RFC 8259 §7); the code point in *cp. */
static int
unicode_escape(struct parser *p, unsigned *cp)
{
	unsigned	hi, lo;

	if (hex4(p, &hi) == -1)
		return -1;
	if (hi >= 0xdc00 && hi <= 0xdfff)
		return fail(p, "lone low surrogate");
	if (hi < 0xd800 || hi > 0xdbff) {
		*cp = hi;
		return 0;
	}
	if (p->len - p->pos < 2 || p->in[p->pos] != '\\' ||
	    p->in[p->pos + 1] != 'u')
		return fail(p, "high surrogate without its low half");
	p->pos += 2;
	if (hex4(p, &lo) == -1)
		return -1;
	if (lo < 0xdc00 || lo > 0xdfff)
		return fail(p, "high surrogate without its low half");
	*cp = 0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00);
	return 0;
}

/* Writes code point cp as UTF-8 at out; the bytes written. */
static size_t
utf8_put(char *out, unsigned cp)
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xc0 | cp >> 6);
		out[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (char)(0xe0 | cp >> 12);
		out[1] = (char)(0x80 | (cp >> 6 & 0x3f));
		out[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	out[0] = (char)(0xf0 | cp >> 18);
	out[1] = (char)(0x80 | (cp >> 12 & 0x3f));
	out[2] = (char)(0x80 | (cp >> 6 & 0x3f));
	out[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/* One escape (p->pos at the backslash), decoded to out; its bytes, or
 * 0 on error. */
static size_t
escape(struct parser *p, char *out)
{
	static const char	from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
	const char		*e;
	unsigned		 cp;

	if (++p->pos >= p->len)
		return fail(p, "unterminated string"), 0;
	if (p->in[p->pos] == 'u') {
		p->pos++;
		if (unicode_escape(p, &cp) == -1)
			return 0;
		return utf8_put(out, cp);
	}
	if (p->in[p->pos] == '\0' ||
	    (e = strchr(from, p->in[p->pos])) == NULL)
		return fail(p, "unknown escape"), 0;
	p->pos++;
	*out = to[e - from];
	return 1;
}

/*
 * A string (p->pos at its opening quote), decoded into the document's
 * string buffer: *out and *outlen. The decoded length is checked
 * against max_string before each character is stored.
 */
static int
string(struct parser *p, const char **out, size_t *outlen)
{
	struct json_doc	*d = p->doc;
	char		*s = d->strs + d->nstrs, tmp[4];
	size_t		 n = 0, k;
	unsigned char	 c;

	p->pos++;
	for (;;) {
		if (p->pos >= p->len)
			return fail(p, "unterminated string");
		c = p->in[p->pos];
		if (c == '"')
			break;
		if (c < 0x20)
			return fail(p, "control character in string");
		if (c == '\\') {
			if ((k = escape(p, tmp)) == 0)
				return -1;
		} else {
			if ((k = json_utf8_len(p->in + p->pos,
			    p->len - p->pos)) == 0)
				return fail(p, "invalid UTF-8");
			memcpy(tmp, p->in + p->pos, k);
			p->pos += k;
		}
		if (n + k > p->lim->max_string)
			return fail(p, "string too long");
		/* Cannot pass capstrs (see the module comment); checked
		 * all the same. */
		if (d->nstrs + n + k + 1 > d->capstrs)
			return fail(p, "string storage overrun");
		memcpy(s + n, tmp, k);
		n += k;
	}
	p->pos++;
	s[n] = '\0';
	d->nstrs += n + 1;
	*out = s;
	*outlen = n;
	return 0;
}

/* Consumes a run of digits; how many. */
static size_t
digits(struct parser *p)
{
	size_t	start = p->pos;

	while (p->pos < p->len && p->in[p->pos] >= '0' &&
	    p->in[p->pos] <= '9')
		p->pos++;
	return p->pos - start;
}

/* RFC 8259 §6: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static int
number(struct parser *p, double *out)
{
	size_t	start = p->pos, n;
	char	buf[JSON_NUMBER_MAX + 1], *end;
	double	d;

	if (p->pos < p->len && p->in[p->pos] == '-')
		p->pos++;
	if (p->pos < p->len && p->in[p->pos] == '0')
		p->pos++;
	else if (digits(p) == 0)
		return fail(p, "bad number");
	if (p->pos < p->len && p->in[p->pos] == '.') {
		p->pos++;
		if (digits(p) == 0)
			return fail(p, "bad number");
	}
	if (p->pos < p->len && (p->in[p->pos] == 'e' ||
	    p->in[p->pos] == 'E')) {
		p->pos++;
		if (p->pos < p->len && (p->in[p->pos] == '+' ||
		    p->in[p->pos] == '-'))
			p->pos++;
		if (digits(p) == 0)
			return fail(p, "bad number");
	}
	if ((n = p->pos - start) > JSON_NUMBER_MAX)
		return fail(p, "number too long");
	/* The grammar above is a subset of strtod's in the C locale, which
	 * moatctl never leaves. */
	memcpy(buf, p->in + start, n);
	buf[n] = '\0';
	errno = 0;
	d = strtod(buf, &end);
	if (end != buf + n)
		return fail(p, "bad number");
	if (isinf(d) || isnan(d))
		return fail(p, "number out of range");
	*out = d;
	return 0;
}

static int
literal(struct parser *p, const char *word, enum json_type t)
{
	size_t	n = strlen(word);

	if (p->len - p->pos < n || memcmp(p->in + p->pos, word, n) != 0)
		return fail(p, "unexpected character");
	p->pos += n;
	return value_new(p, t) == -1 ? -1 : 0;
}

/* A scalar value at p->pos. */
static int
scalar(struct parser *p)
{
	const char	*s;
	size_t		 n;
	double		 d;
	long		 i;

	switch (p->in[p->pos]) {
	case '"':
		if (string(p, &s, &n) == -1 ||
		    (i = value_new(p, JSON_STRING)) == -1)
			return -1;
		p->doc->v[i].str = s;
		p->doc->v[i].len = n;
		return 0;
	case 't':
		return literal(p, "true", JSON_TRUE);
	case 'f':
		return literal(p, "false", JSON_FALSE);
	case 'n':
		return literal(p, "null", JSON_NULL);
	case '-': case '0': case '1': case '2': case '3': case '4':
	case '5': case '6': case '7': case '8': case '9':
		if (number(p, &d) == -1 || (i = value_new(p, JSON_NUMBER)) == -1)
			return -1;
		p->doc->v[i].num = d;
		return 0;
	default:
		return fail(p, "unexpected character");
	}
}

static int
name_cmp(const void *a, const void *b)
{
	const struct json_value	*x = *(const struct json_value *const *)a;
	const struct json_value	*y = *(const struct json_value *const *)b;
	int			 c;

	c = memcmp(x->key, y->key, x->keylen < y->keylen ? x->keylen :
	    y->keylen);
	if (c != 0)
		return c;
	return x->keylen < y->keylen ? -1 : x->keylen > y->keylen;
}

/* -1 when the object at index o names a member twice: its members'
 * names sorted, neighbours compared (n log n, whatever the input). */
static int
no_duplicates(struct parser *p, size_t o)
{
	struct json_value	*v = p->doc->v;
	size_t			 n = v[o].len, i, c;

	if (n < 2)
		return 0;
	if (n > p->capnames) {
		free(p->names);
		if ((p->names = calloc(n, sizeof(*p->names))) == NULL) {
			p->capnames = 0;
			return fail(p, "out of memory");
		}
		p->capnames = n;
	}
	for (i = 0, c = o + 1; i < n; i++, c += v[c].span)
		p->names[i] = &v[c];
	qsort(p->names, n, sizeof(*p->names), name_cmp);
	for (i = 1; i < n; i++)
		if (name_cmp(&p->names[i - 1], &p->names[i]) == 0)
			return fail(p, "duplicate member name");
	return 0;
}

/* Opens an array or object at p->pos. */
static int
open_container(struct parser *p, enum json_type t)
{
	long	i;

	if (p->depth >= p->lim->max_depth)
		return fail(p, "nested too deep");
	if ((i = value_new(p, t)) == -1)
		return -1;
	p->stack[p->depth++] = (size_t)i;
	p->pos++;
	return 0;
}

/* Closes the innermost container at p->pos. */
static int
close_container(struct parser *p)
{
	size_t	o = p->stack[--p->depth];

	p->pos++;
	p->doc->v[o].span = p->doc->nv - o;
	if (p->doc->v[o].type == JSON_OBJECT)
		return no_duplicates(p, o);
	return 0;
}

/* A member name and its colon (p->pos at the name's quote). */
static int
member_name(struct parser *p)
{
	if (p->pos >= p->len || p->in[p->pos] != '"')
		return fail(p, "expected a member name");
	if (string(p, &p->key, &p->keylen) == -1)
		return -1;
	skip_ws(p);
	if (p->pos >= p->len || p->in[p->pos] != ':')
		return fail(p, "expected ':'");
	p->pos++;
	skip_ws(p);
	return 0;
}

/* The byte that closes the innermost container. */
static unsigned char
closer(const struct parser *p)
{
	return p->doc->v[p->stack[p->depth - 1]].type == JSON_OBJECT ?
	    '}' : ']';
}

/*
 * The grammar as a loop: read a value (opening containers as they come,
 * closing empty ones at once), then what follows it: a comma (and a name
 * within an object) or the innermost container's closing bracket, until
 * the outermost value is complete.
 */
static int
parse(struct parser *p)
{
	unsigned char	c;

	skip_ws(p);
	for (;;) {
		/* A value. */
		if (p->pos >= p->len)
			return fail(p, "unexpected end");
		c = p->in[p->pos];
		if (c == '[' || c == '{') {
			if (open_container(p, c == '[' ? JSON_ARRAY :
			    JSON_OBJECT) == -1)
				return -1;
			skip_ws(p);
			if (p->pos < p->len && p->in[p->pos] == closer(p)) {
				if (close_container(p) == -1)
					return -1;
			} else {
				if (c == '{' && member_name(p) == -1)
					return -1;
				continue;
			}
		} else if (scalar(p) == -1)
			return -1;
		/* What follows it. */
		for (;;) {
			skip_ws(p);
			if (p->depth == 0)
				return p->pos == p->len ? 0 :
				    fail(p, "text after the value");
			if (p->pos >= p->len)
				return fail(p, "unexpected end");
			c = p->in[p->pos];
			if (c == ',') {
				p->pos++;
				skip_ws(p);
				if (closer(p) == '}' && member_name(p) == -1)
					return -1;
				break;
			}
			if (c != closer(p))
				return fail(p, "expected ',' or a closing "
				    "bracket");
			if (close_container(p) == -1)
				return -1;
		}
	}
}

/* Turns the finished array's subtree order into child/next pointers. */
static void
link_values(struct json_doc *d)
{
	struct json_value	*v = d->v;
	size_t			 i, k, c;

	for (i = 0; i < d->nv; i++) {
		if ((v[i].type != JSON_ARRAY && v[i].type != JSON_OBJECT) ||
		    v[i].len == 0)
			continue;
		v[i].child = &v[i + 1];
		for (k = 1, c = i + 1; k < v[i].len; k++, c += v[c].span)
			v[c].next = &v[c + v[c].span];
	}
}

static bool
limits_ok(const struct json_limits *lim)
{
	return lim->max_depth <= JSON_DEPTH_MAX && lim->max_values >= 1 &&
	    lim->max_values <= JSON_VALUES_MAX;
}

struct json_doc *
json_parse(const char *text, size_t len, const struct json_limits *lim,
    struct json_error *err)
{
	struct parser	 p;
	struct json_doc	*d;
	int		 rc;

	memset(&p, 0, sizeof(p));
	err->offset = 0;
	err->msg = NULL;
	if (!limits_ok(lim)) {
		err->msg = "limits out of bounds";
		return NULL;
	}
	if (len > lim->max_input) {
		err->msg = "input too large";
		return NULL;
	}
	if ((d = calloc(1, sizeof(*d))) == NULL ||
	    (d->strs = malloc(len + 1)) == NULL ||
	    (p.stack = calloc(lim->max_depth + 1, sizeof(*p.stack))) == NULL) {
		err->msg = "out of memory";
		json_free(d);
		return NULL;
	}
	d->capstrs = len + 1;
	p.in = (const unsigned char *)text;
	p.len = len;
	p.lim = lim;
	p.doc = d;
	rc = parse(&p);
	free(p.stack);
	free(p.names);
	if (rc == -1) {
		err->offset = p.pos;
		err->msg = p.err != NULL ? p.err : "malformed";
		json_free(d);
		return NULL;
	}
	link_values(d);
	return d;
}

void
json_free(struct json_doc *d)
{
	if (d == NULL)
		return;
	free(d->v);
	free(d->strs);
	free(d);
}

const struct json_value *
json_root(const struct json_doc *d)
{
	return &d->v[0];
}

const struct json_value *
json_get(const struct json_value *obj, const char *key)
{
	const struct json_value	*m;
	size_t			 n = strlen(key);

	if (obj == NULL || obj->type != JSON_OBJECT)
		return NULL;
	for (m = obj->child; m != NULL; m = m->next)
		if (m->keylen == n && memcmp(m->key, key, n) == 0)
			return m;
	return NULL;
}

const char *
json_get_str(const struct json_value *obj, const char *key, size_t *len)
{
	const struct json_value *m = json_get(obj, key);

	if (m == NULL || m->type != JSON_STRING)
		return NULL;
	if (len != NULL)
		*len = m->len;
	return m->str;
}

bool
json_get_num(const struct json_value *obj, const char *key, double *out)
{
	const struct json_value *m = json_get(obj, key);

	if (m == NULL || m->type != JSON_NUMBER)
		return false;
	*out = m->num;
	return true;
}

int
json_get_bool(const struct json_value *obj, const char *key)
{
	const struct json_value *m = json_get(obj, key);

	if (m == NULL || (m->type != JSON_TRUE && m->type != JSON_FALSE))
		return -1;
	return m->type == JSON_TRUE;
}
