/*
 * session.c: a session's life: buffers, input loop, state, replies,
 * pending stages and teardown (commands live in command.c).
 *
 * Input stays in the bufferevent's evbuffer until a whole line (or a
 * chunk of message data) can be taken; a line is measured before it is
 * copied out, and the read high-watermark bounds what a client can make us
 * hold. Output is bounded the same way: while more than OUT_HIGHWATER of
 * replies wait for a client that does not read, no input is processed
 * (so no new reply is made) and the input buffer soon stops the reads;
 * processing resumes when the output drains. Teardown happens only from
 * top-level callbacks, so handlers may ask to close without freeing the
 * session under their own feet.
 *
 * The I/O layer (this file) hands lines and chunks to the protocol layer
 * (command.c), which answers through reply() and asks for async steps
 * through session_stage()/session_wait(); command.c never reads the
 * socket, and this file never decides what a command means.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "../core/log.h"
#include "../core/memtrim.h"
#include "auth.h"
#include "session_int.h"

#define ID_BUCKETS	16384
#define READ_HIGHWATER	(64 * 1024)
/* Replies a client may leave unread before we stop reading from it. */
#define OUT_HIGHWATER	(8 * 1024)

const char *const stage_names[STAGE_COUNT] = {
	"connect", "helo", "mail", "rcpt", "data", "data_post", "queue",
	"disconnect", "auth"
};

const char *const state_names[ST_COUNT] = {
	"connect", "pregreet", "greet", "helo", "mail", "rcpt", "data",
	"bdat",
	"bdat_skip", "bdat_next", "bdat_failed", "auth", "wait", "tls", "quit"
};

static struct session	*by_id[ID_BUCKETS];
static size_t		 nsessions;
static uint32_t		 id_counter;

static void	session_process(struct session *);
static void	session_continue(struct session *);
static void	session_maybe_free(struct session *);
static void	session_free(struct session *);
static void	session_finish_input(struct session *);
static void	session_start(struct session *);

/* Session ids: seconds, pid and a counter, so they sort by time and
 * differ between workers. */
static uint64_t
session_new_id(void)
{
	static pid_t pid;	/* sessions live in workers, made after fork */

	if (pid == 0)
		pid = getpid();
	return ((uint64_t)time(NULL) << 32) |
	    ((uint64_t)(pid & 0xffff) << 16) | (++id_counter & 0xffff);
}

struct session *
session_find(uint64_t id)
{
	struct session *s;

	for (s = by_id[id % ID_BUCKETS]; s != NULL; s = s->hnext)
		if (s->id == id)
			return s;
	return NULL;
}

size_t
session_count(void)
{
	return nsessions;
}

void
session_foreach(void (*fn)(struct session *))
{
	struct session	*s, *next;
	size_t		 i;

	for (i = 0; i < ID_BUCKETS; i++)
		for (s = by_id[i]; s != NULL; s = next) {
			next = s->hnext;
			fn(s);
		}
}

void
session_set_state(struct session *s, enum state st)
{
	if (log_enabled(LVL_TRACE))
		log_msg(LVL_TRACE, s->id, "state %s -> %s",
		    state_names[s->state], state_names[st]);
	s->state = st;
}

void
reply(struct session *s, int code, const char *esc, const char *fmt, ...)
{
	struct evbuffer	*out = bufferevent_get_output(s->bev);
	va_list		 ap;

	if (esc != NULL)
		evbuffer_add_printf(out, "%d %s ", code, esc);
	else
		evbuffer_add_printf(out, "%d ", code);
	va_start(ap, fmt);
	evbuffer_add_vprintf(out, fmt, ap);
	va_end(ap);
	evbuffer_add(out, "\r\n", 2);
}

void
reply_error(struct session *s, int code, const char *esc, const char *text)
{
	reply(s, code, esc, "%s", text);
	count_error(s);
}

void
count_error(struct session *s)
{
	if (s->state == ST_QUIT)
		return;
	if (++s->errors >= (unsigned)s->conf->max_errors) {
		log_msg(LVL_INFO, s->id, "event=disconnect reason=errors "
		    "count=%u", s->errors);
		reply(s, 421, "4.7.0", "%s Too many errors, closing",
		    s->conf->hostname);
		session_quit(s);
	}
}

