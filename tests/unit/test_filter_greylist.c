/*
 * test_filter_greylist.c: sender normalisation and org-domain tables,
 * pool keys from the session's evidence, selective-mode decisions, and
 * the hook against a real store under a test clock: first attempt
 * written under every pool key, an early retry counted, a late retry
 * from another address of the /24 passing, the pass then known; an
 * attempt retried through a weaker key never counted as never retried,
 * the host-wide counters; karma evidence in selective mode; known
 * correspondents recorded at data_post and honoured at RCPT.
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
		b.count_prefix = GREYLIST_NEVER;
		assert_int_equal(store_batch_run(store_shared(err,
		    sizeof(err)), &b), 0);
		assert_int_equal(b.sweep.counted, 1);
		/* t, a:net, a:ip and n: of the last client, and the first
		 * client's a:ip:198.51.100.7 (the pass came from .99). */
		assert_int_equal(b.sweep.removed, 5);
	}
}

/* Sweeps everything expired; the attempts it counted as never retried. */
static size_t
sweep_all(void)
{
	struct store_batch	 b;
	struct store_op		*op;
	char			 err[128];

	memset(&b, 0, sizeof(b));
	op = store_batch_add(&b, STORE_SWEEP, "gl:");
	op->key[0] = '\0';
	op->num = 100000;
	b.count_prefix = GREYLIST_NEVER;
	assert_int_equal(store_batch_run(store_shared(err, sizeof(err)), &b),
	    0);
	return b.sweep.counted;
}

static long long
counter(const char *key)
{
	char			 err[128];
	struct store		*st = store_shared(err, sizeof(err));
	struct store_txn	*t = store_begin(st, false);
	long long		 n = 0;

	if (store_get(t, key, &n, sizeof(n)) != (long)sizeof(n))
		n = 0;
	store_abort(t);
	return n;
}

/*
 * An attempt stored under rdns:, net: and ip: and retried from another
 * address of the /24 without the name: the pass matches through the
 * net: alias, the gl:t:rdns: triplet is left to expire, and the attempt
 * is still not counted as never retried (its one marker went with the
 * pass). Another attempt, never retried, is counted once for its three
 * keys. The host-wide counters follow.
 */
static void
test_never_counted_once(void **state)
{
	long long	d0 = counter(GREYLIST_M_DEFERRED);
	long long	p0 = counter(GREYLIST_M_PASSED);
	long long	h0 = counter(GREYLIST_M_DELAY "lt15m");

	(void)state;
	(void)sweep_all();
	set_txn("192.0.2.10");
	h.s.rdns_verified = true;
	snprintf(h.s.rdns, sizeof(h.s.rdns), "out-1.mail.bigsender.example");
	harness_rcpt(&h, "<carol@example.test>");
	assert_int_equal(harness_call(&h, STAGE_RCPT), V_PENDING);
	drain();
	assert_int_equal(counter(GREYLIST_M_DEFERRED), d0 + 1);
	now_fake += 400;
	set_txn("192.0.2.11");			/* no name: net: only */
	harness_rcpt(&h, "<carol@example.test>");
	assert_int_equal(harness_call(&h, STAGE_RCPT), V_PENDING);
	drain();
	assert_true(greylist_has_evidence(&h.s, "GREYLIST_PASS"));
	assert_int_equal(counter(GREYLIST_M_PASSED), p0 + 1);
	assert_int_equal(counter(GREYLIST_M_DELAY "lt15m"), h0 + 1);
	/* Never retried, under three keys. */
	set_txn("198.18.0.5");
	h.s.rdns_verified = true;
	snprintf(h.s.rdns, sizeof(h.s.rdns), "mx.other.example");
	harness_rcpt(&h, "<carol@example.test>");
	assert_int_equal(harness_call(&h, STAGE_RCPT), V_PENDING);
	drain();
	now_fake += 86400 + 1;
	assert_int_equal(sweep_all(), 1);
}

