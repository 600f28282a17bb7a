/*
 * fuzz_helo.c: libFuzzer harness for the HELO argument's readers (the
 * helo filter's helo_parse/helo_static, rhsbl's rhsbl_name): client
 * text in, facts out. Checks their promises, not only that they do not
 * crash: the name fits and is lowercase, an address is
 * only claimed with a family, and rhsbl's name is either refused or a
 * bounded lowercase domain.
 */
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "../../src/filters/helo.h"
#include "../../src/filters/rhsbl.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char			 in[LIMIT_HELO * 2 + 2], out[300];
	struct helo_facts	 f;
	struct sockaddr_storage	 peer, local;
	struct sockaddr_in	*p4 = (struct sockaddr_in *)&peer;
	size_t			 i, n;
	int			 r;

	if (size >= sizeof(in))
		return 0;
	memcpy(in, data, size);
	in[size] = '\0';
	helo_parse(in, &f);
	n = strnlen(f.name, sizeof(f.name));
	/* (One final dot is dropped; the core refuses "a.." before any
	 * filter sees it, so more are not this reader's to judge.) */
	if (n > LIMIT_HELO)
		abort();
	for (i = 0; i < n; i++)
		if (f.name[i] >= 'A' && f.name[i] <= 'Z')
			abort();
	if ((f.literal || f.bare_ip) && f.family != 0 &&
	    f.family != AF_INET && f.family != AF_INET6)
		abort();
	memset(&peer, 0, sizeof(peer));
	memset(&local, 0, sizeof(local));
	p4->sin_family = AF_INET;
	p4->sin_addr.s_addr = htonl(0x7f000001);
	memcpy(&local, &peer, sizeof(peer));
	(void)helo_static(&f, &peer, &local, "mx.example.test");
	(void)helo_resolvable(&f);
	r = rhsbl_name(in, out, sizeof(out));
	if (r == 0) {
		n = strnlen(out, sizeof(out));
		if (n == 0 || n >= sizeof(out) || out[n - 1] == '.')
			abort();
	}
	return 0;
}
