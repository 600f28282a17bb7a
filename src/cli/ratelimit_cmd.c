/*
 * ratelimit_cmd.c: moatctl's view of the ratelimit filter
 * (docs/FILTERS.md, "ratelimit"):
 *   suspend list | add SUBJECT [REASON...] | lift SUBJECT: the outbound
 *     suspensions ("suspend:SUBJECT" store keys), shown and edited;
 *     moatd reads them at each outbound MAIL;
 *   top-senders [--hours N]: messages and recipients per outbound user
 *     or relay client over the last N hours, summed from the per-hour
 *     store counters;
 *   rate SUBJECT: for every configured limit that counts that kind of
 *     subject (an IP, a user, an address), its count now, peeked from
 *     the table moatd publishes (<var_dir>/run/ratelimit.win).
 * Every command prints text, or one JSON document with --json.
 *
 * Invariant: rate builds its keys with the filter's ratelimit_key() and
 * its limits are the filter's own, parsed from the same moat.conf, so
 * it peeks at exactly the cells moatd counts in; it never writes them.
 */
#include <arpa/inet.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../core/window.h"
#include "../daemon/conf.h"
#include "../filters/policy.h"
#include "../filters/ratelimit.h"
#include "../store/store.h"
#include "json.h"
#include "ratelimit_cmd.h"

#define TOP_HOURS_DEFAULT	24
#define TOP_HOURS_MAX		(24 * 366)
#define TOP_SUBJECTS_MAX	100000	/* distinct senders summed */

extern const struct filter filter_ratelimit;

const char suspend_cmd_usage[] =
    "moatctl [-c FILE] [--db DIR] suspend list | add SUBJECT [REASON...] "
    "| lift SUBJECT [--json]\n";
const char top_senders_cmd_usage[] =
    "moatctl [-c FILE] [--db DIR] top-senders [--hours N] [--json]\n";
const char rate_cmd_usage[] =
    "moatctl [-c FILE] rate IP|USER|ADDRESS [--json]\n";

/* s as a JSON string: valid UTF-8 kept, other bytes U+FFFD. */
static void
json_str(const char *s)
{
	const unsigned char	*u = (const unsigned char *)s;
	size_t			 n = strlen(s), i, k;

	putchar('"');
	for (i = 0; i < n; ) {
		if (u[i] == '"' || u[i] == '\\') {
			printf("\\%c", u[i++]);
		} else if (u[i] < 0x20 || u[i] == 0x7f) {
			printf("\\u%04x", u[i++]);
		} else if (u[i] < 0x80) {
			putchar(u[i++]);
		} else if ((k = json_utf8_len(u + i, n - i)) == 0) {
			fputs("\\ufffd", stdout);
			i++;
		} else {
			fwrite(u + i, 1, k, stdout);
			i += k;
		}
	}
	putchar('"');
}

/* Drops "--json" from argv; true when it was there. */
static bool
take_json(int *argc, char **argv)
{
	bool	yes = false;
	int	i, j;

	for (i = j = 0; i < *argc; i++)
		if (strcmp(argv[i], "--json") == 0)
			yes = true;
		else
			argv[j++] = argv[i];
	*argc = j;
	return yes;
}

static void
when(time_t t, char *out, size_t n)
{
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL ||
	    strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(out, n, "%lld", (long long)t);
}

/* ---- suspend ---------------------------------------------------------- */

struct list_ctx {
	bool	json;
	size_t	n;
};

static bool
suspend_one(void *arg, const char *key, const void *val, size_t len)
{
	struct list_ctx	*lc = arg;
	char		 reason[RL_REASON_MAX + 1], t[32];
	time_t		 since;

	if (ratelimit_suspend_parse(val, len, &since, reason,
	    sizeof(reason)) == -1)
		return true;
	when(since, t, sizeof(t));
	if (!lc->json) {
		printf("%s since=%s reason=\"%s\"\n", key + strlen(RL_SUSPEND),
		    t, reason);
		return true;
	}
	printf("%s{\"subject\":", lc->n++ > 0 ? "," : "");
	json_str(key + strlen(RL_SUSPEND));
	printf(",\"since\":\"%s\",\"reason\":", t);
	json_str(reason);
	putchar('}');
	return true;
}

