/*
 * test_filter_limited.c: the limited address forms by table (counts,
 * dates in both formats, other separators and keywords, every malformed
 * form that must stay an ordinary address: N = 0, past max, a leading
 * zero, 31-02, 29-02 off leap years, an empty user), the option checks
 * init makes, the end of a date's day in local time, and the filter at
 * RCPT on date addresses (counts need the store's writer: see
 * tests/integration/test_limited.py).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <cmocka.h>

#include "filter_harness.h"
#include "../../src/filters/limited.h"

extern const struct filter filter_limited;

static const struct limited_form dflt = { ".", "count", "date",
    "DD-MM-YYYY", 100 };
static const struct limited_form dash = { "-", "cnt", "until",
    "YYYY-MM-DD", 5 };
static const struct limited_form plus2 = { "+-", "count", "date",
    "DD.MM.YYYY", 1000 };

static void
test_parse_table(void **st)
{
	const struct {
		const struct limited_form	*f;
		const char			*local;
		enum limited_kind		 kind;
		const char			*user;
		long long			 n;
		int				 y, m, d;
	} t[] = {
		{ &dflt, "alice.2.count", LIMITED_COUNT, "alice", 2, 0, 0, 0 },
		{ &dflt, "john.doe.3.count", LIMITED_COUNT, "john.doe", 3,
		    0, 0, 0 },
		{ &dflt, "Alice.100.COUNT", LIMITED_COUNT, "Alice", 100,
		    0, 0, 0 },
		{ &dflt, "a.1.count", LIMITED_COUNT, "a", 1, 0, 0, 0 },
		{ &dflt, "alice.date.31-12-2099", LIMITED_DATE, "alice", 0,
		    2099, 12, 31 },
		{ &dflt, "al.ice.DATE.29-02-2028", LIMITED_DATE, "al.ice", 0,
		    2028, 2, 29 },
		{ &dflt, "x.date.29-02-2000", LIMITED_DATE, "x", 0, 2000, 2,
		    29 },
		{ &dash, "bob-5-cnt", LIMITED_COUNT, "bob", 5, 0, 0, 0 },
		{ &dash, "b.o.b-until-2030-01-31", LIMITED_DATE, "b.o.b", 0,
		    2030, 1, 31 },
		{ &plus2, "c+-999+-count", LIMITED_COUNT, "c", 999, 0, 0, 0 },
		{ &plus2, "c+-date+-01.02.2031", LIMITED_DATE, "c", 0, 2031,
		    2, 1 },
		/* Malformed: not limited addresses. */
		{ &dflt, "alice", LIMITED_NONE, NULL, 0, 0, 0, 0 },
		{ &dflt, "alice.0.count", LIMITED_NONE, NULL, 0, 0, 0, 0 },
		{ &dflt, "alice.02.count", LIMITED_NONE, NULL, 0, 0, 0, 0 },
		{ &dflt, "alice.101.count", LIMITED_NONE, NULL, 0, 0, 0, 0 },
		{ &dflt, "alice.9999999999999999999.count", LIMITED_NONE,
		    NULL, 0, 0, 0, 0 },
		{ &dflt, ".2.count", LIMITED_NONE, NULL, 0, 0, 0, 0 },
		{ &dflt, "2.count", LIMITED_NONE, NULL, 0, 0, 0, 0 },
		{ &dflt, "alice..count", LIMITED_NONE, NULL, 0, 0, 0, 0 },
		{ &dflt, "alice.2x.count", LIMITED_NONE, NULL, 0, 0, 0, 0 },
		{ &dflt, "alice-2.count", LIMITED_NONE, NULL, 0, 0, 0, 0 },
		{ &dflt, "alice.2.counts", LIMITED_NONE, NULL, 0, 0, 0, 0 },
		{ &dflt, "alice.2.cnt", LIMITED_NONE, NULL, 0, 0, 0, 0 },
		{ &dflt, "alice.date.31-02-2026", LIMITED_NONE, NULL, 0, 0,
		    0, 0 },
		{ &dflt, "alice.date.29-02-2027", LIMITED_NONE, NULL, 0, 0,
		    0, 0 },
		{ &dflt, "alice.date.29-02-1900", LIMITED_NONE, NULL, 0, 0,
		    0, 0 },
		{ &dflt, "alice.date.00-01-2030", LIMITED_NONE, NULL, 0, 0,
		    0, 0 },
		{ &dflt, "alice.date.01-13-2030", LIMITED_NONE, NULL, 0, 0,
		    0, 0 },
		{ &dflt, "alice.date.1-1-2030", LIMITED_NONE, NULL, 0, 0, 0,
		    0 },
		{ &dflt, "alice.date.2030-01-01", LIMITED_NONE, NULL, 0, 0,
		    0, 0 },
		{ &dflt, "alice.date.01/01/2030", LIMITED_NONE, NULL, 0, 0,
		    0, 0 },
		{ &dflt, ".date.01-01-2030", LIMITED_NONE, NULL, 0, 0, 0, 0 },
		{ &dflt, "date.01-01-2030", LIMITED_NONE, NULL, 0, 0, 0, 0 },
		{ &dflt, "alice.dat.01-01-2030", LIMITED_NONE, NULL, 0, 0, 0,
		    0 },
		{ &dash, "bob.5.cnt", LIMITED_NONE, NULL, 0, 0, 0, 0 },
		{ &dash, "bob-6-cnt", LIMITED_NONE, NULL, 0, 0, 0, 0 },
		{ &dash, "bob-until-31-12-2099", LIMITED_NONE, NULL, 0, 0, 0,
		    0 },
		{ &plus2, "c+999+-count", LIMITED_NONE, NULL, 0, 0, 0, 0 },
		{ &dflt, "", LIMITED_NONE, NULL, 0, 0, 0, 0 },
	};
	struct limited_addr	a;
	size_t			i;

	(void)st;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		enum limited_kind k = limited_parse(t[i].f, t[i].local,
		    strlen(t[i].local), &a);

		if (k != t[i].kind)
			fail_msg("%s: kind %d, want %d", t[i].local, k,
			    t[i].kind);
		if (k == LIMITED_NONE)
			continue;
		assert_int_equal(a.user_len, strlen(t[i].user));
		assert_memory_equal(t[i].local, t[i].user, a.user_len);
		assert_int_equal(a.n, t[i].n);
		assert_int_equal(a.y, t[i].y);
		assert_int_equal(a.m, t[i].m);
		assert_int_equal(a.d, t[i].d);
	}
	/* Only the bytes given are read. */
	assert_int_equal(limited_parse(&dflt, "alice.2.countXYZ", 13, &a),
	    LIMITED_COUNT);
	assert_int_equal(limited_parse(&dflt, "alice.2.count", 12, &a),
	    LIMITED_NONE);
}

