/*
 * shared.c: the one store handle of a process (store.h). A handle opened
 * before fork() is not used by the child: the pid it was opened in is
 * kept and a child opens its own.
 */
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "store.h"

static char		 shared_dir[PATH_MAX];
static size_t		 shared_map;
static struct store	*shared;
static pid_t		 shared_pid;

void
store_configure(const char *dir, size_t map_size)
{
	if (strcmp(dir, shared_dir) == 0 && map_size == shared_map)
		return;
	snprintf(shared_dir, sizeof(shared_dir), "%s", dir);
	shared_map = map_size;
	if (shared != NULL && shared_pid == getpid())
		store_close(shared);
	shared = NULL;
}

struct store *
store_shared(char *err, size_t errlen)
{
	if (shared != NULL && shared_pid == getpid())
		return shared;
	if (shared_dir[0] == '\0') {
		snprintf(err, errlen, "no store configured");
		return NULL;
	}
	/* A parent's handle is dropped, never closed, in the child. */
	shared = store_open(shared_dir, shared_map, err, errlen);
	shared_pid = getpid();
	return shared;
}
