/*
 * worker.c: a worker's loop, its listeners, limits and drain.
 *
 * SIGTERM drains: listeners stop, idle sessions get 421, sessions in a
 * transaction finish it (their next command gets 421), and whatever is
 * left after drain_timeout is closed. The loop ends with the last session.
 * A worker whose master is gone drains the same way, within a shorter
 * bound (see orphaned).
 *
 * The loop beats for the master (beat) and pauses accepting when accept
 * fails for want of descriptors or memory (accept_error).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "../core/log.h"
#include "../core/memtrim.h"
#include "../core/tpool.h"
#include "../filters/filter.h"
#include "../deliver/deliver.h"
#include "../filters/policy.h"
#include "../smtp/session_int.h"
#include "connlimit.h"
#include "worker.h"

/* Accept back-off (see accept_error), in milliseconds. */
#define ACCEPT_PAUSE_MIN	100
#define ACCEPT_PAUSE_MAX	1000

/* Seconds an orphaned worker (its master gone) lets sessions finish,
 * when drain_timeout is longer: nobody supervises it any more. */
#define WORKER_ORPHAN_DRAIN	5

static struct event_base	*w_base;
static struct moat_config	*w_cf;
static struct evconnlistener	*w_listeners[64];
static int			 w_nlisteners;
static bool			 w_draining;
static pid_t			 w_master;	/* our parent while it lives */
static struct event		*w_drain_timer;
static struct event		*w_accept_timer;	/* ends a pause */
static long			 w_accept_pause_ms;	/* 0: no failure since
							 * the last accept */
static bool			 w_accept_paused;
static uint64_t			*w_heartbeat;	/* in the master's mapping */
static struct event		*w_beat_timer;
static struct bufferevent	*stdio_out;	/* piped stdio: fd 1 */
static struct bufferevent	*stdio_in, *stdio_inner;

static void	accept_resume(evutil_socket_t, short, void *);

static void
on_closed(struct session *s)
{
	if (!s->stdio)
		connlimit_leave((struct sockaddr *)&s->peer);
	/* A descriptor is free again: no need to wait out the pause. */
	if (w_accept_paused) {
		evtimer_del(w_accept_timer);
		accept_resume(-1, 0, NULL);
	}
	if (w_draining && session_count() == 0)
		event_base_loopexit(w_base, NULL);
	if (s->stdio && stdio_out == NULL)
		event_base_loopexit(w_base, NULL);
}

/*
 * The pipeline, with the listener's policy applied first: a submission
 * session skips the inbound checks its listener names (filter_skip; the
 * names were checked at config load). Relay control is the core's and
 * is not a filter, so nothing here can open a relay.
 */
static void
worker_stage(struct session *s, enum stage st)
{
	if (st == STAGE_CONNECT && s->conf->skip_filters != NULL &&
	    s->conf->skip_filters[0] != '\0')
		(void)filter_skip(s, s->conf->skip_filters, false);
	pipeline_stage(s, st);
}

static void
queue_rcpt(struct session *s, struct rcpt *r)
{
	deliver_rcpt(s, r);
}

static const struct session_ops worker_ops = {
	.stage = worker_stage,
	.policy_for = pipeline_policy_for,
	.is_local = pipeline_is_local,
	.queue_rcpt = queue_rcpt,
	.queue_data = deliver_data,
	.queue_abort = deliver_abort,
	.closed = on_closed,
};

/*
 * A refused connection has no session, but its log lines get an id all
 * the same, made as session.c makes one (seconds, pid, a 16-bit count).
 * Sessions count up from 1 and refusals down from 0xffff, so the two
 * meet only past 65,536 connections in one second of one worker, when
 * session ids themselves repeat.
 */
static uint64_t
refused_id(void)
{
	static uint16_t	n;

	return ((uint64_t)time(NULL) << 32) |
	    ((uint64_t)(getpid() & 0xffff) << 16) | (uint16_t)(0xffff - n++);
}

/* A refused connection gets one line and is closed (RFC 5321 §3.1). */
static void
refuse(evutil_socket_t fd, uint64_t id, const char *ip, const char *why)
{
	char	line[256];
	int	n;

	n = snprintf(line, sizeof(line), "421 4.7.0 %s Too many connections%s,"
	    " try again later\r\n", w_cf->server.smtp.hostname,
	    strcmp(why, "max_per_ip") == 0 ? " from your address" : "");
	if (n > 0 && (size_t)n < sizeof(line))
		(void)!write(fd, line, (size_t)n);
	log_msg(LVL_INFO, id, "event=refused ip=%s reason=%s", ip, why);
	evutil_closesocket(fd);
}

