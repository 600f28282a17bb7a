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
 * The writes and fsyncs run on a pool thread (core/tpool), never on the
 * worker's loop: the job owns its paths, headers and its copy of the
 * message, and its completion finds the session by its step token
 * (deliver.h). A job whose transaction ends first (the client gone before
 * our reply) is cancelled: if it has not linked anything into new/ yet,
 * it links nothing, since the client will send the message again.
 *
 * Mailbox directories are made when a message is delivered, never at
 * RCPT: RCPT only checks that the local part can name a mailbox and that
 * the root is usable. Which recipients exist is the recipients filter's
 * business (a users list); without one every well-formed local part of a
 * local domain is a mailbox, but probing addresses (a dictionary attack,
 * RCPT then RSET) leaves nothing on disk: only mail actually delivered
 * makes a directory.
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
#include "../core/tpool.h"
#include "deliver.h"

#define MAILDIR_PATH_MAX	4096
#define MAILDIR_DIR_MAX		3700	/* leaves room for /tmp/<name> */

static unsigned	maildir_seq;	/* atomic: pool threads share it */

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

/* <root>/<domain>/<user>; -1 when the address cannot be a mailbox. */
static int
mailbox_dir(struct session *s, const struct deliver_conf *c,
    const struct rcpt *r, char *dir, size_t dirlen)
{
	char		 user[LIMIT_LOCAL_PART + 1];
	const char	*domain = r->path.domain[0] ? r->path.domain :
			    s->conf->hostname;

	if (mailbox_name(c, r, user, sizeof(user)) == -1 ||
	    strchr(domain, '/') != NULL || domain[0] == '.')
		return -1;
	if ((size_t)snprintf(dir, dirlen, "%s/%s/%s", c->maildir, domain,
	    user) >= dirlen)
		return -1;
	return 0;
}

/* Creates tmp/ new/ cur/ under a mailbox as needed (pool thread). */
static int
mailbox_make(const char *dir)
{
	static const char *const subs[] = { "tmp", "new", "cur" };
	char	 sub[MAILDIR_PATH_MAX];
	size_t	 i;

	for (i = 0; i < 3; i++) {
		snprintf(sub, sizeof(sub), "%s/%s", dir, subs[i]);
		if (mkdir_p(sub, 0700) == -1)
			return -1;
	}
	return 0;
}

/* The root exists (made if missing: the operator named it) and is a
 * directory; nothing below it is made here. */
static int
maildir_root_ok(const struct deliver_conf *c)
{
	char		root[MAILDIR_DIR_MAX];
	struct stat	st;

	if (stat(c->maildir, &st) == 0)
		return S_ISDIR(st.st_mode) ? 0 : (errno = ENOTDIR, -1);
	if ((size_t)snprintf(root, sizeof(root), "%s", c->maildir) >=
	    sizeof(root))
		return (errno = ENAMETOOLONG, -1);
	return mkdir_p(root, 0700);
}

