/*
 * spf_eval.c: RFC 7208 check_host() as an asynchronous state machine.
 *
 * What it owns: one struct spf_check per evaluation, holding a stack of
 * frames (one per include level; redirect= replaces the frame it is in),
 * the selected record of each frame (malloc'd, at most SPF_RECORD_MAX),
 * and the slots of the DNS requests in flight (one question, or up to 10
 * address lookups for the names of one MX or PTR answer).
 *
 * Invariants:
 * - A step runs only when no request is pending; a request's answer is
 *   copied out in its callback (the answer lives only that long) and the
 *   machine goes on from spf_run(), which never nests: an answer that
 *   arrives from inside query() is recorded and picked up by the loop
 *   already running.
 * - Every record is syntax-checked whole before any term of it is
 *   evaluated (§4.6); evaluation then re-reads terms from the checked
 *   text, so no per-term array is allocated.
 * - Macro expansion keeps only the rightmost bytes of a domain (a ring
 *   of 256) and cuts explanation text at its buffer, so what a record
 *   expands to never needs memory beyond fixed buffers.
 * - DNS terms are counted when evaluated (§4.6.4); an include level
 *   costs a term, so the frame stack cannot pass SPF_DEPTH_MAX.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "spf_eval.h"

/* Longest macro value: s is local@domain. */
#define SPF_VALUE_MAX	(SPF_LOCAL_MAX + 1 + SPF_NAME_MAX)
/* Ring keeping the tail of an expanding domain: 253 bytes plus the dot
 * before them must fit. */
#define SPF_RING	256

/* ---- characters ---- */

