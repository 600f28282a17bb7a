/*
 * html.h: HTML to text for the classifier, with what HTML hides made
 * visible as features: link and image hosts ("url:"), the tags used
 * ("tag:"), comments, text styled out of sight ("html:hidden") and
 * messages that are images with next to no text ("html:imgonly").
 */
#ifndef MOAT_HTML_H
#define MOAT_HTML_H

#include <stddef.h>

struct buf;
struct tok;

/* Appends the text of html to out (as far as out's cap allows) and adds
 * the features above to t. Pure, bounded by len. */
void	html_text(const char *html, size_t len, struct buf *out,
	    struct tok *t);

#endif
