#!/bin/sh
# Transport figures on this machine: 'ringmail send' (one core) against
# ringmail-sink (the other core) over verified TLS, and the memory an idle
# persistent TLS connection holds. Figures, not tests: the machine is shared
# and noisy, so compare ratios taken in one run.
#   sh bench/transport_figures.sh [BUILD_DIR]
set -eu
cd "$(dirname "$0")/.."
build=${1:-build}
ringmail=$build/workers/ringmail
sink=$build/bench/ringmail-sink
count=${COUNT:-100000}
conns=${CONNECTIONS:-32}
idle=${IDLE:-10000}
work=$(mktemp -d /tmp/ringmail-figures.XXXXXX)
sink_pid=
# The sink by its PID: dash's $(jobs -p) runs in a subshell and lists
# nothing, which left the last sink running after the script.
trap '[ -n "$sink_pid" ] && kill "$sink_pid" 2>/dev/null; rm -rf "$work"' EXIT
trap 'exit 130' INT TERM

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj "/CN=figures CA" -keyout "$work/ca.key" -out "$work/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=localhost" \
    -keyout "$work/s.key" -out "$work/s.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost\n' > "$work/ext"
openssl x509 -req -in "$work/s.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" -CAcreateserial \
    -days 2 -extfile "$work/ext" -out "$work/s.pem" 2>/dev/null

message() { # SIZE FILE: a message of about SIZE octets
    python3 - "$1" "$2" <<'PY'
import sys
size, path = int(sys.argv[1]), sys.argv[2]
head = b"From: a@example.org\nTo: b@example.net\nSubject: figures\n\n"
line = b"The quick brown fox jumps over the lazy dog, again and again.\n"
body = line * (size // len(line) + 1)
open(path, "wb").write((head + body)[:size])
PY
}

cpu_s() { # PID: user+system CPU seconds so far
    awk -v hz="$(getconf CLK_TCK)" '{ printf "%.3f", ($14 + $15) / hz }' "/proc/$1/stat"
}

start_sink() {
    taskset -c 0 "$sink" --listen 127.0.0.1:0 --cert "$work/s.pem" --key "$work/s.key" \
        --stats "$work/sink.json" > "$work/sink.out" 2>/dev/null &
    sink_pid=$!
    while ! grep -q '^listening' "$work/sink.out" 2>/dev/null; do sleep 0.1; done
    port=$(sed -n 's/^listening .*:\([0-9]*\)$/\1/p' "$work/sink.out")
}

printf '%-10s %12s %10s %16s %16s %14s\n' size msg/s MB/s "send cpu/1k msg" "sink cpu/1k msg" "sink capacity"
for size in 2048 102400 1048576; do
    n=$count
    [ "$size" -ge 102400 ] && n=$((count / 10))
    [ "$size" -ge 1048576 ] && n=$((count / 100))
    message "$size" "$work/m.eml"
    start_sink
    s0=$(cpu_s "$sink_pid")
    out=$(/usr/bin/time -f 'cpu %U %S' taskset -c 1 "$ringmail" send --relay "localhost:$port" --ehlo bench.localhost \
        --ca "$work/ca.pem" --from a@example.org --to b@example.net --count "$n" \
        --connections "$conns" --quiet "$work/m.eml" 2>&1 | grep -v '"level"')
    s1=$(cpu_s "$sink_pid")
    kill "$sink_pid"; wait "$sink_pid" 2>/dev/null || true
    echo "$out" | grep -q "sent $n of $n" || { echo "FAILED at $size: $out"; exit 1; }
    echo "$out" | awk -v size="$size" -v n="$n" -v s0="$s0" -v s1="$s1" '
        /^sent/ { for (i = 1; i <= NF; i++) if ($i == "s:") rate = $(i + 1); secs = $(NF - 3) }
        /^cpu/  { cpu = $2 + $3 }
        END {
            sink = s1 - s0
            printf "%-10d %12.0f %10.1f %16.4f %16.4f %12.0f/s\n", size, rate,
                rate * size / 1e6, cpu / n * 1000, sink / n * 1000, (sink > 0 ? n / sink : 0)
        }'
done

echo
echo "idle persistent TLS connections ($idle, one process):"
message 512 "$work/m.eml"
start_sink
"$ringmail" send --relay "localhost:$port" --ehlo bench.localhost --ca "$work/ca.pem" --from a@example.org \
    --to b@example.net --count "$idle" --connections "$idle" --hold 2 --quiet "$work/m.eml" 2>&1 |
    grep -E '^(sent|held)'
