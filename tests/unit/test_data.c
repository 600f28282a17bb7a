/*
 * test_data.c: the DATA/BDAT reader. Every input is fed whole, one byte
 * at a time and in random chunks, and all three must agree.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "../../src/smtp/data.h"

struct result {
	size_t		consumed;	/* up to and including the end */
	bool		done;
	unsigned	flags;
	struct buf	out;
};

enum feed_mode { WHOLE, TRICKLE, RANDOM };

static void
feed(const char *in, size_t n, bool dot, enum feed_mode mode,
    struct result *r, size_t max_size, size_t max_line, size_t max_hdr)
{
	struct data_reader	dr;
	size_t			off = 0, chunk, used;
	bool			done = false;

	buf_init(&r->out, 1 << 24);
	data_init(&dr, &r->out, dot, max_size, max_line, max_hdr);
	while (off < n && !done) {
		chunk = mode == WHOLE ? n - off : mode == TRICKLE ? 1 :
		    1 + (size_t)rand() % 17;
		if (chunk > n - off)
			chunk = n - off;
		used = data_feed(&dr, in + off, chunk, &done);
		assert_true(used <= chunk);
		if (!done)
			assert_int_equal(used, chunk);
		off += used;
	}
	if (!dot)
		data_finish(&dr);
	r->consumed = off;
	r->done = done;
	r->flags = dr.flags;
}

/* Runs all three feeding modes; they must agree; returns the first. */
static void
run(const char *in, size_t n, bool dot, struct result *r)
{
	struct result	o;
	int		m;

	feed(in, n, dot, WHOLE, r, 1 << 20, 1000, 1000);
	for (m = TRICKLE; m <= RANDOM; m++) {
		feed(in, n, dot, (enum feed_mode)m, &o, 1 << 20, 1000, 1000);
		assert_int_equal(o.consumed, r->consumed);
		assert_int_equal(o.done, r->done);
		assert_int_equal(o.flags, r->flags);
		assert_int_equal(o.out.len, r->out.len);
		if (o.out.len)
			assert_memory_equal(o.out.data, r->out.data,
			    o.out.len);
		buf_free(&o.out);
	}
}

#define RUN(lit, dot, r)	run(lit, sizeof(lit) - 1, dot, r)

static void
test_plain_message(void **state)
{
	struct result r;

	(void)state;
	RUN("Subject: hi\r\n\r\nbody\r\n.\r\nMAIL FROM:<x@y>\r\n", true, &r);
	assert_true(r.done);
	assert_int_equal(r.consumed, strlen("Subject: hi\r\n\r\nbody\r\n"
	    ".\r\n"));
	assert_string_equal(r.out.data, "Subject: hi\r\n\r\nbody\r\n");
	assert_int_equal(r.flags, 0);
	buf_free(&r.out);
	/* The empty message: the DATA line's CRLF is the first CRLF. */
	RUN(".\r\n", true, &r);
	assert_true(r.done);
	assert_int_equal(r.out.len, 0);
	buf_free(&r.out);
}

static void
test_dot_unstuffing(void **state)
{
	struct result r;

	(void)state;
	RUN("a\r\n..b\r\n...\r\n.c\r\n.\r\n", true, &r);
	assert_true(r.done);
	assert_string_equal(r.out.data, "a\r\n.b\r\n..\r\nc\r\n");
	assert_int_equal(r.flags, 0);
	buf_free(&r.out);
	/* "..\r\n" is a line holding one dot, not the end. */
	RUN("..\r\nx\r\n.\r\n", true, &r);
	assert_string_equal(r.out.data, ".\r\nx\r\n");
	buf_free(&r.out);
}

/*
 * SMTP smuggling: none of these ends the message, every one marks it
 * refused, and the real <CRLF>.<CRLF> after it still ends it.
 */
static void
test_smuggling_variants(void **state)
{
	static const struct {
		const char	*in;
		unsigned	 flag;
	} v[] = {
		{ "a\n.\nMAIL FROM:<evil>\r\n", DATA_BARE_LF },
		{ "a\n.\r\nMAIL FROM:<evil>\r\n", DATA_BARE_LF },
		{ "a\r.\rMAIL FROM:<evil>\r\n", DATA_BARE_CR },
		{ "a\r\n.\nMAIL FROM:<evil>\r\n", DATA_BARE_LF },
		{ "a\r\n.\rMAIL FROM:<evil>\r\n", DATA_BARE_CR },
		{ "a\r.\r\nMAIL FROM:<evil>\r\n", DATA_BARE_CR },
		{ "a\r\r\n.\r\r\nMAIL FROM:<evil>\r\n", DATA_BARE_CR },
		{ "a\r\n\0.\r\nMAIL FROM:<evil>\r\n", DATA_NUL },
		{ "a\r\n.\0\r\nMAIL FROM:<evil>\r\n", DATA_NUL },
		{ "a\0\r\n.\r\n", DATA_NUL },
	};
	char		in[256];
	struct result	r;
	size_t		i, n, body;

	(void)state;
	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		/* The variant strings hold NULs: measure them by hand. */
		body = 0;
		while (memcmp(v[i].in + body, "MAIL", 4) != 0 &&
		    memcmp(v[i].in + body, "\r\n.\r\n", 5) != 0)
			body++;
		n = body;
		memcpy(in, v[i].in, n);
		if (memcmp(v[i].in + body, "MAIL", 4) == 0) {
			memcpy(in + n, "MAIL FROM:<evil>\r\n", 18);
			n += 18;
		}
		memcpy(in + n, "\r\n.\r\n", 5);
		n += 5;
		run(in, n, true, &r);
		assert_true(r.done);
		assert_int_equal(r.consumed, n);	/* only the real end */
		assert_true(r.flags & v[i].flag);
		assert_true(r.flags & DATA_REFUSE);
		buf_free(&r.out);
	}
}

