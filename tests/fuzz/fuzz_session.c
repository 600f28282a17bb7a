/*
 * fuzz_session.c: libFuzzer harness for a whole SMTP session: the input
 * is what a client sends (commands, DATA, BDAT chunks, garbage), fed
 * through the real session state machine (session.c, command.c, data.c)
 * over a socketpair, with a fake pipeline and queue whose answers are
 * chosen by the first input byte (sync or async, accept or refuse).
 *
 * Invariants checked, beyond ASan/UBSan and leaks:
 *  - the DATA stage runs only inside a transaction with a recipient, and
 *    354 is never sent more often than a DATA stage let a message begin;
 *  - a message reaches the queue only from a transaction with an accepted
 *    recipient, with nothing flagged by the reader, once per transaction;
 *  - a recipient reaches the queue only inside a transaction;
 *  - the session always ends (EOF, then teardown) and frees everything.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "../../src/core/log.h"
#include "../../src/smtp/session.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static struct event_base	*base;
static unsigned			 mode;	/* first input byte */
static int			 data_starts, queued_msgs;

struct later {
	uint64_t	sid;
	struct verdict	v;
	bool		queue;
};

static void
later_cb(evutil_socket_t fd, short what, void *arg)
{
	struct later *l = arg;

	(void)fd;
	(void)what;
	if (l->queue)
		session_queued(l->sid, l->v);
	else
		session_resume(l->sid, l->v);
	free(l);
}

/* Answers now or on the next loop turn, as mode says. */
static void
answer(struct session *s, struct verdict v, bool queue, unsigned bit)
{
	struct later	*l;
	struct timeval	 now = { 0, 0 };

	if (!(mode & bit)) {
		if (queue)
			session_queued(s->id, v);
		else
			session_resume(s->id, v);
		return;
	}
	if ((l = calloc(1, sizeof(*l))) == NULL)
		abort();
	l->sid = s->id;
	l->v = v;
	l->queue = queue;
	event_base_once(base, -1, EV_TIMEOUT, later_cb, l, &now);
}

static void
stage(struct session *s, enum stage st)
{
	struct verdict v = VERDICT(V_CONTINUE);

	switch (st) {
	case STAGE_DISCONNECT:
		return;
	case STAGE_RCPT:
		if (s->txn == NULL || s->txn->cur == NULL)
			abort();
		if (s->txn->cur->path.local[0] == 'x')
			v = verdict_make(V_DENY, 550, "5.1.1", "No such user");
		break;
	case STAGE_DATA:
		if (s->txn == NULL || s->txn->naccepted == 0)
			abort();
		if ((mode & 0x10) && s->txn->from.local[0] == 'd')
			v = verdict_make(V_DEFER, 451, "4.7.1", "Not now");
		else if (!s->txn->chunked)
			data_starts++;
		break;
	case STAGE_DATA_POST:
		if (s->txn == NULL || s->txn->naccepted == 0 ||
		    (s->dr.flags & DATA_REFUSE))
			abort();
		if ((mode & 0x20) && s->txn->from.local[0] == 'p')
			v = verdict_make(V_DENY, 550, "5.7.1", "Spam");
		break;
	default:
		break;
	}
	answer(s, v, false, 0x01);
}

static const struct policy *
policy_for(const char *domain)
{
	(void)domain;
	return NULL;
}

static bool
is_local(const struct policy *p, const char *domain)
{
	(void)p;
	return strcmp(domain, "example.test") == 0;
}

static void
queue_rcpt(struct session *s, struct rcpt *r)
{
	if (s->txn == NULL || !s->txn->active || r != s->txn->cur)
		abort();
	answer(s, r->path.local[0] == 'q' ? verdict_make(V_DEFER, 451,
	    "4.4.1", "Backend says later") : VERDICT(V_CONTINUE), true, 0x02);
}

static void
queue_data(struct session *s)
{
	struct txn *t = s->txn;

	if (t == NULL || !t->active || t->naccepted == 0 ||
	    (s->dr.flags & DATA_REFUSE) || t->msg.len < t->msg_start)
		abort();
	queued_msgs++;
	answer(s, (mode & 0x40) ? verdict_make(V_DEFER, 451, "4.3.0",
	    "Disk full") : VERDICT(V_CONTINUE), true, 0x04);
}

static void
queue_abort(struct session *s)
{
	(void)s;
}

static void
closed(struct session *s)
{
	(void)s;
}

static const struct session_ops ops = {
	.stage = stage, .policy_for = policy_for, .is_local = is_local,
	.queue_rcpt = queue_rcpt, .queue_data = queue_data,
	.queue_abort = queue_abort, .closed = closed,
};

static struct smtp_conf conf = {
	.hostname = "fuzz.example", .banner = "moat", .message_memory = 2048, .message_memory_budget = 1 << 30,
	.spool_dir = "/tmp", .deadline_command = 300,
	.deadline_message = 1800, .deadline_tls = 60, .max_message_size =
	4096, .max_recipients = 5, .max_errors = 20, .max_line = 1000,
	.max_command_line = 512, .max_header_lines = 50,
	.timeout_command = 30, .timeout_data = 30, .timeout_filter = 30,
	.delay_deny = true, .pipelining = true, .chunking = true,
	.smtputf8 = true,
};

/* Counts "354 " replies at line starts in what the server sent. */
static int
count_354(const char *out, size_t n)
{
	int	c = 0;
	size_t	i;

	for (i = 0; i + 4 <= n; i++)
		if ((i == 0 || out[i - 1] == '\n') &&
		    memcmp(out + i, "354 ", 4) == 0)
			c++;
	return c;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char		 out[1 << 20];
	size_t			 nout = 0, off = 0;
	int			 sp[2], i;
	ssize_t			 r;
	struct bufferevent	*bev;
	struct sockaddr_in	 peer = { .sin_family = AF_INET };

	if (size < 1 || size > 65536)
		return 0;
	if (base == NULL) {
		char err[64];

		base = event_base_new();
		log_open("off", "off", LVL_PANIC, err, sizeof(err));
	}
	mode = data[0];
	conf.chunking = !(mode & 0x80);
	data_starts = queued_msgs = 0;
	data++;
	size--;
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sp) == -1)
		abort();
	evutil_make_socket_nonblocking(sp[0]);
	evutil_make_socket_nonblocking(sp[1]);
	bev = bufferevent_socket_new(base, sp[0], BEV_OPT_CLOSE_ON_FREE);
	if (session_new(base, bev, (struct sockaddr *)&peer, sizeof(peer),
	    NULL, 0, &conf, &ops, NULL) == NULL)
		abort();
	/* Bounded: the input in slices, then EOF, then the replies. */
	for (i = 0; i < 4000 && session_count() > 0; i++) {
		if (off < size) {
			r = write(sp[1], data + off, size - off);
			if (r > 0)
				off += (size_t)r;
			if (off == size)
				shutdown(sp[1], SHUT_WR);
		} else if (size == 0)
			shutdown(sp[1], SHUT_WR);
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
		while ((r = read(sp[1], out + nout, sizeof(out) - nout)) > 0)
			nout += (size_t)r;
		if (nout == sizeof(out))
			nout = 0;	/* only counts matter past here */
	}
	/* A session still waiting (it never should for long): torn down
	 * as a drain timeout would. */
	session_foreach(session_close);
	for (i = 0; i < 4; i++)
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
	close(sp[1]);
	if (session_count() != 0)
		abort();
	if (count_354(out, nout) > data_starts)
		abort();
	return 0;
}
