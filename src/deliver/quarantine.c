/*
 * quarantine.c: keeps messages refused at end of data (quarantine.h,
 * docs/QUARANTINE.md).
 *
 * Owns <dir>/{tmp,new,cur} and the store's "q:" records and "qs:"
 * counters. Invariants:
 * - a record names a file in new/ that was fsync'd, linked and its
 *   directory fsync'd before the record was committed; a file whose
 *   record could not be committed is removed again;
 * - "qs:bytes" and "qs:count" are the sums over the records (each change
 *   to the records changes them in the same transaction);
 * - a record's key sorts by the time it was kept, so a scan of "q:" sees
 *   the oldest first.
 * The job that keeps a message runs on the delivery pool; its completion
 * finds the hook by its step token and is dropped when that step is gone.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "../core/log.h"
#include "../core/tpool.h"
#include "../filters/policy.h"
#include "../store/store.h"
#include "deliver.h"
#include "quarantine.h"

#define QC(f)	offsetof(struct quarantine_conf, f)

const struct opt quarantine_opts[] = {
	{ "dir", OPT_PATH, "", 0, 0, QC(dir),
	    "where kept messages go (empty: <var_dir>/quarantine)" },
	{ "retention_days", OPT_INT, "30", 1, 3650, QC(retention_days),
	    "days a kept message stays before it is dropped" },
	{ "max_size", OPT_SIZE, "1G", 1024, 1LL << 42, QC(max_size),
	    "bytes all kept messages may take; the oldest go first" },
	{ "max_messages", OPT_INT, "100000", 1, 100000000, QC(max_messages),
	    "messages kept at most; the oldest go first" },
	{ "virus", OPT_BOOL, "no", 0, 0, QC(virus),
	    "keep messages refused for a virus (never released without "
	    "--force)" },
	{ "reply_id", OPT_BOOL, "yes", 0, 0, QC(reply_id),
	    "name the quarantine ID in the refusal's text" },
	OPT_END
};

const char *const quarantine_drop_names[] = { "age", "size", "count" };

static struct quarantine_conf	q_conf = { NULL, 30, 1LL << 30, 100000,
				    false, true };
static char			q_dir[PATH_MAX];

void
quarantine_configure(const struct quarantine_conf *c, const char *var_dir)
{
	q_conf = *c;
	q_conf.dir = NULL;
	if (c->dir != NULL && c->dir[0] != '\0')
		snprintf(q_dir, sizeof(q_dir), "%s", c->dir);
	else
		snprintf(q_dir, sizeof(q_dir), "%s/quarantine", var_dir);
}

const struct quarantine_conf *
quarantine_conf_active(void)
{
	return &q_conf;
}

const char *
quarantine_dir(void)
{
	return q_dir;
}

/* ---- IDs and paths ---- */

void
quarantine_id_make(long long now_us, char out[QUARANTINE_ID_LEN + 1])
{
	static unsigned	seq;	/* atomic: a fallback without getrandom */
	uint32_t	r;

	if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != (ssize_t)sizeof(r))
		r = (uint32_t)getpid() << 16 ^ __atomic_add_fetch(&seq, 1,
		    __ATOMIC_RELAXED);
	snprintf(out, QUARANTINE_ID_LEN + 1, "%013llx%05" PRIx32,
	    (unsigned long long)now_us & 0xfffffffffffffULL, r & 0xfffff);
}

bool
quarantine_id_ok(const char *id)
{
	size_t i;

	for (i = 0; i < QUARANTINE_ID_LEN; i++)
		if (!((id[i] >= '0' && id[i] <= '9') ||
		    (id[i] >= 'a' && id[i] <= 'f')))
			return false;
	return id[i] == '\0';
}

int
quarantine_path(const char *dir, const char *sub, const char *id,
    char *out, size_t outlen)
{
	int n = snprintf(out, outlen, "%s/%s%s%s", dir, sub, id[0] ? "/" : "",
	    id);

	return n < 0 || (size_t)n >= outlen ? -1 : 0;
}

