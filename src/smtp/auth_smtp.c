/*
 * auth_smtp.c: the AUTH command (RFC 4954) on a session: the SASL
 * exchange, the check by a backend, and what a failure costs.
 *
 * The exchange is a state: in ST_AUTH the next line is the client's
 * SASL response and nothing else ("*" cancels, RFC 4954 §4). A check is
 * an async step (STAGE_AUTH, with a token): the passwd file's hashes are
 * checked on the TPOOL_AUTH pool (argon2id costs tens of ms of CPU), and
 * Dovecot is asked over its socket on the loop; either way the session
 * waits in ST_WAIT, its step timer bounds the wait ([auth] timeout, then
 * 454 4.7.0), and a completion that finds the step gone is dropped.
 *
 * Failures: each failed check delays its 535 (fail_delay, doubling with
 * every failure of the session or of the client's address, up to
 * fail_delay_max; the delay is a second STAGE_AUTH step, a timer, not a
 * sleep). max_failures in one session, or max_failures_ip from one
 * address within failure_window, get 421 4.7.0 and the connection is
 * closed; an address over its limit is refused at its next AUTH without
 * a check. The address's failures are a GCRA cell (core/window.c) in a
 * table every worker shares (made at config load, before the fork:
 * auth_fail_table), so a client spread over the workers meets one limit;
 * the count drops by one every failure_window.
 *
 * Secrets: the password and the SASL lines never reach a log (only the
 * mechanism, the user name made printable, and the outcome); the
 * credentials are wiped as soon as the check has them.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "../core/addr.h"
#include "../core/log.h"
#include "../core/tpool.h"
#include "../core/window.h"
#include "auth.h"
#include "auth_dovecot.h"
#include "session_int.h"

enum sasl_phase {
	SASL_PLAIN,		/* PLAIN's one response is due */
	SASL_LOGIN_USER,	/* LOGIN: the user name is due */
	SASL_LOGIN_PASS,	/* LOGIN: the password is due */
	SASL_CHECK,		/* a backend checks (STAGE_AUTH) */
	SASL_DELAY,		/* a failure's delay runs (STAGE_AUTH) */
};

struct auth_sasl {
	enum sasl_phase		 phase;
	struct auth_cred	 cred;
	struct auth_dovecot_req	*dreq;
	char			 canon[AUTH_FIELD_MAX + 1]; /* backend's name */
	const char		*why;		/* a temporary failure's */
	bool			 reserved;	/* a failure taken for the
						 * address while checking */
	double			 verify_ms;
	struct timespec		 t0;
};

/* A password check on the pool; the job owns copies of what it reads. */
struct check_job {
	struct step_token	 tok;
	bool			 known;		/* the user exists */
	bool			 ok;
	double			 ms;
	char			 hash[AUTH_DB_HASH_MAX + 1];
	char			 pass[AUTH_FIELD_MAX + 1];
	size_t			 passlen;
};

/* Failures by client address: max_failures_ip per failure_window. */
static struct window_table	*auth_fails;

int
auth_fail_table(void)
{
	if (auth_fails == NULL &&
	    (auth_fails = window_table_shared("auth", 8192)) != NULL)
		window_table_evict(auth_fails);	/* full must not mean off */
	return auth_fails != NULL ? 0 : -1;
}

/* The name an address's failures count under (addr.h: IPv6 by /64). */
static size_t
fail_key(const struct session *s, char *out, size_t n)
{
	if (addr_client(s->ip, out, n) == -1)
		snprintf(out, n, "%s", s->ip);
	return strlen(out);
}

/* Each failure is a failure_window of debt: the count drops by one
 * every failure_window, so a slow guesser (one failure a little less
 * often than the window) still reaches the limit. */
