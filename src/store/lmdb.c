/*
 * lmdb.c: the embedded store backend (store.h) on LMDB.
 *
 * One environment (a directory) per host, two databases in it: "kv" for
 * keyed values and counters (each value starts with its 8-byte expiry)
 * and "tokens" for the classifier (8-byte native integer keys, 16-byte
 * {spam, ham, day, weight} values). LMDB gives readers a snapshot
 * without locks and serialises writers across processes, which is what
 * moatd's workers (readers) and moatctl (the writer) need. Stale reader
 * slots of dead processes are cleared at open. A handle must not cross
 * fork().
 */
#include <errno.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "store.h"

struct store {
	MDB_env		*env;
	MDB_dbi		 kv, tokens;
	char		 dir[4096];
	char		 err[4096 + 256];
};

struct store_txn {
	struct store	*st;
	MDB_txn		*txn;
};

struct tokval {
	uint32_t	spam, ham, day;
	float		weight;
};

/* A stored token value; stores written before weights held 12 bytes. */
static bool
tokval_read(const MDB_val *v, struct tokval *tv)
{
	memset(tv, 0, sizeof(*tv));
	if (v->mv_size != sizeof(*tv) && v->mv_size != 12)
		return false;
	memcpy(tv, v->mv_data, v->mv_size);
	return true;
}

static int
store_fail(struct store *st, const char *what, int rc)
{
	snprintf(st->err, sizeof(st->err), "%s: %s: %s", st->dir, what,
	    mdb_strerror(rc));
	return -1;
}

/* Opens both databases in a first write transaction. */
static int
store_open_dbs(struct store *st)
{
	MDB_txn	*txn;
	int	 rc;

	if ((rc = mdb_txn_begin(st->env, NULL, 0, &txn)) != 0)
		return store_fail(st, "begin", rc);
	if ((rc = mdb_dbi_open(txn, "kv", MDB_CREATE, &st->kv)) != 0 ||
	    (rc = mdb_dbi_open(txn, "tokens", MDB_CREATE | MDB_INTEGERKEY,
	    &st->tokens)) != 0) {
		mdb_txn_abort(txn);
		return store_fail(st, "open database", rc);
	}
	if ((rc = mdb_txn_commit(txn)) != 0)
		return store_fail(st, "commit", rc);
	return 0;
}

/* mkdir -p: the var dir may not exist yet when moatctl runs first. */
static int
mkdir_parents(char *path)
{
	char *p;

	for (p = path + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(path, 0750) == -1 && errno != EEXIST) {
			*p = '/';
			return -1;
		}
		*p = '/';
	}
	return mkdir(path, 0750) == -1 && errno != EEXIST ? -1 : 0;
}

