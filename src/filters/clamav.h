/*
 * clamav.h: the clamd virus scan at end of data (clamav.c).
 */
#ifndef MOAT_CLAMAV_H
#define MOAT_CLAMAV_H

#include "filter.h"

extern const struct filter filter_clamav;

/* Starts the scan of the transaction's message when the policy has it on
 * (at most once per transaction); for scan_start_all(). */
void	clamav_start(struct session *, const struct policy *);

#endif
