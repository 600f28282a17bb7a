/*
 * test_quarantine.c: the quarantine's index, retention and caps on a real
 * LMDB store with a test clock: IDs sort by age, records round-trip
 * (recipients, hostile values), totals follow adds and deletes, trim
 * drops the expired, then the oldest over the message cap and the size
 * cap (exactly at the cap nothing goes), and never drops a release under
 * way for a cap.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "../../src/deliver/quarantine.h"
#include "../../src/store/store.h"

static char		 dir[64];
static struct store	*st;

static int
setup(void **state)
{
	char err[256];

	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/test_quarantine.XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	st = store_open(dir, 64 << 20, err, sizeof(err));
	return st == NULL ? -1 : 0;
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

/* A record kept at t (seconds) for days, of size bytes. */
static void
rec_make(struct quarantine_rec *r, time_t t, long long days, long long size)
{
	memset(r, 0, sizeof(*r));
	quarantine_id_make((long long)t * 1000000, r->id);
	r->time = t;
	r->expires = t + (time_t)days * 86400;
	r->size = size;
	snprintf(r->reason, sizeof(r->reason), "spam");
	snprintf(r->from, sizeof(r->from), "a@example.org");
	assert_int_equal(quarantine_rec_rcpt(r, "b@example.test"), 0);
}

static void
add(struct quarantine_rec *r)
{
	struct store_txn *t = store_begin(st, true);

	assert_non_null(t);
	assert_int_equal(quarantine_index_add(t, r), 0);
	assert_int_equal(store_commit(t), 0);
}

static void
clear_all(void)
{
	struct store_txn	*t = store_begin(st, true);
	struct quarantine_conf	 c = { NULL, 1, 1, 1, false, false };

	/* Everything is expired far in the future. */
	assert_true(quarantine_trim(t, &c, (time_t)1 << 40, NULL, NULL) >= 0);
	assert_int_equal(store_commit(t), 0);
}

struct seen {
	char			id[8][QUARANTINE_ID_LEN + 1];
	enum quarantine_drop	why[8];
	size_t			n;
};

static void
note(void *arg, const struct quarantine_rec *r, enum quarantine_drop why)
{
	struct seen *s = arg;

	if (s->n < 8) {
		snprintf(s->id[s->n], sizeof(s->id[0]), "%s", r->id);
		s->why[s->n++] = why;
	}
}

static long
trim(const struct quarantine_conf *c, time_t now, struct seen *s)
{
	struct store_txn	*t = store_begin(st, true);
	long			 n;

	memset(s, 0, sizeof(*s));
	n = quarantine_trim(t, c, now, note, s);
	assert_int_equal(store_commit(t), 0);
	return n;
}

static void
totals(long long *bytes, long long *count)
{
	struct store_txn *t = store_begin(st, false);

	quarantine_totals(t, bytes, count);
	store_abort(t);
}

static void
test_ids(void **state)
{
	char	a[QUARANTINE_ID_LEN + 1], b[QUARANTINE_ID_LEN + 1], p[64];

	(void)state;
	quarantine_id_make(1700000000000000LL, a);
	quarantine_id_make(1700000000000001LL, b);
	assert_int_equal(strlen(a), QUARANTINE_ID_LEN);
	assert_true(quarantine_id_ok(a));
	assert_true(strcmp(a, b) < 0);		/* age order, by the µs */
	assert_false(quarantine_id_ok(""));
	assert_false(quarantine_id_ok("../../etc/passwd"));
	assert_false(quarantine_id_ok("0123456789ABCDEF01"));	/* upper */
	assert_false(quarantine_id_ok("0123456789abcdef0"));	/* N-1 */
	assert_false(quarantine_id_ok("0123456789abcdef012"));	/* N+1 */
	assert_true(quarantine_id_ok("0123456789abcdef01"));
	assert_int_equal(quarantine_path("/q", "new", a, p, sizeof(p)), 0);
	assert_int_equal(strncmp(p, "/q/new/", 7), 0);
	assert_int_equal(quarantine_path("/q", "new", a, p, 20), -1);
}

