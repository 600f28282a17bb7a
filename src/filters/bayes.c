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
 * Where the work runs: a message up to loop_bytes with few MIME
 * boundaries is read and scored on the loop (a fraction of a millisecond,
 * and at most BAYES_LOOP_CPU_MS before it is handed on); anything else
 * goes to the worker's content pool (TPOOL_CONTENT), never to delivery's.
 * Every read has a CPU budget (max_cpu): past it the read stops, the
 * message is scored from what was read and BAYES_BUDGET says so. A job
 * owns a copy of the message and a token; cancel() (timeout, teardown)
 * stops it at its next budget check, and a completion for a step that is
 * no longer pending is dropped.
 *
 * Training addresses (spam_address, ham_address): a relay client's (or
 * an authenticated user's) mail to one is accepted at RCPT without
 * delivery and learnt at end of data: each message attached to it
 * (message/rfc822, "forward as attachment") or, with none attached, the
 * message itself. A client may send train_limit of them per train_window
 * (450 past it), one class per transaction (452 4.5.3 for the other).
 * Learning (MIME read, then one LMDB write) runs on the learn pool
 * (TPOOL_LEARN, one thread: LMDB has one writer anyway); the session
 * waits for it (PENDING) and a failure is a 451. The perceptron is not
 * refit per message: a refit (with the token table's prune) runs as one
 * job refit_interval seconds after the first learn since the last one,
 * or at once when refit_messages are waiting. Put bayes before recipients
 * in [pipeline] so that the training address needs no mailbox.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "../core/log.h"
#include "../core/tpool.h"
#include "../store/store.h"
#include "bayes.h"

#define BAYES_BANDS	16
/* The content pool: threads, and jobs that may wait (each holds a copy
 * of up to max_bytes of its message). */
#define BAYES_THREADS		2
#define BAYES_QUEUE		64
/* The learn pool: one writer; jobs that may wait (whole messages). */
#define BAYES_LEARN_QUEUE	16
/* On the loop: at most this many lines starting with "--" (MIME
 * boundaries) and this much CPU before a read is handed to the pool. */
#define BAYES_LOOP_BOUNDARIES	16
#define BAYES_LOOP_CPU_MS	5
/* Clients (IPv4 address or IPv6 /64) whose training is counted. */
#define BAYES_TRAIN_SLOTS	1024
#define BAYES_TRAIN_PROBE	8

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
	{ "max_cpu", OPT_INT, "50", 0, 60000, BC(max_cpu),
	    "CPU milliseconds one message's read may take (a training mail "
	    "with all it carries: one budget); past it the read stops and "
	    "BAYES_BUDGET is added (0: no limit)" },
	{ "budget_score", OPT_FLOAT, "1", -100, 100, BC(budget_score),
	    "score of BAYES_BUDGET" },
	{ "loop_bytes", OPT_SIZE, "64k", 0, 64 * 1024 * 1024,
	    BC(loop_bytes), "messages up to this size with few MIME parts "
	    "are scored on the loop, others on the content threads" },
	{ "train_limit", OPT_INT, "30", 0, 1000000, BC(train_limit),
	    "training mails a client (IPv4 address, IPv6 /64) may send per "
	    "train_window, per worker; 450 past it (0: no limit)" },
	{ "train_window", OPT_INT, "60", 1, 86400, BC(train_window),
	    "seconds over which train_limit counts" },
	{ "refit_interval", OPT_INT, "60", 1, 86400, BC(refit_interval),
	    "seconds from a learn by mail to the perceptron's refit (one "
	    "refit for all learnt meanwhile)" },
	{ "refit_messages", OPT_INT, "500", 1, 10000000,
	    BC(refit_messages), "learnt since the last refit that start "
	    "one at once" },
	{ "debug_hold", OPT_PATH, "", 0, 0, BC(debug_hold),
	    "tests only: a FIFO each content job reads a byte from before "
	    "it starts (empty: none)" },
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
	bayes_features_budget(conf, msg, len, NULL, t, ms);
}

void
bayes_features_budget(const struct bayes_conf *conf, const char *msg,
    size_t len, struct mime_budget *b, struct tok *t, struct mime_stats *ms)
{
	t->window = (size_t)conf->osb_window;
	mime_scan_budget(msg, len, &conf->lim, b, t, ms);
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

static long long
now_sec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec;
}

