#!/usr/bin/env bash
# acme_shim (tests/e2e/shim.sh) in front of Pebble, driven with curl and openssl alone: the
# directory gains renewalInfo and meta.profiles, renewal-info answers from the control config,
# newOrder is recorded and refused (alreadyReplaced, invalidProfile) or forwarded, and signed
# requests made against the shim's URLs pass Pebble's checks. Then certd issues through it.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pebble.sh"
. "$(dirname "$0")/shim.sh"

# No bad-nonce injection: the hand-made JWS requests below do not retry.
pebble_start PEBBLE_WFE_NONCEREJECT=0
shim_start '{"retry_after": 7}'
check_eq "shim_start applies its JSON argument" 7 "$(shim_ctl GET /config | jq .retry_after)"
SHIM="https://127.0.0.1:$SHIM_PORT"
sc() { curl -sS --max-time 10 --cacert "$PEBBLE_CA_BUNDLE" "$@"; }

# --- directory -------------------------------------------------------------------------------
dir=$(sc -f "$SHIM_DIR_URL")
pdir=$(sc -f "$PEBBLE_DIR_URL")
check_eq "directory: renewalInfo points at the shim" "$SHIM/renewal-info" "$(jq -r .renewalInfo <<<"$dir")"
check_eq "directory: Pebble's URLs are rebuilt for the shim's Host" \
    "$SHIM/order-plz $SHIM/nonce-plz $SHIM/sign-me-up" \
    "$(jq -r '"\(.newOrder) \(.newNonce) \(.newAccount)"' <<<"$dir")"
check_eq "directory: default profiles advertised" \
    '{"classic":"the default profile","shortlived":"6-day certificates"}' \
    "$(jq -c .meta.profiles <<<"$dir")"
check_eq "directory: Pebble's meta kept" "$(jq -c '.meta.termsOfService' <<<"$pdir")" \
    "$(jq -c '.meta.termsOfService' <<<"$dir")"
check_eq "directory: Pebble's own directory has neither" "null null" \
    "$(jq -r '"\(.renewalInfo) \(.meta.profiles)"' <<<"$pdir")"
ldir=$(sc -f --resolve "localhost:$SHIM_PORT:127.0.0.1" "https://localhost:$SHIM_PORT/dir")
check_eq "directory: URLs follow the client's Host header" \
    "https://localhost:$SHIM_PORT/order-plz https://localhost:$SHIM_PORT/renewal-info" \
    "$(jq -r '"\(.newOrder) \(.renewalInfo)"' <<<"$ldir")"
head_out=$(sc -I "$SHIM_DIR_URL" | tr -d '\r')
check_match "HEAD /dir answers 200 with the GET body's length" \
    "^HTTP/1.1 200.*[Cc]ontent-[Ll]ength: $(printf '%s' "$dir" | wc -c)" "$(tr '\n' ' ' <<<"$head_out")"
nonce_hdrs=$(sc -I "$SHIM/nonce-plz" | tr -d '\r')
check_match "newNonce through the shim: Pebble's Replay-Nonce relayed" \
    '[Rr]eplay-[Nn]once: [A-Za-z0-9_-]{8,}' "$nonce_hdrs"
check_match "newNonce through the shim: index Link names the shim" \
    "[Ll]ink: <$SHIM/dir>;rel=\"index\"" "$nonce_hdrs"

# --- renewal information ---------------------------------------------------------------------
# ri CERTID: sets RI_STATUS, RI_BODY, RI_RETRY
ri() {
    local out
    out=$(sc -o "$T_DIR/ri.body" -D "$T_DIR/ri.hdrs" -w '%{http_code}' "$SHIM/renewal-info/$1") || true
    RI_STATUS=$out
    RI_BODY=$(cat "$T_DIR/ri.body")
    RI_RETRY=$(tr -d '\r' <"$T_DIR/ri.hdrs" | sed -n 's/^[Rr]etry-[Aa]fter: //p')
}
ID1=aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE   # base64url(AKI).base64url(serial)
ID2=aYhba4dGQEHhs3uEe6CuLN4ByNQ.AJ8Q
ri "$ID1"
check_eq "renewal-info: 404 with no window configured" 404 "$RI_STATUS"
shim_ctl POST /config '{"default_window": {"start_in": 3600, "end_in": 7200}, "retry_after": 60}' >/dev/null
now=$(date +%s)
ri "$ID1"
check_eq "renewal-info: 200 from the default window" 200 "$RI_STATUS"
check_eq "renewal-info: Retry-After as configured" 60 "$RI_RETRY"
start=$(date -d "$(jq -r .suggestedWindow.start <<<"$RI_BODY")" +%s)
end=$(date -d "$(jq -r .suggestedWindow.end <<<"$RI_BODY")" +%s)
check_eq "renewal-info: relative window is one hour long" 3600 "$((end - start))"
off=$((start - now - 3600))
check "renewal-info: relative window starts an hour from now" test "$off" -ge -5 -a "$off" -le 5
check_match "renewal-info: RFC 3339 UTC times" '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$' \
    "$(jq -r .suggestedWindow.end <<<"$RI_BODY")"
