/*
 * test_auth: SMTP AUTH's pure parts (src/smtp/auth.c). Strict base64
 * (tables, canonical padding), SASL PLAIN and LOGIN fields at
 * AUTH_FIELD_MAX and one past it, the passwd file parser and loader
 * (file:line errors, duplicates, comments), each hash scheme checked
 * against hashes made by the real tools, and MAIL's AUTH= parameter.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../src/smtp/auth.h"
#include "../../src/smtp/parse.h"

/*
 * Hashes of "S3cret pass!" made by the tools a site migrates from:
 *   echo -n 'S3cret pass!' | argon2 saltsaltsalt16 -id -t 2 -m 12 -p 1 -e
 *   echo -n 'S3cret pass!' | argon2 saltsaltsalt16 -i -t 2 -m 12 -p 1 -e
 *   htpasswd -nbB -C 5 carol 'S3cret pass!'          (apache2-utils)
 *   python3 -c "import crypt; crypt.crypt(..., METHOD_BLOWFISH)" (3.11)
 *   openssl passwd -6 -salt saltsalt 'S3cret pass!'
 */
#define PASS	"S3cret pass!"
static const char *const good_hashes[] = {
	"$argon2id$v=19$m=4096,t=2,p=1$c2FsdHNhbHRzYWx0MTY$"
	    "Cxcjo/JWLNgxGacBo34J73e6BTPcpOBvRSuzC+9z5bs",
	"$argon2i$v=19$m=4096,t=2,p=1$c2FsdHNhbHRzYWx0MTY$"
	    "PYAEe4t9fhkK2XuG5nXOwBADWPgdLJ2yWLZwY7sIVeY",
	"$2y$05$Z50MrZ3FnUYyNgHXYsp/4ON7DwHWcfjdOT3TxBq6rC3/15ts/d61a",
	"$2b$05$xFPDRESSYL9lpWxOK4826eDe6/31.nctUz9dABYxg8sroHPx7VRBu",
	"$6$saltsalt$e4q5XyxWasPm1crbD4ussuC5VJMqWPurrlVV8ozR0WNqtOMgWFy"
	    "q9QKIv6N86cWB62W2plZ3Rh1UQ9lhRUW4B1",
};

static void
test_b64_table(void **state)
{
	static const struct {
		const char	*in, *out;
		int		 rc;
	} t[] = {
		{ "", "", 0 },
		{ "Zg==", "f", 0 },
		{ "Zm8=", "fo", 0 },
		{ "Zm9v", "foo", 0 },
		{ "Zm9vYg==", "foob", 0 },
		{ "Zm9vYmE=", "fooba", 0 },
		{ "Zm9vYmFy", "foobar", 0 },
		{ "Zg=", NULL, -1 },		/* length not a multiple of 4 */
		{ "Zg", NULL, -1 },		/* padding required */
		{ "Zh==", NULL, -1 },		/* non-zero pad bits */
		{ "Zm9=", NULL, -1 },		/* non-zero pad bits */
		{ "Z===", NULL, -1 },
		{ "====", NULL, -1 },
		{ "Zg==Zg==", NULL, -1 },	/* padding in the middle */
		{ "Zm 9", NULL, -1 },		/* blank */
		{ "Zm9v\r\n", NULL, -1 },
		{ "Zm-_", NULL, -1 },		/* base64url alphabet */
		{ "Zm=v", NULL, -1 },
	};
	unsigned char	out[64];
	size_t		i, n;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		int rc = auth_b64_decode(t[i].in, strlen(t[i].in), out,
		    sizeof(out), &n);

		assert_int_equal(rc, t[i].rc);
		if (rc == 0) {
			assert_int_equal(n, strlen(t[i].out));
			assert_memory_equal(out, t[i].out, n);
		}
	}
}