/* ---- records ---- */

int
quarantine_rec_rcpt(struct quarantine_rec *r, const char *addr)
{
	size_t	 n = strnlen(addr, LIMIT_LOCAL_PART + LIMIT_DOMAIN + 1);
	char	*v;

	if (r->nrcpt >= QUARANTINE_RCPTS_MAX ||
	    (v = realloc(r->rcpts, r->rcptlen + n + 1)) == NULL)
		return -1;
	memcpy(v + r->rcptlen, addr, n);
	v[r->rcptlen + n] = '\0';
	r->rcpts = v;
	r->rcptlen += n + 1;
	r->nrcpt++;
	return 0;
}

const char *
quarantine_rec_rcpt_at(const struct quarantine_rec *r, size_t i)
{
	const char	*p = r->rcpts;

	if (p == NULL || i >= r->nrcpt)
		return "";
	while (i-- > 0)
		p += strlen(p) + 1;
	return p;
}

void
quarantine_rec_free(struct quarantine_rec *r)
{
	free(r->rcpts);
	r->rcpts = NULL;
	r->nrcpt = r->rcptlen = 0;
}

/* "key=value\n" with CR, LF and NUL in value made '?' (values are ours
 * or parsed SMTP paths, which hold none: this only keeps the format). */
static int
rec_line(struct buf *b, const char *key, const char *val)
{
	size_t	n = strlen(val), i, start = b->len;

	if (buf_printf(b, "%s=", key) == -1)
		return -1;
	start = b->len;
	if (buf_add(b, val, n) == -1 || buf_addc(b, '\n') == -1)
		return -1;
	for (i = start; i < start + n; i++)
		if (b->data[i] == '\r' || b->data[i] == '\n')
			b->data[i] = '?';
	return 0;
}

int
quarantine_rec_encode(const struct quarantine_rec *r, struct buf *b)
{
	size_t i;

	if (buf_printf(b, "v=1\nid=%s\ntime=%lld\nexpires=%lld\nsize=%lld\n"
	    "hdrlen=%lld\nclient_off=%lld\nscore=%.2f\nstate=%d\n"
	    "released_at=%lld\n", r->id, (long long)r->time,
	    (long long)r->expires, r->size, r->hdrlen, r->client_off,
	    r->score, (int)r->state, (long long)r->released_at) == -1 ||
	    rec_line(b, "session", r->session) == -1 ||
	    rec_line(b, "ip", r->ip) == -1 ||
	    rec_line(b, "helo", r->helo) == -1 ||
	    rec_line(b, "from", r->from) == -1 ||
	    rec_line(b, "domain", r->domain) == -1 ||
	    rec_line(b, "reason", r->reason) == -1 ||
	    rec_line(b, "symbols", r->symbols) == -1)
		return -1;
	for (i = 0; i < r->nrcpt; i++)
		if (rec_line(b, "rcpt", quarantine_rec_rcpt_at(r, i)) == -1)
			return -1;
	return 0;
}

/* Copies a value into a fixed field; -1 when it does not fit. */
static int
rec_str(char *dst, size_t cap, const char *v, size_t n)
{
	if (n >= cap)
		return -1;
	memcpy(dst, v, n);
	dst[n] = '\0';
	return 0;
}

static int
rec_num(const char *v, size_t n, long long *out)
{
	char	tmp[32], *end;

	if (n == 0 || n >= sizeof(tmp))
		return -1;
	memcpy(tmp, v, n);
	tmp[n] = '\0';
	errno = 0;
	*out = strtoll(tmp, &end, 10);
	return errno != 0 || *end != '\0' ? -1 : 0;
}

