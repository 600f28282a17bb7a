/*
 * json.h: a small, strict, bounded JSON reader (RFC 8259) for moatctl.
 *
 * moatctl reads moatd's JSON log, whose text fields (HELO, addresses,
 * Subject, replies) a client chooses: the reader treats every line as
 * hostile. It is a pure function of its input (bytes in, a tree out),
 * never recurses, and refuses rather than repairs:
 *   - input larger than max_input, nesting deeper than max_depth, more
 *     than max_values values, a decoded string longer than max_string;
 *   - bytes that are not well-formed UTF-8 (RFC 3629 §4: no overlong
 *     forms, no surrogates, nothing past U+10FFFF), raw control
 *     characters in strings, unknown escapes, a \u escape of a lone or
 *     mismatched surrogate (RFC 8259 §7);
 *   - numbers outside the grammar (leading zeros, "+1", ".5", "1."),
 *     longer than JSON_NUMBER_MAX characters or beyond a double's range;
 *   - duplicate member names in one object (RFC 8259 §4 leaves their
 *     meaning open: a reader that picks one can be fooled), a byte-order
 *     mark, trailing commas, anything but whitespace after the value.
 * Memory is bounded by the limits: the values array holds at most
 * max_values entries and the decoded strings fit in input-sized storage.
 */
#ifndef MOAT_CLI_JSON_H
#define MOAT_CLI_JSON_H

#include <stdbool.h>
#include <stddef.h>

/* Characters of one number ("-1.25e-3"): a double needs 24 at most. */
#define JSON_NUMBER_MAX	64
/* Hard caps on what a caller's limits may ask for. */
#define JSON_DEPTH_MAX	256
#define JSON_VALUES_MAX	(1024 * 1024)

enum json_type {
	JSON_NULL,
	JSON_FALSE,
	JSON_TRUE,
	JSON_NUMBER,
	JSON_STRING,
	JSON_ARRAY,
	JSON_OBJECT
};

struct json_limits {
	size_t		max_input;	/* bytes of text */
	unsigned	max_depth;	/* arrays and objects open at once */
	size_t		max_values;	/* values in the document, all levels */
	size_t		max_string;	/* bytes of one decoded string or name */
};

/*
 * One value. Strings (and member names) are decoded UTF-8, NUL-terminated
 * for convenience, but may hold U+0000 from a \u0000 escape: use len.
 * Arrays and objects list their elements from child through next.
 */
struct json_value {
	enum json_type		 type;
	const char		*key;	/* member name in an object, or NULL */
	size_t			 keylen;
	const char		*str;	/* JSON_STRING */
	size_t			 len;	/* string bytes; elements of a container */
	double			 num;	/* JSON_NUMBER */
	const struct json_value	*child;	/* first element, NULL when empty */
	const struct json_value	*next;	/* next element of the parent */
	size_t			 span;	/* values in this subtree, itself too */
};

struct json_doc;

struct json_error {
	size_t		 offset;	/* byte of the input where it failed */
	const char	*msg;		/* static text */
};

/*
 * Parses text[0..len) under lim. NULL on malformed input or a limit
 * passed (err says why and where), or out of memory. Free with
 * json_free.
 */
struct json_doc	*json_parse(const char *text, size_t len,
		    const struct json_limits *lim, struct json_error *err);
void		 json_free(struct json_doc *);

/* The document's top-level value. */
const struct json_value	*json_root(const struct json_doc *);

/* Member key of object obj; NULL when obj is not an object or lacks it. */
const struct json_value	*json_get(const struct json_value *obj,
			    const char *key);
/* Member key when it is a string (its length in *len if len != NULL). */
const char	*json_get_str(const struct json_value *obj, const char *key,
		    size_t *len);
/* True and *out set when member key is a number. */
bool		 json_get_num(const struct json_value *obj, const char *key,
		    double *out);
/* 1 true, 0 false, -1 when member key is absent or not a boolean. */
int		 json_get_bool(const struct json_value *obj, const char *key);

/*
 * Length of the well-formed UTF-8 character at s[0..n) (RFC 3629 §4),
 * 0 when the bytes there are not one. n must be at least 1.
 */
size_t		 json_utf8_len(const unsigned char *s, size_t n);

#endif
