/*
 * mime.c: the MIME walk (mime.h). GMime parses; this file decides what of
 * a message becomes a feature and keeps every walk within its limits.
 * GMime is initialised once per process, on first use.
 */
#include <gmime/gmime.h>
#include <pthread.h>
#include <string.h>
#include <strings.h>

#include "../core/buf.h"
#include "html.h"
#include "mime.h"
#include "tokenize.h"

struct walk {
	const struct mime_limits	*lim;
	struct tok			*t;
	struct mime_stats		*st;
	struct buf			 html;	/* reused for each HTML part */
};

static pthread_once_t gmime_once = PTHREAD_ONCE_INIT;

static void
gmime_start(void)
{
	g_mime_init();
}

/* Text budget left; 0 once max_bytes of text have been read. */
static size_t
walk_budget(struct walk *w, size_t want)
{
	size_t left = (size_t)w->lim->max_bytes > w->st->text ?
	    (size_t)w->lim->max_bytes - w->st->text : 0;

	if (want > left) {
		w->st->truncated = true;
		want = left;
	}
	w->st->text += want;
	return want;
}

/* "Name <user@example.com>" -> "example.com" after the last '@'. */
static void
addr_domain(struct tok *t, const char *prefix, const char *v)
{
	const char	*at = strrchr(v, '@');
	size_t		 n;

	if (at == NULL)
		return;
	for (n = 0; at[1 + n] != '\0' && at[1 + n] != '>' &&
	    at[1 + n] != ' ' && at[1 + n] != ')'; n++)
		;
	tok_feature(t, prefix, at + 1, n);
}

/* One header field: which prefix and how much of it becomes features. */
static void
walk_header(struct walk *w, const char *name, const char *value)
{
	struct tok	*t = w->t;
	size_t		 vl = strlen(value);
	char		 pfx[TOK_PREFIX_MAX + 1];

	/* Our own verdict headers must not teach the classifier. */
	if (strncasecmp(name, "x-spam-", 7) == 0)
		return;
	tok_feature(t, "hn:", name, strlen(name));
	vl = walk_budget(w, vl > 2048 ? 2048 : vl);
	if (strcasecmp(name, "subject") == 0) {
		tok_text(t, "s:", value, vl);
		if (vl == 0)
			tok_feature(t, "s:", "empty", 5);
	} else if (strcasecmp(name, "from") == 0 ||
	    strcasecmp(name, "reply-to") == 0 ||
	    strcasecmp(name, "return-path") == 0 ||
	    strcasecmp(name, "sender") == 0) {
		tok_words(t, "f:", value, vl);
		addr_domain(t, "fd:", value);
	} else if (strcasecmp(name, "to") == 0 ||
	    strcasecmp(name, "cc") == 0) {
		tok_words(t, "to:", value, vl);
	} else if (strcasecmp(name, "received") == 0) {
		tok_words(t, "r:", value, vl);
	} else if (strcasecmp(name, "message-id") == 0) {
		addr_domain(t, "mid:", value);
	} else if (strcasecmp(name, "x-mailer") == 0 ||
	    strcasecmp(name, "user-agent") == 0) {
		tok_text(t, "xm:", value, vl);
	} else if (strcasecmp(name, "date") != 0 &&
	    strcasecmp(name, "content-type") != 0) {
		snprintf(pfx, sizeof(pfx), "h:%.30s:", name);
		for (char *p = pfx; *p != '\0'; p++)
			if (*p >= 'A' && *p <= 'Z')
				*p += 'a' - 'A';
		tok_words(t, pfx, value, vl);
	}
}

static void
walk_headers(struct walk *w, GMimeObject *o)
{
	GMimeHeaderList	*hl = g_mime_object_get_header_list(o);
	int		 i, n;

	if (hl == NULL)
		return;
	n = g_mime_header_list_get_count(hl);
	if (n > MIME_MAX_HEADERS) {
		n = MIME_MAX_HEADERS;
		w->st->truncated = true;
	}
	for (i = 0; i < n; i++) {
		GMimeHeader	*h = g_mime_header_list_get_header_at(hl, i);
		const char	*name = g_mime_header_get_name(h);
		const char	*val = g_mime_header_get_value(h);

		if (name != NULL && val != NULL)
			walk_header(w, name, val);
	}
}

/* Type, charset and file name of a part. */
static void
walk_part_meta(struct walk *w, GMimeObject *o, bool text)
{
	GMimeContentType	*ct = g_mime_object_get_content_type(o);
	const char		*cs, *fn, *dot;
	char			*mt;

	if (ct == NULL)
		return;
	if ((mt = g_mime_content_type_get_mime_type(ct)) != NULL) {
		tok_feature(w->t, text ? "ct:" : "att:", mt, strlen(mt));
		g_free(mt);
	}
	if ((cs = g_mime_content_type_get_parameter(ct, "charset")) != NULL)
		tok_feature(w->t, "cs:", cs, strlen(cs));
	if (!GMIME_IS_PART(o) ||
	    (fn = g_mime_part_get_filename(GMIME_PART(o))) == NULL)
		return;
	tok_words(w->t, "fn:", fn, strlen(fn));
	if ((dot = strrchr(fn, '.')) != NULL)
		tok_feature(w->t, "ext:", dot + 1, strlen(dot + 1));
}

