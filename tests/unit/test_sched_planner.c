#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "sched/planner.h"

#define DAY INT64_C(86400)
#define NB INT64_C(1767225600)    /* 2026-01-01T00:00:00Z */
#define Y2100 INT64_C(4102444800) /* 2100-01-01T00:00:00Z */
#define RMAX UINT32_MAX
#define RMID UINT32_C(0x80000000)

/* A fixed xorshift32 sequence: the "random" values are the same on every run. */
static uint32_t next_rnd(uint32_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 17;
    *x ^= *x << 5;
    return *x;
}

static const struct renewal_policy no_policy = {0};

/* ---- planner_renewal_time, default window ---- */

static void test_default_90_day(void **state)
{
    int64_t na = NB + 90 * DAY;

    /* 60% of 90 days is day 54; 67% is day 60.3, minus the second u < 1 leaves */
    assert_int_equal(planner_renewal_time(NB, na, NULL, 0), NB + 54 * DAY);
    assert_int_equal(planner_renewal_time(NB, na, &no_policy, 0), NB + 54 * DAY);
    assert_int_equal(planner_renewal_time(NB, na, NULL, RMAX), NB + 5209919);
    /* u = 1/2: 54 days + 3.5% of 90 days */
    assert_int_equal(planner_renewal_time(NB, na, NULL, RMID), NB + 54 * DAY + 272160);
}

static void test_default_short_lifetime(void **state)
{
    int64_t na = NB + 6 * DAY;

    /* 45% of 6 days = 2.7 days, 50% = 3 days (exclusive) */
    assert_int_equal(planner_renewal_time(NB, na, NULL, 0), NB + 233280);
    assert_int_equal(planner_renewal_time(NB, na, NULL, RMAX), NB + 3 * DAY - 1);
    assert_int_equal(planner_renewal_time(NB, na, NULL, RMID), NB + 233280 + 12960);

    /* 10 days exactly is a long lifetime; a second less is a short one */
    assert_int_equal(planner_renewal_time(NB, NB + 10 * DAY, NULL, 0), NB + 6 * DAY);
    assert_int_equal(planner_renewal_time(NB, NB + 10 * DAY - 1, NULL, 0), NB + 388799);
    assert_int_equal(planner_renewal_time(NB, NB + 10 * DAY - 1, NULL, RMAX), NB + 388799 + 43198);

    /* a 1-minute certificate: between second 27 and 30 */
    assert_int_equal(planner_renewal_time(NB, NB + 60, NULL, 0), NB + 27);
    assert_int_equal(planner_renewal_time(NB, NB + 60, NULL, RMAX), NB + 29);
}

static void test_default_no_lifetime(void **state)
{
    assert_int_equal(planner_renewal_time(NB, NB, NULL, RMAX), NB);
    assert_int_equal(planner_renewal_time(NB, NB - DAY, NULL, RMAX), NB);
    struct renewal_policy p = {.before_seconds = DAY};
    assert_int_equal(planner_renewal_time(NB, NB - DAY, &p, 0), NB);
}

static void test_default_spread(void **state)
{
    struct {
        int64_t life, lo, hi;
    } cases[] = {
        {90 * DAY, 54 * DAY, 5209919},
        {6 * DAY, 233280, 3 * DAY - 1},
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        int64_t lo = NB + cases[c].lo, hi = NB + cases[c].hi;
        int64_t min = INT64_MAX, max = INT64_MIN;
        unsigned buckets[10] = {0};
        uint32_t x = 2463534242u;

        for (int i = 0; i < 1000; i++) {
            int64_t t = planner_renewal_time(NB, NB + cases[c].life, NULL, next_rnd(&x));
            if (t < lo || t > hi)
                print_error("case %zu draw %d: %lld outside [%lld, %lld]\n", c, i, (long long)t,
                            (long long)lo, (long long)hi);
            assert_in_range(t, lo, hi);
            min = t < min ? t : min;
            max = t > max ? t : max;
            buckets[(t - lo) * 10 / (hi - lo + 1)]++;
        }
        /* the draws cover the window, not one corner of it */
        assert_true(min - lo < (hi - lo) / 20);
        assert_true(hi - max < (hi - lo) / 20);
        for (int b = 0; b < 10; b++) {
            if (buckets[b] < 50)
                print_error("case %zu bucket %d: %u draws\n", c, b, buckets[b]);
            assert_true(buckets[b] >= 50);
        }
    }
}

