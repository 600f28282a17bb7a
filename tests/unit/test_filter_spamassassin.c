/*
 * test_filter_spamassassin.c: spamd's replies (scanproto_spamd: SYMBOLS
 * and REPORT, error codes, header and line caps at N and N+1), the
 * request head (User: checked), the options, SA_SCORE (score × factor)
 * with its rules as evidence, the fail mode, and the cost rules: a
 * message over max_size or already over the score filter's reject
 * threshold is not sent. The real spamd: tests/integration.
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
#include "../../src/filters/scan.h"
#include "../../src/filters/score.h"
#include "../../src/filters/spamassassin.h"

static const char sym_reply[] = "SPAMD/1.1 0 EX_OK\r\nContent-length: 29\r\n"
    "Spam: True ; 1005.2 / 5.0\r\n\r\nGTUBE,MISSING_DATE,NO_RECEIVED";

static const char report_reply[] = "SPAMD/1.1 0 EX_OK\r\n"
    "Content-length: 400\r\nSpam: True ; 1003.6 / 5.0\r\n\r\n"
    "Spam detection software...\n\nContent analysis details:   (1003.6 "
    "points, 5.0 required)\n\n pts rule name              description\n"
    "---- ---------------------- ----------------------------------\n"
    " 1.0 MISSING_FROM           Missing From: header\n"
    "-0.0 NO_RECEIVED            Informational: message has no\n"
    "                            Received headers\n"
    "1000 GTUBE                  BODY: Generic Test for Unsolicited\n\n";

static int
parse(const char *s, bool report, struct spamd_reply *r)
{
	return scanproto_spamd(s, strlen(s), report, r);
}

static void
test_replies(void **state)
{
	struct spamd_reply	 r;
	char			 b[SPAMD_HEAD_MAX + 200];
	size_t			 i;

	(void)state;
	assert_int_equal(parse(sym_reply, false, &r), 0);
	assert_true(r.spam);
	assert_true(r.score > 1005.1 && r.score < 1005.3);
	assert_true(r.threshold == 5.0);
	/* Content-length: 29 cuts the last name short: "NO_RECEIVED"
	 * would be past it, "NO_RECEIVE" is what the length gives. */
	assert_string_equal(r.rules, "GTUBE,MISSING_DATE,NO_RECEIVE");
	assert_int_equal(parse("SPAMD/1.1 0 EX_OK\r\nSpam: False ; -1.5 / "
	    "5.0\r\n\r\nA,B_2,,bad-name,C\r\n", false, &r), 0);
	assert_false(r.spam);
	assert_true(r.score == -1.5);
	assert_string_equal(r.rules, "A,B_2,C");
	assert_int_equal(r.nrules, 3);
	assert_int_equal(parse(report_reply, true, &r), 0);
	assert_string_equal(r.rules, "MISSING_FROM,NO_RECEIVED,GTUBE");
	/* Errors: spamd's code, no score. */
	assert_int_equal(parse("SPAMD/1.0 76 Bad header line\r\n", false,
	    &r), 0);
	assert_int_equal(r.code, 76);
	/* Not replies. */
	assert_int_equal(parse("SPAMD/1.1 0 EX_OK\r\n\r\nA", false, &r), -1);
	assert_int_equal(parse("HTTP/1.1 200 OK\r\n\r\n", false, &r), -1);
	assert_int_equal(parse("SPAMD/1.1 0 EX_OK\r\nSpam: Maybe ; 1 / 5\r\n"
	    "\r\n", false, &r), -1);
	assert_int_equal(parse("SPAMD/1.1 0 EX_OK\r\nSpam: True ; nan / 5\r\n"
	    "\r\n", false, &r), -1);
	assert_int_equal(parse("SPAMD/1.1 0 EX_OK\r\nSpam: True ; 1e999 / "
	    "5\r\n\r\n", false, &r), -1);
	assert_int_equal(parse("SPAMD/1.1 0 EX_OK\r\nSpam: True ; 1 / 5\r\n",
	    false, &r), -1);
	assert_int_equal(parse("SPAMD/1.1 1000 X\r\n\r\n", false, &r), -1);
	assert_int_equal(parse("", false, &r), -1);
	/* A header line of SPAMD_LINE_MAX is read, one more is not. */
	snprintf(b, sizeof(b), "SPAMD/1.1 0 EX_OK\r\nX: ");
	for (i = strlen(b); i < 19 + SPAMD_LINE_MAX; i++)
		b[i] = 'x';
	snprintf(b + i, sizeof(b) - i, "\r\nSpam: True ; 1 / 5\r\n\r\nA");
	assert_int_equal(parse(b, false, &r), 0);
	memmove(b + 20, b + 19, strlen(b + 19) + 1);
	b[19] = 'x';
	assert_int_equal(parse(b, false, &r), -1);
	/* Rule names: SPAMD_RULE_MAX long kept, one more dropped; the
	 * joined list stops at SPAMD_RULES_MAX. */
	snprintf(b, sizeof(b), "SPAMD/1.1 0 EX_OK\r\nSpam: True ; 1 / 5\r\n"
	    "\r\n");
	i = strlen(b);
	memset(b + i, 'R', SPAMD_RULE_MAX);
	b[i + SPAMD_RULE_MAX] = ',';
	memset(b + i + SPAMD_RULE_MAX + 1, 'S', SPAMD_RULE_MAX + 1);
	b[i + 2 * SPAMD_RULE_MAX + 2] = '\0';
	assert_int_equal(parse(b, false, &r), 0);
	assert_int_equal(r.nrules, 1);
	assert_int_equal(strlen(r.rules), SPAMD_RULE_MAX);
	{
		char *many = malloc(40000);

		snprintf(many, 40000, "SPAMD/1.1 0 EX_OK\r\nSpam: True ; 1 / "
		    "5\r\n\r\n");
		for (i = 0; i < 2000; i++)
			snprintf(many + strlen(many), 40000 - strlen(many),
			    "RULE_%04zu,", i);
		assert_int_equal(parse(many, false, &r), 0);
		assert_true(strlen(r.rules) <= SPAMD_RULES_MAX);
		assert_true(r.dropped > 0);
		assert_int_equal(r.nrules + r.dropped, 2000);
		free(many);
	}
}

