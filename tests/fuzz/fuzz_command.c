/*
 * fuzz_command.c: libFuzzer harness for the command-line parsers: the
 * verb split, paths (every mode), MAIL/RCPT parameters and BDAT.
 * Checks the parsers' promises, not only that they do not crash.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/smtp/parse.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct command		 c;
	struct path		 p;
	struct mail_params	 mp;
	struct str		 rest, s;
	long long		 n;
	bool			 last;
	unsigned		 mode;

	if (size > LIMIT_COMMAND_LINE_MAX + 1 || size == 0)
		return 0;
	mode = data[0];
	if (parse_command((const char *)data + 1, size - 1, &c) != PARSE_OK)
		return 0;
	/* The argument lies inside the line. */
	if (c.arg.len > 0 && (c.arg.p < (const char *)data + 1 ||
	    c.arg.p + c.arg.len > (const char *)data + size))
		abort();
	s = c.arg;
	if (parse_path(s, &p, &rest, mode & 1, mode & 2, mode & 4) ==
	    PARSE_OK) {
		/* What came out respects the RFC 5321 limits ... */
		if (strlen(p.local) > LIMIT_LOCAL_PART ||
		    strlen(p.domain) > LIMIT_DOMAIN)
			abort();
		/* ... holds no byte that could end or split a line ... */
		if (strpbrk(p.local, "\r\n") || strpbrk(p.domain, "\r\n") ||
		    memchr(p.local, '\0', strlen(p.local)) != NULL)
			abort();
		/* ... and a domain that is a Domain, never with a final dot. */
		if (p.domain[0] != '\0' && (!parse_domain_ok(p.domain,
		    strlen(p.domain), mode & 4) ||
		    p.domain[strlen(p.domain) - 1] == '.'))
			abort();
		(void)parse_mail_params(rest, &mp);
		(void)parse_rcpt_params(rest);
	}
	if (parse_bdat(s, &n, &last) == PARSE_OK && n < 0)
		abort();
	return 0;
}
