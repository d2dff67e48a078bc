#!/bin/sh
# The README's first command: install, build, and run what ringmail can do
# today on this machine. While the engine is growing this replays the SMTP
# client core against recorded server dialogues (tests/golden) and shows one
# of them; see README.md for what exists and what comes next.
set -eu
cd "$(dirname "$0")/.."
sh tests/setup.sh
cmake -S . -B build -DCMAKE_C_COMPILER="${CC:-clang}" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)" >/dev/null
./build/workers/ringmail --version
echo "== the SMTP client core against recorded server dialogues:"
for f in tests/golden/*.txt; do
    if ./build/tests/golden_runner "$f" >/dev/null 2>&1; then r=ok; else r=FAILED; fi
    printf '  %-28s %s\n' "$(basename "$f" .txt)" "$r"
done
echo "== one dialogue (S: server, C: ringmail, E: events to the transport):"
grep -v '^[#@]' tests/golden/pipelining.txt
