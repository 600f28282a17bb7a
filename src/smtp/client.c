/*
 * client.c: asynchronous SMTP/LMTP client (see client.h).
 *
 * Expectations: each command queued adds one entry to a FIFO of waiting
 * callbacks; each complete reply (multi-line replies joined, RFC 5321
 * §4.2.1) pops one. DATA is two steps: the 354, then the message and the
 * final replies. Only after a 354 do we send message bytes, so a backend
 * that refuses DATA never sees the message; the bytes are asked of the
 * owner at that moment (client_body_fn), never kept as a pointer across
 * loop passes: the transaction they belong to may be gone by then.
 *
 * Cancelling (client_abort) only marks the client dead and clears every
 * callback: waits are freed by client_free, so a callback may cancel the
 * client it is called from.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/ssl.h>

#include "../core/limits.h"
#include "client.h"

enum cstate { C_CONNECT, C_GREET, C_EHLO, C_TLS, C_EHLO2, C_READY, C_DEAD };

enum wkind { W_CMD, W_DATA354, W_FINAL };

struct wait {
	enum wkind	 kind;
	client_cb	 cb;
	void		*arg;
	const char	*msg;		/* W_CMD: the line, until sent */
	client_body_fn	 body;		/* W_DATA354: the message, at 354 */
	int		 nfinal;	/* W_DATA354: finals to expect */
	struct wait	*next;
};

struct client {
	struct event_base	*base;
	struct bufferevent	*bev;
	struct client_opts	 o;
	enum cstate		 state;
	client_cb		 ready;
	void			*ready_arg;
	struct wait		*head, *tail;
	struct wait		*unsent;	/* first not yet written */
	unsigned		 inflight;
	char			 caps[512];	/* " PIPELINING STARTTLS ..." */
	char			 text[LIMIT_REPLY_LINE + 1];
	bool			 tls;
	bool			 in_data;	/* DATA sent, finals pending */
	void			(*on_close)(void *);
	void			*close_arg;
	/* Clear-text link: what a loop pass queued is written by wev's
	 * callback in one go, without libevent's write event (see
	 * session_flush() for why); after STARTTLS the TLS filter writes. */
	bool			 direct;
	struct event		*wev;
};

static void	client_flush(struct client *);
static void	client_wire(struct client *);

bool
client_has(const struct client *c, const char *cap)
{
	char	 key[64];

	snprintf(key, sizeof(key), " %s ", cap);
	return strcasestr(c->caps, key) != NULL;
}

bool
client_tls(const struct client *c)
{
	return c->tls;
}

bool
client_idle(const struct client *c)
{
	return c->state == C_READY && c->head == NULL;
}

static void
fail_all(struct client *c, const char *why)
{
	struct wait	*w;
	client_cb	 ready = c->ready;

	c->state = C_DEAD;
	c->ready = NULL;
	if (ready != NULL)
		ready(c->ready_arg, 0, why);
	while ((w = c->head) != NULL) {
		int n = w->kind == W_CMD ? 1 : w->nfinal;

		c->head = w->next;
		/* Every expected reply gets its callback, failed. */
		while (n-- > 0 && w->cb != NULL)
			w->cb(w->arg, 0, why);
		if (w->kind == W_CMD)
			free((char *)w->msg);
		free(w);
	}
	c->tail = c->unsent = NULL;
	if (c->on_close != NULL)
		c->on_close(c->close_arg);
}

/* Writes the queued output once this loop pass is over. */
static void
client_kick(struct client *c)
{
	if (c->direct)
		event_active(c->wev, EV_WRITE, 1);
}

static void
direct_cb(evutil_socket_t fd, short what, void *arg)
{
	struct client	*c = arg;
	struct evbuffer	*out = bufferevent_get_output(c->bev);

	(void)fd;
	(void)what;
	if (!c->direct)
		return;
	/* The socket bufferevent keeps its output's start frozen. */
	evbuffer_unfreeze(out, 1);
	while (evbuffer_get_length(out) > 0)
		if (evbuffer_write(out, bufferevent_getfd(c->bev)) <= 0)
			break;
	evbuffer_freeze(out, 1);
	/* Short write or error: libevent writes the rest or reports it. */
	if (evbuffer_get_length(out) > 0)
		bufferevent_enable(c->bev, EV_WRITE);
}

