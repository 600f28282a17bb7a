/*
 * auth.c: base64, the SASL PLAIN and LOGIN messages, the passwd file
 * and password hashes (see auth.h).
 *
 * Decoding is strict: a client's SASL data is either canonical base64
 * of a well-formed message within the field limits, or refused; nothing
 * is trimmed, cut or guessed. The passwd file is read whole at config
 * load (by the master, before workers fork) into one sorted array; a
 * malformed line, an unknown hash scheme or a duplicate user refuses the
 * whole file with its file:line, so a typo never silently locks a user
 * out or lets one in.
 */
#include <crypt.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <argon2.h>

#include "auth.h"
#include "parse.h"

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* The value of a base64 character, or -1. */
static int
b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

int
auth_b64_decode(const char *in, size_t len, unsigned char *out, size_t cap,
    size_t *outlen)
{
	size_t		i, o = 0, pad = 0;
	unsigned long	acc;
	int		k, v[4];

	if (len % 4 != 0)
		return -1;
	if (len > 0 && in[len - 1] == '=')
		pad = len > 1 && in[len - 2] == '=' ? 2 : 1;
	/* The size is known before a byte is written. */
	if (len / 4 * 3 - pad > cap)
		return -1;
	for (i = 0; i < len; i += 4) {
		for (k = 0; k < 4; k++) {
			bool last = i + 4 == len;

			if (last && in[i + k] == '=' && k >= 4 - (int)pad)
				v[k] = 0;
			else if ((v[k] = b64_value((unsigned char)in[i + k]))
			    == -1)
				return -1;
		}
		acc = (unsigned long)v[0] << 18 | (unsigned long)v[1] << 12 |
		    (unsigned long)v[2] << 6 | (unsigned long)v[3];
		/* Canonical only: the bits padding drops must be zero. */
		if (i + 4 == len && ((pad == 1 && (acc & 0xff) != 0) ||
		    (pad == 2 && (acc & 0xffff) != 0)))
			return -1;
		out[o++] = (unsigned char)(acc >> 16);
		if (i + 4 < len || pad < 2)
			out[o++] = (unsigned char)(acc >> 8);
		if (i + 4 < len || pad < 1)
			out[o++] = (unsigned char)acc;
	}
	*outlen = o;
	return 0;
}

int
auth_b64_encode(const unsigned char *in, size_t len, char *out, size_t cap)
{
	size_t		i, o = 0;
	unsigned long	acc;

	if (cap == 0 || (len + 2) / 3 * 4 >= cap)
		return -1;
	for (i = 0; i < len; i += 3) {
		acc = (unsigned long)in[i] << 16;
		if (i + 1 < len)
			acc |= (unsigned long)in[i + 1] << 8;
		if (i + 2 < len)
			acc |= in[i + 2];
		out[o++] = b64_alphabet[acc >> 18 & 63];
		out[o++] = b64_alphabet[acc >> 12 & 63];
		out[o++] = i + 1 < len ? b64_alphabet[acc >> 6 & 63] : '=';
		out[o++] = i + 2 < len ? b64_alphabet[acc & 63] : '=';
	}
	out[o] = '\0';
	return 0;
}

/* A user name: UTF-8 without control characters (C0, DEL). */
static bool
user_ok(const unsigned char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (p[i] < 0x20 || p[i] == 0x7f)
			return false;
	return utf8_valid((const char *)p, n);
}

/* Copies one field into its slot; the checks come first. */
static enum auth_err
field_take(char *dst, const unsigned char *p, size_t n, bool user,
    size_t *outlen)
{
	if (n > AUTH_FIELD_MAX)
		return AUTH_TOO_LONG;
	if (memchr(p, '\0', n) != NULL || (user ? !user_ok(p, n) :
	    !utf8_valid((const char *)p, n)))
		return AUTH_MALFORMED;
	memcpy(dst, p, n);
	dst[n] = '\0';
	if (outlen != NULL)
		*outlen = n;
	return AUTH_OK;
}

enum auth_err
auth_plain_parse(const unsigned char *msg, size_t len, struct auth_cred *c)
{
	const unsigned char	*n1, *n2, *end = msg + len;
	enum auth_err		 e;

	memset(c, 0, sizeof(*c));
	if ((n1 = memchr(msg, '\0', len)) == NULL ||
	    (n2 = memchr(n1 + 1, '\0', (size_t)(end - n1 - 1))) == NULL ||
	    memchr(n2 + 1, '\0', (size_t)(end - n2 - 1)) != NULL)
		return AUTH_MALFORMED;
	if (n2 == n1 + 1 || n2 + 1 == end)
		return AUTH_MALFORMED;	/* no user or no password */
	if ((e = field_take(c->authzid, msg, (size_t)(n1 - msg), true,
	    NULL)) != AUTH_OK ||
	    (e = field_take(c->user, n1 + 1, (size_t)(n2 - n1 - 1), true,
	    NULL)) != AUTH_OK ||
	    (e = field_take(c->pass, n2 + 1, (size_t)(end - n2 - 1), false,
	    &c->passlen)) != AUTH_OK) {
		auth_cred_wipe(c);
		return e;
	}
	/* RFC 4616 §2: acting as another identity is the server's call;
	 * ours is no. */
	if (c->authzid[0] != '\0' && strcmp(c->authzid, c->user) != 0) {
		auth_cred_wipe(c);
		return AUTH_AUTHZID;
	}
	return AUTH_OK;
}