static void
test_record_round_trip(void **state)
{
	struct quarantine_rec	r, back;
	struct buf		b;
	size_t			i;

	(void)state;
	rec_make(&r, 1000, 30, 1234);
	snprintf(r.helo, sizeof(r.helo), "evil\r\nstate=2");
	snprintf(r.symbols, sizeof(r.symbols), "BAYES_99=3.50 X=-1.00");
	snprintf(r.session, sizeof(r.session), "0123456789abcdef");
	r.score = 2.5;
	r.state = QS_RELEASING;
	assert_int_equal(quarantine_rec_rcpt(&r, "c@example.test"), 0);
	buf_init(&b, QUARANTINE_RECORD_MAX);
	assert_int_equal(quarantine_rec_encode(&r, &b), 0);
	assert_int_equal(quarantine_rec_decode(b.data, b.len, &back), 0);
	assert_string_equal(back.id, r.id);
	assert_int_equal(back.expires, r.expires);
	assert_int_equal(back.size, 1234);
	assert_int_equal(back.state, QS_RELEASING);
	/* A line break in a value cannot forge a field. */
	assert_string_equal(back.helo, "evil??state=2");
	assert_string_equal(back.symbols, r.symbols);
	assert_int_equal(back.nrcpt, 2);
	assert_string_equal(quarantine_rec_rcpt_at(&back, 1), "c@example.test");
	assert_string_equal(quarantine_rec_rcpt_at(&back, 2), "");
	quarantine_rec_free(&back);
	/* Malformed: no version, a bad number, a bad state, no ID. */
	assert_int_equal(quarantine_rec_decode("id=x\n", 5, &back), -1);
	assert_int_equal(quarantine_rec_decode("v=1\ntime=1x\n", 12, &back),
	    -1);
	assert_int_equal(quarantine_rec_decode("v=1\nstate=7\n", 12, &back),
	    -1);
	assert_int_equal(quarantine_rec_decode("v=1\n", 4, &back), -1);
	assert_int_equal(quarantine_rec_decode("v=1\nno line end", 15,
	    &back), -1);
	/* The recipient cap: N kept, N+1 refused. */
	for (i = r.nrcpt; i < QUARANTINE_RCPTS_MAX; i++)
		assert_int_equal(quarantine_rec_rcpt(&r, "x@example.test"), 0);
	assert_int_equal(quarantine_rec_rcpt(&r, "x@example.test"), -1);
	buf_reset(&b);
	assert_int_equal(quarantine_rec_encode(&r, &b), 0);
	buf_free(&b);
	quarantine_rec_free(&r);
}

static void
test_index_totals(void **state)
{
	struct quarantine_rec	 r, got;
	struct store_txn	*t;
	long long		 bytes, count;

	(void)state;
	clear_all();
	rec_make(&r, 2000, 30, 500);
	add(&r);
	totals(&bytes, &count);
	assert_int_equal(bytes, 500);
	assert_int_equal(count, 1);
	t = store_begin(st, true);
	assert_int_equal(quarantine_index_get(t, r.id, &got), 0);
	assert_string_equal(got.from, "a@example.org");
	got.state = QS_RELEASED;
	assert_int_equal(quarantine_index_put(t, &got), 0);
	quarantine_rec_free(&got);
	assert_int_equal(quarantine_index_get(t, "0000000000000000ff", &got),
	    1);
	assert_int_equal(quarantine_index_get(t, "../x", &got), 1);
	assert_int_equal(quarantine_index_get(t, r.id, &got), 0);
	assert_int_equal(got.state, QS_RELEASED);
	assert_int_equal(quarantine_index_del(t, &got), 0);
	quarantine_rec_free(&got);
	assert_int_equal(store_commit(t), 0);
	totals(&bytes, &count);
	assert_int_equal(bytes, 0);
	assert_int_equal(count, 0);
	quarantine_rec_free(&r);
}

