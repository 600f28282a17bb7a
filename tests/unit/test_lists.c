/*
 * test_lists.c: list files, CIDR networks and cdb lookups.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <cdb.h>
#include <fcntl.h>
#include <unistd.h>
#include <cmocka.h>

#include "../../src/core/limits.h"
#include "../../src/core/lists.h"

static void
test_strset(void **state)
{
	struct strset	s;
	char		key[32];
	int		i;

	(void)state;
	strset_init(&s);
	assert_false(strset_has(&s, "a", 1));
	for (i = 0; i < 1000; i++) {
		snprintf(key, sizeof(key), "User%d@Example.COM", i);
		assert_int_equal(strset_add(&s, key, strlen(key)), 0);
	}
	assert_int_equal(s.count, 1000);
	assert_true(strset_has(&s, "user999@example.com", 19));
	assert_true(strset_has(&s, "USER0@EXAMPLE.COM", 17));
	assert_false(strset_has(&s, "user1000@example.com", 20));
	assert_false(strset_has(&s, "user1@example.co", 16));
	strset_free(&s);
}

static struct sockaddr_storage
sa_of(const char *ip)
{
	struct sockaddr_storage	 ss;
	struct sockaddr_in	*s4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6	*s6 = (struct sockaddr_in6 *)&ss;

	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, ip, &s4->sin_addr) == 1)
		s4->sin_family = AF_INET;
	else {
		assert_int_equal(inet_pton(AF_INET6, ip, &s6->sin6_addr), 1);
		s6->sin6_family = AF_INET6;
	}
	return ss;
}

static bool
matches(const char *net, const char *ip)
{
	struct cidr		c;
	struct sockaddr_storage	ss = sa_of(ip);

	assert_int_equal(cidr_parse(net, &c), 0);
	return cidr_match(&c, (struct sockaddr *)&ss);
}

static void
test_cidr(void **state)
{
	struct cidr c;

	(void)state;
	assert_true(matches("10.0.0.0/8", "10.255.1.2"));
	assert_false(matches("10.0.0.0/8", "11.0.0.1"));
	assert_true(matches("192.168.1.0/25", "192.168.1.127"));
	assert_false(matches("192.168.1.0/25", "192.168.1.128"));
	assert_true(matches("127.0.0.1", "127.0.0.1"));
	assert_false(matches("127.0.0.1", "127.0.0.2"));
	assert_true(matches("2001:db8::/32", "2001:db8:1::5"));
	assert_false(matches("2001:db8::/32", "2001:db9::1"));
	assert_true(matches("10.0.0.0/8", "::ffff:10.1.2.3"));
	assert_true(matches("::ffff:10.0.0.0/104", "10.1.2.3"));
	assert_true(matches("0.0.0.0/0", "8.8.8.8"));
	/* tcprules-style prefixes */
	assert_true(matches("192.168.", "192.168.7.7"));
	assert_false(matches("192.168.", "192.169.7.7"));
	assert_true(matches("10.1", "10.1.0.9"));
	assert_int_equal(cidr_parse("10.0.0.0/33", &c), -1);
	assert_int_equal(cidr_parse("::/129", &c), -1);
	assert_int_equal(cidr_parse("10.0.0.0/", &c), -1);
	assert_int_equal(cidr_parse("host.example", &c), -1);
	assert_int_equal(cidr_parse("1..2", &c), -1);
	assert_int_equal(cidr_parse("256.1", &c), -1);
	assert_int_equal(cidr_parse("", &c), -1);
}

