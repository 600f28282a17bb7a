/*
 * greylist.c: greylisting at RCPT, per recipient, keyed so that big
 * senders' rotating pools are not greylisted again on every retry
 * (docs/GREYLIST.md; the research notes' G0-G6).
 *
 * A client's identity is a list of pool keys, strongest first: the
 * SPF-pass org domain (when the deciding mechanism is narrow), its
 * FCrDNS-verified reverse name minus its first label (never shorter than
 * the org domain), its /24 or /64, its address. The first attempt stores
 * the triplet (pool, normalised sender, recipient) under every key; a
 * retry whose keys meet any of them passes once the delay is over, and
 * its pools are remembered (passes) for pass_ttl, refreshed on use.
 *
 * Known correspondents: a message a relay or authenticated client sends
 * from a local address L to a remote R records R -> L (at data_post, for
 * correspondent_ttl, refreshed on use); mail from R to L is then never
 * greylisted. Each first attempt also writes one gl:n: marker, which the
 * pass deletes: the sweep counts expired markers as never retried, once
 * per attempt however many pool keys it was stored under. Host-wide
 * counters (deferred, passed, never retried, the delay histogram) are
 * increments inside the batches the filter writes anyway.
 *
 * Invariants: the store is read directly on the loop (an LMDB read);
 * every write goes to the store's writer thread as one batch (at most
 * STORE_BATCH_MAX operations: a first attempt 4 + 4, a pass 3 * 4 + 4),
 * and the hook waits for it (PENDING) except for refreshes and the
 * correspondents' records, which nobody waits for. A job whose session
 * is gone is freed by its completion. A store that cannot be read or
 * written never holds mail: the filter then has no opinion (logged as a
 * warning).
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "../core/lists.h"
#include "../core/log.h"
#include "../store/store.h"
#include "filter.h"
#include "policy.h"
#include "greylist.h"
#include "spf.h"

extern const struct filter filter_greylist;

struct greylist_conf {
	char		*apply;		/* off, selective, always */
	long long	 delay;
	long long	 retry_window;
	long long	 pass_ttl;
	char		*psl_file;
	char		*reply;
	bool		 header;
	bool		 no_history;	/* no pass yet counts as suspicion */
	long long	 sweep_interval;
	long long	 sweep_keys;
	long long	 corr_ttl;
};

static const struct opt greylist_opts[] = {
	/* Not "mode": every filter section's mode is enforce|observe. */
	{ "apply", OPT_STR, "selective", 0, 0,
	    offsetof(struct greylist_conf, apply),
	    "off, selective (clients with suspicion evidence) or always" },
	{ "delay", OPT_INT, "300", 0, 86400,
	    offsetof(struct greylist_conf, delay),
	    "seconds before a retry is accepted" },
	{ "retry_window", OPT_INT, "86400", 1, 30 * 86400,
	    offsetof(struct greylist_conf, retry_window),
	    "seconds after the first attempt that a retry still counts" },
	{ "pass_ttl", OPT_INT, "3024000", 1, 365 * 86400,
	    offsetof(struct greylist_conf, pass_ttl),
	    "seconds a passed pool stays passed, refreshed on use (35 d)" },
	{ "psl_file", OPT_PATH,
	    "/usr/share/publicsuffix/public_suffix_list.dat", 0, 0,
	    offsetof(struct greylist_conf, psl_file),
	    "public suffix list (org domains); missing: last two labels" },
	{ "reply", OPT_STR, "Greylisted, please retry in %s seconds", 0, 0,
	    offsetof(struct greylist_conf, reply),
	    "451 4.7.1 text; %s is the seconds left" },
	{ "header", OPT_BOOL, "yes", 0, 0,
	    offsetof(struct greylist_conf, header),
	    "X-Greylist: delayed N seconds on an accepted retry" },
	{ "no_history_suspect", OPT_BOOL, "no", 0, 0,
	    offsetof(struct greylist_conf, no_history),
	    "selective: a client with no pass yet counts as suspect" },
	{ "sweep_interval", OPT_INT, "60", 1, 86400,
	    offsetof(struct greylist_conf, sweep_interval),
	    "seconds between steps of the store's expiry sweep" },
	{ "sweep_keys", OPT_INT, "1000", 1, 1000000,
	    offsetof(struct greylist_conf, sweep_keys),
	    "keys one sweep step looks at, at most" },
	{ "correspondent_ttl", OPT_INT, "7776000", 0, 3650LL * 86400,
	    offsetof(struct greylist_conf, corr_ttl),
	    "seconds a correspondent a local user mailed stays known, "
	    "refreshed on use (90 d); 0: off" },
	OPT_END
};

enum gl_mode { GL_OFF, GL_SELECTIVE, GL_ALWAYS };

struct greylist_state {
	struct strset	 psl;
	bool		 have_psl;
	enum gl_mode	 mode;
};

/* Per session: the delay of the retry this transaction passed (for the
 * header), the job in flight, the reply text of the last deferral. */
struct gl_job;

struct gl_data {
	unsigned	 txn;		/* txn->seq the delay belongs to */
	long long	 delayed;	/* -1: none */
	struct gl_job	*job;
	char		 reply[LIMIT_REPLY_LINE + 1];
};

struct gl_job {
	struct store_batch	 b;
	struct step_token	 tok;
	struct gl_data		*gd;	/* NULL: the session is gone */
	struct verdict		 v;
	uint64_t		 sid;
	const char		*action;
	long long		 delay;
	unsigned long long	 never;	/* gl_never_pending it carries */
};

/* Worker-wide counts, in every greylist log line. */
static unsigned long long gl_deferred, gl_passed, gl_never;
/* Never-retried counts the sweep found, not yet in the store's counter:
 * they ride in the next batch written; flushed on their own when a whole
 * sweep step went by without one (gl_never_stale). */
