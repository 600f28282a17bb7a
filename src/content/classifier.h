/*
 * classifier.h: the statistical spam classifier (docs/CLASSIFIER.md).
 *
 * What is learnt is counts: per feature, how many learnt spam and ham
 * messages had it, and the totals. Counts make learning exact both ways:
 * a message learnt again under the same class changes nothing (its digest
 * is kept), learnt under the other class moves, and forgotten is taken
 * out. Scoring turns a message's feature set into a spam probability
 * from those counts (see classifier_score()).
 *
 * A second, discriminative opinion is added to that: a perceptron with a
 * margin over the same features, trained afresh (classifier_refit())
 * from the feature sets of the newest learnt messages, kept with their
 * digests. Retraining from scratch keeps it exact too: a forgotten
 * message is simply not in the next refit.
 *
 * Everything runs inside a store transaction the caller owns, so a learn
 * is atomic and a score sees one snapshot.
 */
#ifndef MOAT_CLASSIFIER_H
#define MOAT_CLASSIFIER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tokenize.h"

struct store;
struct store_txn;

enum cls { CLS_NONE, CLS_SPAM, CLS_HAM };

/* Settings (the [bayes] section holds them). */
struct classifier_conf {
	long long	min_spam;	/* learnt before any opinion */
	long long	min_ham;
	long long	max_tokens;	/* token table cap; pruned past it */
	double		robs;		/* Robinson's s: weight of robx */
	double		robx;		/* probability of an unseen feature */
	double		min_dev;	/* |f - 0.5| a feature needs to count */
	double		norm;		/* the sum is divided by n^norm */
	/* The perceptron (classifier_refit()): its score's weight in the
	 * total (0: off), passes and step, and how many of the newest
	 * learnt messages keep their features for it. */
	double		perceptron;
	long long	perceptron_passes;
	double		perceptron_rate;
	long long	keep_messages;
};

#define CLASSIFIER_TOP	16	/* features shown by explain */

struct classifier_feature {
	size_t	index;		/* into the tok set */
	double	weight;		/* its log-odds contribution */
	uint32_t spam, ham;
	float	perceptron;	/* its perceptron weight */
};

struct classifier_result {
	bool		opinion;	/* false: too little learnt */
	double		prob;		/* P(spam), 0..1 */
	double		logit;		/* the score; prob is its sigmoid */
	double		counts;		/* its part from the counts */
	double		margin;		/* the perceptron's score (unweighted) */
	size_t		used;		/* features that counted */
	long long	nspam, nham;	/* learnt so far */
	struct classifier_feature top[CLASSIFIER_TOP];
	size_t		ntop;
};

/* The message's identity for learning: 32 hex digits from its set. */
void	classifier_digest(const struct tok *, char out[33]);

/*
 * Scores a finished feature set. Returns 0 (opinion false when fewer
 * than min_spam/min_ham are learnt), -1 on a store error.
 */
int	classifier_score(struct store_txn *, const struct classifier_conf *,
	    const struct tok *, struct classifier_result *);

/*
 * Learns the set as `cls`, or forgets it (CLS_NONE). *prev gets what it
 * was learnt as before. Returns 1 when something changed, 0 when not
 * (already learnt so, or forgetting what was never learnt), -1 on error.
 */
int	classifier_learn(struct store_txn *, const struct classifier_conf *,
	    const struct tok *, enum cls, enum cls *prev);

/*
 * Trains the perceptron afresh from the kept feature sets (the newest
 * keep_messages; older ones lose their features, not their digest) and
 * stores its weights with the tokens. Call it after learning, in the
 * same or a later write transaction. Returns the number of messages it
 * learnt from, -1 on error.
 */
long long classifier_refit(struct store_txn *, const struct classifier_conf *);

/* Messages learnt (as a class) since the last classifier_refit(): a
 * learner that refits in batches refits while this is above 0. */
long long classifier_unfit(struct store_txn *);

/* Learnt messages whose features are kept for classifier_refit(). */
long long classifier_kept(struct store_txn *);

/* Totals learnt. */
int	classifier_totals(struct store_txn *, long long *nspam,
	    long long *nham);

/* Prunes the token table down to 90% of max_tokens when it is above it:
 * the features seen in fewest messages go first, older before newer.
 * Returns how many were removed, -1 on error. */
long long classifier_prune(struct store_txn *, long long max_tokens);

#endif
