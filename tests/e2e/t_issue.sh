#!/usr/bin/env bash
# Issuance against a real Pebble (bad-nonce rejection on) through each challenge type: every
# certificate verifies against Pebble's root, matches its stored key and covers exactly the
# requested names.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pebble.sh"

pebble_start
write_config "$(certd_pebble_config_text)"
start_certd
cc() { "$CERTCTL_BIN" "$@"; }
pebble_root_pem "$T_DIR/pebble-roots.pem"
# Only the root is trusted; the intermediate must come from the chain certd serves.
openssl x509 -in "$T_DIR/pebble-roots.pem" -out "$T_DIR/pebble-root.pem"
check_match "the trust anchor is Pebble's root alone" 'Pebble Root CA' "$(openssl x509 -in "$T_DIR/pebble-root.pem" -noout -subject)"

# verify_issued NAME "SAN SAN...": the current certificate verifies and matches key and names.
verify_issued() {
    local name=$1 want_sans=$2 dir="$T_DIR/out/$1"
    mkdir -p "$dir"
    api GET "/v1/domains/$name/certificate"
    printf '%s\n' "$HTTP_BODY" > "$dir/fullchain.pem"
    check_eq "$name: certificate served as PEM" "200 application/pem-certificate-chain" "$HTTP_STATUS $HTTP_CTYPE"
    api GET "/v1/domains/$name/key"
    printf '%s\n' "$HTTP_BODY" > "$dir/key.pem"
    openssl x509 -in "$dir/fullchain.pem" -out "$dir/leaf.pem"
    awk 'n>0 || /END CERTIFICATE/ {if (n>0) print; if (/END CERTIFICATE/) n++}' "$dir/fullchain.pem" > "$dir/chain.pem"
    check "$name: chain verifies against Pebble's root" \
        openssl verify -CAfile "$T_DIR/pebble-root.pem" -untrusted "$dir/chain.pem" "$dir/leaf.pem"
    check_eq "$name: certificate matches the stored key" \
        "$(openssl pkey -in "$dir/key.pem" -pubout -outform DER | sha256sum)" \
        "$(openssl x509 -in "$dir/leaf.pem" -noout -pubkey | openssl pkey -pubin -outform DER | sha256sum)"
    local sans
    sans=$(openssl x509 -in "$dir/leaf.pem" -noout -ext subjectAltName | tail -n +2 | tr -d ' ' | tr ',' '\n' | sed 's/^DNS://' | sort | xargs)
    check_eq "$name: SANs are exactly the requested names" "$(tr ' ' '\n' <<<"$want_sans" | sort | xargs)" "$sans"
    local key_sha
    key_sha=$(cc domain show "$name" --json | jq -r .certificate.key_id)
    check_eq "$name: history links the certificate to its key" \
        "$(cc history "$name" --json | jq -r '.keys[0].id')" "$key_sha"
}

wait_active() { wait_for "${2:-60}" "[ \"\$(\"\$CERTCTL_BIN\" domain show '$1' --json | jq -r .status)\" = active ]"; }

cc domain add http.example.com --alt www.http.example.com --challenge http-01 >/dev/null
cc domain add '*.wild.example.com' --alt wild.example.com --challenge dns-01 >/dev/null
cc domain add alpn.example.com --challenge tls-alpn-01 --key-type rsa-2048 >/dev/null

check "http-01 certificate issued" wait_active http.example.com
check "dns-01 wildcard + apex certificate issued" wait_active '*.wild.example.com'
check "tls-alpn-01 certificate issued" wait_active alpn.example.com
verify_issued http.example.com "http.example.com www.http.example.com"
verify_issued '*.wild.example.com' "*.wild.example.com wild.example.com"
verify_issued alpn.example.com "alpn.example.com"

check_eq "no challenge record left behind" 0 "$(sqlite3 "$T_DIR/state/certd.db" 'select count(*) from challenges')"
check_eq "every order finished" 0 "$(sqlite3 "$T_DIR/state/certd.db" 'select count(*) from orders where finished = 0')"
ev=$(cc events --json --limit 1000)
check_eq "three certificate.issued events" 3 "$(jq '[.events[] | select(.type == "certificate.issued")] | length' <<<"$ev")"
check_eq "certificate status active in history" active "$(cc history http.example.com --json | jq -r '.certificates[0].status')"
order=$(cc order show http.example.com --json 2>/dev/null || true)
[ -n "$order" ] || { api GET /v1/domains/http.example.com/order; order=$HTTP_BODY; }
check_eq "latest order is valid and finished" "valid true" "$(jq -r '"\(.status) \(.finished)"' <<<"$order")"

stop_certd
finish
