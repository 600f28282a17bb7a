/*
 * test_filter_access.c: the tcprules parser (both line forms, every
 * limit at N and N+1, quoting, escapes, ranges), the lookup in
 * tcpserver's order (IPv4, IPv6, names, CIDR), and the filter's hooks on
 * a made-up session (deny at connect or RCPT, RELAYCLIENT, RBLSMTPD,
 * MOAT_SKIP, MOAT_SCORE, name rules waiting for the name). The cdb form
 * and reloads run against the real daemon in
 * tests/integration/test_access.py.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <cmocka.h>

#include "../../src/filters/access.h"
#include "filter_harness.h"

extern const struct filter filter_access;
extern const struct filter filter_dnsbl;
extern const struct filter filter_fcrdns;

/* Parses text; returns 0 or -1 (err set). */
static int
parse(struct access_rules *r, const char *text, char *err, size_t n)
{
	access_rules_init(r);
	return access_parse(r, text, strlen(text), err, n);
}

/* The one rule of a one-line text, key and value as tcprules makes. */
static void
expect(const char *line, const char *key, const char *data, size_t dlen)
{
	struct access_rules	r;
	char			err[256];

	if (parse(&r, line, err, sizeof(err)) != 0)
		fail_msg("%s: %s", line, err);
	if (r.n != 1)
		fail_msg("%s: %zu rules", line, r.n);
	assert_string_equal(r.v[0].key, key);
	assert_int_equal(r.v[0].datalen, dlen);
	assert_memory_equal(r.v[0].data, data, dlen);
	access_rules_free(&r);
}

static void
refused(const char *text, const char *why)
{
	struct access_rules	r;
	char			err[256];

	if (parse(&r, text, err, sizeof(err)) == 0)
		fail_msg("accepted: %s", text);
	if (why != NULL && strstr(err, why) == NULL)
		fail_msg("%s: '%s' lacks '%s'", text, err, why);
	access_rules_free(&r);
}

static void
test_tcprules_lines(void **state)
{
	(void)state;
	expect("127.:allow,RELAYCLIENT=\"\"", "127.", "+RELAYCLIENT=\0", 14);
	expect("10.1.2.3:deny", "10.1.2.3", "D\0", 2);
	expect("192.168.:allow,RBLSMTPD=\"-blocked, see http://x\"",
	    "192.168.", "+RBLSMTPD=-blocked, see http://x\0", 33);
	expect("=Host.Example:deny", "=host.example", "D\0", 2);
	expect(":allow", "", "", 0);
	expect("=:allow", "=", "", 0);
	expect("=.example.org:allow", "=.example.org", "", 0);
	/* Any repeated character quotes; '=' and ',' inside are data. */
	expect("10.0.:allow,RELAYCLIENT=/@fix.me/", "10.0.",
	    "+RELAYCLIENT=@fix.me\0", 21);
	expect("1.2.3.4:allow,A=xa,b=cx,B=\"\"", "1.2.3.4",
	    "+A=a,b=c\0+B=\0", 13);
	expect("1.2.3.4:deny,X=\"y\"", "1.2.3.4", "D\0+X=y\0", 7);
	/* IPv6, split as tcprules' IPv6 patch: at ':' before the action;
	 * exact keys in inet_ntop's form. */
	expect("::1:allow,RELAYCLIENT=\"\"", "::1", "+RELAYCLIENT=\0", 14);
	expect("0:0:0:0:0:0:0:1:deny", "::1", "D\0", 2);
	expect("2001:DB8::allow", "2001:db8:", "", 0);
	expect("10.0.0.0/8:deny", "10.0.0.0/8", "D\0", 2);
	/* Leading blanks, trailing blanks and CR are trimmed. */
	expect("  1.2.3.4:deny \t\r", "1.2.3.4", "D\0", 2);
	expect("joe@1.2.3.4:deny", "joe@1.2.3.4", "D\0", 2);
}

