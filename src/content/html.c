/*
 * html.c: a forgiving HTML reader (html.h). It never builds a tree: one
 * pass over the bytes, tags read up to their '>', script and style
 * skipped, character references decoded. Malformed HTML is read as far
 * as it makes sense and never past len.
 */
#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include "../core/buf.h"
#include "html.h"
#include "tokenize.h"

struct html {
	const char	*s;
	size_t		 len, i;
	struct buf	*out;
	struct tok	*t;
	size_t		 imgs, links, text;
	bool		 hidden;
};

/* Case-insensitive search for needle in s[from..len). */
static size_t
find_ci(const char *s, size_t len, size_t from, const char *needle)
{
	size_t n = strlen(needle), i;

	for (i = from; i + n <= len; i++)
		if (strncasecmp(s + i, needle, n) == 0)
			return i;
	return len;
}

/* The value of attribute `name` inside a tag's bytes, or len 0. */
static size_t
tag_attr(const char *tag, size_t len, const char *name, const char **val)
{
	size_t	n = strlen(name), i, j;
	char	q;

	for (i = 0; i + n + 1 < len; i++) {
		if (strncasecmp(tag + i, name, n) != 0 || tag[i + n] != '=' ||
		    (i > 0 && tag[i - 1] != ' ' && tag[i - 1] != '\t' &&
		    tag[i - 1] != '\n' && tag[i - 1] != '\r'))
			continue;
		i += n + 1;
		q = tag[i];
		if (q == '"' || q == '\'') {
			for (j = ++i; j < len && tag[j] != q; j++)
				;
		} else {
			for (j = i; j < len && tag[j] != ' ' && tag[j] != '>';
			    j++)
				;
		}
		*val = tag + i;
		return j - i;
	}
	return 0;
}

