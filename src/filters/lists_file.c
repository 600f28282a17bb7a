/*
 * lists_file.c: the lists filter's list files, parsed and matched (see
 * lists.h for the format). Pure: bytes in, entries out; nothing here
 * knows about sessions.
 *
 * Invariants: every entry keeps its file and line; keys are lowercased
 * and bounded by the kind's limit (an address or a name); a pattern is
 * compiled at load (an error is file:line with PCRE2's message and
 * offset) and every match runs under the list's match and depth limits,
 * so no subject can make a pattern run away. A subject longer than any
 * key can be is not looked up by key.
 */
#define PCRE2_CODE_UNIT_WIDTH 8

#include <ctype.h>
#include <errno.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lists.h"

struct lists_set *
lists_set_new(enum lists_kind kind, uint32_t match_limit,
    uint32_t depth_limit)
{
	struct lists_set *l;

	if ((l = calloc(1, sizeof(*l))) == NULL)
		return NULL;
	l->kind = kind;
	l->mctx = pcre2_match_context_create(NULL);
	l->md = pcre2_match_data_create(1, NULL);
	if (l->mctx == NULL || l->md == NULL) {
		lists_set_free(l);
		return NULL;
	}
	pcre2_set_match_limit(l->mctx, match_limit);
	pcre2_set_depth_limit(l->mctx, depth_limit);
	return l;
}

void
lists_set_free(struct lists_set *l)
{
	size_t i;

	if (l == NULL)
		return;
	for (i = 0; i < l->n; i++) {
		free(l->v[i].key);
		free(l->v[i].text);
		free(l->v[i].rule);
		pcre2_code_free(l->v[i].re);
	}
	for (i = 0; i < l->nfiles; i++)
		free(l->files[i]);
	free(l->files);
	free(l->v);
	free(l->keyed);
	free(l->pat);
	free(l->nets);
	pcre2_match_context_free(l->mctx);
	pcre2_match_data_free(l->md);
	free(l);
}

static bool
kind_is_addr(enum lists_kind k)
{
	return k == LISTS_SENDER || k == LISTS_RCPT;
}

/* A reply text: printable ASCII only (it goes into a reply line). */
static int
text_ok(const char *t, size_t n, char *err, size_t errlen)
{
	size_t i;

	if (n > LISTS_TEXT_MAX) {
		snprintf(err, errlen, "reply text longer than %d characters",
		    LISTS_TEXT_MAX);
		return -1;
	}
	for (i = 0; i < n; i++)
		if ((unsigned char)t[i] < 0x20 || (unsigned char)t[i] > 0x7e) {
			snprintf(err, errlen, "reply text: only printable "
			    "ASCII");
			return -1;
		}
	return 0;
}

