/*
 * svc.c: the external service client (svc.h has the contract).
 *
 * Owns, per worker: the service table (SVC_MAX, keyed by address), each
 * service's pool (connections in use, a FIFO of waiting requests) and
 * health. A request owns its bufferevent and one timer; the timer follows
 * the nearest of its deadlines (connect, idle, total) and also carries a
 * failure decided where the owner's callback must not run (inside
 * svc_start or a dequeue): the callback always runs from the loop.
 *
 * Invariants: a request is on exactly one of its service's lists (queue
 * or live) until it ends; it ends once (finish), by its callback or by
 * svc_cancel, never both; active counts the live ones.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "log.h"
#include "svc.h"

struct svc_req {
	struct svc		*svc;
	struct svc_call		 call;
	char			*head;
	struct bufferevent	*bev;
	struct event		*timer;
	long long		 t_start, t_total, t_connect, t_progress;
	enum svc_status		 fail;		/* decided, not yet told */
	bool			 failing;
	bool			 connected, body_done, shut, probe;
	bool			 queued, in_done;
	TAILQ_ENTRY(svc_req)	 link;
};

TAILQ_HEAD(svc_reqs, svc_req);

struct svc {
	char			 name[32];
	char			 addr[SVC_ADDR_MAX + 1];
	struct sockaddr_storage	 ss;
	socklen_t		 sslen;
	const struct svc_opts	*o;
	struct event_base	*base;
	enum svc_health		 state;
	long long		 fails;		/* in a row */
	long long		 down_since, next_probe;
	bool			 probing;
	unsigned long long	 requests, failures, skipped;
	unsigned long long	 outage_failed;	/* since it went down */
	long long		 active, queued;
	struct svc_reqs		 queue, live;
	char			 why[128];	/* the last failure */
	time_t			 changed;	/* wall time of the state */
};

static struct svc	*svcs[SVC_MAX];
static size_t		 nsvc;
static char		 pub_dir[4096];	/* "": health not published */

static const char *const health_names[] = { "up", "degraded", "down" };
static const char *const status_names[] = { "ok", "down", "connect",
    "timeout", "io", "too_big", "abort", "reply" };

static void	req_connect(struct svc_req *);
static void	svc_publish(void);
static void	req_finish(struct svc_req *, enum svc_status);

static long long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const char *
svc_health_name(enum svc_health h)
{
	return (unsigned)h < 3 ? health_names[h] : "?";
}

const char *
svc_status_name(enum svc_status st)
{
	return (unsigned)st < sizeof(status_names) / sizeof(status_names[0]) ?
	    status_names[st] : "?";
}

/* "/path", "unix:/path", "a.b.c.d:port", "[v6]:port". Numeric only. */
int
svc_addr_parse(const char *a, struct sockaddr_storage *ss, socklen_t *len)
{
	struct sockaddr_un	*sun = (struct sockaddr_un *)ss;
	struct sockaddr_in	*sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6	*sin6 = (struct sockaddr_in6 *)ss;
	char			 host[64], *end;
	const char		*colon, *h = a;
	size_t			 n;
	long			 port;

	memset(ss, 0, sizeof(*ss));
	if (strncmp(a, "unix:", 5) == 0)
		a += 5;
	if (a[0] == '/') {
		if ((n = strlen(a)) >= sizeof(sun->sun_path))
			return -1;
		sun->sun_family = AF_UNIX;
		memcpy(sun->sun_path, a, n + 1);
		*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) +
		    n + 1);
		return 0;
	}
	if (h[0] == '[') {
		if ((colon = strstr(h, "]:")) == NULL)
			return -1;
		h++;
		n = (size_t)(colon - h);
		colon++;
	} else {
		if ((colon = strrchr(h, ':')) == NULL)
			return -1;
		n = (size_t)(colon - h);
	}
	if (n == 0 || n >= sizeof(host))
		return -1;
	memcpy(host, h, n);
	host[n] = '\0';
	errno = 0;
	port = strtol(colon + 1, &end, 10);
	if (colon[1] < '0' || colon[1] > '9' || *end != '\0' || errno != 0 ||
	    port < 1 || port > 65535)
		return -1;
	if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		*len = sizeof(*sin);
		return 0;
	}
	if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		*len = sizeof(*sin6);
		return 0;
	}
	return -1;
}

