/*
 * Renewal planning (see planner.h). Everything here is a pure function of its arguments.
 *
 * Times are int64_t, but a difference of two of them may not fit one (a bogus not_before far in
 * the past), so lifetimes and spans are computed as uint64_t and fractions of them with exact
 * integer arithmetic: floating point would round 60% of a 90-day lifetime to a second early,
 * and the window ends are what the tests pin down.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "sched/planner.h"

#define DAY 86400

/* Default window, in hundredths of the lifetime (Let's Encrypt's renewal guidance). */
#define LONG_WINDOW_START 60
#define LONG_WINDOW_SPAN 7
#define SHORT_WINDOW_START 45
#define SHORT_WINDOW_SPAN 5
#define SHORT_LIFETIME (10 * DAY)

#define ARI_RECHECK_DEFAULT (12 * 3600)
#define ARI_RECHECK_MIN 60
#define ARI_RECHECK_MAX DAY

#define BACKOFF_REF_LIFETIME (90 * DAY)
#define BACKOFF_MIN 10

#define EXPIRING_LONG_LIFETIME (30 * DAY)
#define EXPIRING_LONG_MARGIN (7 * DAY)

/* The renew_before fraction grammar, the same as config.c accepts so a loaded value parses. */
#define FRACTION_MAX_INT_DIGITS 3
#define FRACTION_MAX_FRAC_DIGITS 9

/* B - A for A < B, exact whatever the two values. */
static uint64_t span_of(int64_t a, int64_t b)
{
    return (uint64_t)b - (uint64_t)a;
}

/* BASE + OFF, for callers that know the sum lies between BASE and some int64_t. */
static int64_t add_offset(int64_t base, uint64_t off)
{
    if (off <= (uint64_t)INT64_MAX)
        return base + (int64_t)off;
    /* only reachable with base < 0, so base + INT64_MAX cannot overflow */
    return (base + INT64_MAX) + (int64_t)(off - (uint64_t)INT64_MAX);
}

/* BASE - OFF, for callers that know the result lies between some int64_t and BASE. */
static int64_t sub_offset(int64_t base, uint64_t off)
{
    if (off <= (uint64_t)INT64_MAX)
        return base - (int64_t)off;
    return (base - INT64_MAX) - (int64_t)(off - (uint64_t)INT64_MAX);
}

/* A + B for B >= 0, saturating at INT64_MAX. */
static int64_t sat_add(int64_t a, int64_t b)
{
    return a > INT64_MAX - b ? INT64_MAX : a + b;
}

/* floor(X * NUM / DEN) for small NUM <= DEN, without overflowing for any X. */
static uint64_t scale(uint64_t x, uint64_t num, uint64_t den)
{
    return x / den * num + x % den * num / den;
}

/* floor(X * RND / 2^32): X times u = RND / 2^32 in [0, 1), exact for any X. */
static uint64_t mul_u(uint64_t x, uint32_t rnd)
{
    uint64_t hi = x >> 32, lo = x & UINT32_MAX;
    return hi * rnd + ((lo * rnd) >> 32);
}

/* A draw in [0, SPAN], both ends included: RND 0 gives 0, RND UINT32_MAX gives SPAN for any
 * span below 2^32 (every span this file draws from). */
static uint64_t draw(uint64_t span, uint32_t rnd)
{
    return span == UINT64_MAX ? mul_u(span, rnd) : mul_u(span + 1, rnd);
}

/* The digits at *P (advanced past them), at most MAX, appended to *V: their count, or -1 when
 * there are more than MAX. */
static int take_digits(const char **p, int max, uint64_t *v)
{
    int n = 0;
    for (; **p >= '0' && **p <= '9'; (*p)++, n++) {
        if (n == max)
            return -1;
        *v = *v * 10 + (uint64_t)(**p - '0');
    }
    return n;
}

/*
 * The fraction form, "D.D" or "D%" / "D.D%" (at most 3 digits before the point, 9 after): 1 and
 * the value in *F, 0 when S is not of that form (then it may be a duration), -EINVAL when it
 * is but malformed. Parsed by hand: strtod would take "inf", hex, exponents and the locale's
 * decimal point. The value is one correctly rounded division (numerator < 10^12 < 2^53,
 * denominator a power of ten <= 10^11, both exact as doubles), so "0.33" equals the literal 0.33.
 */
static int parse_fraction(const char *s, double *f)
{
    const char *p = s;
    uint64_t num = 0, den = 1;
    bool dot, percent;

    int int_digits = take_digits(&p, FRACTION_MAX_INT_DIGITS, &num);
    dot = *p == '.';
    if (dot) {
        p++;
        int frac_digits = take_digits(&p, FRACTION_MAX_FRAC_DIGITS, &num);
        if (frac_digits <= 0)
            return -EINVAL;
        while (frac_digits-- > 0)
            den *= 10;
    }
    percent = *p == '%';
    if (percent) {
        p++;
        den *= 100;
    }
    if (!dot && !percent)
        return 0;
    if (int_digits <= 0 || *p)
        return -EINVAL;
    *f = (double)num / (double)den;
    return 1;
}

int planner_parse_renew_before(const char *s, struct renewal_policy *out)
{
    struct renewal_policy pol = {0};
    double f;
    uint64_t secs;

    if (!out)
        return -EINVAL;
    /* NULL is what the configuration holds when renew_before is unset: the default, as "". */
    if (!s || !*s)
        goto done;

    int r = parse_fraction(s, &f);
    if (r < 0)
        return -EINVAL;
    if (r > 0) {
        if (!(f > 0 && f < 1))
            return -EINVAL;
        pol.before_fraction = f;
        goto done;
    }
    /* config_parse_duration caps at 2^32 - 1 seconds, so the value fits int64_t */
    if (config_parse_duration(s, &secs) < 0 || secs == 0)
        return -EINVAL;
    pol.before_seconds = (int64_t)secs;
done:
    *out = pol;
    return 0;
}

