/*
 * karma_cmd.c: `moatctl block list | add IP [--reason R] [--for D] |
 * remove IP` and `moatctl client IP [--json]`: the blocks the karma
 * filter keeps in the store ("block:CLIENT", "offence:CLIENT",
 * src/filters/karma.h), shown and edited, and one client's history: its
 * block, offences and the karma window's counts, read from the table
 * moatd publishes in var_dir/run/karma.win (read only), and the
 * greylisting passes of its address and /24 (/64) pools. A client is
 * named as karma names it (karma_client(): IPv6 by its /64), so both
 * agree on the keys. moatd reads a client's block at its next connect,
 * so an edit counts from then on.
 */
#include <arpa/inet.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../daemon/conf.h"
#include "../filters/filter.h"
#include "../filters/greylist.h"
#include "../filters/karma.h"
#include "../filters/policy.h"
#include "../store/store.h"
#include "karma_cmd.h"

#define BLOCK_TTL_DEFAULT	14400	/* the filter's default block */
#define BLOCK_TTL_MAX		(366LL * 86400)

extern const struct filter filter_karma;

const char block_cmd_usage[] =
    "moatctl [-c FILE] [--db DIR] block list | add IP [--reason R] "
    "[--for DURATION] | remove IP\n"
    "       moatctl [-c FILE] [--db DIR] client IP [--json]\n";

static void
when(time_t t, char *out, size_t n)
{
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL ||
	    strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(out, n, "%lld", (long long)t);
}

/* One line per block: the client, until when, the time left, the
 * reason, the offence count. */
static bool
list_one(void *arg, const char *key, const void *val, size_t len)
{
	char		reason[KARMA_REASON_MAX + 1], u[32], left[24];
	time_t		until;
	unsigned	off;

	(void)arg;
	if (karma_block_parse(val, len, &until, &off, reason,
	    sizeof(reason)) == -1)
		return true;
	when(until, u, sizeof(u));
	karma_fmt_left(left, sizeof(left), (long long)(until - store_now()));
	printf("%s until=%s left=%s offences=%u reason=\"%s\"\n",
	    key + strlen(KARMA_BLOCK), u, left, off, reason);
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
	rc = store_scan(t, KARMA_BLOCK, list_one, NULL);
	store_abort(t);
	if (rc == -1)
		fprintf(stderr, "moatctl: %s\n", store_error(st));
	return rc == -1 ? 1 : 0;
}

/* The client's name (IPv6: its /64); -1 with a message when ip is not
 * an address. */
static int
client_of(const char *cmd, const char *ip, char *out, size_t n)
{
	if (karma_client(ip, out, n) == -1) {
		fprintf(stderr, "moatctl: %s: not an IP address: %s\n", cmd,
		    ip);
		return -1;
	}
	return 0;
}

static int
cmd_add(struct store *st, const char *ip, const char *reason,
    long long ttl)
{
	struct store_txn	*t;
	char			 key[STORE_KEY_MAX + 1], val[STORE_VAL_MAX];
	char			 client[KARMA_CLIENT_MAX];
	time_t			 until = store_now() + (time_t)ttl;
	size_t			 len;

	if (client_of("block add", ip, client, sizeof(client)) == -1 ||
	    karma_block_key(key, sizeof(key), client) == -1)
		return 2;
	len = karma_block_fmt(val, sizeof(val), until, 0, reason);
	if ((t = store_begin(st, true)) == NULL ||
	    store_put(t, key, val, len, until) == -1 ||
	    store_commit(t) == -1) {
		fprintf(stderr, "moatctl: %s\n", store_error(st));
		return 1;
	}
	printf("%s blocked for %lld s\n", client, ttl);
	return 0;
}

