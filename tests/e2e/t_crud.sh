#!/usr/bin/env bash
# Domain CRUD through certctl and raw HTTP, keys really generated and stored, and a restart that
# keeps everything.
. "$(dirname "$0")/lib.sh"

write_config
start_certd
cc() { "$CERTCTL_BIN" "$@"; }

# add: primary + alt (Unicode IDN, upper case), dns-01 wildcard needs dns-01
out=$(cc domain add WWW.Example.COM --alt bücher.example.com --key-type ec-p384 --json)
check_eq "add returns the normalised name" "www.example.com" "$(jq -r .name <<<"$out")"
check_eq "IDN alt name stored as punycode" '["xn--bcher-kva.example.com"]' "$(jq -c .alt_names <<<"$out")"
check_eq "key type as asked" "ec-p384" "$(jq -r .key.type <<<"$out")"
check_eq "new domain is pending" "pending" "$(jq -r .status <<<"$out")"
check_eq "CA defaults to [acme] default_ca" "pebble" "$(jq -r .ca <<<"$out")"
key_sha=$(jq -r .key.public_key_sha256 <<<"$out")
check_match "key fingerprint is a SHA-256" '^[0-9a-f]{64}$' "$key_sha"

cc domain add '*.shop.example.net' --challenge dns-01 --json >/dev/null
check "wildcard with dns-01 is accepted" test "$(cc domain show '*.shop.example.net' --json | jq -r .challenge)" = dns-01
rc=0; err=$(cc domain add '*.x.example.net' 2>&1) || rc=$?
check_eq "wildcard with http-01 is refused with exit 1" 1 "$rc"
check_match "refusal explains the wildcard rule" 'dns-01' "$err"
rc=0; cc domain add www.example.com 2>/dev/null || rc=$?
check_eq "duplicate add is refused with exit 1" 1 "$rc"

# the key is really in the database, parses, and matches the fingerprint the API reported
db="$T_DIR/state/certd.db"
pem=$(sqlite3 "$db" "select key_pem from private_keys k join domains d on d.id = k.domain_id where d.name = 'www.example.com' and k.status = 'current'")
check_match "stored key is PKCS#8 PEM" '^-----BEGIN PRIVATE KEY-----' "$pem"
spki_sha=$(openssl pkey -pubout -outform DER <<<"$pem" 2>/dev/null | sha256sum | cut -d' ' -f1)
check_eq "stored key matches the reported fingerprint" "$key_sha" "$spki_sha"
check_match "stored key is P-384" 'NIST CURVE: P-384' "$(openssl pkey -noout -text <<<"$pem" 2>/dev/null)"
check_eq "database file is 0600" 600 "$(stat -c %a "$db")"

# list (human and JSON), show
list=$(cc domain list)
check_match "human list shows the domain" 'www\.example\.com' "$list"
check_eq "JSON list has both domains" 2 "$(cc domain list --json | jq '.domains | length')"
# pagination through raw HTTP: limit=1 then the cursor
api GET '/v1/domains?limit=1'
first=$(jq -r '.domains[0].name' <<<"$HTTP_BODY"); cursor=$(jq -r .next_cursor <<<"$HTTP_BODY")
api GET "/v1/domains?limit=1&cursor=$cursor"
second=$(jq -r '.domains[0].name' <<<"$HTTP_BODY")
check_eq "pagination walks both domains in order" "*.shop.example.net www.example.com" "$first $second"
check_eq "last page has no next cursor" null "$(jq -r .next_cursor <<<"$HTTP_BODY")"

# PATCH
api PATCH /v1/domains/www.example.com '{"alt_names": ["example.com", "api.example.com"], "challenge": "tls-alpn-01"}'
check_eq "PATCH answers 200" 200 "$HTTP_STATUS"
check_eq "PATCH replaced alt names" '["example.com","api.example.com"]' "$(cc domain show www.example.com --json | jq -c .alt_names)"
check_eq "PATCH changed the challenge" tls-alpn-01 "$(cc domain show www.example.com --json | jq -r .challenge)"

# renewal settings: defaults, round trip through POST, PATCH and certctl, bad values refused
out=$(cc domain show www.example.com --json)
check_eq "renewal settings default to no reuse, CA profile, global policy" 'false null null' \
    "$(jq -r '[.reuse_key, .profile, .renew_before] | map(tostring) | join(" ")' <<<"$out")"
out=$(cc domain add renew.example.com --reuse-key --profile shortlived --renew-before 30d --json)
check_eq "add stores the renewal settings" 'true shortlived 30d' \
    "$(jq -r '[.reuse_key, .profile, .renew_before] | map(tostring) | join(" ")' <<<"$out")"
check_eq "database holds them" '1|shortlived|30d' \
    "$(sqlite3 "$db" "select reuse_key, profile, renew_before from domains where name = 'renew.example.com'")"