static void test_default_extreme_times(void **state)
{
    /* year 2100 */
    assert_int_equal(planner_renewal_time(Y2100, Y2100 + 90 * DAY, NULL, 0), Y2100 + 54 * DAY);
    assert_int_equal(planner_renewal_time(Y2100, Y2100 + 90 * DAY, NULL, RMAX), Y2100 + 5209919);
    /* a lifetime wider than int64_t holds (values computed exactly with Python) */
    assert_int_equal(planner_renewal_time(INT64_MIN, INT64_MAX, NULL, 0),
                     INT64_C(1844674407370955161));
    assert_int_equal(planner_renewal_time(INT64_MIN, INT64_MAX, NULL, RMAX),
                     INT64_C(3135946492229976063));
    struct renewal_policy p = {.before_fraction = 0.5};
    int64_t t = planner_renewal_time(INT64_MIN, INT64_MAX, &p, 0);
    assert_true(t > -4096 && t < 4096);
}

/* ---- planner_renewal_time with a policy ---- */

static void test_policy_duration(void **state)
{
    int64_t na = NB + 90 * DAY;
    struct renewal_policy p = {.before_seconds = 30 * DAY};

    assert_int_equal(planner_renewal_time(NB, na, &p, 0), NB + 60 * DAY);
    assert_int_equal(planner_renewal_time(NB, na, &p, RMAX), NB + 60 * DAY); /* no jitter */
    p.before_seconds = 90 * DAY;
    assert_int_equal(planner_renewal_time(NB, na, &p, 0), NB);
    p.before_seconds = 365 * DAY; /* longer than the lifetime: at once */
    assert_int_equal(planner_renewal_time(NB, na, &p, 0), NB);
    p.before_seconds = 1;
    assert_int_equal(planner_renewal_time(NB, na, &p, 0), na - 1);
    p.before_seconds = -DAY; /* never from the parser; still no later than expiry */
    assert_int_equal(planner_renewal_time(NB, na, &p, 0), na);
    /* 30 days before a 6-day certificate's expiry is its start */
    p.before_seconds = 30 * DAY;
    assert_int_equal(planner_renewal_time(NB, NB + 6 * DAY, &p, 0), NB);
}

static void test_policy_fraction(void **state)
{
    int64_t na = NB + 90 * DAY;
    struct renewal_policy p = {.before_fraction = 0.33};

    assert_int_equal(planner_renewal_time(NB, na, &p, 0), na - 2566080);
    assert_int_equal(planner_renewal_time(NB, na, &p, RMAX), na - 2566080);
    p.before_fraction = 0.5;
    assert_int_equal(planner_renewal_time(NB, NB + 6 * DAY, &p, 0), NB + 3 * DAY);
    p.before_fraction = 0.999999999;
    assert_int_equal(planner_renewal_time(NB, na, &p, 0), NB + 0); /* 0.0078 s: rounds to 0 */
    p.before_fraction = 1.5; /* never from the parser: clamped to the start */
    assert_int_equal(planner_renewal_time(NB, na, &p, 0), NB);

    /* parsed forms give the same times */
    assert_int_equal(planner_parse_renew_before("33%", &p), 0);
    assert_int_equal(planner_renewal_time(NB, na, &p, 0), na - 2566080);
    assert_int_equal(planner_parse_renew_before("30d", &p), 0);
    assert_int_equal(planner_renewal_time(NB, na, &p, 0), NB + 60 * DAY);
    assert_int_equal(planner_parse_renew_before("", &p), 0);
    assert_int_equal(planner_renewal_time(NB, na, &p, 0), NB + 54 * DAY);
}

/* ---- planner_parse_renew_before ---- */

