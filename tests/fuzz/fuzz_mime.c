/*
 * fuzz_mime.c: libFuzzer harness for the MIME walk and the HTML reader
 * (GMime underneath): any bytes, read under small limits so deep and
 * wide shapes hit them; the feature set stays within its cap and sorted.
 */
#include <stdint.h>
#include <stdlib.h>

#include "../../src/content/mime.h"
#include "../../src/content/tokenize.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	static const struct mime_limits	lim = { 64 * 1024, 8, 50 };
	struct mime_stats		st;
	struct tok			t;
	size_t				i;

	tok_init(&t, 2000, false);
	t.window = 2;
	mime_scan((const char *)d, n, &lim, &t, &st);
	tok_finish(&t);
	if (t.n > 2000 || st.parts > 50 || st.text > 64 * 1024)
		abort();
	for (i = 1; i < t.n; i++)
		if (t.feat[i - 1] >= t.feat[i])
			abort();
	tok_free(&t);
	return 0;
}