/* Appends the UTF-8 encoding of code point c. */
static void
put_utf8(struct buf *b, unsigned long c)
{
	char	u[4];
	size_t	n;

	if (c == 0 || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		c = 0xfffd;
	if (c < 0x80) {
		u[0] = (char)c;
		n = 1;
	} else if (c < 0x800) {
		u[0] = (char)(0xc0 | (c >> 6));
		u[1] = (char)(0x80 | (c & 0x3f));
		n = 2;
	} else if (c < 0x10000) {
		u[0] = (char)(0xe0 | (c >> 12));
		u[1] = (char)(0x80 | ((c >> 6) & 0x3f));
		u[2] = (char)(0x80 | (c & 0x3f));
		n = 3;
	} else {
		u[0] = (char)(0xf0 | (c >> 18));
		u[1] = (char)(0x80 | ((c >> 12) & 0x3f));
		u[2] = (char)(0x80 | ((c >> 6) & 0x3f));
		u[3] = (char)(0x80 | (c & 0x3f));
		n = 4;
	}
	buf_add(b, u, n);
}

/* Decodes the character reference at h->i ('&'); false if it is none. */
static bool
html_entity(struct html *h)
{
	static const struct { const char *name; unsigned long c; } ent[] = {
		{ "amp", '&' }, { "lt", '<' }, { "gt", '>' }, { "quot", '"' },
		{ "apos", '\'' }, { "nbsp", ' ' }, { "copy", 0xa9 },
		{ "reg", 0xae }, { "euro", 0x20ac }, { "pound", 0xa3 },
	};
	const char	*s = h->s + h->i + 1;
	size_t		 left = h->len - h->i - 1, k, n;
	unsigned long	 c = 0;
	int		 base = 10, d;

	if (left > 0 && s[0] == '#') {
		k = 1;
		if (left > 1 && (s[1] == 'x' || s[1] == 'X')) {
			base = 16;
			k = 2;
		}
		for (n = k; n < left && n < k + 8; n++) {
			char ch = s[n];

			if (ch >= '0' && ch <= '9')
				d = ch - '0';
			else if (base == 16 && (ch | 0x20) >= 'a' &&
			    (ch | 0x20) <= 'f')
				d = (ch | 0x20) - 'a' + 10;
			else
				break;
			c = c * (unsigned long)base + (unsigned long)d;
		}
		if (n == k)
			return false;
		put_utf8(h->out, c);
		h->i += 1 + n + (n < left && s[n] == ';');
		return true;
	}
	for (k = 0; k < sizeof(ent) / sizeof(ent[0]); k++) {
		n = strlen(ent[k].name);
		if (left >= n && strncasecmp(s, ent[k].name, n) == 0) {
			put_utf8(h->out, ent[k].c);
			h->i += 1 + n + (n < left && s[n] == ';');
			return true;
		}
	}
	return false;
}

/* True when a style or tag hides its text (RFC-free folklore of spam:
 * display:none, visibility:hidden, zero or one pixel fonts). */
static bool
tag_hides(const char *tag, size_t len)
{
	const char	*v;
	size_t		 n;
	char		 style[256];
	size_t		 i, o = 0;

	if ((n = tag_attr(tag, len, "style", &v)) > 0) {
		for (i = 0; i < n && o + 1 < sizeof(style); i++)
			if (v[i] != ' ')
				style[o++] = v[i];
		style[o] = '\0';
		if (strcasestr(style, "display:none") != NULL ||
		    strcasestr(style, "visibility:hidden") != NULL ||
		    strcasestr(style, "font-size:0") != NULL ||
		    strcasestr(style, "font-size:1px") != NULL)
			return true;
	}
	if ((n = tag_attr(tag, len, "size", &v)) == 1 && v[0] == '1' &&
	    len >= 4 && strncasecmp(tag, "font", 4) == 0)
		return true;
	return false;
}

static bool
is_block(const char *name, size_t n)
{
	static const char *const blk[] = { "p", "br", "div", "tr", "td",
	    "li", "h1", "h2", "h3", "h4", "table", "title", "hr", "ul" };
	size_t k;

	for (k = 0; k < sizeof(blk) / sizeof(blk[0]); k++)
		if (strlen(blk[k]) == n && strncasecmp(blk[k], name, n) == 0)
			return true;
	return false;
}

static bool
tag_char(char c)
{
	return ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') ||
	    (c >= '0' && c <= '9');
}

/* Reads the tag at h->i ('<') and acts on it. */
static void
html_tag(struct html *h)
{
	const char	*s = h->s, *v;
	size_t		 i = h->i + 1, end, n, vn;

	if (h->len - i >= 3 && strncmp(s + i, "!--", 3) == 0) {
		end = find_ci(s, h->len, i + 3, "-->");
		h->i = end < h->len ? end + 3 : h->len;
		tok_feature(h->t, "html:", "comment", 7);
		return;
	}
	end = i;
	while (end < h->len && s[end] != '>')
		end++;
	h->i = end < h->len ? end + 1 : h->len;
	if (i < end && s[i] == '/')
		i++;
	for (n = 0; i + n < end && tag_char(s[i + n]); n++)
		;
	if (n == 0)
		return;
	tok_feature(h->t, "tag:", s + i, n);
	if (is_block(s + i, n))
		buf_addc(h->out, ' ');
	if ((n == 6 && strncasecmp(s + i, "script", 6) == 0) ||
	    (n == 5 && strncasecmp(s + i, "style", 5) == 0)) {
		if (s[h->i - 1] == '>' && s[i - 1] != '/') {
			end = find_ci(s, h->len, h->i, n == 6 ? "</script" :
			    "</style");
			h->i = end;
		}
		return;
	}
	if (n == 1 && (s[i] | 0x20) == 'a' &&
	    (vn = tag_attr(s + i, end - i, "href", &v)) > 0) {
		h->links++;
		tok_url(h->t, v, vn);
	}
	if (n == 3 && strncasecmp(s + i, "img", 3) == 0) {
		h->imgs++;
		if ((vn = tag_attr(s + i, end - i, "src", &v)) > 0)
			tok_url(h->t, v, vn);
	}
	if (!h->hidden && tag_hides(s + i, end - i)) {
		h->hidden = true;
		tok_feature(h->t, "html:", "hidden", 6);
	}
}

void
html_text(const char *s, size_t len, struct buf *out, struct tok *t)
{
	struct html	h = { s, len, 0, out, t, 0, 0, 0, false };
	size_t		j;

	while (h.i < len) {
		if (s[h.i] == '<') {
			html_tag(&h);
			continue;
		}
		if (s[h.i] == '&' && html_entity(&h))
			continue;
		for (j = h.i; j < len && s[j] != '<' && s[j] != '&'; j++)
			if ((unsigned char)s[j] > ' ')
				h.text++;
		if (j == h.i)
			j++;
		buf_add(out, s + h.i, j - h.i);
		h.i = j;
	}
	if (h.imgs > 0 && h.text < 200)
		tok_feature(t, "html:", "imgonly", 7);
	if (h.links > 0)
		tok_feature(t, "html:", h.links > 10 ? "links>10" :
		    "links", h.links > 10 ? 8 : 5);
}