static unsigned long long gl_never_pending;
static bool		  gl_never_stale;
static struct event_base *gl_base;	/* the sweep's loop */

/* ---- Sender normalisation ---------------------------------------- */

static bool
is_hex(int c)
{
	return isdigit(c) || (c >= 'a' && c <= 'f');
}

/* Unwraps BATV: prvs=TAG=user (or the older prvs=user=TAG) and
 * btv1==TAG==user. Returns where the user starts in l (lowercased). */
static const char *
batv_unwrap(const char *l, char *tmp, size_t n)
{
	const char	*p, *eq;

	if (strncmp(l, "prvs=", 5) == 0 || strncmp(l, "msprvs1=", 8) == 0) {
		p = strchr(l, '=') + 1;
		if ((eq = strchr(p, '=')) == NULL)
			return l;
		/* The tag is K DDD SSSSSS: 10 characters, a digit first. */
		if (eq - p == 10 && isdigit((unsigned char)p[0]))
			return eq + 1;
		snprintf(tmp, n, "%.*s", (int)(eq - p), p);
		return tmp;
	}
	if (strncmp(l, "btv1==", 6) == 0 && (p = strstr(l + 6, "==")) != NULL)
		return p + 2;
	return l;
}

/* Digit runs, and hex runs of 8 or more holding a digit, become '#'. */
static size_t
squash_ids(const char *in, char *out, size_t n)
{
	size_t	i = 0, k, len;
	bool	digit;

	while (*in != '\0' && i + 1 < n) {
		for (len = 0, digit = false; is_hex((unsigned char)in[len]);
		    len++)
			digit |= isdigit((unsigned char)in[len]) != 0;
		for (k = 0; k < len && isdigit((unsigned char)in[k]); k++)
			;
		if (digit && (len >= 8 || k == len)) {
			out[i++] = '#';
			in += len;
		} else if (k > 0) {
			out[i++] = '#';	/* a digit run ahead of letters */
			in += k;
		} else
			out[i++] = *in++;
	}
	out[i] = '\0';
	return i;
}

size_t
greylist_norm_sender(const char *local, const char *domain, bool null,
    char *out, size_t n)
{
	char		 l[GREYLIST_ADDR_MAX], tmp[GREYLIST_ADDR_MAX];
	char		 d[GREYLIST_ADDR_MAX], sq[GREYLIST_ADDR_MAX];
	const char	*u;
	char		*plus;
	size_t		 i;
	int		 w;

	if (n == 0)
		return 0;
	if (null || local[0] == '\0') {
		w = snprintf(out, n, "<>");
		return (size_t)w < n ? (size_t)w : n - 1;
	}
	snprintf(l, sizeof(l), "%s", local);
	snprintf(d, sizeof(d), "%s", domain);
	for (i = 0; l[i] != '\0'; i++)
		l[i] = (char)tolower((unsigned char)l[i]);
	for (i = 0; d[i] != '\0'; i++)
		d[i] = (char)tolower((unsigned char)d[i]);
	/* SRS (SRS0=HHH=TT=orig-domain=orig-local@forwarder): the
	 * forwarder is the sender that retries. */
	if (strncmp(l, "srs0=", 5) == 0 || strncmp(l, "srs1=", 5) == 0)
		w = snprintf(out, n, "srs@%s", d);
	else {
		u = batv_unwrap(l, tmp, sizeof(tmp));
		snprintf(sq, sizeof(sq), "%s", u);
		if ((plus = strchr(sq, '+')) != NULL && plus != sq)
			*plus = '\0';
		squash_ids(sq, l, sizeof(l));
		w = snprintf(out, n, "%s@%s", l, d);
	}
	return (size_t)w < n ? (size_t)w : n - 1;
}

/* ---- Org domains: the public suffix list -------------------------- */

/* Loads the list's rules ("//" comments, one rule per line, the rule up
 * to the first white space). */
static int
psl_load(struct strset *set, const char *path)
{
	FILE	*f;
	char	 line[512];
	size_t	 n;

	if ((f = fopen(path, "r")) == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL) {
		if (line[0] == '/' || isspace((unsigned char)line[0]))
			continue;
		n = strcspn(line, " \t\r\n");
		if (n > 0 && strset_add(set, line, n) == -1) {
			fclose(f);
			return -1;
		}
	}
	fclose(f);
	return 0;
}

/* Labels of the public suffix that ends name (a lowercased name whose
 * labels start at off[0..nl-1]), by the PSL algorithm: an exception rule
 * wins, then the longest rule (wildcards included), else one label. */
static size_t
psl_suffix_labels(const struct strset *psl, const char *name,
    const size_t *off, size_t nl)
{
	char	excl[LIMIT_DOMAIN + 2], wild[LIMIT_DOMAIN + 3];
	size_t	i;

	for (i = 0; i < nl; i++) {
		const char *sfx = name + off[i];

		snprintf(excl, sizeof(excl), "!%s", sfx);
		if (strset_has(psl, excl, strlen(excl)))
			return nl - i - 1;
		if (strset_has(psl, sfx, strlen(sfx)))
			return nl - i;
		if (i + 1 < nl) {
			snprintf(wild, sizeof(wild), "*.%s", name + off[i + 1]);
			if (strset_has(psl, wild, strlen(wild)))
				return nl - i;
		}
	}
	return 1;
}

int
greylist_org_domain(const struct greylist_state *st, const char *name,
    char *out, size_t n)
{
	char	lc[LIMIT_DOMAIN + 1];
	size_t	off[128], nl = 0, i, len, sfx;

	len = strlen(name);
	while (len > 0 && name[len - 1] == '.')
		len--;
	if (len == 0 || len > LIMIT_DOMAIN)
		return -1;
	for (i = 0; i < len; i++)
		lc[i] = (char)tolower((unsigned char)name[i]);
	lc[len] = '\0';
	for (i = 0; i < len && nl < 128; i++)
		if (i == 0 || lc[i - 1] == '.') {
			if (lc[i] == '.')
				return -1;	/* an empty label */
			off[nl++] = i;
		}
	sfx = st != NULL && st->have_psl ?
	    psl_suffix_labels(&st->psl, lc, off, nl) : 1;
	if (sfx >= nl)
		return -1;		/* a public suffix itself */
	if ((size_t)snprintf(out, n, "%s", lc + off[nl - sfx - 1]) >= n)
		return -1;
	return 0;
}

