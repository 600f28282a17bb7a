/*
 * forward.c: SMTP and LMTP forwarding to a backend, during the client's
 * transaction (ARCHITECTURE §4).
 *
 * At the first accepted recipient the backend connection is taken from
 * the worker's pool (or opened) and sent MAIL; every recipient is then
 * asked of the backend before the client hears 250, so the backend's 5xx
 * reaches the client at RCPT and nothing is accepted to be bounced later.
 * At end of data the message goes to the backend and the client gets 250
 * only after the backend's 250 (LMTP, RFC 2033: every recipient's). A
 * backend that is down, silent or answers 4xx makes it 4xx.
 *
 * Clients are never freed inside their own callbacks: drop() defers it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "../core/log.h"
#include "../filters/policy.h"
#include "../smtp/client.h"
#include "../smtp/tls.h"
#include "deliver.h"

struct backend {
	struct client		*c;
	const struct route	*route;
	const struct deliver_conf *conf;
	uint64_t		 sid;
	bool			 lmtp;
	bool			 reused;	/* came from the pool */
	bool			 mail_sent;
	int			 mail_code;	/* 0 while unknown */
	char			 mail_text[LIMIT_REPLY_LINE + 1];
	char			 rcpt_line[LIMIT_LOCAL_PART + LIMIT_DOMAIN + 16];
	int			 want, got, n2, n4, n5;
	char			 text[LIMIT_REPLY_LINE + 1];
	char			 esc[16];
};

struct pooled {
	struct client		*c;
	const struct route	*route;
	bool			 lmtp;
	struct event		*timer;
	struct pooled		*next, *prev;
};

static struct event_base	*fw_base;
static struct ssl_ctx_st	*fw_tls;
static char			 fw_helo[LIMIT_DOMAIN + 1];
static struct pooled		*pool;
static size_t			 pool_n;

static void	backend_start(struct backend *, struct session *);

static void
free_later_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	client_free(arg);
}

/* Frees a client from outside its callbacks. */
static void
drop(struct client *c)
{
	struct timeval now = { 0, 0 };

	client_on_close(c, NULL, NULL);
	event_base_once(fw_base, -1, EV_TIMEOUT, free_later_cb, c, &now);
}

static bool
same_route(const struct route *a, const struct route *b)
{
	return a->salen == b->salen && memcmp(&a->sa, &b->sa, a->salen) == 0;
}

static void
pool_unlink(struct pooled *p)
{
	if (p->prev != NULL)
		p->prev->next = p->next;
	else
		pool = p->next;
	if (p->next != NULL)
		p->next->prev = p->prev;
	event_free(p->timer);
	pool_n--;
}

static void
pool_closed(void *arg)
{
	struct pooled *p = arg;

	pool_unlink(p);
	drop(p->c);
	free(p);
}

static void
pool_expire(evutil_socket_t fd, short what, void *arg)
{
	struct pooled *p = arg;

	(void)fd;
	(void)what;
	pool_unlink(p);
	client_on_close(p->c, NULL, NULL);
	client_free(p->c);
	free(p);
}

/* Keeps an idle, ready connection for the next transaction. */
static void
pool_put(struct client *c, const struct route *r, bool lmtp,
    const struct deliver_conf *conf)
{
	struct pooled	*p;
	struct timeval	 tv = { (time_t)conf->pool_idle, 0 };
	size_t		 same = 0;

	for (p = pool; p != NULL; p = p->next)
		if (same_route(p->route, r))
			same++;
	if (!client_idle(c) || conf->pool_idle == 0 ||
	    same >= (size_t)conf->pool_max ||
	    (p = calloc(1, sizeof(*p))) == NULL) {
		drop(c);
		return;
	}
	p->c = c;
	p->route = r;
	p->lmtp = lmtp;
	if ((p->timer = evtimer_new(fw_base, pool_expire, p)) == NULL) {
		free(p);
		drop(c);
		return;
	}
	evtimer_add(p->timer, &tv);
	client_on_close(c, pool_closed, p);
	p->next = pool;
	if (pool != NULL)
		pool->prev = p;
	p->prev = NULL;
	pool = p;
	pool_n++;
}

