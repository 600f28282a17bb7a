/*
 * fuzz_dns.c: libFuzzer harness for DNS replies. The input is a raw reply
 * as c-ares hands it to dns.c. It goes through dns_answer_ttl(),
 * dns_parse() for every type (c-ares' parsers plus our joining and
 * lowercasing) and c-ares' parsers directly, and the results must agree:
 * - what dns_parse() answers is well formed (OK has 1..DNS_RR_MAX records,
 *   names lowercased without a trailing dot, string lengths right; a
 *   negative answer or TEMPFAIL has none; the TTL is dns_answer_ttl's);
 * - a reply c-ares parses is one dns_answer_ttl() does not call malformed;
 * - an A/AAAA record's TTL as c-ares reads it is never below ours (ours is
 *   the minimum over the answer section).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <netdb.h>
#include <sys/socket.h>

#include <ares.h>

#include "../../src/core/dns.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/* A trailing dot that is not escaped ("\\." is a dot inside a label). */
static bool
ends_in_dot(const char *s, size_t len)
{
	size_t	bs = 0;

	if (len == 0 || s[len - 1] != '.')
		return false;
	while (bs + 1 < len && s[len - 2 - bs] == '\\')
		bs++;
	return bs % 2 == 0;
}

static void
check_answer(const struct dns_answer *a, enum dns_type t, long ttl)
{
	size_t	i, j;

	if (a->status == DNS_TEMPFAIL) {
		if (a->n != 0 || a->rr != NULL)
			abort();
		return;
	}
	if (ttl < 0 || a->ttl != (uint32_t)ttl)
		abort();
	if (a->status != DNS_OK) {
		if (a->n != 0 || a->rr != NULL)
			abort();
		return;
	}
	if (a->n == 0 || a->n > DNS_RR_MAX || a->rr == NULL)
		abort();
	for (i = 0; i < a->n; i++) {
		const struct dns_rr *r = &a->rr[i];

		if (t == DNS_A || t == DNS_AAAA) {
			if (r->family != (t == DNS_A ? AF_INET : AF_INET6) ||
			    r->str != NULL)
				abort();
			continue;
		}
		if (r->str == NULL || r->str[r->len] != '\0')
			abort();
		if (t == DNS_TXT)
			continue;
		if (strlen(r->str) != r->len || ends_in_dot(r->str, r->len))
			abort();
		for (j = 0; j < r->len; j++)
			if (r->str[j] >= 'A' && r->str[j] <= 'Z')
				abort();
	}
}

/* c-ares' own parsers: what they accept we must not call malformed. */
static void
cross_check(const uint8_t *d, int n, long ttl)
{
	struct ares_addrttl	 v4[DNS_RR_MAX];
	struct ares_addr6ttl	 v6[DNS_RR_MAX];
	struct ares_txt_ext	*tx;
	struct ares_mx_reply	*mx;
	struct hostent		*he;
	unsigned char		 any[4] = { 0 };
	int			 k, i;

	k = DNS_RR_MAX;
	if (ares_parse_a_reply(d, n, NULL, v4, &k) == ARES_SUCCESS) {
		if (ttl < 0)
			abort();
		for (i = 0; i < k; i++)
			if (v4[i].ttl >= 0 && v4[i].ttl < ttl)
				abort();
	}
	k = DNS_RR_MAX;
	if (ares_parse_aaaa_reply(d, n, NULL, v6, &k) == ARES_SUCCESS) {
		if (ttl < 0)
			abort();
		for (i = 0; i < k; i++)
			if (v6[i].ttl >= 0 && v6[i].ttl < ttl)
				abort();
	}
	if (ares_parse_txt_reply_ext(d, n, &tx) == ARES_SUCCESS) {
		ares_free_data(tx);
		if (ttl < 0)
			abort();
	}
	if (ares_parse_mx_reply(d, n, &mx) == ARES_SUCCESS) {
		ares_free_data(mx);
		if (ttl < 0)
			abort();
	}
	if (ares_parse_ptr_reply(d, n, any, sizeof(any), AF_INET, &he) ==
	    ARES_SUCCESS) {
		ares_free_hostent(he);
		if (ttl < 0)
			abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	struct dns_answer	a;
	long			ttl;
	int			t;

	if (n > 65535)		/* a DNS message's size, RFC 1035 §4.2.2 */
		return 0;
	ttl = dns_answer_ttl(d, n);
	if (ttl > 0x7fffffffL)
		abort();
	for (t = 0; t < DNS_TYPE_COUNT; t++) {
		if (dns_parse((enum dns_type)t, d, n, &a) == -1)
			continue;	/* out of memory */
		check_answer(&a, (enum dns_type)t, ttl);
		dns_answer_free(&a);
	}
	cross_check(d, (int)n, ttl);
	return 0;
}