static void expect_seconds(const char *s, int64_t secs)
{
    struct renewal_policy p = {.before_seconds = -7, .before_fraction = 0.7};
    int r = planner_parse_renew_before(s, &p);
    if (r != 0)
        print_error("<%s>: r=%d\n", s, r);
    assert_int_equal(r, 0);
    assert_int_equal(p.before_seconds, secs);
    assert_true(p.before_fraction == 0);
}

static void expect_fraction(const char *s, double f)
{
    struct renewal_policy p = {.before_seconds = -7, .before_fraction = 0.7};
    int r = planner_parse_renew_before(s, &p);
    if (r != 0 || p.before_fraction != f)
        print_error("<%s>: r=%d f=%.17g, wanted %.17g\n", s, r, p.before_fraction, f);
    assert_int_equal(r, 0);
    assert_int_equal(p.before_seconds, 0);
    assert_true(p.before_fraction == f); /* exactly: the same rounding as the literal */
}

static void expect_invalid(const char *s)
{
    struct renewal_policy p = {.before_seconds = -7, .before_fraction = 0.7};
    int r = planner_parse_renew_before(s, &p);
    if (r != -EINVAL)
        print_error("<%s>: r=%d, wanted -EINVAL\n", s, r);
    assert_int_equal(r, -EINVAL);
    /* left untouched on error */
    assert_int_equal(p.before_seconds, -7);
    assert_true(p.before_fraction == 0.7);
}

static void test_parse_durations(void **state)
{
    expect_seconds("30d", 30 * DAY);
    expect_seconds("12h", 12 * 3600);
    expect_seconds("3600", 3600);
    expect_seconds("90s", 90);
    expect_seconds("5m", 300);
    expect_seconds("1", 1);
    expect_seconds("49710d", 49710 * DAY); /* the largest that fits config's 32-bit seconds */
}

static void test_parse_fractions(void **state)
{
    expect_fraction("0.33", 0.33);
    expect_fraction("0.5", 0.5);
    expect_fraction("00.25", 0.25);
    expect_fraction("0.999999999", 0.999999999);
    expect_fraction("0.000000001", 0.000000001);
    expect_fraction("33%", 0.33);
    expect_fraction("12.5%", 0.125);
    expect_fraction("1%", 0.01);
    expect_fraction("99.9%", 0.999);
    expect_fraction("0.5%", 0.005);
}

static void test_parse_empty_clears(void **state)
{
    struct renewal_policy p = {.before_seconds = 5, .before_fraction = 0.5};
    assert_int_equal(planner_parse_renew_before("", &p), 0);
    assert_int_equal(p.before_seconds, 0);
    assert_true(p.before_fraction == 0);
    p.before_seconds = 5;
    p.before_fraction = 0.5;
    assert_int_equal(planner_parse_renew_before(NULL, &p), 0);
    assert_int_equal(p.before_seconds, 0);
    assert_true(p.before_fraction == 0);
    assert_int_equal(planner_parse_renew_before("30d", NULL), -EINVAL);
}

/* The domain's setting wins, then the global one, then the default; a bad one falls back. */
static void test_policy_for(void **state)
{
    (void)state;
    struct renewal_policy p = {.before_seconds = 5};
    assert_int_equal(planner_policy_for("2d", "30%", &p), 0);
    assert_int_equal(p.before_seconds, 2 * DAY);
    assert_true(p.before_fraction == 0);
    assert_int_equal(planner_policy_for(NULL, "30%", &p), 0);
    assert_int_equal(p.before_seconds, 0);
    assert_true(p.before_fraction == 0.3);
    assert_int_equal(planner_policy_for(NULL, NULL, &p), 0);
    assert_int_equal(p.before_seconds, 0);
    assert_true(p.before_fraction == 0);
    /* an empty domain setting is set: it means the default, not the global policy */
    assert_int_equal(planner_policy_for("", "30%", &p), 0);
    assert_true(p.before_fraction == 0);
    p.before_seconds = 5;
    assert_int_equal(planner_policy_for("soon", "30%", &p), -EINVAL);
    assert_int_equal(p.before_seconds, 0);
    assert_true(p.before_fraction == 0);
    assert_int_equal(planner_policy_for("2d", NULL, NULL), -EINVAL);
}

