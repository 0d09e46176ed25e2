#!/usr/bin/env bash
# HAProxy (Debian's 2.6) terminating TLS for three domains (one wildcard) from the crt-list that
# `certctl sync` keeps (DIR/haproxy.crt-list naming each DIR/NAME/combined.pem with its server
# names), SNI choosing the certificate: a client trusting only Pebble's root verifies each name
# and gets certd's certificate; after a renewal, `certctl sync --watch` with a reload command
# (SIGUSR2 to HAProxy's master process) delivers the new one with no manual step. Then the
# runtime API: `sync --watch --haproxy-socket` with no reload command updates a renewal, adds a
# new domain and removes one in HAProxy's memory (same worker, uptime growing), and two renewals
# back to back, with a stale transaction pending, each land under their own name (2.6.12's bug).
# Last, a fresh host: sync before any certificate leaves an empty crt-list, HAProxy started on it
# (strict-sni) serves a domain issued later, through the runtime API and after a reload.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pebble.sh"
. "$(dirname "$0")/fleet.sh"

HAPROXY_BIN=${HAPROXY_BIN:-$(command -v haproxy || echo /usr/sbin/haproxy)}
[ -x "$HAPROXY_BIN" ] || { fail "haproxy is installed (scripts/install-deps)"; finish; }
HAPROXY_PID=
WATCH_PID=
haproxy_cleanup() { stop_pids "$WATCH_PID" "$HAPROXY_PID"; }
exit_trap_add haproxy_cleanup

fleet_start

_pebble_pick_ports 1 || { fail "free port found"; finish; }
PORT=${_pebble_ports[0]}
HA=$T_DIR/haproxy
mkdir -p "$HA"
check_eq "the crt-list names the three combined files with their names" \
    "$OUT/_.gamma.example.com/combined.pem *.gamma.example.com
$OUT/alpha.example.com/combined.pem alpha.example.com
$OUT/beta.example.com/combined.pem beta.example.com www.beta.example.com" "$(cat "$OUT/haproxy.crt-list")"
# ha_config NAME CRTLIST [SOCKET] [BIND_EXTRA]: $HA/NAME.cfg, a TLS frontend on $PORT that
# answers with the SNI it served, its certificates from CRTLIST; an admin stats socket when
# SOCKET is given.
ha_config() {
    local name=$1 list=$2 sock=${3:-} extra=${4:-}
    {
        printf 'global\n    master-worker\n    pidfile %s/%s.pid\n' "$HA" "$name"
        [ -z "$sock" ] || printf '    stats socket %s mode 600 level admin\n' "$sock"
        printf 'defaults\n    mode http\n    timeout connect 5s\n    timeout client 30s\n'
        printf '    timeout server 30s\nfrontend fe_https\n'
        printf '    bind 127.0.0.1:%s ssl crt-list %s%s\n' "$PORT" "$list" "${extra:+ $extra}"
        printf '    http-request return status 200 content-type text/plain lf-string "served %%[ssl_fc_sni]\\n"\n'
    } > "$HA/$name.cfg"
}
ha_config haproxy "$OUT/haproxy.crt-list"
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

# --- the runtime API: sync --watch --haproxy-socket, no reload ---------------------------------
# HAProxy with an admin stats socket; certctl replaces certificates (set/commit ssl cert), adds
# new domains (new ssl cert + add ssl crt-list) and takes removed ones out, all in memory.
SOCK=$T_DIR/haproxy.sock
ha_config haproxy-rt "$OUT/haproxy.crt-list" "$SOCK"
check "the runtime-API configuration is valid" "$HAPROXY_BIN" -c -q -f "$HA/haproxy-rt.cfg"
"$HAPROXY_BIN" -db -f "$HA/haproxy-rt.cfg" >>"$HA/haproxy-rt.log" 2>&1 &
HAPROXY_PID=$!
if ! wait_for 10 "[ -S '$SOCK' ] && ss -Htln | awk '{print \$4}' | grep -qx '127.0.0.1:$PORT'"; then
    fail "haproxy (runtime API) listens on 127.0.0.1:$PORT" "$(tail -n 20 "$HA/haproxy-rt.log")"
    finish
