/*
 * forward.c: SMTP and LMTP forwarding to a backend, during the client's
 * transaction (ARCHITECTURE §4).
 *
 * At the first accepted recipient the backend connection is taken from
 * the worker's pool (or opened) and sent MAIL; every recipient is then
 * asked of the backend before the client hears 250, so the backend's 5xx
 * reaches the client at RCPT and nothing is accepted to be bounced later.
 * At end of data the message goes to the backend and the client gets 250
 * only after the backend's 250. A backend that is down, silent or answers
 * 4xx makes it 4xx.
 *
 * LMTP (RFC 2033 §4.2) answers the message once per recipient, and the
 * client can hear one reply only: with two recipients, one delivered and
 * one deferred, any single answer either loses mail or makes the client
 * deliver the first one again. So a transaction toward an LMTP route
 * carries one recipient the backend took; later ones get 452 4.5.3 and
 * come back in a transaction of their own (RFC 5321 §3.3 lets them).
 *
 * The transaction's struct fwd is its delivery step (deliver.h): each
 * round trip (RCPT, the message) takes a new token, every completion goes
 * through deliver_step_done(), and fwd_cancel() ends the backend side
 * when the transaction ends early: an idle link gets RSET and may be
 * reused, one with anything in flight is closed at once.
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

struct fwd {
	struct backend		 step;		/* first: txn->backend */
	struct client		*c;
	const struct route	*route;
	const struct deliver_conf *conf;
	struct deliver_token	 tok;		/* the round trip in flight */
	bool			 lmtp;
	bool			 reused;	/* came from the pool */
	bool			 mail_sent;
	int			 mail_code;	/* 0 while unknown */
	char			 mail_text[LIMIT_REPLY_LINE + 1];
	char			 rcpt_line[LIMIT_LOCAL_PART + LIMIT_DOMAIN + 16];
	int			 nok;		/* recipients the backend took */
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

