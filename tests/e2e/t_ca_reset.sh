#!/usr/bin/env bash
# A CA that lost all its state: after a certificate is issued, Pebble restarts fresh (it forgets
# every account and order and makes new roots). A renewal must still succeed: certd meets
# accountDoesNotExist, registers again and issues a new certificate chaining to the NEW root.
# shellcheck source-path=SCRIPTDIR disable=SC2119
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pebble.sh"

pebble_start
write_config "$(certd_pebble_config_text)"
start_certd
cc() { "$CERTCTL_BIN" "$@"; }
db() { sqlite3 -separator ' ' "$T_DIR/state/certd.db" "$@"; }

name=reset.example.com
cur_serial() { cc domain show "$name" --json | jq -r '.certificate.serial // empty'; }
n_event() { cc events --json --limit 1000 | jq --arg t "$1" '[.events[] | select(.type == $t)] | length'; }

# verify_current ROOT_PEM: the served chain verifies against ROOT_PEM alone and is for the key
# the API serves. Prints what is wrong, nothing when all is well.
verify_current() {
    local root=$1 d="$T_DIR/out"
    mkdir -p "$d"
    api GET "/v1/domains/$name/certificate"
    [ "$HTTP_STATUS" = 200 ] || { echo "certificate: HTTP $HTTP_STATUS"; return; }
    printf '%s\n' "$HTTP_BODY" >"$d/fullchain.pem"
    api GET "/v1/domains/$name/key"
    printf '%s\n' "$HTTP_BODY" >"$d/key.pem"
    openssl x509 -in "$d/fullchain.pem" -out "$d/leaf.pem"
    awk 'n>0 || /END CERTIFICATE/ {if (n>0) print; if (/END CERTIFICATE/) n++}' \
        "$d/fullchain.pem" >"$d/chain.pem"
    openssl verify -CAfile "$root" -untrusted "$d/chain.pem" "$d/leaf.pem" >/dev/null 2>&1 ||
        echo "chain does not verify against $(basename "$root")"
    [ "$(openssl pkey -in "$d/key.pem" -pubout -outform DER | sha256sum)" = \
      "$(openssl x509 -in "$d/leaf.pem" -noout -pubkey | openssl pkey -pubin -outform DER | sha256sum)" ] ||
        echo "leaf is not for the stored key"
}
root_of() { # root_of FILE: Pebble's current root alone into FILE
    pebble_root_pem "$1.both" && openssl x509 -in "$1.both" -out "$1"
}

# --- a first certificate from the first Pebble ---------------------------------------------
root_of "$T_DIR/root1.pem"
cc domain add "$name" --alt www.reset.example.com >/dev/null
check "first certificate issued" wait_for 60 "[ -n \"\$(cur_serial)\" ]"
serial1=$(cur_serial)
check_eq "it verifies against the first root" "" "$(verify_current "$T_DIR/root1.pem")"
check_eq "one account.registered event" 1 "$(n_event account.registered)"
acct1=$(db "select account_url from accounts")

# --- the CA forgets everything ---------------------------------------------------------------
old_pebble=$PEBBLE_PID
check "pebble_restart_fresh" pebble_restart_fresh
check "a new Pebble process" test "$PEBBLE_PID" != "$old_pebble"
root_of "$T_DIR/root2.pem"
check "the new Pebble has a new root" \
    test "$(openssl x509 -in "$T_DIR/root1.pem" -noout -fingerprint -sha256)" != \
         "$(openssl x509 -in "$T_DIR/root2.pem" -noout -fingerprint -sha256)"
rc=0; pebble_cert_status "$serial1" >/dev/null 2>&1 || rc=$?
check "the new Pebble does not know the first certificate" test "$rc" -ne 0

# --- renewal -------------------------------------------------------------------------------
t0=$(date +%s%N)
api POST "/v1/domains/$name/renew"
check_eq "renew accepted" "202 scheduled" "$HTTP_STATUS $(jq -r .status <<<"$HTTP_BODY")"
check "a new certificate within 60 s" \
    wait_for 60 "s=\$(cur_serial); [ -n \"\$s\" ] && [ \"\$s\" != '$serial1' ]"
