#!/usr/bin/env bash
# Fleet delivery against a real Pebble: GET /v1/domains/NAME/bundle (chain + key as JSON, ETag,
# If-None-Match -> 304), ETags on the PEM endpoints, and GET /v1/sni (exact name, wildcard, never
# a wildcard over two labels, case and trailing dot folded), all answered from the in-memory
# index, which follows the store: a renewal changes the answer, a removal ends it.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pebble.sh"

pebble_start
SOCKET_MODE=0666 write_config "$(certd_pebble_config_text)"
start_certd
cc() { "$CERTCTL_BIN" "$@"; }

# get PATH [curl args...]: GET over the socket; sets G_STATUS, G_CTYPE, G_ETAG; body in
# $T_DIR/g.body.
get() {
    local path=$1 out; shift
    rm -f "$T_DIR/g.body" # curl writes no file for an empty body
    out=$(curl -sS --unix-socket "$CERTD_SOCKET" -D "$T_DIR/g.hdr" -o "$T_DIR/g.body" \
        -w '%{http_code} %{content_type}' "$@" "http://localhost$path") || true
    G_STATUS=${out%% *}
    G_CTYPE=${out#* }
    G_ETAG=$(sed -n 's/^[Ee][Tt][Aa][Gg]: *//p' "$T_DIR/g.hdr" | tr -d '\r' | head -n 1)
}
# Hex SHA-256 of the first certificate in FILE, lower case, no colons.
leaf_fp() { openssl x509 -in "$1" -noout -fingerprint -sha256 | sed 's/.*=//; s/://g' | tr 'A-F' 'a-f'; }
# SHA-256 of the public key of the first certificate / of the private key in FILE.
cert_pub() { openssl x509 -in "$1" -noout -pubkey | openssl pkey -pubin -outform DER | sha256sum | cut -d' ' -f1; }
key_pub() { openssl pkey -in "$1" -pubout -outform DER | sha256sum | cut -d' ' -f1; }
stored_fp() { cc domain show "$1" --json | jq -r .certificate.fingerprint_sha256; }
# sni_fp HOST: fingerprint of the leaf /v1/sni answers for HOST, or its HTTP status.
sni_fp() {
    get "/v1/sni?server_name=$1"
    if [ "$G_STATUS" = 200 ]; then leaf_fp "$T_DIR/g.body"; else echo "$G_STATUS"; fi
}
wait_active() { wait_for "${2:-60}" "[ \"\$(\"\$CERTCTL_BIN\" domain show '$1' --json | jq -r .status)\" = active ]"; }

cc domain add exact.example.com --alt www.exact.example.com --challenge http-01 >/dev/null
cc domain add '*.wild.example.com' --alt wild.example.com --challenge dns-01 >/dev/null
cc domain add rsa.example.com --challenge tls-alpn-01 --key-type rsa-2048 >/dev/null
check "exact.example.com issued" wait_active exact.example.com
check "*.wild.example.com issued" wait_active '*.wild.example.com'
check "rsa.example.com issued" wait_active rsa.example.com
exact_fp=$(stored_fp exact.example.com)
wild_fp=$(stored_fp '*.wild.example.com')

# --- bundle ----------------------------------------------------------------------------------
get /v1/domains/exact.example.com/bundle
check_eq "bundle answers JSON" "200 application/json" "$G_STATUS $G_CTYPE"
cp "$T_DIR/g.body" "$T_DIR/bundle.json"
jq -r .fullchain "$T_DIR/bundle.json" > "$T_DIR/b-chain.pem"
jq -r .private_key "$T_DIR/bundle.json" > "$T_DIR/b-key.pem"
check_eq "bundle chain's leaf is the stored certificate" "$exact_fp" "$(leaf_fp "$T_DIR/b-chain.pem")"
check_eq "bundle key matches its certificate" "$(cert_pub "$T_DIR/b-chain.pem")" "$(key_pub "$T_DIR/b-key.pem")"
check_eq "bundle chain holds leaf and intermediate" 2 "$(grep -c 'BEGIN CERTIFICATE' "$T_DIR/b-chain.pem")"
check_eq "bundle serial, not_after and names are the stored ones" \
    "$(cc domain show exact.example.com --json | jq -c '[.certificate.serial, .certificate.not_after]') [\"exact.example.com\",\"www.exact.example.com\"]" \
    "$(jq -c '[.serial, .not_after]' "$T_DIR/bundle.json") $(jq -c .names "$T_DIR/bundle.json")"
bundle_etag=$G_ETAG
check_match "bundle carries a strong ETag" '^"[0-9a-f]{32}-[0-9]+"$' "$bundle_etag"
check_eq "the ETag header equals the bundle's etag member" "$bundle_etag" "$(jq -r .etag "$T_DIR/bundle.json")"
get /v1/domains/exact.example.com/bundle -H "If-None-Match: $bundle_etag"
check_eq "If-None-Match with the ETag: 304, no body" "304 0 $bundle_etag" "$G_STATUS $(cat "$T_DIR/g.body" 2>/dev/null | wc -c) $G_ETAG"
get /v1/domains/exact.example.com/bundle -H "If-None-Match: \"other\", W/$bundle_etag"
check_eq "a weak match in a list: 304" 304 "$G_STATUS"
get /v1/domains/exact.example.com/bundle -H 'If-None-Match: "0000-1"'
check_eq "another ETag: 200" 200 "$G_STATUS"
get /v1/domains/EXACT.example.com/bundle
check_eq "bundle by an upper-case name" 200 "$G_STATUS"
get /v1/domains/www.exact.example.com/bundle
check_eq "bundle is addressed by the primary name only" 404 "$G_STATUS"
get /v1/domains/nothing.example.com/bundle
check_eq "bundle of an unknown domain: 404 problem" "404 application/problem+json" "$G_STATUS $G_CTYPE"
get '/v1/domains/*.wild.example.com/bundle'
check_eq "wildcard domain's bundle" "200 $wild_fp" "$G_STATUS $(jq -r .fingerprint_sha256 "$T_DIR/g.body")"
get '/v1/domains/exact.example.com/bundle?x=1'
check_eq "unknown query parameter on bundle: 400" 400 "$G_STATUS"

# --- ETags on the PEM endpoints --------------------------------------------------------------
get /v1/domains/exact.example.com/certificate
cert_etag=$G_ETAG
check_eq "PEM certificate carries the same ETag as the bundle" "200 $bundle_etag" "$G_STATUS $cert_etag"
get /v1/domains/exact.example.com/certificate -H "If-None-Match: $cert_etag"
check_eq "PEM certificate: 304 on a match" 304 "$G_STATUS"
get /v1/domains/exact.example.com/key
key_etag=$G_ETAG
check_match "PEM key carries an ETag" '^"[0-9a-f]{32}-[0-9]+"$' "$key_etag"
get /v1/domains/exact.example.com/key -H "If-None-Match: $key_etag"
check_eq "PEM key: 304 on a match" 304 "$G_STATUS"

# --- SNI -------------------------------------------------------------------------------------
get "/v1/sni?cipher_suites=4865,4866&server_name=exact.example.com&signature_schemes=1027,2052"
check_eq "SNI answers a PEM bundle with Caddy's parameters" "200 application/x-pem-file" "$G_STATUS $G_CTYPE"
cp "$T_DIR/g.body" "$T_DIR/sni.pem"
check_eq "SNI leaf is the stored certificate" "$exact_fp" "$(leaf_fp "$T_DIR/sni.pem")"
check_eq "SNI key matches the leaf" "$(cert_pub "$T_DIR/sni.pem")" "$(key_pub "$T_DIR/sni.pem")"
check_eq "SNI bundle: leaf, intermediate, then the key" "CERTIFICATE CERTIFICATE PRIVATE KEY" \
    "$(sed -n 's/^-----BEGIN \(.*\)-----$/\1/p' "$T_DIR/sni.pem" | xargs)"
check_eq "SNI chain equals the stored chain" "$(curl -sS --unix-socket "$CERTD_SOCKET" http://localhost/v1/domains/exact.example.com/certificate)" \
    "$(sed '/BEGIN PRIVATE KEY/,$d' "$T_DIR/sni.pem")"
check_eq "SNI ETag equals the bundle's" "$bundle_etag" "$G_ETAG"
get "/v1/sni?server_name=exact.example.com" -H "If-None-Match: $bundle_etag"
check_eq "SNI: 304 on a match" 304 "$G_STATUS"
check_eq "SNI alt name" "$exact_fp" "$(sni_fp www.exact.example.com)"
check_eq "SNI upper case and a trailing dot" "$exact_fp" "$(sni_fp WWW.Exact.EXAMPLE.com.)"
check_eq "SNI wildcard" "$wild_fp" "$(sni_fp foo.wild.example.com)"
check_eq "SNI the wildcard's apex (its alt name)" "$wild_fp" "$(sni_fp wild.example.com)"
check_eq "SNI the wildcard name itself" "$wild_fp" "$(sni_fp '*.wild.example.com')"
check_eq "SNI never a wildcard over two labels" 404 "$(sni_fp a.b.wild.example.com)"
check_eq "SNI unknown name" 404 "$(sni_fp unknown.example.net)"
get "/v1/sni?server_name=rsa.example.com"
cp "$T_DIR/g.body" "$T_DIR/rsa.pem"
check_eq "SNI RSA certificate and key match" "$(stored_fp rsa.example.com) $(cert_pub "$T_DIR/rsa.pem")" \
    "$(leaf_fp "$T_DIR/rsa.pem") $(key_pub "$T_DIR/rsa.pem")"
get "/v1/sni?server_name="
check_eq "SNI empty server_name: 404 problem" "404 application/problem+json" "$G_STATUS $G_CTYPE"
get "/v1/sni"
check_eq "SNI without server_name: 400" 400 "$G_STATUS"
get "/v1/sni?server_name=exact.example.com&debug=1"
check_eq "SNI unknown parameter: 400" 400 "$G_STATUS"
get "/v1/sni?server_name=bad_name.example.com"
check_eq "SNI malformed name: 400 invalid-name" "400 urn:certd:problem:invalid-name" "$G_STATUS $(jq -r .type "$T_DIR/g.body")"
curl -sS --unix-socket "$CERTD_SOCKET" -X POST -o /dev/null -w '%{http_code}' \
    "http://localhost/v1/sni?server_name=exact.example.com" > "$T_DIR/code" || true
check_eq "SNI is GET only" 405 "$(cat "$T_DIR/code")"
code=$(as_nobody curl -sS --unix-socket "$CERTD_SOCKET" -o /dev/null -w '%{http_code}' \
    "http://localhost/v1/sni?server_name=exact.example.com" || true)
check_eq "a caller without a role gets no key" 403 "$code"

# Many lookups on one connection (keep-alive): all answered, and quickly enough to tell.
urls=()
for i in $(seq 1 500); do urls+=("http://localhost/v1/sni?server_name=www.exact.example.com"); done
t0=$(date +%s%N)
n200=$(curl -sS --unix-socket "$CERTD_SOCKET" -o /dev/null -w '%{http_code}\n' "${urls[@]}" | grep -c '^200$' || true)
t1=$(date +%s%N)
check_eq "500 SNI lookups on one connection all answered" 500 "$n200"
log "500 sequential SNI lookups in $(( (t1 - t0) / 1000000 )) ms"

# --- the packaged proxy examples load with these certificates ---------------------------------
EX="${CERTD_SOURCE_DIR:-$(dirname "$0")/../..}/packaging/examples"
nx="$T_DIR/nginx"
mkdir -p "$nx/live/www.example.com" "$nx/tmp"
cp "$T_DIR/b-chain.pem" "$nx/live/www.example.com/fullchain.pem"
cp "$T_DIR/b-key.pem" "$nx/live/www.example.com/privkey.pem"
sed "s#/etc/nginx/certd/live/#$nx/live/#g" "$EX/nginx/certd-http.conf" > "$nx/certd-http.conf"
cp "$EX/nginx/certd-stream.conf" "$nx/certd-stream.conf"
cat > "$nx/nginx.conf" <<EOF
load_module /usr/lib/nginx/modules/ngx_stream_module.so;
pid $nx/nginx.pid;
error_log $nx/error.log;
events {}
http {
    access_log off;
    client_body_temp_path $nx/tmp/body;
    proxy_temp_path $nx/tmp/proxy;
    fastcgi_temp_path $nx/tmp/fastcgi;
    uwsgi_temp_path $nx/tmp/uwsgi;
    scgi_temp_path $nx/tmp/scgi;
    include $nx/certd-http.conf;
}
include $nx/certd-stream.conf;
EOF
check "the nginx examples (http, and stream with ssl_preread) load" \
    nginx -t -q -p "$nx" -c "$nx/nginx.conf" -e "$nx/error.log"
hx="$T_DIR/haproxy"
mkdir -p "$hx"
cp "$T_DIR/sni.pem" "$hx/www.example.com.pem"
get "/v1/sni?server_name=x.wild.example.com"
cp "$T_DIR/g.body" "$hx/wildcard.example.com.pem"
sed "s#/etc/haproxy/certd/#$hx/#g" "$EX/haproxy/crt-list" > "$hx/crt-list"
sed "s#/etc/haproxy/certd/#$hx/#g" "$EX/haproxy/haproxy.cfg" > "$hx/haproxy.cfg"
check "the HAProxy example loads its crt-list of /v1/sni bundles" haproxy -c -q -f "$hx/haproxy.cfg"

# --- the index follows the store -------------------------------------------------------------
old_serial=$(jq -r .serial "$T_DIR/bundle.json")
cc renew exact.example.com >/dev/null
check "renewal issued a new certificate" wait_for 60 \
    "[ \"\$(\"\$CERTCTL_BIN\" domain show exact.example.com --json | jq -r .certificate.serial)\" != '$old_serial' ]"
new_fp=$(stored_fp exact.example.com)
check "after renew, SNI answers the new certificate within 5 s" wait_for 5 "[ \"\$(sni_fp exact.example.com)\" = '$new_fp' ]"
check_eq "after renew, the wildcard alt still answers its own" "$wild_fp" "$(sni_fp x.wild.example.com)"
get /v1/domains/exact.example.com/bundle -H "If-None-Match: $bundle_etag"
check_eq "after renew, the old ETag no longer matches" 200 "$G_STATUS"
check "after renew, the ETag changed" test "$G_ETAG" != "$bundle_etag"

cc domain remove exact.example.com >/dev/null
check "after remove, SNI answers 404 within 5 s" wait_for 5 "[ \"\$(sni_fp exact.example.com)\" = 404 ]"
check_eq "after remove, no alt name either" 404 "$(sni_fp www.exact.example.com)"
get /v1/domains/exact.example.com/bundle
check_eq "after remove, no bundle" 404 "$G_STATUS"

# A restart loads the index from the store.
stop_certd
start_certd
check_eq "after a restart, the wildcard is served again" "$wild_fp" "$(sni_fp y.wild.example.com)"
check_eq "after a restart, the removed domain stays gone" 404 "$(sni_fp exact.example.com)"
stop_certd
finish
