/*
 * test_filter_lists.c: the list parser at every limit (line, entry,
 * pattern, reply text, pattern count), entry kinds and their precedence,
 * pattern errors as file:line, match limits against a runaway pattern,
 * and the filter's hooks: allow skips, deny verdicts naming their rule,
 * exempt recipients, the shipped badrcptto-localparts file.
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
#include "../../src/filters/lists.h"

extern const struct filter filter_lists;
extern const struct filter filter_dnsbl;
extern const struct filter filter_spf;

/* ---- the parser ------------------------------------------------------ */

static struct lists_set *
parse(enum lists_kind k, const char *text, bool all_regex, char *err,
    size_t errlen)
{
	struct lists_set *l = lists_set_new(k, 100000, 5000);

	assert_non_null(l);
	err[0] = '\0';
	if (lists_set_parse(l, "t", text, strlen(text), all_regex, err,
	    errlen) == -1) {
		lists_set_free(l);
		return NULL;
	}
	assert_int_equal(lists_set_finish(l), 0);
	return l;
}

/* Parses, expecting an error that contains want. */
static void
parse_fails(enum lists_kind k, const char *text, bool all_regex,
    const char *want)
{
	char err[512];

	assert_null(parse(k, text, all_regex, err, sizeof(err)));
	if (strstr(err, want) == NULL)
		fail_msg("error '%s' lacks '%s'", err, want);
}

static const struct lists_entry *
m(struct lists_set *l, const char *subject)
{
	return lists_match(l, subject, NULL, NULL);
}

static void
test_kinds_and_precedence(void **state)
{
	char			 err[256];
	struct lists_set	*l;
	const struct lists_entry *e;

	(void)state;
	l = parse(LISTS_SENDER, "# comment\n\n  spam@Bad.Example  \n"
	    "@worse.example\n.sub.example  Go away\n/^[0-9]+@/\n"
	    "spam@bad.example second\n", false, err, sizeof(err));
	assert_non_null(l);
	assert_int_equal(l->n, 5);
	e = m(l, "SPAM@bad.example");
	assert_non_null(e);
	assert_int_equal(e->line, 3);			/* the first line wins */
	assert_null(e->text);
	assert_string_equal(lists_rule(e), "lists:t:3");
	assert_null(m(l, "ok@bad.example"));
	assert_int_equal(m(l, "a@worse.example")->type, LISTS_DOMAIN);
	assert_null(m(l, "a@x.worse.example"));		/* @d is d only */
	e = m(l, "a@x.y.sub.example");
	assert_non_null(e);
	assert_int_equal(e->type, LISTS_SUFFIX);
	assert_string_equal(e->text, "Go away");
	assert_null(m(l, "a@sub.example"));		/* .d: under d */
	assert_null(m(l, "a@notsub.example"));
	assert_int_equal(m(l, "12345@anywhere.test")->type, LISTS_REGEX);
	assert_null(m(l, "a12345@anywhere.test"));
	assert_null(m(l, ""));
	lists_set_free(l);

	/* Names: exact, .suffix, trailing dots, no '@'. */
	l = parse(LISTS_HELO, "Friend.Example.\n.dyn.example  # a note\n"
	    "/^localhost$/\n[192.0.2.1]\n", false, err, sizeof(err));
	assert_non_null(l);
	assert_non_null(m(l, "friend.example"));
	assert_non_null(m(l, "FRIEND.example."));
	e = m(l, "host-1.dyn.example");
	assert_non_null(e);
	assert_null(e->text);				/* '#': a comment */
	assert_null(m(l, "dyn.example"));
	assert_non_null(m(l, "LOCALHOST"));		/* patterns: caseless */
	assert_non_null(m(l, "[192.0.2.1]"));
	lists_set_free(l);
	parse_fails(LISTS_HELO, "a@b.example\n", false, "t:1: 'a@b.example' "
	    "is not a name");
	parse_fails(LISTS_SENDER, "\nbare.example\n", false, "t:2: "
	    "'bare.example' is not user@domain");
	parse_fails(LISTS_SENDER, "@\n", false, "names no domain");
	parse_fails(LISTS_HELO, ".\n", false, "names no domain");
}

