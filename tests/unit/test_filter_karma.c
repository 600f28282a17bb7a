/*
 * test_filter_karma.c: the adaptive blacklist. The decision table, the
 * sliding count on a test clock (karma_count takes the time), the block
 * record, and the hooks on a made-up session: recipients refused as
 * unknown, a message refused at data_post, a greytrap, the exempt
 * clients and the time left in the reply on the store's test clock.
 * Without an event base the filter writes nothing to the store.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <cmocka.h>

#include "filter_harness.h"
#include "../../src/filters/karma.h"
#include "../../src/store/store.h"

extern const struct filter filter_karma;

#define MIN	60000ULL

static time_t	test_now = 1000000;

static time_t
clock_fn(void)
{
	return test_now;
}

static struct verdict
call(struct harness *h, enum stage st)
{
	struct filter_call c = { &h->s, h->conf, h->state, &h->pol,
	    session_step(&h->s), false, filter_data(&h->s, h->f) };
	struct verdict v = h->f->hook[st](&c);

	if (v.by == NULL && v.code != V_CONTINUE)
		v.by = "karma";
	return v;
}

static void
session_clean(struct harness *h)
{
	free(filter_data(&h->s, h->f));
	free(h->s.pl_data);
	h->s.pl_data = NULL;
	free(h->s.sev);
	h->s.sev = NULL;
}

static void
test_decide(void **st)
{
	static const struct {
		uint64_t	attempts;
		double		ratio, total, bad;
		bool		block;
	} t[] = {
		{ 10, 0.5, 10, 10, false },	/* not more than 10 */
		{ 10, 0.5, 11, 6, true },	/* the seed's rule: > half */
		{ 10, 0.5, 11, 5, false },
		{ 10, 0.5, 12, 6, false },	/* exactly half */
		{ 10, 0.5, 10.6, 10.6, false },	/* weighted, under 11 */
		{ 3, 0.5, 4, 3, true },
		{ 3, 0.0, 4, 0, false },	/* no bad at all */
		{ 3, 0.0, 4, 1, true },
		{ 3, 1.0, 100, 100, false },	/* ratio 1: never */
	};
	struct karma_rule	r;
	struct karma_tally	y;
	size_t			i;

	(void)st;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		r = (struct karma_rule){ t[i].attempts, 60 * MIN, t[i].ratio };
		y = (struct karma_tally){ t[i].total, t[i].bad };
		assert_int_equal(karma_decide(&r, y), t[i].block);
	}
}

static void
test_count(void **st)
{
	struct window_table	*w = window_table_new(4096, false);
	struct karma_rule	 r = { 3, MIN, 0.5 };
	struct karma_tally	 y;
	uint64_t		 t0 = 10 * MIN;	/* a bucket's start */

	(void)st;
	assert_non_null(w);
	y = karma_count(w, &r, "a", 1, 0, 2, t0);
	assert_true(y.total == 2 && y.bad == 2);
	assert_false(karma_decide(&r, y));
	y = karma_count(w, &r, "a", 1, 0, 2, t0 + 1000);
	assert_true(y.total == 4 && y.bad == 4);
	assert_true(karma_decide(&r, y));
	/* Keys count apart. */
	y = karma_count(w, &r, "b", 1, 2, 3, t0);
	assert_true(y.total == 5 && y.bad == 3);
	assert_true(karma_decide(&r, y));
	y = karma_count(w, &r, "c", 1, 3, 2, t0);
	assert_false(karma_decide(&r, y));
	/* Half into the next bucket, the last one counts half. */
	y = karma_count(w, &r, "a", 1, 0, 0, t0 + MIN + MIN / 2);
	assert_true(y.total == 2 && y.bad == 2);
	y = karma_count(w, &r, "a", 1, 1, 0, t0 + MIN + MIN / 2);
	assert_true(y.total == 3 && y.bad == 2);
	/* Two windows on, everything before is forgotten. */
	y = karma_count(w, &r, "a", 1, 0, 0, t0 + 3 * MIN);
	assert_true(y.total == 0 && y.bad == 0);
	window_table_free(w);
}

