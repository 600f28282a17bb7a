/*
 * test_filter_karma.c: the adaptive blacklist. The decision table (the
 * plain share and the Wilson lower bound: 9 bad of 11 blocks, 6 of 11
 * does not), the sliding count on a test clock (karma_count takes the
 * time), the block and offence records, the doubling, the client names
 * (IPv6 by /64), and the hooks on a made-up session: connections with
 * recipients refused as unknown, a message refused at data_post, the
 * connection-level outcomes (early talker, failed AUTH, protocol, DNSBL,
 * rate limit) counted once per connection, a greytrap, the exempt
 * clients, the time left in the reply on the store's test clock, and
 * the KARMA_GOOD / KARMA_BAD evidence at connect. Without an event base
 * the filter writes nothing to the store: a block lives in the session.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
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
		double		ratio, z, total, bad;
		bool		block;
	} t[] = {
		{ 10, 0.5, 0, 10, 10, false },	/* not more than 10 */
		{ 10, 0.5, 0, 11, 6, true },	/* plain share: > half */
		{ 10, 0.5, 0, 11, 5, false },
		{ 10, 0.5, 0, 12, 6, false },	/* exactly half */
		{ 10, 0.5, 0, 10.6, 10.6, false }, /* weighted, under 11 */
		{ 3, 0.5, 0, 4, 3, true },
		{ 3, 0.0, 0, 4, 0, false },	/* no bad at all */
		{ 3, 0.0, 0, 4, 1, true },
		{ 3, 1.0, 0, 100, 100, false },	/* ratio 1: never */
		/* The judgement, the defaults (z 1.645). */
		{ 10, 0.5, 1.645, 11, 9, true },
		{ 10, 0.5, 1.645, 11, 6, false },
		{ 10, 0.5, 1.645, 11, 8, false },
		{ 10, 0.5, 1.645, 11, 11, true },
		{ 10, 0.5, 1.645, 10, 10, false },
		{ 10, 0.5, 1.645, 40, 28, true },	/* 70 % of many */
		{ 10, 0.5, 1.645, 40, 24, false },	/* 60 % of 40 */
	};
	struct karma_rule	r;
	struct karma_tally	y;
	size_t			i;

	(void)st;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		r = (struct karma_rule){ t[i].attempts, 60 * MIN, t[i].ratio,
		    t[i].z };
		y = (struct karma_tally){ t[i].total, t[i].bad };
		if (karma_decide(&r, y) != t[i].block)
			fail_msg("row %zu: %g bad of %g", i, t[i].bad,
			    t[i].total);
	}
	/* The bound itself: under the share, 0 for nothing. */
	assert_true(fabs(karma_wilson_lower(9, 11, 1.645) - 0.5731) < 1e-3);
	assert_true(fabs(karma_wilson_lower(6, 11, 0) - 6.0 / 11) < 1e-9);
	assert_true(karma_wilson_lower(0, 0, 1.645) == 0);
	assert_true(karma_wilson_lower(0, 5, 1.645) < 1e-9);
}

