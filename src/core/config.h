/*
 * config.h: typed option tables and the INI reader.
 *
 * A module describes its options once, in a static table (key, type,
 * default, bounds, offset into its settings struct); the generic code fills
 * the struct from defaults, from its INI section and from [domain ...]
 * overrides, and reports bad values as "file:line: ...". Nothing outside
 * this file parses INI text.
 */
#ifndef MOAT_CONFIG_H
#define MOAT_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

enum opt_type {
	OPT_INT,	/* long long, bounded */
	OPT_SIZE,	/* long long with optional k/M/G suffix, bounded */
	OPT_FLOAT,	/* double, bounded by min and max */
	OPT_BOOL,	/* bool: yes/no/true/false/on/off/1/0 */
	OPT_STR,	/* char *, verbatim */
	OPT_PATH,	/* char *, relative paths resolved against the file */
};

struct opt {
	const char	*key;
	enum opt_type	 type;
	const char	*def;		/* default, as it would be written */
	long long	 min, max;	/* bounds for INT, SIZE, FLOAT */
	size_t		 off;		/* offset into the settings struct */
	const char	*help;		/* one line, for docs and -t output */
};

#define OPT_END	{ NULL, OPT_INT, NULL, 0, 0, 0, NULL }

/* Fills obj with the table's defaults; -1 with err set on a bad default. */
int	opt_defaults(const struct opt *, void *obj, const char *basedir,
	    char *err, size_t errlen);
/* Sets one key; 0 done, -1 bad value (err says why), -2 unknown key. */
int	opt_set(const struct opt *, void *obj, const char *key,
	    const char *val, const char *basedir, char *err, size_t errlen);
/* Deep-copies obj (strings duplicated); -1 on OOM. */
int	opt_copy(const struct opt *, void *dst, const void *src);
/* Frees the strings a table owns in obj. */
void	opt_free(const struct opt *, void *obj);
/* Looks a key up in a table. */
const struct opt *opt_find(const struct opt *, const char *key);

/* Called for every key; returns 0, or -1 with err filled. */
typedef int (*config_cb)(void *ctx, const char *section, const char *key,
    const char *value, int line, char *err, size_t errlen);

/*
 * Reads an INI file, calling cb for each key. On error returns -1 and
 * writes "file:line: message" into err (the first error wins).
 */
int	config_parse(const char *path, config_cb, void *ctx, char *err,
	    size_t errlen);

/* Splits a list value ("a b, c") into words; returns how many, or -1 when
 * more than max. Words point into buf, a copy the caller provides. */
int	config_words(char *buf, char **words, int max);

#endif
