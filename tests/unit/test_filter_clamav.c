/*
 * test_filter_clamav.c: clamd's replies (scanproto_clamd) at their
 * limits, the filter's options, and its decisions from a finished scan:
 * a virus refused 554 5.7.1 with its name (or tagged: CLAM_VIRUS and a
 * header), clean mail CLAM_CLEAN evidence, failures and the size-limit
 * refusal to the fail mode (defer 451, continue), a message over
 * max_size not scanned. The scan itself runs against a real clamd in
 * tests/integration/test_scanners.py.
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
#include "../../src/filters/clamav.h"
#include "../../src/filters/scan.h"

static enum clamd_result
parse(const char *s, struct clamd_reply *r)
{
	return scanproto_clamd(s, strlen(s), r);
}

static void
test_replies(void **state)
{
	struct clamd_reply	 r;
	char			 b[CLAMD_REPLY_MAX + 2];

	(void)state;
	assert_int_equal(parse("stream: OK", &r), CLAMD_CLEAN);
	assert_int_equal(parse("stream: OK\n", &r), CLAMD_CLEAN);
	assert_int_equal(parse("7: stream: OK", &r), CLAMD_CLEAN);
	assert_int_equal(parse("stream: Eicar-Signature FOUND", &r),
	    CLAMD_FOUND);
	assert_string_equal(r.name, "Eicar-Signature");
	assert_int_equal(parse("stream: Moat.Test.EICAR.UNOFFICIAL FOUND",
	    &r), CLAMD_FOUND);
	assert_string_equal(r.name, "Moat.Test.EICAR.UNOFFICIAL");
	/* Control characters never reach a reply line. */
	assert_int_equal(parse("stream: a\r\nb FOUND", &r), CLAMD_FOUND);
	assert_string_equal(r.name, "a??b");
	assert_int_equal(parse("INSTREAM size limit exceeded. ERROR", &r),
	    CLAMD_SIZE);
	assert_int_equal(parse("Can't allocate memory ERROR", &r),
	    CLAMD_ERROR);
	assert_int_equal(parse("stream:  FOUND", &r), CLAMD_BAD); /* no name */
	assert_int_equal(parse("stream: FOUND", &r), CLAMD_BAD);
	assert_int_equal(parse("stream: OKAY", &r), CLAMD_BAD);
	assert_int_equal(parse("", &r), CLAMD_BAD);
	assert_int_equal(parse("PONG", &r), CLAMD_BAD);
	assert_int_equal(parse("stream:", &r), CLAMD_BAD);
	/* The name is cut at CLAMD_NAME_MAX. */
	memset(b, 'N', sizeof(b));
	memcpy(b, "stream: ", 8);
	memcpy(b + 8 + CLAMD_NAME_MAX + 10, " FOUND", 7);
	assert_int_equal(parse(b, &r), CLAMD_FOUND);
	assert_int_equal(strlen(r.name), CLAMD_NAME_MAX);
	/* A reply of CLAMD_REPLY_MAX is read, one byte more is not. */
	memset(b, 'N', sizeof(b));
	memcpy(b, "stream: ", 8);
	memcpy(b + CLAMD_REPLY_MAX - 6, " FOUND", 7);
	assert_int_equal(scanproto_clamd(b, CLAMD_REPLY_MAX, &r), CLAMD_FOUND);
	memcpy(b + CLAMD_REPLY_MAX - 5, " FOUND", 7);
	assert_int_equal(scanproto_clamd(b, CLAMD_REPLY_MAX + 1, &r),
	    CLAMD_BAD);
}

static void
test_options(void **state)
{
	struct harness	 h;
	const char	*bad_action[] = { "action", "drop", NULL };
	const char	*bad_fail[] = { "fail", "maybe", NULL };
	const char	*bad_addr[] = { "address", "localhost:3310", NULL };
	const char	*good[] = { "address", "127.0.0.1:3310", "action",
			    "tag", "fail", "continue", NULL };

	(void)state;
	assert_int_equal(harness_init(&h, &filter_clamav, "example.test",
	    bad_action), -1);
	harness_free(&h);
	assert_int_equal(harness_init(&h, &filter_clamav, "example.test",
	    bad_fail), -1);
	harness_free(&h);
	assert_int_equal(harness_init(&h, &filter_clamav, "example.test",
	    bad_addr), -1);
	harness_free(&h);
	assert_int_equal(harness_init(&h, &filter_clamav, "example.test",
	    good), 0);
	harness_free(&h);
}

