#!/bin/sh
# Installs what ringmail needs to build and test on Debian 12 (run as root).
# Idempotent: apt-get skips what is already there.
set -eu
export DEBIAN_FRONTEND=noninteractive
packages="build-essential cmake pkg-config clang libclang-rt-14-dev
  libssl-dev openssl liburing-dev libhiredis-dev libyaml-dev python3
  redis-server prometheus python3-yaml libmicrohttpd-dev"
missing=""
for p in $packages; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "ringmail: installing:$missing"
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
    # prometheus is here only for promtool (tests/deploy): do not leave the
    # server Debian starts on :9090 running on a machine that runs tests.
    case " $missing " in *" prometheus "*)
        if [ -d /run/systemd/system ]; then
            systemctl disable --now prometheus.service >/dev/null 2>&1 || true
        fi ;;
    esac
fi