static void	backend_start(struct fwd *, struct session *);

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
backend_text(struct fwd *b, const char *text)
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
backend_verdict(struct fwd *b, int code, const char *text)
{
	if (code == 0) {
		log_msg(LVL_WARN, b->step.sid, "event=backend_error host=%s "
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

/* Ends a detached step: a clean connection goes back to the pool. */
static void
backend_release(struct fwd *b, bool clean)
{
	if (b->c != NULL) {
		client_forget(b->c, b);
		if (clean)
			pool_put(b->c, b->route, b->lmtp, b->conf);
		else
			drop(b->c);
	}
	free(b);
}

/* The step's last completion: detached from the transaction (the reply
 * may end it) before the session hears v, freed after (v's text lives
 * in b until the reply is written). */
static void
backend_finish(struct fwd *b, struct verdict v, bool clean)
{
	deliver_step_done(b->tok, v, true);
	backend_release(b, clean);
}

/* The RSET of an aborted transaction came back: a clean link is pooled
 * (the wait is already unlinked, so the client is idle now). */
static void
rset_done(void *arg, int code, const char *text)
{
	struct fwd *b = arg;

	(void)text;
	if (code == 250)
		pool_put(b->c, b->route, b->lmtp, b->conf);
	else
		drop(b->c);
	free(b);
}

/*
 * The transaction ended with this step attached (RSET, QUIT, a new MAIL,
 * the client gone mid-RCPT or mid-message). An idle link between round
 * trips gets RSET and may serve again; a link with a round trip in
 * flight is closed at once: its pending reply would belong to nobody,
 * and a backend holding a half-sent message must not deliver it.
 */
static void
fwd_cancel(struct backend *st)
{
	struct fwd *b = (struct fwd *)st;

	if (b->c == NULL) {
		free(b);
		return;
	}
	client_forget(b->c, b);
	if (b->want == 0 && client_idle(b->c) &&
	    client_cmd(b->c, "RSET", rset_done, b) == 0)
		return;
	log_msg(LVL_INFO, b->step.sid, "event=backend_abort host=%s",
	    b->route->host);
	client_abort(b->c);
	drop(b->c);
	free(b);
}

static void
rcpt_cb(void *arg, int code, const char *text)
{
	struct fwd	*b = arg;

	if (b->mail_code / 100 != 2) {
		/* MAIL failed: this recipient gets MAIL's answer, and the
		 * next one starts over. */
		backend_finish(b, backend_verdict(b, b->mail_code,
		    b->mail_text), b->mail_code != 0);
		return;
	}
	if (code / 100 == 2)
		b->nok++;
	/* The reply may end the session and cancel b: b is not touched
	 * after this. */
	deliver_step_done(b->tok, backend_verdict(b, code, text), false);
}

static void
mail_cb(void *arg, int code, const char *text)
{
	struct fwd	*b = arg;
	struct session	*s;

	if (code == 0 && b->reused &&
	    (s = session_find(b->step.sid)) != NULL) {
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
backend_send(struct fwd *b, struct session *s)
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
		if (client_cmd(b->c, line, mail_cb, b) == -1) {
			backend_finish(b, backend_verdict(b, 0,
			    "backend lost"), false);
			return;
		}
	}
	if (client_cmd(b->c, b->rcpt_line, rcpt_cb, b) == -1)
		backend_finish(b, backend_verdict(b, 0, "backend lost"),
		    false);
}

static void
ready_cb(void *arg, int code, const char *text)
{
	struct fwd	*b = arg;
	struct session	*s = session_find(b->step.sid);

	if (code == 250 && s != NULL) {
		backend_send(b, s);
		return;
	}
	backend_finish(b, backend_verdict(b, 0, text), false);
}

static void
backend_start(struct fwd *b, struct session *s)
{
	struct client_opts o = {
		.helo = fw_helo, .lmtp = b->lmtp,
		.tls = b->conf->starttls ? fw_tls : NULL,
		.timeout = b->conf->timeout,
		.timeout_data_end = b->conf->timeout_data_end,
	};

	if ((b->c = pool_get(b->route, b->lmtp)) != NULL) {
		b->reused = true;
		backend_send(b, s);
		return;
	}
	b->c = client_new(fw_base, (const struct sockaddr *)&b->route->sa,
	    b->route->salen, &o, ready_cb, b);
	if (b->c == NULL)
		backend_finish(b, backend_verdict(b, 0, "cannot connect"),
		    false);
}

void
forward_rcpt(struct session *s, const struct deliver_conf *c, struct rcpt *r)
{
	struct fwd		*b = (struct fwd *)s->txn->backend;
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
	if (b != NULL && b->lmtp && b->nok > 0) {
		/* One reply per recipient after the message: see above. */
		session_queued(s->id, verdict_make(V_DEFER, 452, "4.5.3",
		    "One recipient per transaction here: send it in a new "
		    "transaction"));
		return;
	}
	if (b == NULL) {
		if ((b = calloc(1, sizeof(*b))) == NULL) {
			session_queued(s->id, verdict_make(V_DEFER, 451,
			    "4.3.0", "Out of memory"));
			return;
		}
		b->route = route;
		b->conf = c;
		b->lmtp = c->m == DM_LMTP;
		deliver_step_attach(s, &b->step, fwd_cancel);
		snprintf(b->rcpt_line, sizeof(b->rcpt_line), "RCPT TO:<%s>",
		    r->addr);
		b->tok = deliver_step_next(&b->step);
		backend_start(b, s);
		return;
	}
	snprintf(b->rcpt_line, sizeof(b->rcpt_line), "RCPT TO:<%s>", r->addr);
	b->tok = deliver_step_next(&b->step);
	backend_send(b, s);
}

/* At the backend's 354: the message, if this step's transaction still
 * has it (looked up by token, never kept as a pointer). */
static int
data_body(void *arg, const char **msg, size_t *len)
{
	struct fwd	*b = arg;
	struct session	*s = session_find(b->tok.sid);

	if (s == NULL || s->txn == NULL || s->txn->backend != &b->step ||
	    b->step.gen != b->tok.gen)
		return -1;
	*msg = s->txn->msg.data;
	*len = s->txn->msg.len;
	return 0;
}

static void
data_cb(void *arg, int code, const char *text)
{
	struct fwd	*b = arg;
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
	if (b->n4 > 0 || (b->n5 > 0 && b->n2 > 0)) {
		/* Only with several LMTP recipients, which forward_rcpt no
		 * longer lets happen; kept as the safe answer. */
		v = last == 0 ? backend_verdict(b, 0, text) :
		    verdict_make(V_DEFER, 451, "4.3.0", b->n2 > 0 ?
		    "Not delivered to every recipient, try again later" :
		    b->text);
		if (b->n2 > 0)
			log_msg(LVL_WARN, b->step.sid, "event=partial_delivery "
			    "delivered=%d failed=%d", b->n2, b->n4 + b->n5);
	} else if (b->n5 > 0)
		v = verdict_make(V_DENY, last, b->esc[0] ? b->esc : "5.0.0",
		    b->text);
	else
		v = VERDICT(V_CONTINUE);
	backend_finish(b, v, last != 0);
}

void
forward_data(struct session *s, const struct deliver_conf *c)
{
	struct fwd	*b = (struct fwd *)s->txn->backend;

	(void)c;
	if (b == NULL || b->c == NULL || b->nok == 0) {
		session_queued(s->id, verdict_make(V_DEFER, 451, "4.4.1",
		    "Backend unavailable, try again later"));
		return;
	}
	/* RFC 2033 §4.2: one reply per recipient the backend took. */
	b->want = b->lmtp ? b->nok : 1;
	b->tok = deliver_step_next(&b->step);
	if (client_data(b->c, data_body, b->want, data_cb, b) == -1)
		backend_finish(b, backend_verdict(b, 0, "backend lost"),
		    false);
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
