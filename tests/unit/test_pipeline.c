/*
 * test_pipeline.c: the pipeline's async path through a real session on a
 * socketpair: a PENDING hook holds pipelined commands until it resumes,
 * a hook that never resumes meets its timeout and fail mode, and
 * delay-deny applies MAIL-stage rejections at RCPT, except to postmaster.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <event2/bufferevent.h>
#include <event2/event.h>

#include "../../src/filters/filter.h"
#include "../../src/filters/policy.h"

static struct event_base	*base;
static int			 resumes;

struct later {
	uint64_t	sid;
	struct verdict	v;
};

static void
later_cb(evutil_socket_t fd, short what, void *arg)
{
	struct later *l = arg;

	(void)fd;
	(void)what;
	resumes++;
	filter_resume(l->sid, l->v);
	free(l);
}

/* MAIL FROM:<deny@..> is refused after 50 ms, <slow@..> never answers,
 * anything else passes after 50 ms. */
static struct verdict
async_mail(struct filter_call *c)
{
	struct later	*l;
	struct timeval	 tv = { 0, 50000 };

	if (strcmp(c->s->txn->from.local, "slow") == 0)
		return VERDICT(V_PENDING);
	l = calloc(1, sizeof(*l));
	l->sid = c->s->id;
	l->v = strcmp(c->s->txn->from.local, "deny") == 0 ?
	    verdict_make(V_DENY, 550, "5.7.1", "Denied later") :
	    VERDICT(V_CONTINUE);
	event_base_once(base, -1, EV_TIMEOUT, later_cb, l, &tv);
	return VERDICT(V_PENDING);
}

static int cancels;

static void
async_cancel(struct filter_call *c)
{
	(void)c;
	cancels++;
}

static const struct filter test_async = {
	.name = "async", .summary = "test", .opts = NULL,
	.hook = { [STAGE_MAIL] = async_mail },
	.cancel = async_cancel, .fail = FAIL_DEFER,
};

static void
queue_ok_rcpt(struct session *s, struct rcpt *r)
{
	(void)r;
	session_queued(s->id, VERDICT(V_CONTINUE));
}

static void
queue_ok(struct session *s)
{
	session_queued(s->id, VERDICT(V_CONTINUE));
}

static void
no_abort(struct session *s)
{
	(void)s;
}

static void
closed(struct session *s)
{
	(void)s;
}

static bool
all_local(const struct policy *p, const char *d)
{
	(void)p;
	(void)d;
	return true;
}

static const struct session_ops ops = {
	.stage = pipeline_stage, .policy_for = pipeline_policy_for,
	.is_local = all_local, .queue_rcpt = queue_ok_rcpt,
	.queue_data = queue_ok, .queue_abort = no_abort, .closed = closed,
};

static struct smtp_conf conf = {
	.hostname = "test.example", .banner = "moat", .max_message_size =
	1 << 20, .max_recipients = 100, .max_errors = 10, .max_line = 1000,
	.max_command_line = 1024,
	.max_header_lines = 1000, .timeout_command = 30, .timeout_data = 30,
	.timeout_filter = 1, .delay_deny = true, .pipelining = true,
};

/*
 * Opens a session, writes the whole script at once (pipelined), and
 * collects replies until `lines` reply lines arrived or 3 s passed.
 */
static char *
converse(const char *script, int lines)
{
	static char		 out[8192];
	int			 sp[2], got = 0;
	size_t			 n = 0;
	ssize_t			 r;
	struct bufferevent	*bev;
	struct sockaddr_in	 peer = { .sin_family = AF_INET };
	time_t			 end = time(NULL) + 3;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
	evutil_make_socket_nonblocking(sp[0]);
	evutil_make_socket_nonblocking(sp[1]);
	bev = bufferevent_socket_new(base, sp[0], BEV_OPT_CLOSE_ON_FREE);
	session_new(base, bev, (struct sockaddr *)&peer, sizeof(peer), NULL,
	    0, &conf, &ops, NULL);
	assert_int_equal(write(sp[1], script, strlen(script)),
	    (ssize_t)strlen(script));
	while (got < lines && time(NULL) <= end) {
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
		usleep(1000);
		while ((r = read(sp[1], out + n, sizeof(out) - n - 1)) > 0) {
			n += (size_t)r;
			out[n] = '\0';
		}
		/* Count final reply lines ("NNN text"). */
		got = 0;
		for (char *p = out; *p != '\0'; ) {
			if (strlen(p) >= 4 && p[3] == ' ')
				got++;
			p = strstr(p, "\r\n");
			if (p == NULL)
				break;
			p += 2;
		}
	}
	close(sp[1]);
	for (int i = 0; i < 20; i++)
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
	return out;
}

static void
test_pending_holds_pipelined_input(void **state)
{
	char *out;

	(void)state;
	resumes = 0;
	out = converse("EHLO c\r\nMAIL FROM:<ok@x.org>\r\nRCPT TO:<a@b.org>"
	    "\r\nQUIT\r\n", 5);
	assert_int_equal(resumes, 1);
	/* RCPT was held until MAIL's hook resumed: replies stay in order. */
	assert_non_null(strstr(out, "250 2.1.0 Sender OK\r\n"
	    "250 2.1.5 Recipient OK\r\n221 "));
}

static void
test_delay_deny_and_postmaster(void **state)
{
	char *out;

	(void)state;
	out = converse("EHLO c\r\nMAIL FROM:<deny@x.org>\r\nRCPT TO:<a@b.org>"
	    "\r\nRCPT TO:<postmaster@b.org>\r\nQUIT\r\n", 6);
	/* MAIL is answered 250; its rejection comes at RCPT ... */
	assert_non_null(strstr(out, "250 2.1.0 Sender OK\r\n"
	    "550 5.7.1 Denied later\r\n"));
	/* ... and postmaster@ is exempt. */
	assert_non_null(strstr(out, "550 5.7.1 Denied later\r\n"
	    "250 2.1.5 Recipient OK\r\n"));
}

static void
test_timeout_fail_mode(void **state)
{
	char *out;

	(void)state;
	cancels = 0;
	out = converse("EHLO c\r\nMAIL FROM:<slow@x.org>\r\nRCPT TO:<a@b.org>"
	    "\r\nQUIT\r\n", 5);
	assert_int_equal(cancels, 1);
	assert_non_null(strstr(out, "451 4.4.3 "));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pending_holds_pipelined_input),
		cmocka_unit_test(test_delay_deny_and_postmaster),
		cmocka_unit_test(test_timeout_fail_mode),
	};
	struct pipeline *pl = calloc(1, sizeof(*pl));

	pl->def = calloc(1, sizeof(*pl->def));
	pl->order[0] = &test_async;
	pl->n = 1;
	pl->timeout = 1;
	pipeline_active = pl;
	base = event_base_new();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