static void
walk_text(struct walk *w, GMimeObject *o)
{
	GMimeContentType	*ct = g_mime_object_get_content_type(o);
	char			*text;
	size_t			 n;

	if ((text = g_mime_text_part_get_text(GMIME_TEXT_PART(o))) == NULL)
		return;
	n = walk_budget(w, strlen(text));
	if (ct != NULL && g_mime_content_type_is_type(ct, "text", "html")) {
		buf_reset(&w->html);
		html_text(text, n, &w->html, w->t);
		tok_text(w->t, "", w->html.data != NULL ? w->html.data : "",
		    w->html.len);
	} else {
		tok_text(w->t, "", text, n);
	}
	g_free(text);
}

static void		 walk_object(struct walk *, GMimeObject *, unsigned);
static GMimeMessage	*mime_parse(const char *, size_t);

static void
walk_multipart(struct walk *w, GMimeMultipart *mp, unsigned depth)
{
	GMimeContentType	*ct;
	const char		*sub;
	int			 i, n = g_mime_multipart_get_count(mp);

	ct = g_mime_object_get_content_type(GMIME_OBJECT(mp));
	if (ct != NULL &&
	    (sub = g_mime_content_type_get_media_subtype(ct)) != NULL)
		tok_feature(w->t, "mp:", sub, strlen(sub));
	for (i = 0; i < n; i++)
		walk_object(w, g_mime_multipart_get_part(mp, i), depth + 1);
}

static void
walk_object(struct walk *w, GMimeObject *o, unsigned depth)
{
	GMimeMessage *m;

	if (depth > w->st->depth)
		w->st->depth = depth;
	if (depth > (unsigned)w->lim->max_depth ||
	    w->st->parts >= (unsigned)w->lim->max_parts) {
		w->st->truncated = true;
		return;
	}
	if (GMIME_IS_MULTIPART(o)) {
		walk_multipart(w, GMIME_MULTIPART(o), depth);
	} else if (GMIME_IS_MESSAGE_PART(o)) {
		m = g_mime_message_part_get_message(GMIME_MESSAGE_PART(o));
		if (m != NULL) {
			walk_headers(w, GMIME_OBJECT(m));
			if (g_mime_message_get_mime_part(m) != NULL)
				walk_object(w, g_mime_message_get_mime_part(m),
				    depth + 1);
		}
	} else if (GMIME_IS_TEXT_PART(o)) {
		w->st->parts++;
		walk_part_meta(w, o, true);
		walk_text(w, o);
	} else if (GMIME_IS_PART(o)) {
		w->st->parts++;
		walk_part_meta(w, o, false);
	}
}

void
mime_scan(const char *msg, size_t len, const struct mime_limits *lim,
    struct tok *t, struct mime_stats *st)
{
	struct walk	 w = { lim, t, st, { 0 } };
	GMimeMessage	*m;

	memset(st, 0, sizeof(*st));
	buf_init(&w.html, (size_t)lim->max_bytes);
	if (len > (size_t)lim->max_bytes) {
		/* Parse what fits, cut at a line end. */
		st->truncated = true;
		len = (size_t)lim->max_bytes;
		while (len > 0 && msg[len - 1] != '\n')
			len--;
	}
	if ((m = mime_parse(msg, len)) == NULL) {
		tok_text(t, "", msg, walk_budget(&w, len));
	} else {
		walk_headers(&w, GMIME_OBJECT(m));
		if (g_mime_message_get_mime_part(m) != NULL)
			walk_object(&w, g_mime_message_get_mime_part(m), 0);
		g_object_unref(m);
	}
	buf_free(&w.html);
}

/* Parses msg; NULL when GMime finds no message in it. */
static GMimeMessage *
mime_parse(const char *msg, size_t len)
{
	GMimeStream	*stream;
	GMimeParser	*parser;
	GMimeMessage	*m;

	pthread_once(&gmime_once, gmime_start);
	stream = g_mime_stream_mem_new_with_buffer(msg, len);
	parser = g_mime_parser_new_with_stream(stream);
	g_object_unref(stream);
	m = g_mime_parser_construct_message(parser, NULL);
	g_object_unref(parser);
	return m;
}

/* Calls fn for each message/rfc822 child of o, down to max_depth. */
static int
each_attached(GMimeObject *o, const struct mime_limits *lim, unsigned depth,
    void (*fn)(void *, const char *, size_t), void *arg, int *left)
{
	GMimeMessage	*m;
	char		*raw;
	int		 i, n = 0;

	if (o == NULL || depth > (unsigned)lim->max_depth || *left <= 0)
		return 0;
	if (GMIME_IS_MESSAGE_PART(o)) {
		m = g_mime_message_part_get_message(GMIME_MESSAGE_PART(o));
		if (m == NULL || (raw = g_mime_object_to_string(
		    GMIME_OBJECT(m), NULL)) == NULL)
			return 0;
		(*left)--;
		fn(arg, raw, strlen(raw));
		g_free(raw);
		return 1;
	}
	if (!GMIME_IS_MULTIPART(o))
		return 0;
	for (i = 0; i < g_mime_multipart_get_count(GMIME_MULTIPART(o)); i++)
		n += each_attached(g_mime_multipart_get_part(GMIME_MULTIPART(o),
		    i), lim, depth + 1, fn, arg, left);
	return n;
}

int
mime_each_attached(const char *msg, size_t len,
    const struct mime_limits *lim, void (*fn)(void *, const char *, size_t),
    void *arg)
{
	GMimeMessage	*m;
	int		 n, left = (int)lim->max_parts;

	if ((m = mime_parse(msg, len)) == NULL)
		return 0;
	n = each_attached(g_mime_message_get_mime_part(m), lim, 0, fn, arg,
	    &left);
	g_object_unref(m);
	return n;
}
