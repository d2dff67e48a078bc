#!/bin/sh
# The kTLS guest by hand: build (if needed) and run tests/vm/test_ktls_vm.py,
# which boots Debian's kernel under qemu and runs the kTLS checks and the
# kTLS on/off figures there. ctest runs the same (label vm).
#   sh tests/vm/run.sh                 # checks and figures
#   sh tests/vm/run.sh --no-figures    # checks only
#   BUILD_DIR=b2 sh tests/vm/run.sh --keep
set -eu
cd "$(dirname "$0")/../.."
build=${BUILD_DIR:-build}
if [ ! -x "$build/workers/ringmail" ]; then
    cmake -S . -B "$build" -DCMAKE_C_COMPILER="${CC:-clang}" >/dev/null
fi
cmake --build "$build" -j "$(nproc)" >/dev/null
exec python3 tests/vm/test_ktls_vm.py "$build/workers/ringmail" "$build/bench/ringmail-sink" \
    "$build/tests/test_loop" --cache "${RINGMAIL_VM_CACHE:-$build/vm-cache}" "$@"
