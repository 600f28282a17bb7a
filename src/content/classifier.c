/*
 * classifier.c: learning counts and scoring with them (classifier.h).
 *
 * Scoring: each feature's spam probability f from its counts, pulled
 * towards robx by strength robs while evidence is thin (Robinson 2003);
 * features within min_dev of 0.5 are ignored; the rest add their log
 * odds ln(f / (1 - f)), and the sum is divided by n^norm for n features
 * counted. To that the perceptron adds its score, sum of the weights of
 * the message's features over sqrt(features), times `perceptron`. The
 * result is continuous (no ties at 0 or 1) and its sigmoid is the
 * reported probability. docs/CLASSIFIER.md says why, with the
 * measurements that chose this over Fisher's chi-square combining.
 *
 * A learnt message's digest key holds its class, and, while the
 * perceptron is on, a sequence number and its features:
 *   byte 0 class, bytes 8..15 sequence (int64), then 8 bytes a feature.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../store/store.h"
#include "classifier.h"

#define KEY_NSPAM	"bayes:nspam"
#define KEY_NHAM	"bayes:nham"
#define KEY_DIGEST	"bayes:msg:"
#define KEY_SEQ		"bayes:seq"
#define KEY_UNFIT	"bayes:unfit"	/* learnt since the last refit */
#define SET_HEAD	16	/* bytes before a kept set's features */

void
classifier_digest(const struct tok *t, char out[33])
{
	uint64_t	a = 0x9e3779b97f4a7c15ULL, b = 0xc2b2ae3d27d4eb4fULL;
	size_t		i;

	for (i = 0; i < t->n; i++) {
		a = (a ^ t->feat[i]) * 0x100000001b3ULL;
		b = (b + t->feat[i]) * 0xff51afd7ed558ccdULL;
		b ^= b >> 29;
	}
	snprintf(out, 33, "%016llx%016llx", (unsigned long long)a,
	    (unsigned long long)b);
}

int
classifier_totals(struct store_txn *txn, long long *nspam, long long *nham)
{
	long long v;

	*nspam = *nham = 0;
	if (store_get(txn, KEY_NSPAM, &v, sizeof(v)) == sizeof(v))
		*nspam = v;
	if (store_get(txn, KEY_NHAM, &v, sizeof(v)) == sizeof(v))
		*nham = v;
	return 0;
}

/* Robinson's f(w) for one feature. */
static double
feature_prob(const struct classifier_conf *c, uint32_t s, uint32_t h,
    long long ns, long long nh)
{
	double ps = (double)s / (double)ns, ph = (double)h / (double)nh;
	double n = (double)s + h, p = ps / (ps + ph);

	return (c->robs * c->robx + n * p) / (c->robs + n);
}

/* Keeps the CLASSIFIER_TOP strongest contributions, strongest first. */
static void
top_add(struct classifier_result *r, size_t idx, double w,
    const struct store_token *tk)
{
	size_t i;

	for (i = r->ntop; i > 0 && fabs(r->top[i - 1].weight) < fabs(w); i--)
		if (i < CLASSIFIER_TOP)
			r->top[i] = r->top[i - 1];
	if (i >= CLASSIFIER_TOP)
		return;
	r->top[i].index = idx;
	r->top[i].weight = w;
	r->top[i].spam = tk->spam;
	r->top[i].ham = tk->ham;
	r->top[i].perceptron = tk->weight;
	if (r->ntop < CLASSIFIER_TOP)
		r->ntop++;
}