int planner_policy_for(const char *domain_setting, const char *global_setting,
                       struct renewal_policy *out)
{
    if (!out)
        return -EINVAL;
    /* A domain's own setting wins over the global one, even when it is the same value. */
    const char *in_force = domain_setting ? domain_setting : global_setting;
    if (planner_parse_renew_before(in_force, out) < 0) {
        *out = (struct renewal_policy){0};
        return -EINVAL;
    }
    return 0;
}

int64_t planner_renewal_time(int64_t not_before, int64_t not_after,
                             const struct renewal_policy *policy, uint32_t rnd)
{
    if (not_after <= not_before)
        return not_before;
    uint64_t life = span_of(not_before, not_after);

    if (policy && policy->before_seconds != 0) {
        /* a negative duration would renew after expiry: clamped to NOT_AFTER like the rest */
        if (policy->before_seconds < 0)
            return not_after;
        if ((uint64_t)policy->before_seconds >= life)
            return not_before;
        return not_after - policy->before_seconds;
    }
    /* !(f <= 0) so a NaN (never produced by the parser) counts as set and clamps below */
    if (policy && !(policy->before_fraction <= 0)) {
        /* rounded to the nearest second by hand: roundl would pull in libm for one call */
        long double off = (long double)policy->before_fraction * (long double)life + 0.5L;
        if (!(off < (long double)life))
            return not_before;
        return sub_offset(not_after, (uint64_t)off);
    }

    /* Default: not_before + L * (start + span * u), u = rnd / 2^32, in hundredths. */
    uint64_t start = LONG_WINDOW_START, span = LONG_WINDOW_SPAN;
    if (life < SHORT_LIFETIME) {
        start = SHORT_WINDOW_START;
        span = SHORT_WINDOW_SPAN;
    }
    uint64_t off = scale(life, start, 100) + mul_u(scale(life, span, 100), rnd);
    return add_offset(not_before, off);
}

int64_t planner_ari_time(int64_t start, int64_t end, int64_t now, uint32_t rnd)
{
    /* RFC 9773 §4.2: a uniformly random time in the window; renew at once if it has passed. */
    if (end <= now || end < start)
        return now;
    int64_t lo = start > now ? start : now;
    return add_offset(lo, draw(span_of(lo, end), rnd));
}

int64_t planner_ari_recheck(int64_t retry_after, int64_t now, uint32_t rnd)
{
    int64_t delay;

    /* RFC 9773 §4.3: follow Retry-After within reasonable bounds; otherwise about twice a day,
     * jittered so that clients started together do not poll together. */
    if (retry_after < 0)
        delay = ARI_RECHECK_DEFAULT + (int64_t)draw(ARI_RECHECK_DEFAULT / 10, rnd);
    else if (retry_after < ARI_RECHECK_MIN)
        delay = ARI_RECHECK_MIN;
    else if (retry_after > ARI_RECHECK_MAX)
        delay = ARI_RECHECK_MAX;
    else
        delay = retry_after;
    return sat_add(now, delay);
}

int64_t planner_backoff(int failures, int64_t retry_after, int64_t lifetime, int64_t not_after,
                        int64_t now, uint32_t rnd)
{
    /* Let's Encrypt's integration guide: about 1 min, 10 min, 100 min, then daily. */
    static const int64_t steps[] = {60, 600, 6000, DAY};
    size_t nsteps = sizeof(steps) / sizeof(steps[0]);
    size_t i = failures < 1 ? 0 : (size_t)failures - 1;
    int64_t step = steps[i < nsteps ? i : nsteps - 1];
    int64_t delay = step + (int64_t)draw((uint64_t)step / 10, rnd);

    /* Short-lived certificates need proportionally more tries within their lifetime. */
    if (lifetime > 0 && lifetime < BACKOFF_REF_LIFETIME) {
        /* delay <= 95040 and lifetime < 7776000: the product stays far below 2^63 */
        delay = delay * lifetime / BACKOFF_REF_LIFETIME;
        if (delay < BACKOFF_MIN)
            delay = BACKOFF_MIN;
    }
    /* Keep several tries before the certificate still serving expires. */
    if (not_after > now) {
        uint64_t quarter = span_of(now, not_after) / 4;
        int64_t cap = quarter < BACKOFF_MIN ? BACKOFF_MIN : (int64_t)quarter;
        if (delay > cap)
            delay = cap;
    }
    return retry_after > delay ? retry_after : delay;
}

int64_t planner_expiring_at(int64_t not_before, int64_t not_after)
{
    /* not_before >= not_after is no lifetime at all: nothing left to warn ahead of */
    if (not_after <= not_before)
        return not_after;
    uint64_t life = span_of(not_before, not_after);
    uint64_t margin = life >= EXPIRING_LONG_LIFETIME ? EXPIRING_LONG_MARGIN : life / 6;
    /* margin < life, so the result lies between not_before and not_after */
    return sub_offset(not_after, margin);
}

bool planner_is_expiring(int64_t not_before, int64_t not_after, int64_t now)
{
    /* Defined through planner_expiring_at so the two never disagree by a second. */
    return now >= planner_expiring_at(not_before, not_after);
}
