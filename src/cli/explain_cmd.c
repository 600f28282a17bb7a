/*
 * explain_cmd.c: `moatctl explain SESSION_ID`, why a session was refused,
 * deferred or delivered, from moatd's JSON log (its strict reader is
 * json.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../daemon/conf.h"
#include "explain_cmd.h"
#include "json.h"

/*
 * explain: why a session went as it did, from moatd's JSON log. Every
 * line is outside input (a client chose its HELO, addresses, Subject),
 * so it is read with the strict reader under EXPLAIN_* limits, a line
 * that fails is skipped with a warning, and every string printed is
 * escaped: no control character or bidi override reaches the terminal.
 */
/* Longest log line read; moatd writes at most 64 KiB (txnlog.c). */
#define EXPLAIN_LINE_MAX	(256 * 1024)
/* Lines and bytes of one session kept between the scan and the report. */
#define EXPLAIN_KEEP_LINES	10000
#define EXPLAIN_KEEP_BYTES	(32 * 1024 * 1024)
/* Distinct evidence entries reported for a session. */
#define EXPLAIN_EVIDENCE	256
/* Malformed lines reported one by one; the rest are counted. */
#define EXPLAIN_WARNINGS	10
/* A session id: 16 hex digits; a prefix of at least 6 is accepted. */
#define EXPLAIN_ID_LEN		16
#define EXPLAIN_ID_MIN		6
/* Distinct ids listed when a prefix is ambiguous. */
#define EXPLAIN_AMBIGUOUS	8

static const struct json_limits explain_limits = {
	.max_input = EXPLAIN_LINE_MAX, .max_depth = 8, .max_values = 16384,
	.max_string = 16384,
};

struct line {
	char	*text;
	size_t	 len;
};

struct explain {
	char		 want[EXPLAIN_ID_LEN + 1];	/* lower case */
	size_t		 wantlen;
	char		 ids[EXPLAIN_AMBIGUOUS][EXPLAIN_ID_LEN + 1];
	size_t		 nids;
	bool		 more_ids;
	struct line	*lines;
	size_t		 nlines, caplines, bytes, dropped;
	unsigned long	 malformed;
	bool		 read_any;
};

/* A bounded line reader over a file descriptor. */
struct reader {
	int		 fd;
	char		*buf;
	size_t		 have, off;
	bool		 eof, skipping;
	unsigned long	 lineno;
};

static void
explain_help(void)
{
	fputs(
"NAME\n"
"    moatctl explain - why a session was refused, deferred or delivered\n"
"\n"
"SYNOPSIS\n"
"    moatctl [-c FILE] explain [--log FILE] SESSION_ID\n"
"\n"
"DESCRIPTION\n"
"    Finds every line of the session in moatd's JSON log and prints, one\n"
"    finding per line, what the operator needs to answer \"why?\".\n"
"    SESSION_ID is the 16 hex digits moatd logs first on each line, or a\n"
"    prefix of at least 6 of them that only one session in the log has.\n"
"\n"
"    The log is moat.conf's [server] json_log, or FILE with --log. The\n"
"    previous rotation, FILE.1, is read first when it exists; older or\n"
"    compressed rotations (FILE.2.gz ...) are not: decompress one into a\n"
"    file and name it with --log. A line that is not valid JSON (cut\n"
"    short, corrupted) is skipped with a warning on standard error.\n"
"\n"
"OUTPUT\n"
"    Each line starts with what it is about; a value with spaces or\n"
"    unusual characters is quoted, and control characters are escaped.\n"
"    session ID lines=N\n"
"    client ip=IP helo=NAME [rdns=NAME rdns_verified=yes|no | rdns=none]\n"
"    evidence FILTER NAME score=S ms=LOOKUP detail=TEXT\n"
"                            what a check found (DNSBL listing, rDNS...)\n"
"    refused time=T reason=TEXT   a connection refused before SMTP\n"
"    txn N time=T from=<ADDR> tls=yes|no rcpts=N accepted=N\n"
"    txn N rcpt <ADDR> accepted|refused by=FILTER reply=TEXT\n"
"                            each recipient, the filter that decided\n"
"                            (- when none did) and the reply given\n"
"    txn N rcpts_not_logged=N     recipients left out of a long line\n"
"    txn N would_reject FILTER stage=STAGE rcpt=<ADDR> reply=TEXT\n"
"                            what an observe-mode filter would have done\n"
"    txn N message size=BYTES message_id=ID subject=TEXT\n"
"    txn N symbol NAME SCORE\n"
"    txn N score SCORE\n"
"    txn N ms data=MS queue=MS    (- when not measured)\n"
"    txn N result TEXT            the final reply, or \"aborted\"\n"
"\n"
"OPTIONS\n"
"    --log FILE  read FILE (and FILE.1) instead of moat.conf's json_log;\n"
"                no configuration is read then\n"
"    -c FILE     the configuration naming the log (default\n"
"                " MOATCTL_CONF ")\n"
"\n"
"EXIT STATUS\n"
"    0   the session was found\n"
"    1   not found, or the log could not be read\n"
"    2   usage error, or a prefix that more than one session has (the\n"
"        candidates are listed on standard error)\n"
"\n"
"EXAMPLE\n"
"    moatctl explain 6650a1c2000f0003\n"
"    moatctl explain --log /var/log/moat/tx.jsonl 6650a1 | grep '^txn'\n",
	    stdout);
	exit(0);
}