/* The JSON line of a refusal: the head every JSON line has (time, event,
 * session, ip; see txnlog.c's json_head), then the reason. */
static void
refused_json(uint64_t id, const char *ip, const char *why)
{
	struct buf	b;
	struct timespec	ts;
	struct tm	tm;
	char		when[32];

	if (!log_json_enabled())
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
	buf_init(&b, 1024);
	if (buf_printf(&b, "{\"time\":\"%s.%03ldZ\",\"event\":\"refused\","
	    "\"session\":\"%016llx\",\"ip\":\"%s\",\"reason\":\"%s\"}",
	    when, ts.tv_nsec / 1000000, (unsigned long long)id, ip, why) == 0)
		log_json(&b);
	else
		log_msg(LVL_WARN, id, "json refused line lost");
	buf_free(&b);
}

/* The client's address as text (an address, never client input). */
static void
peer_ip(const struct sockaddr *sa, char *ip, size_t len)
{
	const void *a;

	if (sa->sa_family == AF_INET6)
		a = &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
	else
		a = &((const struct sockaddr_in *)(const void *)sa)->sin_addr;
	if (evutil_inet_ntop(sa->sa_family, a, ip, len) == NULL)
		snprintf(ip, len, "unknown");
}

static void
listeners_enable(bool on)
{
	int i;

	for (i = 0; i < w_nlisteners; i++)
		if (w_listeners[i] != NULL)
			(void)(on ? evconnlistener_enable(w_listeners[i]) :
			    evconnlistener_disable(w_listeners[i]));
}

/* The pause is over (its timer, or a session closed): accept again. */
static void
accept_resume(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	w_accept_paused = false;
	if (!w_draining)
		listeners_enable(true);
}

/*
 * accept() failed for a reason that does not go away by itself: out of
 * descriptors (EMFILE, ENFILE) or kernel memory (ENOBUFS, ENOMEM). The
 * connection stays queued and the listener readable, so accepting again
 * at once would spin (100 % CPU and a log line each time). Every
 * listener pauses instead, 100 ms doubling to 1 s while the failures go
 * on with nothing accepted between them; a closing session ends the
 * pause early. One log line per pause. The queued clients wait in the
 * kernel's backlog meanwhile, as they would for a busy worker.
 */
static void
accept_error(struct evconnlistener *l, void *arg)
{
	int		 e = EVUTIL_SOCKET_ERROR();
	const char	*name = strerrorname_np(e);
	struct timeval	 tv;

	(void)l;
	(void)arg;
	if (w_accept_paused || w_draining)
		return;
	w_accept_pause_ms = w_accept_pause_ms == 0 ? ACCEPT_PAUSE_MIN :
	    w_accept_pause_ms * 2 > ACCEPT_PAUSE_MAX ? ACCEPT_PAUSE_MAX :
	    w_accept_pause_ms * 2;
	listeners_enable(false);
	w_accept_paused = true;
	tv.tv_sec = w_accept_pause_ms / 1000;
	tv.tv_usec = (w_accept_pause_ms % 1000) * 1000;
	evtimer_add(w_accept_timer, &tv);
	log_msg(LVL_WARN, 0, "event=accept_paused errno=%s pause_ms=%ld "
	    "sessions=%zu", name != NULL ? name : "unknown",
	    w_accept_pause_ms, session_count());
}

static void
accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
    int salen, void *arg)
{
	struct bufferevent	*bev;
	struct sockaddr_storage	 local;
	socklen_t		 llen = sizeof(local);
	const char		*why;
	const struct smtp_conf	*conf = arg;

	(void)l;
	w_accept_pause_ms = 0;
	if (!connlimit_enter(sa, w_cf->server.max_connections,
	    w_cf->server.max_per_ip, &why)) {
		uint64_t	id = refused_id();
		char		ip[INET6_ADDRSTRLEN];

		peer_ip(sa, ip, sizeof(ip));
		refused_json(id, ip, why);
		refuse(fd, id, ip, why);
		return;
	}
	getsockname(fd, (struct sockaddr *)&local, &llen);
	bev = bufferevent_socket_new(w_base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL) {
		connlimit_leave(sa);
		evutil_closesocket(fd);
		return;
	}
	if (session_new(w_base, bev, sa, (socklen_t)salen,
	    (struct sockaddr *)&local, llen, conf, &worker_ops,
	    w_cf->tls) == NULL)
		connlimit_leave(sa);
}