/* ---- Pool keys --------------------------------------------------- */

/* The verified reverse name minus its first label, never shorter than
 * its org domain (Haraka's host id). */
static int
rdns_pool(const struct greylist_state *st, const char *rdns, char *out,
    size_t n)
{
	char		 org[LIMIT_DOMAIN + 1];
	const char	*dot = strchr(rdns, '.');

	if (greylist_org_domain(st, rdns, org, sizeof(org)) == -1)
		return -1;
	if (dot != NULL && strlen(dot + 1) > strlen(org))
		return snprintf(out, n, "rdns:%s", dot + 1) >= (int)n ? -1 : 0;
	return snprintf(out, n, "rdns:%s", org) >= (int)n ? -1 : 0;
}

bool
greylist_has_evidence(const struct session *s, const char *name)
{
	size_t i;

	if (s->sev == NULL)
		return false;
	for (i = 0; i < s->sev->nev && i < LIMIT_EVIDENCE; i++)
		if (s->sev->ev[i].name != NULL &&
		    strcmp(s->sev->ev[i].name, name) == 0)
			return true;
	return false;
}

/* A name fcrdns found generic (dynamic pools): never a pool key. */
static bool
rdns_generic(const struct session *s)
{
	return greylist_has_evidence(s, "RDNS_GENERIC");
}

/* net:<a.b.c.0/24> or net:<v6 prefix/64>, and ip:<address>. */
static size_t
addr_pools(const struct session *s, char keys[][GREYLIST_POOL_MAX])
{
	char	buf[INET6_ADDRSTRLEN];
	size_t	k = 0;

	if (s->peer.ss_family == AF_INET) {
		struct in_addr a =
		    ((const struct sockaddr_in *)&s->peer)->sin_addr;

		inet_ntop(AF_INET, &a, buf, sizeof(buf));
		snprintf(keys[1], GREYLIST_POOL_MAX, "ip:%s", buf);
		a.s_addr &= htonl(0xffffff00);
		inet_ntop(AF_INET, &a, buf, sizeof(buf));
		snprintf(keys[0], GREYLIST_POOL_MAX, "net:%s/24", buf);
		k = 2;
	} else if (s->peer.ss_family == AF_INET6) {
		struct in6_addr a =
		    ((const struct sockaddr_in6 *)&s->peer)->sin6_addr;

		inet_ntop(AF_INET6, &a, buf, sizeof(buf));
		snprintf(keys[1], GREYLIST_POOL_MAX, "ip:%s", buf);
		memset(a.s6_addr + 8, 0, 8);
		inet_ntop(AF_INET6, &a, buf, sizeof(buf));
		snprintf(keys[0], GREYLIST_POOL_MAX, "net:%s/64", buf);
		k = 2;
	} else if (s->ip[0] != '\0') {
		snprintf(keys[0], GREYLIST_POOL_MAX, "ip:%s", s->ip);
		k = 1;
	}
	return k;
}

size_t
greylist_pool_keys(const struct greylist_state *st, struct session *s,
    char keys[][GREYLIST_POOL_MAX], size_t max)
{
	const struct spf_result	*spf = s->txn != NULL ?
				    spf_session_result(s) : NULL;
	char			 org[LIMIT_DOMAIN + 1];
	size_t			 k = 0;
	int			 wide;

	if (max < GREYLIST_POOLS)
		return 0;
	/* SPF pass keys on the domain only when the deciding mechanism
	 * is narrow: a /8 or +all would make the domain anybody's. */
	wide = s->peer.ss_family == AF_INET6 ? 32 : 16;
	if (spf != NULL && spf->code == SPF_PASS && (spf->match_cidr < 0 ||
	    spf->match_cidr >= wide) && greylist_org_domain(st, spf->domain,
	    org, sizeof(org)) == 0)
		snprintf(keys[k++], GREYLIST_POOL_MAX, "spf:%s", org);
	if (s->rdns_verified && s->rdns[0] != '\0' && !rdns_generic(s) &&
	    rdns_pool(st, s->rdns, keys[k], GREYLIST_POOL_MAX) == 0)
		k++;
	return k + addr_pools(s, keys + k);
}

/* ---- Selective mode ---------------------------------------------- */

bool
greylist_suspect(struct session *s, bool no_history, const char **why)
{
	const struct spf_result	*spf = spf_session_result(s);
	size_t			 i;

	*why = NULL;
	/* The karma filter's history of the client (recorded at
	 * connect): good history clears it, bad history is suspicion. */
	if (greylist_has_evidence(s, "KARMA_GOOD"))
		return false;
	if (greylist_has_evidence(s, "KARMA_BAD"))
		*why = "karma_bad";
	else if (!s->rdns_verified)
		*why = "no_verified_rdns";
	else if (rdns_generic(s))
		*why = "generic_rdns";
	else if (spf == NULL || spf->code != SPF_PASS)
		*why = "spf_not_pass";
	else if (no_history)
		*why = "no_history";
	for (i = 0; *why == NULL && s->txn != NULL && i < s->txn->nsym; i++)
		if (strcmp(s->txn->sym[i].name, "DNSBL") == 0 &&
		    s->txn->sym[i].score > 0)
			*why = "dnsbl";
	return *why != NULL;
}

/* ---- The filter -------------------------------------------------- */

