/*
 * master.c: binds the listeners, forks the workers and supervises them.
 *
 * Each listen address gets one socket per worker slot, all bound with
 * SO_REUSEPORT so the kernel spreads connections; a slot's socket stays
 * open in the master, so a restarted worker takes over its queue and no
 * connection is lost with a crash.
 *
 * Bookkeeping, two tables:
 *   m_slots[slot]  the slot's current worker: pid (0 while it waits to be
 *                  restarted) and the config generation it runs. A slot
 *                  always has a current worker or a restart timer, until
 *                  SIGTERM.
 *   m_procs[i]     every live worker process, current or draining after a
 *                  reload. The index is the worker's connection-count
 *                  region, so no two live workers ever share one.
 * A reaped pid that is its slot's current worker died: the slot restarts
 * after a back-off that doubles while it keeps dying young (1 s .. 30 s).
 * Any other reaped pid was draining and just frees its entry.
 *
 * Each worker beats from a timer on its loop into a shared word; one
 * silent for longer than worker_heartbeat_timeout is SIGKILLed and, if
 * current, restarted at once (check_heartbeats).
 *
 * SIGHUP loads the config anew: on error the old one keeps serving; on
 * success every slot gets a worker of the new generation at once and the
 * old ones drain. SIGTERM/SIGINT drain every worker and exit; from then
 * on SIGHUP is ignored and nothing is respawned.
 *
 * Privileges: when started as root with `user`, the master binds, then
 * becomes `user` but keeps CAP_DAC_OVERRIDE, because a reload must read
 * what the config names (TLS key, lists, moat.conf itself) and reopen the
 * log files, which may be root's alone. Workers, which talk to clients,
 * drop every capability at fork.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <netdb.h>
#include <pwd.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "../core/log.h"
#include "../core/window.h"
#include "connlimit.h"
#include "master.h"
#include "worker.h"

#define MAX_LISTEN	16
#define BACKOFF_MAX	30
#define YOUNG		10	/* a worker dying sooner is "young" */
/* Worker processes alive at once, in units of `workers`: the current
 * generation and two older ones still draining (a HUP soon after a HUP).
 * A reload that finds no room for a whole generation waits for older
 * workers to exit; it is never half applied. */
#define GENERATIONS	3
/* Descriptors a worker needs besides its connections' own (listeners,
 * logs, store, epoll, delivery), for the RLIMIT_NOFILE warning. */
#define NOFILE_RESERVE	64

struct slot {
	pid_t		 pid;		/* current worker; 0: none running */
	unsigned	 gen;		/* the generation it runs */
	time_t		 started;
	int		 backoff;	/* seconds before the next restart */
	struct event	*restart;
};

struct proc {
	pid_t		 pid;		/* 0: entry free */
	int		 slot;
	unsigned	 gen;
	long long	 timeout_ms;	/* its heartbeat timeout; 0: none */
	bool		 killed;	/* silent: SIGKILL sent */
};

static struct moat_config	*m_cf;
static struct event_base	*m_base;
static int			 m_fds[MAX_LISTEN][LIMIT_WORKERS];
static int			 m_nlisten;
static unsigned char		 m_kinds[MAX_LISTEN];	/* listener_kind */
static int			 m_nworkers;	/* slots */
static struct slot		 m_slots[LIMIT_WORKERS];
static struct proc		 m_procs[LIMIT_WORKERS];
static int			 m_nprocs;	/* entries in use of m_procs */
static unsigned			 m_gen;
static bool			 m_stopping;
static bool			 m_reload_pending;
static bool			 m_dropped;	/* workers must shed our caps */
/* Workers read EOF on [0] once the master, sole holder of [1], is gone. */
static int			 m_alive[2] = { -1, -1 };
/* Heartbeats, one per m_procs entry, in a mapping shared with the
 * workers: each writes worker_clock_ms() from a timer on its loop. */
static uint64_t			*m_beats;
static struct event		*m_watch;	/* check_heartbeats */
static uint64_t			 m_last_watch;

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
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0);
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

/* Binds one option's addresses (listen, submission or smtps), each
 * remembered with its kind of listener. */
