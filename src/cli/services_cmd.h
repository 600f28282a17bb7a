/*
 * services_cmd.h: `moatctl services` (see services_cmd.c).
 */
#ifndef MOAT_SERVICES_CMD_H
#define MOAT_SERVICES_CMD_H

/* Prints the services' health the live workers of var_dir published. */
int	services_cmd(const char *var_dir);

#endif
