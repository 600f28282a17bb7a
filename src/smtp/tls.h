/*
 * tls.h: server-side TLS contexts (OpenSSL 3) for STARTTLS.
 */
#ifndef MOAT_TLS_H
#define MOAT_TLS_H

#include <stddef.h>

struct ssl_ctx_st;

/* Loads a certificate chain and key; NULL with err set on failure. */
struct ssl_ctx_st *tls_server_ctx(const char *cert, const char *key,
		    char *err, size_t errlen);
/* A client context for STARTTLS to backends (opportunistic, no verify). */
struct ssl_ctx_st *tls_client_ctx(void);
void		tls_ctx_free(struct ssl_ctx_st *);

#endif