static void
test_list_lines(void **state)
{
	(void)state;
	expect("10.0.0.0/8 deny", "10.0.0.0/8", "D\0", 2);
	expect("192.0.2.1 allow RELAYCLIENT", "192.0.2.1",
	    "+RELAYCLIENT=\0", 14);
	expect("* allow MOAT_SKIP=\"dnsbl fcrdns\" MOAT_SCORE=-2", "",
	    "+MOAT_SKIP=dnsbl fcrdns\0+MOAT_SCORE=-2\0", 39);
	expect("::1\tallow  RBLSMTPD=\"say \\\"no\\\" \\\\ here\"", "::1",
	    "+RBLSMTPD=say \"no\" \\ here\0", 26);
	expect("=mx.example allow X=a\"b c\"d", "=mx.example",
	    "+X=ab cd\0", 9);
	refused("10.0.0.0/8 deny X=\"open", "unterminated quote");
	refused("10.0.0.0/8 deny X=\"a\\nb\"", "escapes");
	refused("10.0.0.0/8 permit", "expected");
	refused("10.0.0.0/8", "expected");
	refused("10.0.0.0/8 deny =x", "variable name");
}

static void
test_ranges(void **state)
{
	struct access_rules	r;
	char			err[256];

	(void)state;
	assert_int_equal(parse(&r, "1.2.3.37-39:deny\n10.2-3.:allow\n", err,
	    sizeof(err)), 0);
	assert_int_equal(r.n, 5);
	assert_string_equal(r.v[0].key, "1.2.3.37");
	assert_string_equal(r.v[2].key, "1.2.3.39");
	assert_string_equal(r.v[3].key, "10.2.");
	assert_string_equal(r.v[4].key, "10.3.");
	assert_int_equal(r.v[4].line, 2);
	access_rules_free(&r);
	/* The widest range: ACCESS_RANGE_MAX keys. */
	assert_int_equal(parse(&r, "10.0-255.:deny", err, sizeof(err)), 0);
	assert_int_equal(r.n, ACCESS_RANGE_MAX);
	access_rules_free(&r);
	refused("10.0-256.:deny", "range");
	refused("10.5-4.:deny", "range");
	refused("10.a-4.:deny", "range");
	refused("1.2.3.4-:deny", "range");
	refused("1.2-3.4-5:deny", NULL);
}

static void
test_errors(void **state)
{
	struct access_rules	r;
	char			err[256];

	(void)state;
	refused("1.2.3.4", "expected");			/* no colon */
	refused("1.2.3.4:permit", "expected");
	refused("1.2.3.4:allowed", "expected");
	refused("1.2.3.4:allow,", "VAR");
	refused("1.2.3.4:allow,X", "VAR");
	refused("1.2.3.4:allow,X=", "VAR");
	refused("1.2.3.4:allow,X=\"abc", "closing");
	refused("1.2.3.4:allow,X=\"a\"junk", "VAR");
	refused("1.2.3.4:allow,X-Y=\"a\"", "variable name");
	refused("10.1:deny", "prefix");			/* never matches */
	refused("010.:deny", "prefix");
	refused("256.:deny", "prefix");
	refused("1.2.3.4.5.:deny", "prefix");
	refused("10.0.0.0/33:deny", "network");
	refused("10.0.0.0/08:deny", "network");
	refused("10.0.0.0/:deny", "network");
	refused("=host.:deny", "=name");
	refused("=ho st:deny", "expected");
	refused("=ho\001st:deny", "white space");
	refused("=h*st:deny", "=name");
	refused("1.2.3.4:allow,RBLSMTPD=\"a\tb\"", "RBLSMTPD");
	refused("1.2.3.4:allow,MOAT_SCORE=\"x\"", "MOAT_SCORE");
	refused("1.2.3.4:allow,MOAT_SCORE=\"1001\"", "MOAT_SCORE");
	refused("1.2.3.4:allow,MOAT_SCORE=\"nan\"", "MOAT_SCORE");
	refused("1.2.3.4:allow,MOAT_SKIP=\"dns;bl\"", "MOAT_SKIP");
	/* The line number of the first bad line. */
	assert_int_equal(parse(&r, "# c\n\n1.2.3.4:deny\n:allow\nbad\n", err,
	    sizeof(err)), -1);
	assert_true(strncmp(err, "5: ", 3) == 0);
	access_rules_free(&r);
	/* A NUL byte inside a line. */
	access_rules_init(&r);
	assert_int_equal(access_parse(&r, "1.2.3.4:deny\0x\n", 15, err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "NUL"));
	access_rules_free(&r);
}

