/*
 * test_filter_greylist.c: sender normalisation and org-domain tables,
 * pool keys from the session's evidence, selective-mode decisions, and
 * the hook against a real store under a test clock: first attempt
 * written under every pool key, an early retry counted, a late retry
 * from another address of the /24 passing, the pass then known.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <event2/event.h>

#include "filter_harness.h"
#include "../../src/core/tpool.h"
#include "../../src/filters/greylist.h"
#include "../../src/store/store.h"

extern const struct filter filter_greylist;

static const struct {
	const char	*local, *domain, *want;
} norm[] = {
	{ "Alice", "Example.COM", "alice@example.com" },
	{ "alice+news", "example.com", "alice@example.com" },
	{ "prvs=1234abcdef=alice", "example.com", "alice@example.com" },
	{ "prvs=alice=1234abcdef", "example.com", "alice@example.com" },
	{ "btv1==0123abc4567==bob", "example.org", "bob@example.org" },
	{ "SRS0=HHH=TT=orig.example=user", "fwd.example", "srs@fwd.example" },
	{ "SRS1=x=fwd2.example==HHH=TT=o=u", "fwd.example",
	    "srs@fwd.example" },
	{ "bounce-123456", "lists.example", "bounce-#@lists.example" },
	{ "bounce-md_30850198.5c9f2a45.v1-a9e5d1c2", "mandrill.example",
	    "bounce-md_#.#.v#-#@mandrill.example" },
	{ "msprvs1=17abcdefgh=bounces", "mail.example",
	    "bounces@mail.example" },
	{ "cafe", "example.com", "cafe@example.com" },	/* short hex: kept */
};

static void
test_norm(void **state)
{
	char	out[GREYLIST_ADDR_MAX];
	size_t	i;

	(void)state;
	for (i = 0; i < sizeof(norm) / sizeof(norm[0]); i++) {
		greylist_norm_sender(norm[i].local, norm[i].domain, false, out,
		    sizeof(out));
		if (strcmp(out, norm[i].want) != 0)
			fail_msg("%s@%s: %s, want %s", norm[i].local,
			    norm[i].domain, out, norm[i].want);
	}
	greylist_norm_sender("", "", true, out, sizeof(out));
	assert_string_equal(out, "<>");
	greylist_norm_sender("a", "b.example", false, out, 4);
	assert_string_equal(out, "a@b");
}

static struct harness h;
static char dir[] = "/tmp/moat-greylist-XXXXXX";
static time_t now_fake = 2000000;

static time_t
fake_clock(void)
{
	return now_fake;
}

static int
setup(void **state)
{
	static const char *const kv[] = { "delay", "300", "psl_file",
	    "tests/unit/data/psl_test.dat", NULL };
	FILE *f;

	(void)state;
	/* A small public suffix list: the rules the tests need. */
	(void)!system("mkdir -p tests/unit/data");
	if ((f = fopen("tests/unit/data/psl_test.dat", "w")) == NULL)
		return -1;
	fputs("// test list\ncom\nuk\nco.uk\n*.ck\n!www.ck\n"
	    "outlook.com\n", f);
	fclose(f);
	if (mkdtemp(dir) == NULL)
		return -1;
	store_configure(dir, 32 << 20);
	store_set_clock(fake_clock);
	return harness_init(&h, &filter_greylist, "example.test", kv);
}

