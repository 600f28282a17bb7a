/*
 * bayes.h: the classifier's filter and its settings, shared with moatctl
 * so that both read a message the same way.
 */
#ifndef MOAT_BAYES_H
#define MOAT_BAYES_H

#include "../content/classifier.h"
#include "../content/mime.h"
#include "filter.h"

struct bayes_conf {
	struct classifier_conf	 cls;
	struct mime_limits	 lim;
	long long		 max_features;
	long long		 osb_window;
	long long		 max_cpu;	/* ms of CPU one read may take */
	double			 budget_score;	/* BAYES_BUDGET */
	long long		 loop_bytes;	/* read on the loop up to it */
	char			*map;
	char			*spam_address;	/* training addresses */
	char			*ham_address;
	long long		 train_limit;	/* per client and window */
	long long		 train_window;	/* seconds */
	long long		 refit_interval; /* seconds */
	long long		 refit_messages;
	char			*debug_hold;	/* tests: a FIFO */
};

extern const struct filter filter_bayes;

/* Reads msg into t (set up by the caller) under the settings' limits and
 * finishes the set. No CPU budget: moatctl reads the operator's files
 * whole, so a message always gives the same set (and digest). */
void	bayes_features(const struct bayes_conf *, const char *msg,
	    size_t len, struct tok *t, struct mime_stats *);
/* The same within a CPU budget (mime.h; NULL: none). */
void	bayes_features_budget(const struct bayes_conf *, const char *msg,
	    size_t len, struct mime_budget *, struct tok *t,
	    struct mime_stats *);

/* The symbol (and its score) the filter's state maps probability p to. */
const char *bayes_symbol(const void *state, double p, double *score);

#endif