/* Builds "KEY:allow,NAME=/VALUE/" with the given lengths. */
static char *
line_of(size_t key, size_t name, size_t value)
{
	char	*s = malloc(key + name + value + 64), *p = s;

	if (key > 0) {
		*p++ = '=';
		memset(p, 'a', key - 1);
		p += key - 1;
	}
	memcpy(p, ":allow,", 7);
	p += 7;
	memset(p, 'N', name);
	p += name;
	*p++ = '=';
	*p++ = '/';
	memset(p, 'v', value);
	p += value;
	*p++ = '/';
	*p = '\0';
	return s;
}

static void
test_limits(void **state)
{
	struct access_rules	 r;
	char			 err[256], *s;
	size_t			 i;

	(void)state;
	/* Key, variable name, value: N and N + 1. */
	s = line_of(ACCESS_KEY_MAX, 1, 1);
	assert_int_equal(parse(&r, s, err, sizeof(err)), 0);
	access_rules_free(&r);
	free(s);
	s = line_of(ACCESS_KEY_MAX + 1, 1, 1);
	refused(s, "key longer");
	free(s);
	s = line_of(1, ACCESS_VAR_NAME_MAX, 1);
	assert_int_equal(parse(&r, s, err, sizeof(err)), 0);
	access_rules_free(&r);
	free(s);
	s = line_of(1, ACCESS_VAR_NAME_MAX + 1, 1);
	refused(s, "variable name");
	free(s);
	s = line_of(1, 1, ACCESS_VALUE_MAX);
	assert_int_equal(parse(&r, s, err, sizeof(err)), 0);
	access_rules_free(&r);
	free(s);
	s = line_of(1, 1, ACCESS_VALUE_MAX + 1);
	refused(s, "value longer");
	free(s);
	/* A line of ACCESS_LINE_MAX bytes, and one more. */
	s = malloc(ACCESS_LINE_MAX + 8);
	memcpy(s, ":allow,X=/", 10);
	memset(s + 10, 'v', ACCESS_LINE_MAX - 11);
	s[ACCESS_LINE_MAX - 1] = '/';
	s[ACCESS_LINE_MAX] = '\0';
	access_rules_init(&r);
	assert_int_equal(access_parse(&r, s, ACCESS_LINE_MAX, err,
	    sizeof(err)), -1);		/* the value is past its own limit */
	assert_null(strstr(err, "line longer"));
	access_rules_free(&r);
	memset(s, '#', ACCESS_LINE_MAX);
	assert_int_equal(parse(&r, s, err, sizeof(err)), 0);
	access_rules_free(&r);
	s[ACCESS_LINE_MAX] = '#';
	s[ACCESS_LINE_MAX + 1] = '\0';
	refused(s, "line longer");
	free(s);
	/* ACCESS_VARS_MAX variables, and one more. */
	s = malloc(32 + (ACCESS_VARS_MAX + 1) * 8);
	memcpy(s, ":allow", 7);
	for (i = 0; i < ACCESS_VARS_MAX; i++)
		snprintf(s + strlen(s), 16, ",V%zu=\"\"", i);
	assert_int_equal(parse(&r, s, err, sizeof(err)), 0);
	access_rules_free(&r);
	snprintf(s + strlen(s), 16, ",W=\"\"");
	refused(s, "variables");
	free(s);
}

static void
test_cdb_values(void **state)
{
	struct access_rules	r;
	char			err[256];

	(void)state;
	access_rules_init(&r);
	assert_int_equal(access_add_cdb(&r, "127.", 4, "+RELAYCLIENT=\0", 14,
	    err, sizeof(err)), 0);
	assert_true(r.v[0].relay);
	assert_int_equal(access_add_cdb(&r, "", 0, "", 0, err, sizeof(err)),
	    0);
	assert_int_equal(access_add_cdb(&r, "1.2.3.4", 7, "D\0+X=y\0", 7,
	    err, sizeof(err)), 0);
	assert_true(r.v[2].deny);
	assert_int_equal(r.v[2].line, 0);
	/* Not NUL-terminated; a key tcprules could not make sense of. */
	assert_int_equal(access_add_cdb(&r, "1.2.3.5", 7, "D", 1, err,
	    sizeof(err)), -1);
	assert_int_equal(access_add_cdb(&r, "1.2 .3", 6, "", 0, err,
	    sizeof(err)), -1);
	access_rules_free(&r);
}

