/*
 * fuzz_tokenize.c: libFuzzer harness for the tokenizer (words, OSB pairs,
 * URLs) and the HTML reader on raw bytes, in explain mode too (names).
 * The set must be sorted, unique and within its cap, and the same bytes
 * must give the same set with or without names.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/content/html.h"
#include "../../src/content/tokenize.h"
#include "../../src/core/buf.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static void
run(const uint8_t *d, size_t n, bool explain, struct tok *t)
{
	struct buf out;

	tok_init(t, 500, explain);
	t->window = n > 0 ? d[0] % (TOK_WINDOW + 1) : 0;
	tok_text(t, "s:", (const char *)d, n);
	buf_init(&out, 1 << 16);
	html_text((const char *)d, n, &out, t);
	if (out.data != NULL)
		tok_words(t, "", out.data, out.len);
	buf_free(&out);
	tok_finish(t);
}

int
LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	struct tok	a, b;
	size_t		i;

	run(d, n, false, &a);
	run(d, n, true, &b);
	if (a.n > 500 || a.n != b.n ||
	    (a.n > 0 && memcmp(a.feat, b.feat, a.n * sizeof(*a.feat)) != 0))
		abort();
	for (i = 1; i < a.n; i++)
		if (a.feat[i - 1] >= a.feat[i])
			abort();
	for (i = 0; i < b.n; i++)
		(void)strlen(tok_name(&b, i));
	tok_free(&a);
	tok_free(&b);
	return 0;
}
