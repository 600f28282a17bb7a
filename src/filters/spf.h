/*
 * spf.h: what the SPF filter tells other checks.
 */
#ifndef MOAT_SPF_H
#define MOAT_SPF_H

#include "spf_eval.h"

struct session;

/* The SPF result of the session's current transaction (its MAIL FROM),
 * or NULL when there is none yet (not checked, still running, no data).
 * Greylisting keys on result->domain when code is SPF_PASS. */
const struct spf_result	*spf_session_result(struct session *);

#endif