/* The key of the rule the client gets, "-" for none. */
static const char *
who(const struct access_rules *r, const char *ip, const char *host,
    int *step)
{
	const struct access_rule	*m;
	uint8_t				 a[16];
	int				 fam = strchr(ip, ':') ? AF_INET6 : AF_INET;

	inet_pton(fam, ip, a);
	m = access_match(r, ip, fam, a, host, step);
	return m != NULL ? m->key : "-";
}

static void
test_order(void **state)
{
	struct access_rules	r;
	char			err[256];
	int			step;

	(void)state;
	assert_int_equal(parse(&r,
	    "10.:deny\n"
	    "10.1.:allow\n"
	    "10.1.2.3:allow\n"
	    "10.1.0.0/24:allow\n"
	    "10.9.9.0/24:deny\n"
	    "10.9.9.:allow\n"
	    "=mx.example:allow\n"
	    "=.example:deny\n"
	    "=:allow\n"
	    ":deny\n"
	    "::1:allow\n"
	    "2001:db8::deny\n"
	    "2001:db8::/32:allow\n"
	    "2001:db8:0:1::/64:deny\n"
	    "joe@10.2.2.2:allow\n", err, sizeof(err)), 0);
	assert_string_equal(who(&r, "10.1.2.3", "mx.example", &step),
	    "10.1.2.3");
	assert_int_equal(step, 1);
	/* =host before the prefixes, as tcpserver. */
	assert_string_equal(who(&r, "10.7.7.7", "mx.example", &step),
	    "=mx.example");
	assert_int_equal(step, 2);
	assert_string_equal(who(&r, "10.7.7.7", NULL, &step), "10.");
	assert_int_equal(step, 3);
	assert_true(access_host_matters(&r, step));
	/* The longer of prefix and network; a tie goes to the earlier. */
	assert_string_equal(who(&r, "10.1.0.9", NULL, &step), "10.1.0.0/24");
	assert_string_equal(who(&r, "10.1.7.9", NULL, &step), "10.1.");
	assert_string_equal(who(&r, "10.9.9.9", NULL, &step), "10.9.9.0/24");
	/* Suffixes, then "=", then the default. */
	assert_string_equal(who(&r, "192.0.2.1", "a.b.example", &step),
	    "=.example");
	assert_int_equal(step, 4);
	assert_string_equal(who(&r, "192.0.2.1", "a.b.other", &step), "=");
	assert_int_equal(step, 5);
	assert_string_equal(who(&r, "192.0.2.1", NULL, &step), "");
	assert_int_equal(step, 6);
	assert_string_equal(who(&r, "10.2.2.2", NULL, &step), "10.");
	/* IPv6: exact, text prefixes ending in ':', networks. */
	assert_string_equal(who(&r, "::1", NULL, &step), "::1");
	/* "2001:db8:" weighs 32 bits, as the /32 a line after it. */
	assert_string_equal(who(&r, "2001:db8::5", NULL, &step),
	    "2001:db8:");
	assert_string_equal(who(&r, "2001:db8:0:1::5", NULL, &step),
	    "2001:db8:0:1::/64");
	assert_string_equal(who(&r, "2001:db8:1::5", NULL, &step),
	    "2001:db8:");
	access_rules_free(&r);
	/* Without name rules nothing waits for a name. */
	assert_int_equal(parse(&r, "10.:deny\n:allow\n", err, sizeof(err)),
	    0);
	assert_string_equal(who(&r, "10.7.7.7", NULL, &step), "10.");
	assert_false(access_host_matters(&r, step));
	assert_string_equal(who(&r, "11.7.7.7", NULL, &step), "");
	assert_false(access_host_matters(&r, step));
	access_rules_free(&r);
	/* Duplicate keys: the first line wins, as cdb_find. */
	assert_int_equal(parse(&r, "1.2.3.4:deny\n1.2.3.4:allow\n", err,
	    sizeof(err)), 0);
	assert_string_equal(who(&r, "1.2.3.4", NULL, &step), "1.2.3.4");
	assert_int_equal(access_match(&r, "1.2.3.4", AF_INET,
	    (const uint8_t *)"\1\2\3\4", NULL, &step)->line, 1);
	assert_string_equal(who(&r, "1.2.3.5", NULL, &step), "-");
	assert_int_equal(step, 0);
	access_rules_free(&r);
}