static void test_parse_errors(void **state)
{
    /* one line per group of cases */
    /* clang-format off */
    static const char *const bad[] = {
        /* zero and negatives */
        "0", "0d", "0s", "0.0", "0.000000000", "0%", "0.0%", "-1", "-30d", "-0.5", "-33%", "+30d",
        /* a fraction must be below 1 */
        "1.0", "1.5", "100%", "100.0%", "150%", "999%",
        /* malformed */
        "abc", "d", "30x", "30dd", "1h30m", "30 d", " 30d", "30d ", "0.33x", "0.33 ", " 0.33",
        "33%%", "33% ", "%", ".", ".5", "5.", "0.", "33.%", ".5%", "0..5", "0.3.3", "1e-1",
        "0x10", "inf", "nan", "0,33", "33,5%",
        /* over the length caps */
        "0.1234567890", "1000%", "0001.5%",
        /* out of range for a duration */
        "99999999999d", "4294967296", "49711d",
    };
    /* clang-format on */
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_invalid(bad[i]);
}

/* ---- planner_ari_time ---- */

static void test_ari_time(void **state)
{
    int64_t s = NB + 60 * DAY, e = NB + 62 * DAY;

    /* window ahead: its ends for the extreme draws, its middle for the middle one */
    assert_int_equal(planner_ari_time(s, e, NB, 0), s);
    assert_int_equal(planner_ari_time(s, e, NB, RMAX), e);
    assert_int_equal(planner_ari_time(s, e, NB, RMID), s + DAY);
    /* window under way: never before now */
    assert_int_equal(planner_ari_time(s, e, s + DAY, 0), s + DAY);
    assert_int_equal(planner_ari_time(s, e, s + DAY, RMAX), e);
    assert_int_equal(planner_ari_time(s, e, s + DAY, RMID), s + DAY + DAY / 2);
    /* window passed, or ending now: now */
    assert_int_equal(planner_ari_time(s, e, e, RMAX), e);
    assert_int_equal(planner_ari_time(s, e, e + 1, 0), e + 1);
    assert_int_equal(planner_ari_time(s, e, e + 5 * DAY, RMAX), e + 5 * DAY);
    /* a backwards window is nonsense: renew now */
    assert_int_equal(planner_ari_time(e, s, NB, RMAX), NB);
    /* an empty window ahead */
    assert_int_equal(planner_ari_time(s, s, NB, RMAX), s);
    assert_int_equal(planner_ari_time(s, s, NB, 0), s);

    uint32_t x = 88172645u;
    int64_t min = INT64_MAX, max = INT64_MIN, now = s + DAY / 2;
    for (int i = 0; i < 1000; i++) {
        int64_t t = planner_ari_time(s, e, now, next_rnd(&x));
        assert_in_range(t, now, e);
        min = t < min ? t : min;
        max = t > max ? t : max;
    }
    assert_true(min - now < DAY / 10);
    assert_true(e - max < DAY / 10);
}

/* ---- planner_ari_recheck ---- */

static void test_ari_recheck(void **state)
{
    int64_t now = NB;

    /* no Retry-After: 12 h plus up to 10% */
    assert_int_equal(planner_ari_recheck(-1, now, 0), now + 43200);
    assert_int_equal(planner_ari_recheck(-1, now, RMAX), now + 43200 + 4320);
    assert_int_equal(planner_ari_recheck(-1, now, RMID), now + 43200 + 2160);
    assert_int_equal(planner_ari_recheck(-42, now, 0), now + 43200);
    /* Retry-After clamped to [1 min, 1 day], no jitter */
    assert_int_equal(planner_ari_recheck(0, now, RMAX), now + 60);
    assert_int_equal(planner_ari_recheck(59, now, 0), now + 60);
    assert_int_equal(planner_ari_recheck(60, now, 0), now + 60);
    assert_int_equal(planner_ari_recheck(3600, now, RMAX), now + 3600);
    assert_int_equal(planner_ari_recheck(86400, now, 0), now + 86400);
    assert_int_equal(planner_ari_recheck(86401, now, 0), now + 86400);
    assert_int_equal(planner_ari_recheck(INT64_MAX, now, 0), now + 86400);
    /* never wraps */
    assert_int_equal(planner_ari_recheck(3600, INT64_MAX - 10, 0), INT64_MAX);

    uint32_t x = 123456789u;
    for (int i = 0; i < 1000; i++)
        assert_in_range(planner_ari_recheck(-1, now, next_rnd(&x)), now + 43200,
                        now + 43200 + 4320);
}

