/*
 * test_store_expiry.c: the store's keys with expiry under a test clock,
 * compare-and-set, the bounded incremental sweep, batches run directly
 * and through the writer thread, and the loop stall of a queued write
 * against a direct commit (printed: p50/p99 in microseconds).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <event2/event.h>

#include "../../src/core/tpool.h"
#include "../../src/store/store.h"

static struct store	*st;
static char		 dir[] = "/tmp/moat-store-expiry-XXXXXX";
static time_t		 now_fake = 1000000;

static time_t
fake_clock(void)
{
	return now_fake;
}

static int
setup(void **state)
{
	char err[256];

	(void)state;
	if (mkdtemp(dir) == NULL)
		return -1;
	st = store_open(dir, 64 << 20, err, sizeof(err));
	store_set_clock(fake_clock);
	return st == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
	char cmd[128];

	(void)state;
	store_close(st);
	store_set_clock(NULL);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void
test_expiry_clock(void **state)
{
	struct store_txn	*t = store_begin(st, true);
	char			 v[16];

	(void)state;
	assert_int_equal(store_put(t, "x:a", "1", 1, now_fake + 10), 0);
	assert_int_equal(store_put(t, "x:b", "2", 1, 0), 0);
	assert_int_equal(store_get(t, "x:a", v, sizeof(v)), 1);
	now_fake += 10;		/* expiry == now: gone */
	assert_int_equal(store_get(t, "x:a", v, sizeof(v)), -1);
	assert_int_equal(store_get(t, "x:b", v, sizeof(v)), 1);
	/* An expired counter counts from 0. */
	long long n;
	assert_int_equal(store_incr(t, "x:c", 5, now_fake + 1, &n), 0);
	now_fake += 1;
	assert_int_equal(store_incr(t, "x:c", 1, now_fake + 1, &n), 0);
	assert_int_equal(n, 1);
	store_abort(t);
}

static void
test_cas(void **state)
{
	struct store_txn	*t = store_begin(st, true);
	char			 v[16];

	(void)state;
	assert_int_equal(store_put_new(t, "c:k", "aa", 2, 0), 1);
	assert_int_equal(store_put_new(t, "c:k", "bb", 2, 0), 0);
	assert_int_equal(store_cas(t, "c:k", "xx", 2, "cc", 2, 0), 0);
	assert_int_equal(store_cas(t, "c:k", "a", 1, "cc", 2, 0), 0);
	assert_int_equal(store_cas(t, "c:k", "aa", 2, "cc", 2, 0), 1);
	assert_int_equal(store_get(t, "c:k", v, sizeof(v)), 2);
	assert_memory_equal(v, "cc", 2);
	/* An expired key counts as absent. */
	assert_int_equal(store_put(t, "c:e", "zz", 2, now_fake + 1), 0);
	now_fake += 2;
	assert_int_equal(store_put_new(t, "c:e", "yy", 2, 0), 1);
	store_abort(t);
}

/* 100 keys, every third expired: steps of 10 keys each look at no more
 * than 10, resume where the last stopped, and together remove exactly
 * the expired ones. */
static void
test_sweep_bounded(void **state)
{
	struct store_txn	*t = store_begin(st, true);
	struct store_sweep	 sw;
	char			 key[32], cursor[STORE_KEY_MAX + 1] = "";
	size_t			 removed = 0, counted = 0, steps = 0;
	int			 i;

	(void)state;
	for (i = 0; i < 100; i++) {
		snprintf(key, sizeof(key), "%s:%03d", i % 2 ? "s" : "t", i);
		assert_int_equal(store_put(t, key, "v", 1,
		    i % 3 == 0 ? now_fake + 5 : now_fake + 1000), 0);
	}
	assert_int_equal(store_commit(t), 0);
	now_fake += 6;
	do {
		t = store_begin(st, true);
		assert_int_equal(store_sweep(t, cursor, sizeof(cursor), 10,
		    "t:", &sw), 0);
		assert_int_equal(store_commit(t), 0);
		assert_true(sw.scanned <= 10);
		removed += sw.removed;
		counted += sw.counted;
		steps++;
	} while (!sw.wrapped && steps < 100);
	assert_true(sw.wrapped);
	assert_true(steps >= 10 && steps <= 12);
	assert_int_equal(removed, 34);		/* 0, 3, ..., 99 */
	assert_int_equal(counted, 17);		/* the even ones: t: */
	t = store_begin(st, false);
	assert_int_equal(store_get(t, "t:000", key, sizeof(key)), -1);
	assert_int_equal(store_get(t, "t:002", key, sizeof(key)), 1);
	store_abort(t);
}

static void
test_batch_direct(void **state)
{
	struct store_batch	*b = calloc(1, sizeof(*b));
	struct store_op		*op;

	(void)state;
	op = store_batch_add(b, STORE_PUT, "b:1");
	memcpy(op->val, "hello", 5);
	op->len = 5;
	op = store_batch_add(b, STORE_INCR, "b:n");
	op->num = 3;
	assert_int_equal(store_batch_run(st, b), 0);
	memset(b, 0, sizeof(*b));
	store_batch_add(b, STORE_GET, "b:1");
	store_batch_add(b, STORE_GET, "b:none");
	op = store_batch_add(b, STORE_PUT_NEW, "b:1");
	assert_int_equal(store_batch_run(st, b), 0);
	assert_int_equal(b->op[0].result, 5);
	assert_memory_equal(b->op[0].val, "hello", 5);
	assert_int_equal(b->op[1].result, -1);
	assert_int_equal(b->op[2].result, 0);
	/* A key too long is refused when added. */
	char longkey[STORE_KEY_MAX + 2];
	memset(longkey, 'k', sizeof(longkey) - 1);
	longkey[sizeof(longkey) - 1] = '\0';
	assert_null(store_batch_add(b, STORE_GET, longkey));
	free(b);
}

