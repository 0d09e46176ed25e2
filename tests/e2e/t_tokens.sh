#!/usr/bin/env bash
# Remote fleet members on the HTTPS listener: tokens made with certctl over the socket, roles
# (a reader never gets keys), scopes (other domains are 404, lists filtered), Bearer and Basic
# credentials, expired and revoked tokens refused, tokens never in the log or the database in
# clear, failed authentications rate limited, plain HTTP and TLS below 1.2 refused, and the
# client_ca (mutual TLS) variant. Certificates come from a real Pebble.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pebble.sh"

cc() { "$CERTCTL_BIN" "$@"; }

pebble_start
# certd's listener reuses the certificate pebble.sh made for 127.0.0.1 (its CA is
# $PEBBLE_CA_BUNDLE), and a client CA of its own for the mutual-TLS part.
make_client_certs() {
    local d=$T_DIR/clients
    mkdir -p "$d"
    cat >"$d/ca.tmpl" <<'EOF'
cn = "certd test fleet client CA"
ca
cert_signing_key
expiration_days = 30
EOF
    cat >"$d/client.tmpl" <<'EOF'
cn = "web1.fleet"
tls_www_client
signing_key
expiration_days = 30
EOF
    local who
    for who in fleet other; do
        certtool --generate-privkey --key-type ecdsa --curve secp256r1 --no-text \
            --outfile "$d/$who-ca.key" &&
        certtool --generate-self-signed --load-privkey "$d/$who-ca.key" --template "$d/ca.tmpl" \
            --no-text --outfile "$d/$who-ca.pem" &&
        certtool --generate-privkey --key-type ecdsa --curve secp256r1 --no-text \
            --outfile "$d/$who-client.key" &&
        certtool --generate-certificate --load-privkey "$d/$who-client.key" \
            --load-ca-privkey "$d/$who-ca.key" --load-ca-certificate "$d/$who-ca.pem" \
            --template "$d/client.tmpl" --no-text --outfile "$d/$who-client.pem" || return 1
    done >"$d/certtool.log" 2>&1
}
make_client_certs || { fail "client certificates made" "$(tail -n 5 "$T_DIR/clients/certtool.log")"; finish; }

# https_config [EXTRA]: the [api.https] section on $HTTPS_PORT.
https_config() {
    printf '[api.https]\nlisten = 127.0.0.1:%s\ncert = %s\nkey = %s\n%s\n' "$HTTPS_PORT" \
        "$_pebble_work/server.pem" "$_pebble_work/server.key" "${1:-}"
}

# start_with_https [EXTRA]: certd with the listener on a free port (another process may take a
# port between the pick and the bind: retried).
start_with_https() {
    local attempt
    for attempt in 1 2 3; do
        _pebble_pick_ports 1
        HTTPS_PORT=${_pebble_ports[0]}
        write_config "$(certd_pebble_config_text)" "$(https_config "${1:-}")"
        "$CERTD_BIN" --config "$T_DIR/certd.conf" >>"$T_DIR/certd.log" 2>&1 &
        CERTD_PID=$!
        if wait_for 30 "curl -fsS --unix-socket '$CERTD_SOCKET' http://localhost/v1/health >/dev/null 2>&1"; then
            return 0
        fi
        wait "$CERTD_PID" 2>/dev/null || true
        CERTD_PID=
    done
    fail "certd starts with an HTTPS listener" "$(tail -n 20 "$T_DIR/certd.log")"
    finish
}

