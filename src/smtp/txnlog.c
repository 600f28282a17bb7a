/*
 * txnlog.c: one JSON line per transaction and per refused connection
 * (ARCHITECTURE §6). Client text is escaped and cut short; every line is
 * bounded, well-formed UTF-8 and strict JSON, and is never dropped.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "../core/log.h"
#include "session_int.h"

double
timespec_ms(const struct timespec *a, const struct timespec *b)
{
	if (a->tv_sec == 0 || b->tv_sec == 0)
		return -1;
	return (double)(b->tv_sec - a->tv_sec) * 1e3 +
	    (double)(b->tv_nsec - a->tv_nsec) / 1e6;
}

/*
 * Bounds of the JSON lines. A line is built in a buffer of
 * TXNLOG_LINE_MAX bytes and is never dropped: the recipient list is cut
 * first (at most TXNLOG_RCPTS entries, and only while TXNLOG_TAIL bytes
 * stay free for the fields after it), and should the rest still not fit,
 * a short line with the identifying fields is logged instead. Every
 * string is cut at LIMIT_LOG_QUOTE input bytes on a character boundary.
 */
#define TXNLOG_LINE_MAX	(64 * 1024)
#define TXNLOG_RCPTS	100
#define TXNLOG_TAIL	(16 * 1024)
/* A symbol name is ours (a filter's), but is cut all the same. */
#define TXNLOG_SYMBOL	64

/*
 * Appends s as the body of a JSON string that any strict parser takes:
 * well-formed UTF-8 is copied, '"' and '\' are escaped, control bytes
 * become \u00XX, and so does every byte that is not part of a well-formed
 * character (read as Latin-1, as 8-bit headers mostly are). At most max
 * input bytes are used (0: all), never half a character. -1 past the buffer's cap
 * (the buffer may then hold part of the string).
 */
static int
json_esc(struct buf *b, const char *s, size_t n, size_t max)
{
	const unsigned char	*u = (const unsigned char *)s;
	size_t			 i, k;
	char			 esc[8];
	bool			 stray;

	for (i = 0; i < n; i += k) {
		if ((k = parse_utf8_len(u + i, n - i)) == 0)
			stray = true, k = 1;
		else
			stray = false;
		if (max > 0 && i + k > max)
			break;
		if (u[i] == '"' || u[i] == '\\') {
			esc[0] = '\\';
			esc[1] = (char)u[i];
			if (buf_add(b, esc, 2) == -1)
				return -1;
		} else if (stray || u[i] < 0x20 || u[i] == 0x7f) {
			snprintf(esc, sizeof(esc), "\\u%04x", u[i]);
			if (buf_add(b, esc, 6) == -1)
				return -1;
		} else if (buf_add(b, u + i, k) == -1)
			return -1;
	}
	return 0;
}

static int
json_str(struct buf *b, const char *key, const char *val, size_t n)
{
	if (buf_printf(b, ",\"%s\":\"", key) == -1 ||
	    json_esc(b, val, n, LIMIT_LOG_QUOTE) == -1)
		return -1;
	return buf_addc(b, '"');
}

static int
json_head(struct buf *b, struct session *s, const char *event)
{
	struct timespec	ts;
	struct tm	tm;
	char		when[32];

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
	if (buf_printf(b, "{\"time\":\"%s.%03ldZ\",\"event\":\"%s\","
	    "\"session\":\"%016llx\"", when, ts.tv_nsec / 1000000, event,
	    (unsigned long long)s->id) == -1)
		return -1;
	return json_str(b, "ip", s->ip, strnlen(s->ip, sizeof(s->ip)));
}

/* Logs b as one line; b's cap keeps a byte free for the newline. */
static void
json_emit(struct buf *b)
{
	b->max = TXNLOG_LINE_MAX;
	log_json(b);
	buf_free(b);
}

/*
 * Finds the first header "name:" in the message's header block and
 * copies its (unfolded, trimmed) value; out is "" when absent.
 */
