/*
 * badmailfrom.c: refuses senders listed in a qmail badmailfrom file
 * (user@domain, or @domain for a whole domain). The verdict is given at
 * MAIL and, with delay_deny, applied at RCPT so postmaster@ and abuse@
 * stay reachable.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/lists.h"
#include "filter.h"

struct badmailfrom_conf {
	char	*file;
};

static const struct opt badmailfrom_opts[] = {
	{ "file", OPT_PATH, "", 0, 0, offsetof(struct badmailfrom_conf, file),
	    "qmail badmailfrom list: user@domain or @domain per line" },
	OPT_END
};

static int
badmailfrom_init(const void *vconf, void **state, char *err, size_t errlen)
{
	const struct badmailfrom_conf	*conf = vconf;
	struct strset			*set;

	if ((set = calloc(1, sizeof(*set))) == NULL)
		return -1;
	*state = set;
	if (conf->file[0] != '\0' &&
	    strset_load(set, conf->file, err, errlen) == -1)
		return -1;
	return 0;
}

static void
badmailfrom_fini(void *state)
{
	strset_free(state);
	free(state);
}

static struct verdict
badmailfrom_mail(struct filter_call *c)
{
	const struct path	*p = &c->s->txn->from;
	char			 addr[LIMIT_LOCAL_PART + LIMIT_DOMAIN + 3];
	int			 n;

	if (p->null || p->domain[0] == '\0')
		return VERDICT(V_CONTINUE);
	n = snprintf(addr, sizeof(addr), "%s@%s", p->local, p->domain);
	if (strset_has(c->state, addr, (size_t)n) ||
	    strset_has(c->state, strchr(addr, '@'), strlen(p->domain) + 1))
		return verdict_make(V_DENY, 553, "5.7.1",
		    "Sender address rejected");
	return VERDICT(V_CONTINUE);
}

const struct filter filter_badmailfrom = {
	.name = "badmailfrom",
	.summary = "refuse listed senders (qmail badmailfrom)",
	.opts = badmailfrom_opts,
	.conf_size = sizeof(struct badmailfrom_conf),
	.init = badmailfrom_init,
	.fini = badmailfrom_fini,
	.hook = {
		[STAGE_MAIL] = badmailfrom_mail,
	},
	.fail = FAIL_DEFER,
};
