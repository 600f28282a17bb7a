/*
 * command.c: the SMTP command table and what each command does.
 *
 * One table says which verb is legal in which state (RFC 5321 §4.1.4);
 * handlers parse with the pure parsers of parse.c, ask the pipeline, and
 * reply once the pipeline's verdict is in (command_stage_done()).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "../core/log.h"
#include "pregreet.h"
#include "session_int.h"

bool	session_shutting_down;

/*
 * The memory budget for message data (ARCHITECTURE §1): a message being
 * read holds at most message_memory bytes of RAM, then it is spilled to
 * an unlinked file under var_dir and only its pages (given back as it
 * grows) cost memory. Each message in progress reserves message_memory
 * from the worker's message_memory_budget; when that is spent, new DATA
 * and BDAT get 452 4.3.1 and the client retries later.
 */
static long long	msgmem_reserved;
static bool		spill_warned;

#define S(x)		(1u << (x))
#define ANY_CMD		(S(ST_GREET) | S(ST_HELO) | S(ST_MAIL) | S(ST_RCPT))
/* Between BDAT chunks only these (RFC 3030 §2; RSET ends it). */
#define IN_CHUNKS	(S(ST_BDAT_NEXT) | S(ST_BDAT_FAILED))
#define HEADER_ROOM	4096	/* bytes we may prepend (Received:) */

typedef void (*handler_fn)(struct session *, struct command *);

static void	cmd_helo(struct session *, struct command *);
static void	cmd_mail(struct session *, struct command *);
static void	cmd_rcpt(struct session *, struct command *);
static void	cmd_data(struct session *, struct command *);
static void	cmd_bdat(struct session *, struct command *);
static void	cmd_rset(struct session *, struct command *);
static void	cmd_noop(struct session *, struct command *);
static void	cmd_quit(struct session *, struct command *);
static void	cmd_vrfy(struct session *, struct command *);
static void	cmd_expn(struct session *, struct command *);
static void	cmd_help(struct session *, struct command *);
static void	cmd_starttls(struct session *, struct command *);
static void	cmd_auth(struct session *, struct command *);

static const struct {
	enum verb	 verb;
	unsigned	 states;	/* where the verb is legal */
	bool		 utf8;		/* may carry UTF-8 (RFC 6531) */
	handler_fn	 fn;
	const char	*wrong;		/* reply text when out of sequence */
} commands[] = {
	{ VERB_HELO, ANY_CMD, false, cmd_helo, NULL },
	{ VERB_EHLO, ANY_CMD, false, cmd_helo, NULL },
	{ VERB_MAIL, S(ST_HELO), true, cmd_mail, "Send HELO/EHLO first" },
	{ VERB_RCPT, S(ST_MAIL) | S(ST_RCPT), true, cmd_rcpt,
	    "Need MAIL before RCPT" },
	{ VERB_DATA, S(ST_MAIL) | S(ST_RCPT), false, cmd_data,
	    "Need RCPT before DATA" },
	/* BDAT is taken everywhere: out of sequence, its chunk is still
	 * read and dropped, never parsed as commands (cmd_bdat). */
	{ VERB_BDAT, ANY_CMD | IN_CHUNKS, false, cmd_bdat, NULL },
	{ VERB_RSET, ANY_CMD | IN_CHUNKS, false, cmd_rset, NULL },
	{ VERB_NOOP, ANY_CMD | IN_CHUNKS, true, cmd_noop, NULL },
	{ VERB_QUIT, ANY_CMD | IN_CHUNKS, false, cmd_quit, NULL },
	{ VERB_VRFY, ANY_CMD, true, cmd_vrfy, NULL },
	{ VERB_EXPN, ANY_CMD, true, cmd_expn, NULL },
	{ VERB_HELP, ANY_CMD, false, cmd_help, NULL },
	{ VERB_STARTTLS, S(ST_HELO), false, cmd_starttls,
	    "Send EHLO first" },
	/* RFC 4954 §4: after EHLO, never inside a transaction. */
	{ VERB_AUTH, S(ST_HELO), false, cmd_auth,
	    "AUTH only after EHLO and outside a mail transaction" },
};

/*
 * The pre-greeting test, postscreen's without the reconnect: a "220-"
 * teaser, then a wait (a timer: no worker time) before the final "220 ".
 * An SMTP client waits for the final line (RFC 5321 §4.2.1); a bot that
 * talks first is an early talker: dropped at once (pregreet_drop) or
 * refused at RCPT (delay-deny; postmaster@ and abuse@ exempt). A client
 * that waited is remembered for pregreet_ttl and greeted at once next
 * time; past pregreet_busy sessions the wait is the shorter
 * pregreet_busy_wait_ms.
 */
static void
pregreet_done(struct session *s)
{
	if (s->state != ST_PREGREET)
		return;
	if (s->pregreet != 3) {
		s->pregreet = 1;
		pregreet_remember(s->ip, s->conf->pregreet_ttl);
	}
	log_msg(LVL_INFO, s->id, "event=pregreet result=%s", s->pregreet == 3 ?
	    "talked" : "waited");
	session_set_state(s, ST_GREET);
	reply(s, 220, NULL, "%s ESMTP %s", s->conf->hostname,
	    s->conf->banner);
	session_kick(s);		/* buffered input, the flush; may free s */
}

void
command_pregreet_talk(struct session *s)
{
	if (s->pregreet == 3)
		return;
	s->pregreet = 3;
	log_msg(LVL_INFO, s->id, "event=early_talker ip=%s", s->ip);
	if (s->conf->pregreet_drop) {
		session_timer(s, 0, NULL);
		reply(s, 554, "5.5.1", "%s Protocol error: talking before the "
		    "greeting; closing", s->conf->hostname);
		session_quit(s);
	}
}