/* One "key=value" of a record. */
static int
rec_field(struct quarantine_rec *r, const char *k, size_t kn, const char *v,
    size_t vn)
{
	long long	n = 0;
	char		tmp[LIMIT_LOCAL_PART + LIMIT_DOMAIN + 2];

#define KEY(s)	(kn == sizeof(s) - 1 && memcmp(k, s, kn) == 0)
#define NUM(s, f)	if (KEY(s)) \
			    return rec_num(v, vn, &n) == -1 ? -1 : ((f) = n, 0)
#define STR(s, f)	if (KEY(s)) return rec_str(f, sizeof(f), v, vn)
	NUM("time", r->time);
	NUM("expires", r->expires);
	NUM("size", r->size);
	NUM("hdrlen", r->hdrlen);
	NUM("client_off", r->client_off);
	NUM("released_at", r->released_at);
	if (KEY("state")) {
		if (rec_num(v, vn, &n) == -1 || n < QS_HELD ||
		    n > QS_RELEASED)
			return -1;
		r->state = (enum quarantine_state)n;
		return 0;
	}
	if (KEY("score")) {
		if (vn == 0 || vn >= 32)
			return -1;
		memcpy(tmp, v, vn);
		tmp[vn] = '\0';
		r->score = strtod(tmp, NULL);
		return 0;
	}
	STR("id", r->id);
	STR("session", r->session);
	STR("ip", r->ip);
	STR("helo", r->helo);
	STR("from", r->from);
	STR("domain", r->domain);
	STR("reason", r->reason);
	STR("symbols", r->symbols);
	if (KEY("rcpt")) {
		if (rec_str(tmp, sizeof(tmp), v, vn) == -1)
			return -1;
		return quarantine_rec_rcpt(r, tmp);
	}
#undef KEY
#undef NUM
#undef STR
	return 0;	/* a field of a later version */
}

int
quarantine_rec_decode(const char *s, size_t len, struct quarantine_rec *r)
{
	const char	*p = s, *end = s + len, *nl, *eq;

	memset(r, 0, sizeof(*r));
	if (len < 4 || memcmp(s, "v=1\n", 4) != 0)
		return -1;
	while (p < end) {
		if ((nl = memchr(p, '\n', (size_t)(end - p))) == NULL ||
		    (eq = memchr(p, '=', (size_t)(nl - p))) == NULL ||
		    rec_field(r, p, (size_t)(eq - p), eq + 1,
		    (size_t)(nl - eq - 1)) == -1) {
			quarantine_rec_free(r);
			return -1;
		}
		p = nl + 1;
	}
	if (!quarantine_id_ok(r->id)) {
		quarantine_rec_free(r);
		return -1;
	}
	return 0;
}

/* ---- the index ---- */

#define Q_KEY_MAX	(QUARANTINE_ID_LEN + 8)

static void
q_key(const char *id, char out[Q_KEY_MAX])
{
	snprintf(out, Q_KEY_MAX, "q:%s", id);
}

int
quarantine_index_put(struct store_txn *t, const struct quarantine_rec *r)
{
	struct buf	b;
	char		key[Q_KEY_MAX];
	int		rc;

	buf_init(&b, QUARANTINE_RECORD_MAX);
	q_key(r->id, key);
	rc = quarantine_rec_encode(r, &b) == -1 ? -1 :
	    store_put(t, key, b.data, b.len, 0);
	buf_free(&b);
	return rc;
}

int
quarantine_index_add(struct store_txn *t, const struct quarantine_rec *r)
{
	if (quarantine_index_put(t, r) == -1 ||
	    store_incr(t, "qs:bytes", r->size, 0, NULL) == -1 ||
	    store_incr(t, "qs:count", 1, 0, NULL) == -1)
		return -1;
	return 0;
}

int
quarantine_index_get(struct store_txn *t, const char *id,
    struct quarantine_rec *r)
{
	char	key[Q_KEY_MAX], *v;
	long	n;
	int	rc;

