/*
 * greylist_cmd.c: `moatctl greylist list | pass KEY | remove KEY |
 * stats [--json]`: what the greylist filter keeps in the store
 * (src/filters/greylist.h), shown and edited, and its host-wide
 * counters. moatctl is a writer like any worker: its changes land in
 * one LMDB write transaction, seen by the workers' next read; stats only
 * reads.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../filters/greylist.h"
#include "../store/store.h"
#include "greylist_cmd.h"

const char greylist_cmd_usage[] =
    "moatctl [-c FILE] [--db DIR] greylist list | pass [--ttl SECONDS] "
    "POOL | remove KEY|POOL | stats [--json]\n";

static void
when(int64_t t, char *out, size_t n)
{
	time_t		tt = (time_t)t;
	struct tm	tm;

	if (gmtime_r(&tt, &tm) == NULL ||
	    strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(out, n, "%lld", (long long)t);
}

/* One line per record: its kind, key (control bytes shown as '?'),
 * first, last, count. */
static bool
list_one(void *arg, const char *key, const void *val, size_t len)
{
	struct greylist_rec	 r;
	const char		*kind;
	char			 k[STORE_KEY_MAX + 1], f[32], l[32];
	size_t			 i;

	(void)arg;
	if (len != sizeof(r))
		return true;
	memcpy(&r, val, sizeof(r));
	kind = strncmp(key, GREYLIST_PASS, 5) == 0 ? "pass" :
	    strncmp(key, GREYLIST_TRIPLET, 5) == 0 ? "triplet" :
	    strncmp(key, GREYLIST_NEVER, 5) == 0 ? "attempt" :
	    strncmp(key, GREYLIST_CORRESP, 5) == 0 ? "corresp" : "alias";
	for (i = 0; key[i] != '\0' && i < sizeof(k) - 1; i++)
		k[i] = (unsigned char)key[i] < 0x20 || key[i] == 0x7f ? '?' :
		    key[i];
	k[i] = '\0';
	when(r.first, f, sizeof(f));
	when(r.last, l, sizeof(l));
	printf("%-7s %s first=%s last=%s count=%u\n", kind, k, f, l,
	    r.count);
	return true;
}

static int
cmd_list(struct store *st)
{
	struct store_txn	*t;
	int			 rc;

	if ((t = store_begin(st, false)) == NULL) {
		fprintf(stderr, "moatctl: %s\n", store_error(st));
		return 1;
	}
	rc = store_scan(t, "gl:", list_one, NULL);
	store_abort(t);
	if (rc == -1)
		fprintf(stderr, "moatctl: %s\n", store_error(st));
	return rc == -1 ? 1 : 0;
}

/* POOL or gl:p:POOL: a pass for ttl seconds from now. */
static int
cmd_pass(struct store *st, const char *pool, long long ttl)
{
	struct greylist_rec	 r;
	struct store_txn	*t;
	char			 key[STORE_KEY_MAX + 1];
	time_t			 now = store_now();

	if (strncmp(pool, GREYLIST_PASS, 5) == 0)
		pool += 5;
	if (pool[0] == '\0' || strchr(pool, ':') == NULL ||
	    (size_t)snprintf(key, sizeof(key), GREYLIST_PASS "%s", pool) >=
	    sizeof(key)) {
		fprintf(stderr, "moatctl: greylist pass: a pool key "
		    "(spf:DOMAIN, rdns:NAME, net:CIDR, ip:ADDR)\n");
		return 2;
	}
	r = (struct greylist_rec){ now, now, 0, 0 };
	if ((t = store_begin(st, true)) == NULL ||
	    store_put(t, key, &r, sizeof(r), now + ttl) == -1 ||
	    store_commit(t) == -1) {
		fprintf(stderr, "moatctl: %s\n", store_error(st));
		return 1;
	}
	printf("%s passed for %lld s\n", key, ttl);
	return 0;
}

struct rm {
	char	(*keys)[STORE_KEY_MAX + 1];
	size_t	 n, cap;
};

static bool
rm_collect(void *arg, const char *key, const void *val, size_t len)
{
	struct rm	*rm = arg;
	void		*p;

	(void)val;
	(void)len;
	if (rm->n == rm->cap) {
		rm->cap = rm->cap ? rm->cap * 2 : 16;
		if ((p = realloc(rm->keys, rm->cap * sizeof(*rm->keys))) ==
		    NULL)
			return false;
		rm->keys = p;
	}
	snprintf(rm->keys[rm->n++], sizeof(rm->keys[0]), "%s", key);
	return true;
}