/*
 * Training mail per client, per worker: a fixed table keyed by the IPv4
 * address or the IPv6 /64 (one host's addresses count once), a window
 * per client. A full neighbourhood gives up its stalest entry, so the
 * table never grows; training comes from our own users, who are few.
 */
struct train_slot {
	unsigned char	key[8];
	long long	start;	/* window start, 0: free */
	long long	n;
};

static struct train_slot train_slots[BAYES_TRAIN_SLOTS];

static void
train_key(const struct session *s, unsigned char key[8])
{
	const struct sockaddr_in	*sin = (const void *)&s->peer;
	const struct sockaddr_in6	*sin6 = (const void *)&s->peer;

	memset(key, 0, 8);
	if (s->peer.ss_family == AF_INET) {
		memcpy(key, &sin->sin_addr, 4);
	} else if (s->peer.ss_family == AF_INET6) {
		if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr))
			memcpy(key, sin6->sin6_addr.s6_addr + 12, 4);
		else
			memcpy(key, sin6->sin6_addr.s6_addr, 8);
	}
}

/* Counts one training mail of the session's client; false past the
 * limit (then nothing is counted). */
static bool
train_allow(const struct bayes_conf *conf, const struct session *s)
{
	unsigned char		 key[8];
	struct train_slot	*e, *stalest = NULL;
	long long		 now = now_sec();
	uint64_t		 h = 0xcbf29ce484222325ULL;
	size_t			 i;

	if (conf->train_limit == 0)
		return true;
	train_key(s, key);
	for (i = 0; i < sizeof(key); i++)
		h = (h ^ key[i]) * 0x100000001b3ULL;
	for (i = 0; i < BAYES_TRAIN_PROBE; i++) {
		e = &train_slots[(h + i) % BAYES_TRAIN_SLOTS];
		if (e->start != 0 && memcmp(e->key, key, 8) == 0)
			break;
		if (stalest == NULL || e->start < stalest->start)
			stalest = e;
	}
	if (i == BAYES_TRAIN_PROBE) {
		e = stalest;
		memcpy(e->key, key, 8);
		e->start = 0;
	}
	if (e->start == 0 || now - e->start >= conf->train_window) {
		e->start = now > 0 ? now : 1;
		e->n = 0;
	}
	if (e->n >= conf->train_limit)
		return false;
	e->n++;
	return true;
}

/* One class per transaction: its one learn says what the message is. */
static bool
other_class_taken(const struct txn *t, enum cls cls)
{
	size_t i;

	for (i = 0; i < t->nrcpt; i++)
		if (t->rcpts[i].accepted && t->rcpts[i].consumed != 0 &&
		    t->rcpts[i].consumed != (int)cls)
			return true;
	return false;
}

static struct verdict
bayes_rcpt(struct filter_call *c)
{
	const struct bayes_conf	*conf = c->conf;
	struct rcpt		*r = c->s->txn->cur;
	enum cls		 cls = training_class(conf, r->addr);

	if (cls == CLS_NONE)
		return VERDICT(V_CONTINUE);
	if (!c->s->trusted && !c->s->authenticated)
		return verdict_make(V_DENY, 550, "5.7.1", "Training address "
		    "is for our own users only");
	/* RFC 5321 §3.3: the client sends the refused recipient again in
	 * a transaction of its own. */
	if (other_class_taken(c->s->txn, cls))
		return verdict_make(V_DEFER, 452, "4.5.3", "Spam and ham are "
		    "learnt in separate transactions; send this one again");
	if (!train_allow(conf, c->s)) {
		log_msg(LVL_INFO, c->s->id, "event=bayes_train_limit ip=%s "
		    "limit=%lld window=%lld", c->s->ip, conf->train_limit,
		    conf->train_window);
		return verdict_make(V_DEFER, 450, "4.7.1", "Too many training "
		    "messages; try again later");
	}
	r->consumed = (int)cls;
	return VERDICT(V_ACCEPT);
}

/* What a read and score of one message found. */
struct score_out {
	int			 rc;		/* -1: store error */
	char			 err[256];
	struct classifier_result r;
	struct mime_stats	 ms;
	size_t			 nfeat;
	double			 ms_cpu;	/* CPU time it took */
};

/*
 * One message's work off the loop. The job owns its copy of the message;
 * conf and state belong to the policy, which outlives the worker's jobs.
 * While queued or running it is on the `jobs` list, so that cancel() can
 * find it; only the loop thread touches the list, the pool thread reads
 * `cancel` (atomic) at its budget checks.
 */