static void
header_value(const char *m, size_t len, const char *name, char *out,
    size_t outlen)
{
	size_t	nl = strlen(name), i = 0, o = 0;

	out[0] = '\0';
	while (i < len) {
		if (m[i] == '\r' || m[i] == '\n')
			return;		/* end of headers */
		if (len - i > nl && strncasecmp(m + i, name, nl) == 0 &&
		    m[i + nl] == ':') {
			i += nl + 1;
			while (i < len && (m[i] == ' ' || m[i] == '\t'))
				i++;
			for (; i < len && o + 1 < outlen; i++) {
				if (m[i] == '\r' && i + 2 < len &&
				    m[i + 1] == '\n' && (m[i + 2] == ' ' ||
				    m[i + 2] == '\t')) {
					i += 1;
					continue;
				}
				if (m[i] == '\r' || m[i] == '\n')
					break;
				out[o++] = m[i];
			}
			out[o] = '\0';
			return;
		}
		while (i < len && m[i] != '\n')
			i++;
		i++;
	}
}

/* The envelope sender, "" for the null path, absent before MAIL. */
static int
json_from(struct buf *b, const struct txn *t)
{
	char addr[LIMIT_LOCAL_PART + LIMIT_DOMAIN + 2];

	if (t->from.null)
		return json_str(b, "from", "", 0);
	if (t->from.domain[0] == '\0')
		return 0;
	snprintf(addr, sizeof(addr), "%s@%s", t->from.local, t->from.domain);
	return json_str(b, "from", addr, strlen(addr));
}

static int
json_result(struct buf *b, const struct txn *t)
{
	if (t->result_text[0] == '\0')
		return json_str(b, "result", "aborted", 7);
	return json_str(b, "result", t->result_text, strnlen(t->result_text,
	    sizeof(t->result_text)));
}

/* One recipient as a JSON object; -1 past the buffer's cap. */
static int
json_rcpt(struct buf *b, const struct rcpt *r, bool first)
{
	if (buf_adds(b, first ? "{\"to\":\"" : ",{\"to\":\"") == -1 ||
	    json_esc(b, r->addr, strnlen(r->addr, sizeof(r->addr)),
	    LIMIT_LOG_QUOTE) == -1 ||
	    buf_printf(b, "\",\"accepted\":%s", r->accepted ? "true" :
	    "false") == -1 ||
	    json_str(b, "reply", r->reply, strnlen(r->reply,
	    sizeof(r->reply))) == -1 ||
	    (r->verdict.by != NULL && json_str(b, "by", r->verdict.by,
	    strlen(r->verdict.by)) == -1))
		return -1;
	return buf_addc(b, '}');
}

/*
 * The recipient list, bounded: the accepted recipients come first (up
 * to TXNLOG_RCPTS), the refused ones fill what room is left, all in the
 * order they were given, and none once the buffer is within TXNLOG_TAIL
 * of its cap. An untrusted client's thousand refused addresses cannot
 * push the delivered one out of the line. True when some were left out.
 */
static bool
json_rcpts(struct buf *b, const struct txn *t)
{
	size_t	i, acc = 0, nacc = 0, nrej = 0, room_rej, mark;
	size_t	cap = b->max;

	for (i = 0; i < t->nrcpt; i++)
		if (t->rcpts[i].accepted)
			acc++;
	room_rej = acc >= TXNLOG_RCPTS ? 0 : TXNLOG_RCPTS - acc;
	b->max = cap - TXNLOG_TAIL;
	for (i = 0; i < t->nrcpt; i++) {
		const struct rcpt *r = &t->rcpts[i];

		if (r->accepted ? nacc >= TXNLOG_RCPTS : nrej >= room_rej)
			continue;
		mark = b->len;
		if (json_rcpt(b, r, nacc + nrej == 0) == -1) {
			b->len = mark;
			b->data[mark] = '\0';
			break;
		}
		if (r->accepted)
			nacc++;
		else
			nrej++;
	}
	b->max = cap;
	return nacc + nrej < t->nrcpt;
}

