/*
 * quarantine_cmd.c: the operator's side of the quarantine (quarantine.h,
 * docs/QUARANTINE.md): list, show, release, learn, delete, trim.
 *
 * Everything a client sent is outside input here and reaches the
 * terminal only through q_put(): well-formed UTF-8 is printed, except C0
 * and C1 controls, DEL and the marks that reorder text (bidi overrides,
 * isolates, marks, BOM), which are escaped, as are stray bytes; every
 * value and the shown text are cut at a named limit. Nothing is rendered
 * or run: HTML is turned into text, attachments are only named.
 *
 * Release delivers exactly once: a write transaction moves the record
 * from held to releasing (a second release sees releasing or released
 * and is refused), then the message is delivered through each
 * recipient's delivery (Maildir or qmail-queue), then a second
 * transaction marks it released. A failed delivery puts it back to held;
 * a crash in between leaves it releasing, which only --force releases
 * again (the operator checks the mailboxes first).
 */
#include <errno.h>
#include <fcntl.h>
#include <gmime/gmime.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../content/classifier.h"
#include "../content/html.h"
#include "../content/mime.h"
#include "../content/tokenize.h"
#include "../daemon/conf.h"
#include "../deliver/deliver.h"
#include "../deliver/quarantine.h"
#include "../filters/bayes.h"
#include "../store/store.h"
#include "json.h"
#include "quarantine_cmd.h"

#define QCMD_VALUE_MAX		300	/* bytes of one shown value */
#define QCMD_HEADER_LINES	60	/* header fields shown */
#define QCMD_HEADER_BYTES	300	/* bytes of one shown field */
#define QCMD_TEXT_BYTES		4096	/* bytes of text part shown */
#define QCMD_TEXT_LINES		80
#define QCMD_FILE_MAX		(256LL * 1024 * 1024)

const char quarantine_cmd_usage[] =
    "moatctl [-c FILE] quarantine list [--domain D] [--since T] "
    "[--reason R]\n"
    "       moatctl [-c FILE] quarantine show ID\n"
    "       moatctl [-c FILE] quarantine release [--force] ID\n"
    "       moatctl [-c FILE] quarantine learn ID --spam|--ham\n"
    "       moatctl [-c FILE] quarantine delete ID\n"
    "       moatctl [-c FILE] quarantine trim\n";

static int
q_usage(void)
{
	fprintf(stderr, "usage: %s", quarantine_cmd_usage);
	return 2;
}

/* ---- safe output ---- */

static unsigned
q_cp(const unsigned char *u, size_t k)
{
	static const unsigned char	lead[] = { 0, 0x7f, 0x1f, 0x0f, 0x07 };
	unsigned			cp = u[0] & lead[k];
	size_t				i;

	for (i = 1; i < k; i++)
		cp = cp << 6 | (u[i] & 0x3f);
	return cp;
}

/* What must not reach a terminal raw: controls, DEL, C1, and the marks
 * that reorder or hide text. */
static bool
q_unsafe(unsigned cp)
{
	return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) || cp == 0x061c ||
	    cp == 0x200b || cp == 0x200e || cp == 0x200f ||
	    (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 &&
	    cp <= 0x2069) || cp == 0xfeff;
}

/*
 * Prints s[0..n) safely, at most max input bytes (then "..."); with
 * lines, LF is printed as a line break (and TAB kept), else escaped.
 */
static void
q_put(FILE *o, const char *s, size_t n, size_t max, bool lines)
{
	const unsigned char	*u = (const unsigned char *)s;
	size_t			 i, k;
	unsigned		 cp;

	for (i = 0; i < n; i += k) {
		if ((k = json_utf8_len(u + i, n - i)) == 0)
			k = 1;
		if (i + k > max) {
			fputs("...", o);
			return;
		}
		if (k == 1 && u[i] >= 0x80) {
			fprintf(o, "\\x%02x", u[i]);
			continue;
		}
		cp = q_cp(u + i, k);
		if (lines && (cp == '\n' || cp == '\t'))
			fputc((int)cp, o);
		else if (cp == '\\')
			fputs("\\\\", o);
		else if (cp < 0x80 && q_unsafe(cp))
			fprintf(o, "\\x%02x", cp);
		else if (q_unsafe(cp))
			fprintf(o, "\\u%04x", cp);
		else
			fwrite(u + i, 1, k, o);
	}
}

