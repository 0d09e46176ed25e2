#!/usr/bin/env bash
# Twenty domains added at once against a real Pebble that rejects 5% of good nonces: every one
# gets a certificate within a bounded time, on its first order (bad nonces are retried, never
# counted as failures), each verifying against Pebble's root alone, matching its stored key and
# covering exactly its names; nothing is left published and every order is finished.
# shellcheck source-path=SCRIPTDIR disable=SC2119,SC2317  # SC2317: functions run by wait_for
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pebble.sh"

N=20
LIMIT=${SCALE_LIMIT_SECONDS:-180}   # generous for ASan builds on a loaded machine

pebble_start
write_config "$(certd_pebble_config_text)"
start_certd
cc() { "$CERTCTL_BIN" "$@"; }
db() { sqlite3 -separator ' ' "$T_DIR/state/certd.db" "$@"; }
pebble_root_pem "$T_DIR/pebble-roots.pem"
openssl x509 -in "$T_DIR/pebble-roots.pem" -out "$T_DIR/pebble-root.pem"
check_match "the trust anchor is Pebble's root alone" 'Pebble Root CA' \
    "$(openssl x509 -in "$T_DIR/pebble-root.pem" -noout -subject)"

# Domain i: a mix of the three challenge types, some with alternative names, and a wildcard.
names=() sans=() args=()
for i in $(seq -w 1 "$N"); do
    n="s$i.scale.example.com"
    case $((10#$i % 4)) in
    0) a=(--challenge http-01 --alt "www.s$i.scale.example.com"); s="$n www.s$i.scale.example.com" ;;
    1) a=(--challenge dns-01); s="$n" ;;
    2) a=(--challenge tls-alpn-01 --key-type ec-p384); s="$n" ;;
    3) n="*.s$i.scale.example.com"
       a=(--challenge dns-01 --alt "s$i.scale.example.com"); s="$n s$i.scale.example.com" ;;
    esac
    names+=("$n"); sans+=("$s"); args+=("${a[*]}")
done

# All adds in parallel: the API and the scheduler see them arrive together.
t0=$(date +%s%N)
pids=()
for k in "${!names[@]}"; do
    # shellcheck disable=SC2086  # args[k] is a list of words
    cc domain add "${names[k]}" ${args[k]} >"$T_DIR/add.$k.out" 2>&1 &
    pids+=($!)
done
add_fail=0
for k in "${!pids[@]}"; do
    wait "${pids[k]}" || { add_fail=$((add_fail + 1)); log "add ${names[k]}: $(cat "$T_DIR/add.$k.out")"; }
done
t_added=$(( ($(date +%s%N) - t0) / 1000000 ))
check_eq "all $N parallel adds succeed" 0 "$add_fail"
log "$N domains added in $t_added ms"

n_active() { db "select count(*) from domains where status = 'active'"; }
n_settled() { db "select count(*) from domains where status <> 'pending'"; }
if wait_for "$LIMIT" "[ \"\$(n_settled)\" -ge $N ]"; then :; fi
t_done=$(( ($(date +%s%N) - t0) / 1000000 ))
check_eq "all $N domains active within ${LIMIT}s" "$N" "$(n_active)"
log "all $N domains settled $t_done ms after the first add"
db "select name, status, failure_count, last_error from domains where status <> 'active'" |
    sed 's/^/#   not active: /'

# --- every certificate ---------------------------------------------------------------------
# verify_issued NAME "SAN...": the API's chain verifies against the root alone, the leaf is for
# the key the API serves, and its SANs are exactly the requested names.
verify_issued() {
    local name=$1 want=$2 dir="$T_DIR/out/${1//\*/_}" sub
    mkdir -p "$dir"
    api GET "/v1/domains/$name/certificate"
    [ "$HTTP_STATUS" = 200 ] || { echo "certificate: HTTP $HTTP_STATUS"; return 1; }
    printf '%s\n' "$HTTP_BODY" >"$dir/fullchain.pem"
    api GET "/v1/domains/$name/key"
    [ "$HTTP_STATUS" = 200 ] || { echo "key: HTTP $HTTP_STATUS"; return 1; }
    printf '%s\n' "$HTTP_BODY" >"$dir/key.pem"
    openssl x509 -in "$dir/fullchain.pem" -out "$dir/leaf.pem" 2>/dev/null || { echo "no leaf"; return 1; }
    awk 'n>0 || /END CERTIFICATE/ {if (n>0) print; if (/END CERTIFICATE/) n++}' \
        "$dir/fullchain.pem" >"$dir/chain.pem"
    openssl verify -CAfile "$T_DIR/pebble-root.pem" -untrusted "$dir/chain.pem" \
        "$dir/leaf.pem" >/dev/null 2>&1 || { echo "chain does not verify"; return 1; }
    [ "$(openssl pkey -in "$dir/key.pem" -pubout -outform DER | sha256sum)" = \
      "$(openssl x509 -in "$dir/leaf.pem" -noout -pubkey | openssl pkey -pubin -outform DER | sha256sum)" ] ||
        { echo "leaf is not for the stored key"; return 1; }
    sub=$(openssl x509 -in "$dir/leaf.pem" -noout -ext subjectAltName | tail -n +2 | tr -d ' ' |
        tr ',' '\n' | sed 's/^DNS://' | sort | xargs)
    [ "$sub" = "$(tr ' ' '\n' <<<"$want" | sort | xargs)" ] ||
        { echo "SANs [$sub], want [$want]"; return 1; }
    openssl x509 -in "$dir/leaf.pem" -noout -serial | cut -d= -f2 | tr 'A-F' 'a-f' >"$dir/serial"
}
bad=()
for k in "${!names[@]}"; do
    if ! why=$(verify_issued "${names[k]}" "${sans[k]}"); then
        bad+=("${names[k]}: $why")
    fi