static struct client *
pool_get(const struct route *r, bool lmtp)
{
	struct pooled	*p;
	struct client	*c;

	for (p = pool; p != NULL; p = p->next) {
		if (!same_route(p->route, r) || p->lmtp != lmtp ||
		    !client_idle(p->c))
			continue;
		c = p->c;
		pool_unlink(p);
		client_on_close(c, NULL, NULL);
		free(p);
		return c;
	}
	return NULL;
}

/* Splits "5.1.1 text" into enhanced code and text. */
static void
backend_text(struct backend *b, const char *text)
{
	size_t n = strspn(text, "0123456789.");

	b->esc[0] = '\0';
	if (n >= 5 && n < sizeof(b->esc) && text[1] == '.' &&
	    (text[n] == ' ' || text[n] == '\0')) {
		snprintf(b->esc, sizeof(b->esc), "%.*s", (int)n, text);
		text += n;
		while (*text == ' ')
			text++;
	}
	snprintf(b->text, sizeof(b->text), "%s", text);
}

/* The client's reply for a backend reply (or for none: code 0). */
static struct verdict
backend_verdict(struct backend *b, int code, const char *text)
{
	if (code == 0) {
		log_msg(LVL_WARN, b->sid, "event=backend_error host=%s "
		    "why=\"%s\"", b->route->host, text);
		return verdict_make(V_DEFER, 451, "4.4.1",
		    "Backend unavailable, try again later");
	}
	backend_text(b, text);
	if (code / 100 == 2)
		return VERDICT(V_CONTINUE);
	return verdict_make(code / 100 == 5 ? V_DENY : V_DEFER,
	    code / 100 == 5 || code / 100 == 4 ? code : 451,
	    b->esc[0] ? b->esc : code / 100 == 5 ? "5.0.0" : "4.0.0",
	    b->text);
}

/* Ends the backend side: a clean connection goes back to the pool. */
static void
backend_release(struct session *s, struct backend *b, bool clean)
{
	if (s != NULL && s->txn != NULL && s->txn->backend == b)
		s->txn->backend = NULL;
	if (b->c != NULL) {
		client_forget(b->c, b);
		if (clean)
			pool_put(b->c, b->route, b->lmtp, b->conf);
		else
			drop(b->c);
	}
	free(b);
}

/* The RSET of an aborted transaction came back: a clean link is pooled
 * (the wait is already unlinked, so the client is idle now). */
static void
rset_done(void *arg, int code, const char *text)
{
	struct backend *b = arg;

	(void)text;
	if (code == 250)
		pool_put(b->c, b->route, b->lmtp, b->conf);
	else
		drop(b->c);
	free(b);
}

static void
rcpt_cb(void *arg, int code, const char *text)
{
	struct backend	*b = arg;
	struct session	*s = session_find(b->sid);
	struct verdict	 v;

	if (b->mail_code / 100 != 2) {
		/* MAIL failed: this recipient gets MAIL's answer, and the
		 * next one starts over. The verdict's text lives in b, so
		 * b goes only after the reply. */
		v = backend_verdict(b, b->mail_code, b->mail_text);
		if (s != NULL && s->txn != NULL && s->txn->backend == b)
			s->txn->backend = NULL;
		if (s != NULL)
			session_queued(s->id, v);
		backend_release(NULL, b, b->mail_code != 0);
		return;
	}
	v = backend_verdict(b, code, text);
	if (s != NULL)
		session_queued(s->id, v);
}

static void
mail_cb(void *arg, int code, const char *text)
{
	struct backend	*b = arg;
	struct session	*s;

	if (code == 0 && b->reused && (s = session_find(b->sid)) != NULL) {
		/* A pooled link that died while idle: once more, fresh. */
		client_forget(b->c, b);
		drop(b->c);
		b->c = NULL;
		b->reused = false;
		b->mail_sent = false;
		backend_start(b, s);
		return;
	}
	b->mail_code = code;
	snprintf(b->mail_text, sizeof(b->mail_text), "%s", text);
}

