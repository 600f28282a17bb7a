/*
 * ratelimit.c: rate limits in and out (POLICY-RESEARCH §4).
 *
 * Inbound, per client (an IPv4 address, an IPv6 client by its /64):
 * connections at connect (421 4.7.1 and close), messages at MAIL and
 * recipients at RCPT (450 4.7.1), each with the time after which one
 * more fits. Outbound, for the site's own senders (relay clients and
 * authenticated users, where spam from a hacked account shows first):
 * messages and recipients per authenticated user (s->auth_user), or per
 * relay client address when the client relays without AUTH; 450 4.7.1
 * past it. A client that is outbound is not counted inbound.
 *
 * Counters: GCRA cells in one core/window table per process, made at the
 * first init(), which runs in the master at config load, before the
 * workers are forked: the workers share it (MAP_SHARED), so a client
 * spread over the workers meets one limit. It survives reloads (the new
 * config is loaded before the old is freed) and not restarts. No store
 * write per event: the counters are hot state (issue 11).
 *
 * Per-domain knobs: every limit may be set in a [domain x] section; at
 * RCPT the recipient's domain's limit applies (a client policy's when
 * one is set), at connect and MAIL the default's. Different limits on
 * one key count in different cells. A refused event is not counted.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/log.h"
#include "../core/window.h"
#include "filter.h"

#define RL_CELLS	65536	/* 1 MB shared, for every policy */

extern const struct filter filter_ratelimit;

enum rl_kind {
	RL_IN_CONN, RL_IN_MSG, RL_IN_RCPT, RL_OUT_MSG, RL_OUT_RCPT,
	RL_KINDS
};

static const char *const rl_names[RL_KINDS] = {
	"in_connections", "in_messages", "in_recipients", "out_messages",
	"out_recipients",
};

struct ratelimit_conf {
	char	*limit[RL_KINDS];
	char	*text;		/* reply text, %s: the retry time */
};

struct ratelimit_state {
	struct window_limit	lim[RL_KINDS];
};

/* Reply texts must outlive the hook: one per stage in session data. */
struct ratelimit_data {
	char	text[STAGE_COUNT][128];
};

static struct window_table	*rl_table;
static unsigned			 rl_refs;

#define RL_OPT(k, i, h) { k, OPT_STR, "", 0, 0, \
	offsetof(struct ratelimit_conf, limit) + (i) * sizeof(char *), h }

static const struct opt ratelimit_opts[] = {
	RL_OPT("in_connections", RL_IN_CONN,
	    "connections per client IP (/64 for IPv6), N/period; 421 past it"),
	RL_OPT("in_messages", RL_IN_MSG,
	    "messages (MAILs) per client IP, N/period: 450 4.7.1 past it"),
	RL_OPT("in_recipients", RL_IN_RCPT,
	    "recipients per client IP, N/period: 450 4.7.1 past it"),
	RL_OPT("out_messages", RL_OUT_MSG,
	    "messages per authenticated user or relay client, N/period"),
	RL_OPT("out_recipients", RL_OUT_RCPT,
	    "recipients per authenticated user or relay client, N/period"),
	{ "text", OPT_STR, "Rate limit exceeded, retry after %s", 0, 0,
	    offsetof(struct ratelimit_conf, text),
	    "reply text; %s is the time after which one more fits" },
	OPT_END
};

static void
ratelimit_fini(void *state)
{
	free(state);
	if (rl_refs > 0 && --rl_refs == 0) {
		window_table_free(rl_table);
		rl_table = NULL;
	}
}

static int
ratelimit_init(const void *vconf, void **state, char *err, size_t errlen)
{
	const struct ratelimit_conf	*conf = vconf;
	struct ratelimit_state		*st;
	char				 msg[200];
	int				 i;

	if ((st = calloc(1, sizeof(*st))) == NULL)
		return -1;
	*state = st;
	if (rl_table == NULL && (rl_table = window_table_shared("ratelimit",
	    RL_CELLS)) == NULL) {
		snprintf(err, errlen, "cannot map the rate table");
		free(st);
		*state = NULL;
		return -1;
	}
	rl_refs++;
	for (i = 0; i < RL_KINDS; i++)
		if (window_limit_parse(conf->limit[i], &st->lim[i], msg,
		    sizeof(msg)) == -1) {
			snprintf(err, errlen, "%s: %s", rl_names[i], msg);
			return -1;
		}
	return 0;
}

/* The inbound key: "i" and the client's address, an IPv6 one by /64. */
static size_t
key_client(const struct session *s, unsigned char *k)
{
	const struct sockaddr_in	*sin;
	const struct sockaddr_in6	*sin6;

	k[0] = 'i';
	if (s->peer.ss_family == AF_INET6) {
		sin6 = (const struct sockaddr_in6 *)&s->peer;
		if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
			memcpy(k + 1, &sin6->sin6_addr.s6_addr[12], 4);
			return 5;
		}
		memcpy(k + 1, &sin6->sin6_addr, 8);
		k[9] = '6';
		return 10;
	}
	sin = (const struct sockaddr_in *)&s->peer;
	memcpy(k + 1, &sin->sin_addr, 4);
	return 5;
}

