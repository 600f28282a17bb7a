/*
 * spf_fake.h: a fake resolver serving zone data in the line format of
 * tests/spf/convert.py, and a case runner, shared by the unit test
 * (tests/unit/test_spf_eval.c) and the differential driver
 * (tests/spf/driver.c). Header-only: static functions.
 *
 * Answers never come from the network. How they come is the mode:
 * FIFO/LIFO/RANDOM queue them and fake_drain() answers one at a time (as
 * the loop would, in any order); SYNC answers from inside query(), which
 * dns.c never does, to show the evaluator does not rely on it.
 */
#ifndef SPF_FAKE_H
#define SPF_FAKE_H

#include <arpa/inet.h>
#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "../../src/filters/spf_eval.h"

enum fake_type { FT_A, FT_AAAA, FT_PTR, FT_TXT, FT_MX, FT_CNAME, FT_SPF,
	FT_TIMEOUT };

struct fake_rr {
	char		*name;
	enum fake_type	 type;
	char		*val;	/* decoded bytes, NUL-terminated */
	size_t		 len;
	unsigned	 pref;
	int		 family;
	unsigned char	 addr[16];
};

struct fake_case {
	char	*id, *ip, *helo, *mailfrom, *results, *exp;
	size_t	 zone_from, zone_to;	/* its scenario's records */
};

struct fake_zone {
	struct fake_rr		*rr;
	size_t			 n, cap;
	struct fake_case	*cases;
	size_t			 ncases, capcases;
};

enum fake_mode { FAKE_FIFO, FAKE_LIFO, FAKE_RANDOM, FAKE_SYNC };

struct fake_req {
	enum dns_type	 type;
	char		 name[512];
	dns_cb		 cb;
	void		*arg;
	bool		 live;
};

#define FAKE_QMAX	256

/* The resolver's state: one at a time (the tests are single-threaded). */
static struct {
	const struct fake_zone	*zone;
	size_t			 from, to;	/* the scenario's records */
	enum fake_mode		 mode;
	unsigned		 seed;
	struct fake_req		*q[FAKE_QMAX];
	size_t			 nq;
	unsigned long		 asked, cancelled, answered;
} fake;

/* Decodes a field (\xHH escapes, \- empty) in place; its length. */
static size_t
fake_unescape(char *s)
{
	size_t	i = 0, o = 0;

	if (strcmp(s, "\\-") == 0) {
		s[0] = '\0';
		return 0;
	}
	while (s[i] != '\0') {
		if (s[i] == '\\' && s[i + 1] == 'x' && isxdigit(
		    (unsigned char)s[i + 2]) && isxdigit((unsigned char)s[i + 3])) {
			char h[3] = { s[i + 2], s[i + 3], 0 };

			s[o++] = (char)strtol(h, NULL, 16);
			i += 4;
		} else
			s[o++] = s[i++];
	}
	s[o] = '\0';
	return o;
}

static char *
fake_strdup(const char *s)
{
	char *d = strdup(s);

	if (d == NULL)
		abort();
	return d;
}

/* Lowercase, no trailing dot, as dns.h hands names over. */
static void
fake_normal(char *s)
{
	size_t n;

	for (n = 0; s[n] != '\0'; n++)
		s[n] = (char)tolower((unsigned char)s[n]);
	if (n > 0 && s[n - 1] == '.')
		s[n - 1] = '\0';
}

