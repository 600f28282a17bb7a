/*
 * tarpit.h: the tarpit's settings and its delay rule, for its tests.
 */
#ifndef MOAT_TARPIT_H
#define MOAT_TARPIT_H

struct tarpit_conf {
	long long	after;		/* bad events before delays */
	long long	delay;		/* ms, the first delay */
	long long	max_delay;	/* ms, per reply */
	long long	session_max;	/* ms, per session */
	long long	max_sessions;	/* at once, per worker */
};

/*
 * The delay before the next reply of a session that has had `bad`
 * refused recipients and errors and was delayed `spent` ms so far:
 * 0 below `after`, then delay doubling with each further bad event,
 * capped per reply and by what is left of the session's budget.
 */
long long	tarpit_delay(const struct tarpit_conf *, unsigned bad,
		    long long spent);

#endif