void
command_greet(struct session *s)
{
	long long wait = s->conf->pregreet_wait_ms;

	if (wait > 0 && !s->stdio && !s->trusted && !s->client_allowed &&
	    !pregreet_remembered(s->ip, s->conf->pregreet_ttl)) {
		if (s->conf->pregreet_busy > 0 &&
		    session_count() > (size_t)s->conf->pregreet_busy)
			wait = s->conf->pregreet_busy_wait_ms;
		session_set_state(s, ST_PREGREET);
		evbuffer_add_printf(bufferevent_get_output(s->bev),
		    "220-%s ESMTP %s\r\n", s->conf->hostname, s->conf->banner);
		session_timer_ms(s, wait, pregreet_done);
		return;
	}
	if (wait > 0)
		s->pregreet = 2;
	session_set_state(s, ST_GREET);
	reply(s, 220, NULL, "%s ESMTP %s", s->conf->hostname,
	    s->conf->banner);
}

/* A line no SMTP client sends as a command: an HTTP request, or a header
 * field (a proxy or a bot speaking the wrong protocol, or a message sent
 * without DATA). postscreen's "non-SMTP command" test. */
static bool
non_smtp(const char *line, size_t len)
{
	static const char *const http[] = { "GET ", "POST ", "HEAD ", "PUT ",
	    "CONNECT ", "OPTIONS " };
	size_t i;

	for (i = 0; i < sizeof(http) / sizeof(http[0]); i++)
		if (len >= strlen(http[i]) && strncmp(line, http[i],
		    strlen(http[i])) == 0)
			return true;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)line[i];

		if (c == ':')
			return i > 0;
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9') || c == '-'))
			return false;
	}
	return false;
}

/*
 * The trace of a command line: client text cut at LIMIT_LOG_QUOTE, and
 * an AUTH line only up to its mechanism (its initial response holds the
 * password in base64).
 */
static void
command_trace(struct session *s, const char *line, size_t len)
{
	size_t n = len > LIMIT_LOG_QUOTE ? LIMIT_LOG_QUOTE : len;

	if (len >= 5 && strncasecmp(line, "AUTH ", 5) == 0) {
		for (n = 5; n < len && line[n] != ' '; n++)
			;
		log_msg(LVL_TRACE, s->id, "in=\"%.*s%s\"", (int)(n > 32 ?
		    32 : n), line, n < len ? " <initial response>" : "");
		return;
	}
	log_msg(LVL_TRACE, s->id, "in=\"%.*s\"", (int)n, line);
}

void
command_line(struct session *s, char *line, size_t len)
{
	struct command	 cmd;
	enum parse_err	 e;
	size_t		 i;

	/* A SASL response is a secret: only its length is traced. */
	if (s->state == ST_AUTH) {
		if (log_enabled(LVL_TRACE))
			log_msg(LVL_TRACE, s->id, "in=<sasl response, %zu "
			    "octets>", len);
		auth_response(s, line, len);
		return;
	}
	if (log_enabled(LVL_TRACE))
		command_trace(s, line, len);
	e = parse_command(line, len, &cmd);
	if (e == PARSE_NUL || e == PARSE_CTRL) {
		reply_error(s, 500, "5.5.2", "Syntax error (control character "
		    "in command)");
		return;
	}
	if (session_shutting_down && s->txn == NULL) {
		reply(s, 421, "4.3.2", "%s Service shutting down",
		    s->conf->hostname);
		session_quit(s);
		return;
	}
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (commands[i].verb == cmd.verb)
			break;
	if (i == sizeof(commands) / sizeof(commands[0])) {
		if (s->conf->non_smtp_drop && non_smtp(line, len)) {
			log_msg(LVL_INFO, s->id, "event=non_smtp_command");
			reply(s, 554, "5.5.1", "%s Not an SMTP command; closing",
			    s->conf->hostname);
			session_quit(s);
			return;
		}
		reply_error(s, 500, "5.5.2", "Command unrecognized");
		return;
	}
	if (cmd.has8bit && (!commands[i].utf8 || !s->conf->smtputf8 ||
	    e == PARSE_BAD_UTF8)) {
		reply_error(s, 500, "5.5.2", "Syntax error (8-bit data in "
		    "command)");
		return;
	}
	if (!(commands[i].states & S(s->state))) {
		reply_error(s, 503, "5.5.1", s->state == ST_BDAT_NEXT ?
		    "Only BDAT, RSET, NOOP or QUIT while a message is being "
		    "sent in chunks" : s->state == ST_BDAT_FAILED ?
		    "Transaction failed; send RSET" :
		    commands[i].verb == VERB_MAIL && (s->state == ST_MAIL ||
		    s->state == ST_RCPT) ? "Sender already specified (nested "
		    "MAIL; send RSET to start over)" : commands[i].wrong !=
		    NULL ? commands[i].wrong : "Bad sequence of commands");
		return;
	}
	commands[i].fn(s, &cmd);
}

/*
 * A HELO/EHLO argument must be a domain or an address literal (RFC 5321
 * §4.1.1.1): it goes into our Received line. Underscores and one
 * trailing dot are let through, as common client software sends them;
 * whether the name is plausible is for the HELO checks to weigh.
 */
static bool
helo_literal_ok(struct str a)
{
	char		 ip[64];
	unsigned char	 bin[16];

	if (!parse_domain_ok(a.p, a.len, false) || a.len - 2 >= sizeof(ip))
		return false;
	memcpy(ip, a.p + 1, a.len - 2);
	ip[a.len - 2] = '\0';
	if (strncasecmp(ip, "IPv6:", 5) == 0)
		return inet_pton(AF_INET6, ip + 5, bin) == 1;
	/* A general literal has a tag (RFC 5321 §4.1.3); else IPv4. */
	return strchr(ip, ':') != NULL || inet_pton(AF_INET, ip, bin) == 1;
}

static bool
helo_ok(struct str a)
{
	size_t	i, n = a.len;
	bool	dot = true;	/* at the start or after a dot */

	if (n == 0 || n > LIMIT_HELO)
		return false;
	if (a.p[0] == '[')
		return helo_literal_ok(a);
	if (a.p[n - 1] == '.')
		n--;
	for (i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)a.p[i];

		/* A label neither starts nor ends with a hyphen. */
		if (ch == '.') {
			if (dot || a.p[i - 1] == '-')
				return false;
			dot = true;
		} else if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' &&
		    ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_' ||
		    (ch == '-' && !dot))
			dot = false;
		else
			return false;
	}
	return n > 0 && !dot && a.p[n - 1] != '-';
}

