/* The dns-01 hook (RFC 8555 §8.4): certd does not speak to DNS providers itself; the configured
 * command creates and deletes the _acme-challenge TXT record. */
#include "acme/resp_internal.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cmdline.h"
#include "core/log.h"
#include "core/spawn.h"

/* What we keep of the hook's output: enough for any error message, bounded for a chatty hook. */
#define DNS01_MAX_OUTPUT (16 * 1024)
/* How much of that output goes into the one-line error. */
#define DNS01_MAX_DETAIL 400
#define DNS01_MAX_ARG 512

/* A fixed, minimal environment: the daemon's own (NOTIFY_SOCKET, credentials directories ...)
 * is none of the hook's business. */
static char *const hook_env[] = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", NULL};

static bool arg_ok(const char *s)
{
    if (!s || !*s)
        return false;
    size_t n = 0;
    for (; s[n]; n++) {
        if (n >= DNS01_MAX_ARG || (unsigned char)s[n] < 0x20 || s[n] == 0x7f)
            return false;
    }
    return true;
}

/*
 * Writes the start of the hook's output OUT (LEN bytes, may hold NULs) to DST as one printable
 * ASCII line: runs of whitespace and control characters become one space, other bytes outside
 * ASCII become '?' (the message ends up in JSON and the journal), "..." marks a cut.
 */
static void summarize(const char *out, size_t len, bool truncated, char *dst, size_t dstsz)
{
    size_t n = 0;
    bool space = false, cut = truncated;

    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)out[i];
        if (ch <= 0x20 || ch == 0x7f) {
            space = n > 0;
            continue;
        }
        if (n + (space ? 2 : 1) >= dstsz) {
            cut = true;
            break;
        }
        if (space)
            dst[n++] = ' ';
        space = false;
        dst[n++] = ch < 0x80 ? (char)ch : '?';
    }
    dst[n] = '\0';
    if (cut && n > 0 && dstsz > 4) {
        size_t at = n + 3 < dstsz ? n : dstsz - 4;
        memcpy(dst + at, "...", 4);
    }
}

int responders_dns01_run(const char *hook, unsigned timeout_s, const char *action, const char *fqdn,
                         const char *value, char *err, size_t errsz)
{
    char **words = NULL, **argv = NULL;
    size_t nwords = 0;
    struct spawn_result res = {0};
    char why[256], detail[DNS01_MAX_DETAIL + 1];
    int rc;

    if (err && errsz)
        err[0] = '\0';
    if (!hook || !action || (strcmp(action, "add") != 0 && strcmp(action, "del") != 0) ||
        timeout_s == 0 || !arg_ok(fqdn) || !arg_ok(value)) {
        snprintf(err, errsz, "dns-01 hook: invalid arguments");
        return -EINVAL;
    }
    rc = cmdline_split(hook, &words, &nwords, why, sizeof(why));
    if (rc < 0) {
        snprintf(err, errsz, "dns-01 hook: %s", why);
        goto out;
    }
    argv = calloc(nwords + 4, sizeof(*argv));
    if (!argv) {
        rc = -ENOMEM;
        snprintf(err, errsz, "dns-01 hook: out of memory");
        goto out;
    }
    memcpy(argv, words, nwords * sizeof(*argv));
    argv[nwords] = (char *)action;
    argv[nwords + 1] = (char *)fqdn;
    argv[nwords + 2] = (char *)value;

    unsigned timeout_ms = timeout_s > UINT_MAX / 1000 ? UINT_MAX : timeout_s * 1000;
    log_debug("dns-01 hook %s: %s %s", argv[0], action, fqdn);
    rc = spawn_run(argv, hook_env, timeout_ms, DNS01_MAX_OUTPUT, &res);
    if (rc < 0) {
        snprintf(err, errsz, "cannot run dns-01 hook %s: %s", argv[0], strerror(-rc));
        goto out;
    }

    /* Hooks tend to explain themselves on stderr; some only on stdout. */
    if (res.err_len)
        summarize(res.err, res.err_len, res.err_truncated, detail, sizeof(detail));
    else
        summarize(res.out, res.out_len, res.out_truncated, detail, sizeof(detail));
    const char *sep = detail[0] ? ": " : "";

    if (res.timed_out) {
        rc = -EIO;
        snprintf(err, errsz, "dns-01 hook %s %s timed out after %u s%s%s", argv[0], action,
                 timeout_s, sep, detail);
    } else if (res.term_signal) {
        rc = -EIO;
        const char *sig = sigabbrev_np(res.term_signal);
        snprintf(err, errsz, "dns-01 hook %s %s killed by signal %d (SIG%s)%s%s", argv[0], action,
                 res.term_signal, sig ? sig : "?", sep, detail);
    } else if (res.exit_status != 0) {
        rc = -EIO;
        snprintf(err, errsz, "dns-01 hook %s %s exited with status %d%s%s", argv[0], action,
                 res.exit_status, sep, detail);
    } else {
        rc = 0;
    }
out:
    spawn_result_free(&res);
    free(argv); /* the words belong to WORDS */
    cmdline_free(words);
    return rc;
}
