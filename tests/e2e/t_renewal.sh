#!/usr/bin/env bash
# Renewal on its own against Pebble issuing 40-second certificates: three renewals or more, each
# inside its window, a new key each time (the same with reuse_key), history in order, every
# certificate verifying against Pebble's root, and the deploy hook run each time with the right
# environment. Then a CA outage: bounded retries, the current certificate still served, an
# expiry warning, and a renewal without any manual step once a fresh Pebble is back.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pebble.sh"

LIFETIME=40
PEBBLE_CERT_VALIDITY=$LIFETIME pebble_start
cat > "$T_DIR/deploy-hook" <<HOOK
#!/bin/sh
# one line per run: what certd told the hook
echo "\$CERTD_EVENT \$CERTD_DOMAIN \$CERTD_SERIAL \$CERTD_FINGERPRINT \$CERTD_NOT_AFTER [\$CERTD_NAMES]" >> "$T_DIR/deploy.log"
HOOK
chmod +x "$T_DIR/deploy-hook"
write_config "$(certd_pebble_config_text)" "[renewal]
deploy_hook = $T_DIR/deploy-hook
deploy_timeout = 10"
start_certd
cc() { "$CERTCTL_BIN" "$@"; }
db() { sqlite3 "$T_DIR/state/certd.db" "$@"; }
pebble_root_pem "$T_DIR/roots.pem"

cc domain add rotate.example.com --alt www.rotate.example.com >/dev/null
cc domain add keep.example.com --reuse-key >/dev/null
count_certs() { db "select count(*) from certificates c join domains d on d.id = c.domain_id where d.name = '$1'"; }
check "rotate.example.com: four certificates (three renewals) within 150 s" wait_for 150 "[ \$(count_certs rotate.example.com) -ge 4 ]"
check "keep.example.com: four certificates within 30 s more" wait_for 30 "[ \$(count_certs keep.example.com) -ge 4 ]"

