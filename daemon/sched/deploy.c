/*
 * Deploy hooks (sched/deploy.h): the configured commands run after a certificate is stored, with
 * the certificate described in the environment, each run recorded in the audit log.
 */
#include "sched/deploy.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/jsonutil.h"
#include "core/cmdline.h"
#include "core/config.h"
#include "core/log.h"
#include "core/spawn.h"
#include "store/store.h"

/* What spawn_run keeps of each of stdout and stderr. */
#define DEPLOY_MAX_OUTPUT (8 * 1024)
/* What of that goes into the event: enough to see why a hook failed, small enough that a chatty
 * hook cannot bloat the audit log (the store caps a detail at 64 KiB). */
#define DEPLOY_EVENT_OUTPUT (2 * 1024)
/* What of stderr goes into a debug log line. */
#define DEPLOY_LOG_OUTPUT 400
/* The default of [renewal] deploy_timeout, for a configuration not made by config_load. */
#define DEPLOY_DEFAULT_TIMEOUT 300

#define DEPLOY_ENV_COUNT 9

enum hook_kind { HOOK_GLOBAL, HOOK_DOMAIN };

static const char *const hook_kind_name[] = {[HOOK_GLOBAL] = "global", [HOOK_DOMAIN] = "domain"};

/* "KEY=VALUE" in a new string, or NULL on allocation failure. */
static char *env_entry(const char *key, const char *value)
{
    size_t n = strlen(key) + 1 + strlen(value) + 1;
    char *e = malloc(n);
    if (e)
        snprintf(e, n, "%s=%s", key, value);
    return e;
}

/* "CERTD_NAMES=primary alt1 alt2 ...": the primary first whether or not C->names starts with it,
 * and not repeated. */
static char *names_entry(const struct deploy_cert *c)
{
    static const char key[] = "CERTD_NAMES=";
    size_t n = sizeof(key) + strlen(c->domain);
    for (size_t i = 0; c->names && i < c->name_count; i++) {
        if (c->names[i])
            n += 1 + strlen(c->names[i]);
    }
    char *e = malloc(n);
    if (!e)
        return NULL;
    size_t o = (size_t)snprintf(e, n, "%s%s", key, c->domain);
    for (size_t i = 0; c->names && i < c->name_count; i++) {
        if (c->names[i] && strcmp(c->names[i], c->domain) != 0)
            o += (size_t)snprintf(e + o, n - o, " %s", c->names[i]);
    }
    return e;
}

static void env_free(char **envp)
{
    for (size_t i = 0; envp && envp[i]; i++)
        free(envp[i]);
}

/* Fills ENVP (DEPLOY_ENV_COUNT + 1 slots, NULL-terminated) as deploy.h documents. 0 or -ENOMEM
 * (ENVP then freed). */