static bool
spf_alpha(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool
spf_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static bool
spf_alnum(unsigned char c)
{
	return spf_alpha(c) || spf_digit(c);
}

/* Visible ASCII, what a term may hold (§4.6.1, §7.1 macro-literal). */
static bool
spf_vis(unsigned char c)
{
	return c >= 0x21 && c <= 0x7e;
}

const char *
spf_code_name(enum spf_code c)
{
	static const char *const names[] = { "none", "neutral", "pass",
	    "fail", "softfail", "temperror", "permerror" };

	if ((unsigned)c >= sizeof(names) / sizeof(names[0]))
		return "permerror";
	return names[c];
}

/* ---- macro-strings (§7.1) ---- */

/* toplabel = ( *alphanum ALPHA *alphanum ) /
 *            ( 1*alphanum "-" *( alphanum / "-" ) alphanum ) */
static bool
spf_toplabel_ok(const char *s, size_t n)
{
	bool	alpha = false, dash = false;
	size_t	i;

	if (n == 0 || !spf_alnum(s[0]) || !spf_alnum(s[n - 1]))
		return false;
	for (i = 0; i < n; i++) {
		if (s[i] == '-')
			dash = true;
		else if (spf_alpha(s[i]))
			alpha = true;
		else if (!spf_digit(s[i]))
			return false;
	}
	return alpha || dash;
}

/* A macro-expand "%{...}" starting at spec[i] ('%', '{' checked by the
 * caller): its letter, digits (0 when none), reversal, delimiters, and
 * the index past '}'; -1 on bad syntax. explain allows c, r, t. */
struct spf_macro {
	char		 letter;	/* as written */
	unsigned	 digits;
	bool		 reverse;
	size_t		 delim_off, delim_len;
	size_t		 end;
};

static int
spf_macro_parse(const char *spec, size_t len, size_t i, bool explain,
    struct spf_macro *m)
{
	const char	*ok = explain ? "slodipvhcrt" : "slodipvh";
	size_t		 j = i + 2, d;
	char		 l;

	if (j >= len)
		return -1;
	l = (char)tolower((unsigned char)spec[j]);
	if (!spf_alpha((unsigned char)l) || strchr(ok, l) == NULL)
		return -1;
	m->letter = spec[j++];
	/* transformers = *DIGIT [ "r" ]; the number "MUST be nonzero".
	 * Large numbers mean "all parts"; parsing stays bounded. */
	m->digits = 0;
	for (d = j; j < len && spf_digit((unsigned char)spec[j]); j++)
		if (m->digits < 100000)
			m->digits = m->digits * 10 + (unsigned)(spec[j] - '0');
	if (j > d && m->digits == 0)
		return -1;
	m->reverse = false;
	if (j < len && (spec[j] == 'r' || spec[j] == 'R')) {
		m->reverse = true;
		j++;
	}
	m->delim_off = j;
	while (j < len && spec[j] != '\0' && strchr(".-+,/_=", spec[j]) != NULL)
		j++;
	m->delim_len = j - m->delim_off;
	if (j >= len || spec[j] != '}')
		return -1;
	m->end = j + 1;
	return 0;
}

/* Walks a macro-string: syntax, %{p} use, whether it ends with a macro
 * (for domain-end). explain: explain-string (c r t and SP allowed). */
static int
spf_macro_scan(const char *spec, size_t len, bool explain, bool *uses_p,
    bool *ends_macro)
{
	struct spf_macro	m;
	size_t			i = 0;
	unsigned char		c;

	*uses_p = false;
	*ends_macro = false;
	while (i < len) {
		c = (unsigned char)spec[i];
		if (c != '%') {
			if (!spf_vis(c) && !(explain && c == ' '))
				return -1;
			*ends_macro = false;
			i++;
			continue;
		}
		if (i + 1 >= len)
			return -1;
		c = (unsigned char)spec[i + 1];
		if (c == '%' || c == '_' || c == '-') {
			i += 2;
		} else if (c == '{') {
			if (spf_macro_parse(spec, len, i, explain, &m) == -1)
				return -1;
			if (m.letter == 'p' || m.letter == 'P')
				*uses_p = true;
			i = m.end;
		} else
			return -1;
		*ends_macro = true;
	}
	return 0;
}

int
spf_macro_check(const char *spec, size_t len, enum spf_macro_ctx ctx,
    bool *uses_p)
{
	bool	ends_macro;
	size_t	end, k;

	if (spf_macro_scan(spec, len, ctx == SPF_MACRO_EXPLAIN, uses_p,
	    &ends_macro) == -1)
		return -1;
	if (ctx == SPF_MACRO_EXPLAIN || ends_macro)
		return 0;
	/* domain-end = ( "." toplabel [ "." ] ) / macro-expand. A '.'
	 * inside braces found here leaves a '}' in the "toplabel", which
	 * then fails, as the real answer would. */
	end = len;
	if (end > 0 && spec[end - 1] == '.')
		end--;
	for (k = end; k > 0 && spec[k - 1] != '.'; k--)
		;
	if (k == 0)
		return -1;
	return spf_toplabel_ok(spec + k, end - k) ? 0 : -1;
}

/* Where expansion goes: a ring keeping the tail (domains), or a flat
 * buffer cut at its end (explanations). */
struct spf_sink {
	bool	 ring;
	char	*out;
	size_t	 cap;
	size_t	 n;		/* bytes produced (ring: all of them) */
	char	 tail[SPF_RING];
};

static void
spf_put(struct spf_sink *k, char c)
{
	if (k->ring)
		k->tail[k->n++ % SPF_RING] = c;
	else if (k->n + 1 < k->cap)
		k->out[k->n++] = c;
}

/* RFC 3986 unreserved characters stay; others become %XX (§7.3). */
static void
spf_put_escaped(struct spf_sink *k, char c, bool escape)
{
	static const char	hex[] = "0123456789ABCDEF";
	unsigned char		u = (unsigned char)c;

	if (!escape || spf_alnum(u) || c == '-' || c == '.' || c == '_' ||
	    c == '~') {
		spf_put(k, c);
		return;
	}
	spf_put(k, '%');
	spf_put(k, hex[u >> 4]);
	spf_put(k, hex[u & 15]);
}

static const char *
spf_macro_value(const struct spf_macro_vars *v, char letter)
{
	const char *s = NULL;

	switch (tolower((unsigned char)letter)) {
	case 's': s = v->s; break;
	case 'l': s = v->l; break;
	case 'o': s = v->o; break;
	case 'd': s = v->d; break;
	case 'i': s = v->i; break;
	case 'p': s = v->p; break;
	case 'v': s = v->v; break;
	case 'h': s = v->h; break;
	case 'c': s = v->c; break;
	case 'r': s = v->r; break;
	case 't': s = v->t; break;
	}
	return s != NULL ? s : "unknown";
}

/* One %{...}: split the value on the delimiters (default '.'), reverse
 * if asked, keep the rightmost `digits` parts, join with '.' (§7.3). */
static void
spf_expand_one(struct spf_sink *k, const char *spec,
    const struct spf_macro *m, const struct spf_macro_vars *v)
{
	uint16_t	 start[SPF_VALUE_MAX + 1], end[SPF_VALUE_MAX + 1];
	const char	*val = spf_macro_value(v, m->letter);
	size_t		 vlen = strnlen(val, SPF_VALUE_MAX), n = 0, i, from,
			 take, idx;
	bool		 esc = isupper((unsigned char)m->letter) != 0;
	const char	*dl = ".";
	size_t		 dn = 1;

	if (m->delim_len > 0) {
		dl = spec + m->delim_off;
		dn = m->delim_len;
	}
	start[0] = 0;
	for (i = 0; i < vlen; i++)
		if (memchr(dl, val[i], dn) != NULL) {
			end[n++] = (uint16_t)i;
			start[n] = (uint16_t)(i + 1);
		}
	end[n++] = (uint16_t)vlen;
	take = (m->digits > 0 && m->digits < n) ? m->digits : n;
	from = n - take;
	for (i = 0; i < take; i++) {
		/* Reversed list, rightmost `take` parts: originals
		 * take-1 .. 0. */
		idx = m->reverse ? take - 1 - i : from + i;
		if (i > 0)
			spf_put(k, '.');
		for (size_t j = start[idx]; j < end[idx]; j++)
			spf_put_escaped(k, val[j], esc);
	}
}

/* Domain result: drop one trailing dot, then leftmost labels until at
 * most 253 bytes are left (§7.3); -1 when no dot allows it. */
static int
spf_sink_domain(struct spf_sink *k, char *out, size_t outlen)
{
	size_t	total = k->n, from, i;

	if (total > 0 && k->tail[(total - 1) % SPF_RING] == '.')
		total--;
	from = 0;
	if (total > SPF_DOMAIN_MAX) {
		for (from = total - SPF_DOMAIN_MAX; from < total; from++)
			if (k->tail[(from - 1) % SPF_RING] == '.')
				break;
		if (from >= total)
			return -1;
	}
	if (total - from >= outlen)
		return -1;
	for (i = from; i < total; i++)
		out[i - from] = k->tail[i % SPF_RING];
	out[total - from] = '\0';
	return 0;
}

int
spf_macro_expand(const char *spec, size_t len, enum spf_macro_ctx ctx,
    const struct spf_macro_vars *v, char *out, size_t outlen)
{
	struct spf_sink		k;
	struct spf_macro	m;
	bool			uses_p, explain = ctx == SPF_MACRO_EXPLAIN;
	size_t			i = 0;

	if (outlen == 0 || (!explain && outlen <= SPF_DOMAIN_MAX))
		return -1;
	out[0] = '\0';
	if (spf_macro_check(spec, len, ctx, &uses_p) == -1)
		return -1;
	k.ring = !explain;
	k.out = out;
	k.cap = outlen;
	k.n = 0;
	while (i < len) {
		if (explain && k.n + 1 >= outlen)
			break;	/* full: the rest cannot show */
		if (spec[i] != '%') {
			spf_put(&k, spec[i++]);
			continue;
		}
		switch (spec[i + 1]) {
		case '%':
			spf_put(&k, '%');
			i += 2;
			break;
		case '_':
			spf_put(&k, ' ');
			i += 2;
			break;
		case '-':
			spf_put(&k, '%');
			spf_put(&k, '2');
			spf_put(&k, '0');
			i += 2;
			break;
		default:
			(void)spf_macro_parse(spec, len, i, explain, &m);
			spf_expand_one(&k, spec, &m, v);
			i = m.end;
			break;
		}
	}
	if (explain) {
		out[k.n] = '\0';
		return 0;
	}
	return spf_sink_domain(&k, out, outlen);
}

bool
spf_name_ok(const char *name)
{
	size_t	len = strnlen(name, SPF_DOMAIN_MAX + 1), lab = 0, i;

	if (len == 0 || len > SPF_DOMAIN_MAX)
		return false;
	for (i = 0; i < len; i++) {
		if (name[i] != '.') {
			if (++lab > SPF_LABEL_MAX)
				return false;
			continue;
		}
		if (lab == 0)
			return false;
		lab = 0;
	}
	return lab > 0;
}

/* ---- terms (§4.6.1, §5, §6) ---- */

/* A CIDR length at the end of a[0..n): "/" then "0" or 1-3 digits
 * without a leading zero; its digit count, or 0. */
static size_t
spf_cidr_digits(const char *a, size_t n, int *val)
{
	size_t	d = 0;

	while (d < n && d < 4 && spf_digit((unsigned char)a[n - 1 - d]))
		d++;
	if (d == 0 || d > 3 || d >= n || a[n - 1 - d] != '/' ||
	    (d > 1 && a[n - d] == '0'))
		return 0;
	*val = 0;
	for (size_t i = n - d; i < n; i++)
		*val = *val * 10 + (a[i] - '0');
	return d;
}

/* Strips dual-cidr-length (§5.6) off the end of a[0..*n); -1 when a
 * length is out of range. */
static int
spf_dual_cidr(const char *a, size_t *n, int *c4, int *c6)
{
	size_t	d;
	int	v;

	if ((d = spf_cidr_digits(a, *n, &v)) > 0 && *n >= d + 2 &&
	    a[*n - d - 2] == '/') {
		if (v > 128)
			return -1;
		*c6 = v;
		*n -= d + 2;
	}
	if ((d = spf_cidr_digits(a, *n, &v)) > 0 &&
	    !(*n >= d + 2 && a[*n - d - 2] == '/')) {
		if (v > 32)
			return -1;
		*c4 = v;
		*n -= d + 1;
	}
	return 0;
}

/* ip4-network: four qnum, no leading zeros (§5.6). */
static int
spf_ip4_parse(const char *s, size_t n, unsigned char *out)
{
	size_t	i = 0;
	int	q, part, d;

	for (part = 0; part < 4; part++) {
		if (part > 0 && (i >= n || s[i++] != '.'))
			return -1;
		for (q = 0, d = 0; i < n && spf_digit((unsigned char)s[i]);
		    i++, d++) {
			if (d == 3 || (d == 1 && q == 0))
				return -1;
			q = q * 10 + (s[i] - '0');
		}
		if (d == 0 || q > 255)
			return -1;
		out[part] = (unsigned char)q;
	}
	return i == n ? 0 : -1;
}

/* "ip4:" / "ip6:" argument: address, optional single cidr. */
static int
spf_ip_arg(const char *a, size_t n, bool six, struct spf_term *t)
{
	char		 buf[INET6_ADDRSTRLEN + 1];
	const char	*slash = memchr(a, '/', n);
	size_t		 alen = slash != NULL ? (size_t)(slash - a) : n;
	int		 v = 0, max = six ? 128 : 32;
	size_t		 d;

	if (slash != NULL) {
		d = spf_cidr_digits(a, n, &v);
		if (d == 0 || d != n - alen - 1 || v > max)
			return -1;
		if (six)
			t->cidr6 = v;
		else
			t->cidr4 = v;
	}
	if (!six)
		return spf_ip4_parse(a, alen, t->addr);
	if (alen == 0 || alen >= sizeof(buf))
		return -1;
	memcpy(buf, a, alen);
	buf[alen] = '\0';
	return inet_pton(AF_INET6, buf, t->addr) == 1 ? 0 : -1;
}

static const struct {
	const char		*name;
	enum spf_term_kind	 kind;
} spf_mechs[] = {
	{ "all", SPF_T_ALL }, { "include", SPF_T_INCLUDE }, { "a", SPF_T_A },
	{ "mx", SPF_T_MX }, { "ptr", SPF_T_PTR }, { "ip4", SPF_T_IP4 },
	{ "ip6", SPF_T_IP6 }, { "exists", SPF_T_EXISTS },
};

/* A domain-spec argument a[0..n): present and well-formed. */
static int
spf_domain_arg(const char *rec, size_t off, size_t n, struct spf_term *t)
{
	bool	uses_p;

	if (n == 0 || spf_macro_check(rec + off, n, SPF_MACRO_DOMAIN,
	    &uses_p) == -1)
		return -1;
	t->has_arg = true;
	t->arg_off = off;
	t->arg_len = n;
	return 0;
}

/* The mechanism after its name: rec[k..e). */
static int
spf_mech_args(const char *rec, size_t k, size_t e, struct spf_term *t)
{
	size_t	n = e - k;
	bool	colon = n > 0 && rec[k] == ':';

	switch (t->kind) {
	case SPF_T_ALL:
		return n == 0 ? 0 : -1;
	case SPF_T_INCLUDE:
	case SPF_T_EXISTS:
		return colon ? spf_domain_arg(rec, k + 1, n - 1, t) : -1;
	case SPF_T_PTR:
		return n == 0 ? 0 : colon ? spf_domain_arg(rec, k + 1, n - 1,
		    t) : -1;
	case SPF_T_A:
	case SPF_T_MX:
		if (spf_dual_cidr(rec + k, &n, &t->cidr4, &t->cidr6) == -1)
			return -1;
		if (n == 0)
			return 0;
		return colon ? spf_domain_arg(rec, k + 1, n - 1, t) : -1;
	case SPF_T_IP4:
	case SPF_T_IP6:
		if (!colon)
			return -1;
		return spf_ip_arg(rec + k + 1, n - 1, t->kind == SPF_T_IP6, t);
	default:
		return -1;
	}
}

/* name "=" value with name = ALPHA *( ALPHA / DIGIT / "-" / "_" / "." ) */
static int
spf_modifier(const char *rec, size_t s, size_t eq, size_t e,
    struct spf_term *t)
{
	size_t	nlen = eq - s;
	bool	uses_p, ends;

	t->arg_off = eq + 1;
	t->arg_len = e - eq - 1;
	t->has_arg = true;
	if (nlen == 8 && strncasecmp(rec + s, "redirect", 8) == 0)
		t->kind = SPF_T_REDIRECT;
	else if (nlen == 3 && strncasecmp(rec + s, "exp", 3) == 0)
		t->kind = SPF_T_EXP;
	else {
		/* unknown-modifier = name "=" macro-string: ignored, but
		 * its macros must be well-formed (§6, A). */
		t->kind = SPF_T_UNKNOWN_MOD;
		return spf_macro_scan(rec + t->arg_off, t->arg_len, false,
		    &uses_p, &ends);
	}
	return spf_domain_arg(rec, t->arg_off, t->arg_len, t);
}

int
spf_term_next(const char *rec, size_t len, size_t *pos, struct spf_term *t)
{
	size_t	i = *pos, s, e, k;

	while (i < len && rec[i] == ' ')
		i++;
	if (i >= len) {
		*pos = i;
		return 0;
	}
	for (s = i; i < len && rec[i] != ' '; i++)
		;
	e = i;
	*pos = e;
	memset(t, 0, sizeof(*t));
	t->off = s;
	t->len = e - s;
	t->qual = SPF_PASS;
	t->cidr4 = 32;
	t->cidr6 = 128;
	for (k = s; k < e; k++)
		if (!spf_vis((unsigned char)rec[k]))
			return -1;
	if (spf_alpha((unsigned char)rec[s])) {
		for (k = s + 1; k < e && (spf_alnum((unsigned char)rec[k]) ||
		    rec[k] == '-' || rec[k] == '_' || rec[k] == '.'); k++)
			;
		if (k < e && rec[k] == '=')
			return spf_modifier(rec, s, k, e, t) == 0 ? 1 : -1;
	}
	switch (rec[s]) {
	case '+': t->qual = SPF_PASS; s++; break;
	case '-': t->qual = SPF_FAIL; s++; break;
	case '~': t->qual = SPF_SOFTFAIL; s++; break;
	case '?': t->qual = SPF_NEUTRAL; s++; break;
	}
	for (k = s; k < e && rec[k] != ':' && rec[k] != '/'; k++)
		;
	for (i = 0; i < sizeof(spf_mechs) / sizeof(spf_mechs[0]); i++)
		if (strlen(spf_mechs[i].name) == k - s &&
		    strncasecmp(rec + s, spf_mechs[i].name, k - s) == 0)
			break;
	if (i == sizeof(spf_mechs) / sizeof(spf_mechs[0]))
		return -1;
	t->kind = spf_mechs[i].kind;
	return spf_mech_args(rec, k, e, t) == 0 ? 1 : -1;
}

/* "v=spf1" then SP or the end, any case (§4.5). */
static bool
spf_is_record(const char *s, size_t len)
{
	return len >= 6 && strncasecmp(s, "v=spf1", 6) == 0 &&
	    (len == 6 || s[6] == ' ');
}

int
spf_record_parse(const char *rec, size_t len, struct spf_record_info *info)
{
	struct spf_term	t;
	size_t		pos = 6;
	int		r;

	memset(info, 0, sizeof(*info));
	info->reason = "";
	if (!spf_is_record(rec, len)) {
		info->reason = "not an SPF record";
		return -1;
	}
	while ((r = spf_term_next(rec, len, &pos, &t)) == 1) {
		info->terms++;
		if (t.kind == SPF_T_REDIRECT || t.kind == SPF_T_EXP) {
			bool *has = t.kind == SPF_T_REDIRECT ?
			    &info->has_redirect : &info->has_exp;

			if (*has) {
				info->reason = "redirect= or exp= twice";
				break;
			}
			*has = true;
			if (t.kind == SPF_T_REDIRECT) {
				info->redirect_off = t.arg_off;
				info->redirect_len = t.arg_len;
			} else {
				info->exp_off = t.arg_off;
				info->exp_len = t.arg_len;
			}
		}
	}
	if (r == 0)
		return 0;
	if (r == -1)
		info->reason = "syntax error";
	info->bad_off = t.off;
	info->bad_len = t.len;
	return -1;
}

/* ---- the evaluation ---- */

enum spf_phase {
	PH_LOAD,	/* ask TXT for the top frame's domain */
	PH_LOADED,	/* ... answered */
	PH_TERM,	/* read the next term */
	PH_EXPAND,	/* expand its target, then ask */
	PH_ASKED,	/* a/exists/mx question answered */
	PH_FANNED,	/* mx: the exchanges' addresses answered */
	PH_PTR_MATCH,	/* ptr: validated names are known */
	PH_PV_ASK,	/* validation of the client's PTR names ... */
	PH_PV_ASKED,
	PH_PV_FANNED,
	PH_EXP,		/* fail at the top: fetch exp= text */
	PH_EXP_ASKED,
	PH_DONE,
};

/* What a request's answer is copied into, in its callback. */
enum spf_want { W_RECORD, W_ADDR, W_EXISTS, W_MX, W_PTR, W_FAN, W_EXP };

enum spf_load { LOAD_TOP, LOAD_INCLUDE, LOAD_REDIRECT };

enum spf_rec { REC_OK, REC_NONE, REC_TEMP, REC_MULTI, REC_LONG, REC_OOM };

struct spf_check;

struct spf_slot {
	struct spf_check	*chk;
	struct dns_req		*req;
	bool			 pending;
	enum spf_want		 want;
	enum dns_status		 status;
	bool			 matched;
	char			 name[SPF_DOMAIN_MAX + 1];
};

struct spf_frame {
	char			 domain[SPF_DOMAIN_MAX + 1];
	char			*rec;
	size_t			 len, pos;
	struct spf_record_info	 info;
	struct spf_term		 term;	/* the one being evaluated */
};

struct spf_check {
	struct spf_resolver	 res;
	spf_done_cb		 done;
	void			*arg;
	enum spf_phase		 phase, resume;
	bool			 running, in_done;
	unsigned		 pending;

	/* the client and the macro values (§7.3) */
	int			 family;
	unsigned char		 addr[16];
	char			 local[SPF_LOCAL_MAX + 1];
	char			 odom[SPF_NAME_MAX + 1];
	char			 sender[SPF_VALUE_MAX + 1];
	char			 helo[SPF_NAME_MAX + 1];
	char			 receiver[SPF_NAME_MAX + 1];
	char			 ip_i[72], ip_c[INET6_ADDRSTRLEN], now[24];

	struct spf_frame	 frames[SPF_DEPTH_MAX];
	size_t			 depth;		/* frames in use */
	enum spf_load		 load;
	enum spf_rec		 rec_state;

	struct spf_slot		 main;
	struct spf_slot		 fan[SPF_MX_NAMES_MAX];
	size_t			 nfan;
	bool			 too_many;	/* > 10 MX records */
	int			 fan_cidr;

	/* validated client names (§5.5), looked up once per check */
	bool			 ptr_known, ptr_void;
	char			 ptrs[SPF_PTR_NAMES_MAX][SPF_DOMAIN_MAX + 1];
	size_t			 nptr;
	char			 pname[SPF_DOMAIN_MAX + 1];	/* %{p} */

	char			 target[SPF_DOMAIN_MAX + 1];
	char			*exp_txt;
	size_t			 exp_len;
	struct spf_result	 result;
};

static bool	spf_run(struct spf_check *);

static struct spf_frame *
spf_top(struct spf_check *c)
{
	return &c->frames[c->depth - 1];
}

/* Ends the check with code; the run loop hands it over. */
static void
spf_finish(struct spf_check *c, enum spf_code code, const char *why)
{
	c->result.code = code;
	if (why != NULL && c->result.reason[0] == '\0')
		c->result.reason = why;
	c->phase = PH_DONE;
}

/* Copies a term's text (a syntax error, or the directive that matched)
 * into the result. */
static void
spf_note_term(struct spf_check *c, const char *rec, size_t off, size_t len)
{
	if (len > SPF_MECH_TEXT_MAX)
		len = SPF_MECH_TEXT_MAX;
	memcpy(c->result.mechanism, rec + off, len);
	c->result.mechanism[len] = '\0';
}

/* ---- requests ---- */

static bool
spf_cidr_eq(const unsigned char *a, const unsigned char *b, int bits)
{
	int	bytes = bits / 8, rest = bits % 8;

	if (memcmp(a, b, (size_t)bytes) != 0)
		return false;
	if (rest == 0)
		return true;
	return ((a[bytes] ^ b[bytes]) & (0xff << (8 - rest)) & 0xff) == 0;
}

/* Does any address of the answer fall in client/cidr? */
static bool
spf_answer_match(const struct spf_check *c, const struct dns_answer *a,
    int cidr)
{
	for (size_t i = 0; i < a->n; i++)
		if (a->rr[i].family == c->family &&
		    spf_cidr_eq(a->rr[i].addr, c->addr, cidr))
			return true;
	return false;
}

static bool
spf_void(const struct dns_answer *a)
{
	return a->status == DNS_NXDOMAIN || a->status == DNS_NODATA ||
	    (a->status == DNS_OK && a->n == 0);
}

/* The TXT answer of a record lookup: exactly one "v=spf1" (§4.5). */
static void
spf_take_record(struct spf_check *c, const struct dns_answer *a)
{
	struct spf_frame	*f = spf_top(c);
	const struct dns_rr	*pick = NULL;
	size_t			 n = 0;

	if (a->status == DNS_TEMPFAIL) {
		c->rec_state = REC_TEMP;
		return;
	}
	for (size_t i = 0; a->status == DNS_OK && i < a->n; i++)
		if (a->rr[i].str != NULL &&
		    spf_is_record(a->rr[i].str, a->rr[i].len)) {
			pick = &a->rr[i];
			n++;
		}
	if (n == 0)
		c->rec_state = REC_NONE;
	else if (n > 1)
		c->rec_state = REC_MULTI;
	else if (pick->len > SPF_RECORD_MAX)
		c->rec_state = REC_LONG;
	else if ((f->rec = malloc(pick->len + 1)) == NULL)
		c->rec_state = REC_OOM;
	else {
		memcpy(f->rec, pick->str, pick->len);
		f->rec[pick->len] = '\0';
		f->len = pick->len;
		c->rec_state = REC_OK;
	}
}

/* Names of an MX or PTR answer into the fan slots: MX by preference,
 * PTR in answer order; unaskable names are kept (they answer "no"). */
static void
spf_take_names(struct spf_check *c, const struct dns_answer *a, bool mx)
{
	unsigned	pref[SPF_MX_NAMES_MAX];
	size_t		i, j;

	c->nfan = 0;
	c->too_many = false;
	if (a->status != DNS_OK)
		return;
	if (mx && a->n > SPF_MX_NAMES_MAX) {
		c->too_many = true;
		return;
	}
	for (i = 0; i < a->n && c->nfan < SPF_PTR_NAMES_MAX; i++) {
		const struct dns_rr *rr = &a->rr[i];

		if (rr->str == NULL || rr->str[0] == '\0')
			continue;	/* null MX (RFC 7505) */
		j = c->nfan++;
		if (mx)	/* insertion by preference, stable */
			for (; j > 0 && pref[j - 1] > rr->pref; j--) {
				pref[j] = pref[j - 1];
				memcpy(c->fan[j].name, c->fan[j - 1].name,
				    sizeof(c->fan[j].name));
			}
		pref[j] = rr->pref;
		if (strlen(rr->str) <= SPF_DOMAIN_MAX)
			memcpy(c->fan[j].name, rr->str, strlen(rr->str) + 1);
		else
			c->fan[j].name[0] = '\0';
	}
}

/* The exp= TXT: exactly one record (§6.2), else no explanation. */
static void
spf_take_exp(struct spf_check *c, const struct dns_answer *a)
{
	if (a->status != DNS_OK || a->n != 1 || a->rr[0].str == NULL ||
	    a->rr[0].len > SPF_RECORD_MAX)
		return;
	if ((c->exp_txt = malloc(a->rr[0].len + 1)) == NULL)
		return;
	memcpy(c->exp_txt, a->rr[0].str, a->rr[0].len);
	c->exp_txt[a->rr[0].len] = '\0';
	c->exp_len = a->rr[0].len;
}

/* Every answer comes here: copy what the phase needs, then go on. */
static void
spf_answer(const struct dns_answer *a, void *arg)
{
	struct spf_slot		*s = arg;
	struct spf_check	*c = s->chk;

	s->req = NULL;
	s->pending = false;
	s->status = a->status;
	s->matched = false;
	switch (s->want) {
	case W_RECORD:
		spf_take_record(c, a);
		break;
	case W_ADDR:
		s->matched = a->status == DNS_OK &&
		    spf_answer_match(c, a, c->fan_cidr);
		break;
	case W_EXISTS:
		s->matched = a->status == DNS_OK && a->n > 0;
		break;
	case W_MX:
	case W_PTR:
		spf_take_names(c, a, s->want == W_MX);
		break;
	case W_FAN:
		s->matched = a->status == DNS_OK &&
		    spf_answer_match(c, a, c->fan_cidr);
		break;
	case W_EXP:
		spf_take_exp(c, a);
		break;
	}
	if (spf_void(a))
		s->status = a->status == DNS_TEMPFAIL ? DNS_TEMPFAIL :
		    DNS_NXDOMAIN;
	c->pending--;
	if (c->pending == 0)
		(void)spf_run(c);
}

/* Asks (type, name) for slot. The answer may come before query()
 * returns; then the slot is already done. */
static void
spf_ask(struct spf_check *c, struct spf_slot *s, enum dns_type type,
    const char *name, enum spf_want want)
{
	struct dns_req	*req;

	s->chk = c;
	s->want = want;
	s->pending = true;
	s->req = NULL;
	c->pending++;
	c->result.queries++;
	req = c->res.query(type, name, spf_answer, s);
	if (!s->pending)
		return;		/* answered from inside query() */
	if (req != NULL) {
		s->req = req;
		return;
	}
	/* Could not ask (out of memory): a temporary failure. */
	s->pending = false;
	s->status = DNS_TEMPFAIL;
	s->matched = false;
	if (want == W_RECORD)
		c->rec_state = REC_TEMP;
	c->pending--;
}

static enum dns_type
spf_addr_type(const struct spf_check *c)
{
	return c->family == AF_INET ? DNS_A : DNS_AAAA;
}

/* Address lookups for the fan names, all at once. */
static void
spf_fan_out(struct spf_check *c, int cidr)
{
	c->fan_cidr = cidr;
	for (size_t i = 0; i < c->nfan; i++) {
		c->fan[i].status = DNS_NXDOMAIN;
		c->fan[i].matched = false;
		c->fan[i].pending = false;
	}
	for (size_t i = 0; i < c->nfan; i++)
		if (spf_name_ok(c->fan[i].name))
			spf_ask(c, &c->fan[i], spf_addr_type(c),
			    c->fan[i].name, W_FAN);
}

/* ---- frames and terms ---- */

static int
spf_client_cidr(const struct spf_check *c, const struct spf_term *t)
{
	return c->family == AF_INET ? t->cidr4 : t->cidr6;
}

/* A term matched in the top frame: its qualifier is the frame's result
 * (§4.6.2). */
static void spf_frame_done(struct spf_check *, enum spf_code);

static void
spf_match(struct spf_check *c, int cidr)
{
	struct spf_frame *f = spf_top(c);

	if (f->term.kind != SPF_T_INCLUDE)
		c->result.match_cidr = cidr;
	if (c->depth == 1)
		spf_note_term(c, f->rec, f->term.off, f->term.len);
	spf_frame_done(c, f->term.qual);
}

static void
spf_free_frame(struct spf_frame *f)
{
	free(f->rec);
	f->rec = NULL;
	f->len = 0;
}

/* A frame's check_host() ended with code (not an error: those end the
 * whole check). An include level hands it to the including term
 * (§5.2); the top level may fetch its explanation (§6.2). */
static void
spf_frame_done(struct spf_check *c, enum spf_code code)
{
	struct spf_frame *f;

	if (c->depth > 1) {
		spf_free_frame(spf_top(c));
		c->depth--;
		if (code == SPF_PASS)
			spf_match(c, c->result.match_cidr);
		else
			c->phase = PH_TERM;
		return;
	}
	f = spf_top(c);
	if (code == SPF_FAIL && f->info.has_exp) {
		c->result.code = code;
		c->phase = PH_EXP;
		return;
	}
	spf_finish(c, code, NULL);
}

/* Counts a DNS-querying term (§4.6.4); false when over the limit. */
static bool
spf_count_term(struct spf_check *c)
{
	if (++c->result.dns_terms > SPF_DNS_TERMS_MAX) {
		c->result.dns_terms = SPF_DNS_TERMS_MAX;
		spf_finish(c, SPF_PERMERROR, "more than 10 DNS terms");
		return false;
	}
	return true;
}

/* Counts a void lookup (§4.6.4); false when over the limit. */
static bool
spf_count_void(struct spf_check *c)
{
	if (++c->result.void_lookups > SPF_VOID_MAX) {
		spf_finish(c, SPF_PERMERROR, "more than 2 void lookups");
		return false;
	}
	return true;
}

static void
spf_step_loaded(struct spf_check *c)
{
	struct spf_frame *f = spf_top(c);

	switch (c->rec_state) {
	case REC_OK:
		break;
	case REC_NONE:
		/* §4.3 at the top; §5.2 and §6.1 make it a permerror. */
		if (c->load == LOAD_TOP)
			spf_finish(c, SPF_NONE, "no SPF record");
		else
			spf_finish(c, SPF_PERMERROR, c->load == LOAD_INCLUDE ?
			    "included domain has no SPF record" :
			    "redirect domain has no SPF record");
		return;
	case REC_TEMP:
		spf_finish(c, SPF_TEMPERROR, "DNS error fetching a record");
		return;
	case REC_MULTI:
		spf_finish(c, SPF_PERMERROR, "more than one SPF record");
		return;
	case REC_LONG:
		spf_finish(c, SPF_PERMERROR, "SPF record too long");
		return;
	case REC_OOM:
		spf_finish(c, SPF_TEMPERROR, "out of memory");
		return;
	}
	if (spf_record_parse(f->rec, f->len, &f->info) == -1) {
		spf_note_term(c, f->rec, f->info.bad_off, f->info.bad_len);
		spf_finish(c, SPF_PERMERROR, f->info.reason);
		return;
	}
	f->pos = 6;
	if (c->depth == 1)
		memcpy(c->result.record_domain, f->domain, sizeof(f->domain));
	c->phase = PH_TERM;
}

/* Reads the next term of the top frame and evaluates what needs no DNS;
 * a DNS term is counted and goes to PH_EXPAND. */
static void
spf_step_term(struct spf_check *c)
{
	struct spf_frame	*f = spf_top(c);
	struct spf_term		*t = &f->term;
	int			 r;

	while ((r = spf_term_next(f->rec, f->len, &f->pos, t)) == 1) {
		switch (t->kind) {
		case SPF_T_REDIRECT:
		case SPF_T_EXP:
		case SPF_T_UNKNOWN_MOD:
			continue;	/* modifiers act after the terms */
		case SPF_T_ALL:
			spf_match(c, 0);
			return;
		case SPF_T_IP4:
		case SPF_T_IP6:
			if ((t->kind == SPF_T_IP4) != (c->family == AF_INET))
				continue;	/* own family only (§5.6) */
			if (spf_cidr_eq(t->addr, c->addr,
			    spf_client_cidr(c, t))) {
				spf_match(c, spf_client_cidr(c, t));
				return;
			}
			continue;
		default:
			if (spf_count_term(c))
				c->phase = PH_EXPAND;
			return;
		}
	}
	if (r == -1) {	/* checked before: cannot happen */
		spf_finish(c, SPF_PERMERROR, "syntax error");
		return;
	}
	if (!f->info.has_redirect) {
		spf_frame_done(c, SPF_NEUTRAL);	/* §4.7 */
		return;
	}
	/* §6.1: no mechanism matched; redirect= is a DNS term. */
	memset(t, 0, sizeof(*t));
	t->kind = SPF_T_REDIRECT;
	t->has_arg = true;
	t->arg_off = f->info.redirect_off;
	t->arg_len = f->info.redirect_len;
	if (spf_count_term(c))
		c->phase = PH_EXPAND;
}

/* %{p} (§7.3): the validated name that is <domain>, else one under it,
 * else any, else "unknown". */
static const char *
spf_pick_p(struct spf_check *c, const char *d)
{
	size_t	dl = strlen(d), i, n;

	if (c->nptr == 0)
		return "unknown";
	for (i = 0; i < c->nptr; i++)
		if (strcasecmp(c->ptrs[i], d) == 0)
			return c->ptrs[i];
	for (i = 0; i < c->nptr; i++) {
		n = strlen(c->ptrs[i]);
		if (n > dl && c->ptrs[i][n - dl - 1] == '.' &&
		    strcasecmp(c->ptrs[i] + n - dl, d) == 0)
			return c->ptrs[i];
	}
	return c->ptrs[0];
}

/* Expands spec of the top frame; 1 done, 0 when %{p} must be looked
 * up first (the phase is set), -1 when it expands to nothing usable. */
static int
spf_expand(struct spf_check *c, const char *spec, size_t len,
    enum spf_macro_ctx ctx, char *out, size_t outlen)
{
	struct spf_frame	*f = spf_top(c);
	struct spf_macro_vars	 v;
	bool			 uses_p;

	if (spf_macro_check(spec, len, ctx, &uses_p) == -1)
		return -1;
	if (uses_p && !c->ptr_known) {
		c->resume = c->phase;
		c->phase = PH_PV_ASK;
		return 0;
	}
	memset(&v, 0, sizeof(v));
	v.s = c->sender;
	v.l = c->local;
	v.o = c->odom;
	v.d = f->domain;
	v.i = c->ip_i;
	v.p = uses_p ? spf_pick_p(c, f->domain) : NULL;
	v.v = c->family == AF_INET ? "in-addr" : "ip6";
	v.h = c->helo;
	v.c = c->ip_c;
	v.r = c->receiver;
	v.t = c->now;
	if (spf_macro_expand(spec, len, ctx, &v, out, outlen) == -1)
		return -1;
	if (ctx == SPF_MACRO_DOMAIN && !spf_name_ok(out))
		return -1;
	return 1;
}

/* Starts a frame's record lookup for domain (include pushes a frame,
 * redirect reuses it). */
static void
spf_load(struct spf_check *c, const char *domain, enum spf_load how)
{
	struct spf_frame *f;

	if (how == LOAD_INCLUDE) {
		if (c->depth >= SPF_DEPTH_MAX) {
			spf_finish(c, SPF_PERMERROR, "includes too deep");
			return;
		}
		c->depth++;
	}
	f = spf_top(c);
	spf_free_frame(f);
	memset(&f->info, 0, sizeof(f->info));
	if (domain != f->domain)
		snprintf(f->domain, sizeof(f->domain), "%s", domain);
	c->load = how;
	c->rec_state = REC_NONE;
	c->phase = PH_LOADED;
	spf_ask(c, &c->main, DNS_TXT, f->domain, W_RECORD);
}

/* The term's target (domain-spec or <domain>) is expanded; ask. */
static void
spf_step_expand(struct spf_check *c)
{
	struct spf_frame	*f = spf_top(c);
	struct spf_term		*t = &f->term;
	int			 r = 1;

	if (t->has_arg)
		r = spf_expand(c, f->rec + t->arg_off, t->arg_len,
		    SPF_MACRO_DOMAIN, c->target, sizeof(c->target));
	else
		snprintf(c->target, sizeof(c->target), "%s", f->domain);
	if (r == 0)
		return;
	if (r == -1) {
		/* A name that cannot be asked does not exist (§4.3, §4.8;
		 * the suite accepts this or permerror): include/redirect
		 * of it is a permerror, other terms do not match. */
		if (t->kind == SPF_T_INCLUDE || t->kind == SPF_T_REDIRECT)
			spf_finish(c, SPF_PERMERROR, "bad include or "
			    "redirect target");
		else
			c->phase = PH_TERM;
		return;
	}
	switch (t->kind) {
	case SPF_T_INCLUDE:
		spf_load(c, c->target, LOAD_INCLUDE);
		return;
	case SPF_T_REDIRECT:
		spf_load(c, c->target, LOAD_REDIRECT);
		return;
	case SPF_T_PTR:
		c->phase = PH_PTR_MATCH;
		if (!c->ptr_known) {
			c->resume = PH_PTR_MATCH;
			c->phase = PH_PV_ASK;
		}
		return;
	case SPF_T_A:
		c->fan_cidr = spf_client_cidr(c, t);
		c->phase = PH_ASKED;
		spf_ask(c, &c->main, spf_addr_type(c), c->target, W_ADDR);
		return;
	case SPF_T_EXISTS:
		c->phase = PH_ASKED;
		spf_ask(c, &c->main, DNS_A, c->target, W_EXISTS);
		return;
	case SPF_T_MX:
		c->phase = PH_ASKED;
		spf_ask(c, &c->main, DNS_MX, c->target, W_MX);
		return;
	default:
		spf_finish(c, SPF_PERMERROR, "bad term");
		return;
	}
}

/* The a/exists/mx question answered (§5.3, §5.4, §5.7). */
static void
spf_step_asked(struct spf_check *c)
{
	struct spf_term *t = &spf_top(c)->term;

	if (c->main.status == DNS_TEMPFAIL) {
		spf_finish(c, SPF_TEMPERROR, "DNS error");
		return;
	}
	if (c->main.status == DNS_NXDOMAIN && !spf_count_void(c))
		return;
	if (t->kind != SPF_T_MX) {
		if (c->main.matched)
			spf_match(c, t->kind == SPF_T_A ?
			    spf_client_cidr(c, t) : -1);
		else
			c->phase = PH_TERM;
		return;
	}
	if (c->too_many) {
		spf_finish(c, SPF_PERMERROR, "more than 10 MX records");
		return;
	}
	c->phase = PH_FANNED;
	spf_fan_out(c, spf_client_cidr(c, t));
}

/* mx: the exchanges' addresses, taken in order as if asked one by one:
 * a match before any error matches, an error first is temperror. */
static void
spf_step_fanned(struct spf_check *c)
{
	struct spf_term *t = &spf_top(c)->term;

	for (size_t i = 0; i < c->nfan; i++) {
		if (c->fan[i].matched) {
			spf_match(c, spf_client_cidr(c, t));
			return;
		}
		if (c->fan[i].status == DNS_TEMPFAIL) {
			spf_finish(c, SPF_TEMPERROR, "DNS error");
			return;
		}
	}
	c->phase = PH_TERM;
}

/* ptr (§5.5): a validated name that is the target or under it. */
static void
spf_step_ptr_match(struct spf_check *c)
{
	size_t	tl = strlen(c->target), n;

	if (c->ptr_void && !spf_count_void(c))
		return;
	for (size_t i = 0; i < c->nptr; i++) {
		n = strlen(c->ptrs[i]);
		if (strcasecmp(c->ptrs[i], c->target) == 0 ||
		    (n > tl && c->ptrs[i][n - tl - 1] == '.' &&
		    strcasecmp(c->ptrs[i] + n - tl, c->target) == 0)) {
			spf_match(c, -1);
			return;
		}
	}
	c->phase = PH_TERM;
}

/* The reverse name of the client: nibbles for IPv6 (RFC 3596). */
static void
spf_reverse_name(const struct spf_check *c, char *out, size_t outlen)
{
	static const char	hex[] = "0123456789abcdef";
	size_t			n = 0;

	if (c->family == AF_INET) {
		snprintf(out, outlen, "%u.%u.%u.%u.in-addr.arpa", c->addr[3],
		    c->addr[2], c->addr[1], c->addr[0]);
		return;
	}
	for (int i = 15; i >= 0 && n + 4 < outlen; i--) {
		out[n++] = hex[c->addr[i] & 15];
		out[n++] = '.';
		out[n++] = hex[c->addr[i] >> 4];
		out[n++] = '.';
	}
	snprintf(out + n, outlen - n, "ip6.arpa");
}

/* Validation of the client's names: PTR, then the addresses of the
 * first 10 names (§4.6.4, §5.5). Errors only leave names out. */
static void
spf_step_pv(struct spf_check *c)
{
	char	rev[80];

	switch (c->phase) {
	case PH_PV_ASK:
		spf_reverse_name(c, rev, sizeof(rev));
		c->phase = PH_PV_ASKED;
		spf_ask(c, &c->main, DNS_PTR, rev, W_PTR);
		return;
	case PH_PV_ASKED:
		c->ptr_void = c->main.status == DNS_NXDOMAIN;
		if (c->main.status != DNS_OK || c->nfan == 0)
			break;
		c->phase = PH_PV_FANNED;
		spf_fan_out(c, c->family == AF_INET ? 32 : 128);
		return;
	default:
		for (size_t i = 0; i < c->nfan; i++)
			if (c->fan[i].matched)
				memcpy(c->ptrs[c->nptr++], c->fan[i].name,
				    sizeof(c->ptrs[0]));
		break;
	}
	c->ptr_known = true;
	c->phase = c->resume;
}

/* §6.2: the explanation of a fail at the top. Problems only mean there
 * is none; the result stays fail. */
static void
spf_step_exp(struct spf_check *c)
{
	struct spf_frame	*f = spf_top(c);
	int			 r;

	if (c->phase == PH_EXP) {
		r = spf_expand(c, f->rec + f->info.exp_off, f->info.exp_len,
		    SPF_MACRO_DOMAIN, c->target, sizeof(c->target));
		if (r == 0)
			return;
		if (r == -1) {
			spf_finish(c, SPF_FAIL, NULL);
			return;
		}
		c->phase = PH_EXP_ASKED;
		spf_ask(c, &c->main, DNS_TXT, c->target, W_EXP);
		return;
	}
	if (c->exp_txt != NULL) {
		r = spf_expand(c, c->exp_txt, c->exp_len, SPF_MACRO_EXPLAIN,
		    c->result.explanation, sizeof(c->result.explanation));
		if (r == 0)
			return;
		if (r == -1)
			c->result.explanation[0] = '\0';
	}
	spf_finish(c, SPF_FAIL, NULL);
}

static void
spf_step(struct spf_check *c)
{
	switch (c->phase) {
	case PH_LOAD:
		spf_load(c, c->frames[0].domain, LOAD_TOP);
		break;
	case PH_LOADED:
		spf_step_loaded(c);
		break;
	case PH_TERM:
		spf_step_term(c);
		break;
	case PH_EXPAND:
		spf_step_expand(c);
		break;
	case PH_ASKED:
		spf_step_asked(c);
		break;
	case PH_FANNED:
		spf_step_fanned(c);
		break;
	case PH_PTR_MATCH:
		spf_step_ptr_match(c);
		break;
	case PH_PV_ASK:
	case PH_PV_ASKED:
	case PH_PV_FANNED:
		spf_step_pv(c);
		break;
	case PH_EXP:
	case PH_EXP_ASKED:
		spf_step_exp(c);
		break;
	case PH_DONE:
		break;
	}
}

static void
spf_free(struct spf_check *c)
{
	for (size_t i = 0; i < SPF_DEPTH_MAX; i++)
		free(c->frames[i].rec);
	free(c->exp_txt);
	free(c);
}

/* Steps while nothing is pending; hands the result over at the end
 * and frees the check (true then). Never nests: an answer from inside
 * query() only records itself for the loop already running. */
static bool
spf_run(struct spf_check *c)
{
	if (c->running || c->in_done)
		return false;
	c->running = true;
	while (c->pending == 0 && c->phase != PH_DONE)
		spf_step(c);
	c->running = false;
	if (c->phase != PH_DONE || c->pending != 0)
		return false;
	c->in_done = true;
	c->done(&c->result, c->arg);
	spf_free(c);
	return true;
}

void
spf_check_cancel(struct spf_check *c)
{
	if (c == NULL || c->in_done)
		return;
	if (c->main.pending && c->main.req != NULL)
		c->res.cancel(c->main.req);
	for (size_t i = 0; i < SPF_MX_NAMES_MAX; i++)
		if (c->fan[i].pending && c->fan[i].req != NULL)
			c->res.cancel(c->fan[i].req);
	spf_free(c);
}

/* Copies s into dst (size n); false when it does not fit. */
static bool
spf_copy(char *dst, size_t n, const char *s)
{
	size_t	len = strnlen(s, n);

	if (len >= n)
		return false;
	memcpy(dst, s, len + 1);
	return true;
}

/* §4.3: a domain we will look up: not malformed, multi-label, not an
 * address literal. One trailing dot is dropped. */
static bool
spf_domain_usable(char *d)
{
	size_t	len = strlen(d);

	if (len > 1 && d[len - 1] == '.')
		d[len - 1] = '\0';
	return d[0] != '[' && spf_name_ok(d) && strchr(d, '.') != NULL;
}

/* The client and the macro values; false on bad params. */
static bool
spf_setup(struct spf_check *c, const struct spf_params *p)
{
	static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0,
	    0, 0xff, 0xff };
	const char	*helo = p->helo != NULL ? p->helo : "";
	const char	*dom = p->domain != NULL ? p->domain : "";
	const char	*loc = p->local != NULL && p->local[0] != '\0' ?
			    p->local : "postmaster";
	long long	 now = p->now != 0 ? (long long)p->now :
			    (long long)time(NULL);

	c->family = p->family;
	memcpy(c->addr, p->addr, 16);
	if (p->family == AF_INET6 && memcmp(p->addr, mapped, 12) == 0) {
		c->family = AF_INET;	/* §5: v4-mapped is IPv4 */
		memmove(c->addr, p->addr + 12, 4);
	}
	if (c->family != AF_INET && c->family != AF_INET6)
		return false;
	if (p->identity == SPF_ID_HELO || dom[0] == '\0') {
		dom = helo;	/* §2.3, §2.4: postmaster@HELO */
		loc = "postmaster";
	}
	if (!spf_copy(c->helo, sizeof(c->helo), helo) ||
	    !spf_copy(c->odom, sizeof(c->odom), dom) ||
	    !spf_copy(c->local, sizeof(c->local), loc) ||
	    !spf_copy(c->receiver, sizeof(c->receiver),
	    p->receiver != NULL ? p->receiver : "unknown"))
		return false;
	snprintf(c->sender, sizeof(c->sender), "%s@%s", c->local, c->odom);
	snprintf(c->now, sizeof(c->now), "%lld", now);
	inet_ntop(c->family, c->addr, c->ip_c, sizeof(c->ip_c));
	if (c->family == AF_INET)
		snprintf(c->ip_i, sizeof(c->ip_i), "%s", c->ip_c);
	else {
		/* §7.3: dot-separated nibbles; upper case as the RFC 7208
		 * test suite expects (DNS does not care). */
		static const char hex[] = "0123456789ABCDEF";
		size_t n = 0;

		for (int i = 0; i < 16; i++) {
			c->ip_i[n++] = hex[c->addr[i] >> 4];
			c->ip_i[n++] = '.';
			c->ip_i[n++] = hex[c->addr[i] & 15];
			c->ip_i[n++] = i < 15 ? '.' : '\0';
		}
	}
	return true;
}

struct spf_check *
spf_check_start(const struct spf_resolver *res, const struct spf_params *p,
    spf_done_cb done, void *arg)
{
	struct spf_check	*c;
	struct spf_result	 r;

	if ((c = calloc(1, sizeof(*c))) == NULL) {
		memset(&r, 0, sizeof(r));
		r.code = SPF_TEMPERROR;
		r.match_cidr = -1;
		r.reason = "out of memory";
		done(&r, arg);
		return NULL;
	}
	c->res = *res;
	c->done = done;
	c->arg = arg;
	c->result.match_cidr = -1;
	c->result.reason = "";
	c->depth = 1;
	c->phase = PH_LOAD;
	if (!spf_setup(c, p)) {
		spf_finish(c, SPF_NONE, "unusable identity or address");
	} else {
		snprintf(c->result.domain, sizeof(c->result.domain), "%s",
		    c->odom);
		if (!spf_copy(c->frames[0].domain,
		    sizeof(c->frames[0].domain), c->odom) ||
		    !spf_domain_usable(c->frames[0].domain))
			spf_finish(c, SPF_NONE, "malformed domain");
	}
	/* Delivered already (and freed) unless something is pending. */
	return spf_run(c) ? NULL : c;
}
