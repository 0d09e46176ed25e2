# A private Let's Encrypt Pebble (ACME test CA) plus pebble-challtestsrv (its mock DNS server)
# on loopback, for the end-to-end tests and the demo. Source it AFTER lib.sh: it uses T_DIR,
# wait_for, log and fail, and chains pebble_stop into lib.sh's EXIT trap.
#
#   pebble_start [NAME=VALUE...]   start both, on free random loopback ports (the arguments are
#                                  extra environment for pebble, e.g. PEBBLE_WFE_NONCEREJECT=0)
#   pebble_stop                    stop both (also run on exit)
#   pebble_restart_fresh           restart pebble alone on the same ports: it forgets every
#                                  account, order and certificate and makes new issuance roots
#   pebble_root_pem FILE           Pebble's current issuance root (+ intermediate) into FILE
#   pebble_cert_status SERIAL_HEX  "Valid" or "Revoked" for a certificate Pebble issued
#   certd_pebble_config_text       [acme], [ca.pebble] and [challenge.*] INI text for certd
#
# After pebble_start these are exported:
#   PEBBLE_DIR_URL         https://127.0.0.1:$PEBBLE_PORT/dir
#   PEBBLE_PORT            ACME (HTTPS) port (all ports random in 20000-59999, outside the
#                          kernel's ephemeral range when it leaves room)
#   PEBBLE_MGMT_PORT       management (HTTPS) port: /roots/0, /intermediates/0,
#                          /cert-status-by-serial/HEX
#   PEBBLE_CA_BUNDLE       PEM file trusting the HTTPS certificate of both Pebble ports
#                          (a CA made here with certtool; NOT the issuance root)
#   CTS_MGMT_URL           http://127.0.0.1:$port, challtestsrv's management API
#   CTS_DNS_PORT           challtestsrv's DNS server (UDP and TCP), which Pebble's VA asks
#   CERTD_HTTP01_PORT      where certd's http-01 responder must listen (Pebble's "httpPort")
#   CERTD_TLSALPN01_PORT   where certd's tls-alpn-01 responder must listen (Pebble's "tlsPort")
#   PEBBLE_PID, CTS_PID    the two processes
#
# Knobs read from the environment:
#   PEBBLE_CERT_VALIDITY   seconds: "certificateValidityPeriod" of issued certificates
#   PEBBLE_WFE_NONCEREJECT percentage of good nonces Pebble rejects as bad (default 5: leave it
#                          in tests, certd must retry badNonce; 0 for benchmarks)
#   PEBBLE_AUTHZREUSE      percentage of authz reuse (Pebble's default 50)
#   PEBBLE_VA_NOSLEEP      default 1 here (Pebble otherwise sleeps 0-15 s before each validation)
#
# challtestsrv answers every A query with 127.0.0.1 and no AAAA, so Pebble's VA validates any
# test name against certd's responders on 127.0.0.1:$CERTD_HTTP01_PORT / $CERTD_TLSALPN01_PORT.
# Everything listens on 127.0.0.1 only.

PEBBLE_SH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PEBBLE_REPO_DIR=${CERTD_SOURCE_DIR:-$(cd "$PEBBLE_SH_DIR/../.." && pwd)}
PEBBLE_BIN=${PEBBLE_BIN:-/usr/bin/pebble}
CTS_BIN=${CTS_BIN:-/usr/bin/pebble-challtestsrv}
PEBBLE_PID=
CTS_PID=
_pebble_env=()          # extra environment of pebble_start, kept for pebble_restart_fresh
_pebble_work=           # $T_DIR/pebble: certificates and config
_pebble_ports=()
_cts_mgmt_port=

# --- ports ----------------------------------------------------------------------------------

# Ports some socket holds now (TCP listeners, UDP sockets, and TCP in any state so a port in
# TIME_WAIT is not reused for a listener without SO_REUSEADDR), one a line.
_pebble_used_ports() {
    ss -Htan 2>/dev/null | awk '{ n = split($4, a, ":"); print a[n] }'
    ss -Huan 2>/dev/null | awk '{ n = split($4, a, ":"); print a[n] }'
}