# hapi METHOD PATH TOKEN [curl args...]: a request to the HTTPS listener with TOKEN as Bearer
# (none when empty). Sets HTTP_STATUS, HTTP_BODY, HTTP_CTYPE and HTTP_HEADERS.
hapi() {
    local method=$1 path=$2 tok=$3 out
    shift 3
    local args=(-sS --cacert "$PEBBLE_CA_BUNDLE" -X "$method" -o "$T_DIR/resp.body"
                -D "$T_DIR/resp.headers" -w '%{http_code} %{content_type}')
    [ -n "$tok" ] && args+=(-H "Authorization: Bearer $tok")
    out=$(curl "${args[@]}" "$@" "https://127.0.0.1:$HTTPS_PORT$path") || true
    HTTP_STATUS=${out%% *}
    HTTP_CTYPE=${out#* }
    HTTP_BODY=$(cat "$T_DIR/resp.body" 2>/dev/null || true)
    HTTP_HEADERS=$(cat "$T_DIR/resp.headers" 2>/dev/null || true)
}

start_with_https
log "HTTPS listener on 127.0.0.1:$HTTPS_PORT"
for n in a.example.com b.example.com x.shop.example.com; do
    check "$n is issued by Pebble" cc domain add "$n" --wait --timeout 120
done

# ---- no credentials, bad credentials ----
hapi GET /v1/domains ''
check_eq "no token: 401" 401 "$HTTP_STATUS"
check_eq "401 is an unauthorized problem" "urn:certd:problem:unauthorized" "$(jq -r .type <<<"$HTTP_BODY")"
check_match "401 asks for a Bearer token" $'(^|\n)[Ww][Ww][Ww]-[Aa]uthenticate: Bearer' "$HTTP_HEADERS"
hapi GET /v1/domains 'certd_notatoken'
check_eq "a malformed token: 401" 401 "$HTTP_STATUS"

# ---- tokens, made over the socket by root ----
mk() { cc token create "$@" --json | jq -r .token; }
DEP_A=$(mk web-a --role deployer --domains a.example.com)
check_match "token create prints a token with a public id" '^certd_[A-Za-z0-9_-]{12}_[A-Za-z0-9_-]{43}$' "$DEP_A"
DEP_SHOP=$(mk shop --role deployer --domains '*.shop.example.com')
READER=$(mk mon --role reader)
ADMIN=$(mk ops --role admin)
out=$(cc token create web-a --role reader 2>&1) && rc=0 || rc=$?
check_eq "a second live token named web-a is refused (exit 1)" 1 "$rc"
rc=0; cc token create bad --role admin --domains a.example.com >/dev/null 2>&1 || rc=$?
check_eq "admin tokens cannot be scoped (exit 1)" 1 "$rc"
rc=0; cc token create bad --role root >/dev/null 2>&1 || rc=$?
check_eq "an unknown role is refused (exit 1)" 1 "$rc"
rc=0; cc token create bad >/dev/null 2>&1 || rc=$?
check_eq "create without --role is a usage error (exit 2)" 2 "$rc"
human=$(cc token create human --role reader --expires 30d 2>"$T_DIR/create.err")
check_match "human output shows the token" 'token: +certd_' "$human"
check_match "and warns it is shown once" 'cannot show it again' "$(cat "$T_DIR/create.err")"
HUMAN=$(awk '$1 == "token:" {print $2}' <<<"$human")

# ---- remote sync with a scoped deployer ----
hapi GET /v1/domains "$DEP_A"
check_eq "deployer lists domains: 200" 200 "$HTTP_STATUS"
check_eq "a scoped deployer's list holds only its domain" "a.example.com" "$(jq -r '[.domains[].name] | join(" ")' <<<"$HTTP_BODY")"
hapi GET '/v1/domains?limit=1' "$DEP_SHOP"
check_eq "a *.suffix scope matches one label" "x.shop.example.com" "$(jq -r '[.domains[].name] | join(" ")' <<<"$HTTP_BODY")"
check_eq "and its filtered page is the last" null "$(jq -r .next_cursor <<<"$HTTP_BODY")"
mkdir -p "$T_DIR/sync"
hapi GET /v1/domains/a.example.com/certificate "$DEP_A"
printf '%s\n' "$HTTP_BODY" >"$T_DIR/sync/fullchain.pem"
check_eq "deployer fetches its certificate over HTTPS" "200 application/pem-certificate-chain" "$HTTP_STATUS $HTTP_CTYPE"
hapi GET /v1/domains/a.example.com/key "$DEP_A"
printf '%s\n' "$HTTP_BODY" >"$T_DIR/sync/key.pem"
check_eq "deployer fetches its private key over HTTPS" 200 "$HTTP_STATUS"
check_eq "the synced key matches the synced certificate" \
    "$(openssl pkey -in "$T_DIR/sync/key.pem" -pubout -outform DER | sha256sum)" \
    "$(openssl x509 -in "$T_DIR/sync/fullchain.pem" -noout -pubkey | openssl pkey -pubin -outform DER | sha256sum)"
api GET /v1/domains/a.example.com/certificate
check_eq "the synced chain is what the socket serves" "$HTTP_BODY" "$(cat "$T_DIR/sync/fullchain.pem")"
for p in /v1/domains/b.example.com /v1/domains/b.example.com/key /v1/domains/b.example.com/certificate \
         /v1/domains/b.example.com/history /v1/domains/b.example.com/order; do
    hapi GET "$p" "$DEP_A"
    check_eq "a deployer scoped to a.example.com gets 404 for $p" 404 "$HTTP_STATUS"
done
hapi GET /v1/domains/nosuch.example.com "$DEP_A"
nosuch=$(jq -r .detail <<<"$HTTP_BODY")
hapi GET /v1/domains/b.example.com "$DEP_A"
check_eq "an out-of-scope domain answers exactly like a missing one" \
    "${nosuch//nosuch/b}" "$(jq -r .detail <<<"$HTTP_BODY")"
hapi POST /v1/domains/b.example.com/renew "$DEP_A"
check_eq "a deployer may not renew (403 before any scope is consulted)" 403 "$HTTP_STATUS"
hapi POST /v1/domains "$DEP_A" -H 'Content-Type: application/json' -d '{"name":"evil.example.com"}'
check_eq "a deployer may not add domains" 403 "$HTTP_STATUS"
hapi GET /v1/tokens "$DEP_A"
check_eq "a deployer may not list tokens" 403 "$HTTP_STATUS"
hapi GET /v1/accounts "$DEP_A"
check_eq "a deployer may not read accounts" 403 "$HTTP_STATUS"

# Caddy's get_certificate http puts the token in its URL: Basic authentication.
out=$(curl -sS --cacert "$PEBBLE_CA_BUNDLE" -o "$T_DIR/basic.pem" -w '%{http_code}' \
      "https://caddy:$DEP_A@127.0.0.1:$HTTPS_PORT/v1/domains/a.example.com/certificate") || true
check_eq "the token as the Basic password (https://user:TOKEN@host) works" 200 "$out"
check_eq "and serves the same chain" "$(cat "$T_DIR/sync/fullchain.pem")" "$(cat "$T_DIR/basic.pem")"
out=$(curl -sS --cacert "$PEBBLE_CA_BUNDLE" -o /dev/null -w '%{http_code}' \
      "https://caddy:wrong@127.0.0.1:$HTTPS_PORT/v1/domains/a.example.com/certificate") || true
check_eq "a wrong Basic password is 401" 401 "$out"

# ---- reader ----
hapi GET /v1/domains "$READER"
check_eq "an unscoped reader lists every domain" "a.example.com b.example.com x.shop.example.com" \
    "$(jq -r '[.domains[].name] | join(" ")' <<<"$HTTP_BODY")"
hapi GET /v1/domains/a.example.com/certificate "$READER"
check_eq "a reader reads certificates" 200 "$HTTP_STATUS"
hapi GET /v1/domains/a.example.com/key "$READER"
check_eq "a reader cannot read keys (403)" 403 "$HTTP_STATUS"
check_eq "and the 403 is a problem document without the key" "urn:certd:problem:forbidden 0" \
    "$(jq -r .type <<<"$HTTP_BODY") $(grep -c 'PRIVATE KEY' <<<"$HTTP_BODY" || true)"
hapi GET /v1/health "$READER"
check_eq "a reader reads health" 200 "$HTTP_STATUS"
hapi DELETE /v1/domains/a.example.com "$READER"
check_eq "a reader changes nothing" 403 "$HTTP_STATUS"

# ---- admin token: mutations are recorded with the token as actor ----
hapi POST /v1/domains "$ADMIN" -H 'Content-Type: application/json' -d '{"name":"remote.example.com"}'
check_eq "an admin token adds a domain over HTTPS" 201 "$HTTP_STATUS"
ADMIN_ID=${ADMIN:6:12}
check_eq "the event names the token (id and name), not the secret" "token:$ADMIN_ID(ops)" \
    "$(cc events --json --limit 1000 | jq -r '[.events[] | select(.type == "domain.added" and .domain == "remote.example.com")][0].actor')"
cc domain remove remote.example.com --purge >/dev/null

# ---- token list ----
list=$(cc token list --json)
check_eq "token list shows every token" "human mon ops shop web-a" "$(jq -r '[.tokens[].name] | sort | join(" ")' <<<"$list")"
check_eq "the scope is listed normalised" '["*.shop.example.com"]' "$(jq -c '.tokens[] | select(.name == "shop") | .domains' <<<"$list")"
check_eq "used tokens have last_used_at" "true" "$(jq '[.tokens[] | select(.name == "web-a") | .last_used_at != null] | all' <<<"$list")"
check_eq "unused tokens do not" "null" "$(jq -r '.tokens[] | select(.name == "human") | .last_used_at' <<<"$list")"
check_eq "token list never shows a hash, salt or secret" "" "$(jq -r '.tokens[] | (.hash, .salt, .token) // empty' <<<"$list")"
check_match "the table lists roles and scopes" 'web-a +deployer +active' "$(cc token list)"

# ---- expired and revoked ----
SHORT=$(mk short --role reader --expires 2s)
hapi GET /v1/health "$SHORT"
check_eq "a token with --expires works until then" 200 "$HTTP_STATUS"
# Polled over the socket: failed attempts on the listener would count against 127.0.0.1.
check "token list marks it expired once its time is up" \
    wait_for 10 "[ \"\$(\"\$CERTCTL_BIN\" token list --json | jq -r '.tokens[] | select(.name == \"short\") | .status')\" = expired ]"
hapi GET /v1/health "$SHORT"
check_eq "an expired token is refused" 401 "$HTTP_STATUS"
check_match "expiry is logged by token id" "authentication failed from 127.0.0.1 \\(token id ${SHORT:6:12}: expired\\)" "$(cat "$T_DIR/certd.log")"
check_eq "revoking by name works" "token ${DEP_A:6:12} (web-a) revoked" "$(cc token revoke web-a)"
hapi GET /v1/domains "$DEP_A"
check_eq "a revoked token is refused at once" 401 "$HTTP_STATUS"
check_match "revocation is logged by token id" "token id ${DEP_A:6:12}: revoked" "$(cat "$T_DIR/certd.log")"
rc=0; cc token revoke "${DEP_A:6:12}" >/dev/null 2>&1 || rc=$?
check_eq "revoking it again fails (exit 1)" 1 "$rc"
check_eq "the revoked token is kept, as revoked" revoked "$(cc token list --json | jq -r '.tokens[] | select(.name == "web-a") | .status')"
check "its name can be used again" cc token create web-a --role reader --json
check_match "token events are recorded without secrets" 'token.revoked' "$(cc events --json --limit 1000 | jq -r '.events[].type' | sort -u | xargs)"

# ---- the socket ignores tokens: a peer is its uid ----
api GET /v1/domains '' -H "Authorization: Bearer $READER"
check_eq "root on the socket stays admin whatever token it sends" 200 "$HTTP_STATUS"

# ---- plain HTTP and old TLS ----
rc=0; code=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 10 "http://127.0.0.1:$HTTPS_PORT/v1/health" 2>/dev/null) || rc=$?
check "plain HTTP to the listener gets no HTTP answer" [ "$rc" -ne 0 ] && [ "$code" = 000 ]
tls_try() { # tls_try PRIORITY PORT: 0 when the handshake succeeds
    gnutls-cli --priority "$1" --x509cafile "$PEBBLE_CA_BUNDLE" -p "$2" 127.0.0.1 </dev/null >"$T_DIR/tls.log" 2>&1
}
check "TLS 1.2 is accepted" tls_try 'NORMAL:-VERS-ALL:+VERS-TLS1.2' "$HTTPS_PORT"
check "TLS 1.3 is accepted" tls_try 'NORMAL:-VERS-ALL:+VERS-TLS1.3' "$HTTPS_PORT"
tls_refused() { ! tls_try "$@"; }
check "TLS 1.1 is refused" tls_refused 'NORMAL:-VERS-ALL:+VERS-TLS1.1' "$HTTPS_PORT"
check_match "in the handshake (no session is established)" 'Handshake has failed|non-properly terminated' "$(cat "$T_DIR/tls.log")"
check "TLS 1.0 is refused" tls_refused 'NORMAL:-VERS-ALL:+VERS-TLS1.0' "$HTTPS_PORT"
# The control: with GnuTLS's default priorities ("NORMAL", libmicrohttpd's default too) this
# client completes TLS 1.1, so the refusal above is certd's own setting.
_pebble_pick_ports 1
ctl_port=${_pebble_ports[0]}
gnutls-serv --priority 'NORMAL' --x509certfile "$_pebble_work/server.pem" \
    --x509keyfile "$_pebble_work/server.key" -p "$ctl_port" >"$T_DIR/gnutls-serv.log" 2>&1 &
