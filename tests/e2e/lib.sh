# Shared helpers for the end-to-end tests: a real certd on a temporary state dir and socket,
# driven with certctl and raw HTTP (curl --unix-socket). Source it; it sets `set -euo pipefail`.
# Every wait is a bounded poll of a condition, never a bare sleep.
set -euo pipefail

: "${CERTD_BIN:?CERTD_BIN must point at the certd binary}"
: "${CERTCTL_BIN:?CERTCTL_BIN must point at the certctl binary}"
T_NAME=$(basename "${BASH_SOURCE[1]:-$0}" .sh)
# Under /tmp rather than the build tree: role tests act as an unprivileged user, who must be
# able to reach the socket whatever the checkout's parent directories allow (/root is 0700).
T_DIR=$(mktemp -d "/tmp/certd-$T_NAME.XXXXXX")
chmod 0755 "$T_DIR"
# as_nobody CMD...: runs CMD as nobody/nogroup with no supplementary groups.
as_nobody() { setpriv --reuid=nobody --regid=nogroup --clear-groups -- "$@"; }
# nobody_certctl: a copy of certctl that nobody can execute wherever the build tree lives.
nobody_certctl() {
    [ -x "$T_DIR/certctl" ] || install -m 0755 "$CERTCTL_BIN" "$T_DIR/certctl"
    echo "$T_DIR/certctl"
}
T_PASS=0
T_FAIL=0
CERTD_PID=
export CERTD_SOCKET="$T_DIR/run/api.sock"
# ASan's leak checker needs ptrace-free stop-the-world; keep reports but never hang on them.
export ASAN_OPTIONS="${ASAN_OPTIONS:-abort_on_error=0:detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

t_cleanup() {
    if [ -n "$CERTD_PID" ] && kill -0 "$CERTD_PID" 2>/dev/null; then
        kill -TERM "$CERTD_PID" 2>/dev/null || true
        wait_for 20 "! kill -0 $CERTD_PID 2>/dev/null" || kill -KILL "$CERTD_PID" 2>/dev/null || true
    fi
    if [ "$T_FAIL" -eq 0 ] && [ -z "${KEEP_TMP:-}" ]; then rm -rf "$T_DIR"; fi
}
trap t_cleanup EXIT

# exit_trap_add CMD: runs CMD when the script exits, before whatever EXIT trap was set already
# (t_cleanup's above all), so each helper file and test can add its own clean-up.
# shellcheck disable=SC2120  # "set --" below parses trap's output, not our arguments
exit_trap_add() {
    local cmd=$1 prev
    prev=$(trap -p EXIT) # bash reports the calling shell's traps here
    if [ -n "$prev" ]; then
        eval "set -- $prev" # trap -- 'CMD' EXIT  ->  $3 = CMD
        prev=$3
    fi
    # shellcheck disable=SC2064  # expand CMD and PREV now, once
    trap "$cmd || true; ${prev:-:}" EXIT
}

