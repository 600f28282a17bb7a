/*
 * test_parse.c: command, path and parameter parsers, table-driven, with
 * every limit tested at N and N+1.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "../../src/smtp/parse.h"

static enum parse_err
path(const char *s, struct path *p, bool null_ok, bool pm, bool utf8)
{
	struct str rest;

	return parse_path(str_make(s, strlen(s)), p, &rest, null_ok, pm,
	    utf8);
}

static void
test_command_verbs(void **state)
{
	static const struct {
		const char	*line;
		enum verb	 verb;
		const char	*arg;
	} t[] = {
		{ "EHLO client.example", VERB_EHLO, "client.example" },
		{ "ehlo   client ", VERB_EHLO, "client" },
		{ "MAIL FROM:<a@b.c>", VERB_MAIL, "FROM:<a@b.c>" },
		{ "rcpt to:<x@y>", VERB_RCPT, "to:<x@y>" },
		{ "DATA", VERB_DATA, "" },
		{ "BDAT 10 LAST", VERB_BDAT, "10 LAST" },
		{ "QUIT", VERB_QUIT, "" },
		{ "StartTLS", VERB_STARTTLS, "" },
		{ "DATAX", VERB_UNKNOWN, "" },
		{ "", VERB_UNKNOWN, "" },
		{ "GET / HTTP/1.0", VERB_UNKNOWN, "/ HTTP/1.0" },
	};
	struct command	c;
	size_t		i;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		assert_int_equal(parse_command(t[i].line, strlen(t[i].line),
		    &c), PARSE_OK);
		assert_int_equal(c.verb, t[i].verb);
		assert_int_equal(c.arg.len, strlen(t[i].arg));
		assert_memory_equal(c.arg.p, t[i].arg, c.arg.len);
	}
}

static void
test_command_bytes(void **state)
{
	struct command c;

	(void)state;
	assert_int_equal(parse_command("NOOP\0x", 6, &c), PARSE_NUL);
	assert_int_equal(parse_command("NOOP\rx", 6, &c), PARSE_CTRL);
	assert_int_equal(parse_command("NOOP\x7f", 5, &c), PARSE_CTRL);
	assert_int_equal(parse_command("NOOP \xc3\xa9", 7, &c), PARSE_OK);
	assert_true(c.has8bit);
	assert_int_equal(parse_command("NOOP \xc3", 6, &c), PARSE_BAD_UTF8);
	assert_int_equal(parse_command("NOOP \xc0\xaf", 7, &c),
	    PARSE_BAD_UTF8);	/* overlong '/' */
	assert_int_equal(parse_command("NOOP \xed\xa0\x80", 8, &c),
	    PARSE_BAD_UTF8);	/* surrogate */
}

static void
test_path_valid(void **state)
{
	struct path p;

	(void)state;
	assert_int_equal(path("<user@example.com>", &p, false, false, false),
	    PARSE_OK);
	assert_string_equal(p.local, "user");
	assert_string_equal(p.domain, "example.com");
	assert_int_equal(path(" <User@EXAMPLE.Com> SIZE=10", &p, false,
	    false, false), PARSE_OK);
	assert_string_equal(p.local, "User");
	assert_string_equal(p.domain, "example.com");
	assert_int_equal(path("<>", &p, true, false, false), PARSE_OK);
	assert_true(p.null);
	assert_int_equal(path("<\"john doe\"@example.com>", &p, false, false,
	    false), PARSE_OK);
	assert_true(p.quoted);
	assert_string_equal(p.local, "\"john doe\"");
	assert_int_equal(path("<\"a\\\"b\"@x.org>", &p, false, false, false),
	    PARSE_OK);
	assert_int_equal(path("<@hop1.net,@hop2.net:u@final.org>", &p, false,
	    false, false), PARSE_OK);
	assert_true(p.route);
	assert_string_equal(p.route_hosts, "hop1.net,hop2.net");
	assert_string_equal(p.domain, "final.org");
	assert_int_equal(path("<u@[192.0.2.1]>", &p, false, false, false),
	    PARSE_OK);
	assert_true(p.literal);
	assert_int_equal(path("<u@[IPv6:2001:db8::1]>", &p, false, false,
	    false), PARSE_OK);
	assert_int_equal(path("<Postmaster>", &p, false, true, false),
	    PARSE_OK);
	assert_string_equal(p.domain, "");
	assert_int_equal(path("<a.b-c+d%e!f@x-y.example>", &p, false, false,
	    false), PARSE_OK);
}