static struct window_limit
fail_limit(const struct auth_conf *ac)
{
	struct window_limit	l;
	uint64_t		w = (uint64_t)ac->failure_window * 1000;

	l.count = (uint64_t)ac->max_failures_ip;
	l.period_ms = w * l.count < WINDOW_MAX_PERIOD_MS ? w * l.count :
	    WINDOW_MAX_PERIOD_MS;
	return l;
}

static double
mono_ms_since(const struct timespec *t0)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - t0->tv_sec) * 1e3 +
	    (double)(now.tv_nsec - t0->tv_nsec) / 1e6;
}

/* The address's failures, counted host-wide (under --stdio, each
 * process has its own table: the limit is the session's). */
static unsigned
ip_failures(const struct session *s)
{
	struct window_limit	l = fail_limit(s->conf->auth);
	char			k[ADDR_CLIENT_MAX];
	size_t			n = fail_key(s, k, sizeof(k));

	if (auth_fails == NULL)
		(void)auth_fail_table();
	return (unsigned)window_peek(auth_fails, &l, k, n, window_now_ms());
}

/*
 * Takes one failure for the address before the check, so that parallel
 * sessions cannot all guess while the count is below the limit; false
 * when the address is at its limit. The unit is given back when the
 * check does not fail (auth_step_done).
 */
static bool
fail_reserve(struct session *s)
{
	struct window_limit	l = fail_limit(s->conf->auth);
	struct window_result	r;
	char			k[ADDR_CLIENT_MAX];
	size_t			n = fail_key(s, k, sizeof(k));

	if (auth_fails == NULL)
		(void)auth_fail_table();
	r = window_take(auth_fails, &l, k, n, 1, window_now_ms());
	s->sasl->reserved = r.allowed && !r.full;
	return r.allowed;
}

static void
fail_unreserve(struct session *s)
{
	struct window_limit	l = fail_limit(s->conf->auth);
	char			k[ADDR_CLIENT_MAX];
	size_t			n = fail_key(s, k, sizeof(k));

	if (!s->sasl->reserved)
		return;
	s->sasl->reserved = false;
	window_return(auth_fails, &l, k, n, 1, window_now_ms());
}

/* A user name for the log: printable ASCII, quotes and backslashes
 * replaced, cut at 64. Client text, never a secret. */
static const char *
log_user(const char *u, char *out, size_t n)
{
	size_t i;

	for (i = 0; u[i] != '\0' && i + 1 < n && i < 64; i++)
		out[i] = u[i] > ' ' && u[i] < 0x7f && u[i] != '"' &&
		    u[i] != '\\' ? u[i] : '?';
	out[i] = '\0';
	return out;
}

static bool
peer_loopback(const struct session *s)
{
	const struct sockaddr_in	*a4;
	const struct sockaddr_in6	*a6;

	if (s->peer.ss_family == AF_INET) {
		a4 = (const struct sockaddr_in *)(const void *)&s->peer;
		return (ntohl(a4->sin_addr.s_addr) >> 24) == 127;
	}
	if (s->peer.ss_family != AF_INET6)
		return false;
	a6 = (const struct sockaddr_in6 *)(const void *)&s->peer;
	return IN6_IS_ADDR_LOOPBACK(&a6->sin6_addr) ||
	    (IN6_IS_ADDR_V4MAPPED(&a6->sin6_addr) &&
	    a6->sin6_addr.s6_addr[12] == 127);
}

/* RFC 4954 §4, RFC 8314: credentials only under TLS, or in clear from
 * loopback when the operator says so. */
static bool
auth_secure(const struct session *s)
{
	return s->tls || (s->conf->auth->plaintext_loopback &&
	    peer_loopback(s));
}

bool
auth_offered(const struct session *s)
{
	const struct auth_conf *ac = s->conf->auth;

	return ac != NULL && ac->kind != AUTH_NONE && auth_secure(s);
}

