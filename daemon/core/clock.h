/* The one clock: every "now" in the daemon comes from here, so the places that decide by time
 * can be found, and tests of decisions take their time as a parameter instead. */
#ifndef CERTD_CORE_CLOCK_H
#define CERTD_CORE_CLOCK_H

#include <stdint.h>

/* Unix seconds (wall clock: certificate validity is wall-clock time). */
int64_t clock_now(void);

/* Milliseconds of a monotonic clock, for measuring waits and durations. */
int64_t clock_monotonic_ms(void);

#endif
