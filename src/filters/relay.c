/*
 * relay.c: which clients may relay. At connect, a client in the relay
 * networks is marked trusted. The decision itself (mail for a domain that
 * is not ours only from trusted or authenticated clients, no routing
 * tricks for anybody else) is part of the core RCPT step
 * (smtp_relay_denied() in src/smtp/command.c), so that no pipeline can
 * leave it out and no filter's ACCEPT can skip it: without this filter
 * nobody is trusted, and nothing is relayed.
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

const struct filter filter_relay = {
	.name = "relay",
	.summary = "mark clients of the relay networks as trusted (they may "
	    "relay)",
	.opts = relay_opts,
	.conf_size = sizeof(struct relay_conf),
	.init = relay_init,
	.fini = relay_fini,
	.hook = {
		[STAGE_CONNECT] = relay_connect,
	},
	.fail = FAIL_DEFER,
};
