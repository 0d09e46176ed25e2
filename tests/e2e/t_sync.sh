#!/usr/bin/env bash
# certctl sync against a real Pebble: the files of two domains (one wildcard) with the right
# modes and contents (fullchain = cert + chain, combined = fullchain + key, the key matching the
# certificate), the HAProxy crt-list; a second sync that changes nothing rewrites nothing and
# reloads nothing; --watch delivering a renewal with one reload and deleting a removed domain's
# folder; exit 0 on SIGTERM; and the same over certd's HTTPS listener with a deployer token.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pebble.sh"

WATCH_PID=
sync_cleanup() { stop_pids "$WATCH_PID"; }
exit_trap_add sync_cleanup

pebble_start
_pebble_pick_ports 1 || { fail "free port found"; finish; }
API_PORT=${_pebble_ports[0]}
write_config "$(certd_pebble_config_text)" \
    "$(printf '[api.https]\nlisten = 127.0.0.1:%s\ncert = %s\nkey = %s\n' "$API_PORT" \
        "$_pebble_work/server.pem" "$_pebble_work/server.key")"
start_certd
cc() { "$CERTCTL_BIN" "$@"; }
wait_active() { wait_for "${2:-60}" "[ \"\$(\"\$CERTCTL_BIN\" domain show '$1' --json | jq -r .status)\" = active ]"; }
stored_fp() { cc domain show "$1" --json | jq -r .certificate.fingerprint_sha256; }
leaf_fp() { openssl x509 -in "$1" -noout -fingerprint -sha256 | sed 's/.*=//; s/://g' | tr 'A-F' 'a-f'; }
cert_pub() { openssl x509 -in "$1" -noout -pubkey | openssl pkey -pubin -outform DER | sha256sum | cut -d' ' -f1; }
key_pub() { openssl pkey -in "$1" -pubout -outform DER | sha256sum | cut -d' ' -f1; }
reloads() { wc -l < "$T_DIR/reloads" 2>/dev/null | tr -d ' ' || echo 0; }
# A fingerprint of every file's inode and mtime (nanoseconds): unchanged means not rewritten.
snapshot() { (cd "$1" && find . -type f | sort | xargs stat -c '%n %i %.9Y') ; }

cc domain add sync.example.com --alt www.sync.example.com --challenge http-01 >/dev/null
cc domain add '*.wild.example.com' --alt wild.example.com --challenge dns-01 >/dev/null
check "sync.example.com issued" wait_active sync.example.com
check "*.wild.example.com issued" wait_active '*.wild.example.com'

OUT=$T_DIR/out
RELOAD="sh -c 'echo reload >> \"$T_DIR/reloads\"'"
: > "$T_DIR/reloads"

# --- one-shot ----------------------------------------------------------------------------------
rc=0; cc sync --out-dir "$OUT" --reload "$RELOAD" > "$T_DIR/sync1.out" 2>&1 || rc=$?
check_eq "first sync exits 0" 0 "$rc"
for d in sync.example.com _.wild.example.com; do
    for f in cert.pem chain.pem fullchain.pem privkey.pem combined.pem; do
        [ -f "$OUT/$d/$f" ] || fail "$d/$f written"
    done
    check_eq "$d: privkey.pem and combined.pem are 0600, the rest 0644" "600 600 644 644 644" \
        "$(stat -c %a "$OUT/$d/privkey.pem" "$OUT/$d/combined.pem" "$OUT/$d/cert.pem" "$OUT/$d/chain.pem" "$OUT/$d/fullchain.pem" | xargs)"
    check_eq "$d: fullchain.pem = cert.pem + chain.pem" "$(cat "$OUT/$d/cert.pem" "$OUT/$d/chain.pem")" "$(cat "$OUT/$d/fullchain.pem")"
    check_eq "$d: combined.pem = fullchain.pem + privkey.pem" "$(cat "$OUT/$d/fullchain.pem" "$OUT/$d/privkey.pem")" "$(cat "$OUT/$d/combined.pem")"
    check_eq "$d: cert.pem holds one certificate, chain.pem the intermediate" "1 1" \
        "$(grep -c 'BEGIN CERTIFICATE' "$OUT/$d/cert.pem") $(grep -c 'BEGIN CERTIFICATE' "$OUT/$d/chain.pem")"
    check_eq "$d: the key matches the certificate" "$(cert_pub "$OUT/$d/cert.pem")" "$(key_pub "$OUT/$d/privkey.pem")"
