/*
 * test_spf_eval.c: the SPF evaluator (src/filters/spf_eval.c): the whole
 * RFC 7208 test suite (tests/spf/rfc7208.txt, made by convert.py) through
 * the real evaluator on a fake resolver, in every answer order (FIFO,
 * LIFO, random, and answers from inside query()), which must all agree;
 * table tests for terms and macros; the §4.6.4 limits at N and N+1;
 * cancelling at every step.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <cmocka.h>

#include "../spf/spf_fake.h"

/* Reads a whole file; NULL when it cannot. */
static char *
slurp(const char *path)
{
	FILE	*f = fopen(path, "rb");
	char	*buf = NULL;
	long	 n;

	if (f == NULL)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 &&
	    fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)n + 1)) !=
	    NULL) {
		if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
			free(buf);
			buf = NULL;
		} else
			buf[n] = '\0';
	}
	fclose(f);
	return buf;
}

static const char *
suite_path(void)
{
	const char *p = getenv("SPF_SUITE");

	return p != NULL ? p : "tests/spf/rfc7208.txt";
}

/* ---- the RFC 7208 suite ---- */

static void
test_rfc7208_suite(void **state)
{
	static const struct { enum fake_mode mode; unsigned seed;
	    const char *name; } modes[] = {
		{ FAKE_FIFO, 0, "fifo" }, { FAKE_LIFO, 0, "lifo" },
		{ FAKE_SYNC, 0, "sync" }, { FAKE_RANDOM, 1, "random1" },
		{ FAKE_RANDOM, 7, "random7" }, { FAKE_RANDOM, 99, "random99" },
	};
	struct fake_zone	 z;
	struct spf_result	 r, first;
	char			*text, why[600];
	int			 bad = 0;
	size_t			 pass = 0;

	(void)state;
	text = slurp(suite_path());
	assert_non_null(text);
	assert_int_equal(fake_load(&z, text, &bad), 0);
	free(text);
	assert_true(z.ncases > 200);
	for (size_t i = 0; i < z.ncases; i++) {
		const struct fake_case *c = &z.cases[i];

		for (size_t m = 0; m < sizeof(modes) / sizeof(modes[0]); m++) {
			if (!fake_run_case(&z, c, modes[m].mode, modes[m].seed,
			    &r)) {
				printf("rfc7208 %s [%s]: never finished\n",
				    c->id, modes[m].name);
				fail();
			}
			if (m == 0) {
				first = r;
				if (fake_case_ok(c, &r, why, sizeof(why)))
					pass++;
				else
					printf("rfc7208 FAIL %s: %s\n", c->id,
					    why);
				continue;
			}
			/* Every order of answers gives the same result. */
			if (r.code != first.code || strcmp(r.explanation,
			    first.explanation) != 0 || r.dns_terms !=
			    first.dns_terms || r.void_lookups !=
			    first.void_lookups) {
				printf("rfc7208 %s: %s differs from fifo\n",
				    c->id, modes[m].name);
				fail();
			}
		}
	}
	printf("rfc7208: %zu of %zu cases pass\n", pass, z.ncases);
	assert_int_equal(pass, z.ncases);
	fake_free(&z);
}

/* ---- running inline zones ---- */

/* Runs one check against zone text (the convert.py format, no cases). */
static struct spf_result
run_zone(const char *zone, const char *ip, const char *helo,
    const char *mailfrom, enum fake_mode mode)
{
	struct fake_zone	z;
	struct fake_case	c;
	struct spf_result	r;
	int			bad = 0;

	assert_int_equal(fake_load(&z, zone, &bad), 0);
	memset(&c, 0, sizeof(c));
	c.ip = (char *)ip;
	c.helo = (char *)helo;
	c.mailfrom = (char *)mailfrom;
	c.zone_from = 0;
	c.zone_to = z.n;
	memset(&r, 0, sizeof(r));
	assert_true(fake_run_case(&z, &c, mode, 5, &r));
	fake_free(&z);
	return r;
}

static enum spf_code
check(const char *zone, const char *ip, const char *mailfrom)
{
	enum spf_code	code = run_zone(zone, ip, "helo.example.org",
			    mailfrom, FAKE_FIFO).code;

	/* the other orders agree */
	assert_int_equal(run_zone(zone, ip, "helo.example.org", mailfrom,
	    FAKE_SYNC).code, code);
	assert_int_equal(run_zone(zone, ip, "helo.example.org", mailfrom,
	    FAKE_LIFO).code, code);
	return code;
}