static void
test_line_limit(void **state)
{
	char		in[2100];
	struct result	r;

	(void)state;
	/* 998 octets + CRLF = 1000: allowed (RFC 5321 4.5.3.1.6). */
	memset(in, 'x', 998);
	memcpy(in + 998, "\r\n.\r\n", 5);
	run(in, 1003, true, &r);
	assert_int_equal(r.flags, 0);
	buf_free(&r.out);
	/* 999 + CRLF = 1001: refused. */
	memset(in, 'x', 999);
	memcpy(in + 999, "\r\n.\r\n", 5);
	run(in, 1004, true, &r);
	assert_true(r.flags & DATA_LONG_LINE);
	assert_true(r.done);
	buf_free(&r.out);
}

static void
test_size_limit(void **state)
{
	char		in[64];
	struct result	r;

	(void)state;
	memcpy(in, "0123456789\r\n.\r\n", 15);
	/* 12 bytes of content: a 12-byte limit holds it, 11 does not. */
	feed(in, 15, true, TRICKLE, &r, 12, 1000, 1000);
	assert_int_equal(r.flags, 0);
	assert_int_equal(r.out.len, 12);
	buf_free(&r.out);
	feed(in, 15, true, TRICKLE, &r, 11, 1000, 1000);
	assert_true(r.flags & DATA_TOO_BIG);
	assert_true(r.done);
	buf_free(&r.out);
}

static void
test_header_limit(void **state)
{
	struct buf	in;
	struct result	r;
	int		i;

	(void)state;
	buf_init(&in, 1 << 20);
	for (i = 0; i < 5; i++)
		buf_printf(&in, "X-H%d: v\r\n", i);
	buf_adds(&in, "\r\nbody\r\n.\r\n");
	/* 5 header lines: a limit of 5 holds them, 4 does not. */
	feed(in.data, in.len, true, RANDOM, &r, 1 << 20, 1000, 5);
	assert_int_equal(r.flags, 0);
	buf_free(&r.out);
	feed(in.data, in.len, true, RANDOM, &r, 1 << 20, 1000, 4);
	assert_true(r.flags & DATA_HEADERS);
	buf_free(&r.out);
	buf_free(&in);
}

static void
test_bdat_mode(void **state)
{
	struct result r;

	(void)state;
	/* No dot handling in BDAT: ".\r\n" is content, no end. */
	RUN("a\r\n.\r\n..b\r\n", false, &r);
	assert_false(r.done);
	assert_string_equal(r.out.data, "a\r\n.\r\n..b\r\n");
	assert_int_equal(r.flags, 0);
	buf_free(&r.out);
	/* A message without a final CRLF gets one. */
	RUN("a\r\nb", false, &r);
	assert_string_equal(r.out.data, "a\r\nb\r\n");
	buf_free(&r.out);
	/* Bare LF is refused in BDAT too. */
	RUN("a\nb\r\n", false, &r);
	assert_true(r.flags & DATA_BARE_LF);
	buf_free(&r.out);
	/* A chunk ending in CR with LAST: a bare CR. */
	RUN("a\r", false, &r);
	assert_true(r.flags & DATA_BARE_CR);
	buf_free(&r.out);
}

static void
test_8bit_flag(void **state)
{
	struct result r;

	(void)state;
	RUN("caf\xc3\xa9\r\n.\r\n", true, &r);
	assert_int_equal(r.flags, DATA_8BIT);
	assert_false(r.flags & DATA_REFUSE);
	buf_free(&r.out);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plain_message),
		cmocka_unit_test(test_dot_unstuffing),
		cmocka_unit_test(test_smuggling_variants),
		cmocka_unit_test(test_line_limit),
		cmocka_unit_test(test_size_limit),
		cmocka_unit_test(test_header_limit),
		cmocka_unit_test(test_bdat_mode),
		cmocka_unit_test(test_8bit_flag),
	};

	srand(42);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