static void
test_block_value(void **st)
{
	char	v[STORE_VAL_MAX], reason[KARMA_REASON_MAX + 1], k[64];
	char	longr[200];
	time_t	until;
	size_t	n;

	(void)st;
	n = karma_block_fmt(v, sizeof(v), 1234567890, "greytrap\r\n");
	assert_string_equal(v, "1234567890 greytrap");
	assert_int_equal(karma_block_parse(v, n, &until, reason,
	    sizeof(reason)), 0);
	assert_int_equal(until, 1234567890);
	assert_string_equal(reason, "greytrap");
	memset(longr, 'x', sizeof(longr) - 1);
	longr[sizeof(longr) - 1] = '\0';
	n = karma_block_fmt(v, sizeof(v), 1234567890, longr);
	assert_true(n < sizeof(v));
	assert_int_equal(strlen(v), 11 + KARMA_REASON_MAX);
	assert_int_equal(karma_block_parse("x1 a", 4, &until, reason,
	    sizeof(reason)), -1);
	assert_int_equal(karma_block_parse("12x", 3, &until, reason,
	    sizeof(reason)), -1);
	assert_int_equal(karma_block_parse("", 0, &until, reason,
	    sizeof(reason)), -1);
	assert_int_equal(karma_block_key(k, sizeof(k), "192.0.2.1"), 0);
	assert_string_equal(k, "block:192.0.2.1");
	assert_int_equal(karma_block_key(k, 8, "192.0.2.1"), -1);
	karma_fmt_left(k, sizeof(k), 45);
	assert_string_equal(k, "45s");
	karma_fmt_left(k, sizeof(k), 600);
	assert_string_equal(k, "10m");
	karma_fmt_left(k, sizeof(k), 4 * 3600 - 60);
	assert_string_equal(k, "3h59m");
	karma_fmt_left(k, sizeof(k), -5);
	assert_string_equal(k, "0s");
}

/* A transaction of the given recipients: 'u' refused unknown (550
 * 5.1.1), 'a' accepted, 'r' refused by relay control. */
static struct rcpt rc[8];

static void
txn_of(struct harness *h, unsigned seq, const char *kinds)
{
	size_t i;

	memset(rc, 0, sizeof(rc));
	memset(&h->t, 0, sizeof(h->t));
	for (i = 0; kinds[i] != '\0' && i < 8; i++) {
		snprintf(rc[i].addr, sizeof(rc[i].addr), "u%zu@example.test",
		    i);
		if (kinds[i] == 'a') {
			rc[i].accepted = true;
			rc[i].verdict = VERDICT(V_CONTINUE);
		} else if (kinds[i] == 'u') {
			rc[i].verdict = verdict_make(V_DENY, 550, "5.1.1",
			    "no");
			snprintf(rc[i].reply, sizeof(rc[i].reply),
			    "550 5.1.1 no");
		} else
			rc[i].verdict = verdict_make(V_DENY, 554, "5.7.1",
			    "relay");
	}
	h->t.rcpts = rc;
	h->t.nrcpt = i;
	h->t.active = true;
	h->t.seq = seq;
	h->t.cur = &h->r;
	h->s.txn = &h->t;
}

/* Calls the RCPT hook for a new transaction's recipient addr. */
static struct verdict
rcpt_now(struct harness *h, unsigned seq, const char *addr)
{
	txn_of(h, seq, "");
	harness_rcpt(h, addr);
	rc[0] = h->r;
	h->t.nrcpt = 1;
	h->t.cur = &rc[0];
	return call(h, STAGE_RCPT);
}

static const char *const kv[] = { "attempts", "3", "window", "60",
	"block", "600", NULL };

static void
test_unknown_recipients(void **st)
{
	struct harness h;

	(void)st;
	store_set_clock(clock_fn);
	assert_int_equal(harness_init(&h, &filter_karma, "example.test", kv),
	    0);
	snprintf(h.s.ip, sizeof(h.s.ip), "192.0.2.1");
	/* 3 unknown: not more than 3 attempts. */
	txn_of(&h, 1, "uuu");
	assert_int_equal(call(&h, STAGE_DISCONNECT).code, V_CONTINUE);
	assert_int_equal(rcpt_now(&h, 2, "<x@example.test>").code,
	    V_CONTINUE);
	session_clean(&h);
	/* A relay refusal counts neither way; a 4th unknown blocks. */
	txn_of(&h, 1, "ru");
	(void)call(&h, STAGE_DISCONNECT);
	struct verdict v = rcpt_now(&h, 2, "<x@example.test>");
	assert_int_equal(v.code, V_DENY);
	assert_int_equal(v.smtp, 554);
	assert_string_equal(v.esc, "5.7.1");
	assert_string_equal(v.text, "Blocked (4 bad of 4 attempts), try "
	    "again in 10m");
	/* postmaster@ stays reachable; the time left follows the clock. */
	assert_int_equal(rcpt_now(&h, 3, "<postmaster@example.test>").code,
	    V_DENY);	/* rcpt_now leaves exempt unset */
	rc[0].exempt = true;
	assert_int_equal(call(&h, STAGE_RCPT).code, V_CONTINUE);
	test_now += 570;
	v = rcpt_now(&h, 4, "<x@example.test>");
	assert_string_equal(v.text, "Blocked (4 bad of 4 attempts), try "
	    "again in 30s");
	session_clean(&h);
	harness_free(&h);
	store_set_clock(NULL);
}

