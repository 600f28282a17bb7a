/*
 * test_filter_tarpit.c: the delay rule (nothing below `after`, then
 * doubling, capped per reply and per session), the hook at RCPT: no
 * delay for a clean session, PENDING with a timer armed for the right
 * time once the session has had errors (refused recipients), relay and
 * authenticated clients never delayed, the per-worker session cap,
 * cancel and teardown leaving no timer behind, bad evidence counted as
 * bad events, and the delay past the Nth recipient of a transaction.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/time.h>
#include <cmocka.h>
#include <event2/event.h>
#include <event2/event_struct.h>

#include "filter_harness.h"
#include "../../src/filters/tarpit.h"

extern const struct filter filter_tarpit;

static void
test_rule(void **st)
{
	struct tarpit_conf c = { 3, 1000, 8000, 20000, 64, 5, 0, 1000 };

	(void)st;
	assert_int_equal(tarpit_delay(&c, 0, 0), 0);
	assert_int_equal(tarpit_delay(&c, 2, 0), 0);
	assert_int_equal(tarpit_delay(&c, 3, 0), 1000);
	assert_int_equal(tarpit_delay(&c, 4, 0), 2000);
	assert_int_equal(tarpit_delay(&c, 5, 0), 4000);
	assert_int_equal(tarpit_delay(&c, 6, 0), 8000);
	assert_int_equal(tarpit_delay(&c, 7, 0), 8000);
	assert_int_equal(tarpit_delay(&c, 4000000000u, 0), 8000);
	/* The session's budget: what is left, then nothing. */
	assert_int_equal(tarpit_delay(&c, 7, 15000), 5000);
	assert_int_equal(tarpit_delay(&c, 7, 20000), 0);
	c.session_max = 0;
	assert_int_equal(tarpit_delay(&c, 7, 0), 0);
}

/* When the last hook call began; the timer's due time is measured from
 * it, so a loaded host (ASan, other builds) that is slow between the
 * call and the check cannot shift what is measured. */
static struct timeval t_call;
static long long late_ms;	/* from t_call to the last armed_ms() */

static enum verdict_code
timed_call(struct harness *h, enum stage st)
{
	gettimeofday(&t_call, NULL);
	return harness_call(h, st);
}

/* The delay the timer was armed with, ms (its due time less the call's
 * start; never less than the delay, more by at most late_ms); -1 when
 * none is armed. */
static long long
armed_ms(struct harness *h)
{
	struct tarpit_data_view { struct event *ev; } *d =
	    filter_data(&h->s, h->f);
	struct timeval tv, now;

	if (d == NULL || d->ev == NULL ||
	    !event_pending(d->ev, EV_TIMEOUT, &tv))
		return -1;
	gettimeofday(&now, NULL);
	late_ms = (now.tv_sec - t_call.tv_sec) * 1000 + (now.tv_usec -
	    t_call.tv_usec) / 1000;
	return (tv.tv_sec - t_call.tv_sec) * 1000 + (tv.tv_usec -
	    t_call.tv_usec) / 1000;
}

/* Armed for want ms (to the ms, whatever the host's load). */
#define assert_armed(ms, want) \
	assert_true((ms) >= (want) - 2 && (ms) <= (want) + late_ms + 2)

static void
call_free(struct harness *h)
{
	void *d = filter_data(&h->s, h->f);

	if (d != NULL)
		h->f->data_free(d);
	free(h->s.pl_data);
	h->s.pl_data = NULL;
	free(h->s.sev);
	h->s.sev = NULL;
}

static void
test_hook(void **st)
{
	struct harness		 h;
	struct filter_call	 c;
	const char *const	 kv[] = { "after", "2", "delay", "400",
	    "max_delay", "1000", NULL };
	long long		 ms;

	(void)st;
	pipeline_active = NULL;
	assert_int_equal(harness_init(&h, &filter_tarpit, "example.test",
	    kv), 0);
	h.pl.timeout = 30;
	h.s.base = event_base_new();
	/* One refused recipient (the core counts it an error): not yet. */
	h.s.errors = 1;
	assert_int_equal(timed_call(&h, STAGE_RCPT), V_CONTINUE);
	assert_int_equal(armed_ms(&h), -1);
	/* Two: the first delay, on a timer. */
	h.s.errors = 2;
	assert_int_equal(timed_call(&h, STAGE_RCPT), V_PENDING);
	ms = armed_ms(&h);
	assert_armed(ms, 400);
	assert_non_null(h.s.sev);
	assert_string_equal(h.s.sev->ev[0].name, "tarpit");
	/* An error more: doubled. Cancel disarms. */
	h.s.errors = 3;
	assert_int_equal(timed_call(&h, STAGE_RCPT), V_PENDING);
	ms = armed_ms(&h);
	assert_armed(ms, 800);
	c = (struct filter_call){ &h.s, h.conf, h.state, &h.pol,
	    session_step(&h.s), false, filter_data(&h.s, h.f) };
	h.f->cancel(&c);
	assert_int_equal(armed_ms(&h), -1);
	/* Capped per reply. */
	h.s.errors = 7;
	assert_int_equal(timed_call(&h, STAGE_RCPT), V_PENDING);
	ms = armed_ms(&h);
	assert_armed(ms, 1000);
	/* Relay and authenticated clients: never. */
	h.s.trusted = true;
	assert_int_equal(timed_call(&h, STAGE_MAIL), V_CONTINUE);
	h.s.trusted = false;
	h.s.authenticated = true;
	assert_int_equal(timed_call(&h, STAGE_RCPT), V_CONTINUE);
	call_free(&h);		/* frees the armed timer too */
	event_base_free(h.s.base);
	harness_free(&h);
}

