/*
 * access_rules.c: the tcprules parser and lookup (see access.h). Pure:
 * no I/O, nothing from the rest of moat, so the fuzzer compiles it in.
 *
 * Compatibility with tcprules(1) 0.88 (Debian's ucspi-tcp): the same
 * value bytes for every line it accepts, ranges "1.2.3.4-9" and "10.2-3."
 * expanded the same way, quotes "any repeated character". Stricter where
 * tcprules keeps a line that can never match or silently skips one: a
 * line without a colon, an IPv4 prefix without its final dot ("10.1"),
 * a key with white space, a variable name that is not [A-Za-z0-9_]+ are
 * errors here (file:line), not dead rules. Leading white space and a
 * trailing CR are trimmed. IPv6 keys are split as the IPv6 patch of
 * tcprules does: at the first ':' followed by "allow" or "deny".
 */
#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "access.h"

void
access_rules_init(struct access_rules *r)
{
	memset(r, 0, sizeof(*r));
}

void
access_rules_free(struct access_rules *r)
{
	size_t i;

	for (i = 0; i < r->n; i++) {
		free(r->v[i].key);
		free(r->v[i].data);
	}
	free(r->v);
	free(r->slot);
	access_rules_init(r);
}

/* FNV-1a over a key (keys are stored lowercased). */
static size_t
key_hash(const char *k, size_t n)
{
	uint64_t	h = 1469598103934665603ULL;
	size_t		i;

	for (i = 0; i < n; i++) {
		h ^= (unsigned char)k[i];
		h *= 1099511628211ULL;
	}
	return (size_t)h;
}

/* The slot of key k: where it is, or the empty slot it would take. */
static size_t
slot_find(const struct access_rules *r, const char *k, size_t n)
{
	size_t		 i = key_hash(k, n) & (r->nslot - 1);
	const char	*s;

	while (r->slot[i] != 0) {
		s = r->v[r->slot[i] - 1].key;
		if (strlen(s) == n && memcmp(s, k, n) == 0)
			break;
		i = (i + 1) & (r->nslot - 1);
	}
	return i;
}

static int
slots_grow(struct access_rules *r)
{
	struct access_rules	 t = *r;
	size_t			 i, k;

	t.nslot = r->nslot != 0 ? r->nslot * 2 : 64;
	if ((t.slot = calloc(t.nslot, sizeof(size_t))) == NULL)
		return -1;
	for (i = 0; i < r->nslot; i++)
		if ((k = r->slot[i]) != 0)
			t.slot[slot_find(&t, r->v[k - 1].key,
			    strlen(r->v[k - 1].key))] = k;
	free(r->slot);
	r->slot = t.slot;
	r->nslot = t.nslot;
	return 0;
}

/* The first rule with exactly this key, or NULL. */
static const struct access_rule *
lookup(const struct access_rules *r, const char *k, size_t n)
{
	size_t i;

	if (r->nslot == 0)
		return NULL;
	i = slot_find(r, k, n);
	return r->slot[i] != 0 ? &r->v[r->slot[i] - 1] : NULL;
}

/* ---- keys ------------------------------------------------------------- */

