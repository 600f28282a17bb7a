/*
 * test_filter_recipients.c: recipient validation from a users list and
 * a validrcptto.cdb.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <cdb.h>
#include <fcntl.h>
#include <unistd.h>
#include <cmocka.h>

#include "filter_harness.h"

extern const struct filter filter_recipients;

static enum verdict_code
rcpt(struct harness *h, const char *p)
{
	harness_rcpt(h, p);
	return harness_call(h, STAGE_RCPT);
}

static void
test_users_list(void **state)
{
	char		 path[] = "/tmp/moat-test-users-XXXXXX";
	int		 fd = mkstemp(path);
	const char	*kv[] = { "users", path, "delimiter", "+", NULL };
	struct harness	 h;

	(void)state;
	(void)!write(fd, "alice@example.test\n@catchall.test\n", 34);
	close(fd);
	assert_int_equal(harness_init(&h, &filter_recipients, "example.test",
	    kv), 0);
	strset_add(&h.pl.local, "catchall.test", 13);
	assert_int_equal(rcpt(&h, "<alice@example.test>"), V_CONTINUE);
	assert_int_equal(rcpt(&h, "<ALICE@Example.Test>"), V_CONTINUE);
	assert_int_equal(rcpt(&h, "<alice+news@example.test>"), V_CONTINUE);
	assert_int_equal(rcpt(&h, "<bob@example.test>"), V_DENY);
	assert_int_equal(rcpt(&h, "<bob+alice@example.test>"), V_DENY);
	assert_int_equal(rcpt(&h, "<anyone@catchall.test>"), V_CONTINUE);
	assert_int_equal(rcpt(&h, "<postmaster@example.test>"), V_CONTINUE);
	assert_int_equal(rcpt(&h, "<Postmaster>"), V_CONTINUE);
	/* Not our domain: relay control's business, not ours. */
	assert_int_equal(rcpt(&h, "<bob@elsewhere.org>"), V_CONTINUE);
	harness_free(&h);
	unlink(path);
}

static void
test_validrcptto_cdb(void **state)
{
	char		 path[] = "/tmp/moat-test-vrt-XXXXXX";
	int		 fd = mkstemp(path);
	const char	*kv[] = { "validrcptto_cdb", path, NULL };
	struct cdb_make	 cm;
	struct harness	 h;

	(void)state;
	cdb_make_start(&cm, fd);
	cdb_make_add(&cm, "carol@example.test", 18, "", 0);
	cdb_make_finish(&cm);
	close(fd);
	assert_int_equal(harness_init(&h, &filter_recipients, "example.test",
	    kv), 0);
	assert_int_equal(rcpt(&h, "<Carol@example.test>"), V_CONTINUE);
	assert_int_equal(rcpt(&h, "<dave@example.test>"), V_DENY);
	harness_free(&h);
	unlink(path);
}

static void
test_no_source(void **state)
{
	struct harness h;

	(void)state;
	/* Nothing configured: no opinion about anyone. */
	assert_int_equal(harness_init(&h, &filter_recipients, "example.test",
	    NULL), 0);
	assert_int_equal(rcpt(&h, "<whoever@example.test>"), V_CONTINUE);
	harness_free(&h);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_users_list),
		cmocka_unit_test(test_validrcptto_cdb),
		cmocka_unit_test(test_no_source),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