static void
q_val(const char *label, const char *s)
{
	printf("%s: ", label);
	q_put(stdout, s, strlen(s), QCMD_VALUE_MAX, false);
	putchar('\n');
}

static void
q_time(time_t t, char *out, size_t n)
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static const char *const q_states[] = { "held", "releasing", "released" };

/* ---- reading a kept message ---- */

/* The whole file of a record; NULL with errno set. */
static char *
q_read(const struct quarantine_rec *r, size_t *len)
{
	char		 path[4096], *m;
	struct stat	 sb;
	ssize_t		 got;
	size_t		 off = 0;
	int		 fd;

	if (quarantine_path(quarantine_dir(), "new", r->id, path,
	    sizeof(path)) == -1)
		return (errno = ENAMETOOLONG, NULL);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return NULL;
	errno = 0;
	if (fstat(fd, &sb) == -1 || sb.st_size > QCMD_FILE_MAX ||
	    sb.st_size < r->hdrlen || (m = malloc((size_t)sb.st_size +
	    1)) == NULL) {
		close(fd);
		return (errno = errno ? errno : sb.st_size > QCMD_FILE_MAX ?
		    EFBIG : EIO, NULL);
	}
	while (off < (size_t)sb.st_size) {
		if ((got = read(fd, m + off, (size_t)sb.st_size - off)) <= 0) {
			if (got == -1 && errno == EINTR)
				continue;
			free(m);
			close(fd);
			return (errno = got == 0 ? EIO : errno, NULL);
		}
		off += (size_t)got;
	}
	close(fd);
	m[off] = '\0';
	*len = off;
	return m;
}

/* Reads record id into r (0), or says why not (1 absent, -1 error). */
static int
q_get(struct store *st, const char *id, struct quarantine_rec *r)
{
	struct store_txn	*t;
	int			 rc;

	if (!quarantine_id_ok(id)) {
		fprintf(stderr, "moatctl: quarantine: not an ID: ");
		q_put(stderr, id, strlen(id), 64, false);
		fputc('\n', stderr);
		return 1;
	}
	if ((t = store_begin(st, false)) == NULL) {
		fprintf(stderr, "moatctl: %s\n", store_error(st));
		return -1;
	}
	rc = quarantine_index_get(t, id, r);
	store_abort(t);
	if (rc == 1)
		fprintf(stderr, "moatctl: quarantine: no message %s\n", id);
	else if (rc == -1)
		fprintf(stderr, "moatctl: quarantine: %s: unreadable record\n",
		    id);
	return rc;
}

/* ---- list ---- */

struct q_list {
	const char	*domain;
	const char	*reason;
	time_t		 since;
	time_t		 now;
	long		 shown;
};

static bool
q_has_domain(const struct quarantine_rec *r, const char *d)
{
	size_t		 i;
	const char	*a, *at;

	for (i = 0; i < r->nrcpt; i++) {
		a = quarantine_rec_rcpt_at(r, i);
		if ((at = strrchr(a, '@')) != NULL && strcasecmp(at + 1,
		    d) == 0)
			return true;
	}
	return strcasecmp(r->domain, d) == 0;
}

static bool
q_list_one(void *arg, const struct quarantine_rec *r)
{
	struct q_list	*l = arg;
	char		 when[32];

	if ((r->expires != 0 && r->expires <= l->now) || r->time < l->since ||
	    (l->domain != NULL && !q_has_domain(r, l->domain)) ||
	    (l->reason != NULL && strncmp(r->reason, l->reason,
	    strlen(l->reason)) != 0))
		return true;
	q_time(r->time, when, sizeof(when));
	printf("%s %s %s score=%.2f size=%lld %s from=<", r->id, when,
	    q_states[r->state], r->score, r->size, r->reason);
	q_put(stdout, r->from, strlen(r->from), 80, false);
	printf("> to=<");
	q_put(stdout, quarantine_rec_rcpt_at(r, 0),
	    strlen(quarantine_rec_rcpt_at(r, 0)), 80, false);
	printf(">%s\n", r->nrcpt > 1 ? " ..." : "");
	l->shown++;
	return true;
}

/* T: seconds since the epoch, YYYY-MM-DD[THH:MM[:SS]] (UTC), or an age
 * such as 90m, 12h, 7d. -1 when it is none of them. */
