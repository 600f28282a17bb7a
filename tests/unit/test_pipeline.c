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
	struct step_token tok;
	struct verdict	v;
};

static void
later_cb(evutil_socket_t fd, short what, void *arg)
{
	struct later *l = arg;

	(void)fd;
	(void)what;
	resumes++;
	filter_resume(l->tok, l->v);
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
	l->tok = c->step;
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

/*
 * For <stale@..>: "late" never answers in time (FAIL_CONTINUE), so the
 * pipeline moves on to "next"; next schedules the late filter's answer
 * (a DENY, with the late filter's token) before its own CONTINUE. The
 * stale DENY must be dropped, not taken as next's verdict.
 */
static struct step_token	late_tok;

static struct verdict
late_mail(struct filter_call *c)
{
	if (strcmp(c->s->txn->from.local, "stale") != 0)
		return VERDICT(V_CONTINUE);
	late_tok = c->step;
	return VERDICT(V_PENDING);
}

static struct verdict
next_mail(struct filter_call *c)
{
	struct later	*stale, *mine;
	struct timeval	 now = { 0, 0 }, soon = { 0, 50000 };

	if (strcmp(c->s->txn->from.local, "stale") != 0)
		return VERDICT(V_CONTINUE);
	stale = calloc(1, sizeof(*stale));
	stale->tok = late_tok;
	stale->v = verdict_make(V_DENY, 550, "5.7.1", "Stale verdict");
	event_base_once(base, -1, EV_TIMEOUT, later_cb, stale, &now);
	mine = calloc(1, sizeof(*mine));
	mine->tok = c->step;
	mine->v = VERDICT(V_CONTINUE);
	event_base_once(base, -1, EV_TIMEOUT, later_cb, mine, &soon);
	return VERDICT(V_PENDING);
}

static const struct filter test_late = {
	.name = "late", .summary = "test", .opts = NULL,
	.hook = { [STAGE_MAIL] = late_mail },
	.cancel = async_cancel, .fail = FAIL_CONTINUE,
};

static const struct filter test_next = {
	.name = "next", .summary = "test", .opts = NULL,
	.hook = { [STAGE_MAIL] = next_mail }, .fail = FAIL_DEFER,
};

/* Refuses the message at the DATA stage for <nodata@..>. */
static struct verdict
nodata(struct filter_call *c)
{
	if (strcmp(c->s->txn->from.local, "nodata") != 0)
		return VERDICT(V_CONTINUE);
	return verdict_make(V_DENY, 550, "5.7.1", "No data from you");
}

static const struct filter test_nodata = {
	.name = "nodata", .summary = "test", .opts = NULL,
	.hook = { [STAGE_DATA] = nodata }, .fail = FAIL_DEFER,
};

/*
 * "evid": evidence started at connect (two pieces of work, done on later
 * loop turns, or one never), decided at RCPT under the recipient's
 * policy: a policy with a conf (strict) refuses a listed client, the
 * default (no conf) lets it through. Its disconnect hook records how
 * many observe-mode verdicts the session kept.
 */
struct evid_data {
	uint64_t	sid;
	bool		listed;
	bool		noted;
};

static int	evid_mode;	/* 0: both pieces answer; 1: one never */
static int	evid_frees, evid_would;
static const struct filter test_evid;

struct evid_piece {
	uint64_t	sid;
	bool		listed;
};

static void
evid_piece_cb(evutil_socket_t fd, short what, void *arg)
{
	struct evid_piece	*pc = arg;
	struct session		*s = session_find(pc->sid);
	struct evid_data	*d;

	(void)fd;
	(void)what;
	if (s != NULL && (d = filter_data(s, &test_evid)) != NULL) {
		d->listed |= pc->listed;
		filter_work_done(s, &test_evid);
	}
	free(pc);
}

static void
evid_start(struct session *s, bool listed, int ms)
{
	struct evid_piece	*pc = calloc(1, sizeof(*pc));
	struct timeval		 tv = { 0, ms * 1000 };

	pc->sid = s->id;
	pc->listed = listed;
	filter_work_add(s, &test_evid);
	event_base_once(base, -1, EV_TIMEOUT, evid_piece_cb, pc, &tv);
}

static struct verdict
evid_connect(struct filter_call *c)
{
	struct evid_data *d = calloc(1, sizeof(*d));

	d->sid = c->s->id;
	filter_data_set(c->s, &test_evid, d);
	evid_start(c->s, evid_mode == 0, 20);
	if (evid_mode == 0)
		evid_start(c->s, false, 40);
	else
		filter_work_add(c->s, &test_evid);	/* never ends */
	return VERDICT(V_CONTINUE);
}

static struct verdict
evid_rcpt(struct filter_call *c)
{
	struct evid_data *d = c->data;

	if (d == NULL)
		return VERDICT(V_CONTINUE);
	if (!c->late && filter_work_pending(c->s, &test_evid) > 0)
		return filter_wait(c, 300);
	if (!d->noted)
		filter_evidence(c->s, &test_evid, "EVID_LISTED", 2.0, 1.5,
		    "zone=test answer=%s", d->listed ? "127.0.0.2" : "-");
	d->noted = true;
	if (d->listed && c->conf != NULL)
		return verdict_make(V_DENY, 554, "5.7.1", "Listed here");
	return VERDICT(V_CONTINUE);
}

static struct verdict
evid_disconnect(struct filter_call *c)
{
	evid_would = c->s->sev != NULL ? (int)c->s->sev->nw : 0;
	return VERDICT(V_CONTINUE);
}

static void
evid_free(void *data)
{
	evid_frees++;
	free(data);
}

static const struct filter test_evid = {
	.name = "evid", .summary = "test", .opts = NULL,
	.hook = { [STAGE_CONNECT] = evid_connect, [STAGE_RCPT] = evid_rcpt,
	    [STAGE_DISCONNECT] = evid_disconnect },
	.data_free = evid_free, .fail = FAIL_DEFER,
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
	.hostname = "test.example", .banner = "moat", .message_memory = 65536, .message_memory_budget = 1 << 30,
	.spool_dir = "/tmp", .deadline_command = 300,
	.deadline_message = 1800, .deadline_tls = 60, .max_message_size =
	1 << 20, .max_recipients = 100, .max_errors = 10, .max_line = 1000,
	.max_command_line = 1024,
	.max_header_lines = 1000, .timeout_command = 30, .timeout_data = 30,
	.timeout_filter = 1, .delay_deny = true, .pipelining = true,
	.chunking = true,
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

static void
test_cancel_on_disconnect(void **state)
{
	(void)state;
	cancels = 0;
	/* Greeting + EHLO, then MAIL's hook never answers; the session is
	 * torn down while it is pending (as on a reset or at the end of a
	 * drain): the hook is cancelled, once. */
	(void)converse("EHLO c\r\nMAIL FROM:<slow@x.org>\r\n", 2);
	assert_int_equal(session_count(), 1);
	assert_int_equal(cancels, 0);
	session_foreach(session_close);
	assert_int_equal(session_count(), 0);
	assert_int_equal(cancels, 1);
}

static void
test_stale_completion_dropped(void **state)
{
	char *out;

	(void)state;
	cancels = 0;
	out = converse("EHLO c\r\nMAIL FROM:<stale@x.org>\r\nQUIT\r\n", 4);
	assert_int_equal(cancels, 1);		/* late timed out */
	assert_null(strstr(out, "Stale verdict"));
	assert_non_null(strstr(out, "250 2.1.0 Sender OK\r\n221 "));
}

static void
test_refused_bdat_chunk_skipped(void **state)
{
	char *out;

	(void)state;
	/* The chunks hold commands; none of them may run. */
	out = converse("EHLO c\r\nMAIL FROM:<nodata@x.org>\r\n"
	    "RCPT TO:<a@b.org>\r\nBDAT 12\r\nNOOP\r\nNOOP\r\n"
	    "BDAT 6 LAST\r\nNOOP\r\nRSET\r\nQUIT\r\n", 8);
	assert_non_null(strstr(out, "250 2.1.5 Recipient OK\r\n"
	    "550 5.7.1 No data from you\r\n550 5.7.1 No data from you\r\n"
	    "250 2.0.0 OK\r\n221 "));
}

static void
test_evidence_per_policy(void **state)
{
	char *out;

	(void)state;
	evid_mode = 0;
	evid_frees = 0;
	/* The same evidence: refused under strict.test's policy, taken
	 * under the default one. RCPT waited for both lookups. */
	out = converse("EHLO c\r\nMAIL FROM:<a@x.org>\r\n"
	    "RCPT TO:<u@strict.test>\r\nRSET\r\nMAIL FROM:<a@x.org>\r\n"
	    "RCPT TO:<u@lax.test>\r\nQUIT\r\n", 8);
	assert_non_null(strstr(out, "250 2.1.0 Sender OK\r\n"
	    "554 5.7.1 Listed here\r\n250 2.0.0 OK\r\n"
	    "250 2.1.0 Sender OK\r\n250 2.1.5 Recipient OK\r\n221 "));
	assert_int_equal(evid_frees, 1);
}

static void
test_evidence_deadline(void **state)
{
	char *out;

	(void)state;
	evid_mode = 1;
	evid_frees = 0;
	/* One lookup never answers: RCPT waits 300 ms, then the pending
	 * one counts as no data (not listed): 250, not the filter
	 * timeout's 451. */
	out = converse("EHLO c\r\nMAIL FROM:<a@x.org>\r\n"
	    "RCPT TO:<u@strict.test>\r\nQUIT\r\n", 5);
	assert_non_null(strstr(out, "250 2.1.0 Sender OK\r\n"
	    "250 2.1.5 Recipient OK\r\n221 "));
	assert_int_equal(evid_frees, 1);
}

static void
test_observe_mode(void **state)
{
	const struct filter	*f = &test_evid;
	struct policy		*strict = pipeline_active->domains[0];
	char			*out;

	(void)state;
	evid_mode = 0;
	evid_would = 0;
	strict->observe[filter_index(f)] = true;
	out = converse("EHLO c\r\nMAIL FROM:<a@x.org>\r\n"
	    "RCPT TO:<u@strict.test>\r\nQUIT\r\n", 5);
	strict->observe[filter_index(f)] = false;
	/* Logged as would_reject, and nothing changed. */
	assert_non_null(strstr(out, "250 2.1.5 Recipient OK\r\n221 "));
	assert_int_equal(evid_would, 1);
}

static void
test_filter_skip(void **state)
{
	extern const struct filter filter_dnsbl, filter_spf, filter_fcrdns;
	struct session	s;
	struct txn	t;

	(void)state;
	memset(&s, 0, sizeof(s));
	memset(&t, 0, sizeof(t));
	assert_int_equal(filter_skip(&s, "dnsbl, spf", false), 0);
	assert_true(filter_skipped(&s, &filter_dnsbl));
	assert_true(filter_skipped(&s, &filter_spf));
	assert_false(filter_skipped(&s, &filter_fcrdns));
	/* A transaction's skips end with it. */
	s.txn = &t;
	assert_int_equal(filter_skip(&s, "fcrdns", true), 0);
	assert_true(filter_skipped(&s, &filter_fcrdns));
	s.txn = NULL;
	assert_false(filter_skipped(&s, &filter_fcrdns));
	/* Unknown names change nothing. */
	s.skip = 0;
	assert_int_equal(filter_skip(&s, "dnsbl nosuch", false), -1);
	assert_false(filter_skipped(&s, &filter_dnsbl));
	assert_int_equal(filter_skip(&s, "all", false), 0);
	assert_true(filter_skipped(&s, &filter_fcrdns));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pending_holds_pipelined_input),
		cmocka_unit_test(test_delay_deny_and_postmaster),
		cmocka_unit_test(test_timeout_fail_mode),
		cmocka_unit_test(test_cancel_on_disconnect),
		cmocka_unit_test(test_stale_completion_dropped),
		cmocka_unit_test(test_refused_bdat_chunk_skipped),
		cmocka_unit_test(test_evidence_per_policy),
		cmocka_unit_test(test_evidence_deadline),
		cmocka_unit_test(test_observe_mode),
		cmocka_unit_test(test_filter_skip),
	};
	static int	strict_conf = 1;
	struct pipeline *pl = calloc(1, sizeof(*pl));

	pl->def = calloc(1, sizeof(*pl->def));
	pl->order[0] = &test_async;
	pl->order[1] = &test_late;
	pl->order[2] = &test_next;
	pl->order[3] = &test_nodata;
	pl->order[4] = &test_evid;
	pl->n = 5;
	/* strict.test: a policy whose conf for the test filters' slot is
	 * set (test filters share the slot past the registry). */
	pl->domains = calloc(1, sizeof(*pl->domains));
	pl->domains[0] = calloc(1, sizeof(**pl->domains));
	pl->domains[0]->domain = "strict.test";
	pl->domains[0]->conf[filter_index(&test_evid)] = &strict_conf;
	pl->ndomains = 1;
	pl->timeout = 1;
	pipeline_active = pl;
	base = event_base_new();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
