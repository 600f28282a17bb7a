/*
 * test_filter_ratelimit.c: inbound limits per client (IPv6 by /64), per
 * network, sender, sender domain and recipient, the bounce hold;
 * outbound per authenticated user and per relay client, the suspension
 * (in the session, and read from a store in a temporary directory); the
 * replies (421 at connect, 451 4.7.1 with the retry time, 550 5.7.1),
 * the evidence, the options, and ratelimit_key(), which moatctl rate
 * shares with the filter.
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

#include <unistd.h>

#include "../../src/filters/ratelimit.h"
#include "../../src/store/store.h"
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
	assert_int_equal(v.smtp, 451);
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
	assert_int_equal(v.smtp, 451);
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

/* The envelope: a sender ("" the null sender) and the recipient. */
static void
envelope(struct harness *h, const char *from, const char *to)
{
	struct str	rest;
	char		p[400];

	memset(&h->t.from, 0, sizeof(h->t.from));
	snprintf(p, sizeof(p), "<%s>", from);
	assert_int_equal(parse_path(str_make(p, strlen(p)), &h->t.from,
	    &rest, true, false, false), PARSE_OK);
	snprintf(p, sizeof(p), "<%s>", to);
	harness_rcpt(h, p);
}

/* Per /24, per sender, per sender domain, per recipient: each its own
 * count, each refused with 451 4.7.1. */
static void
test_inbound_keys(void **st)
{
	struct harness		 h;
	struct verdict		 v;
	const char *const	 kv[] = { "in_net_messages", "3/1h",
	    "in_sender_messages", "2/1h", "in_domain_messages", "3/1h",
	    "in_rcpt_messages", "2/1h", NULL };

	(void)st;
	assert_int_equal(harness_init(&h, &filter_ratelimit, "example.test",
	    kv), 0);
	/* The sender: 2 per address, then another address of the domain. */
	client4(&h, "198.18.0.1");
	envelope(&h, "a@Sender.Test", "x@example.test");
	assert_int_equal(call(&h, STAGE_MAIL).code, V_CONTINUE);
	envelope(&h, "A@sender.test", "x@example.test");
	assert_int_equal(call(&h, STAGE_MAIL).code, V_CONTINUE);
	v = call(&h, STAGE_MAIL);
	assert_int_equal(v.code, V_DEFER);
	assert_int_equal(v.smtp, 451);
	assert_string_equal(v.esc, "4.7.1");
	assert_string_equal(h.s.sev->ev[0].name, "in_sender_messages");
	/* The /24 counted all three; the domain two (the third stopped
	 * at the sender). */
	client4(&h, "198.18.1.1");
	envelope(&h, "b@sender.test", "x@example.test");
	assert_int_equal(call(&h, STAGE_MAIL).code, V_CONTINUE);
	client4(&h, "198.18.2.1");
	envelope(&h, "c@sender.test", "x@example.test");
	v = call(&h, STAGE_MAIL);
	assert_int_equal(v.code, V_DEFER);
	assert_string_equal(h.s.sev->ev[1].name, "in_domain_messages");
	client4(&h, "198.18.0.200");
	envelope(&h, "d@other.test", "x@example.test");
	assert_int_equal(call(&h, STAGE_MAIL).code, V_DEFER);
	assert_string_equal(h.s.sev->ev[2].name, "in_net_messages");
	/* The null sender has no sender keys. */
	client4(&h, "198.18.3.1");
	envelope(&h, "", "x@example.test");
	assert_int_equal(call(&h, STAGE_MAIL).code, V_CONTINUE);
	/* Per recipient, whoever sends. */
	envelope(&h, "e@other.test", "Bob@example.test");
	assert_int_equal(call(&h, STAGE_RCPT).code, V_CONTINUE);
	client4(&h, "198.18.4.1");
	assert_int_equal(call(&h, STAGE_RCPT).code, V_CONTINUE);
	v = call(&h, STAGE_RCPT);
	assert_int_equal(v.code, V_DEFER);
	assert_int_equal(v.smtp, 451);
	envelope(&h, "e@other.test", "carol@example.test");
	assert_int_equal(call(&h, STAGE_RCPT).code, V_CONTINUE);
	session_clean(&h);
	harness_free(&h);
}