static int
greylist_init(const void *vconf, void **state, char *err, size_t errlen)
{
	const struct greylist_conf	*conf = vconf;
	struct greylist_state		*st;

	if ((st = calloc(1, sizeof(*st))) == NULL)
		return -1;
	*state = st;
	strset_init(&st->psl);
	if (strcmp(conf->apply, "off") == 0)
		st->mode = GL_OFF;
	else if (strcmp(conf->apply, "selective") == 0)
		st->mode = GL_SELECTIVE;
	else if (strcmp(conf->apply, "always") == 0)
		st->mode = GL_ALWAYS;
	else {
		snprintf(err, errlen, "apply: off, selective or always, not "
		    "\"%s\"", conf->apply);
		return -1;
	}
	if (conf->psl_file[0] != '\0' && psl_load(&st->psl,
	    conf->psl_file) == 0)
		st->have_psl = true;
	else if (st->mode != GL_OFF)
		log_msg(LVL_WARN, 0, "event=greylist_psl file=\"%s\" "
		    "error=unreadable (org domains: the last two labels)",
		    conf->psl_file);
	return 0;
}

static void
greylist_fini(void *state)
{
	struct greylist_state *st = state;

	strset_free(&st->psl);
	free(st);
}

static void
greylist_data_free(void *data)
{
	struct gl_data *gd = data;

	if (gd->job != NULL)
		gd->job->gd = NULL;	/* its done() frees it */
	free(gd);
}

static struct gl_data *
gl_data_get(struct session *s)
{
	struct gl_data	*gd = filter_data(s, &filter_greylist);

	if (gd != NULL)
		return gd;
	if ((gd = filter_data_new(s, &filter_greylist, sizeof(*gd))) != NULL)
		gd->delayed = -1;
	return gd;
}

/* The triplet's tail: "|<sender>|<rcpt>", long parts hashed so a key
 * fits the store's 511 bytes. */
static void
triplet_tail(struct session *s, char *out, size_t n)
{
	const struct path	*p = &s->txn->from;
	char			 snd[GREYLIST_ADDR_MAX];
	char			 rcpt[sizeof(s->txn->cur->addr)];
	size_t			 i;

	greylist_norm_sender(p->local, p->domain, p->null, snd, sizeof(snd));
	snprintf(rcpt, sizeof(rcpt), "%s", s->txn->cur->addr);
	for (i = 0; rcpt[i] != '\0'; i++)
		rcpt[i] = (char)tolower((unsigned char)rcpt[i]);
	if (strlen(snd) + strlen(rcpt) > 190) {
		uint64_t h = 1469598103934665603ULL;	/* FNV-1a */

		for (i = 0; snd[i] != '\0'; i++)
			h = (h ^ (unsigned char)snd[i]) * 1099511628211ULL;
		snprintf(snd, sizeof(snd), "#%016llx", (unsigned long long)h);
		if (strlen(rcpt) > 190)
			rcpt[190] = '\0';
	}
	/* At most 1 + 190 + 1 + 190 bytes after the hashing above. */
	if ((size_t)snprintf(out, n, "|%s|%s", snd, rcpt) >= n)
		out[0] = '\0';
}

/* key = prefix pool tail into a store key; cut keys are refused by
 * store_batch_add (too long), which is then a missing probe, no more. */
static void
gl_key(char *out, size_t n, const char *prefix, const char *pool,
    const char *tail)
{
	if ((size_t)snprintf(out, n, "%s%s%s", prefix, pool, tail) >= n)
		out[0] = '\0';
}

/* gl:n:<first>|<sender>|<rcpt>: the attempt's never-retried marker. */
static void
never_key(char *out, size_t n, int64_t first, const char *tail)
{
	if ((size_t)snprintf(out, n, "%s%lld%s", GREYLIST_NEVER,
	    (long long)first, tail) >= n)
		out[0] = '\0';
}

/* Lowercased, +ext cut: a local address as correspondents key it. */
static void
local_norm(const char *addr, char *out, size_t n)
{
	size_t	i, o = 0;
	bool	ext = false;

	for (i = 0; addr[i] != '\0' && o + 1 < n; i++) {
		if (addr[i] == '@')
			ext = false;
		else if (addr[i] == '+' && i > 0 && addr[i - 1] != '@' &&
		    strchr(addr + i, '@') != NULL)
			ext = true;
		if (!ext)
			out[o++] = (char)tolower((unsigned char)addr[i]);
	}
	out[o] = '\0';
}

int
greylist_corresp_key(const char *rlocal, const char *rdomain,
    const char *local_addr, char *out, size_t n)
{
	char	r[GREYLIST_ADDR_MAX], l[GREYLIST_ADDR_MAX];

	if (rlocal[0] == '\0' || rdomain[0] == '\0' ||
	    local_addr[0] == '\0')
		return -1;
	greylist_norm_sender(rlocal, rdomain, false, r, sizeof(r));
	local_norm(local_addr, l, sizeof(l));
	if ((size_t)snprintf(out, n, "%s%s|%s", GREYLIST_CORRESP, r, l) >= n ||
	    strlen(out) > STORE_KEY_MAX)
		return -1;
	return 0;
}

/* A full batch or a key too long gives no op: then nothing is put. */
static void
rec_put(struct store_op *op, const struct greylist_rec *r, time_t exp)
{
	if (op == NULL)
		return;
	memcpy(op->val, r, sizeof(*r));
	op->len = sizeof(*r);
	op->expires = exp;
}

static bool
rec_get(const struct store_op *op, struct greylist_rec *r)
{
	if (op->result != (long)sizeof(*r))
		return false;
	memcpy(r, op->val, sizeof(*r));
	return true;
}

/* A write batch's completion: resumes the hook that waits for it. */
static void
job_done(struct store_batch *b)
{
	struct gl_job *j = b->arg;

	if (b->rc == -1) {
		log_msg(LVL_WARN, j->sid, "event=greylist_store action=%s "
		    "error=\"%s\"", j->action, b->err);
		gl_never_pending += j->never;	/* for the next batch */
	}
	if (j->gd == NULL) {	/* the session is gone */
		free(j);
		return;
	}
	j->gd->job = NULL;
	if (j->tok.sid != 0)
		filter_resume(j->tok, b->rc == -1 ?
		    VERDICT(V_CONTINUE) : j->v);
	free(j);
}

