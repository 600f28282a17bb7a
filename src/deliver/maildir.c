/*
 * maildir.c: local delivery into Maildir (<root>/<domain>/<user>/).
 *
 * The qmail discipline: write to tmp/ under a unique name, fsync, link
 * into new/, fsync the new/ directory; only then is the message durable.
 * With several recipients every tmp/ file is written and synced before
 * any is linked, so a failure leaves nothing delivered and the client
 * gets 4xx for the whole message. Files hold LF line ends (Maildir
 * convention); the SMTP CRLF is translated on the way.
 *
 * This runs on the worker's loop: a local fsync is bounded in time,
 * unlike a network wait. A thread pool can take it if profiling asks.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "../core/log.h"
#include "deliver.h"

#define MAILDIR_PATH_MAX	4096
#define MAILDIR_DIR_MAX		3800	/* leaves room for /tmp/<name> */

static unsigned	maildir_seq;

/* A mailbox name made of characters that are safe in a path. */
static int
mailbox_name(const struct deliver_conf *c, const struct rcpt *r, char *out,
    size_t outlen)
{
	const char	*lp = r->path.local;
	size_t		 i, n = strcspn(lp, c->delimiter);

	if (r->path.quoted || n == 0 || n >= outlen || lp[0] == '.')
		return -1;
	for (i = 0; i < n; i++) {
		char ch = lp[i];

		if (ch >= 'A' && ch <= 'Z')
			ch = (char)(ch - 'A' + 'a');
		if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
		    ch == '.' || ch == '-' || ch == '_' || ch == '='))
			return -1;
		out[i] = ch;
	}
	out[n] = '\0';
	return 0;
}

static int
mkdir_p(char *path, mode_t mode)
{
	char *p;

	for (p = path + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(path, mode) == -1 && errno != EEXIST) {
			*p = '/';
			return -1;
		}
		*p = '/';
	}
	return mkdir(path, mode) == -1 && errno != EEXIST ? -1 : 0;
}

/* <root>/<domain>/<user>, creating tmp/ new/ cur/ as needed. */
static int
mailbox_path(struct session *s, const struct deliver_conf *c,
    const struct rcpt *r, char *dir, size_t dirlen)
{
	char		 user[LIMIT_LOCAL_PART + 1], sub[MAILDIR_PATH_MAX];
	const char	*domain = r->path.domain[0] ? r->path.domain :
			    s->conf->hostname;
	static const char *const subs[] = { "tmp", "new", "cur" };
	size_t		 i;

	if (mailbox_name(c, r, user, sizeof(user)) == -1 ||
	    strchr(domain, '/') != NULL || domain[0] == '.')
		return -1;
	if ((size_t)snprintf(dir, dirlen, "%s/%s/%s", c->maildir, domain,
	    user) >= dirlen)
		return -1;
	for (i = 0; i < 3; i++) {
		snprintf(sub, sizeof(sub), "%s/%s", dir, subs[i]);
		if (mkdir_p(sub, 0700) == -1)
			return -2;
	}
	return 0;
}

struct verdict
maildir_rcpt(struct session *s, const struct deliver_conf *c,
    const struct rcpt *r)
{
	char	dir[MAILDIR_DIR_MAX];
	int	rc = mailbox_path(s, c, r, dir, sizeof(dir));

	if (rc == -1)
		return verdict_make(V_DENY, 550, "5.1.3",
		    "Cannot deliver to this address");
	if (rc == -2) {
		log_msg(LVL_WARN, s->id, "event=maildir_error dir=%s "
		    "errno=%s", dir, strerror(errno));
		return verdict_make(V_DEFER, 451, "4.3.0",
		    "Mailbox unavailable, try again later");
	}
	return VERDICT(V_CONTINUE);
}

