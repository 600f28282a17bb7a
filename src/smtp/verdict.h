/*
 * verdict.h: what a check or a delivery step decides, and scored symbols.
 */
#ifndef MOAT_VERDICT_H
#define MOAT_VERDICT_H

enum verdict_code {
	V_CONTINUE,		/* no opinion */
	V_ACCEPT,		/* stop checking this stage */
	V_DENY,			/* 5xx */
	V_DEFER,		/* 4xx */
	V_DENY_DISCONNECT,	/* reply, then close */
	V_PENDING,		/* async work started; session_resume() follows */
};

/* Texts point at static or configuration storage that outlives the
 * session (or into the session itself), never at a filter's stack. */
struct verdict {
	enum verdict_code	 code;
	int			 smtp;	/* 550, 451, ... (0: the default) */
	const char		*esc;	/* RFC 3463 "5.7.1" (NULL: default) */
	const char		*text;	/* human text (NULL: default) */
	const char		*by;	/* the filter that decided */
};

#define VERDICT(c)	((struct verdict){ (c), 0, NULL, NULL, NULL })

/* A verdict with a reply code, enhanced code and text of static or
 * long-lived storage. */
static inline struct verdict
verdict_make(enum verdict_code c, int smtp, const char *esc,
    const char *text)
{
	struct verdict v = { c, smtp, esc, text, NULL };

	return v;
}

struct symbol {
	const char	*name;	/* static or config storage */
	double		 score;
};

#endif
