/*
 * moatctl: the operator's command line.
 *
 *   moatctl [-c moat.conf] [--db DIR] learn --spam|--ham|--forget PATH...
 *   moatctl [-c moat.conf] [--db DIR] classify [--brief] [--times] FILE...
 *   moatctl [-c moat.conf] [--db DIR] stats
 *   moatctl [-c moat.conf] explain [--log FILE] SESSION_ID
 *
 * PATH is a message file, an mbox, a Maildir or a directory of any of
 * them (read recursively, in name order). Settings come from moat.conf's
 * [bayes] and [score] sections (built-in defaults with --db and no -c);
 * the store is moat.conf's <var_dir>/db unless --db names another.
 * Learning runs in write transactions of up to LEARN_BATCH messages, so
 * moatd's workers keep reading a consistent table meanwhile.
 * explain (explain_cmd.c) reads moatd's JSON log and touches no store;
 * the other subcommands are in *_cmd.c: quarantine, services, greylist,
 * block and client (karma), suspend, top-senders and rate (ratelimit).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../content/classifier.h"
#include "../core/buf.h"
#include "../daemon/conf.h"
#include "../filters/bayes.h"
#include "../filters/score.h"
#include "../store/store.h"
#include "greylist_cmd.h"
#include "explain_cmd.h"
#include "karma_cmd.h"
#include "quarantine_cmd.h"
#include "ratelimit_cmd.h"
#include "services_cmd.h"

#define LEARN_BATCH	500
/* Largest file read as one message or mbox. */
#define MAX_FILE	(256LL * 1024 * 1024)

struct ctl {
	struct bayes_conf	*bayes;
	struct score_conf	*score;
	void			*bayes_state;	/* its band map */
	struct store		*st;
	struct store_txn	*txn;
	bool			 write;
	/* learn */
	enum cls		 cls;
	long long		 seen, changed, same, moved, missing, failed;
	size_t			 in_batch;
	time_t			 last_progress;
	/* classify */
	bool			 brief;
	bool			 times;		/* --times: latency summary */
	double			*ms;
	size_t			 nms, capms;
	const char		*name;	/* file being read */
};

#define DEFAULT_CONF	MOATCTL_CONF

/* The full help (-h, --help, "help"): printed without reading any
 * configuration, so it works on a host that has none. */