static struct gl_job *
job_new(struct filter_call *c, struct gl_data *gd, const char *action)
{
	struct gl_job *j = calloc(1, sizeof(*j));

	if (j == NULL)
		return NULL;
	j->b.done = job_done;
	j->b.arg = j;
	j->sid = c->s->id;
	j->gd = gd;
	j->action = action;
	return j;
}

/* ---- Metrics: host-wide counters in the store -------------------- */

/* An increment in the batch being written (no commit of its own); a
 * full batch drops it, no more. */
static void
metric_add(struct gl_job *j, const char *key, long long delta)
{
	struct store_op *op;

	if (delta == 0 || (op = store_batch_add(&j->b, STORE_INCR,
	    key)) == NULL)
		return;
	op->num = delta;
	op->expires = 0;
}

/* The never-retried count the sweep found, carried by j. */
static void
metric_never(struct gl_job *j)
{
	if (gl_never_pending == 0 || j->b.n >= STORE_BATCH_MAX)
		return;
	metric_add(j, GREYLIST_M_NEVER, (long long)gl_never_pending);
	j->never = gl_never_pending;
	gl_never_pending = 0;
}

/* A batch of its own for the count: no greylist batch came by during a
 * whole sweep step. */
static void
never_flush(void)
{
	struct store	*st;
	struct gl_job	*j;
	char		 err[160];

	if (gl_base == NULL || (st = store_shared(err, sizeof(err))) ==
	    NULL || (j = calloc(1, sizeof(*j))) == NULL)
		return;
	j->b.done = job_done;
	j->b.arg = j;
	j->action = "metrics";
	metric_never(j);
	if (store_batch_submit(st, gl_base, &j->b) == -1) {
		gl_never_pending += j->never;
		free(j);
	}
}

/* The host-wide counters in the log (a direct read), when the sweep
 * has been through the table and the last such line is 5 minutes old. */
static void
stats_log(void)
{
	static time_t		 last;
	static const char *const name[3] = { GREYLIST_M_DEFERRED,
				    GREYLIST_M_PASSED, GREYLIST_M_NEVER };
	struct store_batch	*b;
	struct store		*st;
	long long		 v[3 + GREYLIST_BUCKETS];
	char			 key[64], err[160];
	time_t			 now = store_now();
	size_t			 i;

	if ((last != 0 && now - last < 300) ||
	    (st = store_shared(err, sizeof(err))) == NULL ||
	    (b = calloc(1, sizeof(*b))) == NULL)
		return;
	last = now;
	for (i = 0; i < 3 + GREYLIST_BUCKETS; i++) {
		if (i < 3)
			snprintf(key, sizeof(key), "%s", name[i]);
		else
			snprintf(key, sizeof(key), "%s%s", GREYLIST_M_DELAY,
			    greylist_bucket_name(i - 3));
		(void)store_batch_add(b, STORE_GET, key);
	}
	if (store_batch_run(st, b) == 0) {
		for (i = 0; i < 3 + GREYLIST_BUCKETS; i++) {
			v[i] = 0;
			if (b->op[i].result == (long)sizeof(v[i]))
				memcpy(&v[i], b->op[i].val, sizeof(v[i]));
		}
		log_msg(LVL_INFO, 0, "event=greylist_stats deferred=%lld "
		    "passed=%lld never_retried=%lld delay_lt5m=%lld "
		    "delay_lt15m=%lld delay_lt1h=%lld delay_lt4h=%lld "
		    "delay_lt24h=%lld delay_ge24h=%lld", v[0], v[1], v[2],
		    v[3], v[4], v[5], v[6], v[7], v[8]);
	}
	free(b);
}

/* A sweep step's outcome: expired gl:n: markers were attempts never
 * retried. */
static void
sweep_notify(const struct store_sweep *sw)
{
	bool flush = gl_never_stale && gl_never_pending > 0;

	gl_never += sw->counted;
	gl_never_pending += sw->counted;
	if (flush)
		never_flush();
	gl_never_stale = gl_never_pending > 0;
	if (sw->removed > 0 || sw->wrapped)
		log_msg(LVL_INFO, 0, "event=greylist_sweep scanned=%zu "
		    "removed=%zu never_retried=%zu total_never_retried=%llu "
		    "wrapped=%d", sw->scanned, sw->removed, sw->counted,
		    gl_never, sw->wrapped);
	if (sw->wrapped)
		stats_log();
}

/* Submits j; PENDING until it is written, or no opinion when it cannot
 * be queued. A job with wait false is not waited for. */
static struct verdict
job_submit(struct filter_call *c, struct store *st, struct gl_job *j,
    struct verdict v, bool wait)
{
	struct gl_data *gd = j->gd;

	j->v = v;
	if (wait)
		j->tok = c->step;
	else
		j->gd = NULL;
	if (store_batch_submit(st, c->s->base, &j->b) == -1) {
		log_msg(LVL_WARN, c->s->id, "event=greylist_store "
		    "action=%s error=\"writer not running\"", j->action);
		gl_never_pending += j->never;	/* for the next batch */
		free(j);
		return VERDICT(V_CONTINUE);
	}
	if (!wait)
		return v;
	gd->job = j;
	return VERDICT(V_PENDING);
}

/* What the direct read found: passes and triplets per pool key, and
 * the correspondent. */
struct gl_found {
	int			 pass;		/* index of a pass, -1 */
	int			 trip;		/* index of the oldest, -1 */
	struct greylist_rec	 prec, trec, crec;
	const struct store_op	*top;		/* the triplet's op */
	const struct store_op	*cop;		/* the correspondent's, NULL */
};

