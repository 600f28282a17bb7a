/*
 * fuzz_auth: SMTP AUTH's decoders (src/smtp/auth.c) on arbitrary bytes.
 *
 * The first byte picks the target: strict base64 (checked against a
 * round trip: whatever decodes must encode back to the same text, as
 * only canonical base64 is taken), then the decoded bytes as a SASL
 * PLAIN message and as a LOGIN field (fields within AUTH_FIELD_MAX,
 * NUL-terminated, no NUL in the user); or a passwd file line.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/smtp/auth.h"

static void
check_cred(const struct auth_cred *c)
{
	if (strlen(c->user) > AUTH_FIELD_MAX || strlen(c->authzid) >
	    AUTH_FIELD_MAX || c->passlen > AUTH_FIELD_MAX ||
	    c->pass[c->passlen] != '\0')
		abort();
}

static void
fuzz_sasl(const uint8_t *data, size_t size)
{
	unsigned char		 out[AUTH_MSG_MAX];
	char			 enc[AUTH_LINE_MAX + 8];
	struct auth_cred	 c;
	size_t			 n;

	if (size > AUTH_LINE_MAX)
		return;
	if (auth_b64_decode((const char *)data, size, out, sizeof(out),
	    &n) == 0) {
		if (n > sizeof(out) || auth_b64_encode(out, n, enc,
		    sizeof(enc)) != 0 || strlen(enc) != size ||
		    memcmp(enc, data, size) != 0)
			abort();
	} else {
		/* Not base64: the raw bytes feed the SASL parsers. */
		n = size < sizeof(out) ? size : sizeof(out);
		memcpy(out, data, n);
	}
	if (auth_plain_parse(out, n, &c) == AUTH_OK) {
		check_cred(&c);
		if (c.user[0] == '\0' || c.passlen == 0)
			abort();
	}
	memset(&c, 0, sizeof(c));
	if (auth_login_field(out, n, &c, true) == AUTH_OK)
		check_cred(&c);
	if (auth_login_field(out, n, &c, false) == AUTH_OK)
		check_cred(&c);
}

static void
fuzz_db_line(const uint8_t *data, size_t size)
{
	char		 line[AUTH_DB_LINE_MAX + 1], *u, *h;
	const char	*why;

	if (size > AUTH_DB_LINE_MAX)
		return;
	memcpy(line, data, size);
	line[size] = '\0';
	if (auth_db_parse_line(line, size, &u, &h, &why) == 1 &&
	    (strlen(u) == 0 || strlen(u) > AUTH_FIELD_MAX ||
	    strlen(h) > AUTH_DB_HASH_MAX || auth_hash_kind(h) ==
	    HASH_UNKNOWN))
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	if (data[0] & 1)
		fuzz_db_line(data + 1, size - 1);
	else
		fuzz_sasl(data + 1, size - 1);
	return 0;
}
