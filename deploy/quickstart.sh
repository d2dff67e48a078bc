#!/bin/sh
# The README's first command: install, build, and run the main job on a
# local default: a throwaway CA, redis-server and the TLS sink on loopback,
# `ringmail run` with persistent STARTTLS connections and certificate
# verification, and a batch of jobs enqueued into Redis.
#   COUNT=100000 WORKERS=2 sh deploy/quickstart.sh
set -eu
cd "$(dirname "$0")/.."
count=${COUNT:-50000}
workers=${WORKERS:-2}
sh tests/setup.sh
cmake -S . -B build -DCMAKE_C_COMPILER="${CC:-clang}" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)" >/dev/null
ringmail=./build/workers/ringmail
work=$(mktemp -d /tmp/ringmail-quickstart.XXXXXX)
pids=
cleanup() {
    for p in $pids; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# A throwaway CA and a certificate for localhost, as a private relay would have.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj "/CN=quickstart CA" -keyout "$work/ca.key" -out "$work/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=localhost" \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
    -keyout "$work/sink.key" -out "$work/sink.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' > "$work/ext"
openssl x509 -req -in "$work/sink.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" \
    -CAcreateserial -days 2 -extfile "$work/ext" -out "$work/sink.pem" 2>/dev/null

redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$work" --save "" --appendonly no \
    --daemonize no --loglevel warning > "$work/redis.log" 2>&1 &
pids="$pids $!"
./build/bench/ringmail-sink --listen 127.0.0.1:0 --cert "$work/sink.pem" --key "$work/sink.key" \
    --stats "$work/sink.json" > "$work/sink.out" 2> "$work/sink.err" &
sink_pid=$!
pids="$pids $sink_pid"
for _ in $(seq 50); do
    grep -q '^listening' "$work/sink.out" 2>/dev/null &&
        redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break
    sleep 0.1
done
sink_port=$(sed -n 's/^listening .*:\([0-9]*\)$/\1/p' "$work/sink.out")

metrics_listen=127.0.0.1:$(free_port)
cat > "$work/ringmail.yaml" <<YAML
workers: $workers
ehlo_name: quickstart.localhost
redis:
  url: redis://127.0.0.1:$redis_port
metrics:
  listen: $metrics_listen
relays:
  - name: default
    host: localhost
    port: $sink_port
    tls: starttls
    ca_file: $work/ca.pem
    connections: 16
retry:
  schedule: [5, 30, 300]
YAML

echo "== ringmail $($ringmail --version | cut -d' ' -f2): $workers workers, 16 persistent STARTTLS" \
     "connections each, to the sink on 127.0.0.1:$sink_port; Redis on 127.0.0.1:$redis_port"
$ringmail run -c "$work/ringmail.yaml" > "$work/engine.log" 2>&1 &
engine_pid=$!
pids="$engine_pid $pids"
start=$(date +%s.%N)
$ringmail enqueue -c "$work/ringmail.yaml" --from sender@example.org --to rcpt@example.net \
    --count "$count" --size 2048
while :; do
    done_n=$(redis-cli -p "$redis_port" XLEN ringmail:events)
    [ "$done_n" -ge "$count" ] && break
    kill -0 "$engine_pid" 2>/dev/null || { echo "ringmail run stopped:"; tail "$work/engine.log"; exit 1; }
    sleep 0.2
done
end=$(date +%s.%N)
sleep 1
python3 -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())' \
    "http://$metrics_listen/metrics" > "$work/metrics.txt" 2>/dev/null || true
kill -TERM "$engine_pid"
wait "$engine_pid" || true
kill -TERM "$sink_pid"
wait "$sink_pid" 2>/dev/null || true
delivered=$(redis-cli -p "$redis_port" --raw XRANGE ringmail:events - + |
    awk 'prev == "status" && $0 == "delivered" { n++ } { prev = $0 } END { print n + 0 }')
python3 - "$count" "$delivered" "$start" "$end" "$work/sink.json" <<'PY'
import json, sys
count, delivered, start, end, stats = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
sink = json.load(open(stats))
secs = end - start
print("== delivered %d of %d jobs (the sink received %d messages) in %.2f s: %.0f msg/s, enqueue to last outcome"
      % (delivered, count, sink["messages"], secs, delivered / secs if secs else 0))
PY
echo "== every outcome is on the Redis stream ringmail:events (XRANGE ringmail:events - + COUNT 1):"
redis-cli -p "$redis_port" XRANGE ringmail:events - + COUNT 1 | paste -sd' ' | cut -c1-400
echo "== metrics were served at http://$metrics_listen/metrics while it ran (scraped once):"
grep '^ringmail_messages_total.*delivered' "$work/metrics.txt" || true
grep '^ringmail_connection_info' "$work/metrics.txt" | head -2 || true
echo "== the engine's log is JSON lines on stderr, e.g.:"
grep '"event":"tls_handshake"' "$work/engine.log" | head -1
