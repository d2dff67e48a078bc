#!/bin/sh
# The pure layers stay pure (engine/CMakeLists.txt):
#  1. a source built with their flags that includes a TLS header fails to build,
#     and says why;
#  2. the built protocol and job libraries reference no symbol of OpenSSL,
#     liburing, hiredis, libyaml or libmicrohttpd, nor any socket call.
# Usage: test_layering.sh BUILD_DIR PROTOCOL_LIB JOB_LIB
set -u
build=$1; protocol=$2; job=$3
fail=0

out=$(cmake --build "$build" --target layering_forbidden 2>&1)
if [ $? -eq 0 ]; then
    echo "FAIL: a pure-layer source including <openssl/evp.h> built"; fail=1
elif ! printf '%s' "$out" | grep -q 'forbidden include <openssl/evp.h>'; then
    echo "FAIL: the forbidden include failed for another reason:"; printf '%s\n' "$out" | tail -20; fail=1
else
    echo "ok: <openssl/evp.h> in a pure layer fails the build"
fi

for lib in "$protocol" "$job"; do
    bad=$(nm -u "$lib" | awk '{print $NF}' |
          grep -E '^(SSL_|EVP_|OPENSSL_|CRYPTO_|X509_|BIO_|ERR_|io_uring_|__io_uring|redis|yaml_|MHD_|socket$|connect$|getaddrinfo$|send$|recv$)' |
          sort -u)
    if [ -n "$bad" ]; then
        echo "FAIL: $(basename "$lib") references: $bad"; fail=1
    else
        echo "ok: $(basename "$lib") links no TLS, io_uring, Redis, YAML, HTTP or socket symbol"
    fi
done
exit $fail
