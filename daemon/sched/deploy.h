/*
 * Deploy hooks: commands from the configuration ([renewal] deploy_hook for every domain, then
 * [domain.NAME] deploy_hook for one) run after a certificate is stored. Never settable through
 * the API: an API caller must not be able to make the daemon run a command.
 *
 * A hook runs with execve (no shell), stdin from /dev/null, and this environment:
 *   PATH=/usr/sbin:/usr/bin:/sbin:/bin
 *   CERTD_DOMAIN        primary name
 *   CERTD_NAMES         every name, space-separated, primary first
 *   CERTD_SERIAL        lower-case hex
 *   CERTD_NOT_BEFORE, CERTD_NOT_AFTER   RFC 3339 UTC
 *   CERTD_FINGERPRINT   hex SHA-256 of the leaf
 *   CERTD_EVENT         "issued" (the domain's first certificate) or "renewed"
 *   CERTD_SOCKET        the API socket, to fetch the certificate and key with certctl
 * Its exit status and output (capped) are recorded as a "deploy.succeeded" or "deploy.failed"
 * event. A failing hook does not undo the certificate.
 */
#ifndef CERTD_SCHED_DEPLOY_H
#define CERTD_SCHED_DEPLOY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct config;
struct store;

struct deploy_cert {
    const char *domain;
    const char *const *names;
    size_t name_count;
    const char *serial;
    int64_t not_before;
    int64_t not_after;
    const char *fingerprint_sha256;
    bool renewed;
};

/*
 * Runs the hooks CFG configures for C->domain, one after the other, each with its timeout,
 * records an event per hook in ST, and returns how many failed (0 when none ran).
 */
int deploy_run(const struct config *cfg, struct store *st, const struct deploy_cert *c);

#endif