static int
write_all(int fd, struct iovec *iov, int n)
{
	ssize_t w;

	while (n > 0) {
		if ((w = writev(fd, iov, n)) == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		while (n > 0 && (size_t)w >= iov->iov_len) {
			w -= (ssize_t)iov->iov_len;
			iov++;
			n--;
		}
		if (n > 0) {
			iov->iov_base = (char *)iov->iov_base + w;
			iov->iov_len -= (size_t)w;
		}
	}
	return 0;
}

/* Writes one copy into tmp/ and fsyncs it; name gets the file name. */
static int
write_tmp(struct session *s, const char *dir, const struct rcpt *r,
    const struct buf *body, char *name, size_t namelen)
{
	char		 path[MAILDIR_PATH_MAX], head[LIMIT_PATH * 2 + 64];
	struct timespec	 ts;
	struct iovec	 iov[2];
	int		 fd, hn;
	const struct path *f = &s->txn->from;

	clock_gettime(CLOCK_REALTIME, &ts);
	snprintf(name, namelen, "%lld.M%ldP%dQ%u.%s", (long long)ts.tv_sec,
	    ts.tv_nsec / 1000, (int)getpid(), ++maildir_seq,
	    s->conf->hostname);
	snprintf(path, sizeof(path), "%s/tmp/%s", dir, name);
	if ((fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
	    0600)) == -1)
		return -1;
	hn = snprintf(head, sizeof(head), "Return-Path: <%s%s%s>\n"
	    "Delivered-To: %s\n", f->local, f->domain[0] ? "@" : "",
	    f->domain, r->addr);
	iov[0].iov_base = head;
	iov[0].iov_len = (size_t)hn;
	iov[1].iov_base = body->data;
	iov[1].iov_len = body->len;
	if (write_all(fd, iov, 2) == -1 || fsync(fd) == -1) {
		close(fd);
		unlink(path);
		return -1;
	}
	return close(fd);
}

static int
fsync_dir(const char *dir)
{
	int fd, r;

	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return -1;
	r = fsync(fd);
	close(fd);
	return r;
}

struct verdict
maildir_deliver(struct session *s, const struct deliver_conf *c)
{
	struct txn	*t = s->txn;
	struct buf	 body;
	char		 (*names)[128], dir[MAILDIR_DIR_MAX], from[MAILDIR_PATH_MAX],
			 to[MAILDIR_PATH_MAX];
	size_t		 i, done = 0;
	int		 failed = 0;

	if ((names = calloc(t->nrcpt, sizeof(*names))) == NULL ||
	    deliver_lf(&t->msg, &body) == -1) {
		free(names);
		return verdict_make(V_DEFER, 451, "4.3.0", "Out of memory");
	}
	/* Phase 1: every copy written and synced in tmp/. */
	for (i = 0; i < t->nrcpt && !failed; i++) {
		if (!t->rcpts[i].accepted)
			continue;
		if (mailbox_path(s, c, &t->rcpts[i], dir, sizeof(dir)) != 0 ||
		    write_tmp(s, dir, &t->rcpts[i], &body, names[i],
		    sizeof(names[i])) == -1)
			failed = 1;
	}
	/* Phase 2: link into new/, sync new/, drop the tmp/ name. */
	for (i = 0; i < t->nrcpt; i++) {
		if (names[i][0] == '\0')
			continue;
		mailbox_path(s, c, &t->rcpts[i], dir, sizeof(dir));
		snprintf(from, sizeof(from), "%s/tmp/%s", dir, names[i]);
		snprintf(to, sizeof(to), "%s/new/%s", dir, names[i]);
		if (!failed && link(from, to) == 0) {
			snprintf(to, sizeof(to), "%s/new", dir);
			if (fsync_dir(to) == -1)
				failed = 1;
			else
				done++;
		} else
			failed = 1;
		unlink(from);
	}
	buf_free(&body);
	free(names);
	if (failed) {
		log_msg(LVL_WARN, s->id, "event=maildir_error delivered=%zu "
		    "errno=%s", done, strerror(errno));
		return verdict_make(V_DEFER, 451, "4.3.0",
		    "Local delivery failed, try again later");
	}
	return VERDICT(V_CONTINUE);
}