serv_pid=$!
if wait_for 10 "ss -Hltn | grep -q ':$ctl_port '"; then
    check "control: the same client completes TLS 1.1 with GnuTLS's default priorities" \
        tls_try 'NORMAL:-VERS-ALL:+VERS-TLS1.1' "$ctl_port"
else
    log "control skipped: gnutls-serv did not start"
fi
kill "$serv_pid" 2>/dev/null || true
wait "$serv_pid" 2>/dev/null || true

# ---- tokens never in clear in the log or the database ----
for tok in "$DEP_A" "$DEP_SHOP" "$READER" "$ADMIN" "$HUMAN" "$SHORT"; do
    secret=${tok:19}
    check_eq "secret of ${tok:6:12} absent from the log" 0 "$(grep -cF -- "$secret" "$T_DIR/certd.log" || true)"
    check_eq "secret of ${tok:6:12} absent from the database dump" 0 \
        "$(sqlite3 "$T_DIR/state/certd.db" .dump | grep -cF -- "$secret" || true)"
done
check_eq "nothing of a token's secret is in any state file" "" \
    "$(grep -rlF -- "${READER:19}" "$T_DIR/state" || true)"
# The stored hash is SHA-256 over the salt's bytes and the secret: recompute it.
row=$(sqlite3 -separator ' ' "$T_DIR/state/certd.db" "SELECT salt, hash FROM tokens WHERE id = '${READER:6:12}'")
want=$( { xxd -r -p <<<"${row% *}"; printf '%s' "${READER:19}"; } | sha256sum | cut -d' ' -f1)
check_eq "the database holds sha256(salt || secret)" "$want" "${row#* }"