void
reply_verdict(struct session *s, const struct verdict *v, char *copy,
    size_t copylen)
{
	int		 code = v->smtp;
	const char	*esc = v->esc, *text = v->text;
	bool		 temp = v->code == V_DEFER;

	if (code == 0)
		code = temp ? 451 : v->code == V_DENY_DISCONNECT ? 554 : 550;
	temp = code / 100 == 4;
	if (esc == NULL)
		esc = temp ? "4.7.1" : "5.7.1";
	if (text == NULL)
		text = temp ? "Try again later" : "Rejected by policy";
	reply(s, code, esc, "%s", text);
	if (copy != NULL)
		snprintf(copy, copylen, "%d %s %s", code, esc, text);
	if (v->code == V_DENY_DISCONNECT)
		session_quit(s);
}

void
session_quit(struct session *s)
{
	if (s->state == ST_QUIT)
		return;
	session_set_state(s, ST_QUIT);
	bufferevent_disable(s->bev, EV_READ);
}

/* True while the client leaves more replies unread than we hold for it. */
static bool
session_out_full(struct session *s)
{
	return evbuffer_get_length(bufferevent_get_output(s->bev)) >
	    OUT_HIGHWATER;
}

/* True when the state reads message bytes rather than command lines. */
static bool
state_reads_data(enum state st)
{
	return st == ST_DATA || st == ST_BDAT || st == ST_BDAT_SKIP;
}

/* True when input is taken at all in this state. */
static bool
state_reads(enum state st)
{
	return st != ST_CONNECT && st != ST_PREGREET && st != ST_WAIT &&
	    st != ST_TLS && st != ST_QUIT;
}

int
session_symbol(struct session *s, const char *name, double score)
{
	struct txn *t = s->txn;

	if (t == NULL || t->nsym >= LIMIT_SYMBOLS)
		return -1;
	t->sym[t->nsym].name = name;
	t->sym[t->nsym].score = score;
	t->nsym++;
	t->score += score;
	return 0;
}

int
session_add_header(struct session *s, const char *name, const char *value)
{
	struct txn	*t = s->txn;
	struct buf	 line;
	int		 rc;

	if (t == NULL || t->msg.data == NULL)
		return -1;
	buf_init(&line, LIMIT_TEXT_LINE * 8);
	rc = buf_printf(&line, "%s: %s\r\n", name, value);
	if (rc == 0)
		rc = buf_insert(&t->msg, t->msg_start, line.data, line.len);
	if (rc == 0)
		t->msg_start += line.len;
	buf_free(&line);
	return rc;
}

/* Where the client's Subject value starts, or (size_t)-1. Only the
 * header section counts (up to the first empty line). */
static size_t
subject_at(const struct txn *t)
{
	const char	*m = t->msg.data;
	size_t		 i = t->msg_start, n = t->msg.len;

	while (i < n) {
		if (m[i] == '\r' || m[i] == '\n')
			return (size_t)-1;	/* end of headers */
		if (n - i > 8 && strncasecmp(m + i, "Subject:", 8) == 0) {
			i += 8;
			if (i < n && m[i] == ' ')
				i++;
			return i;
		}
		while (i < n && m[i] != '\n')
			i++;
		i++;
	}
	return (size_t)-1;
}

int
session_prefix_subject(struct session *s, const char *prefix)
{
	struct txn	*t = s->txn;
	size_t		 at;
	char		 pre[256];
	int		 n;

	if (t == NULL || t->msg.data == NULL)
		return -1;
	n = snprintf(pre, sizeof(pre), "%s ", prefix);
	if (n < 0 || (size_t)n >= sizeof(pre))
		return -1;
	if ((at = subject_at(t)) == (size_t)-1) {
		/* No Subject: give it one. */
		pre[n - 1] = '\0';
		return session_add_header(s, "Subject", pre);
	}
	return buf_insert(&t->msg, at, pre, (size_t)n);
}

