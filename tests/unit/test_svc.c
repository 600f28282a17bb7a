/*
 * test_svc.c: the service client against an in-process server on a UNIX
 * socket, on one event loop: address parsing at its limits, INSTREAM
 * chunk framing (lengths, zero end, the body pulled in pieces), a reply
 * read while the body is still being written (the size-limit refusal
 * mid-stream), EOF framing with a half-close, reply cap at N and N+1,
 * idle timeout, cancel (no callback), the pool's queue, and health: up,
 * degraded, down after down_after, requests refused at once while down,
 * a probe after retry_ms, back up.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <cmocka.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "../../src/core/svc.h"

enum mode { M_CLAMD, M_LIMIT, M_SILENT, M_BIG, M_EOF };

static struct event_base	*base;
static struct evconnlistener	*lis;
static char			 path[108];
static enum mode		 mode;
static size_t			 limit;		/* M_LIMIT: refuse past it */
static size_t			 got_body;	/* payload bytes the server saw */
static size_t			 got_chunks;
static bool			 got_end;
static bool			 got_head;
static size_t			 big;		/* M_BIG: reply bytes */
/* The server's connections, freed by srv_stop (a silent one never sees
 * its client go). */
static struct bufferevent	*conns[64];

struct result {
	int		 calls;
	enum svc_status	 st;
	char		 reply[256];
	size_t		 len;
};

/* The server: reads INSTREAM frames (or raw bytes to EOF) and answers. */
static void
srv_close(struct bufferevent *bev)
{
	size_t i;

	for (i = 0; i < 64; i++)
		if (conns[i] == bev)
			conns[i] = NULL;
	bufferevent_free(bev);
}

static void
srv_read(struct bufferevent *bev, void *arg)
{
	struct evbuffer	*in = bufferevent_get_input(bev);
	unsigned char	 h[4];
	size_t		 n;

	(void)arg;
	if (mode == M_SILENT || mode == M_EOF) {
		got_body += evbuffer_get_length(in);
		evbuffer_drain(in, evbuffer_get_length(in));
		return;
	}
	if (!got_head) {
		if (evbuffer_get_length(in) < 10)
			return;
		got_head = true;
		assert_int_equal(memcmp(evbuffer_pullup(in, 10), "zINSTREAM\0",
		    10), 0);
		evbuffer_drain(in, 10);
	}
	for (;;) {
		if (mode == M_LIMIT && got_body > limit) {
			bufferevent_write(bev, "INSTREAM size limit exceeded. "
			    "ERROR", 36);
			bufferevent_disable(bev, EV_READ);
			/* Close once written: as clamd does. */
			bufferevent_setwatermark(bev, EV_WRITE, 0, 0);
			return;
		}
		if (evbuffer_copyout(in, h, 4) < 4)
			return;
		n = (size_t)h[0] << 24 | (size_t)h[1] << 16 |
		    (size_t)h[2] << 8 | h[3];
		if (n == 0) {
			evbuffer_drain(in, 4);
			got_end = true;
			if (mode == M_BIG) {
				char *b = malloc(big);

				memset(b, 'x', big);
				b[big - 1] = '\0';
				bufferevent_write(bev, b, big);
				free(b);
			} else
				bufferevent_write(bev, "stream: OK", 11);
			return;
		}
		if (evbuffer_get_length(in) < 4 + n)
			return;
		assert_true(n <= SVC_CHUNK);
		evbuffer_drain(in, 4 + n);
		got_body += n;
		got_chunks++;
	}
}

static void
srv_write(struct bufferevent *bev, void *arg)
{
	(void)arg;
	if (mode == M_LIMIT || (mode != M_SILENT && got_end) ||
	    (mode == M_EOF && got_body > 0))
		srv_close(bev);
}

static void
srv_event(struct bufferevent *bev, short what, void *arg)
{
	(void)arg;
	if ((what & BEV_EVENT_EOF) && mode == M_EOF) {
		bufferevent_write(bev, "SPAMD/1.1 0 EX_OK\r\n\r\nA,B", 24);
		return;
	}
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		srv_close(bev);
}

static void
srv_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
    int len, void *arg)
{
	struct bufferevent *bev;

	(void)l;
	(void)sa;
	(void)len;
	(void)arg;
	size_t i;

	bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
	for (i = 0; i < 64 && conns[i] != NULL; i++)
		;
	assert_true(i < 64);
	conns[i] = bev;
	bufferevent_setcb(bev, srv_read, srv_write, srv_event, NULL);
	/* Bounded reads: frames arrive in pieces. */
	bufferevent_setwatermark(bev, EV_READ, 0, 3 * SVC_CHUNK);
	bufferevent_enable(bev, mode == M_SILENT ? 0 : EV_READ);
	if (mode == M_EOF)
		bufferevent_enable(bev, EV_READ);
}