/* Ends the exchange: the backend request dropped, the secrets wiped. */
static void
sasl_end(struct session *s)
{
	if (s->sasl == NULL)
		return;
	auth_dovecot_cancel(s->sasl->dreq);
	auth_cred_wipe(&s->sasl->cred);
	explicit_bzero(s->sasl, sizeof(*s->sasl));
	free(s->sasl);
	s->sasl = NULL;
	if (s->state == ST_AUTH)
		session_set_state(s, ST_HELO);
}

void
auth_session_end(struct session *s)
{
	sasl_end(s);
}

static void
log_result(struct session *s, const char *result, const char *extra)
{
	char u[80];

	log_msg(LVL_INFO, s->id, "event=auth mech=%s user=\"%s\" result=%s%s",
	    s->auth_mech, log_user(s->sasl->cred.user, u, sizeof(u)), result,
	    extra);
}

/* Pool thread: the slow part. Touches only the job. */
static void
check_work(void *arg)
{
	struct check_job	*j = arg;
	struct timespec		 t0;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	j->ok = auth_hash_verify(j->hash, j->pass, j->passlen) && j->known;
	j->ms = mono_ms_since(&t0);
	explicit_bzero(j->pass, sizeof(j->pass));
}

/* Loop thread: back to the session, if it still waits for this. */
static void
check_done(void *arg)
{
	struct check_job	*j = arg;
	struct session		*s = session_find(j->tok.sid);

	if (session_step_live(s, j->tok) && s->sasl != NULL)
		s->sasl->verify_ms = j->ms;
	session_auth_step(j->tok, VERDICT(j->ok ? V_ACCEPT : V_DENY));
	explicit_bzero(j, sizeof(*j));
	free(j);
}

/* The passwd file: an unknown user is checked against another user's
 * hash and fails whatever the result (known is false), so time does not
 * tell who exists. -1 when the pool cannot take it. */
static int
check_file(struct session *s, struct step_token tok)
{
	const struct auth_cred	*c = &s->sasl->cred;
	const char		*h = auth_db_find(s->conf->auth->db, c->user);
	struct check_job	*j;

	if ((j = calloc(1, sizeof(*j))) == NULL)
		return -1;
	j->tok = tok;
	j->known = h != NULL;
	snprintf(j->hash, sizeof(j->hash), "%s", h != NULL ? h :
	    auth_db_dummy(s->conf->auth->db));
	memcpy(j->pass, c->pass, c->passlen);
	j->passlen = c->passlen;
	if (tpool_submit_to(TPOOL_AUTH, check_work, check_done, j) == -1) {
		s->sasl->why = errno == EAGAIN ? "busy" : "no_pool";
		explicit_bzero(j, sizeof(*j));
		free(j);
		return -1;
	}
	return 0;
}

static void
dovecot_done(struct step_token tok, int result, const char *user)
{
	struct session	*s = session_find(tok.sid);
	size_t		 i;

	if (session_step_live(s, tok) && s->sasl != NULL) {
		s->sasl->dreq = NULL;	/* it frees itself */
		/* Dovecot's name for the user (auth_username_format),
		 * kept only when it is plain enough for our logs. */
		for (i = 0; user != NULL && user[i] != '\0' &&
		    i < AUTH_FIELD_MAX; i++)
			if ((unsigned char)user[i] < 0x20)
				break;
		if (user != NULL && user[i] == '\0' && i > 0)
			snprintf(s->sasl->canon, sizeof(s->sasl->canon), "%s",
			    user);
		s->sasl->why = "dovecot";
	}
	session_auth_step(tok, VERDICT(result == 1 ? V_ACCEPT : result == 0 ?
	    V_DENY : V_DEFER));
}

/* Addresses as text for Dovecot's lip= and rip=. */
static void
local_ip(const struct session *s, char *out, size_t n)
{
	const void *a;

	snprintf(out, n, "0.0.0.0");
	if (s->locallen == 0)
		return;
	a = s->local.ss_family == AF_INET6 ? (const void *)&((const struct
	    sockaddr_in6 *)(const void *)&s->local)->sin6_addr :
	    (const void *)&((const struct sockaddr_in *)(const void *)
	    &s->local)->sin_addr;
	if (inet_ntop(s->local.ss_family, a, out, (socklen_t)n) == NULL)
		snprintf(out, n, "0.0.0.0");
}