static void
test_head(void **state)
{
	char	out[512], user[SPAMD_USER_MAX + 2];
	int	n;

	(void)state;
	n = scanproto_spamd_head(out, sizeof(out), false, 123, NULL);
	assert_string_equal(out, "SYMBOLS SPAMC/1.5\r\nContent-length: 123\r\n"
	    "\r\n");
	assert_int_equal(n, (int)strlen(out));
	scanproto_spamd_head(out, sizeof(out), true, 5, "alice@example.test");
	assert_string_equal(out, "REPORT SPAMC/1.5\r\nContent-length: 5\r\n"
	    "User: alice@example.test\r\n\r\n");
	assert_int_equal(scanproto_spamd_head(out, sizeof(out), false, 5,
	    "a b"), -1);
	assert_int_equal(scanproto_spamd_head(out, sizeof(out), false, 5,
	    "a\r\nX: y"), -1);
	memset(user, 'u', sizeof(user));
	user[SPAMD_USER_MAX] = '\0';
	assert_true(scanproto_spamd_head(out, sizeof(out), false, 5, user) >
	    0);
	user[SPAMD_USER_MAX] = 'u';
	user[SPAMD_USER_MAX + 1] = '\0';
	assert_int_equal(scanproto_spamd_head(out, sizeof(out), false, 5,
	    user), -1);
	assert_int_equal(scanproto_spamd_head(out, 20, false, 5, NULL), -1);
}

static void
test_options(void **state)
{
	struct harness	 h;
	const char	*bad_cmd[] = { "command", "check", NULL };
	const char	*bad_user[] = { "user_mode", "everyone", NULL };
	const char	*good[] = { "command", "report", "user_mode",
			    "domain", "fail", "defer", NULL };

	(void)state;
	assert_int_equal(harness_init(&h, &filter_spamassassin,
	    "example.test", bad_cmd), -1);
	harness_free(&h);
	assert_int_equal(harness_init(&h, &filter_spamassassin,
	    "example.test", bad_user), -1);
	harness_free(&h);
	assert_int_equal(harness_init(&h, &filter_spamassassin,
	    "example.test", good), 0);
	harness_free(&h);
}

