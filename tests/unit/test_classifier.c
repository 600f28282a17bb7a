/*
 * test_classifier.c: the classifier's arithmetic (Robinson's f, the
 * min_dev cut, the n^norm damping, the perceptron's steps), learning
 * exactly once, moving between classes, forgetting, the opinion threshold,
 * pruning and the kept feature sets, on a real LMDB store in a temporary
 * directory.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <cmocka.h>

#include "../../src/content/classifier.h"
#include "../../src/store/store.h"

static struct store *st;
static char dir[64];
/* What learn() learns with: counts only unless a test says otherwise. */
static const struct classifier_conf *learn_conf;

static const struct classifier_conf plain = {
	.min_spam = 1, .min_ham = 1, .max_tokens = 1000000,
	.robs = 0, .robx = 0.5, .min_dev = 0, .norm = 0,
};

static int
setup(void **state)
{
	char err[256];

	(void)state;
	learn_conf = &plain;
	snprintf(dir, sizeof(dir), "/tmp/moat-test-cls-XXXXXX");
	assert_non_null(mkdtemp(dir));
	st = store_open(dir, 64 << 20, err, sizeof(err));
	assert_non_null(st);
	return 0;
}

static int
teardown(void **state)
{
	char cmd[128];

	(void)state;
	store_close(st);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* A finished feature set from text. */
static void
set_of(struct tok *t, const char *text)
{
	tok_init(t, 1000, false);
	tok_text(t, "", text, strlen(text));
	tok_finish(t);
}

/* Learns text as cls in its own transaction; returns learn's result. */
static int
learn(const char *text, enum cls cls, enum cls *prev)
{
	struct store_txn	*txn = store_begin(st, true);
	struct tok		 t;
	int			 rc;

	set_of(&t, text);
	rc = classifier_learn(txn, learn_conf, &t, cls, prev);
	assert_int_equal(store_commit(txn), 0);
	tok_free(&t);
	return rc;
}

static struct classifier_result
score(const struct classifier_conf *c, const char *text)
{
	struct store_txn		*txn = store_begin(st, false);
	struct classifier_result	 r;
	struct tok			 t;

	set_of(&t, text);
	assert_int_equal(classifier_score(txn, c, &t, &r), 0);
	store_abort(txn);
	tok_free(&t);
	return r;
}

static void
totals(long long *ns, long long *nh)
{
	struct store_txn *txn = store_begin(st, false);

	classifier_totals(txn, ns, nh);
	store_abort(txn);
}

static void
test_learn_once_move_forget(void **state)
{
	enum cls	prev;
	long long	ns, nh;

	(void)state;
	assert_int_equal(learn("cheap pills now", CLS_SPAM, &prev), 1);
	assert_int_equal(prev, CLS_NONE);
	assert_int_equal(learn("cheap pills now", CLS_SPAM, &prev), 0);
	assert_int_equal(prev, CLS_SPAM);
	totals(&ns, &nh);
	assert_int_equal(ns, 1);
	assert_int_equal(nh, 0);
	/* Moving it: spam count back to 0, ham 1. */
	assert_int_equal(learn("cheap pills now", CLS_HAM, &prev), 1);
	assert_int_equal(prev, CLS_SPAM);
	totals(&ns, &nh);
	assert_int_equal(ns, 0);
	assert_int_equal(nh, 1);
	/* Forgetting: gone, tokens too; forgetting again changes nothing. */
	assert_int_equal(learn("cheap pills now", CLS_NONE, &prev), 1);
	assert_int_equal(learn("cheap pills now", CLS_NONE, &prev), 0);
	assert_int_equal(prev, CLS_NONE);
	totals(&ns, &nh);
	assert_int_equal(ns + nh, 0);
	{
		struct store_txn *txn = store_begin(st, false);

		assert_int_equal(store_tokens_count(txn), 0);
		store_abort(txn);
	}
}

static void
test_arithmetic(void **state)
{
	struct classifier_result	r;
	struct classifier_conf		c = plain;
	enum cls			prev;

	(void)state;
	/* Ns = 1, Nh = 3; "shared" in the spam and in one ham:
	 * p = (1/1) / (1/1 + 1/3) = 0.75, f = p with robs 0. */
	learn("shared spamword", CLS_SPAM, &prev);
	learn("shared hamone", CLS_HAM, &prev);
	learn("hamtwo", CLS_HAM, &prev);
	learn("hamthree", CLS_HAM, &prev);
	r = score(&c, "shared");
	assert_true(r.opinion);
	assert_int_equal(r.used, 1);
	assert_true(fabs(r.logit - log(3)) < 1e-9);
	assert_true(fabs(r.prob - 0.75) < 1e-9);
	/* Unknown words do not count. */
	r = score(&c, "shared neverseen");
	assert_int_equal(r.used, 1);
	/* Robinson's s pulls towards robx: s = 1, n = 2:
	 * f = (0.5 + 2 * 0.75) / 3. */
	c.robs = 1;
	r = score(&c, "shared");
	assert_true(fabs(r.prob - 2.0 / 3) < 1e-9);
	/* min_dev drops features near 0.5. */
	c.min_dev = 0.2;
	r = score(&c, "shared");
	assert_int_equal(r.used, 0);
	/* norm 1 makes the mean of the log-odds. */
	c = plain;
	c.norm = 1;
	r = score(&c, "shared hamtwo");
	assert_int_equal(r.used, 2);
	{
		/* hamtwo: s = 0 -> f clamped at 1e-6 */
		double w = log(1e-6 / (1 - 1e-6));

		assert_true(fabs(r.logit - (log(3) + w) / 2) < 1e-6);
	}
	assert_string_equal("top", r.ntop > 0 ? "top" : "none");
	assert_true(r.top[0].weight < 0);	/* the stronger: hamtwo */
	/* Spammy and hammy messages land on their sides. */
	r = score(&plain, "spamword");
	assert_true(r.prob > 0.99);
	r = score(&plain, "hamone hamthree");
	assert_true(r.prob < 0.01);
	/* No opinion below the minimum learnt. */
	c = plain;
	c.min_spam = 2;
	r = score(&c, "spamword");
	assert_false(r.opinion);
	assert_true(r.prob == 0.5);
}

static void
test_prune(void **state)
{
	struct store_txn	*txn;
	enum cls		 prev;
	long long		 n;

	(void)state;
	learn("alpha beta gamma", CLS_SPAM, &prev);
	learn("alpha beta delta", CLS_SPAM, &prev);
	learn("alpha epsilon", CLS_HAM, &prev);
	txn = store_begin(st, true);
	n = store_tokens_count(txn);
	assert_int_equal(n, 5);
	assert_int_equal(classifier_prune(txn, 5), 0);	/* at the cap: kept */
	/* Cap 4: down to 90% of it (3): two seen once go first. */
	assert_int_equal(classifier_prune(txn, 4), 2);
	assert_int_equal(store_tokens_count(txn), 3);
	{
		struct store_token tk[2] = { { .hash = tok_hash("", "alpha",
		    5) }, { .hash = tok_hash("", "beta", 4) } };

		assert_int_equal(store_tokens_get(txn, tk, 2), 0);
		assert_int_equal(tk[0].spam, 2);
		assert_int_equal(tk[0].ham, 1);
		assert_int_equal(tk[1].spam, 2);
	}
	assert_int_equal(store_commit(txn), 0);
}

static long long
refit(const struct classifier_conf *c)
{
	struct store_txn	*txn = store_begin(st, true);
	long long		 n = classifier_refit(txn, c);

	assert_int_equal(store_commit(txn), 0);
	return n;
}

static long long
kept(void)
{
	struct store_txn	*txn = store_begin(st, false);
	long long		 n = classifier_kept(txn);

	store_abort(txn);
	return n;
}

static void
test_perceptron(void **state)
{
	struct classifier_conf	pc = plain;
	enum cls		prev;
	double			step = 0.5 / sqrt(2);

	(void)state;
	pc.perceptron = 1;
	pc.perceptron_passes = 1;
	pc.perceptron_rate = 0.5;
	pc.keep_messages = 10;
	pc.min_dev = 1;		/* no feature counts: the perceptron alone */
	learn_conf = &pc;
	learn("spamword common", CLS_SPAM, &prev);
	learn("hamword common", CLS_HAM, &prev);
	assert_int_equal(kept(), 2);
	/* Before a refit the weights are 0. */
	assert_true(score(&pc, "spamword").logit == 0);
	assert_int_equal(refit(&pc), 2);
	/* One pass, either order: the first message is inside the margin
	 * (z = 0) and steps by rate/sqrt(2); the second sees z = -0.25 for
	 * its class and steps too: "common" cancels out. */
	assert_true(fabs(score(&pc, "spamword").logit - step) < 1e-6);
	assert_true(fabs(score(&pc, "hamword").logit + step) < 1e-6);
	assert_true(fabs(score(&pc, "common").logit) < 1e-6);
	/* The score is the weight sum over sqrt(features). */
	assert_true(fabs(score(&pc, "spamword common").logit -
	    step / sqrt(2)) < 1e-6);
	/* A second pass steps both again, from inside the margin. */
	pc.perceptron_passes = 2;
	refit(&pc);
	assert_true(fabs(score(&pc, "spamword").logit - 2 * step) < 1e-6);
	assert_true(fabs(score(&pc, "common").logit) < 1e-6);
	/* Forgotten: not in the next refit, which starts afresh. (A ham
	 * learnt without features keeps the classifier's opinion.) */
	pc.perceptron_passes = 1;
	learn_conf = &plain;
	learn("unrelated", CLS_HAM, &prev);
	learn_conf = &pc;
	assert_int_equal(learn("hamword common", CLS_NONE, &prev), 1);
	assert_int_equal(kept(), 1);
	assert_int_equal(refit(&pc), 1);
	assert_true(fabs(score(&pc, "common").logit - step) < 1e-6);
	assert_true(fabs(score(&pc, "spamword").logit - step) < 1e-6);
	/* Off: the weights go back to 0. */
	pc.perceptron = 0;
	assert_int_equal(refit(&pc), 1);
	pc.perceptron = 1;
	assert_true(score(&pc, "spamword").logit == 0);
}

static void
test_keep_messages(void **state)
{
	struct classifier_conf	pc = plain;
	enum cls		prev;

	(void)state;
	pc.perceptron = 1;
	pc.perceptron_passes = 1;
	pc.perceptron_rate = 0.5;
	pc.keep_messages = 1;
	pc.min_dev = 1;
	learn_conf = &pc;
	learn("older spam", CLS_SPAM, &prev);
	learn("newer ham", CLS_HAM, &prev);
	assert_int_equal(kept(), 2);
	/* Only the newest keeps its features; the older stays learnt. */
	assert_int_equal(refit(&pc), 1);
	assert_int_equal(kept(), 1);
	assert_true(score(&pc, "older").logit == 0);
	assert_true(score(&pc, "newer").logit < 0);
	assert_int_equal(learn("older spam", CLS_SPAM, &prev), 0);
	assert_int_equal(prev, CLS_SPAM);
	/* Counts only: learning keeps no features at all. */
	learn_conf = &plain;
	learn("third one", CLS_SPAM, &prev);
	assert_int_equal(kept(), 1);
}

static bool
scan_collect(void *arg, const char *key, const void *val, size_t len)
{
	char *out = arg;

	strncat(out, key, 64);
	strncat(out, "=", 2);
	strncat(out, val, len);
	strncat(out, " ", 2);
	return true;
}

static void
test_store_kv(void **state)
{
	struct store_txn	*txn = store_begin(st, true);
	char			 v[16];
	long long		 n;

	(void)state;
	assert_int_equal(store_put(txn, "k", "value", 5, 0), 0);
	assert_int_equal(store_get(txn, "k", v, sizeof(v)), 5);
	assert_memory_equal(v, "value", 5);
	assert_int_equal(store_put(txn, "old", "x", 1, time(NULL) - 1), 0);
	assert_int_equal(store_get(txn, "old", v, sizeof(v)), -1);
	assert_int_equal(store_incr(txn, "c", 5, 0, &n), 0);
	assert_int_equal(store_incr(txn, "c", -2, 0, &n), 0);
	assert_int_equal(n, 3);
	assert_int_equal(store_del(txn, "k"), 0);
	assert_int_equal(store_get(txn, "k", v, sizeof(v)), -1);
	{
		char out[256] = "";

		/* A prefix scan: live keys only, in order, no neighbours. */
		assert_int_equal(store_put(txn, "p:b", "2", 1, 0), 0);
		assert_int_equal(store_put(txn, "p:a", "1", 1, 0), 0);
		assert_int_equal(store_put(txn, "p:old", "x", 1,
		    time(NULL) - 1), 0);
		assert_int_equal(store_put(txn, "q:c", "3", 1, 0), 0);
		assert_int_equal(store_put(txn, "p", "0", 1, 0), 0);
		assert_int_equal(store_scan(txn, "p:", scan_collect, out), 0);
		assert_string_equal(out, "p:a=1 p:b=2 ");
	}
	store_abort(txn);
	/* Aborted: nothing stayed. */
	txn = store_begin(st, false);
	assert_int_equal(store_get(txn, "c", v, sizeof(v)), -1);
	store_abort(txn);
}

static long long
unfit(void)
{
	struct store_txn	*txn = store_begin(st, false);
	long long		 n = classifier_unfit(txn);

	store_abort(txn);
	return n;
}

/* Learning counts what a batched refit has to catch up with: what
 * changed (learnt, moved, forgotten), not what was already known. */
static void
test_unfit(void **state)
{
	enum cls prev;

	(void)state;
	assert_int_equal(unfit(), 0);
	assert_int_equal(learn("alpha beta", CLS_SPAM, &prev), 1);
	assert_int_equal(learn("alpha beta", CLS_SPAM, &prev), 0);
	assert_int_equal(learn("gamma delta", CLS_HAM, &prev), 1);
	assert_int_equal(unfit(), 2);
	assert_int_equal(learn("gamma delta", CLS_SPAM, &prev), 1);
	assert_int_equal(learn("alpha beta", CLS_NONE, &prev), 1);
	assert_int_equal(unfit(), 4);
	assert_true(refit(learn_conf) >= 0);
	assert_int_equal(unfit(), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_learn_once_move_forget,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_arithmetic, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_prune, setup, teardown),
		cmocka_unit_test_setup_teardown(test_perceptron, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_keep_messages, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_store_kv, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_unfit, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