static bool
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool
is_hex(char c)
{
	return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* "10.", "10.1.", "192.168.1.": whole octets, no leading zero. */
static bool
ipv4_prefix(const char *k, size_t n)
{
	size_t	i = 0, d, octets = 0;
	int	v;

	if (n < 2 || k[n - 1] != '.')
		return false;
	while (i < n) {
		for (d = 0, v = 0; i + d < n && is_digit(k[i + d]); d++)
			if (d == 3 || (v = v * 10 + (k[i + d] - '0')) > 255)
				return false;
		if (d == 0 || (d > 1 && k[i] == '0') || i + d >= n ||
		    k[i + d] != '.' || ++octets > 3)
			return false;
		i += d + 1;
	}
	return true;
}

/* "2001:db8:", "fe80::": hex groups and colons, ending with ':'. */
static bool
ipv6_prefix(const char *k, size_t n)
{
	size_t i, run = 0;

	if (n < 1 || k[n - 1] != ':' || n > 40)
		return false;
	for (i = 0; i < n; i++) {
		if (k[i] == ':')
			run = 0;
		else if (!is_hex(k[i]) || ++run > 4)
			return false;
	}
	return true;
}

/* "a.b/n": strict, as lists.c's cidr_parse. */
static int
parse_cidr(const char *k, size_t n, struct access_rule *rule)
{
	char	 tmp[INET6_ADDRSTRLEN + 8];
	size_t	 slash, i;
	int	 bits = 0, max;

	for (slash = 0; slash < n && k[slash] != '/'; slash++)
		;
	if (slash == n || slash >= sizeof(tmp) || n - slash - 1 == 0 ||
	    n - slash - 1 > 3 || (k[slash + 1] == '0' && n - slash - 1 > 1))
		return -1;
	memcpy(tmp, k, slash);
	tmp[slash] = '\0';
	if (inet_pton(AF_INET, tmp, rule->addr) == 1) {
		rule->family = AF_INET;
		max = 32;
	} else if (inet_pton(AF_INET6, tmp, rule->addr) == 1) {
		rule->family = AF_INET6;
		max = 128;
	} else
		return -1;
	for (i = slash + 1; i < n; i++) {
		if (!is_digit(k[i]))
			return -1;
		bits = bits * 10 + (k[i] - '0');
	}
	if (bits > max)
		return -1;
	rule->bits = bits;
	return 0;
}

/* A host name after '=': letters, digits, '-', '_', '.'. */
static bool
host_ok(const char *k, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!is_hex(k[i]) && !(k[i] >= 'a' && k[i] <= 'z') &&
		    !(k[i] >= 'A' && k[i] <= 'Z') && k[i] != '-' &&
		    k[i] != '_' && k[i] != '.')
			return false;
	return true;
}

/*
 * Classifies a key (no range in it) and writes its lookup form to out
 * (lowercased; IPv6 addresses as inet_ntop writes them). -1 with err.
 */
static int
key_classify(const char *k, size_t n, struct access_rule *rule, char *out,
    char *err, size_t errlen)
{
	char		tmp[INET6_ADDRSTRLEN];
	uint8_t		a[16];
	size_t		i;

	if (n > ACCESS_KEY_MAX) {
		snprintf(err, errlen, "key longer than %d characters",
		    ACCESS_KEY_MAX);
		return -1;
	}
	for (i = 0; i < n; i++) {
		if ((unsigned char)k[i] <= ' ' || k[i] == 0x7f) {
			snprintf(err, errlen, "white space or a control "
			    "character in the key");
			return -1;
		}
		out[i] = k[i] >= 'A' && k[i] <= 'Z' ? (char)(k[i] + 32) : k[i];
	}
	out[n] = '\0';
	if (n == 0)
		rule->kind = ACCESS_DEFAULT;
	else if (memchr(k, '@', n) != NULL)
		rule->kind = ACCESS_IDENT;
	else if (k[0] == '=') {
		rule->kind = n == 1 ? ACCESS_ANYHOST : k[1] == '.' ?
		    ACCESS_SUFFIX : ACCESS_HOST;
		if (!host_ok(k + 1, n - 1) || (n > 1 && k[n - 1] == '.')) {
			snprintf(err, errlen, "'%s' is not =name, =.suffix "
			    "or =", out);
			return -1;
		}
	} else if (memchr(k, '/', n) != NULL) {
		rule->kind = ACCESS_CIDR;
		if (parse_cidr(k, n, rule) == -1)
			goto bad;
	} else if (n < sizeof(tmp) && (memcpy(tmp, k, n), tmp[n] = '\0',
	    inet_pton(AF_INET, tmp, a) == 1))
		rule->kind = ACCESS_IP;
	else if (n < sizeof(tmp) && inet_pton(AF_INET6, tmp, a) == 1) {
		rule->kind = ACCESS_IP;
		inet_ntop(AF_INET6, a, out, INET6_ADDRSTRLEN);
	} else if (ipv4_prefix(out, n) || ipv6_prefix(out, n))
		rule->kind = ACCESS_PREFIX;
	else
		goto bad;
	return 0;
bad:
	snprintf(err, errlen, "'%s' is not an address, a prefix ending in "
	    "'.' (IPv6 ':'), a network a.b.c.d/n, =name, user@... or empty",
	    out);
	return -1;
}

