/*
 * test_filter_bayes.c: the band map (names, scores, bad maps refused with
 * a reason), no symbol before enough is learnt, and a BAYES_* symbol on
 * the transaction once it is, read from a real LMDB store.
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
#include "../../src/filters/bayes.h"
#include "../../src/store/store.h"

static void
test_map(void **state)
{
	const char	*kv[] = { "map", "0.05:-1 0.999:0 1:5", NULL };
	const char	*bad[] = { "1:1 0.5:2", "0.5:1", "0.5:x 1:1", "",
			    "2:1" };
	struct harness	 h;
	double		 sc;
	size_t		 i;

	(void)state;
	assert_int_equal(harness_init(&h, &filter_bayes, "example.test",
	    kv), 0);
	assert_string_equal(bayes_symbol(h.state, 0.01, &sc), "BAYES_00");
	assert_true(sc == -1);
	assert_string_equal(bayes_symbol(h.state, 0.05, &sc), "BAYES_05");
	assert_true(sc == 0);
	assert_string_equal(bayes_symbol(h.state, 0.999, &sc), "BAYES_999");
	assert_true(sc == 5);
	assert_string_equal(bayes_symbol(h.state, 1, &sc), "BAYES_999");
	harness_free(&h);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *b[] = { "map", bad[i], NULL };

		assert_int_equal(harness_init(&h, &filter_bayes,
		    "example.test", b), -1);
		harness_free(&h);
	}
}

static void
learn(struct store *st, const char *text, enum cls cls)
{
	struct store_txn	*txn = store_begin(st, true);
	struct classifier_conf	 counts = { .perceptron = 0 };
	struct tok		 t;
	enum cls		 prev;

	tok_init(&t, 1000, false);
	tok_text(&t, "", text, strlen(text));
	tok_finish(&t);
	assert_int_equal(classifier_learn(txn, &counts, &t, cls, &prev), 1);
	assert_int_equal(store_commit(txn), 0);
	tok_free(&t);
}

static void
test_symbol(void **state)
{
	const char	*kv[] = { "min_spam", "2", "min_ham", "2", NULL };
	char		 dir[64], err[256], cmd[100];
	struct harness	 h;
	struct store	*st;

	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/moat-test-bayes-XXXXXX");
	assert_non_null(mkdtemp(dir));
	store_configure(dir, 16 << 20);
	assert_non_null(st = store_shared(err, sizeof(err)));
	assert_int_equal(harness_init(&h, &filter_bayes, "example.test",
	    kv), 0);
	buf_init(&h.t.msg, 65536);
	buf_adds(&h.t.msg, "Subject: cheap pills\r\n\r\nbuy cheap pills now"
	    "\r\n");
	/* One of each: too little for an opinion, no symbol. */
	learn(st, "cheap pills buy now", CLS_SPAM);
	learn(st, "meeting notes attached", CLS_HAM);
	assert_int_equal(harness_call(&h, STAGE_DATA_POST), V_CONTINUE);
	assert_int_equal(h.t.nsym, 0);
	learn(st, "pills cheap offer", CLS_SPAM);
	learn(st, "notes from the meeting", CLS_HAM);
	assert_int_equal(harness_call(&h, STAGE_DATA_POST), V_CONTINUE);
	assert_int_equal(h.t.nsym, 1);
	/* 4 spam-only words, f = (0.1 * 0.5 + 2) / 2.1 each:
	 * 4 ln(f / (1 - f)) / 4^0.7 = 5.6, p = 0.996: the 0.99 band. */
	assert_string_equal(h.t.sym[0].name, "BAYES_99");
	assert_true(h.t.score == 7);
	harness_free(&h);
	buf_free(&h.t.msg);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

