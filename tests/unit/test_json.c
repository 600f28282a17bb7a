/*
 * test_json.c: moatctl's JSON reader (src/cli/json.c) on tables of
 * valid and invalid documents, its limits at N and N+1, escapes,
 * surrogate pairs, invalid UTF-8, the tree it builds, and a real line of
 * moatd's JSON log.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "../../src/cli/json.h"

static const struct json_limits lim_default = {
	.max_input = 65536, .max_depth = 16, .max_values = 4096,
	.max_string = 4096,
};

/* Parses s (its strlen, or n when n > 0) under lim; frees the result. */
static bool
parses_n(const char *s, size_t n, const struct json_limits *lim)
{
	struct json_error	 e;
	struct json_doc		*d;

	d = json_parse(s, n ? n : strlen(s), lim, &e);
	if (d == NULL)
		assert_non_null(e.msg);
	json_free(d);
	return d != NULL;
}

static bool
parses(const char *s)
{
	return parses_n(s, 0, &lim_default);
}

static void
test_valid(void **state)
{
	static const char *const ok[] = {
		"0", "-0", "1", "-1", "12.5", "1e3", "1E+3", "1e-3",
		"-0.0e0", "123456789012345678901234567890",
		"true", "false", "null", "\"\"", "\"a\"", "[]", "{}",
		" \t\r\n[ 1 , 2 ]\n", "[[],[[]],{}]",
		"{\"a\":1,\"b\":[true,false,null],\"c\":{\"d\":\"e\"}}",
		"{\"a\":1,\"A\":2}", "{\"a\":1,\"ab\":2,\"\":3}",
		"\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"", "\"\\u0041\\u00e9\\u20AC\"",
		"\"\\ud83d\\ude00\"", "\"\\uD800\\uDC00\"",
		"\"\\uDBFF\\uDFFF\"", "\"\\u0000\"",
		"\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"",
		"\"\xed\x9f\xbf\"", "\"\xee\x80\x80\"", "\"\xf4\x8f\xbf\xbf\"",
		"\"\x7f\"", "1.7976931348623157e308", "4.9e-324", "1e-400",
		"{\"a\":{\"a\":{\"a\":1}}}",
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		if (!parses(ok[i]))
			fail_msg("refused: %s", ok[i]);
}

static void
test_invalid(void **state)
{
	static const char *const bad[] = {
		"", " ", "[", "]", "{", "}", "[1,]", "[,1]", "[1 2]",
		"{\"a\"}", "{\"a\":}", "{\"a\":1,}", "{a:1}", "{1:1}",
		"{\"a\" 1}", "{\"a\":1 \"b\":2}", "[1]]", "[1] x", "1 2",
		"01", "-01", "+1", ".5", "1.", "1.e3", "1e", "1e+", "-",
		"0x10", "NaN", "Infinity", "-Infinity", "1e400", "-1e400",
		"tru", "truex", "nul", "True", "NULL", "'a'", "\"a",
		"\"\\\"", "\"\\x\"", "\"\\a\"", "\"\\U0041\"", "\"\\u004\"",
		"\"\\u00G0\"", "\"\\ud800\"", "\"\\ud800x\"",
		"\"\\ud800\\u0041\"", "\"\\udc00\"", "\"\\udc00\\ud800\"",
		"\"\\ud800\\ud800\"", "\"\\ud800\\n\"",
		"\"\t\"", "\"\n\"", "\"\x01\"", "\"\x1f\"",
		"\xef\xbb\xbf[]", "[]\xef\xbb\xbf", "\f[]", "[]\v",
		"{\"a\":1,\"a\":2}", "{\"b\":1,\"a\":2,\"b\":3}",
		"{\"\\u0061\":1,\"a\":2}", "/* c */ 1", "[1]//",
		/* UTF-8: stray continuation, overlong, surrogate, too big,
		 * truncated, bad continuation. */
		"\"\x80\"", "\"\xbf\"", "\"\xc0\x80\"", "\"\xc1\xbf\"",
		"\"\xe0\x80\xaf\"", "\"\xe0\x9f\xbf\"",
		"\"\xf0\x80\x80\xaf\"", "\"\xf0\x8f\xbf\xbf\"",
		"\"\xed\xa0\x80\"", "\"\xed\xbf\xbf\"",
		"\"\xf4\x90\x80\x80\"", "\"\xf5\x80\x80\x80\"",
		"\"\xff\"", "\"\xfe\"", "\"\xc3\"", "\"\xe2\x82\"",
		"\"\xf0\x9f\x98\"", "\"\xc3\x28\"", "\"\xe2\x28\xa1\"",
		"\xc3\xa9", "[\"a\"\xc3\xa9]",
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (parses(bad[i]))
			fail_msg("accepted: %s", bad[i]);
}

/* NUL bytes are never whitespace, and never raw in a string. */
static void
test_nul_bytes(void **state)
{
	(void)state;
	assert_false(parses_n("[1]\0", 4, &lim_default));
	assert_false(parses_n("\"a\0b\"", 5, &lim_default));
	assert_false(parses_n("\0", 1, &lim_default));
	assert_true(parses_n("[1]", 3, &lim_default));
}

/* A string of decoded values and what it must become. */
static void
test_decoding(void **state)
{
	static const struct {
		const char	*in;
		const char	*out;
		size_t		 len;
	} t[] = {
		{ "\"a\\\"b\"", "a\"b", 3 },
		{ "\"\\\\\\/\"", "\\/", 2 },
		{ "\"\\b\\f\\n\\r\\t\"", "\b\f\n\r\t", 5 },
		{ "\"\\u0041\"", "A", 1 },
		{ "\"\\u00e9\"", "\xc3\xa9", 2 },
		{ "\"\\u07FF\"", "\xdf\xbf", 2 },
		{ "\"\\u0800\"", "\xe0\xa0\x80", 3 },
		{ "\"\\u20ac\"", "\xe2\x82\xac", 3 },
		{ "\"\\uFFFF\"", "\xef\xbf\xbf", 3 },
		{ "\"\\ud83d\\ude00\"", "\xf0\x9f\x98\x80", 4 },
		{ "\"\\uD800\\uDC00\"", "\xf0\x90\x80\x80", 4 },
		{ "\"\\udbff\\udfff\"", "\xf4\x8f\xbf\xbf", 4 },
		{ "\"a\\u0000b\"", "a\0b", 3 },
		{ "\"\\u001b[31m\"", "\x1b[31m", 5 },
		{ "\"\xc3\xa9\"", "\xc3\xa9", 2 },
	};
	struct json_error	 e;
	struct json_doc		*d;
	const struct json_value	*v;
	size_t			 i;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		d = json_parse(t[i].in, strlen(t[i].in), &lim_default, &e);
		if (d == NULL)
			fail_msg("refused: %s (%s)", t[i].in, e.msg);
		v = json_root(d);
		assert_int_equal(v->type, JSON_STRING);
		assert_int_equal(v->len, t[i].len);
		assert_memory_equal(v->str, t[i].out, t[i].len);
		assert_int_equal(v->str[v->len], '\0');
		json_free(d);
	}
}

static void
test_numbers(void **state)
{
	static const struct {
		const char	*in;
		double		 want;
	} t[] = {
		{ "0", 0 }, { "-0", -0.0 }, { "2.5", 2.5 }, { "-1e3", -1000 },
		{ "1E-2", 0.01 }, { "12.50", 12.5 }, { "-3.25", -3.25 },
	};
	struct json_error	 e;
	struct json_doc		*d;
	size_t			 i;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		assert_non_null(d = json_parse(t[i].in, strlen(t[i].in),
		    &lim_default, &e));
		assert_int_equal(json_root(d)->type, JSON_NUMBER);
		assert_true(json_root(d)->num == t[i].want);
		json_free(d);
	}
}

