/*
 * test_filter_spf.c: the SPF filter's settings (actions checked at load:
 * a DNS failure may never be a refusal). The evaluator has its own suite
 * (test_spf_eval.c, RFC 7208's tests); the filter's lookups, decisions per
 * policy and header fields run against a real unbound in
 * tests/integration/test_spf.py.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <cmocka.h>

#include "filter_harness.h"

extern const struct filter filter_spf;

static int
load(const char *key, const char *val)
{
	const char	*kv[] = { key, val, NULL };
	struct harness	 h;
	int		 rc;

	rc = harness_init(&h, &filter_spf, "example.test", kv);
	harness_free(&h);
	return rc;
}

static void
test_actions(void **state)
{
	(void)state;
	assert_int_equal(load("action_fail", "reject"), 0);
	assert_int_equal(load("action_fail", "score"), 0);
	assert_int_equal(load("action_softfail", "defer"), 0);
	assert_int_equal(load("action_permerror", "reject"), 0);
	assert_int_equal(load("action_temperror", "defer"), 0);
	assert_int_equal(load("action_fail", "bounce"), -1);
	assert_int_equal(load("action_softfail", ""), -1);
	/* A DNS failure is never a refusal. */
	assert_int_equal(load("action_temperror", "reject"), -1);
	assert_int_equal(load("score_fail", "101"), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_actions),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
