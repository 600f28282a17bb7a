/*
 * test_tpool.c: pools are separate (a job blocked on one pool does not
 * hold another's), completions run on the loop, a bounded queue refuses
 * past its bound with EAGAIN, and tpool_stop() stops every pool after
 * its queued jobs. Jobs block on pipes the test controls, not on time.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <cmocka.h>

#include <event2/event.h>

#include "../../src/core/tpool.h"

struct tjob {
	int			 started; /* write a byte to it first (-1: no) */
	int			 fd;	/* then read a byte from it (-1: no) */
	int			 worked, done;
	struct event_base	*base;	/* loopbreak when done */
};

static void
work(void *arg)
{
	struct tjob	*j = arg;
	char		 c;

	if (j->started != -1)
		(void)!write(j->started, "s", 1);
	if (j->fd != -1)
		(void)!read(j->fd, &c, 1);
	j->worked = 1;
}

static void
done(void *arg)
{
	struct tjob *j = arg;

	j->done = 1;
	if (j->base != NULL)
		event_base_loopbreak(j->base);
}

static void
test_pools_apart(void **state)
{
	struct event_base	*base = event_base_new();
	struct tjob		 slow = { -1, -1, 0, 0, NULL };
	struct tjob		 quick = { -1, -1, 0, 0, NULL };
	int			 p[2];

	(void)state;
	assert_int_equal(pipe(p), 0);
	slow.fd = p[0];
	quick.base = base;
	assert_false(tpool_running(TPOOL_CONTENT));
	assert_int_equal(tpool_submit_to(TPOOL_CONTENT, work, done, &quick),
	    -1);
	assert_int_equal(errno, ESRCH);
	assert_int_equal(tpool_start(base, 1), 0);
	assert_int_equal(tpool_start_pool(TPOOL_CONTENT, base, 1, 4), 0);
	assert_int_equal(tpool_start_pool(TPOOL_CONTENT, base, 1, 4), -1);
	/* The delivery pool's one thread is held; content still runs. */
	assert_int_equal(tpool_submit(work, done, &slow), 0);
	assert_int_equal(tpool_submit_to(TPOOL_CONTENT, work, done, &quick),
	    0);
	event_base_dispatch(base);
	assert_true(quick.done);
	assert_false(slow.done);
	assert_int_equal(tpool_pending(TPOOL_DELIVERY), 1);
	assert_int_equal(tpool_pending(TPOOL_CONTENT), 0);
	/* Released: its done() runs on the loop. */
	slow.base = base;
	assert_int_equal(write(p[1], "x", 1), 1);
	event_base_dispatch(base);
	assert_true(slow.done);
	tpool_stop();
	assert_false(tpool_running(TPOOL_CONTENT));
	assert_false(tpool_running(TPOOL_DELIVERY));
	close(p[0]);
	close(p[1]);
	event_base_free(base);
}

static void
test_bounded_queue(void **state)
{
	struct event_base	*base = event_base_new();
	struct tjob		 j[4];
	int			 p[2], st[2], i;
	char			 c;

	(void)state;
	assert_int_equal(pipe(p), 0);
	assert_int_equal(pipe(st), 0);
	assert_int_equal(tpool_start_pool(TPOOL_LEARN, base, 1, 2), 0);
	for (i = 0; i < 4; i++) {
		j[i].started = i == 0 ? st[1] : -1;
		j[i].fd = p[0];
		j[i].worked = j[i].done = 0;
		j[i].base = NULL;
	}
	/* Job 0 runs (held on the pipe) once it says it started; two may
	 * wait behind it, the fourth is refused. */
	assert_int_equal(tpool_submit_to(TPOOL_LEARN, work, done, &j[0]), 0);
	assert_int_equal(read(st[0], &c, 1), 1);
	assert_int_equal(tpool_submit_to(TPOOL_LEARN, work, done, &j[1]), 0);
	assert_int_equal(tpool_submit_to(TPOOL_LEARN, work, done, &j[2]), 0);
	assert_int_equal(tpool_submit_to(TPOOL_LEARN, work, done, &j[3]), -1);
	assert_int_equal(errno, EAGAIN);
	assert_int_equal(tpool_pending(TPOOL_LEARN), 3);
	/* tpool_stop() runs what was queued, then the done()s. */
	assert_int_equal(write(p[1], "xxx", 3), 3);
	tpool_stop();
	assert_true(j[0].done && j[1].done && j[2].done);
	assert_false(j[3].worked);
	close(p[0]);
	close(p[1]);
	close(st[0]);
	close(st[1]);
	event_base_free(base);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pools_apart),
		cmocka_unit_test(test_bounded_queue),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
