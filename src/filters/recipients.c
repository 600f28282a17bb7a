/*
 * recipients.c: recipient validation. Unknown users of our domains are
 * refused at RCPT with 550 5.1.1, so nothing is accepted and bounced
 * later (the qmail validrcptto.cdb / Postfix relay_recipient_maps idea).
 *
 * Sources: a users list file (user@domain, or @domain to accept a whole
 * domain) and qmail's validrcptto.cdb (same keys, lowercased). Both are
 * optional; with neither the filter has no opinion. postmaster@ of every
 * local domain always exists (RFC 5321 §4.5.1).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../core/lists.h"
#include "filter.h"

struct recipients_conf {
	char	*users;		/* list file */
	char	*cdb;		/* validrcptto.cdb */
	char	*delimiter;	/* address extension, "+" in user+ext@ */
};

struct recipients_state {
	struct strset	 users;
	struct cdbfile	*cdb;
	bool		 any;	/* a source is configured */
	char		 delim;
};

static const struct opt recipients_opts[] = {
	{ "users", OPT_PATH, "", 0, 0,
	    offsetof(struct recipients_conf, users),
	    "valid recipients, user@domain or @domain, one per line" },
	{ "validrcptto_cdb", OPT_PATH, "", 0, 0,
	    offsetof(struct recipients_conf, cdb),
	    "qmail validrcptto.cdb with the same keys" },
	{ "delimiter", OPT_STR, "", 0, 0,
	    offsetof(struct recipients_conf, delimiter),
	    "address extension character (user+ext@domain -> user@domain)" },
	OPT_END
};

static void
recipients_fini(void *state)
{
	struct recipients_state *st = state;

	strset_free(&st->users);
	cdbfile_close(st->cdb);
	free(st);
}

static int
recipients_init(const void *vconf, void **state, char *err, size_t errlen)
{
	const struct recipients_conf	*conf = vconf;
	struct recipients_state		*st;

	if ((st = calloc(1, sizeof(*st))) == NULL)
		return -1;
	*state = st;
	st->delim = conf->delimiter[0];
	if (conf->users[0] != '\0') {
		st->any = true;
		if (strset_load(&st->users, conf->users, err, errlen) == -1)
			return -1;
	}
	if (conf->cdb[0] != '\0') {
		st->any = true;
		if ((st->cdb = cdbfile_open(conf->cdb, err, errlen)) == NULL)
			return -1;
	}
	return 0;
}

/* Looks one key up in the list and the cdb (keys are lowercase). */
static bool
known(const struct recipients_state *st, const char *key, size_t n)
{
	char lower[LIMIT_LOCAL_PART + LIMIT_DOMAIN + 2];

	if (strset_has(&st->users, key, n))
		return true;
	if (st->cdb == NULL || n >= sizeof(lower))
		return false;
	memcpy(lower, key, n);
	lower_ascii(lower, n);
	return cdbfile_has(st->cdb, lower, n) == 1;
}

static struct verdict
recipients_rcpt(struct filter_call *c)
{
	const struct recipients_state	*st = c->state;
	const struct rcpt		*r = c->s->txn->cur;
	const char			*at, *d;
	char				 key[sizeof(r->addr)];
	size_t				 llen;

	if (!st->any || !r->local || r->path.domain[0] == '\0')
		return VERDICT(V_CONTINUE);
	if (strcasecmp(r->path.local, "postmaster") == 0)
		return VERDICT(V_CONTINUE);
	if (known(st, r->addr, strlen(r->addr)))
		return VERDICT(V_CONTINUE);
	at = strrchr(r->addr, '@');
	/* user+ext@domain is user@domain's. */
	llen = (size_t)(at - r->addr);
	if (st->delim != '\0' && !r->path.quoted &&
	    (d = memchr(r->addr, st->delim, llen)) != NULL) {
		snprintf(key, sizeof(key), "%.*s%s", (int)(d - r->addr),
		    r->addr, at);
		if (known(st, key, strlen(key)))
			return VERDICT(V_CONTINUE);
	}
	if (known(st, at, strlen(at)))
		return VERDICT(V_CONTINUE);
	return verdict_make(V_DENY, 550, "5.1.1",
	    "No such user here");
}

const struct filter filter_recipients = {
	.name = "recipients",
	.summary = "refuse unknown local users at RCPT (users list, "
	    "validrcptto.cdb)",
	.opts = recipients_opts,
	.conf_size = sizeof(struct recipients_conf),
	.init = recipients_init,
	.fini = recipients_fini,
	.hook = {
		[STAGE_RCPT] = recipients_rcpt,
	},
	.fail = FAIL_DEFER,
};
