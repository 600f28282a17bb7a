/*
 * lists.c: list files, CIDR networks and cdb files (see lists.h).
 */
#include <arpa/inet.h>
#include <cdb.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "limits.h"
#include "lists.h"

void
lower_ascii(char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (s[i] >= 'A' && s[i] <= 'Z')
			s[i] = (char)(s[i] + 'a' - 'A');
}

/* FNV-1a over the lowercased bytes. */
static size_t
hash_lower(const char *s, size_t n)
{
	uint64_t h = 1469598103934665603ULL;
	size_t	 i;

	for (i = 0; i < n; i++) {
		h ^= (unsigned char)tolower((unsigned char)s[i]);
		h *= 1099511628211ULL;
	}
	return (size_t)h;
}

void
strset_init(struct strset *s)
{
	s->slot = NULL;
	s->nslot = s->count = 0;
}

void
strset_free(struct strset *s)
{
	size_t i;

	for (i = 0; i < s->nslot; i++)
		free(s->slot[i]);
	free(s->slot);
	strset_init(s);
}

static size_t
strset_find(const struct strset *s, const char *k, size_t n)
{
	size_t i = hash_lower(k, n) & (s->nslot - 1);

	while (s->slot[i] != NULL) {
		if (strlen(s->slot[i]) == n &&
		    strncasecmp(s->slot[i], k, n) == 0)
			break;
		i = (i + 1) & (s->nslot - 1);
	}
	return i;
}

static int
strset_grow(struct strset *s)
{
	struct strset	 t;
	size_t		 i;

	t.nslot = s->nslot ? s->nslot * 2 : 64;
	t.count = s->count;
	if ((t.slot = calloc(t.nslot, sizeof(char *))) == NULL)
		return -1;
	for (i = 0; i < s->nslot; i++)
		if (s->slot[i] != NULL)
			t.slot[strset_find(&t, s->slot[i],
			    strlen(s->slot[i]))] = s->slot[i];
	free(s->slot);
	*s = t;
	return 0;
}

int
strset_add(struct strset *s, const char *k, size_t n)
{
	size_t	 i;
	char	*c;

	if ((s->count + 1) * 2 > s->nslot && strset_grow(s) == -1)
		return -1;
	i = strset_find(s, k, n);
	if (s->slot[i] != NULL)
		return 0;
	if ((c = strndup(k, n)) == NULL)
		return -1;
	lower_ascii(c, n);
	s->slot[i] = c;
	s->count++;
	return 0;
}

bool
strset_has(const struct strset *s, const char *k, size_t n)
{
	if (s->count == 0)
		return false;
	return s->slot[strset_find(s, k, n)] != NULL;
}

/*
 * Reads a list file line by line, handing each trimmed, non-comment entry
 * to fn. Overlong lines are an error, never silently cut.
 */
static int
list_read(const char *path, int (*fn)(void *, const char *, size_t, char *,
    size_t), void *arg, char *err, size_t errlen)
{
	FILE	*fp;
	char	 line[LIMIT_LIST_LINE + 2], msg[256];
	int	 lineno = 0, rc = 0;
	size_t	 n;
	char	*p;

	if ((fp = fopen(path, "r")) == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof(line), fp) != NULL) {
		lineno++;
		n = strlen(line);
		if (n > LIMIT_LIST_LINE && line[n - 1] != '\n') {
			snprintf(err, errlen, "%s:%d: line longer than %d "
			    "characters", path, lineno, LIMIT_LIST_LINE);
			rc = -1;
			break;
		}
		while (n > 0 && isspace((unsigned char)line[n - 1]))
			line[--n] = '\0';
		for (p = line; isspace((unsigned char)*p); p++)
			n--;
		if (n == 0 || *p == '#')
			continue;
		if (fn(arg, p, n, msg, sizeof(msg)) == -1) {
			snprintf(err, errlen, "%s:%d: %s", path, lineno, msg);
			rc = -1;
			break;
		}
	}
	fclose(fp);
	return rc;
}