static void
test_path_invalid(void **state)
{
	static const char *const bad[] = {
		"user@example.com",		/* no brackets */
		"<user@example.com",		/* unterminated */
		"<user@example.com.>",		/* trailing dot */
		"<user@.example.com>",
		"<user@exa..mple.com>",
		"<user@-example.com>",
		"<user@example-.com>",
		"<.user@example.com>",
		"<us..er@example.com>",
		"<user.@example.com>",
		"<user>",			/* no domain */
		"<@example.com>",
		"<user@>",
		"<user@exam_ple.com>",
		"<\"unterminated@example.com>",
		"<us er@example.com>",
		"<user@[1.2.3.4>",
		"<user@[1.2[3]>",
		"<@hop:>",
		"<@hop,user@x.org>",
		"<user@@example.com>",
		"<user@example.com@evil.org>",
		"<>",				/* not allowed here */
		"<Postmaster>",			/* not allowed here */
		"<us\xc3\xa9r@example.com>",	/* UTF-8 without SMTPUTF8 */
	};
	struct path	p;
	size_t		i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_not_equal(path(bad[i], &p, false, false, false),
		    PARSE_OK);
}

static void
test_path_utf8(void **state)
{
	struct path p;

	(void)state;
	assert_int_equal(path("<us\xc3\xa9r@\xc3\xa9xample.com>", &p, false,
	    false, true), PARSE_OK);
	assert_true(p.utf8);
	assert_int_equal(path("<user@example.com>", &p, false, false, true),
	    PARSE_OK);
	assert_false(p.utf8);
	assert_int_not_equal(path("<us\xc3r@example.com>", &p, false, false,
	    true), PARSE_OK);
}

/* Builds "<" local "@" domain ">" with given lengths. */
static void
make_path(char *out, size_t local, size_t domain)
{
	size_t i, o = 0;

	out[o++] = '<';
	for (i = 0; i < local; i++)
		out[o++] = 'l';
	out[o++] = '@';
	for (i = 0; i < domain; i++)
		out[o++] = (i % 10 == 9 && i + 1 < domain) ? '.' : 'd';
	out[o++] = '>';
	out[o] = '\0';
}