api PATCH /v1/domains/renew.example.com '{"reuse_key": false, "profile": null, "renew_before": "33%"}'
check_eq "PATCH of renewal settings answers 200" 200 "$HTTP_STATUS"
check_eq "PATCH sets and clears them (null = default)" 'false null 33%' \
    "$(jq -r '[.reuse_key, .profile, .renew_before] | map(tostring) | join(" ")' <<<"$HTTP_BODY")"
check_eq "PATCH of renewal settings alone keeps the rest" 'http-01 ec-p256' \
    "$(jq -r '[.challenge, .key_type] | join(" ")' <<<"$HTTP_BODY")"
api PATCH /v1/domains/renew.example.com '{"renew_before": null}'
check_eq "renew_before null goes back to the global policy" null "$(jq -r .renew_before <<<"$HTTP_BODY")"
out=$(cc domain set renew.example.com --reuse-key --profile classic --renew-before 0.25 --json)
check_eq "domain set changes the renewal settings" 'true classic 0.25' \
    "$(jq -r '[.reuse_key, .profile, .renew_before] | map(tostring) | join(" ")' <<<"$out")"
out=$(cc domain set renew.example.com --no-reuse-key --no-profile --no-renew-before --json)
check_eq "domain set --no-... clears them" 'false null null' \
    "$(jq -r '[.reuse_key, .profile, .renew_before] | map(tostring) | join(" ")' <<<"$out")"
rc=0; cc domain set renew.example.com --profile a --no-profile 2>/dev/null || rc=$?
check_eq "--profile with --no-profile is a usage error" 2 "$rc"
rc=0; cc domain set renew.example.com --reuse-key --no-reuse-key 2>/dev/null || rc=$?
check_eq "--reuse-key with --no-reuse-key is a usage error" 2 "$rc"
cc domain set renew.example.com --profile tlsserver --renew-before 12h >/dev/null
ev=$(cc events --json --limit 1000)
check_eq "domain.updated records the renewal settings" 'false tlsserver 12h' \
    "$(jq -r '[.events[] | select(.domain == "renew.example.com" and .type == "domain.updated")][-1].detail | [.reuse_key, .profile, .renew_before] | map(tostring) | join(" ")' <<<"$ev")"
show=$(cc domain show renew.example.com)
check_match "show prints the profile" 'profile: +tlsserver' "$show"
check_match "show prints renew before" 'renew before: +12h' "$show"
check_match "show prints key reuse" 'reuse key: +no' "$show"

long=$(printf 'p%.0s' {1..65})
before_db=$(sqlite3 "$db" "select reuse_key, profile, renew_before from domains where name = 'renew.example.com'")
for body in '{"profile": ""}' '{"profile": "two words"}' '{"profile": "ü"}' "{\"profile\": \"$long\"}" \
            '{"profile": 5}' '{"reuse_key": "yes"}' '{"reuse_key": null}' '{"reuse_key": 1}' \
            '{"renew_before": "soon"}' '{"renew_before": ""}' '{"renew_before": "1.5"}' \
            '{"renew_before": "0%"}' '{"renew_before": "-3d"}' '{"renew_before": 30}' \
            '{"renew_before": true}'; do
    api PATCH /v1/domains/renew.example.com "$body"
    field=$(jq -r 'keys[0]' <<<"$body")
    check_eq "PATCH $body is 400 invalid-field" "400 urn:certd:problem:invalid-field $field" \
        "$HTTP_STATUS $(jq -r '.type + " " + .field' <<<"$HTTP_BODY")"
done
check_eq "refused PATCHes changed nothing" "$before_db" \
    "$(sqlite3 "$db" "select reuse_key, profile, renew_before from domains where name = 'renew.example.com'")"
api POST /v1/domains '{"name": "badprofile.example.com", "profile": "a/b"}'
check_eq "POST with a bad profile is 400 invalid-field" "400 profile" "$HTTP_STATUS $(jq -r .field <<<"$HTTP_BODY")"
api POST /v1/domains '{"name": "badrenew.example.com", "renew_before": "tomorrow"}'
check_eq "POST with a bad renew_before is 400 invalid-field" "400 renew_before" "$HTTP_STATUS $(jq -r .field <<<"$HTTP_BODY")"
api GET /v1/domains/badprofile.example.com
check_eq "a refused POST adds nothing" 404 "$HTTP_STATUS"
api POST /v1/domains '{"name": "nulls.example.com", "profile": null, "renew_before": null, "reuse_key": false}'
check_eq "POST takes null for the defaults" "201 null null" "$HTTP_STATUS $(jq -r '[.profile, .renew_before] | map(tostring) | join(" ")' <<<"$HTTP_BODY")"
cc domain remove --purge nulls.example.com >/dev/null