static int
fake_add_rr(struct fake_zone *z, char **f, int nf)
{
	static const char *const types[] = { "A", "AAAA", "PTR", "TXT", "MX",
	    "CNAME", "SPF", "TIMEOUT" };
	struct fake_rr	r;
	size_t		t;

	memset(&r, 0, sizeof(r));
	if (nf < 3)
		return -1;
	for (t = 0; t < sizeof(types) / sizeof(types[0]); t++)
		if (strcmp(f[2], types[t]) == 0)
			break;
	if (t == sizeof(types) / sizeof(types[0]))
		return -1;
	r.type = (enum fake_type)t;
	fake_unescape(f[1]);
	r.name = fake_strdup(f[1]);
	fake_normal(r.name);
	if (r.type == FT_MX) {
		if (nf < 5)
			return -1;
		r.pref = (unsigned)strtoul(f[3], NULL, 10);
		fake_unescape(f[4]);
		r.val = fake_strdup(f[4]);
		fake_normal(r.val);
	} else if (r.type != FT_TIMEOUT) {
		if (nf < 4)
			return -1;
		r.len = fake_unescape(f[3]);
		if ((r.val = malloc(r.len + 1)) == NULL)
			abort();
		memcpy(r.val, f[3], r.len + 1);
		if (r.type == FT_PTR || r.type == FT_CNAME)
			fake_normal(r.val);
		if (r.type == FT_A) {
			r.family = AF_INET;
			if (inet_pton(AF_INET, r.val, r.addr) != 1)
				return -1;
		} else if (r.type == FT_AAAA) {
			r.family = AF_INET6;
			if (inet_pton(AF_INET6, r.val, r.addr) != 1)
				return -1;
		}
	}
	if (z->n == z->cap) {
		z->cap = z->cap ? z->cap * 2 : 64;
		if ((z->rr = realloc(z->rr, z->cap * sizeof(*z->rr))) == NULL)
			abort();
	}
	z->rr[z->n++] = r;
	return 0;
}

static int
fake_add_case(struct fake_zone *z, char **f, int nf, size_t zone_from)
{
	struct fake_case c;

	if (nf < 7)
		return -1;
	for (int i = 1; i < 7; i++)
		fake_unescape(f[i]);
	c.id = fake_strdup(f[1]);
	c.ip = fake_strdup(f[2]);
	c.helo = fake_strdup(f[3]);
	c.mailfrom = fake_strdup(f[4]);
	c.results = fake_strdup(f[5]);
	c.exp = fake_strdup(f[6]);
	c.zone_from = zone_from;
	c.zone_to = z->n;
	if (z->ncases == z->capcases) {
		z->capcases = z->capcases ? z->capcases * 2 : 64;
		if ((z->cases = realloc(z->cases, z->capcases *
		    sizeof(*z->cases))) == NULL)
			abort();
	}
	z->cases[z->ncases++] = c;
	return 0;
}

/* Reads zone data and cases from text; -1 with the line number in *bad.
 * Records before the first "scenario" line (or with none) are shared. */
static int
fake_load(struct fake_zone *z, const char *text, int *bad)
{
	char	*copy = fake_strdup(text), *line, *next, *f[8];
	size_t	 zone_from = 0;
	int	 lineno = 0, nf, rc = 0;

	memset(z, 0, sizeof(*z));
	for (line = copy; line != NULL && rc == 0; line = next) {
		lineno++;
		if ((next = strchr(line, '\n')) != NULL)
			*next++ = '\0';
		if (line[0] == '#' || line[0] == '\0')
			continue;
		for (nf = 0; nf < 8 && line != NULL; nf++)
			f[nf] = strsep(&line, " ");
		if (strcmp(f[0], "scenario") == 0)
			zone_from = z->n;
		else if (strcmp(f[0], "zone") == 0)
			rc = fake_add_rr(z, f, nf);
		else if (strcmp(f[0], "case") == 0)
			rc = fake_add_case(z, f, nf, zone_from);
		else
			rc = -1;
	}
	free(copy);
	if (rc == -1)
		*bad = lineno;
	return rc;
}

static void
fake_free(struct fake_zone *z)
{
	for (size_t i = 0; i < z->n; i++) {
		free(z->rr[i].name);
		free(z->rr[i].val);
	}
	for (size_t i = 0; i < z->ncases; i++) {
		struct fake_case *c = &z->cases[i];

		free(c->id);
		free(c->ip);
		free(c->helo);
		free(c->mailfrom);
		free(c->results);
		free(c->exp);
	}
	free(z->rr);
	free(z->cases);
	memset(z, 0, sizeof(*z));
}

