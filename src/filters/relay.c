/*
 * relay.c: relay control. Mail for a domain that is not ours is accepted
 * only from relay networks or authenticated clients, and addresses that
 * other MTAs may route onward (the tricks of open-relay tests) are refused
 * for everybody else even when the domain looks like ours.
 *
 * What counts as ours is decided once, by the pipeline (local_domains,
 * rcpthosts, morercpthosts.cdb) and the session (IP literals of the
 * address the client connected to); the parser has already refused
 * trailing dots, NUL bytes and malformed paths.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/lists.h"
#include "../core/log.h"
#include "filter.h"
#include "policy.h"

struct relay_conf {
	char	*networks;	/* CIDR list file, "" for none */
	bool	 allow_localhost;
};

struct relay_state {
	struct cidrlist	nets;
	bool		localhost;
};

static const struct opt relay_opts[] = {
	{ "networks", OPT_PATH, "", 0, 0,
	    offsetof(struct relay_conf, networks),
	    "file of client networks that may relay (CIDR, one per line)" },
	{ "allow_localhost", OPT_BOOL, "no", 0, 0,
	    offsetof(struct relay_conf, allow_localhost),
	    "127.0.0.0/8 and ::1 may relay" },
	OPT_END
};

static int
relay_init(const void *vconf, void **state, char *err, size_t errlen)
{
	const struct relay_conf	*conf = vconf;
	struct relay_state	*st;
	struct cidr		 c;

	if ((st = calloc(1, sizeof(*st))) == NULL)
		return -1;
	*state = st;
	if (conf->networks[0] != '\0' &&
	    cidrlist_load(&st->nets, conf->networks, err, errlen) == -1)
		return -1;
	if (conf->allow_localhost) {
		cidr_parse("127.0.0.0/8", &c);
		cidrlist_add(&st->nets, &c);
		cidr_parse("::1", &c);
		cidrlist_add(&st->nets, &c);
	}
	return 0;
}

static void
relay_fini(void *state)
{
	struct relay_state *st = state;

	cidrlist_free(&st->nets);
	free(st);
}

static struct verdict
relay_connect(struct filter_call *c)
{
	struct relay_state *st = c->state;

	if (cidrlist_match(&st->nets, (struct sockaddr *)&c->s->peer)) {
		c->s->trusted = true;
		log_msg(LVL_DEBUG, c->s->id, "relay=client");
	}
	return VERDICT(V_CONTINUE);
}

/* True when every host of a source route is ours. */
static bool
route_is_local(const struct filter_call *c, const char *hosts)
{
	char	 buf[LIMIT_PATH + 1], *h, *next;

	snprintf(buf, sizeof(buf), "%s", hosts);
	for (h = buf; h != NULL; h = next) {
		if ((next = strchr(h, ',')) != NULL)
			*next++ = '\0';
		if (!pipeline_is_local(c->policy, h))
			return false;
	}
	return true;
}

static struct verdict
relay_rcpt(struct filter_call *c)
{
	const struct rcpt	*r = c->s->txn->cur;
	const char		*lp = r->path.local;

	if (c->s->trusted || c->s->authenticated)
		return VERDICT(V_CONTINUE);
	if (!r->local)
		return verdict_make(V_DENY, 554, "5.7.1",
		    "Relay access denied");
	/*
	 * A local domain, but a local part another MTA would route on:
	 * user%host@us (the % hack), host!user@us (bang path), or a quoted
	 * "user@host"@us. None of them is a mailbox of ours.
	 */
	if (strpbrk(lp, "%!@") != NULL)
		return verdict_make(V_DENY, 554, "5.7.1",
		    "Relay access denied (routing characters in address)");
	if (r->path.route && !route_is_local(c, r->path.route_hosts))
		return verdict_make(V_DENY, 554, "5.7.1",
		    "Relay access denied (source route)");
	return VERDICT(V_CONTINUE);
}

const struct filter filter_relay = {
	.name = "relay",
	.summary = "accept mail for our domains, relay only for trusted "
	    "clients",
	.opts = relay_opts,
	.conf_size = sizeof(struct relay_conf),
	.init = relay_init,
	.fini = relay_fini,
	.hook = {
		[STAGE_CONNECT] = relay_connect,
		[STAGE_RCPT] = relay_rcpt,
	},
	.fail = FAIL_DEFER,
};
