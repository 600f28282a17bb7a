/*
 * auth_dovecot.c: Dovecot's authentication protocol, client side (see
 * auth_dovecot.h), as Postfix's xsasl_dovecot speaks it:
 *
 *   C: VERSION 1 2 / CPID <pid>
 *   S: VERSION 1 x / MECH PLAIN plaintext / ... / DONE
 *   C: AUTH 1 PLAIN service=smtp nologin lip= rip= [secured]
 *      [no-penalty] resp=<b64>
 *   S: OK 1 user=<name> | FAIL 1 [temp] [reason=...] | CONT 1 <b64>
 *
 * (fields separated by TAB, lines by LF). The client's SASL exchange
 * has been decoded by us already, so Dovecot is always asked with PLAIN
 * and the whole response at once; a CONT is a protocol error here. The
 * AUTH line holds the password in base64: it is built only once
 * Dovecot's handshake is in, and wiped as it leaves.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "../core/log.h"
#include "auth.h"
#include "auth_dovecot.h"

struct auth_dovecot_req {
	struct bufferevent	*bev;
	struct step_token	 tok;
	auth_dovecot_cb		 cb;
	bool			 handshake_done;
	bool			 plain;		/* Dovecot offers PLAIN */
	/* The AUTH line, written once the handshake is in. */
	char			 line[1024];
	size_t			 linelen;
};

static void
req_free(struct auth_dovecot_req *r)
{
	if (r->bev != NULL)
		bufferevent_free(r->bev);
	explicit_bzero(r, sizeof(*r));
	free(r);
}

/* The request's one end: the callback, then nothing is left of it. */
static void
req_finish(struct auth_dovecot_req *r, int result, const char *user,
    const char *why)
{
	if (result == -1)
		log_msg(LVL_WARN, r->tok.sid, "event=auth_backend_error "
		    "backend=dovecot reason=%s", why);
	r->cb(r->tok, result, user);
	req_free(r);
}

/* The value of "key=" among a reply's TAB-separated fields, or NULL. */
static const char *
field(char *l, const char *key)
{
	size_t	 n = strlen(key);
	char	*p;

	for (p = l; p != NULL; p = strchr(p, '\t')) {
		if (*p == '\t')
			p++;
		if (strncmp(p, key, n) == 0 && (p[n] == '=' || p[n] == '\t' ||
		    p[n] == '\0'))
			return p[n] == '=' ? p + n + 1 : p + n;
	}
	return NULL;
}

/* Handshake lines up to DONE; -1 when Dovecot cannot serve us. */
static int
handshake_line(struct auth_dovecot_req *r, char *l)
{
	if (strncmp(l, "VERSION\t", 8) == 0)
		return strncmp(l + 8, "1\t", 2) == 0 ? 0 : -1;
	if (strncmp(l, "MECH\tPLAIN", 10) == 0 && (l[10] == '\t' ||
	    l[10] == '\0'))
		r->plain = true;
	if (strcmp(l, "DONE") != 0)
		return 0;	/* SPID, CUID, COOKIE, other MECHs */
	if (!r->plain)
		return -1;
	r->handshake_done = true;
	bufferevent_write(r->bev, r->line, r->linelen);
	explicit_bzero(r->line, sizeof(r->line));
	return 0;
}

/* The answer to our AUTH (id 1): 1, 0 or -1 as the callback's. */
static int
answer_line(char *l, const char **user)
{
	char *u, *tab;

	*user = NULL;
	if (strncmp(l, "OK\t1", 4) == 0 && (l[4] == '\t' || l[4] == '\0')) {
		if ((u = (char *)field(l + 4, "user")) != NULL) {
			if ((tab = strchr(u, '\t')) != NULL)
				*tab = '\0';
			*user = u;
		}
		return 1;
	}
	if (strncmp(l, "FAIL\t1", 6) == 0 && (l[6] == '\t' || l[6] == '\0'))
		return field(l + 6, "temp") != NULL ? -1 : 0;
	return -2;	/* not ours: ignored */
}