/* A number of exactly JSON_NUMBER_MAX characters, and one more. */
static void
test_number_length(void **state)
{
	char	s[JSON_NUMBER_MAX + 2];

	(void)state;
	memset(s, '1', sizeof(s));
	s[JSON_NUMBER_MAX] = '\0';
	assert_true(parses(s));
	s[JSON_NUMBER_MAX] = '1';
	s[JSON_NUMBER_MAX + 1] = '\0';
	assert_false(parses(s));
}

/* n nested arrays: "[[...]]". */
static char *
nest(unsigned n)
{
	char		*s = malloc(2 * (size_t)n + 1);
	unsigned	 i;

	for (i = 0; i < n; i++) {
		s[i] = '[';
		s[2 * n - 1 - i] = ']';
	}
	s[2 * n] = '\0';
	return s;
}

static void
test_depth(void **state)
{
	struct json_limits	 lim = lim_default;
	char			*s;

	(void)state;
	lim.max_depth = 5;
	s = nest(5);
	assert_true(parses_n(s, 0, &lim));
	free(s);
	s = nest(6);
	assert_false(parses_n(s, 0, &lim));
	free(s);
	/* Objects count as arrays do. */
	assert_true(parses_n("{\"a\":[{\"b\":[{}]}]}", 0, &lim));
	assert_false(parses_n("{\"a\":[{\"b\":[{\"c\":[]}]}]}", 0, &lim));
	/* Depth 0: scalars only. */
	lim.max_depth = 0;
	assert_true(parses_n("1", 0, &lim));
	assert_false(parses_n("[]", 0, &lim));
	/* A million brackets are refused at the limit, not by the stack. */
	lim.max_depth = JSON_DEPTH_MAX;
	lim.max_input = 2000000;
	s = nest(1000000);
	assert_false(parses_n(s, 0, &lim));
	free(s);
	s = nest(JSON_DEPTH_MAX);
	assert_true(parses_n(s, 0, &lim));
	free(s);
	/* Limits past the hard caps are refused as such. */
	lim.max_depth = JSON_DEPTH_MAX + 1;
	assert_false(parses_n("1", 0, &lim));
	lim.max_depth = 8;
	lim.max_values = 0;
	assert_false(parses_n("1", 0, &lim));
	lim.max_values = JSON_VALUES_MAX + 1;
	assert_false(parses_n("1", 0, &lim));
}

