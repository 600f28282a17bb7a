/*
 * log.h: the human log and the JSON event log.
 *
 * Human lines read "LEVEL [sid] text", one event per line; the session id
 * comes first so a grep for it finds a whole conversation. The JSON log gets
 * one object per line: per transaction and per refused connection.
 * Destinations: "stderr", "stdout", "syslog", "off" or a file path.
 */
#ifndef MOAT_LOG_H
#define MOAT_LOG_H

#include <stdint.h>

enum log_level {
	LVL_PANIC, LVL_FATAL, LVL_WARN, LVL_INFO, LVL_DEBUG, LVL_TRACE
};

/* Opens both destinations and then closes the old ones (files are
 * reopened this way after rotation, on SIGHUP). -1 with "log path: why"
 * in err when either cannot be opened: the old destinations stay. */
int	log_open(const char *human, const char *json, enum log_level,
	    char *err, size_t errlen);
/* Closes file destinations. */
void	log_close(void);
/* Parses a level name; -1 when unknown. */
int	log_level_parse(const char *);
/* True when messages at this level are written. */
int	log_enabled(enum log_level);
/* One human line; sid 0 means "no session". */
void	log_msg(enum log_level, uint64_t sid, const char *fmt, ...)
	    __attribute__((format(printf, 3, 4)));
/* A warning written to the log and also to stderr and syslog (each
 * unless it is the log): for failures an operator must see even when the
 * log itself is what failed. */
void	log_loud(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
struct buf;
/* True when JSON lines go anywhere (callers skip building them if not). */
_Bool	log_json_enabled(void);
/* Writes one JSON object (line holds it, without the newline). */
void	log_json(struct buf *line);

#define log_warn(...)	log_msg(LVL_WARN, 0, __VA_ARGS__)
#define log_info(...)	log_msg(LVL_INFO, 0, __VA_ARGS__)
#define log_debug(...)	log_msg(LVL_DEBUG, 0, __VA_ARGS__)
#define log_fatal(...)	log_msg(LVL_FATAL, 0, __VA_ARGS__)

#endif