static void
test_checks(void **st)
{
	char err[128];

	(void)st;
	assert_int_equal(limited_format_check("DD-MM-YYYY", err,
	    sizeof(err)), 0);
	assert_int_equal(limited_format_check("YYYY-MM-DD", err,
	    sizeof(err)), 0);
	assert_int_equal(limited_format_check("YYYYMMDD", err,
	    sizeof(err)), 0);
	assert_int_equal(limited_format_check("DD-MM-YY", err,
	    sizeof(err)), -1);
	assert_int_equal(limited_format_check("DD-MM-YYYY-DD", err,
	    sizeof(err)), -1);
	assert_int_equal(limited_format_check("D-MM-YYYY", err,
	    sizeof(err)), -1);
	assert_int_equal(limited_format_check("DD@MM-YYYY", err,
	    sizeof(err)), -1);
	assert_int_equal(limited_format_check("", err, sizeof(err)), -1);
	assert_int_equal(limited_sep_check("."), 0);
	assert_int_equal(limited_sep_check("+-"), 0);
	assert_int_equal(limited_sep_check(""), -1);
	assert_int_equal(limited_sep_check("x"), -1);
	assert_int_equal(limited_sep_check("@"), -1);
	assert_int_equal(limited_sep_check("........."), -1);
	assert_int_equal(limited_keyword_check("count"), 0);
	assert_int_equal(limited_keyword_check("valid_until-2"), 0);
	assert_int_equal(limited_keyword_check(""), -1);
	assert_int_equal(limited_keyword_check("co.unt"), -1);
}

