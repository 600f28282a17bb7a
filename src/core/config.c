/*
 * config.c: option tables and the INI reader (see config.h).
 *
 * libinih does the INI syntax. Its own line counter is not handed to the
 * handler in Debian's build, so we feed it through a reader that counts
 * lines itself, and catch lines longer than inih's buffer instead of letting
 * them be split silently.
 */
#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"

const struct opt *
opt_find(const struct opt *tab, const char *key)
{
	for (; tab->key != NULL; tab++)
		if (strcmp(tab->key, key) == 0)
			return tab;
	return NULL;
}

/* Parses a number with an optional k/M/G (1024-based) suffix for sizes. */
static int
parse_number(const struct opt *o, const char *val, long long *out)
{
	char		*end;
	long long	 v, mul = 1;

	errno = 0;
	v = strtoll(val, &end, 10);
	if (end == val || errno != 0)
		return -1;
	if (o->type == OPT_SIZE && *end != '\0') {
		switch (tolower((unsigned char)*end)) {
		case 'k': mul = 1024; break;
		case 'm': mul = 1024 * 1024; break;
		case 'g': mul = 1024 * 1024 * 1024; break;
		default: return -1;
		}
		end++;
	}
	if (*end != '\0')
		return -1;
	if (v > LLONG_MAX / mul || v < LLONG_MIN / mul)
		return -1;
	*out = v * mul;
	return 0;
}