void
txn_reset(struct session *s)
{
	struct txn *t = s->txn;

	if (t == NULL)
		return;
	if (t->active && !t->logged)
		txnlog_transaction(s);
	if (t->backend != NULL)
		s->ops->queue_abort(s);
	free(t->rcpts);
	txn_release_message(t);
	free(t);
	if (s->msg_due != 0)
		session_deadline_message(s, false);
	s->txn = NULL;
}

void
session_timer_ms(struct session *s, long long ms,
    void (*cb)(struct session *))
{
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) *
	    1000 };

	s->timer_cb = cb;
	if (ms > 0)
		evtimer_add(s->timer, &tv);
	else
		evtimer_del(s->timer);
}

void
session_timer(struct session *s, long long secs, void (*cb)(struct session *))
{
	session_timer_ms(s, secs * 1000, cb);
}

/* Monotonic milliseconds. */
static long long
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Arms the deadline timer at the nearest of line_due and msg_due. */
static void
deadline_arm(struct session *s)
{
	long long	next = s->line_due, left;
	struct timeval	tv;

	if (s->msg_due != 0 && (next == 0 || s->msg_due < next))
		next = s->msg_due;
	if (next == 0) {
		evtimer_del(s->deadline);
		return;
	}
	left = next - mono_ms();
	if (left < 1)
		left = 1;
	tv.tv_sec = (time_t)(left / 1000);
	tv.tv_usec = (suseconds_t)(left % 1000) * 1000;
	evtimer_add(s->deadline, &tv);
}

static void
deadline_line(struct session *s, long long secs)
{
	long long due = secs > 0 ? mono_ms() + secs * 1000 : 0;

	if ((due == 0) == (s->line_due == 0))
		return;		/* unchanged: no re-arm per read */
	s->line_due = due;
	deadline_arm(s);
}

void
session_deadline_message(struct session *s, bool on)
{
	s->msg_due = on ? mono_ms() + s->conf->deadline_message * 1000 : 0;
	deadline_arm(s);
}

void
session_deadline_tls(struct session *s, bool on)
{
	s->line_due = on ? mono_ms() + s->conf->deadline_tls * 1000 : 0;
	deadline_arm(s);
}

/*
 * A deadline passed: idle timeouts only bound the gap between two reads,
 * so a client trickling one byte at a time could hold a command line, a
 * message or a TLS handshake open without end. A command or a message
 * gets 421 and the session closes; a stalled handshake is dropped at
 * once (no reply could reach the client in clear any more).
 */
static void
deadline_fired(evutil_socket_t fd, short what, void *arg)
{
	struct session	*s = arg;
	long long	 now = mono_ms();
	const char	*kind;

	(void)fd;
	(void)what;
	if ((s->line_due == 0 || now < s->line_due) && (s->msg_due == 0 ||
	    now < s->msg_due)) {
		deadline_arm(s);
		return;
	}
	kind = s->msg_due != 0 && now >= s->msg_due ? "message" :
	    s->state == ST_TLS ? "tls_handshake" : "command";
	s->line_due = s->msg_due = 0;
	log_msg(LVL_INFO, s->id, "event=deadline kind=%s state=%s", kind,
	    state_names[s->state]);
	if (s->state == ST_TLS) {
		session_free(s);
		return;
	}
	if (s->state != ST_QUIT) {
		reply(s, 421, "4.4.2", "%s Deadline exceeded, closing",
		    s->conf->hostname);
		session_quit(s);
	}
	session_maybe_free(s);
}

static void
timer_fired(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;

	(void)fd;
	(void)what;
	/* The callback may free the session: nothing touches it after. */
	if (s->timer_cb != NULL)
		s->timer_cb(s);
}

/* Read timeouts follow the state: commands, message data, or none while
 * we are the one the client waits for. */