/* The next line (without its newline) in *line and *len: 1, 0 at the
 * end, -2 on a read error.
 * A line past EXPLAIN_LINE_MAX is skipped and reported (-1, *len 0). */
static int
reader_next(struct reader *r, char **line, size_t *len)
{
	char	*nl;
	ssize_t	 n;

	for (;;) {
		if ((nl = memchr(r->buf + r->off, '\n', r->have - r->off))) {
			*line = r->buf + r->off;
			*len = (size_t)(nl - *line);
			r->off += *len + 1;
			r->lineno++;
			if (r->skipping) {
				r->skipping = false;
				*len = 0;
				return -1;
			}
			return 1;
		}
		if (r->eof) {
			if (r->off == r->have && !r->skipping)
				return 0;
			/* A last line without its newline (still being
			 * written, or cut): given as it is. */
			*line = r->buf + r->off;
			*len = r->have - r->off;
			r->off = r->have;
			r->lineno++;
			if (r->skipping) {
				r->skipping = false;
				*len = 0;
				return -1;
			}
			return 1;
		}
		memmove(r->buf, r->buf + r->off, r->have - r->off);
		r->have -= r->off;
		r->off = 0;
		if (r->have == EXPLAIN_LINE_MAX) {
			r->skipping = true;	/* too long: drop what we have */
			r->have = 0;
		}
		n = read(r->fd, r->buf + r->have, EXPLAIN_LINE_MAX - r->have);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -2;
		if (n == 0)
			r->eof = true;
		r->have += (size_t)n;
	}
}

static void
explain_warn(struct explain *x, const char *file, unsigned long lineno,
    const char *why, size_t at)
{
	if (x->malformed++ < EXPLAIN_WARNINGS)
		fprintf(stderr, "moatctl: warning: %s:%lu: skipped, not a log "
		    "line: %s (byte %zu)\n", file, lineno, why, at);
}