/* Symbols, message fields, timings and result; -1 past the cap. */
static int
json_tail(struct buf *b, const struct txn *t)
{
	char		 hv[LIMIT_LOG_QUOTE + 8];
	const char	*m = t->msg.data + t->msg_start;
	size_t		 i, mlen = t->msg.len > t->msg_start ?
			    t->msg.len - t->msg_start : 0;

	if (t->t_data.tv_sec != 0) {
		/* hv holds a few bytes past the cut, so a character that
		 * starts before it is whole and json_esc keeps or drops it
		 * entire. */
		header_value(m, mlen, "Message-ID", hv, sizeof(hv));
		if (buf_printf(b, ",\"size\":%zu", mlen) == -1 ||
		    json_str(b, "message_id", hv, strlen(hv)) == -1)
			return -1;
		header_value(m, mlen, "Subject", hv, sizeof(hv));
		if (json_str(b, "subject", hv, strlen(hv)) == -1)
			return -1;
	}
	if (buf_printf(b, ",\"score\":%.2f,\"symbols\":{", t->score) == -1)
		return -1;
	for (i = 0; i < t->nsym && i < LIMIT_SYMBOLS; i++)
		if (buf_adds(b, i ? ",\"" : "\"") == -1 ||
		    json_esc(b, t->sym[i].name, strlen(t->sym[i].name),
		    TXNLOG_SYMBOL) == -1 ||
		    buf_printf(b, "\":%.2f", t->sym[i].score) == -1)
			return -1;
	if (buf_printf(b, "},\"ms\":{\"data\":%.1f,\"queue\":%.1f}",
	    timespec_ms(&t->t_data, &t->t_data_end),
	    timespec_ms(&t->t_data_end, &t->t_queued)) == -1)
		return -1;
	/* The ID a refused message was kept under (deliver/quarantine). */
	if (t->quarantine[0] != '\0' && json_str(b, "quarantine",
	    t->quarantine, strnlen(t->quarantine,
	    sizeof(t->quarantine))) == -1)
		return -1;
	return json_result(b, t);
}

/*
 * The session's evidence (what each check saw, its weight and lookup
 * time) and what observe-mode filters would have refused, in this
 * transaction or before it: "evidence":[{"filter":..,"name":..,
 * "score":..,"ms":..,"detail":..}], "would_reject":[{"filter":..,
 * "stage":..,"rcpt":..,"reply":..}]. Bounded by LIMIT_EVIDENCE and
 * LIMIT_WOULD.
 */
static int
json_evidence(struct buf *b, const struct session *s, unsigned txn)
{
	const struct session_evidence	*sev = s->sev;
	size_t				 i, n = 0;

	if (sev == NULL)
		return 0;
	if (sev->nev > 0 && buf_adds(b, ",\"evidence\":[") == -1)
		return -1;
	for (i = 0; i < sev->nev; i++) {
		const struct evidence *e = &sev->ev[i];

		if (buf_adds(b, i ? ",{" : "{") == -1 ||
		    buf_printf(b, "\"filter\":\"%s\",\"name\":\"",
		    e->filter) == -1 ||
		    json_esc(b, e->name, strlen(e->name), TXNLOG_SYMBOL) == -1 ||
		    buf_printf(b, "\",\"score\":%.2f,\"ms\":%.1f", e->score,
		    e->ms) == -1 ||
		    json_str(b, "detail", e->detail, strnlen(e->detail,
		    sizeof(e->detail))) == -1 || buf_addc(b, '}') == -1)
			return -1;
	}
	if (sev->nev > 0 && buf_addc(b, ']') == -1)
		return -1;
	for (i = 0; i < sev->nw; i++) {
		const struct would *w = &sev->w[i];

		if (w->stage >= STAGE_MAIL && w->txn != txn)
			continue;
		if (buf_adds(b, n++ ? ",{" : ",\"would_reject\":[{") == -1 ||
		    buf_printf(b, "\"filter\":\"%s\",\"stage\":\"%s\"",
		    w->filter, stage_names[w->stage]) == -1 ||
		    json_str(b, "rcpt", w->rcpt, strnlen(w->rcpt,
		    sizeof(w->rcpt))) == -1 ||
		    json_str(b, "reply", w->reply, strnlen(w->reply,
		    sizeof(w->reply))) == -1 || buf_addc(b, '}') == -1)
			return -1;
	}
	return n > 0 ? buf_addc(b, ']') : 0;
}