static void
drain_expired(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	log_msg(LVL_WARN, 0, "event=drain_timeout sessions=%zu",
	    session_count());
	session_foreach(session_close);
	event_base_loopexit(w_base, NULL);
}

/* Stops accepting and lets the sessions finish for at most secs. */
static void
worker_drain(long long secs)
{
	struct timeval	tv = { (time_t)secs, 0 };
	int		i;

	if (w_draining)
		return;
	w_draining = true;
	session_shutting_down = true;
	for (i = 0; i < w_nlisteners; i++) {
		evconnlistener_free(w_listeners[i]);
		w_listeners[i] = NULL;
	}
	log_msg(LVL_INFO, 0, "event=drain sessions=%zu", session_count());
	session_foreach(session_drain);
	if (session_count() == 0) {
		event_base_loopexit(w_base, NULL);
		return;
	}
	w_drain_timer = evtimer_new(w_base, drain_expired, NULL);
	evtimer_add(w_drain_timer, &tv);
}

/*
 * The master gone (killed, crashed): an orphan must not keep its sockets
 * in the port's SO_REUSEPORT group, where a new moatd would share
 * connections with it. It stops accepting now and lets its sessions
 * finish within WORKER_ORPHAN_DRAIN, as Postfix's children leave when
 * their master goes. Nobody would restart or stop it otherwise.
 */
static void
orphaned(void)
{
	if (w_draining)
		return;
	log_msg(LVL_WARN, 0, "event=master_gone sessions=%zu",
	    session_count());
	worker_drain(w_cf->server.drain_timeout < WORKER_ORPHAN_DRAIN ?
	    w_cf->server.drain_timeout : WORKER_ORPHAN_DRAIN);
}

/* From the master (drain), or PR_SET_PDEATHSIG (the master died). */
static void
on_sigterm(evutil_socket_t sig, short what, void *arg)
{
	(void)sig;
	(void)what;
	(void)arg;
	if (getppid() != w_master)
		orphaned();
	else
		worker_drain(w_cf->server.drain_timeout);
}

/* The master never writes to its pipe and holds its only write end, so
 * EOF means it is gone. This catches what PR_SET_PDEATHSIG may not (a
 * signal lost, or the death signal reset by a credential change). */
static void
on_master_pipe(evutil_socket_t fd, short what, void *arg)
{
	char	c;
	ssize_t	n;

	(void)what;
	if ((n = read(fd, &c, 1)) == -1 && (errno == EAGAIN ||
	    errno == EINTR))
		return;
	event_del(arg);
	orphaned();
}

uint64_t
worker_clock_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* A heartbeat: the loop is turning. Written from a timer on the loop, so
 * a worker stuck in a callback, in a loop or stopped stays silent and
 * the master replaces it (master.c, check_heartbeats). */
static void
beat(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	__atomic_store_n(w_heartbeat, worker_clock_ms(), __ATOMIC_RELAXED);
}

static int
beat_start(const struct worker_spec *ws)
{
	struct timeval tv = { ws->heartbeat_ms / 1000,
	    (ws->heartbeat_ms % 1000) * 1000 };

	if (ws->heartbeat == NULL || ws->heartbeat_ms <= 0)
		return 0;
	w_heartbeat = ws->heartbeat;
	beat(-1, 0, NULL);
	if ((w_beat_timer = event_new(w_base, -1, EV_PERSIST, beat, NULL)) ==
	    NULL)
		return -1;
	return evtimer_add(w_beat_timer, &tv);
}

