/*
 * access.c: tcpserver's access rules for SMTP clients (qmail's tcp.smtp
 * and the tcp.smtp.cdb tcprules(1) builds from it), as a filter that sits
 * right after relay in [pipeline]. The parser and the lookup are pure, in
 * access_rules.c; this file loads the rules, reloads them when the file
 * changes, and applies what the client's rule says:
 *
 *   deny                 refused: at connect (554, closed) or, with
 *                        deny_at = rcpt, every recipient (554 5.7.1);
 *   RELAYCLIENT          the client is trusted (it may relay; relay
 *                        control itself stays the core's);
 *   RBLSMTPD=""          no rblsmtpd check: dnsbl is skipped;
 *   RBLSMTPD="-text"     every recipient refused with text (554);
 *   RBLSMTPD="text"      every recipient deferred with text (451);
 *   MOAT_SKIP="a b"      the named filters are skipped for the session;
 *   MOAT_SCORE=n         the symbol ACCESS scores n in each transaction;
 *   MOAT_POLICY=name     the filters use the [domain name] section's knobs
 *                        for this client (filter_client_policy).
 *
 * Every decision names its rule, "file:line" (a cdb: "file:[key]"), in
 * the log line (event=access), the evidence and a refusal's text.
 *
 * Name rules (=host, =.suffix, =) need the client's verified rDNS name,
 * which fcrdns finds after connect. A rule found by address alone that a
 * name rule could still beat (tcpserver looks "=host" up before the
 * prefixes) is not applied at connect: the decision waits for the name,
 * taken at the first of HELO, MAIL and RCPT that has it (or knows there
 * will be none); at RCPT at the latest, with whatever is known then
 * (fcrdns before access in [pipeline] makes RCPT wait for its lookups).
 * RELAYCLIENT from a name rule counts only once decided; relay control
 * runs before the RCPT filters, so such a client relays from its first
 * recipient only when the name was known by MAIL.
 *
 * Reload: on SIGHUP with the config (init runs again), and when the file
 * changes: a session's connect checks the file's identity (device, inode,
 * size, mtime) at most every check_interval seconds and reloads it in
 * the worker; a broken file keeps the rules in use and logs file:line,
 * once per version of the file. Sessions copy what they keep of a rule,
 * so a reload never pulls a rule from under one.
 *
 * The rules are the default policy's ([domain] sections change codes and
 * texts, which apply at RCPT). Observe mode: refusals are would_reject
 * entries, and trust and skips are logged, not given.
 */
#include <arpa/inet.h>
#include <cdb.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../core/log.h"
#include "access.h"
#include "filter.h"
#include "policy.h"

struct access_conf {
	char		*rules;		/* tcp.smtp or tcp.smtp.cdb */
	char		*deny_at;
	long long	 deny_code;
	char		*deny_text;
	long long	 rbl_perm_code;
	long long	 rbl_temp_code;
	long long	 check_interval;
};

/* Which version of the file: changed when any of these did. */
struct file_id {
	dev_t		dev;
	ino_t		ino;
	off_t		size;
	struct timespec	mtime;
};

struct access_state {
	struct access_rules	 rules;
	char			*path;
	bool			 cdb;
	bool			 deny_connect;
	long long		 interval;
	time_t			 checked;
	struct file_id		 loaded, failed;
};