# _pebble_pick_ports N: sets _pebble_ports to N distinct random ports in 20000..59999 that
# nothing uses right now, outside the kernel's ephemeral range when possible (an outgoing
# connection could take such a port before certd binds it). Another process may still take
# one before it is bound: callers retry.
_pebble_pick_ports() {
    local n=$1 p used tries=0 eph_lo=32768 eph_hi=60999
    read -r eph_lo eph_hi </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || true
    used=" $(_pebble_used_ports | sort -un | tr '\n' ' ') "
    _pebble_ports=()
    while [ "${#_pebble_ports[@]}" -lt "$n" ]; do
        tries=$((tries + 1))
        [ "$tries" -le 1000 ] || { log "pebble: no free ports found"; return 1; }
        p=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
        [ "$tries" -le 500 ] && [ "$p" -ge "$eph_lo" ] && [ "$p" -le "$eph_hi" ] && continue
        [[ $used == *" $p "* ]] && continue
        [[ " ${_pebble_ports[*]} " == *" $p "* ]] && continue
        _pebble_ports+=("$p")
    done
}

# --- certificates ---------------------------------------------------------------------------

# A CA and a server certificate for 127.0.0.1 and localhost, for Pebble's two HTTPS listeners
# (the Debian package ships no test certificate). Made once per T_DIR. The CA is what
# [ca.pebble] ca_bundle trusts; it has nothing to do with the roots Pebble issues under.
_pebble_make_certs() {
    local d=$_pebble_work
    [ -s "$d/server.pem" ] && [ -s "$d/server.key" ] && [ -s "$d/ca.pem" ] && return 0
    cat >"$d/ca.tmpl" <<'EOF'
cn = "certd test Pebble HTTPS CA"
ca
cert_signing_key
expiration_days = 30
EOF
    cat >"$d/server.tmpl" <<'EOF'
cn = "127.0.0.1"
ip_address = "127.0.0.1"
dns_name = "localhost"
tls_www_server
signing_key
expiration_days = 30
EOF
    (
        umask 077
        certtool --generate-privkey --key-type ecdsa --curve secp256r1 --no-text \
            --outfile "$d/ca.key" &&
        certtool --generate-self-signed --load-privkey "$d/ca.key" --template "$d/ca.tmpl" \
            --no-text --outfile "$d/ca.pem" &&
        certtool --generate-privkey --key-type ecdsa --curve secp256r1 --no-text \
            --outfile "$d/server.key" &&
        certtool --generate-certificate --load-privkey "$d/server.key" \
            --load-ca-privkey "$d/ca.key" --load-ca-certificate "$d/ca.pem" \
            --template "$d/server.tmpl" --no-text --outfile "$d/server.pem"
    ) >"$d/certtool.log" 2>&1 || { log "pebble: certtool failed: $(tail -n 5 "$d/certtool.log")"; return 1; }
    # certd may run as another user (privilege-drop tests): it must read the bundle.
    chmod 0644 "$d/ca.pem" "$d/server.pem"
}

# --- configuration --------------------------------------------------------------------------

# Whether this pebble binary knows config field FIELD (Go struct field name, e.g. RetryAfter):
# Debian's 2.4 has no RetryAfter; it ignores unknown JSON keys silently, so ask the binary.
_pebble_has_field() {
    grep -aq "$1 " "$PEBBLE_BIN" 2>/dev/null
}