static int
check_dovecot(struct session *s, struct step_token tok)
{
	const struct auth_conf		*ac = s->conf->auth;
	struct auth_dovecot_args	 a;
	char				 lip[48];

	local_ip(s, lip, sizeof(lip));
	a.socket = ac->dovecot_socket;
	a.service = ac->dovecot_service;
	a.user = s->sasl->cred.user;
	a.pass = s->sasl->cred.pass;
	a.passlen = s->sasl->cred.passlen;
	a.lip = lip;
	a.rip = s->ip;
	a.secured = s->tls;
	/* We delay and count failures ourselves; Dovecot's penalty (2^n
	 * s per address) would stack on ours and outlast [auth] timeout. */
	a.no_penalty = !ac->dovecot_penalty;
	s->sasl->dreq = auth_dovecot_start(s->base, &a, tok, dovecot_done);
	if (s->sasl->dreq == NULL)
		s->sasl->why = "dovecot_unreachable";
	return s->sasl->dreq != NULL ? 0 : -1;
}

/* The check took longer than [auth] timeout. */
static void
check_timeout(struct session *s)
{
	if (s->sasl != NULL)
		s->sasl->why = "timeout";
	session_auth_step(session_step(s), VERDICT(V_DEFER));
}

/* A failure's delay is over. */
static void
delay_over(struct session *s)
{
	session_auth_step(session_step(s), VERDICT(V_DENY));
}

/* The credentials are in: the backend's step starts. */
static void
check_start(struct session *s)
{
	struct step_token	tok;
	int			rc;

	if (s->state == ST_AUTH)
		session_set_state(s, ST_HELO);
	if (!fail_reserve(s)) {
		explicit_bzero(s->sasl->cred.pass, sizeof(s->sasl->cred.pass));
		log_msg(LVL_INFO, s->id, "event=auth_refused ip=%s "
		    "reason=ip_failures", s->ip);
		sasl_end(s);
		reply(s, 421, "4.7.0", "%s Too many authentication failures, "
		    "closing", s->conf->hostname);
		session_quit(s);
		return;
	}
	s->sasl->phase = SASL_CHECK;
	clock_gettime(CLOCK_MONOTONIC, &s->sasl->t0);
	session_wait(s, STAGE_AUTH);
	tok = session_step(s);
	session_timer(s, s->conf->auth->timeout, check_timeout);
	rc = s->conf->auth->kind == AUTH_FILE ? check_file(s, tok) :
	    check_dovecot(s, tok);
	/* The secret is the backend's now (the job's copy or the line
	 * sent to Dovecot): ours goes. */
	explicit_bzero(s->sasl->cred.pass, sizeof(s->sasl->cred.pass));
	if (rc == -1)
		session_auth_step(tok, VERDICT(V_DEFER));
}

/* A malformed SASL message: 501, the exchange ends, an error counts. */
static void
sasl_malformed(struct session *s, const char *text)
{
	sasl_end(s);
	reply_error(s, 501, "5.5.2", text);
}

