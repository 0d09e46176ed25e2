#!/usr/bin/env bash
# The Pebble environment itself (tests/e2e/pebble.sh) and the pebble-challtestsrv dns-01 hook:
# both servers up on loopback only, the directory and management endpoints answering, the hook
# really publishing and removing TXT records in challtestsrv's DNS, a fresh restart, a start that
# survives taken ports, certd accepting the generated configuration, and nothing left running.
# shellcheck source-path=SCRIPTDIR disable=SC2119
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pebble.sh"

hook="$PEBBLE_REPO_DIR/packaging/hooks/pebble-challtestsrv"

# dns_query NAME TYPE: asks challtestsrv's DNS server over UDP (bash /dev/udp, no dig needed)
# and prints the response as one line of hex. TYPE is the numeric RR type (16 = TXT).
dns_query() {
    local name=$1 type=$2 label q="$T_DIR/dns.query" fd resp
    {
        printf '\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00'  # id, RD, 1 question
        local IFS=.
        for label in $name; do printf '%b%s' "\\x$(printf %02x "${#label}")" "$label"; done
        printf '\x00\x00%b\x00\x01' "\\x$(printf %02x "$type")"   # root, QTYPE, QCLASS IN
    } >"$q"
    exec {fd}<>"/dev/udp/127.0.0.1/$CTS_DNS_PORT"
    cat "$q" >&"$fd"      # one write, one datagram
    resp=$(timeout 3 dd bs=4096 count=1 <&"$fd" 2>/dev/null | od -An -v -tx1 | tr -d ' \n')
    exec {fd}>&-
    printf '%s\n' "$resp"
}
hex() { printf %s "$1" | od -An -v -tx1 | tr -d ' \n'; }
dns_rcode() { printf '%d\n' "0x${1:7:1}"; }          # low nibble of byte 3
dns_ancount() { printf '%d\n' "0x${1:12:4}"; }        # bytes 6-7

# sockets_of PID: "proto local-address" of every socket PID listens on or has bound.
sockets_of() {
    ss -Htulnp 2>/dev/null | awk -v p="pid=$1," 'index($0, p) { print $1, $5 }' | sort -u
}

# --- start ---------------------------------------------------------------------------------
t0=$(date +%s%N)
if ! pebble_start; then
    fail "pebble environment starts"
    finish
fi
pass "pebble environment starts in $(( ($(date +%s%N) - t0) / 1000000 )) ms"

ports="$PEBBLE_PORT $PEBBLE_MGMT_PORT $CTS_DNS_PORT ${CTS_MGMT_URL##*:} $CERTD_HTTP01_PORT $CERTD_TLSALPN01_PORT"
check_match "six ports exported, all in 20000-59999" '^([2-5][0-9]{4} ){5}[2-5][0-9]{4}$' "$ports"
check_eq "the six ports are distinct" 6 "$(tr ' ' '\n' <<<"$ports" | sort -u | wc -l)"
check_eq "directory URL" "https://127.0.0.1:$PEBBLE_PORT/dir" "$PEBBLE_DIR_URL"
check_match "challtestsrv management URL" '^http://127\.0\.0\.1:[0-9]+$' "$CTS_MGMT_URL"
check "pebble runs" kill -0 "$PEBBLE_PID"
check "challtestsrv runs" kill -0 "$CTS_PID"
check "PEBBLE_CA_BUNDLE is world-readable (certd may run unprivileged)" \
    test "$(stat -c %a "$PEBBLE_CA_BUNDLE")" = 644

# loopback only: every socket of both processes is bound to 127.0.0.1
p_socks=$(sockets_of "$PEBBLE_PID")
c_socks=$(sockets_of "$CTS_PID")
check_eq "pebble listens on exactly its two ports, on 127.0.0.1" \
    "$(printf 'tcp 127.0.0.1:%s\n' "$PEBBLE_PORT" "$PEBBLE_MGMT_PORT" | sort)" "$p_socks"
check_eq "challtestsrv listens on DNS (udp+tcp) and management only, on 127.0.0.1" \
    "$(printf '%s\n' "tcp 127.0.0.1:$CTS_DNS_PORT" "tcp 127.0.0.1:${CTS_MGMT_URL##*:}" \
        "udp 127.0.0.1:$CTS_DNS_PORT" | sort)" "$c_socks"

# the configuration Pebble was given
cfg=$(cat "$T_DIR/pebble/pebble-config.json")
check_eq "pebble httpPort is certd's http-01 port" "$CERTD_HTTP01_PORT" "$(jq .pebble.httpPort <<<"$cfg")"
check_eq "pebble tlsPort is certd's tls-alpn-01 port" "$CERTD_TLSALPN01_PORT" "$(jq .pebble.tlsPort <<<"$cfg")"
check_eq "no certificateValidityPeriod unless asked" null "$(jq .pebble.certificateValidityPeriod <<<"$cfg")"
check "pebble runs in strict mode with no VA sleeps and the default 5% bad nonces" \
    bash -c "tr -d '\0' </proc/$PEBBLE_PID/cmdline | grep -q -- -strict &&
             grep -q 'Disabling random VA sleeps' '$T_DIR/pebble.log' &&
             grep -q 'reject 5% of good nonces' '$T_DIR/pebble.log'"

# --- directory and management --------------------------------------------------------------
dir=$(curl -fsS --cacert "$PEBBLE_CA_BUNDLE" "$PEBBLE_DIR_URL" || true)
check_eq "directory has newNonce, newAccount, newOrder on Pebble's port" \
    "https://127.0.0.1:$PEBBLE_PORT/ x3" \
    "$(jq -r '[.newNonce, .newAccount, .newOrder] | map(select(type == "string")
              | capture("^(?<b>https://[^/]+/)").b) | "\(.[0]) x\(length)"' <<<"$dir" 2>/dev/null)"
