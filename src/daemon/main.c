/*
 * main.c: moatd's command line.
 *
 *   moatd [-c moat.conf]          run (master + workers), in the foreground
 *   moatd -c moat.conf -t         check the configuration and exit
 *   moatd -c moat.conf --stdio    one session on fd 0/1 (tcpserver, inetd)
 *   moatd --defaults              print every option with its default
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../core/log.h"
#include "conf.h"
#include "master.h"
#include "worker.h"

static void
usage(void)
{
	fprintf(stderr, "usage: moatd [-c moat.conf] [-t | --stdio | "
	    "--defaults]\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	const char		*path = "/etc/moat/moat.conf";
	struct moat_config	*cf;
	char			 err[1024];
	bool			 test = false, stdio_mode = false;
	int			 i;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-c") == 0 && i + 1 < argc)
			path = argv[++i];
		else if (strcmp(argv[i], "-t") == 0)
			test = true;
		else if (strcmp(argv[i], "--stdio") == 0)
			stdio_mode = true;
		else if (strcmp(argv[i], "--defaults") == 0) {
			conf_dump_defaults();
			return 0;
		} else
			usage();
	}
	if ((cf = conf_load(path, err, sizeof(err))) == NULL) {
		fprintf(stderr, "moatd: %s\n", err);
		return 1;
	}
	if (test) {
		printf("moatd: %s: configuration OK (%zu filters, %zu domain "
		    "policies)\n", path, cf->pl->n, cf->pl->ndomains);
		conf_free(cf);
		return 0;
	}
	mkdir(cf->server.var_dir, 0750);
	if (log_open(stdio_mode && strcmp(cf->server.log, "stdout") == 0 ?
	    "stderr" : cf->server.log, cf->server.json_log,
	    (enum log_level)log_level_parse(cf->server.log_level), err,
	    sizeof(err)) == -1) {
		fprintf(stderr, "moatd: cannot open %s\n", err);
		return 1;
	}
	if (stdio_mode) {
		i = worker_stdio(cf);
		conf_free(cf);
		return i;
	}
	return master_run(cf);
}
