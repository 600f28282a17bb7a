/*
 * window.c: GCRA rate windows in a table shared by the workers (see
 * window.h for why GCRA and where the table lives).
 *
 * A cell is two words: the key's 64-bit hash (0: never used) and its TAT
 * in microseconds. With E = period / N (the emission interval) and
 * tolerance T = N * E, an event of cost k at time t is allowed when
 * max(TAT, t) + k*E - t <= T, and then TAT becomes max(TAT, t) + k*E.
 * Both words change only by atomic operations, so the table works the
 * same in one process and in a MAP_SHARED mapping across many.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "window.h"

struct cell {
	uint64_t	key;
	uint64_t	tat;	/* us on window_now_ms()'s clock */
};

/* Cell 0 is the table's header: this magic and the hash seed. */
#define WINDOW_MAGIC	0x6d6f617477696e31ULL	/* "moatwin1" */

struct window_table {
	struct cell		*cells;
	uint64_t		 seed;		/* keys' hash: not guessable */
	size_t			 mask;
	size_t			 bytes;
	bool			 mapped;
	bool			 published;	/* cells are a file's */
	bool			 evict;		/* full: evict, not allow */
	unsigned		 refs;		/* named: its holders */
	char			 name[32];	/* "": not publishable */
	struct window_table	*next;		/* w_named */
};

/* Named shared tables, for window_publish(). */
static struct window_table *w_named;

/* "1h" -> ms; *end past the unit. 0 for an unknown unit. */
static uint64_t
unit_ms(const char *u)
{
	if (strcmp(u, "ms") == 0)
		return 1;
	if (strcmp(u, "s") == 0 || strcmp(u, "sec") == 0)
		return 1000;
	if (strcmp(u, "m") == 0 || strcmp(u, "min") == 0)
		return 60 * 1000;
	if (strcmp(u, "h") == 0)
		return 3600 * 1000;
	if (strcmp(u, "d") == 0)
		return 86400 * 1000;
	return 0;
}

int
window_limit_parse(const char *s, struct window_limit *l, char *err,
    size_t errlen)
{
	unsigned long long	 n, k = 1;
	const char		*p = s, *slash;
	char			*end;
	uint64_t		 u;

	memset(l, 0, sizeof(*l));
	if (s[0] == '\0' || strcmp(s, "0") == 0)
		return 0;
	if (s[0] < '0' || s[0] > '9' || (slash = strchr(s, '/')) == NULL)
		goto bad;
	n = strtoull(s, &end, 10);
	if (end != slash || n == 0 || n > WINDOW_MAX_COUNT)
		goto bad;
	p = slash + 1;
	if (*p >= '0' && *p <= '9') {
		k = strtoull(p, &end, 10);
		if (k == 0 || k > (unsigned long long)WINDOW_MAX_PERIOD_MS)
			goto bad;
		p = end;
	}
	if ((u = unit_ms(p)) == 0 || k * u > (uint64_t)WINDOW_MAX_PERIOD_MS)
		goto bad;
	l->count = n;
	l->period_ms = k * u;
	return 0;
bad:
	snprintf(err, errlen, "'%s' is not N/period (period: a number and "
	    "ms, s, m, h or d; N at most %d, the period at most 366d)", s,
	    WINDOW_MAX_COUNT);
	return -1;
}