for name in rotate.example.com keep.example.com; do
    rows=$(db "select c.id, c.not_before, c.not_after, c.created_at, c.status, c.key_id, c.serial
               from certificates c join domains d on d.id = c.domain_id where d.name = '$name' order by c.id")
    n=$(wc -l <<<"$rows")
    statuses=$(cut -d'|' -f5 <<<"$rows" | tr '\n' ' ')
    check_match "$name: history in order, only the newest active" "^(superseded ){$((n - 1))}active $" "$statuses"
    keys=$(cut -d'|' -f6 <<<"$rows" | sort -u | wc -l)
    if [ "$name" = rotate.example.com ]; then
        check_eq "$name: a new key for each certificate" "$n" "$keys"
    else
        check_eq "$name: reuse_key keeps one key" 1 "$keys"
    fi
    # each renewal inside its window: 45-50% of the previous certificate's lifetime (< 10 days),
    # plus the time an order takes
    prev_nb=; ok=1
    while IFS='|' read -r id nb na created status key serial; do
        if [ -n "$prev_nb" ]; then
            lo=$(( prev_nb + (prev_na - prev_nb) * 45 / 100 ))
            hi=$(( prev_nb + (prev_na - prev_nb) * 50 / 100 + 5 ))
            if [ "$created" -lt "$lo" ] || [ "$created" -gt "$hi" ]; then
                ok=0; log "$name: certificate $id stored at $created, window [$lo, $hi]"
            fi
        fi
        prev_nb=$nb; prev_na=$na
    done <<<"$rows"
    check_eq "$name: every renewal inside its window" 1 "$ok"
    # every certificate verifies against Pebble's root (chains kept in history)
    verified=0
    for id in $(cut -d'|' -f1 <<<"$rows"); do
        db "select chain_pem from certificates where id = $id" > "$T_DIR/chain-$id.pem"
        openssl x509 -in "$T_DIR/chain-$id.pem" -out "$T_DIR/leaf-$id.pem"
        openssl verify -CAfile <(openssl x509 -in "$T_DIR/roots.pem") -untrusted "$T_DIR/chain-$id.pem" \
            -no_check_time "$T_DIR/leaf-$id.pem" >/dev/null 2>&1 && verified=$((verified + 1))
    done
    check_eq "$name: every certificate chains to Pebble's root" "$n" "$verified"
    # the deploy hook ran for each certificate, with its serial and fingerprint
    hook_runs=$(grep -c " $name " "$T_DIR/deploy.log" || true)
    check "$name: deploy hook ran once per certificate ($hook_runs >= $n)" test "$hook_runs" -ge "$n"
    last_serial=$(cut -d'|' -f7 <<<"$rows" | tail -n 1)
    check_match "$name: hook saw the current serial and fingerprint" \
        "^renewed $name $last_serial [0-9a-f]{64} " "$(grep " $name $last_serial " "$T_DIR/deploy.log" | tail -n 1)"
    check_match "$name: first hook run says issued" "^issued $name " "$(grep " $name " "$T_DIR/deploy.log" | head -n 1)"
done
check_match "hook got every name" "\[rotate.example.com www.rotate.example.com\]" "$(grep rotate "$T_DIR/deploy.log" | tail -n 1)"
check_eq "deploy.succeeded events recorded" 0 "$(cc events --json --limit 1000 | jq '[.events[] | select(.type == "deploy.failed")] | length')"
check_eq "certificate.renewed events" "$(( $(count_certs rotate.example.com) + $(count_certs keep.example.com) - 2 ))" \
    "$(cc events --json --limit 1000 | jq '[.events[] | select(.type == "certificate.renewed")] | length')"

# --- the CA goes away ---
cc domain remove keep.example.com
serial=$(cc domain show rotate.example.com --json | jq -r .certificate.serial)
pebble_kill_ca
check "renewal attempts fail while the CA is down" \
    wait_for 60 "[ \$(db \"select failure_count from domains where name = 'rotate.example.com'\") -ge 2 ]"
check "an expiry warning is given" \
    wait_for 60 "grep -q 'rotate.example.com: certificate .* expires at' '$T_DIR/certd.log'"
check_eq "certificate.expiring recorded once" 1 \
    "$(cc events --json --limit 1000 | jq --arg s "$serial" '[.events[] | select(.type == "certificate.expiring" and .detail.serial == $s)] | length')"
check_match "certctl status reports it" "rotate.example.com" "$(cc status)"
api GET /v1/domains/rotate.example.com/certificate
check_eq "the current certificate is still served" "$serial" \
    "$(openssl x509 -noout -serial <<<"$HTTP_BODY" | cut -d= -f2 | tr 'A-F' 'a-f' | sed 's/^0*//')"
failures_then=$(db "select failure_count from domains where name = 'rotate.example.com'")
sleep_window=20
t0=$(date +%s); wait_for $sleep_window false || true
failures_now=$(db "select failure_count from domains where name = 'rotate.example.com'")
attempts=$((failures_now - failures_then))
log "attempts against the stopped CA in ${sleep_window}s: $attempts"
check "retries back off: at most 3 attempts in ${sleep_window}s" test "$attempts" -le 3
check_match "the renewal.failed events carry the backoff" '^[0-9]+$' \
    "$(cc events --json --limit 1000 | jq -r '[.events[] | select(.type == "renewal.failed")][-1].detail.retry_in_seconds')"

# --- a fresh CA comes back (it has forgotten our account) ---
pebble_restart_fresh
check "renewed without a manual step once the CA is back" \
    wait_for 60 "s=\$(\"\$CERTCTL_BIN\" domain show rotate.example.com --json | jq -r .certificate.serial); [ \"\$s\" != '$serial' ] && [ \$(db \"select failure_count from domains where name = 'rotate.example.com'\") = 0 ]"
check_eq "the account was registered again" 2 \
    "$(cc events --json --limit 1000 | jq '[.events[] | select(.type == "account.registered")] | length')"

stop_certd
finish