enum auth_err
auth_login_field(const unsigned char *msg, size_t len, struct auth_cred *c,
    bool is_user)
{
	if (len == 0)
		return AUTH_MALFORMED;
	return is_user ? field_take(c->user, msg, len, true, NULL) :
	    field_take(c->pass, msg, len, false, &c->passlen);
}

void
auth_cred_wipe(struct auth_cred *c)
{
	explicit_bzero(c, sizeof(*c));
}

/* argon2 CLI defaults raised to RFC 9106 §4's second choice (64 MiB,
 * t=3): what a real check of a well-made hash costs. */
const char auth_dummy_hash[] =
    "$argon2id$v=19$m=65536,t=3,p=1$bW9hdGR1bW15c2FsdDE2Yg$"
    "GlOf/f9/yTt9RYnFBZmJWhwyVu2pg/mp2cJfLRvo2bQ";

enum auth_hash
auth_hash_kind(const char *h)
{
	if (strncmp(h, "$argon2id$", 10) == 0)
		return HASH_ARGON2ID;
	if (strncmp(h, "$argon2i$", 9) == 0)
		return HASH_ARGON2I;
	if ((strncmp(h, "$2y$", 4) == 0 || strncmp(h, "$2b$", 4) == 0 ||
	    strncmp(h, "$2a$", 4) == 0) && strlen(h) == 60)
		return HASH_BCRYPT;
	if (strncmp(h, "$6$", 3) == 0 && strlen(h) >= 3 + 1 + 86)
		return HASH_SHA512;
	return HASH_UNKNOWN;
}

/* Compares without an early exit: time does not tell how much matched. */
static bool
equal_ct(const char *a, const char *b)
{
	size_t		 n = strlen(a), i;
	unsigned char	 d = 0;

	if (n != strlen(b))
		return false;
	for (i = 0; i < n; i++)
		d |= (unsigned char)(a[i] ^ b[i]);
	return d == 0;
}

bool
auth_hash_verify(const char *hash, const char *pass, size_t passlen)
{
	struct crypt_data	*cd;
	const char		*r;
	bool			 ok;

	switch (auth_hash_kind(hash)) {
	case HASH_ARGON2ID:
		return argon2id_verify(hash, pass, passlen) == ARGON2_OK;
	case HASH_ARGON2I:
		return argon2i_verify(hash, pass, passlen) == ARGON2_OK;
	case HASH_BCRYPT:
	case HASH_SHA512:
		/* crypt_r wants a C string: pass holds no NUL (checked). */
		if (strlen(pass) != passlen ||
		    (cd = calloc(1, sizeof(*cd))) == NULL)
			return false;
		r = crypt_r(pass, hash, cd);
		ok = r != NULL && r[0] != '*' && equal_ct(r, hash);
		explicit_bzero(cd, sizeof(*cd));
		free(cd);
		return ok;
	default:
		return false;
	}
}

int
auth_db_parse_line(char *line, size_t len, char **user, char **hash,
    const char **why)
{
	char	*colon, *end;
	size_t	 i;

	if (len > 0 && line[len - 1] == '\r')
		line[--len] = '\0';
	for (i = 0; i < len && (line[i] == ' ' || line[i] == '\t'); i++)
		;
	if (i == len || line[i] == '#')
		return 0;
	if (memchr(line, '\0', len) != NULL) {
		*why = "NUL in line";
		return -1;
	}
	if ((colon = memchr(line, ':', len)) == NULL) {
		*why = "expected user:hash";
		return -1;
	}
	*colon = '\0';
	*user = line;
	*hash = colon + 1;
	if ((end = strchr(*hash, ':')) != NULL)
		*end = '\0';	/* more fields: passwd-file, shadow */
	if (**user == '\0' || strlen(*user) > AUTH_FIELD_MAX ||
	    !user_ok((const unsigned char *)*user, strlen(*user))) {
		*why = "bad user name";
		return -1;
	}
	/* Dovecot's "{SCHEME}" prefix: the hash says its scheme itself. */
	if (**hash == '{' && (end = strchr(*hash, '}')) != NULL)
		*hash = end + 1;
	if (strlen(*hash) > AUTH_DB_HASH_MAX) {
		*why = "hash too long";
		return -1;
	}
	if (auth_hash_kind(*hash) == HASH_UNKNOWN) {
		*why = "unknown hash (argon2id, argon2i, bcrypt $2y$/$2b$ or "
		    "sha512-crypt $6$)";
		return -1;
	}
	return 1;
}