static void
cmd_helo(struct session *s, struct command *c)
{
	if (!helo_ok(c->arg)) {
		reply_error(s, 501, "5.5.4", "Syntax: HELO/EHLO hostname (a "
		    "domain or an address literal)");
		return;
	}
	txn_reset(s);
	tls_describe(s);
	str_copy(s->helo, sizeof(s->helo), c->arg);
	s->esmtp = c->verb == VERB_EHLO;
	session_stage(s, STAGE_HELO);
}

static void
helo_reply(struct session *s)
{
	struct evbuffer *out = bufferevent_get_output(s->bev);

	if (!s->esmtp) {
		reply(s, 250, NULL, "%s", s->conf->hostname);
		return;
	}
	evbuffer_add_printf(out, "250-%s\r\n", s->conf->hostname);
	if (s->conf->pipelining)
		evbuffer_add_printf(out, "250-PIPELINING\r\n");
	evbuffer_add_printf(out, "250-SIZE %lld\r\n",
	    s->conf->max_message_size);
	evbuffer_add_printf(out, "250-8BITMIME\r\n");
	evbuffer_add_printf(out, "250-ENHANCEDSTATUSCODES\r\n");
	if (s->tls_ctx != NULL && !s->tls)
		evbuffer_add_printf(out, "250-STARTTLS\r\n");
	if (auth_offered(s))
		evbuffer_add_printf(out, "250-AUTH PLAIN LOGIN\r\n");
	if (s->conf->smtputf8)
		evbuffer_add_printf(out, "250-SMTPUTF8\r\n");
	if (s->conf->chunking)
		evbuffer_add_printf(out, "250-CHUNKING\r\n");
	evbuffer_add_printf(out, "250 HELP\r\n");
}

/* Maps a path parse failure to its reply (RFC 5321 §4.2.3, RFC 3463). */
static void
path_error(struct session *s, enum parse_err e, bool is_rcpt)
{
	switch (e) {
	case PARSE_TOO_LONG:
		reply_error(s, 501, is_rcpt ? "5.1.3" : "5.1.7",
		    "Address too long");
		break;
	case PARSE_PARAM:
		reply_error(s, 555, "5.5.4", "Unsupported parameter");
		break;
	case PARSE_PARAM_VALUE:
		reply_error(s, 501, "5.5.4", "Bad parameter value");
		break;
	default:
		reply_error(s, 501, is_rcpt ? "5.1.3" : "5.1.7",
		    "Bad address syntax");
		break;
	}
}

static void
cmd_mail(struct session *s, struct command *c)
{
	struct txn	*t;
	struct str	 rest;
	enum parse_err	 e;

	if (!str_iprefix(c->arg, "FROM:")) {
		reply_error(s, 501, "5.5.4", "Syntax: MAIL FROM:<address>");
		return;
	}
	/* A submission listener takes mail from its users only (RFC 6409
	 * §4.3, RFC 4954 §6: 530 5.7.0). */
	if (s->conf->auth_required && !s->authenticated) {
		reply_error(s, 530, "5.7.0", "Authentication required");
		return;
	}
	/* The transaction exists from MAIL to its end, not while idle. */
	if ((t = s->txn = calloc(1, sizeof(*s->txn))) == NULL) {
		reply(s, 451, "4.3.0", "Out of memory");
		return;
	}
	c->arg.p += 5;
	c->arg.len -= 5;
	e = parse_path(c->arg, &t->from, &rest, true, false,
	    s->conf->smtputf8);
	if (e == PARSE_OK)
		e = parse_mail_params(rest, &t->params);
	if (e != PARSE_OK)
		path_error(s, e, false);
	else if (!s->esmtp && rest.len > 0)
		reply_error(s, 555, "5.5.4", "Parameters need EHLO");
	else if (t->params.body == BODY_BINARYMIME)
		reply_error(s, 555, "5.5.4", "BINARYMIME not supported");
	else if (t->from.utf8 && !t->params.smtputf8)
		reply_error(s, 553, "5.6.7", "Non-ASCII address needs SMTPUTF8");
	else if (t->params.size > s->conf->max_message_size)
		reply(s, 552, "5.3.4", "Message too big (limit %lld bytes)",
		    s->conf->max_message_size);
	else {
		t->active = true;
		t->seq = ++s->ntxn;
		/* The session's protocol findings weigh in every message. */
		if (s->proto & PROTO_PIPELINING)
			session_symbol(s, "PROTO_PIPELINING",
			    s->conf->score_pipelining);
		if (s->proto & PROTO_BARE_LF)
			session_symbol(s, "PROTO_BARE_LF",
			    s->conf->score_bare_lf);
		clock_gettime(CLOCK_REALTIME, &t->t_mail);
		t->delayed = VERDICT(V_CONTINUE);
		session_stage(s, STAGE_MAIL);
		return;
	}
	txn_reset(s);
}

/* True when "[a.b.c.d]" or "[IPv6:...]" is the address the client
 * connected to: mail for us by address (RFC 5321 §4.1.3). */
static bool
literal_is_ours(const struct session *s, const char *lit)
{
	char		 ip[64];
	unsigned char	 a[16];
	size_t		 n = strlen(lit);
	int		 af = AF_INET;

	if (n < 3 || n - 2 >= sizeof(ip) || s->locallen == 0)
		return false;
	snprintf(ip, sizeof(ip), "%.*s", (int)(n - 2), lit + 1);
	if (strncasecmp(ip, "IPv6:", 5) == 0) {
		memmove(ip, ip + 5, strlen(ip + 5) + 1);
		af = AF_INET6;
	}
	if (inet_pton(af, ip, a) != 1 || s->local.ss_family != af)
		return false;
	if (af == AF_INET)
		return memcmp(a, &((const struct sockaddr_in *)(const void *)
		    &s->local)->sin_addr, 4) == 0;
	return memcmp(a, &((const struct sockaddr_in6 *)(const void *)
	    &s->local)->sin6_addr, 16) == 0;
}