/* MAIL (once) and this recipient's RCPT, pipelined when offered. */
static void
backend_send(struct backend *b, struct session *s)
{
	const struct path	*f = &s->txn->from;
	char			 line[LIMIT_COMMAND_LINE_EXT];
	int			 n;

	if (!b->mail_sent) {
		/* RFC 6531 §3.4: an SMTPUTF8 transaction is not downgraded. */
		if (s->txn->params.smtputf8 && !client_has(b->c, "SMTPUTF8")) {
			b->mail_code = 553;
			snprintf(b->mail_text, sizeof(b->mail_text), "5.6.7 "
			    "The next hop does not support SMTPUTF8");
			rcpt_cb(b, 0, "");
			return;
		}
		n = snprintf(line, sizeof(line), "MAIL FROM:<%s%s%s>",
		    f->local, f->null ? "" : "@", f->domain);
		if (s->txn->params.body == BODY_8BITMIME &&
		    client_has(b->c, "8BITMIME"))
			n += snprintf(line + n, sizeof(line) - (size_t)n,
			    " BODY=8BITMIME");
		if (s->txn->params.smtputf8 && client_has(b->c, "SMTPUTF8"))
			n += snprintf(line + n, sizeof(line) - (size_t)n,
			    " SMTPUTF8");
		if (s->txn->params.size > 0 && client_has(b->c, "SIZE"))
			snprintf(line + n, sizeof(line) - (size_t)n,
			    " SIZE=%lld", s->txn->params.size);
		b->mail_sent = true;
		client_cmd(b->c, line, mail_cb, b);
	}
	client_cmd(b->c, b->rcpt_line, rcpt_cb, b);
}

static void
ready_cb(void *arg, int code, const char *text)
{
	struct backend	*b = arg;
	struct session	*s = session_find(b->sid);

	if (code == 250 && s != NULL) {
		backend_send(b, s);
		return;
	}
	if (s != NULL && s->txn != NULL && s->txn->backend == b)
		s->txn->backend = NULL;
	if (s != NULL)
		session_queued(s->id, backend_verdict(b, 0, text));
	backend_release(NULL, b, false);
}

static void
backend_start(struct backend *b, struct session *s)
{
	struct client_opts o = {
		.helo = fw_helo, .lmtp = b->lmtp,
		.tls = b->conf->starttls ? fw_tls : NULL,
		.timeout = b->conf->timeout,
	};

	if ((b->c = pool_get(b->route, b->lmtp)) != NULL) {
		b->reused = true;
		backend_send(b, s);
		return;
	}
	b->c = client_new(fw_base, (const struct sockaddr *)&b->route->sa,
	    b->route->salen, &o, ready_cb, b);
	if (b->c == NULL) {
		session_queued(s->id, backend_verdict(b, 0, "cannot connect"));
		backend_release(s, b, false);
	}
}

void
forward_rcpt(struct session *s, const struct deliver_conf *c, struct rcpt *r)
{
	struct backend		*b = s->txn->backend;
	const struct route	*route;

	route = route_for(c, r->path.domain[0] ? r->path.domain :
	    s->conf->hostname);
	if (route == NULL) {
		session_queued(s->id, verdict_make(V_DEFER, 451, "4.3.0",
		    "No route to this domain"));
		return;
	}
	if (b != NULL && !same_route(b->route, route)) {
		session_queued(s->id, verdict_make(V_DEFER, 452, "4.5.3",
		    "Recipient of another route: send it in a new "
		    "transaction"));
		return;
	}
	if (b == NULL) {
		if ((b = calloc(1, sizeof(*b))) == NULL) {
			session_queued(s->id, verdict_make(V_DEFER, 451,
			    "4.3.0", "Out of memory"));
			return;
		}
		b->sid = s->id;
		b->route = route;
		b->conf = c;
		b->lmtp = c->m == DM_LMTP;
		s->txn->backend = b;
		snprintf(b->rcpt_line, sizeof(b->rcpt_line), "RCPT TO:<%s>",
		    r->addr);
		backend_start(b, s);
		return;
	}
	snprintf(b->rcpt_line, sizeof(b->rcpt_line), "RCPT TO:<%s>", r->addr);
	backend_send(b, s);
}

