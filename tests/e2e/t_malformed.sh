#!/usr/bin/env bash
# Bad requests: each gets the right problem document, none changes the database, and the daemon
# keeps serving.
. "$(dirname "$0")/lib.sh"

write_config
start_certd
"$CERTCTL_BIN" domain add existing.example.com >/dev/null
check "the first order attempt against the absent CA has ended" wait_settled existing.example.com
before=$(db_snapshot)

# expect STATUS TYPE METHOD PATH [BODY] [curl args...]
expect() {
    local status=$1 type=$2; shift 2
    api "$@"
    local got_type
    got_type=$(jq -r .type <<<"$HTTP_BODY" 2>/dev/null || echo "(not JSON)")
    if [ "$HTTP_STATUS" = "$status" ] && [ "$got_type" = "urn:certd:problem:$type" ] &&
       [ "$HTTP_CTYPE" = "application/problem+json" ]; then
        pass "$1 $2 -> $status $type"
    else
        fail "$1 $2 -> $status $type" "got $HTTP_STATUS $HTTP_CTYPE $HTTP_BODY"
    fi
}

long_label=$(printf 'a%.0s' {1..64})
long_name=$(printf 'abcdefghi.%.0s' {1..25})example.com   # 261 characters
deep=$(printf '[%.0s' {1..5000})
big=$(head -c 70000 /dev/zero | tr '\0' 'x')

expect 400 malformed        POST /v1/domains '{'
expect 400 malformed        POST /v1/domains '[]'
expect 400 malformed        POST /v1/domains '"www.example.com"'
expect 400 malformed        POST /v1/domains '{"name": "a.example.com", "name": "b.example.com"}'
expect 400 malformed        POST /v1/domains "$deep"
expect 400 malformed        POST /v1/domains '{"name": "a\u0000.example.com"}'
expect 400 malformed        POST /v1/domains "$(printf '{"name": "\xff\xfe.example.com"}')"
expect 400 malformed        POST /v1/domains ''
expect 400 unknown-field    POST /v1/domains '{"name": "a.example.com", "colour": "red"}'
expect 400 invalid-field    POST /v1/domains '{"name": 5}'
expect 400 invalid-field    POST /v1/domains '{}'
expect 400 invalid-field    POST /v1/domains '{"name": "a.example.com", "alt_names": "b.example.com"}'
expect 400 invalid-field    POST /v1/domains '{"name": "a.example.com", "alt_names": ["b.example.com", 7]}'
expect 400 invalid-field    POST /v1/domains '{"name": "a.example.com", "challenge": "http-02"}'
expect 400 invalid-field    POST /v1/domains '{"name": "a.example.com", "key_type": "rsa-1024"}'
expect 400 invalid-field    POST /v1/domains '{"name": "a.example.com", "ca": "nosuchca"}'
expect 400 invalid-field    POST /v1/domains '{"name": "a.example.com", "challenge": null}'
expect 400 invalid-name     POST /v1/domains '{"name": "a..example.com"}'
expect 400 invalid-name     POST /v1/domains '{"name": "under_score.example.com"}'
expect 400 invalid-name     POST /v1/domains "{\"name\": \"$long_name\"}"
expect 400 invalid-name     POST /v1/domains "{\"name\": \"$long_label.example.com\"}"
expect 400 invalid-name     POST /v1/domains '{"name": "192.168.1.1"}'
expect 400 invalid-name     POST /v1/domains '{"name": "localhost"}'
expect 400 invalid-name     POST /v1/domains '{"name": "a.*.example.com", "challenge": "dns-01"}'
expect 400 invalid-name     POST /v1/domains '{"name": "-a.example.com"}'
expect 400 invalid-name     POST /v1/domains '{"name": "a.example.com", "alt_names": ["A.example.com"]}'
expect 400 invalid-name     POST /v1/domains '{"name": "*.example.com"}'
expect 409 conflict         POST /v1/domains '{"name": "EXISTING.example.com"}'
expect 413 payload-too-large POST /v1/domains "{\"name\": \"$big\"}"
API_CTYPE=text/plain expect 415 unsupported-media-type POST /v1/domains '{"name": "a.example.com"}'
API_CTYPE=application/x-www-form-urlencoded expect 415 unsupported-media-type POST /v1/domains '{"name": "a.example.com"}'
expect 405 method-not-allowed PUT /v1/domains '{"name": "a.example.com"}'
expect 405 method-not-allowed DELETE /v1/health
expect 404 not-found        GET /v1/nope
expect 404 not-found        GET /v2/domains
expect 404 not-found        GET /v1/domains/missing.example.com
expect 404 not-found        GET /v1/domains/existing.example.com/nope
expect 400 invalid-name     GET /v1/domains/not..valid
expect 400 malformed        GET '/v1/domains?limit=0'
expect 400 malformed        GET '/v1/domains?limit=abc'
expect 400 malformed        GET '/v1/domains?sort=name'
expect 400 malformed        GET '/v1/domains?cursor=%%%'
expect 400 malformed        GET '/v1/events?after=-1'
expect 400 malformed        DELETE '/v1/domains/existing.example.com?purge=maybe'
expect 400 unknown-field    PATCH /v1/domains/existing.example.com '{"name": "other.example.com"}'
expect 400 invalid-field    PATCH /v1/domains/existing.example.com '{"key_type": "dsa"}'
expect 400 invalid-name     PATCH /v1/domains/existing.example.com '{"alt_names": ["*.existing.example.com"]}'
expect 404 not-found        PATCH /v1/domains/missing.example.com '{"challenge": "dns-01"}'
expect 404 not-found        DELETE /v1/domains/missing.example.com

api PUT /v1/domains '{}'
allow=$(curl -sS -o /dev/null -D - --unix-socket "$CERTD_SOCKET" -X PUT http://localhost/v1/domains | tr -d '\r' | sed -n 's/^Allow: //Ip')
check_eq "405 lists the allowed methods" "GET, POST" "$allow"

check_eq "no refused request changed the database" "$before" "$(db_snapshot)"
api GET /v1/health
check_eq "daemon still healthy after the bad requests" 200 "$HTTP_STATUS"
check "daemon process still running" kill -0 "$CERTD_PID"

stop_certd
finish