static void
test_b64_round_trip_and_cap(void **state)
{
	unsigned char	in[256], out[256];
	char		enc[400];
	size_t		len, n;

	(void)state;
	for (len = 0; len < sizeof(in); len++)
		in[len] = (unsigned char)(len * 37 + 11);
	for (len = 0; len <= 200; len++) {
		assert_int_equal(auth_b64_encode(in, len, enc, sizeof(enc)), 0);
		assert_int_equal(auth_b64_decode(enc, strlen(enc), out, len,
		    &n), 0);
		assert_int_equal(n, len);
		assert_memory_equal(in, out, len);
		/* One byte less room than needed: refused, not cut. */
		if (len > 0)
			assert_int_equal(auth_b64_decode(enc, strlen(enc), out,
			    len - 1, &n), -1);
	}
	/* The encoder needs room for the NUL too. */
	assert_int_equal(auth_b64_encode(in, 3, enc, 4), -1);
	assert_int_equal(auth_b64_encode(in, 3, enc, 5), 0);
	assert_string_equal(enc, "CzBV");
}

/* A PLAIN message from its three fields. */
static size_t
plain(unsigned char *m, const char *z, size_t zl, const char *u, size_t ul,
    const char *p, size_t pl)
{
	memcpy(m, z, zl);
	m[zl] = '\0';
	memcpy(m + zl + 1, u, ul);
	m[zl + 1 + ul] = '\0';
	memcpy(m + zl + 2 + ul, p, pl);
	return zl + ul + pl + 2;
}

static void
test_plain(void **state)
{
	unsigned char		m[1024];
	struct auth_cred	c;
	size_t			n;

	(void)state;
	n = plain(m, "", 0, "alice", 5, "pw", 2);
	assert_int_equal(auth_plain_parse(m, n, &c), AUTH_OK);
	assert_string_equal(c.user, "alice");
	assert_string_equal(c.pass, "pw");
	assert_int_equal(c.passlen, 2);
	/* authzid = the user itself is fine; another is not. */
	n = plain(m, "alice", 5, "alice", 5, "pw", 2);
	assert_int_equal(auth_plain_parse(m, n, &c), AUTH_OK);
	n = plain(m, "bob", 3, "alice", 5, "pw", 2);
	assert_int_equal(auth_plain_parse(m, n, &c), AUTH_AUTHZID);
	assert_int_equal(c.pass[0], '\0');	/* wiped */
	/* Missing pieces. */
	n = plain(m, "", 0, "", 0, "pw", 2);
	assert_int_equal(auth_plain_parse(m, n, &c), AUTH_MALFORMED);
	n = plain(m, "", 0, "alice", 5, "", 0);
	assert_int_equal(auth_plain_parse(m, n, &c), AUTH_MALFORMED);
	assert_int_equal(auth_plain_parse((const unsigned char *)"alice", 5,
	    &c), AUTH_MALFORMED);
	assert_int_equal(auth_plain_parse((const unsigned char *)"\0alice",
	    6, &c), AUTH_MALFORMED);
	assert_int_equal(auth_plain_parse(m, 0, &c), AUTH_MALFORMED);
	/* A third NUL. */
	assert_int_equal(auth_plain_parse((const unsigned char *)
	    "\0alice\0p\0w", 10, &c), AUTH_MALFORMED);
	/* Control characters in the user; bad UTF-8 anywhere. */
	n = plain(m, "", 0, "al\tice", 6, "pw", 2);
	assert_int_equal(auth_plain_parse(m, n, &c), AUTH_MALFORMED);
	n = plain(m, "", 0, "alice", 5, "p\xff", 2);
	assert_int_equal(auth_plain_parse(m, n, &c), AUTH_MALFORMED);
	/* UTF-8 user and a password with blanks and tabs. */
	n = plain(m, "", 0, "j\xc3\xb8rn", 5, "a b\tc", 5);
	assert_int_equal(auth_plain_parse(m, n, &c), AUTH_OK);
}