struct bayes_job {
	struct step_token	 step;
	const struct bayes_conf	*conf;
	const void		*state;
	struct store		*st;
	struct event_base	*base;
	char			*msg;
	size_t			 len;
	bool			 train;	/* scoring: learn afterwards */
	enum cls		 cls;
	bool			 only;	/* no recipient but training ones */
	atomic_bool		 cancel;
	struct score_out	 out;	/* scoring's result */
	int			 rc, n;	/* learning's result, messages */
	bool			 budget;
	long long		 unfit;	/* learnt since the last refit */
	char			 err[256];
	struct bayes_job	*next, **prevp;
};

static struct bayes_job	*jobs;		/* queued or running */

static void
job_link(struct bayes_job *j)
{
	if ((j->next = jobs) != NULL)
		jobs->prevp = &j->next;
	j->prevp = &jobs;
	jobs = j;
}

static void
job_unlink(struct bayes_job *j)
{
	if (j->prevp == NULL)
		return;
	if (j->next != NULL)
		j->next->prevp = j->prevp;
	*j->prevp = j->next;
	j->prevp = NULL;
}

static void
job_free(struct bayes_job *j)
{
	job_unlink(j);
	free(j->msg);
	free(j);
}

/* Tests only: waits for one byte on the debug_hold FIFO, so a test can
 * hold a job while it talks to the worker. */
static void
debug_hold(const struct bayes_conf *conf)
{
	char	c;
	int	fd;

	if (conf->debug_hold == NULL || conf->debug_hold[0] == '\0')
		return;
	if ((fd = open(conf->debug_hold, O_RDONLY | O_CLOEXEC)) == -1)
		return;
	while (read(fd, &c, 1) == -1 && errno == EINTR)
		;
	close(fd);
}

static double
cpu_ms_since(const struct timespec *a)
{
	struct timespec b;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &b);
	return (double)(b.tv_sec - a->tv_sec) * 1e3 +
	    (double)(b.tv_nsec - a->tv_nsec) / 1e6;
}

/* Reads and scores msg within budget ms of CPU (any thread). */
static void
score_msg(const struct bayes_conf *conf, struct store *st, const char *msg,
    size_t len, long long budget_ms, const atomic_bool *cancel,
    struct score_out *o)
{
	struct mime_budget	 b;
	struct store_txn	*txn;
	struct timespec		 t0;
	struct tok		 tk;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
	memset(o, 0, sizeof(*o));
	tok_init(&tk, (size_t)conf->max_features, false);
	mime_budget_start(&b, budget_ms * 1000000LL, cancel);
	bayes_features_budget(conf, msg, len, &b, &tk, &o->ms);
	o->nfeat = tk.n;
	if ((txn = store_begin(st, false)) == NULL) {
		o->rc = -1;
	} else {
		o->rc = classifier_score(txn, &conf->cls, &tk, &o->r);
		store_abort(txn);
	}
	if (o->rc == -1)
		snprintf(o->err, sizeof(o->err), "%s", store_error(st));
	tok_free(&tk);
	o->ms_cpu = cpu_ms_since(&t0);
}

/* On the loop: the result as symbols on the session. */
static void
score_apply(struct session *s, const struct bayes_conf *conf,
    const void *state, const struct score_out *o, const char *where)
{
	const char	*sym;
	double		 sc;

	if (o->ms.budget) {
		log_msg(LVL_INFO, s->id, "event=bayes_budget max_cpu=%lld "
		    "cpu_ms=%.1f parts=%u depth=%u features=%zu",
		    conf->max_cpu, o->ms_cpu, o->ms.parts, o->ms.depth,
		    o->nfeat);
		(void)session_symbol(s, "BAYES_BUDGET", conf->budget_score);
	}
	if (o->rc == -1) {
		log_msg(LVL_WARN, s->id, "event=bayes_store error=\"%s\"",
		    o->err);
		return;
	}
	if (!o->r.opinion) {
		log_msg(LVL_DEBUG, s->id, "event=bayes opinion=no spam=%lld "
		    "ham=%lld", o->r.nspam, o->r.nham);
		return;
	}
	sym = bayes_symbol(state, o->r.prob, &sc);
	(void)session_symbol(s, sym, sc);
	log_msg(LVL_DEBUG, s->id, "event=bayes prob=%.6f logit=%.2f "
	    "features=%zu used=%zu truncated=%d cpu_ms=%.2f on=%s",
	    o->r.prob, o->r.logit, o->nfeat, o->r.used, o->ms.truncated,
	    o->ms_cpu, where);
}

