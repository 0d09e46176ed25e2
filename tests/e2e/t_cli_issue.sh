#!/usr/bin/env bash
# certctl's issuance commands against a real certd and Pebble: add --wait (success, order failure,
# timeout), cert get (files, modes, key/certificate match, stdout), renew --wait, order show,
# cert revoke and account list.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pebble.sh"

pebble_start

# A dns-01 hook that fails for names under fail.example.com and takes 8 s for names under
# slow.example.com (both only when adding the record), and otherwise hands over to the
# challtestsrv hook: one daemon covers success, failure and timeout.
cat >"$T_DIR/hook" <<EOF
#!/usr/bin/env bash
if [ "\$1" = add ]; then
    case "\$2" in
    *.fail.example.com.) echo "test hook refuses \$2" >&2; exit 1 ;;
    *.slow.example.com.) sleep 8 ;;
    esac
fi
exec "$PEBBLE_REPO_DIR/packaging/hooks/pebble-challtestsrv" --url "$CTS_MGMT_URL" "\$@"
EOF
chmod 0755 "$T_DIR/hook"
hook_line="hook = $(_pebble_cmdline_quote "$T_DIR/hook")"
write_config "$(certd_pebble_config_text | sed "s|^hook = .*|$hook_line|")"
grep -qxF "$hook_line" "$T_DIR/certd.conf" || { fail "config names the test hook"; finish; }
start_certd
cc() { "$CERTCTL_BIN" "$@"; }
field() { cc domain show "$1" --json | jq -r "$2"; } # field NAME JQ-FILTER
pebble_root_pem "$T_DIR/pebble-roots.pem"
openssl x509 -in "$T_DIR/pebble-roots.pem" -out "$T_DIR/pebble-root.pem"

# --- add --wait: success ----------------------------------------------------------------------
rc=0
out=$(cc domain add www.example.com --alt example.com --wait --timeout 120 2>"$T_DIR/err") || rc=$?
check_eq "add --wait exits 0 once the certificate is there" 0 "$rc"
check_match "add --wait prints the active domain" $'(^|\n)status: +active(\n|$)' "$out"
check_match "add --wait prints the new certificate" $'(^|\n)certificate: +#[0-9]+ active' "$out"
check_eq "the daemon agrees: active" active \
    "$(field www.example.com .status)"

rc=0; js=$(cc domain add json.example.com --wait --json 2>"$T_DIR/err") || rc=$?
check_eq "add --wait --json exits 0" 0 "$rc"
check_eq "add --wait --json prints the domain with its certificate" "active true" \
    "$(jq -r '"\(.status) \(.certificate.id > 0)"' <<<"$js")"

# --- cert get ---------------------------------------------------------------------------------
mkdir -p "$T_DIR/out"
rc=0
(
    cd "$T_DIR/out"
    # A strict umask must not matter: certificates are 0644 and the key 0600 exactly.
    umask 077
    # An old key file readable by all must be replaced, not rewritten in place with its mode.
    echo old >key.pem && chmod 0644 key.pem
    cc cert get www.example.com --out fullchain.pem --cert-out cert.pem --chain-out chain.pem \
        --key-out key.pem
) >"$T_DIR/get.out" 2>"$T_DIR/get.err" || rc=$?
check_eq "cert get with four files exits 0 and prints nothing" "0 " "$rc $(cat "$T_DIR/get.out")"
o=$T_DIR/out
check_eq "key file mode 0600" 600 "$(stat -c %a "$o/key.pem")"
check_eq "certificate file modes 0644" "644 644 644" \
    "$(stat -c %a "$o/fullchain.pem" "$o/cert.pem" "$o/chain.pem" | xargs)"
check_eq "fullchain = certificate + chain" "$(cat "$o/cert.pem" "$o/chain.pem" | sha256sum)" \
    "$(sha256sum <"$o/fullchain.pem")"
check_eq "cert.pem holds exactly one certificate" 1 "$(grep -c 'BEGIN CERTIFICATE' "$o/cert.pem")"
check_match "chain.pem holds the intermediate" 'Pebble Intermediate CA' \
    "$(openssl x509 -in "$o/chain.pem" -noout -subject)"