static void
read_cb(struct bufferevent *bev, void *arg)
{
	struct auth_dovecot_req	*r = arg;
	struct evbuffer		*in = bufferevent_get_input(bev);
	struct evbuffer_ptr	 eol;
	static char		 l[AUTH_DOVECOT_LINE_MAX + 1];
	const char		*user;
	size_t			 eol_len;
	int			 res;

	for (;;) {
		eol = evbuffer_search_eol(in, NULL, &eol_len,
		    EVBUFFER_EOL_LF);
		if (eol.pos == -1) {
			if (evbuffer_get_length(in) > AUTH_DOVECOT_LINE_MAX)
				req_finish(r, -1, NULL, "line_too_long");
			return;
		}
		if ((size_t)eol.pos > AUTH_DOVECOT_LINE_MAX) {
			req_finish(r, -1, NULL, "line_too_long");
			return;
		}
		evbuffer_remove(in, l, (size_t)eol.pos + eol_len);
		l[eol.pos] = '\0';
		if (!r->handshake_done) {
			if (handshake_line(r, l) == -1) {
				req_finish(r, -1, NULL, r->plain ?
				    "version" : "no_plain_mechanism");
				return;
			}
			continue;
		}
		if (strncmp(l, "CONT\t1\t", 7) == 0) {
			req_finish(r, -1, NULL, "unexpected_cont");
			return;
		}
		if ((res = answer_line(l, &user)) != -2) {
			req_finish(r, res, user, "temporary_failure");
			return;
		}
	}
}

static void
event_cb(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		req_finish(arg, -1, NULL, what & BEV_EVENT_EOF ? "closed" :
		    "connect_failed");
}

/* The AUTH line, with the password in base64 in resp=. */
static int
auth_line(struct auth_dovecot_req *r, const struct auth_dovecot_args *a)
{
	unsigned char	 plain[2 * AUTH_FIELD_MAX + 2];
	char		 b64[(sizeof(plain) + 2) / 3 * 4 + 1];
	size_t		 ul = strlen(a->user);
	int		 n;

	if (ul > AUTH_FIELD_MAX || a->passlen > AUTH_FIELD_MAX)
		return -1;
	/* RFC 4616: no authzid, the user, the password. */
	plain[0] = '\0';
	memcpy(plain + 1, a->user, ul);
	plain[1 + ul] = '\0';
	memcpy(plain + 2 + ul, a->pass, a->passlen);
	n = auth_b64_encode(plain, 2 + ul + a->passlen, b64, sizeof(b64));
	explicit_bzero(plain, sizeof(plain));
	if (n == 0)
		n = snprintf(r->line, sizeof(r->line), "AUTH\t1\tPLAIN\t"
		    "service=%s\tnologin\tlip=%s\trip=%s%s%s\tresp=%s\n",
		    a->service, a->lip, a->rip, a->secured ? "\tsecured" : "",
		    a->no_penalty ? "\tno-penalty" : "", b64);
	explicit_bzero(b64, sizeof(b64));
	if (n < 0 || (size_t)n >= sizeof(r->line))
		return -1;
	r->linelen = (size_t)n;
	return 0;
}

struct auth_dovecot_req *
auth_dovecot_start(struct event_base *base,
    const struct auth_dovecot_args *a, struct step_token tok,
    auth_dovecot_cb cb)
{
	struct auth_dovecot_req	*r;
	struct sockaddr_un	 sun;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(a->socket) >= sizeof(sun.sun_path) ||
	    (r = calloc(1, sizeof(*r))) == NULL)
		return NULL;
	memcpy(sun.sun_path, a->socket, strlen(a->socket));
	r->tok = tok;
	r->cb = cb;
	if (auth_line(r, a) == -1 || (r->bev = bufferevent_socket_new(base,
	    -1, BEV_OPT_CLOSE_ON_FREE)) == NULL) {
		req_free(r);
		return NULL;
	}
	bufferevent_setcb(r->bev, read_cb, NULL, event_cb, r);
	bufferevent_setwatermark(r->bev, EV_READ, 0,
	    AUTH_DOVECOT_LINE_MAX * 2);
	if (bufferevent_socket_connect(r->bev, (struct sockaddr *)&sun,
	    (int)sizeof(sun)) == -1) {
		log_msg(LVL_WARN, tok.sid, "event=auth_backend_error "
		    "backend=dovecot reason=connect errno=%d", errno);
		req_free(r);
		return NULL;
	}
	bufferevent_enable(r->bev, EV_READ | EV_WRITE);
	evbuffer_add_printf(bufferevent_get_output(r->bev),
	    "VERSION\t1\t2\nCPID\t%d\n", (int)getpid());
	return r;
}

void
auth_dovecot_cancel(struct auth_dovecot_req *r)
{
	if (r != NULL)
		req_free(r);
}