static void
worker_setup(struct moat_config *cf)
{
	struct event_config *ec = event_config_new();

	w_cf = cf;
	/* Batch epoll_ctl changes per loop turn: a session's reply makes
	 * its socket writable-interested and idle again many times. */
	event_config_set_flag(ec, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
	w_base = event_base_new_with_config(ec);
	event_config_free(ec);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	pipeline_active = cf->pl;
	deliver_worker_init(w_base, cf->server.smtp.hostname);
	/* Password hashes are checked off the loop (auth_smtp.c). */
	if (cf->auth.kind == AUTH_FILE && tpool_start_pool(TPOOL_AUTH, w_base,
	    (int)cf->auth.threads, (int)cf->auth.queue) == -1)
		log_msg(LVL_WARN, 0, "event=tpool_failed pool=auth (AUTH gets "
		    "454)");
}

int
worker_run(struct moat_config *cf, const struct worker_spec *ws)
{
	struct event	*term, *orphan;
	int		 i;

	worker_setup(cf);
	signal(SIGINT, SIG_IGN);	/* the master tells us when to stop */
	w_master = getppid();
	connlimit_slot(ws->region);
	for (i = 0; i < ws->nfds && i < 64; i++) {
		/* Our copy of the socket closes with the listener when we
		 * drain; the master's copy keeps the queue for our heir. */
		w_listeners[i] = evconnlistener_new(w_base, accept_cb,
		    (void *)(uintptr_t)w_cf->listener[ws->kinds != NULL &&
		    ws->kinds[i] < LISTEN_KINDS ? ws->kinds[i] : LISTEN_MX],
		    LEV_OPT_CLOSE_ON_EXEC | LEV_OPT_CLOSE_ON_FREE, -1,
		    ws->fds[i]);
		if (w_listeners[i] == NULL)
			return 1;
		evconnlistener_set_error_cb(w_listeners[i], accept_error);
		w_nlisteners++;
	}
	memtrim_start(w_base, session_count);
	if ((w_accept_timer = evtimer_new(w_base, accept_resume, NULL)) ==
	    NULL)
		return 1;
	term = evsignal_new(w_base, SIGTERM, on_sigterm, NULL);
	evsignal_add(term, NULL);
	evutil_make_socket_nonblocking(ws->master_fd);
	orphan = event_new(w_base, ws->master_fd, EV_READ | EV_PERSIST,
	    on_master_pipe, event_self_cbarg());
	if (term == NULL || orphan == NULL || event_add(orphan, NULL) == -1 ||
	    beat_start(ws) == -1)
		return 1;
	sigprocmask(SIG_SETMASK, &ws->sigmask, NULL);
	log_msg(LVL_DEBUG, 0, "event=worker_start slot=%d region=%d",
	    ws->slot, ws->region);
	event_base_dispatch(w_base);
	pipeline_worker_fini();
	deliver_worker_fini();
	event_free(orphan);
	event_free(term);
	if (w_drain_timer != NULL)
		event_free(w_drain_timer);
	w_drain_timer = NULL;
	event_free(w_accept_timer);
	if (w_beat_timer != NULL)
		event_free(w_beat_timer);
	return 0;
}

/*
 * stdio mode: the client is on fd 0 (and 1). tcpserver and inetd hand us
 * one socket on both; when they are pipes (tests, other supervisors) a
 * socketpair stands in and two bufferevents copy between the pipes and it.
 * What epoll cannot watch (a regular file, /dev/null) is first put behind
 * a pipe by a copying child (stdio_relay).
 */
static void
copy_cb(struct bufferevent *from, void *arg)
{
	bufferevent_write_buffer(arg, bufferevent_get_input(from));
}

static int	stdio_inner_fd = -1;
static pid_t	stdio_relays[2];	/* copiers for fd 0 and fd 1 */

/* Everything from fd 0 reached the session's socket: half-close it, so
 * the session reads its input to the end and then sees EOF. */
static void
inner_drained(struct bufferevent *bev, void *arg)
{
	(void)arg;
	if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		shutdown(stdio_inner_fd, SHUT_WR);
}

static void
copy_event(struct bufferevent *bev, short what, void *arg)
{
	if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)))
		return;
	if (bev == stdio_out || arg == stdio_out) {
		/* The session's side is done: flush fd 1 and stop. */
		event_base_loopexit(w_base, NULL);
		return;
	}
	/* fd 0 ended: arg is the inner socket's bufferevent. */
	bufferevent_setcb(arg, copy_cb, inner_drained, copy_event, stdio_out);
	inner_drained(arg, NULL);
}

/* True when epoll accepts fd: sockets, pipes and ttys; not regular files
 * or /dev/null (EPERM), which would leave the loop deaf to them. */
static bool
stdio_pollable(int fd)
{
	struct epoll_event	ev = { .events = EPOLLIN };
	int			ep, ok;

	if ((ep = epoll_create1(EPOLL_CLOEXEC)) == -1)
		return true;
	ok = epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == 0 || errno != EPERM;
	close(ep);
	return ok;
}