static int
strset_line(void *arg, const char *s, size_t n, char *err, size_t errlen)
{
	if (strset_add(arg, s, n) == -1) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

int
strset_load(struct strset *s, const char *path, char *err, size_t errlen)
{
	return list_read(path, strset_line, s, err, errlen);
}

/*
 * A prefix length: 1 to 3 ASCII digits, no sign, no space, no leading
 * zero (so "/08" is not read as octal by anyone), at most max; -1 if not.
 */
static int
prefix_len(const char *s, int max)
{
	int	v = 0;
	size_t	i;

	for (i = 0; s[i] != '\0'; i++) {
		if (i == 3 || s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	if (i == 0 || (s[0] == '0' && i > 1) || v > max)
		return -1;
	return v;
}

/*
 * Accepts "a.b.c.d/n", "v6addr/n", bare addresses, and tcprules-style
 * IPv4 prefixes ("10.", "10.1", "192.168.1.") meaning whole octets.
 * Strict: n is 0-32 (IPv4) or 0-128 (IPv6) in plain decimal, and
 * nothing else (sign, white space, trailing junk) is allowed anywhere.
 * On failure *c is zeroed.
 */
int
cidr_parse(const char *s, struct cidr *c)
{
	char		 tmp[INET6_ADDRSTRLEN + 8], *slash;
	long		 octet;
	int		 dots = 0, i;
	size_t		 n = strlen(s);
	const char	*p;

	memset(c, 0, sizeof(*c));
	if (n == 0 || n >= sizeof(tmp))
		return -1;
	memcpy(tmp, s, n + 1);
	if ((slash = strchr(tmp, '/')) != NULL)
		*slash++ = '\0';
	if (inet_pton(AF_INET6, tmp, c->addr) == 1) {
		c->family = AF_INET6;
		c->bits = slash == NULL ? 128 : prefix_len(slash, 128);
	} else if (inet_pton(AF_INET, tmp, c->addr) == 1) {
		c->family = AF_INET;
		c->bits = slash == NULL ? 32 : prefix_len(slash, 32);
	} else if (slash == NULL) {
		/* A tcprules prefix: up to three whole octets, "10." or
		 * "10.1", each 1-3 digits (an empty one is refused). */
		n = strlen(tmp);
		if (n > 0 && tmp[n - 1] == '.')
			tmp[--n] = '\0';
		for (p = tmp; *p != '\0'; p++)
			if (*p == '.')
				dots++;
			else if (*p < '0' || *p > '9')
				goto bad;
		if (dots > 2)
			goto bad;
		for (p = tmp, i = 0; i <= dots; i++) {
			octet = 0;
			for (n = 0; p[n] >= '0' && p[n] <= '9'; n++)
				if (n == 3 || (octet = octet * 10 +
				    (p[n] - '0')) > 255)
					goto bad;
			if (n == 0)
				goto bad;
			c->addr[i] = (uint8_t)octet;
			p += n + (p[n] == '.');
		}
		c->family = AF_INET;
		c->bits = (dots + 1) * 8;
	} else
		goto bad;
	if (c->bits >= 0)
		return 0;
bad:
	memset(c, 0, sizeof(*c));
	return -1;
}

bool
cidr_match(const struct cidr *c, const struct sockaddr *sa)
{
	const uint8_t	*a;
	uint8_t		 v4mapped[16];
	int		 full, rest;

	if (sa->sa_family == AF_INET) {
		a = (const uint8_t *)&((const struct sockaddr_in *)
		    (const void *)sa)->sin_addr;
		if (c->family == AF_INET6) {
			/* Compare v4 clients with ::ffff:a.b.c.d rules. */
			memset(v4mapped, 0, 10);
			v4mapped[10] = v4mapped[11] = 0xff;
			memcpy(v4mapped + 12, a, 4);
			a = v4mapped;
		}
	} else if (sa->sa_family == AF_INET6) {
		a = ((const struct sockaddr_in6 *)(const void *)sa)->
		    sin6_addr.s6_addr;
		if (c->family == AF_INET) {
			if (!IN6_IS_ADDR_V4MAPPED((const struct in6_addr *)
			    (const void *)a))
				return false;
			a += 12;
		}
	} else
		return false;
	full = c->bits / 8;
	rest = c->bits % 8;
	if (memcmp(a, c->addr, (size_t)full) != 0)
		return false;
	if (rest == 0)
		return true;
	return ((a[full] ^ c->addr[full]) & (0xff << (8 - rest))) == 0;
}

void
cidrlist_free(struct cidrlist *l)
{
	free(l->v);
	l->v = NULL;
	l->n = l->cap = 0;
}

int
cidrlist_add(struct cidrlist *l, const struct cidr *c)
{
	struct cidr	*v;
	size_t		 cap;

	if (l->n == l->cap) {
		cap = l->cap ? l->cap * 2 : 16;
		if ((v = reallocarray(l->v, cap, sizeof(*v))) == NULL)
			return -1;
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n++] = *c;
	return 0;
}

static int
cidr_line(void *arg, const char *s, size_t n, char *err, size_t errlen)
{
	struct cidr	c;
	char		tmp[64];

	if (n >= sizeof(tmp) || (memcpy(tmp, s, n), tmp[n] = '\0',
	    cidr_parse(tmp, &c) == -1)) {
		snprintf(err, errlen, "'%.*s' is not an address or network",
		    (int)(n > 64 ? 64 : n), s);
		return -1;
	}
	if (cidrlist_add(arg, &c) == -1) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

int
cidrlist_load(struct cidrlist *l, const char *path, char *err, size_t errlen)
{
	return list_read(path, cidr_line, l, err, errlen);
}

bool
cidrlist_match(const struct cidrlist *l, const struct sockaddr *sa)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		if (cidr_match(&l->v[i], sa))
			return true;
	return false;
}

struct cdbfile {
	int		fd;
	struct cdb	cdb;
};

struct cdbfile *
cdbfile_open(const char *path, char *err, size_t errlen)
{
	struct cdbfile *f;

	if ((f = calloc(1, sizeof(*f))) == NULL) {
		snprintf(err, errlen, "%s: out of memory", path);
		return NULL;
	}
	if ((f->fd = open(path, O_RDONLY | O_CLOEXEC)) == -1 ||
	    cdb_init(&f->cdb, f->fd) != 0) {
		snprintf(err, errlen, "%s: %s", path, errno ? strerror(errno) :
		    "not a cdb file");
		if (f->fd != -1)
			close(f->fd);
		free(f);
		return NULL;
	}
	return f;
}

void
cdbfile_close(struct cdbfile *f)
{
	if (f == NULL)
		return;
	cdb_free(&f->cdb);
	close(f->fd);
	free(f);
}

int
cdbfile_has(struct cdbfile *f, const char *key, size_t n)
{
	int r = cdb_find(&f->cdb, key, (unsigned)n);

	return r > 0 ? 1 : r == 0 ? 0 : -1;
}