struct svc *
svc_get(struct event_base *base, const char *name, const struct svc_opts *o)
{
	struct svc	*v;
	size_t		 i;

	for (i = 0; i < nsvc; i++)
		if (strcmp(svcs[i]->addr, o->address) == 0 &&
		    svcs[i]->base == base)
			return svcs[i];
	if (nsvc == SVC_MAX || strlen(o->address) > SVC_ADDR_MAX ||
	    (v = calloc(1, sizeof(*v))) == NULL)
		return NULL;
	if (svc_addr_parse(o->address, &v->ss, &v->sslen) == -1) {
		free(v);
		return NULL;
	}
	snprintf(v->name, sizeof(v->name), "%s", name);
	snprintf(v->addr, sizeof(v->addr), "%s", o->address);
	v->o = o;
	v->base = base;
	TAILQ_INIT(&v->queue);
	TAILQ_INIT(&v->live);
	v->changed = time(NULL);
	svcs[nsvc++] = v;
	svc_publish();
	return v;
}

enum svc_health
svc_state(const struct svc *v)
{
	return v->state;
}

/* ---- health ----------------------------------------------------------- */

/*
 * Health for moatctl: each worker keeps one small file, <var_dir>/svc/
 * <pid>, a line per service ("name address state since requests
 * failures"), rewritten (tmp + rename) when a service is first used and
 * when its state changes: rare, small, no fsync (it is a view, not
 * state). `moatctl services` reads the files of live workers.
 */
void
svc_publish_dir(const char *var_dir)
{
	if (snprintf(pub_dir, sizeof(pub_dir), "%s/svc", var_dir) >=
	    (int)sizeof(pub_dir))
		pub_dir[0] = '\0';
}

static void
svc_publish(void)
{
	char	 path[sizeof(pub_dir) + 32], tmp[sizeof(path) + 8];
	FILE	*f;
	size_t	 i;

	if (pub_dir[0] == '\0')
		return;
	snprintf(path, sizeof(path), "%s/%d", pub_dir, (int)getpid());
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	(void)mkdir(pub_dir, 0750);
	if ((f = fopen(tmp, "w")) == NULL)
		return;
	for (i = 0; i < nsvc; i++)
		fprintf(f, "%s %s %s %lld %llu %llu\n", svcs[i]->name,
		    svcs[i]->addr, health_names[svcs[i]->state],
		    (long long)svcs[i]->changed, svcs[i]->requests,
		    svcs[i]->failures);
	if (fclose(f) == 0)
		(void)rename(tmp, path);
	else
		(void)unlink(tmp);
}

static void
health_ok(struct svc *v)
{
	bool changed = v->state != SVC_UP;

	if (v->state == SVC_DOWN)
		log_msg(LVL_INFO, 0, "event=svc_up service=%s addr=%s "
		    "was=down down_ms=%lld failed=%llu", v->name, v->addr,
		    now_ms() - v->down_since, v->outage_failed);
	else if (v->state == SVC_DEGRADED)
		log_msg(LVL_INFO, 0, "event=svc_up service=%s addr=%s "
		    "was=degraded", v->name, v->addr);
	v->state = SVC_UP;
	v->fails = 0;
	if (changed) {
		v->changed = time(NULL);
		svc_publish();
	}
}

static void
health_fail(struct svc *v, enum svc_status st)
{
	v->failures++;
	v->fails++;
	if (v->state == SVC_DOWN) {
		v->outage_failed++;
		v->next_probe = now_ms() + v->o->retry_ms;
		return;
	}
	if (v->fails >= v->o->down_after) {
		log_msg(LVL_WARN, 0, "event=svc_down service=%s addr=%s "
		    "failures=%lld why=%s%s%s", v->name, v->addr, v->fails,
		    svc_status_name(st), v->why[0] ? ":" : "", v->why);
		v->state = SVC_DOWN;
		v->changed = time(NULL);
		svc_publish();
		v->down_since = now_ms();
		v->next_probe = v->down_since + v->o->retry_ms;
		v->outage_failed = 1;
	} else if (v->state == SVC_UP) {
		log_msg(LVL_WARN, 0, "event=svc_degraded service=%s addr=%s "
		    "why=%s%s%s", v->name, v->addr, svc_status_name(st),
		    v->why[0] ? ":" : "", v->why);
		v->state = SVC_DEGRADED;
		v->changed = time(NULL);
		svc_publish();
	}
}

