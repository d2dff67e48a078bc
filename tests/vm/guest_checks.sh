#!/bin/sh
# The kTLS checks, run by /init inside the qemu guest (busybox sh, Debian's
# packaged kernel). Every case prints one "RMVM CHECK NAME PASS|FAIL detail"
# line and one "RMVM SUMMARY NAME ..." line; figures are "RMVM FIGURE ..."
# lines. The host decides from them (a case that never reported fails).
#
# Order matters: the cases that prove the kTLS-off fallback (and the
# kTLS-off figures) run before tls.ko is loaded; everything else after.
. /vm/params
PKI=/vm/pki
MSG=/vm/msg
FROM=sender@example.org
TO=rcpt@example.net

log() { echo "RMVM LOG $*"; }

# /proc/net/tls_stat counter (0 while tls.ko is not loaded).
tls_stat() {
    if [ -r /proc/net/tls_stat ]; then
        awk -v k="$1" '$1 == k { v = $2 } END { print v + 0 }' /proc/net/tls_stat
    else
        echo 0
    fi
}

# A number from the sink's statistics JSON.
json_num() { sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p" "$2"; }

# start_sink DIR [flags]: ringmail-sink on 127.0.0.1, port in $PORT.
start_sink() {
    SD=$1
    shift
    mkdir -p "$SD/store"
    ringmail-sink --listen 127.0.0.1:0 --cert $PKI/good.pem --key $PKI/good.key \
        --stats "$SD/stats.json" --ids "$SD/ids" "$@" > "$SD/sink.out" 2> "$SD/sink.err" &
    SINK_PID=$!
    i=0
    while ! grep -q '^listening' "$SD/sink.out" 2>/dev/null; do
        i=$((i + 1))
        if [ $i -gt 300 ] || ! kill -0 $SINK_PID 2>/dev/null; then
            log "sink did not start: $(cat "$SD/sink.err")"
            return 1
        fi
        usleep 100000
    done
    PORT=$(sed -n 's/^listening .*:\([0-9]*\)$/\1/p' "$SD/sink.out")
}

stop_sink() {
    kill -TERM $SINK_PID 2>/dev/null
    wait $SINK_PID
}

# The TLS flags of a sink that accepts only version $1 with cipher $2.
sink_tls_flags() {
    if [ "$1" = 1.3 ]; then
        echo "--tls-versions 1.3 --ciphersuites $2"
    else
        echo "--tls-versions 1.2 --ciphers $2"
    fi
}

report() { # NAME ERRORS SUMMARY
    if [ -z "$2" ]; then
        echo "RMVM CHECK $1 PASS"
    else
        echo "RMVM CHECK $1 FAIL$2"
        for f in "$D"/*.out "$D"/*.err; do
            [ -s "$f" ] && tail -n 5 "$f" | sed "s|^|RMVM LOG $1 $(basename "$f"): |"
        done
    fi
    echo "RMVM SUMMARY $1 $3"
}

count_eml() {
    n=0
    for f in "$1"/*.eml; do
        [ -e "$f" ] && n=$((n + 1))
    done
    echo $n
}

# Stored messages that are not byte-identical to $1 (all of them in $2).
count_different() {
    n=0
    for f in "$2"/*.eml; do
        [ -e "$f" ] || continue
        cmp -s "$f" "$1" || n=$((n + 1))
    done
    echo $n
}

# send_case NAME VERSION CIPHER COUNT CONNS MESSAGE KTLS [sink flags]
# KTLS: 1 when the kernel must encrypt every connection of ringmail, 0 when
# none may. Checks: every message delivered and stored byte-identical, sent
# with BDAT (CHUNKING); each connection's own facts (protocol, cipher,
# verify, ktls_tx); the body spliced onto the socket for every message when
# kTLS is on (sum of spliced_bytes = COUNT x size) and never when off; the
# kernel's TlsTxSw/TlsRxSw grew by exactly our kTLS connections plus what
# the sink reports for its own.
send_case() {
    name=$1 ver=$2 cipher=$3 count=$4 conns=$5 msg=$6 want=$7
    shift 7
    D=/tmp/case.$name
    rm -rf "$D"
    mkdir -p "$D"
    err=""
    tx0=$(tls_stat TlsTxSw)
    rx0=$(tls_stat TlsRxSw)
    # shellcheck disable=SC2046
    if ! start_sink "$D" --store "$D/store" $(sink_tls_flags "$ver" "$cipher") "$@"; then
        report "$name" " sink-did-not-start" "-"
        return
    fi
    t0=$(date +%s)
    ringmail send --relay 127.0.0.1:"$PORT" --servername localhost --ehlo client.test --ca $PKI/root.pem \
        --from $FROM --to $TO --count "$count" --connections "$conns" --timeout 300 \
        "$msg" > "$D/send.out" 2> "$D/send.err"
    rc=$?
    t1=$(date +%s)
    stop_sink
    tx1=$(tls_stat TlsTxSw)
    rx1=$(tls_stat TlsRxSw)
    size=$(wc -c < "$msg")
    [ $rc = 0 ] || err="$err send-exit=$rc"
    grep -q "^sent $count of $count messages" "$D/send.out" || err="$err not-all-sent"
    nconn=$(grep -c '^conn ' "$D/send.out")
    [ "$nconn" = "$conns" ] || err="$err connections=$nconn(want-$conns)"
    good=$(awk -v v="TLSv$ver" -v c="$cipher" -v k="ktls_tx=$want" \
        '$1 == "conn" && $3 == v && $4 == c && index($0, " verify=ok ") && index($0, " " k " ") { n++ }
         END { print n + 0 }' "$D/send.out")
    [ "$good" = "$conns" ] || err="$err conns-with-TLSv$ver/$cipher/verify=ok/ktls_tx=$want:$good"
    ours=$(grep -c '^conn .* ktls_tx=1 ' "$D/send.out")
    spliced=$(awk '$1 == "conn" { for (i = 1; i <= NF; i++) if ($i ~ /^spliced_bytes=/) {
                   split($i, a, "="); s += a[2] } } END { printf "%.0f\n", s }' "$D/send.out")
    if [ "$want" = 1 ]; then
        want_spliced=$((count * size))
    else
        want_spliced=0
    fi
    [ "$spliced" = "$want_spliced" ] || err="$err spliced_bytes=$spliced(want-$want_spliced)"
    stored=$(count_eml "$D/store")
    [ "$stored" = "$count" ] || err="$err stored=$stored"
    diff=$(count_different "$msg" "$D/store")
    [ "$diff" = 0 ] || err="$err not-identical=$diff"
    bdat=$(cat "$D"/store/*.env 2>/dev/null | grep -c '^bdat 1$')
    [ "$bdat" = "$count" ] || err="$err bdat=$bdat"
    sink_conns=$(json_num connections "$D/stats.json")
    sink_tx=$(json_num ktls_tx_connections "$D/stats.json")
    sink_rx=$(json_num ktls_rx_connections "$D/stats.json")
    [ "$sink_conns" = "$conns" ] || err="$err sink-connections=$sink_conns"
    dtx=$((tx1 - tx0))
    drx=$((rx1 - rx0))
    [ "$dtx" = $((ours + sink_tx)) ] || err="$err TlsTxSw+$dtx!=ours$ours+sink$sink_tx"
    [ "$drx" = "$sink_rx" ] || err="$err TlsRxSw+$drx!=sink$sink_rx"
    if [ -n "${WANT_SINK_RX:-}" ] && [ "$sink_rx" != "$WANT_SINK_RX" ]; then
        err="$err sink-ktls_rx=$sink_rx(want-$WANT_SINK_RX)"
    fi
    report "$name" "$err" "TLSv$ver $cipher size=$size sent=$(sed -n 's/^sent \([0-9]*\) of.*/\1/p' \
"$D/send.out")/$count conns=$conns ktls_tx=$ours/$conns spliced_bytes=$spliced identical=$((stored - diff))/$count bdat=$bdat TlsTxSw+$dtx (ours $ours, sink $sink_tx) TlsRxSw+$drx (sink $sink_rx) $((t1 - t0))s"
}

# A server that stops reading while a large body is on its way (it holds
# its reply to MAIL for 3 s, and the body is pipelined right behind MAIL):
# the socket fills, and the spliced body must wait for room rather than
# fail (a splice on a full non-blocking socket says EAGAIN, and io_uring
# does not retry a splice on its own as it does a send).
slow_reader_case() {
    name=$1 msg=$2
    D=/tmp/case.$name
    rm -rf "$D"
    mkdir -p "$D"
    err=""
    if ! start_sink "$D" --store "$D/store" --delay MAIL=3000; then
        report "$name" " sink-did-not-start" "-"
        return
    fi
    ringmail send --relay 127.0.0.1:"$PORT" --servername localhost --ehlo client.test --ca $PKI/root.pem \
        --from $FROM --to $TO --count 2 --connections 1 --timeout 300 \
        "$msg" > "$D/send.out" 2> "$D/send.err"
    rc=$?
    stop_sink
    size=$(wc -c < "$msg")
    [ $rc = 0 ] || err="$err send-exit=$rc"
    grep -q "^sent 2 of 2 messages" "$D/send.out" || err="$err not-all-sent"
    grep -q '^conn 0: .* ktls_tx=1 ' "$D/send.out" || err="$err ktls_tx-off"
    spliced=$(sed -n 's/^conn 0: .* spliced_bytes=\([0-9]*\) .*/\1/p' "$D/send.out")
    [ "$spliced" = $((2 * size)) ] || err="$err spliced_bytes=$spliced"
    stored=$(count_eml "$D/store")
    diff=$(count_different "$msg" "$D/store")
    [ "$stored" = 2 ] && [ "$diff" = 0 ] || err="$err stored=$stored not-identical=$diff"
    report "$name" "$err" "$size-octet body spliced to a server that paused reading for 3 s: $(grep '^sent' "$D/send.out" | cut -d'(' -f1)spliced_bytes=$spliced identical=$((stored - diff))/2 $(grep '^first failure' "$D/send.out")"
}

# A refused AUTH ends with QUIT, then close_notify: in that order, or the
# server drops the QUIT unread (the sink logs why each connection closed).
quit_order_case() { # NAME KTLS
    name=$1 want=$2
    D=/tmp/case.$name
    rm -rf "$D"
    mkdir -p "$D"
    err=""
    printf 'not-the-password\n' > "$D/password"
    if ! start_sink "$D" --auth user:secret --verbose; then
        report "$name" " sink-did-not-start" "-"
        return
    fi
    ringmail send --relay 127.0.0.1:"$PORT" --servername localhost --ehlo client.test --ca $PKI/root.pem \
        --from $FROM --to $TO --user user --password-file "$D/password" --timeout 60 \
        $MSG/small.eml > "$D/send.out" 2> "$D/send.err"
    rc=$?
    i=0
    while ! grep -q ' closed (' "$D/sink.err" && [ $i -lt 50 ]; do
        i=$((i + 1))
        usleep 100000
    done
    stop_sink
    k=$(grep -c '"ktls_tx":"1"' "$D/send.err")
    closed=$(sed -n 's/^sink: conn [0-9]* closed (\(.*\))$/\1/p' "$D/sink.err" | tr '\n' ' ')
    [ $rc = 76 ] || err="$err send-exit=$rc(want-76)"
    grep -q '^failed: 1 messages by auth' "$D/send.out" || err="$err not-an-auth-failure"
    [ "$closed" = "quit " ] || err="$err sink-closed-by:$closed"
    [ "$k" = "$want" ] || err="$err ktls_tx-connections=$k(want-$want)"
    report "$name" "$err" "AUTH refused (exit $rc), kTLS TX connections: $k, the sink closed the connection on: $closed"
}

# A server-initiated KeyUpdate on kTLS connections: the sink (kTLS off: it
# could not send one otherwise) requests one after every $2 messages on a
# connection; ringmail must retire each such connection once the
# transactions already in flight are done (OpenSSL 3.0 cannot update the
# kernel's key), start none on it after, and deliver every message exactly
# once. With up to DEPTH transactions back to back, a connection carries at
# most EVERY + DEPTH - 1 messages (the KeyUpdate comes after the EVERY-th;
# the rest of that burst was already sent); without retirement one
# connection would carry them all.
key_update_case() {
    name=$1 every=$2 count=$3 msg=$4 depth=$5
    D=/tmp/case.$name
    rm -rf "$D"
    mkdir -p "$D"
    err=""
    tx0=$(tls_stat TlsTxSw)
    if ! start_sink "$D" --store "$D/store" --no-ktls --tls-versions 1.3 --key-update-after "$every"; then
        report "$name" " sink-did-not-start" "-"
        return
    fi
    ringmail send --relay 127.0.0.1:"$PORT" --servername localhost --ehlo client.test --ca $PKI/root.pem \
        --from $FROM --to $TO --count "$count" --connections 1 --timeout 300 \
        --pipeline-depth "$depth" "$msg" > "$D/send.out" 2> "$D/send.err"
    rc=$?
    stop_sink
    dtx=$(($(tls_stat TlsTxSw) - tx0))
    per_conn=$((every + depth - 1))
    [ $rc = 0 ] || err="$err send-exit=$rc"
    grep -q "^sent $count of $count messages" "$D/send.out" || err="$err not-all-sent"
    stored=$(count_eml "$D/store")
    [ "$stored" = "$count" ] || err="$err stored=$stored(want-exactly-$count)"
    ids=$(wc -l < "$D/ids")
    [ "$ids" = "$count" ] || err="$err message-ids=$ids(want-exactly-$count)"
    diff=$(count_different "$msg" "$D/store")
    [ "$diff" = 0 ] || err="$err not-identical=$diff"
    ku=$(json_num key_updates "$D/stats.json")
    skipped=$(json_num key_updates_skipped_ktls "$D/stats.json")
    sink_conns=$(json_num connections "$D/stats.json")
    sink_msgs=$(json_num messages "$D/stats.json")
    min_conns=$(((count + per_conn - 1) / per_conn))
    [ "$skipped" = 0 ] || err="$err sink-skipped-key-updates=$skipped"
    [ "$ku" -ge $((count / per_conn)) ] || err="$err key_updates=$ku"
    # Retired: no connection carried more than $per_conn messages.
    [ "$sink_conns" -ge "$min_conns" ] || err="$err connections=$sink_conns(want>=$min_conns)"
    [ "$sink_msgs" = "$count" ] || err="$err sink-messages=$sink_msgs"
    # Every connection ringmail opened had kTLS TX on (the sink has none).
    [ "$dtx" = "$sink_conns" ] || err="$err TlsTxSw+$dtx!=connections$sink_conns"
    over=$(awk '$1 == "conn" { for (i = 1; i <= NF; i++) if ($i ~ /^messages=/) { split($i, a, "=");
               if (a[2] + 0 > e) n++ } } END { print n + 0 }' e="$per_conn" "$D/send.out")
    [ "$over" = 0 ] || err="$err conns-over-$per_conn-messages=$over"
    report "$name" "$err" "TLSv1.3 KeyUpdate every $every messages, pipeline depth $depth: sent $count, stored $stored, Message-IDs $ids, key_updates=$ku connections=$sink_conns (at most $per_conn messages each) TlsTxSw+$dtx"
}