# stop_pids PID...: SIGTERM to each process (empty arguments skipped), then waits for each.
stop_pids() {
    local pid
    for pid in "$@"; do
        [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "$@"; do
        [ -n "$pid" ] && wait "$pid" 2>/dev/null || true
    done
}

log() { printf '# %s\n' "$*"; }
pass() { T_PASS=$((T_PASS + 1)); printf 'ok %d - %s\n' "$((T_PASS + T_FAIL))" "$1"; }
fail() {
    T_FAIL=$((T_FAIL + 1)); printf 'not ok %d - %s\n' "$((T_PASS + T_FAIL))" "$1"
    [ -n "${2:-}" ] && printf '#   %s\n' "$2"
    return 0
}
check() { # check "description" command...
    local what=$1; shift
    if "$@"; then pass "$what"; else fail "$what" "command failed: $*"; fi
}
check_eq() { # check_eq "description" expected actual
    if [ "$2" == "$3" ]; then pass "$1"; else fail "$1" "expected [$2], got [$3]"; fi
}
check_match() { # check_match "description" regex actual
    if [[ "$3" =~ $2 ]]; then pass "$1"; else fail "$1" "[$3] does not match /$2/"; fi
}
finish() {
    printf '%d passed, %d failed\n' "$T_PASS" "$T_FAIL"
    if [ "$T_FAIL" -ne 0 ]; then
        log "certd log follows (state kept in $T_DIR)"
        sed 's/^/#   /' "$T_DIR/certd.log" 2>/dev/null | tail -n 60 || true
        exit 1
    fi
    exit 0
}

# wait_for SECONDS CONDITION: polls CONDITION (a shell expression) every 50 ms until true or
# SECONDS pass. Returns non-zero on timeout.
wait_for() {
    local deadline=$(( $(date +%s%N) + $1 * 1000000000 ))
    while ! eval "$2"; do
        [ "$(date +%s%N)" -lt "$deadline" ] || return 1
        sleep 0.05
    done
}

# write_config [INI TEXT]: a config for this test's state dir and socket. Without INI TEXT a
# placeholder CA (nothing listens there) is the default, enough for tests that issue nothing;
# Pebble tests pass certd_pebble_config_text (pebble.sh).
write_config() {
    mkdir -p "$T_DIR/state" "$T_DIR/run"
    cat > "$T_DIR/certd.conf" <<CONF
[daemon]
state_dir = $T_DIR/state
socket = $T_DIR/run/api.sock
socket_mode = ${SOCKET_MODE:-0660}
log_level = debug
${DAEMON_EXTRA:-}

${1:-[acme]
default_ca = pebble

[ca.pebble]
directory = https://127.0.0.1:9/dir}
${2:-}
CONF
}

# start_certd: starts certd in the background and waits until its socket answers /v1/health.
start_certd() {
    "$CERTD_BIN" --config "$T_DIR/certd.conf" >>"$T_DIR/certd.log" 2>&1 &
    CERTD_PID=$!
    if ! wait_for 30 "curl -fsS --unix-socket '$CERTD_SOCKET' http://localhost/v1/health >/dev/null 2>&1"; then
        fail "certd starts and answers on its socket" "$(tail -n 20 "$T_DIR/certd.log")"
        finish
    fi
}

# stop_certd: SIGTERM and wait (bounded) for a clean exit; asserts exit status 0.
stop_certd() {
    kill -TERM "$CERTD_PID"
    local rc=0
    wait "$CERTD_PID" || rc=$?
    CERTD_PID=
    check_eq "certd exits 0 on SIGTERM" 0 "$rc"
}

# api METHOD PATH [BODY] [extra curl args...]: raw HTTP over the socket. Sets HTTP_STATUS,
# HTTP_BODY and HTTP_CTYPE. API_CTYPE overrides the request's Content-Type.
api() {
    local method=$1 path=$2 body=${3:-}; shift 3 2>/dev/null || shift $#
    local out
    local args=(-sS --unix-socket "$CERTD_SOCKET" -X "$method" -o "$T_DIR/resp.body"
                -w '%{http_code} %{content_type}')
    if [ -n "$body" ]; then
        args+=(-H "Content-Type: ${API_CTYPE:-application/json}" --data-binary "$body")
    fi
    out=$(curl "${args[@]}" "$@" "http://localhost$path") || true
    HTTP_STATUS=${out%% *}
    HTTP_CTYPE=${out#* }
    HTTP_BODY=$(cat "$T_DIR/resp.body" 2>/dev/null || true)
}

# db_snapshot: a stable text dump of the database, to prove a refused request changed nothing.
db_snapshot() { sqlite3 "$T_DIR/state/certd.db" .dump | sha256sum | cut -d' ' -f1; }

# wait_settled NAME [SECONDS]: waits until the domain's first order has ended (status no longer
# pending), so a test can compare database snapshots without racing the scheduler.
wait_settled() {
    wait_for "${2:-30}" "[ \"\$(\"\$CERTCTL_BIN\" domain show '$1' --json 2>/dev/null | jq -r .status)\" != pending ]"
}