/* Stores a recipient attempt; NULL past the limit. */
static struct rcpt *
rcpt_add(struct session *s)
{
	struct txn	*t = s->txn;
	struct rcpt	*r;
	size_t		 cap;

	if (t->nrcpt >= (size_t)s->conf->max_recipients * 2)
		return NULL;
	if (t->nrcpt == t->cap) {
		cap = t->cap ? t->cap * 2 : 4;
		if ((r = reallocarray(t->rcpts, cap, sizeof(*r))) == NULL)
			return NULL;
		t->rcpts = r;
		t->cap = cap;
	}
	r = &t->rcpts[t->nrcpt++];
	memset(r, 0, sizeof(*r));
	return r;
}

/* An accepted recipient with the same address, or NULL. The domain is
 * compared without case; the local part as sent (RFC 5321 §2.4). */
static const struct rcpt *
rcpt_duplicate(const struct txn *t, const struct path *p)
{
	size_t i;

	for (i = 0; i < t->nrcpt; i++)
		if (t->rcpts[i].accepted &&
		    strcmp(t->rcpts[i].path.local, p->local) == 0 &&
		    strcasecmp(t->rcpts[i].path.domain, p->domain) == 0)
			return &t->rcpts[i];
	return NULL;
}

/* After the filters: r, rewritten by one of them, is an address already
 * accepted (a local part of ours compared without case: it is the same
 * mailbox). */
static bool
rcpt_rewritten_duplicate(const struct txn *t, const struct rcpt *r)
{
	size_t i;

	for (i = 0; i < t->nrcpt; i++)
		if (&t->rcpts[i] != r && t->rcpts[i].accepted &&
		    strcasecmp(t->rcpts[i].path.domain, r->path.domain) == 0 &&
		    (r->local ? strcasecmp(t->rcpts[i].path.local,
		    r->path.local) : strcmp(t->rcpts[i].path.local,
		    r->path.local)) == 0)
			return true;
	return false;
}

/* True when every host of a source route is ours. */
static bool
route_is_local(const struct session *s, const struct policy *p,
    const char *hosts)
{
	char	 buf[LIMIT_PATH + 1], *h, *next;

	snprintf(buf, sizeof(buf), "%s", hosts);
	for (h = buf; h != NULL; h = next) {
		if ((next = strchr(h, ',')) != NULL)
			*next++ = '\0';
		if (!s->ops->is_local(p, h))
			return false;
	}
	return true;
}

/*
 * Relay control, part of the core RCPT decision so that no pipeline can
 * leave it out and no filter's ACCEPT can skip it: mail for a domain that
 * is not ours is taken only from a trusted (relay network) or
 * authenticated client. Addresses another MTA would route onward (the
 * tricks of open-relay tests: user%host@us, host!user@us, "u@h"@us, a
 * source route through a host that is not ours) are refused for everybody
 * else even when the domain looks like ours. Returns the refusal text,
 * or NULL when the recipient may be relayed to.
 */
const char *
smtp_relay_denied(const struct session *s, const struct rcpt *r)
{
	if (s->trusted || s->authenticated)
		return NULL;
	if (!r->local)
		return "Relay access denied";
	if (strpbrk(r->path.local, "%!@") != NULL)
		return "Relay access denied (routing characters in address)";
	if (r->path.route && !route_is_local(s, r->policy,
	    r->path.route_hosts))
		return "Relay access denied (source route)";
	return NULL;
}

/* Answers a refused recipient; a permanent refusal counts toward
 * max_errors, so one connection cannot probe addresses without end. */
static void
rcpt_refuse(struct session *s, struct rcpt *r)
{
	reply_verdict(s, &r->verdict, r->reply, sizeof(r->reply));
	if (r->reply[0] == '5')
		count_error(s);
}

/* postmaster@ (RFC 5321 §4.5.1) and abuse@ (RFC 2142) of our domains
 * are always reachable: delayed rejections do not apply to them. */
static bool
rcpt_exempt(const struct rcpt *r)
{
	if (r->path.quoted || (!r->local && r->path.domain[0] != '\0'))
		return false;
	return strcasecmp(r->path.local, "postmaster") == 0 ||
	    strcasecmp(r->path.local, "abuse") == 0;
}

static void
cmd_rcpt(struct session *s, struct command *c)
{
	struct txn	*t = s->txn;
	struct rcpt	*r;
	struct str	 rest;
	enum parse_err	 e;
	struct path	 p;
	const char	*why;

	if (!str_iprefix(c->arg, "TO:")) {
		reply_error(s, 501, "5.5.4", "Syntax: RCPT TO:<address>");
		return;
	}
	c->arg.p += 3;
	c->arg.len -= 3;
	e = parse_path(c->arg, &p, &rest, false, true, t->params.smtputf8);
	if (e == PARSE_OK)
		e = parse_rcpt_params(rest);
	if (e != PARSE_OK) {
		path_error(s, e, true);
		return;
	}
	/* RFC 5321 §3.3 allows one delivery per address: a repeat is
	 * acknowledged and not added. */
	if (rcpt_duplicate(t, &p) != NULL) {
		reply(s, 250, "2.1.5", "Duplicate recipient, already accepted");
		return;
	}
	if (t->naccepted >= (size_t)s->conf->max_recipients ||
	    (r = rcpt_add(s)) == NULL) {
		reply(s, 452, "4.5.3", "Too many recipients");
		return;
	}
	r->path = p;
	if (p.domain[0] != '\0')
		snprintf(r->addr, sizeof(r->addr), "%s@%s", p.local, p.domain);
	else
		snprintf(r->addr, sizeof(r->addr), "%s", p.local);
	r->policy = s->ops->policy_for(p.domain);
	r->local = p.domain[0] == '\0' || (p.literal ?
	    literal_is_ours(s, p.domain) : s->ops->is_local(r->policy,
	    p.domain));
	r->exempt = rcpt_exempt(r);
	t->cur = r;
	if ((why = smtp_relay_denied(s, r)) != NULL) {
		r->verdict = verdict_make(V_DENY, 554, "5.7.1", why);
		r->verdict.by = "relay";
		rcpt_refuse(s, r);
		return;
	}
	/* One transaction, one policy (ARCHITECTURE §2). */
	if (t->naccepted > 0 && r->policy != t->policy) {
		r->verdict = VERDICT(V_DEFER);
		r->verdict.by = "policy";
		snprintf(r->reply, sizeof(r->reply), "452 4.5.3 Recipient "
		    "of another policy: send it in a new transaction");
		reply(s, 452, "4.5.3", "Recipient of another policy: send it "
		    "in a new transaction");
		return;
	}
	/* An early talker (pre-greeting test) is refused here, delay-deny
	 * style, unless the recipient is exempt. */
	if (!r->exempt && s->pregreet == 3) {
		r->verdict = verdict_make(V_DENY, 554, "5.5.1", "Protocol "
		    "error: talking before the greeting");
		r->verdict.by = "pregreet";
		rcpt_refuse(s, r);
		return;
	}
	/* Delay-deny: earlier rejections apply now, except to exempt. */
	if (!r->exempt && (s->delayed.code != V_CONTINUE ||
	    t->delayed.code != V_CONTINUE)) {
		r->verdict = s->delayed.code != V_CONTINUE ? s->delayed :
		    t->delayed;
		if (r->verdict.code == V_DENY_DISCONNECT)
			r->verdict.code = V_DENY;
		rcpt_refuse(s, r);
		return;
	}
	session_stage(s, STAGE_RCPT);
}

