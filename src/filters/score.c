/*
 * score.c: the domain's two thresholds on the transaction's total score
 * (the sum of every symbol the content filters added), at end of data.
 * Put it last in [pipeline]: it sees only what ran before it.
 *
 * - score >= reject: 550 5.7.1 with the score and the session id, so a
 *   remote sender can quote it; the message is not delivered. With
 *   quarantine = yes (per policy) it is kept first (deliver/quarantine.h):
 *   the hook is PENDING until the copy is durable, so the filter defers
 *   (never delivers) when that copy outlasts the filter timeout.
 * - score >= tag: X-Spam-Flag: YES, X-Spam-Score, X-Spam-Status (with the
 *   symbols, SpamAssassin's layout) and, when subject_prefix is set, the
 *   Subject prefixed.
 * - below tag, when any symbol was added: X-Spam-Score and
 *   X-Spam-Status: No, so a mailbox rule or a reader can see the score.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/buf.h"
#include "../deliver/quarantine.h"
#include "score.h"

#define SC(f)	offsetof(struct score_conf, f)

static const struct opt score_opts[] = {
	{ "tag", OPT_FLOAT, "5", -1000, 1000, SC(tag),
	    "score from which the message is marked as spam (X-Spam-Flag)" },
	{ "reject", OPT_FLOAT, "10", -1000, 1000, SC(reject),
	    "score from which the message is refused (550 5.7.1)" },
	{ "subject_prefix", OPT_STR, "", 0, 0, SC(subject_prefix),
	    "put before the Subject of tagged messages (empty: leave it)" },
	{ "quarantine", OPT_BOOL, "no", 0, 0, SC(quarantine),
	    "keep messages refused over reject in the quarantine "
	    "([quarantine])" },
	OPT_END
};

/* "score=7.2 required=5.0 tests=BAYES_99,..." */
static void
score_status(const struct txn *t, double tag, struct buf *b)
{
	size_t i;

	buf_printf(b, "score=%.1f required=%.1f tests=", t->score, tag);
	for (i = 0; i < t->nsym; i++)
		buf_printf(b, "%s%s", i ? "," : "", t->sym[i].name);
	if (t->nsym == 0)
		buf_adds(b, "none");
}

static struct verdict
score_data_post(struct filter_call *c)
{
	const struct score_conf	*conf = c->conf;
	struct txn		*t = c->s->txn;
	struct buf		 b;
	char			 num[32];
	bool			 spam = t->score >= conf->tag;

	if (t->score >= conf->reject) {
		snprintf(t->verdict_text, sizeof(t->verdict_text),
		    "Message refused as spam (score %.1f, session %016llx)",
		    t->score, (unsigned long long)c->s->id);
		if (conf->quarantine)
			return quarantine_keep(c, "spam", verdict_make(V_DENY,
			    550, "5.7.1", t->verdict_text));
		return verdict_make(V_DENY, 550, "5.7.1", t->verdict_text);
	}
	if (t->nsym == 0)
		return VERDICT(V_CONTINUE);
	buf_init(&b, LIMIT_TEXT_LINE * 4);
	buf_adds(&b, spam ? "Yes, " : "No, ");
	score_status(t, conf->tag, &b);
	snprintf(num, sizeof(num), "%.1f", t->score);
	if (b.data != NULL)
		session_add_header(c->s, "X-Spam-Status", b.data);
	session_add_header(c->s, "X-Spam-Score", num);
	if (spam) {
		session_add_header(c->s, "X-Spam-Flag", "YES");
		if (conf->subject_prefix[0] != '\0')
			session_prefix_subject(c->s, conf->subject_prefix);
	}
	buf_free(&b);
	return VERDICT(V_CONTINUE);
}

const struct filter filter_score = {
	.name = "score",
	.summary = "tag or refuse by the total score (tag and reject "
	    "thresholds)",
	.opts = score_opts,
	.conf_size = sizeof(struct score_conf),
	.hook = {
		[STAGE_DATA_POST] = score_data_post,
	},
	.cancel = quarantine_cancel,
	/* Pending only while a refused message is kept: past the timeout,
	 * 451 rather than deliver what was refused. */
	.fail = FAIL_DEFER,
};
