/*
 * master.c: binds the listeners, forks the workers and supervises them.
 *
 * Each listen address gets one socket per worker slot, all bound with
 * SO_REUSEPORT so the kernel spreads connections; a slot's socket stays
 * open in the master, so a restarted worker takes over its queue and no
 * connection is lost with a crash. A worker that dies is restarted after
 * a back-off that doubles while it keeps dying young (1 s .. 30 s).
 * SIGHUP loads the config anew: on error the old one keeps serving; on
 * success a new generation of workers starts and the old one drains.
 * SIGTERM/SIGINT drain every worker and exit.
 */
#include <errno.h>
#include <grp.h>
#include <netdb.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "../core/log.h"
#include "connlimit.h"
#include "master.h"
#include "worker.h"

#define MAX_LISTEN	16
#define BACKOFF_MAX	30
#define YOUNG		10	/* a worker dying sooner is "young" */

struct slot {
	pid_t		 pid;		/* 0: not running */
	int		 gen;		/* config generation it runs */
	time_t		 started;
	int		 backoff;
	bool		 retired;	/* draining after a reload */
	struct event	*restart;
};

static struct moat_config	*m_cf;
static struct event_base	*m_base;
static int			 m_fds[MAX_LISTEN][LIMIT_WORKERS];
static int			 m_nlisten;
static int			 m_nworkers;
static struct slot		 m_slots[LIMIT_WORKERS];
static int			 m_gen;
static bool			 m_stopping;

/* Splits "host:port" / "[v6]:port" and binds one SO_REUSEPORT socket. */
static int
bind_one(const char *spec, char *err, size_t errlen)
{
	struct addrinfo	 hints, *res;
	char		 host[256], *port;
	int		 fd, one = 1, e;

	snprintf(host, sizeof(host), "%s", spec[0] == '[' ? spec + 1 : spec);
	port = strrchr(host, ':');
	if (port == NULL) {
		snprintf(err, errlen, "listen '%s': expected host:port", spec);
		return -1;
	}
	*port++ = '\0';
	if (spec[0] == '[' && port - host >= 2 && port[-2] == ']')
		port[-2] = '\0';
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST;
	if ((e = getaddrinfo(host, port, &hints, &res)) != 0) {
		snprintf(err, errlen, "listen '%s': %s", spec, gai_strerror(e));
		return -1;
	}
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK, 0);
	if (fd == -1 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one,
	    sizeof(one)) == -1 || setsockopt(fd, SOL_SOCKET, SO_REUSEPORT,
	    &one, sizeof(one)) == -1 || bind(fd, res->ai_addr,
	    res->ai_addrlen) == -1 ||
	    listen(fd, (int)m_cf->server.listen_backlog) == -1) {
		snprintf(err, errlen, "listen '%s': %s", spec, strerror(errno));
		if (fd != -1)
			close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	return fd;
}

static int
bind_all(char *err, size_t errlen)
{
	char	*copy, *w[MAX_LISTEN];
	int	 n, i, k;

	if ((copy = strdup(m_cf->server.listen)) == NULL)
		return -1;
	if ((n = config_words(copy, w, MAX_LISTEN)) <= 0) {
		snprintf(err, errlen, "listen: give 1 to %d addresses",
		    MAX_LISTEN);
		free(copy);
		return -1;
	}
	for (i = 0; i < n; i++) {
		for (k = 0; k < m_nworkers; k++)
			if ((m_fds[i][k] = bind_one(w[i], err, errlen)) == -1) {
				free(copy);
				return -1;
			}
	}
	m_nlisten = n;
	free(copy);
	return 0;
}

/* RLIMIT_NOFILE as high as the host lets us. */
static void
raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
		log_info("event=nofile limit=%llu",
		    (unsigned long long)rl.rlim_cur);
}

