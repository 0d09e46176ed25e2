#!/usr/bin/env bash
# 1,000 domains added at once against Pebble: all issued, renewal times spread over the window
# (the distribution is printed), and never more orders in flight than max_concurrent_orders.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pebble.sh"

N=${THOUSAND_N:-1000}
MAX=8
pebble_start
# Let's Encrypt-like pacing (250 new orders per 3 h by default) would hold 750 of them back.
write_config "$(certd_pebble_config_text | sed -e "s/^default_ca = pebble$/default_ca = pebble\nmax_concurrent_orders = $MAX/" -e "s/^terms_agreed = true$/terms_agreed = true\nmax_new_orders = 100000/")"
start_certd
db() { sqlite3 "$T_DIR/state/certd.db" "$@"; }

t0=$(date +%s)
for i in $(seq 1 "$N"); do
    printf '{"name": "d%04d.thousand.example.com"}\n' "$i"
done | xargs -d '\n' -P 8 -I{} curl -sS -o /dev/null -w '%{http_code}\n' --unix-socket "$CERTD_SOCKET" \
    -H 'Content-Type: application/json' -d '{}' http://localhost/v1/domains > "$T_DIR/add.codes"
check_eq "all $N domains accepted" "$N" "$(grep -c '^201$' "$T_DIR/add.codes")"
log "added $N domains in $(( $(date +%s) - t0 )) s"

peak=0
poll_peak() {
    local p
    p=$(curl -sS --unix-socket "$CERTD_SOCKET" http://localhost/v1/health | jq -r .orders.running)
    [ "$p" -gt "$peak" ] && peak=$p
    [ "$(db "select count(*) from domains where status = 'active'")" -eq "$N" ]
}
check "all $N certificates issued within 15 minutes" wait_for 900 poll_peak
log "all issued $(( $(date +%s) - t0 )) s after the first add"
health=$(curl -sS --unix-socket "$CERTD_SOCKET" http://localhost/v1/health)
check "never more than $MAX orders in flight (daemon's peak $(jq .orders.running_peak <<<"$health"), sampled peak $peak)" \
    test "$(jq .orders.running_peak <<<"$health")" -le "$MAX" -a "$peak" -le "$MAX"
check_eq "the bound was used, not undershot" "$MAX" "$(jq .orders.running_peak <<<"$health")"
check_eq "no failures" 0 "$(db 'select coalesce(sum(failure_count), 0) from domains')"
check_eq "one active certificate each" "$N" "$(db "select count(*) from certificates where status = 'active'")"

# Renewal times: where in the lifetime each one falls, in tenths of a percent. The default
# policy draws them uniformly from 60%..67%.
db "select (d.next_renewal_at - c.not_before) * 1000 / (c.not_after - c.not_before)
    from domains d join certificates c on c.domain_id = d.id and c.status = 'active'" > "$T_DIR/fractions"
min=$(sort -n "$T_DIR/fractions" | head -n 1); max=$(sort -n "$T_DIR/fractions" | tail -n 1)
check "every renewal time inside 60%..67% of the lifetime ($min..$max per mille)" test "$min" -ge 600 -a "$max" -le 670
log "distribution of renewal times over the window (per mille of lifetime: count):"
awk '{ b = int(($1 - 600) / 10); if (b > 6) b = 6; h[b]++ }
     END { for (b = 0; b < 7; b++) { printf "#   %d-%d: %4d ", 600 + 10 * b, 609 + 10 * b, h[b];
           for (i = 0; i < h[b] / 5; i++) printf "#"; printf "\n" } }' "$T_DIR/fractions"
empty=$(awk '{ b = int(($1 - 600) / 10); if (b > 6) b = 6; h[b]++ }
     END { n = 0; for (b = 0; b < 7; b++) if (h[b] < NR / 7 / 2) n++; print n }' "$T_DIR/fractions")
check_eq "spread over the whole window: no bucket below half its share" 0 "$empty"
distinct=$(db "select count(distinct next_renewal_at) from domains")
check "renewal times are spread, not bunched ($distinct distinct seconds)" test "$distinct" -ge $((N * 9 / 10))

stop_certd
finish