check_eq "the key matches the certificate" \
    "$(openssl pkey -in "$o/key.pem" -pubout -outform DER | sha256sum)" \
    "$(openssl x509 -in "$o/cert.pem" -noout -pubkey |
        openssl pkey -pubin -outform DER | sha256sum)"
verify() {
    openssl verify -CAfile "$T_DIR/pebble-root.pem" -untrusted "$o/chain.pem" "$o/cert.pem" \
        >/dev/null
}
check "the chain verifies against Pebble's root" verify
check_eq "the leaf is the domain's current certificate" \
    "$(field www.example.com .certificate.fingerprint_sha256)" \
    "$(openssl x509 -in "$o/cert.pem" -noout -fingerprint -sha256 |
        cut -d= -f2 | tr -d : | tr A-F a-f)"
check_eq "no temporary files left behind" "cert.pem chain.pem fullchain.pem key.pem" \
    "$(find "$o" -mindepth 1 -printf '%f\n' | sort | xargs)"

check_eq "--out - prints the full chain" "$(sha256sum <"$o/fullchain.pem")" \
    "$(cc cert get www.example.com --out - | sha256sum)"
plain=$(cc cert get www.example.com)
check_eq "no option prints the full chain" "$(cat "$o/fullchain.pem")" "$plain"
check_eq "the key is not printed unless asked" 0 "$(grep -c 'PRIVATE KEY' <<<"$plain" || true)"
check_eq "--key-out - prints the key" "$(cat "$o/key.pem")" \
    "$(cc cert get www.example.com --key-out -)"
meta=$(cc cert get www.example.com --json)
check_eq "--json prints the certificate document without the key" "www.example.com 0" \
    "$(jq -r .name <<<"$meta") $(grep -c 'PRIVATE KEY' <<<"$meta" || true)"
rc=0; cc cert get www.example.com --json --out - >/dev/null 2>&1 || rc=$?
check_eq "--json with --out - is a usage error" 2 "$rc"
rc=0; cc cert get www.example.com --out "$o/same" --key-out "$o/same" >/dev/null 2>&1 || rc=$?
check_eq "two outputs into one file are a usage error" "2 no" \
    "$rc $([ -e "$o/same" ] && echo yes || echo no)"

# --- order show -------------------------------------------------------------------------------
out=$(cc order show www.example.com)
check_match "order show: status valid" $'(^|\n)status: +valid(\n|$)' "$out"
check_match "order show: finished" $'(^|\n)finished: +true(\n|$)' "$out"
check_match "order show: both names" \
    $'names: +example.com\n +www.example.com|names: +www.example.com\n +example.com' "$out"
check_eq "order show --json" "valid" "$(cc order show www.example.com --json | jq -r .status)"

# --- renew --wait -----------------------------------------------------------------------------
before=$(field www.example.com .certificate.id)
rc=0; js=$(cc renew www.example.com --wait --timeout 120 --json 2>"$T_DIR/err") || rc=$?
check_eq "renew --wait exits 0" 0 "$rc"
after=$(jq -r .certificate.id <<<"$js")
check "renew --wait prints a new certificate id ($before -> $after)" \
    test "$after" -gt "$before"
check_eq "the printed certificate is the current one" "$after" \
    "$(field www.example.com .certificate.id)"
json_id=$(field json.example.com .certificate.id)
out=$(cc renew json.example.com)
check_match "renew without --wait says it is scheduled" '^renewal of json\.example\.com scheduled' \
    "$out"
# Its certificate changes soon after (and must have, before the revocation below reads it).
check "renew without --wait renews too" \
    wait_for 60 "[ \"\$(field json.example.com .certificate.id)\" != $json_id ]"

# --- add --wait: the order fails --------------------------------------------------------------
rc=0; cc domain add x.fail.example.com --challenge dns-01 --wait --timeout 120 \
    >"$T_DIR/fail.out" 2>"$T_DIR/fail.err" || rc=$?