/* True when s[0..n) is a session id: 16 lower-case hex digits. */
static bool
is_session_id(const char *s, size_t n)
{
	size_t i;

	if (n != EXPLAIN_ID_LEN)
		return false;
	for (i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') ||
		    (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

/* Notes a session id that has the prefix; keeps the line while only one
 * id has been seen (with more, the run ends in an error anyway). */
static void
explain_keep(struct explain *x, const char *id, const char *line,
    size_t len)
{
	struct line	*nl;
	size_t		 i, cap;

	for (i = 0; i < x->nids && strcmp(x->ids[i], id) != 0; i++)
		;
	if (i == x->nids) {
		if (x->nids == EXPLAIN_AMBIGUOUS) {
			x->more_ids = true;
			return;
		}
		snprintf(x->ids[x->nids++], sizeof(x->ids[0]), "%s", id);
	}
	if (x->nids > 1)
		return;
	if (x->nlines >= EXPLAIN_KEEP_LINES ||
	    x->bytes + len > EXPLAIN_KEEP_BYTES) {
		x->dropped++;
		return;
	}
	if (x->nlines == x->caplines) {
		cap = x->caplines ? x->caplines * 2 : 16;
		if ((nl = realloc(x->lines, cap * sizeof(*nl))) == NULL)
			goto oom;
		x->lines = nl;
		x->caplines = cap;
	}
	if ((x->lines[x->nlines].text = malloc(len + 1)) == NULL)
		goto oom;
	memcpy(x->lines[x->nlines].text, line, len);
	x->lines[x->nlines].text[len] = '\0';
	x->lines[x->nlines++].len = len;
	x->bytes += len;
	return;
oom:
	fprintf(stderr, "moatctl: out of memory\n");
	exit(1);
}

/* One line of the log: kept when it is a well-formed line of a session
 * whose id starts with the prefix. A line without the prefix's text is
 * not parsed at all: moatd writes ids as plain lower-case hex. */
static void
explain_line(struct explain *x, const char *file, unsigned long lineno,
    const char *line, size_t len)
{
	const struct json_value	*r;
	struct json_error	 e;
	struct json_doc		*d;
	const char		*sid;
	size_t			 n;

	if (len == 0 || memmem(line, len, x->want, x->wantlen) == NULL)
		return;
	if ((d = json_parse(line, len, &explain_limits, &e)) == NULL) {
		explain_warn(x, file, lineno, e.msg, e.offset);
		return;
	}
	r = json_root(d);
	if ((sid = json_get_str(r, "session", &n)) == NULL ||
	    !is_session_id(sid, n))
		explain_warn(x, file, lineno, "no session id", 0);
	else if (strncmp(sid, x->want, x->wantlen) == 0)
		explain_keep(x, sid, line, len);
	json_free(d);
}

/* Reads one log file; a missing one is no error (a rotation may not
 * exist yet). -1 when it cannot be read. */
static int
explain_file(struct explain *x, const char *file)
{
	struct reader	 r;
	char		*line;
	size_t		 len;
	int		 rc;

	memset(&r, 0, sizeof(r));
	if ((r.fd = open(file, O_RDONLY)) == -1) {
		if (errno == ENOENT)
			return 0;
		fprintf(stderr, "moatctl: %s: %s\n", file, strerror(errno));
		return -1;
	}
	x->read_any = true;
	if ((r.buf = malloc(EXPLAIN_LINE_MAX)) == NULL) {
		fprintf(stderr, "moatctl: out of memory\n");
		exit(1);
	}
	while ((rc = reader_next(&r, &line, &len)) != 0) {
		if (rc == -2) {
			fprintf(stderr, "moatctl: %s: %s\n", file,
			    strerror(errno));
			break;
		}
		if (rc == -1)
			explain_warn(x, file, r.lineno, "line too long",
			    EXPLAIN_LINE_MAX);
		else
			explain_line(x, file, r.lineno, line, len);
	}
	free(r.buf);
	close(r.fd);
	return rc == -2 ? -1 : 0;
}

/* True when s[0..n) can be printed as it is: not empty, and only
 * letters, digits and . - _ : @ + / = < > [ ] , */
static bool
plain(const char *s, size_t n)
{
	size_t	i;
	char	c;

	for (i = 0; i < n; i++) {
		c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || strchr(".-_:@+/=<>[],", c)))
			return false;
	}
	return n > 0;
}

/* The code point of the well-formed k-byte character at u. */
static unsigned
code_point(const unsigned char *u, size_t k)
{
	static const unsigned char	lead[] = { 0, 0x7f, 0x1f, 0x0f, 0x07 };
	unsigned			cp = u[0] & lead[k];
	size_t				i;

	for (i = 1; i < k; i++)
		cp = cp << 6 | (u[i] & 0x3f);
	return cp;
}

/* True for what must not reach a terminal raw: C0 and C1 controls, DEL,
 * and the marks that reorder text (bidi overrides and isolates). */
static bool
unsafe_cp(unsigned cp)
{
	return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) || cp == 0x200e ||
	    cp == 0x200f || (cp >= 0x202a && cp <= 0x202e) ||
	    (cp >= 0x2066 && cp <= 0x2069) || cp == 0xfeff;
}

/* Prints s[0..n) as one value, within angle brackets when angle is set:
 * bare when plain, else quoted, with \" \\ \n \r \t, \xNN for other
 * controls and stray bytes, \uXXXX for C1 controls and bidi marks. */