/* Probes, for every pool key, its pass and the triplet under either
 * prefix (the first attempt may have had another strongest key), and
 * the correspondent's key ckey ("": none). */
static int
gl_read(struct store *st, char keys[][GREYLIST_POOL_MAX], size_t nk,
    const char *tail, const char *ckey, struct store_batch *b,
    struct gl_found *f)
{
	static const char *const pfx[3] = { GREYLIST_PASS,
				    GREYLIST_TRIPLET, GREYLIST_ALIAS };
	struct store_op		*op[GREYLIST_POOLS][3], *cop = NULL;
	struct greylist_rec	 r;
	char			 key[STORE_KEY_MAX + 1];
	size_t			 i, k;

	/* A key too long for the store gets no op (NULL): a miss. */
	memset(b, 0, sizeof(*b));
	for (i = 0; i < nk && i < GREYLIST_POOLS; i++)
		for (k = 0; k < 3; k++) {
			gl_key(key, sizeof(key), pfx[k], keys[i], k == 0 ?
			    "" : tail);
			op[i][k] = store_batch_add(b, STORE_GET, key);
		}
	if (ckey[0] != '\0')
		cop = store_batch_add(b, STORE_GET, ckey);
	if (store_batch_run(st, b) == -1)
		return -1;
	f->pass = f->trip = -1;
	f->top = NULL;
	f->cop = cop != NULL && rec_get(cop, &f->crec) ? cop : NULL;
	for (i = 0; i < nk && i < GREYLIST_POOLS; i++) {
		if (f->pass == -1 && op[i][0] != NULL &&
		    rec_get(op[i][0], &r)) {
			f->pass = (int)i;
			f->prec = r;
		}
		for (k = 1; k <= 2; k++)
			if (op[i][k] != NULL && rec_get(op[i][k], &r) &&
			    (f->trip == -1 || r.first < f->trec.first)) {
				f->trip = (int)i;
				f->trec = r;
				f->top = op[i][k];
			}
	}
	return 0;
}

/* Skipped without a look: clients and recipients never greylisted. */
static const char *
gl_exempt(struct filter_call *c)
{
	struct session *s = c->s;

	if (s->authenticated)
		return "authenticated";
	if (s->trusted)
		return "trusted";
	if (s->client_allowed)
		return "allow_listed";
	if (filter_skipped(s, &filter_greylist))
		return "skipped";
	if (s->txn == NULL || s->txn->cur == NULL || s->txn->cur->exempt)
		return "exempt_rcpt";
	return NULL;
}

static struct verdict
gl_defer(struct filter_call *c, struct gl_data *gd, long long left)
{
	const struct greylist_conf	*conf = c->conf;
	char				 n[24];

	snprintf(n, sizeof(n), "%lld", left < 1 ? 1 : left);
	filter_reply_format(gd->reply, sizeof(gd->reply), conf->reply, n,
	    "");
	return (struct verdict){ V_DEFER, 451, "4.7.1", gd->reply,
	    filter_greylist.name };
}

/* A known correspondent: not greylisted; its record refreshed (at most
 * hourly) without waiting. */
static struct verdict
gl_correspondent(struct filter_call *c, struct store *st,
    const struct gl_found *f, time_t now)
{
	const struct greylist_conf	*conf = c->conf;
	struct greylist_rec		 r = f->crec;
	struct gl_job			*j;

	log_msg(LVL_INFO, c->s->id, "event=greylist action=correspondent "
	    "key=%s", f->cop->key);
	filter_evidence(c->s, &filter_greylist, "GREYLIST_CORRESPONDENT", 0,
	    0, "%.100s", f->cop->key + strlen(GREYLIST_CORRESP));
	if (now - r.last < 3600 || (j = job_new(c, NULL, "refresh")) ==
	    NULL)
		return VERDICT(V_CONTINUE);
	r.last = now;
	r.count++;
	rec_put(store_batch_add(&j->b, STORE_PUT, f->cop->key), &r,
	    now + conf->corr_ttl);
	return job_submit(c, st, j, VERDICT(V_CONTINUE), false);
}

/* A known pass: refreshed (at most hourly) without waiting. */
static struct verdict
gl_known(struct filter_call *c, struct store *st, const char *key,
    struct greylist_rec r, time_t now)
{
	const struct greylist_conf	*conf = c->conf;
	struct gl_job			*j;
	char				 k[STORE_KEY_MAX + 1];

	log_msg(LVL_INFO, c->s->id, "event=greylist action=known key=%s "
	    "rcpt=%s", key, c->s->txn->cur->addr);
	if (now - r.last < 3600 || (j = job_new(c, NULL, "refresh")) == NULL)
		return VERDICT(V_CONTINUE);
	r.last = now;
	r.count++;
	gl_key(k, sizeof(k), GREYLIST_PASS, key, "");
	rec_put(store_batch_add(&j->b, STORE_PUT, k), &r,
	    now + conf->pass_ttl);
	return job_submit(c, st, j, VERDICT(V_CONTINUE), false);
}

/* The retry is late enough: every pool key of this client passes, the
 * triplets go. */