struct store *
store_open(const char *dir, size_t map_size, char *err, size_t errlen)
{
	struct store	*st;
	int		 rc, dead;

	if ((st = calloc(1, sizeof(*st))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if ((size_t)snprintf(st->dir, sizeof(st->dir), "%s", dir) >=
	    sizeof(st->dir)) {
		snprintf(err, errlen, "%s: path too long", dir);
		free(st);
		return NULL;
	}
	if (mkdir_parents(st->dir) == -1) {
		snprintf(err, errlen, "%s: %s", dir, strerror(errno));
		free(st);
		return NULL;
	}
	/* MDB_NOTLS: read transactions may run on the tpool's threads. */
	if ((rc = mdb_env_create(&st->env)) != 0 ||
	    (rc = mdb_env_set_maxdbs(st->env, 4)) != 0 ||
	    (rc = mdb_env_set_mapsize(st->env, map_size)) != 0 ||
	    (rc = mdb_env_open(st->env, dir, MDB_NOTLS, 0640)) != 0) {
		snprintf(err, errlen, "%s: %s", dir, mdb_strerror(rc));
		if (st->env != NULL)
			mdb_env_close(st->env);
		free(st);
		return NULL;
	}
	mdb_reader_check(st->env, &dead);
	if (store_open_dbs(st) == -1) {
		snprintf(err, errlen, "%s", st->err);
		store_close(st);
		return NULL;
	}
	return st;
}

void
store_close(struct store *st)
{
	if (st == NULL)
		return;
	mdb_env_close(st->env);
	free(st);
}

const char *
store_error(const struct store *st)
{
	return st->err;
}

struct store_txn *
store_begin(struct store *st, bool write)
{
	struct store_txn	*t;
	int			 rc;

	if ((t = calloc(1, sizeof(*t))) == NULL) {
		snprintf(st->err, sizeof(st->err), "out of memory");
		return NULL;
	}
	t->st = st;
	if ((rc = mdb_txn_begin(st->env, NULL, write ? 0 : MDB_RDONLY,
	    &t->txn)) != 0) {
		store_fail(st, "begin", rc);
		free(t);
		return NULL;
	}
	return t;
}

int
store_commit(struct store_txn *t)
{
	int rc = mdb_txn_commit(t->txn);

	if (rc != 0)
		store_fail(t->st, "commit", rc);
	free(t);
	return rc == 0 ? 0 : -1;
}

void
store_abort(struct store_txn *t)
{
	if (t == NULL)
		return;
	mdb_txn_abort(t->txn);
	free(t);
}

/* The stored bytes behind key, NULL when absent or expired. */
static const unsigned char *
kv_lookup(struct store_txn *t, const char *key, size_t *len)
{
	MDB_val	 k = { strlen(key), (void *)key }, v;
	int64_t	 exp;

	if (mdb_get(t->txn, t->st->kv, &k, &v) != 0 || v.mv_size < 8)
		return NULL;
	memcpy(&exp, v.mv_data, 8);
	if (exp != 0 && exp <= (int64_t)store_now())
		return NULL;
	*len = v.mv_size - 8;
	return (const unsigned char *)v.mv_data + 8;
}

int
store_scan(struct store_txn *t, const char *prefix,
    bool (*fn)(void *, const char *key, const void *val, size_t len),
    void *arg)
{
	MDB_cursor	*c;
	size_t		 plen = strlen(prefix);
	MDB_val		 k = { plen, (void *)prefix }, v;
	char		 key[512];
	int64_t		 exp;
	time_t		 now = store_now();
	int		 rc;

	if ((rc = mdb_cursor_open(t->txn, t->st->kv, &c)) != 0)
		return store_fail(t->st, "cursor", rc);
	for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == 0;
	    rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		if (k.mv_size < plen || k.mv_size >= sizeof(key) ||
		    memcmp(k.mv_data, prefix, plen) != 0)
			break;
		if (v.mv_size < 8)
			continue;
		memcpy(&exp, v.mv_data, 8);
		if (exp != 0 && exp <= (int64_t)now)
			continue;
		memcpy(key, k.mv_data, k.mv_size);
		key[k.mv_size] = '\0';
		if (!fn(arg, key, (const char *)v.mv_data + 8, v.mv_size - 8))
			break;
	}
	mdb_cursor_close(c);
	if (rc != 0 && rc != MDB_NOTFOUND)
		return store_fail(t->st, "scan", rc);
	return 0;
}

long
store_get(struct store_txn *t, const char *key, void *val, size_t cap)
{
	const unsigned char	*p;
	size_t			 len;

	if ((p = kv_lookup(t, key, &len)) == NULL)
		return -1;
	memcpy(val, p, len < cap ? len : cap);
	return (long)len;
}

int
store_put(struct store_txn *t, const char *key, const void *val, size_t len,
    time_t expires)
{
	MDB_val	 k = { strlen(key), (void *)key }, v = { len + 8, NULL };
	int64_t	 exp = expires;
	int	 rc;

	if (k.mv_size == 0 || k.mv_size > 511) {
		snprintf(t->st->err, sizeof(t->st->err), "bad key length");
		return -1;
	}
	if ((rc = mdb_put(t->txn, t->st->kv, &k, &v, MDB_RESERVE)) != 0)
		return store_fail(t->st, "put", rc);
	memcpy(v.mv_data, &exp, 8);
	memcpy((char *)v.mv_data + 8, val, len);
	return 0;
}

int
store_del(struct store_txn *t, const char *key)
{
	MDB_val	k = { strlen(key), (void *)key };
	int	rc = mdb_del(t->txn, t->st->kv, &k, NULL);

	if (rc != 0 && rc != MDB_NOTFOUND)
		return store_fail(t->st, "del", rc);
	return 0;
}

int
store_incr(struct store_txn *t, const char *key, long long delta,
    time_t expires, long long *out)
{
	const unsigned char	*p;
	size_t			 len;
	long long		 n = 0;

	if ((p = kv_lookup(t, key, &len)) != NULL && len == sizeof(n))
		memcpy(&n, p, sizeof(n));
	n += delta;
	if (out != NULL)
		*out = n;
	return store_put(t, key, &n, sizeof(n), expires);
}

/* ---- Expiry, compare-and-set, sweep ------------------------------------ */

static time_t (*store_clock)(void);

time_t
store_now(void)
{
	return store_clock != NULL ? store_clock() : time(NULL);
}

void
store_set_clock(time_t (*fn)(void))
{
	store_clock = fn;
}

int
store_cas(struct store_txn *t, const char *key, const void *expect,
    size_t elen, const void *val, size_t len, time_t expires)
{
	const unsigned char	*p;
	size_t			 cur;

	/* Writers are serialised host-wide (LMDB's writer lock), so the
	 * read and the write below cannot interleave with another's. */
	p = kv_lookup(t, key, &cur);
	if (expect == NULL ? p != NULL :
	    (p == NULL || cur != elen || memcmp(p, expect, elen) != 0))
		return 0;
	return store_put(t, key, val, len, expires) == -1 ? -1 : 1;
}

int
store_put_new(struct store_txn *t, const char *key, const void *val,
    size_t len, time_t expires)
{
	return store_cas(t, key, NULL, 0, val, len, expires);
}

/* Deletes the n keys of the walk, kept in dead[] (511 bytes + NUL each). */
static int
sweep_delete(struct store_txn *t, char (*dead)[512], size_t n)
{
	size_t	i;

	for (i = 0; i < n; i++)
		if (store_del(t, dead[i]) == -1)
			return -1;
	return 0;
}

int
store_sweep(struct store_txn *t, char *cursor, size_t cap, size_t max,
    const char *count_prefix, struct store_sweep *out)
{
	MDB_cursor	*c;
	MDB_val		 k = { strlen(cursor), cursor }, v;
	size_t		 cplen = count_prefix ? strlen(count_prefix) : 0;
	char		 (*dead)[512];
	int64_t		 exp;
	time_t		 now = store_now();
	int		 rc;

	memset(out, 0, sizeof(*out));
	if (max == 0 || (dead = calloc(max, sizeof(*dead))) == NULL)
		return store_fail(t->st, "sweep", ENOMEM);
	if ((rc = mdb_cursor_open(t->txn, t->st->kv, &c)) != 0) {
		free(dead);
		return store_fail(t->st, "cursor", rc);
	}
	/* Walk at most max keys from the cursor, noting the expired ones;
	 * they are deleted after the walk (by key, not under the cursor). */
	for (rc = mdb_cursor_get(c, &k, &v, k.mv_size != 0 ? MDB_SET_RANGE :
	    MDB_FIRST); rc == 0 && out->scanned < max;
	    rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		out->scanned++;
		if (v.mv_size < 8 || k.mv_size >= sizeof(dead[0]))
			continue;
		memcpy(&exp, v.mv_data, 8);
		if (exp == 0 || exp > (int64_t)now)
			continue;
		if (cplen != 0 && k.mv_size >= cplen &&
		    memcmp(k.mv_data, count_prefix, cplen) == 0)
			out->counted++;
		memcpy(dead[out->removed], k.mv_data, k.mv_size);
		dead[out->removed++][k.mv_size] = '\0';
	}
	/* rc == 0: k is the first key not walked, where the next call
	 * starts; otherwise the table's end was reached: wrap. */
	if (rc == 0 && k.mv_size < cap) {
		memcpy(cursor, k.mv_data, k.mv_size);
		cursor[k.mv_size] = '\0';
	} else {
		cursor[0] = '\0';
		out->wrapped = true;
	}
	mdb_cursor_close(c);
	if (rc != 0 && rc != MDB_NOTFOUND) {
		free(dead);
		return store_fail(t->st, "sweep", rc);
	}
	rc = sweep_delete(t, dead, out->removed);
	free(dead);
	return rc;
}

int
store_tokens_get(struct store_txn *t, struct store_token *tok, size_t n)
{
	MDB_cursor	*c;
	MDB_val		 k = { 8, NULL }, v;
	struct tokval	 tv;
	size_t		 i;
	int		 rc;

	/* One cursor for all: LMDB looks on the cursor's page first, which
	 * the next of sorted hashes often is. */
	if ((rc = mdb_cursor_open(t->txn, t->st->tokens, &c)) != 0)
		return store_fail(t->st, "cursor", rc);
	for (i = 0; i < n; i++) {
		k.mv_data = &tok[i].hash;
		rc = mdb_cursor_get(c, &k, &v, MDB_SET);
		if (rc != 0 && rc != MDB_NOTFOUND) {
			mdb_cursor_close(c);
			return store_fail(t->st, "get token", rc);
		}
		memset(&tv, 0, sizeof(tv));
		if (rc == 0)
			tokval_read(&v, &tv);
		tok[i].spam = tv.spam;
		tok[i].ham = tv.ham;
		tok[i].day = tv.day;
		tok[i].weight = tv.weight;
	}
	mdb_cursor_close(c);
	return 0;
}

/* n + d, held between 0 and UINT32_MAX. */
static uint32_t
count_add(uint32_t n, int d)
{
	long long r = (long long)n + d;

	if (r < 0)
		return 0;
	return r > UINT32_MAX ? UINT32_MAX : (uint32_t)r;
}

int
store_tokens_add(struct store_txn *t, const uint64_t *hashes, size_t n,
    int dspam, int dham, uint32_t day)
{
	MDB_val		k = { 8, NULL }, v;
	struct tokval	tv;
	size_t		i;
	int		rc;

	for (i = 0; i < n; i++) {
		k.mv_data = (void *)&hashes[i];
		rc = mdb_get(t->txn, t->st->tokens, &k, &v);
		if (rc != 0 && rc != MDB_NOTFOUND)
			return store_fail(t->st, "get token", rc);
		memset(&tv, 0, sizeof(tv));
		if (rc == 0)
			tokval_read(&v, &tv);
		tv.spam = count_add(tv.spam, dspam);
		tv.ham = count_add(tv.ham, dham);
		tv.day = day;
		if (tv.spam == 0 && tv.ham == 0) {
			rc = mdb_del(t->txn, t->st->tokens, &k, NULL);
			if (rc == MDB_NOTFOUND)
				rc = 0;
		} else {
			v.mv_size = sizeof(tv);
			v.mv_data = &tv;
			rc = mdb_put(t->txn, t->st->tokens, &k, &v, 0);
		}
		if (rc != 0)
			return store_fail(t->st, "put token", rc);
	}
	return 0;
}

long long
store_tokens_count(struct store_txn *t)
{
	MDB_stat	ms;
	int		rc;

	if ((rc = mdb_stat(t->txn, t->st->tokens, &ms)) != 0)
		return store_fail(t->st, "stat", rc);
	return (long long)ms.ms_entries;
}

/* What a token walk's visitor wants next. */
enum walk { WALK_NEXT, WALK_WRITE, WALK_STOP };

/* Visits every token in hash order; WALK_WRITE stores the value the
 * visitor changed in place. */
static int
tokens_walk(struct store_txn *t, enum walk (*visit)(void *, uint64_t,
    struct tokval *), void *arg)
{
	MDB_cursor	*c;
	MDB_val		 k, v;
	struct tokval	 tv;
	uint64_t	 h;
	enum walk	 w = WALK_NEXT;
	int		 rc;

	if ((rc = mdb_cursor_open(t->txn, t->st->tokens, &c)) != 0)
		return store_fail(t->st, "cursor", rc);
	for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0 &&
	    w != WALK_STOP; rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		if (k.mv_size != 8 || !tokval_read(&v, &tv))
			continue;
		memcpy(&h, k.mv_data, 8);
		if ((w = visit(arg, h, &tv)) != WALK_WRITE)
			continue;
		v.mv_size = sizeof(tv);
		v.mv_data = &tv;
		if ((rc = mdb_cursor_put(c, &k, &v, MDB_CURRENT)) != 0)
			break;
	}
	mdb_cursor_close(c);
	if (rc != 0 && rc != MDB_NOTFOUND)
		return store_fail(t->st, "cursor", rc);
	return 0;
}

