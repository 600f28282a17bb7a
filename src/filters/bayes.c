/*
 * bayes.c: scores the message at end of data with the built-in classifier
 * (src/content/classifier.h) and adds one BAYES_* symbol. The symbol's
 * name and score come from `map`, a list of "upper:score" bands over the
 * spam probability: "0.01:-1 0.99:0 1:5" makes BAYES_00 (p < 0.01,
 * score -1), BAYES_01 (0.01 <= p < 0.99, 0) and BAYES_99 (p >= 0.99, 5).
 *
 * The store is read in one snapshot per message; moatctl's learning is
 * visible to the next message. With too little learnt, or the store
 * unreadable, the filter has no opinion (fail mode: continue).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../core/log.h"
#include "../store/store.h"
#include "bayes.h"

#define BAYES_BANDS	16

#define BC(f)	offsetof(struct bayes_conf, f)

static const struct opt bayes_opts[] = {
	{ "min_spam", OPT_INT, "50", 1, 1000000, BC(cls.min_spam),
	    "spam messages learnt before the classifier has an opinion" },
	{ "min_ham", OPT_INT, "50", 1, 1000000, BC(cls.min_ham),
	    "ham messages learnt before the classifier has an opinion" },
	{ "max_tokens", OPT_INT, "2000000", 1000, 1000000000,
	    BC(cls.max_tokens), "token table cap; learning prunes the "
	    "least useful past it" },
	{ "robs", OPT_FLOAT, "0.1", 0, 100, BC(cls.robs),
	    "Robinson's s: weight of robx for rarely seen features" },
	{ "robx", OPT_FLOAT, "0.5", 0, 1, BC(cls.robx),
	    "spam probability assumed for a feature never seen" },
	{ "min_dev", OPT_FLOAT, "0.4", 0, 1, BC(cls.min_dev),
	    "features closer than this to 0.5 are ignored" },
	{ "norm", OPT_FLOAT, "0.7", 0, 1, BC(cls.norm),
	    "the log-odds sum is divided by (features counted)^norm" },
	{ "osb_window", OPT_INT, "0", 0, TOK_WINDOW, BC(osb_window),
	    "word pairs: each word with up to this many before it" },
	{ "max_bytes", OPT_SIZE, "512k", 1024, 64 * 1024 * 1024,
	    BC(lim.max_bytes), "bytes of a message (and of its decoded "
	    "text) read" },
	{ "max_depth", OPT_INT, "20", 1, 1000, BC(lim.max_depth),
	    "MIME nesting read" },
	{ "max_parts", OPT_INT, "200", 1, 100000, BC(lim.max_parts),
	    "MIME parts read" },
	{ "max_features", OPT_INT, "20000", 100, 1000000, BC(max_features),
	    "features (tokens) per message" },
	{ "map", OPT_STR, "0.01:-2 0.1:-1 0.5:0 0.7:1 0.88:3 0.99:5 0.999:7 "
	    "1:9", 0, 0, BC(map),
	    "probability bands upper:score, ascending, the last one 1" },
	OPT_END
};

struct band {
	double	upper, score;
	char	name[16];
};

struct bayes_state {
	struct band	band[BAYES_BANDS];
	size_t		nband;
};

/* "BAYES_" and the lower bound's decimals: 0.05 -> 05, 0.999 -> 999. */
static void
band_name(struct band *b, double lower)
{
	char	 num[32], *d;

	snprintf(num, sizeof(num), "%.6g", lower);
	d = strchr(num, '.');
	d = d != NULL ? d + 1 : (lower >= 1 ? "100" : "00");
	snprintf(b->name, sizeof(b->name), "BAYES_%.4s%s", d,
	    strlen(d) < 2 ? "0" : "");
}

