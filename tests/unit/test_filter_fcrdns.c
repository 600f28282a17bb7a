/*
 * test_filter_fcrdns.c: the rDNS filter's pure parts: generic-name
 * detection (the address's octets in the name, dynamic-pool words) and
 * TLD rules. Lookups and decisions run against a real unbound in
 * tests/integration/test_dnschecks.py.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <cmocka.h>

#include "../../src/filters/fcrdns.h"
#include "filter_harness.h"

extern const struct filter filter_fcrdns;

static const char *const words = "dyn dynamic dhcp pool ppp dsl";

static void
test_generic(void **state)
{
	static const unsigned char ip[4] = { 192, 0, 2, 45 };
	static const char *const yes[] = {
		"192-0-2-45.example.net", "45.2.0.192.example.net",
		"host192.0.2.45.example.net", "ip-192-0-2-45.isp.example",
		"c-45-2-0-192.hsd1.example.net", "dyn-1-2.example.net",
		"pool.example.net", "dsl123.example.net", "x.ppp.example",
	};
	static const char *const no[] = {
		"mail.example.net", "192-0-2-46.example.net",
		"45.2.0.19.example.net", "dynamo.example.net",
		"mx1.example.net", "smtp-out.example.org", "0-2-45.example",
		"pooltable.example",
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
		if (!fcrdns_generic(yes[i], ip, words))
			fail_msg("not generic: %s", yes[i]);
	for (i = 0; i < sizeof(no) / sizeof(no[0]); i++)
		if (fcrdns_generic(no[i], ip, words))
			fail_msg("generic: %s", no[i]);
	/* Without an IPv4 address only the words count. */
	assert_false(fcrdns_generic("192-0-2-45.example.net", NULL, words));
}

static void
test_under(void **state)
{
	(void)state;
	assert_true(fcrdns_under("mail.example.xyz", "top xyz"));
	assert_true(fcrdns_under("mail.example.xyz", ".xyz"));
	assert_true(fcrdns_under("xyz", "xyz"));
	assert_true(fcrdns_under("a.bad.example", "bad.example"));
	assert_false(fcrdns_under("mail.examplexyz", "xyz"));
	assert_false(fcrdns_under("mail.example.com", "xyz top"));
	assert_false(fcrdns_under("notbad.example", "bad.example"));
	assert_false(fcrdns_under("mail.example.com", ""));
}

static void
test_defaults_load(void **state)
{
	struct harness h;

	(void)state;
	assert_int_equal(harness_init(&h, &filter_fcrdns, "example.test",
	    NULL), 0);
	harness_free(&h);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_generic),
		cmocka_unit_test(test_under),
		cmocka_unit_test(test_defaults_load),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