fi
hactl() { printf '%s\n' "$1" | socat -t 5 - "UNIX-CONNECT:$SOCK"; }
info() { hactl "show info" | awk -F': ' -v k="$1" '$1 == k {print $2}'; }
file_fp() { openssl x509 -in "$1" -noout -fingerprint -sha256 | sed 's/.*=//; s/://g' | tr 'A-F' 'a-f'; }
master_pid=$(cat "$HA/haproxy-rt.pid")
worker_pid=$(info Pid)
uptime0=$(info Uptime_sec)
check "HAProxy's worker answers on the stats socket" test -n "$worker_pid"
check_eq "the pidfile names the master we started" "$HAPROXY_PID" "$master_pid"
sleep 1 # uptime must be seen to grow

"$CERTCTL_BIN" sync --out-dir "$OUT" --watch --haproxy-socket "$SOCK" > "$T_DIR/watch-rt.log" 2>&1 &
WATCH_PID=$!
old_fp=$(stored_fp alpha.example.com)
cc renew alpha.example.com >/dev/null
check "alpha.example.com renewed" wait_for 60 "[ \"\$(stored_fp alpha.example.com)\" != '$old_fp' ]"
new_fp=$(stored_fp alpha.example.com)
check "HAProxy serves the renewal through the runtime API within 15 s" wait_for 15 \
    "[ \"\$(served_fp alpha.example.com)\" = '$new_fp' ]"
check_eq "and it verifies with Pebble's root" "served alpha.example.com" "$(https_get alpha.example.com 2>&1)"
check "sync reported the runtime update" grep -qx 'haproxy: updated alpha.example.com' "$T_DIR/watch-rt.log"
check_eq "the files on disk carry it too" "$new_fp" "$(file_fp "$OUT/alpha.example.com/cert.pem")"
check_eq "HAProxy's worker was not replaced (same PID)" "$worker_pid" "$(info Pid)"
check "and its uptime kept growing (no reload)" test "$(info Uptime_sec)" -gt "$uptime0"
check_eq "the master is the same process" "$master_pid" "$(cat "$HA/haproxy-rt.pid")"
check "the master is alive" kill -0 "$master_pid"

# A domain added later: new ssl cert + add ssl crt-list.
cc domain add delta.example.com --challenge http-01 >/dev/null
check "delta.example.com issued" wait_active delta.example.com
delta_fp=$(stored_fp delta.example.com)
check "HAProxy serves the new domain within 15 s (no reload)" wait_for 15 \
    "[ \"\$(served_fp delta.example.com)\" = '$delta_fp' ]"
check_eq "and it verifies" "served delta.example.com" "$(https_get delta.example.com 2>&1)"
check_match "HAProxy's crt-list holds it with its name" "$OUT/delta.example.com/combined.pem:[0-9]+ delta.example.com" \
    "$(hactl "show ssl crt-list -n $OUT/haproxy.crt-list")"
check "the crt-list on disk names it too" grep -qx "$OUT/delta.example.com/combined.pem delta.example.com" "$OUT/haproxy.crt-list"

# HAProxy 2.6.12's transaction bug: a pending update for one file captures the next `set` for
# another ("Transaction updated for certificate <the first>") and the commit installs it under
# the first name. Leave a stale one behind (the wildcard's file with beta's certificate), then
# renew alpha and beta back to back: each name must serve its own, the wildcard too.
gamma_fp=$(stored_fp '*.gamma.example.com')
stale=$(printf 'set ssl cert %s <<\n%s\n\n' "$OUT/_.gamma.example.com/combined.pem" \
    "$(cat "$OUT/beta.example.com/combined.pem")" | socat -t 5 - "UNIX-CONNECT:$SOCK")
check_match "a stale transaction for the wildcard's file is pending" "Transaction created" "$stale"
old_a=$(stored_fp alpha.example.com)
old_b=$(stored_fp beta.example.com)
cc renew alpha.example.com >/dev/null
cc renew beta.example.com >/dev/null
check "both renewed" wait_for 60 \
    "[ \"\$(stored_fp alpha.example.com)\" != '$old_a' ] && [ \"\$(stored_fp beta.example.com)\" != '$old_b' ]"
new_a=$(stored_fp alpha.example.com)
new_b=$(stored_fp beta.example.com)
check "alpha serves alpha's new certificate" wait_for 15 "[ \"\$(served_fp alpha.example.com)\" = '$new_a' ]"
check "beta serves beta's new certificate" wait_for 15 "[ \"\$(served_fp www.beta.example.com)\" = '$new_b' ]"
check_eq "alpha verifies" "served alpha.example.com" "$(https_get alpha.example.com 2>&1)"
check_eq "beta verifies" "served beta.example.com" "$(https_get beta.example.com 2>&1)"
check_eq "delta still serves its own" "$delta_fp" "$(served_fp delta.example.com)"
check_eq "the wildcard still serves its own" "$gamma_fp" "$(served_fp q.gamma.example.com)"
check "no runtime command was refused (the stale transaction was aborted first)" \
    sh -c "! grep -q 'HAProxy' '$T_DIR/watch-rt.log'"