	if (!quarantine_id_ok(id))
		return 1;
	if ((v = malloc(QUARANTINE_RECORD_MAX)) == NULL)
		return -1;
	q_key(id, key);
	n = store_get(t, key, v, QUARANTINE_RECORD_MAX);
	if (n < 0)
		rc = 1;
	else if (n > QUARANTINE_RECORD_MAX)
		rc = -1;
	else
		rc = quarantine_rec_decode(v, (size_t)n, r);
	free(v);
	return rc;
}

int
quarantine_index_del(struct store_txn *t, const struct quarantine_rec *r)
{
	char key[Q_KEY_MAX];

	q_key(r->id, key);
	if (store_del(t, key) == -1 ||
	    store_incr(t, "qs:bytes", -r->size, 0, NULL) == -1 ||
	    store_incr(t, "qs:count", -1, 0, NULL) == -1)
		return -1;
	return 0;
}

int
quarantine_totals(struct store_txn *t, long long *bytes, long long *count)
{
	*bytes = *count = 0;
	if (store_get(t, "qs:bytes", bytes, sizeof(*bytes)) != sizeof(*bytes))
		*bytes = 0;
	if (store_get(t, "qs:count", count, sizeof(*count)) != sizeof(*count))
		*count = 0;
	return 0;
}

struct each_ctx {
	bool	(*fn)(void *, const struct quarantine_rec *);
	void	*arg;
};

static bool
each_one(void *arg, const char *key, const void *val, size_t len)
{
	struct each_ctx		*e = arg;
	struct quarantine_rec	 r;
	bool			 go;

	(void)key;
	if (quarantine_rec_decode(val, len, &r) == -1)
		return true;	/* not ours to judge here: skipped */
	go = e->fn(e->arg, &r);
	quarantine_rec_free(&r);
	return go;
}

int
quarantine_each(struct store_txn *t,
    bool (*fn)(void *, const struct quarantine_rec *), void *arg)
{
	struct each_ctx e = { fn, arg };

	return store_scan(t, "q:", each_one, &e);
}

const char *
quarantine_release_refused(const struct quarantine_rec *r, bool force)
{
	if (r->state == QS_RELEASED)
		return "released already; not released again";
	if (r->state == QS_RELEASING && !force)
		return "being released (an interrupted release: check the "
		    "mailboxes, then --force)";
	if (strncmp(r->reason, "virus", 5) == 0 && !force)
		return "refused for a virus; release it only with --force";
	return NULL;
}

/* What trim decided, collected during the scan (the records are deleted
 * after it: a scan's cursor must not see its own deletes). */
struct trim_ctx {
	const struct quarantine_conf	*c;
	time_t				 now;
	long long			 bytes, count;
	struct quarantine_rec		*drop;
	enum quarantine_drop		*why;
	size_t				 n, cap;
	int				 failed;
};

static bool
trim_one(void *arg, const struct quarantine_rec *r)
{
	struct trim_ctx		*x = arg;
	enum quarantine_drop	 why;
	void			*v;

	if (r->expires != 0 && r->expires <= x->now)
		why = QD_AGE;
	else if (r->state == QS_RELEASING)
		return true;
	else if (x->bytes > x->c->max_size)
		why = QD_SIZE;
	else if (x->count > x->c->max_messages)
		why = QD_COUNT;
	else
		return false;	/* newer ones are neither expired nor over */
	if (x->n == x->cap) {
		x->cap = x->cap ? x->cap * 2 : 16;
		if ((v = reallocarray(x->drop, x->cap,
		    sizeof(*x->drop))) == NULL) {
			x->failed = 1;
			return false;
		}
		x->drop = v;
		if ((v = reallocarray(x->why, x->cap, sizeof(*x->why))) ==
		    NULL) {
			x->failed = 1;
			return false;
		}
		x->why = v;
	}
	x->drop[x->n] = *r;
	x->drop[x->n].rcpts = NULL;	/* not needed, not copied */
	x->drop[x->n].nrcpt = 0;
	x->why[x->n++] = why;
	x->bytes -= r->size;
	x->count--;
	return true;
}

