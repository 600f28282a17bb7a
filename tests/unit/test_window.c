/*
 * test_window.c: GCRA windows on a test clock: N in a burst then
 * refused with the right retry time, the window sliding back, separate
 * keys and limits, the parser's bounds, a shared table counted by a
 * forked child and its parent together, and a published table read by
 * another mapping (moatctl's view).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "../../src/core/window.h"

static struct window_limit
lim(const char *s)
{
	struct window_limit	l;
	char			err[200];

	assert_int_equal(window_limit_parse(s, &l, err, sizeof(err)), 0);
	return l;
}

static void
test_parse(void **st)
{
	struct window_limit	l;
	char			err[200];
	const char		*bad[] = { "x", "10", "10/", "10/1y", "0/1h",
	    "-1/1h", "10/0s", "1000001/1s", "1/367d", "10/1h ", NULL };
	size_t			i;

	(void)st;
	l = lim("100/1h");
	assert_int_equal(l.count, 100);
	assert_int_equal(l.period_ms, 3600000);
	l = lim("500/d");
	assert_int_equal(l.period_ms, 86400000);
	l = lim("3/1500ms");
	assert_int_equal(l.period_ms, 1500);
	l = lim("1000000/366d");
	assert_int_equal(l.count, 1000000);
	l = lim("");
	assert_int_equal(l.count, 0);
	l = lim("0");
	assert_int_equal(l.count, 0);
	for (i = 0; bad[i] != NULL; i++)
		assert_int_equal(window_limit_parse(bad[i], &l, err,
		    sizeof(err)), -1);
}

static void
test_burst_and_slide(void **st)
{
	struct window_table	*t = window_table_new(64, false);
	struct window_limit	 l = lim("10/10s");
	struct window_result	 r;
	uint64_t		 now = 1000000;
	int			 i;

	(void)st;
	for (i = 1; i <= 10; i++) {
		r = window_take(t, &l, "a", 1, 1, now);
		assert_true(r.allowed);
		assert_int_equal(r.used, i);
	}
	r = window_take(t, &l, "a", 1, 1, now);
	assert_false(r.allowed);
	assert_int_equal(r.used, 10);
	assert_int_equal(r.retry_ms, 1000);	/* one slot frees per 1 s */
	/* Another key is not affected; neither is another limit. */
	assert_true(window_take(t, &l, "b", 1, 1, now).allowed);
	l = lim("10/20s");
	assert_true(window_take(t, &l, "a", 1, 1, now).allowed);
	l = lim("10/10s");
	/* 999 ms later still nothing; at 1000 ms one more. */
	assert_false(window_take(t, &l, "a", 1, 1, now + 999).allowed);
	assert_true(window_take(t, &l, "a", 1, 1, now + 1000).allowed);
	assert_false(window_take(t, &l, "a", 1, 1, now + 1000).allowed);
	assert_int_equal(window_peek(t, &l, "a", 1, now + 1000), 10);
	/* A whole period later the window is empty again. */
	assert_int_equal(window_peek(t, &l, "a", 1, now + 11000), 0);
	r = window_take(t, &l, "a", 1, 1, now + 11000);
	assert_true(r.allowed);
	assert_int_equal(r.used, 1);
	/* A cost of several events at once, refused whole. */
	r = window_take(t, &l, "c", 1, 8, now);
	assert_true(r.allowed);
	assert_int_equal(r.used, 8);
	r = window_take(t, &l, "c", 1, 3, now);
	assert_false(r.allowed);
	assert_int_equal(r.retry_ms, 1000);
	assert_true(window_take(t, &l, "c", 1, 2, now).allowed);
	/* No limit: always allowed. */
	l = lim("");
	for (i = 0; i < 100; i++)
		assert_true(window_take(t, &l, "a", 1, 1, now).allowed);
	window_table_free(t);
}

/* A full probe range fails open; expired cells are taken again. */
static void
test_full_and_reuse(void **st)
{
	struct window_table	*t = window_table_new(16, false);
	struct window_limit	 l = lim("1/1s");
	struct window_result	 r;
	char			 k[16];
	int			 i, full = 0;

	(void)st;
	for (i = 0; i < 40; i++) {
		snprintf(k, sizeof(k), "k%d", i);
		r = window_take(t, &l, k, strlen(k), 1, 5000);
		assert_true(r.allowed);
		full += r.full;
	}
	/* 16 cells, the first the header: 15 keys fit. */
	assert_int_equal(full, 40 - 15);
	/* A second later every cell is free again. */
	for (i = 100; i < 115; i++) {
		snprintf(k, sizeof(k), "k%d", i);
		r = window_take(t, &l, k, strlen(k), 1, 6000);
		assert_false(r.full);
	}
	window_table_free(t);
}

