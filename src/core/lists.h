/*
 * lists.h: one-entry-per-line files, qmail control files and cdb lookups.
 *
 * A list file has one entry per line; blank lines and lines starting with
 * '#' are ignored, surrounding white space is trimmed, and entries are
 * lowercased (mail domains and, like qmail, local parts compare without
 * case). Errors carry file:line.
 */
#ifndef MOAT_LISTS_H
#define MOAT_LISTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* A set of lowercased strings. */
struct strset {
	char	**slot;
	size_t	  nslot;	/* power of two */
	size_t	  count;
};

void	strset_init(struct strset *);
void	strset_free(struct strset *);
/* Adds a copy of s (lowercased); 0, or -1 on OOM. */
int	strset_add(struct strset *, const char *s, size_t n);
/* True when s (compared without case) is in the set. */
bool	strset_has(const struct strset *, const char *s, size_t n);
/* Loads a list file into the set; -1 with "file:line: why" in err. */
int	strset_load(struct strset *, const char *path, char *err, size_t);

/* An IPv4 or IPv6 network. */
struct cidr {
	int	 family;	/* AF_INET or AF_INET6 */
	uint8_t	 addr[16];
	int	 bits;
};

struct cidrlist {
	struct cidr	*v;
	size_t		 n, cap;
};

/* Parses "1.2.3.0/24", "::1", "10.1" (qmail tcprules prefix "10.1."). */
int	cidr_parse(const char *, struct cidr *);
/* True when the socket address lies inside the network. */
bool	cidr_match(const struct cidr *, const struct sockaddr *);
void	cidrlist_free(struct cidrlist *);
int	cidrlist_add(struct cidrlist *, const struct cidr *);
int	cidrlist_load(struct cidrlist *, const char *path, char *err, size_t);
bool	cidrlist_match(const struct cidrlist *, const struct sockaddr *);

/* A constant database (qmail .cdb), opened once, read many times. */
struct cdbfile;
struct cdbfile *cdbfile_open(const char *path, char *err, size_t);
void	cdbfile_close(struct cdbfile *);
/* True when the key exists (1), 0 when it does not, -1 on read error. */
int	cdbfile_has(struct cdbfile *, const char *key, size_t n);

/* Lowercases ASCII in place. */
void	lower_ascii(char *, size_t);

#endif