long
quarantine_trim(struct store_txn *t, const struct quarantine_conf *c,
    time_t now, void (*fn)(void *, const struct quarantine_rec *,
    enum quarantine_drop), void *arg)
{
	struct trim_ctx	x;
	size_t		i;
	long		rc;

	memset(&x, 0, sizeof(x));
	x.c = c;
	x.now = now;
	quarantine_totals(t, &x.bytes, &x.count);
	if (quarantine_each(t, trim_one, &x) == -1 || x.failed)
		rc = -1;
	else {
		for (i = 0; i < x.n; i++) {
			if (quarantine_index_del(t, &x.drop[i]) == -1)
				break;
			if (fn != NULL)
				fn(arg, &x.drop[i], x.why[i]);
		}
		rc = i < x.n ? -1 : (long)x.n;
	}
	free(x.drop);
	free(x.why);
	return rc;
}

/* ---- keeping a message (delivery pool) ---- */

/* A dropped record, for the log line on the loop. */
struct q_dropped {
	char			id[QUARANTINE_ID_LEN + 1];
	char			reason[QUARANTINE_REASON_MAX];
	long long		size;
	enum quarantine_drop	why;
};

struct q_job {
	struct step_token	 tok;
	struct verdict		 deny;
	int			 cancelled;	/* atomic: set on the loop */
	struct store		*st;
	struct quarantine_conf	 conf;
	char			 dir[PATH_MAX];
	struct quarantine_rec	 rec;
	struct buf		 head;		/* the X-Moat block */
	struct buf		 body;		/* the message, LF line ends */
	int			 src_fd;	/* spilled: -1 when in body */
	size_t			 src_len;
	int			 failed;	/* errno */
	const char		*failed_at;
	bool			 linked;
	struct q_dropped	*dropped;
	size_t			 ndropped;
	struct q_job		*next;		/* in flight (loop only) */
};

static struct q_job	*q_inflight;	/* the loop thread only */