struct verdict
maildir_rcpt(struct session *s, const struct deliver_conf *c,
    const struct rcpt *r)
{
	char	dir[MAILDIR_DIR_MAX];

	if (mailbox_dir(s, c, r, dir, sizeof(dir)) == -1)
		return verdict_make(V_DENY, 550, "5.1.3",
		    "Cannot deliver to this address");
	if (maildir_root_ok(c) == -1) {
		log_msg(LVL_WARN, s->id, "event=maildir_error dir=%s "
		    "errno=%s", c->maildir, strerror(errno));
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

/* One recipient's copy: where it goes and its own two header lines. */
struct md_copy {
	char	dir[MAILDIR_DIR_MAX];
	char	head[2 * (LIMIT_LOCAL_PART + LIMIT_DOMAIN) + 64];
	char	name[LIMIT_DOMAIN + 64];
};

struct md_job {
	struct backend	 step;		/* first: txn->backend */
	struct deliver_token tok;
	int		 cancelled;	/* atomic: set on the loop */
	char		 host[LIMIT_DOMAIN + 1];
	struct buf	 body;		/* the message, LF line ends */
	/* A message spilled to a file (past message_memory) is not copied:
	 * the job reads its own descriptor of the file and turns CRLF into
	 * LF as it writes. The file does not change once the queue stage
	 * has begun. */
	int		 src_fd;		/* -1: body holds it */
	size_t		 src_len;
	struct md_copy	*copy;
	size_t		 n, done;
	int		 failed;	/* errno of the first failure */
};

/* Writes one copy into tmp/ and fsyncs it (pool thread). */
static int
write_tmp(const struct md_job *j, struct md_copy *c)
{
	char		 path[MAILDIR_PATH_MAX];
	struct timespec	 ts;
	struct iovec	 iov[2];
	int		 fd;

	clock_gettime(CLOCK_REALTIME, &ts);
	snprintf(c->name, sizeof(c->name), "%lld.M%ldP%dQ%u.%s",
	    (long long)ts.tv_sec, ts.tv_nsec / 1000, (int)getpid(),
	    __atomic_add_fetch(&maildir_seq, 1, __ATOMIC_RELAXED), j->host);
	snprintf(path, sizeof(path), "%s/tmp/%s", c->dir, c->name);
	if ((fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
	    0600)) == -1)
		return -1;
	iov[0].iov_base = c->head;
	iov[0].iov_len = strlen(c->head);
	iov[1].iov_base = j->body.data;
	iov[1].iov_len = j->body.len;
	if (write_all(fd, iov, j->src_fd == -1 ? 2 : 1) == -1 ||
	    (j->src_fd != -1 && deliver_lf_fd(j->src_fd, j->src_len, fd,
	    NULL) == -1) ||
	    fsync(fd) == -1) {
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

/* Pool thread: every copy to tmp/ and synced, then all linked to new/. */
static void
md_work(void *arg)
{
	struct md_job	*j = arg;
	char		 from[MAILDIR_PATH_MAX], to[MAILDIR_PATH_MAX];
	size_t		 i;
	bool		 cancelled;

	for (i = 0; i < j->n && !j->failed; i++)
		if (mailbox_make(j->copy[i].dir) == -1 ||
		    write_tmp(j, &j->copy[i]) == -1)
			j->failed = errno ? errno : EIO;
	/* Last look before anything becomes visible: a cancelled job's
	 * client never heard 250 and will send the message again. */
	cancelled = __atomic_load_n(&j->cancelled, __ATOMIC_ACQUIRE) != 0;
	for (i = 0; i < j->n; i++) {
		struct md_copy *c = &j->copy[i];

		if (c->name[0] == '\0')
			continue;
		snprintf(from, sizeof(from), "%s/tmp/%s", c->dir, c->name);
		snprintf(to, sizeof(to), "%s/new/%s", c->dir, c->name);
		if (!j->failed && !cancelled && link(from, to) == 0) {
			snprintf(to, sizeof(to), "%s/new", c->dir);
			if (fsync_dir(to) == -1)
				j->failed = errno;
			else
				j->done++;
		} else if (!j->failed)
			j->failed = errno;
		unlink(from);
	}
}

static void
md_free(struct md_job *j)
{
	buf_free(&j->body);
	if (j->src_fd != -1)
		close(j->src_fd);
	free(j->copy);
	free(j);
}

/* Loop thread: the verdict goes to the session, if the job is still its
 * step (a cancelled job was detached by deliver_abort()). */
static void
md_done(void *arg)
{
	struct md_job *j = arg;

	if (j->cancelled)
		log_msg(LVL_INFO, j->tok.sid, "event=maildir_cancelled "
		    "delivered=%zu", j->done);
	else if (j->failed) {
		log_msg(LVL_WARN, j->tok.sid, "event=maildir_error "
		    "delivered=%zu errno=%s", j->done, strerror(j->failed));
		deliver_step_done(j->tok, verdict_make(V_DEFER, 451, "4.3.0",
		    "Local delivery failed, try again later"), true);
	} else
		deliver_step_done(j->tok, VERDICT(V_CONTINUE), true);
	md_free(j);
}

/* The transaction ended first: the pool thread links nothing if it has
 * not started to; md_done() frees the job. */
static void
md_cancel(struct backend *st)
{
	struct md_job *j = (struct md_job *)st;

	__atomic_store_n(&j->cancelled, 1, __ATOMIC_RELEASE);
}

/* The job for this transaction: paths, headers and the LF message. */
static struct md_job *
md_job_new(struct session *s, const struct deliver_conf *c)
{
	struct txn		*t = s->txn;
	const struct path	*f = &t->from;
	struct md_job		*j;
	size_t			 i;

	if ((j = calloc(1, sizeof(*j))) == NULL)
		return NULL;
	j->src_fd = -1;
	snprintf(j->host, sizeof(j->host), "%s", s->conf->hostname);
	if (t->msg.mapped) {
		j->src_fd = fcntl(t->msg.fd, F_DUPFD_CLOEXEC, 0);
		j->src_len = t->msg.len;
	}
	if ((j->copy = calloc(t->naccepted, sizeof(*j->copy))) == NULL ||
	    (t->msg.mapped ? j->src_fd == -1 : deliver_lf(&t->msg,
	    &j->body) == -1)) {
		md_free(j);
		return NULL;
	}
	for (i = 0; i < t->nrcpt; i++) {
		struct md_copy *cp = &j->copy[j->n];

		if (!t->rcpts[i].accepted || t->rcpts[i].consumed)
			continue;
		if (mailbox_dir(s, c, &t->rcpts[i], cp->dir,
		    sizeof(cp->dir)) == -1) {
			md_free(j);
			return NULL;
		}
		snprintf(cp->head, sizeof(cp->head), "Return-Path: <%s%s%s>\n"
		    "Delivered-To: %s\n", f->local, f->domain[0] ? "@" : "",
		    f->domain, t->rcpts[i].addr);
		j->n++;
	}
	return j;
}

void
maildir_deliver(struct session *s, const struct deliver_conf *c)
{
	struct md_job *j = md_job_new(s, c);

	if (j == NULL) {
		session_queued(s->id, verdict_make(V_DEFER, 451, "4.3.0",
		    "Out of memory"));
		return;
	}
	deliver_step_attach(s, &j->step, md_cancel);
	j->tok = deliver_step_next(&j->step);
	if (tpool_submit(md_work, md_done, j) == 0)
		return;
	/* No pool (it failed to start): do it here rather than not at all. */
	md_work(j);
	md_done(j);
}
