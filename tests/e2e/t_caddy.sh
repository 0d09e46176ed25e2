#!/usr/bin/env bash
# Caddy (Debian's 2.6) serving certd's certificates through its get_certificate http manager,
# which calls GET /v1/sni?server_name=HOST during each TLS handshake. A client that trusts only
# Pebble's root must see the certificate certd holds, for an exact and a wildcard name, whatever
# the case of the name it sends, and the new one right after a renewal (Caddy asks on every
# handshake, caching nothing). Caddy speaks TCP only: first through a socat forwarder to the unix
# socket (as root, so certd sees an admin), then the fleet way, through certd's HTTPS listener
# with a scoped deployer token in the URL (Basic authentication) and SSL_CERT_FILE for its CA.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pebble.sh"

CADDY_BIN=${CADDY_BIN:-$(command -v caddy || true)}
SOCAT_BIN=${SOCAT_BIN:-$(command -v socat || true)}
[ -x "$CADDY_BIN" ] || { fail "caddy is installed (scripts/install-deps)"; finish; }
[ -x "$SOCAT_BIN" ] || { fail "socat is installed (scripts/install-deps)"; finish; }
CADDY_PID=
SOCAT_PID=
caddy_cleanup() { stop_pids "$CADDY_PID" "$SOCAT_PID"; }
# Before the traps lib.sh and pebble.sh chained (certd, Pebble, T_DIR), like pebble.sh does.
exit_trap_add caddy_cleanup

pebble_start
write_config "$(certd_pebble_config_text)"
start_certd
cc() { "$CERTCTL_BIN" "$@"; }
pebble_root_pem "$T_DIR/pebble-roots.pem"
openssl x509 -in "$T_DIR/pebble-roots.pem" -out "$T_DIR/pebble-root.pem"

wait_active() { wait_for "${2:-60}" "[ \"\$(\"\$CERTCTL_BIN\" domain show '$1' --json | jq -r .status)\" = active ]"; }
stored_fp() { cc domain show "$1" --json | jq -r .certificate.fingerprint_sha256; }

cc domain add shop.example.com --alt www.shop.example.com --challenge http-01 >/dev/null
cc domain add '*.apps.example.com' --challenge dns-01 >/dev/null
check "shop.example.com issued" wait_active shop.example.com
check "*.apps.example.com issued" wait_active '*.apps.example.com'

# Free loopback ports: the forwarder to certd's socket, Caddy's HTTPS, certd's HTTPS listener.
_pebble_pick_ports 3 || { fail "free ports found"; finish; }
FWD_PORT=${_pebble_ports[0]}
TLS_PORT=${_pebble_ports[1]}
API_PORT=${_pebble_ports[2]}

"$SOCAT_BIN" "TCP-LISTEN:$FWD_PORT,bind=127.0.0.1,reuseaddr,fork" "UNIX-CONNECT:$CERTD_SOCKET" \
    >>"$T_DIR/socat.log" 2>&1 &
SOCAT_PID=$!
check "forwarder answers certd's API over TCP" wait_for 10 \
    "curl -fsS http://127.0.0.1:$FWD_PORT/v1/health >/dev/null 2>&1"

# start_caddy URL [ENV...]: Caddy on 127.0.0.1:$TLS_PORT taking its certificates from URL.
start_caddy() {
    local url=$1; shift
    mkdir -p "$T_DIR/caddy"
    cat > "$T_DIR/caddy/Caddyfile" <<EOF
{
	auto_https off
	admin off
	storage file_system {
		root $T_DIR/caddy/data
	}
}
https://:$TLS_PORT {
	bind 127.0.0.1
	tls {
		get_certificate http $url
	}
	respond "served {host}"
}
EOF
    # HOME and XDG_*: Caddy writes nothing outside the test's directory.
    env HOME="$T_DIR/caddy" XDG_CONFIG_HOME="$T_DIR/caddy" XDG_DATA_HOME="$T_DIR/caddy" "$@" \
        "$CADDY_BIN" run --config "$T_DIR/caddy/Caddyfile" --adapter caddyfile \
        >>"$T_DIR/caddy.log" 2>&1 &
    CADDY_PID=$!
    if ! wait_for 20 "ss -Htln | awk '{print \$4}' | grep -qx '127.0.0.1:$TLS_PORT'"; then
        fail "caddy listens on 127.0.0.1:$TLS_PORT" "$(tail -n 20 "$T_DIR/caddy.log")"
        finish
    fi
}
stop_caddy() {
    kill -TERM "$CADDY_PID" 2>/dev/null || true
    wait "$CADDY_PID" 2>/dev/null || true
    CADDY_PID=
    wait_for 10 "! ss -Htln | awk '{print \$4}' | grep -qx '127.0.0.1:$TLS_PORT'" || true
}
start_caddy "http://127.0.0.1:$FWD_PORT/v1/sni"

