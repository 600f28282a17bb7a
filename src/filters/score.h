/*
 * score.h: the thresholds' settings, shared with moatctl (whose classify
 * says "spam" where moatd would tag).
 */
#ifndef MOAT_SCORE_H
#define MOAT_SCORE_H

#include "filter.h"

struct score_conf {
	double	 tag;
	double	 reject;
	char	*subject_prefix;
	bool	 quarantine;	/* keep what reject refuses */
};

extern const struct filter filter_score;

#endif