static void
session_timeouts(struct session *s)
{
	struct timeval	 rd, wr;
	long long	 t;

	bool		 waiting = s->state == ST_WAIT;

	t = state_reads_data(s->state) ? s->conf->timeout_data :
	    s->conf->timeout_command;
	/* Re-arming costs an event_add per direction: only on a change. */
	if (s->tmo_read == (!waiting ? t : -1) && s->tmo_bev == s->bev)
		return;
	s->tmo_read = !waiting ? t : -1;
	s->tmo_bev = s->bev;
	rd.tv_sec = (time_t)t;
	rd.tv_usec = 0;
	wr = rd;
	bufferevent_set_timeouts(s->bev, !waiting ? &rd : NULL, &wr);
}

struct step_token
session_step_begin(struct session *s)
{
	s->step_gen++;
	return session_step(s);
}

struct step_token
session_step(const struct session *s)
{
	struct step_token tok = { s->id, s->step_gen };

	return tok;
}

bool
session_step_live(const struct session *s, struct step_token tok)
{
	return s != NULL && s->id == tok.sid && s->state == ST_WAIT &&
	    s->step_gen == tok.gen;
}

void
session_wait(struct session *s, enum stage st)
{
	if (s->state != ST_WAIT) {
		s->wait_return = s->state;
		session_set_state(s, ST_WAIT);
	}
	s->pending = st;
	s->step_gen++;
	session_timeouts(s);
}

/* The pending step is over: back to the state it was started from. */
static void
session_unwait(struct session *s)
{
	s->pending = STAGE_COUNT;
	s->step_gen++;
	session_set_state(s, s->wait_return);
	session_timeouts(s);
}

void
session_stage(struct session *s, enum stage st)
{
	session_wait(s, st);
	s->pl_index = 0;
	s->ops->stage(s, st);
}

void
session_kick(struct session *s)
{
	session_continue(s);
}

/* After an async step: go on with buffered input (unless we are already
 * inside the input loop or an outer completion, which go on by
 * themselves). */
static void
session_continue(struct session *s)
{
	if (s->in_process)
		return;
	if (s->peer_eof && state_reads(s->state)) {
		session_finish_input(s);	/* may free s */
		return;
	}
	session_process(s);
	session_maybe_free(s);
}

/*
 * Applies a completed step, then goes on. A step may complete another at
 * once (a queue step answered synchronously inside a stage's verdict):
 * only the outermost completion goes on, as that may free the session.
 */
static void
session_complete(struct session *s, enum stage st, struct verdict v)
{
	bool outer = !s->in_process;

	s->in_process = true;
	if (st == STAGE_QUEUE)
		command_queued(s, v);
	else if (st == STAGE_AUTH)
		auth_step_done(s, v);
	else
		command_stage_done(s, st, v);
	if (outer) {
		s->in_process = false;
		session_continue(s);	/* may free s */
	}
}

void
session_resume(uint64_t id, struct verdict v)
{
	struct session	*s = session_find(id);
	enum stage	 st;

	if (s == NULL || s->state != ST_WAIT || s->pending >= STAGE_QUEUE)
		return;		/* the session is gone or moved on */
	st = s->pending;
	session_unwait(s);
	session_complete(s, st, v);
}

void
session_queued_step(struct step_token tok, struct verdict v)
{
	struct session *s = session_find(tok.sid);

	if (!session_step_live(s, tok) || s->pending != STAGE_QUEUE) {
		log_msg(LVL_DEBUG, tok.sid, "event=stale_completion step=queue");
		return;
	}
	session_unwait(s);
	session_complete(s, STAGE_QUEUE, v);
}

void
session_auth_step(struct step_token tok, struct verdict v)
{
	struct session *s = session_find(tok.sid);

	if (!session_step_live(s, tok) || s->pending != STAGE_AUTH) {
		log_msg(LVL_DEBUG, tok.sid, "event=stale_completion step=auth");
		return;
	}
	session_unwait(s);
	session_complete(s, STAGE_AUTH, v);
}

void
session_queued(uint64_t id, struct verdict v)
{
	struct session *s = session_find(id);

	if (s == NULL)
		return;
	session_queued_step(session_step(s), v);
}