/* One SASL response (or the initial response), base64 as sent. */
static void
sasl_input(struct session *s, const char *p, size_t len, bool initial)
{
	unsigned char	msg[AUTH_MSG_MAX];
	size_t		n = 0;
	enum auth_err	e;

	/* RFC 4954 §4: "=" is an empty initial response. */
	if (!(initial && len == 1 && p[0] == '=') &&
	    auth_b64_decode(p, len, msg, sizeof(msg), &n) == -1) {
		sasl_malformed(s, "Invalid base64 data");
		return;
	}
	switch (s->sasl->phase) {
	case SASL_PLAIN:
		e = auth_plain_parse(msg, n, &s->sasl->cred);
		break;
	case SASL_LOGIN_USER:
	case SASL_LOGIN_PASS:
		e = auth_login_field(msg, n, &s->sasl->cred,
		    s->sasl->phase == SASL_LOGIN_USER);
		break;
	default:
		e = AUTH_MALFORMED;
		break;
	}
	explicit_bzero(msg, sizeof(msg));
	if (e == AUTH_MALFORMED || e == AUTH_TOO_LONG) {
		sasl_malformed(s, e == AUTH_TOO_LONG ? "Authentication data "
		    "too long" : "Malformed authentication data");
		return;
	}
	if (e == AUTH_OK && s->sasl->phase == SASL_LOGIN_USER) {
		s->sasl->phase = SASL_LOGIN_PASS;
		session_set_state(s, ST_AUTH);
		reply(s, 334, NULL, "UGFzc3dvcmQ6");	/* "Password:" */
		return;
	}
	if (e == AUTH_AUTHZID) {
		/* A refusal like a wrong password: counted and delayed. */
		snprintf(s->sasl->cred.user, sizeof(s->sasl->cred.user),
		    "(authzid)");
		if (s->state == ST_AUTH)
			session_set_state(s, ST_HELO);
		s->sasl->phase = SASL_CHECK;
		session_wait(s, STAGE_AUTH);
		session_auth_step(session_step(s), VERDICT(V_DENY));
		return;
	}
	check_start(s);
}

void
auth_command(struct session *s, struct str arg)
{
	const struct auth_conf	*ac = s->conf->auth;
	size_t			 sp;
	struct str		 mech, ir;

	if (ac == NULL || ac->kind == AUTH_NONE) {
		reply_error(s, 502, "5.5.1", "AUTH not available");
		return;
	}
	if (s->authenticated) {		/* RFC 4954 §4 */
		reply_error(s, 503, "5.5.1", "Already authenticated");
		return;
	}
	if (!s->esmtp) {
		reply_error(s, 503, "5.5.1", "Send EHLO first");
		return;
	}
	if (!auth_secure(s)) {		/* RFC 4954 §6 */
		reply_error(s, 538, "5.7.11", "Encryption required for "
		    "requested authentication mechanism");
		return;
	}
	if (ip_failures(s) >= (unsigned)ac->max_failures_ip) {
		log_msg(LVL_INFO, s->id, "event=auth_refused ip=%s "
		    "reason=ip_failures", s->ip);
		reply(s, 421, "4.7.0", "%s Too many authentication failures, "
		    "closing", s->conf->hostname);
		session_quit(s);
		return;
	}
	for (sp = 0; sp < arg.len && arg.p[sp] != ' '; sp++)
		;
	mech = str_make(arg.p, sp);
	ir = sp < arg.len ? str_make(arg.p + sp + 1, arg.len - sp - 1) :
	    str_make(arg.p, 0);
	if (str_ieq(mech, "PLAIN"))
		s->auth_mech = "PLAIN";
	else if (str_ieq(mech, "LOGIN"))
		s->auth_mech = "LOGIN";
	else {
		reply_error(s, 504, "5.5.4", "Unrecognized authentication "
		    "type");
		return;
	}
	if ((s->sasl = calloc(1, sizeof(*s->sasl))) == NULL) {
		reply(s, 454, "4.7.0", "Temporary authentication failure");
		return;
	}
	s->sasl->phase = s->auth_mech[0] == 'P' ? SASL_PLAIN :
	    SASL_LOGIN_USER;
	if (sp < arg.len) {
		sasl_input(s, ir.p, ir.len, true);
		return;
	}
	session_set_state(s, ST_AUTH);
	if (s->sasl->phase == SASL_PLAIN)
		reply(s, 334, NULL, "%s", "");
	else
		reply(s, 334, NULL, "VXNlcm5hbWU6");	/* "Username:" */
}