static int
bind_kind(const char *spec, enum listener_kind kind, char *err,
    size_t errlen)
{
	char	*copy, *w[MAX_LISTEN];
	int	 n, i, k;

	if ((copy = strdup(spec)) == NULL)
		return -1;
	n = config_words(copy, w, MAX_LISTEN - m_nlisten);
	if (n < 0 || (n == 0 && kind == LISTEN_MX)) {
		snprintf(err, errlen, "listen, submission, smtps: give 1 to "
		    "%d addresses in all", MAX_LISTEN);
		free(copy);
		return -1;
	}
	for (i = 0; i < n; i++) {
		for (k = 0; k < m_nworkers; k++)
			if ((m_fds[m_nlisten][k] = bind_one(w[i], err,
			    errlen)) == -1) {
				free(copy);
				return -1;
			}
		m_kinds[m_nlisten++] = (unsigned char)kind;
	}
	free(copy);
	return 0;
}

static int
bind_all(char *err, size_t errlen)
{
	m_nlisten = 0;
	if (bind_kind(m_cf->server.listen, LISTEN_MX, err, errlen) == -1 ||
	    bind_kind(m_cf->server.submission, LISTEN_SUBMISSION, err,
	    errlen) == -1 || bind_kind(m_cf->server.smtps, LISTEN_SMTPS, err,
	    errlen) == -1)
		return -1;
	return 0;
}

/*
 * RLIMIT_NOFILE as high as the host lets us, and a warning when it
 * cannot hold max_connections: the limit is per process and every
 * connection may land on one worker, which also needs descriptors of
 * its own (listeners, logs, the store, delivery). Past the limit accept
 * fails and the worker pauses its listeners (worker.c, accept_error).
 */
static void
raise_nofile(void)
{
	struct rlimit	rl;
	long long	need = m_cf->server.max_connections + NOFILE_RESERVE;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return;
	log_info("event=nofile limit=%llu", (unsigned long long)rl.rlim_cur);
	if (rl.rlim_cur != RLIM_INFINITY && (long long)rl.rlim_cur < need)
		log_warn("event=nofile_low limit=%llu max_connections=%lld "
		    "need=%lld note=\"a worker at the limit pauses accepting; "
		    "raise the hard limit (LimitNOFILE=, ulimit -Hn) or lower "
		    "max_connections\"", (unsigned long long)rl.rlim_cur,
		    m_cf->server.max_connections, need);
}

/* Sets the permitted and effective capabilities to exactly `keep`. */
static int
caps_set(uint64_t keep)
{
	struct __user_cap_header_struct	h;
	struct __user_cap_data_struct	d[2];

	memset(&h, 0, sizeof(h));
	memset(d, 0, sizeof(d));
	h.version = _LINUX_CAPABILITY_VERSION_3;
	d[0].permitted = d[0].effective = (uint32_t)keep;
	d[1].permitted = d[1].effective = (uint32_t)(keep >> 32);
	return (int)syscall(SYS_capset, &h, d);
}

/*
 * Becomes `user` (when root) keeping only CAP_DAC_OVERRIDE: reloads read
 * files as root could (a 0600 TLS key, root's list files) and reopen
 * the logs wherever they are. Workers drop it too (spawn), so nothing
 * that parses client input holds any privilege.
 */
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
	if (prctl(PR_SET_KEEPCAPS, 1L, 0L, 0L, 0L) == -1 ||
	    setgroups(1, &pw->pw_gid) == -1 || setgid(pw->pw_gid) == -1 ||
	    setuid(pw->pw_uid) == -1) {
		snprintf(err, errlen, "dropping to '%s': %s",
		    m_cf->server.user, strerror(errno));
		return -1;
	}
	(void)prctl(PR_SET_KEEPCAPS, 0L, 0L, 0L, 0L);
	m_dropped = true;
	if (caps_set(1ULL << CAP_DAC_OVERRIDE) == -1) {
		/* Serving is safe; only reloads may now fail to read. */
		log_loud("event=caps_failed errno=%s note=\"reloads read "
		    "files as %s\"", strerror(errno), m_cf->server.user);
		(void)caps_set(0);
	}
	return 0;
}

/* A free m_procs entry (a connection-count region), or -1. */
static int
proc_free(void)
{
	int i;

	for (i = 0; i < m_nprocs; i++)
		if (m_procs[i].pid == 0)
			return i;
	return -1;
}

static int
procs_live(void)
{
	int i, n = 0;

	for (i = 0; i < m_nprocs; i++)
		if (m_procs[i].pid != 0)
			n++;
	return n;
}

static void
restart_cb(evutil_socket_t fd, short what, void *arg);

/* The filters' shared counters into var_dir/run, where moatctl reads
 * them (window.h); before any worker is forked, so all share the file. */