/* ---- planner_backoff ---- */

static void test_backoff_90_day(void **state)
{
    static const int64_t steps[] = {60, 600, 6000, 86400, 86400, 86400};
    int64_t now = NB + 30 * DAY, na = NB + 90 * DAY, life = 90 * DAY;

    for (int n = 1; n <= 6; n++) {
        int64_t s = steps[n - 1];
        assert_int_equal(planner_backoff(n, -1, life, na, now, 0), s);
        assert_int_equal(planner_backoff(n, -1, life, na, now, RMAX), s + s / 10);
        /* no certificate yet: the same */
        assert_int_equal(planner_backoff(n, -1, 0, 0, now, 0), s);
        assert_int_equal(planner_backoff(n, -1, 0, 0, now, RMAX), s + s / 10);
        uint32_t x = 362436069u;
        for (int i = 0; i < 200; i++)
            assert_in_range(planner_backoff(n, -1, life, na, now, next_rnd(&x)), s, s + s / 10);
    }
    assert_int_equal(planner_backoff(100, -1, life, na, now, 0), 86400);
    assert_int_equal(planner_backoff(INT32_MAX, -1, life, na, now, 0), 86400);
    assert_int_equal(planner_backoff(0, -1, life, na, now, 0), 60); /* treated as the first */
    /* longer lifetimes are not stretched */
    assert_int_equal(planner_backoff(4, -1, 365 * DAY, NB + 365 * DAY, now, 0), 86400);
}

static void test_backoff_short_lifetime(void **state)
{
    int64_t now = NB + DAY, life = 6 * DAY, na = NB + life;

    /* steps times 6/90, at least 10 s */
    assert_int_equal(planner_backoff(1, -1, life, na, now, 0), 10);
    assert_int_equal(planner_backoff(2, -1, life, na, now, 0), 40);
    assert_int_equal(planner_backoff(3, -1, life, na, now, 0), 400);
    assert_int_equal(planner_backoff(4, -1, life, na, now, 0), 5760);
    assert_int_equal(planner_backoff(9, -1, life, na, now, 0), 5760);
    assert_int_equal(planner_backoff(1, -1, life, na, now, RMAX), 10);
    assert_int_equal(planner_backoff(2, -1, life, na, now, RMAX), 44);
    assert_int_equal(planner_backoff(3, -1, life, na, now, RMAX), 440);
    assert_int_equal(planner_backoff(4, -1, life, na, now, RMAX), 6336);
    /* a 1-hour certificate: the daily step becomes 40 s, the others the 10 s floor */
    assert_int_equal(planner_backoff(4, -1, 3600, NB + 3600, NB, 0), 40);
    assert_int_equal(planner_backoff(3, -1, 3600, NB + 3600, NB, 0), 10);
    /* a 1-second "certificate": still 10 s, not 0 */
    assert_int_equal(planner_backoff(1, -1, 1, 0, NB, 0), 10);
}

static void test_backoff_quarter_cap(void **state)
{
    int64_t life = 90 * DAY, na = NB + life;

    /* 2 days left: no wait beyond 12 h */
    assert_int_equal(planner_backoff(4, -1, life, na, na - 2 * DAY, RMAX), 43200);
    assert_int_equal(planner_backoff(3, -1, life, na, na - 2 * DAY, 0), 6000);
    /* 1 hour left: 15 min */
    assert_int_equal(planner_backoff(3, -1, life, na, na - 3600, 0), 900);
    assert_int_equal(planner_backoff(2, -1, life, na, na - 3600, 0), 600);
    /* 30 s left: the 10 s floor */
    assert_int_equal(planner_backoff(2, -1, life, na, na - 30, 0), 10);
    assert_int_equal(planner_backoff(2, -1, life, na, na - 1, 0), 10);
    /* expired, or expiring right now: nothing left to protect */
    assert_int_equal(planner_backoff(4, -1, life, na, na, 0), 86400);
    assert_int_equal(planner_backoff(4, -1, life, na, na + DAY, 0), 86400);
    /* a 6-day certificate with 4 h left: 5760 s scaled, then capped at 1 h */
    assert_int_equal(planner_backoff(4, -1, 6 * DAY, NB + 6 * DAY, NB + 6 * DAY - 4 * 3600, 0),
                     3600);
}