/* True when a new message fits in the worker's memory budget. */
static bool
msgmem_available(const struct session *s)
{
	return msgmem_reserved + s->conf->message_memory <=
	    s->conf->message_memory_budget;
}

static void
msgmem_refused(struct session *s)
{
	log_msg(LVL_WARN, s->id, "event=message_budget reserved=%lld "
	    "budget=%lld", msgmem_reserved, s->conf->message_memory_budget);
}

void
txn_release_message(struct txn *t)
{
	if (t->msgmem > 0) {
		msgmem_reserved -= t->msgmem;
		t->msgmem = 0;
	}
	buf_free(&t->msg);
}

/* Opens an unlinked file for a spilled message; -1 when it cannot. */
static int
spill_file(const char *dir)
{
	char	path[4096];
	int	fd;

	fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd != -1 || (errno != EOPNOTSUPP && errno != EISDIR &&
	    errno != EINVAL))
		return fd;
	/* Without O_TMPFILE: a named file, unlinked at once. */
	if (snprintf(path, sizeof(path), "%s/spill.XXXXXX", dir) >=
	    (int)sizeof(path))
		return -1;
	if ((fd = mkostemp(path, O_CLOEXEC)) != -1)
		unlink(path);
	return fd;
}

void
command_data_fed(struct session *s)
{
	struct txn	*t = s->txn;
	int		 fd;

	if (t == NULL || t->msg.data == NULL)
		return;
	if (t->msg.mapped) {
		/* Only the last 64 KiB stay mapped in; the rest is the
		 * file's (one madvise per 256 KiB taken). */
		if (t->msg.len > t->msg.dropped + (256u << 10))
			buf_drop_pages(&t->msg, t->msg.len - (64u << 10));
		return;
	}
	if ((long long)t->msg.len <= s->conf->message_memory ||
	    t->spill_failed)
		return;
	if ((fd = spill_file(s->conf->spool_dir)) == -1 ||
	    buf_spill(&t->msg, fd) == -1) {
		/* Kept in memory: service goes on, degraded and loud. */
		if (!spill_warned)
			log_msg(LVL_WARN, s->id, "event=spill_failed dir=%s "
			    "errno=%d", s->conf->spool_dir, errno);
		spill_warned = true;
		if (fd != -1)
			close(fd);
		t->spill_failed = true;
		return;
	}
	spill_warned = false;
	log_msg(LVL_DEBUG, s->id, "event=spill bytes=%zu", t->msg.len);
}

/* Room for the trace header, then the reader takes the client's part. */
static int
data_begin(struct session *s, bool dot)
{
	struct txn	*t = s->txn;
	char		 date[64];
	time_t		 now = time(NULL);
	struct tm	 tm;
	const char	*proto;

	txn_release_message(t);	/* one message buffer per transaction */
	buf_init(&t->msg, (size_t)s->conf->max_message_size + HEADER_ROOM);
	t->msgmem = s->conf->message_memory;
	msgmem_reserved += t->msgmem;
	localtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm);
	/* RFC 3848 protocol names. */
	proto = t->params.smtputf8 ? (s->tls ? "UTF8SMTPS" : "UTF8SMTP") :
	    s->esmtp ? (s->tls ? "ESMTPS" : "ESMTP") : "SMTP";
	if (buf_printf(&t->msg, "Received: from %s ([%s])\r\n\tby %s (moat) "
	    "with %s%s%s%s id %016llx", s->helo, s->ip, s->conf->hostname,
	    proto, s->tls ? " (" : "", s->tls ? s->tls_info : "",
	    s->tls ? ")" : "", (unsigned long long)s->id) == -1)
		return -1;
	if (t->naccepted == 1) {
		size_t i;

		for (i = 0; i < t->nrcpt; i++)
			if (t->rcpts[i].accepted)
				buf_printf(&t->msg, "\r\n\tfor <%s>",
				    t->rcpts[i].addr);
	}
	if (buf_printf(&t->msg, ";\r\n\t%s\r\n", date) == -1)
		return -1;
	t->msg_start = t->msg.len;
	session_deadline_message(s, true);
	data_init(&s->dr, &t->msg, dot, (size_t)s->conf->max_message_size,
	    (size_t)s->conf->max_line, (size_t)s->conf->max_header_lines);
	clock_gettime(CLOCK_REALTIME, &t->t_data);
	return 0;
}