static void
data_cb(void *arg, int code, const char *text)
{
	struct backend	*b = arg;
	struct session	*s;
	struct verdict	 v;
	int		 last = code;

	b->got++;
	if (code / 100 == 2)
		b->n2++;
	else if (code / 100 == 5)
		b->n5++;
	else
		b->n4++;
	if (code / 100 != 2)
		backend_text(b, text);
	if (b->got < b->want)
		return;
	s = session_find(b->sid);
	if (b->n4 > 0 || (b->n5 > 0 && b->n2 > 0)) {
		/*
		 * Some recipient was not delivered and the client can only
		 * hear one reply: 4xx, so it retries. Recipients the
		 * backend already took may see the message twice; none
		 * loses it (LMTP per-recipient replies, RFC 2033 §4.2).
		 */
		v = last == 0 ? backend_verdict(b, 0, text) :
		    verdict_make(V_DEFER, 451, "4.3.0", b->n2 > 0 ?
		    "Not delivered to every recipient, try again later" :
		    b->text);
		if (b->n2 > 0)
			log_msg(LVL_WARN, b->sid, "event=partial_delivery "
			    "delivered=%d failed=%d", b->n2, b->n4 + b->n5);
	} else if (b->n5 > 0)
		v = verdict_make(V_DENY, last, b->esc[0] ? b->esc : "5.0.0",
		    b->text);
	else
		v = VERDICT(V_CONTINUE);
	/* Detached first: the reply ends the transaction, which must not
	 * abort this backend; the text lives in b until the reply is out. */
	if (s != NULL && s->txn != NULL && s->txn->backend == b)
		s->txn->backend = NULL;
	if (s != NULL)
		session_queued(s->id, v);
	backend_release(NULL, b, last != 0);
}

void
forward_data(struct session *s, const struct deliver_conf *c)
{
	struct backend	*b = s->txn->backend;
	struct txn	*t = s->txn;

	(void)c;
	if (b == NULL || b->c == NULL) {
		session_queued(s->id, verdict_make(V_DEFER, 451, "4.4.1",
		    "Backend unavailable, try again later"));
		return;
	}
	b->want = b->lmtp ? (int)(t->naccepted - t->nconsumed) : 1;
	if (client_data(b->c, t->msg.data, t->msg.len, b->want, data_cb,
	    b) == -1) {
		session_queued(s->id, backend_verdict(b, 0, "backend lost"));
		backend_release(s, b, false);
	}
}

void
forward_abort(struct session *s)
{
	struct backend *b = s->txn->backend;

	if (b == NULL)
		return;
	s->txn->backend = NULL;
	if (b->c == NULL) {
		free(b);
		return;
	}
	client_forget(b->c, b);
	/* Before DATA the link can be reset and reused; rset_done() pools
	 * it (or drops it) and frees b. Mid-message it cannot. */
	if (b->want == 0 && client_cmd(b->c, "RSET", rset_done, b) == 0)
		return;
	drop(b->c);
	free(b);
}

void
forward_init(struct event_base *base, const char *helo)
{
	fw_base = base;
	snprintf(fw_helo, sizeof(fw_helo), "%s", helo);
	if (fw_tls == NULL)
		fw_tls = tls_client_ctx();
}

void
forward_fini(void)
{
	while (pool != NULL) {
		struct pooled *p = pool;

		pool_unlink(p);
		client_on_close(p->c, NULL, NULL);
		client_free(p->c);
		free(p);
	}
}
