/*
 * test_filter_helo.c: the HELO filter: what a HELO argument is (names,
 * literals, bare addresses, case, a trailing dot), every check that needs
 * no DNS against made-up client and local addresses (IPv4, IPv6,
 * IPv4-mapped; our name or address from ourselves is no claim), which
 * names are looked up, and the RCPT decision under two settings: a
 * refusal naming the heaviest finding (configuration text never a printf
 * format), or symbols. Lookups run against a real unbound in
 * tests/integration/test_dnschecks2.py.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <cmocka.h>

#include "../../src/filters/helo.h"
#include "filter_harness.h"

extern const struct filter filter_helo;

static void
set_addr(struct sockaddr_storage *ss, const char *ip)
{
	struct sockaddr_in	*s4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6	*s6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, ip, &s4->sin_addr) == 1)
		s4->sin_family = AF_INET;
	else {
		assert_int_equal(inet_pton(AF_INET6, ip, &s6->sin6_addr), 1);
		s6->sin6_family = AF_INET6;
	}
}

static unsigned
checks(const char *helo, const char *peer, const char *local)
{
	struct sockaddr_storage	p, l;
	struct helo_facts	f;

	set_addr(&p, peer);
	set_addr(&l, local);
	helo_parse(helo, &f);
	return helo_static(&f, &p, &l, "mx.example.test");
}

static void
test_parse(void **state)
{
	struct helo_facts f;

	(void)state;
	helo_parse("Mail.Example.ORG.", &f);
	assert_string_equal(f.name, "mail.example.org");
	assert_false(f.literal || f.bare_ip);
	assert_true(helo_resolvable(&f));
	helo_parse("[192.0.2.1]", &f);
	assert_true(f.literal && f.family == AF_INET);
	assert_false(helo_resolvable(&f));
	helo_parse("[IPv6:2001:DB8::1]", &f);
	assert_true(f.literal && f.family == AF_INET6);
	helo_parse("[IPv6:nonsense]", &f);
	assert_true(f.literal && f.family == 0);
	helo_parse("[]", &f);
	assert_true(f.literal && f.family == 0);
	helo_parse("192.0.2.1", &f);
	assert_true(f.bare_ip && !f.literal && f.family == AF_INET);
	assert_false(helo_resolvable(&f));
	helo_parse("foo", &f);
	assert_false(helo_resolvable(&f));
	helo_parse("localhost.localdomain", &f);
	assert_false(helo_resolvable(&f));
}

static void
test_static_checks(void **state)
{
	const char	*p = "192.0.2.7", *l = "198.51.100.1";

	(void)state;
	assert_int_equal(checks("mail.example.org", p, l), 0);
	assert_int_equal(checks("foo", p, l), HELO_BIT(HELO_NOT_FQDN));
	assert_int_equal(checks("foo_bar-1", p, l), HELO_BIT(HELO_NOT_FQDN));
	assert_int_equal(checks("192.0.2.7", p, l), HELO_BIT(HELO_BARE_IP));
	assert_int_equal(checks("[192.0.2.7]", p, l), 0);
	assert_int_equal(checks("[192.0.2.8]", p, l), HELO_BIT(HELO_LITERAL));
	assert_int_equal(checks("[IPv6:2001:db8::7]", p, l),
	    HELO_BIT(HELO_LITERAL));
	assert_int_equal(checks("[junk]", p, l), HELO_BIT(HELO_LITERAL));
	assert_int_equal(checks("localhost", p, l), HELO_BIT(HELO_LOCALHOST));
	assert_int_equal(checks("LocalHost.LocalDomain.", p, l),
	    HELO_BIT(HELO_LOCALHOST));
	assert_int_equal(checks("localhost.example.org", p, l), 0);
	/* Our name or address, from elsewhere. */
	assert_int_equal(checks("MX.example.test.", p, l),
	    HELO_BIT(HELO_OURS));
	assert_int_equal(checks("mx.example.test.org", p, l), 0);
	assert_int_equal(checks("x.mx.example.test", p, l), 0);
	assert_int_equal(checks("[198.51.100.1]", p, l),
	    HELO_BIT(HELO_OURS) | HELO_BIT(HELO_LITERAL));
	assert_int_equal(checks("198.51.100.1", p, l),
	    HELO_BIT(HELO_OURS) | HELO_BIT(HELO_BARE_IP));
	/* ... and from ourselves: no claim. */
	assert_int_equal(checks("mx.example.test", l, l), 0);
	assert_int_equal(checks("[198.51.100.1]", l, l), 0);
	/* IPv6, and an IPv4 client on an IPv6 socket. */
	assert_int_equal(checks("[IPv6:2001:db8::7]", "2001:db8::7",
	    "2001:db8::1"), 0);
	assert_int_equal(checks("[IPv6:2001:DB8::1]", "2001:db8::7",
	    "2001:db8::1"), HELO_BIT(HELO_OURS) | HELO_BIT(HELO_LITERAL));
	assert_int_equal(checks("[192.0.2.7]", "::ffff:192.0.2.7",
	    "::ffff:198.51.100.1"), 0);
	assert_int_equal(checks("[198.51.100.1]", "::ffff:192.0.2.7",
	    "::ffff:198.51.100.1"), HELO_BIT(HELO_OURS) |
	    HELO_BIT(HELO_LITERAL));
}