static int
suspend_list(struct store *st, bool json)
{
	struct list_ctx		 lc = { json, 0 };
	struct store_txn	*t;
	int			 rc;

	if ((t = store_begin(st, false)) == NULL) {
		fprintf(stderr, "moatctl: %s\n", store_error(st));
		return 1;
	}
	if (json)
		fputs("{\"suspended\":[", stdout);
	rc = store_scan(t, RL_SUSPEND, suspend_one, &lc);
	store_abort(t);
	if (json)
		fputs("]}\n", stdout);
	if (rc == -1)
		fprintf(stderr, "moatctl: %s\n", store_error(st));
	return rc == -1 ? 1 : 0;
}

/* The words of argv joined by spaces, cut to n - 1 bytes. */
static void
join(char *out, size_t n, int argc, char **argv)
{
	size_t	len = 0;
	int	i, w;

	out[0] = '\0';
	for (i = 0; i < argc && len + 1 < n; i++) {
		w = snprintf(out + len, n - len, "%s%s", i ? " " : "",
		    argv[i]);
		if (w < 0 || (size_t)w >= n - len)
			break;
		len += (size_t)w;
	}
}

static int
suspend_add(struct store *st, const char *who, const char *reason,
    bool json)
{
	struct store_txn	*t;
	char			 key[STORE_KEY_MAX + 1], val[STORE_VAL_MAX];
	size_t			 len;

	if (strlen(who) > RL_SUBJECT_MAX ||
	    ratelimit_suspend_key(key, sizeof(key), who) == -1) {
		fprintf(stderr, "moatctl: suspend add: not a user or "
		    "address: %s\n", who);
		return 2;
	}
	len = ratelimit_suspend_fmt(val, sizeof(val), store_now(), reason);
	if ((t = store_begin(st, true)) == NULL ||
	    store_put(t, key, val, len, 0) == -1 || store_commit(t) == -1) {
		fprintf(stderr, "moatctl: %s\n", store_error(st));
		return 1;
	}
	if (json) {
		fputs("{\"suspended\":", stdout);
		json_str(who);
		fputs("}\n", stdout);
	} else
		printf("%s suspended\n", who);
	return 0;
}

static int
suspend_lift(struct store *st, const char *who, bool json)
{
	struct store_txn	*t;
	char			 key[STORE_KEY_MAX + 1], val[STORE_VAL_MAX];
	long			 had;

	if (ratelimit_suspend_key(key, sizeof(key), who) == -1)
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
		fprintf(stderr, "moatctl: %s is not suspended\n", who);
		return 1;
	}
	if (json) {
		fputs("{\"lifted\":", stdout);
		json_str(who);
		fputs("}\n", stdout);
	} else
		printf("%s lifted\n", who);
	return 0;
}

int
suspend_cmd(struct store *st, int argc, char **argv)
{
	char	reason[RL_REASON_MAX + 1];
	bool	json = take_json(&argc, argv);

	if (argc == 1 && strcmp(argv[0], "list") == 0)
		return suspend_list(st, json);
	if (argc >= 2 && strcmp(argv[0], "add") == 0) {
		join(reason, sizeof(reason), argc - 2, argv + 2);
		return suspend_add(st, argv[1], argc > 2 ? reason :
		    "by the operator", json);
	}
	if (argc == 2 && strcmp(argv[0], "lift") == 0)
		return suspend_lift(st, argv[1], json);
	fputs(suspend_cmd_usage, stderr);
	return 2;
}

/* ---- top-senders ------------------------------------------------------ */

struct top {
	char		*subject;
	long long	 msgs, rcpts;
};

struct top_ctx {
	struct top	*v;
	size_t		 n, cap;
	size_t		 plen;		/* "out:YYYYMMDDHH:" */
	bool		 oom;
};

static struct top *
top_find(struct top_ctx *tc, const char *subject)
{
	struct top	*nv;
	size_t		 i, cap;

	for (i = 0; i < tc->n; i++)
		if (strcmp(tc->v[i].subject, subject) == 0)
			return &tc->v[i];
	if (tc->n == TOP_SUBJECTS_MAX)
		return NULL;
	if (tc->n == tc->cap) {
		cap = tc->cap ? tc->cap * 2 : 64;
		if ((nv = realloc(tc->v, cap * sizeof(*nv))) == NULL)
			return NULL;
		tc->v = nv;
		tc->cap = cap;
	}
	if ((tc->v[tc->n].subject = strdup(subject)) == NULL)
		return NULL;
	tc->v[tc->n].msgs = tc->v[tc->n].rcpts = 0;
	return &tc->v[tc->n++];
}