# served_fp NAME [SNI]: SHA-256 of the leaf Caddy presents for SNI (default NAME), lower-case hex.
served_fp() {
    openssl s_client -connect "127.0.0.1:$TLS_PORT" -servername "${2:-$1}" </dev/null 2>/dev/null |
        openssl x509 -noout -fingerprint -sha256 2>/dev/null | sed 's/.*=//; s/://g' | tr 'A-F' 'a-f'
}
# https_get NAME: the page over HTTPS, verified against Pebble's root alone.
https_get() {
    curl -sS --max-time 10 --cacert "$T_DIR/pebble-root.pem" --resolve "$1:$TLS_PORT:127.0.0.1" \
        "https://$1:$TLS_PORT/"
}

shop_fp=$(stored_fp shop.example.com)
apps_fp=$(stored_fp '*.apps.example.com')
check_eq "exact name: Caddy serves certd's certificate" "$shop_fp" "$(served_fp shop.example.com)"
check_eq "exact name verifies with Pebble's root (chain complete)" "served shop.example.com" \
    "$(https_get shop.example.com 2>&1)"
check_eq "alt name" "$shop_fp" "$(served_fp www.shop.example.com)"
check_eq "wildcard name: Caddy serves certd's wildcard certificate" "$apps_fp" "$(served_fp api.apps.example.com)"
check_eq "wildcard name verifies with Pebble's root" "served api.apps.example.com" \
    "$(https_get api.apps.example.com 2>&1)"
check_eq "a server name in upper case (Caddy passes the client's case)" "$shop_fp" \
    "$(served_fp x WWW.SHOP.Example.COM)"
check "a name two labels under the wildcard fails the handshake" \
    bash -c "! curl -sS --max-time 10 --cacert '$T_DIR/pebble-root.pem' --resolve 'a.b.apps.example.com:$TLS_PORT:127.0.0.1' 'https://a.b.apps.example.com:$TLS_PORT/' >/dev/null 2>&1"
check "an unknown name fails the handshake" \
    bash -c "! curl -sS --max-time 10 --cacert '$T_DIR/pebble-root.pem' --resolve 'nope.example.net:$TLS_PORT:127.0.0.1' 'https://nope.example.net:$TLS_PORT/' >/dev/null 2>&1"

# Renewal: Caddy asks certd at every full handshake, so the next one gets the new certificate.
old_serial=$(cc domain show shop.example.com --json | jq -r .certificate.serial)
cc renew shop.example.com >/dev/null
check "renewal issued a new certificate" wait_for 60 \
    "[ \"\$(\"\$CERTCTL_BIN\" domain show shop.example.com --json | jq -r .certificate.serial)\" != '$old_serial' ]"
new_fp=$(stored_fp shop.example.com)
check "after renew, Caddy serves the new certificate within 5 s" wait_for 5 \
    "[ \"\$(served_fp shop.example.com)\" = '$new_fp' ]"
check_eq "after renew, it still verifies" "served shop.example.com" "$(https_get shop.example.com 2>&1)"

# --- the fleet way: certd's HTTPS listener, a scoped deployer token in the URL ---------------
# Caddy sends the URL's user:password as Basic authentication, and trusts the listener's private
# CA through SSL_CERT_FILE. The listener reuses the certificate pebble.sh made for 127.0.0.1.
stop_caddy
stop_certd
write_config "$(certd_pebble_config_text)" \
    "$(printf '[api.https]\nlisten = 127.0.0.1:%s\ncert = %s\nkey = %s\n' "$API_PORT" \
        "$_pebble_work/server.pem" "$_pebble_work/server.key")"
start_certd
# The scope must cover every name of the certificate (shop.example.com has www. as an alt name).
token=$(cc token create caddy --role deployer --domains 'shop.example.com,www.shop.example.com' --json | jq -r .token)
check_match "a deployer token scoped to shop.example.com and www.shop.example.com" '^certd_' "$token"
start_caddy "https://caddy:$token@127.0.0.1:$API_PORT/v1/sni" SSL_CERT_FILE="$PEBBLE_CA_BUNDLE"
check_eq "over HTTPS with the token: Caddy serves certd's certificate" "$new_fp" "$(served_fp shop.example.com)"
check_eq "over HTTPS: it verifies with Pebble's root" "served www.shop.example.com" \
    "$(https_get www.shop.example.com 2>&1)"
check "over HTTPS: a domain outside the token's scope fails the handshake" \
    bash -c "! curl -sS --max-time 10 --cacert '$T_DIR/pebble-root.pem' --resolve 'api.apps.example.com:$TLS_PORT:127.0.0.1' 'https://api.apps.example.com:$TLS_PORT/' >/dev/null 2>&1"
check "and that was certd's scope answer to the token (404, like an unknown name)" \
    grep -q 'GET /v1/sni by token:.*no certificate for api.apps.example.com' "$T_DIR/certd.log"
check "the token never reaches certd's log" bash -c "! grep -qF '$token' '$T_DIR/certd.log'"

check "the packaged Caddyfile example adapts" bash -c 'HOME="$1" "$2" adapt --config "$3" >/dev/null' _ \
    "$T_DIR/caddy" "$CADDY_BIN" "${CERTD_SOURCE_DIR:-$(dirname "$0")/../..}/packaging/examples/caddy/Caddyfile"

caddy_cleanup
CADDY_PID=
SOCAT_PID=
stop_certd
finish