/* ---- the filter ---------------------------------------------------------- */

/* A rules file in /tmp with text; its path in path. */
static void
rules_file(char *path, size_t n, const char *text)
{
	FILE *fp;

	snprintf(path, n, "/tmp/test_access_%d.rules", (int)getpid());
	fp = fopen(path, "w");
	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
}

static char rules_path[128];

static void
setup(struct harness *h, const char *text, const char *deny_at)
{
	const char *path = rules_path;

	rules_file(rules_path, sizeof(rules_path), text);
	assert_int_equal(harness_init(h, &filter_access, "example.test",
	    (const char *[]){ "rules", path, "deny_at", deny_at, NULL }), 0);
	h->pol.state[filter_index(&filter_access)] = h->state;
	h->pol.conf[filter_index(&filter_access)] = h->conf;
	h->t.seq = 1;
}

static void
teardown(struct harness *h)
{
	void *d = filter_data(&h->s, &filter_access);

	free(d);
	free(h->s.pl_data);
	free(h->s.sev);
	harness_free(h);
	unlink(rules_path);
}

static enum verdict_code
call(struct harness *h, enum stage st, int *smtp)
{
	struct filter_call	c = { &h->s, h->conf, h->state, &h->pol,
	    session_step(&h->s), false, filter_data(&h->s, &filter_access) };
	struct verdict		v;

	h->s.pending = st;
	v = filter_access.hook[st](&c);
	if (smtp != NULL)
		*smtp = v.smtp;
	return v.code;
}

static void
test_filter_deny(void **state)
{
	struct harness	h;
	int		code;

	(void)state;
	setup(&h, "192.0.2.9:deny\n:allow\n", "connect");
	harness_client(&h, "192.0.2.9");
	assert_int_equal(call(&h, STAGE_CONNECT, &code), V_DENY_DISCONNECT);
	assert_int_equal(code, 554);
	assert_int_equal(h.s.sev->nev, 1);
	assert_string_equal(h.s.sev->ev[0].name, "ACCESS_DENY");
	assert_non_null(strstr(h.s.sev->ev[0].detail, ".rules:1 deny"));
	teardown(&h);
	/* deny_at = rcpt: connect goes on, each recipient is refused but
	 * postmaster@. */
	setup(&h, "192.0.2.9:deny\n:allow\n", "rcpt");
	harness_client(&h, "192.0.2.9");
	assert_int_equal(call(&h, STAGE_CONNECT, NULL), V_CONTINUE);
	harness_rcpt(&h, "<user@example.test>");
	assert_int_equal(call(&h, STAGE_RCPT, &code), V_DENY);
	assert_int_equal(code, 554);
	assert_non_null(strstr(h.t.verdict_text, ".rules:1)"));
	harness_rcpt(&h, "<postmaster@example.test>");
	h.r.exempt = true;
	assert_int_equal(call(&h, STAGE_RCPT, NULL), V_CONTINUE);
	teardown(&h);
	/* Anybody else: no opinion. */
	setup(&h, "192.0.2.9:deny\n:allow\n", "rcpt");
	harness_client(&h, "192.0.2.10");
	assert_int_equal(call(&h, STAGE_CONNECT, NULL), V_CONTINUE);
	harness_rcpt(&h, "<user@example.test>");
	assert_int_equal(call(&h, STAGE_RCPT, NULL), V_CONTINUE);
	teardown(&h);
}