/* ---- values ----------------------------------------------------------- */

static bool
var_name_ok(const char *s, size_t n)
{
	size_t i;

	if (n == 0 || n > ACCESS_VAR_NAME_MAX)
		return false;
	for (i = 0; i < n; i++)
		if (!is_digit(s[i]) && !(s[i] >= 'a' && s[i] <= 'z') &&
		    !(s[i] >= 'A' && s[i] <= 'Z') && s[i] != '_')
			return false;
	return true;
}

/* Printable ASCII (a reply text, RFC 5321 §4.2), at most the limit. */
static bool
text_ok(const char *s)
{
	size_t n = 0;

	for (; *s != '\0'; s++)
		if ((unsigned char)*s < ' ' || (unsigned char)*s >= 0x7f ||
		    ++n > ACCESS_VALUE_MAX)
			return false;
	return true;
}

/* "dnsbl fcrdns": filter names, separated by spaces or commas. */
static bool
skip_ok(const char *s)
{
	for (; *s != '\0'; s++)
		if (!(*s >= 'a' && *s <= 'z') && !is_digit(*s) && *s != '_' &&
		    *s != ' ' && *s != ',')
			return false;
	return true;
}

/*
 * Reads what a value says into the rule. The value is a sequence of
 * NUL-terminated items "D" and "+VAR=value" (tcpserver ignores any
 * other; so do we). Later variables replace earlier ones, as setenv.
 */
static int
value_read(struct access_rule *rule, char *err, size_t errlen)
{
	char	*p = rule->data, *end = rule->data + rule->datalen, *eq, *e;
	size_t	 nvars = 0;

	while (p < end) {
		if (*p == 'D')
			rule->deny = true;
		else if (*p == '+' && (eq = strchr(p + 1, '=')) != NULL) {
			if (++nvars > ACCESS_VARS_MAX) {
				snprintf(err, errlen, "more than %d variables",
				    ACCESS_VARS_MAX);
				return -1;
			}
			*eq = '\0';	/* the name ends here; put back below */
			if (strcmp(p + 1, "RELAYCLIENT") == 0)
				rule->relay = true;
			else if (strcmp(p + 1, "RBLSMTPD") == 0) {
				rule->rbl = eq[1] == '\0' ? RBL_SKIP :
				    eq[1] == '-' ? RBL_PERM : RBL_TEMP;
				rule->rbl_text = eq + 1 + (eq[1] == '-');
				if (!text_ok(rule->rbl_text)) {
					snprintf(err, errlen, "RBLSMTPD: not "
					    "printable ASCII, or too long");
					*eq = '=';
					return -1;
				}
			} else if (strcmp(p + 1, "MOAT_SKIP") == 0) {
				rule->skip = eq + 1;
				if (!skip_ok(rule->skip)) {
					snprintf(err, errlen, "MOAT_SKIP: not "
					    "a list of filter names");
					*eq = '=';
					return -1;
				}
			} else if (strcmp(p + 1, "MOAT_POLICY") == 0) {
				rule->policy = eq + 1;
				if (eq[1] == '\0' || !text_ok(rule->policy) ||
				    strchr(rule->policy, ' ') != NULL) {
					snprintf(err, errlen, "MOAT_POLICY: not "
					    "a [domain] section's name");
					*eq = '=';
					return -1;
				}
			} else if (strcmp(p + 1, "MOAT_SCORE") == 0) {
				rule->score = strtod(eq + 1, &e);
				if (e == eq + 1 || *e != '\0' ||
				    !isfinite(rule->score) ||
				    rule->score < -1000 || rule->score > 1000) {
					snprintf(err, errlen, "MOAT_SCORE: not "
					    "a number from -1000 to 1000");
					*eq = '=';
					return -1;
				}
				rule->has_score = true;
			}
			*eq = '=';
		}
		p += strlen(p) + 1;
	}
	return 0;
}

