/*
 * data.c: the DATA/BDAT message reader (see data.h for the policy).
 *
 * States: LINE_START (just after CRLF, or at the very start), DOT (a '.'
 * opened the line), DOT_CR ('.' CR at line start), MID (inside a line),
 * CR (a CR inside a line, waiting for LF). Only LINE_START → DOT → DOT_CR
 * → LF ends a DATA message; every other path stores or flags the bytes.
 */
#include <string.h>

#include "data.h"

enum { S_LINE_START, S_DOT, S_DOT_CR, S_MID, S_CR };

void
data_init(struct data_reader *r, struct buf *out, bool dot, size_t max_size,
    size_t max_line, size_t max_header_lines)
{
	memset(r, 0, sizeof(*r));
	r->state = S_LINE_START;
	r->dot = dot;
	r->in_header = true;
	r->out = out;
	r->max_size = max_size;
	r->max_line = max_line;
	r->max_header_lines = max_header_lines;
}

/* Stores message bytes unless the message is already refused. */
static void
emit(struct data_reader *r, const char *p, size_t n)
{
	r->total += n;
	if (r->total > r->max_size)
		r->flags |= DATA_TOO_BIG;
	if (r->flags & DATA_REFUSE)
		return;
	if (buf_add(r->out, p, n) == -1)
		r->flags |= DATA_TOO_BIG;
}

/* Accounts for one input byte of the current line. */
static void
count(struct data_reader *r)
{
	if (++r->line_len > r->max_line)
		r->flags |= DATA_LONG_LINE;
}

/* A CRLF ended a line: header bookkeeping and a fresh line. */
static void
line_end(struct data_reader *r)
{
	if (r->in_header) {
		if (r->line_len == 2)
			r->in_header = false;
		else if (++r->header_lines > r->max_header_lines)
			r->flags |= DATA_HEADERS;
	}
	r->line_len = 0;
	r->state = S_LINE_START;
}

/* One byte of line content (not CR). */
static void
content(struct data_reader *r, char c)
{
	count(r);
	if (c == '\n') {
		r->flags |= DATA_BARE_LF;
	} else if (c == '\0') {
		r->flags |= DATA_NUL;
	} else if ((unsigned char)c >= 0x80)
		r->flags |= DATA_8BIT;
	emit(r, &c, 1);
	r->state = S_MID;
}

/* Runs of plain bytes are copied at once: the fast path. */
static size_t
plain_run(struct data_reader *r, const char *p, size_t n)
{
	size_t i = 0;

	while (i < n && p[i] != '\r' && p[i] != '\n' && p[i] != '\0' &&
	    (unsigned char)p[i] < 0x80)
		i++;
	if (i == 0)
		return 0;
	r->line_len += i;
	if (r->line_len > r->max_line)
		r->flags |= DATA_LONG_LINE;
	emit(r, p, i);
	r->state = S_MID;
	return i;
}

size_t
data_feed(struct data_reader *r, const char *p, size_t n, bool *done)
{
	size_t	i = 0, k;
	char	c;

	*done = false;
	while (i < n) {
		c = p[i];
		switch (r->state) {
		case S_LINE_START:
			if (c == '.' && r->dot) {
				count(r);
				r->state = S_DOT;
				i++;
				continue;
			}
			/* FALLTHROUGH */
		case S_MID:
			if (c == '\r') {
				count(r);
				r->state = S_CR;
				i++;
			} else if ((k = plain_run(r, p + i, n - i)) > 0)
				i += k;
			else {
				content(r, c);
				i++;
			}
			continue;
		case S_DOT:
			/* The leading dot is dropped (dot-unstuffing). */
			if (c == '\r') {
				count(r);
				r->state = S_DOT_CR;
				i++;
			} else
				r->state = S_MID;
			continue;
		case S_DOT_CR:
			if (c == '\n') {
				i++;
				r->state = S_LINE_START;
				*done = true;
				return i;
			}
			/* ".<CR>x": a bare CR after a (dropped) dot. */
			r->flags |= DATA_BARE_CR;
			emit(r, "\r", 1);
			r->state = S_MID;
			continue;
		case S_CR:
			if (c == '\n') {
				count(r);
				emit(r, "\r\n", 2);
				line_end(r);
				i++;
			} else {
				r->flags |= DATA_BARE_CR;
				emit(r, "\r", 1);
				r->state = S_MID;
			}
			continue;
		}
	}
	return i;
}

void
data_finish(struct data_reader *r)
{
	if (r->state == S_CR) {
		r->flags |= DATA_BARE_CR;
		emit(r, "\r", 1);
	}
	/* A BDAT message need not end in CRLF (RFC 3030 §2); a relayed one
	 * must, so one is added. */
	if (r->total > 0 && r->state != S_LINE_START)
		emit(r, "\r\n", 2);
	r->state = S_LINE_START;
}
