/*
 * test_tokenize.c: words and their limits (N and N+1), case folding,
 * OSB pairs, URL hosts, the set (sorted, no repeats), the feature cap,
 * and the HTML reader's text and features; byte trickles never change a
 * feature set's meaning (the tokenizer reads whole texts).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "../../src/content/html.h"
#include "../../src/content/tokenize.h"
#include "../../src/core/buf.h"
#include "tok_helpers.h"

static void
test_words(void **state)
{
	struct tok	t;
	char		w40[41], w41[42];

	(void)state;
	memset(w40, 'a', 40);
	w40[40] = '\0';
	memset(w41, 'b', 41);
	w41[41] = '\0';
	tok_init(&t, 1000, false);
	tok_text(&t, "", "Hello, WORLD! x it's $100 e-mail. ", 34);
	tok_text(&t, "s:", w40, 40);
	tok_text(&t, "s:", w41, 41);
	tok_finish(&t);
	assert_true(has(&t, "", "hello"));
	assert_true(has(&t, "", "world"));
	assert_true(has(&t, "", "it's"));
	assert_true(has(&t, "", "$100"));
	assert_true(has(&t, "", "e-mail"));
	assert_false(has(&t, "", "x"));		/* shorter than 2 */
	assert_false(has(&t, "", "e-mail."));	/* trailing dot cut */
	assert_true(has(&t, "s:", w40));	/* 40: a word */
	assert_false(has(&t, "s:", w41));	/* 41: a long-run shape */
	assert_true(has(&t, "long:", "s:"));
	assert_false(has(&t, "s:", "hello"));	/* prefixes keep apart */
	tok_free(&t);
}

static void
test_set_and_cap(void **state)
{
	struct tok	t;
	size_t		i;

	(void)state;
	tok_init(&t, 1000, false);
	tok_text(&t, "", "spam spam spam ham", 18);
	assert_int_equal(tok_finish(&t), 2);
	for (i = 1; i < t.n; i++)
		assert_true(t.feat[i - 1] < t.feat[i]);
	tok_free(&t);
	/* The cap: exactly max features are kept, then truncated. */
	tok_init(&t, 3, false);
	tok_text(&t, "", "aa bb cc", 8);
	assert_false(t.truncated);
	assert_int_equal(t.n, 3);
	tok_text(&t, "", "dd", 2);
	assert_true(t.truncated);
	assert_int_equal(t.n, 3);
	tok_free(&t);
}

static void
test_pairs(void **state)
{
	struct tok	t;

	(void)state;
	tok_init(&t, 1000, true);
	t.window = 2;
	tok_text(&t, "", "one two three", 13);
	/* 3 words + (two,one) + (three,two) + (three,one) */
	assert_int_equal(tok_finish(&t), 6);
	tok_free(&t);
	tok_init(&t, 1000, false);
	tok_text(&t, "", "one two three", 13);
	assert_int_equal(tok_finish(&t), 3);	/* window 0: no pairs */
	tok_free(&t);
}

static void
test_urls(void **state)
{
	struct tok	 t;
	const char	*s = "see http://user@www.Evil.example.com/x?y and "
			     "www.other.test, https://10.1.2.3/";

	(void)state;
	tok_init(&t, 1000, false);
	tok_text(&t, "", s, strlen(s));
	tok_finish(&t);
	assert_true(has(&t, "url:", "www.evil.example.com"));
	assert_true(has(&t, "url:", "example.com"));
	assert_true(has(&t, "url:", "userinfo"));
	assert_true(has(&t, "url:", "www.other.test"));
	assert_true(has(&t, "url:", "10.1.2.3"));
	/* A URL's text is not words too: its host counts once, as url:. */
	assert_true(has(&t, "", "see"));
	assert_true(has(&t, "", "and"));
	assert_false(has(&t, "", "www.other.test"));
	assert_false(has(&t, "", "http"));
	assert_false(has(&t, "", "10.1.2.3"));
	/* An address has no parent domain. */
	assert_true(has(&t, "url:", "numeric"));
	assert_false(has(&t, "url:", "2.3"));
	assert_int_equal(t.n, 9);
	tok_free(&t);
}

static void
test_html(void **state)
{
	struct tok	 t;
	struct buf	 out;
	const char	*h = "<html><style>p{color:red}</style><p>Buy&nbsp;"
			     "n&#111;w &amp; save</p><!-- x --><a href=\""
			     "http://shop.example.org/\">here</a><span style"
			     "=\"display: none\">hidden words</span><img src="
			     "'http://img.example.net/a.gif'><script>var x;"
			     "</script>";

	(void)state;
	tok_init(&t, 1000, false);
	buf_init(&out, 4096);
	html_text(h, strlen(h), &out, &t);
	tok_finish(&t);
	assert_non_null(strstr(out.data, "Buy now & save"));
	assert_null(strstr(out.data, "color"));
	assert_null(strstr(out.data, "var x"));
	assert_true(has(&t, "url:", "shop.example.org"));
	assert_true(has(&t, "url:", "img.example.net"));
	assert_true(has(&t, "html:", "hidden"));
	assert_true(has(&t, "html:", "comment"));
	assert_true(has(&t, "tag:", "img"));
	assert_true(has(&t, "html:", "imgonly"));
	/* Cut anywhere, the reader stays inside its input. */
	for (size_t n = 0; n <= strlen(h); n++) {
		buf_reset(&out);
		html_text(h, n, &out, &t);
	}
	buf_free(&out);
	tok_free(&t);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_words),
		cmocka_unit_test(test_set_and_cap),
		cmocka_unit_test(test_pairs),
		cmocka_unit_test(test_urls),
		cmocka_unit_test(test_html),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