/* More than 2 bounces to one recipient: held, 550 5.7.1 for bounces
 * (even from elsewhere); its other mail and other recipients pass. */
static void
test_bounce_hold(void **st)
{
	struct harness		 h;
	struct verdict		 v;
	const char *const	 kv[] = { "bounces_per_rcpt", "2/1h",
	    "bounce_hold", "600", NULL };

	(void)st;
	assert_int_equal(harness_init(&h, &filter_ratelimit, "example.test",
	    kv), 0);
	client4(&h, "192.0.2.50");
	envelope(&h, "", "victim@example.test");
	assert_int_equal(call(&h, STAGE_RCPT).code, V_CONTINUE);
	assert_int_equal(call(&h, STAGE_RCPT).code, V_CONTINUE);
	v = call(&h, STAGE_RCPT);
	assert_int_equal(v.code, V_DENY);
	assert_int_equal(v.smtp, 550);
	assert_string_equal(v.esc, "5.7.1");
	assert_string_equal(v.text, "Too many bounces to this recipient, "
	    "refused for 10m");
	client4(&h, "203.0.113.9");
	assert_int_equal(call(&h, STAGE_RCPT).code, V_DENY);
	envelope(&h, "friend@other.test", "victim@example.test");
	assert_int_equal(call(&h, STAGE_RCPT).code, V_CONTINUE);
	envelope(&h, "", "other@example.test");
	assert_int_equal(call(&h, STAGE_RCPT).code, V_CONTINUE);
	session_clean(&h);
	harness_free(&h);
}

/* out_action = suspend: past the limit 550, then every MAIL and RCPT of
 * the session; a later session finds the store key. */
