/*
 * filter_harness.h: calls a filter's hooks on a made-up session, for the
 * per-filter unit tests.
 */
#ifndef MOAT_FILTER_HARNESS_H
#define MOAT_FILTER_HARNESS_H

#include <arpa/inet.h>
#include <string.h>

#include "../../src/filters/filter.h"
#include "../../src/filters/policy.h"

struct harness {
	struct session		 s;
	struct txn		 t;
	struct rcpt		 r;
	const struct filter	*f;
	void			*conf;
	void			*state;
	struct policy		 pol;
	struct pipeline		 pl;
};

/* Loads the filter with its defaults and the given key=value pairs
 * (NULL-terminated); local is the local domain. Returns init's result. */
static inline int
harness_init(struct harness *h, const struct filter *f, const char *local,
    const char *const *kv)
{
	char err[256];

	memset(h, 0, sizeof(*h));
	h->f = f;
	h->conf = calloc(1, f->conf_size);
	if (opt_defaults(f->opts, h->conf, NULL, err, sizeof(err)) == -1)
		return -1;
	for (; kv != NULL && kv[0] != NULL; kv += 2)
		if (opt_set(f->opts, h->conf, kv[0], kv[1], NULL, err,
		    sizeof(err)) != 0)
			return -1;
	strset_add(&h->pl.local, local, strlen(local));
	h->pl.def = &h->pol;
	pipeline_active = &h->pl;
	h->s.txn = &h->t;
	h->s.txn->cur = &h->r;
	h->s.pending = STAGE_COUNT;
	return f->init == NULL ? 0 :
	    f->init(h->conf, &h->state, err, sizeof(err));
}

static inline void
harness_free(struct harness *h)
{
	if (h->state != NULL && h->f->fini != NULL)
		h->f->fini(h->state);
	opt_free(h->f->opts, h->conf);
	free(h->conf);
	strset_free(&h->pl.local);
}

static inline void
harness_client(struct harness *h, const char *ip)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)&h->s.peer;

	sin->sin_family = AF_INET;
	inet_pton(AF_INET, ip, &sin->sin_addr);
}

/* Sets the current recipient from a "<path>" string. */
static inline void
harness_rcpt(struct harness *h, const char *p)
{
	struct str rest;

	memset(&h->r, 0, sizeof(h->r));
	assert_int_equal(parse_path(str_make(p, strlen(p)), &h->r.path,
	    &rest, false, true, false), PARSE_OK);
	snprintf(h->r.addr, sizeof(h->r.addr), "%s%s%s", h->r.path.local,
	    h->r.path.domain[0] ? "@" : "", h->r.path.domain);
	h->r.local = h->r.path.domain[0] == '\0' ||
	    pipeline_is_local(&h->pol, h->r.path.domain);
}

static inline enum verdict_code
harness_call(struct harness *h, enum stage st)
{
	struct filter_call c = { &h->s, h->conf, h->state, &h->pol,
	    session_step(&h->s), false, NULL };

	return h->f->hook[st](&c).code;
}

#endif