int
classifier_score(struct store_txn *txn, const struct classifier_conf *c,
    const struct tok *t, struct classifier_result *r)
{
	struct store_token	*tk;
	double			 sum = 0, f, w;
	size_t			 i, n = 0;

	memset(r, 0, sizeof(*r));
	r->prob = 0.5;
	classifier_totals(txn, &r->nspam, &r->nham);
	if (r->nspam < c->min_spam || r->nham < c->min_ham ||
	    r->nspam == 0 || r->nham == 0 || t->n == 0)
		return 0;
	if ((tk = calloc(t->n, sizeof(*tk))) == NULL)
		return -1;
	for (i = 0; i < t->n; i++)
		tk[i].hash = t->feat[i];
	if (store_tokens_get(txn, tk, t->n) == -1) {
		free(tk);
		return -1;
	}
	for (i = 0; i < t->n; i++) {
		r->margin += tk[i].weight;
		if (tk[i].spam == 0 && tk[i].ham == 0)
			continue;
		f = feature_prob(c, tk[i].spam, tk[i].ham, r->nspam, r->nham);
		if (fabs(f - 0.5) < c->min_dev)
			continue;
		f = fmin(fmax(f, 1e-6), 1 - 1e-6);
		w = log(f / (1 - f));
		sum += w;
		n++;
		top_add(r, i, w, &tk[i]);
	}
	free(tk);
	r->opinion = true;
	r->used = n;
	/* Features of one message are not independent: a long message
	 * repeats its evidence. n^norm damps that (norm 0: naive Bayes,
	 * 1: the mean). */
	if (n > 0)
		r->counts = sum / pow((double)n, c->norm);
	r->margin /= sqrt((double)t->n);
	r->logit = r->counts + c->perceptron * r->margin;
	r->prob = 1 / (1 + exp(-r->logit));
	return 0;
}

static int
totals_add(struct store_txn *txn, enum cls cls, int d)
{
	return store_incr(txn, cls == CLS_SPAM ? KEY_NSPAM : KEY_NHAM, d, 0,
	    NULL);
}

/* Writes the digest key of a message learnt as cls: the class, and its
 * features while the perceptron wants them. */
static int
digest_put(struct store_txn *txn, const struct classifier_conf *c,
    const char *key, const struct tok *t, enum cls cls)
{
	unsigned char	*v, now = (unsigned char)cls;
	long long	 seq;
	size_t		 len = SET_HEAD + t->n * sizeof(*t->feat);
	int		 rc;

	if (c->perceptron == 0 || c->keep_messages == 0)
		return store_put(txn, key, &now, 1, 0);
	if (store_incr(txn, KEY_SEQ, 1, 0, &seq) == -1 ||
	    (v = calloc(1, len)) == NULL)
		return -1;
	v[0] = now;
	memcpy(v + 8, &seq, 8);
	memcpy(v + SET_HEAD, t->feat, t->n * sizeof(*t->feat));
	rc = store_put(txn, key, v, len, 0);
	free(v);
	return rc;
}

int
classifier_learn(struct store_txn *txn, const struct classifier_conf *c,
    const struct tok *t, enum cls cls, enum cls *prev)
{
	char		key[sizeof(KEY_DIGEST) + 33], dig[33];
	unsigned char	was = CLS_NONE, now = (unsigned char)cls;
	uint32_t	day = (uint32_t)(time(NULL) / 86400);

	classifier_digest(t, dig);
	snprintf(key, sizeof(key), "%s%s", KEY_DIGEST, dig);
	if (store_get(txn, key, &was, 1) < 1)
		was = CLS_NONE;
	*prev = (enum cls)was;
	if (was == now)
		return 0;
	if (was != CLS_NONE) {
		if (store_tokens_add(txn, t->feat, t->n,
		    was == CLS_SPAM ? -1 : 0, was == CLS_HAM ? -1 : 0,
		    day) == -1 || totals_add(txn, (enum cls)was, -1) == -1)
			return -1;
	}
	if (cls == CLS_NONE)
		return store_del(txn, key) == -1 ||
		    store_incr(txn, KEY_UNFIT, 1, 0, NULL) == -1 ? -1 : 1;
	if (store_tokens_add(txn, t->feat, t->n, cls == CLS_SPAM,
	    cls == CLS_HAM, day) == -1 || totals_add(txn, cls, 1) == -1 ||
	    digest_put(txn, c, key, t, cls) == -1 ||
	    store_incr(txn, KEY_UNFIT, 1, 0, NULL) == -1)
		return -1;
	return 1;
}

long long
classifier_unfit(struct store_txn *txn)
{
	long long v;

	return store_get(txn, KEY_UNFIT, &v, sizeof(v)) == sizeof(v) ? v : 0;
}

/* A kept feature set, read for a refit. */
struct kept {
	char		 key[sizeof(KEY_DIGEST) + 33];
	long long	 seq;
	int		 y;		/* +1 spam, -1 ham */
	size_t		 n;
	uint64_t	*feat;
};

struct kept_list {
	struct kept	*v;
	size_t		 n, cap;
	bool		 failed;
};