static int
cmd_remove(struct store *st, const char *ip)
{
	struct store_txn	*t;
	char			 key[STORE_KEY_MAX + 1], val[STORE_VAL_MAX];
	char			 client[KARMA_CLIENT_MAX];
	long			 had;

	if (client_of("block remove", ip, client, sizeof(client)) == -1 ||
	    karma_block_key(key, sizeof(key), client) == -1)
		return 2;
	if ((t = store_begin(st, true)) == NULL) {
		fprintf(stderr, "moatctl: %s\n", store_error(st));
		return 1;
	}
	had = store_get(t, key, val, sizeof(val));
	if ((had >= 0 && store_del(t, key) == -1) || store_commit(t) == -1) {
		fprintf(stderr, "moatctl: %s\n", store_error(st));
		return 1;
	}
	if (had < 0) {
		fprintf(stderr, "moatctl: %s is not blocked\n", client);
		return 1;
	}
	printf("%s unblocked\n", client);
	return 0;
}

/* "90", "30s", "90m", "4h", "2d": seconds, -1 when bad or out of
 * bounds. */
static long long
duration(const char *a)
{
	char		*end;
	long long	 v, mul = 1;

	if (*a < '0' || *a > '9')
		return -1;
	v = strtoll(a, &end, 10);
	if (strcmp(end, "d") == 0)
		mul = 86400;
	else if (strcmp(end, "h") == 0)
		mul = 3600;
	else if (strcmp(end, "m") == 0)
		mul = 60;
	else if (*end != '\0' && strcmp(end, "s") != 0)
		return -1;
	if (v < 1 || v > BLOCK_TTL_MAX / mul)
		return -1;
	return v * mul;
}

/* add's arguments after the IP: --reason R, --ttl S, --for D, or the
 * reason as a plain word. */
static int
add_args(int argc, char **argv, const char **reason, long long *ttl)
{
	int i;

	for (i = 2; i < argc; i++) {
		if (strcmp(argv[i], "--reason") == 0 && i + 1 < argc)
			*reason = argv[++i];
		else if ((strcmp(argv[i], "--ttl") == 0 ||
		    strcmp(argv[i], "--for") == 0) && i + 1 < argc) {
			if ((*ttl = duration(argv[++i])) == -1)
				return -1;
		} else if (argv[i][0] != '-')
			*reason = argv[i];
		else
			return -1;
	}
	return 0;
}

int
block_cmd(struct store *st, int argc, char **argv)
{
	const char	*reason = "blocked by the operator";
	long long	 ttl = BLOCK_TTL_DEFAULT;

	if (argc == 1 && strcmp(argv[0], "list") == 0)
		return cmd_list(st);
	if (argc >= 2 && strcmp(argv[0], "add") == 0) {
		if (add_args(argc, argv, &reason, &ttl) == -1) {
			fputs(block_cmd_usage, stderr);
			return 2;
		}
		return cmd_add(st, argv[1], reason, ttl);
	}
	if (argc == 2 && strcmp(argv[0], "remove") == 0)
		return cmd_remove(st, argv[1]);
	fputs(block_cmd_usage, stderr);
	return 2;
}

/* ---- moatctl client ---------------------------------------------------- */

#define CLIENT_GL_MAX	2	/* greylist pools of an address: ip, net */

struct client_gl {
	char			pool[INET6_ADDRSTRLEN + 8];
	struct greylist_rec	rec;
};

struct client_info {
	char		client[KARMA_CLIENT_MAX];
	struct client_gl gl[CLIENT_GL_MAX];
	size_t		ngl;
	bool		blocked;
	time_t		until;
	char		reason[KARMA_REASON_MAX + 1];
	unsigned	offences;
	long long	last_ttl;
	bool		counted;	/* the window was read */
	char		why[160];	/* ... or why not */
	double		total, bad;
	struct karma_rule rule;
};

