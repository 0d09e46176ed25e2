/* Command-line words left for a command once main has taken the global options out, and a small
 * iterator over them. Our own loop rather than getopt: global options may appear anywhere, even
 * after a subcommand's own options, and getopt's permutation does not know about subcommands. */
#ifndef CERTCTL_ARGS_H
#define CERTCTL_ARGS_H

#include <stdbool.h>

struct cli_args {
    char **v;   /* words (not owned); "--" itself has been removed */
    int n;      /* number of words in V */
    int optend; /* words at index >= OPTEND came after "--": never options */
    int pos;    /* iterator position for args_next */
};

/* Drops the first word (a command name) so V starts at the command's own arguments. */
void args_shift(struct cli_args *a);

/* True when word I is an option: before "--", starts with '-' and is not "-" alone. */
bool args_is_option(const struct cli_args *a, int i);

struct opt_spec {
    const char *name; /* "--alt"; a NULL name ends the table */
    bool has_arg;     /* takes a value, as "--alt NAME" or "--alt=NAME" */
};

enum args_result {
    ARGS_ERROR = -1, /* usage error, already reported through usage_error (hence CTX) */
    ARGS_END = 0,    /* no words left */
    ARGS_WORD = 1,   /* *VALUE is a positional word */
    ARGS_OPTION = 2, /* *WHICH indexes SPECS; *VALUE is its value (NULL when it takes none) */
};

struct certctl;

/*
 * Returns the next word of A: a positional word or one of the options in SPECS. Unknown
 * options, a missing value and a value given to an option that takes none are usage errors
 * (reported on stderr naming CTX's command).
 */
enum args_result args_next(struct cli_args *a, const struct certctl *ctx,
                           const struct opt_spec *specs, int *which, const char **value);

/* For a command without options or words (an option is a usage error too, so "--bogus" is
 * refused): CERTCTL_EXIT_OK, or CERTCTL_EXIT_USAGE (reported)
 * for any word left. */
int args_none(struct cli_args *a, const struct certctl *ctx);

/* For a command without options and exactly one word (WHAT names it in messages), stored in
 * *WORD: CERTCTL_EXIT_OK, or CERTCTL_EXIT_USAGE (reported) when it is missing or not alone. */
int args_one(struct cli_args *a, const struct certctl *ctx, const char *what, const char **word);

/* Parses S as a decimal integer in MIN..MAX; false when it is anything else. */
bool args_parse_long(const char *s, long min, long max, long *out);

#endif