/* Copies in to out until EOF or an error; the copier's whole life. */
static void
stdio_copy(int in, int out)
{
	char	b[16384];
	ssize_t	n, w, off;

	while ((n = read(in, b, sizeof(b))) > 0 || (n == -1 && errno == EINTR))
		for (off = 0; n > 0 && off < n; off += w)
			if ((w = write(out, b + off, (size_t)(n - off))) == -1) {
				if (errno != EINTR)
					return;
				w = 0;
			}
}

/*
 * Puts a pipe in place of fd (0 or 1) and forks a child that copies
 * between the pipe and what fd was, blocking as files allow. The child
 * ends at EOF on its input or when its pipe's other end is gone.
 */
static int
stdio_relay(int fd)
{
	int	p[2];
	pid_t	pid;

	if (pipe2(p, O_CLOEXEC) == -1)
		return -1;
	if ((pid = fork()) == -1) {
		close(p[0]);
		close(p[1]);
		return -1;
	}
	if (pid == 0) {
		signal(SIGPIPE, SIG_DFL);
		if (fd == 0) {
			close(1);
			close(p[0]);
			stdio_copy(0, p[1]);
		} else {
			close(0);
			close(p[1]);
			stdio_copy(p[0], 1);
		}
		_exit(0);
	}
	stdio_relays[fd] = pid;
	if (dup2(fd == 0 ? p[0] : p[1], fd) == -1)
		return -1;
	close(p[0]);
	close(p[1]);
	return 0;
}

/* Ends the copiers: fd 1's has everything once we close our end, and
 * moatd exits only after it wrote it (a caller reads the file next). */
static void
stdio_relays_wait(void)
{
	int fd;

	close(0);
	close(1);
	for (fd = 0; fd < 2; fd++)
		if (stdio_relays[fd] > 0)
			(void)waitpid(stdio_relays[fd], NULL, 0);
}

static struct bufferevent *
stdio_bev(void)
{
	struct stat		 st;
	int			 sp[2];
	struct bufferevent	*in, *out, *inner;

	if (fstat(0, &st) == 0 && S_ISSOCK(st.st_mode)) {
		evutil_make_socket_nonblocking(0);
		return bufferevent_socket_new(w_base, 0, 0);
	}
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sp) == -1)
		return NULL;
	evutil_make_socket_nonblocking(sp[0]);
	evutil_make_socket_nonblocking(sp[1]);
	evutil_make_socket_nonblocking(0);
	evutil_make_socket_nonblocking(1);
	stdio_inner_fd = sp[1];
	inner = stdio_inner = bufferevent_socket_new(w_base, sp[1],
	    BEV_OPT_CLOSE_ON_FREE);
	in = stdio_in = bufferevent_socket_new(w_base, 0, 0);
	out = stdio_out = bufferevent_socket_new(w_base, 1, 0);
	/* fd 0 -> inner socket; inner socket -> fd 1 */
	bufferevent_setcb(in, copy_cb, NULL, copy_event, inner);
	bufferevent_setcb(inner, copy_cb, NULL, copy_event, out);
	bufferevent_enable(in, EV_READ);
	bufferevent_enable(inner, EV_READ | EV_WRITE);
	bufferevent_enable(out, EV_WRITE);
	return bufferevent_socket_new(w_base, sp[0], BEV_OPT_CLOSE_ON_FREE);
}

/* TCPREMOTEIP as an address: an IPv4 or IPv6 address and nothing else
 * (no port, no name, no blanks). */