_pebble_write_config() {
    local extra=()
    if [ -n "${PEBBLE_CERT_VALIDITY:-}" ]; then
        [[ $PEBBLE_CERT_VALIDITY =~ ^[1-9][0-9]*$ ]] ||
            { log "pebble: PEBBLE_CERT_VALIDITY must be a number of seconds"; return 1; }
        extra+=(--argjson validity "$PEBBLE_CERT_VALIDITY")
    else
        extra+=(--argjson validity null)
    fi
    if _pebble_has_field RetryAfter; then
        extra+=(--argjson retry true)
    else
        extra+=(--argjson retry false)
    fi
    jq -n --arg listen "127.0.0.1:$PEBBLE_PORT" --arg mgmt "127.0.0.1:$PEBBLE_MGMT_PORT" \
        --arg cert "$_pebble_work/server.pem" --arg key "$_pebble_work/server.key" \
        --argjson http "$CERTD_HTTP01_PORT" --argjson tls "$CERTD_TLSALPN01_PORT" "${extra[@]}" '
        {pebble: ({
            listenAddress: $listen,
            managementListenAddress: $mgmt,
            certificate: $cert,
            privateKey: $key,
            httpPort: $http,
            tlsPort: $tls,
            ocspResponderURL: "",
            externalAccountBindingRequired: false
        }
        + (if $retry then {retryAfter: {authz: 3, order: 5}} else {} end)
        + (if $validity != null then {certificateValidityPeriod: $validity} else {} end))}' \
        >"$_pebble_work/pebble-config.json"
}

# --- processes ------------------------------------------------------------------------------

_pebble_curl() { curl -sS --max-time 5 --cacert "$PEBBLE_CA_BUNDLE" "$@"; }

_cts_up() {
    curl -fsS --max-time 2 -o /dev/null -X POST -d '{"host":"probe.invalid."}' \
        "$CTS_MGMT_URL/dns-request-history" 2>/dev/null
}
_pebble_up() {
    _pebble_curl -f -o /dev/null "$PEBBLE_DIR_URL" 2>/dev/null &&
        _pebble_curl -f -o /dev/null "https://127.0.0.1:$PEBBLE_MGMT_PORT/roots/0" 2>/dev/null
}
_pebble_alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null; }

# _pebble_reap PID: SIGTERM, up to 10 s, then SIGKILL; always reaps our child.
_pebble_reap() {
    local pid=$1
    [ -n "$pid" ] || return 0
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        if ! wait_for 10 "! kill -0 $pid 2>/dev/null"; then
            log "pebble: pid $pid ignored SIGTERM, sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    wait "$pid" 2>/dev/null || true
}

# _pebble_owns PID PROTO PORT: whether PID itself has PORT bound on 127.0.0.1 (PROTO t or u).
# The readiness probes alone could be answered by another test's server on a port we lost.
_pebble_owns() {
    ss -Hln"$2"p 2>/dev/null | grep -F " 127.0.0.1:$3 " | grep -qF "pid=$1,"
}

# _pebble_settle NAME LOGFILE MARK PID PORTS...: after the probe, whether PID really holds
# its ports. 0 yes, 2 a port was taken (challtestsrv only logs a failed bind and keeps
# running; pebble exits), 1 anything else. Kills PID unless 0.
_pebble_settle() {
    local name=$1 log_file=$2 mark=$3 pid=$4 p ok=1
    shift 4
    if _pebble_alive "$pid"; then
        for p in "$@"; do _pebble_owns "$pid" "${p%%:*}" "${p#*:}" || ok=0; done
    else
        ok=0
    fi
    if tail -n "+$((mark + 1))" "$log_file" | grep -q 'address already in use'; then
        ok=2
    fi
    [ "$ok" -eq 1 ] && return 0
    _pebble_reap "$pid"
    [ "$ok" -eq 2 ] && return 2
    log "pebble: $name did not start"
    return 1
}

# Starts challtestsrv on the current CTS ports. 0 when it answers, 2 when a port was taken
# (pick others and retry), 1 on any other failure.
_cts_launch() {
    local log_file="$T_DIR/challtestsrv.log" mark rc=0
    mark=$(wc -l <"$log_file")
    "$CTS_BIN" -http01 "" -https01 "" -tlsalpn01 "" \
        -defaultIPv4 127.0.0.1 -defaultIPv6 "" \
        -dns01 "127.0.0.1:$CTS_DNS_PORT" -management "127.0.0.1:$_cts_mgmt_port" \
        >>"$log_file" 2>&1 &
    CTS_PID=$!
    wait_for 20 "_cts_up || ! _pebble_alive $CTS_PID" || true
    _pebble_settle challtestsrv "$log_file" "$mark" "$CTS_PID" \
        "t:$_cts_mgmt_port" "t:$CTS_DNS_PORT" "u:$CTS_DNS_PORT" || rc=$?
    [ "$rc" -eq 0 ] || CTS_PID=
    return "$rc"
}

