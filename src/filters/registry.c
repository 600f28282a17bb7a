/*
 * registry.c: every filter moat has, one line each. Adding a check means
 * adding its file under src/filters/ and its line here.
 */
#include <string.h>

#include "filter.h"

extern const struct filter filter_relay;
extern const struct filter filter_access;
extern const struct filter filter_dnsbl;
extern const struct filter filter_fcrdns;
extern const struct filter filter_spf;
extern const struct filter filter_rhsbl;
extern const struct filter filter_helo;
extern const struct filter filter_sender;
extern const struct filter filter_badmailfrom;
extern const struct filter filter_lists;
extern const struct filter filter_recipients;
extern const struct filter filter_greylist;
extern const struct filter filter_bayes;
extern const struct filter filter_spamassassin;
extern const struct filter filter_clamav;
extern const struct filter filter_ratelimit;
extern const struct filter filter_batv;
extern const struct filter filter_limited;
extern const struct filter filter_tarpit;
extern const struct filter filter_karma;
extern const struct filter filter_score;

const struct filter *const filter_registry[] = {
	&filter_relay,
	&filter_access,
	&filter_dnsbl,
	&filter_fcrdns,
	&filter_spf,
	&filter_rhsbl,
	&filter_helo,
	&filter_sender,
	&filter_badmailfrom,
	&filter_lists,
	&filter_recipients,
	&filter_greylist,
	&filter_bayes,
	&filter_spamassassin,
	&filter_clamav,
	&filter_ratelimit,
	&filter_batv,
	&filter_limited,
	&filter_tarpit,
	&filter_karma,
	&filter_score,
};

const size_t filter_count = sizeof(filter_registry) /
    sizeof(filter_registry[0]);

const struct filter *
filter_find(const char *name)
{
	size_t i;

	for (i = 0; i < filter_count; i++)
		if (strcmp(filter_registry[i]->name, name) == 0)
			return filter_registry[i];
	return NULL;
}

size_t
filter_index(const struct filter *f)
{
	size_t i;

	for (i = 0; i < filter_count; i++)
		if (filter_registry[i] == f)
			break;
	return i;
}
