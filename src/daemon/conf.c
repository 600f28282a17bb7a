/*
 * conf.c: assembles the configuration (see conf.h).
 *
 * Domain overrides are collected while parsing (their sections may come
 * before the filter sections they override) and applied afterwards to a
 * copy of the default policy, keeping their line numbers for errors.
 */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../core/lists.h"
#include "../core/log.h"
#include "../deliver/deliver.h"
#include "../smtp/pregreet.h"
#include "../smtp/tls.h"
#include "../store/store.h"
#include "conf.h"

#define SRV(f)	offsetof(struct server_conf, f)
#define SMTP(f)	(offsetof(struct server_conf, smtp) + \
		    offsetof(struct smtp_conf, f))

const struct opt server_opts[] = {
	{ "listen", OPT_STR, "127.0.0.1:2525", 0, 0, SRV(listen),
	    "addresses to accept SMTP on: host:port, blank-separated" },
	{ "workers", OPT_INT, "0", 0, LIMIT_WORKERS, SRV(workers),
	    "worker processes (0: one per core)" },
	{ "user", OPT_STR, "", 0, 0, SRV(user),
	    "drop privileges to this user after binding (when root)" },
	{ "var_dir", OPT_PATH, "../var", 0, 0, SRV(var_dir),
	    "state directory" },
	{ "store_map_size", OPT_SIZE, "1G", 1024 * 1024, 1LL << 40,
	    SRV(store_map_size), "largest size of the LMDB state store "
	    "(<var_dir>/db)" },
	{ "log", OPT_STR, "stderr", 0, 0, SRV(log),
	    "human log: stderr, stdout, syslog, off or a file" },
	{ "log_level", OPT_STR, "info", 0, 0, SRV(log_level),
	    "panic, fatal, warn, info, debug or trace" },
	{ "json_log", OPT_STR, "off", 0, 0, SRV(json_log),
	    "JSON event log: stdout, stderr, syslog, off or a file" },
	{ "tls_cert", OPT_PATH, "", 0, 0, SRV(tls_cert),
	    "PEM certificate chain for STARTTLS (empty: no STARTTLS)" },
	{ "tls_key", OPT_PATH, "", 0, 0, SRV(tls_key),
	    "PEM private key for STARTTLS" },
	{ "max_connections", OPT_INT, "10000", 1, 1000000,
	    SRV(max_connections), "simultaneous connections, all workers" },
	{ "listen_backlog", OPT_INT, "4096", 16, 65535,
	    SRV(listen_backlog), "connections the kernel queues for accept "
	    "(capped at net.core.somaxconn)" },
	{ "max_per_ip", OPT_INT, "20", 1, 1000000, SRV(max_per_ip),
	    "simultaneous connections from one client address" },
	{ "drain_timeout", OPT_INT, "30", 0, 3600, SRV(drain_timeout),
	    "seconds sessions may finish after SIGTERM or reload" },
	{ "worker_heartbeat_timeout", OPT_INT, "10", 0, 3600,
	    SRV(heartbeat_timeout), "seconds a worker's loop may go without "
	    "a heartbeat before the master kills and replaces it (0: never)" },
	{ "local_domains", OPT_STR, "", 0, 0, SRV(local_domains),
	    "domains we accept mail for, blank-separated" },
	{ "rcpthosts", OPT_PATH, "", 0, 0, SRV(rcpthosts),
	    "qmail rcpthosts file (more local domains)" },
	{ "morercpthosts", OPT_PATH, "", 0, 0, SRV(morercpthosts),
	    "qmail morercpthosts.cdb" },
	{ "submission", OPT_STR, "", 0, 0, SRV(submission),
	    "addresses of the submission port (587, STARTTLS): host:port, "
	    "blank-separated; AUTH before MAIL, submission_skip skipped" },
	{ "smtps", OPT_STR, "", 0, 0, SRV(smtps),
	    "addresses of the submission port with implicit TLS (465, RFC "
	    "8314); the same policy as submission" },
	{ "submission_skip", OPT_STR, "dnsbl rhsbl fcrdns helo spf", 0, 0,
	    SRV(submission_skip), "filters a submission session skips "
	    "(inbound checks that say nothing about an authenticated user)" },
	{ "hostname", OPT_STR, "localhost", 0, 0, SMTP(hostname),
	    "our name in the greeting, EHLO and Received" },
	{ "banner", OPT_STR, "moat", 0, 0, SMTP(banner),
	    "text after ESMTP in the greeting" },
	{ "max_message_size", OPT_SIZE, "25M", 1024, LIMIT_MESSAGE_SIZE_MAX,
	    SMTP(max_message_size), "largest message (RFC 1870 SIZE)" },
	{ "message_memory", OPT_SIZE, "256K", 64 * 1024, 1024LL * 1024 * 1024,
	    SMTP(message_memory), "bytes of a message kept in memory; past "
	    "it the message is spilled to an unlinked file under var_dir" },
	{ "message_memory_budget", OPT_SIZE, "256M", 64 * 1024,
	    64LL * 1024 * 1024 * 1024, SMTP(message_memory_budget),
	    "memory all messages of a worker may hold (message_memory each); "
	    "new DATA/BDAT past it gets 452 4.3.1" },
	{ "pregreet_wait", OPT_INT, "6000", 0, 60000,
	    SMTP(pregreet_wait_ms), "ms between the 220- teaser and the "
	    "final 220 (pre-greeting test; 0: off); a client talking "
	    "before it is an early talker" },
	{ "pregreet_busy", OPT_INT, "1000", 0, 1000000, SMTP(pregreet_busy),
	    "sessions of a worker past which the wait is pregreet_busy_wait "
	    "(0: never shortened)" },
	{ "pregreet_busy_wait", OPT_INT, "2000", 0, 60000,
	    SMTP(pregreet_busy_wait_ms), "ms of the wait under load" },
	{ "pregreet_drop", OPT_BOOL, "no", 0, 0, SMTP(pregreet_drop),
	    "an early talker gets 554 and is closed at once (no: refused at "
	    "RCPT, postmaster@ and abuse@ exempt)" },
	{ "pregreet_ttl", OPT_INT, "86400", 0, 31536000, SMTP(pregreet_ttl),
	    "seconds a client that waited is greeted at once" },
	{ "score_pipelining", OPT_FLOAT, "2", -100, 100,
	    SMTP(score_pipelining), "PROTO_PIPELINING: a command sent before "
	    "the previous reply without PIPELINING offered (RFC 2920)" },
	{ "score_bare_lf", OPT_FLOAT, "2", -100, 100, SMTP(score_bare_lf),
	    "PROTO_BARE_LF: a bare LF in a command line (refused with 500)" },
	{ "non_smtp_drop", OPT_BOOL, "yes", 0, 0, SMTP(non_smtp_drop),
	    "an HTTP request or a header field as a command: 554 and close" },
	{ "max_recipients", OPT_INT, "100", 1, LIMIT_RECIPIENTS_MAX,
	    SMTP(max_recipients), "recipients per message (RFC 5321 "
	    "4.5.3.1.8 asks at least 100); 452 past it" },
	{ "max_errors", OPT_INT, "10", 1, 1000, SMTP(max_errors),
	    "bad or unknown commands before we hang up (421)" },
	{ "max_command_line", OPT_INT, "1024", LIMIT_COMMAND_LINE,
	    LIMIT_COMMAND_LINE_MAX, SMTP(max_command_line), "longest command "
	    "line with CRLF (RFC 5321 4.5.3.1.4: 512, plus ESMTP parameters)" },
	{ "max_line_length", OPT_INT, "1000", 78, LIMIT_TEXT_LINE_MAX,
	    SMTP(max_line), "longest message line with CRLF (RFC 5321 "
	    "4.5.3.1.6: 1000)" },
	{ "max_header_lines", OPT_INT, "1000", 10, 100000,
	    SMTP(max_header_lines), "header lines per message" },
	{ "timeout_command", OPT_INT, "300", 1, 3600, SMTP(timeout_command),
	    "seconds to wait for a command (RFC 5321 4.5.3.2.7)" },
	{ "timeout_data", OPT_INT, "180", 1, 3600, SMTP(timeout_data),
	    "seconds to wait for each block of message data (4.5.3.2.5)" },
	{ "deadline_command", OPT_INT, "300", 1, 3600,
	    SMTP(deadline_command), "seconds a command line may take to "
	    "arrive, however slowly its bytes trickle in" },
	{ "deadline_message", OPT_INT, "1800", 1, 86400,
	    SMTP(deadline_message), "seconds a whole message (DATA, or BDAT "
	    "to LAST) may take" },
	{ "deadline_tls_handshake", OPT_INT, "60", 1, 600,
	    SMTP(deadline_tls), "seconds a STARTTLS handshake may take" },
	{ "timeout_filter", OPT_INT, "30", 1, 600, SMTP(timeout_filter),
	    "seconds a pending check may take before its fail mode" },
	{ "delay_deny", OPT_BOOL, "yes", 0, 0, SMTP(delay_deny),
	    "apply connect/helo/mail rejections at RCPT" },
	{ "smtputf8", OPT_BOOL, "yes", 0, 0, SMTP(smtputf8),
	    "offer SMTPUTF8 (RFC 6531)" },
	{ "chunking", OPT_BOOL, "yes", 0, 0, SMTP(chunking),
	    "offer CHUNKING/BDAT (RFC 3030)" },
	{ "pipelining", OPT_BOOL, "yes", 0, 0, SMTP(pipelining),
	    "offer PIPELINING (RFC 2920)" },
	OPT_END
};

