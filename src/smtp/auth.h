/*
 * auth.h: SMTP AUTH (RFC 4954) without the session: strict base64, the
 * SASL PLAIN (RFC 4616) and LOGIN messages, the passwd-style user file
 * and its password hashes, and the [auth] settings.
 *
 * Everything here is pure (bytes in, result out) except auth_db_load(),
 * which reads a file, and auth_hash_verify(), which is slow on purpose
 * (argon2id: tens of ms) and so runs on the TPOOL_AUTH pool, never on a
 * worker's loop. The session side (the AUTH command, the SASL exchange,
 * throttling) is auth_smtp.c; Dovecot's auth socket is auth_dovecot.c.
 *
 * Secrets: a password lives in a struct auth_cred only as long as its
 * check; auth_cred_wipe() clears it. Nothing here logs.
 */
#ifndef MOAT_AUTH_H
#define MOAT_AUTH_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Limits. RFC 4954 §4 lets a server accept SASL lines of up to 12288
 * octets; PLAIN and LOGIN with the field limits below never need more
 * than AUTH_LINE_MAX (3 * 255 octets plus two NULs is 1024 base64
 * characters), so that is all we read: an AUTH command line or a SASL
 * response line, CRLF included. Longer is 500 5.5.6 and skipped.
 */
#define AUTH_LINE_MAX		2048
#define AUTH_FIELD_MAX		255	/* authzid, authcid, password */
/* A decoded SASL message: base64 of AUTH_LINE_MAX at most. */
#define AUTH_MSG_MAX		(AUTH_LINE_MAX / 4 * 3)
#define AUTH_DB_LINE_MAX	1024	/* a line of the passwd file */
#define AUTH_DB_HASH_MAX	512
#define AUTH_DB_MAX_USERS	1000000

/* The [auth] section (conf.c holds its option table). */
enum auth_backend { AUTH_NONE, AUTH_FILE, AUTH_DOVECOT };

struct auth_conf {
	char		*backend;	/* none, file, dovecot */
	char		*passwd_file;
	char		*dovecot_socket;
	char		*dovecot_service;
	bool		 dovecot_penalty;	/* Dovecot's delays too */
	long long	 timeout;		/* s, one check, either backend */
	bool		 plaintext_loopback;	/* offer AUTH in clear to
						 * 127.0.0.0/8 and ::1 */
	long long	 fail_delay;		/* ms before a 535, doubling */
	long long	 fail_delay_max;	/* ms, the cap */
	long long	 max_failures;		/* per session, then 421 */
	long long	 max_failures_ip;	/* per client address ... */
	long long	 failure_window;	/* ... within these seconds */
	long long	 threads;		/* TPOOL_AUTH */
	long long	 queue;			/* checks waiting, then 454 */
	/* Set at load. */
	enum auth_backend kind;
	struct auth_db	*db;
};

/* Decodes strict base64 (RFC 4648 §4: the standard alphabet, padding
 * required, no blanks, zero pad bits). 0 with *outlen, -1 when the input
 * is not canonical base64 or needs more than cap bytes. */
int	auth_b64_decode(const char *in, size_t len, unsigned char *out,
	    size_t cap, size_t *outlen);
/* Encodes with padding and a NUL; -1 when cap is too small. */
int	auth_b64_encode(const unsigned char *in, size_t len, char *out,
	    size_t cap);

/* What a client presented. */
struct auth_cred {
	char	authzid[AUTH_FIELD_MAX + 1];
	char	user[AUTH_FIELD_MAX + 1];
	char	pass[AUTH_FIELD_MAX + 1];
	size_t	passlen;
};

enum auth_err {
	AUTH_OK = 0,
	AUTH_MALFORMED,		/* not the mechanism's message */
	AUTH_TOO_LONG,		/* a field past AUTH_FIELD_MAX */
	AUTH_AUTHZID,		/* asks to act as someone else */
};

/*
 * SASL PLAIN (RFC 4616 §2): [authzid] NUL authcid NUL passwd, decoded.
 * Exactly two NULs; authcid and passwd non-empty, each field at most
 * AUTH_FIELD_MAX octets and UTF-8; the user name without control
 * characters (it goes into logs and Dovecot's tab-separated protocol).
 * An authzid other than the user itself is AUTH_AUTHZID: we do not
 * let one user act as another.
 */
enum auth_err	auth_plain_parse(const unsigned char *msg, size_t len,
		    struct auth_cred *);
/* One LOGIN response, decoded: the user name (is_user) or the
 * password, under the same rules as PLAIN's fields. */
enum auth_err	auth_login_field(const unsigned char *msg, size_t len,
		    struct auth_cred *, bool is_user);
/* Clears the password (and the rest) so no copy outlives the check. */
void		auth_cred_wipe(struct auth_cred *);

/* Password hashes the file may hold. */
enum auth_hash {
	HASH_UNKNOWN, HASH_ARGON2ID, HASH_ARGON2I, HASH_BCRYPT, HASH_SHA512
};

/* The kind of a stored hash: $argon2id$, $argon2i$, $2y$/$2b$/$2a$
 * (bcrypt), $6$ (sha512-crypt). */
enum auth_hash	auth_hash_kind(const char *hash);
/* True when pass matches hash; slow (a pool thread's work). */
bool		auth_hash_verify(const char *hash, const char *pass,
		    size_t passlen);
/* A well-made argon2id hash (64 MiB, t=3) for auth_db_dummy() to fall
 * back on. */
extern const char auth_dummy_hash[];

/*
 * One line of the passwd file: "user:hash", optionally followed by
 * ":more fields" (htpasswd, Dovecot passwd-file and shadow lines work),
 * a "{SCHEME}" prefix on the hash dropped. Returns 1 for a user (user
 * and hash point into line, which is cut with NULs), 0 for a blank or
 * "#" comment line, -1 with *why for a malformed one.
 */
int		auth_db_parse_line(char *line, size_t len, char **user,
		    char **hash, const char **why);

struct auth_db;
/* Loads a passwd file; NULL with "file:line: why" in err. */
struct auth_db	*auth_db_load(const char *path, char *err, size_t errlen);
void		 auth_db_free(struct auth_db *);
/* The stored hash of user, or NULL. */
const char	*auth_db_find(const struct auth_db *, const char *user);
size_t		 auth_db_count(const struct auth_db *);
/* What an unknown user's password is checked against, so that timing
 * does not tell who exists: one of the file's own hashes (the same cost
 * as a real check; the result is thrown away), auth_dummy_hash when the
 * file is empty. */
const char	*auth_db_dummy(const struct auth_db *);

/* "file"/"dovecot"/"none" to a backend; -1 for anything else. */
int		auth_backend_parse(const char *, enum auth_backend *);
/* The table of failures per client address, shared by the workers: made
 * at config load (in the master, before the fork). -1 when it cannot be
 * mapped. */
int		auth_fail_table(void);

#endif
