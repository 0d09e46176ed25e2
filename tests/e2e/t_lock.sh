#!/usr/bin/env bash
# A second certd on the same state directory is refused and touches nothing, the live socket
# included, while the first keeps serving.
. "$(dirname "$0")/lib.sh"

write_config
start_certd
"$CERTCTL_BIN" domain add one.example.com >/dev/null
check "the first order attempt against the absent CA has ended" wait_settled one.example.com
sock_inode=$(stat -c %i "$CERTD_SOCKET")
before=$(db_snapshot)

rc=0
timeout 20 "$CERTD_BIN" --config "$T_DIR/certd.conf" >"$T_DIR/second.log" 2>&1 || rc=$?
check_eq "second certd exits 1" 1 "$rc"
check_match "second certd names the running one" "another certd \\(pid $CERTD_PID\\) is already running" "$(cat "$T_DIR/second.log")"
check_eq "the live socket is the same file" "$sock_inode" "$(stat -c %i "$CERTD_SOCKET")"
check_eq "the database is unchanged" "$before" "$(db_snapshot)"
check_eq "the first certd still serves" "one.example.com" "$("$CERTCTL_BIN" domain list --json | jq -r '.domains[0].name')"

stop_certd
# with the first one gone, the lock is free again
start_certd
check_eq "a new certd starts once the first has stopped" "one.example.com" "$("$CERTCTL_BIN" domain list --json | jq -r '.domains[0].name')"
stop_certd
finish
