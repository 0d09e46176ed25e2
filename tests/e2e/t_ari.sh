#!/usr/bin/env bash
# ACME Renewal Information and profiles, through the test suite's shim in front of Pebble:
# the suggested window is obeyed, "replaces" is sent, alreadyReplaced is handled, a profile
# reaches newOrder, and an unknown profile is refused before any order.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pebble.sh"
. "$(dirname "$0")/shim.sh"

pebble_start
# Every certificate's renewal window opens 8 s after the CA is asked and closes at 16 s.
shim_start '{"default_window": {"start_in": 8, "end_in": 16}, "retry_after": 3600}'
write_config "$(certd_shim_config_text)"
start_certd
cc() { "$CERTCTL_BIN" "$@"; }
db() { sqlite3 "$T_DIR/state/certd.db" "$@"; }
certs_of() { db "select count(*) from certificates c join domains d on d.id = c.domain_id where d.name = '$1'"; }

cc domain add ari.example.com >/dev/null
check "first certificate issued" wait_for 60 "[ \$(certs_of ari.example.com) -ge 1 ]"
first_id=$(db "select ari_id from certificates order by id limit 1")
check_match "the certificate has an ARI CertID" '^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$' "$first_id"
check "certd asked for its renewal information" \
    wait_for 30 "shim_ctl GET /seen | jq -e --arg id '$first_id' '.renewal_info | index(\$id)' >/dev/null"
asked_at=$(date +%s)
window=$(db "select ari_window_start, ari_window_end from certificates order by id limit 1")
check_match "the window is stored" '^[0-9]+\|[0-9]+$' "$window"
next=$(db "select next_attempt_at from domains where name = 'ari.example.com'")
check "the next order moved into the window" test "$next" -ge "${window%|*}" -a "$next" -le "${window#*|}"
check "renewed inside the suggested window" wait_for 40 "[ \$(certs_of ari.example.com) -ge 2 ]"
renewed_at=$(db "select created_at from certificates order by id desc limit 1")
check "renewal time within [start, end + order time]" \
    test "$renewed_at" -ge "${window%|*}" -a "$renewed_at" -le "$(( ${window#*|} + 5 ))"
seen=$(shim_ctl GET /seen)
# The last newOrder the shim saw for the name: the shim records every attempt, and Pebble's
# badNonce rejections (5%) can make the first order's newOrder two of them.
check_eq "newOrder named the replaced certificate" "$first_id" \
    "$(jq -r '[.orders[] | select(.identifiers[0].value == "ari.example.com")][-1].replaces' <<<"$seen")"
check_eq "the ARI-driven renewal is a renewal event" renewed \
    "$(cc events --json --limit 1000 | jq -r '[.events[] | select(.domain == "ari.example.com" and (.type | startswith("certificate.")))][-1].type | sub("certificate."; "")')"
log "ARI window [${window%|*}, ${window#*|}], asked at ~$asked_at, renewed at $renewed_at"

# alreadyReplaced: the CA says the current certificate was replaced already
second_id=$(db "select ari_id from certificates c join domains d on d.id = c.domain_id where d.name = 'ari.example.com' and c.status = 'active'")
shim_ctl POST /config "{\"already_replaced\": [\"$second_id\"], \"default_window\": null}" >/dev/null
shim_ctl POST /reset >/dev/null
cc renew ari.example.com >/dev/null
check "renewed despite alreadyReplaced" wait_for 40 "[ \$(certs_of ari.example.com) -ge 3 ]"
# Repeats folded: a badNonce rejection of the retry by Pebble makes certd send it again.
orders=$(shim_ctl GET /seen | jq -c '[.orders[] | .replaces]
    | reduce .[] as $r ([]; if length > 0 and .[-1] == $r then . else . + [$r] end)')
check_eq "first try named the certificate, the retry named none" "[\"$second_id\",null]" "$orders"
check_eq "no failure recorded" 0 "$(db "select failure_count from domains where name = 'ari.example.com'")"

# profiles
cc domain add short.example.com --profile shortlived >/dev/null
check "a certificate with a profile is issued" wait_for 60 "[ \$(certs_of short.example.com) -ge 1 ]"
check_eq "the profile reached newOrder" shortlived \
    "$(shim_ctl GET /seen | jq -r '[.orders[] | select(.identifiers[0].value == "short.example.com")][0].profile')"
shim_ctl POST /reset >/dev/null
cc domain add bogus.example.com --profile bogus >/dev/null
check "an unknown profile fails the domain" \
    wait_for 30 "[ \"\$(\"\$CERTCTL_BIN\" domain show bogus.example.com --json | jq -r .status)\" = failed ]"
check_match "with a clear error" "does not offer the profile 'bogus'" \
    "$(cc domain show bogus.example.com --json | jq -r .last_error)"
check_eq "and no order reached the CA" 0 \
    "$(shim_ctl GET /seen | jq '[.orders[] | select(.identifiers[0].value == "bogus.example.com")] | length')"

stop_certd
finish