# The main job on the offload path: redis-server, the sink, `ringmail run`,
# a batch from `ringmail enqueue` (COUNT jobs of 2 KB and BIG of 512 KB);
# every job delivered (events), acked (nothing pending), delivered once
# (Message-IDs), events say ktls=1.
engine_case() {
    name=$1 small=$2 big=$3
    count=$((small + big))
    D=/tmp/case.$name
    rm -rf "$D"
    mkdir -p "$D/redis"
    err=""
    tx0=$(tls_stat TlsTxSw)
    redis-server --port 6399 --bind 127.0.0.1 --dir "$D/redis" --save "" --appendonly no \
        --daemonize no --loglevel warning > "$D/redis.out" 2>&1 &
    REDIS_PID=$!
    if ! start_sink "$D" --no-ktls; then
        report "$name" " sink-did-not-start" "-"
        kill $REDIS_PID
        return
    fi
    i=0
    until [ "$(redis-cli -p 6399 PING 2>/dev/null)" = PONG ]; do
        i=$((i + 1))
        [ $i -gt 100 ] && break
        usleep 100000
    done
    cat > "$D/ringmail.yaml" <<YAML
workers: 1
ehlo_name: client.test
shutdown_timeout: 20
log_level: info
redis:
  url: redis://127.0.0.1:6399
metrics:
  listen: 127.0.0.1:9465
relays:
  - name: default
    host: localhost
    port: $PORT
    tls: starttls
    ca_file: $PKI/root.pem
    connections: 2
retry:
  schedule: [1, 1, 1]
YAML
    ringmail run -c "$D/ringmail.yaml" > "$D/engine.err" 2>&1 &
    ENGINE_PID=$!
    ringmail enqueue -c "$D/ringmail.yaml" --from $FROM --to $TO --count "$small" --size 2048 \
        --quiet > "$D/enqueue.out" 2>&1 || err="$err enqueue-failed"
    ringmail enqueue -c "$D/ringmail.yaml" --from $FROM --to $TO --count "$big" --size 524288 \
        --quiet >> "$D/enqueue.out" 2>&1 || err="$err enqueue-big-failed"
    i=0
    while [ "$(redis-cli -p 6399 XLEN ringmail:events)" -lt "$count" ] 2>/dev/null; do
        i=$((i + 1))
        [ $i -gt 1200 ] && break
        kill -0 $ENGINE_PID 2>/dev/null || break
        usleep 100000
    done
    redis-cli -p 6399 --raw XRANGE ringmail:events - + > "$D/events"
    pending=$(redis-cli -p 6399 XPENDING ringmail:jobs ringmail 2>/dev/null | head -n 1)
    # /metrics with the kernel's real /proc/net/tls_stat behind it, while
    # the persistent connections are still open.
    wget -q -O "$D/metrics" http://127.0.0.1:9465/metrics || err="$err metrics-scrape-failed"
    kill -TERM $ENGINE_PID
    wait $ENGINE_PID
    erc=$?
    stop_sink
    dtx=$(($(tls_stat TlsTxSw) - tx0))
    kill -TERM $REDIS_PID
    wait $REDIS_PID
    delivered=$(awk 'p == "status" && $0 == "delivered" { n++ } { p = $0 } END { print n + 0 }' "$D/events")
    ktls_ev=$(awk 'p == "ktls" && $0 == "1" { n++ } { p = $0 } END { print n + 0 }' "$D/events")
    ids=$(wc -l < "$D/ids")
    uniq_ids=$(sort -u "$D/ids" | wc -l)
    hs=$(grep -c '"event":"tls_handshake"' "$D/engine.err")
    hs_ktls=$(grep '"event":"tls_handshake"' "$D/engine.err" | grep -c '"ktls_tx":"1"')
    [ "$delivered" = "$count" ] || err="$err delivered=$delivered"
    [ "$ktls_ev" = "$count" ] || err="$err events-with-ktls=1:$ktls_ev"
    [ "$pending" = 0 ] || err="$err pending=$pending"
    [ "$ids" = "$count" ] && [ "$uniq_ids" = "$count" ] || err="$err ids=$ids unique=$uniq_ids"
    [ "$hs" -ge 1 ] && [ "$hs" = "$hs_ktls" ] || err="$err handshakes=$hs ktls=$hs_ktls"
    [ "$dtx" = "$hs" ] || err="$err TlsTxSw+$dtx!=handshakes$hs"
    [ "$erc" = 0 ] || err="$err engine-exit=$erc"
    m_expected=$(sed -n 's/^ringmail_relay_ktls_expected{.*} \([0-9]*\)$/\1/p' "$D/metrics")
    m_mismatch=$(sed -n 's/^ringmail_ktls_count_mismatch \([0-9]*\)$/\1/p' "$D/metrics")
    m_relay_ktls=$(sed -n 's/^ringmail_relay_ktls_connections{.*} \([0-9]*\)$/\1/p' "$D/metrics")
    m_curr=$(sed -n 's/^ringmail_kernel_tls_curr_tx_sw \([0-9]*\)$/\1/p' "$D/metrics")
    m_info=$(grep -c '^ringmail_connection_info{.*ktls_tx="1"' "$D/metrics")
    [ "$m_expected" = 1 ] || err="$err metrics-ktls_expected=$m_expected"
    [ "$m_mismatch" = 0 ] || err="$err metrics-ktls_count_mismatch=$m_mismatch"
    [ -n "$m_relay_ktls" ] && [ "$m_relay_ktls" -ge 1 ] || err="$err metrics-relay_ktls_connections=$m_relay_ktls"
    [ "$m_info" = "$m_relay_ktls" ] || err="$err metrics-connection_info-ktls=$m_info"
    [ -n "$m_curr" ] && [ "$m_curr" -ge "${m_relay_ktls:-1}" ] || err="$err metrics-kernel_tls_curr_tx_sw=$m_curr"
    report "$name" "$err" "ringmail run: enqueued $small x 2 KB + $big x 512 KB, delivered $delivered (events with ktls=1: $ktls_ev), pending $pending, Message-IDs $uniq_ids unique of $ids, connections $hs all ktls_tx=1, TlsTxSw+$dtx; /metrics: ktls_expected=$m_expected relay_ktls_connections=$m_relay_ktls connection_info ktls_tx=1: $m_info kernel_tls_curr_tx_sw=$m_curr ktls_count_mismatch=$m_mismatch"
}

