#!/usr/bin/env bash
# Peers without a role are refused; [access] grants admin, deployer and reader by user and by group;
# SIGHUP reloads it.
. "$(dirname "$0")/lib.sh"

if [ "$(id -u)" != 0 ]; then
    log "SKIP: needs root to act as another user"; echo "1 passed, 0 failed"; exit 0
fi

SOCKET_MODE=0666 write_config
start_certd
"$CERTCTL_BIN" domain add one.example.com >/dev/null
check "the first order attempt against the absent CA has ended" wait_settled one.example.com
before=$(db_snapshot)

out=$(as_nobody curl -sS --unix-socket "$CERTD_SOCKET" -w ' %{http_code}' http://localhost/v1/domains)
check_match "peer with no role gets 403" ' 403$' "$out"
check_eq "403 is a forbidden problem" "urn:certd:problem:forbidden" "$(jq -r .type <<<"${out% *}")"
out=$(as_nobody curl -sS --unix-socket "$CERTD_SOCKET" -w ' %{http_code}' -H 'Content-Type: application/json' \
      -d '{"name": "evil.example.com"}' http://localhost/v1/domains)
check_match "peer with no role cannot add a domain" ' 403$' "$out"
rc=0; msg=$(as_nobody "$(nobody_certctl)" domain list 2>&1) || rc=$?
check_eq "certctl as a peer with no role exits 1" 1 "$rc"
check_match "certctl explains the refusal" 'no role' "$msg"
check_eq "refused requests changed nothing" "$before" "$(db_snapshot)"

# grant nobody admin by user name, reload with SIGHUP
write_config '' $'[access]\nadmin_users = nobody'
kill -HUP "$CERTD_PID"
check "after SIGHUP, [access] admin_users grants admin" \
    wait_for 10 "as_nobody curl -fsS --unix-socket '$CERTD_SOCKET' http://localhost/v1/domains >/dev/null 2>&1"
check_eq "admin peer sees the domains" one.example.com "$(as_nobody "$(nobody_certctl)" domain list --json | jq -r '.domains[0].name')"
as_nobody "$(nobody_certctl)" domain add two.example.com >/dev/null
check_match "events record the non-root actor" '^uid:65534\(nobody\)$' "$("$CERTCTL_BIN" events --json | jq -r '[.events[] | select(.domain == "two.example.com")][0].actor')"

# by group instead
write_config '' $'[access]\nadmin_groups = nogroup'
kill -HUP "$CERTD_PID"
check "after SIGHUP, admin_groups grants admin by primary group" \
    wait_for 10 "as_nobody curl -fsS --unix-socket '$CERTD_SOCKET' http://localhost/v1/health >/dev/null 2>&1 && grep -q 'admin_groups\\|reloaded' '$T_DIR/certd.log'"

# a broken config on SIGHUP keeps the running one
reloads=$(grep -c 'configuration reloaded' "$T_DIR/certd.log" || true)
printf 'bogus_key = 1\n' >> "$T_DIR/certd.conf"
kill -HUP "$CERTD_PID"
check "a bad config on SIGHUP is refused and logged with file:line" \
    wait_for 10 "grep -q 'reload refused.*certd.conf:[0-9]*:.*bogus_key' '$T_DIR/certd.log'"
check_eq "the refused reload did not replace the config" "$reloads" "$(grep -c 'configuration reloaded' "$T_DIR/certd.log")"
check "the daemon still serves the group-admin peer" \
    as_nobody curl -fsS -o /dev/null --unix-socket "$CERTD_SOCKET" http://localhost/v1/health

# reader and deployer on the socket, by user and by group
nobody_code() { # nobody_code METHOD PATH [curl args...]: the status nobody gets
    local m=$1 p=$2; shift 2
    as_nobody curl -sS -o /dev/null -w '%{http_code}' --unix-socket "$CERTD_SOCKET" -X "$m" "$@" "http://localhost$p"
}
write_config '' $'[access]\nreader_users = nobody'
kill -HUP "$CERTD_PID"
check "after SIGHUP, reader_users grants reader" \
    wait_for 10 "[ \"\$(nobody_code GET /v1/domains/one.example.com/key)\" = 403 ] && [ \"\$(nobody_code GET /v1/domains)\" = 200 ]"
check_eq "a reader lists every domain (socket roles are unscoped)" "one.example.com two.example.com" \
    "$(as_nobody curl -sS --unix-socket "$CERTD_SOCKET" http://localhost/v1/domains | jq -r '[.domains[].name] | join(" ")')"
check_eq "a reader reads a domain" 200 "$(nobody_code GET /v1/domains/one.example.com)"
check_eq "a reader reads history" 200 "$(nobody_code GET /v1/domains/one.example.com/history)"
check_eq "a reader reads health" 200 "$(nobody_code GET /v1/health)"
check_eq "a reader cannot read a private key" 403 "$(nobody_code GET /v1/domains/one.example.com/key)"
check_eq "a reader cannot add a domain" 403 "$(nobody_code POST /v1/domains -H 'Content-Type: application/json' -d '{"name": "r.example.com"}')"
check_eq "a reader cannot renew" 403 "$(nobody_code POST /v1/domains/one.example.com/renew)"
check_eq "a reader cannot remove" 403 "$(nobody_code DELETE /v1/domains/one.example.com)"
check_eq "a reader cannot read accounts" 403 "$(nobody_code GET /v1/accounts)"
check_eq "a reader cannot list tokens" 403 "$(nobody_code GET /v1/tokens)"
ADMIN_TOKEN=$("$CERTCTL_BIN" token create ops --role admin --json | jq -r .token)
check_eq "the socket ignores tokens: a reader sending an admin token is still a reader" 403 \
    "$(nobody_code GET /v1/domains/one.example.com/key -H "Authorization: Bearer $ADMIN_TOKEN")"

write_config '' $'[access]\ndeployer_groups = nogroup\nreader_users = nobody'
kill -HUP "$CERTD_PID"
check "after SIGHUP, deployer_groups grants deployer (the highest role wins)" \
    wait_for 10 "[ \"\$(nobody_code GET /v1/domains/one.example.com/key)\" = 200 ]"
key=$(as_nobody curl -sS --unix-socket "$CERTD_SOCKET" http://localhost/v1/domains/one.example.com/key)
check_match "a deployer gets the private key" 'BEGIN PRIVATE KEY' "$key"
check_eq "a deployer reads every domain's key (unscoped)" 200 "$(nobody_code GET /v1/domains/two.example.com/key)"
check_eq "a deployer cannot add a domain" 403 "$(nobody_code POST /v1/domains -H 'Content-Type: application/json' -d '{"name": "d.example.com"}')"
check_eq "a deployer cannot change a domain" 403 "$(nobody_code PATCH /v1/domains/one.example.com -H 'Content-Type: application/json' -d '{"challenge": "dns-01"}')"
check_eq "a deployer cannot revoke" 403 "$(nobody_code POST /v1/certificates/00ff/revoke)"
check_eq "a deployer cannot create tokens" 403 "$(nobody_code POST /v1/tokens -H 'Content-Type: application/json' -d '{"name": "x", "role": "admin"}')"
check_eq "refused deployer requests changed nothing" "one.example.com two.example.com" \
    "$("$CERTCTL_BIN" domain list --json | jq -r '[.domains[].name] | join(" ")')"

# and without any grant, nobody is refused again
write_config
kill -HUP "$CERTD_PID"
check "after revoking the grant, the peer is refused again" \
    wait_for 10 "[ \"\$(as_nobody curl -sS -o /dev/null -w '%{http_code}' --unix-socket '$CERTD_SOCKET' http://localhost/v1/health)\" = 403 ]"

stop_certd
finish
