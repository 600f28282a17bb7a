/*
 * str.h: non-owning slices of bytes, for parsing without copying.
 */
#ifndef MOAT_STR_H
#define MOAT_STR_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <strings.h>

struct str {
	const char	*p;
	size_t		 len;
};

#define STR_NULL	((struct str){ NULL, 0 })

static inline struct str
str_make(const char *p, size_t len)
{
	return (struct str){ p, len };
}

/* True when s equals the C string c, ignoring ASCII case. */
static inline bool
str_ieq(struct str s, const char *c)
{
	return strlen(c) == s.len && strncasecmp(s.p, c, s.len) == 0;
}

/* True when s starts with the C string c, ignoring ASCII case. */
static inline bool
str_iprefix(struct str s, const char *c)
{
	size_t n = strlen(c);

	return s.len >= n && strncasecmp(s.p, c, n) == 0;
}

/* Copies s into dst of size n, NUL-terminated; -1 when it does not fit. */
static inline int
str_copy(char *dst, size_t n, struct str s)
{
	if (s.len >= n)
		return -1;
	memcpy(dst, s.p, s.len);
	dst[s.len] = '\0';
	return 0;
}

#endif