static int
q_write_all(int fd, const void *p, size_t n)
{
	ssize_t w;

	while (n > 0) {
		if ((w = write(fd, p, n)) == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p = (const char *)p + w;
		n -= (size_t)w;
	}
	return 0;
}

static int
q_mkdirs(const char *dir)
{
	static const char *const subs[] = { "", "tmp", "new", "cur" };
	char	p[PATH_MAX];
	size_t	i;

	for (i = 0; i < 4; i++) {
		if (quarantine_path(dir, subs[i], "", p, sizeof(p)) == -1)
			return (errno = ENAMETOOLONG, -1);
		if (i == 0)
			p[strlen(p) - 1] = '\0';	/* "dir/" */
		if (mkdir(p, 0700) == -1 && errno != EEXIST)
			return -1;
	}
	return 0;
}

static int
q_fsync_dir(const char *dir, const char *sub)
{
	char	p[PATH_MAX];
	int	fd, r;

	if (quarantine_path(dir, sub, "", p, sizeof(p)) == -1 ||
	    (fd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return -1;
	r = fsync(fd);
	close(fd);
	return r;
}

/* tmp/<id>: the header block and the message, fsync'd. */
static int
q_write_file(struct q_job *j, const char *path)
{
	long long	len = (long long)j->body.len;
	int		fd;

	if ((fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
	    0600)) == -1)
		return -1;
	if (q_write_all(fd, j->head.data, j->head.len) == -1 ||
	    (j->src_fd == -1 ? q_write_all(fd, j->body.data,
	    j->body.len) : deliver_lf_fd(j->src_fd, j->src_len, fd,
	    &len)) == -1 ||
	    fsync(fd) == -1) {
		close(fd);
		unlink(path);
		return -1;
	}
	j->rec.size = (long long)j->head.len + len;
	return close(fd);
}

static void
q_note_drop(void *arg, const struct quarantine_rec *r,
    enum quarantine_drop why)
{
	struct q_job		*j = arg;
	struct q_dropped	*v;

	v = reallocarray(j->dropped, j->ndropped + 1, sizeof(*v));
	if (v == NULL)
		return;		/* its file stays; logged as a count */
	j->dropped = v;
	v += j->ndropped++;
	snprintf(v->id, sizeof(v->id), "%s", r->id);
	snprintf(v->reason, sizeof(v->reason), "%s", r->reason);
	v->size = r->size;
	v->why = why;
}

/* Indexes the new record and trims, in one write transaction. */
static int
q_index(struct q_job *j)
{
	struct store_txn *t;

	if ((t = store_begin(j->st, true)) == NULL)
		return -1;
	if (quarantine_index_add(t, &j->rec) == -1 ||
	    quarantine_trim(t, &j->conf, j->rec.time, q_note_drop,
	    j) == -1) {
		store_abort(t);
		j->ndropped = 0;
		return -1;
	}
	return store_commit(t);
}

/* Pool thread: file to tmp/, fsync, link to new/, fsync, index. */
static void
q_work(void *arg)
{
	struct q_job	*j = arg;
	char		 tmp[PATH_MAX], dst[PATH_MAX];
	size_t		 i;

	if (quarantine_path(j->dir, "tmp", j->rec.id, tmp, sizeof(tmp)) ==
	    -1 || quarantine_path(j->dir, "new", j->rec.id, dst,
	    sizeof(dst)) == -1) {
		j->failed = ENAMETOOLONG;
		j->failed_at = "path";
		return;
	}
	if (q_mkdirs(j->dir) == -1 || q_write_file(j, tmp) == -1) {
		j->failed = errno ? errno : EIO;
		j->failed_at = "write";
		return;
	}
	/* Last look before it becomes visible (as maildir.c). */
	if (__atomic_load_n(&j->cancelled, __ATOMIC_ACQUIRE) != 0) {
		unlink(tmp);
		return;
	}
	if (link(tmp, dst) == -1 || q_fsync_dir(j->dir, "new") == -1) {
		j->failed = errno;
		j->failed_at = "link";
		unlink(dst);
		unlink(tmp);
		return;
	}
	unlink(tmp);
	j->linked = true;
	if (q_index(j) == -1) {
		j->failed = EIO;
		j->failed_at = "index";
		unlink(dst);
		j->linked = false;
		return;
	}
	for (i = 0; i < j->ndropped; i++)
		if (quarantine_path(j->dir, "new", j->dropped[i].id, dst,
		    sizeof(dst)) == 0)
			unlink(dst);
}

static void
q_job_free(struct q_job *j)
{
	struct q_job **pp;

	for (pp = &q_inflight; *pp != NULL; pp = &(*pp)->next)
		if (*pp == j) {
			*pp = j->next;
			break;
		}
	quarantine_rec_free(&j->rec);
	buf_free(&j->head);
	buf_free(&j->body);
	if (j->src_fd != -1)
		close(j->src_fd);
	free(j->dropped);
	free(j);
}

/* Loop thread: logs, and names the ID in the transaction while the
 * hook's step is still the one pending. */
static void
q_finish(struct q_job *j)
{
	struct session	*s;
	size_t		 i, n;

	for (i = 0; i < j->ndropped; i++)
		log_msg(LVL_INFO, j->tok.sid, "event=quarantine_dropped "
		    "id=%s why=%s size=%lld reason=%s", j->dropped[i].id,
		    quarantine_drop_names[j->dropped[i].why],
		    j->dropped[i].size, j->dropped[i].reason);
	if (j->failed)
		log_msg(LVL_WARN, j->tok.sid, "event=quarantine_error at=%s "
		    "errno=%s", j->failed_at, strerror(j->failed));
	else if (!j->linked)
		log_msg(LVL_INFO, j->tok.sid, "event=quarantine_cancelled "
		    "id=%s", j->rec.id);
	else
		log_msg(LVL_INFO, j->tok.sid, "event=quarantined id=%s "
		    "reason=%s size=%lld rcpts=%zu", j->rec.id, j->rec.reason,
		    j->rec.size, j->rec.nrcpt);
	s = session_find(j->tok.sid);
	if (j->linked && s != NULL && s->txn != NULL &&
	    session_step_live(s, j->tok)) {
		struct txn *t = s->txn;

		snprintf(t->quarantine, sizeof(t->quarantine), "%s",
		    j->rec.id);
		n = strlen(t->verdict_text);
		if (j->conf.reply_id && j->deny.text == t->verdict_text)
			snprintf(t->verdict_text + n, sizeof(t->verdict_text) -
			    n, " (quarantine %s)", j->rec.id);
	}
}

/* Loop thread: the job's completion resumes the hook. */
static void
q_done(void *arg)
{
	struct q_job *j = arg;

	q_finish(j);
	filter_resume(j->tok, j->deny);
	q_job_free(j);
}

/* The X-Moat block: what the index holds, for mail tools that read the
 * file alone (the index stays authoritative). */
static int
q_head(struct q_job *j)
{
	const struct quarantine_rec	*r = &j->rec;
	size_t				 i;

	if (buf_printf(&j->head, "X-Moat-Quarantine-ID: %s\n"
	    "X-Moat-Quarantine-Reason: %s\nX-Moat-Session: %s\n"
	    "X-Moat-Client: [%s] helo=%s\nX-Moat-Mail-From: <%s>\n",
	    r->id, r->reason, r->session, r->ip, r->helo, r->from) == -1)
		return -1;
	for (i = 0; i < r->nrcpt && i < 100; i++)
		if (buf_printf(&j->head, "X-Moat-Rcpt-To: <%s>\n",
		    quarantine_rec_rcpt_at(r, i)) == -1)
			return -1;
	if (r->symbols[0] != '\0' && buf_printf(&j->head,
	    "X-Moat-Symbols: score=%.2f %s\n", r->score, r->symbols) == -1)
		return -1;
	j->rec.hdrlen = (long long)j->head.len;
	return 0;
}

/* CRLFs in m[0..n): the LF form is that much shorter. */
static size_t
crlf_count(const char *m, size_t n)
{
	size_t i, k = 0;

	for (i = 0; i + 1 < n; i++)
		if (m[i] == '\r' && m[i + 1] == '\n')
			k++;
	return k;
}

/* The record of the transaction: envelope, client, symbols. */
static int
q_record(struct q_job *j, struct session *s, const char *reason)
{
	struct txn		*t = s->txn;
	struct quarantine_rec	*r = &j->rec;
	size_t			 i, n = 0;
	struct timespec		 ts;
	time_t			 now;

	clock_gettime(CLOCK_REALTIME, &ts);
	now = ts.tv_sec;
	quarantine_id_make((long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000,
	    r->id);
	r->time = now;
	r->expires = now + (time_t)j->conf.retention_days * 86400;
	snprintf(r->session, sizeof(r->session), "%016llx",
	    (unsigned long long)s->id);
	snprintf(r->ip, sizeof(r->ip), "%s", s->ip);
	snprintf(r->helo, sizeof(r->helo), "%s", s->helo);
	if (!t->from.null)
		snprintf(r->from, sizeof(r->from), "%s%s%s", t->from.local,
		    t->from.domain[0] ? "@" : "", t->from.domain);
	snprintf(r->reason, sizeof(r->reason), "%s", reason);
	r->score = t->score;
	for (i = 0; i < t->nsym && i < LIMIT_SYMBOLS; i++) {
		int k = snprintf(r->symbols + n, sizeof(r->symbols) - n,
		    "%s%s=%.2f", n ? " " : "", t->sym[i].name,
		    t->sym[i].score);

		if (k < 0 || (size_t)k >= sizeof(r->symbols) - n) {
			r->symbols[n] = '\0';	/* whole names only */
			break;
		}
		n += (size_t)k;
	}
	for (i = 0; i < t->nrcpt; i++) {
		const struct rcpt *rc = &t->rcpts[i];

		if (!rc->accepted || rc->consumed)
			continue;
		if (r->domain[0] == '\0')
			snprintf(r->domain, sizeof(r->domain), "%s",
			    rc->path.domain);
		if (quarantine_rec_rcpt(r, rc->addr) == -1)
			break;	/* the first QUARANTINE_RCPTS_MAX */
	}
	if (q_head(j) == -1)
		return -1;
	r->client_off = r->hdrlen + (long long)(t->msg_start -
	    crlf_count(t->msg.data, t->msg_start));
	return 0;
}

/* A new job for the transaction; NULL (logged) when none can be made. */
static struct q_job *
q_job_new(struct session *s, const char *reason, struct verdict deny,
    struct store *st)
{
	struct txn	*t = s->txn;
	struct q_job	*j;

	if ((j = calloc(1, sizeof(*j))) == NULL)
		return NULL;
	j->src_fd = -1;
	j->deny = deny;
	j->st = st;
	j->conf = q_conf;
	snprintf(j->dir, sizeof(j->dir), "%s", q_dir);
	buf_init(&j->head, 64 * 1024);
	if (t->msg.mapped) {
		j->src_fd = fcntl(t->msg.fd, F_DUPFD_CLOEXEC, 0);
		j->src_len = t->msg.len;
	}
	if ((t->msg.mapped ? j->src_fd == -1 : deliver_lf(&t->msg,
	    &j->body) == -1) || q_record(j, s, reason) == -1) {
		q_job_free(j);
		return NULL;
	}
	return j;
}

/* True when the refusal may be kept under this call's policy. */
static bool
q_wanted(const struct filter_call *c, const char *reason)
{
	const struct policy	*p = c->policy;
	const struct filter	*f;

	/* Only recipients that delivery would have had (not a training
	 * address a filter consumed). */
	if (c->s->txn == NULL || c->s->txn->naccepted <=
	    c->s->txn->nconsumed || q_dir[0] == '\0')
		return false;
	if (strncmp(reason, "virus", 5) == 0 && !q_conf.virus)
		return false;
	/* Observe mode: the refusal will not happen, nor the keep. */
	f = pipeline_active != NULL && c->s->pl_index < pipeline_active->n ?
	    pipeline_active->order[c->s->pl_index] : NULL;
	if (p != NULL && (p->observe_all || (f != NULL &&
	    p->observe[filter_index(f)])))
		return false;
	/* A message larger than the whole quarantine is never kept. */
	return (long long)c->s->txn->msg.len < q_conf.max_size;
}

struct verdict
quarantine_keep(struct filter_call *c, const char *reason,
    struct verdict deny)
{
	struct store	*st;
	struct q_job	*j;
	char		 err[256];

	if (!q_wanted(c, reason))
		return deny;
	if ((st = store_shared(err, sizeof(err))) == NULL) {
		log_msg(LVL_WARN, c->s->id, "event=quarantine_error at=store "
		    "why=\"%s\"", err);
		return deny;
	}
	if ((j = q_job_new(c->s, reason, deny, st)) == NULL) {
		log_msg(LVL_WARN, c->s->id, "event=quarantine_error at=job "
		    "errno=%s", strerror(errno ? errno : ENOMEM));
		return deny;
	}
	j->tok = c->step;
	j->next = q_inflight;
	q_inflight = j;
	if (tpool_submit(q_work, q_done, j) == -1) {
		/* No pool: write it here rather than not at all; the
		 * refusal is then the hook's own verdict. */
		q_work(j);
		q_finish(j);
		q_job_free(j);
		return deny;
	}
	return VERDICT(V_PENDING);
}

void
quarantine_cancel(struct filter_call *c)
{
	struct q_job *j;

	for (j = q_inflight; j != NULL; j = j->next)
		if (j->tok.sid == c->step.sid && j->tok.gen == c->step.gen)
			__atomic_store_n(&j->cancelled, 1, __ATOMIC_RELEASE);
}
