/*
 * test_filter_rhsbl.c: the RHSBL filter's pure parts: which names are
 * asked (address literals, bare addresses, dotless and non-ASCII names
 * skipped; case and a trailing dot), DBL-style answers and their
 * hygiene through dnsbl's zone syntax (127.0.1.255 and 127.255.255.x
 * are errors whatever the filter), and init's errors (zone syntax, the
 * zone count at its limit, reply_map). Lookups and decisions run against
 * a real unbound in tests/integration/test_dnschecks2.py.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <cmocka.h>

#include "../../src/filters/dnsbl.h"
#include "../../src/filters/rhsbl.h"
#include "filter_harness.h"

extern const struct filter filter_rhsbl;

static void
test_names(void **state)
{
	static const char *const skip[] = {
		"", ".", "[192.0.2.1]", "[IPv6:2001:db8::1]", "192.0.2.1",
		"192.0.2.1.", "2001:db8::1", "localhost", "foo",
		"b\xc3\xbc" "cher.example", "a b.example",
		/* empty labels (found by fuzz_helo) */
		"192.0.2..", "a..example", ".example.org", "example.org..",
	};
	char	out[LIMIT_DOMAIN + 1];
	size_t	i;

	(void)state;
	for (i = 0; i < sizeof(skip) / sizeof(skip[0]); i++)
		if (rhsbl_name(skip[i], out, sizeof(out)) != -1)
			fail_msg("asked: '%s'", skip[i]);
	assert_int_equal(rhsbl_name("Mail.Example.ORG.", out, sizeof(out)),
	    0);
	assert_string_equal(out, "mail.example.org");
	assert_int_equal(rhsbl_name("x_y.example", out, sizeof(out)), 0);
	/* A name that does not fit is not cut. */
	assert_int_equal(rhsbl_name("abc.example", out, 11), -1);
	assert_int_equal(rhsbl_name("abc.example", out, 12), 0);
}

static int
answer(const char *zone, unsigned a, unsigned b, unsigned c, unsigned d)
{
	struct dnsbl_zone	z;
	unsigned char		ip[4] = { (unsigned char)a, (unsigned char)b,
				    (unsigned char)c, (unsigned char)d };
	char			err[200];

	assert_int_equal(dnsbl_parse_zone(zone, &z, err, sizeof(err)), 0);
	return dnsbl_answer(&z, ip);
}

static void
test_dbl_answers(void **state)
{
	const char *dbl = "dbl.example=127.0.1.[2..99]";

	(void)state;
	assert_int_equal(answer(dbl, 127, 0, 1, 2), 1);
	assert_int_equal(answer(dbl, 127, 0, 1, 99), 1);
	assert_int_equal(answer(dbl, 127, 0, 1, 100), 0);
	assert_int_equal(answer(dbl, 127, 0, 0, 2), 0);
	/* "You may not query" and anything outside 127/8: errors, even
	 * for a zone without a filter. */
	assert_int_equal(answer(dbl, 127, 0, 1, 255), -1);
	assert_int_equal(answer("dbl.example", 127, 0, 1, 255), -1);
	assert_int_equal(answer("dbl.example", 127, 255, 255, 254), -1);
	assert_int_equal(answer("dbl.example", 127, 255, 255, 252), -1);
	assert_int_equal(answer("dbl.example", 10, 0, 1, 2), -1);
}

static void
test_init(void **state)
{
	static const char *const kv[] = { "zones",
	    "dbl.example=127.0.1.[2..99]*2, uribl.example dwl.example*-2",
	    "reply_map", "dbl.example=public.example", "check_helo", "no",
	    NULL };
	static const char *const bad[] = { "zones", "dbl.example*x", NULL };
	static const char *const badmap[] = { "zones", "dbl.example",
	    "reply_map", "dbl.example=", NULL };
	static const char *const badbool[] = { "check_rdns", "maybe", NULL };
	const char	*many[] = { "zones", NULL, NULL };
	char		 zones[600];
	size_t		 o = 0;
	int		 i;
	struct harness	 h;

	(void)state;
	assert_int_equal(harness_init(&h, &filter_rhsbl, "example.test",
	    NULL), 0);
	harness_free(&h);
	assert_int_equal(harness_init(&h, &filter_rhsbl, "example.test", kv),
	    0);
	harness_free(&h);
	assert_int_equal(harness_init(&h, &filter_rhsbl, "example.test",
	    bad), -1);
	harness_free(&h);
	assert_int_equal(harness_init(&h, &filter_rhsbl, "example.test",
	    badmap), -1);
	harness_free(&h);
	assert_int_equal(harness_init(&h, &filter_rhsbl, "example.test",
	    badbool), -1);
	harness_free(&h);
	/* 16 zones at most: N and N+1. */
	for (i = 0; i < 16; i++)
		o += (size_t)snprintf(zones + o, sizeof(zones) - o,
		    "z%d.example ", i);
	many[1] = zones;
	assert_int_equal(harness_init(&h, &filter_rhsbl, "example.test",
	    many), 0);
	harness_free(&h);
	snprintf(zones + o, sizeof(zones) - o, "z16.example");
	assert_int_equal(harness_init(&h, &filter_rhsbl, "example.test",
	    many), -1);
	harness_free(&h);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_dbl_answers),
		cmocka_unit_test(test_init),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