static int
teardown(void **state)
{
	char cmd[128];

	(void)state;
	harness_free(&h);
	store_set_clock(NULL);
	snprintf(cmd, sizeof(cmd), "rm -rf %s tests/unit/data/psl_test.dat",
	    dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void
test_org_domain(void **state)
{
	static const struct {
		const char *name, *want;
	} t[] = {
		{ "mail.example.com", "example.com" },
		{ "a.b.example.co.uk", "example.co.uk" },
		{ "x.y.foo.ck", "y.foo.ck" },		/* *.ck */
		{ "a.www.ck", "www.ck" },		/* !www.ck */
		{ "Host.Example.COM.", "example.com" },
		{ "x.outlook.com", "x.outlook.com" },	/* a private rule */
		{ "mail.example.zz", "example.zz" },	/* default rule */
		{ "co.uk", NULL },
		{ "a..com", NULL },
	};
	char	out[256];
	size_t	i;
	int	rc;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		rc = greylist_org_domain(h.state, t[i].name, out, sizeof(out));
		if (t[i].want == NULL)
			assert_int_equal(rc, -1);
		else {
			assert_int_equal(rc, 0);
			assert_string_equal(out, t[i].want);
		}
	}
	/* Without a list: the last two labels. */
	assert_int_equal(greylist_org_domain(NULL, "a.b.example.co.uk", out,
	    sizeof(out)), 0);
	assert_string_equal(out, "co.uk");
}

static void
test_pool_keys(void **state)
{
	char	keys[GREYLIST_POOLS][GREYLIST_POOL_MAX];
	size_t	n;

	(void)state;
	harness_client(&h, "192.0.2.77");
	h.s.rdns_verified = false;
	n = greylist_pool_keys(h.state, &h.s, keys, GREYLIST_POOLS);
	assert_int_equal(n, 2);
	assert_string_equal(keys[0], "net:192.0.2.0/24");
	assert_string_equal(keys[1], "ip:192.0.2.77");
	snprintf(h.s.rdns, sizeof(h.s.rdns),
	    "mail-db5eur01on2040.outbound.protection.outlook.com");
	h.s.rdns_verified = true;
	n = greylist_pool_keys(h.state, &h.s, keys, GREYLIST_POOLS);
	assert_int_equal(n, 3);
	assert_string_equal(keys[0], "rdns:outbound.protection.outlook.com");
	/* Never shorter than the org domain. */
	snprintf(h.s.rdns, sizeof(h.s.rdns), "mx.example.co.uk");
	n = greylist_pool_keys(h.state, &h.s, keys, GREYLIST_POOLS);
	assert_string_equal(keys[0], "rdns:example.co.uk");
	/* An unverified name is no key. */
	h.s.rdns_verified = false;
	n = greylist_pool_keys(h.state, &h.s, keys, GREYLIST_POOLS);
	assert_int_equal(n, 2);
}

static void
test_selective(void **state)
{
	const char *why;

	(void)state;
	h.s.rdns_verified = false;
	assert_true(greylist_suspect(&h.s, false, &why));
	assert_string_equal(why, "no_verified_rdns");
	h.s.rdns_verified = true;
	/* No SPF result in the harness: not a pass. */
	assert_true(greylist_suspect(&h.s, false, &why));
	assert_string_equal(why, "spf_not_pass");
}

/* ---- The hook on a real store ---- */

static struct event_base *base;

static void
drain(void)
{
	while (store_batch_pending() > 0)
		event_base_loop(base, EVLOOP_ONCE);
}

static long
get_rec(const char *key, struct greylist_rec *r)
{
	char			 err[128];
	struct store		*st = store_shared(err, sizeof(err));
	struct store_txn	*t = store_begin(st, false);
	long			 n = store_get(t, key, r, sizeof(*r));

	store_abort(t);
	return n;
}

static void
set_txn(const char *ip)
{
	harness_client(&h, ip);
	h.s.rdns_verified = false;
	h.s.base = base;
	h.s.id = 1;
	h.t.seq = 1;
	snprintf(h.t.from.local, sizeof(h.t.from.local), "prvs=1234abcdef=a");
	snprintf(h.t.from.domain, sizeof(h.t.from.domain), "sender.example");
	harness_rcpt(&h, "<bob@example.test>");
}

static void
test_hook_flow(void **state)
{
	struct greylist_rec r;

	(void)state;
	base = event_base_new();
	set_txn("198.51.100.7");
	/* First attempt: deferred, the triplet under both keys. */
	assert_int_equal(harness_call(&h, STAGE_RCPT), V_PENDING);
	drain();
	assert_int_equal(get_rec("gl:t:net:198.51.100.0/24|a@sender.example|"
	    "bob@example.test", &r), sizeof(r));
	assert_int_equal(r.first, now_fake);
	assert_int_equal(get_rec("gl:a:ip:198.51.100.7|a@sender.example|"
	    "bob@example.test", &r), sizeof(r));
	/* Early retry: deferred again, counted, first kept. */
	now_fake += 100;
	assert_int_equal(harness_call(&h, STAGE_RCPT), V_PENDING);
	drain();
	assert_int_equal(get_rec("gl:t:net:198.51.100.0/24|a@sender.example|"
	    "bob@example.test", &r), sizeof(r));
	assert_int_equal(r.count, 2);
	assert_int_equal(r.first, now_fake - 100);
	/* After the delay, from another address of the /24: passes. */
	now_fake += 250;
	set_txn("198.51.100.99");
	assert_int_equal(harness_call(&h, STAGE_RCPT), V_PENDING);
	drain();
	assert_int_equal(get_rec("gl:p:net:198.51.100.0/24", &r), sizeof(r));
	assert_int_equal(get_rec("gl:t:net:198.51.100.0/24|a@sender.example|"
	    "bob@example.test", &r), -1);
	/* Then known: no wait at all, for any sender. */
	snprintf(h.t.from.local, sizeof(h.t.from.local), "other");
	assert_int_equal(harness_call(&h, STAGE_RCPT), V_CONTINUE);
	/* Exempt clients are never looked up. */
	set_txn("203.0.113.5");
	h.s.authenticated = true;
	assert_int_equal(harness_call(&h, STAGE_RCPT), V_CONTINUE);
	h.s.authenticated = false;
	h.s.trusted = true;
	assert_int_equal(harness_call(&h, STAGE_RCPT), V_CONTINUE);
	h.s.trusted = false;
	h.s.client_allowed = true;
	assert_int_equal(harness_call(&h, STAGE_RCPT), V_CONTINUE);
	h.s.client_allowed = false;
	/* Selective: a verified name with SPF pass would not be suspect;
	 * here SPF has no result, so the client is greylisted. */
	h.s.rdns_verified = true;
	snprintf(h.s.rdns, sizeof(h.s.rdns), "mx1.mail.example.com");
	assert_int_equal(harness_call(&h, STAGE_RCPT), V_PENDING);
	drain();
	assert_int_equal(get_rec("gl:t:rdns:mail.example.com|a@sender.example|"
	    "bob@example.test", &r), sizeof(r));
	/* The sweep counts the expired triplets as never retried. */
	{
		struct store_batch	 b;
		struct store_op		*op;
		char			 err[128];

		now_fake += 86400 + 1;
		memset(&b, 0, sizeof(b));
		op = store_batch_add(&b, STORE_SWEEP, "gl:");
		op->key[0] = '\0';
		op->num = 1000;
		b.count_prefix = GREYLIST_TRIPLET;
		assert_int_equal(store_batch_run(store_shared(err,
		    sizeof(err)), &b), 0);
		assert_int_equal(b.sweep.counted, 1);
		/* t, a:net, a:ip of the last client, and the first client's
		 * a:ip:198.51.100.7 (the pass came from .99). */
		assert_int_equal(b.sweep.removed, 4);
	}
	free(filter_data(&h.s, &filter_greylist));
	tpool_stop();
	store_sweep_stop();
	event_base_free(base);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_norm),
		cmocka_unit_test(test_org_domain),
		cmocka_unit_test(test_pool_keys),
		cmocka_unit_test(test_selective),
		cmocka_unit_test(test_hook_flow),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
