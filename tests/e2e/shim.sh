# shellcheck shell=bash
# acme_shim (tests/tools/acme_shim.c) in front of the real Pebble: adds ACME Renewal Information
# (RFC 9773) and certificate profiles, which Debian's Pebble 2.4 lacks. Source it AFTER lib.sh
# and pebble.sh, and call pebble_start before shim_start. It chains shim_stop into the EXIT trap.
#
#   shim_start [JSON]            start the shim on two free loopback ports in front of the
#                                running Pebble; JSON, if given, is POSTed to /config first
#   shim_stop                    SIGTERM, wait (bounded); returns the shim's exit status
#                                (0 after a clean shutdown; also run on exit)
#   shim_ctl METHOD PATH [JSON]  the control API: prints the response body, fails on a
#                                connection error or an HTTP status >= 400
#   certd_shim_config_text       certd_pebble_config_text with the directory pointing at the shim
#
# After shim_start these are exported:
#   SHIM_DIR_URL    https://127.0.0.1:$SHIM_PORT/dir (same HTTPS certificate as Pebble, so
#                   PEBBLE_CA_BUNDLE trusts it)
#   SHIM_CTL_URL    http://127.0.0.1:$SHIM_CTL_PORT (plain HTTP, loopback)
#   SHIM_PORT, SHIM_CTL_PORT, SHIM_PID
#
# Control API (JSON in, JSON out):
#   POST /config  merges settings; each key given replaces that setting, except "windows",
#                 merged per certID (a null value removes one). Answers the whole config; 400
#                 (nothing applied) on an unknown key or a bad value.
#       ari               true (default) | false: "renewalInfo" in /dir, 404 on /renewal-info/*
#       profiles          {"name": "description", ...} | null (default {"classic": "the default
#                         profile", "shortlived": "6-day certificates"}); null: no
#                         meta.profiles and a "profile" in newOrder is ignored (forwarded)
#       default_window    window | null: the answer for a certID without its own window
#       windows           {"certID": window | null, ...}
#       retry_after       seconds | null: Retry-After on renewal-info answers
#       already_replaced  ["certID", ...]: newOrder "replaces" naming one gets 409 alreadyReplaced
#       explanation_url   string | null (default https://<shim>/ari-explanation)
#     window: {"start": RFC3339, "end": RFC3339} or relative to the request
#             {"start_in": seconds, "end_in": seconds} (mixing is fine), optional "explanationURL"
#   GET /config   the current config
#   GET /seen     {"renewal_info": [certID, ...], "orders": [{"replaces": x|null,
#                 "profile": x|null, "identifiers": [...]|null}, ...], "dropped": N} in order
#                 of arrival (every renewal-info GET, valid or not; every newOrder POST,
#                 forwarded or refused)
#   POST /reset   clears what was seen (not the config)
#
# ACME side: GET/HEAD /dir adds "renewalInfo" and meta.profiles to Pebble's directory;
# GET /renewal-info/<certID> answers from the config (400 for a malformed certID, 404 without a
# window); POST to newOrder answers 409 urn:ietf:params:acme:error:alreadyReplaced or 400
# urn:ietf:params:acme:error:invalidProfile (with a fresh Replay-Nonce from Pebble) or is
# forwarded. Everything else goes to Pebble unchanged, with the client's Host header, so every
# URL Pebble hands out points at the shim and JWS "url" checks pass. The shim's own errors:
# 400 for an unusable Host header, 413 for a body over 256 KiB (64 KiB on the control port),
# 502 when Pebble does not answer. At most 64 connections per port; loopback peers only.

ACME_SHIM_BIN=${ACME_SHIM_BIN:-}
SHIM_PID=

_shim_up() {
    curl -fsS --max-time 2 -o /dev/null "$SHIM_CTL_URL/seen" 2>/dev/null &&
        curl -fsS --max-time 2 -o /dev/null --cacert "$PEBBLE_CA_BUNDLE" "$SHIM_DIR_URL" 2>/dev/null
}