static void
test_ip_lists(void **state)
{
	char			 err[256];
	struct lists_set	*l;
	struct sockaddr_in	 sin = { .sin_family = AF_INET };
	struct sockaddr_in6	 sin6 = { .sin6_family = AF_INET6 };

	(void)state;
	l = parse(LISTS_IP, "192.0.2.0/24 Your network is listed\n10.1.\n"
	    "2001:db8::/32\n/^198\\.51\\.100\\./\n", false, err, sizeof(err));
	assert_non_null(l);
	inet_pton(AF_INET, "192.0.2.77", &sin.sin_addr);
	assert_string_equal(lists_match(l, "192.0.2.77", (struct sockaddr *)
	    &sin, NULL)->text, "Your network is listed");
	inet_pton(AF_INET, "10.1.200.3", &sin.sin_addr);
	assert_int_equal(lists_match(l, "10.1.200.3", (struct sockaddr *)&sin,
	    NULL)->line, 2);
	inet_pton(AF_INET, "10.2.0.1", &sin.sin_addr);
	assert_null(lists_match(l, "10.2.0.1", (struct sockaddr *)&sin, NULL));
	inet_pton(AF_INET6, "2001:db8::5", &sin6.sin6_addr);
	assert_non_null(lists_match(l, "2001:db8::5", (struct sockaddr *)
	    &sin6, NULL));
	inet_pton(AF_INET, "198.51.100.9", &sin.sin_addr);
	assert_int_equal(lists_match(l, "198.51.100.9", (struct sockaddr *)
	    &sin, NULL)->type, LISTS_REGEX);
	lists_set_free(l);
	parse_fails(LISTS_IP, "192.0.2.0/33\n", false, "t:1: '192.0.2.0/33' "
	    "is not an address");
	parse_fails(LISTS_IP, "example.com\n", false, "is not an address");
}

/* A line of n bytes: an entry of e bytes padded with a text. */
static char *
line_of(const char *head, size_t n, char fill)
{
	char *s = malloc(n + 2);

	assert_non_null(s);
	memset(s, fill, n);
	memcpy(s, head, strlen(head));
	s[n] = '\n';
	s[n + 1] = '\0';
	return s;
}