struct override {
	char	*domain, *key, *value;
	int	 line;
};

/* Where a section's first key is, for errors found after parsing. */
struct where {
	char	*section;
	int	 line;
};

struct load_ctx {
	struct moat_config	*cf;
	struct where		*at;
	size_t			 nat;
	const char		*dir;
	char			*filters;	/* [pipeline] filters */
	int			 filters_line;
	struct override		*ov;
	size_t			 nov;
};

static int
add_override(struct load_ctx *lc, const char *domain, const char *key,
    const char *value, int line)
{
	struct override *v;

	v = reallocarray(lc->ov, lc->nov + 1, sizeof(*v));
	if (v == NULL)
		return -1;
	lc->ov = v;
	v[lc->nov].domain = strdup(domain);
	v[lc->nov].key = strdup(key);
	v[lc->nov].value = strdup(value);
	v[lc->nov].line = line;
	lc->nov++;
	return 0;
}

static int
set_checked(const struct opt *tab, void *obj, const char *sect,
    const char *key, const char *val, const char *dir, char *err,
    size_t errlen)
{
	int r = opt_set(tab, obj, key, val, dir, err, errlen);

	if (r == -2)
		snprintf(err, errlen, "unknown key '%s' in [%s]", key, sect);
	return r == 0 ? 0 : -1;
}