/* ---- Through the writer thread, with the loop's stall measured ---- */

#define NWRITES 400

static struct event_base	*base;
static int			 ndone, nfail;
static double			 done_us[NWRITES], submit_us[NWRITES];

static double
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static void
async_done(struct store_batch *b)
{
	double t0 = now_us();

	if (b->rc != 0)
		nfail++;
	free(b);
	done_us[ndone % NWRITES] = now_us() - t0;
	if (++ndone == NWRITES)
		event_base_loopbreak(base);
}

static int
cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double
pct(double *v, size_t n, double p)
{
	qsort(v, n, sizeof(*v), cmp_d);
	return v[(size_t)(p * (n - 1))];
}

static struct event	*tick;
static int		 submitted;

/* One write per tick, as a filter would at RCPT. */
static void
on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct store_batch	*b;
	struct store_op		*op;
	char			 key[64];
	double			 t0;

	(void)fd;
	(void)what;
	(void)arg;
	if (submitted == NWRITES)
		return;
	b = calloc(1, sizeof(*b));
	snprintf(key, sizeof(key), "gl:t:ip:10.0.%d.%d|s@x|r@y",
	    submitted / 256, submitted % 256);
	t0 = now_us();
	op = store_batch_add(b, STORE_PUT_NEW, key);
	memcpy(op->val, "0123456789abcdef", 16);
	op->len = 16;
	op->expires = time(NULL) + 3600;
	b->done = async_done;
	assert_int_equal(store_batch_submit(st, base, b), 0);
	submit_us[submitted++] = now_us() - t0;
}

static void
test_async_stall(void **state)
{
	struct timeval		 tv = { 0, 200 };
	double			 direct[NWRITES], t0;
	struct store_txn	*t;
	char			 key[64];
	int			 i;

	(void)state;
	store_set_clock(NULL);
	base = event_base_new();
	tick = event_new(base, -1, EV_PERSIST, on_tick, NULL);
	event_add(tick, &tv);
	event_base_dispatch(base);
	assert_int_equal(ndone, NWRITES);
	assert_int_equal(nfail, 0);
	assert_int_equal(store_batch_pending(), 0);
	/* The same write committed directly, as it would stall a loop. */
	for (i = 0; i < NWRITES; i++) {
		snprintf(key, sizeof(key), "gl:d:%d", i);
		t0 = now_us();
		t = store_begin(st, true);
		store_put(t, key, "0123456789abcdef", 16, 0);
		store_commit(t);
		direct[i] = now_us() - t0;
	}
	printf("store stall us: queued submit p50 %.1f p99 %.1f; "
	    "completion p99 %.1f; direct commit p50 %.1f p99 %.1f\n",
	    pct(submit_us, NWRITES, 0.5), pct(submit_us, NWRITES, 0.99),
	    pct(done_us, NWRITES, 0.99), pct(direct, NWRITES, 0.5),
	    pct(direct, NWRITES, 0.99));
	t = store_begin(st, false);
	assert_int_equal(store_get(t, "gl:t:ip:10.0.1.1|s@x|r@y", key,
	    sizeof(key)), 16);
	store_abort(t);
	event_free(tick);
	tpool_stop();
	event_base_free(base);
	store_set_clock(fake_clock);
}

/* The timer-driven sweep: steps run on the writer thread until the
 * expired keys are gone, each step bounded. */
static struct store_sweep	 sw_total;
static int			 sw_steps;

static void
sweep_notify(const struct store_sweep *s)
{
	assert_true(s->scanned <= 7);
	sw_total.removed += s->removed;
	sw_total.counted += s->counted;
	/* The earlier tests left ~800 keys before w:; steps go on until
	 * the walk is past them all. */
	if (++sw_steps >= 400 || (sw_total.counted == 12 && s->wrapped))
		event_base_loopbreak(base);
}

static void
test_sweep_timer(void **state)
{
	struct store_txn	*t = store_begin(st, true);
	char			 key[32];
	int			 i;

	(void)state;
	for (i = 0; i < 30; i++) {
		snprintf(key, sizeof(key), "w:%02d", i);
		store_put(t, key, "v", 1, now_fake + (i < 12 ? 1 : 100));
	}
	assert_int_equal(store_commit(t), 0);
	now_fake += 2;
	base = event_base_new();
	assert_int_equal(store_sweep_start(st, base, 1, 7, "w:",
	    sweep_notify), 0);
	event_base_dispatch(base);
	store_sweep_stop();
	tpool_stop();
	event_base_free(base);
	assert_int_equal(sw_total.counted, 12);
	t = store_begin(st, false);
	assert_int_equal(store_get(t, "w:00", key, sizeof(key)), -1);
	assert_int_equal(store_get(t, "w:20", key, sizeof(key)), 1);
	store_abort(t);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_expiry_clock),
		cmocka_unit_test(test_cas),
		cmocka_unit_test(test_sweep_bounded),
		cmocka_unit_test(test_batch_direct),
		cmocka_unit_test(test_async_stall),
		cmocka_unit_test(test_sweep_timer),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