# CPU time of the sender per message (user+sys, busybox time).
figure() { # KTLS SIZE COUNT MESSAGE REP
    D=/tmp/fig.$1.$2.$5
    rm -rf "$D"
    mkdir -p "$D"
    start_sink "$D" || return
    time -f "%U %S" -o "$D/time" ringmail send --relay 127.0.0.1:"$PORT" --servername localhost --ehlo client.test \
        --ca $PKI/root.pem --from $FROM --to $TO --count "$3" --connections 1 "$4" \
        > "$D/send.out" 2> "$D/send.err"
    rc=$?
    stop_sink
    k=$(sed -n 's/^conn 0: .* ktls_tx=\([01]\) .*/\1/p' "$D/send.out")
    suite=$(sed -n 's/^conn 0: \(TLSv[0-9.]*\) \([^ ]*\) .*/\1\/\2/p' "$D/send.out")
    sent=$(sed -n 's/^sent \([0-9]*\) of.*/\1/p' "$D/send.out")
    # busybox time notes a non-zero exit on a line of its own: the figures
    # are the last line.
    echo "RMVM FIGURE ktls=$1 size=$2 count=$3 rep=$5 sent=$sent rc=$rc conn_ktls_tx=$k tls=$suite cpu=$(tail -n 1 "$D/time")"
    if [ "$rc" != 0 ]; then
        grep -v '^conn ' "$D/send.out" | sed "s/^/RMVM LOG figure: /"
        grep -v '"tls_handshake"' "$D/send.err" | tail -n 5 | sed "s/^/RMVM LOG figure: /"
    fi
    rm -rf "$D"
}

