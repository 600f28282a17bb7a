/*
 * test_dns.c: the resolver against a real unbound on loopback, and its
 * pure parts (dns_answer_ttl, dns_parse, dns_reverse) on built replies.
 *
 * The group setup writes an unbound.conf and its local data into a
 * mkdtemp directory, starts /usr/sbin/unbound on a free port (the root is
 * a static local zone: nothing leaves the machine) and kills it by PID at
 * the end. Every test runs the loop until what it waits for has happened
 * or a deadline passed; nothing sleeps, nothing asserts on time.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <cmocka.h>

#include <event2/event.h>

#include "../../src/core/dns.h"

#define UNBOUND		"/usr/sbin/unbound"
#define DEADLINE_S	10.0
#define BIG50	"0123456789abcdefghij0123456789abcdefghij0123456789"
#define BIG250	BIG50 BIG50 BIG50 BIG50 BIG50

static const char *const local_data[] = {
	"a.test. 300 IN A 192.0.2.1",
	"a.test. 300 IN A 192.0.2.2",
	"short.test. 5 IN A 192.0.2.5",
	"v6.test. 300 IN AAAA 2001:db8::1",
	"1.2.0.192.in-addr.arpa. 300 IN PTR Host.Example.TEST.",
	"1.2.0.192.in-addr.arpa. 300 IN PTR other.test.",
	"txt.test. 300 IN TXT \"v=spf1 \" \"ip4:192.0.2.0/24 -all\"",
	"txt.test. 300 IN TXT \"second\"",
	"nul.test. 300 IN TXT \"a\\000b\"",
	"big.test. 300 IN TXT \"" BIG250 "\" \"" BIG250 "\"",
	"big.test. 300 IN TXT \"" BIG250 "\" \"" BIG250 "\" \"x\"",
	"mx.test. 300 IN MX 10 Mail.MX.test.",
	"mx.test. 300 IN MX 20 b.mx.test.",
	"nullmx.test. 300 IN MX 0 .",
	"local-zone: \"neg.test.\" static",
	"neg.test. 3600 IN SOA ns.neg.test. root.neg.test. 1 3600 600 86400 30",
	"x.neg.test. 300 IN A 192.0.2.9",
	"dedup.test. 300 IN A 192.0.2.10",
	"cancel.test. 300 IN A 192.0.2.11",
	"orphan.test. 300 IN A 192.0.2.12",
	"requery.test. 300 IN A 192.0.2.13",
	"b.test. 300 IN A 192.0.2.14",
	"c.test. 300 IN A 192.0.2.15",
};

static char		 tmpdir[] = "/tmp/moat-test-dns-XXXXXX";
static pid_t		 unbound_pid = -1;
static char		 resolver[64];
static struct event_base *base;

/* ---- helpers ---- */