static const struct opt access_opts[] = {
	{ "rules", OPT_PATH, "", 0, 0, offsetof(struct access_conf, rules),
	    "tcprules file (tcp.smtp text, or the .cdb tcprules builds; "
	    "by its .cdb suffix), \"\" for none" },
	{ "deny_at", OPT_STR, "connect", 0, 0,
	    offsetof(struct access_conf, deny_at), "where a deny rule "
	    "refuses: connect (554 and close) or rcpt (each recipient)" },
	{ "deny_code", OPT_INT, "554", 500, 599,
	    offsetof(struct access_conf, deny_code), "reply code of a deny" },
	{ "deny_text", OPT_STR, "Access denied (%s)", 0, 0,
	    offsetof(struct access_conf, deny_text), "text of a deny: %s is "
	    "the rule (file:line)" },
	{ "rbl_perm_code", OPT_INT, "554", 500, 599,
	    offsetof(struct access_conf, rbl_perm_code), "reply code of "
	    "RBLSMTPD=\"-text\"" },
	{ "rbl_temp_code", OPT_INT, "451", 400, 499,
	    offsetof(struct access_conf, rbl_temp_code), "reply code of "
	    "RBLSMTPD=\"text\"" },
	{ "check_interval", OPT_INT, "5", -1, 86400,
	    offsetof(struct access_conf, check_interval), "seconds between "
	    "checks of the file for changes (0: at every connection, -1: "
	    "only on SIGHUP)" },
	OPT_END
};

extern const struct filter filter_access;
extern const struct filter filter_dnsbl;
extern const struct filter filter_fcrdns;

/* ---- loading ------------------------------------------------------------ */

static void
file_id_of(const struct stat *sb, struct file_id *id)
{
	memset(id, 0, sizeof(*id));
	id->dev = sb->st_dev;
	id->ino = sb->st_ino;
	id->size = sb->st_size;
	id->mtime = sb->st_mtim;
}

static bool
file_id_eq(const struct file_id *a, const struct file_id *b)
{
	return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
	    a->mtime.tv_sec == b->mtime.tv_sec &&
	    a->mtime.tv_nsec == b->mtime.tv_nsec;
}

/* The name a rule is known by: "path:line", or "path:[key]" (cdb). */
static void
rule_name(const char *path, const struct access_rule *r, char *out,
    size_t n)
{
	if (r->line > 0)
		snprintf(out, n, "%s:%u", path, r->line);
	else
		snprintf(out, n, "%s:[%s]", path, r->key);
}

/* Every record of a tcprules cdb, in the order tcprules wrote them. */
static int
load_cdb(struct access_rules *r, int fd, const char *path, char *err,
    size_t errlen)
{
	struct cdb	 c;
	unsigned	 pos;
	int		 rc;
	char		 why[256];
	const char	*k, *d;

	if (cdb_init(&c, fd) != 0) {
		snprintf(err, errlen, "%s: not a cdb file", path);
		return -1;
	}
	cdb_seqinit(&pos, &c);
	while ((rc = cdb_seqnext(&pos, &c)) > 0) {
		k = cdb_getkey(&c);
		d = cdb_getdata(&c);
		if (k == NULL || d == NULL) {
			rc = -1;
			break;
		}
		if (access_add_cdb(r, k, cdb_keylen(&c), d, cdb_datalen(&c),
		    why, sizeof(why)) == -1) {
			snprintf(err, errlen, "%s:[%.*s]: %s", path,
			    (int)(cdb_keylen(&c) > 64 ? 64 : cdb_keylen(&c)),
			    k, why);
			cdb_free(&c);
			return -1;
		}
	}
	cdb_free(&c);
	if (rc < 0) {
		snprintf(err, errlen, "%s: corrupt cdb file", path);
		return -1;
	}
	return 0;
}

/* The whole text file, at most ACCESS_FILE_MAX bytes. */
static int
load_text(struct access_rules *r, int fd, const struct stat *sb,
    const char *path, char *err, size_t errlen)
{
	char	*buf, why[300];
	size_t	 got = 0;
	ssize_t	 n;
	int	 rc;

	if (sb->st_size > ACCESS_FILE_MAX) {
		snprintf(err, errlen, "%s: larger than %d bytes", path,
		    ACCESS_FILE_MAX);
		return -1;
	}
	if ((buf = malloc((size_t)sb->st_size + 1)) == NULL) {
		snprintf(err, errlen, "%s: out of memory", path);
		return -1;
	}
	while (got < (size_t)sb->st_size && (n = read(fd, buf + got,
	    (size_t)sb->st_size - got)) > 0)
		got += (size_t)n;
	rc = access_parse(r, buf, got, why, sizeof(why));
	if (rc == -1)
		snprintf(err, errlen, "%s:%s", path, why);
	free(buf);
	return rc;
}