static void
help(void)
{
	fputs(
"NAME\n"
"    moatctl - teach, query and inspect moat's spam classifier; explain\n"
"    a session from the JSON log\n"
"\n"
"SYNOPSIS\n"
"    moatctl [-c FILE] [--db DIR] learn --spam|--ham|--forget PATH...\n"
"    moatctl [-c FILE] [--db DIR] classify [--brief] [--times] PATH...\n"
"    moatctl [-c FILE] [--db DIR] stats\n"
"    moatctl [-c FILE] explain [--log FILE] SESSION_ID\n"
"    moatctl [-c FILE] quarantine list [--domain D] [--since T]\n"
"                                  [--reason R]\n"
"    moatctl [-c FILE] quarantine show|delete ID\n"
"    moatctl [-c FILE] quarantine release [--force] ID\n"
"    moatctl [-c FILE] quarantine learn ID --spam|--ham\n"
"    moatctl [-c FILE] quarantine trim\n"
"    moatctl [-c FILE] services\n"
"    moatctl [-c FILE] [--db DIR] suspend list | add SUBJECT [REASON...]\n"
"                                         | lift SUBJECT [--json]\n"
"    moatctl [-c FILE] [--db DIR] top-senders [--hours N] [--json]\n"
"    moatctl [-c FILE] rate IP|USER|ADDRESS [--json]\n"
"    moatctl -h | --help | help\n"
"\n"
"DESCRIPTION\n"
"    moatctl works on the token store that moatd's bayes filter reads. It\n"
"    may run while moatd runs: learning commits in batches of "
	    , stdout);
	printf("%d messages,\n", LEARN_BATCH);
	fputs(
"    so moatd's workers keep reading a consistent table meanwhile.\n"
"\n"
"    A PATH is a message file, an mbox, a Maildir or a directory of any of\n"
"    them, read recursively in name order (a Maildir's tmp/ is skipped).\n"
"    A file is read whole, up to 256 MiB.\n"
"\n"
"COMMANDS\n"
"    learn --spam PATH...    learn the messages as spam\n"
"    learn --ham PATH...     learn the messages as ham (wanted mail)\n"
"    learn --forget PATH...  unlearn the messages; a message counts once,\n"
"                            so learning it again as the other class\n"
"                            moves it. After a run the token table is\n"
"                            pruned to [bayes] max_tokens and the\n"
"                            perceptron is retrained. Progress goes to\n"
"                            standard error.\n"
"    classify PATH...        score each message: verdict, probability,\n"
"                            symbol and score, and the features that\n"
"                            weighed most\n"
"        --brief             one line per message: PATH LOGIT VERDICT,\n"
"                            VERDICT being spam, ham or unsure\n"
"        --times             report p50/p99/max scoring time per\n"
"                            message on standard error\n"
"    stats                   messages learnt, tokens and store size\n"
"    explain SESSION_ID      why a session was refused or delivered: its\n"
"                            client, evidence, each recipient's reply and\n"
"                            deciding filter, symbols, timings, result,\n"
"                            from [server] json_log (FILE.1 too)\n"
"        --log FILE          read FILE instead; see moatctl explain --help\n"
"    services                each worker's view of the external services\n"
"                            (clamd, spamd): state up/degraded/down, since,\n"
"                            requests, failures (<var_dir>/svc)\n"
"    block list              karma's blocks: client, until, time left,\n"
"                            offences, reason\n"
"    block add IP [--for D] [REASON]\n"
"                            block a client (D: 90s, 30m, 4h, 2d)\n"
"    block remove IP         unblock a client\n"
"    client IP [--json]      a client's block, offences and karma window\n"
"                            counts (<var_dir>/run/karma.win)\n"
"    suspend list            outbound users and relay clients suspended\n"
"                            by [ratelimit] out_action = suspend\n"
"    suspend add SUBJECT [REASON...]\n"
"                            suspend a user or relay client address\n"
"    suspend lift SUBJECT    let it send again\n"
"    top-senders             messages and recipients per outbound user\n"
"                            or relay client, most first\n"
"        --hours N           over the last N hours (default 24)\n"
"    rate SUBJECT            each [ratelimit] limit counting an IP, a user\n"
"                            or an address, with its count now\n"
"                            (<var_dir>/run/ratelimit.win)\n"
"    quarantine list         messages kept at end of data, oldest first:\n"
"                            ID, time, state, score, size, reason,\n"
"                            sender, first recipient\n"
"        --domain D          only those with a recipient in D\n"
"        --since T           kept since T: epoch seconds,\n"
"                            YYYY-MM-DD[THH:MM[:SS]] (UTC), or 90m, 12h, 7d\n"
"        --reason R          reasons starting with R (spam, virus)\n"
"    quarantine show ID      envelope, client, symbols, header fields and\n"
"                            the text part, escaped and cut short\n"
"    quarantine release ID   deliver it to its recipients, once; a\n"
"                            virus, or an interrupted release, needs\n"
"                            --force\n"
"    quarantine learn ID --spam|--ham\n"
"                            teach the classifier with it\n"
"    quarantine delete ID    remove it\n"
"    quarantine trim         drop what is past [quarantine] retention_days\n"
"                            or over its caps, oldest first\n"
"    help                    this text\n"
"\n"
"OPTIONS\n"
"    -c FILE     read settings ([server] var_dir, [bayes], [score]) from\n"
"                FILE instead of " DEFAULT_CONF "\n"
"    --db DIR    use the token store in DIR instead of <var_dir>/db;\n"
"                without -c, built-in [bayes] and [score] defaults are\n"
"                used and no configuration file is read\n"
"    -h, --help  print this help and exit; reads no configuration\n"
"\n"
"FILES\n"
"    " DEFAULT_CONF "\n"
"        the configuration read when neither -c nor --db is given\n"
"    <var_dir>/db\n"
"        the LMDB token store shared with moatd\n"
"\n"
"EXIT STATUS\n"
"    0   success (also for -h and --help)\n"
"    1   a configuration, store or message could not be read or written\n"
"    2   usage error: unknown command or option, or missing argument\n"
"    explain: 0 found, 1 not found or unreadable log, 2 usage error or\n"
"    an ambiguous prefix\n"
"\n"
"EXAMPLES\n"
"    moatctl learn --spam ~/Maildir/.Junk\n"
"    moatctl --db /tmp/db classify --brief message.eml\n"
"    moatctl explain 6650a1c2000f0003\n"
"\n"
"SEE ALSO\n"
"    moatd, README.md, docs/CLASSIFIER.md\n", stdout);
	exit(0);
}

