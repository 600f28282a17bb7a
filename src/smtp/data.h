/*
 * data.h: the message reader for DATA and BDAT, a pure byte-level state
 * machine that resumes on any split of its input.
 *
 * DATA (RFC 5321 §4.1.1.4, §4.5.2): only <CRLF>.<CRLF> ends the message
 * (the DATA line's own CRLF counts as the first CRLF), a leading dot is
 * removed from each line. BDAT (RFC 3030): bytes are taken as they are.
 *
 * moat's smuggling policy is to refuse, never to normalise: a bare CR, a
 * bare LF or a NUL anywhere in the data marks the message bad, and the
 * reader goes on consuming until the real terminator so the conversation
 * stays in step. Over-long lines, too many header lines and an oversize
 * message are flagged the same way; once flagged, nothing more is stored.
 */
#ifndef MOAT_DATA_H
#define MOAT_DATA_H

#include <stdbool.h>
#include <stddef.h>

#include "../core/buf.h"

enum data_flag {
	DATA_BARE_LF	= 1 << 0,
	DATA_BARE_CR	= 1 << 1,
	DATA_NUL	= 1 << 2,
	DATA_LONG_LINE	= 1 << 3,
	DATA_TOO_BIG	= 1 << 4,
	DATA_HEADERS	= 1 << 5,	/* too many header lines */
	DATA_8BIT	= 1 << 6,	/* informational, not an error */
};

#define DATA_REFUSE	(DATA_BARE_LF | DATA_BARE_CR | DATA_NUL | \
			 DATA_LONG_LINE | DATA_TOO_BIG | DATA_HEADERS)

struct data_reader {
	int		 state;
	bool		 dot;		/* DATA (dot-terminated) or BDAT */
	bool		 in_header;
	size_t		 line_len;	/* bytes of the current line so far */
	size_t		 header_lines;
	size_t		 total;		/* bytes of message content seen */
	unsigned	 flags;
	/* limits */
	size_t		 max_line;	/* including CRLF */
	size_t		 max_size;
	size_t		 max_header_lines;
	struct buf	*out;		/* message, CRLF lines, unstuffed */
};

void	data_init(struct data_reader *, struct buf *out, bool dot,
	    size_t max_size, size_t max_line, size_t max_header_lines);
/*
 * Feeds n bytes. Returns how many were consumed; *done becomes true when
 * the DATA terminator has been consumed (never for BDAT). Bytes after
 * the terminator are left to the caller (pipelined commands).
 */
size_t	data_feed(struct data_reader *, const char *, size_t n, bool *done);
/* For BDAT LAST: closes the message (an unfinished CR counts as bare). */
void	data_finish(struct data_reader *);

#endif