struct window_table *
window_table_new(size_t cells, bool shared)
{
	struct window_table	*t;
	size_t			 n = 16;

	while (n < cells && n < ((size_t)1 << 26))
		n <<= 1;
	if ((t = calloc(1, sizeof(*t))) == NULL)
		return NULL;
	t->mask = n - 1;
	t->bytes = n * sizeof(struct cell);
	t->mapped = shared;
	if (shared) {
		t->cells = mmap(NULL, t->bytes, PROT_READ | PROT_WRITE,
		    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
		if (t->cells == MAP_FAILED)
			t->cells = NULL;
	} else
		t->cells = calloc(n, sizeof(struct cell));
	if (t->cells == NULL) {
		free(t);
		return NULL;
	}
	/* A secret seed: a client that picks its sender or recipient
	 * cannot aim its keys at another key's cells (all of a key's
	 * cells taken means that key is not limited). */
	if (getrandom(&t->seed, sizeof(t->seed), 0) != sizeof(t->seed))
		t->seed = (uint64_t)time(NULL) * 0x9e3779b97f4a7c15ULL ^
		    (uint64_t)(uintptr_t)t;
	t->cells[0].key = WINDOW_MAGIC;
	t->cells[0].tat = t->seed;
	return t;
}

void
window_table_evict(struct window_table *t)
{
	if (t != NULL)
		t->evict = true;
}

struct window_table *
window_table_shared(const char *name, size_t cells)
{
	struct window_table *t;

	for (t = w_named; t != NULL; t = t->next)
		if (strcmp(t->name, name) == 0) {
			t->refs++;
			return t;
		}
	if ((t = window_table_new(cells, true)) == NULL)
		return NULL;
	t->refs = 1;
	snprintf(t->name, sizeof(t->name), "%s", name);
	t->next = w_named;
	w_named = t;
	return t;
}

/* Moves t's cells into the file dir/NAME.win, made anew (what an older
 * run left there was counted on another boot's monotonic clock): a new
 * file renamed over the old, so workers of an older generation that
 * still map the old one keep their own cells (truncating it under them
 * would be SIGBUS). */
static int
publish_one(struct window_table *t, const char *dir, char *err,
    size_t errlen)
{
	char	 path[4096], tmp[4096 + 16];
	void	*m;
	int	 fd;

	if ((size_t)snprintf(path, sizeof(path), "%s/%s.win", dir,
	    t->name) >= sizeof(path) || (size_t)snprintf(tmp, sizeof(tmp),
	    "%s.%ld", path, (long)getpid()) >= sizeof(tmp)) {
		snprintf(err, errlen, "%s: path too long", dir);
		return -1;
	}
	if ((fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC,
	    0640)) == -1 || ftruncate(fd, (off_t)t->bytes) == -1) {
		snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
		if (fd != -1) {
			close(fd);
			unlink(tmp);
		}
		return -1;
	}
	m = mmap(NULL, t->bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (m != MAP_FAILED)	/* before the rename: readers see a table */
		memcpy(m, t->cells, t->bytes);
	if (m == MAP_FAILED || rename(tmp, path) == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		if (m != MAP_FAILED)
			munmap(m, t->bytes);
		unlink(tmp);
		return -1;
	}
	munmap(t->cells, t->bytes);
	t->cells = m;
	t->published = true;
	return 0;
}

int
window_publish(const char *dir, char *err, size_t errlen)
{
	struct window_table *t;

	if (mkdir(dir, 0750) == -1 && errno != EEXIST) {
		snprintf(err, errlen, "%s: %s", dir, strerror(errno));
		return -1;
	}
	for (t = w_named; t != NULL; t = t->next)
		if (!t->published && publish_one(t, dir, err, errlen) == -1)
			return -1;
	return 0;
}

struct window_table *
window_table_open(const char *path, char *err, size_t errlen)
{
	struct window_table	*t;
	struct stat		 st;
	size_t			 n;
	void			*m;
	int			 fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1 ||
	    fstat(fd, &st) == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		if (fd != -1)
			close(fd);
		return NULL;
	}
	n = (size_t)st.st_size / sizeof(struct cell);
	if (st.st_size <= 0 || (size_t)st.st_size % sizeof(struct cell) ||
	    (n & (n - 1)) != 0 || n < 16) {
		snprintf(err, errlen, "%s: not a window table", path);
		close(fd);
		return NULL;
	}
	m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	if (m == MAP_FAILED || ((struct cell *)m)->key != WINDOW_MAGIC ||
	    (t = calloc(1, sizeof(*t))) == NULL) {
		snprintf(err, errlen, "%s: %s", path, m == MAP_FAILED ?
		    "cannot map" : "not a window table");
		if (m != MAP_FAILED)
			munmap(m, (size_t)st.st_size);
		return NULL;
	}
	t->cells = m;
	t->seed = ((struct cell *)m)->tat;
	t->mask = n - 1;
	t->bytes = (size_t)st.st_size;
	t->mapped = true;
	return t;
}

void
window_table_free(struct window_table *t)
{
	struct window_table **pp;

	if (t == NULL || (t->refs > 1 && t->refs--))
		return;
	for (pp = &w_named; *pp != NULL; pp = &(*pp)->next)
		if (*pp == t) {
			*pp = t->next;
			break;
		}
	if (t->mapped)
		munmap(t->cells, t->bytes);
	else
		free(t->cells);
	free(t);
}

uint64_t
window_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* FNV-1a over the limit and the key, finished by a 64-bit mix. */
static uint64_t
hash_key(uint64_t seed, const struct window_limit *l, const void *key,
    size_t n)
{
	const unsigned char	*p = key;
	uint64_t		 h = 0xcbf29ce484222325ULL ^ seed, w[2];
	size_t			 i;

	w[0] = l->count;
	w[1] = l->period_ms;
	for (i = 0; i < sizeof(w); i++)
		h = (h ^ ((const unsigned char *)w)[i]) * 0x100000001b3ULL;
	for (i = 0; i < n; i++)
		h = (h ^ p[i]) * 0x100000001b3ULL;
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= (h >> 33) ^ seed;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return h != 0 ? h : 1;
}

