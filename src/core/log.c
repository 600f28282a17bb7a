/*
 * log.c: the human log and the JSON event log (see log.h).
 *
 * Writes are single write(2) calls of whole lines, so lines from several
 * worker processes appending to one file do not interleave.
 */
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "log.h"

#define LOG_LINE_MAX	4096

static const char *const level_names[] = {
	"panic", "fatal", "warn", "info", "debug", "trace"
};

struct dest {
	int	 fd;		/* -1: off */
	int	 syslog;
	int	 owned;		/* fd was opened by us */
};

static struct dest	human = { 2, 0, 0 };
static struct dest	json = { -1, 0, 0 };
static enum log_level	threshold = LVL_INFO;
static const int	level_prio[] = { LOG_CRIT, LOG_CRIT, LOG_WARNING, LOG_INFO,
			    LOG_DEBUG, LOG_DEBUG };

/* Points d at the named destination; -1 (errno set) when a file cannot
 * be opened. */
static int
dest_open(struct dest *d, const char *what)
{
	d->fd = -1;
	d->syslog = d->owned = 0;
	if (what == NULL || strcmp(what, "off") == 0)
		return 0;
	if (strcmp(what, "stderr") == 0)
		d->fd = 2;
	else if (strcmp(what, "stdout") == 0)
		d->fd = 1;
	else if (strcmp(what, "syslog") == 0) {
		d->syslog = 1;
		openlog("moatd", LOG_PID | LOG_NDELAY, LOG_MAIL);
	} else {
		d->fd = open(what, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC,
		    0640);
		if (d->fd == -1)
			return -1;
		d->owned = 1;
	}
	return 0;
}

static void
dest_close(struct dest *d)
{
	if (d->owned)
		close(d->fd);
	d->owned = 0;
}

/*
 * Both new destinations are opened before either old one is closed, so a
 * reload whose log cannot be opened (a missing directory, a rotated file
 * we may not recreate) keeps logging where it did instead of nowhere.
 */
int
log_open(const char *h, const char *j, enum log_level level, char *err,
    size_t errlen)
{
	struct dest	nh, nj;

	if (dest_open(&nh, h) == -1) {
		snprintf(err, errlen, "log %s: %s", h, strerror(errno));
		return -1;
	}
	if (dest_open(&nj, j) == -1) {
		snprintf(err, errlen, "json_log %s: %s", j, strerror(errno));
		dest_close(&nh);
		return -1;
	}
	log_close();
	human = nh;
	json = nj;
	threshold = level;
	return 0;
}

void
log_close(void)
{
	dest_close(&human);
	dest_close(&json);
}

int
log_level_parse(const char *s)
{
	size_t i;

	for (i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
		if (strcmp(s, level_names[i]) == 0)
			return (int)i;
	return -1;
}

int
log_enabled(enum log_level level)
{
	return level <= threshold;
}

static void
dest_write(struct dest *d, int prio, const char *line, size_t len)
{
	ssize_t n;

	if (d->syslog) {
		syslog(prio, "%.*s", (int)len, line);
		return;
	}
	if (d->fd == -1)
		return;
	do {
		n = write(d->fd, line, len);
	} while (n == -1 && errno == EINTR);
}

/* "level [pid] [sid ]text\n" into line; returns its length. */
static size_t
format_line(char *line, size_t size, enum log_level level, uint64_t sid,
    const char *fmt, va_list ap)
{
	size_t	n = 0;
	int	r;

	r = snprintf(line, size, "%s [%d] ", level_names[level],
	    (int)getpid());
	n += r > 0 ? (size_t)r : 0;
	if (sid != 0) {
		r = snprintf(line + n, size - n, "%016llx ",
		    (unsigned long long)sid);
		n += r > 0 ? (size_t)r : 0;
	}
	r = vsnprintf(line + n, size - n, fmt, ap);
	if (r < 0)
		r = 0;
	n = n + (size_t)r >= size - 1 ? size - 2 : n + (size_t)r;
	line[n++] = '\n';
	return n;
}

/* The UTC time stamp that starts a line written to a file or stream. */
static size_t
format_time(char *out, size_t size)
{
	struct timespec	ts;
	struct tm	tm;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	return strftime(out, size, "%Y-%m-%dT%H:%M:%SZ ", &tm);
}

void
log_msg(enum log_level level, uint64_t sid, const char *fmt, ...)
{
	char	line[LOG_LINE_MAX];
	size_t	n = 0;
	va_list	ap;

	if (level > threshold)
		return;
	if (!human.syslog)
		n = format_time(line, 64);
	va_start(ap, fmt);
	n += format_line(line + n, sizeof(line) - n, level, sid, fmt, ap);
	va_end(ap);
	dest_write(&human, level_prio[level], line, n);
}

void
log_loud(const char *fmt, ...)
{
	char	line[LOG_LINE_MAX];
	size_t	t, n;
	va_list	ap;

	t = format_time(line, 64);
	va_start(ap, fmt);
	n = format_line(line + t, sizeof(line) - t, LVL_WARN, 0, fmt, ap);
	va_end(ap);
	dest_write(&human, level_prio[LVL_WARN], human.syslog ? line + t : line,
	    human.syslog ? n : t + n);
	if (human.fd != 2) {
		struct dest err = { 2, 0, 0 };

		dest_write(&err, 0, line, t + n);
	}
	if (!human.syslog)
		syslog(LOG_MAIL | LOG_WARNING, "%.*s", (int)n, line + t);
}

bool
log_json_enabled(void)
{
	return json.fd != -1 || json.syslog;
}

void
log_json(struct buf *line)
{
	if (buf_addc(line, '\n') == -1)
		return;
	dest_write(&json, LOG_INFO, line->data, line->len);
	line->data[--line->len] = '\0';
}