/* MOAT_SKIP names filters that exist ("all" is every one). */
static int
check_skips(const struct access_rules *r, const char *path, char *err,
    size_t errlen)
{
	char		 w[64], name[ACCESS_NAME_MAX];
	const char	*p;
	size_t		 i, n;

	for (i = 0; i < r->n; i++) {
		for (p = r->v[i].skip; p != NULL && *p != '\0'; p += n) {
			p += strspn(p, " ,");
			if ((n = strcspn(p, " ,")) == 0)
				break;
			snprintf(w, sizeof(w), "%.*s", (int)n, p);
			if (n < sizeof(w) && (strcmp(w, "all") == 0 ||
			    filter_find(w) != NULL))
				continue;
			rule_name(path, &r->v[i], name, sizeof(name));
			snprintf(err, errlen, "%s: MOAT_SKIP: no filter '%s'",
			    name, w);
			return -1;
		}
	}
	return 0;
}

/* Loads path into r (empty); id is the version read. -1 with err. */
static int
access_load(struct access_rules *r, const char *path, bool cdb,
    struct file_id *id, char *err, size_t errlen)
{
	struct stat	sb;
	int		fd, rc;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1 ||
	    fstat(fd, &sb) == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		if (fd != -1)
			close(fd);
		return -1;
	}
	file_id_of(&sb, id);
	rc = cdb ? load_cdb(r, fd, path, err, errlen) :
	    load_text(r, fd, &sb, path, err, errlen);
	close(fd);
	if (rc == 0)
		rc = check_skips(r, path, err, errlen);
	return rc;
}

static int
access_init(const void *vconf, void **state, char *err, size_t errlen)
{
	const struct access_conf	*conf = vconf;
	struct access_state		*st;
	size_t				 n = strlen(conf->rules);

	if ((st = calloc(1, sizeof(*st))) == NULL)
		return -1;
	*state = st;
	access_rules_init(&st->rules);
	if (strcmp(conf->deny_at, "connect") != 0 &&
	    strcmp(conf->deny_at, "rcpt") != 0) {
		snprintf(err, errlen, "deny_at: '%s' is not connect or rcpt",
		    conf->deny_at);
		return -1;
	}
	st->deny_connect = strcmp(conf->deny_at, "connect") == 0;
	st->interval = conf->check_interval;
	st->checked = time(NULL);
	if (n == 0)
		return 0;
	if ((st->path = strdup(conf->rules)) == NULL)
		return -1;
	st->cdb = n > 4 && strcmp(conf->rules + n - 4, ".cdb") == 0;
	return access_load(&st->rules, st->path, st->cdb, &st->loaded, err,
	    errlen);
}

static void
access_fini(void *state)
{
	struct access_state *st = state;

	access_rules_free(&st->rules);
	free(st->path);
	free(st);
}

/*
 * A new version of the file is loaded in the worker; a broken one is
 * logged (file:line) and the rules in use stay, until the file changes
 * again. At most once every interval seconds.
 */
static void
access_maybe_reload(struct access_state *st, uint64_t sid)
{
	struct access_rules	 fresh;
	struct file_id		 id;
	struct stat		 sb;
	time_t			 now = time(NULL);
	char			 err[512];

	if (st->path == NULL || st->interval < 0 ||
	    now - st->checked < st->interval)
		return;
	st->checked = now;
	if (stat(st->path, &sb) == -1)
		return;		/* gone for now: keep what we have */
	file_id_of(&sb, &id);
	if (file_id_eq(&id, &st->loaded) || file_id_eq(&id, &st->failed))
		return;
	access_rules_init(&fresh);
	if (access_load(&fresh, st->path, st->cdb, &id, err,
	    sizeof(err)) == -1) {
		access_rules_free(&fresh);
		st->failed = id;
		log_msg(LVL_WARN, sid, "event=access_reload result=kept "
		    "error=\"%s\"", err);
		return;
	}
	access_rules_free(&st->rules);
	st->rules = fresh;
	st->loaded = id;
	log_msg(LVL_INFO, sid, "event=access_reload result=loaded file=%s "
	    "rules=%zu", st->path, st->rules.n);
}

