#!/usr/bin/env bash
# certd's command line and config checking.
. "$(dirname "$0")/lib.sh"

check_match "--version prints the version" '^certd [0-9]+\.[0-9]+\.[0-9]+$' "$("$CERTD_BIN" --version)"
write_config
out=$("$CERTD_BIN" --config "$T_DIR/certd.conf" --check-config)
check_match "--check-config accepts a valid file" 'configuration OK' "$out"
check "--check-config creates no state" test ! -e "$T_DIR/state/certd.db"

printf '[daemon]\nstate_dir = %s\nlog_level = loud\n' "$T_DIR/state" > "$T_DIR/bad.conf"
rc=0; out=$("$CERTD_BIN" --config "$T_DIR/bad.conf" --check-config 2>&1) || rc=$?
check_eq "--check-config refuses a bad value with exit 1" 1 "$rc"
check_match "the error names file and line" 'bad\.conf:3:' "$out"

printf '[daemon]\nfrobnicate = yes\n' > "$T_DIR/bad2.conf"
rc=0; out=$("$CERTD_BIN" --config "$T_DIR/bad2.conf" 2>&1) || rc=$?
check_eq "certd refuses to start with an unknown key" 1 "$rc"
check_match "unknown key named with file:line" 'bad2\.conf:2:.*frobnicate' "$out"

rc=0; out=$("$CERTD_BIN" --config "$T_DIR/missing.conf" 2>&1) || rc=$?
check_eq "a missing config file is an error" 1 "$rc"
rc=0; "$CERTD_BIN" --bogus >/dev/null 2>&1 || rc=$?
check_eq "an unknown option is a usage error" 2 "$rc"

# the socket gets the configured mode; journald-style priorities on stderr
SOCKET_MODE=0640 write_config
start_certd
check_eq "socket has socket_mode" 640 "$(stat -c %a "$CERTD_SOCKET")"
check_match "log lines carry <N> priority prefixes" '^<[0-7]>' "$(head -n 1 "$T_DIR/certd.log")"
stop_certd
finish