# Starts pebble on the current ports, same return codes as _cts_launch.
_pebble_launch() {
    local log_file="$T_DIR/pebble.log" mark rc=0
    mark=$(wc -l <"$log_file")
    _pebble_write_config || return 1
    env PEBBLE_VA_NOSLEEP="${PEBBLE_VA_NOSLEEP:-1}" "${_pebble_env[@]}" \
        "$PEBBLE_BIN" -config "$_pebble_work/pebble-config.json" \
        -dnsserver "127.0.0.1:$CTS_DNS_PORT" -strict >>"$log_file" 2>&1 &
    PEBBLE_PID=$!
    wait_for 30 "_pebble_up || ! _pebble_alive $PEBBLE_PID" || true
    _pebble_settle pebble "$log_file" "$mark" "$PEBBLE_PID" \
        "t:$PEBBLE_PORT" "t:$PEBBLE_MGMT_PORT" || rc=$?
    [ "$rc" -eq 0 ] || PEBBLE_PID=
    return "$rc"
}

_pebble_set_ports() { # ACME MGMT DNS CTS-MGMT HTTP01 TLSALPN01
    export PEBBLE_PORT=$1 PEBBLE_MGMT_PORT=$2 CTS_DNS_PORT=$3
    _cts_mgmt_port=$4
    export CERTD_HTTP01_PORT=$5 CERTD_TLSALPN01_PORT=$6
    export PEBBLE_DIR_URL="https://127.0.0.1:$PEBBLE_PORT/dir"
    export CTS_MGMT_URL="http://127.0.0.1:$_cts_mgmt_port"
}

pebble_start() {
    local a rc attempt t0
    t0=$(date +%s%N)
    for a in "$@"; do
        [[ $a =~ ^[A-Za-z_][A-Za-z0-9_]*= ]] ||
            { log "pebble_start: '$a' is not NAME=VALUE"; return 1; }
    done
    pebble_stop     # a second pebble_start replaces the first environment
    _pebble_env=("$@")
    _pebble_work=$T_DIR/pebble
    mkdir -p "$_pebble_work"
    chmod 0755 "$_pebble_work"
    _pebble_make_certs || return 1
    export PEBBLE_CA_BUNDLE=$_pebble_work/ca.pem
    : >>"$T_DIR/pebble.log"
    : >>"$T_DIR/challtestsrv.log"

    # Ports are random and checked free, but a parallel test may grab one between the check
    # and the bind: then start again on new ports, a bounded number of times.
    for attempt in 1 2 3 4 5; do
        _pebble_pick_ports 6 || return 1
        _pebble_set_ports "${_pebble_ports[@]}"
        rc=0; _cts_launch || rc=$?
        [ "$rc" -eq 2 ] && { log "pebble: challtestsrv port taken, retrying"; continue; }
        [ "$rc" -eq 0 ] || break
        rc=0; _pebble_launch || rc=$?
        [ "$rc" -eq 0 ] && break
        _pebble_reap "$CTS_PID"; CTS_PID=
        [ "$rc" -eq 2 ] && { log "pebble: pebble port taken, retrying"; continue; }
        break
    done
    if [ "$rc" -ne 0 ]; then
        log "pebble: start failed (attempt $attempt)"
        _pebble_dump_logs
        return 1
    fi
    export PEBBLE_PID CTS_PID
    log "pebble up in $(( ($(date +%s%N) - t0) / 1000000 )) ms: $PEBBLE_DIR_URL, challtestsrv" \
        "dns 127.0.0.1:$CTS_DNS_PORT mgmt $CTS_MGMT_URL, certd http-01 :$CERTD_HTTP01_PORT" \
        "tls-alpn-01 :$CERTD_TLSALPN01_PORT"
}

pebble_stop() {
    _pebble_reap "$PEBBLE_PID"; PEBBLE_PID=
    _pebble_reap "$CTS_PID"; CTS_PID=
    return 0
}

