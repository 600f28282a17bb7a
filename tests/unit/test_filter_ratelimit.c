/*
 * test_filter_ratelimit.c: inbound limits per client (IPv6 by /64),
 * outbound per authenticated user and per relay client, the replies
 * (421 at connect, 450 4.7.1 with the retry time) and the evidence.
 * The windows themselves are tested on a test clock in test_window.c;
 * here the periods are an hour, so nothing slides during the test.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <cmocka.h>

#include "filter_harness.h"

extern const struct filter filter_ratelimit;

static struct verdict
call(struct harness *h, enum stage st)
{
	struct filter_call c = { &h->s, h->conf, h->state, &h->pol,
	    session_step(&h->s), false, filter_data(&h->s, h->f) };

	return h->f->hook[st](&c);
}

static void
client6(struct harness *h, const char *ip)
{
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&h->s.peer;

	memset(&h->s.peer, 0, sizeof(h->s.peer));
	sin6->sin6_family = AF_INET6;
	inet_pton(AF_INET6, ip, &sin6->sin6_addr);
	snprintf(h->s.ip, sizeof(h->s.ip), "%s", ip);
}

static void
client4(struct harness *h, const char *ip)
{
	memset(&h->s.peer, 0, sizeof(h->s.peer));
	harness_client(h, ip);
	snprintf(h->s.ip, sizeof(h->s.ip), "%s", ip);
}

/* Frees what the filter left on the session (evidence, data). */
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
test_inbound(void **st)
{
	struct harness		 h;
	struct verdict		 v;
	const char *const	 kv[] = { "in_recipients", "3/1h",
	    "in_messages", "2/1h", "in_connections", "2/1h", NULL };
	int			 i;

	(void)st;
	assert_int_equal(harness_init(&h, &filter_ratelimit, "example.test",
	    kv), 0);
	client4(&h, "192.0.2.7");
	for (i = 0; i < 3; i++)
		assert_int_equal(call(&h, STAGE_RCPT).code, V_CONTINUE);
	v = call(&h, STAGE_RCPT);
	assert_int_equal(v.code, V_DEFER);
	assert_int_equal(v.smtp, 450);
	assert_string_equal(v.esc, "4.7.1");
	assert_non_null(strstr(v.text, "retry after 20m"));
	assert_non_null(h.s.sev);
	assert_string_equal(h.s.sev->ev[0].name, "in_recipients");
	assert_non_null(strstr(h.s.sev->ev[0].detail,
	    "key=192.0.2.7 used=3 limit=3/3600s"));
	/* Another client has its own count. */
	client4(&h, "192.0.2.8");
	assert_int_equal(call(&h, STAGE_RCPT).code, V_CONTINUE);
	/* Messages and connections. */
	assert_int_equal(call(&h, STAGE_MAIL).code, V_CONTINUE);
	assert_int_equal(call(&h, STAGE_MAIL).code, V_CONTINUE);
	assert_int_equal(call(&h, STAGE_MAIL).code, V_DEFER);
	assert_int_equal(call(&h, STAGE_CONNECT).code, V_CONTINUE);
	assert_int_equal(call(&h, STAGE_CONNECT).code, V_CONTINUE);
	v = call(&h, STAGE_CONNECT);
	assert_int_equal(v.code, V_DENY_DISCONNECT);
	assert_int_equal(v.smtp, 421);
	session_clean(&h);
	harness_free(&h);
}

/* One IPv6 /64 is one client; the next /64 is another. */
static void
test_ipv6_by_64(void **st)
{
	struct harness		 h;
	const char *const	 kv[] = { "in_recipients", "2/1h", NULL };

	(void)st;
	assert_int_equal(harness_init(&h, &filter_ratelimit, "example.test",
	    kv), 0);
	client6(&h, "2001:db8:1:2::1");
	assert_int_equal(call(&h, STAGE_RCPT).code, V_CONTINUE);
	client6(&h, "2001:db8:1:2:ffff::9");
	assert_int_equal(call(&h, STAGE_RCPT).code, V_CONTINUE);
	assert_int_equal(call(&h, STAGE_RCPT).code, V_DEFER);
	client6(&h, "2001:db8:1:3::1");
	assert_int_equal(call(&h, STAGE_RCPT).code, V_CONTINUE);
	/* A v4-mapped client counts as its IPv4 address. */
	client6(&h, "::ffff:198.51.100.1");
	assert_int_equal(call(&h, STAGE_RCPT).code, V_CONTINUE);
	client4(&h, "198.51.100.1");
	assert_int_equal(call(&h, STAGE_RCPT).code, V_CONTINUE);
	assert_int_equal(call(&h, STAGE_RCPT).code, V_DEFER);
	session_clean(&h);
	harness_free(&h);
}

