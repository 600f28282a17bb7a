/*
 * policy.h: the settings that apply to a recipient domain, and the set of
 * domains we accept mail for.
 *
 * The default policy comes from the filter sections; each [domain x]
 * section makes a policy of its own, a copy of the default with its
 * overrides. One transaction carries one policy (ARCHITECTURE §2).
 */
#ifndef MOAT_POLICY_H
#define MOAT_POLICY_H

#include <stdbool.h>

#include "../core/dns.h"
#include "../core/lists.h"
#include "filter.h"

struct policy {
	char	*domain;		/* NULL: the default policy */
	void	*conf[FILTER_MAX];	/* per registry slot */
	void	*state[FILTER_MAX];
	void	*delivery;		/* the deliver layer's settings */
	/* Observe mode: the filter (or, observe_all, every filter) logs
	 * what it would have done and changes nothing. */
	bool	 observe[FILTER_MAX];
	bool	 observe_all;
};

struct pipeline {
	const struct filter	*order[FILTER_MAX];
	size_t			 n;
	struct policy		*def;
	struct policy		**domains;
	size_t			 ndomains;
	struct strset		 local;		/* local_domains + rcpthosts */
	struct cdbfile		*morercpthosts;
	long long		 timeout;	/* pending hook, seconds */
	long long		 deadline_rcpt;	/* filter_wait at RCPT, ms */
	long long		 deadline_other; /* ... at other stages, ms */
	struct dns_conf		 dns;		/* [dns]: the worker's resolver */
};

/* The pipeline the worker runs (set once config is loaded). */
extern struct pipeline	*pipeline_active;

/* The policy for a recipient domain; the default when none matches. */
const struct policy	*pipeline_policy_for(const char *domain);
/* True when the domain is ours (qmail rcpthosts semantics: "x.y" is
 * exact, ".x.y" covers every subdomain of x.y). */
bool			 pipeline_is_local(const struct policy *,
			    const char *domain);
/* Runs a stage; the verdict reaches session_resume(). */
void			 pipeline_stage(struct session *, enum stage);
/* Ends the worker's share of the pipeline (its resolver); before the
 * event base is freed. */
void			 pipeline_worker_fini(void);
/* Frees a pipeline and every policy's filter state. */
void			 pipeline_free(struct pipeline *);

#endif