static void
remember(struct load_ctx *lc, const char *sect, int line)
{
	struct where	*v;
	size_t		 i;

	for (i = 0; i < lc->nat; i++)
		if (strcmp(lc->at[i].section, sect) == 0)
			return;
	if ((v = reallocarray(lc->at, lc->nat + 1, sizeof(*v))) == NULL)
		return;
	lc->at = v;
	if ((v[lc->nat].section = strdup(sect)) != NULL)
		v[lc->nat++].line = line;
}

/* "file:line" of a section's first key, or just "file". */
static void
where_is(const struct load_ctx *lc, const char *sect, char *out, size_t n)
{
	size_t i;

	for (i = 0; i < lc->nat; i++)
		if (strcmp(lc->at[i].section, sect) == 0) {
			snprintf(out, n, "%s:%d", lc->cf->path,
			    lc->at[i].line);
			return;
		}
	snprintf(out, n, "%s", lc->cf->path);
}

/* Whether "mode = val" is the generic key below: enforce and observe
 * always are; any other value is the filter's own `mode` option when it
 * has one (greylist: off, selective, always). */
static bool
generic_mode(const struct filter *f, const char *val)
{
	const struct opt *o;

	if (strcmp(val, "observe") == 0 || strcmp(val, "enforce") == 0)
		return true;
	for (o = f->opts; o != NULL && o->key != NULL; o++)
		if (strcmp(o->key, "mode") == 0)
			return false;
	return true;
}

/* "mode = enforce|observe", a key every filter section has. */
static int
set_mode(struct policy *p, const struct filter *f, const char *val,
    char *err, size_t errlen)
{
	if (strcmp(val, "observe") == 0)
		p->observe[filter_index(f)] = true;
	else if (strcmp(val, "enforce") == 0)
		p->observe[filter_index(f)] = false;
	else {
		snprintf(err, errlen, "mode: '%s' is not enforce or observe",
		    val);
		return -1;
	}
	return 0;
}

/* A [pipeline] deadline in milliseconds: 1..60000. */
static int
set_deadline(long long *out, const char *key, const char *val, char *err,
    size_t errlen)
{
	char		*end;
	long long	 v;

	errno = 0;
	v = strtoll(val, &end, 10);
	if (errno != 0 || end == val || *end != '\0' || v < 1 || v > 60000) {
		snprintf(err, errlen, "%s: '%s' is not a number of "
		    "milliseconds from 1 to 60000", key, val);
		return -1;
	}
	*out = v;
	return 0;
}

#define AUTHC(f)	offsetof(struct auth_conf, f)

/* [auth]: SMTP AUTH (src/smtp/auth*.c, docs/AUTH.md). */
static const struct opt auth_opts[] = {
	{ "backend", OPT_STR, "none", 0, 0, AUTHC(backend),
	    "none, file (passwd_file) or dovecot (dovecot_socket)" },
	{ "passwd_file", OPT_PATH, "", 0, 0, AUTHC(passwd_file),
	    "user:hash lines (argon2id; bcrypt and sha512-crypt read too); "
	    "loaded at start and on SIGHUP" },
	{ "dovecot_socket", OPT_PATH, "", 0, 0, AUTHC(dovecot_socket),
	    "Dovecot's auth-client socket" },
	{ "dovecot_service", OPT_STR, "smtp", 0, 0, AUTHC(dovecot_service),
	    "service= sent to Dovecot" },
	{ "dovecot_penalty", OPT_BOOL, "no", 0, 0, AUTHC(dovecot_penalty),
	    "let Dovecot delay failures by address too (its auth penalty); "
	    "no: moat's own delays only" },
	{ "timeout", OPT_INT, "10", 1, 300, AUTHC(timeout),
	    "seconds one check may take (then 454 4.7.0)" },
	{ "plaintext_loopback", OPT_BOOL, "no", 0, 0,
	    AUTHC(plaintext_loopback), "offer AUTH without TLS to loopback "
	    "clients (127.0.0.0/8, ::1); everyone else needs TLS" },
	{ "fail_delay", OPT_INT, "1000", 0, 60000, AUTHC(fail_delay),
	    "ms a failed AUTH waits for its 535, doubling per failure" },
	{ "fail_delay_max", OPT_INT, "16000", 0, 300000,
	    AUTHC(fail_delay_max), "ms, the cap of that delay" },
	{ "max_failures", OPT_INT, "3", 1, 1000, AUTHC(max_failures),
	    "failed AUTHs in a session before 421 and close" },
	{ "max_failures_ip", OPT_INT, "10", 1, 100000,
	    AUTHC(max_failures_ip), "failed AUTHs from one address (all "
	    "workers together) before it is refused; one is forgotten "
	    "every failure_window" },
	{ "failure_window", OPT_INT, "900", 1, 86400, AUTHC(failure_window),
	    "seconds after which one of an address's failures is "
	    "forgotten" },
	{ "threads", OPT_INT, "2", 1, 16, AUTHC(threads),
	    "threads per worker checking password hashes" },
	{ "queue", OPT_INT, "256", 1, 100000, AUTHC(queue),
	    "checks waiting for a thread before AUTH gets 454" },
	OPT_END
};

