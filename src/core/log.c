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

/* Points d at the named destination. */
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

int
log_open(const char *h, const char *j, enum log_level level)
{
	log_close();
	threshold = level;
	if (dest_open(&human, h) == -1 || dest_open(&json, j) == -1)
		return -1;
	return 0;
}

void
log_close(void)
{
	if (human.owned)
		close(human.fd);
	if (json.owned)
		close(json.fd);
	human.owned = json.owned = 0;
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

void
log_msg(enum log_level level, uint64_t sid, const char *fmt, ...)
{
	static const int prio[] = { LOG_CRIT, LOG_CRIT, LOG_WARNING,
	    LOG_INFO, LOG_DEBUG, LOG_DEBUG };
	char		 line[LOG_LINE_MAX];
	size_t		 n = 0;
	int		 r;
	va_list		 ap;
	struct timespec	 ts;
	struct tm	 tm;

	if (level > threshold)
		return;
	if (!human.syslog) {
		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%SZ ", &tm);
	}
	r = snprintf(line + n, sizeof(line) - n, "%s [%d] ",
	    level_names[level], (int)getpid());
	n += r > 0 ? (size_t)r : 0;
	if (sid != 0) {
		r = snprintf(line + n, sizeof(line) - n, "%016llx ",
		    (unsigned long long)sid);
		n += r > 0 ? (size_t)r : 0;
	}
	va_start(ap, fmt);
	r = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	va_end(ap);
	if (r < 0)
		r = 0;
	n = n + (size_t)r >= sizeof(line) - 1 ? sizeof(line) - 2 : n + (size_t)r;
	line[n++] = '\n';
	dest_write(&human, prio[level], line, n);
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