/*
 * The key's cell: the one holding it, else a free one (never used, or
 * no debt left) claimed for it. NULL when the probe finds neither.
 */
static struct cell *
cell_find(struct window_table *t, uint64_t h, uint64_t now_us, bool claim)
{
	struct cell	*c, *spare = NULL, *oldest = NULL;
	uint64_t	 k, sk = 0, tat, otat = UINT64_MAX, ok = 0;
	size_t		 i;

	for (i = 0; i < WINDOW_PROBE; i++) {
		/* Cell 0 is the header. */
		c = &t->cells[((h + i) & t->mask) != 0 ? (h + i) & t->mask :
		    1];
		k = __atomic_load_n(&c->key, __ATOMIC_ACQUIRE);
		if (k == h)
			return c;
		tat = __atomic_load_n(&c->tat, __ATOMIC_ACQUIRE);
		if (spare == NULL && (k == 0 || tat <= now_us)) {
			spare = c;
			sk = k;
		}
		if (tat < otat) {
			oldest = c;
			otat = tat;
			ok = k;
		}
	}
	if (!claim)
		return NULL;
	if (spare == NULL) {
		if (!t->evict || oldest == NULL)
			return NULL;
		/* Evicting: the key nearest to the end of its debt loses
		 * its count, which starts anew for ours. */
		spare = oldest;
		sk = ok;
	}
	/* Another process may take the same cell: the swap succeeds only
	 * against the key seen in the probe, so whoever swaps first owns
	 * it and the other counts nothing this once. */
	if (!__atomic_compare_exchange_n(&spare->key, &sk, h, false,
	    __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
		return NULL;
	/* The cell is ours: what its former key left is not our debt (it
	 * took an event between the probe and the swap, or was evicted). */
	tat = __atomic_load_n(&spare->tat, __ATOMIC_ACQUIRE);
	if (tat > now_us)
		(void)__atomic_compare_exchange_n(&spare->tat, &tat, now_us,
		    false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
	return spare;
}

static uint64_t
div_up(uint64_t a, uint64_t b)
{
	return a / b + (a % b != 0);
}

struct window_result
window_take(struct window_table *t, const struct window_limit *l,
    const void *key, size_t keylen, unsigned cost, uint64_t now_ms)
{
	struct window_result	 r = { true, false, 0, 0 };
	struct cell		*c;
	uint64_t		 now = now_ms * 1000, e, tol, old, base, next;

	if (t == NULL || l->count == 0)
		return r;
	e = l->period_ms * 1000 / l->count;
	if (e == 0)
		e = 1;
	tol = e * l->count;
	if ((c = cell_find(t, hash_key(t->seed, l, key, keylen), now, true)) == NULL) {
		r.full = true;
		return r;
	}
	old = __atomic_load_n(&c->tat, __ATOMIC_ACQUIRE);
	do {
		base = old > now ? old : now;
		next = base + (uint64_t)cost * e;
		if (next - now > tol) {
			r.allowed = false;
			r.used = div_up(base - now, e);
			r.retry_ms = div_up(next - now - tol, 1000);
			return r;
		}
	} while (!__atomic_compare_exchange_n(&c->tat, &old, next, false,
	    __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE));
	r.used = div_up(next - now, e);
	return r;
}

void
window_return(struct window_table *t, const struct window_limit *l,
    const void *key, size_t keylen, unsigned cost, uint64_t now_ms)
{
	struct cell	*c;
	uint64_t	 now = now_ms * 1000, e, old, next;

	if (t == NULL || l->count == 0 || (c = cell_find(t, hash_key(t->seed,
	    l, key, keylen), now, false)) == NULL)
		return;
	e = l->period_ms * 1000 / l->count;
	if (e == 0)
		e = 1;
	old = __atomic_load_n(&c->tat, __ATOMIC_ACQUIRE);
	do {
		if (old <= now)
			return;		/* no debt left to give back */
		next = old - now > (uint64_t)cost * e ? old - (uint64_t)cost *
		    e : now;
	} while (!__atomic_compare_exchange_n(&c->tat, &old, next, false,
	    __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE));
}

uint64_t
window_peek(struct window_table *t, const struct window_limit *l,
    const void *key, size_t keylen, uint64_t now_ms)
{
	struct cell	*c;
	uint64_t	 now = now_ms * 1000, tat, e;

	if (t == NULL || l->count == 0 ||
	    (c = cell_find(t, hash_key(t->seed, l, key, keylen), now, false)) == NULL)
		return 0;
	e = l->period_ms * 1000 / l->count;
	tat = __atomic_load_n(&c->tat, __ATOMIC_ACQUIRE);
	return tat > now ? div_up(tat - now, e ? e : 1) : 0;
}
