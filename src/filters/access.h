/*
 * access.h: tcprules-compatible access rules (qmail's tcp.smtp), the pure
 * part: the text parser, the reader of the values tcprules(1) writes in
 * its cdb, and the lookup in tcpserver's order. No I/O, no session:
 * bytes in, rules out (fuzzed by tests/fuzz/fuzz_tcprules.c).
 *
 * A rule is a key and tcprules' value: a sequence of NUL-terminated
 * items, "D" (deny) and "+VAR=value" (an environment variable), the very
 * bytes tcprules puts in the cdb. Text rules are turned into that value,
 * so a text file and the cdb tcprules builds from it load the same.
 *
 * Keys, as tcpserver(1) looks them up (first found wins):
 *   1. the client's address ("1.2.3.4", "::1": IPv6 in inet_ntop's form);
 *   2. "=host": the client's verified rDNS name;
 *   3. shorter and shorter prefixes of the address ending in '.' (IPv6:
 *      ':'), "10.1."; and CIDR networks "10.0.0.0/8" (moat's), the
 *      longer of the two first, an earlier line on a tie;
 *   4. "=.suffix" of the name, longest first;  5. "=" (any name);
 *   6. "" (the default).
 * Ident keys ("user@...") are read and never match (no RFC 1413).
 */
#ifndef MOAT_ACCESS_H
#define MOAT_ACCESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Limits (every one checked before copying). */
#define ACCESS_LINE_MAX		1024	/* a text line, without its LF */
#define ACCESS_KEY_MAX		255	/* "=" and a 253-octet name, ... */
#define ACCESS_VARS_MAX		16	/* variables of one rule */
#define ACCESS_VAR_NAME_MAX	64
#define ACCESS_VALUE_MAX	400	/* fits a reply line with its code */
#define ACCESS_DATA_MAX		(ACCESS_VARS_MAX * \
	(ACCESS_VAR_NAME_MAX + ACCESS_VALUE_MAX + 3) + 2)
#define ACCESS_RANGE_MAX	256	/* keys one "a-b" range makes */
#define ACCESS_RULES_MAX	(1 << 20)
#define ACCESS_FILE_MAX		(64 << 20)	/* bytes of a rules file */
#define ACCESS_NAME_MAX		320	/* "file:line", "file:[key]" */

enum access_kind {
	ACCESS_IP,		/* 1.2.3.4, ::1 */
	ACCESS_PREFIX,		/* 10.1., 2001:db8: */
	ACCESS_CIDR,		/* 10.0.0.0/8 */
	ACCESS_HOST,		/* =mx.example */
	ACCESS_SUFFIX,		/* =.example */
	ACCESS_ANYHOST,		/* = */
	ACCESS_DEFAULT,		/* "" */
	ACCESS_IDENT,		/* user@...: never matches */
};

/* RBLSMTPD: unset, "" (no rblsmtpd check: skip dnsbl), "-text"
 * (permanent refusal), "text" (temporary). */
enum access_rbl { RBL_NONE, RBL_SKIP, RBL_PERM, RBL_TEMP };

struct access_rule {
	char		*key;		/* lowercased, as looked up */
	char		*data;		/* tcprules' value */
	size_t		 datalen;
	unsigned	 line;		/* 0: from a cdb */
	enum access_kind kind;
	int		 family;	/* ACCESS_CIDR */
	uint8_t		 addr[16];
	int		 bits;
	/* What the value says (pointers into data). */
	bool		 deny;
	bool		 relay;		/* RELAYCLIENT set */
	enum access_rbl	 rbl;
	const char	*rbl_text;	/* without its '-' */
	const char	*skip;		/* MOAT_SKIP, NULL when unset */
	const char	*policy;	/* MOAT_POLICY, NULL when unset */
	bool		 has_score;
	double		 score;		/* MOAT_SCORE */
};

struct access_rules {
	struct access_rule *v;
	size_t		 n, cap;
	size_t		*slot;		/* key hash: index + 1, 0 empty */
	size_t		 nslot;
	size_t		 ncidr;
	bool		 host_exact;	/* some "=name" key */
	bool		 host_any;	/* some key starting with '=' */
};

void	access_rules_init(struct access_rules *);
void	access_rules_free(struct access_rules *);

/*
 * Parses a whole rules text of len bytes (no NUL needed) into r, which
 * must be empty. Lines are tcprules lines ("key:allow,VAR=/value/") or,
 * when the first word is not followed by ':allow' or ':deny', moat's
 * list lines ("key allow|deny [VAR[=value] ...]", values bare or
 * double-quoted with \" and \\). 0, or -1 with "LINE: why" in err
 * (the caller puts the file name in front).
 */
int	access_parse(struct access_rules *, const char *buf, size_t len,
	    char *err, size_t errlen);
/* Adds one rule from a cdb record (key, tcprules' value); -1 with err
 * ("why"): a key or value tcprules could not have written, or limits. */
int	access_add_cdb(struct access_rules *, const char *key, size_t klen,
	    const char *data, size_t dlen, char *err, size_t errlen);

/*
 * The rule for a client: ip is its address as text (IPv4 dotted, also
 * for an IPv4-mapped IPv6 address; IPv6 as inet_ntop writes it), family
 * and addr its bytes (4 or 16), host its verified rDNS name or NULL.
 * *step is the step of the header's list that matched (0: none).
 */
const struct access_rule *access_match(const struct access_rules *,
	    const char *ip, int family, const uint8_t *addr,
	    const char *host, int *step);
/* True when a rule found at step without a name could still be beaten
 * by a name rule once the client's name is known. */
bool	access_host_matters(const struct access_rules *, int step);

#endif