/* The hook on a scan that is over: status and reply as given. */
static enum verdict_code
decide(struct harness *h, enum svc_status st, const char *reply)
{
	struct scan *sc = calloc(1, sizeof(*sc));

	sc->f = &filter_clamav;
	sc->st = SCAN_DONE;
	sc->status = st;
	if (reply != NULL)
		(void)scanproto_clamd(reply, strlen(reply), &sc->clam);
	free(filter_data(&h->s, &filter_clamav));
	filter_data_set(&h->s, &filter_clamav, sc);
	return harness_call(h, STAGE_DATA_POST);
}

static const char *
last_evidence(struct harness *h)
{
	return h->s.sev->ev[h->s.sev->nev - 1].name;
}

static void
test_decisions(void **state)
{
	struct harness	 h;
	const char	*tag[] = { "action", "tag", "fail", "continue", NULL };

	(void)state;
	assert_int_equal(harness_init(&h, &filter_clamav, "example.test",
	    NULL), 0);
	buf_init(&h.t.msg, 65536);
	buf_adds(&h.t.msg, "Received: by us\r\n\r\nbody\r\n");
	assert_int_equal(decide(&h, SVC_OK, "stream: OK"), V_CONTINUE);
	assert_string_equal(last_evidence(&h), "CLAM_CLEAN");
	assert_int_equal(decide(&h, SVC_OK, "stream: Eicar FOUND"), V_DENY);
	assert_string_equal(h.t.verdict_text, "Virus found: Eicar");
	assert_string_equal(last_evidence(&h), "CLAM_VIRUS");
	/* Defer (the default) on every kind of failure. */
	assert_int_equal(decide(&h, SVC_ETIMEOUT, NULL), V_DEFER);
	assert_string_equal(last_evidence(&h), "CLAM_FAIL");
	assert_int_equal(decide(&h, SVC_EDOWN, NULL), V_DEFER);
	assert_int_equal(decide(&h, SVC_OK, "INSTREAM size limit exceeded. "
	    "ERROR"), V_DEFER);
	assert_non_null(strstr(h.s.sev->ev[h.s.sev->nev - 1].detail,
	    "size_limit"));
	assert_int_equal(decide(&h, SVC_OK, "garbage"), V_DEFER);
	free(filter_data(&h.s, &filter_clamav));
	filter_data_set(&h.s, &filter_clamav, NULL);
	harness_free(&h);
	buf_free(&h.t.msg);
	free(h.s.sev);
	free(h.s.pl_data);

	/* tag, continue: delivered with the symbol and the header. */
	assert_int_equal(harness_init(&h, &filter_clamav, "example.test",
	    tag), 0);
	buf_free(&h.t.msg);
	buf_init(&h.t.msg, 65536);
	buf_adds(&h.t.msg, "Received: by us\r\n");
	h.t.msg_start = h.t.msg.len;
	buf_adds(&h.t.msg, "Subject: x\r\n\r\nbody\r\n");
	assert_int_equal(decide(&h, SVC_OK, "stream: Eicar FOUND"),
	    V_CONTINUE);
	assert_int_equal(h.t.nsym, 1);
	assert_string_equal(h.t.sym[0].name, "CLAM_VIRUS");
	assert_non_null(strstr(h.t.msg.data, "X-Virus: Eicar\r\n"));
	assert_int_equal(decide(&h, SVC_ECONNECT, NULL), V_CONTINUE);
	free(filter_data(&h.s, &filter_clamav));
	filter_data_set(&h.s, &filter_clamav, NULL);
	harness_free(&h);
	buf_free(&h.t.msg);
	free(h.s.sev);
	free(h.s.pl_data);
}

/* A message over max_size is not scanned, and says so. */
static void
test_max_size(void **state)
{
	struct harness	 h;
	const char	*kv[] = { "max_size", "10", NULL };

	(void)state;
	assert_int_equal(harness_init(&h, &filter_clamav, "example.test",
	    kv), 0);
	h.pl.order[0] = &filter_clamav;
	h.pl.n = 1;
	h.pol.conf[filter_index(&filter_clamav)] = h.conf;
	buf_init(&h.t.msg, 65536);
	buf_adds(&h.t.msg, "Received: by us\r\n\r\nbody\r\n");
	assert_int_equal(harness_call(&h, STAGE_DATA_POST), V_CONTINUE);
	assert_string_equal(last_evidence(&h), "CLAM_SKIPPED");
	assert_non_null(strstr(h.s.sev->ev[0].detail, "over max_size 10"));
	free(filter_data(&h.s, &filter_clamav));
	harness_free(&h);
	buf_free(&h.t.msg);
	free(h.s.sev);
	free(h.s.pl_data);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_replies),
		cmocka_unit_test(test_options),
		cmocka_unit_test(test_decisions),
		cmocka_unit_test(test_max_size),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