static void
test_values(void **state)
{
	struct json_limits lim = lim_default;

	(void)state;
	lim.max_values = 4;
	assert_true(parses_n("[1,2,3]", 0, &lim));
	assert_false(parses_n("[1,2,3,4]", 0, &lim));
	assert_true(parses_n("{\"a\":[],\"b\":{},\"c\":0}", 0, &lim));
	assert_false(parses_n("{\"a\":[],\"b\":{},\"c\":[0]}", 0, &lim));
	lim.max_values = 1;
	assert_true(parses_n("\"x\"", 0, &lim));
	assert_true(parses_n("[]", 0, &lim));
	assert_false(parses_n("[0]", 0, &lim));
}

static void
test_input_size(void **state)
{
	struct json_limits lim = lim_default;

	(void)state;
	lim.max_input = 5;
	assert_true(parses_n("[1,2]", 0, &lim));
	assert_false(parses_n("[1,23]", 0, &lim));
	/* Checked before scanning: the bytes past the cap are never read. */
	assert_false(parses_n("[1,2] ", 0, &lim));
}

static void
test_string_length(void **state)
{
	struct json_limits lim = lim_default;

	(void)state;
	lim.max_string = 3;
	assert_true(parses_n("\"abc\"", 0, &lim));
	assert_false(parses_n("\"abcd\"", 0, &lim));
	/* Decoded bytes count: é is 2, so 1 + 2 fits and 2 + 2 does not. */
	assert_true(parses_n("\"a\\u00e9\"", 0, &lim));
	assert_false(parses_n("\"ab\\u00e9\"", 0, &lim));
	assert_true(parses_n("\"\\ud83d\\ude00\"", 0, &(struct json_limits){
	    .max_input = 100, .max_depth = 1, .max_values = 1,
	    .max_string = 4 }));
	assert_false(parses_n("\"a\\ud83d\\ude00\"", 0, &(struct json_limits){
	    .max_input = 100, .max_depth = 1, .max_values = 1,
	    .max_string = 4 }));
	/* Member names too. */
	assert_true(parses_n("{\"abc\":1}", 0, &lim));
	assert_false(parses_n("{\"abcd\":1}", 0, &lim));
}

/* Where an error is reported. */
static void
test_error_offset(void **state)
{
	struct json_error e;

	(void)state;
	assert_null(json_parse("[1,,2]", 6, &lim_default, &e));
	assert_int_equal(e.offset, 3);
	assert_null(json_parse("{\"a\":\"\xff\"}", 9, &lim_default, &e));
	assert_int_equal(e.offset, 6);
	assert_string_equal(e.msg, "invalid UTF-8");
	assert_null(json_parse("{\"a\":1,\"a\":2}", 13, &lim_default, &e));
	assert_string_equal(e.msg, "duplicate member name");
}

