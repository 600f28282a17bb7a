/*
 * test_budget.c: the CPU budget of a MIME read (mime.h). A spent budget
 * stops GMime's parse and the walk where they are, and says so; an
 * unspent one changes nothing; a cancelled read stops like a spent one.
 * The bombs are parsed for far longer than the budgets given, so the
 * tests do not depend on the machine's speed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "../../src/core/buf.h"
#include "../../src/content/mime.h"
#include "../../src/content/tokenize.h"

static const struct mime_limits lim = { 512 * 1024, 20, 200 };

/* A multipart/mixed nested `levels` deep. */
static char *
deep_bomb(int levels)
{
	struct buf	b;
	int		i;

	buf_init(&b, 64 * 1024 * 1024);
	buf_adds(&b, "From: a@example.org\r\nSubject: deep\r\n"
	    "MIME-Version: 1.0\r\n");
	for (i = 0; i < levels; i++)
		buf_printf(&b, "Content-Type: multipart/mixed; boundary=\"b%d\""
		    "\r\n\r\n--b%d\r\n", i, i);
	buf_adds(&b, "Content-Type: text/plain\r\n\r\nzorbix inside\r\n");
	return b.data;
}

/* A multipart/mixed of n small text parts. */
static char *
wide_bomb(int n)
{
	struct buf	b;
	int		i;

	buf_init(&b, 64 * 1024 * 1024);
	buf_adds(&b, "From: a@example.org\r\nSubject: wide\r\n"
	    "MIME-Version: 1.0\r\n"
	    "Content-Type: multipart/mixed; boundary=\"w\"\r\n\r\n");
	for (i = 0; i < n; i++)
		buf_printf(&b, "--w\r\nContent-Type: text/plain\r\n\r\n"
		    "word%d\r\n", i);
	buf_adds(&b, "--w--\r\n");
	return b.data;
}

static void
scan(const char *m, struct mime_budget *b, struct tok *t,
    struct mime_stats *st)
{
	tok_init(t, 20000, false);
	mime_scan_budget(m, strlen(m), &lim, b, t, st);
	tok_finish(t);
}

static void
test_spent_stops_the_read(void **state)
{
	const struct mime_limits big = { 64 * 1024 * 1024, 20, 200 };
	char			*m = deep_bomb(20000);
	struct mime_budget	 b;
	struct mime_stats	 st;
	struct tok		 t;

	(void)state;
	/* 1 ms of CPU: far less than this parse takes. */
	mime_budget_start(&b, 1000000, NULL);
	tok_init(&t, 20000, false);
	mime_scan_budget(m, strlen(m), &big, &b, &t, &st);
	tok_finish(&t);
	assert_true(b.spent);
	assert_true(st.budget);
	assert_true(st.truncated);
	assert_true(st.depth < 20);	/* never reached the depth limit */
	assert_int_equal(st.parts, 0);
	tok_free(&t);
	free(m);
}

static void
test_unspent_changes_nothing(void **state)
{
	const char		*m = "From: a@example.org\r\nSubject: hello\r\n"
				    "\r\nzorbix quandle frimp\r\n";
	struct mime_budget	 b;
	struct mime_stats	 st, st0;
	struct tok		 t, t0;

	(void)state;
	scan(m, NULL, &t0, &st0);
	mime_budget_start(&b, 60LL * 1000000000, NULL);	/* a minute */
	scan(m, &b, &t, &st);
	assert_false(b.spent);
	assert_false(st.budget);
	assert_int_equal(t.n, t0.n);
	assert_memory_equal(t.feat, t0.feat, t.n * sizeof(*t.feat));
	tok_free(&t);
	tok_free(&t0);
	/* 0 is no limit. */
	mime_budget_start(&b, 0, NULL);
	assert_false(mime_budget_spent(&b));
}

static void
test_cancel(void **state)
{
	char			*m = wide_bomb(2000);
	atomic_bool		 cancel;
	struct mime_budget	 b;
	struct mime_stats	 st;
	struct tok		 t;

	(void)state;
	atomic_init(&cancel, true);
	mime_budget_start(&b, 0, &cancel);
	scan(m, &b, &t, &st);
	assert_true(st.budget);
	assert_int_equal(st.parts, 0);
	tok_free(&t);
	/* Not cancelled, no limit: the whole read, up to max_parts. */
	atomic_store(&cancel, false);
	mime_budget_start(&b, 0, &cancel);
	scan(m, &b, &t, &st);
	assert_false(st.budget);
	assert_int_equal(st.parts, 200);
	tok_free(&t);
	free(m);
}

static void
count(void *arg, const char *msg, size_t len)
{
	(void)msg;
	(void)len;
	(*(int *)arg)++;
}

static void
test_attached(void **state)
{
	const char *m = "From: a@example.org\r\nMIME-Version: 1.0\r\n"
	    "Content-Type: multipart/mixed; boundary=\"f\"\r\n\r\n"
	    "--f\r\nContent-Type: message/rfc822\r\n\r\n"
	    "Subject: inner\r\n\r\nzorbix\r\n--f--\r\n";
	struct mime_budget	b;
	atomic_bool		cancel;
	int			n = 0;

	(void)state;
	mime_budget_start(&b, 0, NULL);
	assert_int_equal(mime_each_attached(m, strlen(m), &lim, &b, count,
	    &n), 1);
	assert_int_equal(n, 1);
	atomic_init(&cancel, true);
	mime_budget_start(&b, 0, &cancel);
	n = 0;
	assert_int_equal(mime_each_attached(m, strlen(m), &lim, &b, count,
	    &n), 0);
	assert_int_equal(n, 0);
	assert_true(b.spent);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_spent_stops_the_read),
		cmocka_unit_test(test_unspent_changes_nothing),
		cmocka_unit_test(test_cancel),
		cmocka_unit_test(test_attached),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