static struct verdict
gl_pass(struct filter_call *c, struct store *st, struct gl_data *gd,
    char keys[][GREYLIST_POOL_MAX], size_t nk, const char *tail,
    const struct gl_found *f, time_t now)
{
	const struct greylist_conf	*conf = c->conf;
	struct greylist_rec		 r = { now, now, 1, 0 };
	struct gl_job			*j;
	char				 k[STORE_KEY_MAX + 1];
	long long			 delay = now - f->trec.first;
	size_t				 i;

	gl_passed++;
	log_msg(LVL_INFO, c->s->id, "event=greylist action=pass key=%s "
	    "delay=%lld attempts=%u rcpt=%s total_passed=%llu",
	    keys[f->trip], delay, f->trec.count, c->s->txn->cur->addr,
	    gl_passed);
	filter_evidence(c->s, &filter_greylist, "GREYLIST_PASS", 0, 0,
	    "%s delayed %lld s", keys[f->trip], delay);
	if (gd->txn != c->s->txn->seq || gd->delayed < delay) {
		gd->txn = c->s->txn->seq;
		gd->delayed = delay;
	}
	if ((j = job_new(c, gd, "pass")) == NULL)
		return VERDICT(V_CONTINUE);
	for (i = 0; i < nk; i++) {
		gl_key(k, sizeof(k), GREYLIST_PASS, keys[i], "");
		rec_put(store_batch_add(&j->b, STORE_PUT, k), &r,
		    now + conf->pass_ttl);
		gl_key(k, sizeof(k), GREYLIST_TRIPLET, keys[i], tail);
		store_batch_add(&j->b, STORE_DEL, k);
		gl_key(k, sizeof(k), GREYLIST_ALIAS, keys[i], tail);
		store_batch_add(&j->b, STORE_DEL, k);
	}
	/* The matched record was read under one of these keys; the first
	 * attempt's records under keys this client lacks expire, and its
	 * marker goes now: it was retried. */
	never_key(k, sizeof(k), f->trec.first, tail);
	store_batch_add(&j->b, STORE_DEL, k);
	metric_add(j, GREYLIST_M_PASSED, 1);
	snprintf(k, sizeof(k), "%s%s", GREYLIST_M_DELAY,
	    greylist_bucket_name(greylist_bucket(delay)));
	metric_add(j, k, 1);
	metric_never(j);
	return job_submit(c, st, j, VERDICT(V_CONTINUE), true);
}

/* First attempt: the triplet under every pool key (an existing one, of
 * another worker's attempt meanwhile, is kept). */
static struct verdict
gl_first(struct filter_call *c, struct store *st, struct gl_data *gd,
    char keys[][GREYLIST_POOL_MAX], size_t nk, const char *tail,
    time_t now)
{
	const struct greylist_conf	*conf = c->conf;
	struct greylist_rec		 r = { now, now, 1, 0 };
	struct gl_job			*j;
	char				 k[STORE_KEY_MAX + 1];
	size_t				 i;

	gl_deferred++;
	log_msg(LVL_INFO, c->s->id, "event=greylist action=defer key=%s "
	    "keys=%zu retry_in=%lld rcpt=%s total_deferred=%llu", keys[0],
	    nk, conf->delay, c->s->txn->cur->addr, gl_deferred);
	if ((j = job_new(c, gd, "defer")) == NULL)
		return gl_defer(c, gd, conf->delay);
	for (i = 0; i < nk; i++) {
		gl_key(k, sizeof(k), i == 0 ? GREYLIST_TRIPLET :
		    GREYLIST_ALIAS, keys[i], tail);
		rec_put(store_batch_add(&j->b, STORE_PUT_NEW, k), &r,
		    now + conf->retry_window);
	}
	never_key(k, sizeof(k), now, tail);
	rec_put(store_batch_add(&j->b, STORE_PUT_NEW, k), &r,
	    now + conf->retry_window);
	metric_add(j, GREYLIST_M_DEFERRED, 1);
	metric_never(j);
	return job_submit(c, st, j, gl_defer(c, gd, conf->delay), true);
}

/* A retry before the delay is over: counted (compare-and-set on the
 * record read: a lost race only loses a count), first_seen kept. */
static struct verdict
gl_early(struct filter_call *c, struct store *st, struct gl_data *gd,
    const struct gl_found *f, time_t now)
{
	const struct greylist_conf	*conf = c->conf;
	struct greylist_rec		 r = f->trec;
	struct store_op			*op;
	struct gl_job			*j;
	long long			 left = r.first + conf->delay - now;

	gl_deferred++;
	log_msg(LVL_INFO, c->s->id, "event=greylist action=early key=%s "
	    "attempts=%u retry_in=%lld rcpt=%s total_deferred=%llu",
	    f->top->key, r.count + 1, left, c->s->txn->cur->addr,
	    gl_deferred);
	if ((j = job_new(c, gd, "early")) == NULL)
		return gl_defer(c, gd, left);
	op = store_batch_add(&j->b, STORE_CAS, f->top->key);
	memcpy(op->expect, &f->trec, sizeof(f->trec));
	op->elen = sizeof(f->trec);
	r.last = now;
	r.count++;
	rec_put(op, &r, r.first + conf->retry_window);
	metric_add(j, GREYLIST_M_DEFERRED, 1);
	metric_never(j);
	return job_submit(c, st, j, gl_defer(c, gd, left), true);
}

