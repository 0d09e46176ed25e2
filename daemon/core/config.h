/*
 * certd's INI configuration. Sections and keys are documented in packaging/certd.conf.example and
 * docs/config.md; that list and the table in config.c are the same list.
 *
 * Syntax: "[section]" or "[section.NAME]" headers, "key = value" lines, '#' or ';' comments on
 * their own line, blank lines. Values are taken verbatim after trimming; a value may be wrapped in
 * double quotes to keep leading/trailing spaces (except [challenge.dns-01] hook, whose quotes are
 * cmdline_split syntax and stay in the value). Lists (admin_users, contact, ...) are separated
 * by commas and/or whitespace. Durations accept a number with an s/m/h/d suffix (no suffix:
 * seconds). Unknown sections or keys, duplicates and bad values are errors reported as
 * "FILE:LINE: message".
 */
#ifndef CERTD_CORE_CONFIG_H
#define CERTD_CORE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/types.h"
#include "core/log.h"

#define CONFIG_DEFAULT_PATH "/etc/certd/certd.conf"

struct config_list {
    char **items;
    size_t count;
};

struct config_ca {
    char *name;               /* from [ca.NAME] */
    char *directory;          /* ACME directory URL (required) */
    char *ca_bundle;          /* PEM file trusted for the CA's own HTTPS; NULL = system store */
    char *eab_kid;            /* External Account Binding key id, NULL if none */
    char *eab_hmac_key;       /* base64url HMAC key (secret: never logged) */
    struct config_list contact; /* overrides [acme] contact when count > 0 */
    bool terms_agreed;
    char *preferred_chain;    /* issuer CN of the preferred alternate chain, NULL if none */
    unsigned max_new_orders;  /* new orders per 3-hour window, default 250 (Let's Encrypt
                                 allows 300 per account); past it orders wait */
};

/* [domain.NAME]: settings only the configuration may hold, because they run commands. NAME is
 * a domain's primary name, normalised (lower case, A-labels). */
struct config_domain {
    char *name;
    char *deploy_hook;        /* a command line, NULL if none */
};

struct config {
    char *path;               /* file it was read from */

    struct {
        char *state_dir;      /* default /var/lib/certd */
        char *socket;         /* default /run/certd/api.sock */
        mode_t socket_mode;   /* default 0660 */
        char *socket_group;   /* NULL = leave as created */
        char *user;           /* NULL = do not drop privileges */
        enum log_level log_level; /* default info */
        unsigned events_retention; /* seconds events are kept, default 90d, at least 1h */
        unsigned api_threads;      /* threads per API listener, 0 = one less than the CPUs */
    } daemon;

    struct {
        char *default_ca;     /* default "letsencrypt"; must name a CA */
        struct config_list contact; /* "mailto:..." URIs */
        enum key_type account_key_type;   /* default ec-p256 */
        unsigned max_concurrent_orders;   /* default 4, 1..64 */
    } acme;

    struct {
        struct config_list admin_users;   /* user names or numeric uids */
        struct config_list admin_groups;  /* group names or numeric gids */
        struct config_list deployer_users;  /* certificates and keys, unscoped on the socket */
        struct config_list deployer_groups;
        struct config_list reader_users;    /* certificates and state, never keys */
        struct config_list reader_groups;
    } access;

    /* [api.https]: the optional HTTPS listener for remote fleet members (bearer tokens). Bound
     * at start; changes need a restart. listen, cert and key come together or not at all. */
    struct {
        char *listen;         /* "ADDR:PORT", NULL = no HTTPS listener */
        char *cert;           /* PEM certificate chain file, leaf first */
        char *key;            /* PEM private key file (read at start, before dropping privileges) */
        char *client_ca;      /* PEM CA file: clients must present a certificate it signed;
                                 NULL = no client certificates asked for */
    } https;

    /* [ca.NAME]: "letsencrypt" and "letsencrypt-staging" are predefined and may be overridden. */
    struct config_ca *cas;
    size_t ca_count;

    struct {
        char *http01_listen;          /* [challenge.http-01] listen, "ADDR:PORT", NULL = off */
        char *dns01_hook;             /* [challenge.dns-01] hook, a command line */
        unsigned dns01_timeout;       /* [challenge.dns-01] timeout, seconds, default 60 */
        unsigned dns01_propagation_wait; /* [challenge.dns-01] propagation_wait, seconds, default 0 */
        char *tlsalpn01_listen;       /* [challenge.tls-alpn-01] listen, NULL = off */
    } challenge;

    struct {
        char *renew_before;           /* [renewal] renew_before: a duration ("30d") or a fraction
                                         of the lifetime ("0.33", "33%"); NULL = the default
                                         policy (sched/planner.h) */
        char *deploy_hook;            /* [renewal] deploy_hook, a command line, NULL if none */
        unsigned deploy_timeout;      /* [renewal] deploy_timeout, seconds, default 300 */
    } renewal;

    struct config_domain *domains;
    size_t domain_count;
};

/*
 * Reads and validates PATH. On success returns 0 and *OUT. On failure returns a negative errno
 * and writes "PATH:LINE: message" (or "PATH: message") to ERR. A missing file is an error.
 */
int config_load(const char *path, struct config **out, char *err, size_t errsz);

/* The configuration with every default and no file (used by tests and as the base). */
int config_defaults(struct config **out);

void config_free(struct config *cfg);

/*
 * Parses a duration: a decimal number of seconds, optionally followed by one unit suffix
 * "s" (seconds), "m" (minutes), "h" (hours) or "d" (days): "90", "30s", "5m", "2h", "7d".
 * No sign, no spaces, no combinations ("1h30m"). Returns 0 and *SECONDS, -EINVAL for a malformed
 * string, -ERANGE when the result does not fit in 32 bits of seconds (136 years).
 */
int config_parse_duration(const char *s, uint64_t *seconds);

/* The CA named NAME, or NULL. */
const struct config_ca *config_find_ca(const struct config *cfg, const char *name);

/* The [domain.NAME] section for the normalised NAME, or NULL. */
const struct config_domain *config_find_domain(const struct config *cfg, const char *name);

#endif