#define DNS(f)	offsetof(struct dns_conf, f)

/* [dns]: the worker's resolver (src/core/dns.c, docs/DNS.md). */
static const struct opt dns_opts[] = {
	{ "resolver", OPT_STR, "", 0, 0, DNS(resolver),
	    "host[:port][,host[:port]...] of the resolver (a local unbound; "
	    "DNSBL operators refuse public resolvers); empty: resolv.conf" },
	{ "timeout_ms", OPT_INT, "2000", 10, 60000, DNS(timeout_ms),
	    "milliseconds per try of a query" },
	{ "tries", OPT_INT, "2", 1, 10, DNS(tries), "tries per query" },
	{ "ttl_min", OPT_INT, "60", 0, 86400, DNS(ttl_min),
	    "seconds an answer is cached at least (answers' TTLs are "
	    "clamped)" },
	{ "ttl_max", OPT_INT, "3600", 1, 604800, DNS(ttl_max),
	    "seconds an answer is cached at most" },
	{ "cache_size", OPT_INT, "10000", 0, 10000000, DNS(cache_size),
	    "answers cached per worker (0: none)" },
	OPT_END
};

static int
on_key(void *ctx, const char *sect, const char *key, const char *val,
    int line, char *err, size_t errlen)
{
	struct load_ctx		*lc = ctx;
	struct policy		*def = lc->cf->pl->def;
	const struct filter	*f;

	remember(lc, sect, line);
	if (strcmp(sect, "server") == 0)
		return set_checked(server_opts, &lc->cf->server, sect, key,
		    val, lc->dir, err, errlen);
	if (strcmp(sect, "delivery") == 0)
		return set_checked(deliver_opts, def->delivery, sect, key,
		    val, lc->dir, err, errlen);
	if (strcmp(sect, "quarantine") == 0)
		return set_checked(quarantine_opts, &lc->cf->quarantine, sect,
		    key, val, lc->dir, err, errlen);
	if (strcmp(sect, "auth") == 0)
		return set_checked(auth_opts, &lc->cf->auth, sect, key, val,
		    lc->dir, err, errlen);
	if (strcmp(sect, "dns") == 0)
		return set_checked(dns_opts, &lc->cf->pl->dns, sect, key, val,
		    lc->dir, err, errlen);
	if (strcmp(sect, "pipeline") == 0) {
		if (strcmp(key, "deadline_rcpt") == 0)
			return set_deadline(&lc->cf->pl->deadline_rcpt, key,
			    val, err, errlen);
		if (strcmp(key, "deadline_other") == 0)
			return set_deadline(&lc->cf->pl->deadline_other, key,
			    val, err, errlen);
		if (strcmp(key, "filters") != 0) {
			snprintf(err, errlen, "unknown key '%s' in "
			    "[pipeline]", key);
			return -1;
		}
		free(lc->filters);
		lc->filters = strdup(val);
		lc->filters_line = line;
		return 0;
	}
	if (strncmp(sect, "domain ", 7) == 0) {
		const char *d = sect + 7;

		while (*d == ' ')
			d++;
		if (!parse_domain_ok(d, strlen(d), false)) {
			snprintf(err, errlen, "[%s]: not a domain", sect);
			return -1;
		}
		return add_override(lc, d, key, val, line);
	}
	if ((f = filter_find(sect)) != NULL) {
		if (strcmp(key, "mode") == 0 && generic_mode(f, val))
			return set_mode(def, f, val, err, errlen);
		return set_checked(f->opts, def->conf[filter_index(f)], sect,
		    key, val, lc->dir, err, errlen);
	}
	snprintf(err, errlen, "unknown section [%s]", sect);
	return -1;
}

/* A policy with every filter's defaults. */
static struct policy *
policy_new_default(const char *dir, char *err, size_t errlen)
{
	struct policy	*p;
	size_t		 i;

	if ((p = calloc(1, sizeof(*p))) == NULL)
		return NULL;
	for (i = 0; i < filter_count; i++) {
		p->conf[i] = calloc(1, filter_registry[i]->conf_size);
		if (p->conf[i] == NULL || opt_defaults(filter_registry[i]->opts,
		    p->conf[i], dir, err, errlen) == -1)
			return p;
	}
	p->delivery = calloc(1, sizeof(struct deliver_conf));
	if (p->delivery != NULL)
		opt_defaults(deliver_opts, p->delivery, dir, err, errlen);
	return p;
}

