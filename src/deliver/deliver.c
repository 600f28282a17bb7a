/*
 * deliver.c: delivery settings and the dispatch to a method.
 */
#include <errno.h>
#include <netdb.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "../core/lists.h"
#include "../core/log.h"
#include "../core/tpool.h"
#include "../filters/policy.h"
#include "deliver.h"

#include <unistd.h>

#define DELIVER_STR(x)	#x
#define DELIVER_XSTR(x)	DELIVER_STR(x)

const struct opt deliver_opts[] = {
	{ "method", OPT_STR, "maildir", 0, 0,
	    offsetof(struct deliver_conf, method),
	    "maildir, smtp, lmtp or qmail-queue" },
	{ "maildir", OPT_PATH, "../var/mail", 0, 0,
	    offsetof(struct deliver_conf, maildir),
	    "Maildir root: mail goes to <root>/<domain>/<user>/" },
	{ "smtproutes", OPT_PATH, "", 0, 0,
	    offsetof(struct deliver_conf, smtproutes),
	    "qmail smtproutes file: domain:host:port, :host for default" },
	{ "route", OPT_STR, "", 0, 0, offsetof(struct deliver_conf, route),
	    "backend host:port when smtproutes has no match" },
	{ "qmail_queue", OPT_PATH, "/var/qmail/bin/qmail-queue", 0, 0,
	    offsetof(struct deliver_conf, qmail_queue),
	    "qmail-queue compatible program" },
	{ "delimiter", OPT_STR, "+", 0, 0,
	    offsetof(struct deliver_conf, delimiter),
	    "address extension character stripped for the Maildir path" },
	{ "timeout", OPT_INT, "120", 1, 3600,
	    offsetof(struct deliver_conf, timeout),
	    "seconds to wait for each backend reply" },
	{ "timeout_data_end", OPT_INT, DELIVER_XSTR(TIMEOUT_DATA_END), 1, 3600,
	    offsetof(struct deliver_conf, timeout_data_end),
	    "seconds to wait for the backend's reply to the end of the "
	    "message (RFC 5321 4.5.3.2.6: 10 minutes)" },
	{ "pool_idle", OPT_INT, "30", 0, 3600,
	    offsetof(struct deliver_conf, pool_idle),
	    "seconds an idle backend connection is kept for reuse" },
	{ "pool_max", OPT_INT, "16", 0, 1024,
	    offsetof(struct deliver_conf, pool_max),
	    "idle backend connections kept per route and worker" },
	{ "starttls", OPT_BOOL, "yes", 0, 0,
	    offsetof(struct deliver_conf, starttls),
	    "use STARTTLS with backends that offer it" },
	OPT_END
};

