/*
 * test_mime.c: what the MIME walk reads (base64, quoted-printable,
 * RFC 2047 words, RFC 2231 names, charsets, HTML, nested messages), its
 * limits at N and N+1, and hostile shapes (20,000 parts, deep nesting,
 * 50,000 folded header lines, broken base64, bogus charsets) read within
 * bounds.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "../../src/content/mime.h"
#include "../../src/content/tokenize.h"
#include "../../src/core/buf.h"
#include "tok_helpers.h"

static const struct mime_limits lim = { 512 * 1024, 20, 200 };

static void
scan(struct tok *t, const char *m, const struct mime_limits *l,
    struct mime_stats *st)
{
	tok_init(t, 20000, false);
	mime_scan(m, strlen(m), l, t, st);
	tok_finish(t);
}

static void
test_decoding(void **state)
{
	struct tok		 t;
	struct mime_stats	 st;
	const char		*m =
	    "From: =?utf-8?q?J=C3=BCrgen?= <j@mail.example.org>\r\n"
	    "Subject: =?iso-8859-1?b?Q2Fm6Q==?= offer\r\n"
	    "Message-ID: <1@host.example.net>\r\n"
	    "MIME-Version: 1.0\r\n"
	    "Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n"
	    "--b1\r\nContent-Type: text/plain; charset=iso-8859-1\r\n"
	    "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
	    "Gr=FC=DFe aus K=F6ln\r\n"
	    "--b1\r\nContent-Type: text/html\r\n"
	    "Content-Transfer-Encoding: base64\r\n\r\n"
	    "PHA+VmlzaXQgPGEgaHJlZj0iaHR0cDovL3Nob3AuZXhhbXBsZS5jb20iPnVz"
	    "PC9hPjwvcD4=\r\n"
	    "--b1\r\nContent-Type: application/octet-stream\r\n"
	    "Content-Disposition: attachment; filename*=utf-8''"
	    "r%C3%A9sum%C3%A9.exe\r\n\r\nAAAA\r\n"
	    "--b1\r\nContent-Type: message/rfc822\r\n\r\n"
	    "Subject: inner words\r\n\r\ninnerbody text\r\n"
	    "--b1--\r\n";

	(void)state;
	scan(&t, m, &lim, &st);
	assert_true(has(&t, "f:", "jürgen"));
	assert_true(has(&t, "fd:", "mail.example.org"));
	assert_true(has(&t, "mid:", "host.example.net"));
	assert_true(has(&t, "s:", "café"));
	assert_true(has(&t, "", "grüße"));
	assert_true(has(&t, "", "köln"));
	assert_true(has(&t, "", "visit"));
	assert_true(has(&t, "url:", "shop.example.com"));
	assert_true(has(&t, "att:", "application/octet-stream"));
	assert_true(has(&t, "ext:", "exe"));
	assert_true(has(&t, "fn:", "résumé.exe"));
	assert_true(has(&t, "s:", "inner"));
	assert_true(has(&t, "", "innerbody"));
	assert_true(has(&t, "mp:", "mixed"));
	assert_false(st.truncated);
	assert_int_equal(st.parts, 4);
	tok_free(&t);
}

/* A multipart nested `depth` times around one text part. */
static char *
nested(int depth)
{
	struct buf	b;
	int		i;

	buf_init(&b, 16 << 20);
	buf_adds(&b, "Subject: deep\r\n");
	for (i = 0; i < depth; i++)
		buf_printf(&b, "Content-Type: multipart/mixed; boundary=\"b%d\""
		    "\r\n\r\n--b%d\r\n", i, i);
	buf_adds(&b, "Content-Type: text/plain\r\n\r\ndeepword\r\n");
	for (i = depth - 1; i >= 0; i--)
		buf_printf(&b, "--b%d--\r\n", i);
	return b.data;
}

static void
test_limits(void **state)
{
	struct mime_limits	 l = lim;
	struct mime_stats	 st;
	struct tok		 t;
	struct buf		 b;
	char			*m;
	int			 i;

	(void)state;
	/* Depth: the text sits at depth N = max_depth: read. */
	m = nested(20);
	scan(&t, m, &l, &st);
	assert_true(has(&t, "", "deepword"));
	assert_false(st.truncated);
	tok_free(&t);
	free(m);
	m = nested(21);
	scan(&t, m, &l, &st);
	assert_false(has(&t, "", "deepword"));
	assert_true(st.truncated);
	tok_free(&t);
	free(m);
	/* Very deep: bounded, no crash. */
	m = nested(3000);
	scan(&t, m, &l, &st);
	assert_true(st.truncated);
	tok_free(&t);
	free(m);
	/* Parts: 20,000 of them; max_parts read. */
	buf_init(&b, 16 << 20);
	buf_adds(&b, "Content-Type: multipart/mixed; boundary=\"x\"\r\n\r\n");
	for (i = 0; i < 20000; i++)
		buf_printf(&b, "--x\r\nContent-Type: text/plain\r\n\r\nw%d\r\n",
		    i);
	buf_adds(&b, "--x--\r\n");
	l.max_bytes = 16 << 20;
	scan(&t, b.data, &l, &st);
	assert_int_equal(st.parts, 200);
	assert_true(st.truncated);
	assert_true(has(&t, "", "w199"));
	assert_false(has(&t, "", "w200"));
	tok_free(&t);
	/* Bytes: a message past max_bytes is read up to it. */
	l = lim;
	l.max_bytes = 4096;
	scan(&t, b.data, &l, &st);
	assert_true(st.truncated);
	assert_true(has(&t, "", "w1"));
	assert_false(has(&t, "", "w199"));
	tok_free(&t);
	buf_free(&b);
}

static void
test_hostile(void **state)
{
	struct mime_stats	 st;
	struct tok		 t;
	struct buf		 b;
	int			 i;

	(void)state;
	buf_init(&b, 16 << 20);
	buf_adds(&b, "X-Long: start\r\n");
	for (i = 0; i < 50000; i++)
		buf_adds(&b, " folded\r\n");
	buf_adds(&b, "Content-Type: text/plain; charset=no-such-charset\r\n"
	    "Content-Transfer-Encoding: base64\r\n\r\n!!!!not*base64===\r\n"
	    "aGVsbG8gd29ybGQ\r\n");
	scan(&t, b.data, &lim, &st);
	/* One header value is read up to 2 KiB: few features. */
	assert_true(t.n < 50);
	assert_true(has(&t, "h:x-long:", "folded"));
	tok_free(&t);
	scan(&t, strstr(b.data, "Content-Type"), &lim, &st);
	assert_false(st.truncated);
	tok_free(&t);
	/* Not a message at all. */
	scan(&t, "\x01\x02 just bytes", &lim, &st);
	tok_free(&t);
	scan(&t, "", &lim, &st);
	assert_int_equal(t.n, 0);
	tok_free(&t);
	buf_free(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_decoding),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_hostile),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