/* Read timeout for the next reply: the general one, or the DATA
 * termination one while the message's final replies are awaited. */
static void
client_timeout(struct client *c, long long secs)
{
	struct timeval tv = { (time_t)secs, 0 };
	struct timeval wr = { (time_t)c->o.timeout, 0 };

	bufferevent_set_timeouts(c->bev, &tv, &wr);
}

static void
send_line(struct client *c, const char *line)
{
	evbuffer_add_printf(bufferevent_get_output(c->bev), "%s\r\n", line);
	client_kick(c);
}

static void
ehlo(struct client *c)
{
	char line[LIMIT_COMMAND_LINE];

	snprintf(line, sizeof(line), "%s %s", c->o.lmtp ? "LHLO" : "EHLO",
	    c->o.helo);
	c->caps[0] = ' ';
	c->caps[1] = '\0';
	send_line(c, line);
}

/* Writes the message dot-stuffed (RFC 5321 §4.5.2) and the final dot. */
static void
send_message(struct client *c, const char *m, size_t len)
{
	struct evbuffer	*out = bufferevent_get_output(c->bev);
	size_t		 i = 0, start = 0;

	/* The message is CRLF-clean (the reader refuses anything else):
	 * only a '.' at the start of a line needs doubling. */
	if (len > 0 && m[0] == '.')
		evbuffer_add(out, ".", 1);
	while (i + 2 < len) {
		const char *p = memchr(m + i, '\n', len - i - 1);

		if (p == NULL)
			break;
		i = (size_t)(p - m) + 1;
		if (m[i] == '.') {
			evbuffer_add(out, m + start, i - start);
			evbuffer_add(out, ".", 1);
			start = i;
		}
	}
	evbuffer_add(out, m + start, len - start);
	if (len < 2 || m[len - 2] != '\r' || m[len - 1] != '\n')
		evbuffer_add(out, "\r\n", 2);
	evbuffer_add(out, ".\r\n", 3);
	client_kick(c);
}

