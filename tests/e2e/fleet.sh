# The start the proxy tests (t_nginx, t_haproxy) share: Pebble, certd, three domains issued
# through it (alpha, beta with an alt name, and the wildcard *.gamma over dns-01) and written by
# `certctl sync` to $OUT. Source after lib.sh and pebble.sh. Defines cc, wait_active NAME
# [SECONDS] and stored_fp NAME; leaves Pebble's root in $T_DIR/pebble-root.pem.

cc() { "$CERTCTL_BIN" "$@"; }
wait_active() { wait_for "${2:-60}" "[ \"\$(\"\$CERTCTL_BIN\" domain show '$1' --json | jq -r .status)\" = active ]"; }
stored_fp() { cc domain show "$1" --json | jq -r .certificate.fingerprint_sha256; }

fleet_start() {
    pebble_start
    write_config "$(certd_pebble_config_text)"
    start_certd
    pebble_root_pem "$T_DIR/pebble-roots.pem"
    openssl x509 -in "$T_DIR/pebble-roots.pem" -out "$T_DIR/pebble-root.pem"

    cc domain add alpha.example.com --challenge http-01 >/dev/null
    cc domain add beta.example.com --alt www.beta.example.com --challenge http-01 >/dev/null
    cc domain add '*.gamma.example.com' --challenge dns-01 >/dev/null
    for d in alpha.example.com beta.example.com '*.gamma.example.com'; do
        check "$d issued" wait_active "$d"
    done

    OUT=$T_DIR/certs
    rc=0; cc sync --out-dir "$OUT" > "$T_DIR/sync.out" 2>&1 || rc=$?
    check_eq "certctl sync writes the files" 0 "$rc"
}