/* One counter "out:HOUR:m:SUBJECT" (or r:) added to its subject. */
static bool
top_one(void *arg, const char *key, const void *val, size_t len)
{
	struct top_ctx	*tc = arg;
	struct top	*t;
	const char	*p = key + tc->plen;
	long long	 n;

	if (len != sizeof(n) || (p[0] != 'm' && p[0] != 'r') || p[1] != ':')
		return true;
	memcpy(&n, val, sizeof(n));
	if ((t = top_find(tc, p + 2)) == NULL) {
		tc->oom = true;
		return false;
	}
	if (p[0] == 'm')
		t->msgs += n;
	else
		t->rcpts += n;
	return true;
}

static int
top_cmp(const void *a, const void *b)
{
	const struct top *x = a, *y = b;

	if (x->msgs != y->msgs)
		return x->msgs < y->msgs ? 1 : -1;
	if (x->rcpts != y->rcpts)
		return x->rcpts < y->rcpts ? 1 : -1;
	return strcmp(x->subject, y->subject);
}

static void
top_print(const struct top_ctx *tc, long long hours, bool json)
{
	size_t i;

	if (json)
		printf("{\"hours\":%lld,\"senders\":[", hours);
	for (i = 0; i < tc->n; i++) {
		if (!json) {
			printf("%s messages=%lld recipients=%lld\n",
			    tc->v[i].subject, tc->v[i].msgs, tc->v[i].rcpts);
			continue;
		}
		printf("%s{\"sender\":", i > 0 ? "," : "");
		json_str(tc->v[i].subject);
		printf(",\"messages\":%lld,\"recipients\":%lld}",
		    tc->v[i].msgs, tc->v[i].rcpts);
	}
	if (json)
		fputs("]}\n", stdout);
}

int
top_senders_cmd(struct store *st, int argc, char **argv)
{
	struct top_ctx		 tc;
	struct store_txn	*t;
	long long		 hours = TOP_HOURS_DEFAULT, h;
	char			 prefix[32], *end;
	bool			 json = take_json(&argc, argv);
	time_t			 now = store_now();
	int			 rc = 0;
	size_t			 i;

	if (argc == 2 && strcmp(argv[0], "--hours") == 0) {
		hours = strtoll(argv[1], &end, 10);
		if (*end != '\0' || hours < 1 || hours > TOP_HOURS_MAX) {
			fprintf(stderr, "moatctl: top-senders: --hours is 1 "
			    "to %d\n", TOP_HOURS_MAX);
			return 2;
		}
	} else if (argc != 0) {
		fputs(top_senders_cmd_usage, stderr);
		return 2;
	}
	if ((t = store_begin(st, false)) == NULL) {
		fprintf(stderr, "moatctl: %s\n", store_error(st));
		return 1;
	}
	memset(&tc, 0, sizeof(tc));
	/* The current hour and the hours-1 before it. */
	for (h = 0; h < hours && rc == 0 && !tc.oom; h++) {
		if (ratelimit_top_prefix(prefix, sizeof(prefix),
		    now - (time_t)(h * 3600)) == -1)
			break;
		tc.plen = strlen(prefix);
		rc = store_scan(t, prefix, top_one, &tc);
	}
	store_abort(t);
	if (rc == -1 || tc.oom)
		fprintf(stderr, "moatctl: %s\n", rc == -1 ? store_error(st) :
		    "top-senders: too many senders");
	else {
		qsort(tc.v, tc.n, sizeof(*tc.v), top_cmp);
		top_print(&tc, hours, json);
	}
	for (i = 0; i < tc.n; i++)
		free(tc.v[i].subject);
	free(tc.v);
	return rc == -1 || tc.oom ? 1 : 0;
}

/* ---- rate ------------------------------------------------------------- */

struct rate_ctx {
	struct window_table	*t;
	const char		*subject;
	bool			 json;
	size_t			 n;
	uint64_t		 now;
	/* What was shown: a kind's limit is shown once. */
	struct window_limit	 shown[RL_KINDS + 1][16];
	size_t			 nshown[RL_KINDS + 1];
};

static bool
rate_seen(struct rate_ctx *rc, enum rl_kind k, const struct window_limit *l)
{
	size_t i;

	for (i = 0; i < rc->nshown[k]; i++)
		if (rc->shown[k][i].count == l->count &&
		    rc->shown[k][i].period_ms == l->period_ms)
			return true;
	if (rc->nshown[k] < 16)
		rc->shown[k][rc->nshown[k]++] = *l;
	return false;
}

