#include "wait.h"

#include <errno.h>
#include <stdint.h>
#include <time.h>

#include "api.h"

/* A request started this close to the deadline still gets this long, so the last poll is not
 * doomed from the start; the wait may overrun its timeout by at most this much. */
#define WAIT_MIN_REQUEST_MS 100

static int64_t now_ms(void)
{
    struct timespec ts;
    /* CLOCK_MONOTONIC cannot fail on Linux with a valid pointer. */
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Sleeps until monotonic time UNTIL_MS; an interrupted sleep resumes towards the same end. */
static void sleep_until(int64_t until_ms)
{
    struct timespec ts = {.tv_sec = until_ms / 1000, .tv_nsec = (until_ms % 1000) * 1000000};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
    }
}

enum wait_outcome wait_poll(struct certctl *ctx, const char *path, const struct wait_spec *spec,
                            json_t **last, int *error_exit)
{
    int64_t deadline = now_ms() + (int64_t)spec->timeout_s * 1000;
    /* The deadline alone ends the loop; the poll count is a second, independent bound. */
    int64_t max_polls = (int64_t)spec->timeout_s * (1000 / WAIT_POLL_MS) + 2;
    enum wait_outcome outcome = WAIT_OUTCOME_TIMEOUT;
    json_t *doc = NULL;

    *last = NULL;
    *error_exit = CERTCTL_EXIT_OK;
    for (int64_t polls = 0; polls < max_polls; polls++) {
        int64_t start = now_ms();
        int64_t left = deadline - start;
        if (left <= 0)
            break;
        json_t *got = NULL;
        int rc = api_poll_object(
            ctx, path, (long)(left > WAIT_MIN_REQUEST_MS ? left : WAIT_MIN_REQUEST_MS), &got);
        if (rc == CERTCTL_EXIT_TIMEOUT)
            break; /* the request ran into the deadline */
        if (rc != CERTCTL_EXIT_OK) {
            *error_exit = rc;
            outcome = WAIT_OUTCOME_ERROR;
            break;
        }
        json_decref(doc);
        doc = got;
        enum wait_verdict v = spec->check(doc, spec->arg);
        if (v == WAIT_SUCCEEDED) {
            outcome = WAIT_OUTCOME_SUCCEEDED;
            break;
        }
        if (v == WAIT_FAILED) {
            outcome = WAIT_OUTCOME_FAILED;
            break;
        }
        int64_t next = start + WAIT_POLL_MS;
        sleep_until(next < deadline ? next : deadline);
    }
    *last = doc;
    return outcome;
}

int wait_parse_timeout(const struct certctl *ctx, const char *val, long *timeout_s)
{
    if (!args_parse_long(val, 1, WAIT_MAX_TIMEOUT_S, timeout_s))
        return usage_error(ctx, "--timeout needs a number of seconds from 1 to %ld, not '%s'",
                           WAIT_MAX_TIMEOUT_S, val);
    return CERTCTL_EXIT_OK;
}
