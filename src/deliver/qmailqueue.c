/*
 * qmailqueue.c: hands the message to a qmail-queue compatible program:
 * message on its fd 0, envelope on fd 1 ("F" sender NUL, "T" rcpt NUL
 * per recipient, NUL), and maps its exit code (qmail-queue(8)): 0 is
 * queued, 11-40 permanent refusal (5xx), anything else temporary (4xx).
 *
 * Nothing blocks the loop: both pipes are written through bufferevents,
 * and the child's exit is seen through a pidfd readable event (Linux
 * 5.3+), so no SIGCHLD handler is needed in the worker.
 *
 * The job is the transaction's delivery step (deliver.h). If the
 * transaction ends before the child has exited (the client gone before
 * our reply), the child is killed: qmail-queue commits only once it has
 * read the whole message and envelope, so a child killed before that
 * queues nothing, and the client, which never heard 250, sends again.
 * The job lives on until the child is reaped; its verdict is dropped.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "../core/log.h"
#include "deliver.h"

struct qq_job {
	struct backend		 step;		/* first: txn->backend */
	struct deliver_token	 tok;
	bool			 cancelled;
	bool			 exited;
	pid_t			 pid;
	int			 pidfd;
	struct event		*exit_ev;
	struct event		*timer;
	struct bufferevent	*msg, *env;
};

static struct event_base *qq_base;

void
qmailqueue_init(struct event_base *base)
{
	qq_base = base;
}

/* Forgets and frees one of the job's pipes. */
static void
pipe_close(struct qq_job *j, struct bufferevent *bev)
{
	if (bev == j->msg)
		j->msg = NULL;
	else
		j->env = NULL;
	bufferevent_free(bev);
}

/* Closes a pipe once everything queued on it is written. */
static void
pipe_drained(struct bufferevent *bev, void *arg)
{
	if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		pipe_close(arg, bev);
}

/* The child closed its end early; its exit code will say why. */
static void
pipe_error(struct bufferevent *bev, short what, void *arg)
{
	(void)what;
	pipe_close(arg, bev);
}

static void
job_free(struct qq_job *j)
{
	if (j->msg != NULL)
		bufferevent_free(j->msg);
	if (j->env != NULL)
		bufferevent_free(j->env);
	if (j->exit_ev != NULL)
		event_free(j->exit_ev);
	if (j->timer != NULL)
		event_free(j->timer);
	if (j->pidfd != -1)
		close(j->pidfd);
	free(j);
}

static struct verdict
exit_verdict(int status)
{
	int code;

	if (!WIFEXITED(status))
		return verdict_make(V_DEFER, 451, "4.3.0",
		    "Queue program crashed, try again later");
	code = WEXITSTATUS(status);
	if (code == 0)
		return VERDICT(V_CONTINUE);
	if (code >= 11 && code <= 40)
		return verdict_make(V_DENY, 554, "5.3.0",
		    "Message refused by the queue");
	return verdict_make(V_DEFER, 451, "4.3.0",
	    "Queue temporarily unavailable, try again later");
}

static void
child_exited(evutil_socket_t fd, short what, void *arg)
{
	struct qq_job	*j = arg;
	int		 status = 0;

	(void)fd;
	(void)what;
	while (waitpid(j->pid, &status, 0) == -1 && errno == EINTR)
		;
	j->exited = true;
	log_msg(j->cancelled ? LVL_INFO : LVL_DEBUG, j->tok.sid,
	    "event=qmail_queue status=%d%s", status, j->cancelled ?
	    " cancelled=yes" : "");
	if (!j->cancelled)
		deliver_step_done(j->tok, exit_verdict(status), true);
	job_free(j);
}

/* The transaction ended first: the child goes, child_exited() reaps it
 * and frees the job. */
static void
job_cancel(struct backend *st)
{
	struct qq_job *j = (struct qq_job *)st;

	j->cancelled = true;
	if (!j->exited)
		kill(j->pid, SIGKILL);
}

static void
job_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct qq_job *j = arg;

	(void)fd;
	(void)what;
	log_msg(LVL_WARN, j->tok.sid, "event=qmail_queue_timeout pid=%d",
	    (int)j->pid);
	kill(j->pid, SIGKILL);	/* child_exited() reports the 4xx */
}

