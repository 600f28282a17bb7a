/*
 * conf.h: the whole configuration of moatd, assembled from moat.conf:
 * [server], [pipeline], one section per filter, [delivery], and
 * [domain name] overrides ("filter.key = value", "delivery.key = value").
 * A config either loads completely or not at all, with "file:line: why".
 */
#ifndef MOAT_CONF_H
#define MOAT_CONF_H

#include "../deliver/quarantine.h"
#include "../filters/policy.h"
#include "../smtp/auth.h"
#include "../smtp/session.h"

struct server_conf {
	char		*listen;
	long long	 workers;
	char		*user;
	char		*var_dir;
	long long	 store_map_size;
	char		*log;
	char		*log_level;
	char		*json_log;
	char		*tls_cert;
	char		*tls_key;
	long long	 max_connections;
	long long	 listen_backlog;
	long long	 max_per_ip;
	long long	 drain_timeout;
	long long	 heartbeat_timeout;	/* worker_heartbeat_timeout */
	char		*local_domains;
	char		*rcpthosts;
	char		*morercpthosts;
	/* Submission listeners (RFC 6409; smtps: implicit TLS, RFC 8314)
	 * and their policy: AUTH before MAIL, these filters skipped. */
	char		*submission;
	char		*smtps;
	char		*submission_skip;
	struct smtp_conf smtp;
};

/* What kind of port a listening socket is; the index of its smtp_conf
 * in moat_config.listener. */
enum listener_kind { LISTEN_MX, LISTEN_SUBMISSION, LISTEN_SMTPS,
	LISTEN_KINDS };

struct moat_config {
	char			*path;
	char			*dir;
	struct server_conf	 server;
	struct pipeline		*pl;
	struct ssl_ctx_st	*tls;
	struct auth_conf	 auth;
	struct quarantine_conf	 quarantine;	/* [quarantine] */
	/* The SMTP settings of each kind of listener: [LISTEN_MX] is
	 * server.smtp itself, the others copies with their policy. */
	struct smtp_conf	 sub_smtp[LISTEN_KINDS];
	const struct smtp_conf	*listener[LISTEN_KINDS];
};

extern const struct opt server_opts[];

/* Loads and checks everything; NULL with "file:line: why" in err. */
struct moat_config	*conf_load(const char *path, char *err, size_t);
void			 conf_free(struct moat_config *);
/* Writes every option with its default and help (for docs and -t). */
void			 conf_dump_defaults(void);

#endif
