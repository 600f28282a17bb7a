/*
 * batv.c: BATV bounce protection (batv.h for the tag format).
 *
 * Verify side, at RCPT, for the domains that turn it on (batv.verify in
 * a [domain] section or [batv]): a bounce (null sender, RFC 5321 §4.5.5)
 * to a local recipient must be to a valid prvs address; any other is
 * backscatter from a joe-job and is refused 550 5.7.1. postmaster@ and
 * abuse@ are exempt (RFC 5321 §4.5.1, RFC 2142). A valid prvs recipient,
 * bounce or not, is unwrapped in place to local@domain, so recipient
 * validation and delivery see the real mailbox: batv runs before
 * recipients in [pipeline]. A tag that is bad, expired or signed with an
 * unknown key is refused only for bounces; a normal sender writing to
 * a stale prvs address (a reply to it) is unwrapped all the same when
 * its signature is good, else left for recipient validation.
 *
 * Sign side, at MAIL, with sign = yes: the envelope sender of a relay
 * or authenticated client (the site's own outbound mail) whose domain is
 * one of ours (s->ops->is_local) is rewritten in place to its prvs form
 * (txn->from, which every delivery method and the log read), signed with
 * key_number and valid for `lifetime` days, so the bounces it earns come
 * back signed. Not signed: the null sender, a sender already tagged, a
 * foreign domain (its bounces go elsewhere), one whose signed local part
 * would pass 64 octets, and inbound clients (an outsider must not get a
 * valid tag for our address from us).
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "../core/log.h"
#include "batv.h"
#include "filter.h"

extern const struct filter filter_batv;

struct batv_conf {
	char		*key_file;
	bool		 verify;
	bool		 sign;
	long long	 lifetime;	/* days */
	long long	 key_number;	/* to sign with */
};

struct batv_state {
	struct batv_keys	keys;
	bool			any;
};

static const struct opt batv_opts[] = {
	{ "key_file", OPT_PATH, "", 0, 0, offsetof(struct batv_conf,
	    key_file), "secret keys, one a line, numbered from 0" },
	{ "verify", OPT_BOOL, "no", 0, 0, offsetof(struct batv_conf, verify),
	    "refuse bounces to local addresses without a valid prvs tag" },
	{ "sign", OPT_BOOL, "no", 0, 0, offsetof(struct batv_conf, sign),
	    "sign the envelope sender of relay and authenticated clients "
	    "when its domain is local" },
	{ "lifetime", OPT_INT, "7", 1, 365, offsetof(struct batv_conf,
	    lifetime), "days a signed address stays valid" },
	{ "key_number", OPT_INT, "0", 0, BATV_KEYS - 1, offsetof(struct
	    batv_conf, key_number), "the key new tags are signed with" },
	OPT_END
};

static const char *const result_names[] = {
	"valid", "none", "malformed", "nokey", "badsig", "expired",
};

const char *
batv_result_name(enum batv_result r)
{
	return result_names[r];
}

long
batv_today(void)
{
	return (long)(time(NULL) / 86400);
}

/* The 6 hex digits of HMAC-SHA1(key, "KDDD" + lowercased addr). */
static int
batv_hash(const char *key, size_t keylen, unsigned k, unsigned ddd,
    const char *addr, char hex[7])
{
	unsigned char	 in[4 + LIMIT_LOCAL_PART + LIMIT_DOMAIN + 2];
	unsigned char	 md[EVP_MAX_MD_SIZE];
	unsigned int	 mdlen = 0;
	size_t		 n = strlen(addr), i;

	if (n > LIMIT_LOCAL_PART + LIMIT_DOMAIN + 1 || k > 9 || ddd > 999)
		return -1;
	snprintf((char *)in, 5, "%u%03u", k, ddd);
	for (i = 0; i < n; i++)
		in[4 + i] = (unsigned char)tolower((unsigned char)addr[i]);
	if (HMAC(EVP_sha1(), key, (int)keylen, in, 4 + n, md, &mdlen) ==
	    NULL || mdlen < 3)
		return -1;
	snprintf(hex, 7, "%02x%02x%02x", md[0], md[1], md[2]);
	return 0;
}