static void
test_path_limits(void **state)
{
	char		buf[1024];
	struct path	p;

	(void)state;
	/* Local part: 64 ok, 65 too long (RFC 5321 4.5.3.1.1). */
	make_path(buf, LIMIT_LOCAL_PART, 20);
	assert_int_equal(path(buf, &p, false, false, false), PARSE_OK);
	make_path(buf, LIMIT_LOCAL_PART + 1, 20);
	assert_int_equal(path(buf, &p, false, false, false), PARSE_TOO_LONG);
	/* Whole path: 256 with brackets ok, 257 too long (4.5.3.1.3). */
	make_path(buf, 10, LIMIT_PATH - 13);
	assert_int_equal(strlen(buf), LIMIT_PATH);
	assert_int_equal(path(buf, &p, false, false, false), PARSE_OK);
	make_path(buf, 10, LIMIT_PATH - 12);
	assert_int_equal(path(buf, &p, false, false, false), PARSE_TOO_LONG);
	/* Labels: 63 octets ok, 64 not (RFC 1035). */
	memset(buf, 0, sizeof(buf));
	snprintf(buf, sizeof(buf), "<u@%.*s.com>", 63,
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
	assert_int_equal(path(buf, &p, false, false, false), PARSE_OK);
	snprintf(buf, sizeof(buf), "<u@%.*s.com>", 64,
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
	assert_int_not_equal(path(buf, &p, false, false, false), PARSE_OK);
}

static void
test_domain_limit(void **state)
{
	char	d[LIMIT_DOMAIN + 2];
	size_t	i;

	(void)state;
	for (i = 0; i < sizeof(d) - 1; i++)
		d[i] = i % 10 == 9 ? '.' : 'd';
	d[sizeof(d) - 1] = '\0';
	/* 255 octets is a domain, 256 is not (4.5.3.1.2). */
	assert_true(parse_domain_ok(d, LIMIT_DOMAIN, false));
	assert_false(parse_domain_ok(d, LIMIT_DOMAIN + 1, false));
}

static void
test_mail_params(void **state)
{
	struct mail_params	mp;
	const char		*s;

	(void)state;
	s = " SIZE=1000 BODY=8BITMIME SMTPUTF8";
	assert_int_equal(parse_mail_params(str_make(s, strlen(s)), &mp),
	    PARSE_OK);
	assert_int_equal(mp.size, 1000);
	assert_int_equal(mp.body, BODY_8BITMIME);
	assert_true(mp.smtputf8);
	assert_int_equal(parse_mail_params(STR_NULL, &mp), PARSE_OK);
	assert_int_equal(mp.size, -1);
	s = " SIZE=junk";
	assert_int_equal(parse_mail_params(str_make(s, strlen(s)), &mp),
	    PARSE_PARAM_VALUE);
	s = " SIZE=-1";
	assert_int_equal(parse_mail_params(str_make(s, strlen(s)), &mp),
	    PARSE_PARAM_VALUE);
	/* 18 digits parse; 19 (an overflow risk) do not. */
	s = " SIZE=999999999999999999";
	assert_int_equal(parse_mail_params(str_make(s, strlen(s)), &mp),
	    PARSE_OK);
	s = " SIZE=9999999999999999999";
	assert_int_equal(parse_mail_params(str_make(s, strlen(s)), &mp),
	    PARSE_PARAM_VALUE);
	s = " SIZE=";
	assert_int_equal(parse_mail_params(str_make(s, strlen(s)), &mp),
	    PARSE_PARAM_VALUE);
	s = " BODY=9BIT";
	assert_int_equal(parse_mail_params(str_make(s, strlen(s)), &mp),
	    PARSE_PARAM_VALUE);
	s = " RET=FULL";	/* DSN (RFC 3461) is not offered */
	assert_int_equal(parse_mail_params(str_make(s, strlen(s)), &mp),
	    PARSE_PARAM);
	s = " AUTH=<>";		/* RFC 4954 §5: taken (test_auth) */
	assert_int_equal(parse_mail_params(str_make(s, strlen(s)), &mp),
	    PARSE_OK);
	s = "SIZE=1";	/* glued to the '>' */
	assert_int_equal(parse_mail_params(str_make(s, strlen(s)), &mp),
	    PARSE_SYNTAX);
	s = " NOTIFY=NEVER";
	assert_int_equal(parse_rcpt_params(str_make(s, strlen(s))),
	    PARSE_PARAM);
	assert_int_equal(parse_rcpt_params(STR_NULL), PARSE_OK);
}

static void
test_bdat(void **state)
{
	long long	n;
	bool		last;
	const char	*s;

	(void)state;
	s = "100 LAST";
	assert_int_equal(parse_bdat(str_make(s, strlen(s)), &n, &last),
	    PARSE_OK);
	assert_int_equal(n, 100);
	assert_true(last);
	s = "0";
	assert_int_equal(parse_bdat(str_make(s, strlen(s)), &n, &last),
	    PARSE_OK);
	assert_false(last);
	s = "10 FIRST";
	assert_int_equal(parse_bdat(str_make(s, strlen(s)), &n, &last),
	    PARSE_SYNTAX);
	s = "x";
	assert_int_equal(parse_bdat(str_make(s, strlen(s)), &n, &last),
	    PARSE_SYNTAX);
	s = "";
	assert_int_equal(parse_bdat(str_make(s, strlen(s)), &n, &last),
	    PARSE_SYNTAX);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_command_verbs),
		cmocka_unit_test(test_command_bytes),
		cmocka_unit_test(test_path_valid),
		cmocka_unit_test(test_path_invalid),
		cmocka_unit_test(test_path_utf8),
		cmocka_unit_test(test_path_limits),
		cmocka_unit_test(test_domain_limit),
		cmocka_unit_test(test_mail_params),
		cmocka_unit_test(test_bdat),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