/*
 * RFC 2920 §3.1: DATA ends a pipelined group; anything the client sent
 * after it came before our 354 and is not a message: the session is
 * refused and closed. Checked at DATA and again when the DATA stage ends.
 */
static bool
early_data(struct session *s)
{
	if (evbuffer_get_length(bufferevent_get_input(s->bev)) == 0)
		return false;
	log_msg(LVL_INFO, s->id, "event=early_data");
	reply(s, 554, "5.5.0", "Message data sent before the 354 reply "
	    "(RFC 2920 3.1); closing");
	session_quit(s);
	return true;
}

static void
cmd_data(struct session *s, struct command *c)
{
	if (c->arg.len != 0) {
		reply_error(s, 501, "5.5.4", "Syntax: DATA");
		return;
	}
	if (s->txn->naccepted == 0) {
		reply_error(s, 554, "5.5.1", s->txn->nrcpt > 0 ?
		    "No valid recipients" : "Need RCPT before DATA");
		return;
	}
	if (early_data(s))
		return;
	if (!msgmem_available(s)) {
		msgmem_refused(s);
		reply(s, 452, "4.3.1", "Insufficient system storage; try "
		    "again later");
		return;
	}
	s->txn->chunked = false;
	session_stage(s, STAGE_DATA);
}

/*
 * A BDAT chunk we refuse is still read, byte for byte, and dropped: its
 * bytes can never be taken as commands (RFC 3030 §2). The reply comes
 * once it is read; v NULL repeats the reply of the chunk that failed the
 * transaction.
 */
static void
chunk_skip(struct session *s, const struct verdict *v)
{
	if (v != NULL) {
		bool temp = v->code == V_DEFER;

		/* Formatted now: the verdict's text may not outlive us. */
		snprintf(s->bdat_reply, sizeof(s->bdat_reply), "%d %s %.*s",
		    v->smtp != 0 ? v->smtp : temp ? 451 : 554,
		    v->esc != NULL ? v->esc : temp ? "4.7.1" : "5.7.1",
		    (int)sizeof(s->bdat_reply) - 16, v->text != NULL ?
		    v->text : temp ? "Try again later" : "Rejected by policy");
	}
	session_set_state(s, ST_BDAT_SKIP);
	if (s->bdat_left == 0)
		command_data_done(s);
}

static void
cmd_bdat(struct session *s, struct command *c)
{
	long long	size;
	bool		last;

	if (!s->conf->chunking) {
		reply_error(s, 502, "5.5.1", "BDAT not available");
		return;
	}
	/* A BDAT whose size we cannot read cannot be skipped: the bytes that
	 * follow would be read as commands, so we hang up (RFC 3030 §2). */
	if (parse_bdat(c->arg, &size, &last) != PARSE_OK ||
	    size > s->conf->max_message_size + 1) {
		reply(s, 501, "5.5.4", "Syntax: BDAT size [LAST]; closing");
		session_quit(s);
		return;
	}
	s->bdat_left = size;
	s->bdat_last = last;
	if (s->txn == NULL) {
		struct verdict v = verdict_make(V_DENY, 503, "5.5.1",
		    "Need MAIL before BDAT");

		chunk_skip(s, &v);
		return;
	}
	if (s->state == ST_BDAT_FAILED) {
		/* Pipelined after a refused chunk: dropped the same way. */
		chunk_skip(s, NULL);
		return;
	}
	if (s->state == ST_BDAT_NEXT) {
		/* A later chunk of a message under way. */
		session_set_state(s, ST_BDAT);
		if (s->bdat_left == 0)
			command_data_done(s);
		return;
	}
	if (s->txn->naccepted == 0) {
		struct verdict v = verdict_make(V_DENY, 554, "5.5.1",
		    s->txn->nrcpt > 0 ? "No valid recipients" :
		    "Need RCPT before BDAT");

		chunk_skip(s, &v);
		return;
	}
	if (!msgmem_available(s)) {
		struct verdict v = verdict_make(V_DEFER, 452, "4.3.1",
		    "Insufficient system storage; try again later");

		msgmem_refused(s);
		chunk_skip(s, &v);
		return;
	}
	s->txn->chunked = true;
	session_stage(s, STAGE_DATA);
}

static void
cmd_rset(struct session *s, struct command *c)
{
	(void)c;
	txn_reset(s);
	if (s->state != ST_GREET)
		session_set_state(s, ST_HELO);
	reply(s, 250, "2.0.0", "OK");
}

static void
cmd_noop(struct session *s, struct command *c)
{
	(void)c;
	reply(s, 250, "2.0.0", "OK");
}

static void
cmd_quit(struct session *s, struct command *c)
{
	(void)c;
	reply(s, 221, "2.0.0", "%s Bye", s->conf->hostname);
	session_quit(s);
}

static void
cmd_vrfy(struct session *s, struct command *c)
{
	(void)c;
	/* RFC 5321 §3.5.3: 252 when we will not verify. */
	reply(s, 252, "2.5.2", "Cannot VRFY user, but will accept message");
}

static void
cmd_expn(struct session *s, struct command *c)
{
	(void)c;
	reply(s, 502, "5.5.1", "EXPN not available");
}

static void
cmd_help(struct session *s, struct command *c)
{
	(void)c;
	reply(s, 214, "2.0.0", "See RFC 5321; commands: EHLO HELO MAIL RCPT "
	    "DATA BDAT RSET NOOP QUIT VRFY HELP STARTTLS AUTH");
}

static void
cmd_auth(struct session *s, struct command *c)
{
	auth_command(s, c->arg);
}

static void
cmd_starttls(struct session *s, struct command *c)
{
	if (s->tls_ctx == NULL || s->tls) {
		reply_error(s, 502, "5.5.1", s->tls ? "Already in TLS" :
		    "STARTTLS not available");
		return;
	}
	if (c->arg.len != 0) {
		reply_error(s, 501, "5.5.4", "Syntax: STARTTLS");
		return;
	}
	reply(s, 220, "2.0.0", "Ready to start TLS");
	/* CVE-2011-0411: whatever the client pipelined after STARTTLS was
	 * sent in clear text and is discarded, never run under TLS. */
	evbuffer_drain(bufferevent_get_input(s->bev),
	    evbuffer_get_length(bufferevent_get_input(s->bev)));
	if (tls_start(s) == -1) {
		session_quit(s);
		return;
	}
	/* RFC 3207 §4.2: forget everything learnt before TLS; the
	 * handshake's end (session.c) moves on to ST_GREET. */
	txn_reset(s);
	s->helo[0] = '\0';
	s->esmtp = false;
	session_set_state(s, ST_TLS);
	session_deadline_tls(s, true);
}

