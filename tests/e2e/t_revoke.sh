#!/usr/bin/env bash
# Revocation shows at the CA and in history, and a replacement (with a new key after a key
# compromise) is issued. Account key rollover and deactivation against the same Pebble.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pebble.sh"

pebble_start
write_config "$(certd_pebble_config_text)"
start_certd
cc() { "$CERTCTL_BIN" "$@"; }
wait_cert_not() { # NAME SERIAL: until the domain's current certificate is another one
    wait_for 60 "s=\$(\"\$CERTCTL_BIN\" domain show '$1' --json | jq -r '.certificate.serial // empty'); [ -n \"\$s\" ] && [ \"\$s\" != '$2' ]"
}

cc domain add rev.example.com >/dev/null
check "certificate issued" wait_cert_not rev.example.com none
first=$(cc domain show rev.example.com --json)
serial=$(jq -r .certificate.serial <<<"$first")
key1=$(jq -r .key.public_key_sha256 <<<"$first")
check_eq "Pebble knows the certificate as valid" Valid "$(pebble_cert_status "$serial")"

api POST "/v1/certificates/$serial/revoke" '{"reason": "keyCompromise"}'
check_eq "revoke answers 200" 200 "$HTTP_STATUS"
check_eq "a replacement is scheduled" scheduled "$(jq -r .replacement <<<"$HTTP_BODY")"
check_eq "Pebble reports the certificate revoked" Revoked "$(pebble_cert_status "$serial")"
check_eq "history shows it revoked" revoked \
    "$(cc history rev.example.com --json | jq -r --arg s "$serial" '.certificates[] | select(.serial == $s) | .status')"
check "a replacement certificate is issued" wait_cert_not rev.example.com "$serial"
second=$(cc domain show rev.example.com --json)
check "after a key compromise the replacement has a new key" test "$(jq -r .key.public_key_sha256 <<<"$second")" != "$key1"
check_eq "the replacement is for the new current key" "$(jq -r .key.id <<<"$second")" "$(jq -r .certificate.key_id <<<"$second")"
api POST "/v1/certificates/$serial/revoke" ''
check_eq "revoking again is a conflict" 409 "$HTTP_STATUS"
api POST "/v1/certificates/00ff/revoke" ''
check_eq "unknown serial is 404" 404 "$HTTP_STATUS"
api POST "/v1/certificates/$(jq -r .certificate.serial <<<"$second")/revoke" '{"reason": 7}'
check_eq "reason 7 is refused" 400 "$HTTP_STATUS"

# account management
api GET /v1/accounts/pebble
url1=$(jq -r .account_url <<<"$HTTP_BODY")
check_eq "account is valid" valid "$(jq -r .status <<<"$HTTP_BODY")"
key_before=$(sqlite3 "$T_DIR/state/certd.db" "select key_pem from accounts" | sha256sum)
api POST /v1/accounts/pebble/rollover ''
check_eq "rollover answers 200" 200 "$HTTP_STATUS"
check "rollover replaced the stored account key" test "$(sqlite3 "$T_DIR/state/certd.db" "select key_pem from accounts" | sha256sum)" != "$key_before"
check_eq "the account URL stays" "$url1" "$(jq -r .account_url <<<"$HTTP_BODY")"
serial2=$(cc domain show rev.example.com --json | jq -r .certificate.serial)
api POST /v1/domains/rev.example.com/renew ''
check "orders still work with the new account key" wait_cert_not rev.example.com "$serial2"
api POST /v1/accounts/pebble/deactivate ''
check_eq "deactivate answers deactivated" deactivated "$(jq -r .status <<<"$HTTP_BODY")"
api POST /v1/accounts/pebble ''
check_eq "a new account can be registered" "201 valid" "$HTTP_STATUS $(jq -r .status <<<"$HTTP_BODY")"
check "the new account has another URL" test "$(jq -r .account_url <<<"$HTTP_BODY")" != "$url1"

# The new account neither ordered the current certificate nor holds authorizations for its name:
# the CA refuses its revocation request (an error answer, which certd must free: stop_certd's
# exit status carries LeakSanitizer's verdict), and certd signs with the certificate's key.
serial3=$(cc domain show rev.example.com --json | jq -r .certificate.serial)
api POST "/v1/certificates/$serial3/revoke" '{"reason": "superseded"}'
check_eq "a certificate of the old account is revoked" 200 "$HTTP_STATUS"
check_eq "Pebble reports it revoked" Revoked "$(pebble_cert_status "$serial3")"
check_match "after the CA refused the account, the certificate key signed" \
    'refused revocation by the account' "$(cat "$T_DIR/certd.log")"

stop_certd
finish