/* The karma window's counts of the client, from the published table. */
static void
client_window(const struct moat_config *cf, struct client_info *ci)
{
	struct window_table	*t;
	struct karma_tally	 y;
	char			 path[1024];

	if (cf == NULL) {
		snprintf(ci->why, sizeof(ci->why), "no configuration read "
		    "(give -c FILE)");
		return;
	}
	karma_rule_of(cf->pl->def->conf[filter_index(&filter_karma)],
	    &ci->rule);
	if ((size_t)snprintf(path, sizeof(path), "%s/run/karma.win",
	    cf->server.var_dir) >= sizeof(path)) {
		snprintf(ci->why, sizeof(ci->why), "var_dir too long");
		return;
	}
	if ((t = window_table_open(path, ci->why, sizeof(ci->why))) == NULL)
		return;
	y = karma_count(t, &ci->rule, ci->client, strlen(ci->client), 0, 0,
	    window_now_ms());
	window_table_free(t);
	ci->counted = true;
	ci->total = y.total;
	ci->bad = y.bad;
}

/* The greylist pool keys of an address (greylist.c's addr_pools: "ip:A"
 * and "net:A/24" or "net:A/64"); how many. */
static size_t
gl_pools(const char *ip, char pools[][INET6_ADDRSTRLEN + 8])
{
	unsigned char	 a[16];
	char		 buf[INET6_ADDRSTRLEN];

	if (inet_pton(AF_INET, ip, a) == 1) {
		inet_ntop(AF_INET, a, buf, sizeof(buf));
		snprintf(pools[0], INET6_ADDRSTRLEN + 8, "ip:%s", buf);
		a[3] = 0;
		inet_ntop(AF_INET, a, buf, sizeof(buf));
		snprintf(pools[1], INET6_ADDRSTRLEN + 8, "net:%s/24", buf);
		return 2;
	}
	if (inet_pton(AF_INET6, ip, a) == 1) {
		inet_ntop(AF_INET6, a, buf, sizeof(buf));
		snprintf(pools[0], INET6_ADDRSTRLEN + 8, "ip:%s", buf);
		memset(a + 8, 0, 8);
		inet_ntop(AF_INET6, a, buf, sizeof(buf));
		snprintf(pools[1], INET6_ADDRSTRLEN + 8, "net:%s/64", buf);
		return 2;
	}
	return 0;
}

static void
client_greylist(struct store_txn *t, const char *ip, struct client_info *ci)
{
	char	pools[CLIENT_GL_MAX][INET6_ADDRSTRLEN + 8];
	char	key[STORE_KEY_MAX + 1], val[STORE_VAL_MAX];
	size_t	i, n;

	memset(pools, 0, sizeof(pools));
	n = gl_pools(ip, pools);
	for (i = 0; i < n; i++) {
		if ((size_t)snprintf(key, sizeof(key), GREYLIST_PASS "%s",
		    pools[i]) >= sizeof(key) ||
		    store_get(t, key, val, sizeof(val)) !=
		    (long)sizeof(struct greylist_rec))
			continue;
		memcpy(ci->gl[ci->ngl].pool, pools[i], sizeof(pools[i]));
		memcpy(&ci->gl[ci->ngl].rec, val, sizeof(struct greylist_rec));
		ci->ngl++;
	}
}

static int
client_store(struct store *st, const char *ip, struct client_info *ci)
{
	struct store_txn	*t;
	char			 key[STORE_KEY_MAX + 1], val[STORE_VAL_MAX];
	long			 n;

	if ((t = store_begin(st, false)) == NULL) {
		fprintf(stderr, "moatctl: %s\n", store_error(st));
		return -1;
	}
	if (karma_block_key(key, sizeof(key), ci->client) == 0 &&
	    (n = store_get(t, key, val, sizeof(val))) > 0 &&
	    karma_block_parse(val, (size_t)n, &ci->until, NULL, ci->reason,
	    sizeof(ci->reason)) == 0 && ci->until > store_now())
		ci->blocked = true;
	if (karma_offence_key(key, sizeof(key), ci->client) == 0 &&
	    (n = store_get(t, key, val, sizeof(val))) > 0 &&
	    karma_offence_parse(val, (size_t)n, &ci->offences,
	    &ci->last_ttl) == -1)
		ci->offences = 0;
	client_greylist(t, ip, ci);
	store_abort(t);
	return 0;
}