/* A usage error: the synopsis on standard error, exit status 2. */
static void
usage(void)
{
	fprintf(stderr,
	    "usage: moatctl [-c FILE] [--db DIR] learn --spam|--ham|--forget "
	    "PATH...\n"
	    "       moatctl [-c FILE] [--db DIR] classify [--brief] [--times] "
	    "PATH...\n"
	    "       moatctl [-c FILE] [--db DIR] stats\n"
	    "       moatctl [-c FILE] explain [--log FILE] SESSION_ID\n"
	    "       %s"
	    "       %s"
	    "       %s"
	    "       %s"
	    "       %s"
	    "       %s"
	    "       moatctl -h | --help\n", quarantine_cmd_usage,
	    greylist_cmd_usage, block_cmd_usage, suspend_cmd_usage,
	    top_senders_cmd_usage, rate_cmd_usage);
	exit(2);
}

static bool
is_help(const char *a)
{
	return strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0;
}

/* Reads a whole file (up to MAX_FILE); NULL with errno set. */
static char *
read_file(const char *path, size_t *len)
{
	struct buf	b;
	char		chunk[65536];
	ssize_t		n;
	int		fd;

	if ((fd = open(path, O_RDONLY)) == -1)
		return NULL;
	buf_init(&b, MAX_FILE);
	while ((n = read(fd, chunk, sizeof(chunk))) > 0)
		if (buf_add(&b, chunk, (size_t)n) == -1) {
			errno = EFBIG;
			n = -1;
			break;
		}
	close(fd);
	if (n < 0) {
		buf_free(&b);
		return NULL;
	}
	if (b.data == NULL)
		buf_addc(&b, '\0'), b.len = 0;
	*len = b.len;
	return b.data;
}

static void
progress(struct ctl *c, bool last)
{
	time_t now = time(NULL);

	if (!last && now == c->last_progress)
		return;
	c->last_progress = now;
	fprintf(stderr, "%slearn: %lld messages: %lld learnt, %lld moved "
	    "from the other class, %lld already known%s",
	    isatty(2) ? "\r" : "", c->seen, c->changed - c->moved, c->moved,
	    c->same, isatty(2) && !last ? "" : "\n");
	if (c->cls == CLS_NONE && last)
		fprintf(stderr, "learn: %lld forgotten, %lld were never "
		    "learnt\n", c->changed, c->missing);
}

static int
batch_flush(struct ctl *c)
{
	if (c->txn == NULL)
		return 0;
	if (store_commit(c->txn) == -1) {
		c->txn = NULL;
		fprintf(stderr, "moatctl: %s\n", store_error(c->st));
		return -1;
	}
	c->txn = NULL;
	c->in_batch = 0;
	return 0;
}