check_eq "renewal-info: explanationURL" "$SHIM/ari-explanation" "$(jq -r .explanationURL <<<"$RI_BODY")"
shim_ctl POST /config "$(jq -nc --arg id "$ID2" '{windows: {($id): {start: "2030-01-02T03:04:05Z",
    end: "2030-01-03T00:00:00Z", explanationURL: "https://ca.example/why"}}, retry_after: null}')" >/dev/null
ri "$ID2"
check_eq "renewal-info: per-certID absolute window" \
    "200 2030-01-02T03:04:05Z 2030-01-03T00:00:00Z https://ca.example/why" \
    "$RI_STATUS $(jq -r '"\(.suggestedWindow.start) \(.suggestedWindow.end) \(.explanationURL)"' <<<"$RI_BODY")"
check_eq "renewal-info: no Retry-After once cleared" "" "$RI_RETRY"
ri "$ID1"
start=$(date -d "$(jq -r .suggestedWindow.start <<<"$RI_BODY")" +%s)
end=$(date -d "$(jq -r .suggestedWindow.end <<<"$RI_BODY")" +%s)
check_eq "renewal-info: other certIDs keep the default window" 3600 "$((end - start))"
ri 'not-a-cert-id'
check_eq "renewal-info: malformed certID is 400" "400 urn:ietf:params:acme:error:malformed" \
    "$RI_STATUS $(jq -r .type <<<"$RI_BODY")"
check_eq "seen: every certID requested, in order" "[\"$ID1\",\"$ID1\",\"$ID2\",\"$ID1\",\"not-a-cert-id\"]" \
    "$(shim_ctl GET /seen | jq -c .renewal_info)"

# A CA without ARI or profiles.
shim_ctl POST /config '{"ari": false, "profiles": null}' >/dev/null
dir=$(sc -f "$SHIM_DIR_URL")
check_eq "ari off, profiles null: directory has neither" "false false" \
    "$(jq -r '"\(has("renewalInfo")) \(.meta | has("profiles"))"' <<<"$dir")"
ri "$ID2"
check_eq "ari off: renewal-info is 404" 404 "$RI_STATUS"

# Bad config is refused whole.
before=$(shim_ctl GET /config)
rc=0; shim_ctl POST /config '{"ari": true, "bogus": 1}' >/dev/null 2>&1 || rc=$?
check "control: unknown config key refused" test "$rc" -ne 0
rc=0; shim_ctl POST /config '{"ari": true, "default_window": {"start_in": 5}}' >/dev/null 2>&1 || rc=$?
check "control: window without an end refused" test "$rc" -ne 0
rc=0; shim_ctl POST /config '{"ari": true,' >/dev/null 2>&1 || rc=$?
check "control: malformed JSON refused" test "$rc" -ne 0
check_eq "control: a refused config changes nothing" "$before" "$(shim_ctl GET /config)"
check_eq "control: unknown path is 404" 404 "$(curl -s -o /dev/null -w '%{http_code}' "$SHIM_CTL_URL/nope")"
DEFAULT_PROFILES='{"classic": "the default profile", "shortlived": "6-day certificates"}'
shim_ctl POST /config "{\"ari\": true, \"profiles\": $DEFAULT_PROFILES, \"already_replaced\": [\"$ID1\"]}" \
    >/dev/null

# --- signed requests (RFC 8555 §6.2), made here with openssl ---------------------------------
b64u() { basenc --base64url -w0 | tr -d '='; }
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$T_DIR/acct.key" 2>/dev/null
JWK_N=$(openssl rsa -in "$T_DIR/acct.key" -noout -modulus | sed 's/^Modulus=//' | xxd -r -p | b64u)
JWK="{\"e\":\"AQAB\",\"kty\":\"RSA\",\"n\":\"$JWK_N\"}"
KID=
NONCE=$(sc -I "$SHIM/nonce-plz" | tr -d '\r' | sed -n 's/^[Rr]eplay-[Nn]once: //p')