/* Forks the program with the two pipes on fds 0 and 1. */
static pid_t
spawn(const char *prog, int *msgfd, int *envfd)
{
	int	m[2], e[2];
	pid_t	pid;

	if (pipe2(m, O_CLOEXEC) == -1)
		return -1;
	if (pipe2(e, O_CLOEXEC) == -1) {
		close(m[0]);
		close(m[1]);
		return -1;
	}
	if ((pid = fork()) == 0) {
		if (dup2(m[0], 0) == -1 || dup2(e[0], 1) == -1)
			_exit(81);
		signal(SIGPIPE, SIG_DFL);
		execl(prog, prog, (char *)NULL);
		_exit(81);
	}
	close(m[0]);
	close(e[0]);
	if (pid == -1) {
		close(m[1]);
		close(e[1]);
		return -1;
	}
	*msgfd = m[1];
	*envfd = e[1];
	return pid;
}

/* The envelope in qmail-queue's format. */
static void
envelope(struct session *s, struct evbuffer *out)
{
	const struct path	*f = &s->txn->from;
	size_t			 i;

	evbuffer_add_printf(out, "F%s%s%s", f->local, f->null ? "" : "@",
	    f->domain);
	evbuffer_add(out, "", 1);
	for (i = 0; i < s->txn->nrcpt; i++) {
		if (!s->txn->rcpts[i].accepted ||
		    s->txn->rcpts[i].consumed)
			continue;
		evbuffer_add_printf(out, "T%s", s->txn->rcpts[i].addr);
		evbuffer_add(out, "", 1);
	}
	evbuffer_add(out, "", 1);
}

void
qmailqueue_data(struct session *s, const struct deliver_conf *c)
{
	struct qq_job	*j;
	struct buf	 lf;
	int		 mfd, efd;
	struct timeval	 tv = { (time_t)c->timeout, 0 };

	buf_init(&lf, 0);
	if (deliver_lf(&s->txn->msg, &lf) == -1 ||
	    (j = calloc(1, sizeof(*j))) == NULL)
		goto fail;
	if ((j->pid = spawn(c->qmail_queue, &mfd, &efd)) == -1) {
		free(j);
		goto fail;
	}
	j->pidfd = (int)syscall(SYS_pidfd_open, j->pid, 0);
	evutil_make_socket_nonblocking(mfd);
	evutil_make_socket_nonblocking(efd);
	j->msg = bufferevent_socket_new(qq_base, mfd, BEV_OPT_CLOSE_ON_FREE);
	j->env = bufferevent_socket_new(qq_base, efd, BEV_OPT_CLOSE_ON_FREE);
	j->exit_ev = event_new(qq_base, j->pidfd, EV_READ, child_exited, j);
	j->timer = evtimer_new(qq_base, job_timeout, j);
	if (j->pidfd == -1 || j->msg == NULL || j->env == NULL ||
	    j->exit_ev == NULL || j->timer == NULL) {
		kill(j->pid, SIGKILL);
		waitpid(j->pid, NULL, 0);
		job_free(j);
		goto fail;
	}
	evbuffer_add(bufferevent_get_output(j->msg), lf.data, lf.len);
	buf_free(&lf);
	envelope(s, bufferevent_get_output(j->env));
	bufferevent_setcb(j->msg, NULL, pipe_drained, pipe_error, j);
	bufferevent_setcb(j->env, NULL, pipe_drained, pipe_error, j);
	bufferevent_enable(j->msg, EV_WRITE);
	bufferevent_enable(j->env, EV_WRITE);
	event_add(j->exit_ev, NULL);
	evtimer_add(j->timer, &tv);
	deliver_step_attach(s, &j->step, job_cancel);
	j->tok = deliver_step_next(&j->step);
	return;
fail:
	buf_free(&lf);
	log_msg(LVL_WARN, s->id, "event=qmail_queue_error prog=%s errno=%s",
	    c->qmail_queue, strerror(errno));
	session_queued(s->id, verdict_make(V_DEFER, 451, "4.3.0",
	    "Queue unavailable, try again later"));
}