static int
publish_windows(char *err, size_t errlen)
{
	char dir[4096];

	if ((size_t)snprintf(dir, sizeof(dir), "%s/run",
	    m_cf->server.var_dir) >= sizeof(dir)) {
		snprintf(err, errlen, "var_dir too long");
		return -1;
	}
	return window_publish(dir, err, errlen);
}

/* The slot's current worker starts in secs (0: on the next loop turn). */
static void
schedule_restart(int s, int secs)
{
	struct timeval tv = { secs, 0 };

	if (m_slots[s].restart == NULL)
		m_slots[s].restart = evtimer_new(m_base, restart_cb,
		    (void *)(intptr_t)s);
	evtimer_add(m_slots[s].restart, &tv);
}

/* In a new worker, before it serves: only its slot's sockets, no
 * capabilities, and death with the master. */
static void
child_setup(int s, pid_t master)
{
	int k;

	for (k = 0; k < m_nlisten * m_nworkers; k++)
		if (k % m_nworkers != s)
			close(m_fds[k / m_nworkers][k % m_nworkers]);
	close(m_alive[1]);
	if (m_dropped && caps_set(0) == -1)
		_exit(1);
	/* After the capability change: the kernel clears the setting on
	 * some credential changes. */
	(void)prctl(PR_SET_PDEATHSIG, SIGTERM, 0L, 0L, 0L);
	if (getppid() != master)
		_exit(0);	/* it died before we asked */
	/* The master's loop is not the worker's: a fresh epoll first, so
	 * freeing it leaves the parent's untouched. */
	event_reinit(m_base);
	event_base_free(m_base);
	/* No handler of the master's may run here: signals stay blocked
	 * (spawn) until the worker has its own. */
	signal(SIGTERM, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	signal(SIGCHLD, SIG_DFL);
}

/* How often a worker beats and the master looks, for a timeout in
 * seconds: four beats per timeout, at most one a second, at least every
 * 250 ms. */
static long
beat_period(long long timeout)
{
	long long ms = timeout * 1000 / 4;

	return timeout == 0 || ms > 1000 ? 1000 : ms < 250 ? 250 : (long)ms;
}

/* Forks slot s's current worker, running generation m_gen. */
static void
spawn(int s)
{
	struct worker_spec	 ws;
	sigset_t		 all;
	int			 fds[MAX_LISTEN], k, p;
	pid_t			 pid, master = getpid();

	if ((p = proc_free()) == -1) {
		/* Cannot happen while reload() checks for room. */
		log_warn("event=spawn_deferred slot=%d reason=no_region", s);
		schedule_restart(s, 1);
		return;
	}
	for (k = 0; k < m_nlisten; k++)
		fds[k] = m_fds[k][s];
	connlimit_clear(p);
	/* The new worker has a whole timeout to get its loop going. */
	__atomic_store_n(&m_beats[p], worker_clock_ms(), __ATOMIC_RELAXED);
	ws.heartbeat = &m_beats[p];
	ws.heartbeat_ms = beat_period(m_cf->server.heartbeat_timeout);
	/* A signal reaching the child before it has its own handlers
	 * would run the master's libevent handler there, which writes to
	 * the master's signal pipe: a SIGTERM meant for a new worker would
	 * stop the master. The child unblocks once its handlers are set. */
	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, &ws.sigmask);
	pid = fork();
	if (pid != 0)
		sigprocmask(SIG_SETMASK, &ws.sigmask, NULL);
	if (pid == -1) {
		log_warn("event=fork_failed slot=%d errno=%s", s,
		    strerror(errno));
		schedule_restart(s, m_slots[s].backoff ? m_slots[s].backoff :
		    1);
		return;
	}
	if (pid == 0) {
		child_setup(s, master);
		ws.fds = fds;
		ws.kinds = m_kinds;
		ws.nfds = m_nlisten;
		ws.slot = s;
		ws.region = p;
		ws.master_fd = m_alive[0];
		exit(worker_run(m_cf, &ws));
	}
	m_procs[p].pid = pid;
	m_procs[p].slot = s;
	m_procs[p].gen = m_gen;
	m_procs[p].timeout_ms = m_cf->server.heartbeat_timeout * 1000;
	m_procs[p].killed = false;
	m_slots[s].pid = pid;
	m_slots[s].gen = m_gen;
	m_slots[s].started = time(NULL);
	log_info("event=worker_started slot=%d pid=%d gen=%u", s, (int)pid,
	    m_gen);
}

static void
restart_cb(evutil_socket_t fd, short what, void *arg)
{
	int s = (int)(intptr_t)arg;

	(void)fd;
	(void)what;
	if (!m_stopping && m_slots[s].pid == 0)
		spawn(s);
}

