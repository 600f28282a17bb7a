/*
 * fuzz_limited.c: libFuzzer harness for the limited address parser
 * (src/filters/limited_parse.c), whose input is the RCPT local part.
 *
 * Input: one control byte (its low 2 bits choose a form: the defaults,
 * "-" with YYYY-MM-DD, a two-byte separator, or a date format taken from
 * the input), then the local part (copied to a buffer of exactly its
 * size, so ASan sees any read past it). Checks the parser's promises: a
 * limited address has a non-empty user shorter than the input, ends in
 * the form's keyword, a count within 1..max, a date that is a calendar
 * day; the user part is a prefix; parsing is deterministic.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../../src/filters/limited.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static int
mdays(int y, int m)
{
	static const int d[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31,
	    30, 31 };

	return m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0) ?
	    29 : d[m - 1];
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct limited_form	 f = { ".", "count", "date", "DD-MM-YYYY",
				    100 };
	struct limited_addr	 a, b;
	enum limited_kind	 k;
	char			 fmt[LIMITED_FORMAT_MAX + 1], err[128];
	char			*local;
	size_t			 n, fl;

	if (size < 1)
		return 0;
	switch (data[0] & 3) {
	case 1:
		f.sep = "-";
		f.date_fmt = "YYYY-MM-DD";
		f.max = 5;
		break;
	case 2:
		f.sep = "+-";
		f.count_kw = "c";
		f.date_kw = "d";
		f.max = 1000000;
		break;
	case 3:
		/* A format from the input, up to its first NUL. */
		fl = strnlen((const char *)data + 1, size - 1);
		if (fl > LIMITED_FORMAT_MAX)
			fl = LIMITED_FORMAT_MAX;
		memcpy(fmt, data + 1, fl);
		fmt[fl] = '\0';
		if (limited_format_check(fmt, err, sizeof(err)) == -1)
			return 0;
		f.date_fmt = fmt;
		data += fl < size - 1 ? fl + 1 : fl;
		size -= fl < size - 1 ? fl + 1 : fl;
		break;
	}
	n = size - 1;
	if ((local = malloc(n > 0 ? n : 1)) == NULL)
		return 0;
	memcpy(local, data + 1, n);
	k = limited_parse(&f, local, n, &a);
	if (k != LIMITED_NONE) {
		if (a.user_len == 0 || a.user_len >= n)
			abort();
		if (limited_parse(&f, local, n, &b) != k ||
		    memcmp(&a, &b, sizeof(a)) != 0)
			abort();
	}
	if (k == LIMITED_COUNT) {
		size_t kl = strlen(f.count_kw);

		if (a.n < 1 || a.n > f.max ||
		    strncasecmp(local + n - kl, f.count_kw, kl) != 0)
			abort();
	} else if (k == LIMITED_DATE) {
		if (a.y < 1900 || a.y > 9999 || a.m < 1 || a.m > 12 ||
		    a.d < 1 || a.d > mdays(a.y, a.m))
			abort();
		(void)limited_date_over(&a, (time_t)a.y * 1000);
	} else if (k != LIMITED_NONE)
		abort();
	free(local);
	return 0;
}