static void
test_suspend(void **st)
{
	struct harness		 h;
	struct verdict		 v;
	struct store		*s;
	struct store_txn	*t;
	const char *const	 kv[] = { "out_messages", "1/1h",
	    "out_action", "suspend", NULL };
	char			 dir[] = "/tmp/test_rl.XXXXXX", err[256];
	char			 val[STORE_VAL_MAX], cmd[300];
	size_t			 n;

	(void)st;
	assert_non_null(mkdtemp(dir));
	store_configure(dir, 1 << 20);
	assert_non_null(s = store_shared(err, sizeof(err)));
	assert_int_equal(harness_init(&h, &filter_ratelimit, "example.test",
	    kv), 0);
	client4(&h, "192.0.2.60");
	h.s.authenticated = true;
	snprintf(h.s.auth_user, sizeof(h.s.auth_user), "mallory");
	envelope(&h, "mallory@example.test", "x@other.test");
	assert_int_equal(call(&h, STAGE_MAIL).code, V_CONTINUE);
	v = call(&h, STAGE_MAIL);
	assert_int_equal(v.code, V_DENY);
	assert_int_equal(v.smtp, 550);
	assert_string_equal(v.esc, "5.7.1");
	assert_string_equal(v.text, "Account suspended for sending too much "
	    "mail, contact the postmaster");
	assert_int_equal(call(&h, STAGE_RCPT).smtp, 550);
	session_clean(&h);
	/* A new session of another user passes; one whose key is in the
	 * store is refused at MAIL. */
	snprintf(h.s.auth_user, sizeof(h.s.auth_user), "trent");
	assert_int_equal(call(&h, STAGE_MAIL).code, V_CONTINUE);
	session_clean(&h);
	assert_non_null(t = store_begin(s, true));
	n = ratelimit_suspend_fmt(val, sizeof(val), 1700000000, "by hand");
	assert_int_equal(store_put(t, "suspend:trent", val, n, 0), 0);
	assert_int_equal(store_commit(t), 0);
	assert_int_equal(call(&h, STAGE_MAIL).smtp, 550);
	session_clean(&h);
	/* Observed: the refusal is only reported, nobody is suspended. */
	h.pol.observe[filter_index(&filter_ratelimit)] = true;
	snprintf(h.s.auth_user, sizeof(h.s.auth_user), "oscar");
	assert_int_equal(call(&h, STAGE_MAIL).code, V_CONTINUE);
	assert_int_equal(call(&h, STAGE_MAIL).smtp, 550);
	assert_int_equal(call(&h, STAGE_RCPT).code, V_CONTINUE);
	session_clean(&h);
	harness_free(&h);
	store_close(s);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

/* The key bytes moatctl rate rebuilds: one function, exact groupings. */
static void
test_keys(void **st)
{
	unsigned char	a[RL_KEY_MAX], b[RL_KEY_MAX];
	size_t		na, nb;

	(void)st;
	/* A v4-mapped client is its IPv4 address. */
	na = ratelimit_key(a, sizeof(a), RL_IN_MSG, "192.0.2.1", false);
	nb = ratelimit_key(b, sizeof(b), RL_IN_MSG, "::ffff:192.0.2.1",
	    false);
	assert_int_equal(na, 6);
	assert_int_equal(nb, na);
	assert_memory_equal(a, b, na);
	/* Kinds count apart. */
	nb = ratelimit_key(b, sizeof(b), RL_IN_RCPT, "192.0.2.1", false);
	assert_int_equal(nb, na);
	assert_memory_not_equal(a, b, na);
	/* /24 and /48 for the network; /64 for a client. */
	na = ratelimit_key(a, sizeof(a), RL_IN_NET, "192.0.2.1", false);
	nb = ratelimit_key(b, sizeof(b), RL_IN_NET, "192.0.2.254", false);
	assert_int_equal(na, nb);
	assert_memory_equal(a, b, na);
	nb = ratelimit_key(b, sizeof(b), RL_IN_NET, "192.0.3.1", false);
	assert_memory_not_equal(a, b, na);
	na = ratelimit_key(a, sizeof(a), RL_IN_NET, "2001:db8:1:2::1", false);
	nb = ratelimit_key(b, sizeof(b), RL_IN_NET, "2001:db8:1:ff::1",
	    false);
	assert_int_equal(na, nb);
	assert_memory_equal(a, b, na);
	na = ratelimit_key(a, sizeof(a), RL_IN_CONN, "2001:db8:1:2::1",
	    false);
	nb = ratelimit_key(b, sizeof(b), RL_IN_CONN, "2001:db8:1:2:ff::9",
	    false);
	assert_memory_equal(a, b, na);
	nb = ratelimit_key(b, sizeof(b), RL_IN_CONN, "2001:db8:1:3::1",
	    false);
	assert_memory_not_equal(a, b, na);
	/* Addresses and domains without case; users verbatim. */
	na = ratelimit_key(a, sizeof(a), RL_IN_TO, "Bob@Example.TEST", false);
	nb = ratelimit_key(b, sizeof(b), RL_IN_TO, "bob@example.test", false);
	assert_int_equal(na, 18);
	assert_memory_equal(a, b, na);
	na = ratelimit_key(a, sizeof(a), RL_OUT_MSG, "Bob", true);
	nb = ratelimit_key(b, sizeof(b), RL_OUT_MSG, "bob", true);
	assert_memory_not_equal(a, b, na);
	/* A relay client by its address; a user is never one. */
	na = ratelimit_key(a, sizeof(a), RL_OUT_MSG, "192.0.2.1", false);
	nb = ratelimit_key(b, sizeof(b), RL_OUT_MSG, "192.0.2.1", true);
	assert_int_equal(na, 6);
	assert_int_equal(nb, 11);
	/* Not of the kind, empty, too long, too small a buffer: 0. */
	assert_int_equal(ratelimit_key(a, sizeof(a), RL_IN_MSG, "bob", false),
	    0);
	assert_int_equal(ratelimit_key(a, sizeof(a), RL_IN_TO, "", false), 0);
	memset(b, 'x', sizeof(b));
	b[RL_SUBJECT_MAX + 1] = '\0';
	assert_int_equal(ratelimit_key(a, sizeof(a), RL_IN_TO, (char *)b,
	    false), 0);
	b[RL_SUBJECT_MAX] = '\0';
	assert_int_equal(ratelimit_key(a, sizeof(a), RL_IN_TO, (char *)b,
	    false), RL_SUBJECT_MAX + 2);
	assert_int_equal(ratelimit_key(a, 8, RL_IN_TO, "a@b.c", false), 0);
	assert_string_equal(ratelimit_name(RL_BOUNCE), "bounces_per_rcpt");
	assert_int_equal(ratelimit_by(RL_IN_DOMAIN), 'd');
}

/* The store values: suspension, hour prefix. */
static void
test_store_values(void **st)
{
	char	v[STORE_VAL_MAX], r[64], k[64];
	time_t	since;
	size_t	n;

	(void)st;
	n = ratelimit_suspend_fmt(v, sizeof(v), 1700000000, "over\r\n "
	    "out_messages and a reason far longer than forty bytes");
	assert_int_equal(n, 11 + RL_REASON_MAX - 2);
	assert_int_equal(ratelimit_suspend_parse(v, n, &since, r, sizeof(r)),
	    0);
	assert_int_equal(since, 1700000000);
	assert_int_equal(strncmp(r, "over out_messages", 17), 0);
	assert_int_equal(ratelimit_suspend_parse("x 1", 3, &since, r,
	    sizeof(r)), -1);
	assert_int_equal(ratelimit_suspend_key(k, sizeof(k), "alice"), 0);
	assert_string_equal(k, "suspend:alice");
	assert_int_equal(ratelimit_suspend_key(k, sizeof(k), ""), -1);
	assert_int_equal(ratelimit_top_prefix(k, sizeof(k), 1700000000), 0);
	assert_string_equal(k, "out:2023111422:");
	assert_int_equal(ratelimit_top_prefix(k, 10, 1700000000), -1);
}

static void
test_config(void **st)
{
	struct harness		 h;
	const char *const	 bad[] = { "out_recipients", "500/1y", NULL };
	const char *const	 txt[] = { "in_recipients", "1/1h", "text",
	    "Slow down (%s)", NULL };
	const char *const	 bad_action[] = { "out_action", "drop", NULL };
	const char *const	 bad_net[] = { "in_net_messages", "x/1h",
	    NULL };
	const char *const	 hold0[] = { "bounce_hold", "0", NULL };
	const char *const	 hold_max[] = { "bounce_hold", "604801", NULL };
	const char *const	 ret_max[] = { "top_retention", "8785", NULL };

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
	/* Each new option refuses a bad value. */
	assert_int_equal(harness_init(&h, &filter_ratelimit, "example.test",
	    bad_action), -1);
	harness_free(&h);
	assert_int_equal(harness_init(&h, &filter_ratelimit, "example.test",
	    bad_net), -1);
	harness_free(&h);
	assert_int_equal(harness_init(&h, &filter_ratelimit, "example.test",
	    hold0), -1);
	harness_free(&h);
	assert_int_equal(harness_init(&h, &filter_ratelimit, "example.test",
	    hold_max), -1);
	harness_free(&h);
	assert_int_equal(harness_init(&h, &filter_ratelimit, "example.test",
	    ret_max), -1);
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
		cmocka_unit_test(test_inbound_keys),
		cmocka_unit_test(test_bounce_hold),
		cmocka_unit_test(test_suspend),
		cmocka_unit_test(test_keys),
		cmocka_unit_test(test_store_values),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