static void
put_val(FILE *o, const char *s, size_t n, bool angle)
{
	const unsigned char	*u = (const unsigned char *)s;
	size_t			 i, k;
	unsigned		 cp;

	if (plain(s, n) || (angle && n == 0)) {
		fprintf(o, angle ? "<%.*s>" : "%.*s", (int)n, s);
		return;
	}
	fputs(angle ? "\"<" : "\"", o);
	for (i = 0; i < n; i += k) {
		if ((k = json_utf8_len(u + i, n - i)) == 0) {
			fprintf(o, "\\x%02x", u[i]);
			k = 1;
			continue;
		}
		cp = code_point(u + i, k);
		if (cp == '"' || cp == '\\')
			fprintf(o, "\\%c", (char)cp);
		else if (cp == '\n' || cp == '\r' || cp == '\t')
			fprintf(o, "\\%c", cp == '\n' ? 'n' : cp == '\r' ?
			    'r' : 't');
		else if (cp < 0x80 && unsafe_cp(cp))
			fprintf(o, "\\x%02x", cp);
		else if (unsafe_cp(cp))
			fprintf(o, "\\u%04x", cp);
		else
			fwrite(u + i, 1, k, o);
	}
	fputs(angle ? ">\"" : "\"", o);
}

/* " key=value" for member m of obj when it is a string. */
static void
put_member(FILE *o, const char *key, const struct json_value *obj,
    const char *m, bool angle)
{
	const char	*s;
	size_t		 n;

	if ((s = json_get_str(obj, m, &n)) == NULL)
		return;
	fprintf(o, " %s=", key);
	put_val(o, s, n, angle);
}

/* " key=%.Nf" for member m when it is a number; "-" for a negative
 * time (moatd's -1: not measured). */
static void
put_number(FILE *o, const char *key, const struct json_value *obj,
    const char *m, int prec, bool time)
{
	double	d;

	if (!json_get_num(obj, m, &d))
		return;
	if (time && d < 0)
		fprintf(o, " %s=-", key);
	else
		fprintf(o, " %s=%.*f", key, prec, d);
}

/* What the session's lines say of the client, gathered before any
 * transaction is printed. Evidence repeats on every line of a session
 * (it accumulates), so each distinct entry is kept once, in order. */
struct client {
	char		*ip, *helo;
	size_t		 iplen, helolen;
	char		 rdns[256];
	int		 rdns_state;	/* 0 none, 1 name, 2 unverified, 3 ok */
	char		*ev[EXPLAIN_EVIDENCE];
	size_t		 nev;
};

/* The client's rDNS as fcrdns found it: a verified name beats an
 * unverified one, which beats none. */
static void
note_rdns(struct client *c, const char *name, const char *detail,
    size_t n)
{
	int	state;
	size_t	w;

	if (strcmp(name, "RDNS_CONFIRMED") == 0)
		state = 3, w = n;
	else if (strcmp(name, "RDNS_NOT_CONFIRMED") == 0)
		state = 2, w = strcspn(detail, " ");	/* "NAME does not..." */
	else if (strcmp(name, "RDNS_GENERIC") == 0)
		state = 1, w = n;
	else if (strcmp(name, "RDNS_NONE") == 0)
		state = 1, detail = "none", w = 4;
	else
		return;
	if (state <= c->rdns_state)
		return;
	c->rdns_state = state;
	snprintf(c->rdns, sizeof(c->rdns), "%.*s", (int)(w < n ? w : n),
	    detail);
}

/* One evidence entry as its output line, kept when it is new. */
static void
note_evidence(struct client *c, const struct json_value *e)
{
	const char	*f, *name, *detail;
	char		*line = NULL;
	size_t		 len = 0, i, n, flen, namelen;
	FILE		*o;

	f = json_get_str(e, "filter", &flen);
	name = json_get_str(e, "name", &namelen);
	if (f == NULL || name == NULL)
		return;
	if (strcmp(f, "fcrdns") == 0 &&
	    (detail = json_get_str(e, "detail", &n)) != NULL)
		note_rdns(c, name, detail, n);
	if ((o = open_memstream(&line, &len)) == NULL)
		return;
	fputs("evidence ", o);
	put_val(o, f, flen, false);
	fputc(' ', o);
	put_val(o, name, namelen, false);
	put_number(o, "score", e, "score", 2, false);
	put_number(o, "ms", e, "ms", 1, true);
	put_member(o, "detail", e, "detail", false);
	fclose(o);
	for (i = 0; i < c->nev && strcmp(c->ev[i], line) != 0; i++)
		;
	if (i < c->nev || c->nev == EXPLAIN_EVIDENCE)
		free(line);
	else
		c->ev[c->nev++] = line;
}

