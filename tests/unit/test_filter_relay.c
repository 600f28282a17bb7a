/*
 * test_filter_relay.c: relay control: the relay filter marks relay
 * networks trusted at connect; the core RCPT decision
 * (smtp_relay_denied) refuses every trick of the open-relay tests for an
 * untrusted client.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <cmocka.h>

#include "filter_harness.h"

extern const struct filter filter_relay;

static const struct session_ops ops = { .is_local = pipeline_is_local };

/* The core's word on a recipient: V_DENY or V_CONTINUE. */
static enum verdict_code
rcpt(struct harness *h, const char *p)
{
	h->s.ops = &ops;
	harness_rcpt(h, p);
	h->r.policy = &h->pol;
	return smtp_relay_denied(&h->s, &h->r) != NULL ? V_DENY :
	    V_CONTINUE;
}

static void
test_untrusted(void **state)
{
	static const char *const refused[] = {
		"<user@elsewhere.org>",
		"<user%elsewhere.org@example.test>",	/* % hack */
		"<elsewhere.org!user@example.test>",	/* bang path */
		"<\"user@elsewhere.org\"@example.test>",	/* quoted @ */
		"<\"user%elsewhere.org\"@example.test>",
		"<@example.test:user@elsewhere.org>",	/* source route */
		"<@elsewhere.org:user@example.test>",
		"<user@[192.0.2.1]>",			/* foreign literal */
		"<user@evilexample.test>",		/* suffix look-alike */
		"<user@example.test.elsewhere.org>",
	};
	struct harness	h;
	size_t		i;

	(void)state;
	assert_int_equal(harness_init(&h, &filter_relay, "example.test",
	    NULL), 0);
	harness_client(&h, "192.0.2.99");
	assert_int_equal(harness_call(&h, STAGE_CONNECT), V_CONTINUE);
	assert_false(h.s.trusted);
	assert_int_equal(rcpt(&h, "<user@example.test>"), V_CONTINUE);
	assert_int_equal(rcpt(&h, "<user@EXAMPLE.TEST>"), V_CONTINUE);
	assert_int_equal(rcpt(&h, "<@example.test:user@example.test>"),
	    V_CONTINUE);
	assert_int_equal(rcpt(&h, "<Postmaster>"), V_CONTINUE);
	for (i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		if (rcpt(&h, refused[i]) != V_DENY)
			fail_msg("relayed: %s", refused[i]);
	}
	harness_free(&h);
}

static void
test_trusted(void **state)
{
	static const char *const kv[] = { "allow_localhost", "yes", NULL };
	struct harness h;

	(void)state;
	assert_int_equal(harness_init(&h, &filter_relay, "example.test", kv),
	    0);
	harness_client(&h, "127.0.0.1");
	harness_call(&h, STAGE_CONNECT);
	assert_true(h.s.trusted);
	assert_int_equal(rcpt(&h, "<user@elsewhere.org>"), V_CONTINUE);
	harness_free(&h);
	/* Authenticated clients relay too. */
	assert_int_equal(harness_init(&h, &filter_relay, "example.test",
	    NULL), 0);
	harness_client(&h, "192.0.2.1");
	harness_call(&h, STAGE_CONNECT);
	assert_false(h.s.trusted);
	h.s.authenticated = true;
	assert_int_equal(rcpt(&h, "<user@elsewhere.org>"), V_CONTINUE);
	harness_free(&h);
	/* Without the relay filter (or with no networks) nobody relays. */
	assert_int_equal(harness_init(&h, &filter_relay, "example.test",
	    NULL), 0);
	harness_client(&h, "127.0.0.1");
	assert_int_equal(rcpt(&h, "<user@elsewhere.org>"), V_DENY);
	assert_int_equal(rcpt(&h, "<user@example.test>"), V_CONTINUE);
	harness_free(&h);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_untrusted),
		cmocka_unit_test(test_trusted),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