# a certificate close to expiry (written straight into the database: nothing issues here) shows
# in the domain, in /v1/health and as a warning of certctl status, which still exits 0
now=$(date +%s)
sqlite3 "$db" "insert into certificates (domain_id, key_id, serial, not_before, not_after, issuer,
    fingerprint_sha256, chain_pem, status, created_at, ari_window_start, ari_window_end, expiring_at)
    select d.id, k.id, '0abc12', $now - 87 * 86400, $now + 3 * 86400, 'CN=Test CA', 'ff', 'x',
    'active', $now, $now - 86400, $now + 86400, $now - 4 * 86400 from domains d
    join private_keys k on k.domain_id = d.id and k.status = 'current' where d.name = 'renew.example.com'"
out=$(cc domain show renew.example.com --json)
check_eq "certificate summary has the ARI window" "$(date -u -d @$((now - 86400)) +%FT%TZ) $(date -u -d @$((now + 86400)) +%FT%TZ)" \
    "$(jq -r '.certificate | .ari_window_start + " " + .ari_window_end' <<<"$out")"
check_eq "certificate summary says whether it is flagged expiring" boolean "$(jq -r '.certificate.expiring | type' <<<"$out")"
check_eq "a domain without a certificate shows none" null "$(cc domain show www.example.com --json | jq -r .certificate)"
api GET /v1/health
check_eq "health lists the expiring certificate" "renew.example.com 0abc12 $(date -u -d @$((now + 3 * 86400)) +%FT%TZ)" \
    "$(jq -r '.expiring | map(.name + " " + .serial + " " + .not_after) | join(",")' <<<"$HTTP_BODY")"
rc=0; st=$(cc status) || rc=$?
check_eq "status with an expiring certificate exits 0" 0 "$rc"
check_match "status warns about it" 'warning: the certificate of renew\.example\.com \(serial 0abc12\) expires' "$st"
check_match "show prints the ARI window" 'ari window: +[0-9-]+ [0-9:]+ UTC to [0-9-]+ [0-9:]+ UTC' "$(cc domain show renew.example.com)"
cc domain remove renew.example.com >/dev/null
api GET /v1/health
check_eq "a removed domain's certificate is no longer listed" 0 "$(jq '.expiring | length' <<<"$HTTP_BODY")"
check_eq "removal cleared its expiry timer" "" "$(sqlite3 "$db" "select expiring_at from certificates where serial = '0abc12'")"
cc domain remove --purge renew.example.com >/dev/null

# history
h=$(cc history www.example.com --json)
check_eq "history lists one key" 1 "$(jq '.keys | length' <<<"$h")"
check_eq "history key is current" current "$(jq -r '.keys[0].status' <<<"$h")"
check "history never carries key material" bash -c "! grep -q 'PRIVATE KEY' <<<'$h'"

# remove keeps history; re-adding revives it with a new current key
cc domain remove www.example.com
check_eq "removed domain gone from the list" 1 "$(cc domain list --json | jq '.domains | length')"
check_eq "removed domain still shown with status removed" removed "$(cc domain show www.example.com --json | jq -r .status)"
check_eq "include_removed lists it" 2 "$(cc domain list --all --json | jq '.domains | length')"
cc domain add www.example.com --json >/dev/null
h=$(cc history www.example.com --json)
check_eq "revived domain keeps the old key in history" 2 "$(jq '.keys | length' <<<"$h")"
check_eq "old key superseded, new key current" "current superseded" "$(jq -r '[.keys[].status] | join(" ")' <<<"$h")"

# restart keeps everything
before=$(cc domain list --all --json | jq -c '[.domains[] | {name, alt_names, challenge, key_type, status, key: .key.public_key_sha256}]')
stop_certd
start_certd
after=$(cc domain list --all --json | jq -c '[.domains[] | {name, alt_names, challenge, key_type, status, key: .key.public_key_sha256}]')
check_eq "restart keeps every domain and key" "$before" "$after"

# purge deletes the domain and its keys, events stay
cc domain remove --purge www.example.com
api GET /v1/domains/www.example.com
check_eq "purged domain is 404" 404 "$HTTP_STATUS"
check_eq "purged domain's keys are gone" 0 "$(sqlite3 "$db" "select count(*) from private_keys k left join domains d on d.id = k.domain_id where d.id is null or d.name = 'www.example.com'")"
ev=$(cc events --json --limit 1000)
check_match "events record add, update, remove and purge" 'domain.added.*domain.updated.*domain.removed.*domain.purged' "$(jq -r '[.events[] | select(.domain == "www.example.com") | .type] | join(" ")' <<<"$ev")"
check_match "events name the actor" '^uid:0\(root\)$' "$(jq -r '[.events[] | select(.type == "domain.added")][0].actor' <<<"$ev")"
check_eq "daemon start recorded" 2 "$(jq '[.events[] | select(.type == "daemon.started")] | length' <<<"$ev")"

# status
st=$(cc status --json)
check_eq "status reports the schema version" "$(sqlite3 "$db" 'pragma user_version')" "$(jq -r .schema_version <<<"$st")"
check_eq "status counts managed domains" 1 "$(jq -r .domains <<<"$st")"

stop_certd
check "socket removed on clean shutdown" test ! -e "$CERTD_SOCKET"
finish
