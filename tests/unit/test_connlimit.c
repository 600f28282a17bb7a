/*
 * test_connlimit.c: the per-client key of max_per_ip, and the counts.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <cmocka.h>

#include "../../src/daemon/connlimit.h"

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

/* True when a and b are counted as one client. */
static bool
same_key(const char *a, const char *b)
{
	struct sockaddr_storage	sa = sa_of(a), sb = sa_of(b);
	uint8_t			ka[16], kb[16];

	connlimit_key((struct sockaddr *)&sa, ka);
	connlimit_key((struct sockaddr *)&sb, kb);
	return memcmp(ka, kb, 16) == 0;
}

static void
test_key(void **state)
{
	(void)state;
	assert_int_equal(CONNLIMIT_V6_PREFIX, 64);
	/* One /64 is one client, whatever its interface identifier. */
	assert_true(same_key("2001:db8:1:2::1", "2001:db8:1:2::2"));
	assert_true(same_key("2001:db8:1:2::", "2001:db8:1:2:ffff:ffff:ffff:ffff"));
	/* Neighbouring /64s (the last bit of the prefix differs) are not. */
	assert_false(same_key("2001:db8:1:2::1", "2001:db8:1:3::1"));
	assert_false(same_key("2001:db8:1:2::1", "2001:db8:1:8002::1"));
	assert_false(same_key("2001:db8::1", "2001:db9::1"));
	/* IPv4 counts by the address; v4-mapped IPv6 is that address. */
	assert_true(same_key("192.0.2.1", "::ffff:192.0.2.1"));
	assert_false(same_key("192.0.2.1", "192.0.2.2"));
	assert_false(same_key("::ffff:192.0.2.1", "::ffff:192.0.2.2"));
	/* A v4-mapped address is not folded into the ::ffff:0:0/64 net, and
	 * an IPv6 client never shares the key of an IPv4 one. */
	assert_false(same_key("::ffff:192.0.2.1", "::ffff:0:0:1"));
	assert_false(same_key("::ffff:192.0.2.1", "::"));
	assert_false(same_key("192.0.2.1", "::c000:201"));
}

static void
test_key_bytes(void **state)
{
	struct sockaddr_storage	ss = sa_of("2001:db8:aaaa:bbbb:1:2:3:4");
	uint8_t			k[16], want[16] = { 0x20, 0x01, 0x0d, 0xb8,
				    0xaa, 0xaa, 0xbb, 0xbb };

	(void)state;
	connlimit_key((struct sockaddr *)&ss, k);
	assert_memory_equal(k, want, 16);
	ss = sa_of("10.1.2.3");
	connlimit_key((struct sockaddr *)&ss, k);
	memset(want, 0, sizeof(want));
	want[10] = want[11] = 0xff;
	want[12] = 10, want[13] = 1, want[14] = 2, want[15] = 3;
	assert_memory_equal(k, want, 16);
}

/* max_per_ip through the shared table: a /64 shares one allowance. */
static void
test_enter(void **state)
{
	struct sockaddr_storage	a = sa_of("2001:db8:1:2::1"),
				b = sa_of("2001:db8:1:2::beef"),
				c = sa_of("2001:db8:1:3::1"),
				d = sa_of("192.0.2.7"),
				e = sa_of("::ffff:192.0.2.7");
	const char		*why = NULL;

	(void)state;
	assert_int_equal(connlimit_init(2), 0);
	connlimit_slot(0);
	assert_true(connlimit_enter((struct sockaddr *)&a, 100, 2, &why));
	assert_true(connlimit_enter((struct sockaddr *)&b, 100, 2, &why));
	assert_false(connlimit_enter((struct sockaddr *)&a, 100, 2, &why));
	assert_string_equal(why, "max_per_ip");
	why = NULL;
	assert_false(connlimit_enter((struct sockaddr *)&b, 100, 2, &why));
	assert_string_equal(why, "max_per_ip");
	/* Another /64 has its own allowance, counted in another slot too. */
	connlimit_slot(1);
	assert_true(connlimit_enter((struct sockaddr *)&c, 100, 2, &why));
	/* Counts from both slots add up. */
	assert_false(connlimit_enter((struct sockaddr *)&b, 100, 2, &why));
	connlimit_slot(0);
	connlimit_leave((struct sockaddr *)&b);
	assert_true(connlimit_enter((struct sockaddr *)&a, 100, 2, &why));
	/* IPv4 and its v4-mapped form are one client. */
	assert_true(connlimit_enter((struct sockaddr *)&d, 100, 1, &why));
	assert_false(connlimit_enter((struct sockaddr *)&e, 100, 1, &why));
	assert_string_equal(why, "max_per_ip");
	/* 4 counted: a, a, c, d; the total limit applies at 4. */
	assert_false(connlimit_enter((struct sockaddr *)&e, 4, 100, &why));
	assert_string_equal(why, "max_connections");
	connlimit_clear(0);
	connlimit_clear(1);
	assert_true(connlimit_enter((struct sockaddr *)&e, 1, 1, &why));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_key),
		cmocka_unit_test(test_key_bytes),
		cmocka_unit_test(test_enter),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
