#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Memory per idle TLS connection: one `ringtail serve --threads 1` with an
# HTTPS and a plain listener; N TLS connections (default 10,000; Python's
# ssl, TLS 1.3) are opened by bench/tls_idle.py, each makes one keep-alive
# GET and is held idle, and the server's VmRSS growth divided by N is
# printed; then the same with N plain connections to a fresh server.
#
#   bench/tls_idle.sh [N]
#
# The certificate is made at run time (openssl, ECDSA P-256) and removed at
# exit. Server on $SERVER_CPU, client on $LOADGEN_CPU.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"
n=${1:-10000}
(($(ulimit -n) >= n + 100)) || die "descriptor limit $(ulimit -n) is below $((n + 100))"
RINGTAIL=${RINGTAIL:-$MAIN_DIR/target/release/ringtail}
if [[ ${NO_BUILD:-0} != 1 ]]; then
  (cd "$MAIN_DIR" && cargo build -q --release --bins) || die "build failed"
fi
tls=$LIB_TMP/tls
mkdir -p "$tls" "$LIB_TMP/up"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -keyout "$tls/key.pem" -out "$tls/cert.pem" -days 2 -subj /CN=localhost \
  -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" 2>/dev/null \
  || die "openssl could not make the certificate"
bench_header "tls_idle n=$n"
for mode in tls plain; do
  # A fresh server for each, so neither set's memory counts in the other.
  tport=$(free_port)
  hport=$(free_port)
  server_start "ringtail-$mode" "$tport" "$RINGTAIL" serve --threads 1 \
    --addr "127.0.0.1:$hport" --tls-addr "127.0.0.1:$tport" \
    --tls-cert "$tls/cert.pem" --tls-key "$tls/key.pem" \
    --upload-dir "$LIB_TMP/up" --access-log false --log-level warn
  port=$tport
  [[ $mode == plain ]] && port=$hport
  taskset -c "$LOADGEN_CPU" python3 "$(dirname "$0")/tls_idle.py" \
    "$SERVER_PID" "$port" "$mode" "$tls/cert.pem" "$n"
  server_stop "$SERVER_PID"
done
