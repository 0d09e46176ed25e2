#!/usr/bin/env bash
# Crash recovery against a real Pebble: for every crash point of the order state machine
# (core/testhook.h) and for both http-01 and dns-01 (a wildcard plus its apex), certd is killed
# with SIGKILL exactly there, the state it left is checked to be that step's, and a restart
# without the crash point finishes the SAME order: one certificate, for the domain's one key,
# with nothing left published (no challenge rows, no TXT record in challtestsrv's DNS, no
# http-01 token served) and no order left unfinished.
# Needs a certd built with -DCERTD_TEST_HOOKS=ON; skips (exit 0 with a note) otherwise.
# shellcheck source-path=SCRIPTDIR disable=SC2119
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pebble.sh"

STEPS=(after_order_row after_neworder after_publish after_respond after_finalize before_store
       after_store)
CHALLENGES=(dns-01 http-01)
CRASH_WAIT=${RESUME_CRASH_WAIT:-60}
ACTIVE_WAIT=${RESUME_ACTIVE_WAIT:-90}

if ! grep -aq 'test hook: crashing at' "$CERTD_BIN"; then
    log "SKIP: $CERTD_BIN has no crash points (configure with -DCERTD_TEST_HOOKS=ON)"
    exit 0
fi

# No authorization reuse: every order must really go through its challenges.
pebble_start PEBBLE_AUTHZREUSE=0
write_config "$(certd_pebble_config_text)"
cc() { "$CERTCTL_BIN" "$@"; }
db() { sqlite3 -separator ' ' "$T_DIR/state/certd.db" "$@"; }

