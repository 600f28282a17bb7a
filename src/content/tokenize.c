/*
 * tokenize.c: words, OSB word pairs and single facts as hashed features
 * (tokenize.h). Pure: bytes in, a sorted set of 64-bit hashes out; no
 * input can make it read past len or store more than max features.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "tokenize.h"

#define FNV_OFFSET	0xcbf29ce484222325ULL
#define FNV_PRIME	0x100000001b3ULL

/* Murmur3's finaliser: spreads FNV's weak low bits. */
static uint64_t
mix64(uint64_t h)
{
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return h;
}

static uint64_t
fnv_add(uint64_t h, const char *s, size_t len, bool fold)
{
	size_t		i;
	unsigned char	c;

	for (i = 0; i < len; i++) {
		c = (unsigned char)s[i];
		if (fold && c >= 'A' && c <= 'Z')
			c += 'a' - 'A';
		h = (h ^ c) * FNV_PRIME;
	}
	return h;
}

uint64_t
tok_hash(const char *prefix, const char *s, size_t len)
{
	uint64_t h = fnv_add(FNV_OFFSET, prefix, strlen(prefix), false);

	return mix64(fnv_add(h, s, len, true));
}

void
tok_init(struct tok *t, size_t max, bool explain)
{
	memset(t, 0, sizeof(*t));
	t->max = max;
	t->explain = explain;
}

void
tok_reset(struct tok *t)
{
	size_t i;

	if (t->names != NULL)
		for (i = 0; i < t->n; i++)
			free(t->names[i]);
	t->n = 0;
	t->nwin = 0;
	t->truncated = false;
}

void
tok_free(struct tok *t)
{
	tok_reset(t);
	free(t->feat);
	free(t->names);
	memset(t, 0, sizeof(*t));
}

/* Makes room for one more feature; false when full (or out of memory). */
static bool
tok_room(struct tok *t)
{
	size_t	 ncap;
	void	*p;

	if (t->n >= t->max) {
		t->truncated = true;
		return false;
	}
	if (t->n < t->cap)
		return true;
	ncap = t->cap == 0 ? 256 : t->cap * 2;
	if (ncap > t->max)
		ncap = t->max;
	if ((p = realloc(t->feat, ncap * sizeof(*t->feat))) == NULL)
		return false;
	t->feat = p;
	if (t->explain) {
		if ((p = realloc(t->names, ncap * sizeof(*t->names))) == NULL)
			return false;
		t->names = p;
	}
	t->cap = ncap;
	return true;
}

/* Adds a hash; name (explain mode) is built from up to three parts. */
static void
tok_add(struct tok *t, uint64_t h, const char *a, const char *b, size_t blen,
    const char *c)
{
	size_t	 la, lc;
	char	*n;

	if (!tok_room(t))
		return;
	if (t->explain) {
		la = strlen(a);
		lc = c != NULL ? strlen(c) : 0;
		if ((n = malloc(la + blen + lc + 1)) == NULL)
			return;
		memcpy(n, a, la);
		memcpy(n + la, b, blen);
		if (lc > 0)
			memcpy(n + la + blen, c, lc);
		n[la + blen + lc] = '\0';
		t->names[t->n] = n;
	}
	t->feat[t->n++] = h;
}

void
tok_feature(struct tok *t, const char *prefix, const char *s, size_t len)
{
	if (len > 200)
		len = 200;
	tok_add(t, tok_hash(prefix, s, len), prefix, s, len, NULL);
}

static bool
word_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || c >= 0x80;
}

static bool
word_inner(unsigned char c)
{
	return word_char(c) || c == '-' || c == '.' || c == '\'' ||
	    c == '_' || c == '$' || c == ',';
}

/* The next word at or after *pos: its start and length, 0 at the end. */
static size_t
next_word(const char *s, size_t len, size_t *pos, size_t *start)
{
	size_t i = *pos, j;

	while (i < len && !word_char((unsigned char)s[i]) && s[i] != '$')
		i++;
	j = i;
	while (j < len && word_inner((unsigned char)s[j]))
		j++;
	*pos = j;
	*start = i;
	/* Trailing punctuation is not part of a word. */
	while (j > i && !word_char((unsigned char)s[j - 1]))
		j--;
	return j - i;
}