/* A JSON string: quotes, backslashes and control characters escaped. */
static void
json_str(const char *s)
{
	putchar('"');
	for (; *s != '\0'; s++) {
		if (*s == '"' || *s == '\\')
			printf("\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			printf("\\u%04x", (unsigned char)*s);
		else
			putchar(*s);
	}
	putchar('"');
}

static void
client_json(const struct client_info *ci)
{
	size_t i;

	fputs("{\"client\":", stdout);
	json_str(ci->client);
	printf(",\"blocked\":%s", ci->blocked ? "true" : "false");
	if (ci->blocked) {
		printf(",\"until\":%lld,\"left\":%lld,\"reason\":",
		    (long long)ci->until,
		    (long long)(ci->until - store_now()));
		json_str(ci->reason);
	}
	printf(",\"offences\":%u,\"last_block\":%lld", ci->offences,
	    ci->last_ttl);
	fputs(",\"greylist_passes\":[", stdout);
	for (i = 0; i < ci->ngl; i++) {
		fputs(i > 0 ? ",{\"pool\":" : "{\"pool\":", stdout);
		json_str(ci->gl[i].pool);
		printf(",\"first\":%lld,\"last\":%lld,\"uses\":%u}",
		    (long long)ci->gl[i].rec.first,
		    (long long)ci->gl[i].rec.last, ci->gl[i].rec.count);
	}
	putchar(']');
	if (ci->counted)
		printf(",\"window\":{\"total\":%.1f,\"bad\":%.1f,"
		    "\"seconds\":%llu,\"attempts\":%llu}}\n", ci->total,
		    ci->bad, (unsigned long long)(ci->rule.window_ms / 1000),
		    (unsigned long long)ci->rule.attempts);
	else {
		fputs(",\"window\":null,\"window_error\":", stdout);
		json_str(ci->why);
		fputs("}\n", stdout);
	}
}

static void
client_text(const struct client_info *ci)
{
	char	u[32], left[24], f[32];
	size_t	i;

	printf("client %s\n", ci->client);
	if (ci->blocked) {
		when(ci->until, u, sizeof(u));
		karma_fmt_left(left, sizeof(left),
		    (long long)(ci->until - store_now()));
		printf("block until=%s left=%s reason=\"%s\"\n", u, left,
		    ci->reason);
	} else
		printf("block none\n");
	printf("offences %u last_block=%llds\n", ci->offences, ci->last_ttl);
	if (ci->counted)
		printf("window total=%.1f bad=%.1f (last %llu s, blocks past "
		    "%llu)\n", ci->total, ci->bad,
		    (unsigned long long)(ci->rule.window_ms / 1000),
		    (unsigned long long)ci->rule.attempts);
	else
		printf("window unknown (%s)\n", ci->why);
	for (i = 0; i < ci->ngl; i++) {
		when((time_t)ci->gl[i].rec.first, f, sizeof(f));
		when((time_t)ci->gl[i].rec.last, u, sizeof(u));
		printf("greylist pass %s first=%s last=%s uses=%u\n",
		    ci->gl[i].pool, f, u, ci->gl[i].rec.count);
	}
}

int
karma_client_cmd(const struct moat_config *cf, struct store *st, int argc,
    char **argv)
{
	struct client_info	ci;
	bool			json = false;

	if (argc == 2 && strcmp(argv[1], "--json") == 0)
		json = true;
	else if (argc != 1) {
		fputs(block_cmd_usage, stderr);
		return 2;
	}
	memset(&ci, 0, sizeof(ci));
	if (client_of("client", argv[0], ci.client, sizeof(ci.client)) == -1)
		return 2;
	if (client_store(st, argv[0], &ci) == -1)
		return 1;
	client_window(cf, &ci);
	if (json)
		client_json(&ci);
	else
		client_text(&ci);
	return 0;
}