struct each {
	bool	(*fn)(void *, const struct store_token *);
	void	*arg;
};

static enum walk
each_visit(void *arg, uint64_t h, struct tokval *tv)
{
	struct each		*e = arg;
	struct store_token	 tok = { h, tv->spam, tv->ham, tv->day,
				    tv->weight };

	return e->fn(e->arg, &tok) ? WALK_NEXT : WALK_STOP;
}

int
store_tokens_each(struct store_txn *t,
    bool (*fn)(void *, const struct store_token *), void *arg)
{
	struct each e = { fn, arg };

	return tokens_walk(t, each_visit, &e);
}

struct reweigh {
	float		(*fn)(void *, uint64_t);
	void		*arg;
	long long	 changed;
};

static enum walk
reweigh_visit(void *arg, uint64_t h, struct tokval *tv)
{
	struct reweigh	*r = arg;
	float		 w = r->fn(r->arg, h);

	if (w == tv->weight)
		return WALK_NEXT;
	tv->weight = w;
	r->changed++;
	return WALK_WRITE;
}

long long
store_tokens_reweigh(struct store_txn *t,
    float (*fn)(void *, uint64_t hash), void *arg)
{
	struct reweigh r = { fn, arg, 0 };

	if (tokens_walk(t, reweigh_visit, &r) == -1)
		return -1;
	return r.changed;
}

int
store_tokens_del(struct store_txn *t, const uint64_t *hashes, size_t n)
{
	MDB_val	k = { 8, NULL };
	size_t	i;
	int	rc;

	for (i = 0; i < n; i++) {
		k.mv_data = (void *)&hashes[i];
		rc = mdb_del(t->txn, t->st->tokens, &k, NULL);
		if (rc != 0 && rc != MDB_NOTFOUND)
			return store_fail(t->st, "del token", rc);
	}
	return 0;
}

long long
store_disk_size(struct store *st)
{
	char		path[4200];
	struct stat	sb;

	snprintf(path, sizeof(path), "%s/data.mdb", st->dir);
	if (stat(path, &sb) == -1)
		return -1;
	return (long long)sb.st_blocks * 512;
}