/* ---- a request -------------------------------------------------------- */

static void
req_arm(struct svc_req *r)
{
	long long	 now = now_ms(), due = r->t_total;
	struct timeval	 tv;

	if (r->failing)
		due = now;
	else if (!r->queued && !r->connected && r->t_connect < due)
		due = r->t_connect;
	else if (!r->queued && r->t_progress + r->svc->o->idle_ms < due)
		due = r->t_progress + r->svc->o->idle_ms;
	due = due > now ? due - now : 0;
	tv.tv_sec = due / 1000;
	tv.tv_usec = (due % 1000) * 1000;
	evtimer_add(r->timer, &tv);
}

/* A failure to be told from the loop (never inside svc_start). */
static void
req_fail_soon(struct svc_req *r, enum svc_status st)
{
	r->failing = true;
	r->fail = st;
	req_arm(r);
}

static void
req_timer(evutil_socket_t fd, short what, void *arg)
{
	struct svc_req	*r = arg;
	long long	 now = now_ms();

	(void)fd;
	(void)what;
	if (r->failing)
		req_finish(r, r->fail);
	else if (now >= r->t_total)
		req_finish(r, r->connected ? SVC_ETIMEOUT : SVC_ECONNECT);
	else if (!r->queued && !r->connected && now >= r->t_connect)
		req_finish(r, SVC_ECONNECT);
	else if (!r->queued && now - r->t_progress >= r->svc->o->idle_ms)
		req_finish(r, SVC_ETIMEOUT);
	else
		req_arm(r);
}

static void
req_shut(struct svc_req *r)
{
	evutil_socket_t fd = bufferevent_getfd(r->bev);

	if (!r->shut && r->call.shut_wr && fd != -1)
		(void)shutdown(fd, SHUT_WR);
	r->shut = true;
}

/* Tops the output up to SVC_CHUNK from the owner's body. */
static void
req_pump(struct svc_req *r)
{
	struct evbuffer	*out = bufferevent_get_output(r->bev);
	const char	*p;
	size_t		 n, have;
	unsigned char	 len[4];
	int		 rc;

	while (!r->body_done &&
	    (have = evbuffer_get_length(out)) < SVC_CHUNK) {
		rc = r->call.pull == NULL ? 0 : r->call.pull(r->call.arg,
		    SVC_CHUNK - have, &p, &n);
		if (rc == -1) {
			req_fail_soon(r, SVC_EABORT);
			return;
		}
		if (rc == 0 || n == 0) {
			r->body_done = true;
			if (r->call.frame == SVC_FRAME_LEN32 &&
			    r->call.pull != NULL) {
				memset(len, 0, 4);
				evbuffer_add(out, len, 4);
			}
			break;
		}
		if (r->call.frame == SVC_FRAME_LEN32) {
			len[0] = (unsigned char)(n >> 24);
			len[1] = (unsigned char)(n >> 16);
			len[2] = (unsigned char)(n >> 8);
			len[3] = (unsigned char)n;
			evbuffer_add(out, len, 4);
		}
		evbuffer_add(out, p, n);
	}
	if (r->body_done && evbuffer_get_length(out) == 0)
		req_shut(r);
}

/* The reply so far; true when it is complete (or an error ended it). */
static bool
req_reply_check(struct svc_req *r, bool eof)
{
	struct evbuffer		*in = bufferevent_get_input(r->bev);
	struct evbuffer_ptr	 pos;
	size_t			 len = evbuffer_get_length(in);
	size_t			 cap = (size_t)r->svc->o->max_reply;

	if (r->call.end == SVC_END_NUL) {
		pos = evbuffer_search(in, "", 1, NULL);
		if (pos.pos >= 0) {
			if ((size_t)pos.pos > cap)
				req_finish(r, SVC_ETOOBIG);
			else
				req_finish(r, SVC_OK);
			return true;
		}
	}
	if (len > cap) {
		req_finish(r, SVC_ETOOBIG);
		return true;
	}
	if (eof) {
		req_finish(r, r->call.end == SVC_END_EOF && len > 0 ? SVC_OK :
		    SVC_EIO);
		return true;
	}
	return false;
}