/* Records a word in the OSB window and adds its pairs: each pair's hash
 * mixes both words and their distance (Siefkes et al. 2004). */
static void
tok_pairs(struct tok *t, const char *prefix, uint64_t h, const char *w,
    size_t wl)
{
	static const char *const dist[TOK_WINDOW] = { " ", " _ ", " _ _ ",
	    " _ _ _ " };
	char	word[TOK_WORD_MAX + 1];
	size_t	k;

	memcpy(word, w, wl);
	word[wl] = '\0';
	for (k = 0; k < t->nwin && k < t->window; k++)
		tok_add(t, mix64(t->win[k] * 31 + h + k + 1),
		    t->explain && t->winw[k] != NULL ? t->winw[k] : prefix,
		    dist[k], strlen(dist[k]), word);
	if (t->explain) {
		if (t->nwin == TOK_WINDOW)
			free((char *)t->winw[TOK_WINDOW - 1]);
		memmove(t->winw + 1, t->winw,
		    (TOK_WINDOW - 1) * sizeof(*t->winw));
		t->winw[0] = strdup(word);
	}
	memmove(t->win + 1, t->win, (TOK_WINDOW - 1) * sizeof(*t->win));
	t->win[0] = h;
	if (t->nwin < TOK_WINDOW)
		t->nwin++;
}

static void
tok_window_clear(struct tok *t)
{
	size_t k;

	if (t->explain)
		for (k = 0; k < t->nwin; k++)
			free((char *)t->winw[k]);
	t->nwin = 0;
}

/* True when s[i..] starts a URL ("http://", "https://", "www."). */
static size_t
url_at(const char *s, size_t len, size_t i)
{
	static const char *const pre[] = { "http://", "https://", "www." };
	size_t k, n;

	if (s[i] != 'h' && s[i] != 'H' && s[i] != 'w' && s[i] != 'W')
		return 0;
	for (k = 0; k < 3; k++) {
		n = strlen(pre[k]);
		if (len - i >= n && strncasecmp(s + i, pre[k], n) == 0 &&
		    (i == 0 || !word_char((unsigned char)s[i - 1])))
			return n;
	}
	return 0;
}

/* Where the URL starting at s[i] ends. */
static size_t
url_end(const char *s, size_t len, size_t i)
{
	while (i < len && (unsigned char)s[i] > ' ' && s[i] != '"' &&
	    s[i] != '<' && s[i] != '>' && s[i] != '\'')
		i++;
	return i;
}

static void
tok_scan_urls(struct tok *t, const char *s, size_t len)
{
	size_t i, j;

	for (i = 0; i < len; i++) {
		if (url_at(s, len, i) == 0)
			continue;
		j = url_end(s, len, i);
		tok_url(t, s + i, j - i);
		i = j;
	}
}

static void
tok_run(struct tok *t, const char *prefix, const char *s, size_t len,
    bool pairs)
{
	size_t	pos = 0, start, wl;
	char	pfx[TOK_PREFIX_MAX + 1];

	snprintf(pfx, sizeof(pfx), "%s", prefix);
	tok_window_clear(t);
	while ((wl = next_word(s, len, &pos, &start)) > 0 || pos < len) {
		uint64_t h;

		if (wl < TOK_WORD_MIN)
			continue;
		if (url_at(s, len, start) > 0) {
			pos = url_end(s, len, start);
			continue;
		}
		if (wl > TOK_WORD_MAX) {
			/* Long runs (base64 debris, hashes) as one shape. */
			tok_feature(t, "long:", pfx, strlen(pfx));
			continue;
		}
		h = tok_hash(pfx, s + start, wl);
		tok_add(t, h, pfx, s + start, wl, NULL);
		if (pairs && t->window > 0)
			tok_pairs(t, pfx, h, s + start, wl);
		if (t->truncated)
			break;
	}
	tok_window_clear(t);
	tok_scan_urls(t, s, len);
}

void
tok_text(struct tok *t, const char *prefix, const char *s, size_t len)
{
	tok_run(t, prefix, s, len, true);
}

void
tok_words(struct tok *t, const char *prefix, const char *s, size_t len)
{
	tok_run(t, prefix, s, len, false);
}

