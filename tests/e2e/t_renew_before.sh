#!/usr/bin/env bash
# PATCH renew_before moves the current certificate's renewal at once: next_renewal_at (and
# next_attempt_at) are computed again from the certificate by the rule an issuance applies, the
# answer shows the new plan, a renewal.rescheduled event is written, and a domain without a
# certificate takes the setting without anything moving.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pebble.sh"

# A day-long certificate: long enough that nothing falls due while the test runs.
PEBBLE_CERT_VALIDITY=86400 pebble_start
# A second CA that nothing answers for, so a domain can stay without a certificate.
write_config "$(certd_pebble_config_text)" "[ca.dead]
directory = https://127.0.0.1:9/dir"
start_certd
cc() { "$CERTCTL_BIN" "$@"; }
db() { sqlite3 "$T_DIR/state/certd.db" "$@"; }
plan() { db "select next_renewal_at || ' ' || next_attempt_at from domains where name = '$1'"; }
iso() { date -u -d "@$1" +%Y-%m-%dT%H:%M:%SZ; }

cc domain add rb.example.com >/dev/null
check "a certificate is issued" wait_for 60 "[ \"\$(cc domain show rb.example.com --json | jq -r .status)\" = active ]"
read -r nb na < <(db "select c.not_before, c.not_after from certificates c join domains d
                      on d.id = c.domain_id where d.name = 'rb.example.com' and c.status = 'active'" | tr '|' ' ')
life=$((na - nb))
log "certificate valid $nb..$na ($life s)"
# With renewal information from the CA, its window governs the plan (t_ari.sh); wait for the
# first check so it cannot move the plan under this test.
if [ -n "$(db "select ari_id from certificates where not_before = $nb")" ]; then
    check "the CA's renewal information was read" \
        wait_for 30 "[ -n \"\$(db 'select ari_window_start from certificates where not_before = $nb')\" ]"
fi
read -r r0 a0 <<<"$(plan rb.example.com)"
# (the default window for lifetimes under 10 days: 45-50%)
check "issued: renewal in the default window (45-50% of the lifetime)" \
    test "$r0" -ge $((nb + life * 45 / 100)) -a "$r0" -le $((nb + life * 50 / 100 + 1))

# A duration: not_after minus it, exactly; the next order moves with it.
api PATCH /v1/domains/rb.example.com '{"renew_before": "3h"}'
check_eq "PATCH renew_before is 200" 200 "$HTTP_STATUS"
check_eq "next_renewal_at and next_attempt_at moved to not_after - 3h" \
    "$((na - 10800)) $((na - 10800))" "$(plan rb.example.com)"
check_eq "the answer shows the new renewal time" "$(iso $((na - 10800)))" "$(jq -r .next_renewal_at <<<"$HTTP_BODY")"
check_eq "and the new next attempt" "$(iso $((na - 10800)))" "$(jq -r .next_attempt_at <<<"$HTTP_BODY")"
ev=$(cc events --json --limit 1000 | jq -c '[.events[] | select(.domain == "rb.example.com" and .type == "renewal.rescheduled")][-1].detail')
check_eq "a renewal.rescheduled event says why and when" \
    "{\"renew_at\":\"$(iso $((na - 10800)))\",\"source\":\"renew_before\"}" "$ev"

# A fraction of the lifetime (rounded to the nearest second).
quarter=$((na - (life + 2) / 4))
api PATCH /v1/domains/rb.example.com '{"renew_before": "25%"}'
check_eq "renew_before 25%: renewal at not_after - a quarter of the lifetime" \
    "$quarter $quarter" "$(plan rb.example.com)"

# The same value again moves nothing (no new draw, no event).
events_before=$(cc events --json --limit 1000 | jq '[.events[] | select(.type == "renewal.rescheduled")] | length')
api PATCH /v1/domains/rb.example.com '{"renew_before": "25%", "reuse_key": true}'
check_eq "an unchanged renew_before leaves the plan" "$quarter $quarter" "$(plan rb.example.com)"
check_eq "and writes no renewal.rescheduled event" "$events_before" \
    "$(cc events --json --limit 1000 | jq '[.events[] | select(.type == "renewal.rescheduled")] | length')"

# Back to the global policy (unset here: the default window).
api PATCH /v1/domains/rb.example.com '{"renew_before": null}'
read -r r1 a1 <<<"$(plan rb.example.com)"
check "renew_before null: back in the default window" \
    test "$r1" -ge $((nb + life * 45 / 100)) -a "$r1" -le $((nb + life * 50 / 100 + 1))
check_eq "with the next attempt at the same time" "$r1" "$a1"

# The scheduler took the new plan: nothing was ordered early, the certificate is still the one.
check_eq "no new order" 1 "$(db "select count(*) from certificates")"

# A domain without a certificate (its CA does not answer): the setting is stored, and its retry
# plan stays.
cc domain add nocert.example.com --ca dead >/dev/null
check "the domain without a certificate has settled" wait_settled nocert.example.com 60
before=$(plan nocert.example.com)
api PATCH /v1/domains/nocert.example.com '{"renew_before": "1h"}'
check_eq "PATCH renew_before of a domain without a certificate is 200" "200 1h" \
    "$HTTP_STATUS $(jq -r .renew_before <<<"$HTTP_BODY")"
check_eq "its plan did not move" "$before" "$(plan nocert.example.com)"

stop_certd
finish