static void
test_limits(void **state)
{
	char			 err[256], *s, *p;
	struct lists_set	*l;
	size_t			 i;

	(void)state;
	/* Line: LIMIT_LIST_LINE bytes is taken, one more is refused. */
	s = line_of("a@b.example ", LIMIT_LIST_LINE, ' ');
	memset(s + LIMIT_LIST_LINE - LISTS_TEXT_MAX, 'x', LISTS_TEXT_MAX);
	l = parse(LISTS_SENDER, s, false, err, sizeof(err));
	assert_non_null(l);
	assert_int_equal(strlen(l->v[0].text), LISTS_TEXT_MAX);
	lists_set_free(l);
	free(s);
	s = line_of("a@b.example", LIMIT_LIST_LINE + 1, ' ');
	parse_fails(LISTS_SENDER, s, false, "t:1: line longer than 1024");
	free(s);

	/* Reply text: LISTS_TEXT_MAX, then one more; printable only. */
	s = line_of("a@b.example ", 12 + LISTS_TEXT_MAX + 1, 'y');
	parse_fails(LISTS_SENDER, s, false, "reply text longer than 200");
	free(s);
	parse_fails(LISTS_SENDER, "a@b.example bad\x01text\n", false,
	    "printable ASCII");
	parse_fails(LISTS_SENDER, "a@b.example caf\xc3\xa9\n", false,
	    "printable ASCII");

	/* Address entry: LISTS_ADDR_MAX, then one more. */
	s = line_of("@", LISTS_ADDR_MAX, 'd');
	l = parse(LISTS_SENDER, s, false, err, sizeof(err));
	assert_non_null(l);
	lists_set_free(l);
	free(s);
	s = line_of("@", LISTS_ADDR_MAX + 1, 'd');
	parse_fails(LISTS_SENDER, s, false, "entry longer than 320");
	free(s);
	/* Name entry: LISTS_NAME_MAX, then one more. */
	s = line_of(".", LISTS_NAME_MAX, 'd');
	l = parse(LISTS_RDNS, s, false, err, sizeof(err));
	assert_non_null(l);
	lists_set_free(l);
	free(s);
	s = line_of(".", LISTS_NAME_MAX + 1, 'd');
	parse_fails(LISTS_RDNS, s, false, "entry longer than 256");
	free(s);

	/* Pattern: LISTS_PATTERN_MAX bytes, then one more. */
	s = line_of("", LISTS_PATTERN_MAX, 'a');
	l = parse(LISTS_RCPT, s, true, err, sizeof(err));
	assert_non_null(l);
	lists_set_free(l);
	free(s);
	s = line_of("", LISTS_PATTERN_MAX + 1, 'a');
	parse_fails(LISTS_RCPT, s, true, "pattern longer than 512");
	free(s);
	s = line_of("/", LISTS_PATTERN_MAX + 2, 'a');
	s[LISTS_PATTERN_MAX + 1] = '/';
	l = parse(LISTS_RCPT, s, false, err, sizeof(err));
	assert_non_null(l);
	lists_set_free(l);
	free(s);

	/* Patterns per list: LISTS_PATTERNS_MAX, then one more. */
	s = malloc((LISTS_PATTERNS_MAX + 1) * 4 + 1);
	assert_non_null(s);
	for (p = s, i = 0; i < LISTS_PATTERNS_MAX; i++, p += 4)
		memcpy(p, "^a$\n", 4);
	*p = '\0';
	l = parse(LISTS_RCPT, s, true, err, sizeof(err));
	assert_non_null(l);
	assert_int_equal(l->npat, LISTS_PATTERNS_MAX);
	lists_set_free(l);
	memcpy(p, "^b$\n", 5);
	parse_fails(LISTS_RCPT, s, true, "t:4097: more than 4096 patterns");
	free(s);

	/* NUL bytes and a last line without a newline. */
	l = lists_set_new(LISTS_SENDER, 100000, 5000);
	assert_int_equal(lists_set_parse(l, "t", "a@b.example\n@c\0d", 16,
	    false, err, sizeof(err)), -1);
	assert_string_equal(err, "t:2: NUL byte");
	lists_set_free(l);
	l = parse(LISTS_SENDER, "a@b.example\n@c.example", false, err,
	    sizeof(err));
	assert_non_null(m(l, "x@c.example"));
	lists_set_free(l);
}

static void
test_patterns(void **state)
{
	char			 err[256];
	struct lists_set	*l;
	bool			 limited = false;
	char			 subject[64];

	(void)state;
	/* A compile error is file:line with PCRE2's reason and offset. */
	parse_fails(LISTS_RCPT, "^ok@\n^(unclosed@\n", true, "t:2: pattern: ");
	parse_fails(LISTS_RCPT, "^ok@\n^(unclosed@\n", true, "at offset 11");
	parse_fails(LISTS_RCPT, "//\n", false, "empty pattern");
	parse_fails(LISTS_RCPT, "\\C\n", true, "pattern: ");
	/* qregex: every line a pattern, slashes not needed; a text. */
	l = parse(LISTS_RCPT, "^[0-9]+@  All digits\n[,|]\n", true, err,
	    sizeof(err));
	assert_non_null(l);
	assert_string_equal(m(l, "123@x.example")->text, "All digits");
	assert_int_equal(m(l, "a,b@x.example")->line, 2);
	assert_null(m(l, "ab@x.example"));
	lists_set_free(l);

	/* A catastrophic pattern on a hostile subject gives up. */
	l = lists_set_new(LISTS_SENDER, 1000, 100);
	assert_int_equal(lists_set_parse(l, "t", "/^(a+)+$/\n", 10, false,
	    err, sizeof(err)), 0);
	assert_int_equal(lists_set_finish(l), 0);
	memset(subject, 'a', 40);
	subject[40] = '!';
	subject[41] = '\0';
	assert_null(lists_match(l, subject, NULL, &limited));
	assert_true(limited);
	subject[40] = '\0';
	limited = false;
	assert_non_null(lists_match(l, subject, NULL, &limited));
	assert_false(limited);
	lists_set_free(l);
}