void
tok_url(struct tok *t, const char *u, size_t len)
{
	size_t	i = 0, h, dots = 0, cut = 0;

	for (; i + 2 < len && i < 10; i++)
		if (u[i] == ':' && u[i + 1] == '/' && u[i + 2] == '/') {
			u += i + 3;
			len -= i + 3;
			break;
		}
	/* user@ before the host hides where the link goes. */
	for (i = 0; i < len && u[i] != '/' && u[i] != '?' && u[i] != '#';
	    i++)
		if (u[i] == '@') {
			tok_feature(t, "url:", "userinfo", 8);
			u += i + 1;
			len -= i + 1;
			i = 0;
		}
	for (h = 0; h < len && (word_char((unsigned char)u[h]) ||
	    u[h] == '.' || u[h] == '-'); h++)
		;
	while (h > 0 && u[h - 1] == '.')
		h--;
	if (h == 0)
		return;
	tok_feature(t, "url:", u, h);
	for (i = 0; i < h && ((u[i] >= '0' && u[i] <= '9') ||
	    u[i] == '.'); i++)
		;
	if (i == h) {
		/* An address, not a name: no parent domain. */
		tok_feature(t, "url:", "numeric", 7);
		return;
	}
	/* The registered domain, roughly: the last two labels. */
	for (i = h; i > 0; i--)
		if (u[i - 1] == '.' && ++dots == 2) {
			cut = i;
			break;
		}
	if (cut > 0)
		tok_feature(t, "url:", u + cut, h - cut);
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

struct named {
	uint64_t	 h;
	char		*name;
};

static int
cmp_named(const void *a, const void *b)
{
	return cmp_u64(&((const struct named *)a)->h,
	    &((const struct named *)b)->h);
}

/* Explain mode: sorts names with their hashes and frees repeats. */
static size_t
tok_finish_named(struct tok *t)
{
	struct named	*v;
	size_t		 i, o = 0;

	if ((v = calloc(t->n, sizeof(*v))) == NULL)
		return t->n;
	for (i = 0; i < t->n; i++) {
		v[i].h = t->feat[i];
		v[i].name = t->names[i];
	}
	qsort(v, t->n, sizeof(*v), cmp_named);
	for (i = 0; i < t->n; i++) {
		if (o > 0 && v[i].h == t->feat[o - 1]) {
			free(v[i].name);
			continue;
		}
		t->feat[o] = v[i].h;
		t->names[o++] = v[i].name;
	}
	free(v);
	return t->n = o;
}

/* Sorts v (n values) with an LSD radix sort, 8 bits a pass: a message's
 * features are sorted once per score, and qsort's comparisons cost more
 * than the rest of tokenizing. Falls back to qsort without memory. */
static void
sort_u64(uint64_t *v, size_t n)
{
	uint64_t	*tmp, *src = v, *dst, *sw;
	size_t		 count[256], i, pass, sum, c;

	if (n < 64 || (tmp = malloc(n * sizeof(*v))) == NULL) {
		qsort(v, n, sizeof(*v), cmp_u64);
		return;
	}
	dst = tmp;
	for (pass = 0; pass < 64; pass += 8) {
		memset(count, 0, sizeof(count));
		for (i = 0; i < n; i++)
			count[(src[i] >> pass) & 0xff]++;
		for (i = 0, sum = 0; i < 256; i++) {
			c = count[i];
			count[i] = sum;
			sum += c;
		}
		for (i = 0; i < n; i++)
			dst[count[(src[i] >> pass) & 0xff]++] = src[i];
		sw = src;
		src = dst;
		dst = sw;
	}
	/* Eight passes: the sorted values are back in v. */
	free(tmp);
}

size_t
tok_finish(struct tok *t)
{
	size_t i, o = 0;

	if (t->n == 0)
		return 0;
	if (t->explain)
		return tok_finish_named(t);
	sort_u64(t->feat, t->n);
	for (i = 0; i < t->n; i++)
		if (o == 0 || t->feat[i] != t->feat[o - 1])
			t->feat[o++] = t->feat[i];
	return t->n = o;
}

const char *
tok_name(const struct tok *t, size_t i)
{
	if (!t->explain || i >= t->n || t->names[i] == NULL)
		return "?";
	return t->names[i];
}
