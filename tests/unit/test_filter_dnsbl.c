/*
 * test_filter_dnsbl.c: the DNSBL filter's pure parts: postscreen zone
 * syntax (weights, return-code filters at their limits), answer hygiene
 * (error answers never list, whatever the filter), the reply text
 * (configuration text is never a printf format), and init's errors.
 * Lookups and decisions run against a real unbound in
 * tests/integration/test_dnsbl.py.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <cmocka.h>

#include "../../src/filters/dnsbl.h"
#include "filter_harness.h"

extern const struct filter filter_dnsbl;

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
test_zone_syntax(void **state)
{
	static const char *const good[] = {
		"zen.example", "zen.example*2", "wl.example*-2",
		"bl.example=127.0.0.2", "bl.example=127.0.0.[2..11]*1.5",
		"bl.example=127.0.[0..255].[2;4;6..8]",
		"bl.example=127.0.0.[255]", "bl.example=127.0.0.[0..0]",
	};
	static const char *const bad[] = {
		"", "=127.0.0.2", "zen..example", "zen.example*",
		"zen.example*x", "zen.example=127.0.0", "zen.example=127.0.0.256",
		"zen.example=127.0.0.[2..1]", "zen.example=127.0.0.[2",
		"zen.example=127.0.0.[2..]", "zen.example=127.0.0.[;]",
		"zen.example=127.0.0.2x", "zen.example*2x", "zen.example*1001",
		"zen.example=127.0.0.1234",
	};
	struct dnsbl_zone	z;
	char			err[200];
	size_t			i;

	(void)state;
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		if (dnsbl_parse_zone(good[i], &z, err, sizeof(err)) != 0)
			fail_msg("refused: %s (%s)", good[i], err);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (dnsbl_parse_zone(bad[i], &z, err, sizeof(err)) == 0)
			fail_msg("taken: %s", bad[i]);
	assert_int_equal(dnsbl_parse_zone("ZEN.Example*-2.5", &z, err,
	    sizeof(err)), 0);
	assert_string_equal(z.name, "zen.example");
	assert_true(z.weight == -2.5);
}

static void
test_filters(void **state)
{
	(void)state;
	assert_int_equal(answer("bl.example", 127, 0, 0, 2), 1);
	assert_int_equal(answer("bl.example=127.0.0.[2..11]", 127, 0, 0, 11),
	    1);
	assert_int_equal(answer("bl.example=127.0.0.[2..11]", 127, 0, 0, 12),
	    0);
	assert_int_equal(answer("bl.example=127.0.0.[2..11]", 127, 0, 0, 1),
	    0);
	assert_int_equal(answer("bl.example=127.0.[0..255].[2;4;6..8]", 127,
	    0, 9, 4), 1);
	assert_int_equal(answer("bl.example=127.0.[0..255].[2;4;6..8]", 127,
	    0, 9, 5), 0);
	assert_int_equal(answer("bl.example=127.0.[0..255].[2;4;6..8]", 127,
	    0, 9, 8), 1);
}

static void
test_hygiene(void **state)
{
	(void)state;
	/* "You may not query" answers and anything outside 127/8 are
	 * errors, never listings, even for a filter that would match. */
	assert_int_equal(answer("bl.example", 127, 255, 255, 254), -1);
	assert_int_equal(answer("bl.example", 127, 255, 255, 252), -1);
	assert_int_equal(answer("bl.example=127.[0..255].[0..255].[0..255]",
	    127, 255, 255, 254), -1);
	assert_int_equal(answer("dbl.example", 127, 0, 1, 255), -1);
	assert_int_equal(answer("wl.example", 127, 0, 0, 255), -1);
	assert_int_equal(answer("bl.example", 10, 0, 0, 2), -1);
	assert_int_equal(answer("bl.example", 128, 0, 0, 2), -1);
	assert_int_equal(answer("dbl.example", 127, 0, 1, 2), 1);
}

static void
test_reply_text(void **state)
{
	char out[128];

	(void)state;
	dnsbl_reply_format(out, sizeof(out), "client [%s] blocked using %s",
	    "192.0.2.1", "zen.example");
	assert_string_equal(out, "client [192.0.2.1] blocked using "
	    "zen.example");
	/* Not a printf format: %d, %n and a third %s stay text. */
	dnsbl_reply_format(out, sizeof(out), "%d %n %s %s %s 100%%", "ip",
	    "zone");
	assert_string_equal(out, "%d %n ip zone %s 100%");
	/* Bounded. */
	dnsbl_reply_format(out, 8, "%s", "192.0.2.123", "z");
	assert_string_equal(out, "192.0.2");
}

static void
test_init(void **state)
{
	static const char *const kv[] = { "zones",
	    "zen.example*2 bl.example=127.0.0.[2..11] wl.example*-2",
	    "reply_map", "zen.example=public.example", NULL };
	static const char *const bad[] = { "zones", "zen.example*2 =x",
	    NULL };
	static const char *const badmap[] = { "zones", "zen.example",
	    "reply_map", "zen.example", NULL };
	struct harness h;

	(void)state;
	assert_int_equal(harness_init(&h, &filter_dnsbl, "example.test", kv),
	    0);
	harness_free(&h);
	assert_int_equal(harness_init(&h, &filter_dnsbl, "example.test",
	    bad), -1);
	harness_free(&h);
	assert_int_equal(harness_init(&h, &filter_dnsbl, "example.test",
	    badmap), -1);
	harness_free(&h);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_zone_syntax),
		cmocka_unit_test(test_filters),
		cmocka_unit_test(test_hygiene),
		cmocka_unit_test(test_reply_text),
		cmocka_unit_test(test_init),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