/* Takes message bytes (DATA or a BDAT chunk) from the input buffer. */
static bool
session_read_data(struct session *s, struct evbuffer *in)
{
	struct evbuffer_iovec	 v;
	size_t			 n, used;
	bool			 done = false;

	if (evbuffer_peek(in, -1, NULL, &v, 1) < 1 || v.iov_len == 0)
		return false;
	n = v.iov_len;
	if (s->state == ST_BDAT || s->state == ST_BDAT_SKIP) {
		if ((long long)n > s->bdat_left)
			n = (size_t)s->bdat_left;
		/* A refused chunk is read to stay in step, and dropped. */
		used = s->state == ST_BDAT_SKIP ? n : data_feed(&s->dr,
		    v.iov_base, n, &done);
		s->bdat_left -= (long long)used;
		evbuffer_drain(in, used);
		if (s->state == ST_BDAT)
			command_data_fed(s);
		if (s->bdat_left == 0)
			command_data_done(s);
		return true;
	}
	used = data_feed(&s->dr, v.iov_base, n, &done);
	evbuffer_drain(in, used);
	command_data_fed(s);
	if (done)
		command_data_done(s);
	return true;
}

/*
 * The longest line the session takes now: a SASL response, or an AUTH
 * command with its initial response, may be AUTH_LINE_MAX (RFC 4954 §4);
 * every other command max_command_line.
 */
static size_t
line_max(const struct session *s, struct evbuffer *in)
{
	size_t	max = (size_t)s->conf->max_command_line;
	char	verb[5];

	if (s->state == ST_AUTH)
		return AUTH_LINE_MAX;
	if (max < AUTH_LINE_MAX && evbuffer_copyout(in, verb, 5) == 5 &&
	    strncasecmp(verb, "AUTH ", 5) == 0)
		return AUTH_LINE_MAX;
	return max;
}

/* session_read_line's buffer holds an AUTH line too. */
_Static_assert(AUTH_LINE_MAX <= LIMIT_COMMAND_LINE_MAX, "AUTH line buffer");

/* An overlong line was skipped: 500, and an AUTH exchange ends. */
static void
line_too_long(struct session *s, bool auth)
{
	if (auth)
		auth_line_too_long(s);
	else
		reply_error(s, 500, "5.5.2", "Line too long");
}

/*
 * Takes one command line. A line is measured before it is copied: one
 * past the limit is answered and skipped up to its end, never cut and
 * run. Returns false when no whole line is buffered.
 */
static bool
session_read_line(struct session *s, struct evbuffer *in)
{
	static char		 line[LIMIT_COMMAND_LINE_MAX + 1];
	struct evbuffer_ptr	 eol;
	size_t			 eol_len, avail = evbuffer_get_length(in);
	bool			 offered;
	size_t			 max = line_max(s, in);
	bool			 auth = max == AUTH_LINE_MAX &&
				     max != (size_t)s->conf->max_command_line;

	/* Only CRLF ends a command line (RFC 5321 §2.3.8); a bare LF stays
	 * in the line, where the parser refuses it as a control character. */
	eol = evbuffer_search_eol(in, NULL, &eol_len,
	    EVBUFFER_EOL_CRLF_STRICT);
	if (eol.pos == -1) {
		if (avail <= max)
			return false;
		evbuffer_drain(in, avail);
		if (!s->skip_line) {
			s->skip_line = true;
			line_too_long(s, auth || s->state == ST_AUTH);
		}
		return true;
	}
	if (s->skip_line) {
		s->skip_line = false;
		evbuffer_drain(in, (size_t)eol.pos + eol_len);
		return true;
	}
	if ((size_t)eol.pos + eol_len > max) {
		evbuffer_drain(in, (size_t)eol.pos + eol_len);
		line_too_long(s, auth || s->state == ST_AUTH);
		return true;
	}
	/* One worker, one loop: a static line buffer is never shared. */
	evbuffer_remove(in, line, (size_t)eol.pos + eol_len);
	deadline_line(s, 0);		/* the next line has its own */
	line[eol.pos] = '\0';
	/* Protocol findings (postscreen's "deep" tests, inline): a bare LF
	 * inside a command line, and a command sent before the reply to
	 * the previous one without PIPELINING offered (RFC 2920 §3.1). */
	if (memchr(line, '\n', (size_t)eol.pos) != NULL)
		session_proto_finding(s, PROTO_BARE_LF);
	offered = s->esmtp && s->conf->pipelining;
	command_line(s, line, (size_t)eol.pos);
	if (!offered && state_reads(s->state) && !state_reads_data(s->state) &&
	    s->state != ST_AUTH && evbuffer_get_length(in) > 0)
		session_proto_finding(s, PROTO_PIPELINING);
	return true;
}