check_match "directory carries terms of service" '.+' "$(jq -r '.meta.termsOfService // empty' <<<"$dir")"
rc=0; curl -fsS -o /dev/null --capath /nonexistent --cacert /etc/ssl/certs/ca-certificates.crt \
    "$PEBBLE_DIR_URL" 2>/dev/null || rc=$?
check_eq "Pebble's HTTPS is not trusted without PEBBLE_CA_BUNDLE (curl exit 60)" 60 "$rc"
nonce_hdr=$(curl -fsS -I --cacert "$PEBBLE_CA_BUNDLE" "$(jq -r .newNonce <<<"$dir")" | tr -d '\r')
check_match "newNonce hands out a Replay-Nonce" $'(^|\n)[Rr]eplay-[Nn]once: [A-Za-z0-9_-]+' "$nonce_hdr"

roots="$T_DIR/pebble-roots.pem"
check "pebble_root_pem fetches the issuance chain" pebble_root_pem "$roots"
check_eq "root file holds the root and the intermediate" 2 "$(grep -c 'BEGIN CERTIFICATE' "$roots" 2>/dev/null)"
root_subj=$(openssl x509 -noout -subject -nameopt RFC2253 -in "$roots" 2>/dev/null)
root_iss=$(openssl x509 -noout -issuer -nameopt RFC2253 -in "$roots" 2>/dev/null)
check_match "first certificate is Pebble's root" '^subject=CN=Pebble Root CA' "$root_subj"
check_eq "root is self-issued" "${root_subj#subject=}" "${root_iss#issuer=}"
check "intermediate verifies against the root" bash -c \
    "awk '/BEGIN/{n++} n==2' '$roots' | openssl verify -CAfile <(awk '/BEGIN/{n++} n==1' '$roots') >/dev/null"

rc=0; out=$(pebble_cert_status 0123abcd) || rc=$?
check "pebble_cert_status fails for a serial Pebble never issued" test "$rc" -ne 0 -a -z "$out"
rc=0; pebble_cert_status 'xyz' >/dev/null 2>&1 || rc=$?
check "pebble_cert_status refuses a non-hex serial" test "$rc" -ne 0

# --- the dns-01 hook against challtestsrv ---------------------------------------------------
name=_acme-challenge.x.example.com
v1=LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0   # base64url SHA-256, 43 characters
v2=9jg46WB3rR_AHD-EBXdN7cBkH1WOu0tA3M9fm21mqTI

r=$(dns_query "$name" 16)
check_eq "no TXT record before the hook runs" "0 0" "$(dns_rcode "$r") $(dns_ancount "$r")"