/* The tree: order, keys, children, spans, accessors. */
static void
test_tree(void **state)
{
	static const char	 doc[] = "{\"s\":\"x\",\"n\":2.5,\"t\":true,"
	    "\"f\":false,\"z\":null,\"a\":[1,[2,3],{\"k\":4}],\"o\":{}}";
	struct json_error	 e;
	struct json_doc		*d;
	const struct json_value	*r, *a, *c;
	double			 n;
	size_t			 len;

	(void)state;
	assert_non_null(d = json_parse(doc, strlen(doc), &lim_default, &e));
	r = json_root(d);
	assert_int_equal(r->type, JSON_OBJECT);
	assert_int_equal(r->len, 7);
	assert_int_equal(r->span, 14);
	assert_string_equal(json_get_str(r, "s", &len), "x");
	assert_int_equal(len, 1);
	assert_true(json_get_num(r, "n", &n) && n == 2.5);
	assert_false(json_get_num(r, "s", &n));
	assert_null(json_get_str(r, "n", NULL));
	assert_int_equal(json_get_bool(r, "t"), 1);
	assert_int_equal(json_get_bool(r, "f"), 0);
	assert_int_equal(json_get_bool(r, "z"), -1);
	assert_int_equal(json_get_bool(r, "missing"), -1);
	assert_int_equal(json_get(r, "z")->type, JSON_NULL);
	a = json_get(r, "a");
	assert_int_equal(a->type, JSON_ARRAY);
	assert_int_equal(a->len, 3);
	assert_int_equal(a->span, 7);
	c = a->child;
	assert_true(c->num == 1 && c->key == NULL);
	c = c->next;
	assert_int_equal(c->type, JSON_ARRAY);
	assert_true(c->child->num == 2 && c->child->next->num == 3);
	assert_null(c->child->next->next);
	c = c->next;
	assert_true(json_get_num(c, "k", &n) && n == 4);
	assert_null(c->next);
	c = json_get(r, "o");
	assert_int_equal(c->len, 0);
	assert_null(c->child);
	assert_null(c->next);
	/* json_get on what is not an object. */
	assert_null(json_get(a, "k"));
	assert_null(json_get(NULL, "k"));
	json_free(d);
}

/* A line as moatd's txnlog writes it, escapes and all. */
static void
test_txnlog_line(void **state)
{
	static const char	 line[] =
	    "{\"time\":\"2025-01-02T03:04:05.678Z\",\"event\":\"transaction\","
	    "\"session\":\"0123456789abcdef\",\"ip\":\"127.0.0.2\","
	    "\"helo\":\"evil\\u001b[2J\\u00e9\",\"tls\":false,"
	    "\"from\":\"s@client.test\",\"rcpts\":[{\"to\":\"alice@example"
	    ".test\",\"accepted\":false,\"reply\":\"554 5.7.1 no\","
	    "\"by\":\"dnsbl\"}],\"rcpt_count\":1,\"rcpt_accepted\":0,"
	    "\"truncated\":false,\"score\":0.00,\"symbols\":{},\"ms\":{"
	    "\"data\":-1.0,\"queue\":-1.0},\"result\":\"aborted\","
	    "\"evidence\":[{\"filter\":\"dnsbl\",\"name\":\"DNSBL\","
	    "\"score\":2.00,\"ms\":1.5,\"detail\":\"zen.bl.test=127.0.0.2\"}]}";
	struct json_error	 e;
	struct json_doc		*d;
	const struct json_value	*r, *rc, *ev;
	double			 ms;

	(void)state;
	assert_non_null(d = json_parse(line, strlen(line), &lim_default, &e));
	r = json_root(d);
	assert_string_equal(json_get_str(r, "session", NULL),
	    "0123456789abcdef");
	assert_string_equal(json_get_str(r, "helo", NULL),
	    "evil\x1b[2J\xc3\xa9");
	rc = json_get(r, "rcpts")->child;
	assert_string_equal(json_get_str(rc, "by", NULL), "dnsbl");
	assert_int_equal(json_get_bool(rc, "accepted"), 0);
	ev = json_get(r, "evidence")->child;
	assert_true(json_get_num(ev, "ms", &ms) && ms == 1.5);
	assert_true(json_get_num(json_get(r, "ms"), "data", &ms) && ms == -1);
	json_free(d);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid),
		cmocka_unit_test(test_invalid),
		cmocka_unit_test(test_nul_bytes),
		cmocka_unit_test(test_decoding),
		cmocka_unit_test(test_numbers),
		cmocka_unit_test(test_number_length),
		cmocka_unit_test(test_depth),
		cmocka_unit_test(test_values),
		cmocka_unit_test(test_input_size),
		cmocka_unit_test(test_string_length),
		cmocka_unit_test(test_error_offset),
		cmocka_unit_test(test_tree),
		cmocka_unit_test(test_txnlog_line),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