/* Builds "zone d.example TXT v=spf1 <terms>" plus extra lines. */
static char *
zone_with(const char *terms, const char *extra)
{
	static char	buf[16384];
	size_t		n;

	n = (size_t)snprintf(buf, sizeof(buf), "zone d.example TXT v=spf1");
	for (const char *p = terms; *p != '\0' && n + 5 < sizeof(buf); p++)
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, *p == ' ' ?
		    "\\x20" : "%c", *p);
	snprintf(buf + n, sizeof(buf) - n, "\n%s", extra);
	return buf;
}

/* ---- §4.6.4 limits at N and N+1 ---- */

/* Appends text to a NUL-terminated buffer of n bytes (lint: no strcat). */
static void
append(char *buf, size_t n, const char *text)
{
	size_t l = strlen(buf);

	snprintf(buf + l, n - l, "%s", text);
}

static void
test_dns_term_limit(void **state)
{
	char	terms[1024], extra[1024], more[1024];

	(void)state;
	/* 10 a: terms then a match: pass; 11: permerror. */
	snprintf(extra, sizeof(extra), "zone h.example A 192.0.2.9\n");
	terms[0] = '\0';
	for (int i = 0; i < 10; i++)
		append(terms, sizeof(terms), " a:h.example");
	append(terms, sizeof(terms), " ip4:192.0.2.1 -all");
	assert_int_equal(check(zone_with(terms, extra), "192.0.2.1",
	    "u@d.example"), SPF_PASS);
	assert_true(snprintf(more, sizeof(more), " a:h.example%s", terms) <
	    (int)sizeof(more));
	memcpy(terms, more, sizeof(terms));
	assert_int_equal(check(zone_with(terms, extra), "192.0.2.1",
	    "u@d.example"), SPF_PERMERROR);
	/* include/redirect count too: a loop ends at the 11th. */
	assert_int_equal(check("zone d.example TXT v=spf1\\x20redirect=d.example"
	    "\n", "192.0.2.1", "u@d.example"), SPF_PERMERROR);
	assert_int_equal(check("zone d.example TXT v=spf1\\x20include:d.example"
	    "\n", "192.0.2.1", "u@d.example"), SPF_PERMERROR);
	/* ip4/ip6/all cost nothing: 100 of them are fine. */
	terms[0] = '\0';
	for (int i = 0; i < 60; i++)
		append(terms, sizeof(terms), " ip4:10.0.0.1");
	append(terms, sizeof(terms), " ~all");
	assert_int_equal(check(zone_with(terms, ""), "192.0.2.1",
	    "u@d.example"), SPF_SOFTFAIL);
}

static void
test_void_limit(void **state)
{
	struct spf_result r;

	(void)state;
	assert_int_equal(check(zone_with(" a:n1.example a:n2.example ?all",
	    ""), "192.0.2.1", "u@d.example"), SPF_NEUTRAL);
	assert_int_equal(check(zone_with(" a:n1.example a:n2.example "
	    "mx:n3.example ?all", ""), "192.0.2.1", "u@d.example"),
	    SPF_PERMERROR);
	/* NODATA is void too; an exp= that does not exist is not. */
	r = run_zone(zone_with(" a:h.example a:h.example exp=none.example "
	    "-all", "zone h.example MX 10 mx.example\n"), "192.0.2.1",
	    "helo.example", "u@d.example", FAKE_FIFO);
	assert_int_equal(r.code, SPF_FAIL);
	assert_int_equal(r.void_lookups, 2);
	assert_string_equal(r.explanation, "");
}