static bool
kept_collect(void *arg, const char *key, const void *val, size_t len)
{
	struct kept_list	*l = arg;
	struct kept		*k;
	const unsigned char	*p = val;
	void			*nv;

	if (len < SET_HEAD || (len - SET_HEAD) % 8 != 0 ||
	    (p[0] != CLS_SPAM && p[0] != CLS_HAM) ||
	    strlen(key) >= sizeof(k->key))
		return true;
	if (l->n == l->cap) {
		l->cap = l->cap == 0 ? 1024 : l->cap * 2;
		if ((nv = realloc(l->v, l->cap * sizeof(*l->v))) == NULL) {
			l->failed = true;
			return false;
		}
		l->v = nv;
	}
	k = &l->v[l->n];
	snprintf(k->key, sizeof(k->key), "%s", key);
	memcpy(&k->seq, p + 8, 8);
	k->y = p[0] == CLS_SPAM ? 1 : -1;
	k->n = (len - SET_HEAD) / 8;
	if ((k->feat = malloc(k->n * 8 + 1)) == NULL) {
		l->failed = true;
		return false;
	}
	memcpy(k->feat, p + SET_HEAD, k->n * 8);
	l->n++;
	return true;
}

static void
kept_free(struct kept_list *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		free(l->v[i].feat);
	free(l->v);
}

static int
kept_newest_first(const void *a, const void *b)
{
	const struct kept *x = a, *y = b;

	return x->seq > y->seq ? -1 : x->seq < y->seq;
}

static int
kept_by_key(const void *a, const void *b)
{
	return strcmp(((const struct kept *)a)->key,
	    ((const struct kept *)b)->key);
}

static bool
kept_count(void *arg, const char *key, const void *val, size_t len)
{
	(void)key;
	(void)val;
	if (len >= SET_HEAD)
		(*(long long *)arg)++;
	return true;
}

long long
classifier_kept(struct store_txn *txn)
{
	long long n = 0;

	if (store_scan(txn, KEY_DIGEST, kept_count, &n) == -1)
		return -1;
	return n;
}

/* The perceptron's weights while training: open addressing on the hash. */
struct wmap {
	uint64_t	*h;
	float		*w;
	bool		*used;
	size_t		 cap, n;
};

static size_t
wmap_find(const struct wmap *m, uint64_t h)
{
	size_t i = (size_t)(h ^ (h >> 29)) & (m->cap - 1);

	while (m->used[i] && m->h[i] != h)
		i = (i + 1) & (m->cap - 1);
	return i;
}

static int
wmap_grow(struct wmap *m)
{
	struct wmap	 g = { NULL, NULL, NULL, m->cap ? m->cap * 2 : 4096, 0 };
	size_t		 i, j;

	g.h = malloc(g.cap * sizeof(*g.h));
	g.w = malloc(g.cap * sizeof(*g.w));
	g.used = calloc(g.cap, sizeof(*g.used));
	if (g.h == NULL || g.w == NULL || g.used == NULL) {
		free(g.h);
		free(g.w);
		free(g.used);
		return -1;
	}
	for (i = 0; i < m->cap; i++)
		if (m->used[i]) {
			j = wmap_find(&g, m->h[i]);
			g.used[j] = true;
			g.h[j] = m->h[i];
			g.w[j] = m->w[i];
			g.n++;
		}
	free(m->h);
	free(m->w);
	free(m->used);
	*m = g;
	return 0;
}

static float
wmap_get(void *arg, uint64_t h)
{
	const struct wmap	*m = arg;
	size_t			 i;

	if (m->cap == 0)
		return 0;
	i = wmap_find(m, h);
	return m->used[i] ? m->w[i] : 0;
}

static int
wmap_add(struct wmap *m, uint64_t h, float d)
{
	size_t i;

	if (2 * (m->n + 1) > m->cap && wmap_grow(m) == -1)
		return -1;
	i = wmap_find(m, h);
	if (!m->used[i]) {
		m->used[i] = true;
		m->h[i] = h;
		m->w[i] = 0;
		m->n++;
	}
	m->w[i] += d;
	return 0;
}

/* One mistake-driven step: when the message is on the wrong side of the
 * margin, its features move towards its class. */
static int
perceptron_step(struct wmap *m, const struct kept *k, double rate)
{
	double	inv = 1 / sqrt((double)k->n), z = 0;
	size_t	i;

	for (i = 0; i < k->n; i++)
		z += wmap_get(m, k->feat[i]);
	if (k->y * z * inv >= 1)
		return 0;
	for (i = 0; i < k->n; i++)
		if (wmap_add(m, k->feat[i], (float)(k->y * rate * inv)) == -1)
			return -1;
	return 0;
}

