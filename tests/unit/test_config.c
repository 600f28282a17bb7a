/*
 * test_config.c: option tables and the whole configuration loader;
 * every error names file:line.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "../../src/daemon/conf.h"

static char dir[] = "/tmp/moat-test-config-XXXXXX";

static const char *
write_file(const char *name, const char *text)
{
	static char	path[512];
	FILE		*fp;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fp = fopen(path, "w");
	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
	return path;
}

/* Loads text as moat.conf; returns the error ("" when it loaded). */
static const char *
load(const char *text)
{
	static char		 err[1024];
	struct moat_config	*cf;

	err[0] = '\0';
	cf = conf_load(write_file("moat.conf", text), err, sizeof(err));
	if (cf != NULL) {
		conf_free(cf);
		return "";
	}
	assert_true(err[0] != '\0');
	return strstr(err, "moat.conf") ? strstr(err, "moat.conf") : err;
}

struct sample {
	long long	n;
	long long	size;
	bool		b;
	char		*s;
};

static const struct opt sample_opts[] = {
	{ "n", OPT_INT, "5", 1, 10, offsetof(struct sample, n), "" },
	{ "size", OPT_SIZE, "1k", 0, 1 << 20, offsetof(struct sample, size),
	    "" },
	{ "b", OPT_BOOL, "no", 0, 0, offsetof(struct sample, b), "" },
	{ "s", OPT_STR, "x", 0, 0, offsetof(struct sample, s), "" },
	OPT_END
};

static void
test_opt_table(void **state)
{
	struct sample	o, c;
	char		err[256];

	(void)state;
	memset(&o, 0, sizeof(o));
	assert_int_equal(opt_defaults(sample_opts, &o, NULL, err,
	    sizeof(err)), 0);
	assert_int_equal(o.n, 5);
	assert_int_equal(o.size, 1024);
	assert_false(o.b);
	assert_string_equal(o.s, "x");
	/* Bounds at N and N+1. */
	assert_int_equal(opt_set(sample_opts, &o, "n", "10", NULL, err,
	    sizeof(err)), 0);
	assert_int_equal(opt_set(sample_opts, &o, "n", "11", NULL, err,
	    sizeof(err)), -1);
	assert_int_equal(opt_set(sample_opts, &o, "n", "0", NULL, err,
	    sizeof(err)), -1);
	assert_int_equal(opt_set(sample_opts, &o, "size", "1M", NULL, err,
	    sizeof(err)), 0);
	assert_int_equal(o.size, 1 << 20);
	assert_int_equal(opt_set(sample_opts, &o, "size", "1025k", NULL, err,
	    sizeof(err)), -1);
	assert_int_equal(opt_set(sample_opts, &o, "size", "12q", NULL, err,
	    sizeof(err)), -1);
	assert_int_equal(opt_set(sample_opts, &o, "b", "on", NULL, err,
	    sizeof(err)), 0);
	assert_true(o.b);
	assert_int_equal(opt_set(sample_opts, &o, "b", "maybe", NULL, err,
	    sizeof(err)), -1);
	assert_int_equal(opt_set(sample_opts, &o, "zz", "1", NULL, err,
	    sizeof(err)), -2);
	memcpy(&c, &o, sizeof(c));
	assert_int_equal(opt_copy(sample_opts, &c, &o), 0);
	assert_ptr_not_equal(c.s, o.s);
	assert_string_equal(c.s, o.s);
	opt_free(sample_opts, &c);
	opt_free(sample_opts, &o);
}

static void
test_conf_errors(void **state)
{
	char		 long_line[400];
	const char	*e;

	(void)state;
	write_file("users", "alice@example.test\n");
	assert_string_equal(load("[server]\nlocal_domains = example.test\n"),
	    "");
	assert_string_equal(load("[server]\n\nbogus = 1\n"),
	    "moat.conf:3: unknown key 'bogus' in [server]");
	assert_string_equal(load("[server]\nmax_recipients = 0\n"),
	    "moat.conf:2: max_recipients: '0' is not a number from 1 to "
	    "10000");
	assert_string_equal(load("[nosuch]\nx = 1\n"),
	    "moat.conf:2: unknown section [nosuch]");
	assert_string_equal(load("[pipeline]\nfilters = relay nosuch\n"),
	    "moat.conf:2: no filter named 'nosuch'");
	assert_string_equal(load("[server]\n[domain example.org]\n"
	    "relay.nosuch = 1\n"),
	    "moat.conf:3: unknown key 'nosuch' in [relay]");
	assert_string_equal(load("[domain example.org]\nfoo = 1\n"),
	    "moat.conf:2: 'foo': expected filter.key or delivery.key");
	assert_string_equal(load("[server]\nthis is not ini\n"),
	    "moat.conf:2: syntax error (expected [section] or key = value)");
	snprintf(long_line, sizeof(long_line), "[server]\nbanner = %0300d\n",
	    0);
	assert_string_equal(load(long_line),
	    "moat.conf:2: line longer than 198 characters");
	assert_string_equal(load("[delivery]\nmethod = carrier-pigeon\n"),
	    "moat.conf:2: [delivery]: method: 'carrier-pigeon' is not "
	    "maildir, smtp, lmtp or qmail-queue");
	/* A list file's error: where moat.conf names it, and its own
	 * file:line. */
	write_file("nets", "10.0.0.0/8\nnot-a-network\n");
	e = load("[server]\nbanner = x\n[relay]\nallow_localhost = no\n"
	    "networks = nets\n");
	assert_int_equal(strncmp(e, "moat.conf:4: [relay]: ", 22), 0);
	assert_non_null(strstr(e,
	    "nets:2: 'not-a-network' is not an address or network"));
	assert_non_null(strstr(load("[domain example.org]\n"
	    "relay.networks = nets\n"), "moat.conf:2: [domain example.org]: "));
}

static void
test_conf_domains(void **state)
{
	char			 err[512];
	struct moat_config	*cf;
	const struct policy	*p;

	(void)state;
	write_file("users2", "carol@example.org\n");
	cf = conf_load(write_file("moat.conf", "[server]\nlocal_domains = "
	    "example.test example.org\n[domain Example.ORG]\n"
	    "recipients.users = users2\ndelivery.method = maildir\n"
	    "[recipients]\nusers = users\n"), err, sizeof(err));
	assert_non_null(cf);
	pipeline_active = cf->pl;
	assert_int_equal(cf->pl->ndomains, 1);
	p = pipeline_policy_for("example.org");
	assert_ptr_not_equal(p, cf->pl->def);
	assert_ptr_equal(pipeline_policy_for("example.test"), cf->pl->def);
	assert_true(pipeline_is_local(p, "EXAMPLE.test"));
	assert_false(pipeline_is_local(p, "example.test.evil.com"));
	assert_false(pipeline_is_local(p, "evilexample.test"));
	conf_free(cf);
}

static int
setup(void **state)
{
	(void)state;
	return mkdtemp(dir) == NULL ? -1 : 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_opt_table),
		cmocka_unit_test(test_conf_errors),
		cmocka_unit_test(test_conf_domains),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