void
session_proto_finding(struct session *s, unsigned f)
{
	if (s->proto & f)
		return;
	s->proto |= f;
	log_msg(LVL_INFO, s->id, "event=protocol finding=%s", f ==
	    PROTO_BARE_LF ? "bare_lf" : "unannounced_pipelining");
}

/* Works through buffered input until it runs out, the state takes no
 * input (a pending step, TLS, closing) or the client's unread replies
 * reach the high-water mark (backpressure: write_cb goes on). */
static void
session_process(struct session *s)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);

	s->in_process = true;
	while (state_reads(s->state) && evbuffer_get_length(in) > 0) {
		if (session_out_full(s)) {
			session_flush(s);
			if (session_out_full(s))
				break;
		}
		if (state_reads_data(s->state)) {
			if (!session_read_data(s, in))
				break;
		} else if (!session_read_line(s, in))
			break;
	}
	s->in_process = false;
	/* Part of a command line is in: it has deadline_command to end. */
	if (s->state != ST_TLS)
		deadline_line(s, state_reads(s->state) &&
		    !state_reads_data(s->state) && !session_out_full(s) &&
		    evbuffer_get_length(in) > 0 ? s->conf->deadline_command :
		    0);
	session_timeouts(s);
}

static void
session_free(struct session *s)
{
	struct session **pp;

	/* The pipeline cancels a hook still pending; txn_reset aborts a
	 * queue step at the backend; completions that come back later find
	 * no session (or a newer generation) and are dropped. */
	s->ops->stage(s, STAGE_DISCONNECT);
	auth_session_end(s);
	s->pending = STAGE_COUNT;
	s->step_gen++;
	txn_reset(s);
	for (pp = &by_id[s->id % ID_BUCKETS]; *pp != NULL;
	    pp = &(*pp)->hnext)
		if (*pp == s) {
			*pp = s->hnext;
			break;
		}
	nsessions--;
	log_msg(LVL_INFO, s->id, "event=close ip=%s messages=%u", s->ip,
	    s->messages);
	s->ops->closed(s);
	event_free(s->deadline);
	event_free(s->timer);
	free(s->sev);
	bufferevent_free(s->bev);
	free(s);
}

static void
recheck_free(struct session *s)
{
	session_maybe_free(s);
}

/*
 * Writes what is queued for a plain-socket client at once, after a pass
 * over its input (so pipelined replies leave in one write). A reply used
 * to cost libevent an epoll_ctl to add the write event, a loop turn to
 * see it writable and an epoll_ctl to drop it again; now the write event
 * is enabled only when the socket takes less than we have, and libevent
 * writes the rest (or reports the error) as before.
 */
void
session_flush(struct session *s)
{
	struct evbuffer	*out;
	int		 fd;

	if (!s->direct)
		return;
	out = bufferevent_get_output(s->bev);
	fd = bufferevent_getfd(s->bev);
	/* A socket bufferevent keeps its output's start frozen so that only
	 * libevent drains it; we drain it here as its write callback does. */
	evbuffer_unfreeze(out, 1);
	while (evbuffer_get_length(out) > 0)
		if (evbuffer_write(out, fd) <= 0)
			break;
	evbuffer_freeze(out, 1);
	if (evbuffer_get_length(out) > 0)
		bufferevent_enable(s->bev, EV_WRITE);
}

/*
 * Frees a closing session once its last reply has left. Under TLS the
 * filter's output empties before the socket's does: close_notify is
 * queued and the socket buffer is watched until it drains (or the write
 * timeout drops the session).
 */