done
check_eq "sync.example.com: cert.pem is certd's certificate" "$(stored_fp sync.example.com)" "$(leaf_fp "$OUT/sync.example.com/cert.pem")"
check_eq "the wildcard: cert.pem is certd's certificate" "$(stored_fp '*.wild.example.com')" "$(leaf_fp "$OUT/_.wild.example.com/cert.pem")"
check_eq "the chain verifies against Pebble's root" "$OUT/sync.example.com/cert.pem: OK" \
    "$(pebble_root_pem "$T_DIR/roots.pem" && openssl verify -CAfile "$T_DIR/roots.pem" -untrusted "$OUT/sync.example.com/chain.pem" "$OUT/sync.example.com/cert.pem" 2>&1)"
check_eq "haproxy.crt-list names each combined.pem with its server names" \
    "$OUT/_.wild.example.com/combined.pem *.wild.example.com wild.example.com
$OUT/sync.example.com/combined.pem sync.example.com www.sync.example.com" "$(cat "$OUT/haproxy.crt-list")"
check_eq "the reload command ran once" 1 "$(reloads)"
etag=$(curl -sS --unix-socket "$CERTD_SOCKET" http://localhost/v1/domains/sync.example.com/bundle | jq -r .etag)
check_eq ".sync-state keeps the bundle's etag" "$etag" "$(jq -r '.domains["sync.example.com"].etag' "$OUT/.sync-state")"
check_eq ".sync-state is 0600" 600 "$(stat -c %a "$OUT/.sync-state")"

# --- nothing changed: nothing rewritten, no reload ------------------------------------------
before=$(snapshot "$OUT")
rc=0; cc sync --out-dir "$OUT" --reload "$RELOAD" > "$T_DIR/sync2.out" 2>&1 || rc=$?
check_eq "second sync exits 0" 0 "$rc"
check_eq "second sync rewrites no file (inode and mtime unchanged)" "$before" "$(snapshot "$OUT")"
check_eq "second sync runs no reload" 1 "$(reloads)"
check_eq "second sync reports nothing" "" "$(cat "$T_DIR/sync2.out")"

# A deleted file is put back (the state alone does not decide).
rm "$OUT/sync.example.com/chain.pem"
cc sync --out-dir "$OUT" --domains sync.example.com,'*.wild.example.com' --reload "$RELOAD" >/dev/null
check "a deleted file is written again" test -f "$OUT/sync.example.com/chain.pem"
check_eq "and that reloads" 2 "$(reloads)"

# --- usage --------------------------------------------------------------------------------
rc=0; cc sync >/dev/null 2>&1 || rc=$?
check_eq "sync without --out-dir is a usage error" 2 "$rc"
rc=0; cc sync --out-dir "$OUT" --reload "sh -c 'unclosed" >/dev/null 2>&1 || rc=$?
check_eq "an unclosed quote in --reload is a usage error" 2 "$rc"
rc=0; cc sync --out-dir "$T_DIR/out-f" --reload false >/dev/null 2>&1 || rc=$?
check_eq "a failing reload command makes sync exit 1" 1 "$rc"

# --- --watch: a renewal delivered, a removal cleaned up ---------------------------------------
: > "$T_DIR/reloads"
"$CERTCTL_BIN" sync --out-dir "$OUT" --watch --reload "$RELOAD" > "$T_DIR/watch.log" 2>&1 &
WATCH_PID=$!
# Its start-up full sync changes nothing; once its state file holds a cursor it follows the feed.
check "--watch starts following the feed" wait_for 20 "[ \"\$(jq -r .last_event_id '$OUT/.sync-state')\" != null ]"
old_fp=$(stored_fp sync.example.com)
cc renew sync.example.com >/dev/null
check "renewal issued a new certificate" wait_for 60 "[ \"\$(stored_fp sync.example.com)\" != '$old_fp' ]"
new_fp=$(stored_fp sync.example.com)
check "--watch delivers the new certificate within 10 s" wait_for 10 \
    "[ \"\$(leaf_fp '$OUT/sync.example.com/cert.pem')\" = '$new_fp' ]"
check "and runs the reload" wait_for 5 "[ \"\$(reloads)\" = 1 ]"
check_eq "the new key matches the new certificate" "$(cert_pub "$OUT/sync.example.com/cert.pem")" "$(key_pub "$OUT/sync.example.com/privkey.pem")"
sleep 1 # a second reload would follow the first at once
check_eq "exactly one reload for the renewal" 1 "$(reloads)"

cc domain remove '*.wild.example.com' >/dev/null
check "a removed domain's folder is deleted" wait_for 10 "[ ! -e '$OUT/_.wild.example.com' ]"
# The folder goes first, the crt-list is rewritten at the end of the batch.
check "and its line leaves the crt-list" wait_for 5 \
    "[ \"\$(cat '$OUT/haproxy.crt-list')\" = '$OUT/sync.example.com/combined.pem sync.example.com www.sync.example.com' ]"
check "and that reloads" wait_for 5 "[ \"\$(reloads)\" = 2 ]"

# Survives a daemon restart: a renewal after certd came back is delivered too.
stop_certd
start_certd
old_fp=$new_fp
cc renew sync.example.com >/dev/null
check "renewal after a certd restart issued" wait_for 60 "[ \"\$(stored_fp sync.example.com)\" != '$old_fp' ]"
new_fp=$(stored_fp sync.example.com)
check "--watch delivers it after the restart (backoff <= 30 s)" wait_for 40 \
    "[ \"\$(leaf_fp '$OUT/sync.example.com/cert.pem')\" = '$new_fp' ]"

kill -TERM "$WATCH_PID"
rc=0; wait "$WATCH_PID" || rc=$?
WATCH_PID=
check_eq "--watch exits 0 on SIGTERM" 0 "$rc"

# --- over the HTTPS listener with a deployer token ---------------------------------------------
cc token create syncer --role deployer --json | jq -r .token > "$T_DIR/token"
chmod 0600 "$T_DIR/token"
remote() { cc --url "https://127.0.0.1:$API_PORT" --token-file "$1" --ca-file "$PEBBLE_CA_BUNDLE" "${@:2}"; }
rc=0; remote "$T_DIR/token" sync --out-dir "$T_DIR/out2" > "$T_DIR/sync-url.out" 2>&1 || rc=$?
check_eq "sync over --url with a deployer token exits 0" 0 "$rc"
check_eq "over --url: the same certificate" "$new_fp" "$(leaf_fp "$T_DIR/out2/sync.example.com/cert.pem")"
check_eq "over --url: the same key" "$(cat "$OUT/sync.example.com/privkey.pem")" "$(cat "$T_DIR/out2/sync.example.com/privkey.pem")"
check "over --url: the removed wildcard is not there" test ! -e "$T_DIR/out2/_.wild.example.com"
echo "certd_bogus_token" > "$T_DIR/bad-token"
rc=0; remote "$T_DIR/bad-token" sync --out-dir "$T_DIR/out3" > "$T_DIR/sync-bad.out" 2>&1 || rc=$?
check_eq "a wrong token (401) exits 1, not 3" 1 "$rc"
check "and writes no key" test ! -e "$T_DIR/out3/sync.example.com/privkey.pem"
cc token create reader1 --role reader --json | jq -r .token > "$T_DIR/rtoken"
rc=0; remote "$T_DIR/rtoken" sync --out-dir "$T_DIR/out4" --domains sync.example.com > "$T_DIR/sync-r.out" 2>&1 || rc=$?
check_eq "a reader token cannot sync keys (exit 1)" 1 "$rc"
check "and writes no key" test ! -e "$T_DIR/out4/sync.example.com/privkey.pem"
rc=0; cc --url "http://127.0.0.1:$API_PORT" --token-file "$T_DIR/token" sync --out-dir "$T_DIR/out5" >/dev/null 2>&1 || rc=$?
check_eq "--url refuses plain http (usage error)" 2 "$rc"

finish
