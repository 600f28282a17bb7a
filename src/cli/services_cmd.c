/*
 * services_cmd.c: `moatctl services`: the health of the external
 * services (clamd, spamd) as each live worker last saw it, from the files
 * the workers keep under <var_dir>/svc (src/core/svc.c). Files of workers
 * that are gone are skipped.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "services_cmd.h"

/* A printable copy of a field read from a file (bounded, no control
 * characters). */
static void
field(char *out, size_t n, const char *in)
{
	size_t i;

	for (i = 0; in[i] != '\0' && i + 1 < n; i++)
		out[i] = isprint((unsigned char)in[i]) ? in[i] : '?';
	out[i] = '\0';
}

int
services_cmd(const char *var_dir)
{
	char		 dir[4096], path[4200], line[512];
	char		 name[64], addr[200], state[16];
	long long	 since;
	unsigned long long req, fail;
	struct dirent	*de;
	DIR		*d;
	FILE		*f;
	long		 pid;
	char		*end, when[32];
	int		 shown = 0;

	snprintf(dir, sizeof(dir), "%s/svc", var_dir);
	if ((d = opendir(dir)) == NULL) {
		printf("no service used yet (%s: %s)\n", dir, strerror(errno));
		return 0;
	}
	while ((de = readdir(d)) != NULL) {
		pid = strtol(de->d_name, &end, 10);
		if (end == de->d_name || *end != '\0' || pid <= 0)
			continue;
		if (kill((pid_t)pid, 0) == -1 && errno == ESRCH)
			continue;	/* a worker that is gone */
		if (snprintf(path, sizeof(path), "%s/%s", dir, de->d_name) >=
		    (int)sizeof(path) || (f = fopen(path, "r")) == NULL)
			continue;
		while (fgets(line, sizeof(line), f) != NULL) {
			char n[64], a[200], st[16];
			time_t t;
			struct tm tm;

			if (sscanf(line, "%63s %199s %15s %lld %llu %llu", n, a,
			    st, &since, &req, &fail) != 6)
				continue;
			field(name, sizeof(name), n);
			field(addr, sizeof(addr), a);
			field(state, sizeof(state), st);
			t = (time_t)since;
			gmtime_r(&t, &tm);
			strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
			printf("worker %ld service=%s addr=%s state=%s since=%s "
			    "requests=%llu failures=%llu\n", pid, name, addr,
			    state, when, req, fail);
			shown++;
		}
		fclose(f);
	}
	closedir(d);
	if (shown == 0)
		printf("no service used yet\n");
	return 0;
}