static int
q_parse_time(const char *s, time_t now, time_t *out)
{
	struct tm	 tm;
	char		*end;
	long long	 n;
	const char	*e;

	memset(&tm, 0, sizeof(tm));
	if ((e = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm)) == NULL &&
	    (memset(&tm, 0, sizeof(tm)), e = strptime(s, "%Y-%m-%dT%H:%M",
	    &tm)) == NULL && (memset(&tm, 0, sizeof(tm)),
	    e = strptime(s, "%Y-%m-%d", &tm)) == NULL)
		e = NULL;
	if (e != NULL && (*e == '\0' || strcmp(e, "Z") == 0)) {
		*out = timegm(&tm);
		return 0;
	}
	errno = 0;
	n = strtoll(s, &end, 10);
	if (errno != 0 || end == s || n < 0)
		return -1;
	if (*end == '\0')
		*out = (time_t)n;
	else if (strcmp(end, "m") == 0)
		*out = now - (time_t)n * 60;
	else if (strcmp(end, "h") == 0)
		*out = now - (time_t)n * 3600;
	else if (strcmp(end, "d") == 0)
		*out = now - (time_t)n * 86400;
	else
		return -1;
	return 0;
}

static int
q_list(struct store *st, int argc, char **argv)
{
	struct q_list		 l;
	struct store_txn	*t;
	long long		 bytes, count;
	int			 i, rc;

	memset(&l, 0, sizeof(l));
	l.now = time(NULL);
	for (i = 1; i < argc; i++) {
		if (i + 1 >= argc)
			return q_usage();
		if (strcmp(argv[i], "--domain") == 0)
			l.domain = argv[++i];
		else if (strcmp(argv[i], "--reason") == 0)
			l.reason = argv[++i];
		else if (strcmp(argv[i], "--since") == 0) {
			if (q_parse_time(argv[++i], l.now, &l.since) == -1) {
				fprintf(stderr, "moatctl: quarantine: --since: "
				    "not a time (epoch, YYYY-MM-DD[THH:MM"
				    "[:SS]], or 90m, 12h, 7d)\n");
				return 2;
			}
		} else
			return q_usage();
	}
	if ((t = store_begin(st, false)) == NULL) {
		fprintf(stderr, "moatctl: %s\n", store_error(st));
		return 1;
	}
	rc = quarantine_each(t, q_list_one, &l);
	quarantine_totals(t, &bytes, &count);
	store_abort(t);
	if (rc == -1) {
		fprintf(stderr, "moatctl: %s\n", store_error(st));
		return 1;
	}
	fprintf(stderr, "%ld shown; %lld kept, %lld bytes\n", l.shown, count,
	    bytes);
	return 0;
}

/* ---- show ---- */

/* The client's header section, one field per line (folds kept as
 * escaped line breaks), bounded. */
static void
q_show_headers(const char *m, size_t len)
{
	size_t	i = 0, start, shown = 0;

	while (i < len && m[i] != '\n' && shown < QCMD_HEADER_LINES) {
		start = i;
		for (;;) {
			while (i < len && m[i] != '\n')
				i++;
			if (i + 1 < len && (m[i + 1] == ' ' ||
			    m[i + 1] == '\t')) {
				i++;
				continue;
			}
			break;
		}
		printf("  ");
		q_put(stdout, m + start, i - start, QCMD_HEADER_BYTES, false);
		putchar('\n');
		shown++;
		if (i < len)
			i++;
	}
	if (shown == QCMD_HEADER_LINES)
		printf("  (more header fields not shown)\n");
}

struct q_text {
	GMimeObject	*plain;
	GMimeObject	*html;
	int		 attachments;
};

static void
q_walk(GMimeObject *parent, GMimeObject *part, gpointer data)
{
	struct q_text	*x = data;
	GMimeContentType *ct;

	(void)parent;
	if (!GMIME_IS_TEXT_PART(part)) {
		if (GMIME_IS_PART(part))
			x->attachments++;
		return;
	}
	if (g_mime_part_is_attachment(GMIME_PART(part))) {
		x->attachments++;
		return;
	}
	ct = g_mime_object_get_content_type(part);
	if (x->plain == NULL && g_mime_content_type_is_type(ct, "text",
	    "plain"))
		x->plain = part;
	else if (x->html == NULL && g_mime_content_type_is_type(ct, "text",
	    "html"))
		x->html = part;
}

/* Prints the first text part, decoded to UTF-8 (HTML as text), within
 * QCMD_TEXT_BYTES and QCMD_TEXT_LINES. */