# Pebble keeps everything in memory: a restart is a CA that never saw us. Same ports, same
# HTTPS certificate (so PEBBLE_CA_BUNDLE stays valid), new issuance roots.
pebble_restart_fresh() {
    local attempt rc=1
    [ -n "${PEBBLE_PORT:-}" ] || { log "pebble_restart_fresh: pebble_start first"; return 1; }
    _pebble_reap "$PEBBLE_PID"; PEBBLE_PID=
    for attempt in 1 2 3; do
        rc=0; _pebble_launch || rc=$?
        [ "$rc" -eq 2 ] || break
        # the old listener's port is not free yet: poll until it is
        wait_for 5 "! ss -Htln | grep -q ':$PEBBLE_PORT '" || true
    done
    [ "$rc" -eq 0 ] || { log "pebble: restart failed"; _pebble_dump_logs; return 1; }
    export PEBBLE_PID
}

# --- management interface -------------------------------------------------------------------

# pebble_root_pem FILE: the issuance root Pebble generated at start (/roots/0) followed by the
# intermediate (/intermediates/0), PEM. Both change on every (re)start.
pebble_root_pem() {
    local file=$1 base="https://127.0.0.1:$PEBBLE_MGMT_PORT"
    {
        _pebble_curl -f "$base/roots/0" && _pebble_curl -f "$base/intermediates/0"
    } >"$file.tmp" || { rm -f "$file.tmp"; return 1; }
    grep -q -- '-----BEGIN CERTIFICATE-----' "$file.tmp" || { rm -f "$file.tmp"; return 1; }
    chmod 0644 "$file.tmp"
    mv "$file.tmp" "$file"
}

# pebble_cert_status SERIAL_HEX: prints Valid or Revoked; fails (nothing printed) for a serial
# Pebble never issued (404) or a malformed one (400).
pebble_cert_status() {
    local serial=${1//:/} body
    [[ $serial =~ ^[0-9A-Fa-f]+$ ]] || return 1
    body=$(_pebble_curl -f "https://127.0.0.1:$PEBBLE_MGMT_PORT/cert-status-by-serial/$serial" \
        2>/dev/null) || return 1
    jq -er .Status <<<"$body"
}

# --- certd configuration --------------------------------------------------------------------

# The hook path as one systemd-style command-line word (docs/config.md, "Command lines").
_pebble_cmdline_quote() {
    local s=${1//\\/\\\\}
    printf '"%s"' "${s//\"/\\\"}"
}

certd_pebble_config_text() {
    cat <<EOF
[acme]
default_ca = pebble
contact = mailto:admin@example.com

[ca.pebble]
directory = $PEBBLE_DIR_URL
ca_bundle = $PEBBLE_CA_BUNDLE
terms_agreed = true

[challenge.http-01]
listen = 127.0.0.1:$CERTD_HTTP01_PORT

[challenge.tls-alpn-01]
listen = 127.0.0.1:$CERTD_TLSALPN01_PORT

[challenge.dns-01]
hook = $(_pebble_cmdline_quote "$PEBBLE_REPO_DIR/packaging/hooks/pebble-challtestsrv") --url $CTS_MGMT_URL
timeout = 10
EOF
}

# --- cleanup --------------------------------------------------------------------------------

_pebble_dump_logs() {
    local f
    for f in pebble.log challtestsrv.log; do
        [ -s "$T_DIR/$f" ] || continue
        log "$f (last 30 lines):"
        tail -n 30 "$T_DIR/$f" | sed 's/^/#   /'
    done
}

_pebble_on_exit() {
    if [ "${T_FAIL:-0}" -ne 0 ]; then _pebble_dump_logs; fi
    pebble_stop
}

# Run pebble_stop before whatever EXIT trap lib.sh (or the caller) installed, so T_DIR is
# still there and nothing outlives the test. Signals become exits so the EXIT trap runs.
exit_trap_add _pebble_on_exit
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

# pebble_kill_ca: stops Pebble alone (challtestsrv keeps running), as a CA outage; bring it back
# with pebble_restart_fresh (same ports, and a CA that has forgotten every account).
pebble_kill_ca() {
    _pebble_reap "$PEBBLE_PID"; PEBBLE_PID=
}