static int
parse_bool(const char *v, bool *out)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };
	size_t i;

	for (i = 0; i < 4; i++) {
		if (strcasecmp(v, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcasecmp(v, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return -1;
}

/* Resolves a relative path against basedir; "" stays "" (unset). */
static char *
resolve_path(const char *val, const char *basedir)
{
	size_t	 n;
	char	*p;

	if (val[0] == '/' || val[0] == '\0' || basedir == NULL)
		return strdup(val);
	n = strlen(basedir) + strlen(val) + 2;
	if ((p = malloc(n)) != NULL)
		snprintf(p, n, "%s/%s", basedir, val);
	return p;
}

static int
opt_apply(const struct opt *o, void *obj, const char *val,
    const char *basedir, char *err, size_t errlen)
{
	char		*base = obj, *s;
	long long	 n;
	double		 d;
	bool		 b;

	switch (o->type) {
	case OPT_INT:
	case OPT_SIZE:
		if (parse_number(o, val, &n) == -1 || n < o->min ||
		    n > o->max) {
			snprintf(err, errlen, "%s: '%s' is not a number "
			    "from %lld to %lld", o->key, val, o->min, o->max);
			return -1;
		}
		memcpy(base + o->off, &n, sizeof(n));
		return 0;
	case OPT_FLOAT:
		errno = 0;
		d = strtod(val, &s);
		if (s == val || *s != '\0' || errno != 0 || !(d >= o->min) ||
		    !(d <= o->max)) {
			snprintf(err, errlen, "%s: '%s' is not a number "
			    "from %lld to %lld", o->key, val, o->min, o->max);
			return -1;
		}
		memcpy(base + o->off, &d, sizeof(d));
		return 0;
	case OPT_BOOL:
		if (parse_bool(val, &b) == -1) {
			snprintf(err, errlen, "%s: '%s' is not yes or no",
			    o->key, val);
			return -1;
		}
		memcpy(base + o->off, &b, sizeof(b));
		return 0;
	case OPT_STR:
	case OPT_PATH:
		s = o->type == OPT_PATH ? resolve_path(val, basedir) :
		    strdup(val);
		if (s == NULL) {
			snprintf(err, errlen, "%s: out of memory", o->key);
			return -1;
		}
		free(*(char **)(void *)(base + o->off));
		*(char **)(void *)(base + o->off) = s;
		return 0;
	}
	return -1;
}

int
opt_defaults(const struct opt *tab, void *obj, const char *basedir,
    char *err, size_t errlen)
{
	for (; tab->key != NULL; tab++)
		if (opt_apply(tab, obj, tab->def, basedir, err, errlen) == -1)
			return -1;
	return 0;
}

int
opt_set(const struct opt *tab, void *obj, const char *key, const char *val,
    const char *basedir, char *err, size_t errlen)
{
	const struct opt *o;

	if ((o = opt_find(tab, key)) == NULL)
		return -2;
	return opt_apply(o, obj, val, basedir, err, errlen);
}

int
opt_copy(const struct opt *tab, void *dst, const void *src)
{
	char		**d;
	const char	*s;

	for (; tab->key != NULL; tab++) {
		if (tab->type != OPT_STR && tab->type != OPT_PATH)
			continue;
		d = (char **)(void *)((char *)dst + tab->off);
		s = *(char *const *)(const void *)((const char *)src +
		    tab->off);
		if ((*d = strdup(s != NULL ? s : "")) == NULL)
			return -1;
	}
	return 0;
}

void
opt_free(const struct opt *tab, void *obj)
{
	char **p;

	for (; tab->key != NULL; tab++) {
		if (tab->type != OPT_STR && tab->type != OPT_PATH)
			continue;
		p = (char **)(void *)((char *)obj + tab->off);
		free(*p);
		*p = NULL;
	}
}

int
config_words(char *buf, char **words, int max)
{
	int	 n = 0;
	char	*p = buf;

	for (;;) {
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		if (*p == '\0')
			return n;
		if (n == max)
			return -1;
		words[n++] = p;
		while (*p != '\0' && *p != ' ' && *p != '\t' && *p != ',')
			p++;
		if (*p != '\0')
			*p++ = '\0';
	}
}

struct parse_ctx {
	FILE		*fp;
	const char	*path;
	int		 line;
	int		 toolong;	/* first overlong line, 0: none */
	config_cb	 cb;
	void		*ctx;
	char		*err;
	size_t		 errlen;
	int		 failed;
};

/* inih reader: one whole line per call, counted; overlong lines flagged. */
static char *
counting_reader(char *str, int num, void *stream)
{
	struct parse_ctx	*pc = stream;
	int			 c;
	int			 n = 0;

	if (num < 2)
		return NULL;
	while ((c = getc(pc->fp)) != EOF) {
		if (n < num - 2)
			str[n++] = (char)c;
		else if (c != '\n' && c != '\r' && pc->toolong == 0)
			pc->toolong = pc->line + 1;
		if (c == '\n')
			break;
	}
	if (n == 0 && c == EOF)
		return NULL;
	if (n > 0 && str[n - 1] != '\n' && c == '\n')
		str[n++] = '\n';
	str[n] = '\0';
	pc->line++;
	return str;
}

static int
handler(void *user, const char *section, const char *key, const char *value)
{
	struct parse_ctx	*pc = user;
	char			 msg[400];

	if (pc->failed)
		return 1;
	if (pc->toolong == pc->line) {
		snprintf(pc->err, pc->errlen, "%s:%d: line longer than %d "
		    "characters", pc->path, pc->line, INI_MAX_LINE - 2);
		pc->failed = 1;
		return 1;
	}
	if (pc->cb(pc->ctx, section, key, value, pc->line, msg,
	    sizeof(msg)) == -1) {
		snprintf(pc->err, pc->errlen, "%s:%d: %s", pc->path,
		    pc->line, msg);
		pc->failed = 1;
	}
	return 1;
}

int
config_parse(const char *path, config_cb cb, void *ctx, char *err,
    size_t errlen)
{
	struct parse_ctx	pc;
	int			r;

	memset(&pc, 0, sizeof(pc));
	pc.path = path;
	pc.cb = cb;
	pc.ctx = ctx;
	pc.err = err;
	pc.errlen = errlen;
	if ((pc.fp = fopen(path, "r")) == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	r = ini_parse_stream(counting_reader, &pc, handler, &pc);
	fclose(pc.fp);
	if (pc.failed)
		return -1;
	if (pc.toolong != 0) {
		snprintf(err, errlen, "%s:%d: line longer than %d characters",
		    path, pc.toolong, INI_MAX_LINE - 2);
		return -1;
	}
	if (r != 0) {
		snprintf(err, errlen, "%s:%d: syntax error (expected "
		    "[section] or key = value)", path, r);
		return -1;
	}
	return 0;
}