log "renewal against the fresh CA took $(( ($(date +%s%N) - t0) / 1000000 )) ms"
serial2=$(cur_serial)
check_match "a different serial" "^[0-9a-f]+$" "$serial2"
check "... not the first one" test "$serial2" != "$serial1"
check_eq "it verifies against the NEW root alone" "" "$(verify_current "$T_DIR/root2.pem")"
check_match "... and not against the old one" "does not verify" "$(verify_current "$T_DIR/root1.pem")"
check_eq "the new Pebble issued it" Valid "$(pebble_cert_status "$serial2" 2>/dev/null)"
sans=$(openssl x509 -in "$T_DIR/out/leaf.pem" -noout -ext subjectAltName | tail -n +2 | tr -d ' ' |
    tr ',' '\n' | sed 's/^DNS://' | sort | xargs)
check_eq "same names" "reset.example.com www.reset.example.com" "$sans"

check_eq "account.registered twice" 2 "$(n_event account.registered)"
check_match "certd noticed the CA lost the account" 'no longer knows our account' \
    "$(cat "$T_DIR/certd.log")"
check_eq "still one account row, now valid" "1 valid" \
    "$(db "select count(*), group_concat(status) from accounts")"
acct2=$(db "select account_url from accounts")
check "a new account URL" test -n "$acct2" -a "$acct2" != "$acct1"
d=$(cc domain show "$name" --json)
check_eq "domain active, no failure" "active 0 null" \
    "$(jq -r '"\(.status) \(.failure_count) \(.last_error)"' <<<"$d")"
check_eq "no order.failed event" 0 "$(n_event order.failed)"
check_eq "one certificate.issued and one certificate.renewed event" "1 1" "$(n_event certificate.issued) $(n_event certificate.renewed)"
check_eq "history: the new certificate active, the first superseded" "active superseded" \
    "$(cc history "$name" --json | jq -r '[.certificates[].status] | join(" ")')"
check_eq "two orders, both finished valid" "2 2" \
    "$(db "select count(*), sum(finished = 1 and status = 'valid') from orders")"
check_eq "no challenge rows left" 0 "$(db 'select count(*) from challenges')"

stop_certd

# --- the CA forgets an order in flight while certd is down -----------------------------------
# certd dies right after newOrder (test build only), Pebble restarts fresh, certd restarts: the
# resumed order is unknown to the CA (and so is the account), so certd registers again and
# issues on a new order.
if grep -aq 'test hook: crashing at' "$CERTD_BIN"; then
    name2=inflight.example.com
    CERTD_TEST_CRASH_AT=after_neworder start_certd
    pid=$CERTD_PID
    cc domain add "$name2" >/dev/null 2>&1 || true
    rc=0
    if wait_for 60 "! kill -0 $pid 2>/dev/null"; then wait "$pid" || rc=$?; else rc=timeout; fi
    CERTD_PID=
    check_eq "certd killed after newOrder" 137 "$rc"
    old_order=$(db "select o.id from orders o join domains d on d.id = o.domain_id
                    where d.name = '$name2' and o.url is not null and o.finished = 0")
    check_match "an unfinished order the first CA knew" '^[0-9]+$' "$old_order"
    check "pebble_restart_fresh (second time)" pebble_restart_fresh
    root_of "$T_DIR/root3.pem"
    start_certd
    check "the domain gets its certificate from the new CA" \
        wait_for 60 "[ \"\$(cc domain show '$name2' --json | jq -r .status)\" = active ]"
    name_save=$name; name=$name2
    check_eq "it verifies against the newest root" "" "$(verify_current "$T_DIR/root3.pem")"
    name=$name_save
    orders2=$(db "select group_concat(x, ' ') from (select o.id || ':' || o.status || ':' || o.finished
                  as x from orders o join domains d on d.id = o.domain_id where d.name = '$name2'
                  order by o.id)")
    check_match "the lost order finished invalid, a new one valid" \
        "^$old_order:invalid:1 [0-9]+:valid:1\$" "$orders2"
    check_eq "account.registered three times" 3 "$(n_event account.registered)"
    check_eq "no order.failed event" 0 "$(n_event order.failed)"
    check_eq "no unfinished orders, no challenge rows" "0 0" \
        "$(db "select (select count(*) from orders where finished = 0), (select count(*) from challenges)")"
    stop_certd
else
    log "SKIP in-flight part: certd has no crash points (configure with -DCERTD_TEST_HOOKS=ON)"
fi
check_eq "no ASan/UBSan report in the certd log" "" \
    "$(grep -E 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$T_DIR/certd.log" | head -3)"
finish
