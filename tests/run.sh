#!/bin/sh
# The whole test suite: install dependencies, build, run every ctest test.
#   tests/run.sh                 everything (unit, integration, security, fuzz, vm)
#   tests/run.sh -L unit         any ctest arguments narrow the run
# Environment: BUILD_DIR (default build), CC (default clang, which the
# libFuzzer targets need), CI=true turns warnings into errors and makes any
# test that would skip (exit 77: a tool missing) fail instead (tests/skip.py).
set -eu
cd "$(dirname "$0")/.."
sh tests/setup.sh
build=${BUILD_DIR:-build}
werror=OFF
if [ "${CI:-}" = "true" ] || [ "${RINGMAIL_WERROR:-0}" = "1" ]; then werror=ON; fi
cmake -S . -B "$build" -DCMAKE_C_COMPILER="${CC:-clang}" -DRINGMAIL_WERROR=$werror \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j "$(nproc)"
ctest --test-dir "$build" --output-on-failure -j "$(nproc)" "$@"