/* Adds one rule; key already classified into lk. */
static int
rule_add(struct access_rules *r, const struct access_rule *proto,
    const char *lk, const char *data, size_t dlen, char *err, size_t errlen)
{
	struct access_rule	*v, *rule;
	size_t			 cap, klen = strlen(lk), i;

	if (r->n >= ACCESS_RULES_MAX) {
		snprintf(err, errlen, "more than %d rules", ACCESS_RULES_MAX);
		return -1;
	}
	if (r->n == r->cap) {
		cap = r->cap != 0 ? r->cap * 2 : 16;
		if ((v = reallocarray(r->v, cap, sizeof(*v))) == NULL)
			goto oom;
		r->v = v;
		r->cap = cap;
	}
	if ((r->n + 1) * 2 > r->nslot && slots_grow(r) == -1)
		goto oom;
	rule = &r->v[r->n];
	*rule = *proto;
	rule->datalen = dlen;
	if ((rule->key = strdup(lk)) == NULL)
		goto oom;
	if ((rule->data = malloc(dlen + 1)) == NULL) {
		free(rule->key);
		goto oom;
	}
	memcpy(rule->data, data, dlen);
	rule->data[dlen] = '\0';
	if (value_read(rule, err, errlen) == -1) {
		free(rule->key);
		free(rule->data);
		return -1;
	}
	r->n++;
	if (rule->kind == ACCESS_CIDR)
		r->ncidr++;
	if (rule->kind == ACCESS_HOST)
		r->host_exact = true;
	if (rule->kind == ACCESS_HOST || rule->kind == ACCESS_SUFFIX ||
	    rule->kind == ACCESS_ANYHOST)
		r->host_any = true;
	/* The first rule of a key wins, as cdb_find's first record. */
	i = slot_find(r, lk, klen);
	if (r->slot[i] == 0)
		r->slot[i] = r->n;
	return 0;
oom:
	snprintf(err, errlen, "out of memory");
	return -1;
}

