/*
 * Crash points for tests: a test build (CMake option CERTD_TEST_HOOKS) kills the daemon with
 * SIGKILL at the step named by the environment variable CERTD_TEST_CRASH_AT, so the tests can
 * prove that a restart resumes from every step. In a normal build this compiles to nothing.
 */
#ifndef CERTD_CORE_TESTHOOK_H
#define CERTD_CORE_TESTHOOK_H

#ifdef CERTD_TEST_HOOKS
void testhook_crash_point(const char *step);
#else
static inline void testhook_crash_point(const char *step)
{
    (void)step;
}
#endif

#endif
