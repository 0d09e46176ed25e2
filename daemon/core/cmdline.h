/* Splitting a configured command line into argv the way systemd's ExecStart= does: words split on
 * whitespace, single and double quotes group (and may appear inside a word), C-style backslash
 * escapes, no shell, no variable or glob expansion. */
#ifndef CERTD_CORE_CMDLINE_H
#define CERTD_CORE_CMDLINE_H

#include <stddef.h>

/*
 * Splits LINE into a NULL-terminated argv (*ARGV_OUT, freed with cmdline_free) of *ARGC_OUT
 * words. Errors (-EINVAL, reason in ERR): unterminated quote, trailing backslash, bad escape,
 * empty command, a first word that is not an absolute path (commands run with execve, no PATH).
 */
int cmdline_split(const char *line, char ***argv_out, size_t *argc_out, char *err, size_t errsz);
void cmdline_free(char **argv);

#endif