/* Starts the content and learn pools on the worker's loop, once. */
static void
pools_start(struct event_base *base)
{
	static bool tried;

	if (tried || base == NULL)
		return;
	tried = true;
	if (tpool_start_pool(TPOOL_CONTENT, base, BAYES_THREADS,
	    BAYES_QUEUE) == -1 || tpool_start_pool(TPOOL_LEARN, base, 1,
	    BAYES_LEARN_QUEUE) == -1)
		log_msg(LVL_WARN, 0, "event=bayes_pool_failed (content work "
		    "runs on the loop)");
}

/* Submits j to its pool; -1 (errno EAGAIN: full) when it cannot. */
static int
job_submit(struct bayes_job *j, enum tpool_id pool,
    void (*work)(void *), void (*done)(void *))
{
	if (tpool_submit_to(pool, work, done, j) == -1)
		return -1;
	job_link(j);
	return 0;
}

/* ---- Learning --------------------------------------------------------- */

struct learn_read {
	struct bayes_job	*j;
	struct mime_budget	*b;
	struct tok		*sets;
	size_t			 n, cap;
};

/* One attached message (or the message itself): its feature set. */
static void
learn_read_one(void *arg, const char *msg, size_t len)
{
	struct learn_read	*lr = arg;
	struct mime_stats	 ms;
	void			*nv;

	if (lr->n == lr->cap) {
		lr->cap = lr->cap == 0 ? 4 : lr->cap * 2;
		if ((nv = realloc(lr->sets, lr->cap * sizeof(*lr->sets))) ==
		    NULL) {
			lr->j->rc = -1;
			return;
		}
		lr->sets = nv;
	}
	tok_init(&lr->sets[lr->n], (size_t)lr->j->conf->max_features, false);
	bayes_features_budget(lr->j->conf, msg, len, lr->b,
	    &lr->sets[lr->n], &ms);
	if (ms.budget)
		lr->j->budget = true;
	lr->n++;
}

/* Learns the read sets in one write transaction; with refit, prunes and
 * refits in it too (no pool: tools and tests). */
static void
learn_write(struct bayes_job *j, struct learn_read *lr, bool refit)
{
	struct store_txn	*txn;
	enum cls		 prev;
	size_t			 i;

	if ((txn = store_begin(j->st, true)) == NULL) {
		j->rc = -1;
		snprintf(j->err, sizeof(j->err), "%s", store_error(j->st));
		return;
	}
	for (i = 0; i < lr->n && j->rc == 0; i++) {
		if (classifier_learn(txn, &j->conf->cls, &lr->sets[i], j->cls,
		    &prev) == -1)
			j->rc = -1;
		else
			j->n++;
	}
	if (j->rc == 0 && refit && (classifier_prune(txn,
	    j->conf->cls.max_tokens) == -1 ||
	    classifier_refit(txn, &j->conf->cls) == -1))
		j->rc = -1;
	if (j->rc == 0)
		j->unfit = classifier_unfit(txn);
	if (j->rc == -1) {
		snprintf(j->err, sizeof(j->err), "%s", store_error(j->st));
		store_abort(txn);
	} else if (store_commit(txn) == -1) {
		snprintf(j->err, sizeof(j->err), "%s", store_error(j->st));
		j->rc = -1;
	}
}

/* The attached messages, or the message itself, read within one budget
 * and outside the write lock, then learnt. */
static void
learn_run(struct bayes_job *j, bool refit)
{
	struct learn_read	 lr = { j, NULL, NULL, 0, 0 };
	struct mime_budget	 b;
	size_t			 i;

	mime_budget_start(&b, j->conf->max_cpu * 1000000LL, &j->cancel);
	lr.b = &b;
	if (mime_each_attached(j->msg, j->len, &j->conf->lim, &b,
	    learn_read_one, &lr) == 0 && !b.spent)
		learn_read_one(&lr, j->msg, j->len);
	if (b.spent)
		j->budget = true;
	if (atomic_load(&j->cancel))
		j->rc = -1;	/* nobody waits for it any more */
	else if (j->rc == 0)
		learn_write(j, &lr, refit);
	for (i = 0; i < lr.n; i++)
		tok_free(&lr.sets[i]);
	free(lr.sets);
}