static int
drop_privileges(char *err, size_t errlen)
{
	struct passwd *pw;

	if (m_cf->server.user[0] == '\0' || getuid() != 0)
		return 0;
	if ((pw = getpwnam(m_cf->server.user)) == NULL) {
		snprintf(err, errlen, "user '%s' does not exist",
		    m_cf->server.user);
		return -1;
	}
	/* The state directory must stay writable for the new user. */
	(void)!chown(m_cf->server.var_dir, pw->pw_uid, pw->pw_gid);
	if (setgroups(1, &pw->pw_gid) == -1 || setgid(pw->pw_gid) == -1 ||
	    setuid(pw->pw_uid) == -1) {
		snprintf(err, errlen, "dropping to '%s': %s",
		    m_cf->server.user, strerror(errno));
		return -1;
	}
	return 0;
}

static void
spawn(int i)
{
	int	fds[MAX_LISTEN], k;
	pid_t	pid;

	for (k = 0; k < m_nlisten; k++)
		fds[k] = m_fds[k][i % m_nworkers];
	connlimit_clear(i);
	if ((pid = fork()) == -1) {
		log_warn("event=fork_failed errno=%s", strerror(errno));
		return;
	}
	if (pid == 0) {
		/* Only this slot's sockets: the others must close when
		 * their own workers do. */
		for (k = 0; k < m_nlisten * m_nworkers; k++)
			if (k % m_nworkers != i % m_nworkers)
				close(m_fds[k / m_nworkers][k % m_nworkers]);
		/* The master's loop is not the worker's: a fresh epoll
		 * first, so freeing it leaves the parent's untouched. */
		event_reinit(m_base);
		event_base_free(m_base);
		exit(worker_run(m_cf, fds, m_nlisten, i));
	}
	m_slots[i].pid = pid;
	m_slots[i].gen = m_gen;
	m_slots[i].started = time(NULL);
	m_slots[i].retired = false;
	log_info("event=worker_started slot=%d pid=%d", i, (int)pid);
}

static void
restart_cb(evutil_socket_t fd, short what, void *arg)
{
	int i = (int)(intptr_t)arg;

	(void)fd;
	(void)what;
	if (!m_stopping && m_slots[i].pid == 0)
		spawn(i);
}

/* Slots 0..n-1 serve generation A, n..2n-1 generation B, alternately, so
 * old and new workers never share a connection-count region. */
static int
slot_base(int gen)
{
	return (gen % 2) * m_nworkers;
}

static int
live_workers(void)
{
	int i, n = 0;

	for (i = 0; i < 2 * m_nworkers; i++)
		if (m_slots[i].pid != 0)
			n++;
	return n;
}

static void
reaped(pid_t pid, int status)
{
	int		i;
	struct timeval	tv = { 0, 0 };

	for (i = 0; i < 2 * m_nworkers; i++)
		if (m_slots[i].pid == pid)
			break;
	if (i == 2 * m_nworkers)
		return;
	m_slots[i].pid = 0;
	connlimit_clear(i);
	if (m_stopping || m_slots[i].retired) {
		log_info("event=worker_exit slot=%d pid=%d status=%d", i,
		    (int)pid, status);
		if (m_stopping && live_workers() == 0)
			event_base_loopexit(m_base, NULL);
		return;
	}
	if (time(NULL) - m_slots[i].started < YOUNG)
		m_slots[i].backoff = m_slots[i].backoff ?
		    (m_slots[i].backoff * 2 > BACKOFF_MAX ? BACKOFF_MAX :
		    m_slots[i].backoff * 2) : 1;
	else
		m_slots[i].backoff = 0;
	tv.tv_sec = m_slots[i].backoff;
	log_warn("event=worker_died slot=%d pid=%d status=%d restart_in=%ds",
	    i, (int)pid, status, (int)tv.tv_sec);
	if (m_slots[i].restart == NULL)
		m_slots[i].restart = evtimer_new(m_base, restart_cb,
		    (void *)(intptr_t)i);
	evtimer_add(m_slots[i].restart, &tv);
}

static void
on_sigchld(evutil_socket_t sig, short what, void *arg)
{
	pid_t	pid;
	int	status;

	(void)sig;
	(void)what;
	(void)arg;
	while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
		reaped(pid, status);
}