static int env_build(const struct config *cfg, const struct deploy_cert *c,
                     char *envp[DEPLOY_ENV_COUNT + 1])
{
    char not_before[JSON_TIME_SIZE], not_after[JSON_TIME_SIZE];
    size_t n = 0;

    /* An unformattable time (outside years 0..9999) leaves an empty string, which a hook can
     * tell from a time; the certificate came from our own parser, so this does not happen. */
    json_time_format(c->not_before, not_before);
    json_time_format(c->not_after, not_after);

    memset(envp, 0, (DEPLOY_ENV_COUNT + 1) * sizeof(*envp));
    /* Same fixed PATH as the dns-01 hook: nothing of the daemon's environment leaks. */
    envp[n++] = env_entry("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
    envp[n++] = env_entry("CERTD_DOMAIN", c->domain);
    envp[n++] = names_entry(c);
    envp[n++] = env_entry("CERTD_SERIAL", c->serial ? c->serial : "");
    envp[n++] = env_entry("CERTD_NOT_BEFORE", not_before);
    envp[n++] = env_entry("CERTD_NOT_AFTER", not_after);
    envp[n++] = env_entry("CERTD_FINGERPRINT", c->fingerprint_sha256 ? c->fingerprint_sha256 : "");
    envp[n++] = env_entry("CERTD_EVENT", c->renewed ? "renewed" : "issued");
    envp[n++] = env_entry("CERTD_SOCKET", cfg->daemon.socket ? cfg->daemon.socket : "");
    for (size_t i = 0; i < n; i++) {
        if (!envp[i]) {
            /* free the others, which sit after the hole too */
            for (size_t j = 0; j < n; j++)
                free(envp[j]);
            memset(envp, 0, (DEPLOY_ENV_COUNT + 1) * sizeof(*envp));
            return -ENOMEM;
        }
    }
    return 0;
}

/* The first DEPLOY_EVENT_OUTPUT bytes of captured output as a JSON string. A NUL cannot pass
 * through the C string json_string_lossy takes, so it becomes 0xFF, which is never UTF-8 and so
 * is replaced by U+FFFD like every other bad byte (a cut multi-byte character too). */
static json_t *output_json(const char *buf, size_t len)
{
    char copy[DEPLOY_EVENT_OUTPUT + 1];
    size_t n = len < DEPLOY_EVENT_OUTPUT ? len : DEPLOY_EVENT_OUTPUT;
    for (size_t i = 0; i < n; i++)
        copy[i] = buf[i] ? buf[i] : (char)0xff;
    copy[n] = '\0';
    return json_string_lossy(copy);
}

/* One printable ASCII line of the start of OUT for the debug log: whitespace and control runs
 * become one space, other non-ASCII bytes '?'. */
static void output_line(const char *out, size_t len, char *dst, size_t dstsz)
{
    size_t n = 0;
    bool space = false;
    for (size_t i = 0; i < len && n + 2 < dstsz; i++) {
        unsigned char ch = (unsigned char)out[i];
        if (ch <= 0x20 || ch == 0x7f) {
            space = n > 0;
            continue;
        }
        if (space)
            dst[n++] = ' ';
        space = false;
        dst[n++] = ch < 0x80 ? (char)ch : '?';
    }
    dst[n] = '\0';
}

/* Records the run in the audit log. ERROR is set when the hook could not be started (RES then
 * empty). */
static void record(struct store *st, const struct deploy_cert *c, enum hook_kind kind, bool ok,
                   const struct spawn_result *res, const char *error)
{
    bool ran = !error;
    bool exited = ran && !res->timed_out && res->term_signal == 0;
    json_t *detail = json_pack(
        "{s:s, s:o, s:o, s:b, s:o, s:o}", "hook", hook_kind_name[kind], "exit_status",
        exited ? json_integer(res->exit_status) : json_null(), "signal",
        ran && res->term_signal ? json_integer(res->term_signal) : json_null(), "timed_out",
        ran && res->timed_out, "stdout", output_json(ran ? res->out : "", ran ? res->out_len : 0),
        "stderr", output_json(ran ? res->err : "", ran ? res->err_len : 0));
    if (detail && error)
        json_object_set_new(detail, "error", json_string_lossy(error));
    char *text = detail ? json_dumps(detail, JSON_COMPACT) : NULL;
    json_decref(detail);
    if (!text) {
        log_error("%s: cannot record the %s deploy hook's run: out of memory", c->domain,
                  hook_kind_name[kind]);
        return;
    }
    struct store_event_in ev = {.type = ok ? "deploy.succeeded" : "deploy.failed",
                                .domain = c->domain,
                                .actor = "certd",
                                .detail_json = text};
    int r = store_event_add(st, &ev, NULL);
    if (r < 0)
        log_error("%s: cannot record the %s deploy hook's run: %s", c->domain, hook_kind_name[kind],
                  strerror(-r));
    free(text);
}

/* Runs one hook and records it. Returns true when it succeeded. The command line itself is
 * never logged: it may carry a token; its first word (a path) is. */
static bool run_hook(const struct config *cfg, struct store *st, const struct deploy_cert *c,
                     enum hook_kind kind, const char *cmd, char *const envp[])
{
    const char *which = hook_kind_name[kind];
    char **argv = NULL;
    size_t argc = 0;
    struct spawn_result res = {0};
    char why[256], error[320] = "";
    bool ok = false;

    int r = cmdline_split(cmd, &argv, &argc, why, sizeof(why));
    if (r < 0) {
        /* config_load checked it, so only a configuration built another way gets here */
        snprintf(error, sizeof(error), "invalid command line: %s",
                 r == -ENOMEM ? "out of memory" : why);
        log_warning("%s: %s deploy hook not run: %s", c->domain, which, error);
        goto out;
    }
    unsigned timeout_s =
        cfg->renewal.deploy_timeout ? cfg->renewal.deploy_timeout : DEPLOY_DEFAULT_TIMEOUT;
    unsigned timeout_ms = timeout_s > UINT_MAX / 1000 ? UINT_MAX : timeout_s * 1000;
    log_debug("%s: running %s deploy hook %s", c->domain, which, argv[0]);
    r = spawn_run(argv, envp, timeout_ms, DEPLOY_MAX_OUTPUT, &res);
    if (r < 0) {
        snprintf(error, sizeof(error), "cannot run %s: %s", argv[0], strerror(-r));
        log_warning("%s: %s deploy hook failed: %s", c->domain, which, error);
        goto out;
    }

    if (res.timed_out) {
        log_warning("%s: %s deploy hook %s timed out after %u s", c->domain, which, argv[0],
                    timeout_s);
    } else if (res.term_signal) {
        const char *sig = sigabbrev_np(res.term_signal);
        log_warning("%s: %s deploy hook %s killed by signal %d (SIG%s)", c->domain, which, argv[0],
                    res.term_signal, sig ? sig : "?");
    } else if (res.exit_status != 0) {
        log_warning("%s: %s deploy hook %s exited with status %d", c->domain, which, argv[0],
                    res.exit_status);
    } else {
        ok = true;
        log_notice("%s: %s deploy hook %s succeeded", c->domain, which, argv[0]);
    }
    /* The output may hold anything the hook prints (paths, tokens): debug only, and in the
     * event, which only admins can read. */
    if (res.err_len && log_get_level() >= LOG_LVL_DEBUG) {
        char line[DEPLOY_LOG_OUTPUT];
        output_line(res.err, res.err_len, line, sizeof(line));
        log_debug("%s: %s deploy hook stderr: %s%s", c->domain, which, line,
                  res.err_len >= sizeof(line) - 1 || res.err_truncated ? "..." : "");
    }
out:
    record(st, c, kind, ok, &res, error[0] ? error : NULL);
    spawn_result_free(&res);
    cmdline_free(argv);
    return ok;
}

int deploy_run(const struct config *cfg, struct store *st, const struct deploy_cert *c)
{
    char *envp[DEPLOY_ENV_COUNT + 1];
    int failed = 0;

    if (!cfg || !st || !c || !c->domain)
        return -EINVAL;
    const struct config_domain *d = config_find_domain(cfg, c->domain);
    const char *hooks[] = {
        [HOOK_GLOBAL] = cfg->renewal.deploy_hook, [HOOK_DOMAIN] = d ? d->deploy_hook : NULL};
    if (!hooks[HOOK_GLOBAL] && !hooks[HOOK_DOMAIN])
        return 0;

    if (env_build(cfg, c, envp) < 0) {
        /* nothing could be recorded either; the caller still learns the hooks did not run */
        log_error("%s: deploy hooks not run: out of memory", c->domain);
        return (hooks[HOOK_GLOBAL] ? 1 : 0) + (hooks[HOOK_DOMAIN] ? 1 : 0);
    }
    /* One after the other, global first: a domain hook may rely on what the global one did. */
    for (size_t i = 0; i < sizeof(hooks) / sizeof(hooks[0]); i++) {
        if (hooks[i] && !run_hook(cfg, st, c, (enum hook_kind)i, hooks[i], envp))
            failed++;
    }
    env_free(envp);
    return failed;
}