static void
test_mx_ptr_limits(void **state)
{
	char	extra[4096];
	size_t	n = 0;

	(void)state;
	/* 10 MX names, the match on the 10th: pass; 11 MX: permerror. */
	for (int i = 1; i <= 10; i++)
		n += (size_t)snprintf(extra + n, sizeof(extra) - n,
		    "zone d.example MX %d m%d.example\nzone m%d.example A "
		    "192.0.2.%d\n", i, i, i, i == 10 ? 1 : 100 + i);
	assert_int_equal(check(zone_with(" mx -all", extra), "192.0.2.1",
	    "u@d.example"), SPF_PASS);
	snprintf(extra + n, sizeof(extra) - n, "zone d.example MX 11 "
	    "m11.example\n");
	assert_int_equal(check(zone_with(" mx -all", extra), "192.0.2.1",
	    "u@d.example"), SPF_PERMERROR);
	/* PTR: only the first 10 names are looked at, no error. */
	n = 0;
	for (int i = 1; i <= 11; i++)
		n += (size_t)snprintf(extra + n, sizeof(extra) - n,
		    "zone 1.2.0.192.in-addr.arpa PTR p%d.d.example\n"
		    "zone p%d.d.example A 192.0.2.%d\n", i, i,
		    i >= 10 ? 1 : 50);
	assert_int_equal(check(zone_with(" ptr -all", extra), "192.0.2.1",
	    "u@d.example"), SPF_PASS);	/* p10 validates */
	n = 0;
	for (int i = 1; i <= 11; i++)
		n += (size_t)snprintf(extra + n, sizeof(extra) - n,
		    "zone 1.2.0.192.in-addr.arpa PTR p%d.d.example\n"
		    "zone p%d.d.example A 192.0.2.%d\n", i, i,
		    i == 11 ? 1 : 50);
	assert_int_equal(check(zone_with(" ptr -all", extra), "192.0.2.1",
	    "u@d.example"), SPF_FAIL);	/* p11 is never looked at */
}

static void
test_record_length(void **state)
{
	char	terms[SPF_RECORD_MAX + 64];
	size_t	n = 0;

	(void)state;
	/* "v=spf1" + terms: exactly SPF_RECORD_MAX bytes passes. */
	while (n + 13 < SPF_RECORD_MAX - 6 - 5)
		n += (size_t)snprintf(terms + n, sizeof(terms) - n,
		    " ip4:10.0.0.1");
	while (n < SPF_RECORD_MAX - 6 - 5)
		terms[n++] = ' ';
	snprintf(terms + n, sizeof(terms) - n, " +all");
	assert_int_equal(strlen(terms) + 6, SPF_RECORD_MAX);
	assert_int_equal(check(zone_with(terms, ""), "192.0.2.1",
	    "u@d.example"), SPF_PASS);
	memmove(terms + 1, terms, strlen(terms) + 1);
	assert_int_equal(check(zone_with(terms, ""), "192.0.2.1",
	    "u@d.example"), SPF_PERMERROR);
}

/* ---- terms ---- */

