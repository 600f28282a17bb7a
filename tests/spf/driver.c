/*
 * driver.c: runs every case of a file in the convert.py line format
 * through the real evaluator on the fake resolver and prints one line per
 * case, for tests/spf/differential.py:
 *
 *     ID RESULT DNS_TERMS VOID_LOOKUPS EXPLANATION|\-
 *
 * (the explanation escaped as in the input). Build:
 *   cc -std=c11 -D_GNU_SOURCE -O1 -g -o build/spf_driver tests/spf/driver.c \
 *       src/filters/spf_eval.c
 * Usage: spf_driver FILE [MODE]   (MODE: fifo lifo random sync; fifo)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spf_fake.h"

static void
put_escaped(const char *s)
{
	if (*s == '\0') {
		fputs("\\-", stdout);
		return;
	}
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (c >= 0x21 && c <= 0x7e && c != '\\')
			putchar(c);
		else
			printf("\\x%02x", c);
	}
}

int
main(int argc, char **argv)
{
	struct fake_zone	 z;
	struct spf_result	 r;
	enum fake_mode		 mode = FAKE_FIFO;
	FILE			*f;
	char			*text;
	size_t			 len = 0, cap = 1 << 16, n;
	int			 bad = 0;

	if (argc < 2) {
		fprintf(stderr, "usage: spf_driver FILE [fifo|lifo|random|sync]\n");
		return 2;
	}
	if (argc > 2)
		mode = strcmp(argv[2], "lifo") == 0 ? FAKE_LIFO :
		    strcmp(argv[2], "random") == 0 ? FAKE_RANDOM :
		    strcmp(argv[2], "sync") == 0 ? FAKE_SYNC : FAKE_FIFO;
	if ((f = strcmp(argv[1], "-") == 0 ? stdin : fopen(argv[1], "rb")) ==
	    NULL || (text = malloc(cap)) == NULL) {
		perror(argv[1]);
		return 1;
	}
	while ((n = fread(text + len, 1, cap - len - 1, f)) > 0) {
		len += n;
		if (len + 1 == cap && (text = realloc(text, cap *= 2)) == NULL)
			return 1;
	}
	text[len] = '\0';
	if (fake_load(&z, text, &bad) == -1) {
		fprintf(stderr, "%s:%d: bad line\n", argv[1], bad);
		return 1;
	}
	free(text);
	for (size_t i = 0; i < z.ncases; i++) {
		if (!fake_run_case(&z, &z.cases[i], mode, (unsigned)i, &r)) {
			printf("%s unfinished 0 0 \\-\n", z.cases[i].id);
			continue;
		}
		printf("%s %s %u %u ", z.cases[i].id, spf_code_name(r.code),
		    r.dns_terms, r.void_lookups);
		put_escaped(r.explanation);
		putchar('\n');
	}
	fake_free(&z);
	return 0;
}