/* A copy of the default policy's settings (not its loaded state). */
static struct policy *
policy_copy(const struct policy *def, const char *domain)
{
	struct policy	*p;
	size_t		 i;

	if ((p = calloc(1, sizeof(*p))) == NULL)
		return NULL;
	p->domain = strdup(domain);
	for (i = 0; i < filter_count; i++) {
		size_t n = filter_registry[i]->conf_size;

		if ((p->conf[i] = malloc(n)) == NULL)
			return p;
		memcpy(p->conf[i], def->conf[i], n);
		opt_copy(filter_registry[i]->opts, p->conf[i], def->conf[i]);
	}
	memcpy(p->observe, def->observe, sizeof(p->observe));
	p->observe_all = def->observe_all;
	if ((p->delivery = malloc(sizeof(struct deliver_conf))) != NULL) {
		memcpy(p->delivery, def->delivery,
		    sizeof(struct deliver_conf));
		opt_copy(deliver_opts, p->delivery, def->delivery);
	}
	return p;
}

static struct policy *
policy_of(struct pipeline *pl, const char *domain)
{
	struct policy	**v;
	size_t		  i;

	for (i = 0; i < pl->ndomains; i++)
		if (strcasecmp(pl->domains[i]->domain, domain) == 0)
			return pl->domains[i];
	v = reallocarray(pl->domains, pl->ndomains + 1, sizeof(*v));
	if (v == NULL)
		return NULL;
	pl->domains = v;
	v[pl->ndomains] = policy_copy(pl->def, domain);
	return v[pl->ndomains] == NULL ? NULL : v[pl->ndomains++];
}

static int
apply_overrides(struct load_ctx *lc, char *err, size_t errlen)
{
	const struct filter	*f;
	struct policy		*p;
	char			 name[64], msg[400];
	const char		*dot;
	size_t			 i;
	int			 r;

	for (i = 0; i < lc->nov; i++) {
		struct override *o = &lc->ov[i];

		if ((p = policy_of(lc->cf->pl, o->domain)) == NULL)
			return -1;
		dot = strchr(o->key, '.');
		if (dot == NULL && strcmp(o->key, "observe") == 0) {
			/* The whole policy logs and changes nothing. */
			if (strcmp(o->value, "yes") != 0 &&
			    strcmp(o->value, "no") != 0) {
				snprintf(msg, sizeof(msg), "observe: '%s' is "
				    "not yes or no", o->value);
				goto bad;
			}
			p->observe_all = strcmp(o->value, "yes") == 0;
			continue;
		}
		if (dot == NULL || (size_t)(dot - o->key) >= sizeof(name)) {
			snprintf(msg, sizeof(msg), "'%s': expected "
			    "filter.key or delivery.key", o->key);
			goto bad;
		}
		snprintf(name, sizeof(name), "%.*s", (int)(dot - o->key),
		    o->key);
		if (strcmp(name, "delivery") == 0)
			r = set_checked(deliver_opts, p->delivery, name,
			    dot + 1, o->value, lc->dir, msg, sizeof(msg));
		else if ((f = filter_find(name)) != NULL &&
		    strcmp(dot + 1, "mode") == 0 &&
		    generic_mode(f, o->value))
			r = set_mode(p, f, o->value, msg, sizeof(msg));
		else if (f != NULL)
			r = set_checked(f->opts, p->conf[filter_index(f)],
			    name, dot + 1, o->value, lc->dir, msg,
			    sizeof(msg));
		else {
			snprintf(msg, sizeof(msg), "'%s': no filter named "
			    "'%s'", o->key, name);
			goto bad;
		}
		if (r == -1)
			goto bad;
		continue;
bad:
		snprintf(err, errlen, "%s:%d: %s", lc->cf->path, o->line, msg);
		return -1;
	}
	return 0;
}

/* Filters that rewrite a recipient in place (a prvs tag, a limited
 * address) must run before the filter that validates it. */
static const struct {
	const char	*first, *then, *why;
} order_rules[] = {
	{ "batv", "recipients", "it unwraps prvs recipients" },
	{ "limited", "recipients", "it rewrites user.N.count@ to user@" },
};

static int
filter_pos(const struct pipeline *pl, const char *name)
{
	size_t i;

	for (i = 0; i < pl->n; i++)
		if (strcmp(pl->order[i]->name, name) == 0)
			return (int)i;
	return -1;
}

static int
check_order(struct load_ctx *lc, char *err, size_t errlen)
{
	size_t	i;
	int	a, b;

	for (i = 0; i < sizeof(order_rules) / sizeof(order_rules[0]); i++) {
		a = filter_pos(lc->cf->pl, order_rules[i].first);
		b = filter_pos(lc->cf->pl, order_rules[i].then);
		if (a != -1 && b != -1 && a > b) {
			snprintf(err, errlen, "%s:%d: [pipeline] filters: %s "
			    "must come before %s (%s)", lc->cf->path,
			    lc->filters_line, order_rules[i].first,
			    order_rules[i].then, order_rules[i].why);
			return -1;
		}
	}
	return 0;
}

