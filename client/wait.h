/* --wait: polling the daemon until an asynchronous operation (an order) has an outcome, bounded
 * by a timeout on the monotonic clock, so a wall-clock jump neither ends a wait early nor makes
 * it endless. */
#ifndef CERTCTL_WAIT_H
#define CERTCTL_WAIT_H

#include <jansson.h>
#include <stdbool.h>

#include "certctl.h"

/* How often a wait asks the daemon. */
#define WAIT_POLL_MS 250
/* --timeout when none is given, and its bounds (seconds). */
#define WAIT_DEFAULT_TIMEOUT_S 300
#define WAIT_MAX_TIMEOUT_S 604800L

enum wait_verdict {
    WAIT_CONTINUE, /* no outcome yet: poll again */
    WAIT_SUCCEEDED,
    WAIT_FAILED,
};

/* Decides from one polled document DOC (a JSON object) whether the wait is over. */
typedef enum wait_verdict (*wait_check_fn)(const json_t *doc, void *arg);

struct wait_spec {
    long timeout_s;      /* > 0 */
    wait_check_fn check; /* called with each document and ARG */
    void *arg;
};

enum wait_outcome {
    WAIT_OUTCOME_SUCCEEDED, /* check said WAIT_SUCCEEDED */
    WAIT_OUTCOME_FAILED,    /* check said WAIT_FAILED */
    WAIT_OUTCOME_TIMEOUT,   /* the deadline passed first */
    WAIT_OUTCOME_ERROR,     /* a request failed (already reported) */
};

/*
 * Polls GET PATH every WAIT_POLL_MS until SPEC->check decides or SPEC->timeout_s seconds have
 * passed since the call; each request is cut off at the deadline too. Sets *LAST to the last
 * document received (a new reference, or NULL when none arrived) for the caller to show, and
 * for WAIT_OUTCOME_ERROR *ERROR_EXIT to the exit code of the failed request. Prints nothing
 * but request errors: the caller says what the outcome means.
 */
enum wait_outcome wait_poll(struct certctl *ctx, const char *path, const struct wait_spec *spec,
                            json_t **last, int *error_exit);

/*
 * Reads a --timeout value VAL into *TIMEOUT_S (1..WAIT_MAX_TIMEOUT_S). Returns CERTCTL_EXIT_OK,
 * or reports a usage error and returns CERTCTL_EXIT_USAGE.
 */
int wait_parse_timeout(const struct certctl *ctx, const char *val, long *timeout_s);

#endif