int
batv_sign(const char *key, size_t keylen, unsigned keynum,
    const char *addr, long day, char *out, size_t outlen)
{
	const char	*at = strrchr(addr, '@');
	char		 hex[7];
	unsigned	 ddd;
	int		 n;

	if (at == NULL || at == addr || at[1] == '\0' || day < 0 ||
	    (size_t)(at - addr) + BATV_TAG_LEN > LIMIT_LOCAL_PART)
		return -1;
	ddd = (unsigned)(day % 1000);
	if (batv_hash(key, keylen, keynum, ddd, addr, hex) == -1)
		return -1;
	n = snprintf(out, outlen, "prvs=%u%03u%s=%s", keynum, ddd, hex, addr);
	return n < 0 || (size_t)n >= outlen ? -1 : 0;
}

enum batv_result
batv_verify(const struct batv_keys *keys, const char *addr, long today,
    unsigned lifetime, char *orig, size_t origlen)
{
	const char	*t = addr + 5;
	char		 hex[7];
	unsigned	 k, ddd, ahead, i;

	if (strncasecmp(addr, "prvs=", 5) != 0)
		return BATV_NONE;
	for (i = 0; i < 10; i++)
		if (i < 4 ? !isdigit((unsigned char)t[i]) :
		    !isxdigit((unsigned char)t[i]))
			return BATV_MALFORMED;
	if (t[10] != '=' || strchr(t + 11, '@') == NULL || t[11] == '@' ||
	    snprintf(orig, origlen, "%s", t + 11) >= (int)origlen)
		return BATV_MALFORMED;
	k = (unsigned)(t[0] - '0');
	ddd = (unsigned)((t[1] - '0') * 100 + (t[2] - '0') * 10 + (t[3] -
	    '0'));
	if (keys->len[k] == 0)
		return BATV_NOKEY;
	if (batv_hash(keys->key[k], keys->len[k], k, ddd, orig, hex) == -1 ||
	    strncasecmp(hex, t + 4, 6) != 0)
		return BATV_BADSIG;
	/* DDD is the expiry day: today .. today + lifetime, mod 1000. */
	ahead = (ddd + 1000 - (unsigned)(today % 1000)) % 1000;
	return ahead <= lifetime ? BATV_VALID : BATV_EXPIRED;
}

int
batv_keys_load(struct batv_keys *keys, const char *path, char *err,
    size_t errlen)
{
	FILE	*f;
	char	 line[BATV_KEY_MAX + 2];
	size_t	 n, k = 0;
	int	 lineno = 0;

	memset(keys, 0, sizeof(*keys));
	if ((f = fopen(path, "r")) == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		lineno++;
		n = strcspn(line, "\r\n");
		if (line[n] == '\0' && !feof(f)) {
			snprintf(err, errlen, "%s:%d: a key longer than %d "
			    "bytes", path, lineno, BATV_KEY_MAX - 1);
			fclose(f);
			return -1;
		}
		line[n] = '\0';
		if (n == 0 || line[0] == '#')
			continue;
		if (k == BATV_KEYS) {
			snprintf(err, errlen, "%s:%d: more than %d keys",
			    path, lineno, BATV_KEYS);
			fclose(f);
			return -1;
		}
		memcpy(keys->key[k], line, n);
		keys->len[k++] = n;
	}
	fclose(f);
	if (k == 0) {
		snprintf(err, errlen, "%s: no key", path);
		return -1;
	}
	return 0;
}

static void
batv_fini(void *state)
{
	if (state != NULL)
		explicit_bzero(state, sizeof(struct batv_state));
	free(state);
}

static int
batv_init(const void *vconf, void **state, char *err, size_t errlen)
{
	const struct batv_conf	*conf = vconf;
	struct batv_state	*st;

	if ((st = calloc(1, sizeof(*st))) == NULL)
		return -1;
	*state = st;
	if (conf->key_file[0] == '\0') {
		if (conf->verify || conf->sign) {
			snprintf(err, errlen, "verify = yes and sign = yes "
			    "need key_file");
			return -1;
		}
		return 0;
	}
	if (batv_keys_load(&st->keys, conf->key_file, err, errlen) == -1)
		return -1;
	if (st->keys.len[conf->key_number] == 0) {
		snprintf(err, errlen, "key_number %lld: no such key in %s",
		    conf->key_number, conf->key_file);
		return -1;
	}
	st->any = true;
	return 0;
}

