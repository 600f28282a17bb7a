/*
 * classifier.c: learning counts and scoring with them (classifier.h).
 *
 * Scoring: each feature's spam probability f from its counts, pulled
 * towards robx by strength robs while evidence is thin (Robinson 2003);
 * features within min_dev of 0.5 are ignored; the rest add their log
 * odds ln(f / (1 - f)), and the sum is divided by n^norm for n features
 * counted. The result is continuous (no ties at 0 or 1) and its sigmoid
 * is the reported probability. docs/CLASSIFIER.md says why, with the
 * measurements that chose this over Fisher's chi-square combining.
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
	if (n == 0)
		return 0;
	/* Features of one message are not independent: a long message
	 * repeats its evidence. n^norm damps that (norm 0: naive Bayes,
	 * 1: the mean). */
	r->logit = sum / pow((double)n, c->norm);
	r->prob = 1 / (1 + exp(-r->logit));
	return 0;
}

static int
totals_add(struct store_txn *txn, enum cls cls, int d)
{
	return store_incr(txn, cls == CLS_SPAM ? KEY_NSPAM : KEY_NHAM, d, 0,
	    NULL);
}

int
classifier_learn(struct store_txn *txn, const struct tok *t, enum cls cls,
    enum cls *prev)
{
	char		key[sizeof(KEY_DIGEST) + 33], dig[33];
	unsigned char	was = CLS_NONE, now = (unsigned char)cls;
	uint32_t	day = (uint32_t)(time(NULL) / 86400);

	classifier_digest(t, dig);
	snprintf(key, sizeof(key), "%s%s", KEY_DIGEST, dig);
	if (store_get(txn, key, &was, 1) != 1)
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
		return store_del(txn, key) == -1 ? -1 : 1;
	if (store_tokens_add(txn, t->feat, t->n, cls == CLS_SPAM,
	    cls == CLS_HAM, day) == -1 || totals_add(txn, cls, 1) == -1 ||
	    store_put(txn, key, &now, 1, 0) == -1)
		return -1;
	return 1;
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
