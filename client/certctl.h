/* certctl's shared definitions: exit codes, the per-run context every command gets, and the
 * command table entries the command files export. */
#ifndef CERTCTL_CERTCTL_H
#define CERTCTL_CERTCTL_H

#include <stdbool.h>

#include "args.h"

/* Exit codes are part of certctl's interface (docs/cli.md): scripts switch on them, so a value
 * never changes meaning. */
enum certctl_exit {
    CERTCTL_EXIT_OK = 0,
    CERTCTL_EXIT_FAILED = 1,      /* the daemon refused, or the operation failed */
    CERTCTL_EXIT_USAGE = 2,       /* unknown command/option, missing or bad argument */
    CERTCTL_EXIT_UNREACHABLE = 3, /* cannot connect to the daemon */
    CERTCTL_EXIT_TIMEOUT = 4,     /* a --wait timed out */
    CERTCTL_EXIT_PARTIAL = 5,     /* a multi-item command did only part of its work (reserved) */
};

#define CERTCTL_DEFAULT_SOCKET "/run/certd/api.sock"

struct http_client;

struct certctl {
    bool json;                /* --json: print the API's JSON instead of tables */
    const char *socket_path;  /* for messages; the transport itself lives in http.c */
    const char *cmd_path;     /* "domain add": names the command in usage hints */
    struct http_client *http; /* set up by main before a command runs */
    const char *url;          /* --url / $CERTD_URL: the HTTPS listener instead of the socket */
    const char *token_file;   /* --token-file / $CERTD_TOKEN_FILE: bearer token for --url */
    const char *ca_file;      /* --ca-file / $CERTD_CA_FILE: CA bundle verifying --url */
};

struct command {
    const char *name;
    const char *summary; /* one line for the parent's help */
    const char *usage;   /* full help text, printed by --help */
    /* Runs with ARGS holding the words after the command name; returns an enum certctl_exit. */
    int (*run)(struct certctl *ctx, struct cli_args *args);
    const struct command *const *subs; /* NULL-terminated, or NULL for a leaf command */
};

/* The commands, defined in cmd_*.c. */
extern const struct command cmd_status;
extern const struct command cmd_domain;
extern const struct command cmd_history;
extern const struct command cmd_events;
extern const struct command cmd_renew;
extern const struct command cmd_cert;
extern const struct command cmd_order;
extern const struct command cmd_account;
extern const struct command cmd_token;
extern const struct command cmd_sync;

/*
 * Prints "certctl: <message>" and the hint "try 'certctl <ctx->cmd_path> --help'" to stderr and
 * returns CERTCTL_EXIT_USAGE, so commands can `return usage_error(ctx, ...)`.
 */
int usage_error(const struct certctl *ctx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Prints "certctl: <message>" to stderr. */
void errmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
