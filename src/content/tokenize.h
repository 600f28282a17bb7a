/*
 * tokenize.h: turns the text of a message into classifier features.
 *
 * A feature is a 64-bit hash of a word, of a word pair, or of a fact the
 * MIME walk or the HTML reader found ("url:example.com", "att:exe"), each
 * under a prefix that says where it came from ("s:" subject, "h:" header
 * ...). Words are runs of letters, digits and UTF-8 bytes with inner
 * punctuation, ASCII case folded; pairs are orthogonal sparse bigrams
 * (OSB: each word with each of the `window` words before it, up to 4,
 * the distance part of the feature; 0, the default, makes none). A URL
 * in text is not split into words: it makes "url:" features only, so its
 * host counts once. A message's features form a set: tok_finish() sorts
 * them and drops repeats. Past max features the rest are ignored (and
 * `truncated` says so), never stored.
 */
#ifndef MOAT_TOKENIZE_H
#define MOAT_TOKENIZE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Words shorter or longer than these (bytes) are not features. */
#define TOK_WORD_MIN	2
#define TOK_WORD_MAX	40
/* OSB window: each word pairs with the 4 words before it. */
#define TOK_WINDOW	4
/* Longest prefix ("s:", "h:x-mailer:"). */
#define TOK_PREFIX_MAX	40

struct tok {
	uint64_t	*feat;
	size_t		 n, cap, max;
	bool		 truncated;
	size_t		 window;	/* OSB pairs: 0 (none) to TOK_WINDOW */
	/* Names of the features, kept only when explaining a score. */
	char		**names;
	bool		 explain;
	/* The OSB window of the text being read. */
	uint64_t	 win[TOK_WINDOW];
	const char	*winw[TOK_WINDOW];	/* words, when explaining */
	size_t		 nwin;
};

/* Sets up an empty feature set holding at most max features. */
void	tok_init(struct tok *, size_t max, bool explain);
void	tok_free(struct tok *);
/* Empties the set for the next message, keeping storage. */
void	tok_reset(struct tok *);
/* Adds the words and word pairs of text (UTF-8), under prefix. URLs in
 * the text also add their host as a "url:" feature. */
void	tok_text(struct tok *, const char *prefix, const char *text,
	    size_t len);
/* Adds words only, no pairs (header values with little order). */
void	tok_words(struct tok *, const char *prefix, const char *text,
	    size_t len);
/* Adds one feature: prefix followed by the bytes of s, case folded. */
void	tok_feature(struct tok *, const char *prefix, const char *s,
	    size_t len);
/* Adds "url:host" features for a URL's host and its parent domain. */
void	tok_url(struct tok *, const char *url, size_t len);
/* Sorts and removes repeats; returns the number of features. */
size_t	tok_finish(struct tok *);
/* The name of feature i after tok_finish() (explain mode), or "?". */
const char *tok_name(const struct tok *, size_t i);
/* The feature hash of prefix + word, as tok_* computes it. */
uint64_t tok_hash(const char *prefix, const char *s, size_t len);

#endif