/* Learn pool thread. */
static void
learn_work(void *arg)
{
	struct bayes_job *j = arg;

	debug_hold(j->conf);
	if (atomic_load(&j->cancel)) {
		j->rc = -1;
		return;
	}
	learn_run(j, false);
}

static void	refit_schedule(struct event_base *, const struct bayes_conf *,
		    struct store *, long long unfit);

static void
learn_log(const struct bayes_job *j)
{
	if (j->rc == -1)
		log_msg(LVL_WARN, j->step.sid, "event=bayes_learn error=\"%s\"",
		    j->err[0] != '\0' ? j->err : "cancelled");
	else
		log_msg(LVL_INFO, j->step.sid, "event=bayes_learn class=%s "
		    "messages=%d budget=%d unfit=%lld", j->cls == CLS_SPAM ?
		    "spam" : "ham", j->n, j->budget, j->unfit);
}

/* Loop thread: the session (if still there) goes on. */
static void
learn_done(void *arg)
{
	struct bayes_job *j = arg;

	job_unlink(j);
	learn_log(j);
	if (j->rc == -1)
		filter_resume(j->step, verdict_make(V_DEFER, 451, "4.3.0",
		    "Could not learn the message; try again later"));
	else {
		refit_schedule(j->base, j->conf, j->st, j->unfit);
		filter_resume(j->step, VERDICT(j->only ? V_ACCEPT :
		    V_CONTINUE));
	}
	job_free(j);
}

/* Starts learning j's message (j->msg is its whole text). */
static struct verdict
learn_start(struct bayes_job *j)
{
	struct verdict v;

	j->rc = 0;
	if (job_submit(j, TPOOL_LEARN, learn_work, learn_done) == 0)
		return VERDICT(V_PENDING);
	if (tpool_running(TPOOL_LEARN)) {
		log_msg(LVL_WARN, j->step.sid, "event=bayes_busy pool=learn");
		job_free(j);
		return verdict_make(V_DEFER, 451, "4.3.0", "Too much to "
		    "learn just now; try again later");
	}
	/* No pool (tests, tools): learn and refit here. */
	learn_run(j, true);
	learn_log(j);
	v = j->rc == -1 ? verdict_make(V_DEFER, 451, "4.3.0", "Could not "
	    "learn the message; try again later") : VERDICT(j->only ?
	    V_ACCEPT : V_CONTINUE);
	job_free(j);
	return v;
}

/* A job for the transaction's message: all of it when it is to be
 * learnt, else what scoring reads (max_bytes). */
static struct bayes_job *
job_new(struct filter_call *c, struct store *st, bool whole)
{
	struct txn		*t = c->s->txn;
	const struct bayes_conf	*conf = c->conf;
	struct bayes_job	*j;
	size_t			 len = t->msg.len - t->msg_start, i;

	if (!whole && len > (size_t)conf->lim.max_bytes)
		len = (size_t)conf->lim.max_bytes;
	if ((j = calloc(1, sizeof(*j))) == NULL ||
	    (j->msg = malloc(len + 1)) == NULL) {
		free(j);
		return NULL;
	}
	memcpy(j->msg, t->msg.data + t->msg_start, len);
	j->msg[len] = '\0';
	j->len = len;
	j->step = c->step;
	j->conf = conf;
	j->state = c->state;
	j->st = st;
	j->base = c->s->base;
	j->train = t->nconsumed > 0;
	j->only = t->naccepted == t->nconsumed;
	atomic_init(&j->cancel, false);
	for (i = 0; i < t->nrcpt; i++)
		if (t->rcpts[i].accepted && t->rcpts[i].consumed != 0) {
			j->cls = (enum cls)t->rcpts[i].consumed;
			break;
		}
	return j;
}

/* ---- Refits ----------------------------------------------------------- */

/*
 * One refit at a time per worker, refit_interval after the first learn
 * that needed one (or at once past refit_messages). The job refits only
 * while the store says something was learnt since the last refit, so
 * workers (and moatctl, which refits at the end of every run) do not
 * repeat each other's work.
 */
static struct {
	struct event		*timer;
	struct event_base	*base;
	const struct bayes_conf	*conf;
	struct store		*st;
	bool			 armed, running, again;
} refit;

struct refit_job {
	const struct bayes_conf	*conf;
	struct store		*st;
	long long		 kept, pruned, unfit;
	double			 ms;
	int			 rc;
	char			 err[256];
};