static int
bayes_parse_map(struct bayes_state *st, const char *map, char *err,
    size_t errlen)
{
	char	*copy, *w[BAYES_BANDS + 1], *end;
	double	 lower = 0;
	int	 n, i;

	if ((copy = strdup(map)) == NULL)
		return -1;
	n = config_words(copy, w, BAYES_BANDS);
	for (i = 0; i < n; i++) {
		struct band *b = &st->band[i];

		b->upper = strtod(w[i], &end);
		if (end == w[i] || *end != ':' || b->upper <= lower ||
		    b->upper > 1)
			goto bad;
		b->score = strtod(end + 1, &end);
		if (*end != '\0' || !isfinite(b->score))
			goto bad;
		band_name(b, lower);
		lower = b->upper;
	}
	st->nband = (size_t)n;
	free(copy);
	if (n <= 0 || lower != 1) {
		snprintf(err, errlen, "map: bands must end with 1:score");
		return -1;
	}
	return 0;
bad:
	snprintf(err, errlen, "map: '%s' is not upper:score with the "
	    "uppers rising from 0 to 1", i < n ? w[i] : map);
	free(copy);
	return -1;
}

static int
bayes_init(const void *vconf, void **state, char *err, size_t errlen)
{
	const struct bayes_conf	*conf = vconf;
	struct bayes_state	*st;

	if ((st = calloc(1, sizeof(*st))) == NULL)
		return -1;
	*state = st;
	return bayes_parse_map(st, conf->map, err, errlen);
}

static void
bayes_fini(void *state)
{
	free(state);
}

void
bayes_features(const struct bayes_conf *conf, const char *msg, size_t len,
    struct tok *t, struct mime_stats *ms)
{
	t->window = (size_t)conf->osb_window;
	mime_scan(msg, len, &conf->lim, t, ms);
	tok_finish(t);
}

const char *
bayes_symbol(const void *state, double p, double *score)
{
	const struct bayes_state	*st = state;
	size_t				 i;

	for (i = 0; i + 1 < st->nband; i++)
		if (p < st->band[i].upper)
			break;
	*score = st->band[i].score;
	return st->band[i].name;
}

static double
elapsed_ms(const struct timespec *a)
{
	struct timespec b;

	clock_gettime(CLOCK_MONOTONIC, &b);
	return (double)(b.tv_sec - a->tv_sec) * 1e3 +
	    (double)(b.tv_nsec - a->tv_nsec) / 1e6;
}

static struct verdict
bayes_data_post(struct filter_call *c)
{
	const struct bayes_conf		*conf = c->conf;
	struct txn			*t = c->s->txn;
	struct classifier_result	 r;
	const char			*sym;
	double				 sc;
	struct mime_stats		 ms;
	struct store			*st;
	struct store_txn		*txn;
	struct tok			 tk;
	struct timespec			 t0;
	char				 err[256];
	size_t				 nfeat;
	int				 rc;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	if ((st = store_shared(err, sizeof(err))) == NULL) {
		log_msg(LVL_WARN, c->s->id, "event=bayes_store error=\"%s\"",
		    err);
		return VERDICT(V_CONTINUE);
	}
	tok_init(&tk, (size_t)conf->max_features, false);
	bayes_features(conf, t->msg.data + t->msg_start,
	    t->msg.len - t->msg_start, &tk, &ms);
	if ((txn = store_begin(st, false)) == NULL) {
		tok_free(&tk);
		log_msg(LVL_WARN, c->s->id, "event=bayes_store error=\"%s\"",
		    store_error(st));
		return VERDICT(V_CONTINUE);
	}
	rc = classifier_score(txn, &conf->cls, &tk, &r);
	store_abort(txn);
	nfeat = tk.n;
	tok_free(&tk);
	if (rc == -1 || !r.opinion) {
		log_msg(LVL_DEBUG, c->s->id, "event=bayes opinion=no "
		    "spam=%lld ham=%lld", r.nspam, r.nham);
		return VERDICT(V_CONTINUE);
	}
	sym = bayes_symbol(c->state, r.prob, &sc);
	session_symbol(c->s, sym, sc);
	log_msg(LVL_DEBUG, c->s->id, "event=bayes prob=%.6f logit=%.2f "
	    "features=%zu used=%zu truncated=%d ms=%.2f", r.prob, r.logit,
	    nfeat, r.used, ms.truncated, elapsed_ms(&t0));
	return VERDICT(V_CONTINUE);
}

const struct filter filter_bayes = {
	.name = "bayes",
	.summary = "score the message with the built-in classifier "
	    "(BAYES_* symbols)",
	.opts = bayes_opts,
	.conf_size = sizeof(struct bayes_conf),
	.init = bayes_init,
	.fini = bayes_fini,
	.hook = {
		[STAGE_DATA_POST] = bayes_data_post,
	},
	.fail = FAIL_CONTINUE,
};