# dns_query NAME TYPE: asks challtestsrv's DNS server over UDP (bash /dev/udp, no dig needed)
# and prints the response as one line of hex (copied from t_pebble_env.sh).
dns_query() {
    local name=$1 type=$2 label q="$T_DIR/dns.query" fd resp
    {
        printf '\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00'  # id, RD, 1 question
        local IFS=.
        for label in $name; do printf '%b%s' "\\x$(printf %02x "${#label}")" "$label"; done
        printf '\x00\x00%b\x00\x01' "\\x$(printf %02x "$type")"   # root, QTYPE, QCLASS IN
    } >"$q"
    exec {fd}<>"/dev/udp/127.0.0.1/$CTS_DNS_PORT"
    cat "$q" >&"$fd"
    resp=$(timeout 3 dd bs=4096 count=1 <&"$fd" 2>/dev/null | od -An -v -tx1 | tr -d ' \n')
    exec {fd}>&-
    printf '%s\n' "$resp"
}
# txt_count NAME: number of TXT answers challtestsrv gives for NAME ("x" if no answer at all).
txt_count() {
    local r
    r=$(dns_query "$1" 16)
    [ ${#r} -ge 16 ] || { echo x; return; }
    printf '%d\n' "0x${r:12:4}"
}

pebble_root_pem "$T_DIR/pebble-roots.pem"
openssl x509 -in "$T_DIR/pebble-roots.pem" -out "$T_DIR/pebble-root.pem"

# The state certd must have left in the store when it died at STEP (order ORDER of domain DID).
# Prints what differs, nothing when it is as expected.
expect_state() {
    local step=$1 did=$2 chal=$3 apex=$4 o url st status fin nch ncert
    o=$(db "select id, coalesce(url, '-'), coalesce(step, '-'), status, finished from orders
            where domain_id = $did order by id desc limit 1")
    read -r _ url st status fin <<<"$o"
    nch=$(db "select count(*) from challenges c join orders o on o.id = c.order_id
              where o.domain_id = $did")
    ncert=$(db "select count(*) from certificates where domain_id = $did")
    case $step in
    after_order_row)
        [ "$url $status $fin" = "- new 0" ] || echo "order: want no URL, new, unfinished; got [$o]" ;;
    after_neworder)
        [[ $url == https://* && "$st $fin" == "ordered 0" ]] || echo "order: want ordered; got [$o]" ;;
    after_publish | after_respond)
        local want_st=ordered
        [ "$step" = after_respond ] && want_st=responded
        [[ $url == https://* && "$st $fin" == "$want_st 0" ]] || echo "order: want $want_st; got [$o]"
        [ "$nch" -gt 0 ] || echo "no challenge rows recorded"
        if [ "$chal" = dns-01 ]; then
            local t
            t=$(txt_count "_acme-challenge.$apex")
            [ "$t" = 2 ] || echo "want 2 TXT values published (wildcard + apex), DNS has $t"
        fi ;;
    after_finalize)
        [ "$st $fin" = "finalized 0" ] || echo "order: want finalized; got [$o]"
        [ "$nch" = 0 ] || echo "$nch challenge rows still recorded after validation" ;;
    before_store)
        [ "$st $fin" = "finalized 0" ] || echo "order: want finalized; got [$o]"
        [ "$ncert" = 0 ] || echo "a certificate is stored already" ;;
    after_store)
        [ "$fin $status $ncert" = "1 valid 1" ] || echo "want order finished valid and 1 certificate; got [$o] $ncert" ;;
    esac
    [ "$step" = after_store ] || [ "$ncert" = 0 ] || echo "$ncert certificates stored before before_store"
}

t_all=$(date +%s%N)
all_names=()
declare -A apex_of chal_of
for step in "${STEPS[@]}"; do
    for chal in "${CHALLENGES[@]}"; do
        tag="$step/$chal"
        apex="${chal%%-*}-${step//_/-}.resume.example.com"
        if [ "$chal" = dns-01 ]; then
            name="*.$apex"; add=(--challenge dns-01 --alt "$apex")
        else
            name=$apex; add=(--challenge http-01)
        fi
        all_names+=("$name"); apex_of[$name]=$apex; chal_of[$name]=$chal
        t0=$(date +%s%N)

        # 1. a certd that dies at STEP
        mark=$(wc -l <"$T_DIR/certd.log" 2>/dev/null || echo 0)
        CERTD_TEST_CRASH_AT=$step start_certd
        pid=$CERTD_PID
        # The crash may come before the API answered the add: the domain row is what counts.
        cc domain add "$name" "${add[@]}" >"$T_DIR/add.out" 2>&1 || log "$tag: add said: $(cat "$T_DIR/add.out")"
        rc=0
        if wait_for "$CRASH_WAIT" "! kill -0 $pid 2>/dev/null"; then
            wait "$pid" || rc=$?
        else
            rc=timeout
            kill -KILL "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
        fi
        CERTD_PID=
        check_eq "$tag: certd killed by SIGKILL (exit 137)" 137 "$rc"
        check "$tag: ... at that crash point" \
            bash -c "tail -n +$((mark + 1)) '$T_DIR/certd.log' | grep -q 'test hook: crashing at $step\$'"
        did=$(db "select id from domains where name = '$name'")
        if [ -z "$did" ]; then
            fail "$tag: the domain was recorded before the crash"
            continue
        fi
        check_eq "$tag: the store holds that step's state" "" "$(expect_state "$step" "$did" "$chal" "$apex")"
        order_before=$(db "select id from orders where domain_id = $did order by id desc limit 1")

        # 2. a normal restart finishes it
        mark=$(wc -l <"$T_DIR/certd.log")
        start_certd
        if wait_for "$ACTIVE_WAIT" "[ \"\$(db \"select status from domains where id = $did\")\" = active ]"; then
            pass "$tag: active after the restart"
        else
            fail "$tag: active after the restart" \
                "$(db "select status, failure_count, last_error from domains where id = $did")"
        fi
        if [ "$step" != after_store ]; then
            check "$tag: the restart resumed the unfinished order" \
                bash -c "tail -n +$((mark + 1)) '$T_DIR/certd.log' | grep -q 'resuming order $order_before of domain $did'"
        fi
        orders=$(db "select group_concat(id), sum(finished), group_concat(status)
                     from (select * from orders where domain_id = $did order by id)")
        if [ "$step/$chal" = after_respond/http-01 ] && [[ $orders == "$order_before,"* ]]; then
            # certd told the CA to validate and died: Pebble's VA (no sleeps) found nothing
            # listening and invalidated the order before the restart. Nothing can answer for a
            # dead daemon; what counts is that the restart finds the order invalid, closes it and
            # issues on a new one without counting a failure.
            log "$tag: the CA invalidated the order while certd was down; a new one was made"
            check_match "$tag: the old order finished invalid, one new order finished valid" \
                "^$order_before,[0-9]+ 2 invalid,valid\$" "$orders"
        else
            check_eq "$tag: one order, the one from before the crash, finished valid" \
                "$order_before 1 valid" "$orders"
        fi
        check_eq "$tag: the certificate comes from the domain's valid order" \
            "$(db "select id from orders where domain_id = $did and status = 'valid'")" \
            "$(db "select order_id from certificates where domain_id = $did")"
        check_eq "$tag: failure_count 0" 0 "$(db "select failure_count from domains where id = $did")"
        check_eq "$tag: one key, one certificate" "1 1" \
            "$(db "select (select count(*) from private_keys where domain_id = $did),
                          (select count(*) from certificates where domain_id = $did)")"
        check_eq "$tag: no order.failed event" 0 \
            "$(cc events --json --limit 1000 | jq --arg d "$name" '[.events[] | select(.type == "order.failed" and .domain == $d)] | length')"
        if [ "$chal" = dns-01 ]; then
            check_eq "$tag: no TXT record left in challtestsrv's DNS" 0 "$(txt_count "_acme-challenge.$apex")"
        fi
        stop_certd
        log "$tag: crash + resume took $(( ($(date +%s%N) - t0) / 1000000 )) ms"
    done
done
log "all crash points took $(( ($(date +%s%N) - t_all) / 1000000 )) ms"

# --- the whole store, with certd up again ------------------------------------------------------
start_certd
n=${#all_names[@]}
check_eq "every domain active" "$n" "$(db "select count(*) from domains where status = 'active'")"
check_eq "no challenge rows" 0 "$(db 'select count(*) from challenges')"
check_eq "no unfinished orders" 0 "$(db 'select count(*) from orders where finished = 0')"
check_eq "exactly one active certificate per domain, no other certificate" "$n $n $n" \
    "$(db "select count(*), count(distinct domain_id), sum(status = 'active') from certificates")"
check_eq "every certificate's key belongs to its domain" 0 \
    "$(db 'select count(*) from certificates c left join private_keys k on k.id = c.key_id
           where k.domain_id is not c.domain_id')"
# Pebble issued exactly the stored certificates: no order was finalized twice.
check_eq "Pebble issued exactly the stored certificates" \
    "$(db "select serial from certificates" | sed 's/^0*//' | sort | xargs)" \
    "$(sed -n 's/.*Issued certificate serial \([0-9a-f]*\) for order.*/\1/p' "$T_DIR/pebble.log" |
        sed 's/^0*//' | sort | xargs)"

# Each stored certificate against its stored key (joined in SQL, compared with openssl), its
# chain against Pebble's root alone, and its names.
mismatch=()
mkdir -p "$T_DIR/out"
while read -r cid; do
    f="$T_DIR/out/$cid"
    db "select chain_pem from certificates where id = $cid" >"$f.chain"
    db "select k.key_pem from certificates c join private_keys k on k.id = c.key_id
        where c.id = $cid" >"$f.key"
    openssl x509 -in "$f.chain" -out "$f.leaf" 2>/dev/null
    awk 'n>0 || /END CERTIFICATE/ {if (n>0) print; if (/END CERTIFICATE/) n++}' "$f.chain" >"$f.inter"
    [ "$(openssl pkey -in "$f.key" -pubout -outform DER 2>/dev/null | sha256sum)" = \
      "$(openssl x509 -in "$f.leaf" -noout -pubkey 2>/dev/null | openssl pkey -pubin -outform DER 2>/dev/null | sha256sum)" ] ||
        mismatch+=("certificate $cid: not for its stored key")
    openssl verify -CAfile "$T_DIR/pebble-root.pem" -untrusted "$f.inter" "$f.leaf" >/dev/null 2>&1 ||
        mismatch+=("certificate $cid: chain does not verify")
    dname=$(db "select d.name from certificates c join domains d on d.id = c.domain_id where c.id = $cid")
    want="$dname"; [ "${chal_of[$dname]:-}" = dns-01 ] && want="$dname ${apex_of[$dname]}"
    got=$(openssl x509 -in "$f.leaf" -noout -ext subjectAltName 2>/dev/null | tail -n +2 | tr -d ' ' |
        tr ',' '\n' | sed 's/^DNS://' | sort | xargs)
    [ "$got" = "$(tr ' ' '\n' <<<"$want" | sort | xargs)" ] ||
        mismatch+=("certificate $cid ($dname): SANs [$got]")
done < <(db 'select id from certificates order by id')
check_eq "every certificate matches its stored key, verifies against the root, has exact SANs" \
    "" "$(printf '%s\n' "${mismatch[@]}" | sed '/^$/d')"

left=()
for name in "${all_names[@]}"; do
    [ "${chal_of[$name]}" = dns-01 ] || continue
    t=$(txt_count "_acme-challenge.${apex_of[$name]}")
    [ "$t" = 0 ] || left+=("${apex_of[$name]}: $t")
done
check_eq "challtestsrv serves no TXT record for any domain" "" "$(printf '%s\n' "${left[@]}" | sed '/^$/d')"
# Every http-01 token Pebble ever asked for is no longer served by certd.
served=()
while read -r url; do
    tok=${url##*/}
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 \
        "http://127.0.0.1:$CERTD_HTTP01_PORT/.well-known/acme-challenge/$tok" || true)
    [ "$code" = 404 ] || served+=("$tok: $code")
done < <(sed -n 's|.*Attempting to validate w/ HTTP: \(http://[^ ]*\)$|\1|p' "$T_DIR/pebble.log" | sort -u)
check_eq "no http-01 token still served" "" "$(printf '%s\n' "${served[@]}" | sed '/^$/d')"
check_eq "Pebble validated some http-01 tokens (the check above is not vacuous)" yes \
    "$(grep -q 'Attempting to validate w/ HTTP' "$T_DIR/pebble.log" && echo yes)"

stop_certd
check_eq "no ASan/UBSan report in the certd log" "" \
    "$(grep -E 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$T_DIR/certd.log" | head -3)"
finish
