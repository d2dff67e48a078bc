#!/bin/sh
# The README's first command: install, build, and run what ringmail does
# today on a local default: a throwaway CA, the TLS sink on loopback, and
# 'ringmail send' delivering a batch over persistent STARTTLS connections
# with certificate verification. (With the Redis intake, this becomes
# 'ringmail run' fed from a local Redis.)
#   COUNT=50000 CONNECTIONS=32 sh deploy/quickstart.sh
set -eu
cd "$(dirname "$0")/.."
count=${COUNT:-20000}
connections=${CONNECTIONS:-16}
sh tests/setup.sh
cmake -S . -B build -DCMAKE_C_COMPILER="${CC:-clang}" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)" >/dev/null
work=$(mktemp -d /tmp/ringmail-quickstart.XXXXXX)
sink_pid=
cleanup() {
    [ -n "$sink_pid" ] && kill "$sink_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

# A throwaway CA and a certificate for localhost, as a private relay would have.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj "/CN=quickstart CA" -keyout "$work/ca.key" -out "$work/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=localhost" \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
    -keyout "$work/sink.key" -out "$work/sink.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' > "$work/ext"
openssl x509 -req -in "$work/sink.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" \
    -CAcreateserial -days 2 -extfile "$work/ext" -out "$work/sink.pem" 2>/dev/null

./build/bench/ringmail-sink --listen 127.0.0.1:0 --cert "$work/sink.pem" --key "$work/sink.key" \
    --stats "$work/sink.json" > "$work/sink.out" 2> "$work/sink.err" &
sink_pid=$!
for _ in 1 2 3 4 5 6 7 8 9 10; do
    grep -q '^listening' "$work/sink.out" 2>/dev/null && break
    sleep 0.2
done
port=$(sed -n 's/^listening .*:\([0-9]*\)$/\1/p' "$work/sink.out")

# A 2 KB message.
{
    printf 'From: Quickstart <sender@example.org>\nTo: <rcpt@example.net>\n'
    printf 'Subject: ringmail quickstart\n\n'
    i=0
    while [ $i -lt 30 ]; do
        printf 'ringmail quickstart line %02d: the quick brown fox jumps over the dog.\n' $i
        i=$((i + 1))
    done
} > "$work/message.eml"

echo "== ringmail $(./build/workers/ringmail --version | cut -d' ' -f2): sending $count messages" \
     "over $connections persistent STARTTLS connections to the sink on 127.0.0.1:$port"
./build/workers/ringmail send --relay "localhost:$port" --ca "$work/ca.pem" \
    --from sender@example.org --to rcpt@example.net --count "$count" \
    --connections "$connections" "$work/message.eml" 2> "$work/send.log" | sed -n '1,3p;$p'
kill "$sink_pid"
wait "$sink_pid" 2>/dev/null || true
sink_pid=
echo "== the sink received:"
cat "$work/sink.json"
echo