rc=0; err=$("$hook" --url "$CTS_MGMT_URL" add "$name." "$v1" 2>&1) || rc=$?
check_eq "hook add exits 0" "0 " "$rc $err"
r=$(dns_query "$name" 16)
check_eq "challtestsrv serves the TXT record" "0 1" "$(dns_rcode "$r") $(dns_ancount "$r")"
check_match "the TXT record carries the value" "$(hex "$v1")" "$r"

# a second value for the same name (wildcard + base name in one order), no trailing dot
"$hook" --url="$CTS_MGMT_URL" add "$name" "$v2"
r=$(dns_query "$name" 16)
check_eq "both values served" "2" "$(dns_ancount "$r")"
check "both values present" bash -c "[[ '$r' == *$(hex "$v1")* && '$r' == *$(hex "$v2")* ]]"
r=$(dns_query _acme-challenge.other.example.com 16)
check_eq "other names stay empty" 0 "$(dns_ancount "$r")"
r=$(dns_query www.anything.test 1)
check_eq "any A query gets one answer" "0 1" "$(dns_rcode "$r") $(dns_ancount "$r")"
check_match "... 127.0.0.1 (so Pebble's VA connects to certd on loopback)" '00047f000001' "$r"
r=$(dns_query www.anything.test 28)
check_eq "... and no AAAA (so the VA never tries ::1)" "0 0" "$(dns_rcode "$r") $(dns_ancount "$r")"

if command -v dig >/dev/null; then
    check_match "dig sees the record too" "\"$v1\"" \
        "$(dig +short @127.0.0.1 -p "$CTS_DNS_PORT" TXT "$name" 2>/dev/null)"
else
    log "dig not installed: DNS checked with a raw UDP query only"
fi

rc=0; err=$("$hook" --url "$CTS_MGMT_URL" del "$name." "$v1" 2>&1) || rc=$?
check_eq "hook del exits 0" "0 " "$rc $err"
r=$(dns_query "$name" 16)
check_eq "del removes every value of the name" "0 0" "$(dns_rcode "$r") $(dns_ancount "$r")"
rc=0; "$hook" --url "$CTS_MGMT_URL" del "$name." "$v1" 2>/dev/null || rc=$?
check_eq "del of an absent record still succeeds" 0 "$rc"

# failures: non-zero with a message on stderr, quickly
rc=0; err=$("$hook" --url "$CTS_MGMT_URL" add "$name." 'not base64url!' 2>&1) || rc=$?
check_eq "hook refuses a value that is not base64url (exit 1)" 1 "$rc"
check_match "... saying why" 'bad VALUE' "$err"
rc=0; err=$("$hook" --url "$CTS_MGMT_URL" add 'a b.example.' "$v1" 2>&1) || rc=$?
check_eq "hook refuses a malformed name" 1 "$rc"
rc=0; "$hook" --url "$CTS_MGMT_URL" frob "$name." "$v1" 2>/dev/null || rc=$?
check_eq "unknown action is a usage error (exit 2)" 2 "$rc"
rc=0; "$hook" add "$name." 2>/dev/null || rc=$?
check_eq "missing argument is a usage error (exit 2)" 2 "$rc"
t1=$(date +%s)
rc=0; err=$("$hook" --url "http://127.0.0.1:$CERTD_HTTP01_PORT" add "$name." "$v1" 2>&1) || rc=$?
check_eq "hook fails (exit 1) when nothing listens at the URL" 1 "$rc"
check_match "... naming the failed request" "POST http://127\.0\.0\.1:$CERTD_HTTP01_PORT/set-txt failed" "$err"
check "... within its timeouts" test $(( $(date +%s) - t1 )) -le 10
rc=0; err=$("$hook" --url "$PEBBLE_DIR_URL" add "$name." "$v1" 2>&1) || rc=$?
check_eq "a URL with a path is refused" 1 "$rc"

# --- certd takes the generated configuration ------------------------------------------------
write_config "$(certd_pebble_config_text)"
conf=$(cat "$T_DIR/certd.conf")
check_match "config names Pebble's directory and bundle" \
    "directory = $PEBBLE_DIR_URL"$'\n'"ca_bundle = $PEBBLE_CA_BUNDLE" "$conf"
check_match "config points the hook at challtestsrv" \
    "hook = \"$hook\" --url $CTS_MGMT_URL" "$conf"
