/*
 * pregreet.c: the per-worker memory of clients that passed the
 * pre-greeting test. A fixed table (PREGREET_CACHE entries, 4-way
 * buckets by the address's hash): bounded, no allocation per client, and
 * an attacker cycling addresses only evicts other passes, which costs a
 * client one more wait, never a refusal.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "pregreet.h"

#define WAYS	4

struct pass {
	char	ip[48];
	time_t	until;
};

static struct pass	table[PREGREET_CACHE];

static uint32_t
hash(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

static struct pass *
bucket(const char *ip)
{
	return &table[(hash(ip) % (PREGREET_CACHE / WAYS)) * WAYS];
}

bool
pregreet_remembered(const char *ip, time_t now)
{
	struct pass	*b = bucket(ip);
	int		 i;

	for (i = 0; i < WAYS; i++)
		if (b[i].until > now && strcmp(b[i].ip, ip) == 0)
			return true;
	return false;
}

void
pregreet_remember(const char *ip, time_t now, long long ttl)
{
	struct pass	*b = bucket(ip), *slot = &b[0];
	int		 i;

	for (i = 0; i < WAYS; i++) {
		if (strcmp(b[i].ip, ip) == 0) {
			slot = &b[i];
			break;
		}
		if (b[i].until < slot->until)
			slot = &b[i];	/* expired or oldest */
	}
	snprintf(slot->ip, sizeof(slot->ip), "%s", ip);
	slot->until = now + (time_t)ttl;
}

void
pregreet_forget_all(void)
{
	memset(table, 0, sizeof(table));
}
