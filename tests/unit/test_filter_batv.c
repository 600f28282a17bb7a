/*
 * test_filter_batv.c: prvs tags signed and verified by table (known
 * answers from Python's hmac, valid, expired, too far ahead, wrong key,
 * unknown key number, malformed, the day wrapping at 1000), the key
 * file, and the filter at RCPT: a bounce to a signed address accepted
 * and unwrapped, to an unsigned one refused, a normal sender not.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <cmocka.h>

#include "filter_harness.h"
#include "../../src/filters/batv.h"

extern const struct filter filter_batv;

static void
keys2(struct batv_keys *k)
{
	memset(k, 0, sizeof(*k));
	memcpy(k->key[0], "secret", 6);
	k->len[0] = 6;
	memcpy(k->key[1], "second key", 10);
	k->len[1] = 10;
}

static void
test_sign_known(void **st)
{
	char out[128];

	(void)st;
	assert_int_equal(batv_sign("secret", 6, 0, "alice@example.test",
	    20123, out, sizeof(out)), 0);
	assert_string_equal(out, "prvs=01238e7d46=alice@example.test");
	assert_int_equal(batv_sign("second key", 10, 1, "bob@example.test",
	    999, out, sizeof(out)), 0);
	assert_string_equal(out, "prvs=19994163db=bob@example.test");
	/* The hash is over the lowercased address. */
	assert_int_equal(batv_sign("secret", 6, 0, "Alice@Example.TEST",
	    20123, out, sizeof(out)), 0);
	assert_string_equal(out, "prvs=01238e7d46=Alice@Example.TEST");
	/* Not an address, a local part too long once tagged, no room. */
	assert_int_equal(batv_sign("secret", 6, 0, "alice", 1, out,
	    sizeof(out)), -1);
	assert_int_equal(batv_sign("secret", 6, 0, "@example.test", 1, out,
	    sizeof(out)), -1);
	assert_int_equal(batv_sign("secret", 6, 0,
	    "a234567890123456789012345678901234567890123456789@x.test", 1, out,
	    sizeof(out)), -1);	/* 49 + 16 > 64 */
	assert_int_equal(batv_sign("secret", 6, 0,
	    "a23456789012345678901234567890123456789012345678@x.test", 1, out,
	    sizeof(out)), 0);	/* 48 + 16 = 64 */
	assert_int_equal(batv_sign("secret", 6, 0, "alice@example.test", 1,
	    out, 20), -1);
}

static void
test_verify_table(void **st)
{
	struct batv_keys	 k;
	char			 a[128], orig[128];
	long			 today = 20120;
	const struct {
		const char	*addr;
		long		 today;
		enum batv_result want;
	} t[] = {
		{ "prvs=01238e7d46=alice@example.test", 20120, BATV_VALID },
		{ "PRVS=01238E7D46=alice@example.test", 20120, BATV_VALID },
		{ "prvs=01238e7d46=ALICE@example.test", 20120, BATV_VALID },
		{ "prvs=01238e7d46=alice@example.test", 20123, BATV_VALID },
		{ "prvs=01238e7d46=alice@example.test", 20116, BATV_VALID },
		{ "prvs=01238e7d46=alice@example.test", 20124, BATV_EXPIRED },
		{ "prvs=01238e7d46=alice@example.test", 20115, BATV_EXPIRED },
		{ "prvs=01238e7d47=alice@example.test", 20120, BATV_BADSIG },
		{ "prvs=01248e7d46=alice@example.test", 20120, BATV_BADSIG },
		{ "prvs=01238e7d46=bob@example.test", 20120, BATV_BADSIG },
		{ "prvs=11238e7d46=alice@example.test", 20120, BATV_BADSIG },
		{ "prvs=21238e7d46=alice@example.test", 20120, BATV_NOKEY },
		{ "prvs=0123xe7d46=alice@example.test", 20120, BATV_MALFORMED },
		{ "prvs=01238e7d4=alice@example.test", 20120, BATV_MALFORMED },
		{ "prvs=01238e7d46alice@example.test", 20120, BATV_MALFORMED },
		{ "prvs=01238e7d46=@example.test", 20120, BATV_MALFORMED },
		{ "prvs=01238e7d46=alice", 20120, BATV_MALFORMED },
		{ "prvs=", 20120, BATV_MALFORMED },
		{ "alice@example.test", 20120, BATV_NONE },
		{ "prv=01238e7d46=alice@example.test", 20120, BATV_NONE },
	};
	size_t			 i;

	(void)st;
	keys2(&k);
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		enum batv_result r = batv_verify(&k, t[i].addr, t[i].today, 7,
		    orig, sizeof(orig));
		if (r != t[i].want)
			fail_msg("%s at %ld: %s, want %s", t[i].addr,
			    t[i].today, batv_result_name(r),
			    batv_result_name(t[i].want));
	}
	assert_int_equal(batv_verify(&k, t[0].addr, 20120, 7, orig,
	    sizeof(orig)), BATV_VALID);
	assert_string_equal(orig, "alice@example.test");
	/* Round trip with key 1; the day code wraps at 1000. */
	assert_int_equal(batv_sign(k.key[1], k.len[1], 1, "x@y.test",
	    today + 885, a, sizeof(a)), 0);	/* day 21005 -> "005" */
	assert_non_null(strstr(a, "prvs=1005"));
	assert_int_equal(batv_verify(&k, a, 20998, 7, orig, sizeof(orig)),
	    BATV_VALID);
	assert_int_equal(batv_verify(&k, a, 21005, 7, orig, sizeof(orig)),
	    BATV_VALID);
	assert_int_equal(batv_verify(&k, a, 21006, 7, orig, sizeof(orig)),
	    BATV_EXPIRED);
	/* Signed with a key we do not have under that number. */
	assert_int_equal(batv_sign("other", 5, 0, "x@y.test", today, a,
	    sizeof(a)), 0);
	assert_int_equal(batv_verify(&k, a, today, 7, orig, sizeof(orig)),
	    BATV_BADSIG);
}

