#!/usr/bin/env bash
# Started as root with [daemon] user set, certd takes the lock, opens the database and binds the
# socket as root, then runs as that user, owning the files it keeps writing.
. "$(dirname "$0")/lib.sh"

if [ "$(id -u)" != 0 ]; then
    log "SKIP: needs root to drop privileges"; echo "1 passed, 0 failed"; exit 0
fi

write_config
sed -i 's/^log_level = debug$/log_level = debug\nuser = nobody/' "$T_DIR/certd.conf"
start_certd
uid=$(awk '/^Uid:/ {print $2 "," $3 "," $4 "," $5}' "/proc/$CERTD_PID/status")
check_eq "certd runs as nobody (real, effective, saved, fs uid)" "65534,65534,65534,65534" "$uid"
check_eq "no supplementary groups kept from root" "" "$(awk '/^Groups:/ {$1=""; print}' "/proc/$CERTD_PID/status" | tr -d ' ' | sed 's/^65534$//')"
check_eq "database owned by nobody" nobody "$(stat -c %U "$T_DIR/state/certd.db")"
check_eq "lock file owned by nobody" nobody "$(stat -c %U "$T_DIR/state/certd.lock")"
check_eq "socket owned by nobody" nobody "$(stat -c %U "$CERTD_SOCKET")"

"$CERTCTL_BIN" domain add drop.example.com >/dev/null
check_eq "root is still an admin after the drop" drop.example.com "$("$CERTCTL_BIN" domain show drop.example.com --json | jq -r .name)"
out=$(as_nobody "$(nobody_certctl)" domain list --json)
check_eq "the daemon's own uid is an admin" drop.example.com "$(jq -r '.domains[0].name' <<<"$out")"
check_eq "the database is still 0600" 600 "$(stat -c %a "$T_DIR/state/certd.db")"

stop_certd
finish
