#!/usr/bin/env bash
# Pacing new orders per CA: past [ca.NAME] max_new_orders in 3 hours, orders wait in the queue
# (an order.deferred event, the next attempt when the window has room) instead of failing.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pebble.sh"

pebble_start
write_config "$(certd_pebble_config_text | sed 's/^terms_agreed = true$/terms_agreed = true\nmax_new_orders = 2/')"
start_certd
db() { sqlite3 "$T_DIR/state/certd.db" "$@"; }

for n in 1 2 3 4; do "$CERTCTL_BIN" domain add "p$n.example.com" >/dev/null; done
check "two domains get certificates" wait_for 60 "[ \$(db \"select count(*) from domains where status = 'active'\") -eq 2 ]"
check "two orders are deferred" wait_for 30 "[ \$(\"\$CERTCTL_BIN\" events --json --limit 1000 | jq '[.events[] | select(.type == \"order.deferred\")] | length') -eq 2 ]"
check_eq "only two orders reached the CA" 2 "$(db 'select count(*) from orders')"
check_eq "the deferred domains are not failures" "0|0" "$(db "select sum(failure_count), count(*) filter (where status = 'failed') from domains")"
first=$(db 'select min(created_at) from orders')
deferred=$(db "select group_concat(next_attempt_at - $first) from domains where status = 'pending'")
check_match "they wait for the 3-hour window to have room" '^1080[0-9],1080[0-9]$' "$deferred"
stop_certd
finish