static int
build_order(struct load_ctx *lc, char *err, size_t errlen)
{
	struct pipeline		*pl = lc->cf->pl;
	char			*copy, *w[FILTER_MAX + 1];
	const struct filter	*f;
	int			 n, i;
	size_t			 j;

	copy = strdup(lc->filters != NULL ? lc->filters :
	    "relay badmailfrom recipients");
	if (copy == NULL)
		return -1;
	n = config_words(copy, w, FILTER_MAX);
	for (i = 0; i < n; i++) {
		if ((f = filter_find(w[i])) == NULL) {
			snprintf(err, errlen, "%s:%d: no filter named '%s'",
			    lc->cf->path, lc->filters_line, w[i]);
			free(copy);
			return -1;
		}
		for (j = 0; j < pl->n; j++)
			if (pl->order[j] == f)
				break;
		if (j == pl->n)
			pl->order[pl->n++] = f;
	}
	free(copy);
	if (n < 0) {
		snprintf(err, errlen, "%s:%d: too many filters",
		    lc->cf->path, lc->filters_line);
		return -1;
	}
	return check_order(lc, err, errlen);
}

/*
 * Loads each policy's filter state and checks its delivery settings. An
 * error names the section it came from by the line of its first key:
 * "moat.conf:12: [relay]: nets:3: 'x' is not an address or network".
 */
static int
policy_init(struct load_ctx *lc, struct policy *p, char *err,
    size_t errlen)
{
	struct moat_config	*cf = lc->cf;
	char			 msg[400], sect[300], at[PATH_MAX + 16];
	const char		*name = "delivery";
	size_t			 i, k;

	for (i = 0; i < cf->pl->n; i++) {
		k = filter_index(cf->pl->order[i]);
		name = cf->pl->order[i]->name;
		if (cf->pl->order[i]->init != NULL &&
		    cf->pl->order[i]->init(p->conf[k], &p->state[k], msg,
		    sizeof(msg)) == -1)
			goto fail;
	}
	name = "delivery";
	if (deliver_prepare(p->delivery, msg, sizeof(msg)) == -1)
		goto fail;
	return 0;
fail:
	if (p->domain != NULL)
		snprintf(sect, sizeof(sect), "domain %s", p->domain);
	else
		snprintf(sect, sizeof(sect), "%s", name);
	where_is(lc, sect, at, sizeof(at));
	snprintf(err, errlen, "%s: [%s]: %s", at, sect, msg);
	return -1;
}

static int
load_local(struct moat_config *cf, char *err, size_t errlen)
{
	struct pipeline	*pl = cf->pl;
	char		*copy, *w[256];
	int		 n, i;

	if ((copy = strdup(cf->server.local_domains)) == NULL)
		return -1;
	if ((n = config_words(copy, w, 256)) < 0) {
		free(copy);
		snprintf(err, errlen, "%s: local_domains: more than 256; "
		    "use rcpthosts", cf->path);
		return -1;
	}
	for (i = 0; i < n; i++)
		strset_add(&pl->local, w[i], strlen(w[i]));
	free(copy);
	if (cf->server.rcpthosts[0] != '\0' && strset_load(&pl->local,
	    cf->server.rcpthosts, err, errlen) == -1)
		return -1;
	if (cf->server.morercpthosts[0] != '\0' && (pl->morercpthosts =
	    cdbfile_open(cf->server.morercpthosts, err, errlen)) == NULL)
		return -1;
	pl->timeout = cf->server.smtp.timeout_filter;
	return 0;
}

/* Log destinations are keywords or files; files are relative to us. */
static int
resolve_log(char **dest, const char *dir)
{
	static const char *const words[] = { "stderr", "stdout", "syslog",
	    "off" };
	char	*p;
	size_t	 i, n;

	for (i = 0; i < 4; i++)
		if (strcmp(*dest, words[i]) == 0)
			return 0;
	if ((*dest)[0] == '/')
		return 0;
	n = strlen(dir) + strlen(*dest) + 2;
	if ((p = malloc(n)) == NULL)
		return -1;
	snprintf(p, n, "%s/%s", dir, *dest);
	free(*dest);
	*dest = p;
	return 0;
}

/* Every word of names is a filter (filter_skip will find it). */
static int
check_filter_names(const char *names, char *bad, size_t n)
{
	char	*copy, *w[FILTER_MAX + 1];
	int	 k, i, rc = 0;

	if ((copy = strdup(names)) == NULL)
		return -1;
	k = config_words(copy, w, FILTER_MAX);
	for (i = 0; i < k && rc == 0; i++)
		if (strcmp(w[i], "all") != 0 && filter_find(w[i]) == NULL) {
			snprintf(bad, n, "%s", w[i]);
			rc = -1;
		}
	free(copy);
	return k < 0 ? -1 : rc;
}