/* The outbound key: "u" and the user, or "r" and the relay client. */
static size_t
key_sender(const struct session *s, unsigned char *k, size_t cap)
{
	size_t n;

	if (s->authenticated) {
		n = strnlen(s->auth_user, cap - 1);
		k[0] = 'u';
		memcpy(k + 1, s->auth_user, n);
		return n + 1;
	}
	n = key_client(s, k);
	k[0] = 'r';
	return n;
}

static bool
outbound(const struct session *s)
{
	return s->authenticated || s->trusted;
}

/* "36s", "12m", "3h": the retry time, rounded up. */
static void
fmt_retry(char *out, size_t n, uint64_t ms)
{
	uint64_t s = (ms + 999) / 1000;

	if (s < 120)
		snprintf(out, n, "%llus", (unsigned long long)s);
	else if (s < 7200)
		snprintf(out, n, "%llum", (unsigned long long)(s + 59) / 60);
	else
		snprintf(out, n, "%lluh", (unsigned long long)(s + 3599) /
		    3600);
}

/*
 * Counts one event of kind k for the session; V_CONTINUE, or the refusal
 * (421 at connect, 450 elsewhere) with evidence of the counts.
 */
static struct verdict
ratelimit_take(struct filter_call *c, enum rl_kind k, enum stage st)
{
	const struct ratelimit_state	*rs = c->state;
	const struct ratelimit_conf	*conf = c->conf;
	const struct window_limit	*l = &rs->lim[k];
	struct ratelimit_data		*d = c->data;
	struct window_result		 r;
	unsigned char			 key[sizeof(c->s->auth_user) + 2];
	char				 retry[16];
	size_t				 n;

	if (l->count == 0)
		return VERDICT(V_CONTINUE);
	n = k >= RL_OUT_MSG ? key_sender(c->s, key + 1, sizeof(key) - 1) :
	    key_client(c->s, key + 1);
	key[0] = (unsigned char)('a' + k);	/* kinds count apart */
	r = window_take(rl_table, l, key, n + 1, 1, window_now_ms());
	if (r.allowed)
		return VERDICT(V_CONTINUE);
	fmt_retry(retry, sizeof(retry), r.retry_ms);
	filter_evidence(c->s, &filter_ratelimit, rl_names[k], 0, 0,
	    "key=%s used=%llu limit=%llu/%llus retry=%s", k >= RL_OUT_MSG ?
	    (c->s->authenticated ? c->s->auth_user : c->s->ip) : c->s->ip,
	    (unsigned long long)r.used, (unsigned long long)l->count,
	    (unsigned long long)(l->period_ms / 1000), retry);
	log_msg(LVL_INFO, c->s->id, "event=ratelimit limit=%s used=%llu "
	    "max=%llu period_ms=%llu retry_ms=%llu", rl_names[k],
	    (unsigned long long)r.used, (unsigned long long)l->count,
	    (unsigned long long)l->period_ms,
	    (unsigned long long)r.retry_ms);
	if (d == NULL && (d = calloc(1, sizeof(*d))) != NULL &&
	    filter_data_set(c->s, &filter_ratelimit, d) == -1) {
		free(d);
		d = NULL;
	}
	if (d != NULL)
		filter_reply_format(d->text[st], sizeof(d->text[st]),
		    conf->text, retry, "");
	return verdict_make(st == STAGE_CONNECT ? V_DENY_DISCONNECT : V_DEFER,
	    st == STAGE_CONNECT ? 421 : 450, "4.7.1",
	    d != NULL ? d->text[st] : "Rate limit exceeded");
}

static struct verdict
ratelimit_connect(struct filter_call *c)
{
	if (outbound(c->s))
		return VERDICT(V_CONTINUE);
	return ratelimit_take(c, RL_IN_CONN, STAGE_CONNECT);
}

static struct verdict
ratelimit_mail(struct filter_call *c)
{
	return ratelimit_take(c, outbound(c->s) ? RL_OUT_MSG : RL_IN_MSG,
	    STAGE_MAIL);
}

static struct verdict
ratelimit_rcpt(struct filter_call *c)
{
	return ratelimit_take(c, outbound(c->s) ? RL_OUT_RCPT : RL_IN_RCPT,
	    STAGE_RCPT);
}

const struct filter filter_ratelimit = {
	.name = "ratelimit",
	.summary = "connections, messages and recipients per client in, "
	    "per user or relay client out (GCRA, shared by the workers)",
	.opts = ratelimit_opts,
	.conf_size = sizeof(struct ratelimit_conf),
	.init = ratelimit_init,
	.fini = ratelimit_fini,
	.hook = {
		[STAGE_CONNECT] = ratelimit_connect,
		[STAGE_MAIL] = ratelimit_mail,
		[STAGE_RCPT] = ratelimit_rcpt,
	},
	.data_free = free,
	.fail = FAIL_CONTINUE,
};
