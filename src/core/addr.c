/*
 * addr.c: client addresses as the checks that remember clients name
 * them (addr.h).
 */
#include <arpa/inet.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "addr.h"

int
addr_client(const char *ip, char *out, size_t n)
{
	unsigned char	 a[16];
	char		 v[INET6_ADDRSTRLEN + 4];
	size_t		 len = strlen(ip);
	bool		 slash = false;

	if (len >= sizeof(v))
		return -1;
	memcpy(v, ip, len + 1);
	if (len > 3 && strcmp(v + len - 3, "/64") == 0) {
		v[len - 3] = '\0';	/* a name addr_client made */
		slash = true;
	}
	if (!slash && inet_pton(AF_INET, v, a) == 1) {
		if (inet_ntop(AF_INET, a, out, (socklen_t)n) == NULL)
			return -1;
		return 0;
	}
	if (inet_pton(AF_INET6, v, a) != 1)
		return -1;
	if (!slash && memcmp(a, "\0\0\0\0\0\0\0\0\0\0\xff\xff", 12) == 0) {
		if (inet_ntop(AF_INET, a + 12, out, (socklen_t)n) == NULL)
			return -1;
		return 0;
	}
	memset(a + 8, 0, 8);
	if (inet_ntop(AF_INET6, a, v, sizeof(v)) == NULL)
		return -1;
	if ((size_t)snprintf(out, n, "%s/64", v) >= n)
		return -1;
	return 0;
}