/* Past max_sessions tarpitted sessions, a new one goes undelayed. */
static void
test_session_cap(void **st)
{
	struct harness		 h[3];
	const char *const	 kv[] = { "after", "1", "max_sessions", "2",
	    NULL };
	struct event_base	*base = event_base_new();
	int			 i;

	(void)st;
	for (i = 0; i < 3; i++) {
		assert_int_equal(harness_init(&h[i], &filter_tarpit,
		    "example.test", kv), 0);
		h[i].pl.timeout = 30;
		h[i].s.base = base;
		h[i].s.errors = 1;
	}
	pipeline_active = &h[0].pl;
	assert_int_equal(timed_call(&h[0], STAGE_RCPT), V_PENDING);
	assert_int_equal(timed_call(&h[1], STAGE_RCPT), V_PENDING);
	assert_int_equal(timed_call(&h[2], STAGE_RCPT), V_CONTINUE);
	/* One ends: a place is free again. */
	call_free(&h[0]);
	assert_int_equal(timed_call(&h[2], STAGE_RCPT), V_PENDING);
	for (i = 0; i < 3; i++) {
		call_free(&h[i]);
		harness_free(&h[i]);
	}
	event_base_free(base);
}

/* Every evidence_step points of positive evidence is a bad event. */
static void
test_bad(void **st)
{
	struct tarpit_conf c = { 3, 1000, 8000, 20000, 64, 5, 0, 1000 };

	(void)st;
	assert_int_equal(tarpit_bad(&c, 1, 0), 1);
	assert_int_equal(tarpit_bad(&c, 1, -20), 1);
	assert_int_equal(tarpit_bad(&c, 1, 4.9), 1);
	assert_int_equal(tarpit_bad(&c, 1, 10), 3);
	assert_int_equal(tarpit_bad(&c, 0, 1e12), 1000);
	c.evidence_step = 0;
	assert_int_equal(tarpit_bad(&c, 2, 100), 2);
}

/* A session with no errors but a DNSBL listing's score is slowed; one
 * past rcpt_after recipients is slowed whatever its record. */
static void
test_evidence_and_rcpts(void **st)
{
	struct harness		 h;
	const char *const	 kv[] = { "after", "2", "delay", "400",
	    "max_delay", "1000", "evidence_step", "3", "rcpt_after", "3",
	    "rcpt_delay", "700", NULL };
	long long		 ms;

	(void)st;
	pipeline_active = NULL;
	assert_int_equal(harness_init(&h, &filter_tarpit, "example.test",
	    kv), 0);
	h.pl.timeout = 30;
	h.s.base = event_base_new();
	h.t.nrcpt = 1;
	assert_int_equal(timed_call(&h, STAGE_RCPT), V_CONTINUE);
	filter_evidence(&h.s, &filter_tarpit, "DNSBL_TEST", 6.5, 0, "x");
	assert_int_equal(timed_call(&h, STAGE_RCPT), V_PENDING);
	ms = armed_ms(&h);
	assert_armed(ms, 400);
	call_free(&h);
	/* Clean record, the 4th recipient: rcpt_delay; not at MAIL. */
	h.t.nrcpt = 4;
	assert_int_equal(timed_call(&h, STAGE_MAIL), V_CONTINUE);
	assert_int_equal(timed_call(&h, STAGE_RCPT), V_PENDING);
	ms = armed_ms(&h);
	assert_armed(ms, 700);
	call_free(&h);
	event_base_free(h.s.base);
	harness_free(&h);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rule),
		cmocka_unit_test(test_hook),
		cmocka_unit_test(test_session_cap),
		cmocka_unit_test(test_bad),
		cmocka_unit_test(test_evidence_and_rcpts),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