/* A current worker died: its slot restarts, later if it died young. One
 * killed for its silence restarts at once: connections wait in its queue,
 * and the silence itself spaced the restarts by the heartbeat timeout. */
static void
slot_died(int s, pid_t pid, int status, bool killed)
{
	struct slot *sl = &m_slots[s];

	if (killed) {
		log_warn("event=worker_died slot=%d pid=%d status=%d "
		    "reason=stuck restart_in=0s", s, (int)pid, status);
		schedule_restart(s, 0);
		return;
	}
	if (time(NULL) - sl->started < YOUNG)
		sl->backoff = sl->backoff ? (sl->backoff * 2 > BACKOFF_MAX ?
		    BACKOFF_MAX : sl->backoff * 2) : 1;
	else
		sl->backoff = 0;
	log_warn("event=worker_died slot=%d pid=%d status=%d restart_in=%ds",
	    s, (int)pid, status, sl->backoff);
	schedule_restart(s, sl->backoff);
}

static void
reaped(pid_t pid, int status)
{
	int	p, s;

	for (p = 0; p < m_nprocs; p++)
		if (m_procs[p].pid == pid)
			break;
	if (p == m_nprocs)
		return;
	s = m_procs[p].slot;
	m_procs[p].pid = 0;
	connlimit_clear(p);
	if (m_slots[s].pid == pid) {
		m_slots[s].pid = 0;
		if (!m_stopping) {
			slot_died(s, pid, status, m_procs[p].killed);
			return;
		}
	}
	log_info("event=worker_exit slot=%d pid=%d gen=%u status=%d", s,
	    (int)pid, m_procs[p].gen, status);
	if (m_stopping && procs_live() == 0)
		event_base_loopexit(m_base, NULL);
}

/*
 * A worker whose loop has not beaten for its timeout is stuck (an
 * endless loop, a blocking call, SIGSTOP): it serves nobody, and the
 * kernel keeps handing its SO_REUSEPORT socket a share of the new
 * connections. It is killed; its slot's sockets stay open here, so what
 * waits in their queues is served by the heir, started at once
 * (slot_died). Closing them instead would reset every queued connection,
 * and could not be undone after the privilege drop for a port below
 * 1024. Draining workers are watched too: a stuck one would hold its
 * region, and the reload room, for ever.
 */
static void
stuck(int p, uint64_t silent_ms)
{
	log_warn("event=worker_stuck slot=%d pid=%d gen=%u silent_ms=%llu "
	    "action=kill", m_procs[p].slot, (int)m_procs[p].pid,
	    m_procs[p].gen, (unsigned long long)silent_ms);
	(void)kill(m_procs[p].pid, SIGKILL);
	m_procs[p].killed = true;
}

static void
watch_schedule(void)
{
	long		ms = beat_period(m_cf->server.heartbeat_timeout);
	struct timeval	tv = { ms / 1000, (ms % 1000) * 1000 };

	evtimer_add(m_watch, &tv);
}

/* Every beat period: who has been silent too long? A master that was
 * itself not running for a while (the host suspended, the master
 * stopped) cannot tell, and looks again next time. */
static void
check_heartbeats(evutil_socket_t fd, short what, void *arg)
{
	uint64_t	now = worker_clock_ms(), beat;
	long		period = beat_period(m_cf->server.heartbeat_timeout);
	bool		late;
	int		p;

	(void)fd;
	(void)what;
	(void)arg;
	late = m_last_watch != 0 && now - m_last_watch > (uint64_t)(2 *
	    period + 1000);
	m_last_watch = now;
	watch_schedule();
	if (late)
		return;
	for (p = 0; p < m_nprocs; p++) {
		if (m_procs[p].pid == 0 || m_procs[p].killed ||
		    m_procs[p].timeout_ms == 0)
			continue;
		beat = __atomic_load_n(&m_beats[p], __ATOMIC_RELAXED);
		if (now > beat && now - beat > (uint64_t)m_procs[p].timeout_ms)
			stuck(p, now - beat);
	}
}

/*
 * Loads the config anew and, when it is good, gives every slot a worker
 * of the new generation, whatever state the slot is in, and tells the
 * previous ones to drain. The new log is opened before anything changes:
 * if it cannot be, the whole reload fails loudly and the old log stays.
 */