/* Compiles a pattern into e; -1 with PCRE2's reason and offset. */
static int
pattern_compile(struct lists_entry *e, const char *p, size_t n, char *err,
    size_t errlen)
{
	PCRE2_UCHAR	 msg[160];
	PCRE2_SIZE	 off;
	int		 ec;

	if (n == 0 || n > LISTS_PATTERN_MAX) {
		snprintf(err, errlen, n == 0 ? "empty pattern" :
		    "pattern longer than %d characters", LISTS_PATTERN_MAX);
		return -1;
	}
	e->re = pcre2_compile((PCRE2_SPTR)p, n, PCRE2_CASELESS |
	    PCRE2_NEVER_BACKSLASH_C, &ec, &off, NULL);
	if (e->re == NULL) {
		pcre2_get_error_message(ec, msg, sizeof(msg));
		snprintf(err, errlen, "pattern: %s at offset %zu", msg,
		    (size_t)off);
		return -1;
	}
	/* JIT when the library has it; the interpreter otherwise. */
	(void)pcre2_jit_compile(e->re, PCRE2_JIT_COMPLETE);
	if ((e->key = strndup(p, n)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	e->type = LISTS_REGEX;
	return 0;
}

/* A key entry (exact, @domain, .suffix, network) of the list's kind. */
static int
key_parse(const struct lists_set *l, struct lists_entry *e, const char *k,
    size_t n, char *err, size_t errlen)
{
	char	 tmp[LISTS_ADDR_MAX + 2];
	size_t	 max = kind_is_addr(l->kind) ? LISTS_ADDR_MAX :
		    LISTS_NAME_MAX;

	if (n > max) {
		snprintf(err, errlen, "entry longer than %zu characters", max);
		return -1;
	}
	memcpy(tmp, k, n);
	tmp[n] = '\0';
	if (l->kind == LISTS_IP) {
		if (cidr_parse(tmp, &e->net) == -1) {
			snprintf(err, errlen, "'%.64s' is not an address or "
			    "network", tmp);
			return -1;
		}
		e->type = LISTS_CIDR;
	} else if (tmp[0] == '.') {
		e->type = LISTS_SUFFIX;
	} else if (tmp[0] == '@' && kind_is_addr(l->kind)) {
		e->type = LISTS_DOMAIN;
	} else if (kind_is_addr(l->kind) ? strchr(tmp + 1, '@') != NULL :
	    strchr(tmp, '@') == NULL) {
		e->type = LISTS_EXACT;
	} else {
		snprintf(err, errlen, kind_is_addr(l->kind) ? "'%.64s' is not "
		    "user@domain, @domain, .domain or /pattern/" : "'%.64s' is "
		    "not a name, .domain or /pattern/", tmp);
		return -1;
	}
	/* A name's trailing dot is not part of it. */
	if (n > 1 && tmp[n - 1] == '.' && l->kind != LISTS_IP)
		tmp[--n] = '\0';
	if (n < 2 && e->type != LISTS_EXACT && e->type != LISTS_CIDR) {
		snprintf(err, errlen, "'%.64s' names no domain", tmp);
		return -1;
	}
	lower_ascii(tmp, n);
	if ((e->key = strndup(tmp, n)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

static struct lists_entry *
entry_new(struct lists_set *l, char *err, size_t errlen)
{
	struct lists_entry	*v;
	size_t			 cap;

	if (l->n == LISTS_ENTRIES_MAX) {
		snprintf(err, errlen, "more than %d entries", LISTS_ENTRIES_MAX);
		return NULL;
	}
	if (l->n == l->cap) {
		cap = l->cap ? l->cap * 2 : 64;
		if ((v = reallocarray(l->v, cap, sizeof(*v))) == NULL) {
			snprintf(err, errlen, "out of memory");
			return NULL;
		}
		l->v = v;
		l->cap = cap;
	}
	memset(&l->v[l->n], 0, sizeof(l->v[l->n]));
	return &l->v[l->n];
}

static void
entry_clear(struct lists_entry *e)
{
	free(e->key);
	free(e->text);
	pcre2_code_free(e->re);
	memset(e, 0, sizeof(*e));
}

/*
 * One line (no newline): trimmed; blank and '#' lines are nothing; the
 * entry runs to the first white space, the rest is its reply text
 * unless it starts with '#'.
 */
static int
line_parse(struct lists_set *l, const char *file, int lineno, const char *p,
    size_t n, bool all_regex, char *err, size_t errlen)
{
	struct lists_entry	*e;
	size_t			 k, t;
	int			 rc;

	while (n > 0 && isspace((unsigned char)*p))
		p++, n--;
	while (n > 0 && isspace((unsigned char)p[n - 1]))
		n--;
	if (n == 0 || *p == '#')
		return 0;
	for (k = 0; k < n && !isspace((unsigned char)p[k]); k++)
		;
	for (t = k; t < n && isspace((unsigned char)p[t]); t++)
		;
	if (t < n && p[t] == '#')
		t = n;
	if (t < n && text_ok(p + t, n - t, err, errlen) == -1)
		return -1;
	if ((e = entry_new(l, err, errlen)) == NULL)
		return -1;
	if (all_regex)
		rc = pattern_compile(e, p, k, err, errlen);
	else if (k >= 2 && p[0] == '/' && p[k - 1] == '/')
		rc = pattern_compile(e, p + 1, k - 2, err, errlen);
	else
		rc = key_parse(l, e, p, k, err, errlen);
	if (rc == 0 && e->type == LISTS_REGEX &&
	    l->npattern == LISTS_PATTERNS_MAX) {
		snprintf(err, errlen, "more than %d patterns",
		    LISTS_PATTERNS_MAX);
		rc = -1;
	}
	if (rc == 0 && t < n && (e->text = strndup(p + t, n - t)) == NULL) {
		snprintf(err, errlen, "out of memory");
		rc = -1;
	}
	if (rc == -1) {
		entry_clear(e);
		return -1;
	}
	e->file = file;
	e->line = lineno;
	l->npattern += e->type == LISTS_REGEX;
	l->n++;
	l->sorted = false;
	return 0;
}

/* Keeps a copy of the file name for the entries; NULL on OOM. */
static const char *
file_add(struct lists_set *l, const char *file)
{
	char	**v;
	char	 *c;

	if ((c = strdup(file)) == NULL)
		return NULL;
	if ((v = reallocarray(l->files, l->nfiles + 1, sizeof(*v))) == NULL) {
		free(c);
		return NULL;
	}
	l->files = v;
	l->files[l->nfiles++] = c;
	return c;
}

int
lists_set_parse(struct lists_set *l, const char *file, const char *buf,
    size_t len, bool all_regex, char *err, size_t errlen)
{
	const char	*name, *nl;
	char		 msg[256];
	size_t		 n;
	int		 lineno = 0;

	if ((name = file_add(l, file)) == NULL) {
		snprintf(err, errlen, "%s: out of memory", file);
		return -1;
	}
	while (len > 0) {
		lineno++;
		nl = memchr(buf, '\n', len);
		n = nl != NULL ? (size_t)(nl - buf) : len;
		if (n > LIMIT_LIST_LINE) {
			snprintf(err, errlen, "%s:%d: line longer than %d "
			    "characters", file, lineno, LIMIT_LIST_LINE);
			return -1;
		}
		if (memchr(buf, '\0', n) != NULL) {
			snprintf(err, errlen, "%s:%d: NUL byte", file, lineno);
			return -1;
		}
		if (line_parse(l, name, lineno, buf, n, all_regex, msg,
		    sizeof(msg)) == -1) {
			snprintf(err, errlen, "%s:%d: %s", file, lineno, msg);
			return -1;
		}
		if (nl == NULL)
			break;
		buf += n + 1;
		len -= n + 1;
	}
	return 0;
}

int
lists_set_load(struct lists_set *l, const char *path, bool all_regex,
    char *err, size_t errlen)
{
	FILE		*fp;
	struct stat	 st;
	char		*buf;
	size_t		 n;
	int		 rc;

	if ((fp = fopen(path, "r")) == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fileno(fp), &st) == -1 || st.st_size > LISTS_FILE_MAX) {
		snprintf(err, errlen, "%s: %s", path, st.st_size >
		    LISTS_FILE_MAX ? "larger than 64 MiB" : strerror(errno));
		fclose(fp);
		return -1;
	}
	/* Sized by the file; one byte more tells that it grew meanwhile. */
	if ((buf = malloc((size_t)st.st_size + 1)) == NULL) {
		fclose(fp);
		snprintf(err, errlen, "%s: out of memory", path);
		return -1;
	}
	n = fread(buf, 1, (size_t)st.st_size + 1, fp);
	if (ferror(fp) || n > (size_t)st.st_size) {
		snprintf(err, errlen, "%s: %s", path, ferror(fp) ?
		    "read error" : "changed while read");
		rc = -1;
	} else
		rc = lists_set_parse(l, path, buf, n, all_regex, err, errlen);
	free(buf);
	fclose(fp);
	return rc;
}

static int
keyed_cmp(const void *a, const void *b)
{
	const struct lists_entry *x = *(const struct lists_entry *const *)a;
	const struct lists_entry *y = *(const struct lists_entry *const *)b;
	int c = strcmp(x->key, y->key);

	/* Equal keys: the first line wins (stable by position). */
	return c != 0 ? c : x < y ? -1 : x > y;
}

/* Every entry of one type, in file order (an index into l->v). */
static struct lists_entry **
index_of(struct lists_set *l, bool (*want)(enum lists_type), size_t *np)
{
	struct lists_entry	**k;
	size_t			  i, n = 0;

	if ((k = reallocarray(NULL, l->n + 1, sizeof(*k))) == NULL)
		return NULL;
	for (i = 0; i < l->n; i++)
		if (want(l->v[i].type))
			k[n++] = &l->v[i];
	*np = n;
	return k;
}

static bool
is_keyed(enum lists_type t)
{
	return t == LISTS_EXACT || t == LISTS_DOMAIN || t == LISTS_SUFFIX;
}

static bool
is_pattern(enum lists_type t)
{
	return t == LISTS_REGEX;
}

static bool
is_net(enum lists_type t)
{
	return t == LISTS_CIDR;
}

int
lists_set_finish(struct lists_set *l)
{
	free(l->keyed);
	free(l->pat);
	free(l->nets);
	l->pat = l->nets = NULL;
	l->sorted = false;
	if ((l->keyed = index_of(l, is_keyed, &l->nkeyed)) == NULL ||
	    (l->pat = index_of(l, is_pattern, &l->npat)) == NULL ||
	    (l->nets = index_of(l, is_net, &l->nnets)) == NULL)
		return -1;
	qsort(l->keyed, l->nkeyed, sizeof(*l->keyed), keyed_cmp);
	l->sorted = true;
	return 0;
}

/* The first keyed entry whose key is key (n bytes, lowercased). */
static const struct lists_entry *
keyed_find(const struct lists_set *l, const char *key, size_t n)
{
	size_t	lo = 0, hi = l->nkeyed, mid;
	int	c;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		c = strncmp(l->keyed[mid]->key, key, n);
		if (c == 0 && l->keyed[mid]->key[n] != '\0')
			c = 1;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < l->nkeyed && strncmp(l->keyed[lo]->key, key, n) == 0 &&
	    l->keyed[lo]->key[n] == '\0')
		return l->keyed[lo];
	return NULL;
}

/* Exact, @domain, then .suffixes longest first, of a lowercased subject. */
static const struct lists_entry *
keyed_match(const struct lists_set *l, const char *sub, size_t n)
{
	const struct lists_entry	*e;
	const char			*d;

	if (l->nkeyed == 0 || n == 0)
		return NULL;
	if ((e = keyed_find(l, sub, n)) != NULL && e->type == LISTS_EXACT)
		return e;
	d = sub;
	if (kind_is_addr(l->kind)) {
		if ((d = strrchr(sub, '@')) == NULL)
			return NULL;
		if ((e = keyed_find(l, d, n - (size_t)(d - sub))) != NULL &&
		    e->type == LISTS_DOMAIN)
			return e;
		d++;
	}
	/* ".example.com" is the tail of "a.example.com" from its dot. */
	for (d = strchr(d, '.'); d != NULL; d = strchr(d + 1, '.'))
		if ((e = keyed_find(l, d, n - (size_t)(d - sub))) != NULL &&
		    e->type == LISTS_SUFFIX)
			return e;
	return NULL;
}

const struct lists_entry *
lists_match(const struct lists_set *l, const char *subject,
    const struct sockaddr *sa, bool *limited)
{
	char		 low[LISTS_ADDR_MAX + 1];
	size_t		 i, n = strlen(subject);
	const struct lists_entry *e;
	int		 rc;

	if (l == NULL || !l->sorted)
		return NULL;
	if (n < sizeof(low)) {
		memcpy(low, subject, n + 1);
		lower_ascii(low, n);
		/* A name's trailing dot is not part of it. */
		if (n > 1 && low[n - 1] == '.' && !kind_is_addr(l->kind))
			low[--n] = '\0';
		if ((e = keyed_match(l, low, n)) != NULL)
			return e;
		n = strlen(subject);
	}
	for (i = 0; sa != NULL && i < l->nnets; i++)
		if (cidr_match(&l->nets[i]->net, sa))
			return l->nets[i];
	for (i = 0; i < l->npat; i++) {
		rc = pcre2_match(l->pat[i]->re, (PCRE2_SPTR)subject, n, 0, 0,
		    l->md, l->mctx);
		if (rc >= 0)
			return l->pat[i];
		if (rc != PCRE2_ERROR_NOMATCH && limited != NULL)
			*limited = true;
	}
	return NULL;
}

const char *
lists_rule(const struct lists_entry *ce)
{
	struct lists_entry	*e = (struct lists_entry *)(uintptr_t)ce;
	size_t			 n;

	/* Made on first use (a refusal or an allow), kept with the entry:
	 * a verdict's "by" must outlive the session. */
	if (e->rule == NULL) {
		n = strlen(e->file) + 24;
		if ((e->rule = malloc(n)) == NULL)
			return NULL;
		snprintf(e->rule, n, "lists:%s:%d", e->file, e->line);
	}
	return e->rule;
}