check "no transaction is left pending" sh -c "! printf 'show ssl cert\n' | socat -t 5 - 'UNIX-CONNECT:$SOCK' | grep -q '^# transaction'"

# A removed domain leaves HAProxy's memory too (del ssl crt-list, del ssl cert).
cc domain remove delta.example.com >/dev/null
check "delta's folder is deleted" wait_for 15 "[ ! -e '$OUT/delta.example.com' ]"
check "HAProxy forgets delta's certificate" wait_for 10 \
    "! printf 'show ssl cert\n' | socat -t 5 - 'UNIX-CONNECT:$SOCK' | grep -q delta.example.com"
check "and no longer serves it for delta.example.com" test "$(served_fp delta.example.com)" != "$delta_fp"
check_eq "after all that, HAProxy's worker is still the same process" "$worker_pid" "$(info Pid)"

kill -TERM "$WATCH_PID"
rc=0; wait "$WATCH_PID" || rc=$?
WATCH_PID=
check_eq "sync --watch --haproxy-socket exits 0 on SIGTERM" 0 "$rc"

# A one-shot sync with a socket nobody listens on and no --reload fails (exit 1); the files are
# written all the same.
old_fp=$(stored_fp alpha.example.com)
cc renew alpha.example.com >/dev/null
check "alpha renewed once more" wait_for 60 "[ \"\$(stored_fp alpha.example.com)\" != '$old_fp' ]"
rc=0; cc sync --out-dir "$OUT" --haproxy-socket "$T_DIR/nobody.sock" > "$T_DIR/sync-nosock.out" 2>&1 || rc=$?
check_eq "an unreachable HAProxy socket without --reload: exit 1" 1 "$rc"
check_eq "the new files are written anyway" "$(stored_fp alpha.example.com)" "$(file_fp "$OUT/alpha.example.com/cert.pem")"

kill -TERM "$HAPROXY_PID" 2>/dev/null || true
wait "$HAPROXY_PID" 2>/dev/null || true
HAPROXY_PID=

# --- a fresh host: HAProxy starts on an empty crt-list ----------------------------------------
# sync runs before certd has any certificate for the host's domains: the crt-list is there but
# empty. With strict-sni (as in packaging/examples/haproxy/haproxy.cfg) HAProxy 2.6 starts
# anyway; a domain issued afterwards is served through the runtime API, another after a reload,
# and the runtime API can remove the list's first entry (HAProxy's default without strict-sni).
FRESH=$T_DIR/fresh
FRESH_DOMAINS=epsilon.example.com,zeta.example.com
rc=0; cc sync --out-dir "$FRESH" --domains "$FRESH_DOMAINS" > "$T_DIR/sync-fresh.out" 2>&1 || rc=$?
check_eq "sync before any certificate exists exits 0" 0 "$rc"
check "it leaves an empty crt-list" test -f "$FRESH/haproxy.crt-list" -a ! -s "$FRESH/haproxy.crt-list"
rc=0; cc --socket "$T_DIR/nobody.sock" sync --out-dir "$T_DIR/fresh-nocertd" > /dev/null 2>&1 || rc=$?
check_eq "with certd unreachable: exit 3" 3 "$rc"
check "but the empty crt-list is there for HAProxy all the same" \
    test -f "$T_DIR/fresh-nocertd/haproxy.crt-list" -a ! -s "$T_DIR/fresh-nocertd/haproxy.crt-list"
SOCK=$T_DIR/haproxy-fresh.sock # hactl and info talk to it
ha_config haproxy-fresh "$FRESH/haproxy.crt-list" "$SOCK" strict-sni
sed 's/ strict-sni$//' "$HA/haproxy-fresh.cfg" > "$HA/haproxy-nostrict.cfg"
check "without strict-sni, HAProxy refuses the empty crt-list (the problem)" \
    sh -c "! '$HAPROXY_BIN' -c -q -f '$HA/haproxy-nostrict.cfg' 2>/dev/null"
