/*
 * lists.h: the lists filter's list files (pure parts, for its unit test
 * and its fuzz harness).
 *
 * One list is one kind (HELO, sender, recipient, rDNS name, client IP)
 * and one action (deny or allow), filled from one or more files. A line
 * is an entry, optionally followed by white space and a reply text:
 *
 *   spammer@example.com          exact address (qmail badmailfrom)
 *   @example.net                 every address at that domain
 *   .example.org                 every subdomain of example.org
 *   /^[0-9]+@/  No such user     a PCRE2 pattern, with its reply text
 *   192.0.2.0/24                 (IP lists) an address or a network
 *
 * In a regex file (qregex's format, *_regex keys) every entry is a
 * pattern, without slashes. Entries hold no white space (a pattern
 * writes a space as \x20 or \s); a text that starts with '#' is a
 * comment. Patterns are compiled once, caseless, with JIT when the
 * library has it, and run under match and depth limits. Each entry
 * keeps its file and line: a decision names its rule.
 */
#ifndef MOAT_FILTERS_LISTS_H
#define MOAT_FILTERS_LISTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "../core/limits.h"
#include "../core/lists.h"

/* Limits of a list file (a line is LIMIT_LIST_LINE, core/limits.h). */
#define LISTS_ADDR_MAX	 (LIMIT_LOCAL_PART + 1 + LIMIT_DOMAIN) /* l@d */
#define LISTS_NAME_MAX	 (LIMIT_DOMAIN + 1)	/* ".domain" */
#define LISTS_PATTERN_MAX 512		/* bytes of one pattern */
#define LISTS_TEXT_MAX	 200		/* a reply text: fits a reply line */
#define LISTS_ENTRIES_MAX (1 << 20)	/* entries of one list */
#define LISTS_PATTERNS_MAX 4096		/* patterns of one list: each is
					 * run on every check */
#define LISTS_FILE_MAX	 (64L << 20)	/* bytes of one list file */

enum lists_kind {
	LISTS_HELO, LISTS_SENDER, LISTS_RCPT, LISTS_RDNS, LISTS_IP,
	LISTS_KINDS
};

enum lists_type {
	LISTS_EXACT,	/* the whole subject */
	LISTS_DOMAIN,	/* "@d": an address at d */
	LISTS_SUFFIX,	/* ".d": a name (or an address's domain) under d */
	LISTS_REGEX,
	LISTS_CIDR,	/* IP lists: an address or a network */
};

struct lists_entry {
	enum lists_type	 type;
	int		 line;
	const char	*file;		/* the list's copy of the path */
	char		*key;		/* lowercased; a pattern's source */
	char		*text;		/* reply text, or NULL */
	char		*rule;		/* "lists:file:line", made on use */
	void		*re;		/* pcre2_code */
	struct cidr	 net;
};

struct lists_set {
	enum lists_kind		 kind;
	struct lists_entry	*v;
	size_t			 n, cap;
	/* Indexes made by lists_set_finish(): */
	struct lists_entry	**keyed;	/* exact, @, . sorted by key */
	size_t			 nkeyed;
	struct lists_entry	**pat;		/* patterns, in file order */
	size_t			 npat;
	struct lists_entry	**nets;		/* networks, in file order */
	size_t			 nnets;
	size_t			 npattern;	/* patterns loaded */
	char			**files;
	size_t			 nfiles;
	void			*mctx;		/* pcre2_match_context */
	void			*md;		/* pcre2_match_data */
	bool			 sorted;
};

/* An empty list of a kind, with the pattern limits every match runs
 * under. NULL on OOM. */
struct lists_set *lists_set_new(enum lists_kind, uint32_t match_limit,
		    uint32_t depth_limit);
void		 lists_set_free(struct lists_set *);
/*
 * Adds the entries of a buffer read from file (the name the entries
 * keep); all_regex: every entry is a pattern (qregex). -1 with
 * "file:line: why" in err. lists_set_finish() must follow before a
 * match.
 */
int		 lists_set_parse(struct lists_set *, const char *file,
		    const char *buf, size_t len, bool all_regex, char *err,
		    size_t errlen);
/* Reads a file (at most LISTS_FILE_MAX bytes) into the list. */
int		 lists_set_load(struct lists_set *, const char *path,
		    bool all_regex, char *err, size_t errlen);
/* Sorts the keyed entries; 0, or -1 on OOM. */
int		 lists_set_finish(struct lists_set *);
/*
 * The entry that matches: exact, then @domain, then the longest .suffix,
 * then networks (IP lists, sa), then patterns in file order. subject is
 * the address "local@domain" ("" for the null sender), the name, or the
 * address text. *limited is set when a pattern gave up at its limits
 * (counted as no match).
 */
const struct lists_entry *lists_match(const struct lists_set *,
		    const char *subject, const struct sockaddr *sa,
		    bool *limited);
/* "lists:file:line" of an entry (kept on the entry); NULL on OOM. */
const char	*lists_rule(const struct lists_entry *);

#endif
