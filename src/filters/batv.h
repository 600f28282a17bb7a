/*
 * batv.h: BATV "prvs" tags (draft-levine-smtp-batv-01 §4): a signed
 * envelope sender, so that bounces to addresses we never sent from can
 * be told apart from real ones.
 *
 *   prvs=KDDDSSSSSS=local@domain
 *
 * K: key number (0-9, the line of the key file); DDD: the day the tag
 * expires, days since 1970-01-01 modulo 1000; SSSSSS: the first 3 bytes,
 * in hex, of HMAC-SHA1(key, "KDDD" + local@domain lowercased).
 */
#ifndef MOAT_BATV_H
#define MOAT_BATV_H

#include <stddef.h>

#define BATV_KEYS	10	/* K is one digit */
#define BATV_KEY_MAX	256	/* bytes of one key */
#define BATV_TAG_LEN	16	/* "prvs=KDDDSSSSSS=" */

enum batv_result {
	BATV_VALID,
	BATV_NONE,	/* not a prvs address */
	BATV_MALFORMED,	/* prvs= but not KDDDSSSSSS= */
	BATV_NOKEY,	/* no key with that number */
	BATV_BADSIG,	/* the signature does not match */
	BATV_EXPIRED,	/* the day is past (or beyond the lifetime) */
};

struct batv_keys {
	char	key[BATV_KEYS][BATV_KEY_MAX];
	size_t	len[BATV_KEYS];		/* 0: no key K */
};

/*
 * Writes the prvs form of addr ("local@domain") signed with key number
 * keynum, expiring on day `day` (days since 1970-01-01). -1 when addr is
 * not local@domain, the signed local part would pass RFC 5321's 64
 * octets, or out is too small.
 */
int	batv_sign(const char *key, size_t keylen, unsigned keynum,
	    const char *addr, long day, char *out, size_t outlen);
/*
 * Checks addr at day `today`: valid when its key exists, its signature
 * matches and it expires no earlier than today and no later than
 * lifetime days from now. orig gets the address without the tag (for
 * every result but BATV_NONE and BATV_MALFORMED).
 */
enum batv_result batv_verify(const struct batv_keys *, const char *addr,
	    long today, unsigned lifetime, char *orig, size_t origlen);
/* Loads a key file: each line that is not empty or a '#' comment is a
 * key, numbered from 0 in order (the key to sign with is chosen by
 * number, so old keys stay to verify); -1 with err set. */
int	batv_keys_load(struct batv_keys *, const char *path, char *err,
	    size_t errlen);
/* Today as days since 1970-01-01 (UTC). */
long	batv_today(void);
const char *batv_result_name(enum batv_result);

#endif
