/*
 * Renewal planning: pure functions of their inputs (times are Unix seconds passed in, random
 * numbers too), so every rule is unit-tested with fixed values.
 */
#ifndef CERTD_SCHED_PLANNER_H
#define CERTD_SCHED_PLANNER_H

#include <stdbool.h>
#include <stdint.h>

/* When to renew, beside the default. At most one of the two is set. */
struct renewal_policy {
    int64_t before_seconds;   /* renew this long before not_after (0: unset) */
    double before_fraction;   /* renew when this fraction of the lifetime remains, 0 < f < 1
                                 (0: unset) */
};

/*
 * Parses a renew_before setting: a duration ("30d", "12h", "3600") or a fraction of the
 * lifetime ("0.33" or "33%"). 0 or -EINVAL. An empty string clears (both fields 0).
 */
int planner_parse_renew_before(const char *s, struct renewal_policy *out);

/*
 * The policy in force for a domain: its own renew_before DOMAIN_SETTING when set, else the
 * global [renewal] renew_before GLOBAL_SETTING (either NULL when unset). 0, or -EINVAL when the
 * setting in force does not parse: *OUT is then the default policy (all 0), so the caller can
 * warn and still plan. -EINVAL without touching anything when OUT is NULL.
 */
int planner_policy_for(const char *domain_setting, const char *global_setting,
                       struct renewal_policy *out);

/*
 * The renewal time of a certificate valid from NOT_BEFORE to NOT_AFTER. Default (Let's
 * Encrypt's guidance): a point drawn with RND uniformly between 60% and 67% of the lifetime
 * (so a 90-day certificate renews on about day 54-60), and between 45% and 50% for lifetimes
 * under 10 days. With a policy: NOT_AFTER minus the duration or fraction, no earlier than
 * NOT_BEFORE. A drawn point spreads domains added together over the window.
 */
int64_t planner_renewal_time(int64_t not_before, int64_t not_after,
                             const struct renewal_policy *policy, uint32_t rnd);

/*
 * ACME Renewal Information (RFC 9773 §4.2): a time drawn with RND uniformly in the suggested
 * window [START, END], not before NOW; NOW when the window has passed.
 */
int64_t planner_ari_time(int64_t start, int64_t end, int64_t now, uint32_t rnd);

/*
 * When to fetch renewalInfo again (RFC 9773 §4.3): the CA's Retry-After RETRY_AFTER (seconds,
 * -1 when absent) clamped to between 1 minute and 1 day; without one, about twice a day
 * (12 h, with up to 10% jitter from RND). Returns an absolute time after NOW.
 */
int64_t planner_ari_recheck(int64_t retry_after, int64_t now, uint32_t rnd);

/*
 * The delay before retrying after the N-th consecutive failure (N >= 1): about 1 min, 10 min,
 * 100 min, then daily (Let's Encrypt's integration guide), each with up to 10% jitter from
 * RND. For a certificate with LIFETIME seconds (0 when there is none yet), the steps shrink in
 * proportion to lifetime / 90 days (never below 10 s) so a 6-day certificate still gets many
 * tries before it expires; and while a certificate valid until NOT_AFTER still serves, no delay
 * exceeds a quarter of the time it has left. Never less than RETRY_AFTER (the CA's wish, -1 for
 * none), which wins even over the quarter rule.
 */
int64_t planner_backoff(int failures, int64_t retry_after, int64_t lifetime, int64_t not_after,
                        int64_t now, uint32_t rnd);

/*
 * Whether a certificate is close enough to expiry to warn: less than 7 days left for lifetimes
 * of 30 days or more, less than a sixth of the lifetime for shorter ones.
 */
bool planner_is_expiring(int64_t not_before, int64_t not_after, int64_t now);

/* The time at which planner_is_expiring becomes true. */
int64_t planner_expiring_at(int64_t not_before, int64_t not_after);

#endif