/* Resolves "host:port" or "[ip]:port" (blocking: load time only). */
static int
route_resolve(struct route *r, const char *host, const char *port,
    char *err, size_t errlen)
{
	struct addrinfo	 hints, *res;
	int		 e;
	size_t		 n = strlen(host);

	if (n >= 2 && host[0] == '[' && host[n - 1] == ']') {
		host++;
		n -= 2;
	}
	snprintf(r->host, sizeof(r->host), "%.*s", (int)n, host);
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	if ((e = getaddrinfo(r->host, port[0] ? port : "25", &hints,
	    &res)) != 0) {
		snprintf(err, errlen, "route %s: %s", r->host,
		    gai_strerror(e));
		return -1;
	}
	memcpy(&r->sa, res->ai_addr, res->ai_addrlen);
	r->salen = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

/* "domain:host:port" (port optional); host may be an [IPv6] literal. */
static int
route_parse(struct route *r, const char *line, char *err, size_t errlen)
{
	char		 buf[LIMIT_LIST_LINE + 1], *host, *port, *rb;

	snprintf(buf, sizeof(buf), "%s", line);
	if ((host = strchr(buf, ':')) == NULL) {
		snprintf(err, errlen, "'%s': expected domain:host[:port]",
		    line);
		return -1;
	}
	*host++ = '\0';
	rb = host[0] == '[' ? strchr(host, ']') : host;
	if (rb == NULL || (port = strchr(rb, ':')) == NULL)
		port = "";
	else
		*port++ = '\0';
	if (host[0] == '\0') {
		snprintf(err, errlen, "'%s': no host (qmail's direct "
		    "delivery is not supported)", line);
		return -1;
	}
	if ((r->domain = strdup(buf)) == NULL)
		return -1;
	lower_ascii(r->domain, strlen(r->domain));
	return route_resolve(r, host, port, err, errlen);
}

static int
route_add(struct deliver_conf *c, const char *line, char *err, size_t errlen)
{
	struct route *v;

	v = reallocarray(c->routes, c->nroutes + 1, sizeof(*v));
	if (v == NULL)
		return -1;
	c->routes = v;
	memset(&v[c->nroutes], 0, sizeof(*v));
	if (route_parse(&v[c->nroutes], line, err, errlen) == -1) {
		free(v[c->nroutes].domain);
		return -1;
	}
	c->nroutes++;
	return 0;
}

static int
routes_load(struct deliver_conf *c, char *err, size_t errlen)
{
	FILE	*fp;
	char	 line[LIMIT_LIST_LINE + 2], msg[300];
	int	 lineno = 0;
	size_t	 n;

	if ((fp = fopen(c->smtproutes, "r")) == NULL) {
		snprintf(err, errlen, "%s: cannot open", c->smtproutes);
		return -1;
	}
	while (fgets(line, sizeof(line), fp) != NULL) {
		lineno++;
		n = strcspn(line, "\r\n");
		line[n] = '\0';
		if (n == 0 || line[0] == '#')
			continue;
		if (route_add(c, line, msg, sizeof(msg)) == -1) {
			snprintf(err, errlen, "%s:%d: %s", c->smtproutes,
			    lineno, msg);
			fclose(fp);
			return -1;
		}
	}
	fclose(fp);
	return 0;
}

int
deliver_prepare(struct deliver_conf *c, char *err, size_t errlen)
{
	char line[LIMIT_LIST_LINE + 2];

	if (strcmp(c->method, "maildir") == 0)
		c->m = DM_MAILDIR;
	else if (strcmp(c->method, "smtp") == 0)
		c->m = DM_SMTP;
	else if (strcmp(c->method, "lmtp") == 0)
		c->m = DM_LMTP;
	else if (strcmp(c->method, "qmail-queue") == 0)
		c->m = DM_QMAILQUEUE;
	else {
		snprintf(err, errlen, "method: '%s' is not maildir, smtp, "
		    "lmtp or qmail-queue", c->method);
		return -1;
	}
	if (c->m != DM_SMTP && c->m != DM_LMTP)
		return 0;
	if (c->smtproutes[0] != '\0' && routes_load(c, err, errlen) == -1)
		return -1;
	if (c->route[0] != '\0') {
		snprintf(line, sizeof(line), ":%s", c->route);
		if (route_add(c, line, err, errlen) == -1)
			return -1;
	}
	if (c->nroutes == 0) {
		snprintf(err, errlen, "method %s needs route or smtproutes",
		    c->method);
		return -1;
	}
	return 0;
}

void
deliver_conf_free(struct deliver_conf *c)
{
	size_t i;

	for (i = 0; i < c->nroutes; i++)
		free(c->routes[i].domain);
	free(c->routes);
	opt_free(deliver_opts, c);
}

int
deliver_lf(const struct buf *msg, struct buf *out)
{
	const char	*p = msg->data, *end = msg->data + msg->len, *cr;

	buf_init(out, msg->len + 1);
	while (p < end) {
		cr = memchr(p, '\r', (size_t)(end - p));
		if (cr == NULL || cr + 1 >= end || cr[1] != '\n')
			return buf_add(out, p, (size_t)(end - p));
		if (buf_add(out, p, (size_t)(cr - p)) == -1)
			return -1;
		p = cr + 1;
	}
	return 0;
}

static int
write_full(int fd, const char *p, size_t n)
{
	ssize_t w;

	while (n > 0) {
		if ((w = write(fd, p, n)) == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int
deliver_lf_fd(int src_fd, size_t len, int fd, long long *written)
{
	char		 in[65536], out[65536];
	size_t		 off = 0, i, n, o;
	long long	 total = 0;
	ssize_t		 r;
	bool		 cr = false;	/* a CR ended the last block */

	while (off < len) {
		n = len - off < sizeof(in) ? len - off : sizeof(in);
		if ((r = pread(src_fd, in, n, (off_t)off)) <= 0) {
			if (r == -1 && errno == EINTR)
				continue;
			errno = r == 0 ? EIO : errno;
			return -1;
		}
		off += (size_t)r;
		for (i = o = 0; i < (size_t)r; i++) {
			if (cr && in[i] != '\n')
				out[o++] = '\r';
			cr = in[i] == '\r';
			if (!cr)
				out[o++] = in[i];
		}
		if (write_full(fd, out, o) == -1)
			return -1;
		total += (long long)o;
	}
	if (cr) {
		if (write_full(fd, "\r", 1) == -1)
			return -1;
		total++;
	}
	if (written != NULL)
		*written = total;
	return 0;
}

const struct route *
route_for(const struct deliver_conf *c, const char *domain)
{
	const char	*d;
	size_t		 i;

	for (i = 0; i < c->nroutes; i++)
		if (strcasecmp(c->routes[i].domain, domain) == 0)
			return &c->routes[i];
	for (d = strchr(domain, '.'); d != NULL; d = strchr(d + 1, '.'))
		for (i = 0; i < c->nroutes; i++)
			if (strcasecmp(c->routes[i].domain, d) == 0)
				return &c->routes[i];
	for (i = 0; i < c->nroutes; i++)
		if (c->routes[i].domain[0] == '\0')
			return &c->routes[i];
	return NULL;
}

void
deliver_worker_init(struct event_base *base, const char *helo)
{
	forward_init(base, helo);
	qmailqueue_init(base);
	/* Maildir fsyncs run off the loop; two threads keep one slow disk
	 * from holding every message of this worker. */
	if (tpool_start(base, 2) == -1)
		log_msg(LVL_WARN, 0, "event=tpool_failed (Maildir writes run "
		    "on the loop)");
}

void
deliver_worker_fini(void)
{
	tpool_stop();
	forward_fini();
}

static const struct deliver_conf *
conf_of(const struct policy *p)
{
	return p->delivery;
}

void
deliver_rcpt(struct session *s, struct rcpt *r)
{
	const struct deliver_conf *c = conf_of(r->policy);

	switch (c->m) {
	case DM_MAILDIR:
		session_queued(s->id, maildir_rcpt(s, c, r));
		return;
	case DM_SMTP:
	case DM_LMTP:
		forward_rcpt(s, c, r);
		return;
	case DM_QMAILQUEUE:
		session_queued(s->id, VERDICT(V_CONTINUE));
		return;
	}
}

void
deliver_data(struct session *s)
{
	const struct deliver_conf *c = conf_of(s->txn->policy);

	switch (c->m) {
	case DM_MAILDIR:
		maildir_deliver(s, c);
		return;
	case DM_SMTP:
	case DM_LMTP:
		forward_data(s, c);
		return;
	case DM_QMAILQUEUE:
		qmailqueue_data(s, c);
		return;
	}
}

static uint64_t	deliver_gen;	/* per worker: the loop thread only */

void
deliver_step_attach(struct session *s, struct backend *st,
    void (*cancel)(struct backend *))
{
	st->sid = s->id;
	st->cancel = cancel;
	s->txn->backend = st;
}

struct deliver_token
deliver_step_next(struct backend *st)
{
	struct deliver_token tok;

	st->gen = ++deliver_gen;
	tok.sid = st->sid;
	tok.gen = st->gen;
	return tok;
}

bool
deliver_step_done(struct deliver_token tok, struct verdict v, bool last)
{
	struct session *s = session_find(tok.sid);

	if (s == NULL || s->txn == NULL || s->txn->backend == NULL ||
	    s->txn->backend->gen != tok.gen) {
		log_msg(LVL_DEBUG, tok.sid, "event=stale_completion gen=%llu",
		    (unsigned long long)tok.gen);
		return false;
	}
	if (last)
		s->txn->backend = NULL;
	session_queued(s->id, v);
	return true;
}

/* queue_abort: the transaction ends (RSET, a new MAIL, QUIT, the client
 * gone) with a step still in flight: cancel it. */
void
deliver_abort(struct session *s)
{
	struct backend *st = s->txn->backend;

	if (st == NULL)
		return;
	s->txn->backend = NULL;
	st->cancel(st);
}
