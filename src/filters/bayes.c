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
 *
 * Training addresses (spam_address, ham_address): a relay client's (or
 * an authenticated user's) mail to one is accepted at RCPT without
 * delivery and learnt at end of data: each message attached to it
 * (message/rfc822, "forward as attachment") or, with none attached, the
 * message itself. Learning (MIME parse, LMDB write and fsync) runs on the
 * worker's thread pool; the session waits for it (PENDING) and a failure
 * is a 451. Put bayes before recipients in [pipeline] so that the
 * training address needs no mailbox.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "../core/log.h"
#include "../core/tpool.h"
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
	{ "perceptron", OPT_FLOAT, "2", 0, 100, BC(cls.perceptron),
	    "weight of the perceptron's score in the total (0: counts "
	    "only)" },
	{ "perceptron_passes", OPT_INT, "8", 1, 100,
	    BC(cls.perceptron_passes), "passes over the kept messages "
	    "when the perceptron is retrained" },
	{ "perceptron_rate", OPT_FLOAT, "0.5", 0, 10,
	    BC(cls.perceptron_rate), "the perceptron's step" },
	{ "keep_messages", OPT_INT, "20000", 0, 10000000,
	    BC(cls.keep_messages), "newest learnt messages whose features "
	    "are kept to retrain the perceptron" },
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
	{ "spam_address", OPT_STR, "", 0, 0, BC(spam_address),
	    "training address: mail to it from relay clients is learnt as "
	    "spam, not delivered (empty: none)" },
	{ "ham_address", OPT_STR, "", 0, 0, BC(ham_address),
	    "training address for ham (empty: none)" },
	{ "map", OPT_STR, "0.01:-2 0.1:-1 0.5:0 0.7:1 0.95:3 0.99:5 0.999:7 "
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

/* The class a training address stands for, CLS_NONE for others. */
static enum cls
training_class(const struct bayes_conf *conf, const char *addr)
{
	if (conf->spam_address[0] != '\0' &&
	    strcasecmp(addr, conf->spam_address) == 0)
		return CLS_SPAM;
	if (conf->ham_address[0] != '\0' &&
	    strcasecmp(addr, conf->ham_address) == 0)
		return CLS_HAM;
	return CLS_NONE;
}

static struct verdict
bayes_rcpt(struct filter_call *c)
{
	struct rcpt	*r = c->s->txn->cur;
	enum cls	 cls = training_class(c->conf, r->addr);

	if (cls == CLS_NONE)
		return VERDICT(V_CONTINUE);
	if (!c->s->trusted && !c->s->authenticated)
		return verdict_make(V_DENY, 550, "5.7.1", "Training address "
		    "is for our own users only");
	r->consumed = (int)cls;
	return VERDICT(V_ACCEPT);
}

struct learn_job {
	struct step_token	 step;
	const struct bayes_conf	*conf;
	struct store		*st;
	char			*msg;
	size_t			 len;
	enum cls		 cls;
	bool			 only;	/* no other recipient */
	int			 n, rc;
	struct store_txn	*txn;
	char			 err[256];
};

/* Learns one message inside the job's write transaction. */
static void
learn_one(void *arg, const char *msg, size_t len)
{
	struct learn_job	*j = arg;
	struct mime_stats	 ms;
	struct tok		 t;
	enum cls		 prev;

	if (j->rc == -1)
		return;
	tok_init(&t, (size_t)j->conf->max_features, false);
	bayes_features(j->conf, msg, len, &t, &ms);
	if (classifier_learn(j->txn, &j->conf->cls, &t, j->cls, &prev) == -1)
		j->rc = -1;
	else
		j->n++;
	tok_free(&t);
}

/* Pool thread: the attached messages, or the message itself. */
static void
learn_work(void *arg)
{
	struct learn_job *j = arg;

	if ((j->txn = store_begin(j->st, true)) == NULL) {
		j->rc = -1;
		return;
	}
	if (mime_each_attached(j->msg, j->len, &j->conf->lim, learn_one,
	    j) == 0)
		learn_one(j, j->msg, j->len);
	if (j->rc == 0 && (classifier_prune(j->txn,
	    j->conf->cls.max_tokens) == -1 ||
	    classifier_refit(j->txn, &j->conf->cls) == -1))
		j->rc = -1;
	if (j->rc == -1) {
		snprintf(j->err, sizeof(j->err), "%s", store_error(j->st));
		store_abort(j->txn);
	} else if (store_commit(j->txn) == -1) {
		snprintf(j->err, sizeof(j->err), "%s", store_error(j->st));
		j->rc = -1;
	}
	j->txn = NULL;
}

/* Loop thread: the session (if still there) goes on. */
static void
learn_done(void *arg)
{
	struct learn_job *j = arg;

	if (j->rc == -1) {
		log_msg(LVL_WARN, j->step.sid, "event=bayes_learn error=\"%s\"",
		    j->err);
		filter_resume(j->step, verdict_make(V_DEFER, 451, "4.3.0",
		    "Could not learn the message; try again later"));
	} else {
		log_msg(LVL_INFO, j->step.sid, "event=bayes_learn class=%s "
		    "messages=%d", j->cls == CLS_SPAM ? "spam" : "ham", j->n);
		filter_resume(j->step, VERDICT(j->only ? V_ACCEPT :
		    V_CONTINUE));
	}
	free(j->msg);
	free(j);
}

/* Starts learning the message for its training recipients. */
static struct verdict
bayes_train(struct filter_call *c, struct store *st)
{
	struct txn		*t = c->s->txn;
	struct learn_job	*j;
	size_t			 i;

	if ((j = calloc(1, sizeof(*j))) == NULL ||
	    (j->msg = malloc(t->msg.len - t->msg_start + 1)) == NULL) {
		free(j);
		return verdict_make(V_DEFER, 451, "4.3.0", "Out of memory");
	}
	j->step = c->step;
	j->conf = c->conf;
	j->st = st;
	j->len = t->msg.len - t->msg_start;
	memcpy(j->msg, t->msg.data + t->msg_start, j->len);
	j->only = t->naccepted == t->nconsumed;
	for (i = 0; i < t->nrcpt; i++)
		if (t->rcpts[i].accepted && t->rcpts[i].consumed != 0) {
			j->cls = (enum cls)t->rcpts[i].consumed;
			break;
		}
	if (tpool_submit(learn_work, learn_done, j) == 0)
		return VERDICT(V_PENDING);
	/* No pool (tests, tools): learn here. */
	learn_work(j);
	if (j->rc == -1) {
		free(j->msg);
		free(j);
		return verdict_make(V_DEFER, 451, "4.3.0",
		    "Could not learn the message; try again later");
	}
	i = j->only;
	free(j->msg);
	free(j);
	return VERDICT(i ? V_ACCEPT : V_CONTINUE);
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
		/* Never 250 for mail that was to be learnt and was not. */
		return t->nconsumed > 0 ? verdict_make(V_DEFER, 451, "4.3.0",
		    "Could not learn the message; try again later") :
		    VERDICT(V_CONTINUE);
	}
	if (t->nconsumed > 0 && t->naccepted == t->nconsumed)
		return bayes_train(c, st);	/* nothing to score for */
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
		return t->nconsumed > 0 ? bayes_train(c, st) :
		    VERDICT(V_CONTINUE);
	}
	sym = bayes_symbol(c->state, r.prob, &sc);
	session_symbol(c->s, sym, sc);
	log_msg(LVL_DEBUG, c->s->id, "event=bayes prob=%.6f logit=%.2f "
	    "features=%zu used=%zu truncated=%d ms=%.2f", r.prob, r.logit,
	    nfeat, r.used, ms.truncated, elapsed_ms(&t0));
	return t->nconsumed > 0 ? bayes_train(c, st) : VERDICT(V_CONTINUE);
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
		[STAGE_RCPT] = bayes_rcpt,
		[STAGE_DATA_POST] = bayes_data_post,
	},
	.fail = FAIL_CONTINUE,
};