/* ---- per session -------------------------------------------------------- */

struct access_sess {
	bool		 decided;
	bool		 deny;		/* refuse each recipient */
	enum access_rbl	 rbl;
	bool		 has_score;
	double		 score;
	unsigned	 symbol_txn;
	char		 rule[ACCESS_NAME_MAX];	/* basename:line */
	char		 text[ACCESS_VALUE_MAX + 1];
};

static void
access_data_free(void *data)
{
	free(data);
}

static struct access_state *
rules_state(void)
{
	return pipeline_active->def->state[filter_index(&filter_access)];
}

static bool
observing(const struct filter_call *c)
{
	return c->policy->observe_all ||
	    c->policy->observe[filter_index(&filter_access)];
}

/* The client's address as tcpserver writes it (an IPv4-mapped IPv6
 * address as IPv4) and its bytes. */
static void
client_addr(const struct session *s, char *ip, size_t n, int *family,
    uint8_t addr[16])
{
	const struct sockaddr_in6	*sin6;

	if (s->peer.ss_family == AF_INET6) {
		sin6 = (const struct sockaddr_in6 *)(const void *)&s->peer;
		if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
			*family = AF_INET;
			memcpy(addr, sin6->sin6_addr.s6_addr + 12, 4);
		} else {
			*family = AF_INET6;
			memcpy(addr, sin6->sin6_addr.s6_addr, 16);
		}
	} else {
		*family = AF_INET;
		memcpy(addr, &((const struct sockaddr_in *)(const void *)
		    &s->peer)->sin_addr, 4);
	}
	if (inet_ntop(*family, addr, ip, (socklen_t)n) == NULL)
		ip[0] = '\0';
}

/* The verified name: known (1), may still come (0), never (-1). fcrdns
 * sets it; it can come while fcrdns has lookups out, or, at connect,
 * when fcrdns runs later in [pipeline] and will start them. */
static int
name_state(struct session *s)
{
	const struct pipeline	*pl = pipeline_active;
	size_t			 i;

	if (s->rdns_verified)
		return 1;
	if (filter_skipped(s, &filter_fcrdns))
		return -1;
	if (filter_data(s, &filter_fcrdns) != NULL)
		return filter_work_pending(s, &filter_fcrdns) > 0 ? 0 : -1;
	if (s->pending != STAGE_CONNECT || s->trusted)
		return -1;
	for (i = s->pl_index + 1; i < pl->n; i++)
		if (pl->order[i] == &filter_fcrdns)
			return 0;
	return -1;
}

static struct access_sess *
sess_get(struct filter_call *c)
{
	struct access_sess *as = c->data;

	if (as != NULL)
		return as;
	if ((as = calloc(1, sizeof(*as))) == NULL)
		return NULL;
	if (filter_data_set(c->s, &filter_access, as) == -1) {
		free(as);
		return NULL;
	}
	c->data = as;
	return as;
}

/* "allow RELAYCLIENT RBLSMTPD=-... MOAT_SKIP=..." for log and evidence. */
static void
rule_summary(const struct access_rule *r, char *out, size_t n)
{
	snprintf(out, n, "%s%s%s%s%s%s", r->deny ? "deny" : "allow",
	    r->relay ? " RELAYCLIENT" : "", r->rbl == RBL_SKIP ?
	    " RBLSMTPD=\"\"" : r->rbl == RBL_PERM ? " RBLSMTPD=-" :
	    r->rbl == RBL_TEMP ? " RBLSMTPD=temp" : "", r->skip != NULL ?
	    " MOAT_SKIP=" : "", r->skip != NULL ? r->skip : "",
	    r->has_score ? " MOAT_SCORE" : "");
}