/* A number of 1-3 digits, no leading zero, at most 255; -1 if not. */
static int
range_num(const char *s, size_t n)
{
	size_t	i;
	int	v = 0;

	if (n == 0 || n > 3 || (n > 1 && s[0] == '0'))
		return -1;
	for (i = 0; i < n; i++) {
		if (!is_digit(s[i]))
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v > 255 ? -1 : v;
}

/*
 * Adds the rules of one key: a range "1.2.3.37-53" or "10.2-3." (in a
 * key without '=', '@' or ':', as tcprules) makes one key per number.
 */
static int
key_add(struct access_rules *r, const char *k, size_t n, unsigned line,
    const char *data, size_t dlen, char *err, size_t errlen)
{
	struct access_rule	 proto;
	char			 one[ACCESS_KEY_MAX + 8];
	char			 lk[ACCESS_KEY_MAX + INET6_ADDRSTRLEN];
	const char		*dash;
	size_t			 left, right;
	int			 bot, top, v, len;

	memset(&proto, 0, sizeof(proto));
	proto.line = line;
	if (n > ACCESS_KEY_MAX) {
		snprintf(err, errlen, "key longer than %d characters",
		    ACCESS_KEY_MAX);
		return -1;
	}
	dash = memchr(k, '-', n);
	if (dash == NULL || memchr(k, '=', n) != NULL ||
	    memchr(k, '@', n) != NULL || memchr(k, ':', n) != NULL) {
		if (key_classify(k, n, &proto, lk, err, errlen) == -1)
			return -1;
		return rule_add(r, &proto, lk, data, dlen, err, errlen);
	}
	for (left = (size_t)(dash - k); left > 0 && k[left - 1] != '.'; left--)
		;
	for (right = (size_t)(dash - k) + 1; right < n && k[right] != '.';
	    right++)
		;
	bot = range_num(k + left, (size_t)(dash - k) - left);
	top = range_num(dash + 1, right - (size_t)(dash - k) - 1);
	if (bot == -1 || top == -1 || bot > top) {
		snprintf(err, errlen, "'%.*s' is not a range n-m of numbers "
		    "0-255", (int)(n > 64 ? 64 : n), k);
		return -1;
	}
	for (v = bot; v <= top; v++) {
		len = snprintf(one, sizeof(one), "%.*s%d%.*s", (int)left, k, v,
		    (int)(n - right), k + right);
		if (len < 0 || (size_t)len >= sizeof(one) ||
		    key_classify(one, (size_t)len, &proto, lk, err,
		    errlen) == -1 ||
		    rule_add(r, &proto, lk, data, dlen, err, errlen) == -1)
			return -1;
	}
	return 0;
}

/* ---- the text formats -------------------------------------------------- */

/* Appends "+NAME=value\0" to data; -1 with err past the limits. */
static int
data_var(char *data, size_t *dlen, const char *name, size_t nlen,
    const char *val, size_t vlen, char *err, size_t errlen)
{
	if (!var_name_ok(name, nlen)) {
		snprintf(err, errlen, "'%.*s' is not a variable name "
		    "([A-Za-z0-9_], at most %d)", (int)(nlen > 64 ? 64 : nlen),
		    name, ACCESS_VAR_NAME_MAX);
		return -1;
	}
	if (vlen > ACCESS_VALUE_MAX) {
		snprintf(err, errlen, "%.*s: value longer than %d", (int)nlen,
		    name, ACCESS_VALUE_MAX);
		return -1;
	}
	if (memchr(val, '\0', vlen) != NULL) {
		snprintf(err, errlen, "%.*s: NUL in the value", (int)nlen,
		    name);
		return -1;
	}
	if (*dlen + nlen + vlen + 3 > ACCESS_DATA_MAX) {
		snprintf(err, errlen, "more than %d variables",
		    ACCESS_VARS_MAX);
		return -1;
	}
	data[(*dlen)++] = '+';
	memcpy(data + *dlen, name, nlen);
	*dlen += nlen;
	data[(*dlen)++] = '=';
	memcpy(data + *dlen, val, vlen);
	*dlen += vlen;
	data[(*dlen)++] = '\0';
	return 0;
}

/* "allow"/"deny" at p (n bytes left), followed by ',' or the end (the
 * tcprules form) or by white space or the end (the list form). */
static size_t
action_at(const char *p, size_t n, bool list, bool *deny)
{
	size_t w;

	if (n >= 4 && memcmp(p, "deny", 4) == 0)
		w = 4, *deny = true;
	else if (n >= 5 && memcmp(p, "allow", 5) == 0)
		w = 5, *deny = false;
	else
		return 0;
	if (w == n || (list ? p[w] == ' ' || p[w] == '\t' : p[w] == ','))
		return w;
	return 0;
}

/* key:allow,VAR="value",VAR=/value/ (any repeated character quotes). */
static int
line_tcprules(struct access_rules *r, const char *p, size_t n, size_t colon,
    unsigned line, char *err, size_t errlen)
{
	char	 data[ACCESS_DATA_MAX];
	size_t	 dlen = 0, i, eq, close;
	bool	 deny;

	i = colon + 1 + action_at(p + colon + 1, n - colon - 1, false, &deny);
	if (deny) {
		data[dlen++] = 'D';
		data[dlen++] = '\0';
	}
	while (i < n) {
		if (p[i] != ',')
			goto bad;
		for (eq = i + 1; eq < n && p[eq] != '=' && p[eq] != ','; eq++)
			;
		if (eq + 1 >= n || p[eq] != '=')
			goto bad;
		for (close = eq + 2; close < n && p[close] != p[eq + 1];
		    close++)
			;
		if (close == n) {
			snprintf(err, errlen, "%.*s: the value's closing %c "
			    "is missing", (int)(eq - i - 1 > 64 ? 64 :
			    eq - i - 1), p + i + 1, p[eq + 1]);
			return -1;
		}
		if (data_var(data, &dlen, p + i + 1, eq - i - 1, p + eq + 2,
		    close - eq - 2, err, errlen) == -1)
			return -1;
		i = close + 1;
	}
	return key_add(r, p, colon, line, data, dlen, err, errlen);
bad:
	snprintf(err, errlen, "expected ,VAR=\"value\" after the action");
	return -1;
}

/* One word of a list line at p[*i], bare or "quoted" (\" and \\),
 * unquoted into out; -1 with err. */
static int
list_word(const char *p, size_t n, size_t *i, char *out, size_t *olen,
    size_t max, char *err, size_t errlen)
{
	bool	q = false;

	*olen = 0;
	for (; *i < n; (*i)++) {
		char c = p[*i];

		if (!q && (c == ' ' || c == '\t'))
			break;
		if (c == '"') {
			q = !q;
			continue;
		}
		if (q && c == '\\') {
			if (*i + 1 >= n || (p[*i + 1] != '"' &&
			    p[*i + 1] != '\\')) {
				snprintf(err, errlen, "only \\\" and \\\\ are "
				    "escapes");
				return -1;
			}
			c = p[++*i];
		}
		if (*olen >= max) {
			snprintf(err, errlen, "word longer than %zu", max);
			return -1;
		}
		out[(*olen)++] = c;
	}
	if (q) {
		snprintf(err, errlen, "unterminated quote");
		return -1;
	}
	return 0;
}

/* key allow|deny [VAR[=value] ...]; key "*" is the default. */
static int
line_list(struct access_rules *r, const char *p, size_t n, unsigned line,
    char *err, size_t errlen)
{
	char	 data[ACCESS_DATA_MAX];
	char	 w[ACCESS_VAR_NAME_MAX + ACCESS_VALUE_MAX + 2];
	size_t	 dlen = 0, i, k, wl, eq;
	bool	 deny;

	for (k = 0; k < n && p[k] != ' ' && p[k] != '\t'; k++)
		;
	for (i = k; i < n && (p[i] == ' ' || p[i] == '\t'); i++)
		;
	if (k == n || (wl = action_at(p + i, n - i, true, &deny)) == 0) {
		snprintf(err, errlen, "expected key:allow|deny[,VAR=\"value\""
		    "...] or key allow|deny [VAR=value ...]");
		return -1;
	}
	if (deny) {
		data[dlen++] = 'D';
		data[dlen++] = '\0';
	}
	for (i += wl;;) {
		while (i < n && (p[i] == ' ' || p[i] == '\t'))
			i++;
		if (i == n)
			break;
		if (list_word(p, n, &i, w, &wl, sizeof(w), err, errlen) == -1)
			return -1;
		for (eq = 0; eq < wl && w[eq] != '='; eq++)
			;
		if (data_var(data, &dlen, w, eq, w + eq + (eq < wl), wl - eq -
		    (eq < wl), err, errlen) == -1)
			return -1;
	}
	if (k == 1 && p[0] == '*')
		k = 0;
	return key_add(r, p, k, line, data, dlen, err, errlen);
}

/* One line (no LF): a comment, a blank, or a rule in either form. */
static int
parse_line(struct access_rules *r, const char *p, size_t n, unsigned line,
    char *err, size_t errlen)
{
	size_t	i, ws;
	bool	deny;

	while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t' ||
	    p[n - 1] == '\r'))
		n--;
	while (n > 0 && (*p == ' ' || *p == '\t'))
		p++, n--;
	if (n == 0 || *p == '#')
		return 0;
	if (memchr(p, '\0', n) != NULL) {
		snprintf(err, errlen, "NUL byte in the line");
		return -1;
	}
	for (ws = 0; ws < n && p[ws] != ' ' && p[ws] != '\t'; ws++)
		;
	for (i = 0; i < ws; i++)
		if (p[i] == ':' && action_at(p + i + 1, n - i - 1, false,
		    &deny) > 0)
			return line_tcprules(r, p, n, i, line, err, errlen);
	return line_list(r, p, n, line, err, errlen);
}

