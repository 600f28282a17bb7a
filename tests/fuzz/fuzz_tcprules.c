/*
 * fuzz_tcprules.c: libFuzzer harness for the access rules parser and
 * lookup (src/filters/access_rules.c, compiled in so the Makefile's
 * generic fuzz rule builds it). The input is a rules file. Checks:
 *   - a parse either fails with "LINE: why" or gives rules whose keys
 *     and values keep their limits, values NUL-terminated;
 *   - every rule the text made is taken again as a cdb record (key,
 *     value), as tcprules would have written it, and reads the same;
 *   - lookups for addresses and names taken from the input end and
 *     return a rule of the table.
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "../../src/filters/access_rules.c"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static void
check_rule(const struct access_rules *r, const struct access_rule *m)
{
	if (m == NULL)
		return;
	if (m < r->v || m >= r->v + r->n)
		abort();
}

static void
lookups(const struct access_rules *r, const uint8_t *data, size_t len)
{
	static const char *const ips[] = { "10.1.2.3", "127.0.0.1",
	    "192.168.1.1", "::1", "2001:db8::1", "1.2.3.4" };
	char		ip[INET6_ADDRSTRLEN], host[64];
	uint8_t		a[16];
	size_t		i, n;
	int		step, fam;

	memset(a, 0, sizeof(a));
	for (i = 0; i < len && i < 16; i++)
		a[i] = data[i];
	fam = len > 0 && (data[0] & 1) ? AF_INET6 : AF_INET;
	inet_ntop(fam, a, ip, sizeof(ip));
	n = len < sizeof(host) - 1 ? len : sizeof(host) - 1;
	for (i = 0; i < n; i++)
		host[i] = data[i] >= 'a' && data[i] <= 'z' ? (char)data[i] :
		    '.';
	host[n] = '\0';
	check_rule(r, access_match(r, ip, fam, a, host, &step));
	check_rule(r, access_match(r, ip, fam, a, NULL, &step));
	(void)access_host_matters(r, step);
	for (i = 0; i < sizeof(ips) / sizeof(ips[0]); i++) {
		fam = strchr(ips[i], ':') ? AF_INET6 : AF_INET;
		inet_pton(fam, ips[i], a);
		check_rule(r, access_match(r, ips[i], fam, a, "mx.example",
		    &step));
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	struct access_rules	 r, c;
	char			 err[512];
	size_t			 i;
	const struct access_rule *v;

	access_rules_init(&r);
	if (access_parse(&r, (const char *)data, len, err, sizeof(err)) ==
	    -1) {
		if (err[0] < '1' || err[0] > '9' || strstr(err, ": ") == NULL)
			abort();
		access_rules_free(&r);
		return 0;
	}
	access_rules_init(&c);
	for (i = 0; i < r.n; i++) {
		v = &r.v[i];
		if (strlen(v->key) > ACCESS_KEY_MAX + INET6_ADDRSTRLEN ||
		    v->datalen > ACCESS_DATA_MAX ||
		    (v->datalen > 0 && v->data[v->datalen - 1] != '\0') ||
		    v->line == 0)
			abort();
		if (access_add_cdb(&c, v->key, strlen(v->key), v->data,
		    v->datalen, err, sizeof(err)) == -1) {
			fprintf(stderr, "cdb refused '%s': %s\n", v->key, err);
			abort();
		}
		if (c.v[i].deny != v->deny || c.v[i].relay != v->relay ||
		    c.v[i].rbl != v->rbl || c.v[i].kind != v->kind ||
		    strcmp(c.v[i].key, v->key) != 0)
			abort();
	}
	lookups(&r, data, len);
	access_rules_free(&c);
	access_rules_free(&r);
	return 0;
}