/*
 * True when a client's header field must not reach a mailbox: X-Spam-*
 * (only our verdict speaks under that name, so a forged "X-Spam-Status:
 * No" never passes), and an Authentication-Results field whose authserv-id
 * is our host name (RFC 8601 §5: a forgery of our own results).
 */
static bool
header_forged(const struct session *s, const char *h, size_t len)
{
	static const char	 ar[] = "Authentication-Results:";
	const char		*v, *end = h + len;
	size_t			 n = strlen(s->conf->hostname);

	if (len > 7 && strncasecmp(h, "X-Spam-", 7) == 0)
		return true;
	if (len <= sizeof(ar) - 1 || strncasecmp(h, ar, sizeof(ar) - 1) != 0)
		return false;
	for (v = h + sizeof(ar) - 1; v < end && (*v == ' ' || *v == '\t' ||
	    *v == '\r' || *v == '\n'); v++)
		;
	return (size_t)(end - v) >= n && strncasecmp(v, s->conf->hostname,
	    n) == 0 && (v + n == end || v[n] == ';' || v[n] == ' ' ||
	    v[n] == '\t' || v[n] == '\r' || v[n] == '(');
}

/*
 * Removes forged header fields (header_forged, with their folded lines)
 * from the client's header section in one pass: the kept fields are
 * compacted and the body is moved once, so a message full of them costs
 * one move, not one per field. The message is CRLF lines, checked by the
 * reader; only the header section is looked at.
 */
static void
strip_client_headers(struct session *s, struct txn *t)
{
	char	*m = t->msg.data;
	size_t	 i = t->msg_start, w = i, n = t->msg.len, end, fend;

	while (i < n && m[i] != '\r') {	/* an empty line ends headers */
		/* One field: its line and the folded lines after it. */
		for (fend = i; fend < n; ) {
			char *eol = memchr(m + fend, '\n', n - fend);

			fend = eol != NULL ? (size_t)(eol - m) + 1 : n;
			if (fend >= n || (m[fend] != ' ' && m[fend] != '\t'))
				break;
		}
		end = fend;
		if (!header_forged(s, m + i, end - i)) {
			if (w != i)
				memmove(m + w, m + i, end - i);
			w += end - i;
		}
		i = end;
	}
	if (w == i)
		return;
	memmove(m + w, m + i, n - i);
	t->msg.len = w + (n - i);
	t->msg.data[t->msg.len] = '\0';
}

/* The message (or last chunk) is in: check it, then filters and queue. */
static void
data_end(struct session *s)
{
	struct txn	*t = s->txn;
	unsigned	 f = s->dr.flags;
	const char	*why = NULL, *esc = "5.6.0";
	int		 code = 550;

	clock_gettime(CLOCK_REALTIME, &t->t_data_end);
	session_deadline_message(s, false);
	t->data_flags = f;
	session_set_state(s, ST_HELO);
	if (f & DATA_TOO_BIG) {
		code = 552;
		esc = "5.3.4";
		why = "Message too big";
	} else if (f & DATA_NUL)
		why = "NUL character in message (RFC 5321 2.3.8)";
	else if (f & (DATA_BARE_LF | DATA_BARE_CR))
		why = "Bare CR or LF in message; lines must end in CRLF "
		    "(RFC 5321 2.3.8)";
	else if (f & DATA_LONG_LINE)
		why = "Line too long (RFC 5321 4.5.3.1.6)";
	else if (f & DATA_HEADERS) {
		code = 552;
		esc = "5.3.4";
		why = "Too many header lines";
	}
	if (why != NULL) {
		t->result = VERDICT(V_DENY);
		t->result.smtp = code;
		t->result.esc = esc;
		t->result.by = "smtp";
		t->result.text = why;
		reply_verdict(s, &t->result, t->result_text,
		    sizeof(t->result_text));
		txn_reset(s);
		return;
	}
	strip_client_headers(s, t);
	session_stage(s, STAGE_DATA_POST);
}

void
command_data_done(struct session *s)
{
	if (s->state == ST_BDAT_SKIP) {
		command_chunk_skipped(s);
		return;
	}
	if (s->state == ST_BDAT) {
		if (!s->bdat_last) {
			session_set_state(s, ST_BDAT_NEXT);
			reply(s, 250, "2.0.0", "%lld octets received",
			    (long long)s->dr.total);
			return;
		}
		data_finish(&s->dr);
	}
	data_end(s);
}

void
command_chunk_skipped(struct session *s)
{
	evbuffer_add_printf(bufferevent_get_output(s->bev), "%s\r\n",
	    s->bdat_reply);
	if (s->txn == NULL)	/* out of sequence: where it was */
		session_set_state(s, s->esmtp || s->helo[0] != '\0' ?
		    ST_HELO : ST_GREET);
	else if (s->bdat_last) {
		/* The transaction is over (RFC 3030 §2: it failed). */
		txn_reset(s);
		session_set_state(s, ST_HELO);
	} else
		session_set_state(s, ST_BDAT_FAILED);
	if (s->bdat_reply[0] == '5')
		count_error(s);
}