/* A whole reply: drive the handshake or pop a waiting callback. */
static void
on_reply(struct client *c, int code)
{
	struct wait	*w;
	client_cb	 ready, cb;
	void		*arg;

	switch (c->state) {
	case C_GREET:
		if (code != 220)
			goto refuse;
		c->state = C_EHLO;
		ehlo(c);
		return;
	case C_EHLO:
	case C_EHLO2:
		if (code != 250)
			goto refuse;
		if (c->state == C_EHLO && c->o.tls != NULL &&
		    client_has(c, "STARTTLS")) {
			c->state = C_TLS;
			send_line(c, "STARTTLS");
			return;
		}
		c->state = C_READY;
		ready = c->ready;
		c->ready = NULL;
		if (ready != NULL)
			ready(c->ready_arg, 250, c->text);
		client_flush(c);
		return;
	case C_TLS:
		if (code != 220) {
			/* Offered but refused: carry on in clear text. */
			c->state = C_EHLO2;
			ehlo(c);
			return;
		}
		if (evbuffer_get_length(bufferevent_get_input(c->bev)) > 0) {
			/*
			 * Bytes after the 220 came in clear text: whoever sent
			 * them (a broken backend or someone on the path) must
			 * not have them read as if TLS protected them
			 * (CVE-2011-0411, RFC 3207 §4.2). The link is refused.
			 */
			fail_all(c, "clear text after the STARTTLS 220");
			return;
		}
		{
			SSL			*ssl = SSL_new(c->o.tls);
			struct bufferevent	*t;

			/* The filter writes through the socket's
			 * bufferevent: its write event must be on. */
			c->direct = false;
			bufferevent_enable(c->bev, EV_WRITE);
			t = ssl == NULL ? NULL : bufferevent_openssl_filter_new(
			    c->base, c->bev, ssl, BUFFEREVENT_SSL_CONNECTING,
			    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
			if (t == NULL) {
				SSL_free(ssl);
				fail_all(c, "TLS setup failed");
				return;
			}
			c->bev = t;
			c->tls = true;
			client_wire(c);
			c->state = C_EHLO2;
			ehlo(c);
		}
		return;
	case C_READY:
		break;
	default:
		return;
	}
	if ((w = c->head) == NULL)
		return;		/* unsolicited: ignored */
	c->inflight--;
	if (w->kind == W_DATA354 && code == 354) {
		const char	*m;
		size_t		 len;

		/* The message goes now, if its owner still has it; the wait
		 * becomes its finals, under the DATA termination timeout. */
		if (w->body == NULL || w->body(w->arg, &m, &len) == -1) {
			fail_all(c, "message withdrawn after the 354");
			return;
		}
		send_message(c, m, len);
		w->kind = W_FINAL;
		c->inflight += (unsigned)w->nfinal;
		client_timeout(c, c->o.timeout_data_end);
		return;
	}
	if (w->kind == W_DATA354) {
		/* DATA refused: each expected reply is this one. */
		while (w->nfinal-- > 1 && w->cb != NULL)
			w->cb(w->arg, code, c->text);
	} else if (w->kind == W_FINAL && w->nfinal > 1) {
		w->nfinal--;
		if (w->cb != NULL)
			w->cb(w->arg, code, c->text);
		return;
	}
	/* The wait's last reply: unlink it first, so the callback sees the
	 * client as it is now (idle, when nothing else is queued). */
	if (w->kind != W_CMD) {
		c->in_data = false;
		client_timeout(c, c->o.timeout);
	}
	c->head = w->next;
	if (c->head == NULL)
		c->tail = NULL;
	cb = w->cb;
	arg = w->arg;
	free(w);
	if (cb != NULL)
		cb(arg, code, c->text);
	client_flush(c);
	return;
refuse:
	fail_all(c, c->text);
}

static void
read_cb(struct bufferevent *bev, void *arg)
{
	struct client	*c = arg;
	struct evbuffer	*in = bufferevent_get_input(bev);
	char		*line;
	size_t		 n;
	int		 code;
	bool		 more;

	if (c->state == C_DEAD)
		return;		/* aborted: nothing more is read */
	while (c->state != C_DEAD &&
	    (line = evbuffer_readln(in, &n, EVBUFFER_EOL_CRLF)) != NULL) {
		if (n < 3 || line[0] < '2' || line[0] > '5' ||
		    (n > 3 && line[3] != ' ' && line[3] != '-')) {
			free(line);
			fail_all(c, "malformed reply from backend");
			return;
		}
		code = (line[0] - '0') * 100 + (line[1] - '0') * 10 +
		    (line[2] - '0');
		if (c->state == C_EHLO || c->state == C_EHLO2) {
			size_t k = strlen(c->caps);

			if (n > 4 && k + n < sizeof(c->caps) - 2)
				snprintf(c->caps + k, sizeof(c->caps) - k,
				    "%.*s ", (int)strcspn(line + 4, " "),
				    line + 4);
		}
		snprintf(c->text, sizeof(c->text), "%s", n > 4 ? line + 4 :
		    "");
		more = n > 3 && line[3] == '-';
		free(line);
		if (!more)
			on_reply(c, code);
	}
	if (c->state != C_DEAD &&
	    evbuffer_get_length(in) > LIMIT_REPLY_LINE * LIMIT_REPLY_LINES)
		fail_all(c, "backend reply too long");
}

static void
event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct client *c = arg;

	(void)bev;
	if (c->state == C_DEAD)
		return;
	if (what & BEV_EVENT_CONNECTED) {
		c->state = c->state == C_CONNECT ? C_GREET : c->state;
		return;
	}
	if (what & BEV_EVENT_TIMEOUT)
		fail_all(c, "backend timed out");
	else if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		fail_all(c, "backend connection lost");
}