static void
test_filter_allow(void **state)
{
	struct harness	h;
	int		code;

	(void)state;
	setup(&h, "192.0.2.1:allow,RELAYCLIENT=\"\"\n"
	    "192.0.2.2:allow,RBLSMTPD=\"\"\n"
	    "192.0.2.3:allow,RBLSMTPD=\"-go away\"\n"
	    "192.0.2.4:allow,RBLSMTPD=\"later\"\n"
	    "192.0.2.5:allow,MOAT_SKIP=\"dnsbl,fcrdns\",MOAT_SCORE=\"2.5\"\n"
	    ":allow\n", "connect");
	harness_client(&h, "192.0.2.1");
	assert_int_equal(call(&h, STAGE_CONNECT, NULL), V_CONTINUE);
	assert_true(h.s.trusted);
	teardown(&h);

	setup(&h, "192.0.2.2:allow,RBLSMTPD=\"\"\n", "connect");
	harness_client(&h, "192.0.2.2");
	assert_int_equal(call(&h, STAGE_CONNECT, NULL), V_CONTINUE);
	assert_true(filter_skipped(&h.s, &filter_dnsbl));
	assert_false(filter_skipped(&h.s, &filter_fcrdns));
	assert_false(h.s.trusted);
	teardown(&h);

	setup(&h, "192.0.2.3:allow,RBLSMTPD=\"-go away\"\n"
	    "192.0.2.4:allow,RBLSMTPD=\"later\"\n", "connect");
	harness_client(&h, "192.0.2.3");
	assert_int_equal(call(&h, STAGE_CONNECT, NULL), V_CONTINUE);
	harness_rcpt(&h, "<user@example.test>");
	assert_int_equal(call(&h, STAGE_RCPT, &code), V_DENY);
	assert_int_equal(code, 554);
	assert_string_equal(h.t.verdict_text, "go away");
	h.s.authenticated = true;	/* a submission client is spared */
	assert_int_equal(call(&h, STAGE_RCPT, NULL), V_CONTINUE);
	teardown(&h);
	setup(&h, "192.0.2.4:allow,RBLSMTPD=\"later\"\n", "connect");
	harness_client(&h, "192.0.2.4");
	assert_int_equal(call(&h, STAGE_CONNECT, NULL), V_CONTINUE);
	harness_rcpt(&h, "<user@example.test>");
	assert_int_equal(call(&h, STAGE_RCPT, &code), V_DEFER);
	assert_int_equal(code, 451);
	assert_string_equal(h.t.verdict_text, "later");
	teardown(&h);

	setup(&h, "192.0.2.5:allow,MOAT_SKIP=\"dnsbl,fcrdns\","
	    "MOAT_SCORE=\"2.5\"\n", "connect");
	harness_client(&h, "192.0.2.5");
	assert_int_equal(call(&h, STAGE_CONNECT, NULL), V_CONTINUE);
	assert_true(filter_skipped(&h.s, &filter_dnsbl));
	assert_true(filter_skipped(&h.s, &filter_fcrdns));
	harness_rcpt(&h, "<user@example.test>");
	assert_int_equal(call(&h, STAGE_RCPT, NULL), V_CONTINUE);
	assert_int_equal(call(&h, STAGE_RCPT, NULL), V_CONTINUE);
	assert_int_equal(h.t.nsym, 1);		/* once per transaction */
	assert_string_equal(h.t.sym[0].name, "ACCESS");
	assert_true(h.t.sym[0].score == 2.5);
	teardown(&h);
}

static void
test_filter_load_errors(void **state)
{
	struct harness	h;
	char		path[128];

	(void)state;
	rules_file(path, sizeof(path), ":allow,MOAT_SKIP=\"nosuch\"\n");
	assert_int_equal(harness_init(&h, &filter_access, "example.test",
	    (const char *[]){ "rules", path, NULL }), -1);
	harness_free(&h);
	rules_file(path, sizeof(path), ":allow\n1.2.3:deny\n");
	assert_int_equal(harness_init(&h, &filter_access, "example.test",
	    (const char *[]){ "rules", path, NULL }), -1);
	harness_free(&h);
	rules_file(path, sizeof(path), ":allow\n");
	assert_int_equal(harness_init(&h, &filter_access, "example.test",
	    (const char *[]){ "rules", path, "deny_at", "helo", NULL }), -1);
	harness_free(&h);
	unlink(path);
}

/* A name rule that could beat the address's rule waits for the name
 * (fcrdns in the pipeline, its lookups out). */