static void
test_load_errors(void **state)
{
	char			 path[] = "/tmp/moat-test-lists-XXXXXX", err[512];
	int			 fd = mkstemp(path);
	struct lists_set	*l = lists_set_new(LISTS_RCPT, 1000, 100);

	(void)state;
	assert_int_equal(lists_set_load(l, "/nonexistent/x", false, err,
	    sizeof(err)), -1);
	assert_string_equal(err, "/nonexistent/x: No such file or directory");
	(void)!write(fd, "ok@x.example\n/(/\n", 17);
	close(fd);
	assert_int_equal(lists_set_load(l, path, false, err, sizeof(err)), -1);
	assert_non_null(strstr(err, ":2: pattern: "));
	assert_true(strncmp(err, path, strlen(path)) == 0);
	lists_set_free(l);
	unlink(path);
}

/* ---- the filter -------------------------------------------------------- */

static char	tmpdir[] = "/tmp/moat-test-lists-d-XXXXXX";

static const char *
file(const char *name, const char *text)
{
	static char	path[8][256];
	static int	n;
	char		*p = path[n++ % 8];
	FILE		*fp;

	snprintf(p, 256, "%s/%s", tmpdir, name);
	fp = fopen(p, "w");
	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
	return p;
}

static int
hinit(struct harness *h, const char *const *kv)
{
	int rc = harness_init(h, &filter_lists, "example.test", kv);

	/* The allow lists are the default policy's. */
	h->pol.state[filter_index(&filter_lists)] = h->state;
	h->s.id = 1;
	snprintf(h->s.ip, sizeof(h->s.ip), "192.0.2.1");
	harness_client(h, "192.0.2.1");
	return rc;
}

static struct verdict
hcall(struct harness *h, enum stage st)
{
	struct filter_call c = { &h->s, h->conf, h->state, &h->pol,
	    session_step(&h->s), false, NULL };

	c.data = filter_data(&h->s, &filter_lists);
	return h->f->hook[st](&c);
}

static void
hfree(struct harness *h)
{
	free(filter_data(&h->s, &filter_lists));
	free(h->s.pl_data);
	free(h->s.sev);
	harness_free(h);
}

static void
from(struct harness *h, const char *p)
{
	struct str rest;

	assert_int_equal(parse_path(str_make(p, strlen(p)), &h->t.from,
	    &rest, true, false, false), PARSE_OK);
}

static bool
has_evidence(struct harness *h, const char *name, const char *detail)
{
	size_t i;

	for (i = 0; h->s.sev != NULL && i < h->s.sev->nev; i++)
		if (strcmp(h->s.sev->ev[i].name, name) == 0 &&
		    strstr(h->s.sev->ev[i].detail, detail) != NULL)
			return true;
	return false;
}