long long
classifier_refit(struct store_txn *txn, const struct classifier_conf *c)
{
	struct kept_list	 l = { NULL, 0, 0, false };
	struct wmap		 m = { NULL, NULL, NULL, 0, 0 };
	size_t			*order = NULL, i, j, tmp;
	uint64_t		 rnd = 0x9e3779b97f4a7c15ULL;
	long long		 p, rc = -1;
	unsigned char		 cls;

	if (store_scan(txn, KEY_DIGEST, kept_collect, &l) == -1 || l.failed)
		goto out;
	/* Past keep_messages the oldest keep only their class. */
	if ((long long)l.n > c->keep_messages) {
		qsort(l.v, l.n, sizeof(*l.v), kept_newest_first);
		while ((long long)l.n > c->keep_messages) {
			l.n--;
			cls = l.v[l.n].y > 0 ? CLS_SPAM : CLS_HAM;
			free(l.v[l.n].feat);
			if (store_put(txn, l.v[l.n].key, &cls, 1, 0) == -1)
				goto out;
		}
	}
	if (c->perceptron > 0 && l.n > 0) {
		if ((order = malloc(l.n * sizeof(*order))) == NULL)
			goto out;
		for (i = 0; i < l.n; i++)
			order[i] = i;
		/* From digest order, a fixed shuffle per pass: the same
		 * sets give the same weights, whatever order they were
		 * learnt in. */
		qsort(l.v, l.n, sizeof(*l.v), kept_by_key);
		for (p = 0; p < c->perceptron_passes; p++) {
			for (i = l.n - 1; i > 0; i--) {
				rnd ^= rnd << 13;
				rnd ^= rnd >> 7;
				rnd ^= rnd << 17;
				j = (size_t)(rnd % (i + 1));
				tmp = order[i];
				order[i] = order[j];
				order[j] = tmp;
			}
			for (i = 0; i < l.n; i++)
				if (l.v[order[i]].n > 0 && perceptron_step(&m,
				    &l.v[order[i]], c->perceptron_rate) == -1)
					goto out;
		}
	}
	if (store_tokens_reweigh(txn, wmap_get, &m) == -1 ||
	    store_del(txn, KEY_UNFIT) == -1)
		goto out;
	rc = (long long)l.n;
out:
	kept_free(&l);
	free(order);
	free(m.h);
	free(m.w);
	free(m.used);
	return rc;
}

struct prune {
	struct store_token	*v;
	size_t			 n, cap;
};

static bool
prune_collect(void *arg, const struct store_token *tk)
{
	struct prune	*p = arg;
	void		*nv;

	if (p->n == p->cap) {
		p->cap = p->cap == 0 ? 65536 : p->cap * 2;
		if ((nv = realloc(p->v, p->cap * sizeof(*p->v))) == NULL)
			return false;
		p->v = nv;
	}
	p->v[p->n++] = *tk;
	return true;
}

/* Least useful first: fewest messages, then oldest. */
static int
prune_cmp(const void *a, const void *b)
{
	const struct store_token *x = a, *y = b;
	uint64_t nx = (uint64_t)x->spam + x->ham, ny = (uint64_t)y->spam + y->ham;

	if (nx != ny)
		return nx < ny ? -1 : 1;
	return x->day < y->day ? -1 : x->day > y->day;
}

long long
classifier_prune(struct store_txn *txn, long long max_tokens)
{
	struct prune	 p = { NULL, 0, 0 };
	uint64_t	*h;
	long long	 n = store_tokens_count(txn), drop, i;
	int		 rc;

	if (n < 0 || n <= max_tokens)
		return n < 0 ? -1 : 0;
	if (store_tokens_each(txn, prune_collect, &p) == -1 ||
	    (long long)p.n != n) {
		free(p.v);
		return -1;
	}
	qsort(p.v, p.n, sizeof(*p.v), prune_cmp);
	drop = n - max_tokens * 9 / 10;
	if ((h = malloc((size_t)drop * sizeof(*h))) == NULL) {
		free(p.v);
		return -1;
	}
	for (i = 0; i < drop; i++)
		h[i] = p.v[i].hash;
	rc = store_tokens_del(txn, h, (size_t)drop);
	free(h);
	free(p.v);
	return rc == -1 ? -1 : drop;
}