static int
learn_one(struct ctl *c, struct tok *t)
{
	enum cls	prev;
	int		rc;

	if (c->txn == NULL && (c->txn = store_begin(c->st, true)) == NULL) {
		fprintf(stderr, "moatctl: %s\n", store_error(c->st));
		return -1;
	}
	if ((rc = classifier_learn(c->txn, &c->bayes->cls, t, c->cls,
	    &prev)) == -1) {
		fprintf(stderr, "moatctl: %s: %s\n", c->name,
		    store_error(c->st));
		store_abort(c->txn);
		c->txn = NULL;
		return -1;
	}
	c->seen++;
	if (rc == 1) {
		c->changed++;
		if (prev != CLS_NONE && c->cls != CLS_NONE)
			c->moved++;
	} else if (c->cls == CLS_NONE) {
		c->missing++;
	} else {
		c->same++;
	}
	progress(c, false);
	if (++c->in_batch >= LEARN_BATCH)
		return batch_flush(c);
	return 0;
}

/* The bayes filter's symbol for r, and the verdict where moatd would
 * tag: "spam" when that symbol alone reaches [score] tag. */
static const char *
verdict_of(const struct ctl *c, const struct classifier_result *r,
    const char **sym, double *score)
{
	*sym = "none";
	*score = 0;
	if (!r->opinion)
		return "unsure";
	*sym = bayes_symbol(c->bayes_state, r->prob, score);
	return *score >= c->score->tag ? "spam" : "ham";
}

static int
classify_one(struct ctl *c, struct tok *t)
{
	struct classifier_result	r;
	const char			*v, *sym;
	double				 sc;
	size_t				 i;

	if (c->txn == NULL && (c->txn = store_begin(c->st, false)) == NULL) {
		fprintf(stderr, "moatctl: %s\n", store_error(c->st));
		return -1;
	}
	if (classifier_score(c->txn, &c->bayes->cls, t, &r) == -1) {
		fprintf(stderr, "moatctl: %s: %s\n", c->name,
		    store_error(c->st));
		return -1;
	}
	v = verdict_of(c, &r, &sym, &sc);
	if (c->brief) {
		printf("%s %.6f %s\n", c->name, r.logit, v);
		return 0;
	}
	if (!r.opinion) {
		printf("%s: unsure (learnt %lld spam, %lld ham; needs %lld "
		    "and %lld)\n", c->name, r.nspam, r.nham,
		    c->bayes->cls.min_spam, c->bayes->cls.min_ham);
		return 0;
	}
	printf("%s: %s  probability %.6f  %s %+.1f  (score %.2f = counts "
	    "%.2f + perceptron %g x %.2f; %zu of %zu features counted)\n",
	    c->name, v, r.prob, sym, sc, r.logit, r.counts,
	    c->bayes->cls.perceptron, r.margin, r.used, t->n);
	for (i = 0; i < r.ntop; i++)
		printf("  %+7.2f  %-40s spam %u ham %u  perceptron %+.2f\n",
		    r.top[i].weight, tok_name(t, r.top[i].index),
		    r.top[i].spam, r.top[i].ham, r.top[i].perceptron);
	return 0;
}