/* The karma filter's evidence, by name, decides selective mode. */
static void
test_karma_selective(void **state)
{
	const char	*why;

	(void)state;
	set_txn("203.0.113.77");
	h.s.rdns_verified = true;
	snprintf(h.s.rdns, sizeof(h.s.rdns), "mx.karma.example");
	free(h.s.sev);
	h.s.sev = NULL;
	/* No SPF result: suspect without karma... */
	assert_true(greylist_suspect(&h.s, false, &why));
	/* ...not with good history... */
	filter_evidence(&h.s, &filter_greylist, "KARMA_GOOD", 0, 0, "x");
	assert_false(greylist_suspect(&h.s, false, &why));
	harness_rcpt(&h, "<dave@example.test>");
	assert_int_equal(harness_call(&h, STAGE_RCPT), V_CONTINUE);
	/* ...and bad history is suspicion of its own. */
	free(h.s.sev);
	h.s.sev = NULL;
	filter_evidence(&h.s, &filter_greylist, "KARMA_BAD", 1, 0, "x");
	assert_true(greylist_suspect(&h.s, false, &why));
	assert_string_equal(why, "karma_bad");
	assert_int_equal(harness_call(&h, STAGE_RCPT), V_PENDING);
	drain();
	free(h.s.sev);
	h.s.sev = NULL;
}

/* An authenticated client's message from alice to a remote address
 * makes that address a known correspondent of alice's: its mail to
 * alice is not greylisted; a stranger's, or its mail to bob, is. */
static void
test_correspondents(void **state)
{
	struct greylist_rec	r;
	char			key[STORE_KEY_MAX + 1];

	(void)state;
	assert_int_equal(greylist_corresp_key("Prvs=1234abcdef=Zed+x",
	    "Remote.Example", "Alice+tag@Example.TEST", key, sizeof(key)), 0);
	assert_string_equal(key, "gl:c:zed@remote.example|alice@example.test");
	/* Outbound, relayed for an authenticated user. */
	set_txn("203.0.113.9");
	h.s.authenticated = true;
	snprintf(h.t.from.local, sizeof(h.t.from.local), "alice");
	snprintf(h.t.from.domain, sizeof(h.t.from.domain), "example.test");
	harness_rcpt(&h, "<Zed@remote.example>");
	h.r.accepted = true;
	h.t.rcpts = &h.r;
	h.t.nrcpt = 1;
	assert_int_equal(harness_call(&h, STAGE_DATA_POST), V_CONTINUE);
	drain();
	assert_int_equal(get_rec("gl:c:zed@remote.example|alice@example.test",
	    &r), sizeof(r));
	assert_int_equal(r.first, now_fake);
	h.t.rcpts = NULL;
	h.t.nrcpt = 0;
	h.s.authenticated = false;
	/* Inbound from the correspondent, another address: not greylisted. */
	set_txn("198.51.200.1");
	snprintf(h.t.from.local, sizeof(h.t.from.local), "zed");
	snprintf(h.t.from.domain, sizeof(h.t.from.domain), "remote.example");
	harness_rcpt(&h, "<alice@example.test>");
	free(h.s.sev);
	h.s.sev = NULL;
	assert_int_equal(harness_call(&h, STAGE_RCPT), V_CONTINUE);
	assert_true(greylist_has_evidence(&h.s, "GREYLIST_CORRESPONDENT"));
	/* To another local user, or from a stranger: greylisted. */
	harness_rcpt(&h, "<bob@example.test>");
	assert_int_equal(harness_call(&h, STAGE_RCPT), V_PENDING);
	drain();
	harness_rcpt(&h, "<alice@example.test>");
	snprintf(h.t.from.local, sizeof(h.t.from.local), "mallory");
	assert_int_equal(harness_call(&h, STAGE_RCPT), V_PENDING);
	drain();
	/* A stranger's client (not relay, not auth) records nothing. */
	snprintf(h.t.from.local, sizeof(h.t.from.local), "alice");
	snprintf(h.t.from.domain, sizeof(h.t.from.domain), "example.test");
	harness_rcpt(&h, "<eve@remote.example>");
	h.r.accepted = true;
	h.t.rcpts = &h.r;
	h.t.nrcpt = 1;
	assert_int_equal(harness_call(&h, STAGE_DATA_POST), V_CONTINUE);
	drain();
	assert_int_equal(get_rec("gl:c:eve@remote.example|alice@example.test",
	    &r), -1);
	h.t.rcpts = NULL;
	h.t.nrcpt = 0;
	free(h.s.sev);
	h.s.sev = NULL;
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
		cmocka_unit_test(test_never_counted_once),
		cmocka_unit_test(test_karma_selective),
		cmocka_unit_test(test_correspondents),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
