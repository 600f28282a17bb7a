/*
 * tok_helpers.h: looks a feature up in a tok set, for the tokenizer and
 * MIME unit tests.
 */
#ifndef MOAT_TOK_HELPERS_H
#define MOAT_TOK_HELPERS_H

#include <stdbool.h>
#include <string.h>

#include "../../src/content/tokenize.h"

/* True when the set holds prefix + word (as tok_* hashes it). */
static inline bool
has(const struct tok *t, const char *prefix, const char *word)
{
	uint64_t	h = tok_hash(prefix, word, strlen(word));
	size_t		i;

	for (i = 0; i < t->n; i++)
		if (t->feat[i] == h)
			return true;
	return false;
}

#endif