static int
stdio_parse_ip(const char *ip, struct sockaddr_storage *peer,
    socklen_t *plen)
{
	struct sockaddr_in	*sin = (struct sockaddr_in *)peer;
	struct sockaddr_in6	*sin6 = (struct sockaddr_in6 *)peer;

	memset(peer, 0, sizeof(*peer));
	if (inet_pton(AF_INET, ip, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		*plen = sizeof(*sin);
		return 0;
	}
	memset(peer, 0, sizeof(*peer));
	if (inet_pton(AF_INET6, ip, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		*plen = sizeof(*sin6);
		return 0;
	}
	return -1;
}

/*
 * The client's address, failing closed: relay control and every check
 * after it trust what this returns, and the shipped relay networks hold
 * 127.0.0.0/8. TCPREMOTEIP when set (tcpserver and every UCSPI server
 * set it; a proxy in front may too, so a malformed one is an error, not
 * a reason to fall back to the proxy's own address); unset, the peer of
 * a TCP socket on fd 0 (inetd). Anything else is refused: -1 with why.
 */
static int
stdio_peer(struct sockaddr_storage *peer, socklen_t *plen, char *err,
    size_t errlen)
{
	const char	*ip = getenv("TCPREMOTEIP");
	char		 shown[65];
	size_t		 i;

	if (ip != NULL) {
		if (stdio_parse_ip(ip, peer, plen) == 0)
			return 0;
		for (i = 0; ip[i] != '\0' && i < sizeof(shown) - 1; i++)
			shown[i] = ip[i] > ' ' && ip[i] < 0x7f ? ip[i] : '?';
		shown[i] = '\0';
		snprintf(err, errlen, "TCPREMOTEIP '%s' is not an IPv4 or "
		    "IPv6 address", shown);
		return -1;
	}
	*plen = sizeof(*peer);
	if (getpeername(0, (struct sockaddr *)peer, plen) == 0 &&
	    (peer->ss_family == AF_INET || peer->ss_family == AF_INET6))
		return 0;
	snprintf(err, errlen, "no client address: TCPREMOTEIP is unset and "
	    "fd 0 is not a TCP socket (run under tcpserver or inetd, or set "
	    "TCPREMOTEIP)");
	return -1;
}

/* No session can start: the client is told to come back (RFC 5321 §3.8,
 * 421 closes the channel), and the operator why, on stderr and the log. */
static int
stdio_refuse(struct moat_config *cf, const char *why)
{
	char	line[256];
	int	n;

	fprintf(stderr, "moatd: --stdio: %s\n", why);
	log_msg(LVL_FATAL, 0, "event=stdio_refused error=\"%s\"", why);
	n = snprintf(line, sizeof(line), "421 4.3.0 %s Service not available, "
	    "closing transmission channel\r\n", cf->server.smtp.hostname);
	if (n > 0 && (size_t)n < sizeof(line))
		(void)!write(1, line, (size_t)n);
	return 1;
}

/* Makes fd 0 and fd 1 something the loop can watch; -1 with why. */
static int
stdio_fds(char *err, size_t errlen)
{
	struct stat	st;
	int		fd;

	for (fd = 0; fd < 2; fd++) {
		if (fstat(fd, &st) == -1) {
			snprintf(err, errlen, "fd %d: %s", fd,
			    strerror(errno));
			return -1;
		}
		if (fd == 0 && S_ISSOCK(st.st_mode))
			return 0;	/* the one socket serves both ways */
		if (!stdio_pollable(fd) && stdio_relay(fd) == -1) {
			snprintf(err, errlen, "fd %d: cannot relay: %s", fd,
			    strerror(errno));
			return -1;
		}
	}
	return 0;
}

int
worker_stdio(struct moat_config *cf)
{
	struct bufferevent	*bev;
	struct sockaddr_storage	 peer;
	socklen_t		 plen;
	struct session		*s;
	char			 err[256];

	if (stdio_peer(&peer, &plen, err, sizeof(err)) == -1 ||
	    stdio_fds(err, sizeof(err)) == -1)
		return stdio_refuse(cf, err);
	worker_setup(cf);
	if ((bev = stdio_bev()) == NULL)
		return 1;
	s = session_new(w_base, bev, (struct sockaddr *)&peer, plen, NULL, 0,
	    &cf->server.smtp, &worker_ops, cf->tls);
	if (s == NULL)
		return 1;
	s->stdio = true;
	event_base_dispatch(w_base);
	if (stdio_out != NULL) {
		/* The last replies may still be on their way to fd 1. */
		struct evbuffer *o = bufferevent_get_output(stdio_out);
		int fl = fcntl(1, F_GETFL);

		fcntl(1, F_SETFL, fl & ~O_NONBLOCK);
		while (evbuffer_get_length(o) > 0 && evbuffer_write(o, 1) > 0)
			;
		bufferevent_free(stdio_out);
		bufferevent_free(stdio_in);
		bufferevent_free(stdio_inner);
	}
	pipeline_worker_fini();
	deliver_worker_fini();
	memtrim_stop();
	event_base_free(w_base);
	stdio_relays_wait();
	return 0;
}