static void test_backoff_retry_after(void **state)
{
    int64_t life = 90 * DAY, na = NB + life, now = NB + DAY;

    assert_int_equal(planner_backoff(1, 7200, life, na, now, 0), 7200);
    assert_int_equal(planner_backoff(2, 30, life, na, now, 0), 600); /* the step is longer */
    assert_int_equal(planner_backoff(1, 0, life, na, now, 0), 60);
    /* the CA's wish beats the lifetime scaling ... */
    assert_int_equal(planner_backoff(1, 3600, 6 * DAY, NB + 6 * DAY, now, 0), 3600);
    /* ... and the quarter rule */
    assert_int_equal(planner_backoff(4, 100000, life, na, na - 2 * DAY, 0), 100000);
    assert_int_equal(planner_backoff(1, 600, life, na, na - 60, 0), 600);
}

/* ---- planner_is_expiring / planner_expiring_at ---- */

static void expect_expiring_at(int64_t life, int64_t margin)
{
    int64_t na = NB + life, at = na - margin;

    assert_int_equal(planner_expiring_at(NB, na), at);
    assert_false(planner_is_expiring(NB, na, NB));
    assert_false(planner_is_expiring(NB, na, at - 1));
    assert_true(planner_is_expiring(NB, na, at));
    assert_true(planner_is_expiring(NB, na, na));
    assert_true(planner_is_expiring(NB, na, na + 365 * DAY));
}

static void test_expiring(void **state)
{
    expect_expiring_at(90 * DAY, 7 * DAY);
    expect_expiring_at(30 * DAY, 7 * DAY);
    expect_expiring_at(29 * DAY, 29 * DAY / 6); /* 4 d 20 h */
    expect_expiring_at(6 * DAY, DAY);
    expect_expiring_at(60, 10);
    expect_expiring_at(Y2100 - NB, 7 * DAY);

    /* a 29-day certificate with 5 days left is fine, a 30-day one is not */
    assert_false(planner_is_expiring(NB, NB + 29 * DAY, NB + 24 * DAY));
    assert_true(planner_is_expiring(NB, NB + 30 * DAY, NB + 25 * DAY));

    /* no lifetime: expiring from not_after on */
    assert_int_equal(planner_expiring_at(NB, NB), NB);
    assert_int_equal(planner_expiring_at(NB + DAY, NB), NB);
    assert_false(planner_is_expiring(NB + DAY, NB, NB - 1));
    assert_true(planner_is_expiring(NB + DAY, NB, NB));
    /* extreme values do not wrap */
    assert_int_equal(planner_expiring_at(INT64_MIN, INT64_MAX), INT64_MAX - 7 * DAY);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_90_day),
        cmocka_unit_test(test_default_short_lifetime),
        cmocka_unit_test(test_default_no_lifetime),
        cmocka_unit_test(test_default_spread),
        cmocka_unit_test(test_default_extreme_times),
        cmocka_unit_test(test_policy_duration),
        cmocka_unit_test(test_policy_fraction),
        cmocka_unit_test(test_parse_durations),
        cmocka_unit_test(test_parse_fractions),
        cmocka_unit_test(test_parse_empty_clears),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_ari_time),
        cmocka_unit_test(test_ari_recheck),
        cmocka_unit_test(test_backoff_90_day),
        cmocka_unit_test(test_backoff_short_lifetime),
        cmocka_unit_test(test_backoff_quarter_cap),
        cmocka_unit_test(test_backoff_retry_after),
        cmocka_unit_test(test_policy_for),
        cmocka_unit_test(test_expiring),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
