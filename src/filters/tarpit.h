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
	double		evidence_step;	/* score per bad event; 0: off */
	long long	rcpt_after;	/* recipients before rcpt_delay */
	long long	rcpt_delay;	/* ms, per recipient past it */
};

/*
 * The delay before the next reply of a session that has had `bad`
 * refused recipients and errors and was delayed `spent` ms so far:
 * 0 below `after`, then delay doubling with each further bad event,
 * capped per reply and by what is left of the session's budget.
 */
long long	tarpit_delay(const struct tarpit_conf *, unsigned bad,
		    long long spent);
/* Bad events: the session's errors plus one per evidence_step of the
 * positive evidence scores (sum). */
unsigned	tarpit_bad(const struct tarpit_conf *, unsigned errors,
		    double sum);

#endif
