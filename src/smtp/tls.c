/*
 * tls.c: STARTTLS for the server side and the backend client.
 *
 * After "220 Ready" has left, the session's socket moves from its plain
 * bufferevent to an OpenSSL bufferevent on the same descriptor, and the
 * plain one is freed. Only when the 220 could not all be written at once
 * (or on --stdio, whose descriptor is not ours to close) is the plain
 * bufferevent kept underneath an OpenSSL filter, so the 220 still leaves
 * first in clear text (RFC 3207 §4).
 *
 * Memory. An idle TLS session should cost little more than a plain one
 * (a worker may hold 10,000 of them). What it holds is OpenSSL's SSL
 * (about 8 KiB, most of it the SSL struct itself) and two cipher
 * contexts; the rest is given back:
 *  - SSL_MODE_RELEASE_BUFFERS: the 16 KiB record buffers (read and
 *    write) are freed whenever they are empty, which is always for an
 *    idle session; they come back for the next record.
 *  - The socket bufferevent, not a filter: a filter tries to read again
 *    each time the session drains its input, and every try reserves a
 *    16 KiB evbuffer chain that stays, empty, while the client is idle.
 *    It also keeps a second bufferevent and its buffers per session.
 *  - No server-side session cache: tickets (stateless, RFC 5077 and TLS
 *    1.3) resume sessions across workers, as the SSL_CTX and its ticket
 *    keys are made in the master before the fork; a per-worker cache
 *    would hold every TLS 1.2 session for 5 minutes after it closed
 *    (up to 20,480 of them) and only resume on the same worker.
 *  - After a burst of closes the worker's heap is mostly free pages
 *    that glibc keeps (only a free top is trimmed, and the handshakes'
 *    temporaries leave the heap fragmented); the worker's memtrim timer
 *    (src/core/memtrim.c) gives them back with malloc_trim().
 */
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "../core/log.h"
#include "session_int.h"
#include "tls.h"

struct ssl_ctx_st *
tls_server_ctx(const char *cert, const char *key, char *err, size_t errlen)
{
	SSL_CTX *ctx;

	if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL)
		goto fail;
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION |
	    SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION);
	/* Memory per idle session: see the top of this file. */
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	/* One TLS 1.3 ticket is what an MTA keeps (OpenSSL sends two). */
	SSL_CTX_set_num_tickets(ctx, 1);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1)
		goto fail;
	if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1)
		goto fail;
	if (SSL_CTX_check_private_key(ctx) != 1)
		goto fail;
	return ctx;
fail:
	snprintf(err, errlen, "TLS %s / %s: %s", cert, key,
	    ERR_reason_error_string(ERR_get_error()) ?
	    ERR_reason_error_string(ERR_get_error()) : "cannot load");
	SSL_CTX_free(ctx);
	return NULL;
}

struct ssl_ctx_st *
tls_client_ctx(void)
{
	SSL_CTX *ctx;

	if ((ctx = SSL_CTX_new(TLS_client_method())) == NULL)
		return NULL;
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	/* Opportunistic TLS to the backend (RFC 3207 §4.1 allows it). */
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	return ctx;
}

void
tls_ctx_free(struct ssl_ctx_st *ctx)
{
	SSL_CTX_free(ctx);
}

/*
 * close_notify for a session on the socket bufferevent: session.c sends
 * it through tls_shutdown() only when there is an underlying bufferevent
 * to wait on. Here, once a quitting session's last reply has gone into
 * the SSL, close_notify is written straight to the socket (a few bytes;
 * if the socket is full it is dropped, the connection closes anyway).
 * The argument is the bufferevent, not the session: bufferevent_free()
 * clears its callbacks first, so a freed session is never looked at.
 */
static void
tls_output_cb(struct evbuffer *out, const struct evbuffer_cb_info *info,
    void *arg)
{
	struct bufferevent	*bev = arg;
	struct session		*s = NULL;
	SSL			*ssl;

	if (info->n_deleted == 0 || evbuffer_get_length(out) > 0)
		return;
	bufferevent_getcb(bev, NULL, NULL, NULL, (void **)&s);
	if (s == NULL || s->state != ST_QUIT || s->tls_shut)
		return;
	s->tls_shut = true;
	if ((ssl = bufferevent_openssl_get_ssl(bev)) != NULL)
		SSL_shutdown(ssl);
}

/* The OpenSSL bufferevent on the session's own socket; NULL when the
 * plain one must stay underneath (see the top of this file). */
static struct bufferevent *
tls_socket_bev(struct session *s, SSL *ssl)
{
	struct bufferevent	*tbev;
	evutil_socket_t		 fd = bufferevent_getfd(s->bev);

	if (s->stdio || fd < 0 ||
	    evbuffer_get_length(bufferevent_get_output(s->bev)) > 0)
		return NULL;
	tbev = bufferevent_openssl_socket_new(s->base, fd, ssl,
	    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE |
	    BEV_OPT_DEFER_CALLBACKS);
	if (tbev == NULL)
		return NULL;
	/* Out of memory here costs only the close_notify. */
	(void)evbuffer_add_cb(bufferevent_get_output(tbev), tls_output_cb,
	    tbev);
	/* The plain bufferevent lets go of the socket, then goes. */
	bufferevent_setfd(s->bev, -1);
	bufferevent_free(s->bev);
	return tbev;
}

int
tls_start(struct session *s)
{
	SSL			*ssl;
	struct bufferevent	*tbev;

	if ((ssl = SSL_new(s->tls_ctx)) == NULL)
		return -1;
	/* The 220 leaves in clear text (session_flush() writes it now). */
	session_flush(s);
	s->direct = false;
	/* Deferred callbacks: the SSL bufferevent may otherwise call back
	 * into the session from inside a reply() (a write failing at
	 * once), and a callback may free the session. */
	if ((tbev = tls_socket_bev(s, ssl)) == NULL) {
		/* The filter writes through the socket's bufferevent,
		 * whose write event must be on. */
		bufferevent_enable(s->bev, EV_WRITE);
		tbev = bufferevent_openssl_filter_new(s->base, s->bev, ssl,
		    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE |
		    BEV_OPT_DEFER_CALLBACKS);
	}
	if (tbev == NULL) {
		SSL_free(ssl);
		return -1;
	}
	bufferevent_openssl_set_allow_dirty_shutdown(tbev, 1);
	s->tls = true;
	session_attach(s, tbev);
	return 0;
}

/* Records version and cipher; the handshake is over by the next EHLO. */
void
tls_describe(struct session *s)
{
	SSL *ssl;

	if (!s->tls || s->tls_info[0] != '\0')
		return;
	if ((ssl = bufferevent_openssl_get_ssl(s->bev)) == NULL)
		return;
	snprintf(s->tls_info, sizeof(s->tls_info), "%s %s",
	    SSL_get_version(ssl), SSL_get_cipher_name(ssl));
}

void
tls_shutdown(struct session *s)
{
	SSL *ssl = bufferevent_openssl_get_ssl(s->bev);

	if (ssl != NULL)
		SSL_shutdown(ssl);
}