/* An evicting table never lets a key through uncounted: the newest key
 * takes the cell nearest to the end of its debt. A reservation given
 * back frees its event, never more. */
static void
test_evict_and_return(void **st)
{
	struct window_table	*t = window_table_new(16, false);
	struct window_limit	 l = lim("2/10s");
	struct window_result	 r;
	char			 k[16];
	int			 i;

	(void)st;
	window_table_evict(t);
	for (i = 0; i < 40; i++) {
		snprintf(k, sizeof(k), "k%d", i);
		r = window_take(t, &l, k, strlen(k), 1, 5000 + i);
		assert_true(r.allowed);
		assert_false(r.full);
		assert_int_equal(window_peek(t, &l, k, strlen(k), 5000 + i), 1);
	}
	/* k0 was evicted long ago: counted anew. */
	assert_int_equal(window_peek(t, &l, "k0", 2, 5100), 0);
	/* Two taken, one given back: one more fits, then no more. */
	assert_true(window_take(t, &l, "r", 1, 1, 6000).allowed);
	assert_true(window_take(t, &l, "r", 1, 1, 6000).allowed);
	assert_false(window_take(t, &l, "r", 1, 1, 6000).allowed);
	window_return(t, &l, "r", 1, 1, 6000);
	assert_int_equal(window_peek(t, &l, "r", 1, 6000), 1);
	window_return(t, &l, "r", 1, 1, 6000);
	window_return(t, &l, "r", 1, 1, 6000);
	assert_int_equal(window_peek(t, &l, "r", 1, 6000), 0);
	window_table_free(t);
}

/* A table made before fork is one table for parent and child. */
static void
test_shared_fork(void **st)
{
	struct window_table	*t = window_table_new(1024, true);
	struct window_limit	 l = lim("100/1h");
	uint64_t		 now = window_now_ms();
	pid_t			 pid;
	int			 i, status, ok = 0;

	(void)st;
	assert_non_null(t);
	if ((pid = fork()) == 0) {
		for (i = 0; i < 60; i++)
			(void)window_take(t, &l, "ip", 2, 1, now);
		_exit(0);
	}
	for (i = 0; i < 60; i++)
		ok += window_take(t, &l, "ip", 2, 1, now).allowed;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	/* Together: exactly 100 allowed, whoever got them. */
	assert_int_equal(window_peek(t, &l, "ip", 2, now), 100);
	assert_true(ok >= 40 && ok <= 60);
	window_table_free(t);
}

/* Counts taken before and after window_publish() are in the file, and
 * a reader that opens it sees a forked child's events; the file is made
 * anew by the next publish (a restart forgets). */
static void
test_publish_open(void **st)
{
	struct window_table	*t = window_table_shared("unit", 1024), *r;
	struct window_limit	 l = lim("100/1h");
	uint64_t		 now = window_now_ms();
	char			 dir[] = "/tmp/moat-window-XXXXXX", path[64],
				 err[256];
	pid_t			 pid;
	int			 i, status;

	(void)st;
	assert_non_null(t);
	assert_non_null(mkdtemp(dir));
	for (i = 0; i < 5; i++)
		(void)window_take(t, &l, "user", 4, 1, now);
	assert_int_equal(window_publish(dir, err, sizeof(err)), 0);
	/* The same name is the same table (a second policy, a reload),
	 * freed with its last holder. */
	{
		struct window_table *again = window_table_shared("unit", 16);

		assert_ptr_equal(again, t);
		window_table_free(again);
		assert_int_equal(window_peek(t, &l, "user", 4, now), 5);
	}
	if ((pid = fork()) == 0) {
		for (i = 0; i < 7; i++)
			(void)window_take(t, &l, "user", 4, 1, now);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	snprintf(path, sizeof(path), "%s/unit.win", dir);
	/* (the reader takes the table's hash seed from its header: with
	 * another seed it would look in other cells and see 0) */
	assert_non_null(r = window_table_open(path, err, sizeof(err)));
	assert_int_equal(window_peek(r, &l, "user", 4, now), 12);
	assert_int_equal(window_peek(r, &l, "other", 5, now), 0);
	window_table_free(r);
	/* Not a table: refused with the path in the error. */
	snprintf(path, sizeof(path), "%s", dir);
	assert_null(window_table_open("/dev/null", err, sizeof(err)));
	assert_non_null(strstr(err, "/dev/null"));
	window_table_free(t);
	snprintf(path, sizeof(path), "%s/unit.win", dir);
	unlink(path);
	rmdir(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse),
		cmocka_unit_test(test_burst_and_slide),
		cmocka_unit_test(test_full_and_reuse),
		cmocka_unit_test(test_shared_fork),
		cmocka_unit_test(test_publish_open),
		cmocka_unit_test(test_evict_and_return),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