# ---- failed authentications are rate limited ----
# From 127.0.0.2 (the whole of 127/8 is this host), whose allowance nothing has used yet.
BOGUS="certd_AAAAAAAAAAAA_$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=' | cut -c1-43)"
codes=""
for i in $(seq 1 12); do
    hapi GET /v1/health "$BOGUS" --interface 127.0.0.2
    codes="$codes $HTTP_STATUS"
done
check_eq "10 failures are answered 401, then 429" \
    " 401 401 401 401 401 401 401 401 401 401 429 429" "$codes"
check_match "429 says when to retry" $'(^|\n)[Rr]etry-[Aa]fter: [1-9]' "$HTTP_HEADERS"
hapi GET /v1/health "$READER" --interface 127.0.0.2
check_eq "while locked out, even a valid token is refused" 429 "$HTTP_STATUS"
hapi GET /v1/health "$READER"
check_eq "another address is not locked out" 200 "$HTTP_STATUS"
check_eq "the lock-out is logged once" 1 "$(grep -c 'too many failed authentications from 127.0.0.2' "$T_DIR/certd.log")"
check_eq "unknown ids are logged by id, never the secret" 0 "$(grep -cF -- "${BOGUS:19}" "$T_DIR/certd.log" || true)"
check_match "unknown ids are logged" 'token id AAAAAAAAAAAA' "$(grep 'unknown token id' "$T_DIR/certd.log")"
api GET /v1/health
check_eq "the socket is not affected by the lock-out" 200 "$HTTP_STATUS"