static void
session_maybe_free(struct session *s)
{
	struct bufferevent *under;

	if (s->in_process)
		return;
	session_flush(s);
	if (s->state != ST_QUIT)
		return;
	if (evbuffer_get_length(bufferevent_get_output(s->bev)) > 0)
		return;		/* write_cb calls again */
	if (s->tls && (under = bufferevent_get_underlying(s->bev)) != NULL) {
		if (!s->tls_shut) {
			s->tls_shut = true;
			tls_shutdown(s);
		}
		if (evbuffer_get_length(bufferevent_get_output(under)) > 0) {
			session_timer_ms(s, 10, recheck_free);
			return;
		}
	}
	session_free(s);
}

/* After the client's EOF: answer what is buffered, then close. */
static void
session_finish_input(struct session *s)
{
	session_process(s);
	/* Held back by unread replies: write_cb comes back here. */
	if (state_reads(s->state) && session_out_full(s)) {
		session_maybe_free(s);
		return;
	}
	if (state_reads(s->state) || s->state == ST_QUIT) {
		session_quit(s);
		session_maybe_free(s);
	}
}

static void
read_cb(struct bufferevent *bev, void *arg)
{
	struct session *s = arg;

	(void)bev;
	if (s->state == ST_PREGREET) {
		/* Talking before the greeting: input stays buffered. */
		command_pregreet_talk(s);
		session_maybe_free(s);
		return;
	}
	session_process(s);
	session_maybe_free(s);
}

static void
write_cb(struct bufferevent *bev, void *arg)
{
	struct session *s = arg;

	/* Drained: direct writes again from the next reply on. */
	if (s->direct && evbuffer_get_length(bufferevent_get_output(bev)) ==
	    0)
		bufferevent_disable(bev, EV_WRITE);
	/* Input held back while the client did not read goes on now. */
	if (state_reads(s->state) && evbuffer_get_length(
	    bufferevent_get_input(bev)) > 0) {
		session_continue(s);		/* may free s */
		return;
	}
	session_maybe_free(s);
}

static void
event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct session *s = arg;

	(void)bev;
	if (what & BEV_EVENT_CONNECTED) {
		if (s->state != ST_TLS)
			return;
		session_deadline_tls(s, false);
		/* Implicit TLS (RFC 8314 §3.3): the session starts now. On
		 * such a listener STARTTLS is never taken (s->tls). */
		if (s->conf->implicit_tls) {
			session_start(s);
			session_continue(s);	/* may free s */
			return;
		}
		/* TLS handshake done (RFC 3207 §4.2: a fresh start). */
		session_set_state(s, ST_GREET);
		session_continue(s);	/* may free s */
		return;
	}
	if (what & BEV_EVENT_TIMEOUT) {
		log_msg(LVL_INFO, s->id, "event=timeout state=%s",
		    state_names[s->state]);
		if (s->state != ST_QUIT) {
			reply(s, 421, "4.4.2", "%s Timeout, closing",
			    s->conf->hostname);
			session_quit(s);
		}
		/* Give the 421 a moment; a stuck writer is dropped. */
		if (what & BEV_EVENT_WRITING) {
			session_free(s);
			return;
		}
		bufferevent_enable(bev, EV_WRITE);
		session_maybe_free(s);
		return;
	}
	if (what & BEV_EVENT_ERROR) {
		log_msg(LVL_DEBUG, s->id, "event=error errno=%d",
		    EVUTIL_SOCKET_ERROR());
		session_free(s);
	} else if (what & BEV_EVENT_EOF) {
		/* The client is done sending (perhaps only half-closed):
		 * what it sent is still answered, a pending step first. */
		s->peer_eof = true;
		if (state_reads(s->state) || s->state == ST_QUIT)
			session_finish_input(s);
	}
}

