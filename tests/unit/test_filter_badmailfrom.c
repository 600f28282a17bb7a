/*
 * test_filter_badmailfrom.c: qmail badmailfrom entries, address and
 * @domain, null sender never matched.
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

extern const struct filter filter_badmailfrom;

static enum verdict_code
from(struct harness *h, const char *p)
{
	struct str rest;

	assert_int_equal(parse_path(str_make(p, strlen(p)), &h->s.txn->from,
	    &rest, true, false, false), PARSE_OK);
	return harness_call(h, STAGE_MAIL);
}

static void
test_badmailfrom(void **state)
{
	char		 path[] = "/tmp/moat-test-bmf-XXXXXX";
	int		 fd = mkstemp(path);
	const char	*kv[] = { "file", path, NULL };
	struct harness	 h;

	(void)state;
	(void)!write(fd, "spam@bad.example\n@worse.example\n", 32);
	close(fd);
	assert_int_equal(harness_init(&h, &filter_badmailfrom, "example.test",
	    kv), 0);
	assert_int_equal(from(&h, "<spam@bad.example>"), V_DENY);
	assert_int_equal(from(&h, "<SPAM@Bad.Example>"), V_DENY);
	assert_int_equal(from(&h, "<ok@bad.example>"), V_CONTINUE);
	assert_int_equal(from(&h, "<anyone@worse.example>"), V_DENY);
	assert_int_equal(from(&h, "<anyone@sub.worse.example>"), V_CONTINUE);
	assert_int_equal(from(&h, "<>"), V_CONTINUE);
	harness_free(&h);
	unlink(path);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_badmailfrom),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