/* Out: per user, per relay client; outbound clients skip in_ limits. */
static void
test_outbound(void **st)
{
	struct harness		 h;
	struct verdict		 v;
	const char *const	 kv[] = { "out_recipients", "3/1h",
	    "in_recipients", "1/1h", "in_connections", "1/1h", NULL };
	int			 i;

	(void)st;
	assert_int_equal(harness_init(&h, &filter_ratelimit, "example.test",
	    kv), 0);
	client4(&h, "203.0.113.5");
	h.s.authenticated = true;
	snprintf(h.s.auth_user, sizeof(h.s.auth_user), "carol");
	for (i = 0; i < 3; i++)
		assert_int_equal(call(&h, STAGE_RCPT).code, V_CONTINUE);
	v = call(&h, STAGE_RCPT);
	assert_int_equal(v.code, V_DEFER);
	assert_int_equal(v.smtp, 450);
	assert_non_null(strstr(h.s.sev->ev[0].detail, "key=carol used=3"));
	/* Another user from the same address is not limited. */
	snprintf(h.s.auth_user, sizeof(h.s.auth_user), "dave");
	assert_int_equal(call(&h, STAGE_RCPT).code, V_CONTINUE);
	/* A relay client without AUTH: counted by its address. */
	h.s.authenticated = false;
	h.s.trusted = true;
	for (i = 0; i < 3; i++)
		assert_int_equal(call(&h, STAGE_RCPT).code, V_CONTINUE);
	assert_int_equal(call(&h, STAGE_RCPT).code, V_DEFER);
	/* Outbound clients are never counted by the in_ limits. */
	assert_int_equal(call(&h, STAGE_CONNECT).code, V_CONTINUE);
	assert_int_equal(call(&h, STAGE_CONNECT).code, V_CONTINUE);
	/* ... but the same address untrusted is (1/1h recipients). */
	h.s.trusted = false;
	assert_int_equal(call(&h, STAGE_RCPT).code, V_CONTINUE);
	assert_int_equal(call(&h, STAGE_RCPT).code, V_DEFER);
	session_clean(&h);
	harness_free(&h);
}

static void
test_config(void **st)
{
	struct harness		 h;
	const char *const	 bad[] = { "out_recipients", "500/1y", NULL };
	const char *const	 txt[] = { "in_recipients", "1/1h", "text",
	    "Slow down (%s)", NULL };

	(void)st;
	/* Defaults: no limit at all. */
	assert_int_equal(harness_init(&h, &filter_ratelimit, "example.test",
	    NULL), 0);
	client4(&h, "192.0.2.99");
	for (int i = 0; i < 500; i++)
		assert_int_equal(call(&h, STAGE_RCPT).code, V_CONTINUE);
	harness_free(&h);
	assert_int_equal(harness_init(&h, &filter_ratelimit, "example.test",
	    bad), -1);
	harness_free(&h);
	assert_int_equal(harness_init(&h, &filter_ratelimit, "example.test",
	    txt), 0);
	client4(&h, "192.0.2.100");
	assert_int_equal(call(&h, STAGE_RCPT).code, V_CONTINUE);
	assert_string_equal(call(&h, STAGE_RCPT).text, "Slow down (60m)");
	session_clean(&h);
	harness_free(&h);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_inbound),
		cmocka_unit_test(test_ipv6_by_64),
		cmocka_unit_test(test_outbound),
		cmocka_unit_test(test_config),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
