/*
 * buf.c: growable byte buffers with a hard cap (see buf.h).
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "buf.h"

void
buf_init(struct buf *b, size_t max)
{
	b->data = NULL;
	b->len = b->cap = 0;
	b->max = max;
	b->mapped = 0;
	b->fd = -1;
	b->dropped = 0;
}

void
buf_free(struct buf *b)
{
	if (b->mapped) {
		munmap(b->data, b->cap);
		close(b->fd);
		b->mapped = 0;
		b->fd = -1;
	} else
		free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
	b->dropped = 0;
}

int
buf_spill(struct buf *b, int fd)
{
	size_t	 cap;
	void	*m;

	if (b->mapped || b->max == SIZE_MAX)
		return -1;
	cap = b->max + 1;
	if (ftruncate(fd, (off_t)cap) == -1)
		return -1;
	m = mmap(NULL, cap, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED)
		return -1;
	if (b->len > 0)
		memcpy(m, b->data, b->len);
	((char *)m)[b->len] = '\0';
	free(b->data);
	b->data = m;
	b->cap = cap;
	b->mapped = 1;
	b->fd = fd;
	b->dropped = 0;
	return 0;
}

void
buf_drop_pages(struct buf *b, size_t upto)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);

	if (!b->mapped || upto > b->len)
		return;
	upto -= upto % page;
	if (upto <= b->dropped)
		return;
	/* A shared file mapping: the pages go back to the page cache (and
	 * to disk), the bytes stay readable through the mapping. */
	madvise(b->data + b->dropped, upto - b->dropped, MADV_DONTNEED);
	b->dropped = upto;
}

void
buf_reset(struct buf *b)
{
	b->len = 0;
	if (b->data != NULL)
		b->data[0] = '\0';
}

/* Makes room for n more bytes plus the NUL, doubling the storage. */
static int
buf_reserve(struct buf *b, size_t n)
{
	size_t	 need, ncap;
	char	*p;

	if (n > b->max || b->len > b->max - n)
		return -1;
	need = b->len + n + 1;
	if (need <= b->cap)
		return 0;
	ncap = b->cap ? b->cap : 64;
	while (ncap < need) {
		if (ncap > SIZE_MAX / 2)
			return -1;
		ncap *= 2;
	}
	if ((p = realloc(b->data, ncap)) == NULL)
		return -1;
	b->data = p;
	b->cap = ncap;
	return 0;
}

int
buf_add(struct buf *b, const void *p, size_t n)
{
	if (buf_reserve(b, n) == -1)
		return -1;
	if (n > 0)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

int
buf_adds(struct buf *b, const char *s)
{
	return buf_add(b, s, strlen(s));
}

int
buf_addc(struct buf *b, char c)
{
	return buf_add(b, &c, 1);
}

int
buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list	 ap;
	int	 n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || buf_reserve(b, (size_t)n) == -1)
		return -1;
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return 0;
}

int
buf_add_json(struct buf *b, const char *s, size_t n, size_t max_in)
{
	size_t		 i;
	unsigned char	 c;
	char		 esc[8];

	if (max_in > 0 && n > max_in)
		n = max_in;
	for (i = 0; i < n; i++) {
		c = (unsigned char)s[i];
		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			if (buf_add(b, esc, 2) == -1)
				return -1;
		} else if (c < 0x20 || c == 0x7f) {
			snprintf(esc, sizeof(esc), "\\u%04x", c);
			if (buf_add(b, esc, 6) == -1)
				return -1;
		} else if (buf_addc(b, (char)c) == -1)
			return -1;
	}
	return 0;
}

int
buf_insert(struct buf *b, size_t pos, const void *p, size_t n)
{
	if (pos > b->len || buf_reserve(b, n) == -1)
		return -1;
	memmove(b->data + pos + n, b->data + pos, b->len - pos + 1);
	memcpy(b->data + pos, p, n);
	b->len += n;
	return 0;
}