static void
srv_start(void)
{
	struct sockaddr_un sun;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, path, strlen(path) + 1);
	unlink(path);
	lis = evconnlistener_new_bind(base, srv_accept, NULL,
	    LEV_OPT_CLOSE_ON_FREE, 16, (struct sockaddr *)&sun, sizeof(sun));
	assert_non_null(lis);
	got_body = got_chunks = 0;
	got_end = got_head = false;
}

static void
srv_stop(void)
{
	size_t i;

	for (i = 0; i < 64; i++)
		if (conns[i] != NULL)
			srv_close(conns[i]);
	if (lis != NULL)
		evconnlistener_free(lis);
	lis = NULL;
	unlink(path);
}

/* The body: `size` bytes of a pattern, handed out `piece` at a time. */
struct body {
	char	*data;
	size_t	 size, off, piece;
};

static int
pull(void *arg, size_t max, const char **p, size_t *n)
{
	struct body *b = arg;

	if (b->off == b->size)
		return 0;
	*n = b->size - b->off;
	if (*n > max)
		*n = max;
	if (*n > b->piece)
		*n = b->piece;
	*p = b->data + b->off;
	b->off += *n;
	return 1;
}

static struct result	*cur;

static int
done(void *arg, enum svc_status st, const char *reply, size_t len)
{
	struct result *r = arg;

	r->calls++;
	r->st = st;
	r->len = len;
	snprintf(r->reply, sizeof(r->reply), "%.*s", (int)len, reply);
	return 0;
}

static struct svc_opts	opts;

static struct svc *
service(void)
{
	static char addr[128];

	snprintf(addr, sizeof(addr), "unix:%s", path);
	opts.address = addr;
	opts.connect_ms = 1000;
	opts.idle_ms = 300;
	opts.total_ms = 3000;
	opts.max_reply = 64;
	opts.max_conns = 2;
	opts.down_after = 3;
	opts.retry_ms = 200;
	return svc_get(base, "test", &opts);
}

/* Runs the loop until r has its callback (or ms pass). */
static void
run_until(struct result *r, long ms)
{
	struct timeval tv = { 0, 10000 };

	while (r->calls == 0 && ms > 0) {
		event_base_loopexit(base, &tv);
		event_base_dispatch(base);
		ms -= 10;
	}
}

/* done() is given the body as arg; the test's result is `cur`. */
static int
done_body(void *arg, enum svc_status st, const char *reply, size_t len)
{
	(void)arg;
	return done(cur, st, reply, len);
}

static struct svc_req *
go(struct svc *v, struct body *b, struct result *r, enum svc_end end,
    enum svc_status *why)
{
	struct svc_call c;

	memset(&c, 0, sizeof(c));
	c.head = end == SVC_END_NUL ? "zINSTREAM" : "SYMBOLS SPAMC/1.5\r\n\r\n";
	c.headlen = end == SVC_END_NUL ? 10 : strlen(c.head);
	c.pull = pull;
	c.arg = b;
	c.frame = end == SVC_END_NUL ? SVC_FRAME_LEN32 : SVC_FRAME_RAW;
	c.shut_wr = end == SVC_END_EOF;
	c.end = end;
	c.done = done_body;
	memset(r, 0, sizeof(*r));
	cur = r;
	return svc_start(v, &c, why);
}

static struct body *
body_new(size_t size, size_t piece)
{
	struct body	*b = calloc(1, sizeof(*b));
	size_t		 i;

	b->data = malloc(size + 1);
	for (i = 0; i < size; i++)
		b->data[i] = (char)('a' + i % 26);
	b->size = size;
	b->piece = piece;
	return b;
}

static void
body_free(struct body *b)
{
	free(b->data);
	free(b);
}

