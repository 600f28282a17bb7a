/*
 * fuzz_data.c: libFuzzer harness for the DATA/BDAT reader. The input is
 * fed twice, whole and split at fuzzer-chosen points, and the two runs
 * must agree; a message that is not refused must be CRLF-clean and hold
 * no NUL.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/smtp/data.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

struct run {
	size_t		consumed;
	bool		done;
	unsigned	flags;
	struct buf	out;
};

static void
feed(const uint8_t *d, size_t n, bool dot, const uint8_t *splits,
    size_t nsplit, struct run *r)
{
	struct data_reader	dr;
	size_t			off = 0, k = 0, chunk, used;
	bool			done = false;

	buf_init(&r->out, 1 << 20);
	data_init(&dr, &r->out, dot, 1 << 16, 200, 50);
	while (off < n && !done) {
		chunk = nsplit ? 1 + splits[k++ % nsplit] % 32 : n - off;
		if (chunk > n - off)
			chunk = n - off;
		used = data_feed(&dr, (const char *)d + off, chunk, &done);
		if (used > chunk || (!done && used != chunk))
			abort();
		off += used;
	}
	if (!dot)
		data_finish(&dr);
	r->consumed = off;
	r->done = done;
	r->flags = dr.flags;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct run	a, b;
	size_t		nsplit, i;
	bool		dot;

	if (size < 2)
		return 0;
	dot = data[0] & 1;
	nsplit = data[1] % 8;
	if (size < 2 + nsplit)
		return 0;
	feed(data + 2 + nsplit, size - 2 - nsplit, dot, NULL, 0, &a);
	feed(data + 2 + nsplit, size - 2 - nsplit, dot, data + 2, nsplit, &b);
	/* Where the message ends and whether it is refused never depend on
	 * how the bytes were split; what is kept of a refused message may
	 * (it is thrown away), of an accepted one it may not. */
	if (a.consumed != b.consumed || a.done != b.done || a.flags != b.flags)
		abort();
	if (!(a.flags & DATA_REFUSE) && (a.out.len != b.out.len ||
	    (a.out.len && memcmp(a.out.data, b.out.data, a.out.len) != 0)))
		abort();
	if (!(a.flags & DATA_REFUSE)) {
		for (i = 0; i < a.out.len; i++) {
			char c = a.out.data[i];

			if (c == '\0')
				abort();
			if (c == '\r' && (i + 1 >= a.out.len ||
			    a.out.data[i + 1] != '\n'))
				abort();
			if (c == '\n' && (i == 0 || a.out.data[i - 1] != '\r'))
				abort();
		}
	}
	buf_free(&a.out);
	buf_free(&b.out);
	return 0;
}