static void
q_show_text(const char *m, size_t len)
{
	GMimeStream	*stream;
	GMimeParser	*parser;
	GMimeMessage	*msg;
	struct q_text	 x = { NULL, NULL, 0 };
	char		*text = NULL;
	struct buf	 b;
	size_t		 i, n, lines = 0;

	g_mime_init();	/* counted: mime.c's own init is harmless */
	stream = g_mime_stream_mem_new_with_buffer(m, len);
	parser = g_mime_parser_new_with_stream(stream);
	msg = g_mime_parser_construct_message(parser, NULL);
	g_object_unref(parser);
	g_object_unref(stream);
	if (msg == NULL) {
		printf("  (no readable MIME structure)\n");
		return;
	}
	g_mime_message_foreach(msg, q_walk, &x);
	buf_init(&b, QCMD_TEXT_BYTES + 16);
	if (x.plain != NULL)
		text = g_mime_text_part_get_text(GMIME_TEXT_PART(x.plain));
	else if (x.html != NULL && (text = g_mime_text_part_get_text(
	    GMIME_TEXT_PART(x.html))) != NULL) {
		html_text(text, strnlen(text, MIME_MAX_BYTES), &b, NULL);
		g_free(text);
		text = NULL;
		printf("  (HTML part, shown as text)\n");
	}
	if (text != NULL)
		buf_add(&b, text, strnlen(text, QCMD_TEXT_BYTES + 1));
	g_free(text);
	for (i = n = 0; b.data != NULL && i < b.len && i < QCMD_TEXT_BYTES;
	    i++)
		if (b.data[i] == '\n' && ++lines >= QCMD_TEXT_LINES)
			break;
	n = i;
	if (b.data == NULL || b.len == 0)
		printf("  (no text part)\n");
	else {
		q_put(stdout, b.data, n, QCMD_TEXT_BYTES, true);
		if (n < b.len)
			printf("\n  (text cut at %zu bytes)", n);
		putchar('\n');
	}
	if (x.attachments > 0)
		printf("  (%d other parts not shown)\n", x.attachments);
	buf_free(&b);
	g_object_unref(msg);
}

static int
q_show(struct store *st, int argc, char **argv)
{
	struct quarantine_rec	 r;
	char			 when[32], *m;
	size_t			 len, i;
	int			 rc;

	if (argc != 2)
		return q_usage();
	if ((rc = q_get(st, argv[1], &r)) != 0)
		return 1;
	printf("ID: %s\n", r.id);
	q_time(r.time, when, sizeof(when));
	printf("Kept: %s\n", when);
	q_time(r.expires, when, sizeof(when));
	printf("Expires: %s\nState: %s\n", when, q_states[r.state]);
	q_val("Reason", r.reason);
	printf("Score: %.2f\n", r.score);
	q_val("Symbols", r.symbols);
	q_val("Session", r.session);
	q_val("Client", r.ip);
	q_val("HELO", r.helo);
	q_val("Domain", r.domain);
	printf("Mail-From: <");
	q_put(stdout, r.from, strlen(r.from), QCMD_VALUE_MAX, false);
	printf(">\n");
	for (i = 0; i < r.nrcpt; i++) {
		printf("Rcpt-To: <");
		q_put(stdout, quarantine_rec_rcpt_at(&r, i),
		    strlen(quarantine_rec_rcpt_at(&r, i)), QCMD_VALUE_MAX,
		    false);
		printf(">\n");
	}
	printf("Size: %lld\n", r.size);
	if ((m = q_read(&r, &len)) == NULL) {
		fprintf(stderr, "moatctl: quarantine: %s: %s\n", r.id,
		    strerror(errno));
		quarantine_rec_free(&r);
		return 1;
	}
	if (r.client_off < r.hdrlen || (size_t)r.client_off > len)
		r.client_off = r.hdrlen;
	printf("\nHeaders:\n");
	q_show_headers(m + r.client_off, len - (size_t)r.client_off);
	printf("\nText:\n");
	q_show_text(m + r.client_off, len - (size_t)r.client_off);
	free(m);
	quarantine_rec_free(&r);
	return 0;
}

/* ---- release: delivery by the recipient's method ---- */

