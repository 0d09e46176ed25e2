#!/usr/bin/env bash
# nginx terminating TLS for three domains (one wildcard) from `certctl sync`'s files, SNI choosing
# the certificate: a client trusting only Pebble's root verifies each name and gets certd's
# certificate; after a renewal, `certctl sync --watch --reload "nginx -s reload ..."` delivers the
# new one and nginx serves it with no manual step.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pebble.sh"
. "$(dirname "$0")/fleet.sh"

NGINX_BIN=${NGINX_BIN:-$(command -v nginx || echo /usr/sbin/nginx)}
[ -x "$NGINX_BIN" ] || { fail "nginx is installed (scripts/install-deps)"; finish; }
NGINX_PID=
WATCH_PID=
nginx_cleanup() { stop_pids "$WATCH_PID" "$NGINX_PID"; }
exit_trap_add nginx_cleanup

fleet_start

_pebble_pick_ports 1 || { fail "free port found"; finish; }
PORT=${_pebble_ports[0]}
NX=$T_DIR/nginx
mkdir -p "$NX/tmp"
server_block() { # server_block DIR NAMES...
    local dir=$1; shift
    cat <<EOF
    server {
        listen 127.0.0.1:$PORT ssl;
        server_name $*;
        ssl_certificate     $OUT/$dir/fullchain.pem;
        ssl_certificate_key $OUT/$dir/privkey.pem;
        location / { return 200 "served \$ssl_server_name by $dir\n"; }
    }
EOF
}
# A master process, so `nginx -s reload` (SIGHUP through the pid file) works; still in the
# foreground and with every path in the test's directory.
cat > "$NX/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes 1;
pid $NX/nginx.pid;
error_log $NX/error.log;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path $NX/tmp;
    proxy_temp_path $NX/tmp;
    fastcgi_temp_path $NX/tmp;
    uwsgi_temp_path $NX/tmp;
    scgi_temp_path $NX/tmp;
$(server_block alpha.example.com alpha.example.com)
$(server_block beta.example.com beta.example.com www.beta.example.com)
$(server_block _.gamma.example.com '*.gamma.example.com')
}
EOF
check "the nginx configuration is valid" "$NGINX_BIN" -t -q -c "$NX/nginx.conf" -p "$NX"
"$NGINX_BIN" -c "$NX/nginx.conf" -p "$NX" >>"$NX/stderr.log" 2>&1 &
NGINX_PID=$!
if ! wait_for 10 "ss -Htln | awk '{print \$4}' | grep -qx '127.0.0.1:$PORT'"; then
    fail "nginx listens on 127.0.0.1:$PORT" "$(cat "$NX/error.log" "$NX/stderr.log" 2>/dev/null | tail -n 20)"
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

check_eq "alpha.example.com verifies with Pebble's root" "served alpha.example.com by alpha.example.com" "$(https_get alpha.example.com 2>&1)"
check_eq "www.beta.example.com (an alt name) verifies" "served www.beta.example.com by beta.example.com" "$(https_get www.beta.example.com 2>&1)"
check_eq "x.gamma.example.com (the wildcard) verifies" "served x.gamma.example.com by _.gamma.example.com" "$(https_get x.gamma.example.com 2>&1)"
check_eq "SNI alpha: certd's certificate" "$(stored_fp alpha.example.com)" "$(served_fp alpha.example.com)"
check_eq "SNI beta: certd's certificate" "$(stored_fp beta.example.com)" "$(served_fp beta.example.com)"
check_eq "SNI under the wildcard: certd's certificate" "$(stored_fp '*.gamma.example.com')" "$(served_fp y.gamma.example.com)"

# --- a renewal reaches nginx through sync --watch ----------------------------------------------
"$CERTCTL_BIN" sync --out-dir "$OUT" --watch --reload "$NGINX_BIN -c '$NX/nginx.conf' -p '$NX' -s reload" \
    > "$T_DIR/watch.log" 2>&1 &
WATCH_PID=$!
check "--watch follows the feed" wait_for 20 "[ \"\$(jq -r .last_event_id '$OUT/.sync-state')\" != null ]"
old_serial=$(cc domain show beta.example.com --json | jq -r .certificate.serial)
cc renew beta.example.com >/dev/null
check "beta.example.com renewed" wait_for 60 \
    "[ \"\$(\"\$CERTCTL_BIN\" domain show beta.example.com --json | jq -r .certificate.serial)\" != '$old_serial' ]"
new_fp=$(stored_fp beta.example.com)
check "nginx serves the renewed certificate within 15 s, no manual step" wait_for 15 \
    "[ \"\$(served_fp www.beta.example.com)\" = '$new_fp' ]"
check_eq "and it verifies" "served beta.example.com by beta.example.com" "$(https_get beta.example.com 2>&1)"
check_eq "the other domains are unchanged" "$(stored_fp alpha.example.com)" "$(served_fp alpha.example.com)"
check "sync reported the reload" grep -q '^reloaded: ' "$T_DIR/watch.log"

kill -TERM "$WATCH_PID"
rc=0; wait "$WATCH_PID" || rc=$?
WATCH_PID=
check_eq "sync --watch exits 0 on SIGTERM" 0 "$rc"
"$NGINX_BIN" -c "$NX/nginx.conf" -p "$NX" -s quit 2>/dev/null || true
wait "$NGINX_PID" 2>/dev/null || true
NGINX_PID=
finish