/* A copy of string member m (its length in *len); NULL when absent or
 * empty. */
static char *
dup_member(const struct json_value *obj, const char *m, size_t *len)
{
	const char	*s;
	size_t		 n;
	char		*d;

	if ((s = json_get_str(obj, m, &n)) == NULL || n == 0 ||
	    (d = malloc(n + 1)) == NULL)
		return NULL;
	memcpy(d, s, n + 1);
	*len = n;
	return d;
}

static void
note_client(struct client *c, const struct json_value *r)
{
	const struct json_value	*e, *ev = json_get(r, "evidence");

	if (c->ip == NULL)
		c->ip = dup_member(r, "ip", &c->iplen);
	if (c->helo == NULL)
		c->helo = dup_member(r, "helo", &c->helolen);
	if (ev != NULL && ev->type == JSON_ARRAY)
		for (e = ev->child; e != NULL; e = e->next)
			note_evidence(c, e);
}

/* Each recipient: accepted or refused, which filter decided, the reply.
 * The number listed. */
static size_t
explain_rcpts(unsigned long t, const struct json_value *r)
{
	const struct json_value	*a = json_get(r, "rcpts"), *x;
	const char		*s;
	size_t			 n, listed = 0;

	if (a == NULL || a->type != JSON_ARRAY)
		return 0;
	for (x = a->child; x != NULL; x = x->next, listed++) {
		printf("txn %lu rcpt ", t);
		s = json_get_str(x, "to", &n);
		put_val(stdout, s ? s : "", s ? n : 0, true);
		printf(" %s by=", json_get_bool(x, "accepted") == 1 ?
		    "accepted" : "refused");
		if ((s = json_get_str(x, "by", &n)) != NULL)
			put_val(stdout, s, n, false);
		else
			putchar('-');
		put_member(stdout, "reply", x, "reply", false);
		putchar('\n');
	}
	return listed;
}

/* What observe-mode filters would have refused. */
static void
explain_would(unsigned long t, const struct json_value *r)
{
	const struct json_value	*a = json_get(r, "would_reject"), *x;
	const char		*s;
	size_t			 n;

	if (a == NULL || a->type != JSON_ARRAY)
		return;
	for (x = a->child; x != NULL; x = x->next) {
		printf("txn %lu would_reject ", t);
		s = json_get_str(x, "filter", &n);
		put_val(stdout, s ? s : "-", s ? n : 1, false);
		put_member(stdout, "stage", x, "stage", false);
		put_member(stdout, "rcpt", x, "rcpt", true);
		put_member(stdout, "reply", x, "reply", false);
		putchar('\n');
	}
}

/* The message, its symbols, score, timings and the result. */
static void
explain_outcome(unsigned long t, const struct json_value *r)
{
	const struct json_value	*x, *sym = json_get(r, "symbols");

	if (json_get(r, "size") != NULL) {
		printf("txn %lu message", t);
		put_number(stdout, "size", r, "size", 0, false);
		put_member(stdout, "message_id", r, "message_id", false);
		put_member(stdout, "subject", r, "subject", false);
		putchar('\n');
	}
	for (x = sym && sym->type == JSON_OBJECT ? sym->child : NULL;
	    x != NULL; x = x->next)
		if (x->type == JSON_NUMBER) {
			printf("txn %lu symbol ", t);
			put_val(stdout, x->key, x->keylen, false);
			printf(" %.2f\n", x->num);
		}
	if ((x = json_get(r, "score")) != NULL && x->type == JSON_NUMBER)
		printf("txn %lu score %.2f\n", t, x->num);
	if ((x = json_get(r, "ms")) != NULL && x->type == JSON_OBJECT) {
		printf("txn %lu ms", t);
		put_number(stdout, "data", x, "data", 1, true);
		put_number(stdout, "queue", x, "queue", 1, true);
		putchar('\n');
	}
	if ((x = json_get(r, "result")) != NULL && x->type == JSON_STRING) {
		printf("txn %lu result ", t);
		put_val(stdout, x->str, x->len, false);
		putchar('\n');
	}
}