void
auth_response(struct session *s, const char *line, size_t len)
{
	if (s->sasl == NULL) {		/* cannot happen: ST_AUTH has one */
		session_set_state(s, ST_HELO);
		reply(s, 503, "5.5.1", "No authentication under way");
		return;
	}
	if (len == 1 && line[0] == '*') {
		sasl_end(s);
		reply(s, 501, "5.0.0", "Authentication cancelled");
		return;
	}
	sasl_input(s, line, len, false);
}

void
auth_line_too_long(struct session *s)
{
	sasl_end(s);
	reply_error(s, 500, "5.5.6", "Authentication Exchange line is too "
	    "long");
}

/* The delay of failure n: fail_delay doubling, capped. */
static long long
fail_delay(const struct auth_conf *ac, unsigned n)
{
	long long d = ac->fail_delay;

	while (n-- > 1 && d < ac->fail_delay_max)
		d *= 2;
	return d < ac->fail_delay_max ? d : ac->fail_delay_max;
}

/* A failed check: counted, then its reply waits out the delay. */
static void
check_failed(struct session *s)
{
	const struct auth_conf	*ac = s->conf->auth;
	unsigned		 n, ipn;
	long long		 delay;
	char			 extra[128];

	/* The failure was taken before the check (fail_reserve). */
	s->sasl->reserved = false;
	ipn = ip_failures(s);
	n = ++s->auth_failures > ipn ? s->auth_failures : ipn;
	delay = fail_delay(ac, n);
	snprintf(extra, sizeof(extra), " failures=%u ip_failures=%u "
	    "delay_ms=%lld verify_ms=%.1f", s->auth_failures, ipn, delay,
	    s->sasl->verify_ms);
	log_result(s, "fail", extra);
	s->sasl->phase = SASL_DELAY;
	session_wait(s, STAGE_AUTH);
	session_timer_ms(s, delay, delay_over);
	if (delay == 0)
		delay_over(s);
}

/* After the delay: 535, or 421 and close past a limit. */
static void
fail_reply(struct session *s)
{
	const struct auth_conf *ac = s->conf->auth;

	sasl_end(s);
	if (s->auth_failures >= (unsigned)ac->max_failures ||
	    ip_failures(s) >= (unsigned)ac->max_failures_ip) {
		log_msg(LVL_INFO, s->id, "event=disconnect reason=auth_failures "
		    "count=%u", s->auth_failures);
		reply(s, 421, "4.7.0", "%s Too many authentication failures, "
		    "closing", s->conf->hostname);
		session_quit(s);
		return;
	}
	reply(s, 535, "5.7.8", "Authentication credentials invalid");
}

void
auth_step_done(struct session *s, struct verdict v)
{
	char extra[96];

	session_timer(s, 0, NULL);
	if (s->sasl == NULL)
		return;
	if (s->sasl->phase == SASL_DELAY) {
		fail_reply(s);
		return;
	}
	auth_dovecot_cancel(s->sasl->dreq);
	s->sasl->dreq = NULL;
	if (v.code == V_DENY) {
		check_failed(s);
		return;
	}
	fail_unreserve(s);	/* not a failed guess */
	if (v.code == V_DEFER) {
		snprintf(extra, sizeof(extra), " reason=%s", s->sasl->why !=
		    NULL ? s->sasl->why : "backend");
		log_result(s, "tempfail", extra);
		sasl_end(s);
		reply(s, 454, "4.7.0", "Temporary authentication failure");
		return;
	}
	snprintf(s->auth_user, sizeof(s->auth_user), "%s",
	    s->sasl->canon[0] != '\0' ? s->sasl->canon : s->sasl->cred.user);
	s->authenticated = true;
	snprintf(extra, sizeof(extra), " ms=%.1f verify_ms=%.1f",
	    mono_ms_since(&s->sasl->t0), s->sasl->verify_ms);
	log_result(s, "ok", extra);
	sasl_end(s);
	reply(s, 235, "2.7.0", "Authentication successful");
}