/* Learn pool thread: prune and refit in one write transaction. */
static void
refit_work(void *arg)
{
	struct refit_job	*r = arg;
	struct store_txn	*txn;
	struct timespec		 t0, t1;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	if ((txn = store_begin(r->st, true)) == NULL) {
		r->rc = -1;
		snprintf(r->err, sizeof(r->err), "%s", store_error(r->st));
		return;
	}
	if ((r->unfit = classifier_unfit(txn)) == 0) {
		store_abort(txn);	/* done meanwhile, elsewhere */
		return;
	}
	if ((r->pruned = classifier_prune(txn,
	    r->conf->cls.max_tokens)) == -1 ||
	    (r->kept = classifier_refit(txn, &r->conf->cls)) == -1) {
		r->rc = -1;
		snprintf(r->err, sizeof(r->err), "%s", store_error(r->st));
		store_abort(txn);
	} else if (store_commit(txn) == -1) {
		r->rc = -1;
		snprintf(r->err, sizeof(r->err), "%s", store_error(r->st));
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	r->ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 +
	    (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
}

static void	refit_submit(void);

/* Loop thread. */
static void
refit_done(void *arg)
{
	struct refit_job *r = arg;

	refit.running = false;
	if (r->rc == -1)
		log_msg(LVL_WARN, 0, "event=bayes_refit error=\"%s\"",
		    r->err);
	else if (r->unfit > 0)
		log_msg(LVL_INFO, 0, "event=bayes_refit learnt=%lld kept=%lld "
		    "pruned=%lld ms=%.0f", r->unfit, r->kept, r->pruned,
		    r->ms);
	free(r);
	if (refit.again) {
		refit.again = false;
		refit_schedule(NULL, refit.conf, refit.st, 0);
	}
}

static void
refit_submit(void)
{
	struct refit_job *r;

	if (refit.running)
		return;
	if ((r = calloc(1, sizeof(*r))) == NULL)
		return;
	r->conf = refit.conf;
	r->st = refit.st;
	if (tpool_submit_to(TPOOL_LEARN, refit_work, refit_done, r) == -1) {
		free(r);	/* the next learn tries again */
		return;
	}
	refit.running = true;
}

static void
refit_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	refit.armed = false;
	refit_submit();
}

/* After a learn: a refit now (refit_messages waiting), or one armed for
 * refit_interval from now unless one is armed or running already. */
static void
refit_schedule(struct event_base *base, const struct bayes_conf *conf,
    struct store *st, long long unfit)
{
	struct timeval tv = { 0, 0 };

	refit.conf = conf;
	refit.st = st;
	if (base != NULL)
		refit.base = base;
	if (refit.running) {
		refit.again = true;
		return;
	}
	if (unfit >= conf->refit_messages) {
		if (refit.armed)
			event_del(refit.timer);
		refit.armed = false;
		refit_submit();
		return;
	}
	if (refit.armed)
		return;
	if (refit.timer == NULL && (refit.base == NULL || (refit.timer =
	    evtimer_new(refit.base, refit_timer, NULL)) == NULL))
		return;
	tv.tv_sec = (time_t)conf->refit_interval;
	if (evtimer_add(refit.timer, &tv) == 0)
		refit.armed = true;
}

/* ---- Scoring ---------------------------------------------------------- */

/* True when msg may be read on the loop: small, and few enough lines
 * that could be MIME boundaries (the parser's cost is in those). */
static bool
loop_cheap(const struct bayes_conf *conf, const char *msg, size_t len)
{
	const char	*p = msg, *end = msg + len, *nl;
	unsigned	 n = 0;

	if (len > (size_t)conf->loop_bytes)
		return false;
	while (p < end) {
		if (end - p >= 2 && p[0] == '-' && p[1] == '-' &&
		    ++n > BAYES_LOOP_BOUNDARIES)
			return false;
		if ((nl = memchr(p, '\n', (size_t)(end - p))) == NULL)
			break;
		p = nl + 1;
	}
	return true;
}

/* Content pool thread. */
static void
score_work(void *arg)
{
	struct bayes_job *j = arg;

	debug_hold(j->conf);
	if (atomic_load(&j->cancel))
		return;
	score_msg(j->conf, j->st, j->msg, j->len, j->conf->max_cpu,
	    &j->cancel, &j->out);
}

/* Loop thread: symbols onto the session, if it still waits for this. */
static void
score_done(void *arg)
{
	struct bayes_job	*j = arg;
	struct session		*s = session_find(j->step.sid);
	struct step_token	 step = j->step;
	struct verdict		 v;

	job_unlink(j);
	if (!session_step_live(s, j->step) || s->pending != STAGE_DATA_POST ||
	    atomic_load(&j->cancel)) {
		log_msg(LVL_DEBUG, j->step.sid, "event=stale_completion "
		    "filter=bayes");
		job_free(j);
		return;
	}
	score_apply(s, j->conf, j->state, &j->out, "pool");
	if (!j->train) {
		filter_resume(j->step, VERDICT(V_CONTINUE));
		job_free(j);
		return;
	}
	if ((v = learn_start(j)).code != V_PENDING)
		filter_resume(step, v);	/* j is gone */
}

/* Scores on the loop; false when the loop's share of CPU was spent and
 * the read should go to the pool instead. */
static bool
score_here(struct filter_call *c, struct store *st, bool pooled)
{
	const struct bayes_conf	*conf = c->conf;
	struct txn		*t = c->s->txn;
	struct score_out	 o;

	score_msg(conf, st, t->msg.data + t->msg_start,
	    t->msg.len - t->msg_start, pooled ? BAYES_LOOP_CPU_MS :
	    conf->max_cpu, NULL, &o);
	if (pooled && o.ms.budget &&
	    (conf->max_cpu == 0 || conf->max_cpu > BAYES_LOOP_CPU_MS))
		return false;
	score_apply(c->s, conf, c->state, &o, "loop");
	return true;
}

static struct verdict
bayes_data_post(struct filter_call *c)
{
	const struct bayes_conf	*conf = c->conf;
	struct txn		*t = c->s->txn;
	struct bayes_job	*j;
	struct store		*st;
	char			 err[256];
	bool			 pooled;

	if ((st = store_shared(err, sizeof(err))) == NULL) {
		log_msg(LVL_WARN, c->s->id, "event=bayes_store error=\"%s\"",
		    err);
		/* Never 250 for mail that was to be learnt and was not. */
		return t->nconsumed > 0 ? verdict_make(V_DEFER, 451, "4.3.0",
		    "Could not learn the message; try again later") :
		    VERDICT(V_CONTINUE);
	}
	pools_start(c->s->base);
	pooled = tpool_running(TPOOL_CONTENT);
	if (t->nconsumed > 0 && t->naccepted == t->nconsumed) {
		/* Nothing to score for: learn only. */
		if ((j = job_new(c, st, true)) == NULL)
			return verdict_make(V_DEFER, 451, "4.3.0",
			    "Out of memory");
		return learn_start(j);
	}
	if ((!pooled || loop_cheap(conf, t->msg.data + t->msg_start,
	    t->msg.len - t->msg_start)) && score_here(c, st, pooled)) {
		if (t->nconsumed == 0)
			return VERDICT(V_CONTINUE);
		if ((j = job_new(c, st, true)) == NULL)
			return verdict_make(V_DEFER, 451, "4.3.0",
			    "Out of memory");
		return learn_start(j);
	}
	if ((j = job_new(c, st, t->nconsumed > 0)) == NULL)
		return t->nconsumed > 0 ? verdict_make(V_DEFER, 451, "4.3.0",
		    "Out of memory") : VERDICT(V_CONTINUE);
	if (job_submit(j, TPOOL_CONTENT, score_work, score_done) == 0)
		return VERDICT(V_PENDING);
	/* Every content thread busy and the queue full: no opinion now
	 * (fail mode continue); mail to be learnt waits for a retry. */
	log_msg(LVL_WARN, c->s->id, "event=bayes_busy pool=content "
	    "pending=%d", tpool_pending(TPOOL_CONTENT));
	job_free(j);
	return t->nconsumed > 0 ? verdict_make(V_DEFER, 451, "4.3.0",
	    "Too busy to learn the message; try again later") :
	    VERDICT(V_CONTINUE);
}

/* Timeout or teardown: the job stops at its next budget check, and its
 * completion is dropped. */
static void
bayes_cancel(struct filter_call *c)
{
	struct bayes_job *j;

	for (j = jobs; j != NULL; j = j->next)
		if (j->step.sid == c->step.sid && j->step.gen == c->step.gen)
			atomic_store(&j->cancel, true);
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
	.cancel = bayes_cancel,
	.fail = FAIL_CONTINUE,
};