struct auth_entry {
	char	*user, *hash;
};

struct auth_db {
	struct auth_entry	*v;
	size_t			 n, cap;
};

static int
entry_cmp(const void *a, const void *b)
{
	return strcmp(((const struct auth_entry *)a)->user,
	    ((const struct auth_entry *)b)->user);
}

static int
db_add(struct auth_db *db, const char *user, const char *hash)
{
	struct auth_entry	*v;
	size_t			 cap;

	if (db->n == db->cap) {
		cap = db->cap ? db->cap * 2 : 64;
		if ((v = reallocarray(db->v, cap, sizeof(*v))) == NULL)
			return -1;
		db->v = v;
		db->cap = cap;
	}
	db->v[db->n].user = strdup(user);
	db->v[db->n].hash = strdup(hash);
	if (db->v[db->n].user == NULL || db->v[db->n].hash == NULL) {
		free(db->v[db->n].user);
		free(db->v[db->n].hash);
		return -1;
	}
	db->n++;
	return 0;
}

/* Reads the file line by line; each line measured before it is kept. */
static int
db_read(struct auth_db *db, FILE *f, const char *path, int *lines,
    char *err, size_t errlen)
{
	char		 line[AUTH_DB_LINE_MAX + 2], *user, *hash;
	const char	*why = NULL;
	size_t		 len;
	int		 r;

	while (fgets(line, sizeof(line), f) != NULL) {
		++*lines;
		len = strlen(line);
		if (len > 0 && line[len - 1] == '\n')
			line[--len] = '\0';
		else if (!feof(f)) {
			snprintf(err, errlen, "%s:%d: line longer than %d",
			    path, *lines, AUTH_DB_LINE_MAX);
			return -1;
		}
		if ((r = auth_db_parse_line(line, len, &user, &hash,
		    &why)) == 0)
			continue;
		if (r == -1) {
			snprintf(err, errlen, "%s:%d: %s", path, *lines, why);
			return -1;
		}
		if (db->n >= AUTH_DB_MAX_USERS) {
			snprintf(err, errlen, "%s:%d: more than %d users",
			    path, *lines, AUTH_DB_MAX_USERS);
			return -1;
		}
		if (db_add(db, user, hash) == -1) {
			snprintf(err, errlen, "%s: out of memory", path);
			return -1;
		}
	}
	return 0;
}

struct auth_db *
auth_db_load(const char *path, char *err, size_t errlen)
{
	struct auth_db	*db;
	FILE		*f;
	int		 lines = 0;
	size_t		 i;

	if ((f = fopen(path, "re")) == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	if ((db = calloc(1, sizeof(*db))) == NULL ||
	    db_read(db, f, path, &lines, err, errlen) == -1) {
		if (db == NULL)
			snprintf(err, errlen, "%s: out of memory", path);
		fclose(f);
		auth_db_free(db);
		return NULL;
	}
	fclose(f);
	qsort(db->v, db->n, sizeof(*db->v), entry_cmp);
	for (i = 1; i < db->n; i++)
		if (strcmp(db->v[i - 1].user, db->v[i].user) == 0) {
			snprintf(err, errlen, "%s: user '%s' twice", path,
			    db->v[i].user);
			auth_db_free(db);
			return NULL;
		}
	return db;
}

void
auth_db_free(struct auth_db *db)
{
	size_t i;

	if (db == NULL)
		return;
	for (i = 0; i < db->n; i++) {
		free(db->v[i].user);
		explicit_bzero(db->v[i].hash, strlen(db->v[i].hash));
		free(db->v[i].hash);
	}
	free(db->v);
	free(db);
}

const char *
auth_db_find(const struct auth_db *db, const char *user)
{
	struct auth_entry	 key, *e;

	if (db == NULL || db->n == 0)
		return NULL;
	key.user = (char *)(uintptr_t)user;
	e = bsearch(&key, db->v, db->n, sizeof(*db->v), entry_cmp);
	return e != NULL ? e->hash : NULL;
}

const char *
auth_db_dummy(const struct auth_db *db)
{
	return db != NULL && db->n > 0 ? db->v[0].hash : auth_dummy_hash;
}

size_t
auth_db_count(const struct auth_db *db)
{
	return db != NULL ? db->n : 0;
}

int
auth_backend_parse(const char *s, enum auth_backend *b)
{
	if (strcmp(s, "none") == 0)
		*b = AUTH_NONE;
	else if (strcmp(s, "file") == 0)
		*b = AUTH_FILE;
	else if (strcmp(s, "dovecot") == 0)
		*b = AUTH_DOVECOT;
	else
		return -1;
	return 0;
}