# acme_post URL PAYLOAD: a JWS POST through the shim (PAYLOAD "" is POST-as-GET). Sets
# A_STATUS, A_BODY, A_LOCATION and the next NONCE from the answer.
acme_post() {
    local url=$1 payload=$2 prot key_field p64 pl64 sig
    if [ -n "$KID" ]; then key_field="\"kid\":\"$KID\""; else key_field="\"jwk\":$JWK"; fi
    prot="{\"alg\":\"RS256\",$key_field,\"nonce\":\"$NONCE\",\"url\":\"$url\"}"
    p64=$(printf '%s' "$prot" | b64u)
    pl64=$(printf '%s' "$payload" | b64u)
    sig=$(printf '%s.%s' "$p64" "$pl64" | openssl dgst -sha256 -sign "$T_DIR/acct.key" | b64u)
    A_STATUS=$(sc -o "$T_DIR/a.body" -D "$T_DIR/a.hdrs" -w '%{http_code}' \
        -H 'Content-Type: application/jose+json' \
        --data-binary "{\"protected\":\"$p64\",\"payload\":\"$pl64\",\"signature\":\"$sig\"}" "$url") || true
    A_BODY=$(cat "$T_DIR/a.body")
    A_LOCATION=$(tr -d '\r' <"$T_DIR/a.hdrs" | sed -n 's/^[Ll]ocation: //p')
    NONCE=$(tr -d '\r' <"$T_DIR/a.hdrs" | sed -n 's/^[Rr]eplay-[Nn]once: //p')
}
order_payload() { # NAME [EXTRA JSON MEMBERS]
    printf '{"identifiers":[{"type":"dns","value":"%s"}]%s}' "$1" "${2:+,$2}"
}

acme_post "$SHIM/sign-me-up" '{"termsOfServiceAgreed":true,"contact":["mailto:shim@example.com"]}'
check_eq "newAccount through the shim: 201" 201 "$A_STATUS"
check_match "newAccount: account URL points at the shim" "^$SHIM/my-account/" "$A_LOCATION"
KID=$A_LOCATION

acme_post "$SHIM/order-plz" "$(order_payload one.shim.example.com '"profile":"shortlived","replaces":"'"$ID2"'"')"
check_eq "newOrder with profile and replaces: forwarded, 201" 201 "$A_STATUS"
check_match "newOrder: order URL points at the shim" "^$SHIM/my-order/" "$A_LOCATION"
check_match "newOrder: finalize URL points at the shim" "^$SHIM/finalize-order/" "$(jq -r .finalize <<<"$A_BODY")"
ORDER_URL=$A_LOCATION
acme_post "$ORDER_URL" ""
check_eq "POST-as-GET of the order through the shim: pending" "200 pending" "$A_STATUS $(jq -r .status <<<"$A_BODY")"
acme_post "$(jq -r '.authorizations[0]' <<<"$A_BODY")" ""
check_eq "POST-as-GET of its authorization: one.shim.example.com" "200 one.shim.example.com" \
    "$A_STATUS $(jq -r .identifier.value <<<"$A_BODY")"

acme_post "$SHIM/order-plz" "$(order_payload two.shim.example.com '"profile":"bogus"')"
check_eq "newOrder with an unknown profile: 400 invalidProfile" \
    "400 urn:ietf:params:acme:error:invalidProfile 400" \
    "$A_STATUS $(jq -r '"\(.type) \(.status)"' <<<"$A_BODY")"
check_match "invalidProfile: problem+json" 'application/problem\+json' "$(cat "$T_DIR/a.hdrs")"
check_match "invalidProfile carries a Replay-Nonce" '^[A-Za-z0-9_-]{8,}$' "$NONCE"
# A refusal's nonce must be one Pebble issued: the next (forwarded) request spends it.
acme_post "$SHIM/order-plz" "$(order_payload three.shim.example.com)"
check_eq "plain newOrder with the invalidProfile's nonce: 201" 201 "$A_STATUS"

acme_post "$SHIM/order-plz" "$(order_payload four.shim.example.com '"replaces":"'"$ID1"'"')"
check_eq "newOrder replacing an already replaced cert: 409 alreadyReplaced" \
    "409 urn:ietf:params:acme:error:alreadyReplaced 409" \
    "$A_STATUS $(jq -r '"\(.type) \(.status)"' <<<"$A_BODY")"
check_match "alreadyReplaced carries a Replay-Nonce" '^[A-Za-z0-9_-]{8,}$' "$NONCE"

shim_ctl POST /config '{"profiles": null}' >/dev/null
acme_post "$SHIM/order-plz" "$(order_payload five.shim.example.com '"profile":"bogus"')"
check_eq "no profiles advertised: a profile is ignored, as Pebble does (alreadyReplaced's nonce)" \
    201 "$A_STATUS"

check_eq "seen: every newOrder with replaces and profile" \
    "[[\"$ID2\",\"shortlived\"],[null,\"bogus\"],[null,null],[\"$ID1\",null],[null,\"bogus\"]]" \
    "$(shim_ctl GET /seen | jq -c '[.orders[] | [.replaces, .profile]]')"
check_eq "seen: identifiers recorded" "one two three four five" \
    "$(shim_ctl GET /seen | jq -r '[.orders[].identifiers[0].value | split(".")[0]] | join(" ")')"