/* Keeps one message's scoring time (reading + scoring, in ms). */
static void
time_add(struct ctl *c, const struct timespec *t0)
{
	struct timespec	 t1;
	double		*n;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (c->nms == c->capms) {
		c->capms = c->capms ? c->capms * 2 : 1024;
		if ((n = realloc(c->ms, c->capms * sizeof(*n))) == NULL)
			return;
		c->ms = n;
	}
	c->ms[c->nms++] = (double)(t1.tv_sec - t0->tv_sec) * 1e3 +
	    (double)(t1.tv_nsec - t0->tv_nsec) / 1e6;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static void
times_report(struct ctl *c)
{
	if (!c->times || c->nms == 0)
		return;
	qsort(c->ms, c->nms, sizeof(*c->ms), cmp_double);
	fprintf(stderr, "classify: %zu messages: p50 %.3f ms, p99 %.3f ms, "
	    "max %.3f ms\n", c->nms, c->ms[c->nms / 2],
	    c->ms[c->nms * 99 / 100], c->ms[c->nms - 1]);
}

static int
do_message(struct ctl *c, const char *msg, size_t len)
{
	struct tok		t;
	struct mime_stats	ms;
	struct timespec		t0;
	int			rc;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	tok_init(&t, (size_t)c->bayes->max_features, !c->write && !c->brief);
	bayes_features(c->bayes, msg, len, &t, &ms);
	rc = c->write ? learn_one(c, &t) : classify_one(c, &t);
	if (!c->write)
		time_add(c, &t0);
	tok_free(&t);
	return rc;
}

/* True when an mbox line starts a new message ("From " at a line start). */
static bool
mbox_from(const char *p, size_t left)
{
	return left >= 5 && memcmp(p, "From ", 5) == 0;
}

/* Splits an mbox into messages; ">From " quoting is left as it is (it
 * changes no feature of note). */
static int
do_mbox(struct ctl *c, const char *m, size_t len)
{
	size_t	start, i, body;
	int	rc = 0;

	for (start = 0; start < len && rc == 0; start = i) {
		/* Skip the "From " line itself. */
		for (body = start; body < len && m[body] != '\n'; body++)
			;
		body++;
		for (i = body; i < len; i++)
			if (m[i - 1] == '\n' && mbox_from(m + i, len - i))
				break;
		if (body < i)
			rc = do_message(c, m + body, i - body);
	}
	return rc;
}

static int	do_path(struct ctl *, const char *);

static int
do_dir(struct ctl *c, const char *path)
{
	struct dirent	**ents;
	char		  sub[4096];
	struct stat	  sb;
	bool		  maildir;
	int		  n, i, rc = 0;

	snprintf(sub, sizeof(sub), "%s/cur", path);
	maildir = stat(sub, &sb) == 0 && S_ISDIR(sb.st_mode);
	if ((n = scandir(path, &ents, NULL, alphasort)) == -1) {
		fprintf(stderr, "moatctl: %s: %s\n", path, strerror(errno));
		return -1;
	}
	for (i = 0; i < n; i++) {
		const char *e = ents[i]->d_name;

		if (rc == 0 && e[0] != '.' &&
		    !(maildir && strcmp(e, "tmp") == 0)) {
			snprintf(sub, sizeof(sub), "%s/%s", path, e);
			rc = do_path(c, sub);
		}
		free(ents[i]);
	}
	free(ents);
	return rc;
}

static int
do_path(struct ctl *c, const char *path)
{
	struct stat	 sb;
	char		*m;
	size_t		 len;
	int		 rc;

	if (stat(path, &sb) == -1) {
		fprintf(stderr, "moatctl: %s: %s\n", path, strerror(errno));
		c->failed++;
		return 0;
	}
	if (S_ISDIR(sb.st_mode))
		return do_dir(c, path);
	if ((m = read_file(path, &len)) == NULL) {
		fprintf(stderr, "moatctl: %s: %s\n", path, strerror(errno));
		c->failed++;
		return 0;
	}
	c->name = path;
	rc = mbox_from(m, len) ? do_mbox(c, m, len) : do_message(c, m, len);
	free(m);
	return rc;
}

/* After a learning run: prunes the token table and retrains the
 * perceptron, in the run's last transaction. */
static int
learn_finish(struct ctl *c)
{
	long long	pruned, kept;
	struct timespec	t0, t1;

	if (c->txn == NULL && (c->txn = store_begin(c->st, true)) == NULL) {
		fprintf(stderr, "moatctl: %s\n", store_error(c->st));
		return -1;
	}
	if ((pruned = classifier_prune(c->txn,
	    c->bayes->cls.max_tokens)) > 0)
		fprintf(stderr, "learn: pruned %lld tokens (cap %lld)\n",
		    pruned, c->bayes->cls.max_tokens);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (pruned < 0 ||
	    (kept = classifier_refit(c->txn, &c->bayes->cls)) < 0) {
		fprintf(stderr, "moatctl: %s\n", store_error(c->st));
		return -1;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (c->bayes->cls.perceptron > 0)
		fprintf(stderr, "learn: perceptron retrained on %lld messages "
		    "(%lld passes, %.2f s)\n", kept,
		    c->bayes->cls.perceptron_passes,
		    (double)(t1.tv_sec - t0.tv_sec) +
		    (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
	return batch_flush(c);
}

static int
cmd_learn(struct ctl *c, int argc, char **argv)
{
	int	i = 0, rc = 0;

	if (argc < 2)
		usage();
	if (strcmp(argv[0], "--spam") == 0)
		c->cls = CLS_SPAM;
	else if (strcmp(argv[0], "--ham") == 0)
		c->cls = CLS_HAM;
	else if (strcmp(argv[0], "--forget") == 0)
		c->cls = CLS_NONE;
	else
		usage();
	c->write = true;
	for (i = 1; i < argc && rc == 0; i++)
		rc = do_path(c, argv[i]);
	progress(c, true);
	if (rc == 0 && c->changed > 0)
		rc = learn_finish(c);
	store_abort(c->txn);
	c->txn = NULL;
	return rc == 0 && c->failed == 0 ? 0 : 1;
}

static int
cmd_classify(struct ctl *c, int argc, char **argv)
{
	int i = 0, rc = 0;

	for (; i < argc && argv[i][0] == '-'; i++) {
		if (strcmp(argv[i], "--brief") == 0)
			c->brief = true;
		else if (strcmp(argv[i], "--times") == 0)
			c->times = true;
		else
			usage();
	}
	if (i >= argc)
		usage();
	for (; i < argc && rc == 0; i++)
		rc = do_path(c, argv[i]);
	store_abort(c->txn);
	c->txn = NULL;
	times_report(c);
	free(c->ms);
	return rc == 0 && c->failed == 0 ? 0 : 1;
}

static int
cmd_stats(struct ctl *c)
{
	struct store_txn	*txn;
	long long		 ns, nh, ntok, kept;

	if ((txn = store_begin(c->st, false)) == NULL) {
		fprintf(stderr, "moatctl: %s\n", store_error(c->st));
		return 1;
	}
	classifier_totals(txn, &ns, &nh);
	ntok = store_tokens_count(txn);
	kept = classifier_kept(txn);
	store_abort(txn);
	printf("bayes: learnt %lld spam, %lld ham (opinion from %lld and "
	    "%lld)\n", ns, nh, c->bayes->cls.min_spam, c->bayes->cls.min_ham);
	printf("bayes: %lld tokens of at most %lld (%.0f%%)\n", ntok,
	    c->bayes->cls.max_tokens,
	    100.0 * (double)ntok / (double)c->bayes->cls.max_tokens);
	printf("bayes: %lld messages keep their features for the "
	    "perceptron, of at most %lld\n", kept,
	    c->bayes->cls.keep_messages);
	printf("store: %lld bytes on disk\n", store_disk_size(c->st));
	return 0;
}

int
main(int argc, char **argv)
{
	static struct bayes_conf	 dbayes;
	static struct score_conf	 dscore;
	struct moat_config		*cf = NULL;
	struct ctl			 c;
	const char			*path = NULL, *db = NULL;
	char				 err[1024];
	int				 i, rc;

	memset(&c, 0, sizeof(c));
	/* Everything that needs no configuration is settled first: help,
	 * usage errors. */
	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		if (is_help(argv[i]))
			help();
		else if (strcmp(argv[i], "-c") == 0 && i + 1 < argc)
			path = argv[++i];
		else if (strcmp(argv[i], "--db") == 0 && i + 1 < argc)
			db = argv[++i];
		else
			usage();
	}
	if (i >= argc)
		usage();
	/* explain reads the log, not the store: it needs neither. */
	if (strcmp(argv[i], "explain") == 0)
		return cmd_explain(path, argc - i - 1, argv + i + 1);
	/* services reads the workers' health files: no store either. */
	if (strcmp(argv[i], "services") == 0 && i + 1 == argc) {
		if ((cf = conf_load(path != NULL ? path : DEFAULT_CONF, err,
		    sizeof(err))) == NULL) {
			fprintf(stderr, "moatctl: %s\n", err);
			return 1;
		}
		rc = services_cmd(cf->server.var_dir);
		conf_free(cf);
		return rc;
	}
	/* rate reads the published counters: no store either. */
	if (strcmp(argv[i], "rate") == 0 && !(i + 1 < argc &&
	    is_help(argv[i + 1]))) {
		if (argc - i - 1 < 1 || argc - i - 1 > 2)
			usage();
		if ((cf = conf_load(path != NULL ? path : DEFAULT_CONF, err,
		    sizeof(err))) == NULL) {
			fprintf(stderr, "moatctl: %s\n", err);
			return 1;
		}
		rc = rate_cmd(cf, argc - i - 1, argv + i + 1);
		conf_free(cf);
		return rc;
	}
	if (strcmp(argv[i], "help") == 0 ||
	    (i + 1 < argc && is_help(argv[i + 1])))
		help();
	if (strcmp(argv[i], "learn") != 0 &&
	    strcmp(argv[i], "classify") != 0 && strcmp(argv[i], "stats") != 0 &&
	    strcmp(argv[i], "quarantine") != 0 &&
	    strcmp(argv[i], "greylist") != 0 && strcmp(argv[i], "block") != 0 &&
	    strcmp(argv[i], "suspend") != 0 &&
	    strcmp(argv[i], "top-senders") != 0 &&
	    strcmp(argv[i], "client") != 0)
		usage();
	if (path == NULL && (db == NULL || strcmp(argv[i], "quarantine") == 0))
		path = DEFAULT_CONF;	/* quarantine needs [quarantine] */
	if (path != NULL) {
		if ((cf = conf_load(path, err, sizeof(err))) == NULL) {
			fprintf(stderr, "moatctl: %s\n", err);
			return 1;
		}
		c.bayes = cf->pl->def->conf[filter_index(&filter_bayes)];
		c.score = cf->pl->def->conf[filter_index(&filter_score)];
	} else {
		if (opt_defaults(filter_bayes.opts, &dbayes, NULL, err,
		    sizeof(err)) == -1 || opt_defaults(filter_score.opts,
		    &dscore, NULL, err, sizeof(err)) == -1) {
			fprintf(stderr, "moatctl: %s\n", err);
			return 1;
		}
		c.bayes = &dbayes;
		c.score = &dscore;
	}
	if (filter_bayes.init(c.bayes, &c.bayes_state, err,
	    sizeof(err)) == -1) {
		fprintf(stderr, "moatctl: [bayes]: %s\n", err);
		return 1;
	}
	if (db != NULL)
		store_configure(db, 1ULL << 30);
	if ((c.st = store_shared(err, sizeof(err))) == NULL) {
		fprintf(stderr, "moatctl: %s\n", err);
		return 1;
	}
	if (strcmp(argv[i], "learn") == 0)
		rc = cmd_learn(&c, argc - i - 1, argv + i + 1);
	else if (strcmp(argv[i], "classify") == 0)
		rc = cmd_classify(&c, argc - i - 1, argv + i + 1);
	else if (strcmp(argv[i], "stats") == 0)
		rc = cmd_stats(&c);
	else if (strcmp(argv[i], "greylist") == 0)
		rc = greylist_cmd(c.st, argc - i - 1, argv + i + 1);
	else if (strcmp(argv[i], "block") == 0)
		rc = block_cmd(c.st, argc - i - 1, argv + i + 1);
	else if (strcmp(argv[i], "suspend") == 0)
		rc = suspend_cmd(c.st, argc - i - 1, argv + i + 1);
	else if (strcmp(argv[i], "top-senders") == 0)
		rc = top_senders_cmd(c.st, argc - i - 1, argv + i + 1);
	else if (strcmp(argv[i], "client") == 0)
		rc = karma_client_cmd(cf, c.st, argc - i - 1, argv + i + 1);
	else if (strcmp(argv[i], "quarantine") == 0)
		rc = quarantine_cmd(cf, c.st, c.bayes, argc - i - 1,
		    argv + i + 1);
	else
		usage();
	store_close(c.st);
	filter_bayes.fini(c.bayes_state);
	conf_free(cf);
	return rc;
}