static enum verdict_code
decide(struct harness *h, enum svc_status st, const char *reply)
{
	struct scan *sc = calloc(1, sizeof(*sc));

	sc->f = &filter_spamassassin;
	sc->st = SCAN_DONE;
	sc->status = st;
	if (reply != NULL)
		sc->parsed = scanproto_spamd(reply, strlen(reply), false,
		    &sc->sa);
	free(filter_data(&h->s, &filter_spamassassin));
	filter_data_set(&h->s, &filter_spamassassin, sc);
	return harness_call(h, STAGE_DATA_POST);
}

static void
test_score(void **state)
{
	struct harness	 h;
	const char	*kv[] = { "factor", "0.5", NULL };
	const char	*defer[] = { "fail", "defer", NULL };
	struct evidence	*e;

	(void)state;
	assert_int_equal(harness_init(&h, &filter_spamassassin,
	    "example.test", kv), 0);
	assert_int_equal(decide(&h, SVC_OK, sym_reply), V_CONTINUE);
	assert_int_equal(h.t.nsym, 1);
	assert_string_equal(h.t.sym[0].name, "SA_SCORE");
	assert_true(h.t.score > 502.5 && h.t.score < 502.7);
	e = &h.s.sev->ev[h.s.sev->nev - 1];
	assert_string_equal(e->name, "SA_SCORE");
	assert_non_null(strstr(e->detail, "GTUBE,MISSING_DATE"));
	/* continue (the default): no symbol, SA_FAIL evidence. */
	assert_int_equal(decide(&h, SVC_ETIMEOUT, NULL), V_CONTINUE);
	assert_int_equal(h.t.nsym, 1);
	assert_string_equal(h.s.sev->ev[h.s.sev->nev - 1].name, "SA_FAIL");
	assert_int_equal(decide(&h, SVC_OK, "SPAMD/1.0 76 Bad\r\n"),
	    V_CONTINUE);
	free(filter_data(&h.s, &filter_spamassassin));
	filter_data_set(&h.s, &filter_spamassassin, NULL);
	harness_free(&h);
	free(h.s.sev);
	free(h.s.pl_data);
	assert_int_equal(harness_init(&h, &filter_spamassassin,
	    "example.test", defer), 0);
	assert_int_equal(decide(&h, SVC_EDOWN, NULL), V_DEFER);
	free(filter_data(&h.s, &filter_spamassassin));
	filter_data_set(&h.s, &filter_spamassassin, NULL);
	harness_free(&h);
	free(h.s.sev);
	free(h.s.pl_data);
}

/* Not sent: too large, or already over the policy's reject. */
static void
test_cost(void **state)
{
	struct harness		 h;
	const char		*kv[] = { "max_size", "100", NULL };
	struct score_conf	 sc = { .tag = 5, .reject = 10 };

	(void)state;
	assert_int_equal(harness_init(&h, &filter_spamassassin,
	    "example.test", kv), 0);
	h.pl.order[0] = &filter_spamassassin;
	h.pl.order[1] = &filter_score;
	h.pl.n = 2;
	h.pol.conf[filter_index(&filter_spamassassin)] = h.conf;
	h.pol.conf[filter_index(&filter_score)] = &sc;
	buf_init(&h.t.msg, 65536);
	buf_adds(&h.t.msg, "Received: by us\r\n\r\nbody\r\n");
	h.t.score = 10;		/* exactly reject */
	assert_int_equal(harness_call(&h, STAGE_DATA_POST), V_CONTINUE);
	assert_string_equal(h.s.sev->ev[0].name, "SA_SKIPPED");
	assert_non_null(strstr(h.s.sev->ev[0].detail, "over reject 10.0"));
	/* Next transaction: too large. */
	h.t.seq++;
	h.t.score = 0;
	while (h.t.msg.len <= 100)
		buf_adds(&h.t.msg, "more body\r\n");
	assert_int_equal(harness_call(&h, STAGE_DATA_POST), V_CONTINUE);
	assert_non_null(strstr(h.s.sev->ev[1].detail, "over max_size 100"));
	free(filter_data(&h.s, &filter_spamassassin));
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
		cmocka_unit_test(test_head),
		cmocka_unit_test(test_options),
		cmocka_unit_test(test_score),
		cmocka_unit_test(test_cost),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