shim_ctl POST /reset >/dev/null
check_eq "reset clears what was seen" '[] []' "$(shim_ctl GET /seen | jq -c '.renewal_info, .orders' | xargs)"
check_eq "reset keeps the config" '["'"$ID1"'"]' "$(shim_ctl GET /config | jq -c .already_replaced)"

# --- bounds and start-up errors -------------------------------------------------------------
head -c 300000 /dev/zero | tr '\0' a >"$T_DIR/big.body"
check_eq "an oversized body is refused with 413" 413 \
    "$(sc -o /dev/null -w '%{http_code}' --data-binary @"$T_DIR/big.body" "$SHIM/order-plz")"
check_eq "an oversized chunked body (no Content-Length) is refused with 413" 413 \
    "$(sc -o /dev/null -w '%{http_code}' -H 'Transfer-Encoding: chunked' \
        --data-binary @"$T_DIR/big.body" "$SHIM/order-plz")"
check_eq "the control port caps bodies too" 413 \
    "$(curl -sS -o /dev/null -w '%{http_code}' --data-binary @"$T_DIR/big.body" "$SHIM_CTL_URL/config")"
check_eq "a request with an unusable Host header is refused" 400 \
    "$(sc -o /dev/null -w '%{http_code}' -H 'Host: a/b@c' "$SHIM_DIR_URL")"
rc=0
"$ACME_SHIM_BIN" --listen "127.0.0.1:$SHIM_PORT" --control 127.0.0.1:1 \
    --upstream "https://127.0.0.1:$PEBBLE_PORT" --upstream-ca "$PEBBLE_CA_BUNDLE" \
    --cert "$T_DIR/pebble/server.pem" --key "$T_DIR/pebble/server.key" >>"$T_DIR/shim2.log" 2>&1 || rc=$?
check_eq "a second shim on a taken port exits 2" 2 "$rc"
rc=0
"$ACME_SHIM_BIN" --listen "0.0.0.0:$SHIM_PORT" --control 127.0.0.1:1 \
    --upstream "https://127.0.0.1:$PEBBLE_PORT" --upstream-ca "$PEBBLE_CA_BUNDLE" \
    --cert "$T_DIR/pebble/server.pem" --key "$T_DIR/pebble/server.key" >>"$T_DIR/shim2.log" 2>&1 || rc=$?
check_eq "a non-loopback listen address is refused" 1 "$rc"
check_match "  ... and says why" 'not a loopback address' "$(cat "$T_DIR/shim2.log")"

# --- certd issuing through the shim ---------------------------------------------------------
shim_ctl POST /config "{\"profiles\": $DEFAULT_PROFILES, \"already_replaced\": []}" >/dev/null
write_config "$(certd_shim_config_text)"
start_certd
cc() { "$CERTCTL_BIN" "$@"; }
pebble_root_pem "$T_DIR/pebble-roots.pem"
openssl x509 -in "$T_DIR/pebble-roots.pem" -out "$T_DIR/pebble-root.pem"
cc domain add shim.example.com --alt www.shim.example.com --challenge http-01 >/dev/null
check "certd: certificate issued through the shim" \
    wait_for 60 "[ \"\$(\"\$CERTCTL_BIN\" domain show shim.example.com --json | jq -r .status)\" = active ]"
api GET /v1/domains/shim.example.com/certificate
printf '%s\n' "$HTTP_BODY" >"$T_DIR/fullchain.pem"
openssl x509 -in "$T_DIR/fullchain.pem" -out "$T_DIR/leaf.pem" || true
awk 'n>0 || /END CERTIFICATE/ {if (n>0) print; if (/END CERTIFICATE/) n++}' "$T_DIR/fullchain.pem" >"$T_DIR/chain.pem"
check "certd: chain verifies against Pebble's root" \
    openssl verify -CAfile "$T_DIR/pebble-root.pem" -untrusted "$T_DIR/chain.pem" "$T_DIR/leaf.pem"
check_eq "certd: SANs are the requested names" "shim.example.com www.shim.example.com" \
    "$(openssl x509 -in "$T_DIR/leaf.pem" -noout -ext subjectAltName | tail -n +2 | tr -d ' ' | tr ',' '\n' | sed 's/^DNS://' | sort | xargs)"
check_eq "certd: its newOrder went through the shim" "shim.example.com www.shim.example.com" \
    "$(shim_ctl GET /seen | jq -r '[.orders[].identifiers[].value] | sort | unique | join(" ")')"
check_match "certd: Pebble saw the shim's Host (account URL)" "^$SHIM/" \
    "$(sqlite3 "$T_DIR/state/certd.db" 'select account_url from accounts limit 1')"
stop_certd

rc=0; shim_stop || rc=$?
check_eq "shim exits 0 on SIGTERM" 0 "$rc"
check_match "shim logged its shutdown" 'stopping' "$(cat "$T_DIR/shim.log")"
finish