static void
test_refused_message(void **st)
{
	struct harness h;

	(void)st;
	assert_int_equal(harness_init(&h, &filter_karma, "example.test", kv),
	    0);
	snprintf(h.s.ip, sizeof(h.s.ip), "192.0.2.2");
	/* Passed data_post: 4 good attempts. */
	txn_of(&h, 1, "aaaa");
	(void)call(&h, STAGE_DATA);
	(void)call(&h, STAGE_DATA_POST);
	h.s.txn = NULL;
	/* Refused at data_post (no DATA_POST call, the txn gone): bad. */
	txn_of(&h, 2, "aaaa");
	(void)call(&h, STAGE_MAIL);
	(void)call(&h, STAGE_DATA);
	h.s.txn = NULL;
	(void)call(&h, STAGE_DISCONNECT);
	/* 8 attempts, 4 bad: not more than half. */
	assert_int_equal(rcpt_now(&h, 3, "<x@example.test>").code,
	    V_CONTINUE);
	session_clean(&h);
	txn_of(&h, 1, "aa");
	(void)call(&h, STAGE_DATA);
	h.s.txn = NULL;
	(void)call(&h, STAGE_DISCONNECT);
	/* 10 attempts, 6 bad. */
	assert_int_equal(rcpt_now(&h, 2, "<x@example.test>").code, V_DENY);
	session_clean(&h);
	harness_free(&h);
}

static void
test_greytrap_and_exempt(void **st)
{
	char			 path[] = "/tmp/karma-traps-XXXXXX";
	const char		*tkv[] = { "greytraps", path, NULL };
	struct harness		 h;
	struct verdict		 v;
	int			 fd;

	(void)st;
	assert_true((fd = mkstemp(path)) != -1);
	assert_int_equal(write(fd, "Trap@Example.test\n", 18), 18);
	close(fd);
	assert_int_equal(harness_init(&h, &filter_karma, "example.test",
	    tkv), 0);
	/* A trusted client: never counted, never refused. */
	snprintf(h.s.ip, sizeof(h.s.ip), "192.0.2.3");
	h.s.trusted = true;
	assert_int_equal(rcpt_now(&h, 1, "<trap@example.test>").code,
	    V_CONTINUE);
	h.s.trusted = false;
	/* A trap: blocked at once, the trap recipient refused. */
	v = rcpt_now(&h, 1, "<trap@example.test>");
	assert_int_equal(v.code, V_DENY);
	assert_string_equal(v.text, "Blocked (greytrap), try again in 24h00m");
	session_clean(&h);
	/* A trap refused earlier (by recipients) is seen at the next
	 * recipient. */
	snprintf(h.s.ip, sizeof(h.s.ip), "192.0.2.4");
	txn_of(&h, 1, "u");
	snprintf(rc[0].addr, sizeof(rc[0].addr), "trap@example.test");
	rc[1] = rc[0];
	h.t.nrcpt = 2;
	h.t.cur = &rc[1];
	snprintf(rc[1].addr, sizeof(rc[1].addr), "alice@example.test");
	v = call(&h, STAGE_RCPT);
	assert_int_equal(v.code, V_DENY);
	assert_int_equal(v.smtp, 554);
	session_clean(&h);
	harness_free(&h);
	unlink(path);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_decide),
		cmocka_unit_test(test_count),
		cmocka_unit_test(test_block_value),
		cmocka_unit_test(test_unknown_recipients),
		cmocka_unit_test(test_refused_message),
		cmocka_unit_test(test_greytrap_and_exempt),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