static void
test_filter_name_wait(void **state)
{
	struct harness	 h;
	int		 code;

	(void)state;
	setup(&h, "=mx.example:allow,RELAYCLIENT=\"\"\n10.:deny\n:allow\n",
	    "connect");
	harness_client(&h, "10.0.0.1");
	/* fcrdns has started its lookups: its data is set, work pending. */
	filter_data_set(&h.s, &filter_fcrdns, &h);
	filter_work_add(&h.s, &filter_fcrdns);
	assert_int_equal(call(&h, STAGE_CONNECT, NULL), V_CONTINUE);
	assert_int_equal(call(&h, STAGE_HELO, NULL), V_CONTINUE);
	assert_false(h.s.trusted);
	/* The name comes: decided at MAIL. */
	snprintf(h.s.rdns, sizeof(h.s.rdns), "mx.example");
	h.s.rdns_verified = true;
	filter_work_done(&h.s, &filter_fcrdns);
	assert_int_equal(call(&h, STAGE_MAIL, NULL), V_CONTINUE);
	assert_true(h.s.trusted);
	filter_data_set(&h.s, &filter_fcrdns, NULL);
	teardown(&h);

	/* No name by the end of the lookups: the prefix rule, at HELO. */
	setup(&h, "=mx.example:allow\n10.:deny\n:allow\n", "connect");
	harness_client(&h, "10.0.0.1");
	filter_data_set(&h.s, &filter_fcrdns, &h);
	filter_work_add(&h.s, &filter_fcrdns);
	assert_int_equal(call(&h, STAGE_CONNECT, NULL), V_CONTINUE);
	filter_work_done(&h.s, &filter_fcrdns);
	assert_int_equal(call(&h, STAGE_HELO, &code), V_DENY_DISCONNECT);
	assert_int_equal(code, 554);
	filter_data_set(&h.s, &filter_fcrdns, NULL);
	teardown(&h);

	/* Still pending at RCPT: decided there with what is known. */
	setup(&h, "=mx.example:allow\n10.:deny\n:allow\n", "rcpt");
	harness_client(&h, "10.0.0.1");
	filter_data_set(&h.s, &filter_fcrdns, &h);
	filter_work_add(&h.s, &filter_fcrdns);
	assert_int_equal(call(&h, STAGE_CONNECT, NULL), V_CONTINUE);
	assert_int_equal(call(&h, STAGE_MAIL, NULL), V_CONTINUE);
	harness_rcpt(&h, "<user@example.test>");
	assert_int_equal(call(&h, STAGE_RCPT, NULL), V_DENY);
	filter_data_set(&h.s, &filter_fcrdns, NULL);
	teardown(&h);
}

static void
test_filter_ipv6(void **state)
{
	struct harness		 h;
	struct sockaddr_in6	*sin6;

	(void)state;
	setup(&h, "2001:db8::/32 deny\n192.0.2.7:deny\n:allow\n", "connect");
	sin6 = (struct sockaddr_in6 *)&h.s.peer;
	sin6->sin6_family = AF_INET6;
	inet_pton(AF_INET6, "2001:db8::25", &sin6->sin6_addr);
	assert_int_equal(call(&h, STAGE_CONNECT, NULL), V_DENY_DISCONNECT);
	teardown(&h);
	/* An IPv4-mapped client matches IPv4 keys. */
	setup(&h, "2001:db8::/32 deny\n192.0.2.7:deny\n:allow\n", "connect");
	sin6 = (struct sockaddr_in6 *)&h.s.peer;
	sin6->sin6_family = AF_INET6;
	inet_pton(AF_INET6, "::ffff:192.0.2.7", &sin6->sin6_addr);
	assert_int_equal(call(&h, STAGE_CONNECT, NULL), V_DENY_DISCONNECT);
	teardown(&h);
}

static void
test_defaults_load(void **state)
{
	struct harness h;

	(void)state;
	assert_int_equal(harness_init(&h, &filter_access, "example.test",
	    NULL), 0);
	h.pol.state[filter_index(&filter_access)] = h.state;
	harness_client(&h, "192.0.2.1");
	assert_int_equal(harness_call(&h, STAGE_CONNECT), V_CONTINUE);
	harness_free(&h);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tcprules_lines),
		cmocka_unit_test(test_list_lines),
		cmocka_unit_test(test_ranges),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_cdb_values),
		cmocka_unit_test(test_order),
		cmocka_unit_test(test_filter_deny),
		cmocka_unit_test(test_filter_allow),
		cmocka_unit_test(test_filter_load_errors),
		cmocka_unit_test(test_filter_name_wait),
		cmocka_unit_test(test_filter_ipv6),
		cmocka_unit_test(test_defaults_load),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