figures() { # KTLS REP
    figure "$1" 2048 "$FIG_2K" $MSG/fig2k.eml "$2"
    figure "$1" 102400 "$FIG_100K" $MSG/fig100k.eml "$2"
    figure "$1" 1048576 "$FIG_1M" $MSG/fig1m.eml "$2"
}

# kTLS off and on alternately (tls.ko out, then in again), a few rounds:
# the emulated CPU's time stretches whenever the host is busy, and the
# host keeps the smallest figure of each.
figures_rounds() {
    [ "$FIGURES" = 1 ] || return 0
    r=1
    while [ $r -le "$FIG_ROUNDS" ]; do
        # A closing socket may hold the module a moment longer.
        i=0
        until rmmod tls 2> /tmp/rmmod.err || [ $i -ge 30 ]; do
            i=$((i + 1))
            usleep 100000
        done
        if grep -q '^tls ' /proc/modules; then
            log "rmmod tls: $(cat /tmp/rmmod.err)"
        else
            figures 0 $r
        fi
        insmod /mods/tls.ko 2> /dev/null
        figures 1 $r
        r=$((r + 1))
    done
}

# The io_uring loop's own tests on this kernel (6.1): every setup-flag
# fallback step, multishot receives, buffer rings, SEND_ZC, splice.
loop_case() {
    D=/tmp/case.loop
    mkdir -p "$D"
    test_loop > "$D/loop.out" 2> "$D/loop.err"
    rc=$?
    err=""
    [ $rc = 0 ] || err=" test_loop-exit=$rc"
    report loop_kernel "$err" "test_loop: $(tail -n 1 "$D/loop.out"); $(grep '^loop features' "$D/loop.out")"
}