static void
test_plain_limits(void **state)
{
	unsigned char		m[1024];
	char			f[AUTH_FIELD_MAX + 2];
	struct auth_cred	c;
	size_t			n;

	(void)state;
	memset(f, 'x', sizeof(f));
	/* Each field at N, then N + 1. */
	n = plain(m, f, AUTH_FIELD_MAX, f, AUTH_FIELD_MAX, f, AUTH_FIELD_MAX);
	assert_int_equal(auth_plain_parse(m, n, &c), AUTH_OK);
	assert_int_equal(strlen(c.user), AUTH_FIELD_MAX);
	assert_int_equal(c.passlen, AUTH_FIELD_MAX);
	n = plain(m, "", 0, f, AUTH_FIELD_MAX + 1, "pw", 2);
	assert_int_equal(auth_plain_parse(m, n, &c), AUTH_TOO_LONG);
	n = plain(m, "", 0, "alice", 5, f, AUTH_FIELD_MAX + 1);
	assert_int_equal(auth_plain_parse(m, n, &c), AUTH_TOO_LONG);
	n = plain(m, f, AUTH_FIELD_MAX + 1, "alice", 5, "pw", 2);
	assert_int_equal(auth_plain_parse(m, n, &c), AUTH_TOO_LONG);
	/* The largest PLAIN message fits the decode buffer of the largest
	 * line: AUTH_LINE_MAX - "AUTH PLAIN " - CRLF base64 characters. */
	n = plain(m, f, AUTH_FIELD_MAX, f, AUTH_FIELD_MAX, f, AUTH_FIELD_MAX);
	assert_true((n + 2) / 3 * 4 + 13 <= AUTH_LINE_MAX);
	assert_true(n <= AUTH_MSG_MAX);
}

static void
test_login(void **state)
{
	struct auth_cred	c;
	char			f[AUTH_FIELD_MAX + 1];

	(void)state;
	memset(&c, 0, sizeof(c));
	memset(f, 'y', sizeof(f));
	assert_int_equal(auth_login_field((const unsigned char *)"alice", 5,
	    &c, true), AUTH_OK);
	assert_int_equal(auth_login_field((const unsigned char *)"pw", 2, &c,
	    false), AUTH_OK);
	assert_string_equal(c.user, "alice");
	assert_int_equal(c.passlen, 2);
	assert_int_equal(auth_login_field((const unsigned char *)"", 0, &c,
	    true), AUTH_MALFORMED);
	assert_int_equal(auth_login_field((const unsigned char *)"a\0b", 3,
	    &c, false), AUTH_MALFORMED);
	assert_int_equal(auth_login_field((unsigned char *)f, AUTH_FIELD_MAX,
	    &c, false), AUTH_OK);
	assert_int_equal(auth_login_field((unsigned char *)f,
	    AUTH_FIELD_MAX + 1, &c, true), AUTH_TOO_LONG);
	auth_cred_wipe(&c);
	assert_int_equal(c.user[0], '\0');
}

static void
test_hash_kinds_and_verify(void **state)
{
	size_t i;

	(void)state;
	assert_int_equal(auth_hash_kind(good_hashes[0]), HASH_ARGON2ID);
	assert_int_equal(auth_hash_kind(good_hashes[1]), HASH_ARGON2I);
	assert_int_equal(auth_hash_kind(good_hashes[2]), HASH_BCRYPT);
	assert_int_equal(auth_hash_kind(good_hashes[3]), HASH_BCRYPT);
	assert_int_equal(auth_hash_kind(good_hashes[4]), HASH_SHA512);
	assert_int_equal(auth_hash_kind("$1$md5$xxxx"), HASH_UNKNOWN);
	assert_int_equal(auth_hash_kind("plain"), HASH_UNKNOWN);
	assert_int_equal(auth_hash_kind("$2y$05$short"), HASH_UNKNOWN);
	for (i = 0; i < sizeof(good_hashes) / sizeof(good_hashes[0]); i++) {
		assert_true(auth_hash_verify(good_hashes[i], PASS,
		    strlen(PASS)));
		assert_false(auth_hash_verify(good_hashes[i], "S3cret pass",
		    11));
		assert_false(auth_hash_verify(good_hashes[i], "S3cret pass!!",
		    13));
		assert_false(auth_hash_verify(good_hashes[i], "", 0));
	}
	/* A NUL inside the password never reaches crypt_r cut short. */
	assert_false(auth_hash_verify(good_hashes[4], "S3cret pass!\0x", 14));
	assert_int_equal(auth_hash_kind(auth_dummy_hash), HASH_ARGON2ID);
	assert_false(auth_hash_verify(auth_dummy_hash, PASS, strlen(PASS)));
}