# ---- connections per client address (API_HTTPS_PER_IP_LIMIT = 32, daemon/api/server.c) ----
# Plain TCP connections that never start TLS hold their slot until the 30 s timeout: enough to
# fill 127.0.0.3's share while other addresses go on. socat picks the source address.
held=()
hold_one() {
    socat -u "TCP:127.0.0.1:$HTTPS_PORT,bind=127.0.0.3" /dev/null 2>/dev/null &
    held+=("$!")
}
for i in $(seq 1 32); do hold_one; done
# refused_now IP: a new connection from IP is closed by certd at once; one that is taken stays
# open until socat gives up on it after 2 s of silence.
refused_now() {
    local start=${EPOCHREALTIME/./}
    timeout 5 socat -T 2 -u "TCP:127.0.0.1:$HTTPS_PORT,bind=$1" /dev/null 2>/dev/null || true
    [ $(( ${EPOCHREALTIME/./} - start )) -lt 1000000 ]
}
# All 32 connected (the kernel's count) before any probe, so no probe can take a slot of theirs:
# certd accepts in arrival order and counts a connection as soon as it takes it.
held_up() { [ "$(ss -Htn state established "( dport = :$HTTPS_PORT )" | grep -c '127\.0\.0\.3:')" -ge 32 ]; }
check "32 connections from 127.0.0.3 are up" wait_for 10 held_up
check "with 32 connections open from 127.0.0.3, a 33rd is closed at once" refused_now 127.0.0.3
check "another address still connects" eval '! refused_now 127.0.0.4'
kill "${held[@]:0:4}" 2>/dev/null
check "once 4 are closed, 127.0.0.3 connects again" wait_for 10 "! refused_now 127.0.0.3"
kill "${held[@]}" 2>/dev/null; wait "${held[@]}" 2>/dev/null || true
hapi GET /v1/health "$READER" --interface 127.0.0.3
check_eq "and is served" 200 "$HTTP_STATUS"
stop_certd

