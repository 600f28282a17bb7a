/*
 * karma_cmd.c: `moatctl block list | add IP [--reason R] [--ttl S] |
 * remove IP`: the blocks the karma filter keeps in the store
 * ("block:IP", src/filters/karma.h), shown and edited. moatd reads a
 * client's block at its next connect, so an edit counts from then on.
 */
#include <arpa/inet.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../filters/karma.h"
#include "../store/store.h"
#include "karma_cmd.h"

#define BLOCK_TTL_DEFAULT	14400	/* the filter's default block */
#define BLOCK_TTL_MAX		(366LL * 86400)

const char block_cmd_usage[] =
    "moatctl [-c FILE] [--db DIR] block list | add IP [--reason R] "
    "[--ttl SECONDS] | remove IP\n";

static void
when(time_t t, char *out, size_t n)
{
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL ||
	    strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(out, n, "%lld", (long long)t);
}

/* One line per block: the IP, until when, the time left, the reason. */
static bool
list_one(void *arg, const char *key, const void *val, size_t len)
{
	char	reason[KARMA_REASON_MAX + 1], u[32], left[24];
	time_t	until;

	(void)arg;
	if (karma_block_parse(val, len, &until, reason, sizeof(reason)) == -1)
		return true;
	when(until, u, sizeof(u));
	karma_fmt_left(left, sizeof(left), (long long)(until - store_now()));
	printf("%s until=%s left=%s reason=\"%s\"\n",
	    key + strlen(KARMA_BLOCK), u, left, reason);
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

/* An address moatd would see as the client's (s->ip): IPv4 or IPv6. */
static bool
valid_ip(const char *ip)
{
	unsigned char b[16];

	return inet_pton(AF_INET, ip, b) == 1 ||
	    inet_pton(AF_INET6, ip, b) == 1;
}

static int
cmd_add(struct store *st, const char *ip, const char *reason,
    long long ttl)
{
	struct store_txn	*t;
	char			 key[STORE_KEY_MAX + 1], val[STORE_VAL_MAX];
	time_t			 until = store_now() + (time_t)ttl;
	size_t			 len;

	if (!valid_ip(ip) || karma_block_key(key, sizeof(key), ip) == -1) {
		fprintf(stderr, "moatctl: block add: not an IP address: "
		    "%s\n", ip);
		return 2;
	}
	len = karma_block_fmt(val, sizeof(val), until, reason);
	if ((t = store_begin(st, true)) == NULL ||
	    store_put(t, key, val, len, until) == -1 ||
	    store_commit(t) == -1) {
		fprintf(stderr, "moatctl: %s\n", store_error(st));
		return 1;
	}
	printf("%s blocked for %lld s\n", ip, ttl);
	return 0;
}

static int
cmd_remove(struct store *st, const char *ip)
{
	struct store_txn	*t;
	char			 key[STORE_KEY_MAX + 1], val[STORE_VAL_MAX];
	long			 had;

	if (karma_block_key(key, sizeof(key), ip) == -1)
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
		fprintf(stderr, "moatctl: %s is not blocked\n", ip);
		return 1;
	}
	printf("%s unblocked\n", ip);
	return 0;
}

/* add's options after the IP: --reason R, --ttl S. */
static int
add_args(int argc, char **argv, const char **reason, long long *ttl)
{
	char	*end;
	int	 i;

	for (i = 2; i < argc; i += 2) {
		if (i + 1 >= argc)
			return -1;
		if (strcmp(argv[i], "--reason") == 0)
			*reason = argv[i + 1];
		else if (strcmp(argv[i], "--ttl") == 0) {
			*ttl = strtoll(argv[i + 1], &end, 10);
			if (*end != '\0' || *ttl < 1 || *ttl > BLOCK_TTL_MAX)
				return -1;
		} else
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