static void
req_read(struct bufferevent *bev, void *arg)
{
	struct svc_req *r = arg;

	(void)bev;
	r->t_progress = now_ms();
	(void)req_reply_check(r, false);
}

static void
req_write(struct bufferevent *bev, void *arg)
{
	struct svc_req *r = arg;

	(void)bev;
	/* libevent may call this for a connect that succeeded at once,
	 * before BEV_EVENT_CONNECTED: the head goes first. */
	if (!r->connected)
		return;
	r->t_progress = now_ms();
	req_pump(r);
}

static void
req_event(struct bufferevent *bev, short what, void *arg)
{
	struct svc_req	*r = arg;
	int		 err = EVUTIL_SOCKET_ERROR();

	(void)bev;
	if (what & BEV_EVENT_CONNECTED) {
		r->connected = true;
		r->t_progress = now_ms();
		evbuffer_add(bufferevent_get_output(r->bev), r->head,
		    r->call.headlen);
		req_pump(r);
		req_arm(r);
		return;
	}
	if (!r->connected) {
		snprintf(r->svc->why, sizeof(r->svc->why), "%s",
		    strerror(err));
		req_finish(r, SVC_ECONNECT);
		return;
	}
	if ((what & BEV_EVENT_WRITING) && !(what & BEV_EVENT_EOF)) {
		/* EPIPE: the service stopped reading (clamd at its
		 * StreamMaxLength); its reply may still be there. */
		r->body_done = r->shut = true;
		bufferevent_enable(r->bev, EV_READ);
		(void)req_reply_check(r, false);
		return;
	}
	/* EOF or a read error: what came is all there is. */
	if (what & BEV_EVENT_ERROR)
		snprintf(r->svc->why, sizeof(r->svc->why), "%s",
		    strerror(err));
	(void)req_reply_check(r, true);
}

