/*
 * buf.h: owning, growable byte buffers with a hard cap.
 *
 * Invariants: data is NUL-terminated whenever it is non-NULL (the NUL is
 * not counted in len), len <= max, and growth is overflow-checked. An append
 * that would pass max fails and leaves the buffer as it was.
 */
#ifndef MOAT_BUF_H
#define MOAT_BUF_H

#include <stddef.h>

struct buf {
	char	*data;
	size_t	 len;
	size_t	 cap;
	size_t	 max;
	/* Spilled: data is a shared mapping of the file fd (unlinked), of
	 * max + 1 bytes; it never moves and only its pages cost memory. */
	_Bool	 mapped;
	int	 fd;
	size_t	 dropped;	/* pages before this were given back */
};

/* Sets up an empty buffer that may hold up to max bytes. */
void	buf_init(struct buf *, size_t max);
/* Frees the storage; the buffer is empty and reusable afterwards. */
void	buf_free(struct buf *);
/* Empties the buffer, keeping its storage. */
void	buf_reset(struct buf *);
/* Appends n bytes; returns -1 (and changes nothing) past the cap or OOM. */
int	buf_add(struct buf *, const void *, size_t n);
/* Appends a C string. */
int	buf_adds(struct buf *, const char *);
/* Inserts n bytes at pos (<= len); -1 (nothing changed) past the cap. */
int	buf_insert(struct buf *, size_t pos, const void *, size_t n);
/* Appends one byte. */
int	buf_addc(struct buf *, char);
/* Appends printf-style text; -1 past the cap. */
int	buf_printf(struct buf *, const char *, ...)
	    __attribute__((format(printf, 2, 3)));
/*
 * Moves the buffer's bytes into the file fd (which it then owns) and maps
 * it: the buffer keeps its contents and API, its pages are the file's,
 * and buf_drop_pages() can give them back. -1 (buffer unchanged, fd still
 * the caller's) when the file cannot be sized or mapped.
 */
int	buf_spill(struct buf *, int fd);
/* A spilled buffer gives back the memory of its pages before `upto`
 * (their bytes stay in the file and are read back on access). */
void	buf_drop_pages(struct buf *, size_t upto);
/* Appends s as the body of a JSON string (no quotes), escaping as needed
 * and cutting it at max_in input bytes (0: no cut). */
int	buf_add_json(struct buf *, const char *s, size_t n, size_t max_in);

#endif
