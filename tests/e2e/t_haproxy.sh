#!/usr/bin/env bash
# HAProxy (Debian's 2.6) terminating TLS for three domains (one wildcard) from the crt-list that
# `certctl sync` keeps (DIR/haproxy.crt-list naming each DIR/NAME/combined.pem with its server
# names), SNI choosing the certificate: a client trusting only Pebble's root verifies each name
# and gets certd's certificate; after a renewal, `certctl sync --watch` with a reload command
# (SIGUSR2 to HAProxy's master process) delivers the new one with no manual step.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pebble.sh"

HAPROXY_BIN=${HAPROXY_BIN:-$(command -v haproxy || echo /usr/sbin/haproxy)}
[ -x "$HAPROXY_BIN" ] || { fail "haproxy is installed (scripts/install-deps)"; finish; }
HAPROXY_PID=
WATCH_PID=
haproxy_cleanup() {
    local pid
    for pid in "$WATCH_PID" "$HAPROXY_PID"; do
        [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "$WATCH_PID" "$HAPROXY_PID"; do
        [ -n "$pid" ] && wait "$pid" 2>/dev/null || true
    done
}
_haproxy_chain_exit_trap() {
    local prev
    prev=$(trap -p EXIT)
    if [ -n "$prev" ]; then
        eval "set -- $prev"
        prev=$3
    fi
    # shellcheck disable=SC2064  # expand PREV now, once
    trap "haproxy_cleanup || true; ${prev:-:}" EXIT
}
_haproxy_chain_exit_trap

pebble_start
write_config "$(certd_pebble_config_text)"
start_certd
cc() { "$CERTCTL_BIN" "$@"; }
pebble_root_pem "$T_DIR/pebble-roots.pem"
openssl x509 -in "$T_DIR/pebble-roots.pem" -out "$T_DIR/pebble-root.pem"
wait_active() { wait_for "${2:-60}" "[ \"\$(\"\$CERTCTL_BIN\" domain show '$1' --json | jq -r .status)\" = active ]"; }
stored_fp() { cc domain show "$1" --json | jq -r .certificate.fingerprint_sha256; }

cc domain add alpha.example.com --challenge http-01 >/dev/null
cc domain add beta.example.com --alt www.beta.example.com --challenge http-01 >/dev/null
cc domain add '*.gamma.example.com' --challenge dns-01 >/dev/null
for d in alpha.example.com beta.example.com '*.gamma.example.com'; do
    check "$d issued" wait_active "$d"
done

OUT=$T_DIR/certs
rc=0; cc sync --out-dir "$OUT" > "$T_DIR/sync.out" 2>&1 || rc=$?
check_eq "certctl sync writes the files" 0 "$rc"

_pebble_pick_ports 1 || { fail "free port found"; finish; }
PORT=${_pebble_ports[0]}
HA=$T_DIR/haproxy
mkdir -p "$HA"
check_eq "the crt-list names the three combined files with their names" \
    "$OUT/_.gamma.example.com/combined.pem *.gamma.example.com
$OUT/alpha.example.com/combined.pem alpha.example.com
$OUT/beta.example.com/combined.pem beta.example.com www.beta.example.com" "$(cat "$OUT/haproxy.crt-list")"
cat > "$HA/haproxy.cfg" <<EOF
global
    master-worker
    pidfile $HA/haproxy.pid
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend fe_https
    bind 127.0.0.1:$PORT ssl crt-list $OUT/haproxy.crt-list
    http-request return status 200 content-type text/plain lf-string "served %[ssl_fc_sni]\n"
EOF
check "the HAProxy configuration is valid" "$HAPROXY_BIN" -c -q -f "$HA/haproxy.cfg"
# -db: in the foreground; master-worker, so SIGUSR2 to the master reloads (certificates too).
"$HAPROXY_BIN" -db -f "$HA/haproxy.cfg" >>"$HA/haproxy.log" 2>&1 &
HAPROXY_PID=$!
if ! wait_for 10 "ss -Htln | awk '{print \$4}' | grep -qx '127.0.0.1:$PORT'"; then
    fail "haproxy listens on 127.0.0.1:$PORT" "$(tail -n 20 "$HA/haproxy.log")"
    finish
fi

served_fp() {
    openssl s_client -connect "127.0.0.1:$PORT" -servername "$1" </dev/null 2>/dev/null |
        openssl x509 -noout -fingerprint -sha256 2>/dev/null | sed 's/.*=//; s/://g' | tr 'A-F' 'a-f'
}
https_get() {
    curl -sS --max-time 10 --cacert "$T_DIR/pebble-root.pem" --resolve "$1:$PORT:127.0.0.1" \
        "https://$1:$PORT/"
}

check_eq "alpha.example.com verifies with Pebble's root" "served alpha.example.com" "$(https_get alpha.example.com 2>&1)"
check_eq "www.beta.example.com (an alt name) verifies" "served www.beta.example.com" "$(https_get www.beta.example.com 2>&1)"
check_eq "x.gamma.example.com (the wildcard) verifies" "served x.gamma.example.com" "$(https_get x.gamma.example.com 2>&1)"
check_eq "SNI alpha: certd's certificate" "$(stored_fp alpha.example.com)" "$(served_fp alpha.example.com)"
check_eq "SNI beta: certd's certificate" "$(stored_fp beta.example.com)" "$(served_fp www.beta.example.com)"
check_eq "SNI under the wildcard: certd's certificate" "$(stored_fp '*.gamma.example.com')" "$(served_fp y.gamma.example.com)"

# --- a renewal reaches HAProxy through sync --watch --------------------------------------------
"$CERTCTL_BIN" sync --out-dir "$OUT" --watch --reload "sh -c 'kill -USR2 \"\$(cat $HA/haproxy.pid)\"'" \
    > "$T_DIR/watch.log" 2>&1 &
WATCH_PID=$!
check "--watch follows the feed" wait_for 20 "[ \"\$(jq -r .last_event_id '$OUT/.sync-state')\" != null ]"
old_serial=$(cc domain show '*.gamma.example.com' --json | jq -r .certificate.serial)
cc renew '*.gamma.example.com' >/dev/null
check "*.gamma.example.com renewed" wait_for 60 \
    "[ \"\$(\"\$CERTCTL_BIN\" domain show '*.gamma.example.com' --json | jq -r .certificate.serial)\" != '$old_serial' ]"
new_fp=$(stored_fp '*.gamma.example.com')
check "HAProxy serves the renewed certificate within 15 s, no manual step" wait_for 15 \
    "[ \"\$(served_fp z.gamma.example.com)\" = '$new_fp' ]"
check_eq "and it verifies" "served z.gamma.example.com" "$(https_get z.gamma.example.com 2>&1)"
check_eq "the other domains are unchanged" "$(stored_fp alpha.example.com)" "$(served_fp alpha.example.com)"
check "sync reported the reload" grep -q '^reloaded: ' "$T_DIR/watch.log"

kill -TERM "$WATCH_PID"
rc=0; wait "$WATCH_PID" || rc=$?
WATCH_PID=
check_eq "sync --watch exits 0 on SIGTERM" 0 "$rc"
kill -TERM "$HAPROXY_PID" 2>/dev/null || true
wait "$HAPROXY_PID" 2>/dev/null || true
HAPROXY_PID=
finish