/* cidr_parse, valid and invalid forms side by side (limits at N, N+1). */
static void
test_cidr_table(void **state)
{
	static const struct {
		const char	*in;
		int		 rc, family, bits;
	} t[] = {
		{ "10.0.0.0/32", 0, AF_INET, 32 },
		{ "10.0.0.0/33", -1, 0, 0 },
		{ "10.0.0.0/0", 0, AF_INET, 0 },
		{ "10.0.0.0/8", 0, AF_INET, 8 },
		{ "10.0.0.0/-8", -1, 0, 0 },
		{ "10.0.0.0/-0", -1, 0, 0 },
		{ "10.0.0.0/+8", -1, 0, 0 },
		{ "10.0.0.0/ 8", -1, 0, 0 },
		{ "10.0.0.0/8 ", -1, 0, 0 },
		{ "10.0.0.0/\t8", -1, 0, 0 },
		{ "10.0.0.0 /8", -1, 0, 0 },
		{ " 10.0.0.0/8", -1, 0, 0 },
		{ "+10.0.0.0/8", -1, 0, 0 },
		{ "10.0.0.0/8x", -1, 0, 0 },
		{ "10.0.0.0/0x8", -1, 0, 0 },
		{ "10.0.0.0/08", -1, 0, 0 },
		{ "10.0.0.0/008", -1, 0, 0 },
		{ "10.0.0.0/", -1, 0, 0 },
		{ "10.0.0.0//8", -1, 0, 0 },
		{ "10.0.0.0/8/8", -1, 0, 0 },
		{ "10.0.0.0/4294967304", -1, 0, 0 },	/* 2^32 + 8 */
		{ "/8", -1, 0, 0 },
		{ "/", -1, 0, 0 },
		{ "10.0.0.256/8", -1, 0, 0 },
		{ "::/128", 0, AF_INET6, 128 },
		{ "::/129", -1, 0, 0 },
		{ "::/0", 0, AF_INET6, 0 },
		{ "2001:db8::/64", 0, AF_INET6, 64 },
		{ "2001:db8::/-64", -1, 0, 0 },
		{ "2001:db8::/+64", -1, 0, 0 },
		{ "2001:db8::/ 64", -1, 0, 0 },
		{ "2001:db8::/64x", -1, 0, 0 },
		{ "2001:db8::/1280", -1, 0, 0 },
		{ "2001:db8::/", -1, 0, 0 },
		{ "2001:db8::1", 0, AF_INET6, 128 },
		{ "2001:db8::1%eth0", -1, 0, 0 },
		{ "::ffff:10.0.0.0/104", 0, AF_INET6, 104 },
		{ "127.0.0.1", 0, AF_INET, 32 },
		/* tcprules prefixes: whole octets, 1-3 digits each */
		{ "10.", 0, AF_INET, 8 },
		{ "10", 0, AF_INET, 8 },
		{ "10.1", 0, AF_INET, 16 },
		{ "192.168.1.", 0, AF_INET, 24 },
		{ "255.255.255", 0, AF_INET, 24 },
		{ "256", -1, 0, 0 },
		{ "0010", -1, 0, 0 },
		{ "10..", -1, 0, 0 },
		{ "10..1", -1, 0, 0 },
		{ ".10", -1, 0, 0 },
		{ ".", -1, 0, 0 },
		{ "+10.1", -1, 0, 0 },
		{ "-10.1", -1, 0, 0 },
		{ " 10.1", -1, 0, 0 },
		{ "10.1 ", -1, 0, 0 },
		{ "10.1.2.3.", -1, 0, 0 },
		{ "10.1/16", -1, 0, 0 },
		{ "", -1, 0, 0 },
	};
	struct cidr	c;
	size_t		i;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		memset(&c, 0xa5, sizeof(c));
		if (cidr_parse(t[i].in, &c) != t[i].rc)
			fail_msg("cidr_parse(\"%s\") should return %d", t[i].in,
			    t[i].rc);
		if (t[i].rc == 0 && (c.family != t[i].family ||
		    c.bits != t[i].bits))
			fail_msg("cidr_parse(\"%s\"): family %d bits %d",
			    t[i].in, c.family, c.bits);
		if (t[i].rc == -1 && (c.family != 0 || c.bits != 0))
			fail_msg("cidr_parse(\"%s\") left a network behind",
			    t[i].in);
	}
}

