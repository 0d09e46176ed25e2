#!/usr/bin/env bash
# A challenge that cannot succeed against a real Pebble: http-01 with no http-01 responder in
# certd's configuration, so Pebble's VA meets a refused connection. The domain ends failed with
# the CA's problem kept verbatim on the order and quoted in last_error, no certificate, a retry
# scheduled in the future by the documented backoff, and an order.failed event; asking again
# fails again with the next backoff step.
# shellcheck source-path=SCRIPTDIR disable=SC2119,SC2317,SC2016  # SC2317: functions run by wait_for; SC2016: bash -c args
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pebble.sh"

pebble_start
# Everything of the Pebble configuration except the [challenge.http-01] section.
write_config "$(certd_pebble_config_text |
    awk '/^\[/ { skip = ($0 == "[challenge.http-01]") } !skip')"
check "the config has no http-01 responder" bash -c "! grep -q 'challenge.http-01' '$T_DIR/certd.conf'"
start_certd
cc() { "$CERTCTL_BIN" "$@"; }
db() { sqlite3 -separator ' ' "$T_DIR/state/certd.db" "$@"; }
check "nothing listens on Pebble's http-01 port" \
    bash -c "! ss -Htln | grep -q '127.0.0.1:$CERTD_HTTP01_PORT '"

name=fail.example.com
t0=$(date +%s)
cc domain add "$name" --challenge http-01 >/dev/null
status() { cc domain show "$name" --json | jq -r .status; }
check "the domain's first order ends (bounded)" wait_for 60 "[ \"\$(status)\" != pending ]"
log "settled $(( $(date +%s) - t0 )) s after the add"

d=$(cc domain show "$name" --json)
check_eq "status is failed" failed "$(jq -r .status <<<"$d")"
check_eq "failure_count is 1" 1 "$(jq -r .failure_count <<<"$d")"
check_eq "no current certificate" null "$(jq -c .certificate <<<"$d")"
last_error=$(jq -r '.last_error // ""' <<<"$d")
check_match "last_error is set" '.+' "$last_error"

api GET "/v1/domains/$name/order"
order=$HTTP_BODY
check_eq "GET .../order answers 200" 200 "$HTTP_STATUS"
check_eq "the latest order is invalid and finished" "invalid true" \
    "$(jq -r '"\(.status) \(.finished)"' <<<"$order")"
check_eq "... for the domain's names" '["fail.example.com"]' "$(jq -c .names <<<"$order")"
etype=$(jq -r '.error.type // ""' <<<"$order")
edetail=$(jq -r '.error.detail // ""' <<<"$order")
check_match "the order keeps the CA's problem type" '^urn:ietf:params:acme:error:[A-Za-z]+$' "$etype"
check_match "... which is about the refused connection" '(connection|Connection) refused' "$edetail"
check "last_error quotes the CA's detail" bash -c '[[ $1 == *"$2"* ]]' _ "$last_error" "$edetail"
log "last_error: $last_error"

check_eq "no certificate stored" 0 "$(db "select count(*) from certificates")"
api GET "/v1/domains/$name/certificate"
check_eq "GET .../certificate is 404" 404 "$HTTP_STATUS"
check_eq "no challenge rows left" 0 "$(db 'select count(*) from challenges')"
check_eq "no unfinished order" 0 "$(db 'select count(*) from orders where finished = 0')"

now=$(date +%s)
next=$(db "select next_attempt_at from domains where name = '$name'")
check "next_attempt_at is in the future" test "${next:-0}" -gt "$now"
ev=$(cc events --json --limit 1000)
failed=$(jq -c "[.events[] | select(.type == \"order.failed\" and .domain == \"$name\")]" <<<"$ev")
check_eq "one order.failed event" 1 "$(jq length <<<"$failed")"
check_eq "... with failure_count 1 and the domain's last_error" "1 $last_error" \
    "$(jq -r '.[0].detail | "\(.failure_count) \(.error)"' <<<"$failed")"
retry=$(jq -r '.[0].detail.retry_in_seconds' <<<"$failed")
# scheduler_backoff: 60 s plus up to 10% jitter for the first failure (Pebble sends no
# Retry-After on a failed order).
check "... retrying in 60..66 s" test "$retry" -ge 60 -a "$retry" -le 66
check "next_attempt_at is that far from the failure" \
    test $((next - now)) -le "$retry" -a $((next - now)) -ge $((retry - (now - t0) - 2))
check_eq "no certificate.issued event" 0 \
    "$(jq '[.events[] | select(.type == "certificate.issued")] | length' <<<"$ev")"
health=$(curl -fsS --unix-socket "$CERTD_SOCKET" http://localhost/v1/health)
check_eq "health counts one failed domain" "1 0" \
    "$(jq -r '"\(.domains_failed) \(.certificates_active)"' <<<"$health")"

# No hot retry loop: the next attempt waits for next_attempt_at (a bounded poll for something
# that must not happen).
if wait_for 3 "[ \"\$(db 'select count(*) from orders')\" -gt 1 ]"; then
    fail "no second order before next_attempt_at" "$(db 'select id, status, created_at from orders')"
else
    pass "no second order before next_attempt_at"
fi

# Asking again fails again, one backoff step further.
api POST "/v1/domains/$name/renew"
check_eq "renew is accepted" 202 "$HTTP_STATUS"
check "the second order ends failed (bounded)" \
    wait_for 60 "[ \"\$(db \"select failure_count from domains where name = '$name'\")\" = 2 ]"
d=$(cc domain show "$name" --json)
check_eq "status failed, failure_count 2" "failed 2" "$(jq -r '"\(.status) \(.failure_count)"' <<<"$d")"
check_eq "two orders, both finished invalid" "2 2" \
    "$(db "select count(*), sum(finished = 1 and status = 'invalid') from orders")"
ev=$(cc events --json --limit 1000)
retry2=$(jq -r "[.events[] | select(.type == \"order.failed\")] | last | .detail.retry_in_seconds" <<<"$ev")
check "the second retry backs off to 600..660 s" test "$retry2" -ge 600 -a "$retry2" -le 660
check_eq "no certificate stored" 0 "$(db "select count(*) from certificates")"
check_eq "no challenge rows left" 0 "$(db 'select count(*) from challenges')"

stop_certd
check_eq "no ASan/UBSan report in the certd log" "" \
    "$(grep -E 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$T_DIR/certd.log" | head -3)"
finish