/* Trust and skips of an allow rule (logged only in observe mode). */
static void
apply_allow(struct filter_call *c, const struct access_rule *r)
{
	struct session *s = c->s;

	if (observing(c)) {
		if (r->relay || r->rbl == RBL_SKIP || r->skip != NULL ||
		    r->policy != NULL)
			log_msg(LVL_INFO, s->id, "event=access_observe "
			    "would=\"trust or skip\" applied=no");
		return;
	}
	if (r->relay)
		s->trusted = true;
	if (r->rbl == RBL_SKIP && filter_find("dnsbl") != NULL)
		(void)filter_skip(s, "dnsbl", false);
	if (r->skip != NULL && filter_skip(s, r->skip, false) == -1)
		log_msg(LVL_WARN, s->id, "event=access_skip_failed skip=\"%s\"",
		    r->skip);
	if (r->policy != NULL && filter_client_policy(s, r->policy) == -1)
		log_msg(LVL_WARN, s->id, "event=access_policy_unknown "
		    "policy=\"%s\" why=\"no [domain %s] section\"", r->policy,
		    r->policy);
}

/*
 * Applies the client's rule (r NULL: none, which tcpserver allows). A
 * deny refuses now at connect (or at the stage that decided, for a
 * name rule) with deny_at = connect; every other refusal is kept for
 * RCPT. The rule is copied into the session's data.
 */
static struct verdict
apply(struct filter_call *c, const struct access_state *st,
    const struct access_rule *r, int step)
{
	const struct access_conf	*conf = c->conf;
	struct session			*s = c->s;
	struct access_sess		*as;
	char				 full[ACCESS_NAME_MAX], what[160];
	const char			*base;

	if ((as = sess_get(c)) == NULL)
		return VERDICT(V_CONTINUE);
	as->decided = true;
	if (r == NULL)
		return VERDICT(V_CONTINUE);
	rule_name(st->path, r, full, sizeof(full));
	base = strrchr(st->path, '/');
	rule_name(base != NULL ? base + 1 : st->path, r, as->rule,
	    sizeof(as->rule));
	rule_summary(r, what, sizeof(what));
	log_msg(LVL_INFO, s->id, "event=access rule=%s step=%d action=\"%s\"",
	    full, step, what);
	if (r->deny || r->relay || r->rbl != RBL_NONE || r->skip != NULL ||
	    r->has_score)
		filter_evidence(s, &filter_access, r->deny ? "ACCESS_DENY" :
		    r->rbl == RBL_PERM || r->rbl == RBL_TEMP ?
		    "ACCESS_RBLSMTPD" : "ACCESS_ALLOW", r->has_score ?
		    r->score : 0, 0, "%s %s", as->rule, what);
	if (r->deny) {
		as->deny = !st->deny_connect;	/* else refused now */
		if (as->deny)
			return VERDICT(V_CONTINUE);
		filter_reply_format(as->text, sizeof(as->text),
		    conf->deny_text, as->rule, "");
		return verdict_make(V_DENY_DISCONNECT, (int)conf->deny_code,
		    "5.7.1", as->text);
	}
	apply_allow(c, r);
	as->rbl = r->rbl;
	if (r->rbl == RBL_PERM || r->rbl == RBL_TEMP)
		snprintf(as->text, sizeof(as->text), "%s", r->rbl_text);
	as->has_score = r->has_score;
	as->score = r->score;
	return VERDICT(V_CONTINUE);
}