static void
test_keys_file(void **st)
{
	struct batv_keys	 k;
	char			 path[] = "/tmp/batv-keysXXXXXX", err[256];
	int			 fd = mkstemp(path);
	FILE			*f = fdopen(fd, "w");
	char			 big[300];

	(void)st;
	fputs("# keys\nsecret\n\nsecond key\n", f);
	fclose(f);
	assert_int_equal(batv_keys_load(&k, path, err, sizeof(err)), 0);
	assert_int_equal(k.len[0], 6);
	assert_memory_equal(k.key[1], "second key", 10);
	assert_int_equal(k.len[2], 0);
	f = fopen(path, "w");
	fputs("# none\n", f);
	fclose(f);
	assert_int_equal(batv_keys_load(&k, path, err, sizeof(err)), -1);
	f = fopen(path, "w");
	memset(big, 'k', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	fprintf(f, "%s\n", big);
	fclose(f);
	assert_int_equal(batv_keys_load(&k, path, err, sizeof(err)), -1);
	unlink(path);
	assert_int_equal(batv_keys_load(&k, path, err, sizeof(err)), -1);
}

static enum verdict_code
rcpt(struct harness *h, const char *from, const char *to)
{
	struct str rest;

	memset(&h->t.from, 0, sizeof(h->t.from));
	assert_int_equal(parse_path(str_make(from, strlen(from)),
	    &h->t.from, &rest, true, false, false), PARSE_OK);
	harness_rcpt(h, to);
	return harness_call(h, STAGE_RCPT);
}

static void
test_filter(void **st)
{
	struct harness		 h;
	char			 path[] = "/tmp/batv-keysXXXXXX", to[160],
				 a[128];
	int			 fd = mkstemp(path);
	const char *const	 kv[] = { "key_file", path, "verify", "yes",
	    NULL };
	const char *const	 nokey[] = { "verify", "yes", NULL };

	(void)st;
	assert_int_equal(write(fd, "secret\n", 7), 7);
	close(fd);
	assert_int_equal(harness_init(&h, &filter_batv, "example.test", kv),
	    0);
	assert_int_equal(batv_sign("secret", 6, 0, "alice@example.test",
	    batv_today() + 7, a, sizeof(a)), 0);
	snprintf(to, sizeof(to), "<%s>", a);
	/* A bounce to a signed address: accepted, the tag unwrapped. */
	assert_int_equal(rcpt(&h, "<>", to), V_CONTINUE);
	assert_string_equal(h.r.addr, "alice@example.test");
	assert_string_equal(h.r.path.local, "alice");
	/* To an unsigned address, a bad tag, an expired one: refused. */
	assert_int_equal(rcpt(&h, "<>", "<alice@example.test>"), V_DENY);
	assert_int_equal(rcpt(&h, "<>",
	    "<prvs=01238e7d47=alice@example.test>"), V_DENY);
	assert_int_equal(batv_sign("secret", 6, 0, "alice@example.test",
	    batv_today() - 1, a, sizeof(a)), 0);
	snprintf(to, sizeof(to), "<%s>", a);
	assert_int_equal(rcpt(&h, "<>", to), V_DENY);
	/* postmaster, other domains, normal senders: untouched. */
	assert_int_equal(rcpt(&h, "<>", "<postmaster@example.test>"),
	    V_CONTINUE);
	assert_int_equal(rcpt(&h, "<>", "<x@elsewhere.org>"), V_CONTINUE);
	assert_int_equal(rcpt(&h, "<a@example.org>", "<alice@example.test>"),
	    V_CONTINUE);
	assert_int_equal(rcpt(&h, "<a@example.org>", to), V_CONTINUE);
	assert_string_equal(h.r.addr, a);	/* expired: left alone */
	free(h.s.sev);
	harness_free(&h);
	/* verify without keys is a config error; keys alone only unwrap. */
	assert_int_equal(harness_init(&h, &filter_batv, "example.test",
	    nokey), -1);
	harness_free(&h);
	unlink(path);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sign_known),
		cmocka_unit_test(test_verify_table),
		cmocka_unit_test(test_keys_file),
		cmocka_unit_test(test_filter),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