/* [auth]: the backend and what it needs; the passwd file is read now. */
static int
auth_finish(struct load_ctx *lc, char *err, size_t errlen)
{
	struct auth_conf	*ac = &lc->cf->auth;
	char			 at[PATH_MAX + 16], msg[PATH_MAX + 200];

	where_is(lc, "auth", at, sizeof(at));
	msg[0] = '\0';
	if (auth_backend_parse(ac->backend, &ac->kind) == -1)
		snprintf(msg, sizeof(msg), "backend '%s' is not none, file or "
		    "dovecot", ac->backend);
	else if (ac->kind == AUTH_FILE && ac->passwd_file[0] == '\0')
		snprintf(msg, sizeof(msg), "backend file needs passwd_file");
	else if (ac->kind == AUTH_DOVECOT && ac->dovecot_socket[0] == '\0')
		snprintf(msg, sizeof(msg), "backend dovecot needs "
		    "dovecot_socket");
	else if (ac->fail_delay_max < ac->fail_delay)
		snprintf(msg, sizeof(msg), "fail_delay_max is less than "
		    "fail_delay");
	else if (ac->failure_window * ac->max_failures_ip > 366LL * 86400)
		snprintf(msg, sizeof(msg), "failure_window x max_failures_ip "
		    "is past 366 days (a failure is forgotten every "
		    "failure_window)");
	else if (ac->kind == AUTH_FILE && (ac->db = auth_db_load(
	    ac->passwd_file, msg, sizeof(msg))) == NULL && msg[0] == '\0')
		snprintf(msg, sizeof(msg), "cannot load passwd_file");
	else if (ac->kind != AUTH_NONE && auth_fail_table() == -1)
		snprintf(msg, sizeof(msg), "cannot map the failure table");
	if (msg[0] == '\0')
		return 0;
	snprintf(err, errlen, "%s: [auth]: %s", at, msg);
	return -1;
}

/* The SMTP settings of each kind of listener (see conf.h). */
static int
listeners_finish(struct moat_config *cf, char *err, size_t errlen)
{
	struct server_conf	*sv = &cf->server;
	struct smtp_conf	*c;
	char			 bad[64];
	int			 k;

	sv->smtp.auth = &cf->auth;
	sv->smtp.listener = "mx";
	cf->listener[LISTEN_MX] = &sv->smtp;
	for (k = LISTEN_SUBMISSION; k < LISTEN_KINDS; k++) {
		c = &cf->sub_smtp[k];
		*c = sv->smtp;	/* shares the strings, owned by server */
		c->auth_required = true;
		c->implicit_tls = k == LISTEN_SMTPS;
		c->skip_filters = sv->submission_skip;
		c->listener = k == LISTEN_SMTPS ? "smtps" : "submission";
		cf->listener[k] = c;
	}
	if ((sv->submission[0] != '\0' || sv->smtps[0] != '\0') &&
	    cf->auth.kind == AUTH_NONE) {
		snprintf(err, errlen, "%s: [server] submission/smtps need "
		    "[auth] backend (AUTH is required there)", cf->path);
		return -1;
	}
	if ((sv->smtps[0] != '\0' || sv->submission[0] != '\0') &&
	    cf->tls == NULL) {
		snprintf(err, errlen, "%s: [server] submission/smtps need "
		    "tls_cert (AUTH is offered only under TLS)", cf->path);
		return -1;
	}
	if (check_filter_names(sv->submission_skip, bad, sizeof(bad)) == -1) {
		snprintf(err, errlen, "%s: [server] submission_skip: no "
		    "filter named '%s'", cf->path, bad);
		return -1;
	}
	return 0;
}

static int
conf_finish(struct load_ctx *lc, char *err, size_t errlen)
{
	struct moat_config	*cf = lc->cf;
	char			 db[PATH_MAX], msg[256], at[PATH_MAX + 16];
	size_t			 i;

	if (log_level_parse(cf->server.log_level) == -1) {
		snprintf(err, errlen, "%s: log_level '%s' unknown", cf->path,
		    cf->server.log_level);
		return -1;
	}
	if (resolve_log(&cf->server.log, cf->dir) == -1 ||
	    resolve_log(&cf->server.json_log, cf->dir) == -1)
		return -1;
	/* Shared by the workers: made here, in the master, before the
	 * fork (the table outlives reloads). */
	if (pregreet_table() == -1) {
		snprintf(err, errlen, "cannot map the pre-greeting table");
		return -1;
	}
	if (build_order(lc, err, errlen) == -1 ||
	    apply_overrides(lc, err, errlen) == -1 ||
	    load_local(cf, err, errlen) == -1 ||
	    policy_init(lc, cf->pl->def, err, errlen) == -1)
		return -1;
	for (i = 0; i < cf->pl->ndomains; i++)
		if (policy_init(lc, cf->pl->domains[i], err, errlen) == -1)
			return -1;
	if (cf->server.tls_cert[0] != '\0') {
		cf->tls = tls_server_ctx(cf->server.tls_cert,
		    cf->server.tls_key[0] ? cf->server.tls_key :
		    cf->server.tls_cert, err, errlen);
		if (cf->tls == NULL)
			return -1;
	}
	snprintf(db, sizeof(db), "%s/db", cf->server.var_dir);
	store_configure(db, (size_t)cf->server.store_map_size);
	quarantine_configure(&cf->quarantine, cf->server.var_dir);
	cf->server.smtp.spool_dir = cf->server.var_dir;
	if (dns_conf_check(&cf->pl->dns, msg, sizeof(msg)) == -1) {
		where_is(lc, "dns", at, sizeof(at));
		snprintf(err, errlen, "%s: [dns]: %s", at, msg);
		return -1;
	}
	if (auth_finish(lc, err, errlen) == -1 ||
	    listeners_finish(cf, err, errlen) == -1)
		return -1;
	if (cf->server.smtp.message_memory_budget <
	    cf->server.smtp.message_memory) {
		snprintf(err, errlen, "%s: [server] message_memory_budget "
		    "(%lld) is less than message_memory (%lld)", cf->path,
		    cf->server.smtp.message_memory_budget,
		    cf->server.smtp.message_memory);
		return -1;
	}
	return 0;
}

