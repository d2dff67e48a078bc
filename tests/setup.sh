#!/bin/sh
# Installs everything ringmail needs to build and to run every test on
# Debian 12 (run as root). Under CI=true a test that finds something missing
# fails instead of skipping (tests/skip.py, skip.sh, check_skip), so what a
# test looks for must be here. Idempotent: apt-get skips what is there.
#   build: build-essential cmake pkg-config clang libclang-rt-14-dev (libFuzzer,
#     sanitizers) libssl-dev liburing-dev libhiredis-dev libyaml-dev libmicrohttpd-dev
#   openssl: the test PKI (pki.py), s_client (test_sink.sh, probe tests)
#   redis-server redis-tools: test_queue, engine_*, bench_smoke, vm_ktls (redis-cli)
#   prometheus: promtool (test_metrics, deploy_*, engine_metrics_scrape) and the
#     server engine_metrics_scrape scrapes through
#   python3 python3-yaml: the Python tests; PyYAML for deploy_kubernetes, deploy_dashboard
#   postfix: the Postfix probe and transport tests (private instances)
#   systemd: systemd-analyze for deploy_systemd (only the package: it does not
#     become init, which is systemd-sysv, and starts nothing in a container)
#   qemu-system-x86 busybox-static: vm_ktls (its kernel comes from apt-get download)
#   libevent-2.1-7 libdb5.3 libgnutls30 libgnutls-dane0 libidn12 libnsl2
#     libpcre2-8-0 mount: the libraries of OpenSMTPD 6.8 and Exim 4.96 that
#     realmta_* run unpacked from apt-get download (the MTAs themselves are
#     never installed: they Conflict with postfix), and unshare/mount for
#     OpenSMTPD's private mount namespace
set -eu
export DEBIAN_FRONTEND=noninteractive
packages="build-essential cmake pkg-config clang libclang-rt-14-dev
  libssl-dev openssl liburing-dev libhiredis-dev libyaml-dev python3
  redis-server redis-tools prometheus python3-yaml libmicrohttpd-dev postfix
  systemd qemu-system-x86 busybox-static
  libevent-2.1-7 libdb5.3 libgnutls30 libgnutls-dane0 libidn12 libnsl2 libpcre2-8-0 mount"
missing=""
for p in $packages; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "ringmail: installing:$missing"
    apt-get update -qq
    # postfix is here for the probe tests, which run private instances on
    # loopback: "No configuration" keeps the package from writing a system
    # main.cf and starting a server on port 25.
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
    # prometheus is here only for promtool (tests/deploy): do not leave the
    # server Debian starts on :9090 running on a machine that runs tests.
    # The same for the system postfix: the tests start their own instances.
    if [ -d /run/systemd/system ]; then
        case " $missing " in *" prometheus "*)
            systemctl disable --now prometheus.service >/dev/null 2>&1 || true ;;
        esac
        case " $missing " in *" postfix "*)
            systemctl disable --now postfix.service >/dev/null 2>&1 || true ;;
        esac
    fi
fi