static int
q_write_all(int fd, const char *p, size_t n)
{
	ssize_t w;

	while (n > 0) {
		if ((w = write(fd, p, n)) == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* The Maildir of addr under c, by maildir.c's rules (lowercased local
 * part, extension stripped, [a-z0-9._=-] only); -1 when none. */
static int
q_mailbox(const struct deliver_conf *c, const char *addr, char *out,
    size_t outlen)
{
	const char	*at = strrchr(addr, '@');
	char		 user[LIMIT_LOCAL_PART + 1];
	size_t		 i, n;

	if (at == NULL || at == addr || addr[0] == '.' || addr[0] == '"' ||
	    strchr(at + 1, '/') != NULL || at[1] == '.' || at[1] == '\0')
		return -1;
	n = strcspn(addr, c->delimiter);
	if (n > (size_t)(at - addr))
		n = (size_t)(at - addr);
	if (n == 0 || n >= sizeof(user))
		return -1;
	for (i = 0; i < n; i++) {
		char ch = addr[i];

		if (ch >= 'A' && ch <= 'Z')
			ch = (char)(ch - 'A' + 'a');
		if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
		    ch == '.' || ch == '-' || ch == '_' || ch == '='))
			return -1;
		user[i] = ch;
	}
	user[n] = '\0';
	n = (size_t)snprintf(out, outlen, "%s/%s/%s", c->maildir, at + 1,
	    user);
	return n >= outlen ? -1 : 0;
}

static int
q_mkdir_p(char *path)
{
	char *p;

	for (p = path + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(path, 0700) == -1 && errno != EEXIST) {
			*p = '/';
			return -1;
		}
		*p = '/';
	}
	return mkdir(path, 0700) == -1 && errno != EEXIST ? -1 : 0;
}