static void
reload(void)
{
	struct moat_config	*cf;
	char			 err[1024];
	int			 s;

	if (m_nprocs - procs_live() < m_nworkers) {
		if (!m_reload_pending)
			log_warn("event=reload_deferred draining=%d "
			    "note=\"applied once older workers exit\"",
			    procs_live() - m_nworkers);
		m_reload_pending = true;
		return;
	}
	m_reload_pending = false;
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
	    strcmp(cf->server.submission, m_cf->server.submission) != 0 ||
	    strcmp(cf->server.smtps, m_cf->server.smtps) != 0 ||
	    cf->server.workers != m_cf->server.workers)
		log_warn("event=reload note=\"listen, submission, smtps and "
		    "workers change on restart only\"");
	/* A table the new config made is shared but not yet readable by
	 * moatctl: serving does not need that. */
	if (publish_windows(err, sizeof(err)) == -1)
		log_warn("event=reload note=\"%s\"", err);
	/* Draining workers are separate processes with their own copy:
	 * the master's old config can go. */
	conf_free(m_cf);
	m_cf = cf;
	m_gen++;
	for (s = 0; s < m_nworkers; s++) {
		if (m_slots[s].restart != NULL)
			evtimer_del(m_slots[s].restart);
		if (m_slots[s].pid != 0)
			kill(m_slots[s].pid, SIGTERM);
		m_slots[s].pid = 0;
		m_slots[s].backoff = 0;
		spawn(s);
	}
	watch_schedule();	/* the new period */
	log_info("event=reloaded config=%s gen=%u", cf->path, m_gen);
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
	if (m_reload_pending && !m_stopping)
		reload();
}

static void
on_sighup(evutil_socket_t sig, short what, void *arg)
{
	(void)sig;
	(void)what;
	(void)arg;
	if (m_stopping) {
		log_info("event=reload_ignored reason=stopping");
		return;
	}
	reload();
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
	m_reload_pending = false;
	log_info("event=stopping signal=%d", (int)sig);
	/* No new connections: once the workers close theirs, the kernel
	 * refuses instead of queueing for nobody. */
	for (i = 0; i < m_nlisten * m_nworkers; i++)
		close(m_fds[i / m_nworkers][i % m_nworkers]);
	for (i = 0; i < m_nworkers; i++)
		if (m_slots[i].restart != NULL)
			evtimer_del(m_slots[i].restart);
	for (i = 0; i < m_nprocs; i++)
		if (m_procs[i].pid != 0)
			kill(m_procs[i].pid, SIGTERM);
	if (procs_live() == 0)
		event_base_loopexit(m_base, NULL);
}

static void
master_free(struct event **ev, int nev)
{
	int i;

	for (i = 0; i < nev; i++)
		event_free(ev[i]);
	for (i = 0; i < m_nworkers; i++)
		if (m_slots[i].restart != NULL)
			event_free(m_slots[i].restart);
	event_free(m_watch);
	event_base_free(m_base);
	munmap(m_beats, sizeof(*m_beats) * LIMIT_WORKERS);
	close(m_alive[0]);
	close(m_alive[1]);
}

int
master_run(struct moat_config *cf)
{
	char		 err[1024] = "";
	struct event	*ev[4];
	int		 i;
	long		 cores = sysconf(_SC_NPROCESSORS_ONLN);

	m_cf = cf;
	m_nworkers = cf->server.workers > 0 ? (int)cf->server.workers :
	    (int)(cores > 0 ? cores : 1);
	if (m_nworkers > LIMIT_WORKERS / 2)
		m_nworkers = LIMIT_WORKERS / 2;
	m_nprocs = GENERATIONS * m_nworkers < LIMIT_WORKERS ?
	    GENERATIONS * m_nworkers : LIMIT_WORKERS;
	raise_nofile();
	m_beats = mmap(NULL, sizeof(*m_beats) * LIMIT_WORKERS, PROT_READ |
	    PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (m_beats == MAP_FAILED || pipe2(m_alive, O_CLOEXEC) == -1 ||
	    connlimit_init(m_nprocs) == -1 ||
	    bind_all(err, sizeof(err)) == -1 ||
	    drop_privileges(err, sizeof(err)) == -1 ||
	    publish_windows(err, sizeof(err)) == -1) {
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
	m_watch = evtimer_new(m_base, check_heartbeats, NULL);
	watch_schedule();
	log_info("event=ready listen=\"%s\" workers=%d pid=%d",
	    cf->server.listen, m_nworkers, (int)getpid());
	for (i = 0; i < m_nworkers; i++)
		spawn(i);
	event_base_dispatch(m_base);
	log_info("event=stopped");
	master_free(ev, 4);
	conf_free(m_cf);
	return 0;
}