static void
write_cb(struct bufferevent *bev, void *arg)
{
	struct client *c = arg;

	/* Drained after a short write: direct writes again. */
	if (c->direct && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		bufferevent_disable(bev, EV_WRITE);
}

static void
client_wire(struct client *c)
{
	struct timeval tv = { (time_t)c->o.timeout, 0 };

	c->direct = !c->tls;
	bufferevent_setcb(c->bev, read_cb, write_cb, event_cb, c);
	bufferevent_set_timeouts(c->bev, &tv, &tv);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	/* Connecting still sees its write event (libevent adds it for the
	 * connect); afterwards it is off until a short write. */
	if (c->direct)
		bufferevent_disable(c->bev, EV_WRITE);
}

struct client *
client_new(struct event_base *base, const struct sockaddr *sa, socklen_t len,
    const struct client_opts *o, client_cb ready, void *arg)
{
	struct client *c;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	c->base = base;
	c->o = *o;
	c->ready = ready;
	c->ready_arg = arg;
	c->bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (c->bev == NULL) {
		free(c);
		return NULL;
	}
	if ((c->wev = event_new(base, -1, 0, direct_cb, c)) == NULL) {
		bufferevent_free(c->bev);
		free(c);
		return NULL;
	}
	client_wire(c);
	if (bufferevent_socket_connect(c->bev, sa, (int)len) == -1) {
		event_free(c->wev);
		bufferevent_free(c->bev);
		free(c);
		return NULL;
	}
	return c;
}

/* Writes queued commands: all at once with PIPELINING, else one. */
static void
client_flush(struct client *c)
{
	bool pipe = client_has(c, "PIPELINING");

	if (c->state != C_READY)
		return;
	while (c->unsent != NULL && !c->in_data &&
	    (pipe || c->inflight == 0)) {
		struct wait *w = c->unsent;

		c->unsent = w->next;
		c->inflight++;
		/* DATA waits for its 354 and ends a pipelined group. */
		if (w->kind == W_DATA354) {
			send_line(c, "DATA");
			c->in_data = true;
			break;
		}
		send_line(c, (const char *)w->msg);
		free((char *)w->msg);
		w->msg = NULL;
	}
}

static struct wait *
enqueue(struct client *c, enum wkind kind, client_cb cb, void *arg)
{
	struct wait *w;

	if (c->state == C_DEAD || (w = calloc(1, sizeof(*w))) == NULL)
		return NULL;
	w->kind = kind;
	w->cb = cb;
	w->arg = arg;
	if (c->tail != NULL)
		c->tail->next = w;
	else
		c->head = w;
	c->tail = w;
	if (c->unsent == NULL)
		c->unsent = w;
	return w;
}

int
client_cmd(struct client *c, const char *line, client_cb cb, void *arg)
{
	struct wait	*w;
	char		*copy;

	if ((copy = strdup(line)) == NULL)
		return -1;
	if ((w = enqueue(c, W_CMD, cb, arg)) == NULL) {
		free(copy);
		return -1;
	}
	w->msg = copy;
	client_flush(c);
	return 0;
}

int
client_data(struct client *c, client_body_fn body, int nreplies,
    client_cb cb, void *arg)
{
	struct wait *w;

	if ((w = enqueue(c, W_DATA354, cb, arg)) == NULL)
		return -1;
	w->body = body;
	w->nfinal = nreplies;
	client_flush(c);
	return 0;
}

void
client_forget(struct client *c, void *arg)
{
	struct wait *w;

	for (w = c->head; w != NULL; w = w->next)
		if (w->arg == arg) {
			w->cb = NULL;
			w->body = NULL;
		}
	if (c->ready_arg == arg)
		c->ready = NULL;
}

void
client_abort(struct client *c)
{
	struct wait *w;

	for (w = c->head; w != NULL; w = w->next) {
		w->cb = NULL;
		w->body = NULL;
	}
	c->ready = NULL;
	c->on_close = NULL;
	c->state = C_DEAD;
	c->direct = false;
	bufferevent_disable(c->bev, EV_READ | EV_WRITE);
}

void
client_on_close(struct client *c, void (*fn)(void *), void *arg)
{
	c->on_close = fn;
	c->close_arg = arg;
}

void
client_free(struct client *c)
{
	struct wait *w;

	if (c == NULL)
		return;
	while ((w = c->head) != NULL) {
		c->head = w->next;
		if (w->kind == W_CMD)
			free((char *)w->msg);
		free(w);
	}
	event_free(c->wev);
	bufferevent_free(c->bev);
	free(c);
}