# ---- mutual TLS: client_ca ----
start_with_https "client_ca = $T_DIR/clients/fleet-ca.pem"
hapi GET /v1/health "$READER"
check_eq "with client_ca, a token without a client certificate is refused (403)" 403 "$HTTP_STATUS"
hapi GET /v1/health "$READER" --cert "$T_DIR/clients/fleet-client.pem" --key "$T_DIR/clients/fleet-client.key"
check_eq "a client certificate from client_ca plus a token: 200" 200 "$HTTP_STATUS"
hapi GET /v1/health "" --cert "$T_DIR/clients/fleet-client.pem" --key "$T_DIR/clients/fleet-client.key"
check_eq "the certificate alone is not enough (401)" 401 "$HTTP_STATUS"
hapi GET /v1/health "$READER" --cert "$T_DIR/clients/other-client.pem" --key "$T_DIR/clients/other-client.key"
check_eq "a certificate from another CA is refused" 403 "$HTTP_STATUS"
stop_certd

# ---- configuration errors stop certd at start, naming the file ----
write_config "$(certd_pebble_config_text)" "$(https_config)"
sed -i "s|^key = .*|key = $T_DIR/clients/other-client.key|" "$T_DIR/certd.conf"
rc=0; "$CERTD_BIN" --config "$T_DIR/certd.conf" >"$T_DIR/bad.log" 2>&1 || rc=$?
check_eq "a key that does not match the certificate stops certd" 1 "$rc"
check_match "and says which files" "\\[api.https\\] cert .* and key .*other-client.key" "$(cat "$T_DIR/bad.log")"
check_eq "no ASan/UBSan report in the certd log" "" \
    "$(grep -E 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$T_DIR/certd.log" "$T_DIR/bad.log" | head -3)"

finish