/* Wires callbacks to a (possibly new, after STARTTLS) bufferevent. */
void
session_attach(struct session *s, struct bufferevent *bev)
{
	s->bev = bev;
	s->direct = !s->tls && bufferevent_getfd(bev) >= 0;
	bufferevent_setcb(bev, read_cb, write_cb, event_cb, s);
	bufferevent_setwatermark(bev, EV_READ, 0, READ_HIGHWATER);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
	if (s->direct)		/* enabled by default: off until needed */
		bufferevent_disable(bev, EV_WRITE);
	session_timeouts(s);
}

/* Runs the connect stage; it greets (or refuses) when its verdict is in. */
static void
session_start(struct session *s)
{
	s->in_process = true;
	session_stage(s, STAGE_CONNECT);
	s->in_process = false;
}

struct session *
session_new(struct event_base *base, struct bufferevent *bev,
    const struct sockaddr *peer, socklen_t peerlen,
    const struct sockaddr *local, socklen_t locallen,
    const struct smtp_conf *conf, const struct session_ops *ops,
    struct ssl_ctx_st *tls_ctx)
{
	struct session *s;

	if ((s = calloc(1, sizeof(*s))) == NULL) {
		bufferevent_free(bev);
		return NULL;
	}
	if ((s->timer = evtimer_new(base, timer_fired, s)) == NULL ||
	    (s->deadline = evtimer_new(base, deadline_fired, s)) == NULL) {
		if (s->timer != NULL)
			event_free(s->timer);
		bufferevent_free(bev);
		free(s);
		return NULL;
	}
	s->id = session_new_id();
	s->base = base;
	s->conf = conf;
	s->ops = ops;
	s->tls_ctx = tls_ctx;
	s->pending = STAGE_COUNT;
	s->state = ST_CONNECT;
	if (peerlen > sizeof(s->peer))
		peerlen = sizeof(s->peer);
	memcpy(&s->peer, peer, peerlen);
	s->peerlen = peerlen;
	if (local != NULL && locallen <= sizeof(s->local)) {
		memcpy(&s->local, local, locallen);
		s->locallen = locallen;
	}
	if (evutil_inet_ntop(peer->sa_family, peer->sa_family == AF_INET6 ?
	    (const void *)&((const struct sockaddr_in6 *)(const void *)peer)->
	    sin6_addr : (const void *)&((const struct sockaddr_in *)
	    (const void *)peer)->sin_addr, s->ip, sizeof(s->ip)) == NULL)
		snprintf(s->ip, sizeof(s->ip), "unknown");
	clock_gettime(CLOCK_REALTIME, &s->t_connect);
	s->hnext = by_id[s->id % ID_BUCKETS];
	by_id[s->id % ID_BUCKETS] = s;
	nsessions++;
	memtrim_poke();
	session_attach(s, bev);
	log_msg(LVL_INFO, s->id, "event=connect ip=%s listener=%s", s->ip,
	    conf->listener != NULL ? conf->listener : "mx");
	if (conf->implicit_tls) {
		/* The handshake comes first, within deadline_tls; the
		 * connect stage and the greeting follow it (event_cb). */
		if (s->tls_ctx == NULL || tls_start(s) == -1) {
			session_set_state(s, ST_QUIT);
			session_timer_ms(s, 1, recheck_free);
			return s;
		}
		session_set_state(s, ST_TLS);
		session_deadline_tls(s, true);
		return s;
	}
	session_start(s);
	session_process(s);
	/* The caller still holds s: a session closing already is freed
	 * from the loop, not from in here. */
	session_flush(s);
	if (s->state == ST_QUIT)
		session_timer_ms(s, 1, recheck_free);
	return s;
}

void
session_drain(struct session *s)
{
	/* Idle between transactions, or still in the pre-greeting wait:
	 * say goodbye now. Otherwise the transaction finishes and the next
	 * command is refused. */
	if (s->state == ST_PREGREET || (state_reads(s->state) &&
	    s->txn == NULL && !state_reads_data(s->state))) {
		if (s->state == ST_PREGREET)
			session_timer(s, 0, NULL);
		reply(s, 421, "4.3.2", "%s Service shutting down",
		    s->conf->hostname);
		session_quit(s);
		session_maybe_free(s);
	}
}

void
session_close(struct session *s)
{
	s->in_process = false;
	session_free(s);
}