static void
rcpt_done(struct session *s, struct verdict v)
{
	struct txn	*t = s->txn;
	struct rcpt	*r = t->cur;

	r->verdict = v;
	if (v.code == V_ACCEPT && r->consumed != 0) {
		/* A filter took it (training address): no delivery. */
		session_set_state(s, ST_RCPT);
		r->accepted = true;
		if (t->naccepted++ == 0)
			t->policy = r->policy;
		t->nconsumed++;
		snprintf(r->reply, sizeof(r->reply), "250 2.1.5 OK");
		reply(s, 250, "2.1.5", "Recipient OK");
		return;
	}
	if ((v.code == V_CONTINUE || v.code == V_ACCEPT) &&
	    rcpt_rewritten_duplicate(t, r)) {
		/* A filter rewrote it (batv, limited) into an address
		 * already accepted: one delivery per address. Not accepted,
		 * so what the filter reserved for it is given back. */
		session_set_state(s, ST_RCPT);
		snprintf(r->reply, sizeof(r->reply), "250 2.1.5 Duplicate");
		reply(s, 250, "2.1.5", "Duplicate recipient, already accepted");
		return;
	}
	if (v.code == V_CONTINUE || v.code == V_ACCEPT) {
		/* Filters said yes: the queue stage may still say no. */
		session_set_state(s, ST_RCPT);
		session_wait(s, STAGE_QUEUE);
		s->ops->queue_rcpt(s, r);
		return;
	}
	if (r->verdict.code == V_DENY_DISCONNECT)
		reply_verdict(s, &r->verdict, r->reply, sizeof(r->reply));
	else
		rcpt_refuse(s, r);
}

void
command_stage_done(struct session *s, enum stage st, struct verdict v)
{
	bool deny = v.code == V_DENY || v.code == V_DEFER ||
	    v.code == V_DENY_DISCONNECT;

	switch (st) {
	case STAGE_CONNECT:
	case STAGE_HELO:
		if (v.code == V_DENY_DISCONNECT || (deny &&
		    !s->conf->delay_deny)) {
			if (st == STAGE_CONNECT)
				txnlog_refused(s, v.text != NULL ? v.text :
				    "policy");
			reply_verdict(s, &v, NULL, 0);
			if (st == STAGE_CONNECT)
				session_quit(s);
			return;
		}
		if (deny)
			s->delayed = v;
		if (st == STAGE_CONNECT)
			command_greet(s);
		else {
			session_set_state(s, ST_HELO);
			helo_reply(s);
		}
		return;
	case STAGE_MAIL:
		if (v.code == V_DENY_DISCONNECT || (deny &&
		    !s->conf->delay_deny)) {
			reply_verdict(s, &v, NULL, 0);
			txn_reset(s);
			return;
		}
		if (deny)
			s->txn->delayed = v;
		session_set_state(s, ST_MAIL);
		reply(s, 250, "2.1.0", "Sender OK");
		return;
	case STAGE_RCPT:
		rcpt_done(s, v);
		return;
	case STAGE_DATA:
		if (v.code == V_DENY_DISCONNECT) {
			reply_verdict(s, &v, NULL, 0);
			return;
		}
		if (s->txn->chunked && deny) {
			/* The chunk follows its BDAT at once: read, dropped. */
			chunk_skip(s, &v);
			return;
		}
		if (!s->txn->chunked && early_data(s))
			return;
		if (deny) {
			reply_verdict(s, &v, NULL, 0);
			return;
		}
		if (!msgmem_available(s)) {
			/* Spent while the DATA stage ran. */
			v = verdict_make(V_DEFER, 452, "4.3.1", "Insufficient "
			    "system storage; try again later");
			msgmem_refused(s);
			if (s->txn->chunked)
				chunk_skip(s, &v);
			else
				reply_verdict(s, &v, NULL, 0);
			return;
		}
		if (data_begin(s, !s->txn->chunked) == -1) {
			reply(s, 451, "4.3.0", "Out of memory");
			txn_reset(s);
			session_set_state(s, ST_HELO);
			return;
		}
		if (s->txn->chunked) {
			session_set_state(s, ST_BDAT);
			if (s->bdat_left == 0)
				command_data_done(s);
		} else {
			session_set_state(s, ST_DATA);
			reply(s, 354, NULL, "End data with <CR><LF>.<CR><LF>");
		}
		return;
	case STAGE_DATA_POST:
		if (deny) {
			s->txn->result = v;
			reply_verdict(s, &v, s->txn->result_text,
			    sizeof(s->txn->result_text));
			s->txn->result.text = s->txn->result_text;
			txn_reset(s);
			return;
		}
		if (s->txn->naccepted == s->txn->nconsumed) {
			/* Only recipients a filter took: nothing to deliver,
			 * the filter's work (learning) is done. */
			s->txn->queue_msg = true;
			command_queued(s, verdict_make(V_ACCEPT, 250,
			    "2.0.0", NULL));
			return;
		}
		session_wait(s, STAGE_QUEUE);
		s->txn->queue_msg = true;
		s->ops->queue_data(s);
		return;
	default:
		return;
	}
}

void
command_queued(struct session *s, struct verdict v)
{
	struct txn	*t = s->txn;
	struct rcpt	*r = t->cur;

	if (!t->queue_msg) {
		/* The backend's word on one recipient. */
		if (v.code == V_CONTINUE || v.code == V_ACCEPT) {
			r->accepted = true;
			if (t->naccepted++ == 0)
				t->policy = r->policy;
			snprintf(r->reply, sizeof(r->reply), "250 2.1.5 OK");
			reply(s, 250, "2.1.5", "Recipient OK");
			return;
		}
		r->verdict = v;
		reply_verdict(s, &v, r->reply, sizeof(r->reply));
		if (t->naccepted == 0)
			session_set_state(s, ST_MAIL);
		return;
	}
	clock_gettime(CLOCK_REALTIME, &t->t_queued);
	t->result = v;
	if (v.code == V_CONTINUE || v.code == V_ACCEPT) {
		s->messages++;
		snprintf(t->result_text, sizeof(t->result_text),
		    "250 2.0.0 Ok: queued as %016llx.%u",
		    (unsigned long long)s->id, s->messages);
		reply(s, 250, "2.0.0", "Ok: queued as %016llx.%u",
		    (unsigned long long)s->id, s->messages);
	} else
		reply_verdict(s, &v, t->result_text, sizeof(t->result_text));
	t->result.text = NULL;
	txn_reset(s);
}