static enum fake_type
fake_type_of(enum dns_type t)
{
	switch (t) {
	case DNS_A: return FT_A;
	case DNS_AAAA: return FT_AAAA;
	case DNS_PTR: return FT_PTR;
	case DNS_TXT: return FT_TXT;
	case DNS_MX: return FT_MX;
	default: return FT_TIMEOUT;
	}
}

/* Answers (type, name) from the scenario's records; CNAMEs followed up
 * to 8 deep (a loop times out). rr must hold room for every record. */
static void
fake_lookup(enum dns_type type, const char *qname, struct dns_answer *a,
    struct dns_rr *rr)
{
	enum fake_type	 want = fake_type_of(type);
	char		 name[512];
	const char	*cname;
	bool		 exists;

	snprintf(name, sizeof(name), "%s", qname);
	fake_normal(name);
	a->n = 0;
	for (int depth = 0; depth < 8; depth++) {
		exists = false;
		cname = NULL;
		for (size_t i = fake.from; i < fake.to; i++) {
			const struct fake_rr *r = &fake.zone->rr[i];

			if (strcmp(r->name, name) != 0)
				continue;
			exists = true;
			if (r->type == FT_TIMEOUT) {
				if (a->n == 0) {
					a->status = DNS_TEMPFAIL;
					return;
				}
				break;
			}
			if (r->type == FT_CNAME)
				cname = r->val;
			if (r->type != want)
				continue;
			memset(&rr[a->n], 0, sizeof(rr[0]));
			rr[a->n].family = r->family;
			memcpy(rr[a->n].addr, r->addr, 16);
			rr[a->n].pref = r->pref;
			rr[a->n].str = r->val;
			rr[a->n].len = r->type == FT_MX ? strlen(r->val) : r->len;
			a->n++;
		}
		if (a->n > 0) {
			a->status = DNS_OK;
			return;
		}
		if (!exists) {
			a->status = strncmp(name, "error.", 6) == 0 ?
			    DNS_TEMPFAIL : DNS_NXDOMAIN;
			return;
		}
		if (cname == NULL) {
			a->status = DNS_NODATA;
			return;
		}
		snprintf(name, sizeof(name), "%s", cname);
	}
	a->status = DNS_TEMPFAIL;
}

static void
fake_answer(struct fake_req *r)
{
	struct dns_answer	 a;
	struct dns_rr		*rr;

	if ((rr = calloc(fake.to - fake.from + 1, sizeof(*rr))) == NULL)
		abort();
	memset(&a, 0, sizeof(a));
	a.type = r->type;
	a.name = r->name;
	a.rr = rr;
	fake_lookup(r->type, r->name, &a, rr);
	fake.answered++;
	r->cb(&a, r->arg);
	free(rr);
}

static struct dns_req *
fake_query(enum dns_type type, const char *name, dns_cb cb, void *arg)
{
	static struct fake_req	 sync_token;
	struct fake_req		*r;

	if (name == NULL || name[0] == '\0' || strlen(name) > 253)
		return NULL;	/* what dns_query() refuses */
	fake.asked++;
	if (fake.mode == FAKE_SYNC) {
		struct fake_req now = { type, "", cb, arg, true };

		snprintf(now.name, sizeof(now.name), "%s", name);
		fake_answer(&now);
		return (struct dns_req *)&sync_token;
	}
	if (fake.nq == FAKE_QMAX || (r = calloc(1, sizeof(*r))) == NULL)
		return NULL;
	r->type = type;
	snprintf(r->name, sizeof(r->name), "%s", name);
	r->cb = cb;
	r->arg = arg;
	r->live = true;
	fake.q[fake.nq++] = r;
	return (struct dns_req *)r;
}

static void
fake_cancel(struct dns_req *req)
{
	for (size_t i = 0; i < fake.nq; i++)
		if (fake.q[i] == (struct fake_req *)req) {
			free(fake.q[i]);
			fake.q[i] = fake.q[--fake.nq];
			fake.cancelled++;
			return;
		}
	abort();	/* cancelling what is not pending */
}

