/*
 * test_filter_score.c: the tag and reject thresholds on the total score:
 * headers at tag (and none below when nothing scored), the Subject
 * prefix, 550 5.7.1 with the session id at reject, exactly at N and
 * just below.
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

extern const struct filter filter_score;

static const char msg[] = "From: a@example.org\r\nSubject: hello\r\n\r\n"
    "body\r\n";

static enum verdict_code
run(struct harness *h, double score, bool sym)
{
	buf_free(&h->t.msg);
	buf_init(&h->t.msg, 65536);
	buf_adds(&h->t.msg, "Received: by us\r\n");
	h->t.msg_start = h->t.msg.len;
	buf_adds(&h->t.msg, msg);
	h->t.nsym = 0;
	h->t.score = 0;
	if (sym)
		session_symbol(&h->s, "TEST_SYM", score);
	h->s.id = 0x1234;
	return harness_call(h, STAGE_DATA_POST);
}

static void
test_thresholds(void **state)
{
	const char	*kv[] = { "tag", "5", "reject", "10",
			    "subject_prefix", "[SPAM]", NULL };
	struct harness	 h;

	(void)state;
	assert_int_equal(harness_init(&h, &filter_score, "example.test",
	    kv), 0);
	/* Nothing scored: the message is left alone. */
	assert_int_equal(run(&h, 0, false), V_CONTINUE);
	assert_string_equal(h.t.msg.data + h.t.msg_start, msg);
	/* Just below tag: status No, no flag, Subject as it was. */
	assert_int_equal(run(&h, 4.9, true), V_CONTINUE);
	assert_non_null(strstr(h.t.msg.data, "X-Spam-Status: No, score=4.9 "
	    "required=5.0 tests=TEST_SYM\r\n"));
	assert_null(strstr(h.t.msg.data, "X-Spam-Flag"));
	assert_non_null(strstr(h.t.msg.data, "Subject: hello\r\n"));
	/* Exactly tag: flagged, prefixed; our headers before the client's
	 * and after our Received. */
	assert_int_equal(run(&h, 5, true), V_CONTINUE);
	assert_non_null(strstr(h.t.msg.data, "Received: by us\r\n"
	    "X-Spam-Status: Yes, score=5.0 required=5.0 tests=TEST_SYM\r\n"
	    "X-Spam-Score: 5.0\r\nX-Spam-Flag: YES\r\nFrom:"));
	assert_non_null(strstr(h.t.msg.data, "Subject: [SPAM] hello\r\n"));
	/* Just below reject: delivered. Exactly reject: refused. */
	assert_int_equal(run(&h, 9.9, true), V_CONTINUE);
	assert_int_equal(run(&h, 10, true), V_DENY);
	assert_non_null(strstr(h.t.verdict_text, "0000000000001234"));
	harness_free(&h);
	buf_free(&h.t.msg);
}

static void
test_no_subject(void **state)
{
	const char	*kv[] = { "subject_prefix", "[SPAM]", NULL };
	struct harness	 h;

	(void)state;
	assert_int_equal(harness_init(&h, &filter_score, "example.test",
	    kv), 0);
	buf_init(&h.t.msg, 65536);
	buf_adds(&h.t.msg, "From: a@example.org\r\n\r\nSubject: body\r\n");
	session_symbol(&h.s, "TEST_SYM", 6);
	assert_int_equal(harness_call(&h, STAGE_DATA_POST), V_CONTINUE);
	/* The body's "Subject:" is not a header; one is added. */
	assert_non_null(strstr(h.t.msg.data, "Subject: [SPAM]\r\nFrom:"));
	assert_non_null(strstr(h.t.msg.data, "\r\n\r\nSubject: body"));
	harness_free(&h);
	buf_free(&h.t.msg);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_thresholds),
		cmocka_unit_test(test_no_subject),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