/* The HELO hook, then the RCPT hook with the filter's data. */
static struct verdict
decide(struct harness *h, const char *helo)
{
	struct filter_call c = { &h->s, h->conf, h->state, &h->pol,
	    session_step(&h->s), false, filter_data(&h->s, &filter_helo) };

	snprintf(h->s.helo, sizeof(h->s.helo), "%s", helo);
	assert_int_equal(filter_helo.hook[STAGE_HELO](&c).code, V_CONTINUE);
	c.data = filter_data(&h->s, &filter_helo);
	assert_non_null(c.data);
	return filter_helo.hook[STAGE_RCPT](&c);
}

static void
done(struct harness *h)
{
	filter_helo.data_free(filter_data(&h->s, &filter_helo));
	free(h->s.pl_data);
	free(h->s.sev);
	harness_free(h);
}

static void
test_decision(void **state)
{
	static const char *const refuse[] = { "score_not_fqdn", "2",
	    "reject_threshold", "2", "reply_code", "504",
	    "reply_text", "%d %n %s (%s) %s 100%%", NULL };
	static const char *const score[] = { "score_localhost", "4",
	    "reject_threshold", "0", NULL };
	struct harness	h;
	struct verdict	v;

	(void)state;
	assert_int_equal(harness_init(&h, &filter_helo, "example.test",
	    refuse), 0);
	harness_client(&h, "192.0.2.7");
	harness_rcpt(&h, "<alice@example.test>");
	v = decide(&h, "foo");
	assert_int_equal(v.code, V_DENY);
	assert_int_equal(v.smtp, 504);
	assert_string_equal(v.esc, "5.7.1");
	/* Configuration text is not a printf format. */
	assert_string_equal(v.text, "%d %n need fully-qualified hostname "
	    "(foo) %s 100%");
	assert_int_equal(h.s.sev->nev, 1);
	assert_string_equal(h.s.sev->ev[0].name, "HELO_NOT_FQDN");
	/* postmaster@ is not judged (the core marks it exempt). */
	harness_rcpt(&h, "<postmaster@example.test>");
	h.r.exempt = true;
	assert_int_equal(decide(&h, "foo").code, V_CONTINUE);
	done(&h);

	assert_int_equal(harness_init(&h, &filter_helo, "example.test",
	    score), 0);
	harness_client(&h, "192.0.2.7");
	harness_rcpt(&h, "<alice@example.test>");
	h.t.seq = 1;
	assert_int_equal(decide(&h, "localhost").code, V_CONTINUE);
	assert_int_equal(h.t.nsym, 1);
	assert_string_equal(h.t.sym[0].name, "HELO_LOCALHOST");
	assert_true(h.t.sym[0].score == 4);
	/* Once per transaction. */
	assert_int_equal(decide(&h, "localhost").code, V_CONTINUE);
	assert_int_equal(h.t.nsym, 1);
	/* Nothing for a trusted client. */
	h.s.trusted = true;
	h.t.seq = 2;
	assert_int_equal(decide(&h, "localhost").code, V_CONTINUE);
	assert_int_equal(h.t.nsym, 1);
	done(&h);
}

static void
test_defaults_load(void **state)
{
	struct harness h;

	(void)state;
	assert_int_equal(harness_init(&h, &filter_helo, "example.test",
	    NULL), 0);
	harness_free(&h);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse),
		cmocka_unit_test(test_static_checks),
		cmocka_unit_test(test_decision),
		cmocka_unit_test(test_defaults_load),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
