/*
 * fuzz_svc_replies.c: the scanners' reply readers under libFuzzer: clamd's
 * (scanproto_clamd) and spamd's (scanproto_spamd, SYMBOLS and REPORT).
 * The first byte picks the reader; the rest is the reply, as the service
 * client hands it over (NUL-terminated, the NUL not counted). Promises
 * checked: the virus name is printable ASCII within CLAMD_NAME_MAX; the
 * rule list is within SPAMD_RULES_MAX, names of [A-Za-z0-9_] joined by
 * single commas; scores are finite.
 *
 * scanproto.c is included, not linked: the generic fuzz rule builds this
 * harness from its own file and FUZZ_SRC.
 */
#include <assert.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/filters/scanproto.c"

static void
check_clamd(const struct clamd_reply *r)
{
	size_t i, n = strlen(r->name);

	assert(n <= CLAMD_NAME_MAX);
	for (i = 0; i < n; i++)
		assert(r->name[i] > ' ' && r->name[i] < 0x7f);
	if (r->result == CLAMD_FOUND)
		assert(n > 0);
}

static void
check_spamd(const struct spamd_reply *r)
{
	size_t i, n = strlen(r->rules);

	assert(n <= SPAMD_RULES_MAX);
	assert(isfinite(r->score) && isfinite(r->threshold));
	assert(r->code >= 0 && r->code < 1000);
	for (i = 0; i < n; i++)
		assert(rule_char(r->rules[i]) || (r->rules[i] == ',' &&
		    i > 0 && i + 1 < n && r->rules[i + 1] != ','));
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct clamd_reply	 c;
	struct spamd_reply	 s;
	char			*p;

	if (size == 0)
		return 0;
	if ((p = malloc(size)) == NULL)
		return 0;
	memcpy(p, data + 1, size - 1);
	p[size - 1] = '\0';
	switch (data[0] % 3) {
	case 0:
		(void)scanproto_clamd(p, size - 1, &c);
		check_clamd(&c);
		break;
	default:
		if (scanproto_spamd(p, size - 1, data[0] % 3 == 2, &s) == 0)
			check_spamd(&s);
		break;
	}
	free(p);
	return 0;
}