static struct verdict
greylist_rcpt(struct filter_call *c)
{
	const struct greylist_conf	*conf = c->conf;
	const struct greylist_state	*gs = c->state;
	char				 keys[GREYLIST_POOLS][GREYLIST_POOL_MAX];
	char				 tail[400], err[256];
	char				 ckey[STORE_KEY_MAX + 1];
	struct store_batch		*b;
	struct gl_found			 f;
	struct gl_data			*gd;
	struct store			*st;
	const char			*why;
	struct verdict			 v;
	time_t				 now = store_now();
	size_t				 nk;

	if (gs->mode == GL_OFF || (why = gl_exempt(c)) != NULL)
		return VERDICT(V_CONTINUE);
	if ((st = store_shared(err, sizeof(err))) == NULL) {
		log_msg(LVL_WARN, c->s->id, "event=greylist_store error=\"%s\"",
		    err);
		return VERDICT(V_CONTINUE);
	}
	if (c->s->base != NULL && gl_base == NULL) {
		gl_base = c->s->base;
		(void)store_sweep_start(st, c->s->base,
		    conf->sweep_interval * 1000, (size_t)conf->sweep_keys,
		    GREYLIST_NEVER, sweep_notify);
	}
	if ((gd = gl_data_get(c->s)) == NULL ||
	    (b = malloc(sizeof(*b))) == NULL)
		return VERDICT(V_CONTINUE);
	nk = greylist_pool_keys(gs, c->s, keys, GREYLIST_POOLS);
	triplet_tail(c->s, tail, sizeof(tail));
	ckey[0] = '\0';
	if (conf->corr_ttl > 0 && c->s->txn->cur->local &&
	    !c->s->txn->from.null && greylist_corresp_key(
	    c->s->txn->from.local, c->s->txn->from.domain,
	    c->s->txn->cur->addr, ckey, sizeof(ckey)) == -1)
		ckey[0] = '\0';
	if (nk == 0 || gl_read(st, keys, nk, tail, ckey, b, &f) == -1) {
		log_msg(LVL_WARN, c->s->id, "event=greylist_store "
		    "error=\"%s\"", nk == 0 ? "no pool key" : b->err);
		free(b);
		return VERDICT(V_CONTINUE);
	}
	if (f.cop != NULL)
		v = gl_correspondent(c, st, &f, now);
	else if (f.pass != -1)
		v = gl_known(c, st, keys[f.pass], f.prec, now);
	else if (gs->mode == GL_SELECTIVE && f.trip == -1 &&
	    !greylist_suspect(c->s, conf->no_history, &why))
		v = VERDICT(V_CONTINUE);
	else if (f.trip == -1)
		v = gl_first(c, st, gd, keys, nk, tail, now);
	else if (now - f.trec.first >= conf->delay)
		v = gl_pass(c, st, gd, keys, nk, tail, &f, now);
	else
		v = gl_early(c, st, gd, &f, now);
	free(b);
	return v;
}

/*
 * Known correspondents, recorded: a message from a relay or
 * authenticated client, from one of our addresses L, records R -> L for
 * each remote recipient R it was accepted for. Read first (directly): a
 * record used within the hour is not written again; the writes are not
 * waited for.
 */
static void
gl_record(struct filter_call *c)
{
	const struct greylist_conf	*conf = c->conf;
	struct session			*s = c->s;
	struct txn			*t = s->txn;
	char				 keys[STORE_BATCH_MAX][STORE_KEY_MAX + 1];
	char				 laddr[GREYLIST_ADDR_MAX], err[160];
	char				 tmp[LIMIT_LOCAL_PART + 1];
	struct greylist_rec		 r, old;
	struct store_batch		*rb;
	struct store			*st;
	struct gl_job			*j;
	struct rcpt			*rc;
	time_t				 now = store_now();
	size_t				 i = 0, k, n, put = 0;

	if (conf->corr_ttl == 0 || (!s->authenticated && !s->trusted) ||
	    t == NULL || t->from.null || t->from.local[0] == '\0' ||
	    !pipeline_is_local(c->policy, t->from.domain))
		return;
	if ((st = store_shared(err, sizeof(err))) == NULL ||
	    (rb = malloc(sizeof(*rb))) == NULL)
		return;
	/* batv may have signed the sender (prvs=TAG=alice): the
	 * correspondent writes back to alice@, and the tag changes daily. */
	snprintf(laddr, sizeof(laddr), "%s@%s", batv_unwrap(t->from.local,
	    tmp, sizeof(tmp)), t->from.domain);
	while (i < t->nrcpt) {
		memset(rb, 0, sizeof(*rb));
		for (n = 0; i < t->nrcpt && n < STORE_BATCH_MAX; i++) {
			rc = &t->rcpts[i];
			if (!rc->accepted || rc->local || rc->consumed ||
			    greylist_corresp_key(rc->path.local,
			    rc->path.domain, laddr, keys[n],
			    sizeof(keys[n])) == -1 ||
			    store_batch_add(rb, STORE_GET, keys[n]) == NULL)
				continue;
			n++;
		}
		if (n == 0 || store_batch_run(st, rb) == -1 ||
		    (j = job_new(c, NULL, "correspondent")) == NULL)
			continue;
		for (k = 0; k < n; k++) {
			r = (struct greylist_rec){ now, now, 1, 0 };
			if (rec_get(&rb->op[k], &old)) {
				if (now - old.last < 3600)
					continue;
				r.first = old.first;
				r.count = old.count + 1;
			}
			rec_put(store_batch_add(&j->b, STORE_PUT, keys[k]), &r,
			    now + conf->corr_ttl);
			put++;
		}
		if (j->b.n == 0)
			free(j);
		else
			(void)job_submit(c, st, j, VERDICT(V_CONTINUE), false);
	}
	free(rb);
	if (put > 0)
		log_msg(LVL_INFO, s->id, "event=greylist action=record "
		    "correspondents=%zu from=%s", put, laddr);
}

static struct verdict
greylist_data_post(struct filter_call *c)
{
	const struct greylist_conf	*conf = c->conf;
	struct gl_data			*gd = filter_data(c->s, &filter_greylist);
	char				 val[48];

	gl_record(c);
	if (gd == NULL || !conf->header || gd->delayed < 0 ||
	    c->s->txn == NULL || gd->txn != c->s->txn->seq)
		return VERDICT(V_CONTINUE);
	snprintf(val, sizeof(val), "delayed %lld seconds", gd->delayed);
	(void)session_add_header(c->s, "X-Greylist", val);
	return VERDICT(V_CONTINUE);
}

const struct filter filter_greylist = {
	.name = "greylist",
	.summary = "greylisting at RCPT keyed by sender pools (SPF, rDNS, "
	    "/24)",
	.opts = greylist_opts,
	.conf_size = sizeof(struct greylist_conf),
	.init = greylist_init,
	.fini = greylist_fini,
	.hook = {
		[STAGE_RCPT] = greylist_rcpt,
		[STAGE_DATA_POST] = greylist_data_post,
	},
	.data_free = greylist_data_free,
	.fail = FAIL_CONTINUE,
};
