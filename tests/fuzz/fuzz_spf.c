/*
 * fuzz_spf.c: libFuzzer harness for the SPF evaluator's pure parts (the
 * record/term parser and the macro expander) and for a whole check on
 * a resolver that answers from the input. The first byte picks what the
 * rest is:
 *   0: a record: spf_record_parse(), then every term; terms and their
 *      arguments lie inside the record and inside each other;
 *   1: a domain-spec: expansion is at most 253 bytes, a valid name or -1,
 *      and succeeds only when the syntax check does;
 *   2: exp= text: expansion fits its (small) buffer;
 *   3: a check: "v=spf1 " + the input is every name's TXT record (and
 *      explanation), addresses and names derive from the queried name,
 *      answers come from inside query(); the check must end, once.
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* The evaluator is compiled in here, so the Makefile's generic fuzz rule
 * (which links only FUZZ_SRC) builds this harness as it is. */
#include "../../src/filters/spf_eval.c"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static const struct spf_macro_vars vars = {
	.s = "strong-bad@email.example.com", .l = "strong-bad",
	.o = "email.example.com", .d = "a-very.long.label.email.example.com",
	.i = "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.B.D.0.1.0.0.2",
	.p = "mx.example.org", .v = "ip6", .h = "helo with spaces%",
	.c = "2001:db8::1", .r = "mx.moat.test", .t = "1700000000",
};

static void
fuzz_record(const char *rec, size_t len)
{
	struct spf_record_info	info;
	struct spf_term		t;
	size_t			pos = 6, n = 0;
	int			r;

	if (spf_record_parse(rec, len, &info) == -1) {
		if (info.bad_off + info.bad_len > len)
			abort();
		return;
	}
	while ((r = spf_term_next(rec, len, &pos, &t)) == 1) {
		n++;
		if (t.off + t.len > len || pos > len)
			abort();
		if (t.has_arg && (t.arg_off < t.off ||
		    t.arg_off + t.arg_len > t.off + t.len))
			abort();
		if (t.cidr4 < 0 || t.cidr4 > 32 || t.cidr6 < 0 ||
		    t.cidr6 > 128)
			abort();
	}
	if (r != 0 || n != info.terms)
		abort();	/* a checked record reads again the same */
}

static void
fuzz_domain(const char *spec, size_t len)
{
	char	out[SPF_DOMAIN_MAX + 1];
	bool	uses_p;
	int	ok = spf_macro_check(spec, len, SPF_MACRO_DOMAIN, &uses_p);
	int	r = spf_macro_expand(spec, len, SPF_MACRO_DOMAIN, &vars, out,
		    sizeof(out));

	if (r == 0 && (ok != 0 || strlen(out) > SPF_DOMAIN_MAX))
		abort();
	if (r == 0 && strlen(out) > 0 && out[strlen(out) - 1] == '.' &&
	    spf_name_ok(out))
		abort();
}

static void
fuzz_explain(const char *spec, size_t len)
{
	char	out[64];
	bool	uses_p;
	int	ok = spf_macro_check(spec, len, SPF_MACRO_EXPLAIN, &uses_p);
	int	r = spf_macro_expand(spec, len, SPF_MACRO_EXPLAIN, &vars, out,
		    sizeof(out));

	if (r != ok || (r == 0 && strlen(out) >= sizeof(out)))
		abort();
}

/* ---- a whole check on an input-driven resolver ---- */

static const char	*frec;
static size_t		 flen;
static char		 token;

static unsigned
fuzz_hash(const char *s)
{
	unsigned h = 5381;

	while (*s != '\0')
		h = h * 33 + (unsigned char)*s++;
	return h;
}

static struct dns_req *
fuzz_query(enum dns_type type, const char *name, dns_cb cb, void *arg)
{
	struct dns_answer	a;
	struct dns_rr		rr[12];
	char			names[12][32];
	unsigned		h = fuzz_hash(name);
	size_t			n = 0;

	if (spf_name_ok(name) == false)
		abort();	/* the evaluator asks only askable names */
	memset(&a, 0, sizeof(a));
	memset(rr, 0, sizeof(rr));
	a.type = type;
	a.name = name;
	a.rr = rr;
	a.status = (enum dns_status)(h % 4);
	if (a.status == DNS_OK) {
		n = 1 + (h >> 3) % 12;
		for (size_t i = 0; i < n; i++) {
			snprintf(names[i], sizeof(names[i]), "n%zu.d%u.example",
			    i, (h >> 5) % 7);
			rr[i].str = names[i];
			rr[i].len = strlen(names[i]);
			rr[i].pref = (unsigned)i;
			rr[i].family = type == DNS_AAAA ? AF_INET6 : AF_INET;
			rr[i].addr[0] = type == DNS_AAAA ? 0x20 : 192;
			rr[i].addr[15] = rr[i].addr[3] = (unsigned char)i;
			if (type == DNS_TXT) {
				rr[i].str = (char *)frec;
				rr[i].len = flen;
				n = 1 + (h >> 9) % 2;
			}
		}
	}
	a.n = n;
	cb(&a, arg);
	return (struct dns_req *)&token;
}

static void
fuzz_cancel(struct dns_req *r)
{
	(void)r;
	abort();	/* nothing is ever pending here */
}

static int	fuzz_dones;

static void
fuzz_done(const struct spf_result *r, void *arg)
{
	(void)arg;
	if (r->dns_terms > SPF_DNS_TERMS_MAX ||
	    r->void_lookups > SPF_VOID_MAX + 1 ||
	    strlen(r->explanation) > SPF_EXPLAIN_MAX ||
	    (r->explanation[0] != '\0' && r->code != SPF_FAIL))
		abort();
	/* bounded work: terms, names, includes */
	if (r->queries > 200)
		abort();
	fuzz_dones++;
}

static void
fuzz_check(const uint8_t *data, size_t size)
{
	static const struct spf_resolver res = { fuzz_query, fuzz_cancel };
	struct spf_params	p;
	char			*rec;

	if ((rec = malloc(size + 7)) == NULL)
		return;
	memcpy(rec, "v=spf1 ", 7);
	memcpy(rec + 7, data, size);
	frec = rec;
	flen = size + 7;
	memset(&p, 0, sizeof(p));
	p.family = (size & 1) ? AF_INET6 : AF_INET;
	p.addr[0] = p.family == AF_INET ? 192 : 0x20;
	p.local = "user";
	p.domain = "d1.example";
	p.helo = "helo.example";
	p.receiver = "mx.moat.test";
	p.now = 1;
	fuzz_dones = 0;
	if (spf_check_start(&res, &p, fuzz_done, NULL) != NULL ||
	    fuzz_dones != 1)
		abort();
	free(rec);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char	*buf;

	if (size == 0 || size > SPF_RECORD_MAX + 1)
		return 0;
	if (data[0] % 4 == 3) {
		fuzz_check(data + 1, size - 1);
		return 0;
	}
	/* exact-size copy: ASan sees any read past the end */
	if ((buf = malloc(size - 1)) == NULL)
		return 0;
	memcpy(buf, data + 1, size - 1);
	switch (data[0] % 4) {
	case 0:
		fuzz_record(buf, size - 1);
		break;
	case 1:
		fuzz_domain(buf, size - 1);
		break;
	case 2:
		fuzz_explain(buf, size - 1);
		break;
	}
	free(buf);
	return 0;
}
