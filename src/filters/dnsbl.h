/*
 * dnsbl.h: the DNSBL filter's pure parts, for its unit test.
 */
#ifndef MOAT_DNSBL_H
#define MOAT_DNSBL_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

/* One octet of a return-code filter: a set of byte values. */
struct octet_set {
	unsigned char	bits[32];
};

struct dnsbl_zone {
	char		 name[256];	/* as queried */
	char		 shown[256];	/* in replies (reply_map) */
	double		 weight;
	bool		 filtered;
	struct octet_set oct[4];
	/* Health, per worker process. */
	int		 health;	/* 0 unknown, 1 good, -1 failing */
	time_t		 checked;
	bool		 checking;
	void		*hc;		/* the check in flight (reachable) */
};

struct session;
struct filter;

/*
 * Zone health (zone_health.c): a check is due when none runs and the
 * zone was never checked or not for interval seconds; start one with the
 * name that must be listed and the one that must not (what: "dnsbl" or
 * "rhsbl" for the log, why: the rule in words); a session that finds a
 * check running joins it. Either way the session waits for it (filter
 * work of f) and is resumed once the zone's state is set.
 */
bool	zone_health_due(const struct dnsbl_zone *, long long interval);
void	zone_health_start(struct session *, const struct filter *f,
	    struct dnsbl_zone *, const char *listed, const char *clean,
	    const char *what, const char *why);
void	zone_health_join(struct session *, const struct filter *f,
	    struct dnsbl_zone *);

/* One zone word: "name[=a.b.c.d][*weight]"; -1 with err on bad input. */
int	dnsbl_parse_zone(const char *w, struct dnsbl_zone *, char *err,
	    size_t errlen);
/*
 * What an A record from a zone means: 1 listed, 0 not (the filter does
 * not match), -1 an error answer (outside 127/8, or one of the "you may
 * not query" codes), which never lists.
 */
int	dnsbl_answer(const struct dnsbl_zone *, const unsigned char a[4]);
/* reply_text with its first %s the client address, the second the
 * zone ("%%": a percent sign); never used as a printf format. */
void	dnsbl_reply_format(char *out, size_t n, const char *tmpl,
	    const char *ip, const char *zone);

#endif