int
access_parse(struct access_rules *r, const char *buf, size_t len, char *err,
    size_t errlen)
{
	const char	*p = buf, *nl;
	size_t		 n;
	unsigned	 line = 0;
	char		 why[256];

	while (p < buf + len) {
		line++;
		nl = memchr(p, '\n', (size_t)(buf + len - p));
		n = nl != NULL ? (size_t)(nl - p) : (size_t)(buf + len - p);
		if (n > ACCESS_LINE_MAX) {
			snprintf(err, errlen, "%u: line longer than %d "
			    "characters", line, ACCESS_LINE_MAX);
			return -1;
		}
		if (parse_line(r, p, n, line, why, sizeof(why)) == -1) {
			snprintf(err, errlen, "%u: %s", line, why);
			return -1;
		}
		p += n + 1;
	}
	return 0;
}

int
access_add_cdb(struct access_rules *r, const char *key, size_t klen,
    const char *data, size_t dlen, char *err, size_t errlen)
{
	struct access_rule	proto;
	char			lk[ACCESS_KEY_MAX + INET6_ADDRSTRLEN];

	memset(&proto, 0, sizeof(proto));
	if (dlen > ACCESS_DATA_MAX) {
		snprintf(err, errlen, "value longer than %d", ACCESS_DATA_MAX);
		return -1;
	}
	if (dlen > 0 && data[dlen - 1] != '\0') {
		snprintf(err, errlen, "value not NUL-terminated");
		return -1;
	}
	if (key_classify(key, klen, &proto, lk, err, errlen) == -1)
		return -1;
	return rule_add(r, &proto, lk, data, dlen, err, errlen);
}