static int
q_fsync_path(const char *p)
{
	int fd, r;

	if ((fd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return -1;
	r = fsync(fd);
	close(fd);
	return r;
}

/* One recipient's Maildir copy: its tmp/ and new/ names. */
struct q_copy {
	char	dir[4096];
	char	tmp[4300];
	char	dst[4300];
	bool	written;
};

/* Writes one copy into tmp/ and fsyncs it. */
static int
q_maildir_tmp(struct q_copy *c, const struct quarantine_rec *r,
    const char *rcpt, size_t k, const char *msg, size_t len)
{
	static const char *const subs[] = { "tmp", "new", "cur" };
	char	sub[4200], head[1024], host[256];
	int	fd, n, i;

	for (i = 0; i < 3; i++) {
		n = snprintf(sub, sizeof(sub), "%s/%s", c->dir, subs[i]);
		if (n < 0 || (size_t)n >= sizeof(sub) || q_mkdir_p(sub) == -1)
			return -1;
	}
	if (gethostname(host, sizeof(host)) == -1)
		snprintf(host, sizeof(host), "localhost");
	host[sizeof(host) - 1] = '\0';
	n = snprintf(c->tmp, sizeof(c->tmp), "%s/tmp/%lld.R%sQ%zuP%d.%s",
	    c->dir, (long long)time(NULL), r->id, k, (int)getpid(), host);
	if (n < 0 || (size_t)n >= sizeof(c->tmp) || (n = snprintf(c->dst,
	    sizeof(c->dst), "%s/new/%s", c->dir, strrchr(c->tmp, '/') +
	    1)) < 0 || (size_t)n >= sizeof(c->dst))
		return (errno = ENAMETOOLONG, -1);
	n = snprintf(head, sizeof(head), "Return-Path: <%s>\nDelivered-To: "
	    "%s\nX-Moat-Released: %s\n", r->from, rcpt, r->id);
	if (n < 0 || (size_t)n >= sizeof(head))
		return (errno = ENAMETOOLONG, -1);
	if ((fd = open(c->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
	    0600)) == -1)
		return -1;
	c->written = true;
	if (q_write_all(fd, head, (size_t)n) == -1 ||
	    q_write_all(fd, msg, len) == -1 || fsync(fd) == -1) {
		close(fd);
		return -1;
	}
	return close(fd);
}

/*
 * Maildir, as moatd's maildir.c: every copy written to tmp/ and synced
 * before any is linked into new/. -1: nothing delivered; -2: some copies
 * linked before a link failed (the release must not be retried as is).
 */
static int
q_maildir(const struct deliver_conf *dc, const struct quarantine_rec *r,
    const char *msg, size_t len)
{
	struct q_copy	*c;
	char		 sub[4200];
	size_t		 i, linked = 0;
	int		 rc = 0;

	if ((c = calloc(r->nrcpt, sizeof(*c))) == NULL)
		return -1;
	for (i = 0; i < r->nrcpt && rc == 0; i++)
		if (q_mailbox(dc, quarantine_rec_rcpt_at(r, i), c[i].dir,
		    sizeof(c[i].dir)) == -1 || q_maildir_tmp(&c[i], r,
		    quarantine_rec_rcpt_at(r, i), i, msg, len) == -1) {
			fprintf(stderr, "moatctl: quarantine: %s: %s\n",
			    quarantine_rec_rcpt_at(r, i), strerror(errno));
			rc = -1;
		}
	for (i = 0; i < r->nrcpt && rc == 0; i++) {
		snprintf(sub, sizeof(sub), "%s/new", c[i].dir);
		if (link(c[i].tmp, c[i].dst) == -1 ||
		    q_fsync_path(sub) == -1) {
			fprintf(stderr, "moatctl: quarantine: %s: %s (%zu of "
			    "%zu delivered)\n", quarantine_rec_rcpt_at(r, i),
			    strerror(errno), linked, r->nrcpt);
			rc = linked > 0 ? -2 : -1;
		} else
			linked++;
	}
	for (i = 0; i < r->nrcpt; i++)
		if (c[i].written)
			unlink(c[i].tmp);
	free(c);
	return rc;
}

/* qmail-queue: the message on fd 0, the envelope on fd 1 (exit 0 is
 * queued). */
static int
q_qmailqueue(const struct deliver_conf *c, const struct quarantine_rec *r,
    const char *msg, size_t len)
{
	int	in[2], env[2], status;
	pid_t	pid;
	size_t	i;
	struct buf b;

	buf_init(&b, QUARANTINE_RECORD_MAX);
	buf_printf(&b, "F%s", r->from);
	buf_addc(&b, '\0');
	for (i = 0; i < r->nrcpt; i++) {
		buf_printf(&b, "T%s", quarantine_rec_rcpt_at(r, i));
		buf_addc(&b, '\0');
	}
	buf_addc(&b, '\0');
	if (pipe2(in, O_CLOEXEC) == -1) {
		buf_free(&b);
		return -1;
	}
	if (pipe2(env, O_CLOEXEC) == -1) {
		close(in[0]);
		close(in[1]);
		buf_free(&b);
		return -1;
	}
	if ((pid = fork()) == 0) {
		dup2(in[0], 0);
		dup2(env[0], 1);
		execl(c->qmail_queue, c->qmail_queue, (char *)NULL);
		_exit(120);
	}
	close(in[0]);
	close(env[0]);
	if (pid == -1 || q_write_all(in[1], msg, len) == -1) {
		close(in[1]);
		close(env[1]);
		if (pid > 0)
			waitpid(pid, &status, 0);
		buf_free(&b);
		return -1;
	}
	close(in[1]);
	q_write_all(env[1], b.data, b.len);
	close(env[1]);
	buf_free(&b);
	while (waitpid(pid, &status, 0) == -1 && errno == EINTR)
		;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fprintf(stderr, "moatctl: quarantine: %s exited %d\n",
		    c->qmail_queue, WIFEXITED(status) ? WEXITSTATUS(status) :
		    -1);
		return (errno = EIO, -1);
	}
	return 0;
}

/*
 * Delivers the message to its recipients through the delivery of the
 * transaction's policy (moatd gives a transaction one policy: the first
 * recipient's domain's). Maildir and qmail-queue; smtp and lmtp routes
 * are refused before anything is delivered. -1 nothing delivered, -2
 * some of it.
 */
static int
q_deliver(struct moat_config *cf, const struct quarantine_rec *r,
    const char *msg, size_t len)
{
	const struct deliver_conf *c;

	pipeline_active = cf->pl;
	c = pipeline_policy_for(r->domain)->delivery;
	if (r->nrcpt == 0) {
		fprintf(stderr, "moatctl: quarantine: %s has no recipient\n",
		    r->id);
		return -1;
	}
	switch (c->m) {
	case DM_MAILDIR:
		return q_maildir(c, r, msg, len);
	case DM_QMAILQUEUE:
		return q_qmailqueue(c, r, msg, len);
	case DM_SMTP:
	case DM_LMTP:
		break;
	}
	fprintf(stderr, "moatctl: quarantine: %s: delivery method %s: "
	    "release supports maildir and qmail-queue only\n", r->domain,
	    c->method);
	errno = ENOTSUP;
	return -1;
}

/* Moves record id to state to in one write transaction; to releasing
 * only when quarantine_release_refused() allows. -1 (said) otherwise. */
static int
q_transition(struct store *st, const char *id, bool force,
    enum quarantine_state to, struct quarantine_rec *out)
{
	struct store_txn	*t;
	struct quarantine_rec	 r;
	const char		*why;
	int			 rc;

	if ((t = store_begin(st, true)) == NULL) {
		fprintf(stderr, "moatctl: %s\n", store_error(st));
		return -1;
	}
	if ((rc = quarantine_index_get(t, id, &r)) != 0) {
		store_abort(t);
		fprintf(stderr, "moatctl: quarantine: %s %s\n", rc == 1 ?
		    "no message" : "unreadable record", id);
		return -1;
	}
	if (to == QS_RELEASING &&
	    (why = quarantine_release_refused(&r, force)) != NULL) {
		fprintf(stderr, "moatctl: quarantine: %s: %s\n", id, why);
		rc = -1;
	} else {
		r.state = to;
		r.released_at = to == QS_RELEASED ? time(NULL) : 0;
		rc = quarantine_index_put(t, &r);
	}
	if (rc == -1 || store_commit(t) == -1) {
		if (rc != -1)
			fprintf(stderr, "moatctl: %s\n", store_error(st));
		else
			store_abort(t);
		quarantine_rec_free(&r);
		return -1;
	}
	if (out != NULL)
		*out = r;
	else
		quarantine_rec_free(&r);
	return 0;
}

static int
q_release(struct moat_config *cf, struct store *st, int argc, char **argv)
{
	struct quarantine_rec	 r;
	const char		*id = NULL;
	bool			 force = false;
	char			*m;
	size_t			 len;
	int			 i, rc;

	for (i = 1; i < argc; i++)
		if (strcmp(argv[i], "--force") == 0)
			force = true;
		else if (id == NULL)
			id = argv[i];
		else
			return q_usage();
	if (id == NULL)
		return q_usage();
	if (!quarantine_id_ok(id))
		return q_get(st, id, &r) == 0 ? 1 : 1;
	if (q_transition(st, id, force, QS_RELEASING, &r) == -1)
		return 1;
	if ((m = q_read(&r, &len)) == NULL) {
		fprintf(stderr, "moatctl: quarantine: %s: %s\n", id,
		    strerror(errno));
		rc = -1;
	} else
		rc = q_deliver(cf, &r, m + r.hdrlen, len - (size_t)r.hdrlen);
	free(m);
	quarantine_rec_free(&r);
	/* Partly delivered (-2): it stays releasing, so only --force
	 * (after the operator looked) delivers it again. */
	if (rc == -2) {
		fprintf(stderr, "moatctl: quarantine: %s partly delivered; "
		    "left in state releasing\n", id);
		return 1;
	}
	if (q_transition(st, id, true, rc == 0 ? QS_RELEASED :
	    QS_HELD, NULL) == -1) {
		fprintf(stderr, "moatctl: quarantine: %s: state not "
		    "recorded\n", id);
		return 1;
	}
	if (rc == 0)
		printf("released %s\n", id);
	return rc == 0 ? 0 : 1;
}

/* ---- learn, delete, trim ---- */

static int
q_learn(const struct bayes_conf *bc, struct store *st, int argc,
    char **argv)
{
	struct quarantine_rec	 r;
	struct store_txn	*t;
	struct tok		 tk;
	struct mime_stats	 ms;
	enum cls		 cls, prev;
	char			*m;
	size_t			 len;
	int			 rc;

	if (argc != 3 || (strcmp(argv[2], "--spam") != 0 &&
	    strcmp(argv[2], "--ham") != 0))
		return q_usage();
	cls = strcmp(argv[2], "--spam") == 0 ? CLS_SPAM : CLS_HAM;
	if (q_get(st, argv[1], &r) != 0)
		return 1;
	if ((m = q_read(&r, &len)) == NULL) {
		fprintf(stderr, "moatctl: quarantine: %s: %s\n", r.id,
		    strerror(errno));
		quarantine_rec_free(&r);
		return 1;
	}
	if (r.client_off < r.hdrlen || (size_t)r.client_off > len)
		r.client_off = r.hdrlen;
	tok_init(&tk, (size_t)bc->max_features, false);
	bayes_features(bc, m + r.client_off, len - (size_t)r.client_off, &tk,
	    &ms);
	free(m);
	rc = -1;
	if ((t = store_begin(st, true)) != NULL &&
	    (rc = classifier_learn(t, &bc->cls, &tk, cls, &prev)) != -1 &&
	    classifier_prune(t, bc->cls.max_tokens) >= 0 &&
	    classifier_refit(t, &bc->cls) >= 0 && store_commit(t) == 0)
		printf("%s %s as %s\n", r.id, rc == 1 ? "learnt" :
		    "already learnt", cls == CLS_SPAM ? "spam" : "ham");
	else {
		if (t != NULL)
			store_abort(t);
		fprintf(stderr, "moatctl: %s\n", store_error(st));
		rc = -1;
	}
	tok_free(&tk);
	quarantine_rec_free(&r);
	return rc == -1 ? 1 : 0;
}

static int
q_unlink(const char *id)
{
	char path[4096];

	if (quarantine_path(quarantine_dir(), "new", id, path,
	    sizeof(path)) == -1)
		return -1;
	return unlink(path) == -1 && errno != ENOENT ? -1 : 0;
}

static int
q_delete(struct store *st, int argc, char **argv)
{
	struct store_txn	*t;
	struct quarantine_rec	 r;
	int			 rc;

	if (argc != 2)
		return q_usage();
	if (!quarantine_id_ok(argv[1]))
		return q_get(st, argv[1], &r) == 0 ? 1 : 1;
	if ((t = store_begin(st, true)) == NULL) {
		fprintf(stderr, "moatctl: %s\n", store_error(st));
		return 1;
	}
	if ((rc = quarantine_index_get(t, argv[1], &r)) != 0) {
		store_abort(t);
		fprintf(stderr, "moatctl: quarantine: no message %s\n",
		    argv[1]);
		return 1;
	}
	if (quarantine_index_del(t, &r) == -1 || store_commit(t) == -1) {
		fprintf(stderr, "moatctl: %s\n", store_error(st));
		quarantine_rec_free(&r);
		return 1;
	}
	/* The record goes first: a file without one is only litter. */
	if (q_unlink(r.id) == -1)
		fprintf(stderr, "moatctl: quarantine: %s: %s\n", r.id,
		    strerror(errno));
	printf("deleted %s\n", r.id);
	quarantine_rec_free(&r);
	return 0;
}

static void
q_trim_note(void *arg, const struct quarantine_rec *r,
    enum quarantine_drop why)
{
	char	**ids = arg;
	size_t	  i;

	for (i = 0; ids[i] != NULL; i++)
		;
	if (i < 1023 && (ids[i] = strdup(r->id)) != NULL)
		printf("dropped %s why=%s size=%lld\n", r->id,
		    quarantine_drop_names[why], r->size);
}

static int
q_trim(struct store *st)
{
	struct store_txn	*t;
	char			*ids[1024];
	long			 n;
	size_t			 i;

	memset(ids, 0, sizeof(ids));
	if ((t = store_begin(st, true)) == NULL ||
	    (n = quarantine_trim(t, quarantine_conf_active(), time(NULL),
	    q_trim_note, ids)) == -1 || store_commit(t) == -1) {
		if (t != NULL)
			store_abort(t);
		fprintf(stderr, "moatctl: %s\n", store_error(st));
		for (i = 0; ids[i] != NULL; i++)
			free(ids[i]);
		return 1;
	}
	for (i = 0; ids[i] != NULL; i++) {
		q_unlink(ids[i]);
		free(ids[i]);
	}
	fprintf(stderr, "%ld dropped\n", n);
	return 0;
}

int
quarantine_cmd(struct moat_config *cf, struct store *st,
    const struct bayes_conf *bayes, int argc, char **argv)
{
	if (argc < 1)
		return q_usage();
	if (strcmp(argv[0], "list") == 0)
		return q_list(st, argc, argv);
	if (strcmp(argv[0], "show") == 0)
		return q_show(st, argc, argv);
	if (strcmp(argv[0], "release") == 0)
		return q_release(cf, st, argc, argv);
	if (strcmp(argv[0], "learn") == 0)
		return q_learn(bayes, st, argc, argv);
	if (strcmp(argv[0], "delete") == 0)
		return q_delete(st, argc, argv);
	if (strcmp(argv[0], "trim") == 0 && argc == 1)
		return q_trim(st);
	return q_usage();
}
