/*
 * connlimit.c: shared connection counts (see connlimit.h).
 *
 * Per slot: an open-addressing table keyed by connlimit_key (an IPv4
 * address as v4-mapped IPv6, an IPv6 client by its /64), probed at most
 * CL_PROBE slots; an entry whose count fell to zero may be taken by
 * another key. A full window fails open (the connection is allowed)
 * rather than refusing good clients.
 */
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#include "../core/limits.h"
#include "connlimit.h"

#define CL_PROBE	64

_Static_assert(CONNLIMIT_V6_PREFIX > 0 && CONNLIMIT_V6_PREFIX <= 128,
    "CONNLIMIT_V6_PREFIX is an IPv6 prefix length");

struct cl_entry {
	uint8_t		key[16];
	uint32_t	count;
};

struct cl_region {
	uint32_t	total;
	struct cl_entry	e[LIMIT_CONNTABLE];
};

static struct cl_region	*regions;
static int		 nregions;	/* regions in use: one per m_procs entry,
					 * GENERATIONS x workers (master.c) */
static int		 my_slot;

int
connlimit_init(int slots)
{
	nregions = slots < LIMIT_WORKERS ? slots : LIMIT_WORKERS;
	regions = mmap(NULL, sizeof(struct cl_region) * LIMIT_WORKERS,
	    PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (regions == MAP_FAILED) {
		regions = NULL;
		return -1;
	}
	return 0;
}

void
connlimit_slot(int slot)
{
	my_slot = slot;
}

void
connlimit_clear(int slot)
{
	if (regions != NULL)
		memset(&regions[slot], 0, sizeof(regions[slot]));
}

void
connlimit_key(const struct sockaddr *sa, uint8_t key[16])
{
	const struct in6_addr	*a6;
	int			 full = CONNLIMIT_V6_PREFIX / 8;
	int			 rest = CONNLIMIT_V6_PREFIX % 8;

	memset(key, 0, 16);
	if (sa->sa_family == AF_INET6) {
		a6 = &((const struct sockaddr_in6 *)(const void *)sa)->
		    sin6_addr;
		if (IN6_IS_ADDR_V4MAPPED(a6)) {
			memcpy(key, a6, 16);
			return;
		}
		memcpy(key, a6, (size_t)full);
		if (rest != 0)
			key[full] = (uint8_t)(a6->s6_addr[full] &
			    (0xff << (8 - rest)));
	} else if (sa->sa_family == AF_INET) {
		key[10] = key[11] = 0xff;
		memcpy(key + 12, &((const struct sockaddr_in *)
		    (const void *)sa)->sin_addr, 4);
	}
}

static size_t
hash_key(const uint8_t key[16])
{
	uint64_t	h = 1469598103934665603ULL;
	int		i;

	for (i = 0; i < 16; i++) {
		h ^= key[i];
		h *= 1099511628211ULL;
	}
	return (size_t)(h % LIMIT_CONNTABLE);
}

/* The entry for key in a region, NULL when absent. */
static struct cl_entry *
find(struct cl_region *r, const uint8_t key[16])
{
	size_t i, h = hash_key(key);

	for (i = 0; i < CL_PROBE; i++) {
		struct cl_entry *e = &r->e[(h + i) % LIMIT_CONNTABLE];

		if (__atomic_load_n(&e->count, __ATOMIC_RELAXED) > 0 &&
		    memcmp(e->key, key, 16) == 0)
			return e;
	}
	return NULL;
}

bool
connlimit_enter(const struct sockaddr *sa, long long max_total,
    long long max_ip, const char **why)
{
	uint8_t		 key[16];
	long long	 total = 0, ip = 0;
	struct cl_entry	*e;
	size_t		 i, h;
	int		 s;

	if (regions == NULL)
		return true;
	connlimit_key(sa, key);
	for (s = 0; s < nregions; s++) {
		total += __atomic_load_n(&regions[s].total, __ATOMIC_RELAXED);
		if ((e = find(&regions[s], key)) != NULL)
			ip += __atomic_load_n(&e->count, __ATOMIC_RELAXED);
	}
	if (total >= max_total) {
		*why = "max_connections";
		return false;
	}
	if (ip >= max_ip) {
		*why = "max_per_ip";
		return false;
	}
	__atomic_add_fetch(&regions[my_slot].total, 1, __ATOMIC_RELAXED);
	if ((e = find(&regions[my_slot], key)) != NULL) {
		__atomic_add_fetch(&e->count, 1, __ATOMIC_RELAXED);
		return true;
	}
	h = hash_key(key);
	for (i = 0; i < CL_PROBE; i++) {
		e = &regions[my_slot].e[(h + i) % LIMIT_CONNTABLE];
		if (e->count == 0) {
			memcpy(e->key, key, 16);
			__atomic_store_n(&e->count, 1, __ATOMIC_RELAXED);
			break;
		}
	}
	return true;
}

void
connlimit_leave(const struct sockaddr *sa)
{
	uint8_t		 key[16];
	struct cl_entry	*e;

	if (regions == NULL)
		return;
	connlimit_key(sa, key);
	if (regions[my_slot].total > 0)
		__atomic_sub_fetch(&regions[my_slot].total, 1,
		    __ATOMIC_RELAXED);
	if ((e = find(&regions[my_slot], key)) != NULL)
		__atomic_sub_fetch(&e->count, 1, __ATOMIC_RELAXED);
}