static void
test_terms(void **state)
{
	static const struct { const char *rec; int ok; } t[] = {
		{ "v=spf1", 0 }, { "v=spf1 ", 0 }, { "V=SPF1 -ALL", 0 },
		{ "v=spf1 a mx ptr -all", 0 },
		{ "v=spf1 a/24//64 mx:%{d}/0 ip6:::1/0 ip4:0.0.0.0/0", 0 },
		{ "v=spf1 a/33", -1 }, { "v=spf1 a//129", -1 },
		{ "v=spf1 a/24/64", -1 }, { "v=spf1 a/032", -1 },
		{ "v=spf1 ip4:1.2.3.4/32", 0 }, { "v=spf1 ip4:1.2.3.4/33", -1 },
		{ "v=spf1 ip4:1.2.3.4/", -1 }, { "v=spf1 ip6:::1/", -1 },
		{ "v=spf1 ip4:1.2.3.04", -1 }, { "v=spf1 ip4:1.2.3", -1 },
		{ "v=spf1 ip4:1.2.3.4//32", -1 }, { "v=spf1 ip4", -1 },
		{ "v=spf1 ip6:::1//33", -1 }, { "v=spf1 ip6::CAFE::BABE", -1 },
		{ "v=spf1 ip6:1::/128", 0 }, { "v=spf1 ip6:1::/129", -1 },
		{ "v=spf1 include", -1 }, { "v=spf1 include:", -1 },
		{ "v=spf1 exists", -1 }, { "v=spf1 exists:x.%{i}", 0 },
		{ "v=spf1 ptr/0", -1 }, { "v=spf1 ptr:", -1 },
		{ "v=spf1 -all.", -1 }, { "v=spf1 -all:x", -1 },
		{ "v=spf1 a:museum", -1 }, { "v=spf1 a:museum.", -1 },
		{ "v=spf1 a:a.museum.", 0 }, { "v=spf1 a:abc.123", -1 },
		{ "v=spf1 a:x.-com", -1 }, { "v=spf1 a:x.xn--zckzah", 0 },
		{ "v=spf1 a:x.1-2", 0 }, { "v=spf1 a:x.com:80", -1 },
		{ "v=spf1 a:%{d}.", -1 }, { "v=spf1 a:%{d}", 0 },
		{ "v=spf1 a:%{d0}", -1 }, { "v=spf1 a:%{d00}", -1 },
		{ "v=spf1 a:%{d999999999999r.-+,/_=}", 0 },
		{ "v=spf1 a:%{c}.x.com", -1 }, { "v=spf1 a:%{a}", -1 },
		{ "v=spf1 a:%(d).x.com", -1 }, { "v=spf1 a:x%", -1 },
		{ "v=spf1 redirect=x.com redirect=x.com", -1 },
		{ "v=spf1 exp=x.com exp=x.com", -1 }, { "v=spf1 exp=", -1 },
		{ "v=spf1 redirect=", -1 }, { "v=spf1 foo=bar foo=bar", 0 },
		{ "v=spf1 foo=", 0 }, { "v=spf1 foo=%x", -1 },
		{ "v=spf1 1foo=bar", -1 }, { "v=spf1 =bar", -1 },
		{ "v=spf1 a.b-c_d=%{l}", 0 }, { "v=spf1 a/b=c", -1 },
		{ "v=spf1 redirect:x.com", -1 }, { "v=spf1 moo", -1 },
		{ "v=spf1 a\r", -1 }, { "v=spf1 \x80", -1 },
		{ "v=spf10", -1 }, { "v=spf1x", -1 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct spf_record_info info;
		int r = spf_record_parse(t[i].rec, strlen(t[i].rec), &info);

		if (r != t[i].ok)
			printf("record \"%s\": %d\n", t[i].rec, r);
		assert_int_equal(r, t[i].ok);
	}
}

static void
test_term_fields(void **state)
{
	const char	*rec = "v=spf1 ~mx:%{d}.x.org/24//64 -ip6:2001:db8::/32";
	struct spf_term	 t;
	size_t		 pos = 6;

	(void)state;
	assert_int_equal(spf_term_next(rec, strlen(rec), &pos, &t), 1);
	assert_int_equal(t.kind, SPF_T_MX);
	assert_int_equal(t.qual, SPF_SOFTFAIL);
	assert_int_equal(t.cidr4, 24);
	assert_int_equal(t.cidr6, 64);
	assert_int_equal(t.arg_len, strlen("%{d}.x.org"));
	assert_memory_equal(rec + t.arg_off, "%{d}.x.org", t.arg_len);
	assert_int_equal(spf_term_next(rec, strlen(rec), &pos, &t), 1);
	assert_int_equal(t.kind, SPF_T_IP6);
	assert_int_equal(t.qual, SPF_FAIL);
	assert_int_equal(t.cidr6, 32);
	assert_int_equal(t.addr[0], 0x20);
	assert_int_equal(t.addr[1], 0x01);
	assert_int_equal(spf_term_next(rec, strlen(rec), &pos, &t), 0);
}

/* ---- macros (§7.4 examples) ---- */

static const struct spf_macro_vars vars4 = {
	.s = "strong-bad@email.example.com", .l = "strong-bad",
	.o = "email.example.com", .d = "email.example.com",
	.i = "192.0.2.3", .p = "mx.example.org", .v = "in-addr",
	.h = "mx.example.org", .c = "192.0.2.3", .r = "mx.moat.test",
	.t = "1700000000",
};

static void
expect(const char *spec, enum spf_macro_ctx ctx, const char *want)
{
	char	out[SPF_EXPLAIN_MAX + 1];
	int	r = spf_macro_expand(spec, strlen(spec), ctx, &vars4, out,
		    sizeof(out));

	if (want == NULL) {
		assert_int_equal(r, -1);
		return;
	}
	if (r != 0 || strcmp(out, want) != 0)
		printf("macro \"%s\": %d \"%s\", want \"%s\"\n", spec, r, out,
		    want);
	assert_int_equal(r, 0);
	assert_string_equal(out, want);
}

static void
test_macros(void **state)
{
	(void)state;
	expect("%{s}", SPF_MACRO_DOMAIN, "strong-bad@email.example.com");
	expect("%{o}", SPF_MACRO_DOMAIN, "email.example.com");
	expect("%{d}", SPF_MACRO_DOMAIN, "email.example.com");
	expect("%{d4}", SPF_MACRO_DOMAIN, "email.example.com");
	expect("%{d3}", SPF_MACRO_DOMAIN, "email.example.com");
	expect("%{d2}", SPF_MACRO_DOMAIN, "example.com");
	expect("%{d1}", SPF_MACRO_DOMAIN, "com");
	expect("%{dr}", SPF_MACRO_DOMAIN, "com.example.email");
	expect("%{d2r}", SPF_MACRO_DOMAIN, "example.email");
	expect("%{l}", SPF_MACRO_DOMAIN, "strong-bad");
	expect("%{l-}", SPF_MACRO_DOMAIN, "strong.bad");
	expect("%{lr}", SPF_MACRO_DOMAIN, "strong-bad");
	expect("%{lr-}", SPF_MACRO_DOMAIN, "bad.strong");
	expect("%{l1r-}", SPF_MACRO_DOMAIN, "strong");
	expect("%{ir}.%{v}._spf.%{d2}", SPF_MACRO_DOMAIN,
	    "3.2.0.192.in-addr._spf.example.com");
	expect("%{lr-}.lp._spf.%{d2}", SPF_MACRO_DOMAIN,
	    "bad.strong.lp._spf.example.com");
	expect("%{ir}.%{v}.%{l1r-}.lp._spf.%{d2}", SPF_MACRO_DOMAIN,
	    "3.2.0.192.in-addr.strong.lp._spf.example.com");
	expect("%{d2}.trusted-domains.example.net", SPF_MACRO_DOMAIN,
	    "example.com.trusted-domains.example.net");
	/* §7.3: delimiters rejoin with '.', %{s} splits on '@' only when
	 * asked; uppercase URL-escapes. */
	expect("%{s-}", SPF_MACRO_DOMAIN, "strong.bad@email.example.com");
	expect("%{s-@}", SPF_MACRO_DOMAIN, NULL);	/* '@' is no delimiter */
	expect("%{S}", SPF_MACRO_DOMAIN, "strong-bad%40email.example.com");
	expect("%%%_%-.x.com", SPF_MACRO_DOMAIN, "% %20.x.com");
	/* trailing dot dropped in domains, kept in explanations */
	expect("%{d}.", SPF_MACRO_DOMAIN, NULL);
	expect("x.%{d}.com.", SPF_MACRO_DOMAIN, "x.email.example.com.com");
	expect("Go %{d}.", SPF_MACRO_EXPLAIN, "Go email.example.com.");
	expect("%{c} %{r} %{t}", SPF_MACRO_EXPLAIN,
	    "192.0.2.3 mx.moat.test 1700000000");
	expect("%{c}.x.com", SPF_MACRO_DOMAIN, NULL);
	expect("%{p2}.x.net", SPF_MACRO_DOMAIN, "example.org.x.net");
	expect("bad %{x}", SPF_MACRO_EXPLAIN, NULL);
	expect("tab\there", SPF_MACRO_EXPLAIN, NULL);
}

/* §7.3: more than 253 bytes drops leftmost labels; N and N+1. */
static void
test_truncation(void **state)
{
	char	spec[4096], out[SPF_DOMAIN_MAX + 1], want[300];
	size_t	n;

	(void)state;
	/* 3 x 63-byte labels, 58 more and ".co": 253 bytes. */
	memset(want, 'a', 192);
	want[63] = want[127] = want[191] = '.';
	memset(want + 192, 'b', 58);
	memcpy(want + 250, ".co", 4);
	assert_int_equal(strlen(want), SPF_DOMAIN_MAX);
	snprintf(spec, sizeof(spec), "%s", want);
	assert_int_equal(spf_macro_expand(spec, strlen(spec),
	    SPF_MACRO_DOMAIN, &vars4, out, sizeof(out)), 0);
	assert_string_equal(out, want);	/* N: kept whole */
	snprintf(spec, sizeof(spec), "z%s", want);	/* N+1 */
	assert_int_equal(spf_macro_expand(spec, strlen(spec),
	    SPF_MACRO_DOMAIN, &vars4, out, sizeof(out)), 0);
	assert_string_equal(out, want + 64);	/* first label gone */
	/* A huge expansion (every %{S} is 30 bytes, 400 of them) still
	 * ends in the last labels, within the fixed buffer. */
	n = 0;
	for (int i = 0; i < 400; i++)
		n += (size_t)snprintf(spec + n, sizeof(spec) - n, "%s",
		    i % 2 ? "%{d}." : "%{S}.");
	snprintf(spec + n, sizeof(spec) - n, "end.org");
	assert_int_equal(spf_macro_expand(spec, strlen(spec),
	    SPF_MACRO_DOMAIN, &vars4, out, sizeof(out)), 0);
	assert_true(strlen(out) <= SPF_DOMAIN_MAX);
	assert_true(strlen(out) > SPF_DOMAIN_MAX - 64);
	assert_string_equal(out + strlen(out) - 8, ".end.org");
	/* Explanations are cut at the buffer. */
	{
		char small[16];

		assert_int_equal(spf_macro_expand(spec, strlen(spec),
		    SPF_MACRO_EXPLAIN, &vars4, small, sizeof(small)), 0);
		assert_int_equal(strlen(small), sizeof(small) - 1);
	}
}

static void
test_name_ok(void **state)
{
	char	name[300];

	(void)state;
	assert_true(spf_name_ok("a.b"));
	assert_true(spf_name_ok("single"));
	assert_false(spf_name_ok(""));
	assert_false(spf_name_ok("a..b"));
	assert_false(spf_name_ok(".a"));
	assert_false(spf_name_ok("a."));
	memset(name, 'x', 63);
	snprintf(name + 63, sizeof(name) - 63, ".y");
	assert_true(spf_name_ok(name));
	memset(name, 'x', 64);
	snprintf(name + 64, sizeof(name) - 64, ".y");
	assert_false(spf_name_ok(name));
}

/* ---- identities, results ---- */

static void
test_identities(void **state)
{
	const char		*zone = "zone d.example TXT "
				    "v=spf1\\x20-all\\x20exp=e.d.example\n"
				    "zone e.d.example TXT %{s}\\x20%{l}\\x20"
				    "%{o}\\x20%{d}\\x20%{h}\n"
				    "zone h.d.example TXT "
				    "v=spf1\\x20ip4:192.0.2.0/24\n";
	struct spf_result	 r;

	(void)state;
	r = run_zone(zone, "192.0.2.1", "h.d.example", "@d.example",
	    FAKE_FIFO);
	assert_int_equal(r.code, SPF_FAIL);
	assert_string_equal(r.explanation, "postmaster@d.example postmaster "
	    "d.example d.example h.d.example");
	assert_string_equal(r.mechanism, "-all");
	assert_int_equal(r.match_cidr, 0);
	/* null sender: postmaster@HELO */
	r = run_zone(zone, "192.0.2.1", "h.d.example", "", FAKE_SYNC);
	assert_int_equal(r.code, SPF_PASS);
	assert_string_equal(r.domain, "h.d.example");
	assert_string_equal(r.mechanism, "ip4:192.0.2.0/24");
	assert_int_equal(r.match_cidr, 24);
	/* malformed and literal domains: none without a query */
	r = run_zone(zone, "192.0.2.1", "[192.0.2.1]", "", FAKE_FIFO);
	assert_int_equal(r.code, SPF_NONE);
	assert_int_equal(r.queries, 0);
	r = run_zone(zone, "::ffff:192.0.2.1", "h", "", FAKE_FIFO);
	assert_int_equal(r.code, SPF_NONE);
	/* v4-mapped is IPv4 */
	r = run_zone(zone, "::ffff:192.0.2.1", "h.d.example", "", FAKE_FIFO);
	assert_int_equal(r.code, SPF_PASS);
}

static void
test_include_cidr(void **state)
{
	struct spf_result r;

	(void)state;
	r = run_zone("zone d.example TXT v=spf1\\x20include:i.example\\x20"
	    "-all\nzone i.example TXT v=spf1\\x20ip4:192.0.0.0/8\n",
	    "192.0.2.1", "h.example", "u@d.example", FAKE_FIFO);
	assert_int_equal(r.code, SPF_PASS);
	assert_string_equal(r.mechanism, "include:i.example");
	assert_int_equal(r.match_cidr, 8);
	assert_int_equal(r.dns_terms, 1);
	assert_string_equal(r.record_domain, "d.example");
	r = run_zone("zone d.example TXT v=spf1\\x20redirect=i.example\n"
	    "zone i.example TXT v=spf1\\x20a\\x20-all\nzone i.example A "
	    "192.0.2.1\n", "192.0.2.1", "h.example", "u@d.example", FAKE_LIFO);
	assert_int_equal(r.code, SPF_PASS);
	assert_string_equal(r.record_domain, "i.example");
	assert_int_equal(r.match_cidr, 32);
	assert_int_equal(r.dns_terms, 2);
}

/* ---- cancelling, ownership ---- */

static bool	cancel_done_ran;

static void
cancel_done(const struct spf_result *r, void *arg)
{
	(void)r;
	(void)arg;
	cancel_done_ran = true;
}

/* Cancels after k answers, for every k: nothing pending is left, done
 * never runs; ASan checks nothing leaks. */
static void
test_cancel_everywhere(void **state)
{
	const char		*zone = "zone d.example TXT v=spf1\\x20mx\\x20"
				    "ptr\\x20include:i.example\\x20"
				    "exists:%{p}.e.example\\x20-all\\x20"
				    "exp=x.example\n"
				    "zone d.example MX 1 a.example\n"
				    "zone d.example MX 2 b.example\n"
				    "zone a.example A 192.0.2.9\n"
				    "zone i.example TXT v=spf1\\x20a:c.example\n"
				    "zone 1.2.0.192.in-addr.arpa PTR h.example\n"
				    "zone h.example A 192.0.2.1\n"
				    "zone x.example TXT %{p}\n";
	struct fake_zone	 z;
	struct spf_params	 p;
	struct spf_check	*c;
	char			 local[8];
	int			 bad, cancels = 0;

	(void)state;
	assert_int_equal(fake_load(&z, zone, &bad), 0);
	for (int k = 0; k < 40; k++) {
		fake.zone = &z;
		fake.from = 0;
		fake.to = z.n;
		fake.mode = (k & 1) ? FAKE_LIFO : FAKE_FIFO;
		fake.cancelled = 0;
		assert_int_equal(fake_params(&p, "192.0.2.1", "h.example",
		    "u@d.example", local, sizeof(local)), 0);
		c = spf_check_start(&fake_resolver, &p, cancel_done, NULL);
		assert_non_null(c);
		cancel_done_ran = false;
		for (int i = 0; i < k && !cancel_done_ran; i++)
			assert_true(fake_drain_one());
		if (cancel_done_ran)
			break;	/* finished in fewer than k answers */
		assert_true(fake.nq > 0);
		spf_check_cancel(c);
		assert_int_equal(fake.nq, 0);
		assert_false(cancel_done_ran);
		cancels++;
	}
	assert_true(cancels >= 8);
	fake_free(&z);
}

static int	reentered;

static void
start_again_done(const struct spf_result *r, void *arg)
{
	struct spf_check *self = arg;

	(void)r;
	spf_check_cancel(self);	/* a no-op from inside done */
	reentered++;
}

/* done may run inside spf_check_start() (sync resolver, no DNS): then
 * it returns NULL. */
static void
test_sync_done(void **state)
{
	struct fake_zone	 z;
	struct spf_params	 p;
	char			 local[8];
	int			 bad;

	(void)state;
	assert_int_equal(fake_load(&z, "zone d.example TXT v=spf1\\x20a\n"
	    "zone d.example A 192.0.2.1\n", &bad), 0);
	fake.zone = &z;
	fake.from = 0;
	fake.to = z.n;
	fake.mode = FAKE_SYNC;
	assert_int_equal(fake_params(&p, "192.0.2.1", "h.example",
	    "u@d.example", local, sizeof(local)), 0);
	reentered = 0;
	assert_null(spf_check_start(&fake_resolver, &p, start_again_done,
	    NULL));
	assert_int_equal(reentered, 1);
	p.family = 99;
	assert_null(spf_check_start(&fake_resolver, &p, start_again_done,
	    NULL));
	assert_int_equal(reentered, 2);
	fake_free(&z);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_terms),
		cmocka_unit_test(test_term_fields),
		cmocka_unit_test(test_macros),
		cmocka_unit_test(test_truncation),
		cmocka_unit_test(test_name_ok),
		cmocka_unit_test(test_identities),
		cmocka_unit_test(test_include_cidr),
		cmocka_unit_test(test_dns_term_limit),
		cmocka_unit_test(test_void_limit),
		cmocka_unit_test(test_mx_ptr_limits),
		cmocka_unit_test(test_record_length),
		cmocka_unit_test(test_cancel_everywhere),
		cmocka_unit_test(test_sync_done),
		cmocka_unit_test(test_rfc7208_suite),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
