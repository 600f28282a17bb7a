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
	char			*map;
	char			*spam_address;	/* training addresses */
	char			*ham_address;
};

extern const struct filter filter_bayes;

/* Reads msg into t (set up by the caller) under the settings' limits and
 * finishes the set. */
void	bayes_features(const struct bayes_conf *, const char *msg,
	    size_t len, struct tok *t, struct mime_stats *);

/* The symbol (and its score) the filter's state maps probability p to. */
const char *bayes_symbol(const void *state, double p, double *score);

#endif
