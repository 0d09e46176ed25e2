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