static void
test_db_line(void **state)
{
	char		 l[AUTH_DB_LINE_MAX + 64], *u, *h;
	const char	*why;

	(void)state;
	snprintf(l, sizeof(l), "alice:%s", good_hashes[0]);
	assert_int_equal(auth_db_parse_line(l, strlen(l), &u, &h, &why), 1);
	assert_string_equal(u, "alice");
	assert_string_equal(h, good_hashes[0]);
	/* Dovecot passwd-file: {SCHEME} prefix and more fields. */
	snprintf(l, sizeof(l), "bob:{SHA512-CRYPT}%s:1000:1000::/home/bob::",
	    good_hashes[4]);
	assert_int_equal(auth_db_parse_line(l, strlen(l), &u, &h, &why), 1);
	assert_string_equal(h, good_hashes[4]);
	snprintf(l, sizeof(l), "# comment");
	assert_int_equal(auth_db_parse_line(l, strlen(l), &u, &h, &why), 0);
	snprintf(l, sizeof(l), "   ");
	assert_int_equal(auth_db_parse_line(l, strlen(l), &u, &h, &why), 0);
	snprintf(l, sizeof(l), "nocolon");
	assert_int_equal(auth_db_parse_line(l, strlen(l), &u, &h, &why), -1);
	snprintf(l, sizeof(l), ":%s", good_hashes[0]);
	assert_int_equal(auth_db_parse_line(l, strlen(l), &u, &h, &why), -1);
	snprintf(l, sizeof(l), "carol:secret");
	assert_int_equal(auth_db_parse_line(l, strlen(l), &u, &h, &why), -1);
	snprintf(l, sizeof(l), "carol:$1$abc$def");
	assert_int_equal(auth_db_parse_line(l, strlen(l), &u, &h, &why), -1);
	/* CRLF files work. */
	snprintf(l, sizeof(l), "dave:%s\r", good_hashes[2]);
	assert_int_equal(auth_db_parse_line(l, strlen(l), &u, &h, &why), 1);
	assert_string_equal(h, good_hashes[2]);
}

static char tmpdir[] = "/tmp/test_auth.XXXXXX";

static const char *
write_file(const char *name, const char *text)
{
	static char	 path[256];
	FILE		*f;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	return path;
}

static void
test_db_load(void **state)
{
	char		 text[4096], err[512], line[AUTH_DB_LINE_MAX + 2];
	const char	*p;
	struct auth_db	*db;

	(void)state;
	assert_non_null(mkdtemp(tmpdir));
	snprintf(text, sizeof(text), "# users\nalice:%s\n\ncarol:%s\n"
	    "bob:%s\n", good_hashes[0], good_hashes[2], good_hashes[4]);
	p = write_file("ok", text);
	db = auth_db_load(p, err, sizeof(err));
	assert_non_null(db);
	assert_int_equal(auth_db_count(db), 3);
	assert_string_equal(auth_db_find(db, "alice"), good_hashes[0]);
	assert_string_equal(auth_db_find(db, "bob"), good_hashes[4]);
	assert_string_equal(auth_db_find(db, "carol"), good_hashes[2]);
	assert_null(auth_db_find(db, "dave"));
	assert_null(auth_db_find(db, "Alice"));
	/* Unknown users are checked against a stored hash: same cost. */
	assert_string_equal(auth_db_dummy(db), good_hashes[0]);
	auth_db_free(db);
	assert_string_equal(auth_db_dummy(NULL), auth_dummy_hash);

	/* file:line of the bad line. */
	snprintf(text, sizeof(text), "alice:%s\n# x\nbob:plaintext\n",
	    good_hashes[0]);
	p = write_file("bad", text);
	assert_null(auth_db_load(p, err, sizeof(err)));
	assert_non_null(strstr(err, "bad:3: unknown hash"));
	snprintf(text, sizeof(text), "alice:%s\nalice:%s\n", good_hashes[0],
	    good_hashes[1]);
	p = write_file("dup", text);
	assert_null(auth_db_load(p, err, sizeof(err)));
	assert_non_null(strstr(err, "'alice' twice"));
	assert_null(auth_db_load("/nonexistent/x", err, sizeof(err)));

	/* A line at AUTH_DB_LINE_MAX is read, one past it refused. */
	memset(line, 0, sizeof(line));
	snprintf(line, sizeof(line), "u:%s:", good_hashes[0]);
	memset(line + strlen(line), 'x', AUTH_DB_LINE_MAX - strlen(line));
	assert_int_equal(strlen(line), AUTH_DB_LINE_MAX);
	snprintf(text, sizeof(text), "%s\n", line);
	db = auth_db_load(write_file("n", text), err, sizeof(err));
	assert_non_null(db);
	auth_db_free(db);
	snprintf(text, sizeof(text), "%sx\n", line);
	assert_null(auth_db_load(write_file("n1", text), err, sizeof(err)));
	assert_non_null(strstr(err, "n1:1: line longer"));
	for (p = "ok\0bad\0dup\0n\0n1\0"; *p != '\0'; p += strlen(p) + 1) {
		snprintf(line, sizeof(line), "%s/%s", tmpdir, p);
		unlink(line);
	}
	rmdir(tmpdir);
}