static void
test_addr(void **state)
{
	struct sockaddr_storage	 ss;
	socklen_t		 len;
	char			 p[200];

	(void)state;
	assert_int_equal(svc_addr_parse("127.0.0.1:783", &ss, &len), 0);
	assert_int_equal(ss.ss_family, AF_INET);
	assert_int_equal(svc_addr_parse("[::1]:783", &ss, &len), 0);
	assert_int_equal(ss.ss_family, AF_INET6);
	assert_int_equal(svc_addr_parse("/run/clamd.ctl", &ss, &len), 0);
	assert_int_equal(ss.ss_family, AF_UNIX);
	assert_int_equal(svc_addr_parse("unix:/run/x", &ss, &len), 0);
	assert_int_equal(svc_addr_parse("127.0.0.1:65535", &ss, &len), 0);
	assert_int_equal(svc_addr_parse("127.0.0.1:65536", &ss, &len), -1);
	assert_int_equal(svc_addr_parse("127.0.0.1:0", &ss, &len), -1);
	assert_int_equal(svc_addr_parse("127.0.0.1:", &ss, &len), -1);
	assert_int_equal(svc_addr_parse("127.0.0.1:-1", &ss, &len), -1);
	assert_int_equal(svc_addr_parse("127.0.0.1", &ss, &len), -1);
	assert_int_equal(svc_addr_parse("localhost:783", &ss, &len), -1);
	assert_int_equal(svc_addr_parse(":783", &ss, &len), -1);
	assert_int_equal(svc_addr_parse("[::1:783", &ss, &len), -1);
	assert_int_equal(svc_addr_parse("unix:", &ss, &len), -1);
	/* sun_path holds 107 bytes and the NUL: 107 fits, 108 does not. */
	memset(p, 'a', sizeof(p));
	p[0] = '/';
	p[107] = '\0';
	assert_int_equal(svc_addr_parse(p, &ss, &len), 0);
	p[107] = 'a';
	p[108] = '\0';
	assert_int_equal(svc_addr_parse(p, &ss, &len), -1);
}

static void
test_instream(void **state)
{
	struct svc	*v;
	struct body	*b = body_new(1000000, 7000);
	struct result	 r;
	enum svc_status	 why;

	(void)state;
	mode = M_CLAMD;
	srv_start();
	v = service();
	assert_non_null(go(v, b, &r, SVC_END_NUL, &why));
	assert_int_equal(r.calls, 0);	/* never from inside svc_start */
	run_until(&r, 5000);
	assert_int_equal(r.calls, 1);
	assert_int_equal(r.st, SVC_OK);
	assert_string_equal(r.reply, "stream: OK");
	assert_int_equal(r.len, 10);
	assert_int_equal(got_body, 1000000);
	assert_true(got_end);
	/* One frame per pull (7000 bytes), never more than SVC_CHUNK. */
	assert_true(got_chunks >= (1000000 + 6999) / 7000);
	assert_int_equal(svc_state(v), SVC_UP);
	/* An empty body: only the zero-length end. */
	body_free(b);
	b = body_new(0, 1);
	srv_stop();
	srv_start();
	assert_non_null(go(v, b, &r, SVC_END_NUL, &why));
	run_until(&r, 3000);
	assert_int_equal(r.st, SVC_OK);
	assert_int_equal(got_body, 0);
	assert_true(got_end);
	srv_stop();
	body_free(b);
}

static void
test_limit_midstream(void **state)
{
	struct svc	*v;
	struct body	*b = body_new(8 * 1024 * 1024, SVC_CHUNK);
	struct result	 r;
	enum svc_status	 why;

	(void)state;
	mode = M_LIMIT;
	limit = 100000;
	srv_start();
	v = service();
	assert_non_null(go(v, b, &r, SVC_END_NUL, &why));
	run_until(&r, 5000);
	assert_int_equal(r.calls, 1);
	assert_int_equal(r.st, SVC_OK);
	assert_string_equal(r.reply, "INSTREAM size limit exceeded. ERROR");
	/* It stopped writing long before the end. */
	assert_true(b->off < b->size);
	srv_stop();
	body_free(b);
}

static void
test_eof_and_caps(void **state)
{
	struct svc	*v;
	struct body	*b = body_new(5000, 1000);
	struct result	 r;
	enum svc_status	 why;

	(void)state;
	mode = M_EOF;
	srv_start();
	v = service();
	assert_non_null(go(v, b, &r, SVC_END_EOF, &why));
	run_until(&r, 3000);
	assert_int_equal(r.st, SVC_OK);
	assert_string_equal(r.reply, "SPAMD/1.1 0 EX_OK\r\n\r\nA,B");
	assert_int_equal(got_body, strlen("SYMBOLS SPAMC/1.5\r\n\r\n") + 5000);
	srv_stop();
	/* A reply of max_reply bytes is taken, one more is too big. */
	mode = M_BIG;
	big = 64 + 1;		/* 64 bytes and the NUL */
	memset(b->data, 'x', 1);
	b->off = 0;
	srv_start();
	assert_non_null(go(v, b, &r, SVC_END_NUL, &why));
	run_until(&r, 3000);
	assert_int_equal(r.st, SVC_OK);
	assert_int_equal(r.len, 64);
	srv_stop();
	big = 200;		/* its NUL past the cap */
	b->off = 0;
	srv_start();
	assert_non_null(go(v, b, &r, SVC_END_NUL, &why));
	run_until(&r, 3000);
	assert_int_equal(r.st, SVC_ETOOBIG);
	srv_stop();
	body_free(b);
}

