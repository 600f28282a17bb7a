/*
 * fuzz_json.c: libFuzzer harness for moatctl's JSON reader (src/cli/
 * json.c). Checks its promises, not only that it does not crash: the
 * limits hold, every string it hands out is well-formed UTF-8 of the
 * stated length, the tree's counts, spans and links agree, and what it
 * read, written out again, reads back as the same tree.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/cli/json.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/* Small limits, so the fuzzer reaches them. */
static const struct json_limits lim = {
	.max_input = 4096, .max_depth = 12, .max_values = 200,
	.max_string = 64,
};

struct out {
	char	*p;
	size_t	 len, cap;
};

static void
put(struct out *o, const char *s, size_t n)
{
	if (o->len + n + 1 > o->cap) {
		o->cap = (o->len + n + 1) * 2;
		if ((o->p = realloc(o->p, o->cap)) == NULL)
			abort();
	}
	memcpy(o->p + o->len, s, n);
	o->len += n;
}

static void
valid_utf8(const char *s, size_t n)
{
	size_t	i, k;

	for (i = 0; i < n; i += k)
		if ((k = json_utf8_len((const unsigned char *)s + i,
		    n - i)) == 0)
			abort();
	if (s[n] != '\0')
		abort();
}

static void
put_str(struct out *o, const char *s, size_t n)
{
	char	esc[8];
	size_t	i;

	valid_utf8(s, n);
	if (n > lim.max_string)
		abort();
	put(o, "\"", 1);
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '"' || c == '\\' || c < 0x20) {
			snprintf(esc, sizeof(esc), "\\u%04x", c);
			put(o, esc, 6);
		} else
			put(o, s + i, 1);
	}
	put(o, "\"", 1);
}

/* Writes v out as JSON (recursion is fine here: depth is bounded by the
 * limits the reader was given) and checks its shape; its span. */
static size_t
emit(struct out *o, const struct json_value *v, unsigned depth)
{
	const struct json_value	*c;
	char			 num[40];
	size_t			 n = 0, span = 1;

	if (depth > lim.max_depth + 1)
		abort();
	switch (v->type) {
	case JSON_NULL:
		put(o, "null", 4);
		break;
	case JSON_TRUE:
		put(o, "true", 4);
		break;
	case JSON_FALSE:
		put(o, "false", 5);
		break;
	case JSON_NUMBER:
		put(o, num, (size_t)snprintf(num, sizeof(num), "%.17g",
		    v->num));
		break;
	case JSON_STRING:
		put_str(o, v->str, v->len);
		break;
	case JSON_ARRAY:
	case JSON_OBJECT:
		put(o, v->type == JSON_ARRAY ? "[" : "{", 1);
		for (c = v->child; c != NULL; c = c->next, n++) {
			if (n > 0)
				put(o, ",", 1);
			if (v->type == JSON_OBJECT) {
				if (c->key == NULL)
					abort();
				put_str(o, c->key, c->keylen);
				put(o, ":", 1);
			} else if (c->key != NULL)
				abort();
			/* A subtree is contiguous: the next element sits
			 * right after this one's. */
			if (c != v + span)
				abort();
			span += emit(o, c, depth + 1);
		}
		if (n != v->len || (n == 0) != (v->child == NULL))
			abort();
		put(o, v->type == JSON_ARRAY ? "]" : "}", 1);
		break;
	default:
		abort();
	}
	if (span != v->span)
		abort();
	return span;
}

/* Same shape, names and values. */
static void
same(const struct json_value *a, const struct json_value *b)
{
	if (a->type != b->type || a->len != b->len || a->span != b->span ||
	    a->keylen != b->keylen || (a->key == NULL) != (b->key == NULL) ||
	    (a->key != NULL && memcmp(a->key, b->key, a->keylen) != 0))
		abort();
	if (a->type == JSON_STRING && memcmp(a->str, b->str, a->len) != 0)
		abort();
	if (a->type == JSON_NUMBER && a->num != b->num)
		abort();
	for (a = a->child, b = b->child; a != NULL || b != NULL;
	    a = a->next, b = b->next) {
		if (a == NULL || b == NULL)
			abort();
		same(a, b);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct json_limits	 big = lim;
	struct json_error	 e;
	struct json_doc		*d, *d2;
	struct out		 o = { NULL, 0, 0 };

	d = json_parse((const char *)data, size, &lim, &e);
	if (d == NULL) {
		if (e.msg == NULL || e.offset > size)
			abort();
		return 0;
	}
	if (size > lim.max_input || json_root(d)->span > lim.max_values)
		abort();
	emit(&o, json_root(d), 0);
	/* Numbers may come back longer ("1e5" -> "100000"): room for it. */
	big.max_input = o.len;
	if ((d2 = json_parse(o.p, o.len, &big, &e)) == NULL)
		abort();
	same(json_root(d), json_root(d2));
	json_free(d2);
	json_free(d);
	free(o.p);
	return 0;
}