static void
req_connect(struct svc_req *r)
{
	struct svc *v = r->svc;

	r->queued = false;
	r->t_connect = now_ms() + v->o->connect_ms;
	TAILQ_INSERT_TAIL(&v->live, r, link);
	v->active++;
	r->bev = bufferevent_socket_new(v->base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (r->bev == NULL) {
		req_fail_soon(r, SVC_EIO);
		return;
	}
	bufferevent_setcb(r->bev, req_read, req_write, req_event, r);
	bufferevent_setwatermark(r->bev, EV_WRITE, SVC_CHUNK / 2, 0);
	bufferevent_setwatermark(r->bev, EV_READ, 0,
	    (size_t)v->o->max_reply + 2);
	bufferevent_enable(r->bev, EV_READ | EV_WRITE);
	if (bufferevent_socket_connect(r->bev, (struct sockaddr *)&v->ss,
	    (int)v->sslen) == -1) {
		snprintf(v->why, sizeof(v->why), "%s", strerror(errno));
		req_fail_soon(r, SVC_ECONNECT);
		return;
	}
	req_arm(r);
}

/* Starts waiting requests while the pool has room. */
static void
svc_dequeue(struct svc *v)
{
	struct svc_req *r;

	while (v->active < v->o->max_conns &&
	    (r = TAILQ_FIRST(&v->queue)) != NULL) {
		TAILQ_REMOVE(&v->queue, r, link);
		v->queued--;
		if (v->state == SVC_DOWN && !r->probe) {
			/* Went down while it waited. */
			TAILQ_INSERT_TAIL(&v->live, r, link);
			v->active++;
			r->queued = false;
			req_fail_soon(r, SVC_EDOWN);
			continue;
		}
		req_connect(r);
	}
}

/* Takes r off its list and frees it (no callback). */
static void
req_free(struct svc_req *r)
{
	struct svc *v = r->svc;

	if (r->queued) {
		TAILQ_REMOVE(&v->queue, r, link);
		v->queued--;
	} else {
		TAILQ_REMOVE(&v->live, r, link);
		v->active--;
	}
	if (r->probe)
		v->probing = false;
	if (r->bev != NULL)
		bufferevent_free(r->bev);
	event_free(r->timer);
	free(r->head);
	free(r);
}

static void
req_finish(struct svc_req *r, enum svc_status st)
{
	struct svc	*v = r->svc;
	struct evbuffer	*in;
	const char	*reply = "";
	size_t		 len = 0;
	int		 rc;

	evtimer_del(r->timer);
	if (st == SVC_OK) {
		in = bufferevent_get_input(r->bev);
		len = evbuffer_get_length(in);
		if (r->call.end == SVC_END_NUL)
			len = (size_t)evbuffer_search(in, "", 1, NULL).pos;
		/* +1: the NUL, there for NUL framing, added for EOF. */
		if (r->call.end == SVC_END_EOF)
			evbuffer_add(in, "", 1);
		reply = (const char *)evbuffer_pullup(in, -1);
		if (reply == NULL)
			st = SVC_EIO;
	}
	if (st != SVC_ECONNECT && st != SVC_EIO)
		v->why[0] = '\0';
	r->in_done = true;
	rc = r->call.done(r->call.arg, st, st == SVC_OK ? reply : "",
	    st == SVC_OK ? len : 0);
	if (st == SVC_OK && rc != 0)
		st = SVC_EREPLY;
	if (st == SVC_OK)
		health_ok(v);
	else if (st != SVC_EDOWN && st != SVC_EABORT)
		health_fail(v, st);
	if (st != SVC_OK)
		log_msg(LVL_DEBUG, r->call.sid, "event=svc_fail service=%s "
		    "status=%s state=%s", v->name, svc_status_name(st),
		    svc_health_name(v->state));
	req_free(r);
	svc_dequeue(v);
}

struct svc_req *
svc_start(struct svc *v, const struct svc_call *call, enum svc_status *why)
{
	struct svc_req	*r;
	long long	 now = now_ms();
	bool		 probe = false;

	*why = SVC_EIO;
	if (v->state == SVC_DOWN) {
		if (v->probing || now < v->next_probe) {
			v->skipped++;
			v->outage_failed++;
			*why = SVC_EDOWN;
			return NULL;
		}
		probe = true;
	}
	if ((r = calloc(1, sizeof(*r))) == NULL)
		return NULL;
	r->svc = v;
	r->call = *call;
	r->t_start = now;
	r->t_total = now + (call->total_ms > 0 ? call->total_ms :
	    v->o->total_ms);
	r->t_progress = now;
	r->probe = probe;
	if ((r->head = malloc(call->headlen + 1)) == NULL ||
	    (r->timer = evtimer_new(v->base, req_timer, r)) == NULL) {
		free(r->head);
		free(r);
		return NULL;
	}
	memcpy(r->head, call->head, call->headlen);
	if (probe)
		v->probing = true;
	v->requests++;
	if (v->active >= v->o->max_conns) {
		r->queued = true;
		TAILQ_INSERT_TAIL(&v->queue, r, link);
		v->queued++;
		req_arm(r);
		return r;
	}
	req_connect(r);
	return r;
}

void
svc_cancel(struct svc_req *r)
{
	struct svc *v;

	if (r == NULL || r->in_done)
		return;
	v = r->svc;
	req_free(r);
	svc_dequeue(v);
}

size_t
svc_list(struct svc_info *out, size_t max)
{
	size_t i;

	for (i = 0; i < nsvc && i < max; i++) {
		out[i].name = svcs[i]->name;
		out[i].address = svcs[i]->addr;
		out[i].state = svcs[i]->state;
		out[i].requests = svcs[i]->requests;
		out[i].failures = svcs[i]->failures;
		out[i].skipped = svcs[i]->skipped;
		out[i].active = svcs[i]->active;
		out[i].queued = svcs[i]->queued;
	}
	return nsvc;
}

void
svc_fini_all(void)
{
	struct svc_req	*r;
	size_t		 i;

	for (i = 0; i < nsvc; i++) {
		while ((r = TAILQ_FIRST(&svcs[i]->queue)) != NULL)
			req_free(r);
		while ((r = TAILQ_FIRST(&svcs[i]->live)) != NULL)
			req_free(r);
		free(svcs[i]);
		svcs[i] = NULL;
	}
	nsvc = 0;
	if (pub_dir[0] != '\0') {
		char path[sizeof(pub_dir) + 32];

		snprintf(path, sizeof(path), "%s/%d", pub_dir, (int)getpid());
		(void)unlink(path);
	}
}
