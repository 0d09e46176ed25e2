#include "core/testhook.h"

#ifdef CERTD_TEST_HOOKS
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"

void testhook_crash_point(const char *step)
{
    const char *want = getenv("CERTD_TEST_CRASH_AT");
    if (want && strcmp(want, step) == 0) {
        log_warning("test hook: crashing at %s", step);
        kill(getpid(), SIGKILL);
    }
}
#else
/* ISO C forbids an empty translation unit. */
typedef int testhook_unused;
#endif