/* One transaction line of the log, as "txn N ..." lines. */
static void
explain_txn(unsigned long t, const struct json_value *r)
{
	double	count;
	size_t	listed;
	int	tls;

	printf("txn %lu", t);
	put_member(stdout, "time", r, "time", false);
	put_member(stdout, "from", r, "from", true);
	if ((tls = json_get_bool(r, "tls")) != -1)
		printf(" tls=%s", tls ? "yes" : "no");
	put_member(stdout, "tls_info", r, "tls_info", false);
	put_number(stdout, "rcpts", r, "rcpt_count", 0, false);
	put_number(stdout, "accepted", r, "rcpt_accepted", 0, false);
	putchar('\n');
	listed = explain_rcpts(t, r);
	if (json_get_bool(r, "truncated") == 1 &&
	    json_get_num(r, "rcpt_count", &count) && count > (double)listed)
		printf("txn %lu rcpts_not_logged=%.0f\n", t,
		    count - (double)listed);
	explain_would(t, r);
	explain_outcome(t, r);
}

/* Prints the kept lines of the one session found. */
static void
explain_print(struct explain *x)
{
	struct client		 c;
	struct json_error	 e;
	struct json_doc		*d;
	const struct json_value	*r;
	const char		*ev;
	unsigned long		 t = 0;
	size_t			 i;

	memset(&c, 0, sizeof(c));
	for (i = 0; i < x->nlines; i++)
		if ((d = json_parse(x->lines[i].text, x->lines[i].len,
		    &explain_limits, &e)) != NULL) {
			note_client(&c, json_root(d));
			json_free(d);
		}
	printf("session %s lines=%zu\n", x->ids[0], x->nlines);
	printf("client ip=");
	put_val(stdout, c.ip ? c.ip : "-", c.ip ? c.iplen : 1, false);
	if (c.helo != NULL) {
		printf(" helo=");
		put_val(stdout, c.helo, c.helolen, false);
	}
	if (c.rdns_state > 0) {
		printf(" rdns=");
		put_val(stdout, c.rdns, strlen(c.rdns), false);
		if (c.rdns_state >= 2)
			printf(" rdns_verified=%s",
			    c.rdns_state == 3 ? "yes" : "no");
	}
	putchar('\n');
	for (i = 0; i < c.nev; i++) {
		printf("%s\n", c.ev[i]);
		free(c.ev[i]);
	}
	free(c.ip);
	free(c.helo);
	for (i = 0; i < x->nlines; i++) {
		if ((d = json_parse(x->lines[i].text, x->lines[i].len,
		    &explain_limits, &e)) == NULL)
			continue;
		r = json_root(d);
		ev = json_get_str(r, "event", NULL);
		if (ev != NULL && strcmp(ev, "transaction") == 0)
			explain_txn(++t, r);
		else {
			fputs(ev != NULL && strcmp(ev, "refused") == 0 ?
			    "refused" : "event", stdout);
			put_member(stdout, "time", r, "time", false);
			if (ev == NULL || strcmp(ev, "refused") != 0)
				put_member(stdout, "event", r, "event", false);
			put_member(stdout, "reason", r, "reason", false);
			putchar('\n');
		}
		json_free(d);
	}
}

static void
explain_usage(void)
{
	fprintf(stderr, "usage: moatctl [-c FILE] explain [--log FILE] "
	    "SESSION_ID\n");
	exit(2);
}

