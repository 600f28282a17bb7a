/*
 * connlimit.h: connection counts shared by all workers, for the overall
 * and per-client-address limits.
 *
 * One shared mapping made by the master before forking; each worker slot
 * owns one region and is its only writer, readers sum over regions. The
 * master zeroes a dead worker's region, so a crash leaks no counts. Reads
 * of other regions are not synchronised: a limit may be overshot by the
 * connections accepted in the same instant by other workers, never more.
 */
#ifndef MOAT_CONNLIMIT_H
#define MOAT_CONNLIMIT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

/*
 * max_per_ip counts an IPv6 client by its network, not its address: one
 * subscriber is routinely given a whole /64 (RFC 6177) and could open
 * max_per_ip connections from each of its 2^64 addresses. IPv4 (and IPv4
 * mapped into IPv6, ::ffff:a.b.c.d) counts by the full address. A
 * constant for now; it would become a [server] option in conf.c.
 */
#define CONNLIMIT_V6_PREFIX	64

/* Maps the shared table for this many worker slots. */
int	connlimit_init(int slots);
/* The region this process writes (the worker slot). */
void	connlimit_slot(int slot);
/* Forgets every count of a slot (its worker is gone). */
void	connlimit_clear(int slot);
/* Counts a new connection unless a limit is reached; false: refuse.
 * *why is "max_connections" or "max_per_ip" then. */
bool	connlimit_enter(const struct sockaddr *, long long max_total,
	    long long max_ip, const char **why);
void	connlimit_leave(const struct sockaddr *);
/* The 16-byte key a client is counted under: ::ffff:a.b.c.d for IPv4
 * and v4-mapped clients, the CONNLIMIT_V6_PREFIX network (rest zeroed)
 * for other IPv6 clients; all zero for any other family. */
void	connlimit_key(const struct sockaddr *, uint8_t key[16]);

#endif