/* A whole key (gl:...), or a pool: its pass and every triplet under it. */
static int
cmd_remove(struct store *st, const char *what)
{
	struct store_txn	*t;
	struct rm		 rm = { NULL, 0, 0 };
	char			 pfx[STORE_KEY_MAX + 1];
	const char		*const kinds[] = { GREYLIST_TRIPLET,
				    GREYLIST_ALIAS };
	size_t			 i;
	int			 rc = 0;

	if ((t = store_begin(st, true)) == NULL) {
		fprintf(stderr, "moatctl: %s\n", store_error(st));
		return 1;
	}
	if (strncmp(what, "gl:", 3) == 0)
		rc = store_scan(t, what, rm_collect, &rm);
	else {
		snprintf(pfx, sizeof(pfx), GREYLIST_PASS "%s", what);
		rc = store_scan(t, pfx, rm_collect, &rm);
		for (i = 0; i < 2 && rc == 0; i++) {
			snprintf(pfx, sizeof(pfx), "%s%s|", kinds[i], what);
			rc = store_scan(t, pfx, rm_collect, &rm);
		}
	}
	for (i = 0; i < rm.n && rc == 0; i++) {
		/* A prefix scan of gl:p:ip:1.2.3.4 also meets ...4.5: only
		 * the exact pass, and triplets, go. */
		if (strncmp(rm.keys[i], GREYLIST_PASS, 5) == 0 &&
		    strcmp(rm.keys[i] + 5, strncmp(what, "gl:", 3) == 0 ?
		    what + 5 : what) != 0)
			continue;
		if ((rc = store_del(t, rm.keys[i])) == 0)
			printf("removed %s\n", rm.keys[i]);
	}
	if (rc == -1 || store_commit(t) == -1) {
		if (rc == -1)
			store_abort(t);
		fprintf(stderr, "moatctl: %s\n", store_error(st));
		free(rm.keys);
		return 1;
	}
	rc = rm.n == 0 ? 1 : 0;
	if (rc == 1)
		fprintf(stderr, "moatctl: greylist remove: %s: not found\n",
		    what);
	free(rm.keys);
	return rc;
}

/* One counter (absent: 0). */
static long long
counter(struct store_txn *t, const char *key)
{
	long long n = 0;

	if (store_get(t, key, &n, sizeof(n)) != (long)sizeof(n))
		n = 0;
	return n;
}

/* The counters the workers keep in their write batches: deferrals,
 * passes, attempts never retried, the passes' delay histogram. */
static int
cmd_stats(struct store *st, bool json)
{
	struct store_txn	*t;
	long long		 d, p, nv, h[GREYLIST_BUCKETS];
	char			 key[64];
	size_t			 i;

	if ((t = store_begin(st, false)) == NULL) {
		fprintf(stderr, "moatctl: %s\n", store_error(st));
		return 1;
	}
	d = counter(t, GREYLIST_M_DEFERRED);
	p = counter(t, GREYLIST_M_PASSED);
	nv = counter(t, GREYLIST_M_NEVER);
	for (i = 0; i < GREYLIST_BUCKETS; i++) {
		snprintf(key, sizeof(key), "%s%s", GREYLIST_M_DELAY,
		    greylist_bucket_name(i));
		h[i] = counter(t, key);
	}
	store_abort(t);
	if (json) {
		printf("{\"deferred\":%lld,\"passed\":%lld,"
		    "\"never_retried\":%lld,\"delay\":{", d, p, nv);
		for (i = 0; i < GREYLIST_BUCKETS; i++)
			printf("%s\"%s\":%lld", i > 0 ? "," : "",
			    greylist_bucket_name(i), h[i]);
		printf("}}\n");
		return 0;
	}
	printf("deferred       %lld\npassed         %lld\n"
	    "never_retried  %lld\ndelay of passed retries:\n", d, p, nv);
	for (i = 0; i < GREYLIST_BUCKETS; i++)
		printf("  %-6s %lld\n", greylist_bucket_name(i), h[i]);
	return 0;
}

int
greylist_cmd(struct store *st, int argc, char **argv)
{
	long long	 ttl = 35LL * 86400;
	char		*end;
	int		 i = 1;

	if (argc >= 1 && strcmp(argv[0], "list") == 0 && argc == 1)
		return cmd_list(st);
	if (argc >= 1 && strcmp(argv[0], "pass") == 0) {
		if (argc >= 3 && strcmp(argv[1], "--ttl") == 0) {
			ttl = strtoll(argv[2], &end, 10);
			if (*end != '\0' || ttl <= 0 || ttl > 3650LL * 86400)
				goto bad;
			i = 3;
		}
		if (argc != i + 1)
			goto bad;
		return cmd_pass(st, argv[i], ttl);
	}
	if (argc == 2 && strcmp(argv[0], "remove") == 0)
		return cmd_remove(st, argv[1]);
	if (argc >= 1 && strcmp(argv[0], "stats") == 0 && (argc == 1 ||
	    (argc == 2 && strcmp(argv[1], "--json") == 0)))
		return cmd_stats(st, argc == 2);
bad:
	fprintf(stderr, "usage: %s", greylist_cmd_usage);
	return 2;
}