static void
test_training_rcpt(void **state)
{
	const char	*kv[] = { "spam_address", "spam@example.test",
			    "ham_address", "ham@example.test", NULL };
	struct harness	 h;

	(void)state;
	assert_int_equal(harness_init(&h, &filter_bayes, "example.test",
	    kv), 0);
	harness_rcpt(&h, "<Spam@Example.Test>");
	assert_int_equal(harness_call(&h, STAGE_RCPT), V_DENY);
	assert_int_equal(h.r.consumed, 0);
	h.s.trusted = true;
	assert_int_equal(harness_call(&h, STAGE_RCPT), V_ACCEPT);
	assert_int_equal(h.r.consumed, CLS_SPAM);
	harness_rcpt(&h, "<ham@example.test>");
	assert_int_equal(harness_call(&h, STAGE_RCPT), V_ACCEPT);
	assert_int_equal(h.r.consumed, CLS_HAM);
	harness_rcpt(&h, "<alice@example.test>");
	assert_int_equal(harness_call(&h, STAGE_RCPT), V_CONTINUE);
	assert_int_equal(h.r.consumed, 0);
	harness_free(&h);
}

/* One class per transaction: with spam@ accepted, ham@ is deferred
 * (452 4.5.3 at RCPT; the client sends it again on its own). */
static void
test_one_class_per_transaction(void **state)
{
	const char	*kv[] = { "spam_address", "spam@example.test",
			    "ham_address", "ham@example.test", NULL };
	struct harness	 h;
	struct rcpt	 taken = { .accepted = true, .consumed = CLS_SPAM };

	(void)state;
	assert_int_equal(harness_init(&h, &filter_bayes, "example.test",
	    kv), 0);
	h.s.trusted = true;
	h.t.rcpts = &taken;
	h.t.nrcpt = 1;
	harness_rcpt(&h, "<ham@example.test>");
	assert_int_equal(harness_call(&h, STAGE_RCPT), V_DEFER);
	assert_int_equal(h.r.consumed, 0);
	/* The same class again is fine (the core drops the repeat). */
	harness_rcpt(&h, "<spam@example.test>");
	assert_int_equal(harness_call(&h, STAGE_RCPT), V_ACCEPT);
	harness_free(&h);
}

/* train_limit per client address (an IPv6 client by its /64): at N
 * accepted, at N+1 deferred; another client has its own count. */
static void
test_train_limit(void **state)
{
	const char	*kv[] = { "spam_address", "spam@example.test",
			    "train_limit", "2", NULL };
	struct harness	 h;
	struct sockaddr_in6 *sin6;

	(void)state;
	assert_int_equal(harness_init(&h, &filter_bayes, "example.test",
	    kv), 0);
	h.s.trusted = true;
	harness_client(&h, "192.0.2.7");
	harness_rcpt(&h, "<spam@example.test>");
	assert_int_equal(harness_call(&h, STAGE_RCPT), V_ACCEPT);
	assert_int_equal(harness_call(&h, STAGE_RCPT), V_ACCEPT);
	assert_int_equal(harness_call(&h, STAGE_RCPT), V_DEFER);
	harness_client(&h, "192.0.2.8");
	assert_int_equal(harness_call(&h, STAGE_RCPT), V_ACCEPT);
	/* Two addresses of one /64 are one client. */
	memset(&h.s.peer, 0, sizeof(h.s.peer));
	sin6 = (struct sockaddr_in6 *)&h.s.peer;
	sin6->sin6_family = AF_INET6;
	inet_pton(AF_INET6, "2001:db8:1:2::1", &sin6->sin6_addr);
	assert_int_equal(harness_call(&h, STAGE_RCPT), V_ACCEPT);
	inet_pton(AF_INET6, "2001:db8:1:2::99", &sin6->sin6_addr);
	assert_int_equal(harness_call(&h, STAGE_RCPT), V_ACCEPT);
	assert_int_equal(harness_call(&h, STAGE_RCPT), V_DEFER);
	inet_pton(AF_INET6, "2001:db8:1:3::1", &sin6->sin6_addr);
	assert_int_equal(harness_call(&h, STAGE_RCPT), V_ACCEPT);
	harness_free(&h);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_map),
		cmocka_unit_test(test_symbol),
		cmocka_unit_test(test_training_rcpt),
		cmocka_unit_test(test_one_class_per_transaction),
		cmocka_unit_test(test_train_limit),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