static void
test_mail_auth_param(void **state)
{
	struct mail_params	mp;
	struct str		s;

	(void)state;
	s = str_make(" AUTH=<>", 8);
	assert_int_equal(parse_mail_params(s, &mp), PARSE_OK);
	assert_true(mp.auth);
	s = str_make(" AUTH=alice+40example.org SIZE=10", 33);
	assert_int_equal(parse_mail_params(s, &mp), PARSE_OK);
	assert_true(mp.auth);
	assert_int_equal(mp.size, 10);
	s = str_make(" AUTH=a+4", 9);		/* short hexchar */
	assert_int_equal(parse_mail_params(s, &mp), PARSE_PARAM_VALUE);
	s = str_make(" AUTH=a+4g", 10);		/* lower case hex */
	assert_int_equal(parse_mail_params(s, &mp), PARSE_PARAM_VALUE);
	s = str_make(" AUTH=a=b", 9);
	assert_int_equal(parse_mail_params(s, &mp), PARSE_PARAM_VALUE);
	s = str_make(" AUTH", 5);
	assert_int_equal(parse_mail_params(s, &mp), PARSE_PARAM_VALUE);
}

static void
test_backend_parse(void **state)
{
	enum auth_backend b;

	(void)state;
	assert_int_equal(auth_backend_parse("file", &b), 0);
	assert_int_equal(b, AUTH_FILE);
	assert_int_equal(auth_backend_parse("dovecot", &b), 0);
	assert_int_equal(b, AUTH_DOVECOT);
	assert_int_equal(auth_backend_parse("none", &b), 0);
	assert_int_equal(auth_backend_parse("ldap", &b), -1);
}

/* The figure for docs/AUTH.md: what one check costs a pool thread. */
static void
test_verify_cost(void **state)
{
	struct timespec	a, b;
	double		ms;

	(void)state;
	clock_gettime(CLOCK_MONOTONIC, &a);
	assert_false(auth_hash_verify(auth_dummy_hash, "x", 1));
	clock_gettime(CLOCK_MONOTONIC, &b);
	ms = (double)(b.tv_sec - a.tv_sec) * 1e3 +
	    (double)(b.tv_nsec - a.tv_nsec) / 1e6;
	printf("argon2id m=64MiB t=3 p=1 verify: %.1f ms\n", ms);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_b64_table),
		cmocka_unit_test(test_b64_round_trip_and_cap),
		cmocka_unit_test(test_plain),
		cmocka_unit_test(test_plain_limits),
		cmocka_unit_test(test_login),
		cmocka_unit_test(test_hash_kinds_and_verify),
		cmocka_unit_test(test_db_line),
		cmocka_unit_test(test_db_load),
		cmocka_unit_test(test_mail_auth_param),
		cmocka_unit_test(test_backend_parse),
		cmocka_unit_test(test_verify_cost),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