static void
test_timeout_cancel_queue(void **state)
{
	struct svc	*v;
	struct body	*b = body_new(100, 100), *b2 = body_new(100, 100);
	struct body	*b3 = body_new(100, 100);
	struct result	 r, r2, r3;
	struct svc_req	*q1, *q2, *q3;
	enum svc_status	 why;

	(void)state;
	mode = M_SILENT;
	srv_start();
	v = service();
	/* Idle timeout: the server reads nothing, answers nothing. */
	assert_non_null(go(v, b, &r, SVC_END_NUL, &why));
	run_until(&r, 3000);
	assert_int_equal(r.st, SVC_ETIMEOUT);
	assert_int_equal(svc_state(v), SVC_DEGRADED);
	/* Cancel: no callback, ever. The pool: two at once, a third
	 * waits until one ends. */
	b->off = 0;
	q1 = go(v, b, &r, SVC_END_NUL, &why);
	q2 = svc_start(v, &(struct svc_call){ "zINSTREAM", 10, NULL, SVC_FRAME_LEN32,
	    false, SVC_END_NUL, done, &r2, 0, 0 }, &why);
	memset(&r2, 0, sizeof(r2));
	q3 = svc_start(v, &(struct svc_call){ "zINSTREAM", 10, NULL, SVC_FRAME_LEN32,
	    false, SVC_END_NUL, done, &r3, 0, 0 }, &why);
	memset(&r3, 0, sizeof(r3));
	assert_non_null(q1);
	assert_non_null(q2);
	assert_non_null(q3);
	{
		struct svc_info info[SVC_MAX];

		assert_true(svc_list(info, SVC_MAX) >= 1);
		assert_int_equal(info[0].active, 2);
		assert_int_equal(info[0].queued, 1);
	}
	svc_cancel(q1);
	svc_cancel(q2);
	svc_cancel(q3);
	r.calls = 0;
	run_until(&r, 500);
	assert_int_equal(r.calls + r2.calls + r3.calls, 0);
	srv_stop();
	body_free(b);
	body_free(b2);
	body_free(b3);
}

static void
test_health(void **state)
{
	struct svc	*v;
	struct body	*b = body_new(10, 10);
	struct result	 r;
	enum svc_status	 why;
	int		 i;

	(void)state;
	srv_stop();		/* nothing listens: connects fail */
	v = service();
	/* Back to a known state: one success first. */
	mode = M_CLAMD;
	srv_start();
	assert_non_null(go(v, b, &r, SVC_END_NUL, &why));
	run_until(&r, 3000);
	assert_int_equal(svc_state(v), SVC_UP);
	srv_stop();
	for (i = 0; i < 3; i++) {
		b->off = 0;
		assert_non_null(go(v, b, &r, SVC_END_NUL, &why));
		run_until(&r, 3000);
		assert_int_equal(r.st, SVC_ECONNECT);
		assert_int_equal(svc_state(v), i < 2 ? SVC_DEGRADED :
		    SVC_DOWN);
	}
	/* Down: refused at once, nothing tried. */
	assert_null(go(v, b, &r, SVC_END_NUL, &why));
	assert_int_equal(why, SVC_EDOWN);
	/* After retry_ms one probe goes; the service is back: up. */
	usleep(250 * 1000);
	srv_start();
	b->off = 0;
	assert_non_null(go(v, b, &r, SVC_END_NUL, &why));
	{
		struct result	r2;
		enum svc_status	why2;

		/* Only one probe at a time. */
		assert_null(go(v, b, &r2, SVC_END_NUL, &why2));
		assert_int_equal(why2, SVC_EDOWN);
		cur = &r;
	}
	run_until(&r, 3000);
	assert_int_equal(r.st, SVC_OK);
	assert_int_equal(svc_state(v), SVC_UP);
	assert_string_equal(svc_health_name(SVC_DOWN), "down");
	srv_stop();
	body_free(b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_addr),
		cmocka_unit_test(test_instream),
		cmocka_unit_test(test_limit_midstream),
		cmocka_unit_test(test_eof_and_caps),
		cmocka_unit_test(test_timeout_cancel_queue),
		cmocka_unit_test(test_health),
	};
	int rc;

	signal(SIGPIPE, SIG_IGN);
	snprintf(path, sizeof(path), "/tmp/moat-test-svc-%d.sock",
	    (int)getpid());
	base = event_base_new();
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	srv_stop();
	svc_fini_all();
	event_base_free(base);
	return rc;
}
