/*
 * fuzz_lists.c: libFuzzer harness for the lists filter's list parser and
 * matcher (src/filters/lists_file.c).
 *
 * Input: one control byte (kind = (byte & 7) % 5, bit 3: a regex file), the
 * list text up to the first NUL, then subjects separated by NULs. Checks
 * the parser's promises (every entry has a line, a key within its kind's
 * limit, a printable text within LISTS_TEXT_MAX; pattern count bounded)
 * and the matcher against a brute-force oracle: the sorted lookup finds
 * a keyed entry exactly when one matches, the one it finds does match,
 * and of equal keys it is the first line. Patterns run under small
 * limits, so a runaway one shows as a timeout, not as slowness.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/filters/lists.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static bool
is_addr(enum lists_kind k)
{
	return k == LISTS_SENDER || k == LISTS_RCPT;
}

static bool
ends_with(const char *s, const char *tail)
{
	size_t n = strlen(s), t = strlen(tail);

	return n >= t && memcmp(s + n - t, tail, t) == 0;
}

/* Does keyed entry e match the lowercased subject (the oracle)? */
static bool
oracle(enum lists_kind k, const struct lists_entry *e, const char *sub)
{
	const char *at = strrchr(sub, '@'), *dom = sub;

	if (e->type == LISTS_EXACT)
		return strcmp(e->key, sub) == 0;
	if (e->type == LISTS_DOMAIN)
		return at != NULL && strcmp(e->key, at) == 0;
	if (is_addr(k)) {
		if (at == NULL)
			return false;
		dom = at + 1;
	}
	return ends_with(dom, e->key);
}

static bool
keyed(const struct lists_entry *e)
{
	return e->type == LISTS_EXACT || e->type == LISTS_DOMAIN ||
	    e->type == LISTS_SUFFIX;
}

static void
check_entries(const struct lists_set *l)
{
	size_t	i, j, max = is_addr(l->kind) ? LISTS_ADDR_MAX :
		    LISTS_NAME_MAX;
	size_t	npat = 0;

	for (i = 0; i < l->n; i++) {
		const struct lists_entry *e = &l->v[i];

		if (e->line < 1 || e->key == NULL || e->file == NULL)
			abort();
		if (keyed(e) && strlen(e->key) > max)
			abort();
		if (e->type == LISTS_REGEX && (e->re == NULL ||
		    strlen(e->key) > LISTS_PATTERN_MAX))
			abort();
		npat += e->type == LISTS_REGEX;
		if (e->text != NULL) {
			if (strlen(e->text) > LISTS_TEXT_MAX ||
			    e->text[0] == '#' || e->text[0] == ' ')
				abort();
			for (j = 0; e->text[j] != '\0'; j++)
				if ((unsigned char)e->text[j] < 0x20 ||
				    (unsigned char)e->text[j] > 0x7e)
					abort();
		}
		if (keyed(e))
			for (j = 0; e->key[j] != '\0'; j++)
				if (e->key[j] >= 'A' && e->key[j] <= 'Z')
					abort();
	}
	if (npat != l->npat || npat > LISTS_PATTERNS_MAX)
		abort();
}

static void
check_match(const struct lists_set *l, const char *subject)
{
	const struct lists_entry	*got, *best = NULL;
	struct sockaddr_in		 sin = { .sin_family = AF_INET };
	struct sockaddr_in6		 sin6 = { .sin6_family = AF_INET6 };
	const struct sockaddr		*sa = NULL;
	char				 low[LISTS_ADDR_MAX + 2];
	size_t				 i, n = strlen(subject);
	bool				 limited = false;

	if (inet_pton(AF_INET, subject, &sin.sin_addr) == 1)
		sa = (const struct sockaddr *)&sin;
	else if (inet_pton(AF_INET6, subject, &sin6.sin6_addr) == 1)
		sa = (const struct sockaddr *)&sin6;
	got = lists_match(l, subject, sa, &limited);
	if (got != NULL && (got < l->v || got >= l->v + l->n))
		abort();
	if (n > LISTS_ADDR_MAX)
		return;		/* not looked up by key */
	for (i = 0; i <= n; i++)
		low[i] = (char)(subject[i] >= 'A' && subject[i] <= 'Z' ?
		    subject[i] - 'A' + 'a' : subject[i]);
	if (n > 1 && low[n - 1] == '.' && !is_addr(l->kind))
		low[n - 1] = '\0';
	for (i = 0; n > 0 && i < l->n; i++)
		if (keyed(&l->v[i]) && oracle(l->kind, &l->v[i], low)) {
			best = &l->v[i];
			break;
		}
	if (best == NULL) {
		if (got != NULL && keyed(got))
			abort();	/* found what does not match */
		return;
	}
	if (got == NULL || !keyed(got) || !oracle(l->kind, got, low))
		abort();		/* missed a match */
	/* Of entries with got's key, got is the first. */
	for (i = 0; i < l->n; i++)
		if (keyed(&l->v[i]) && strcmp(l->v[i].key, got->key) == 0) {
			if (&l->v[i] != got)
				abort();
			break;
		}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct lists_set	*l;
	const char		*p, *end, *z;
	char			 err[512], subject[600];
	enum lists_kind		 kind;
	bool			 all_regex;
	size_t			 n;

	if (size < 1 || size > 16384)
		return 0;
	kind = (enum lists_kind)((data[0] & 7) % LISTS_KINDS);
	all_regex = (data[0] & 8) != 0;
	p = (const char *)data + 1;
	end = (const char *)data + size;
	z = memchr(p, '\0', (size_t)(end - p));
	n = z != NULL ? (size_t)(z - p) : (size_t)(end - p);
	if ((l = lists_set_new(kind, 10000, 1000)) == NULL)
		abort();
	err[0] = '\0';
	if (lists_set_parse(l, "f", p, n, all_regex, err, sizeof(err)) ==
	    -1) {
		if (strncmp(err, "f:", 2) != 0)
			abort();	/* every error names file:line */
		lists_set_free(l);
		return 0;
	}
	if (lists_set_finish(l) == -1)
		abort();
	check_entries(l);
	for (p = z != NULL ? z + 1 : end; p < end; p += n + 1) {
		z = memchr(p, '\0', (size_t)(end - p));
		n = z != NULL ? (size_t)(z - p) : (size_t)(end - p);
		if (n >= sizeof(subject))
			continue;
		memcpy(subject, p, n);
		subject[n] = '\0';
		check_match(l, subject);
	}
	for (n = 0; n < l->n; n++)
		if (lists_rule(&l->v[n]) == NULL)
			abort();
	lists_set_free(l);
	return 0;
}