static void
test_count(void **st)
{
	struct window_table	*w = window_table_new(4096, false);
	struct karma_rule	 r = { 3, MIN, 0.5, 0 };
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
	unsigned	off;
	long long	ttl;

	n = karma_block_fmt(v, sizeof(v), 1234567890, 0, "greytrap\r\n");
	assert_string_equal(v, "1234567890 greytrap");
	assert_int_equal(karma_block_parse(v, n, &until, &off, reason,
	    sizeof(reason)), 0);
	assert_int_equal(until, 1234567890);
	assert_int_equal(off, 0);
	assert_string_equal(reason, "greytrap");
	n = karma_block_fmt(v, sizeof(v), 1234567890, 3, "9 bad of 11");
	assert_string_equal(v, "1234567890 #3 9 bad of 11");
	assert_int_equal(karma_block_parse(v, n, &until, &off, reason,
	    sizeof(reason)), 0);
	assert_int_equal(off, 3);
	assert_string_equal(reason, "9 bad of 11");
	memset(longr, 'x', sizeof(longr) - 1);
	longr[sizeof(longr) - 1] = '\0';
	n = karma_block_fmt(v, sizeof(v), 1234567890, 0, longr);
	assert_true(n < sizeof(v));
	assert_int_equal(strlen(v), 11 + KARMA_REASON_MAX);
	/* The longest: ten-digit offences still fit. */
	n = karma_block_fmt(v, sizeof(v), 1234567890, 4000000000U, longr);
	assert_true(n > 0 && n < sizeof(v));
	assert_int_equal(karma_block_parse(v, n, &until, &off, reason,
	    sizeof(reason)), 0);
	assert_int_equal(off, 4000000000U);
	assert_int_equal(karma_block_parse("x1 a", 4, &until, NULL, reason,
	    sizeof(reason)), -1);
	assert_int_equal(karma_block_parse("12x", 3, &until, NULL, reason,
	    sizeof(reason)), -1);
	assert_int_equal(karma_block_parse("12 #3x", 6, &until, NULL,
	    reason, sizeof(reason)), -1);
	assert_int_equal(karma_block_parse("", 0, &until, NULL, reason,
	    sizeof(reason)), -1);
	/* The offence record. */
	n = karma_offence_fmt(v, sizeof(v), 2, 28800);
	assert_string_equal(v, "2 28800");
	assert_int_equal(karma_offence_parse(v, n, &off, &ttl), 0);
	assert_int_equal(off, 2);
	assert_int_equal(ttl, 28800);
	assert_int_equal(karma_offence_parse("2", 1, &off, &ttl), -1);
	assert_int_equal(karma_offence_parse("2 x", 3, &off, &ttl), -1);
	assert_int_equal(karma_offence_parse("2 -1", 4, &off, &ttl), -1);
	assert_int_equal(karma_offence_key(k, sizeof(k), "192.0.2.1"), 0);
	assert_string_equal(k, "offence:192.0.2.1");
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

/* The plain share (ratio_z 0) keeps the tables small. */
static const char *const kv[] = { "attempts", "3", "window", "60",
	"block", "600", "ratio_z", "0", NULL };

/* One connection whose only transaction has the given recipients, ended
 * (disconnect); its data stays for a following rcpt_now(). */
static void
conn(struct harness *h, const char *kinds)
{
	session_clean(h);
	txn_of(h, 1, kinds);
	(void)call(h, STAGE_DISCONNECT);
}

static void
test_unknown_recipients(void **st)
{
	struct harness	h;
	struct verdict	v;

	(void)st;
	store_set_clock(clock_fn);
	assert_int_equal(harness_init(&h, &filter_karma, "example.test", kv),
	    0);
	snprintf(h.s.ip, sizeof(h.s.ip), "192.0.2.1");
	/* Three connections with unknown recipients: three bad attempts,
	 * one each, however many recipients: not more than 3. */
	conn(&h, "uuu");
	conn(&h, "uu");
	conn(&h, "u");
	assert_int_equal(rcpt_now(&h, 2, "<x@example.test>").code,
	    V_CONTINUE);
	/* A fourth connection: a relay refusal counts neither way, the
	 * unknown one is seen at the next RCPT and blocks at once. */
	session_clean(&h);
	txn_of(&h, 1, "ru");
	h.t.cur = &rc[2];
	snprintf(rc[2].addr, sizeof(rc[2].addr), "x@example.test");
	h.t.nrcpt = 3;
	v = call(&h, STAGE_RCPT);
	assert_int_equal(v.code, V_DENY);
	assert_int_equal(v.smtp, 554);
	assert_string_equal(v.esc, "5.7.1");
	assert_string_equal(v.text, "Blocked (4 bad of 4 connections), try "
	    "again in 10m");
	/* postmaster@ stays reachable; the time left follows the clock. */
	assert_int_equal(rcpt_now(&h, 3, "<postmaster@example.test>").code,
	    V_DENY);	/* rcpt_now leaves exempt unset */
	rc[0].exempt = true;
	assert_int_equal(call(&h, STAGE_RCPT).code, V_CONTINUE);
	test_now += 570;
	v = rcpt_now(&h, 4, "<x@example.test>");
	assert_string_equal(v.text, "Blocked (4 bad of 4 connections), try "
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
	/* Two connections whose message passed data_post: good. */
	for (int i = 0; i < 2; i++) {
		session_clean(&h);
		txn_of(&h, 1, "aaaa");
		(void)call(&h, STAGE_DATA);
		(void)call(&h, STAGE_DATA_POST);
		h.s.txn = NULL;
		(void)call(&h, STAGE_DISCONNECT);
	}
	/* A connection that only quit after an accepted recipient: no
	 * outcome either way. */
	conn(&h, "a");
	/* Refused at data_post (no DATA_POST call, the txn gone): bad. */
	for (int i = 0; i < 3; i++) {
		session_clean(&h);
		txn_of(&h, 1, "aaaa");
		(void)call(&h, STAGE_MAIL);
		(void)call(&h, STAGE_DATA);
		h.s.txn = NULL;
		(void)call(&h, STAGE_DISCONNECT);
		/* 4 connections, 2 bad: not more than half; 5, 3: blocks. */
		assert_int_equal(rcpt_now(&h, 3, "<x@example.test>").code,
		    i < 2 ? V_CONTINUE : V_DENY);
	}
	session_clean(&h);
	harness_free(&h);
}

static const struct filter fake_dnsbl = { .name = "dnsbl" };
static const struct filter fake_ratelimit = { .name = "ratelimit" };

/* The connection-level outcomes: each makes a connection bad, and a
 * connection counts once however many it has. */
static void
test_connection_outcomes(void **st)
{
	struct harness	h;
	int		i;

	(void)st;
	assert_int_equal(harness_init(&h, &filter_karma, "example.test", kv),
	    0);
	snprintf(h.s.ip, sizeof(h.s.ip), "192.0.2.9");
	/* Three connections with everything bad at once: 3 attempts. */
	for (i = 0; i < 3; i++) {
		session_clean(&h);
		h.s.pregreet = 3;
		h.s.auth_failures = 2;
		h.s.proto = PROTO_BARE_LF;
		filter_evidence(&h.s, &fake_dnsbl, "DNSBL", 1, 0, "z=127.0.0.2");
		txn_of(&h, 1, "uu");
		(void)call(&h, STAGE_MAIL);
		(void)call(&h, STAGE_DISCONNECT);
		assert_int_equal(rcpt_now(&h, 2, "<x@example.test>").code,
		    V_CONTINUE);
	}
	h.s.pregreet = 0;
	h.s.auth_failures = 0;
	h.s.proto = 0;
	/* Each alone makes a fourth bad connection, which blocks; with
	 * none of them it does not. */
	for (i = 0; i < 8; i++) {
		snprintf(h.s.ip, sizeof(h.s.ip), "192.0.2.%d", 10 + i);
		for (int k = 0; k < 4; k++) {
			session_clean(&h);
			txn_of(&h, 1, "");
			if (k < 3)
				h.s.pregreet = 3;
			else if (i == 0)
				h.s.pregreet = 3;
			else if (i == 1)
				h.s.auth_failures = 1;
			else if (i == 2)
				h.s.proto = PROTO_PIPELINING;
			else if (i == 3)
				h.s.errors = 3;
			else if (i == 4)
				filter_evidence(&h.s, &fake_dnsbl, "DNSBL", 1,
				    0, "z");
			else if (i == 5)
				filter_evidence(&h.s, &fake_ratelimit,
				    "in_messages", 0, 0, "x");
			else if (i == 6) {
				/* A DNSWL entry, two errors: not bad. */
				filter_evidence(&h.s, &fake_dnsbl, "DNSWL",
				    -1, 0, "z");
				h.s.errors = 2;
			} else {
				/* ratelimit observed: its refusal did not
				 * happen. */
				h.pol.observe[filter_index(filter_find(
				    "ratelimit"))] = true;
				filter_evidence(&h.s, &fake_ratelimit,
				    "in_messages", 0, 0, "x");
			}
			(void)call(&h, STAGE_DISCONNECT);
			h.s.pregreet = 0;
			h.s.auth_failures = 0;
			h.s.proto = 0;
			h.s.errors = 0;
		}
		assert_int_equal(rcpt_now(&h, 2, "<x@example.test>").code,
		    i < 6 ? V_DENY : V_CONTINUE);
	}
	session_clean(&h);
	harness_free(&h);
}

/* An IPv6 client is its /64: keys, counts and blocks. */
static void
test_ipv6_prefix(void **st)
{
	struct harness	h;
	char		c[KARMA_CLIENT_MAX];
	int		i;

	(void)st;
	assert_int_equal(karma_client("192.0.2.7", c, sizeof(c)), 0);
	assert_string_equal(c, "192.0.2.7");
	assert_int_equal(karma_client("2001:db8:1:2:aaaa:bbbb:cccc:dddd", c,
	    sizeof(c)), 0);
	assert_string_equal(c, "2001:db8:1:2::/64");
	assert_int_equal(karma_client("2001:DB8:1:2::1", c, sizeof(c)), 0);
	assert_string_equal(c, "2001:db8:1:2::/64");
	assert_int_equal(karma_client("2001:db8:1:2::/64", c, sizeof(c)), 0);
	assert_string_equal(c, "2001:db8:1:2::/64");
	assert_int_equal(karma_client("::ffff:192.0.2.8", c, sizeof(c)), 0);
	assert_string_equal(c, "192.0.2.8");
	assert_int_equal(karma_client("::1", c, sizeof(c)), 0);
	assert_string_equal(c, "::/64");
	assert_int_equal(karma_client("192.0.2.7/64", c, sizeof(c)), -1);
	assert_int_equal(karma_client("not-an-ip", c, sizeof(c)), -1);
	assert_int_equal(karma_client("2001:db8::1", c, 8), -1);
	/* Four addresses of one /64, one bad connection each: blocked as
	 * one client; another /64 is not. */
	assert_int_equal(harness_init(&h, &filter_karma, "example.test", kv),
	    0);
	for (i = 0; i < 4; i++) {
		session_clean(&h);
		snprintf(h.s.ip, sizeof(h.s.ip), "2001:db8:1:2::%x", i + 1);
		txn_of(&h, 1, "u");
		(void)call(&h, STAGE_DISCONNECT);
	}
	assert_int_equal(rcpt_now(&h, 2, "<x@example.test>").code, V_DENY);
	session_clean(&h);
	snprintf(h.s.ip, sizeof(h.s.ip), "2001:db8:1:3::1");
	txn_of(&h, 1, "u");
	(void)call(&h, STAGE_DISCONNECT);
	assert_int_equal(rcpt_now(&h, 2, "<x@example.test>").code,
	    V_CONTINUE);
	session_clean(&h);
	harness_free(&h);
}

/* Repeat offenders: twice the last block, capped, never under base. */
static void
test_next_ttl(void **st)
{
	(void)st;
	assert_int_equal(karma_next_ttl(14400, 604800, 0, 0), 14400);
	assert_int_equal(karma_next_ttl(14400, 604800, 1, 14400), 28800);
	assert_int_equal(karma_next_ttl(14400, 604800, 2, 28800), 57600);
	assert_int_equal(karma_next_ttl(14400, 604800, 5, 460800), 604800);
	assert_int_equal(karma_next_ttl(14400, 604800, 6, 604800), 604800);
	assert_int_equal(karma_next_ttl(86400, 3600, 1, 86400), 86400);
	assert_int_equal(karma_next_ttl(60, 600, 1, 0), 60);
}

/* The evidence at connect: the count with none of this connection. */
static const char *
evidence_of(struct harness *h, const char *name)
{
	size_t i;

	for (i = 0; h->s.sev != NULL && i < h->s.sev->nev; i++)
		if (strcmp(h->s.sev->ev[i].name, name) == 0)
			return h->s.sev->ev[i].detail;
	return NULL;
}

static void
test_history_evidence(void **st)
{
	struct harness	 h;
	const char	*d;
	int		 i;

	(void)st;
	assert_int_equal(harness_init(&h, &filter_karma, "example.test", kv),
	    0);
	snprintf(h.s.ip, sizeof(h.s.ip), "192.0.2.20");
	/* Unknown client: neither. */
	session_clean(&h);
	assert_int_equal(call(&h, STAGE_CONNECT).code, V_CONTINUE);
	assert_null(evidence_of(&h, "KARMA_GOOD"));
	assert_null(evidence_of(&h, "KARMA_BAD"));
	/* Three connections that delivered: KARMA_GOOD (good_min 3). */
	for (i = 0; i < 3; i++) {
		session_clean(&h);
		assert_int_equal(call(&h, STAGE_CONNECT).code, V_CONTINUE);
		if (i < 2)
			assert_null(evidence_of(&h, "KARMA_GOOD"));
		txn_of(&h, 1, "a");
		(void)call(&h, STAGE_DATA);
		(void)call(&h, STAGE_DATA_POST);
		h.s.txn = NULL;
		(void)call(&h, STAGE_DISCONNECT);
	}
	session_clean(&h);
	(void)call(&h, STAGE_CONNECT);
	assert_non_null(d = evidence_of(&h, "KARMA_GOOD"));
	assert_string_equal(d, "good=3 bad=0");
	assert_null(evidence_of(&h, "KARMA_BAD"));
	/* A passed greylisting retry is good too, and one bad connection
	 * makes the history KARMA_BAD. */
	session_clean(&h);
	filter_evidence(&h.s, &fake_ratelimit, "in_recipients", 0, 0, "y");
	(void)call(&h, STAGE_DISCONNECT);
	/* A limit keyed on what a third party controls (a forged sender's
	 * domain, a recipient, the bounce hold) is not the client's. */
	session_clean(&h);
	filter_evidence(&h.s, &fake_ratelimit, "in_domain_messages", 0, 0,
	    "y");
	filter_evidence(&h.s, &fake_ratelimit, "bounce_hold", 0, 0, "y");
	(void)call(&h, STAGE_DISCONNECT);
	session_clean(&h);
	(void)call(&h, STAGE_CONNECT);
	assert_null(evidence_of(&h, "KARMA_GOOD"));
	assert_non_null(d = evidence_of(&h, "KARMA_BAD"));
	assert_string_equal(d, "good=3 bad=1 offences=0");
	session_clean(&h);
	snprintf(h.s.ip, sizeof(h.s.ip), "192.0.2.21");
	for (i = 0; i < 3; i++) {
		session_clean(&h);
		filter_evidence(&h.s, &(const struct filter){ .name =
		    "greylist" }, "GREYLIST_PASS", 0, 0, "k");
		(void)call(&h, STAGE_DISCONNECT);
	}
	session_clean(&h);
	(void)call(&h, STAGE_CONNECT);
	assert_non_null(evidence_of(&h, "KARMA_GOOD"));
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
		cmocka_unit_test(test_connection_outcomes),
		cmocka_unit_test(test_ipv6_prefix),
		cmocka_unit_test(test_next_ttl),
		cmocka_unit_test(test_history_evidence),
		cmocka_unit_test(test_greytrap_and_exempt),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