shim_start() {
    local attempt rc=1 log_file="$T_DIR/shim.log"
    if [ -z "$ACME_SHIM_BIN" ] || [ ! -x "$ACME_SHIM_BIN" ]; then
        log "shim_start: ACME_SHIM_BIN must point at the acme_shim binary"
        return 1
    fi
    if [ -z "${PEBBLE_PORT:-}" ] || ! _pebble_alive "${PEBBLE_PID:-}"; then
        log "shim_start: pebble_start first"
        return 1
    fi
    shim_stop >/dev/null 2>&1 || true
    : >>"$log_file"
    for attempt in 1 2 3 4 5; do
        _pebble_pick_ports 2 || return 1
        # shellcheck disable=SC2154  # _pebble_ports is set by _pebble_pick_ports (pebble.sh)
        export SHIM_PORT=${_pebble_ports[0]} SHIM_CTL_PORT=${_pebble_ports[1]}
        export SHIM_DIR_URL="https://127.0.0.1:$SHIM_PORT/dir"
        export SHIM_CTL_URL="http://127.0.0.1:$SHIM_CTL_PORT"
        "$ACME_SHIM_BIN" --listen "127.0.0.1:$SHIM_PORT" --control "127.0.0.1:$SHIM_CTL_PORT" \
            --upstream "https://127.0.0.1:$PEBBLE_PORT" --upstream-ca "$PEBBLE_CA_BUNDLE" \
            --cert "$T_DIR/pebble/server.pem" --key "$T_DIR/pebble/server.key" \
            >>"$log_file" 2>&1 &
        SHIM_PID=$!
        wait_for 20 "_shim_up || ! _pebble_alive $SHIM_PID" || true
        if _pebble_alive "$SHIM_PID" && _pebble_owns "$SHIM_PID" t "$SHIM_PORT" &&
            _pebble_owns "$SHIM_PID" t "$SHIM_CTL_PORT" && _shim_up; then
            rc=0
            break
        fi
        rc=0
        if _pebble_alive "$SHIM_PID"; then
            _pebble_reap "$SHIM_PID"; rc=1
        else
            wait "$SHIM_PID" || rc=$?
        fi
        SHIM_PID=
        # 2: a port was taken between the pick and the bind
        [ "$rc" -eq 2 ] && { log "shim: port taken, retrying"; continue; }
        break
    done
    if [ "$rc" -ne 0 ] || [ -z "$SHIM_PID" ]; then
        log "shim: start failed (attempt $attempt, status $rc)"
        tail -n 20 "$log_file" | sed 's/^/#   /'
        return 1
    fi
    export SHIM_PID
    log "shim up: $SHIM_DIR_URL -> $PEBBLE_DIR_URL, control $SHIM_CTL_URL"
    if [ -n "${1:-}" ]; then
        shim_ctl POST /config "$1" >/dev/null || { log "shim_start: config refused"; return 1; }
    fi
}

shim_stop() {
    local pid=$SHIM_PID rc=0
    [ -n "$pid" ] || return 0
    SHIM_PID=
    kill -TERM "$pid" 2>/dev/null || true
    if ! wait_for 15 "! kill -0 $pid 2>/dev/null"; then
        log "shim: pid $pid ignored SIGTERM, sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || rc=$?
    return "$rc"
}

shim_ctl() {
    local method=$1 path=$2 body=${3:-}
    local args=(-sS --max-time 10 --fail-with-body -X "$method")
    [ -n "$body" ] && args+=(-H 'Content-Type: application/json' --data-binary "$body")
    curl "${args[@]}" "$SHIM_CTL_URL$path"
}

certd_shim_config_text() {
    certd_pebble_config_text | sed "s|^directory = .*|directory = $SHIM_DIR_URL|"
}

_shim_on_exit() {
    if [ "${T_FAIL:-0}" -ne 0 ] && [ -s "$T_DIR/shim.log" ]; then
        log "shim.log (last 30 lines):"
        tail -n 30 "$T_DIR/shim.log" | sed 's/^/#   /'
    fi
    shim_stop || true
}

# Stop the shim before pebble.sh's and lib.sh's handlers run (they remove T_DIR).
exit_trap_add _shim_on_exit