static void
test_filter_deny(void **state)
{
	const char	*kv[] = {
		"sender_deny", file("bmf", "spam@bad.example\n"
		    "@worse.example  Not from there\n"),
		"rcpt_deny", file("brt", "nobody@example.test\n"),
		"rcpt_deny_regex", file("brt-re", "^[0-9]+@\n"),
		"helo_deny", file("bh", ".dyn.example\n"),
		"ip_deny", file("ipd", "192.0.2.0/24 Go away\n"),
		NULL };
	struct harness	 h;
	struct verdict	 v;

	(void)state;
	assert_int_equal(hinit(&h, kv), 0);
	/* The client's address and HELO: nothing at connect and HELO. */
	assert_int_equal(hcall(&h, STAGE_CONNECT).code, V_CONTINUE);
	snprintf(h.s.helo, sizeof(h.s.helo), "a.dyn.example");
	assert_int_equal(hcall(&h, STAGE_HELO).code, V_CONTINUE);
	/* Sender at MAIL, with the entry's text and rule. */
	from(&h, "<spam@BAD.example>");
	v = hcall(&h, STAGE_MAIL);
	assert_int_equal(v.code, V_DENY);
	assert_int_equal(v.smtp, 553);
	assert_string_equal(v.text, "Sender address rejected");
	assert_non_null(strstr(v.by, "/bmf:1"));
	from(&h, "<x@worse.example>");
	v = hcall(&h, STAGE_MAIL);
	assert_string_equal(v.text, "Not from there");
	assert_true(has_evidence(&h, "LISTS_SENDER_DENY", "bmf:2 x@worse"));
	from(&h, "<ok@fine.example>");
	assert_int_equal(hcall(&h, STAGE_MAIL).code, V_CONTINUE);
	/* Recipient at RCPT: 550 5.1.1. */
	harness_rcpt(&h, "<12345@example.test>");
	v = hcall(&h, STAGE_RCPT);
	assert_int_equal(v.smtp, 550);
	assert_string_equal(v.esc, "5.1.1");
	assert_non_null(strstr(v.by, "/brt-re:1"));
	harness_rcpt(&h, "<nobody@example.test>");
	assert_non_null(strstr(hcall(&h, STAGE_RCPT).by, "/brt:1"));
	/* The client: its address first (entry text), then HELO. */
	harness_rcpt(&h, "<alice@example.test>");
	v = hcall(&h, STAGE_RCPT);
	assert_int_equal(v.smtp, 554);
	assert_string_equal(v.text, "Go away");
	assert_non_null(strstr(v.by, "/ipd:1"));
	harness_client(&h, "198.51.100.1");
	snprintf(h.s.ip, sizeof(h.s.ip), "198.51.100.1");
	v = hcall(&h, STAGE_RCPT);
	assert_int_equal(v.smtp, 550);
	assert_string_equal(v.text, "Helo command rejected: a.dyn.example");
	/* postmaster@ is not judged on the client; trusted neither. */
	harness_rcpt(&h, "<postmaster@example.test>");
	h.r.exempt = true;
	assert_int_equal(hcall(&h, STAGE_RCPT).code, V_CONTINUE);
	harness_rcpt(&h, "<alice@example.test>");
	h.s.trusted = true;
	assert_int_equal(hcall(&h, STAGE_RCPT).code, V_CONTINUE);
	/* ... but the recipient lists apply to everyone. */
	harness_rcpt(&h, "<12@example.test>");
	assert_int_equal(hcall(&h, STAGE_RCPT).code, V_DENY);
	hfree(&h);
}

static void
test_filter_allow(void **state)
{
	const char	*kv[] = {
		"sender_allow", file("sa", "@partner.example\n"),
		"sender_deny", file("sd", ".example\n"),
		"ip_allow", file("ia", "198.51.100.7\n"),
		"ip_deny", file("id", "198.51.100.0/24\n"),
		"rcpt_allow", file("ra", "7@example.test\n"),
		"rcpt_deny_regex", file("rd", "[0-9]@\n"),
		"rdns_allow", file("rda", ".good.example\n"),
		"client_skip", "dnsbl",
		"sender_skip", "spf",
		NULL };
	struct harness	 h;

	(void)state;
	assert_int_equal(hinit(&h, kv), 0);
	/* Client allow: the session skips client_skip's filters. */
	assert_int_equal(hcall(&h, STAGE_CONNECT).code, V_CONTINUE);
	assert_false(filter_skipped(&h.s, &filter_dnsbl));
	harness_client(&h, "198.51.100.7");
	snprintf(h.s.ip, sizeof(h.s.ip), "198.51.100.7");
	assert_int_equal(hcall(&h, STAGE_CONNECT).code, V_CONTINUE);
	assert_true(filter_skipped(&h.s, &filter_dnsbl));
	assert_false(filter_skipped(&h.s, &filter_spf));
	assert_true(has_evidence(&h, "LISTS_IP_ALLOW", "ia:1 198.51.100.7"));
	/* ... and its group's deny entries are cancelled. */
	harness_rcpt(&h, "<alice@example.test>");
	assert_int_equal(hcall(&h, STAGE_RCPT).code, V_CONTINUE);
	/* Sender allow: the transaction skips sender_skip's filters, and
	 * the sender's deny entries do not apply. */
	from(&h, "<a@partner.example>");
	assert_int_equal(hcall(&h, STAGE_MAIL).code, V_CONTINUE);
	assert_true(filter_skipped(&h.s, &filter_spf));
	h.t.skip = 0;
	from(&h, "<a@other.example>");
	assert_int_equal(hcall(&h, STAGE_MAIL).code, V_DENY);
	assert_false(filter_skipped(&h.s, &filter_spf));
	/* Recipient allow beats its deny pattern. */
	harness_rcpt(&h, "<7@example.test>");
	assert_int_equal(hcall(&h, STAGE_RCPT).code, V_CONTINUE);
	harness_rcpt(&h, "<8@example.test>");
	assert_int_equal(hcall(&h, STAGE_RCPT).code, V_DENY);
	hfree(&h);

	/* rDNS allow at RCPT, once verified. */
	assert_int_equal(hinit(&h, kv), 0);
	harness_client(&h, "198.51.100.9");
	snprintf(h.s.ip, sizeof(h.s.ip), "198.51.100.9");
	harness_rcpt(&h, "<alice@example.test>");
	snprintf(h.s.rdns, sizeof(h.s.rdns), "mx.good.example");
	assert_int_equal(hcall(&h, STAGE_RCPT).code, V_DENY);	/* ip_deny */
	assert_false(filter_skipped(&h.s, &filter_dnsbl));
	h.s.rdns_verified = true;
	assert_int_equal(hcall(&h, STAGE_RCPT).code, V_CONTINUE);
	assert_true(filter_skipped(&h.s, &filter_dnsbl));
	hfree(&h);
}