static void
test_trim_age(void **state)
{
	struct quarantine_conf	c = { NULL, 30, 1LL << 30, 1000, false, true };
	struct quarantine_rec	a, b;
	struct seen		s;

	(void)state;
	clear_all();
	rec_make(&a, 10000, 1, 100);
	rec_make(&b, 10000 + 3600, 1, 100);
	add(&a);
	add(&b);
	/* One second before a's expiry: nothing; at it: a only. */
	assert_int_equal(trim(&c, 10000 + 86400 - 1, &s), 0);
	assert_int_equal(trim(&c, 10000 + 86400, &s), 1);
	assert_string_equal(s.id[0], a.id);
	assert_int_equal(s.why[0], QD_AGE);
	assert_int_equal(trim(&c, 10000 + 86400 + 3600, &s), 1);
	assert_string_equal(s.id[0], b.id);
	quarantine_rec_free(&a);
	quarantine_rec_free(&b);
}

static void
test_trim_caps(void **state)
{
	struct quarantine_conf	c = { NULL, 30, 1LL << 30, 2, false, true };
	struct quarantine_rec	r[4];
	struct seen		s;
	long long		bytes, count;
	int			i;

	(void)state;
	clear_all();
	for (i = 0; i < 4; i++) {
		rec_make(&r[i], 50000 + i, 30, 100);
		add(&r[i]);
	}
	/* Messages: 4 over a cap of 2: the two oldest go. */
	assert_int_equal(trim(&c, 50010, &s), 2);
	assert_string_equal(s.id[0], r[0].id);
	assert_string_equal(s.id[1], r[1].id);
	assert_int_equal(s.why[0], QD_COUNT);
	/* Exactly at the cap: nothing. */
	assert_int_equal(trim(&c, 50010, &s), 0);
	/* Size: 200 bytes kept; a cap of 200 keeps both, 199 drops one. */
	c.max_messages = 1000;
	c.max_size = 200;
	assert_int_equal(trim(&c, 50010, &s), 0);
	c.max_size = 199;
	assert_int_equal(trim(&c, 50010, &s), 1);
	assert_string_equal(s.id[0], r[2].id);
	assert_int_equal(s.why[0], QD_SIZE);
	totals(&bytes, &count);
	assert_int_equal(bytes, 100);
	assert_int_equal(count, 1);
	for (i = 0; i < 4; i++)
		quarantine_rec_free(&r[i]);
}

static void
test_trim_spares_release_under_way(void **state)
{
	struct quarantine_conf	c = { NULL, 30, 1LL << 30, 1, false, true };
	struct quarantine_rec	a, b;
	struct seen		s;

	(void)state;
	clear_all();
	rec_make(&a, 70000, 1, 100);
	a.state = QS_RELEASING;
	rec_make(&b, 70001, 1, 100);
	add(&a);
	add(&b);
	/* Over the cap of 1, but the oldest is being released: the next
	 * one goes. */
	assert_int_equal(trim(&c, 70002, &s), 1);
	assert_string_equal(s.id[0], b.id);
	/* Expired, it goes all the same. */
	assert_int_equal(trim(&c, 70000 + 86400, &s), 1);
	assert_string_equal(s.id[0], a.id);
	assert_int_equal(s.why[0], QD_AGE);
	quarantine_rec_free(&a);
	quarantine_rec_free(&b);
}

static void
test_release_rules(void **state)
{
	struct quarantine_rec r;

	(void)state;
	rec_make(&r, 1000, 30, 10);
	assert_null(quarantine_release_refused(&r, false));
	r.state = QS_RELEASING;
	assert_non_null(quarantine_release_refused(&r, false));
	assert_null(quarantine_release_refused(&r, true));
	r.state = QS_RELEASED;
	assert_non_null(quarantine_release_refused(&r, false));
	assert_non_null(quarantine_release_refused(&r, true));
	r.state = QS_HELD;
	snprintf(r.reason, sizeof(r.reason), "virus:Eicar-Test-Signature");
	assert_non_null(quarantine_release_refused(&r, false));
	assert_null(quarantine_release_refused(&r, true));
	snprintf(r.reason, sizeof(r.reason), "spam virus");
	assert_null(quarantine_release_refused(&r, false));
	quarantine_rec_free(&r);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ids),
		cmocka_unit_test(test_record_round_trip),
		cmocka_unit_test(test_index_totals),
		cmocka_unit_test(test_trim_age),
		cmocka_unit_test(test_trim_caps),
		cmocka_unit_test(test_trim_spares_release_under_way),
		cmocka_unit_test(test_release_rules),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
