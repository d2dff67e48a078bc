#!/bin/sh
# The benchmark suite in one command (Debian 12, as root, from the repository):
#   sh bench/run.sh [--smoke] [--out DIR] [--connections N] [...]   (--help: all options)
# The full suite installs what it needs with apt-get (postfix, gnuplot-nox,
# nodejs/npm where node is missing, linux-perf) and nodemailer with npm into
# BUILD_DIR/bench-cache/node, builds ringmail, and runs bench/suite/suite.py.
# --smoke installs nothing beyond tests/setup.sh's packages (and builds only
# what is missing): it is what the ctest test 'bench_smoke' runs.
# bench/README.md says what each figure means and how it is measured.
set -eu
export PYTHONDONTWRITEBYTECODE=1  # no __pycache__ in the source tree
cd "$(dirname "$0")/.."
build=${BUILD_DIR:-build}
smoke=0
for a in "$@"; do
    case "$a" in --smoke) smoke=1 ;; -h|--help) exec python3 bench/suite/suite.py --help ;; esac
done

have() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "ok installed"; }

if [ "$smoke" = 0 ]; then
    sh tests/setup.sh
    missing=""
    for p in postfix gnuplot-nox linux-perf strace; do have "$p" || missing="$missing $p"; done
    command -v node >/dev/null 2>&1 || command -v nodejs >/dev/null 2>&1 || missing="$missing nodejs"
    command -v npm >/dev/null 2>&1 || missing="$missing npm"
    if [ -n "$missing" ]; then
        echo "bench: installing:$missing"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        # postfix without a system configuration: the suite runs its own instance
        echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
        # linux-perf is optional (strace -c is the fallback for syscall counts)
        # shellcheck disable=SC2086
        apt-get install -y -qq --no-install-recommends $missing >/dev/null ||
            apt-get install -y -qq --no-install-recommends \
                $(echo "$missing" | sed 's/linux-perf//') >/dev/null
    fi
    cache="$build/bench-cache/node"
    if [ ! -f "$cache/node_modules/nodemailer/package.json" ]; then
        echo "bench: npm install nodemailer into $cache"
        mkdir -p "$cache"
        npm install --silent --no-audit --no-fund --prefix "$cache" nodemailer@6 >/dev/null
    fi
    cmake -S . -B "$build" -DCMAKE_C_COMPILER="${CC:-clang}" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build "$build" -j "$(nproc)" --target ringmail ringmail-sink >/dev/null
elif [ ! -x "$build/workers/ringmail" ] || [ ! -x "$build/bench/ringmail-sink" ]; then
    cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build "$build" -j "$(nproc)" --target ringmail ringmail-sink >/dev/null
fi
exec python3 bench/suite/suite.py --build "$build" "$@"