/* A bad line of a CIDR list file is an error naming file:line. */
static void
test_cidr_list_file(void **state)
{
	static const char *bad[] = {
		"10.0.0.0/-8", "10.0.0.0/33", "::/129", "10.0.0.0/", "10.0.0.0/8x",
		"10.0.0.0/+8", "10.0.0.0/ 8", "not-an-address",
		"1234567890123456789012345678901234567890123456789012345678901234"
		"5678",
	};
	char			 path[] = "/tmp/moat-test-cidr-XXXXXX", err[256];
	char			 want[300];
	int			 fd = mkstemp(path);
	struct cidrlist		 l = { 0 };
	struct sockaddr_storage	 ss = sa_of("2001:db8::5");
	FILE			*fp;
	size_t			 i;

	(void)state;
	assert_true(fd != -1);
	close(fd);
	fp = fopen(path, "w");
	fputs("# nets\n10.0.0.0/8\n\n  2001:db8::/32  \n192.168.\n", fp);
	fclose(fp);
	assert_int_equal(cidrlist_load(&l, path, err, sizeof(err)), 0);
	assert_int_equal(l.n, 3);
	assert_true(cidrlist_match(&l, (struct sockaddr *)&ss));
	cidrlist_free(&l);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		fp = fopen(path, "w");
		fprintf(fp, "10.0.0.0/8\n# comment\n%s\n127.0.0.1\n", bad[i]);
		fclose(fp);
		err[0] = '\0';
		assert_int_equal(cidrlist_load(&l, path, err, sizeof(err)), -1);
		snprintf(want, sizeof(want), "%s:3: ", path);
		if (strncmp(err, want, strlen(want)) != 0)
			fail_msg("line \"%s\": error \"%s\"", bad[i], err);
		assert_non_null(strstr(err, "is not an address or network"));
		cidrlist_free(&l);
	}
	unlink(path);
}

static void
test_list_file(void **state)
{
	char		 path[] = "/tmp/moat-test-list-XXXXXX", err[256];
	int		 fd = mkstemp(path);
	struct strset	 s;
	FILE		*fp = fdopen(fd, "w");
	int		 i;

	(void)state;
	fputs("# comment\n\n  Alice@Example.test  \n@whole.example\n", fp);
	fclose(fp);
	strset_init(&s);
	assert_int_equal(strset_load(&s, path, err, sizeof(err)), 0);
	assert_int_equal(s.count, 2);
	assert_true(strset_has(&s, "alice@example.test", 18));
	strset_free(&s);
	/* A line of LIMIT_LIST_LINE is read; one more is an error. */
	fp = fopen(path, "w");
	for (i = 0; i < LIMIT_LIST_LINE; i++)
		fputc('a', fp);
	fputs("\nok\n", fp);
	for (i = 0; i < LIMIT_LIST_LINE + 1; i++)
		fputc('b', fp);
	fputs("\n", fp);
	fclose(fp);
	strset_init(&s);
	assert_int_equal(strset_load(&s, path, err, sizeof(err)), -1);
	assert_non_null(strstr(err, ":3: line longer than"));
	strset_free(&s);
	unlink(path);
	assert_int_equal(strset_load(&s, path, err, sizeof(err)), -1);
}

static void
test_cdb(void **state)
{
	char		 path[] = "/tmp/moat-test-cdb-XXXXXX", err[256];
	int		 fd = mkstemp(path);
	struct cdb_make	 cm;
	struct cdbfile	*f;

	(void)state;
	cdb_make_start(&cm, fd);
	cdb_make_add(&cm, "alice@example.test", 18, "", 0);
	cdb_make_add(&cm, "@catchall.test", 14, "", 0);
	cdb_make_finish(&cm);
	close(fd);
	f = cdbfile_open(path, err, sizeof(err));
	assert_non_null(f);
	assert_int_equal(cdbfile_has(f, "alice@example.test", 18), 1);
	assert_int_equal(cdbfile_has(f, "@catchall.test", 14), 1);
	assert_int_equal(cdbfile_has(f, "bob@example.test", 16), 0);
	cdbfile_close(f);
	unlink(path);
	assert_null(cdbfile_open(path, err, sizeof(err)));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_strset),
		cmocka_unit_test(test_cidr),
		cmocka_unit_test(test_cidr_table),
		cmocka_unit_test(test_cidr_list_file),
		cmocka_unit_test(test_list_file),
		cmocka_unit_test(test_cdb),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