done
check_eq "every certificate verifies against the root, matches its key, has exact SANs" \
    "" "$(printf '%s\n' "${bad[@]}" | sed '/^$/d')"
check_eq "$N distinct serials" "$N" "$(cat "$T_DIR"/out/*/serial | sort -u | wc -l)"
check_eq "$N distinct keys" "$N" \
    "$(for f in "$T_DIR"/out/*/key.pem; do openssl pkey -in "$f" -pubout | sha256sum; done | sort -u | wc -l)"
# The store's serials are the ones Pebble says it issued, and Pebble issued no others.
check_eq "Pebble issued exactly the stored certificates" \
    "$(db "select serial from certificates" | sed 's/^0*//' | sort | xargs)" \
    "$(sed -n 's/.*Issued certificate serial \([0-9a-f]*\) for order.*/\1/p' "$T_DIR/pebble.log" |
        sed 's/^0*//' | sort | xargs)"

# --- bad nonces survived, no failures ------------------------------------------------------
check_eq "no domain ever failed (failure_count 0 everywhere)" 0 \
    "$(db 'select count(*) from domains where failure_count > 0 or last_error is not null')"
ev=$(cc events --json --limit 1000)
check_eq "no order.failed event" 0 "$(jq '[.events[] | select(.type == "order.failed")] | length' <<<"$ev")"
check_eq "$N certificate.issued events" "$N" \
    "$(jq '[.events[] | select(.type == "certificate.issued")] | length' <<<"$ev")"
check_eq "one order per domain (nothing was retried)" "$N $N" \
    "$(db "select count(*), count(distinct domain_id) from orders")"
check_eq "one account registered for all of them" 1 \
    "$(jq '[.events[] | select(.type == "account.registered")] | length' <<<"$ev")"
posts=$(grep -c 'POST /' "$T_DIR/pebble.log" || true)
bad_nonces=$(grep -c 'badNonce on .*retrying' "$T_DIR/certd.log" || true)
log "Pebble answered $posts POSTs; certd retried $bad_nonces badNonce rejections" \
    "(Pebble does not log the rejections themselves)"
# Not asserted: with ~170 POSTs at 5% the chance of meeting no rejection at all is ~2e-4, too
# flaky for a check; surviving them is what the failure_count and one-order checks above prove.

# --- nothing left behind -------------------------------------------------------------------
check_eq "no challenge rows left" 0 "$(db 'select count(*) from challenges')"
check_eq "every order finished and valid" "$N" \
    "$(db "select count(*) from orders where finished = 1 and status = 'valid'")"
check_eq "exactly one active certificate per domain" "$N $N" \
    "$(db "select count(*), count(distinct domain_id) from certificates where status = 'active'")"
check_eq "no domain has two active certificates" "" \
    "$(db "select domain_id from certificates where status = 'active' group by domain_id having count(*) > 1")"
health=$(curl -fsS --unix-socket "$CERTD_SOCKET" http://localhost/v1/health)
check_eq "health counts $N active certificates, nothing pending or failed" "$N 0 0" \
    "$(jq -r '"\(.certificates_active) \(.domains_pending) \(.domains_failed)"' <<<"$health")"

stop_certd
check_eq "no ASan/UBSan report in the certd log" "" \
    "$(grep -E 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$T_DIR/certd.log" | head -3)"
log "timings: adds ${t_added} ms, all certificates ${t_done} ms"
finish