struct moat_config *
conf_load(const char *path, char *err, size_t errlen)
{
	struct moat_config	*cf;
	struct load_ctx		 lc;
	char			 tmp[PATH_MAX], *dir;
	size_t			 i;
	int			 rc = -1;

	memset(&lc, 0, sizeof(lc));
	if ((cf = calloc(1, sizeof(*cf))) == NULL ||
	    (cf->pl = calloc(1, sizeof(*cf->pl))) == NULL) {
		snprintf(err, errlen, "out of memory");
		conf_free(cf);
		return NULL;
	}
	/* How long a decision waits for evidence still being looked up
	 * (filter_wait): at RCPT, and at the other stages. */
	cf->pl->deadline_rcpt = 3000;
	cf->pl->deadline_other = 1000;
	if (opt_defaults(dns_opts, &cf->pl->dns, NULL, err, errlen) == -1 ||
	    opt_defaults(auth_opts, &cf->auth, NULL, err, errlen) == -1 ||
	    opt_defaults(quarantine_opts, &cf->quarantine, NULL, err,
	    errlen) == -1) {
		conf_free(cf);
		return NULL;
	}
	snprintf(tmp, sizeof(tmp), "%s", path);
	dir = dirname(tmp);
	cf->path = strdup(path);
	cf->dir = realpath(dir, NULL);
	if (cf->dir == NULL)
		cf->dir = strdup(dir);
	lc.cf = cf;
	lc.dir = cf->dir;
	err[0] = '\0';
	if (opt_defaults(server_opts, &cf->server, cf->dir, err,
	    errlen) == -1 || (cf->pl->def = policy_new_default(cf->dir, err,
	    errlen)) == NULL || err[0] != '\0')
		goto out;
	if (config_parse(path, on_key, &lc, err, errlen) == -1)
		goto out;
	rc = conf_finish(&lc, err, errlen);
out:
	for (i = 0; i < lc.nov; i++) {
		free(lc.ov[i].domain);
		free(lc.ov[i].key);
		free(lc.ov[i].value);
	}
	free(lc.ov);
	for (i = 0; i < lc.nat; i++)
		free(lc.at[i].section);
	free(lc.at);
	free(lc.filters);
	if (rc == -1) {
		conf_free(cf);
		return NULL;
	}
	return cf;
}

void
conf_free(struct moat_config *cf)
{
	size_t i;

	if (cf == NULL)
		return;
	if (cf->pl != NULL) {
		if (cf->pl->def != NULL && cf->pl->def->delivery != NULL) {
			deliver_conf_free(cf->pl->def->delivery);
			free(cf->pl->def->delivery);
		}
		for (i = 0; i < cf->pl->ndomains; i++) {
			deliver_conf_free(cf->pl->domains[i]->delivery);
			free(cf->pl->domains[i]->delivery);
		}
		opt_free(dns_opts, &cf->pl->dns);
		pipeline_free(cf->pl);
	}
	opt_free(server_opts, &cf->server);
	auth_db_free(cf->auth.db);
	opt_free(auth_opts, &cf->auth);
	opt_free(quarantine_opts, &cf->quarantine);
	if (cf->tls != NULL)
		tls_ctx_free(cf->tls);
	free(cf->path);
	free(cf->dir);
	free(cf);
}

static void
dump_table(const char *section, const struct opt *o, bool filter)
{
	printf("[%s]\n", section);
	if (filter)
		printf("# enforce, or observe: log what it would refuse "
		    "(would_reject) and change nothing\nmode = enforce\n");
	for (; o->key != NULL; o++)
		printf("# %s\n%s = %s\n", o->help, o->key, o->def);
	printf("\n");
}

void
conf_dump_defaults(void)
{
	size_t i;

	dump_table("server", server_opts, false);
	printf("[pipeline]\n# filters, in order\nfilters = relay "
	    "badmailfrom recipients\n# ms a decision at RCPT waits for "
	    "evidence still being looked up\ndeadline_rcpt = 3000\n"
	    "# ... at the other stages\ndeadline_other = 1000\n\n");
	for (i = 0; i < filter_count; i++) {
		printf("# %s\n", filter_registry[i]->summary);
		dump_table(filter_registry[i]->name, filter_registry[i]->opts,
		    true);
	}
	dump_table("delivery", deliver_opts, false);
	dump_table("dns", dns_opts, false);
	dump_table("auth", auth_opts, false);
	dump_table("quarantine", quarantine_opts, false);
	printf("# [domain example.org] overrides any filter.key or "
	    "delivery.key for one recipient\n# domain; observe = yes puts "
	    "its whole policy in observe mode\n");
}