/* One limit of one policy on subject (the key text for the kind). */
static void
rate_one(struct rate_ctx *rc, const char *domain, enum rl_kind k,
    const struct window_limit *l, const char *subject, bool user)
{
	unsigned char	key[RL_KEY_MAX];
	size_t		n;
	uint64_t	used;

	if (l->count == 0 || rate_seen(rc, k, l) ||
	    (n = ratelimit_key(key, sizeof(key), k, subject, user)) == 0)
		return;
	used = window_peek(rc->t, l, key, n, rc->now);
	if (!rc->json) {
		printf("%s %s used=%llu limit=%llu/%llums%s%s\n",
		    ratelimit_name(k), subject, (unsigned long long)used,
		    (unsigned long long)l->count,
		    (unsigned long long)l->period_ms,
		    domain ? " domain=" : "", domain ? domain : "");
		rc->n++;
		return;
	}
	printf("%s{\"limit\":\"%s\",\"key\":", rc->n++ > 0 ? "," : "",
	    ratelimit_name(k));
	json_str(subject);
	printf(",\"used\":%llu,\"count\":%llu,\"period_ms\":%llu,"
	    "\"domain\":", (unsigned long long)used,
	    (unsigned long long)l->count, (unsigned long long)l->period_ms);
	if (domain != NULL)
		json_str(domain);
	else
		fputs("null", stdout);
	putchar('}');
}

/* Every limit of one policy that counts this subject. */
static void
rate_policy(struct rate_ctx *rc, const struct policy *p)
{
	const struct window_limit	*l;
	const char			*s = rc->subject, *at;
	unsigned char			 b[16];
	enum rl_kind			 k;
	bool				 ip;

	if ((l = ratelimit_limits(p->state[filter_index(&filter_ratelimit)]))
	    == NULL)
		return;
	ip = inet_pton(AF_INET, s, b) == 1 || inet_pton(AF_INET6, s, b) == 1;
	at = strrchr(s, '@');
	for (k = 0; k <= RL_HOLD; k++) {
		switch (ratelimit_by(k)) {
		case 'i':
		case 'n':
			if (ip)
				rate_one(rc, p->domain, k, &l[k], s, false);
			break;
		case 'a':
			if (at != NULL)
				rate_one(rc, p->domain, k, &l[k], s, false);
			break;
		case 'd':
			if (!ip)
				rate_one(rc, p->domain, k, &l[k],
				    at != NULL ? at + 1 : s, false);
			break;
		case 'o':
			rate_one(rc, p->domain, k, &l[k], s, !ip);
			break;
		}
	}
}

int
rate_cmd(const struct moat_config *cf, int argc, char **argv)
{
	struct rate_ctx	*rc;
	char		 path[PATH_MAX], err[PATH_MAX + 64];
	bool		 json = take_json(&argc, argv);
	size_t		 i;

	if (argc != 1 || argv[0][0] == '\0' || argv[0][0] == '-') {
		fputs(rate_cmd_usage, stderr);
		return 2;
	}
	if (ratelimit_limits(cf->pl->def->state[filter_index(
	    &filter_ratelimit)]) == NULL) {
		fprintf(stderr, "moatctl: rate: ratelimit is not in "
		    "[pipeline]\n");
		return 1;
	}
	if ((size_t)snprintf(path, sizeof(path), "%s/run/ratelimit.win",
	    cf->server.var_dir) >= sizeof(path)) {
		fprintf(stderr, "moatctl: var_dir too long\n");
		return 1;
	}
	if ((rc = calloc(1, sizeof(*rc))) == NULL)
		return 1;
	if ((rc->t = window_table_open(path, err, sizeof(err))) == NULL) {
		fprintf(stderr, "moatctl: %s (is moatd running?)\n", err);
		free(rc);
		return 1;
	}
	rc->subject = argv[0];
	rc->json = json;
	rc->now = window_now_ms();
	if (json) {
		fputs("{\"subject\":", stdout);
		json_str(rc->subject);
		fputs(",\"limits\":[", stdout);
	}
	rate_policy(rc, cf->pl->def);
	for (i = 0; i < cf->pl->ndomains; i++)
		rate_policy(rc, cf->pl->domains[i]);
	if (json)
		fputs("]}\n", stdout);
	else if (rc->n == 0)
		printf("no limit counts %s\n", rc->subject);
	window_table_free(rc->t);
	free(rc);
	return 0;
}