/* A date address is good through the end of its day, local time. */
static void
test_date_over(void **st)
{
	struct limited_addr	a = { LIMITED_DATE, 1, 0, 2026, 3, 15 };
	struct tm		tm = { 0 };
	time_t			t;

	(void)st;
	setenv("TZ", "CET-1CEST,M3.5.0,M10.5.0/3", 1);
	tzset();
	tm.tm_year = 2026 - 1900;
	tm.tm_mon = 2;
	tm.tm_mday = 15;
	tm.tm_hour = 23;
	tm.tm_min = 59;
	tm.tm_sec = 59;
	tm.tm_isdst = -1;
	t = mktime(&tm);
	assert_false(limited_date_over(&a, t));
	assert_true(limited_date_over(&a, t + 1));
	assert_false(limited_date_over(&a, t - 86400 * 40));
	unsetenv("TZ");
	tzset();
}

static enum verdict_code
rcpt(struct harness *h, const char *to)
{
	harness_rcpt(h, to);
	return harness_call(h, STAGE_RCPT);
}

static void
test_filter_dates(void **st)
{
	struct harness	h;
	void		*d;

	(void)st;
	assert_int_equal(harness_init(&h, &filter_limited, "example.test",
	    NULL), 0);
	assert_int_equal(rcpt(&h, "<alice.date.31-12-2099@example.test>"),
	    V_CONTINUE);
	assert_string_equal(h.r.addr, "alice@example.test");
	assert_string_equal(h.r.path.local, "alice");
	assert_int_equal(rcpt(&h, "<alice.date.01-01-2000@example.test>"),
	    V_DENY);
	assert_string_equal(h.r.addr, "alice.date.01-01-2000@example.test");
	/* Malformed, not ours, or quoted: left alone. */
	assert_int_equal(rcpt(&h, "<alice.date.31-02-2099@example.test>"),
	    V_CONTINUE);
	assert_string_equal(h.r.addr, "alice.date.31-02-2099@example.test");
	assert_int_equal(rcpt(&h, "<alice.date.01-01-2000@example.org>"),
	    V_CONTINUE);
	assert_int_equal(rcpt(&h, "<\"alice.date.01-01-2000\"@example.test>"),
	    V_CONTINUE);
	if ((d = filter_data(&h.s, &filter_limited)) != NULL)
		filter_limited.data_free(d);
	free(h.s.pl_data);
	free(h.s.sev);
	harness_free(&h);
	/* Off for the domain: nothing is recognised. */
	assert_int_equal(harness_init(&h, &filter_limited, "example.test",
	    (const char *[]){ "enabled", "no", NULL }), 0);
	assert_int_equal(rcpt(&h, "<alice.date.01-01-2000@example.test>"),
	    V_CONTINUE);
	harness_free(&h);
	/* Another separator and format. */
	assert_int_equal(harness_init(&h, &filter_limited, "example.test",
	    (const char *[]){ "separator", "+", "date_format", "YYYY-MM-DD",
	    "date_keyword", "until", NULL }), 0);
	assert_int_equal(rcpt(&h, "<bob+until+2099-12-31@example.test>"),
	    V_CONTINUE);
	assert_string_equal(h.r.addr, "bob@example.test");
	free(h.s.sev);
	harness_free(&h);
}

static void
test_init_errors(void **st)
{
	struct harness	h;
	size_t		i;
	const char	*bad[][3] = {
		{ "separator", "x", NULL },
		{ "separator", "@", NULL },
		{ "count_keyword", "a.b", NULL },
		{ "date_keyword", "count", NULL },
		{ "date_format", "DD-MM-YY", NULL },
		{ "date_format", "MM-DD", NULL },
	};

	(void)st;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (harness_init(&h, &filter_limited, "example.test",
		    bad[i]) != -1)
			fail_msg("%s = %s accepted", bad[i][0], bad[i][1]);
		harness_free(&h);
	}
	/* max_count and ttl are bounded by the option table. */
	assert_int_equal(harness_init(&h, &filter_limited, "example.test",
	    (const char *[]){ "max_count", "0", NULL }), -1);
	harness_free(&h);
	assert_int_equal(harness_init(&h, &filter_limited, "example.test",
	    (const char *[]){ "ttl", "5000", NULL }), -1);
	harness_free(&h);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_table),
		cmocka_unit_test(test_checks),
		cmocka_unit_test(test_date_over),
		cmocka_unit_test(test_filter_dates),
		cmocka_unit_test(test_init_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
