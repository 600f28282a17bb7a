/*
 * tls.c: STARTTLS for the server side and the backend client.
 *
 * After "220 Ready" the session's socket bufferevent is wrapped in an
 * OpenSSL filter; the plain one is freed with it. Replies queued before
 * the switch still leave in clear text first (they sit in the underlying
 * output buffer), which is what RFC 3207 §4 wants.
 */
#include <stdio.h>
#include <string.h>

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
	    SSL_OP_CIPHER_SERVER_PREFERENCE);
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

int
tls_start(struct session *s)
{
	SSL			*ssl;
	struct bufferevent	*tbev;

	if ((ssl = SSL_new(s->tls_ctx)) == NULL)
		return -1;
	/* The 220 leaves in clear text; from now on the TLS filter writes
	 * through the socket's bufferevent, whose write event must be on. */
	session_flush(s);
	s->direct = false;
	bufferevent_enable(s->bev, EV_WRITE);
	/* Deferred callbacks: the filter may otherwise call back into the
	 * session from inside a reply() (a write failing at once), and a
	 * callback may free the session. */
	tbev = bufferevent_openssl_filter_new(s->base, s->bev, ssl,
	    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE |
	    BEV_OPT_DEFER_CALLBACKS);
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