/*
 * One line per transaction: who, from, to whom (bounded, see
 * json_rcpts), what, verdict and result. "rcpt_count" is every RCPT the
 * client tried; "truncated" is true when some of them are not listed.
 */
void
txnlog_transaction(struct session *s)
{
	struct txn	*t = s->txn;
	struct buf	 b;
	bool		 cut;
	size_t		 mark;

	t->logged = true;
	if (!log_json_enabled())
		return;
	buf_init(&b, TXNLOG_LINE_MAX - 1);
	if (json_head(&b, s, "transaction") == -1 ||
	    json_str(&b, "helo", s->helo, strnlen(s->helo,
	    sizeof(s->helo))) == -1 ||
	    buf_printf(&b, ",\"tls\":%s", s->tls ? "true" : "false") == -1 ||
	    (s->tls && json_str(&b, "tls_info", s->tls_info,
	    strnlen(s->tls_info, sizeof(s->tls_info))) == -1) ||
	    (s->authenticated && json_str(&b, "auth_user", s->auth_user,
	    strnlen(s->auth_user, sizeof(s->auth_user))) == -1) ||
	    (s->rdns[0] != '\0' && (json_str(&b, "rdns", s->rdns,
	    strnlen(s->rdns, sizeof(s->rdns))) == -1 || buf_printf(&b,
	    ",\"rdns_verified\":%s", s->rdns_verified ? "true" : "false") ==
	    -1)) ||
	    json_from(&b, t) == -1 ||
	    buf_adds(&b, ",\"rcpts\":[") == -1)
		goto short_line;
	cut = json_rcpts(&b, t);
	mark = b.len;
	if (buf_printf(&b, "],\"rcpt_count\":%zu,\"rcpt_accepted\":%zu,"
	    "\"truncated\":%s", t->nrcpt, t->naccepted, cut ? "true" :
	    "false") == -1 || json_tail(&b, t) == -1 ||
	    json_evidence(&b, s, t->seq) == -1 ||
	    buf_addc(&b, '}') == -1) {
		/* Not reached with today's limits; kept for safety. */
		b.len = mark;
		b.data[mark] = '\0';
		if (buf_printf(&b, "],\"rcpt_count\":%zu,\"rcpt_accepted\":"
		    "%zu,\"truncated\":true", t->nrcpt, t->naccepted) == -1 ||
		    json_result(&b, t) == -1 || buf_addc(&b, '}') == -1)
			goto short_line;
	}
	json_emit(&b);
	return;
short_line:
	/* Cannot happen unless the fields above outgrow the line: log who
	 * and what happened, never nothing. */
	buf_reset(&b);
	if (json_head(&b, s, "transaction") == -1 ||
	    buf_printf(&b, ",\"rcpt_count\":%zu,\"rcpt_accepted\":%zu,"
	    "\"truncated\":true", t->nrcpt, t->naccepted) == -1 ||
	    json_result(&b, t) == -1 || buf_addc(&b, '}') == -1)
		log_msg(LVL_WARN, s->id, "json transaction line lost");
	else
		json_emit(&b);
	buf_free(&b);
}

/* A refused connection or greeting: time, session, ip and reason, like
 * a transaction line's head. */
void
txnlog_refused(struct session *s, const char *reason)
{
	struct buf b;

	if (!log_json_enabled())
		return;
	buf_init(&b, TXNLOG_LINE_MAX - 1);
	if (json_head(&b, s, "refused") == -1 ||
	    json_str(&b, "reason", reason, strlen(reason)) == -1 ||
	    json_evidence(&b, s, 0) == -1 ||
	    buf_addc(&b, '}') == -1) {
		log_msg(LVL_WARN, s->id, "json refused line lost");
		buf_free(&b);
		return;
	}
	json_emit(&b);
}