check "with strict-sni the configuration is valid" "$HAPROXY_BIN" -c -q -f "$HA/haproxy-fresh.cfg"
"$HAPROXY_BIN" -db -f "$HA/haproxy-fresh.cfg" >>"$HA/haproxy-fresh.log" 2>&1 &
HAPROXY_PID=$!
if ! wait_for 10 "[ -S '$SOCK' ] && ss -Htln | awk '{print \$4}' | grep -qx '127.0.0.1:$PORT'"; then
    fail "haproxy starts on the empty crt-list" "$(tail -n 20 "$HA/haproxy-fresh.log")"
    finish
fi
pass "haproxy starts on the empty crt-list and listens"
check "and loads that list" sh -c "printf 'show ssl crt-list\n' | socat -t 5 - 'UNIX-CONNECT:$SOCK' | grep -qx '$FRESH/haproxy.crt-list'"
check_eq "no certificate is served yet (a TLS alert, not some other certificate)" "" \
    "$(served_fp epsilon.example.com)"
worker_pid=$(info Pid)

"$CERTCTL_BIN" sync --out-dir "$FRESH" --domains "$FRESH_DOMAINS" --watch --haproxy-socket "$SOCK" \
    > "$T_DIR/watch-fresh.log" 2>&1 &
WATCH_PID=$!
cc domain add epsilon.example.com --challenge http-01 >/dev/null
check "epsilon.example.com issued" wait_active epsilon.example.com
eps_fp=$(stored_fp epsilon.example.com)
check "HAProxy started on the empty list serves the new domain within 15 s (runtime API)" \
    wait_for 15 "[ \"\$(served_fp epsilon.example.com)\" = '$eps_fp' ]"
check_eq "and it verifies with Pebble's root" "served epsilon.example.com" "$(https_get epsilon.example.com 2>&1)"
check "sync added it through the runtime API" grep -qx 'haproxy: updated epsilon.example.com' "$T_DIR/watch-fresh.log"
check_eq "with no reload (same worker)" "$worker_pid" "$(info Pid)"
kill -TERM "$WATCH_PID"
rc=0; wait "$WATCH_PID" || rc=$?
WATCH_PID=
check_eq "sync --watch --haproxy-socket exits 0 on SIGTERM" 0 "$rc"

# The reload path: another domain, a one-shot sync with a reload command (SIGUSR2 to the master).
cc domain add zeta.example.com --challenge http-01 >/dev/null
check "zeta.example.com issued" wait_active zeta.example.com
zeta_fp=$(stored_fp zeta.example.com)
rc=0; cc sync --out-dir "$FRESH" --domains "$FRESH_DOMAINS" \
    --reload "sh -c 'kill -USR2 \"\$(cat $HA/haproxy-fresh.pid)\"'" > "$T_DIR/sync-fresh2.out" 2>&1 || rc=$?
check_eq "sync with the reload command exits 0" 0 "$rc"
check "it reloaded HAProxy" grep -q '^reloaded: ' "$T_DIR/sync-fresh2.out"
check "after the reload HAProxy serves zeta.example.com within 15 s" \
    wait_for 15 "[ \"\$(served_fp zeta.example.com)\" = '$zeta_fp' ]"
check_eq "and it verifies with Pebble's root" "served zeta.example.com" "$(https_get zeta.example.com 2>&1)"
check_eq "epsilon is served too, now from the files" "$eps_fp" "$(served_fp epsilon.example.com)"
check "a new worker took over" wait_for 10 "[ \"\$(info Pid)\" != '$worker_pid' ]"

# epsilon is the list's first line now: strict-sni lets the runtime API remove it.
cc domain remove epsilon.example.com >/dev/null
rc=0; cc sync --out-dir "$FRESH" --domains "$FRESH_DOMAINS" --haproxy-socket "$SOCK" \
    > "$T_DIR/sync-fresh3.out" 2>&1 || rc=$?
check_eq "sync removing the list's first entry through the runtime API exits 0" 0 "$rc"
check "HAProxy took it out" grep -qx 'haproxy: removed epsilon.example.com' "$T_DIR/sync-fresh3.out"
check_eq "and no longer serves it" "" "$(served_fp epsilon.example.com)"
check_eq "zeta is still served" "$zeta_fp" "$(served_fp zeta.example.com)"

kill -TERM "$HAPROXY_PID" 2>/dev/null || true
wait "$HAPROXY_PID" 2>/dev/null || true
HAPROXY_PID=
finish