check_eq "add --wait exits 1 when the order fails" 1 "$rc"
check_match "the failure message names the domain and why" \
    '^certctl: x\.fail\.example\.com: .*hook.*(status 1|refuses)' "$(head -n 1 "$T_DIR/fail.err")"
check_eq "nothing on stdout for a failed wait" "" "$(cat "$T_DIR/fail.out")"
check_eq "the daemon agrees: failed" failed "$(field x.fail.example.com .status)"
rc=0; cc renew x.fail.example.com --wait --timeout 120 >/dev/null 2>"$T_DIR/fail.err" || rc=$?
check_eq "renew --wait exits 1 when the new order fails too" 1 "$rc"
check_match "renew --wait says why" 'x\.fail\.example\.com: .*hook' "$(cat "$T_DIR/fail.err")"

# An order the CA refuses: challtestsrv points the name at 127.0.0.2, where nothing listens.
curl -fsS -X POST -d '{"host":"refused.example.com.","addresses":["127.0.0.2"]}' \
    "$CTS_MGMT_URL/add-a" >/dev/null
rc=0; cc domain add refused.example.com --wait --timeout 120 >/dev/null 2>"$T_DIR/fail.err" || rc=$?
check_eq "add --wait exits 1 when the CA refuses" 1 "$rc"
check_match "the message carries the CA's problem" \
    '^certctl: refused\.example\.com: .*127\.0\.0\.2' \
    "$(cat "$T_DIR/fail.err")"
out=$(cc order show refused.example.com)
check_match "order show: status invalid" $'(^|\n)status: +invalid(\n|$)' "$out"
check_match "order show: the problem's type" $'(^|\n)error type: +urn:ietf:params:acme:error:' \
    "$out"

# --- cert revoke ------------------------------------------------------------------------------
serial=$(field json.example.com .certificate.serial)
out=$(cc cert revoke json.example.com --reason keyCompromise)
check_match "revoke by name revokes the current certificate" $'(^|\n)serial: +'"$serial"$'\n' "$out"
check_match "revoke prints the status" $'(^|\n)status: +revoked(\n|$)' "$out"
check_eq "Pebble says revoked" Revoked "$(pebble_cert_status "$serial")"
rc=0; cc cert revoke "$serial" >/dev/null 2>"$T_DIR/err" || rc=$?
check_eq "revoking it again is refused (exit 1)" 1 "$rc"
check_match "and says why" 'already revoked' "$(cat "$T_DIR/err")"
rc=0; cc cert revoke not-a-serial >/dev/null 2>&1 || rc=$?
check_eq "an argument that is neither serial nor name is a usage error" 2 "$rc"

# --- account list -----------------------------------------------------------------------------
out=$(cc account list)
check_match "account list has the header" '^CA +STATUS +KEY +ACCOUNT URL' "$out"
check_match "account list shows pebble valid" \
    $'\npebble +valid +ec-p256 +https://127\\.0\\.0\\.1:'"$PEBBLE_PORT"'/' "$out"
check_eq "account show --json" "pebble valid" \
    "$(cc account show pebble --json | jq -r '"\(.ca) \(.status)"')"
url=$(cc account show pebble --json | jq -r .account_url)
check_eq "account rollover keeps the account" "$url valid" \
    "$(cc account rollover pebble --json | jq -r '"\(.account_url) \(.status)"')"

# --- add --wait: timeout ----------------------------------------------------------------------
# The hook takes 8 s for this name, so a 1 s wait cannot see the certificate.
t0=$(date +%s%N)
rc=0; cc domain add y.slow.example.com --challenge dns-01 --wait --timeout 1 \
    >/dev/null 2>"$T_DIR/slow.err" || rc=$?
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
check_eq "add --wait --timeout 1 exits 4 on a slow order" 4 "$rc"
check_match "the message says it timed out" '^certctl: y\.slow\.example\.com: timed out after 1 s' \
    "$(cat "$T_DIR/slow.err")"
check "the wait ended near its timeout (${ms} ms)" test "$ms" -lt 4000
# The order itself goes on; let it end before certd stops.
check "the slow order still completes" \
    wait_for 60 "[ \"\$(field y.slow.example.com .status)\" = active ]"

stop_certd
finish