static bool
exempt(const struct rcpt *r)
{
	return strcasecmp(r->path.local, "postmaster") == 0 ||
	    strcasecmp(r->path.local, "abuse") == 0;
}

/* A valid tag's recipient becomes the address under it. */
static void
unwrap(struct rcpt *r, const char *orig)
{
	const char *at = strrchr(orig, '@');

	snprintf(r->path.local, sizeof(r->path.local), "%.*s",
	    (int)(at - orig), orig);
	snprintf(r->addr, sizeof(r->addr), "%s@%s", r->path.local,
	    r->path.domain);
}

/* The site's own mail gets a signed envelope sender. */
static struct verdict
batv_mail(struct filter_call *c)
{
	const struct batv_conf	*conf = c->conf;
	const struct batv_state	*st = c->state;
	struct session		*s = c->s;
	struct path		*f = &s->txn->from;
	char			 addr[LIMIT_LOCAL_PART + LIMIT_DOMAIN + 2];
	char			 out[sizeof(addr) + BATV_TAG_LEN];
	const char		*at;

	if (!conf->sign || !st->any || f->null || f->domain[0] == '\0' ||
	    f->quoted || f->literal || !(s->trusted || s->authenticated) ||
	    strncasecmp(f->local, "prvs=", 5) == 0 ||
	    !s->ops->is_local(s->ops->policy_for(f->domain), f->domain))
		return VERDICT(V_CONTINUE);
	if ((size_t)snprintf(addr, sizeof(addr), "%s@%s", f->local,
	    f->domain) >= sizeof(addr) ||
	    batv_sign(st->keys.key[conf->key_number],
	    st->keys.len[conf->key_number], (unsigned)conf->key_number, addr,
	    batv_today() + conf->lifetime, out, sizeof(out)) == -1 ||
	    (at = strrchr(out, '@')) == NULL ||
	    (size_t)(at - out) >= sizeof(f->local))
		return VERDICT(V_CONTINUE);
	memcpy(f->local, out, (size_t)(at - out));
	f->local[at - out] = '\0';
	filter_evidence(s, &filter_batv, "batv", 0, 0, "from=%.60s signed",
	    addr);
	return VERDICT(V_CONTINUE);
}

static struct verdict
batv_rcpt(struct filter_call *c)
{
	const struct batv_conf	*conf = c->conf;
	const struct batv_state	*st = c->state;
	struct rcpt		*r = c->s->txn->cur;
	bool			 bounce = c->s->txn->from.null;
	enum batv_result	 res;
	char			 orig[sizeof(r->addr)];

	if (!st->any || !r->local || r->path.quoted || r->path.literal)
		return VERDICT(V_CONTINUE);
	res = batv_verify(&st->keys, r->addr, batv_today(),
	    (unsigned)conf->lifetime, orig, sizeof(orig));
	if (res == BATV_VALID) {
		unwrap(r, orig);
		filter_evidence(c->s, &filter_batv, "batv", 0, 0,
		    "rcpt=%s result=valid", orig);
		return VERDICT(V_CONTINUE);
	}
	if (!bounce || !conf->verify || exempt(r))
		return VERDICT(V_CONTINUE);
	filter_evidence(c->s, &filter_batv, "batv", 0, 0,
	    "rcpt=%.60s result=%s bounce=yes", r->addr,
	    batv_result_name(res));
	log_msg(LVL_INFO, c->s->id, "event=batv_refused result=%s",
	    batv_result_name(res));
	return verdict_make(V_DENY, 550, "5.7.1", res == BATV_NONE ?
	    "Bounce to an address that sent no mail (no BATV tag)" :
	    "Bounce with an invalid or expired BATV tag");
}

const struct filter filter_batv = {
	.name = "batv",
	.summary = "sign outbound envelope senders with BATV prvs tags; "
	    "refuse bounces to local addresses without a valid tag",
	.opts = batv_opts,
	.conf_size = sizeof(struct batv_conf),
	.init = batv_init,
	.fini = batv_fini,
	.hook = {
		[STAGE_MAIL] = batv_mail,
		[STAGE_RCPT] = batv_rcpt,
	},
	.fail = FAIL_CONTINUE,
};