/* The log moat.conf names: -1 when it cannot be read or names none. */
static int
explain_conf_log(const char *path, char **log)
{
	struct moat_config	*cf;
	char			 err[1024];
	const char		*j;

	if ((cf = conf_load(path, err, sizeof(err))) == NULL) {
		fprintf(stderr, "moatctl: %s\n", err);
		return -1;
	}
	j = cf->server.json_log;
	if (j == NULL || strcmp(j, "off") == 0 || strcmp(j, "stderr") == 0 ||
	    strcmp(j, "stdout") == 0 || strcmp(j, "syslog") == 0) {
		fprintf(stderr, "moatctl: %s: [server] json_log is %s, not "
		    "a file; name the log with --log\n", path,
		    j ? j : "unset");
		conf_free(cf);
		return -1;
	}
	*log = strdup(j);
	conf_free(cf);
	return *log == NULL ? -1 : 0;
}

/* Takes the SESSION_ID argument: 6 to 16 hex digits, kept lower case. */
static void
explain_want(struct explain *x, const char *id)
{
	size_t	i, n = strlen(id);

	if (n < EXPLAIN_ID_MIN || n > EXPLAIN_ID_LEN) {
		fprintf(stderr, "moatctl: explain: a session id is %d hex "
		    "digits, or a prefix of at least %d\n", EXPLAIN_ID_LEN,
		    EXPLAIN_ID_MIN);
		explain_usage();
	}
	for (i = 0; i < n; i++) {
		char c = id[i];

		if (c >= 'A' && c <= 'F')
			c = (char)(c - 'A' + 'a');
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
			fprintf(stderr, "moatctl: explain: %s: not a "
			    "session id (hex digits)\n", id);
			explain_usage();
		}
		x->want[i] = c;
	}
	x->want[n] = '\0';
	x->wantlen = n;
}

int
cmd_explain(const char *conf, int argc, char **argv)
{
	struct explain	 x;
	char		*log = NULL, *rot;
	const char	*id = NULL;
	size_t		 i, n;
	int		 a, rc = 1;

	memset(&x, 0, sizeof(x));
	for (a = 0; a < argc; a++) {
		if ((strcmp(argv[a], "-h") == 0 || strcmp(argv[a], "--help") == 0))
			explain_help();
		else if (strcmp(argv[a], "--log") == 0 && a + 1 < argc)
			log = argv[++a];
		else if (argv[a][0] == '-' || id != NULL)
			explain_usage();
		else
			id = argv[a];
	}
	if (id == NULL)
		explain_usage();
	explain_want(&x, id);
	if (log != NULL)
		log = strdup(log);
	else if (explain_conf_log(conf ? conf : MOATCTL_CONF, &log) == -1)
		return 1;
	if (log == NULL || (rot = malloc((n = strlen(log) + 3))) == NULL) {
		fprintf(stderr, "moatctl: out of memory\n");
		return 1;
	}
	snprintf(rot, n, "%s.1", log);
	/* The older rotation first: lines come out in time order. */
	if (explain_file(&x, rot) == 0 && explain_file(&x, log) == 0) {
		if (!x.read_any)
			fprintf(stderr, "moatctl: %s: %s\n", log,
			    strerror(ENOENT));
		else if (x.nids == 0)
			fprintf(stderr, "moatctl: explain: no session %s%s "
			    "in %s\n", x.want, x.wantlen < EXPLAIN_ID_LEN ?
			    "..." : "", log);
		else if (x.nids > 1) {
			fprintf(stderr, "moatctl: explain: %s is the start "
			    "of more than one session:", x.want);
			for (i = 0; i < x.nids; i++)
				fprintf(stderr, " %s", x.ids[i]);
			fprintf(stderr, "%s\n", x.more_ids ? " ..." : "");
			rc = 2;
		} else {
			explain_print(&x);
			rc = 0;
		}
	}
	if (x.malformed > EXPLAIN_WARNINGS)
		fprintf(stderr, "moatctl: warning: %lu malformed lines "
		    "skipped in all\n", x.malformed);
	if (x.dropped > 0)
		fprintf(stderr, "moatctl: warning: %zu more lines of the "
		    "session not shown (at most %d lines, %d bytes)\n",
		    x.dropped, EXPLAIN_KEEP_LINES, EXPLAIN_KEEP_BYTES);
	for (i = 0; i < x.nlines; i++)
		free(x.lines[i].text);
	free(x.lines);
	free(rot);
	free(log);
	if (rc == 0 && (fflush(stdout) == EOF || ferror(stdout))) {
		fprintf(stderr, "moatctl: standard output: %s\n",
		    strerror(errno));
		rc = 1;
	}
	return rc;
}
