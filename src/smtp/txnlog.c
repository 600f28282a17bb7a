/*
 * txnlog.c: one JSON line per transaction and per refused connection
 * (ARCHITECTURE §6). Client text is escaped and cut short.
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

static void
json_str(struct buf *b, const char *key, const char *val, size_t n)
{
	buf_printf(b, ",\"%s\":\"", key);
	buf_add_json(b, val, n, LIMIT_LOG_QUOTE);
	buf_addc(b, '"');
}

static void
json_head(struct buf *b, struct session *s, const char *event)
{
	struct timespec	ts;
	struct tm	tm;
	char		when[32];

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
	buf_printf(b, "{\"time\":\"%s.%03ldZ\",\"event\":\"%s\","
	    "\"session\":\"%016llx\"", when, ts.tv_nsec / 1000000, event,
	    (unsigned long long)s->id);
	json_str(b, "ip", s->ip, strlen(s->ip));
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

void
txnlog_transaction(struct session *s)
{
	struct txn	*t = s->txn;
	struct buf	 b;
	size_t		 i;
	char		 hv[LIMIT_LOG_QUOTE + 1];
	const char	*m = t->msg.data + t->msg_start;
	size_t		 mlen = t->msg.len > t->msg_start ?
			    t->msg.len - t->msg_start : 0;

	t->logged = true;
	if (!log_json_enabled())
		return;
	buf_init(&b, 64 * 1024);
	json_head(&b, s, "transaction");
	json_str(&b, "helo", s->helo, strlen(s->helo));
	buf_printf(&b, ",\"tls\":%s", s->tls ? "true" : "false");
	if (s->tls)
		json_str(&b, "tls_info", s->tls_info, strlen(s->tls_info));
	if (t->from.null)
		json_str(&b, "from", "", 0);
	else if (t->from.domain[0] != '\0') {
		char addr[LIMIT_LOCAL_PART + LIMIT_DOMAIN + 2];

		snprintf(addr, sizeof(addr), "%s@%s", t->from.local,
		    t->from.domain);
		json_str(&b, "from", addr, strlen(addr));
	}
	buf_adds(&b, ",\"rcpts\":[");
	for (i = 0; i < t->nrcpt; i++) {
		struct rcpt *r = &t->rcpts[i];

		buf_adds(&b, i ? ",{\"to\":\"" : "{\"to\":\"");
		buf_add_json(&b, r->addr, strlen(r->addr), LIMIT_LOG_QUOTE);
		buf_printf(&b, "\",\"accepted\":%s", r->accepted ? "true" :
		    "false");
		json_str(&b, "reply", r->reply, strlen(r->reply));
		if (r->verdict.by != NULL)
			json_str(&b, "by", r->verdict.by,
			    strlen(r->verdict.by));
		buf_addc(&b, '}');
	}
	buf_addc(&b, ']');
	if (t->t_data.tv_sec != 0) {
		buf_printf(&b, ",\"size\":%zu", mlen);
		header_value(m, mlen, "Message-ID", hv, sizeof(hv));
		json_str(&b, "message_id", hv, strlen(hv));
		header_value(m, mlen, "Subject", hv, sizeof(hv));
		json_str(&b, "subject", hv, strlen(hv));
	}
	buf_printf(&b, ",\"score\":%.2f,\"symbols\":{", t->score);
	for (i = 0; i < t->nsym; i++)
		buf_printf(&b, "%s\"%s\":%.2f", i ? "," : "", t->sym[i].name,
		    t->sym[i].score);
	buf_printf(&b, "},\"ms\":{\"data\":%.1f,\"queue\":%.1f}",
	    timespec_ms(&t->t_data, &t->t_data_end),
	    timespec_ms(&t->t_data_end, &t->t_queued));
	if (t->result_text[0] != '\0')
		json_str(&b, "result", t->result_text,
		    strlen(t->result_text));
	else
		json_str(&b, "result", "aborted", 7);
	buf_addc(&b, '}');
	log_json(&b);
	buf_free(&b);
}

void
txnlog_refused(struct session *s, const char *reason)
{
	struct buf b;

	if (!log_json_enabled())
		return;
	buf_init(&b, 4096);
	json_head(&b, s, "refused");
	json_str(&b, "reason", reason, strlen(reason));
	buf_addc(&b, '}');
	log_json(&b);
	buf_free(&b);
}