static void
on_sighup(evutil_socket_t sig, short what, void *arg)
{
	struct moat_config	*cf;
	char			 err[1024];
	int			 i, old;

	(void)sig;
	(void)what;
	(void)arg;
	if ((cf = conf_load(m_cf->path, err, sizeof(err))) == NULL) {
		log_warn("event=reload_failed error=\"%s\" (old config "
		    "stays)", err);
		return;
	}
	if (log_open(cf->server.log, cf->server.json_log,
	    (enum log_level)log_level_parse(cf->server.log_level), err,
	    sizeof(err)) == -1) {
		log_loud("event=reload_failed error=\"cannot open %s\" (old "
		    "config and log stay)", err);
		conf_free(cf);
		return;
	}
	if (strcmp(cf->server.listen, m_cf->server.listen) != 0 ||
	    cf->server.workers != m_cf->server.workers)
		log_warn("event=reload note=\"listen and workers change on "
		    "restart only\"");
	old = slot_base(m_gen);
	for (i = old; i < old + m_nworkers; i++) {
		m_slots[i].retired = true;
		if (m_slots[i].pid != 0)
			kill(m_slots[i].pid, SIGTERM);
		if (m_slots[i].restart != NULL)
			evtimer_del(m_slots[i].restart);
	}
	/* Retired workers are separate processes with their own copy:
	 * the master's old config can go. */
	conf_free(m_cf);
	m_cf = cf;
	m_gen++;
	for (i = slot_base(m_gen); i < slot_base(m_gen) + m_nworkers; i++)
		if (m_slots[i].pid == 0)
			spawn(i);
	log_info("event=reloaded config=%s", cf->path);
}

static void
on_sigterm(evutil_socket_t sig, short what, void *arg)
{
	int i;

	(void)what;
	(void)arg;
	if (m_stopping)
		return;
	m_stopping = true;
	log_info("event=stopping signal=%d", (int)sig);
	/* No new connections: once the workers close theirs, the kernel
	 * refuses instead of queueing for nobody. */
	for (i = 0; i < m_nlisten * m_nworkers; i++)
		close(m_fds[i / m_nworkers][i % m_nworkers]);
	for (i = 0; i < 2 * m_nworkers; i++)
		if (m_slots[i].pid != 0)
			kill(m_slots[i].pid, SIGTERM);
	if (live_workers() == 0)
		event_base_loopexit(m_base, NULL);
}

int
master_run(struct moat_config *cf)
{
	char		 err[1024];
	struct event	*ev[4];
	int		 i;
	long		 cores = sysconf(_SC_NPROCESSORS_ONLN);

	m_cf = cf;
	m_nworkers = cf->server.workers > 0 ? (int)cf->server.workers :
	    (int)(cores > 0 ? cores : 1);
	if (m_nworkers > LIMIT_WORKERS / 2)
		m_nworkers = LIMIT_WORKERS / 2;
	raise_nofile();
	if (connlimit_init(2 * m_nworkers) == -1 ||
	    bind_all(err, sizeof(err)) == -1 ||
	    drop_privileges(err, sizeof(err)) == -1) {
		log_fatal("%s", err[0] ? err : "cannot set up");
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	m_base = event_base_new();
	ev[0] = evsignal_new(m_base, SIGCHLD, on_sigchld, NULL);
	ev[1] = evsignal_new(m_base, SIGHUP, on_sighup, NULL);
	ev[2] = evsignal_new(m_base, SIGTERM, on_sigterm, NULL);
	ev[3] = evsignal_new(m_base, SIGINT, on_sigterm, NULL);
	for (i = 0; i < 4; i++)
		evsignal_add(ev[i], NULL);
	log_info("event=ready listen=\"%s\" workers=%d pid=%d",
	    cf->server.listen, m_nworkers, (int)getpid());
	for (i = 0; i < m_nworkers; i++)
		spawn(i);
	event_base_dispatch(m_base);
	log_info("event=stopped");
	return 0;
}