/* Answers one queued request in the mode's order; false when none. */
static bool
fake_drain_one(void)
{
	struct fake_req	*r;
	size_t		 i;

	if (fake.nq == 0)
		return false;
	switch (fake.mode) {
	case FAKE_LIFO:
		i = fake.nq - 1;
		break;
	case FAKE_RANDOM:
		fake.seed = fake.seed * 1103515245u + 12345u;
		i = (fake.seed >> 8) % fake.nq;
		break;
	default:
		i = 0;
		break;
	}
	r = fake.q[i];
	memmove(&fake.q[i], &fake.q[i + 1], (fake.nq - i - 1) *
	    sizeof(fake.q[0]));
	fake.nq--;
	fake_answer(r);
	free(r);
	return true;
}

static const struct spf_resolver fake_resolver = { fake_query, fake_cancel };

struct fake_outcome {
	bool			done;
	struct spf_result	r;
};

static void
fake_done(const struct spf_result *r, void *arg)
{
	struct fake_outcome *o = arg;

	if (o->done)
		abort();	/* done twice */
	o->done = true;
	o->r = *r;
}

/* Fills params from a case's text fields (local part split at the last
 * '@'; no '@' is a bare domain, as pyspf takes it). -1 on a bad IP. */
static int
fake_params(struct spf_params *p, const char *ip, const char *helo,
    const char *mailfrom, char *local, size_t locallen)
{
	const char *at = strrchr(mailfrom, '@');

	memset(p, 0, sizeof(*p));
	if (inet_pton(AF_INET, ip, p->addr) == 1)
		p->family = AF_INET;
	else if (inet_pton(AF_INET6, ip, p->addr) == 1)
		p->family = AF_INET6;
	else
		return -1;
	p->helo = helo;
	p->receiver = "mx.moat.test";
	p->now = 1700000000;
	p->identity = SPF_ID_MAILFROM;
	if (at != NULL) {
		snprintf(local, locallen, "%.*s", (int)(at - mailfrom),
		    mailfrom);
		p->local = local;
		p->domain = at + 1;
	} else {
		local[0] = '\0';
		p->local = local;
		p->domain = mailfrom;
	}
	return 0;
}

/* Runs one case of z to the end in mode; false if the check never
 * finished. */
static bool
fake_run_case(const struct fake_zone *z, const struct fake_case *c,
    enum fake_mode mode, unsigned seed, struct spf_result *out)
{
	struct spf_params	p;
	struct fake_outcome	o;
	char			local[1024];

	memset(&o, 0, sizeof(o));
	fake.zone = z;
	fake.from = c->zone_from;
	fake.to = c->zone_to;
	fake.mode = mode;
	fake.seed = seed;
	if (fake_params(&p, c->ip, c->helo, c->mailfrom, local,
	    sizeof(local)) == -1)
		return false;
	(void)spf_check_start(&fake_resolver, &p, fake_done, &o);
	while (!o.done && fake_drain_one())
		;
	if (!o.done || fake.nq != 0)
		return false;
	*out = o.r;
	return true;
}

/* Does result r meet the case's expectation? why says how not. */
static inline bool
fake_case_ok(const struct fake_case *c, const struct spf_result *r,
    char *why, size_t whylen)
{
	const char	*got = spf_code_name(r->code);
	const char	*exp = r->explanation[0] != '\0' ? r->explanation :
			    "DEFAULT";
	char		 list[256];
	bool		 ok = false;

	snprintf(list, sizeof(list), ",%s,", c->results);
	for (char *p = strstr(list, got); p != NULL; p = strstr(p + 1, got))
		if (p[-1] == ',' && p[strlen(got)] == ',')
			ok = true;
	if (!ok) {
		snprintf(why, whylen, "got %s, want %s (%s)", got, c->results,
		    r->reason);
		return false;
	}
	if (c->exp[0] != '\0' && strcmp(c->exp, exp) != 0) {
		snprintf(why, whylen, "explanation \"%s\", want \"%s\"", exp,
		    c->exp);
		return false;
	}
	return true;
}

#endif