/* Decides once the name is in (or at RCPT, last, in any case). */
static struct verdict
decide(struct filter_call *c, bool last)
{
	struct access_state		*st = rules_state();
	struct access_sess		*as = c->data;
	const struct access_rule	*r;
	char				 ip[INET6_ADDRSTRLEN];
	uint8_t				 addr[16];
	int				 family, step, ns;

	if (as == NULL || as->decided || st == NULL)
		return VERDICT(V_CONTINUE);
	ns = name_state(c->s);
	if (ns == 0 && !last)
		return VERDICT(V_CONTINUE);
	client_addr(c->s, ip, sizeof(ip), &family, addr);
	r = access_match(&st->rules, ip, family, addr, ns == 1 ?
	    c->s->rdns : NULL, &step);
	return apply(c, st, r, step);
}

static struct verdict
access_connect(struct filter_call *c)
{
	struct access_state		*st = rules_state();
	struct session			*s = c->s;
	const struct access_rule	*r;
	struct access_sess		*as;
	char				 ip[INET6_ADDRSTRLEN];
	uint8_t				 addr[16];
	int				 family, step;

	if (st == NULL)
		return VERDICT(V_CONTINUE);
	access_maybe_reload(st, s->id);
	if (st->rules.n == 0)
		return VERDICT(V_CONTINUE);
	client_addr(s, ip, sizeof(ip), &family, addr);
	r = access_match(&st->rules, ip, family, addr, s->rdns_verified ?
	    s->rdns : NULL, &step);
	if (!s->rdns_verified && access_host_matters(&st->rules, step) &&
	    name_state(s) == 0) {
		/* A name rule may still beat it: decide when the name is
		 * known. */
		if ((as = sess_get(c)) != NULL)
			log_msg(LVL_DEBUG, s->id, "event=access_wait_name");
		return VERDICT(V_CONTINUE);
	}
	return apply(c, st, r, step);
}

static struct verdict
access_helo(struct filter_call *c)
{
	return decide(c, false);
}

static struct verdict
access_rcpt(struct filter_call *c)
{
	const struct access_conf	*conf = c->conf;
	struct session			*s = c->s;
	struct access_sess		*as = c->data;
	char				*text = s->txn->verdict_text;
	struct verdict			 v;

	if (as == NULL)
		return VERDICT(V_CONTINUE);
	if (!as->decided && (v = decide(c, true)).code != V_CONTINUE)
		return v;
	if (as->has_score && as->symbol_txn != s->txn->seq) {
		as->symbol_txn = s->txn->seq;
		session_symbol(s, "ACCESS", as->score);
	}
	if (s->txn->cur->exempt)
		return VERDICT(V_CONTINUE);
	if (as->deny) {
		filter_reply_format(text, sizeof(s->txn->verdict_text),
		    conf->deny_text, as->rule, "");
		return verdict_make(V_DENY, (int)conf->deny_code, "5.7.1",
		    text);
	}
	if (s->authenticated || (as->rbl != RBL_PERM && as->rbl != RBL_TEMP))
		return VERDICT(V_CONTINUE);
	snprintf(text, sizeof(s->txn->verdict_text), "%s", as->text);
	if (as->rbl == RBL_PERM)
		return verdict_make(V_DENY, (int)conf->rbl_perm_code, "5.7.1",
		    text);
	return verdict_make(V_DEFER, (int)conf->rbl_temp_code, "4.7.1", text);
}

const struct filter filter_access = {
	.name = "access",
	.summary = "tcprules access rules per client (tcp.smtp text or "
	    "cdb): deny, RELAYCLIENT, RBLSMTPD, MOAT_SKIP, MOAT_SCORE",
	.opts = access_opts,
	.conf_size = sizeof(struct access_conf),
	.init = access_init,
	.fini = access_fini,
	.hook = {
		[STAGE_CONNECT] = access_connect,
		[STAGE_HELO] = access_helo,
		[STAGE_MAIL] = access_helo,
		[STAGE_RCPT] = access_rcpt,
	},
	.data_free = access_data_free,
	.fail = FAIL_CONTINUE,
};