/* ---- lookup ----------------------------------------------------------- */

static bool
cidr_in(const struct access_rule *c, int family, const uint8_t *a)
{
	int full = c->bits / 8, rest = c->bits % 8;

	if (c->family != family)
		return false;
	if (memcmp(a, c->addr, (size_t)full) != 0)
		return false;
	return rest == 0 ||
	    ((a[full] ^ c->addr[full]) & (0xff << (8 - rest))) == 0;
}

/* Step 3: the longest text prefix against the longest CIDR network. */
static const struct access_rule *
match_prefix(const struct access_rules *r, const char *ip, int family,
    const uint8_t *addr)
{
	const struct access_rule	*best = NULL, *c;
	size_t				 len, i, seps;
	int				 bits = -1;
	char				 sep = family == AF_INET6 ? ':' : '.';

	for (len = strlen(ip); len > 0 && best == NULL; len--) {
		if (ip[len - 1] != sep || (best = lookup(r, ip, len)) == NULL)
			continue;
		for (i = seps = 0; i < len; i++)
			seps += ip[i] == sep;
		bits = (int)seps * (family == AF_INET6 ? 16 : 8);
	}
	for (i = 0; r->ncidr > 0 && i < r->n; i++) {
		c = &r->v[i];
		if (c->kind != ACCESS_CIDR || !cidr_in(c, family, addr))
			continue;
		if (c->bits > bits || (c->bits == bits && best != NULL &&
		    c->line < best->line)) {
			best = c;
			bits = c->bits;
		}
	}
	return best;
}

const struct access_rule *
access_match(const struct access_rules *r, const char *ip, int family,
    const uint8_t *addr, const char *host, int *step)
{
	const struct access_rule	*m;
	char				 k[ACCESS_KEY_MAX + 2];
	const char			*d;
	size_t				 hl = host != NULL ? strlen(host) : 0;

	if (host != NULL && (hl == 0 || hl > ACCESS_KEY_MAX - 1))
		host = NULL;
	if (host != NULL) {
		k[0] = '=';
		memcpy(k + 1, host, hl + 1);
	}
	if ((*step = 1, m = lookup(r, ip, strlen(ip))) != NULL)
		return m;
	if (host != NULL && (*step = 2, m = lookup(r, k, hl + 1)) != NULL)
		return m;
	if ((*step = 3, m = match_prefix(r, ip, family, addr)) != NULL)
		return m;
	for (d = host != NULL ? strchr(host + 1, '.') : NULL; d != NULL;
	    d = strchr(d + 1, '.')) {
		k[0] = '=';
		memcpy(k + 1, d, hl - (size_t)(d - host) + 1);
		if ((*step = 4, m = lookup(r, k, hl - (size_t)(d - host) +
		    1)) != NULL)
			return m;
	}
	if (host != NULL && (*step = 5, m = lookup(r, "=", 1)) != NULL)
		return m;
	if ((*step = 6, m = lookup(r, "", 0)) != NULL)
		return m;
	*step = 0;
	return NULL;
}

bool
access_host_matters(const struct access_rules *r, int step)
{
	if (step == 1)
		return false;
	if (step == 3)
		return r->host_exact;
	return r->host_any;
}
