/*
 * spamassassin.h: the spamd content score at end of data
 * (spamassassin.c).
 */
#ifndef MOAT_SPAMASSASSIN_H
#define MOAT_SPAMASSASSIN_H

#include "filter.h"

extern const struct filter filter_spamassassin;

/* Starts spamd's check of the transaction's message when the policy has
 * it on, the message is not too large and not already over the score
 * filter's reject threshold (at most once per transaction). */
void	spamassassin_start(struct session *, const struct policy *);

#endif
