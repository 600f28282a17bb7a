/*
 * mime.c: the MIME walk (mime.h). GMime parses; this file decides what of
 * a message becomes a feature and keeps every walk within its limits and
 * its CPU budget. GMime is initialised once per process, on first use.
 *
 * The budget reaches into GMime's parser through the stream it reads: a
 * memory stream (a GMimeStreamMem subclass) whose read() ends the stream
 * once the budget is spent, so a parse that would take seconds stops
 * within one 4 KiB read of the budget and yields what it had built.
 */
#include <gmime/gmime.h>
#include <pthread.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "../core/buf.h"
#include "html.h"
#include "mime.h"
#include "tokenize.h"

struct walk {
	const struct mime_limits	*lim;
	struct tok			*t;
	struct mime_stats		*st;
	struct buf			 html;	/* reused for each HTML part */
	struct mime_budget		*b;	/* NULL: none */
};

static pthread_once_t gmime_once = PTHREAD_ONCE_INIT;

static void
gmime_start(void)
{
	g_mime_init();
}

static long long
thread_cpu_ns(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) == -1)
		return 0;
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

void
mime_budget_start(struct mime_budget *b, long long limit_ns,
    const atomic_bool *cancel)
{
	b->limit_ns = limit_ns > 0 ? limit_ns : 0;
	b->start_ns = thread_cpu_ns();
	b->cancel = cancel;
	b->spent = false;
}

bool
mime_budget_spent(struct mime_budget *b)
{
	if (b->spent)
		return true;
	if (b->cancel != NULL && atomic_load(b->cancel))
		b->spent = true;
	else if (b->limit_ns > 0 && thread_cpu_ns() - b->start_ns >=
	    b->limit_ns)
		b->spent = true;
	return b->spent;
}

/* The message as GMime reads it: a memory stream that ends early once
 * the budget is spent. Substreams (parts' content) are plain memory
 * streams over the same bytes. */
typedef struct {
	GMimeStreamMem		 parent;
	struct mime_budget	*budget;
} BudgetStream;

typedef struct {
	GMimeStreamMemClass	 parent_class;
} BudgetStreamClass;

GType budget_stream_get_type(void);
G_DEFINE_TYPE(BudgetStream, budget_stream, GMIME_TYPE_STREAM_MEM)

static ssize_t
budget_read(GMimeStream *s, char *buf, size_t len)
{
	BudgetStream *b = (BudgetStream *)s;

	if (b->budget != NULL && mime_budget_spent(b->budget))
		return 0;
	return GMIME_STREAM_CLASS(budget_stream_parent_class)->read(s, buf,
	    len);
}

static gboolean
budget_eos(GMimeStream *s)
{
	BudgetStream *b = (BudgetStream *)s;

	if (b->budget != NULL && b->budget->spent)
		return TRUE;
	return GMIME_STREAM_CLASS(budget_stream_parent_class)->eos(s);
}

static void
budget_stream_class_init(BudgetStreamClass *klass)
{
	GMimeStreamClass *sc = GMIME_STREAM_CLASS(klass);

	sc->read = budget_read;
	sc->eos = budget_eos;
}

static void
budget_stream_init(BudgetStream *s)
{
	s->budget = NULL;
}

/* True once the walk's budget is spent; marks the read as cut short. */
static bool
walk_spent(struct walk *w)
{
	if (w->b == NULL || !mime_budget_spent(w->b))
		return false;
	w->st->budget = w->st->truncated = true;
	return true;
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

	if (walk_spent(w) ||
	    (text = g_mime_text_part_get_text(GMIME_TEXT_PART(o))) == NULL)
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
static GMimeMessage	*mime_parse(const char *, size_t,
			    struct mime_budget *);

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
	if (walk_spent(w))
		return;
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
	mime_scan_budget(msg, len, lim, NULL, t, st);
}

void
mime_scan_budget(const char *msg, size_t len, const struct mime_limits *lim,
    struct mime_budget *b, struct tok *t, struct mime_stats *st)
{
	struct walk	 w = { lim, t, st, { 0 }, b };
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
	if ((m = mime_parse(msg, len, b)) == NULL) {
		if (!walk_spent(&w))
			tok_text(t, "", msg, walk_budget(&w, len));
	} else {
		walk_headers(&w, GMIME_OBJECT(m));
		if (g_mime_message_get_mime_part(m) != NULL)
			walk_object(&w, g_mime_message_get_mime_part(m), 0);
		g_object_unref(m);
	}
	(void)walk_spent(&w);	/* spent in the last part: say so */
	buf_free(&w.html);
}

/* Parses msg within the budget; NULL when GMime finds no message in it. */
static GMimeMessage *
mime_parse(const char *msg, size_t len, struct mime_budget *b)
{
	GMimeStream	*stream;
	GMimeParser	*parser;
	GMimeMessage	*m;
	GByteArray	*bytes;

	pthread_once(&gmime_once, gmime_start);
	bytes = g_byte_array_sized_new((guint)len);
	g_byte_array_append(bytes, (const guint8 *)msg, (guint)len);
	stream = g_object_new(budget_stream_get_type(), NULL);
	g_mime_stream_mem_set_byte_array(GMIME_STREAM_MEM(stream), bytes);
	g_mime_stream_mem_set_owner(GMIME_STREAM_MEM(stream), TRUE);
	((BudgetStream *)stream)->budget = b;
	parser = g_mime_parser_new_with_stream(stream);
	g_object_unref(stream);
	m = g_mime_parser_construct_message(parser, NULL);
	g_object_unref(parser);
	return m;
}

/* Calls fn for each message/rfc822 child of o, down to max_depth. */
static int
each_attached(GMimeObject *o, const struct mime_limits *lim,
    struct mime_budget *b, unsigned depth,
    void (*fn)(void *, const char *, size_t), void *arg, int *left)
{
	GMimeMessage	*m;
	char		*raw;
	int		 i, n = 0;

	if (o == NULL || depth > (unsigned)lim->max_depth || *left <= 0 ||
	    (b != NULL && mime_budget_spent(b)))
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
		    i), lim, b, depth + 1, fn, arg, left);
	return n;
}

int
mime_each_attached(const char *msg, size_t len,
    const struct mime_limits *lim, struct mime_budget *b,
    void (*fn)(void *, const char *, size_t), void *arg)
{
	GMimeMessage	*m;
	int		 n, left = (int)lim->max_parts;

	if ((m = mime_parse(msg, len, b)) == NULL)
		return 0;
	n = each_attached(g_mime_message_get_mime_part(m), lim, b, 0, fn, arg,
	    &left);
	g_object_unref(m);
	return n;
}