loop_case

# ---- without tls.ko: kTLS off everywhere, everything still delivered ----
if [ -e /proc/net/tls_stat ]; then
    echo "RMVM CHECK no_module_first FAIL tls_stat exists before insmod"
fi
send_case no_module_tls13 1.3 TLS_AES_128_GCM_SHA256 "$N" 2 $MSG/small.eml 0
send_case no_module_tls12 1.2 ECDHE-ECDSA-AES256-GCM-SHA384 "$N" 2 $MSG/small.eml 0
quit_order_case no_module_quit_order 0

# ---- load the AEAD modules, then tls.ko ----
loaded=""
while read -r m; do
    if insmod /mods/$m.ko 2> /tmp/insmod.err; then
        loaded="$loaded $m"
    else
        log "insmod $m: $(cat /tmp/insmod.err)"
    fi
done < /mods/order
if grep -q '^tls ' /proc/modules && [ -r /proc/net/tls_stat ]; then
    echo "RMVM CHECK insmod_tls PASS"
else
    echo "RMVM CHECK insmod_tls FAIL tls.ko did not load"
fi
echo "RMVM SUMMARY insmod_tls loaded:$loaded"

# ---- kTLS TX on every connection, every cipher ----
for v in 1.3 1.2; do
    if [ $v = 1.3 ]; then
        ciphers="TLS_AES_128_GCM_SHA256 TLS_AES_256_GCM_SHA384 TLS_CHACHA20_POLY1305_SHA256"
        WANT_SINK_RX=""
    else
        ciphers="ECDHE-ECDSA-AES128-GCM-SHA256 ECDHE-ECDSA-AES256-GCM-SHA384 ECDHE-ECDSA-CHACHA20-POLY1305"
        # OpenSSL 3.0 receives TLS 1.2 in the kernel: the sink proves it.
        WANT_SINK_RX=$CONNS
    fi
    for c in $ciphers; do
        send_case "ktls_tls${v#1.}_$c" $v $c "$N" "$CONNS" $MSG/small.eml 1 $SINK_RX_FLAGS
    done
done
WANT_SINK_RX=""
send_case ktls_large_1m 1.3 TLS_AES_256_GCM_SHA384 "$N_LARGE" 2 $MSG/large.eml 1
slow_reader_case ktls_slow_reader $MSG/huge.eml
quit_order_case ktls_quit_order 1
key_update_case ktls_key_update 5 20 $MSG/small.eml 1
key_update_case ktls_key_update_pipelined 5 20 $MSG/small.eml 4
engine_case ktls_engine "$N_ENGINE" "$N_ENGINE_BIG"
figures_rounds
exit 0
