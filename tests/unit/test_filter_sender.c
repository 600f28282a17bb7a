/*
 * test_filter_sender.c: the sender-domain filter's pure parts: the MX
 * answer's meaning (null MX per RFC 7505, NXDOMAIN, NODATA, a failure),
 * the A/AAAA fallback, which domains are asked (literals, non-ASCII,
 * names DNS cannot hold at their limits), the action settings (a DNS
 * failure never rejects) and the null sender skipped. Lookups and
 * decisions run against a real unbound in
 * tests/integration/test_dnschecks2.py.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <cmocka.h>

#include "../../src/filters/sender.h"
#include "filter_harness.h"

extern const struct filter filter_sender;

/* An MX answer of n records "pref exchange". */
static enum sender_result
mx(enum dns_status st, const char *const *exch, size_t n)
{
	struct dns_rr		rr[4];
	struct dns_answer	a = { .status = st, .type = DNS_MX, .n = n,
				    .rr = rr };
	size_t			i;

	memset(rr, 0, sizeof(rr));
	for (i = 0; i < n; i++) {
		rr[i].pref = exch[i][0] == '\0' ? 0 : 10;
		rr[i].str = (char *)exch[i];
	}
	return sender_from_mx(&a);
}

static void
test_mx(void **state)
{
	static const char *const real[] = { "mx.example.org" };
	static const char *const null[] = { "" };
	static const char *const nulls[] = { "", "" };
	static const char *const mixed[] = { "", "mx.example.org" };

	(void)state;
	assert_int_equal(mx(DNS_OK, real, 1), SENDER_OK);
	assert_int_equal(mx(DNS_OK, null, 1), SENDER_NULLMX);
	assert_int_equal(mx(DNS_OK, nulls, 2), SENDER_NULLMX);
	/* A null MX beside a real exchange (RFC 7505 §3 forbids it) does
	 * not stop mail to the real one. */
	assert_int_equal(mx(DNS_OK, mixed, 2), SENDER_OK);
	assert_int_equal(mx(DNS_NXDOMAIN, NULL, 0), SENDER_UNKNOWN);
	assert_int_equal(mx(DNS_NODATA, NULL, 0), SENDER_PENDING);
	assert_int_equal(mx(DNS_TEMPFAIL, NULL, 0), SENDER_TEMPFAIL);
}

static void
test_addr(void **state)
{
	(void)state;
	assert_int_equal(sender_from_addr(DNS_OK, DNS_NODATA), SENDER_OK);
	assert_int_equal(sender_from_addr(DNS_NODATA, DNS_OK), SENDER_OK);
	assert_int_equal(sender_from_addr(DNS_OK, DNS_TEMPFAIL), SENDER_OK);
	assert_int_equal(sender_from_addr(DNS_TEMPFAIL, DNS_NODATA),
	    SENDER_TEMPFAIL);
	assert_int_equal(sender_from_addr(DNS_NXDOMAIN, DNS_TEMPFAIL),
	    SENDER_TEMPFAIL);
	assert_int_equal(sender_from_addr(DNS_NODATA, DNS_NODATA),
	    SENDER_UNKNOWN);
	assert_int_equal(sender_from_addr(DNS_NXDOMAIN, DNS_NXDOMAIN),
	    SENDER_UNKNOWN);
}

static void
test_domain(void **state)
{
	char	out[LIMIT_DOMAIN + 1], big[300], lab[80];

	(void)state;
	assert_int_equal(sender_domain("Example.ORG.", out, sizeof(out)), 0);
	assert_string_equal(out, "example.org");
	assert_int_equal(sender_domain("[192.0.2.1]", out, sizeof(out)), -1);
	assert_int_equal(sender_domain("[IPv6:2001:db8::1]", out,
	    sizeof(out)), -1);
	assert_int_equal(sender_domain("b\xc3\xbc" "cher.example", out,
	    sizeof(out)), -1);
	assert_int_equal(sender_domain("", out, sizeof(out)), -1);
	assert_int_equal(sender_domain("abc.example", out, 11), -1);
	assert_int_equal(sender_domain("abc.example", out, 12), 0);
	/* What DNS can hold (RFC 1035 §2.3.4): labels of 63, names of
	 * 253, at N and N+1. */
	memset(lab, 'a', 63);
	snprintf(lab + 63, sizeof(lab) - 63, ".example");
	assert_true(sender_askable(lab));
	memset(lab, 'a', 64);
	snprintf(lab + 64, sizeof(lab) - 64, ".example");
	assert_false(sender_askable(lab));
	memset(big, 'a', sizeof(big));
	for (size_t i = 50; i < 253; i += 51)
		big[i] = '.';
	big[253] = '\0';
	assert_true(sender_askable(big));
	big[253] = 'a';
	big[254] = '\0';
	assert_false(sender_askable(big));
	assert_false(sender_askable("a..example"));
	assert_false(sender_askable(""));
}

static void
test_init(void **state)
{
	static const char *const score[] = { "nullmx_action", "score",
	    "unknown_action", "defer", "tempfail_action", "score", NULL };
	static const char *const bad[] = { "unknown_action", "bounce", NULL };
	static const char *const never[] = { "tempfail_action", "reject",
	    NULL };
	struct harness h;

	(void)state;
	assert_int_equal(harness_init(&h, &filter_sender, "example.test",
	    NULL), 0);
	harness_free(&h);
	assert_int_equal(harness_init(&h, &filter_sender, "example.test",
	    score), 0);
	harness_free(&h);
	assert_int_equal(harness_init(&h, &filter_sender, "example.test",
	    bad), -1);
	harness_free(&h);
	/* A DNS failure is never a 5xx. */
	assert_int_equal(harness_init(&h, &filter_sender, "example.test",
	    never), -1);
	harness_free(&h);
}

static void
test_null_sender_skipped(void **state)
{
	struct harness h;

	(void)state;
	assert_int_equal(harness_init(&h, &filter_sender, "example.test",
	    NULL), 0);
	h.t.from.null = true;
	assert_int_equal(harness_call(&h, STAGE_MAIL), V_CONTINUE);
	h.t.from.null = false;
	snprintf(h.t.from.domain, sizeof(h.t.from.domain), "[192.0.2.1]");
	h.t.from.literal = true;
	assert_int_equal(harness_call(&h, STAGE_MAIL), V_CONTINUE);
	/* Nothing was started for either. */
	assert_null(filter_data(&h.s, &filter_sender));
	harness_free(&h);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mx),
		cmocka_unit_test(test_addr),
		cmocka_unit_test(test_domain),
		cmocka_unit_test(test_init),
		cmocka_unit_test(test_null_sender_skipped),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