static double
now(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

#define GOT_MAX	8
struct got {
	int		calls;
	enum dns_status	status;
	size_t		n;
	uint32_t	ttl;
	bool		cached;
	char		name[DNS_NAME_MAX + 1];
	int		family[GOT_MAX];
	unsigned char	addr[GOT_MAX][16];
	unsigned	pref[GOT_MAX];
	char		str[GOT_MAX][512];
	size_t		len[GOT_MAX];
};

static void
on_answer(const struct dns_answer *a, void *arg)
{
	struct got	*g = arg;
	size_t		 i;

	g->calls++;
	g->status = a->status;
	g->n = a->n;
	g->ttl = a->ttl;
	g->cached = a->cached;
	snprintf(g->name, sizeof(g->name), "%s", a->name);
	for (i = 0; i < a->n && i < GOT_MAX; i++) {
		g->family[i] = a->rr[i].family;
		memcpy(g->addr[i], a->rr[i].addr, 16);
		g->pref[i] = a->rr[i].pref;
		g->len[i] = a->rr[i].len;
		if (a->rr[i].str != NULL) {
			assert_true(a->rr[i].len < sizeof(g->str[i]));
			memcpy(g->str[i], a->rr[i].str, a->rr[i].len + 1);
		}
	}
}

static void
on_wake(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	*(bool *)arg = true;
}

/* Runs the loop until *calls reaches want or the deadline passes. */
static void
run_until(const int *calls, int want, double secs)
{
	struct timeval	 tv = { (time_t)secs, (long)((secs -
			    (double)(time_t)secs) * 1e6) };
	bool		 late = false;
	struct event	*ev = evtimer_new(base, on_wake, &late);

	evtimer_add(ev, &tv);
	while (*calls < want && !late)
		event_base_loop(base, EVLOOP_ONCE);
	event_free(ev);
}

/* Runs the loop for about secs (the polling step of the expiry test). */
static void
run_for(double secs)
{
	int	never = 0;

	run_until(&never, 1, secs);
}

static struct dns_conf
conf_of(const char *res, long long timeout_ms, long long tries)
{
	struct dns_conf	c = {
		.resolver = (char *)res, .timeout_ms = timeout_ms,
		.tries = tries, .ttl_min = 60, .ttl_max = 3600,
		.cache_size = 1000,
	};

	return c;
}

static void
init_with(const struct dns_conf *c)
{
	char	err[256] = "";

	dns_fini();
	if (dns_init(base, c, err, sizeof(err)) != 0)
		fail_msg("dns_init: %s", err);
}

/* One query to the end: its answer in *g. */
static void
ask(enum dns_type t, const char *name, struct got *g)
{
	memset(g, 0, sizeof(*g));
	assert_non_null(dns_query(t, name, on_answer, g));
	run_until(&g->calls, 1, DEADLINE_S);
	assert_int_equal(g->calls, 1);
}

static bool
has_str(const struct got *g, const char *s)
{
	size_t	i;

	for (i = 0; i < g->n && i < GOT_MAX; i++)
		if (strcmp(g->str[i], s) == 0)
			return true;
	return false;
}

static bool
has_addr(const struct got *g, int family, const char *ip)
{
	unsigned char	bin[16];
	size_t		i;

	assert_int_equal(inet_pton(family, ip, bin), 1);
	for (i = 0; i < g->n && i < GOT_MAX; i++)
		if (g->family[i] == family && memcmp(g->addr[i], bin,
		    family == AF_INET ? 4 : 16) == 0)
			return true;
	return false;
}

/* A UDP socket on 127.0.0.1 that nobody reads, and its port. */
static int
silent_socket(int *port)
{
	struct sockaddr_in	sin = { .sin_family = AF_INET };
	socklen_t		len = sizeof(sin);
	int			fd = socket(AF_INET, SOCK_DGRAM, 0);

	assert_true(fd >= 0);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	*port = ntohs(sin.sin_port);
	return fd;
}

/* A port free for UDP and TCP on 127.0.0.1 when we looked. */
static int
free_port(void)
{
	int	i, port, u, t;

	for (i = 0; i < 100; i++) {
		struct sockaddr_in sin = { .sin_family = AF_INET };

		u = silent_socket(&port);
		t = socket(AF_INET, SOCK_STREAM, 0);
		sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		sin.sin_port = htons((uint16_t)port);
		if (bind(t, (struct sockaddr *)&sin, sizeof(sin)) == 0) {
			close(t);
			close(u);
			return port;
		}
		close(t);
		close(u);
	}
	fail_msg("no free port");
	return -1;
}

static void
path_of(char *out, size_t len, const char *file)
{
	assert_true((size_t)snprintf(out, len, "%s/%s", tmpdir, file) < len);
}

/* How many queries for "name. TYPE IN" unbound's log shows. */
static int
unbound_saw(const char *what)
{
	char	 path[256], line[1024];
	FILE	*f;
	int	 n = 0;

	path_of(path, sizeof(path), "unbound.log");
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (strstr(line, what) != NULL)
			n++;
	fclose(f);
	return n;
}

static void
write_conf(const char *path, int port)
{
	FILE	*f = fopen(path, "w");
	size_t	 i;

	assert_non_null(f);
	fprintf(f, "server:\n"
	    "    interface: 127.0.0.1@%d\n    port: %d\n"
	    "    do-daemonize: no\n    username: \"\"\n    chroot: \"\"\n"
	    "    directory: \"%s\"\n    pidfile: \"\"\n"
	    "    logfile: \"%s/unbound.log\"\n    use-syslog: no\n"
	    "    verbosity: 1\n    log-queries: yes\n"
	    "    access-control: 127.0.0.0/8 allow\n    do-ip6: no\n"
	    "    do-not-query-localhost: yes\n    num-threads: 1\n"
	    "    module-config: \"iterator\"\n"
	    "    local-zone: \".\" static\n", port, port, tmpdir, tmpdir);
	for (i = 0; i < sizeof(local_data) / sizeof(*local_data); i++)
		if (strncmp(local_data[i], "local-", 6) == 0)
			fprintf(f, "    %s\n", local_data[i]);
		else
			fprintf(f, "    local-data: '%s'\n", local_data[i]);
	fprintf(f, "remote-control:\n    control-enable: no\n");
	assert_int_equal(fclose(f), 0);
}

static int
group_setup(void **state)
{
	char		 conf[256], out[256];
	struct dns_conf	 c;
	struct got	 g;
	double		 end;
	int		 port, fd;

	(void)state;
	signal(SIGPIPE, SIG_IGN);
	if (mkdtemp(tmpdir) == NULL)
		return -1;
	port = free_port();
	snprintf(resolver, sizeof(resolver), "127.0.0.1:%d", port);
	path_of(conf, sizeof(conf), "unbound.conf");
	path_of(out, sizeof(out), "unbound.out");
	write_conf(conf, port);
	if ((unbound_pid = fork()) == 0) {
		/* dies with us, even when a test crashes */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		dup2(fd, 1);
		dup2(fd, 2);
		execl(UNBOUND, "unbound", "-d", "-c", conf, (char *)NULL);
		_exit(127);
	}
	if (unbound_pid < 0 || (base = event_base_new()) == NULL)
		return -1;
	/* Ready when a query gets anything but TEMPFAIL (which is not
	 * cached, so every round asks again). */
	c = conf_of(resolver, 200, 1);
	init_with(&c);
	for (end = now() + DEADLINE_S; now() < end;) {
		ask(DNS_A, "ready.invalid", &g);
		if (g.status != DNS_TEMPFAIL)
			break;
		if (waitpid(unbound_pid, NULL, WNOHANG) == unbound_pid) {
			unbound_pid = -1;
			fprintf(stderr, "unbound exited: see %s\n", out);
			return -1;
		}
		run_for(0.05);
	}
	dns_fini();
	return g.status == DNS_NXDOMAIN ? 0 : -1;
}

static int
group_teardown(void **state)
{
	static const char *const files[] = { "unbound.conf", "unbound.log",
	    "unbound.out" };
	char	path[256];
	size_t	i;

	(void)state;
	dns_fini();
	if (unbound_pid > 0) {
		kill(unbound_pid, SIGTERM);
		waitpid(unbound_pid, NULL, 0);
	}
	for (i = 0; i < sizeof(files) / sizeof(*files); i++) {
		path_of(path, sizeof(path), files[i]);
		unlink(path);
	}
	rmdir(tmpdir);
	if (base != NULL)
		event_base_free(base);
	return 0;
}

/* Each test starts on a fresh resolver (empty cache, zero counters). */
static int
setup(void **state)
{
	struct dns_conf	c = conf_of(resolver, 300, 2);

	(void)state;
	init_with(&c);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	dns_fini();
	return 0;
}

/* ---- against unbound ---- */

static void
test_a(void **state)
{
	struct got	g;

	(void)state;
	ask(DNS_A, "A.Test.", &g);
	assert_int_equal(g.status, DNS_OK);
	assert_int_equal(g.n, 2);
	assert_true(has_addr(&g, AF_INET, "192.0.2.1"));
	assert_true(has_addr(&g, AF_INET, "192.0.2.2"));
	assert_string_equal(g.name, "a.test");
	assert_int_equal(g.ttl, 300);
	assert_false(g.cached);
}

static void
test_aaaa(void **state)
{
	struct got	g;

	(void)state;
	ask(DNS_AAAA, "v6.test", &g);
	assert_int_equal(g.status, DNS_OK);
	assert_int_equal(g.n, 1);
	assert_true(has_addr(&g, AF_INET6, "2001:db8::1"));
	ask(DNS_AAAA, "a.test", &g);
	assert_int_equal(g.status, DNS_NODATA);
}

static void
test_ptr(void **state)
{
	struct got	g;
	char		name[DNS_NAME_MAX + 1];
	unsigned char	ip[4] = { 192, 0, 2, 1 };

	(void)state;
	assert_int_equal(dns_reverse(AF_INET, ip, NULL, name, sizeof(name)),
	    0);
	ask(DNS_PTR, name, &g);
	assert_int_equal(g.status, DNS_OK);
	assert_int_equal(g.n, 2);
	assert_true(has_str(&g, "host.example.test"));
	assert_true(has_str(&g, "other.test"));
}

static void
test_txt(void **state)
{
	struct got	g;

	(void)state;
	ask(DNS_TXT, "txt.test", &g);
	assert_int_equal(g.status, DNS_OK);
	assert_int_equal(g.n, 2);
	assert_true(has_str(&g, "v=spf1 ip4:192.0.2.0/24 -all"));
	assert_true(has_str(&g, "second"));
	ask(DNS_TXT, "nul.test", &g);
	assert_int_equal(g.status, DNS_OK);
	assert_int_equal(g.n, 1);
	assert_int_equal(g.len[0], 3);
	assert_memory_equal(g.str[0], "a\0b", 4);
}

/* Past 512 octets: truncated over UDP, asked again over TCP (RFC 1035
 * §4.2.1, RFC 7766), which the socket events must follow. */
static void
test_txt_tcp(void **state)
{
	struct got	g;

	(void)state;
	ask(DNS_TXT, "big.test", &g);
	assert_int_equal(g.status, DNS_OK);
	assert_int_equal(g.n, 2);
	assert_true(has_str(&g, BIG250 BIG250));
	assert_true(has_str(&g, BIG250 BIG250 "x"));
}

static void
test_mx(void **state)
{
	struct got	g;
	size_t		i;

	(void)state;
	ask(DNS_MX, "mx.test", &g);
	assert_int_equal(g.status, DNS_OK);
	assert_int_equal(g.n, 2);
	for (i = 0; i < 2; i++)
		if (g.pref[i] == 10)
			assert_string_equal(g.str[i], "mail.mx.test");
		else {
			assert_int_equal(g.pref[i], 20);
			assert_string_equal(g.str[i], "b.mx.test");
		}
	ask(DNS_MX, "nullmx.test", &g);		/* RFC 7505 */
	assert_int_equal(g.status, DNS_OK);
	assert_int_equal(g.n, 1);
	assert_int_equal(g.pref[0], 0);
	assert_string_equal(g.str[0], "");
	assert_int_equal(g.len[0], 0);
}

static void
test_negative(void **state)
{
	struct dns_stats	st;
	struct dns_conf		c = conf_of(resolver, 300, 2);
	struct got		g;

	(void)state;
	ask(DNS_A, "nx.example", &g);	/* no SOA under ".": ttl_min */
	assert_int_equal(g.status, DNS_NXDOMAIN);
	assert_int_equal(g.ttl, 60);
	/* unbound's own test. zone (RFC 6761) says MINIMUM 10800: ttl_max */
	ask(DNS_A, "nx.test", &g);
	assert_int_equal(g.status, DNS_NXDOMAIN);
	assert_int_equal(g.n, 0);
	assert_int_equal(g.ttl, 3600);
	ask(DNS_MX, "a.test", &g);
	assert_int_equal(g.status, DNS_NODATA);
	ask(DNS_A, "nx.test", &g);	/* negative answers are cached */
	assert_int_equal(g.status, DNS_NXDOMAIN);
	assert_true(g.cached);
	ask(DNS_MX, "a.test", &g);
	assert_int_equal(g.status, DNS_NODATA);
	assert_true(g.cached);
	dns_stats(&st);
	assert_int_equal(st.upstream, 3);
	assert_int_equal(st.cache_hits, 2);

	/* With an SOA: its MINIMUM (30 < its TTL), RFC 2308 §5. */
	c.ttl_min = 1;
	init_with(&c);
	ask(DNS_A, "nx.neg.test", &g);
	assert_int_equal(g.status, DNS_NXDOMAIN);
	assert_int_equal(g.ttl, 30);
	ask(DNS_MX, "x.neg.test", &g);
	assert_int_equal(g.status, DNS_NODATA);
	assert_int_equal(g.ttl, 30);
}

static void
test_ttl_clamp(void **state)
{
	struct dns_conf	c = conf_of(resolver, 300, 2);
	struct got	g;

	(void)state;
	ask(DNS_A, "short.test", &g);	/* TTL 5, cached for ttl_min */
	assert_int_equal(g.status, DNS_OK);
	assert_int_equal(g.ttl, 60);
	ask(DNS_A, "short.test", &g);
	assert_true(g.cached);
	assert_true(g.ttl > 5 && g.ttl <= 60);
	c.ttl_max = 100;
	init_with(&c);
	ask(DNS_A, "a.test", &g);	/* TTL 300, cut to ttl_max */
	assert_int_equal(g.ttl, 100);
}

/* A cached answer comes on a later loop turn, never inside dns_query. */
static void
test_cache_next_turn(void **state)
{
	struct dns_stats	st;
	struct got		g;

	(void)state;
	ask(DNS_A, "a.test", &g);
	assert_false(g.cached);
	memset(&g, 0, sizeof(g));
	assert_non_null(dns_query(DNS_A, "a.TEST", on_answer, &g));
	assert_int_equal(g.calls, 0);
	event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
	assert_int_equal(g.calls, 1);
	assert_int_equal(g.status, DNS_OK);
	assert_true(g.cached);
	assert_int_equal(g.n, 2);
	dns_stats(&st);
	assert_int_equal(st.queries, 2);
	assert_int_equal(st.upstream, 1);
	assert_int_equal(st.cache_hits, 1);
	assert_int_equal(st.cached, 1);
}

/* Two queries in flight for one name: one upstream query, two answers. */
static void
test_dedup(void **state)
{
	struct dns_stats	st;
	struct got		g1, g2, g3;
	int			before = unbound_saw("dedup.test. A IN");

	(void)state;
	memset(&g1, 0, sizeof(g1));
	memset(&g2, 0, sizeof(g2));
	memset(&g3, 0, sizeof(g3));
	assert_non_null(dns_query(DNS_A, "dedup.test", on_answer, &g1));
	assert_non_null(dns_query(DNS_A, "DEDUP.test.", on_answer, &g2));
	assert_non_null(dns_query(DNS_TXT, "dedup.test", on_answer, &g3));
	run_until(&g2.calls, 1, DEADLINE_S);
	run_until(&g3.calls, 1, DEADLINE_S);
	assert_int_equal(g1.calls, 1);
	assert_int_equal(g2.calls, 1);
	assert_int_equal(g1.status, DNS_OK);
	assert_int_equal(g2.status, DNS_OK);
	assert_false(g2.cached);
	assert_int_equal(g3.status, DNS_NODATA);	/* another type */
	dns_stats(&st);
	assert_int_equal(st.shared, 1);
	assert_int_equal(st.upstream, 2);
	assert_int_equal(unbound_saw("dedup.test. A IN") - before, 1);
}

/* A cancelled waiter is never called; the query goes on for the others
 * and fills the cache even when nobody waits any more. */
static void
test_cancel(void **state)
{
	struct dns_stats	 st;
	struct dns_req		*r1;
	struct got		 g1, g2;
	double			 end;

	(void)state;
	memset(&g1, 0, sizeof(g1));
	memset(&g2, 0, sizeof(g2));
	r1 = dns_query(DNS_A, "cancel.test", on_answer, &g1);
	assert_non_null(dns_query(DNS_A, "cancel.test", on_answer, &g2));
	dns_cancel(r1);
	run_until(&g2.calls, 1, DEADLINE_S);
	assert_int_equal(g2.calls, 1);
	assert_int_equal(g1.calls, 0);

	/* a cached answer cancelled before its turn */
	r1 = dns_query(DNS_A, "cancel.test", on_answer, &g1);
	assert_non_null(r1);
	dns_cancel(r1);
	run_for(0.05);
	assert_int_equal(g1.calls, 0);

	/* the only waiter cancelled: the answer still lands in the cache */
	r1 = dns_query(DNS_A, "orphan.test", on_answer, &g1);
	dns_cancel(r1);
	for (end = now() + DEADLINE_S; now() < end;) {
		dns_stats(&st);
		if (st.cached == 2)
			break;
		event_base_loop(base, EVLOOP_ONCE);
	}
	assert_int_equal(g1.calls, 0);
	ask(DNS_A, "orphan.test", &g2);
	assert_true(g2.cached);
	assert_int_equal(g2.status, DNS_OK);
}

/* A resolver that never answers: TEMPFAIL once c-ares gives up, not
 * cached. */
static void
test_timeout(void **state)
{
	struct dns_stats	st;
	struct dns_conf		c;
	struct got		g;
	char			res[64];
	int			port, fd = silent_socket(&port);

	(void)state;
	snprintf(res, sizeof(res), "127.0.0.1:%d", port);
	c = conf_of(res, 300, 2);
	init_with(&c);
	ask(DNS_A, "a.test", &g);
	assert_int_equal(g.status, DNS_TEMPFAIL);
	assert_int_equal(g.n, 0);
	dns_stats(&st);
	assert_int_equal(st.timeouts, 1);
	assert_int_equal(st.tempfails, 1);
	assert_int_equal(st.cached, 0);
	close(fd);
}

/* Nothing listens: ICMP port unreachable, TEMPFAIL without a wait. */
static void
test_refused(void **state)
{
	struct dns_conf	c;
	struct got	g;
	char		res[64];
	int		port, fd = silent_socket(&port);

	(void)state;
	close(fd);
	snprintf(res, sizeof(res), "127.0.0.1:%d", port);
	c = conf_of(res, 300, 1);
	init_with(&c);
	ask(DNS_TXT, "a.test", &g);
	assert_int_equal(g.status, DNS_TEMPFAIL);
}

/* The least recently used entry makes room. */
static void
test_eviction(void **state)
{
	struct dns_stats	st;
	struct dns_conf		c = conf_of(resolver, 300, 2);
	struct got		g;

	(void)state;
	c.cache_size = 2;
	init_with(&c);
	ask(DNS_A, "a.test", &g);
	ask(DNS_A, "b.test", &g);
	ask(DNS_A, "a.test", &g);	/* a is now the most recent */
	assert_true(g.cached);
	ask(DNS_A, "c.test", &g);	/* b goes */
	ask(DNS_A, "a.test", &g);
	assert_true(g.cached);
	ask(DNS_A, "b.test", &g);
	assert_false(g.cached);
	dns_stats(&st);
	assert_int_equal(st.cached, 2);
	assert_int_equal(st.upstream, 4);
}

/* An entry is asked again once its (clamped) TTL has run out. */
static void
test_expiry(void **state)
{
	struct dns_conf	c = conf_of(resolver, 300, 2);
	struct got	g;
	double		end;

	(void)state;
	c.ttl_min = c.ttl_max = 1;
	init_with(&c);
	ask(DNS_A, "a.test", &g);
	assert_int_equal(g.ttl, 1);
	for (end = now() + DEADLINE_S; now() < end;) {
		ask(DNS_A, "a.test", &g);
		if (!g.cached)
			break;
		run_for(0.1);
	}
	assert_false(g.cached);
	assert_int_equal(g.status, DNS_OK);
}

struct requery {
	int		 calls;
	struct dns_req	*other;
	struct got	 again;
	struct dns_req	*again_req;
};

static void
on_requery(const struct dns_answer *a, void *arg)
{
	struct requery	*q = arg;

	q->calls++;
	assert_int_equal(a->status, DNS_OK);
	dns_cancel(q->other);		/* a waiter of the same entry */
	q->again_req = dns_query(DNS_A, a->name, on_answer, &q->again);
}

/* A callback may query the name it got (a cache hit, next turn) and
 * cancel another waiter of the same answer. */
static void
test_callback_reentry(void **state)
{
	struct requery	q;
	struct got	other;

	(void)state;
	memset(&q, 0, sizeof(q));
	memset(&other, 0, sizeof(other));
	assert_non_null(dns_query(DNS_A, "requery.test", on_requery, &q));
	q.other = dns_query(DNS_A, "requery.test", on_answer, &other);
	run_until(&q.calls, 1, DEADLINE_S);
	assert_int_equal(q.calls, 1);
	assert_non_null(q.again_req);
	assert_int_equal(q.again.calls, 0);
	run_until(&q.again.calls, 1, DEADLINE_S);
	assert_int_equal(q.again.calls, 1);
	assert_true(q.again.cached);
	assert_int_equal(other.calls, 0);
}

static void
on_never(const struct dns_answer *a, void *arg)
{
	(void)a, (void)arg;
	fail_msg("a callback ran after dns_fini");
}

/* dns_fini with queries in flight, shared and deferred: no callback, and
 * (under ASan) nothing leaks; the resolver starts again after it. */
static void
test_fini_in_flight(void **state)
{
	struct dns_conf	c;
	struct got	g;
	char		res[64];
	int		port, fd = silent_socket(&port);

	(void)state;
	ask(DNS_A, "a.test", &g);
	assert_non_null(dns_query(DNS_A, "a.test", on_never, NULL));
	assert_non_null(dns_query(DNS_A, "b.test", on_never, NULL));
	assert_non_null(dns_query(DNS_A, "b.test", on_never, NULL));
	assert_non_null(dns_query(DNS_MX, "mx.test", on_never, NULL));
	dns_fini();
	run_for(0.05);
	snprintf(res, sizeof(res), "127.0.0.1:%d", port);
	c = conf_of(res, 300, 1);
	init_with(&c);
	assert_non_null(dns_query(DNS_A, "a.test", on_never, NULL));
	assert_non_null(dns_query(DNS_TXT, "a.test", on_never, NULL));
	event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
	dns_fini();
	run_for(0.05);
	close(fd);
	c = conf_of(resolver, 300, 1);
	init_with(&c);
	ask(DNS_A, "a.test", &g);
	assert_int_equal(g.status, DNS_OK);
}

/* ---- without a server ---- */

static void
test_names(void **state)
{
	char		 name[300];
	struct dns_req	*r;

	(void)state;
	assert_null(dns_query(DNS_A, "", on_never, NULL));
	assert_null(dns_query(DNS_A, ".", on_never, NULL));
	assert_null(dns_query(DNS_A, "a..test", on_never, NULL));
	assert_null(dns_query(DNS_A, ".a.test", on_never, NULL));
	assert_null(dns_query(DNS_A, "a test", on_never, NULL));
	assert_null(dns_query(DNS_A, "a\\.test", on_never, NULL));
	assert_null(dns_query(DNS_TYPE_COUNT, "a.test", on_never, NULL));
	memset(name, 'a', 64);		/* a label of 64 */
	memcpy(name + 64, ".test", 6);
	assert_null(dns_query(DNS_A, name, on_never, NULL));
	name[1] = '.';			/* labels of 1 and 62 */
	assert_non_null(r = dns_query(DNS_A, name, on_never, NULL));
	dns_cancel(r);
	/* 253 octets (RFC 1035 §2.3.4), and one more */
	memset(name, 'a', sizeof(name));
	for (size_t i = 63; i < DNS_NAME_MAX; i += 64)
		name[i] = '.';
	name[DNS_NAME_MAX] = '\0';
	assert_non_null(r = dns_query(DNS_A, name, on_never, NULL));
	dns_cancel(r);
	name[DNS_NAME_MAX] = '.';	/* a trailing dot is allowed */
	name[DNS_NAME_MAX + 1] = '\0';
	assert_non_null(r = dns_query(DNS_A, name, on_never, NULL));
	dns_cancel(r);
	name[DNS_NAME_MAX] = 'a';
	assert_null(dns_query(DNS_A, name, on_never, NULL));
}

static void
test_reverse(void **state)
{
	char		out[DNS_NAME_MAX + 1], zone[300];
	unsigned char	v4[4] = { 192, 0, 2, 1 }, v6[16];

	(void)state;
	assert_int_equal(dns_reverse(AF_INET, v4, NULL, out, sizeof(out)), 0);
	assert_string_equal(out, "1.2.0.192.in-addr.arpa");
	assert_int_equal(dns_reverse(AF_INET, v4, "zen.spamhaus.org.", out,
	    sizeof(out)), 0);
	assert_string_equal(out, "1.2.0.192.zen.spamhaus.org");
	assert_int_equal(inet_pton(AF_INET6, "2001:db8::1", v6), 1);
	assert_int_equal(dns_reverse(AF_INET6, v6, NULL, out, sizeof(out)), 0);
	assert_string_equal(out, "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0."
	    "0.0.8.b.d.0.1.0.0.2.ip6.arpa");
	assert_int_equal(dns_reverse(AF_INET6, v6, "bl.test", out,
	    sizeof(out)), 0);
	assert_string_equal(out, "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0."
	    "0.0.8.b.d.0.1.0.0.2.bl.test");
	/* too long: 64 + 1 + zone past 253, at 253 and one past */
	memset(zone, 'z', sizeof(zone));
	zone[DNS_NAME_MAX - 64] = '\0';		/* 63 nibbles+dots, dot, zone */
	assert_int_equal(dns_reverse(AF_INET6, v6, zone, out, sizeof(out)), 0);
	assert_int_equal(strlen(out), DNS_NAME_MAX);
	zone[DNS_NAME_MAX - 64] = 'z';
	zone[DNS_NAME_MAX - 63] = '\0';
	assert_int_equal(dns_reverse(AF_INET6, v6, zone, out, sizeof(out)),
	    -1);
	/* the buffer: exactly enough, one short */
	assert_int_equal(dns_reverse(AF_INET, v4, NULL, out, 23), 0);
	assert_int_equal(dns_reverse(AF_INET, v4, NULL, out, 22), -1);
	assert_int_equal(dns_reverse(AF_INET, v4, "", out, sizeof(out)), -1);
	assert_int_equal(dns_reverse(AF_UNIX, v4, NULL, out, sizeof(out)), -1);
}

static void
test_conf_bounds(void **state)
{
	struct dns_conf	c = conf_of("", 300, 2);
	char		err[128];

	(void)state;
	dns_fini();
	c.timeout_ms = 0;
	assert_int_equal(dns_init(base, &c, err, sizeof(err)), -1);
	c = conf_of("", 300, 0);
	assert_int_equal(dns_init(base, &c, err, sizeof(err)), -1);
	c = conf_of("", 300, 2);
	c.ttl_min = 100;
	c.ttl_max = 10;
	assert_int_equal(dns_init(base, &c, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "ttl_min"));
	c = conf_of("not an address", 300, 2);
	assert_int_equal(dns_conf_check(&c, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "not an address"));
	assert_int_equal(dns_init(base, &c, err, sizeof(err)), -1);
	c = conf_of("127.0.0.1:5353,[::1]:53,192.0.2.1", 300, 2);
	assert_int_equal(dns_conf_check(&c, err, sizeof(err)), 0);
	c.tries = 11;
	assert_int_equal(dns_conf_check(&c, err, sizeof(err)), -1);
	c = conf_of("", 60000, 10);
	c.ttl_min = c.ttl_max = 604800;
	c.cache_size = 10000000;
	assert_int_equal(dns_conf_check(&c, err, sizeof(err)), 0);
	c.ttl_max = 604801;
	assert_int_equal(dns_conf_check(&c, err, sizeof(err)), -1);
	assert_null(dns_query(DNS_A, "a.test", on_never, NULL));
	c = conf_of("", 300, 2);	/* /etc/resolv.conf */
	assert_int_equal(dns_init(base, &c, err, sizeof(err)), 0);
}

/* ---- the pure parsers on built replies ---- */

struct msg {
	unsigned char	b[512];
	size_t		len;
};

static void
put(struct msg *m, const void *p, size_t n)
{
	assert_true(m->len + n <= sizeof(m->b));
	memcpy(m->b + m->len, p, n);
	m->len += n;
}

static void
put16(struct msg *m, unsigned v)
{
	unsigned char	b[2] = { (unsigned char)(v >> 8), (unsigned char)v };

	put(m, b, 2);
}

static void
put32(struct msg *m, uint32_t v)
{
	put16(m, v >> 16);
	put16(m, v & 0xffff);
}

/* Header and the question "a.test"; rcode, an, ns as given. */
static void
msg_start(struct msg *m, unsigned rcode, unsigned an, unsigned ns,
    unsigned qtype)
{
	m->len = 0;
	put16(m, 0x1234);
	put16(m, 0x8180 | rcode);
	put16(m, 1);
	put16(m, an);
	put16(m, ns);
	put16(m, 0);
	put(m, "\1a\4test\0", 8);
	put16(m, qtype);
	put16(m, 1);
}

static void
msg_a(struct msg *m, uint32_t ttl, unsigned char last)
{
	unsigned char	ip[4] = { 192, 0, 2, last };

	put(m, "\xc0\x0c", 2);
	put16(m, 1);
	put16(m, 1);
	put32(m, ttl);
	put16(m, 4);
	put(m, ip, 4);
}

static void
msg_soa(struct msg *m, uint32_t ttl, uint32_t minimum)
{
	put(m, "\xc0\x0e", 2);		/* "test" */
	put16(m, 6);
	put16(m, 1);
	put32(m, ttl);
	put16(m, 2 + 2 + 20);
	put(m, "\xc0\x0e", 2);
	put(m, "\xc0\x0e", 2);
	put32(m, 1);
	put32(m, 3600);
	put32(m, 600);
	put32(m, 86400);
	put32(m, minimum);
}

static void
test_answer_ttl(void **state)
{
	struct msg		m;
	struct dns_answer	a;

	(void)state;
	msg_start(&m, 0, 2, 0, 1);
	msg_a(&m, 300, 1);
	msg_a(&m, 50, 2);
	assert_int_equal(dns_answer_ttl(m.b, m.len), 50);
	assert_int_equal(dns_parse(DNS_A, m.b, m.len, &a), 0);
	assert_int_equal(a.status, DNS_OK);
	assert_int_equal(a.n, 2);
	assert_int_equal(a.ttl, 50);
	dns_answer_free(&a);
	/* cut anywhere: malformed for us and TEMPFAIL */
	for (; m.len > 0; m.len--) {
		assert_int_equal(dns_answer_ttl(m.b, m.len - 1), -1);
		assert_int_equal(dns_parse(DNS_A, m.b, m.len - 1, &a), 0);
		assert_int_equal(a.status, DNS_TEMPFAIL);
	}
	/* RFC 2181 §8: the top bit set reads as 0 */
	msg_start(&m, 0, 1, 0, 1);
	msg_a(&m, 0x80000001u, 1);
	assert_int_equal(dns_answer_ttl(m.b, m.len), 0);
	/* NXDOMAIN: min(SOA TTL, MINIMUM); none: 0 */
	msg_start(&m, 3, 0, 1, 1);
	msg_soa(&m, 3600, 30);
	assert_int_equal(dns_answer_ttl(m.b, m.len), 30);
	assert_int_equal(dns_parse(DNS_A, m.b, m.len, &a), 0);
	assert_int_equal(a.status, DNS_NXDOMAIN);
	assert_int_equal(a.ttl, 30);
	msg_start(&m, 0, 0, 1, 15);
	msg_soa(&m, 20, 900);
	assert_int_equal(dns_answer_ttl(m.b, m.len), 20);
	assert_int_equal(dns_parse(DNS_MX, m.b, m.len, &a), 0);
	assert_int_equal(a.status, DNS_NODATA);
	msg_start(&m, 3, 0, 0, 1);
	assert_int_equal(dns_answer_ttl(m.b, m.len), 0);
	/* SERVFAIL is TEMPFAIL whatever it holds */
	msg_start(&m, 2, 1, 0, 1);
	msg_a(&m, 300, 1);
	assert_int_equal(dns_parse(DNS_A, m.b, m.len, &a), 0);
	assert_int_equal(a.status, DNS_TEMPFAIL);
	/* a reserved label type (0x40) is malformed */
	msg_start(&m, 0, 0, 0, 1);
	m.b[12] = 0x41;
	assert_int_equal(dns_answer_ttl(m.b, m.len), -1);
	assert_int_equal(dns_answer_ttl(m.b, 11), -1);
	assert_int_equal(dns_answer_ttl(NULL, 0), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_a, setup, teardown),
		cmocka_unit_test_setup_teardown(test_aaaa, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ptr, setup, teardown),
		cmocka_unit_test_setup_teardown(test_txt, setup, teardown),
		cmocka_unit_test_setup_teardown(test_txt_tcp, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_mx, setup, teardown),
		cmocka_unit_test_setup_teardown(test_negative, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_ttl_clamp, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_cache_next_turn, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_dedup, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_eviction, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_expiry, setup, teardown),
		cmocka_unit_test_setup_teardown(test_callback_reentry, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_fini_in_flight, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_names, setup, teardown),
		cmocka_unit_test(test_reverse),
		cmocka_unit_test_setup_teardown(test_conf_bounds, setup,
		    teardown),
		cmocka_unit_test(test_answer_ttl),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