rc=0; out=$("$CERTD_BIN" --config "$T_DIR/certd.conf" --check-config 2>&1) || rc=$?
check_eq "certd --check-config accepts it" "0" "$rc"
[ "$rc" -eq 0 ] || log "certd said: $out"

# --- a fresh Pebble on the same ports, with a certificate validity --------------------------
old_pid=$PEBBLE_PID
old_root=$(head -n 40 "$roots")
t0=$(date +%s%N)
rc=0; PEBBLE_CERT_VALIDITY=3600 pebble_restart_fresh || rc=$?
check_eq "pebble_restart_fresh succeeds" 0 "$rc"
log "restart took $(( ($(date +%s%N) - t0) / 1000000 )) ms"
check "old pebble is gone" bash -c "! kill -0 $old_pid 2>/dev/null"
check "new pebble runs under a new pid" test "$PEBBLE_PID" != "$old_pid" -a -n "$PEBBLE_PID"
check "challtestsrv kept running" kill -0 "$CTS_PID"
check "directory answers on the same port" curl -fsS -o /dev/null --cacert "$PEBBLE_CA_BUNDLE" "$PEBBLE_DIR_URL"
pebble_root_pem "$roots"
check "the restarted Pebble issues under a new root" test "$(head -n 40 "$roots")" != "$old_root"
check_eq "PEBBLE_CERT_VALIDITY reaches the config" 3600 \
    "$(jq .pebble.certificateValidityPeriod "$T_DIR/pebble/pebble-config.json")"
check "Pebble uses it" grep -q 'validity period of 3600 seconds' "$T_DIR/pebble.log"

# --- stop: nothing left behind ---------------------------------------------------------------
pids="$PEBBLE_PID $CTS_PID"
pebble_stop
left=$(for p in $pids; do kill -0 "$p" 2>/dev/null && echo "$p"; done || true)
check_eq "pebble_stop leaves neither process running" "" "$left"
check_eq "no child of this test is pebble or challtestsrv" "" \
    "$(pgrep -P $$ '^pebble' || true)"
busy=$(ss -Htuln | awk '{ n = split($5, a, ":"); print a[n] }' | sort -u |
    grep -Fxf <(tr ' ' '\n' <<<"$ports") || true)
check_eq "all six ports are free again" "" "$busy"

# --- a start that meets taken ports retries on others ----------------------------------------
# A squatter holds two ports; the first attempt gets one as Pebble's ACME port, the second one
# as challtestsrv's management port. Both must be detected and new ports picked.
eval "$(declare -f _pebble_pick_ports | sed '1s/_pebble_pick_ports/_orig_pick_ports/')"
_orig_pick_ports 2
squat1=${_pebble_ports[0]}
"$CTS_BIN" -http01 "" -https01 "" -tlsalpn01 "" -dns01 "127.0.0.1:${_pebble_ports[1]}" \
    -management "127.0.0.1:$squat1" >"$T_DIR/squatter.log" 2>&1 &
squatter=$!
wait_for 10 "ss -Htln | grep -q '127.0.0.1:$squat1 '" || true
check "a squatter holds port $squat1" bash -c "ss -Htln | grep -q '127.0.0.1:$squat1 '"
_picks=0
_pebble_pick_ports() {
    _picks=$((_picks + 1))
    _orig_pick_ports "$@" || return
    case $_picks in
    1) _pebble_ports[0]=$squat1 ;;   # pebble's listenAddress: taken
    2) _pebble_ports[3]=$squat1 ;;   # challtestsrv's management: taken
    esac
}
rc=0; pebble_start >"$T_DIR/retry.out" 2>&1 || rc=$?
out=$(cat "$T_DIR/retry.out")
check_eq "start succeeds on the third attempt" "0 3" "$rc $_picks"
check_match "start retried after pebble's port was taken" 'pebble port taken, retrying' "$out"
check_match "start retried after challtestsrv's port was taken" 'challtestsrv port taken, retrying' "$out"
check "... on other ports than the squatted one" test "$PEBBLE_PORT" != "$squat1" -a "${CTS_MGMT_URL##*:}" != "$squat1"
check "... and answers" curl -fsS -o /dev/null --cacert "$PEBBLE_CA_BUNDLE" "$PEBBLE_DIR_URL"
kill -TERM "$squatter"; wait "$squatter" 2>/dev/null || true
pebble_stop

finish