static void
test_filter_config_errors(void **state)
{
	struct harness	 h;
	const char	*bad_skip[] = { "client_skip", "dnsbl nosuch", NULL };
	const char	*bad_file[] = { "helo_deny", file("bad", "ok.example\n"
	    "a@b\n"), NULL };

	(void)state;
	assert_int_equal(hinit(&h, bad_skip), -1);
	harness_free(&h);
	assert_int_equal(hinit(&h, bad_file), -1);
	harness_free(&h);
}

/* No list set: nothing is kept per session (idle sessions cost none). */
static void
test_filter_no_lists(void **state)
{
	struct harness	 h;

	(void)state;
	assert_int_equal(hinit(&h, NULL), 0);
	snprintf(h.s.helo, sizeof(h.s.helo), "client.example");
	from(&h, "<a@b.example>");
	harness_rcpt(&h, "<alice@example.test>");
	h.s.rdns_verified = true;
	snprintf(h.s.rdns, sizeof(h.s.rdns), "mx.b.example");
	assert_int_equal(hcall(&h, STAGE_CONNECT).code, V_CONTINUE);
	assert_int_equal(hcall(&h, STAGE_HELO).code, V_CONTINUE);
	assert_int_equal(hcall(&h, STAGE_MAIL).code, V_CONTINUE);
	assert_int_equal(hcall(&h, STAGE_RCPT).code, V_CONTINUE);
	assert_null(filter_data(&h.s, &filter_lists));
	hfree(&h);
}

/* The shipped file: the seed's "unlikely" local parts. */
static void
test_localparts_file(void **state)
{
	char			 err[512];
	struct lists_set	*l = lists_set_new(LISTS_RCPT, 100000, 5000);
	const char *const	 bad[] = { "12345@example.test",
	    "joe7@example.test", "a,b@example.test", "a|b@example.test",
	    "\"a b\"@example.test", "o'neil@example.test",
	    "a`b@example.test", NULL };
	const char *const	 good[] = { "alice@example.test",
	    "bob.smith@example.test", "b2b-sales@example.test",
	    "postmaster@example.test", "alice+tag@example.test", NULL };
	size_t			 i;

	(void)state;
	assert_int_equal(lists_set_load(l, "etc/badrcptto-localparts", true,
	    err, sizeof(err)), 0);
	assert_int_equal(lists_set_finish(l), 0);
	for (i = 0; bad[i] != NULL; i++)
		if (m(l, bad[i]) == NULL || m(l, bad[i])->text == NULL)
			fail_msg("%s not refused with a text", bad[i]);
	for (i = 0; good[i] != NULL; i++)
		if (m(l, good[i]) != NULL)
			fail_msg("%s refused", good[i]);
	lists_set_free(l);
}

static int
setup(void **state)
{
	(void)state;
	return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kinds_and_precedence),
		cmocka_unit_test(test_ip_lists),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_patterns),
		cmocka_unit_test(test_load_errors),
		cmocka_unit_test(test_filter_deny),
		cmocka_unit_test(test_filter_allow),
		cmocka_unit_test(test_filter_config_errors),
		cmocka_unit_test(test_filter_no_lists),
		cmocka_unit_test(test_localparts_file),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
