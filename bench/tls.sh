#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# TLS: `ringtail serve` with an HTTPS listener (--tls-cert/--tls-key/
# --tls-addr, rustls + aws-lc-rs) vs nginx (`listen … ssl`, OpenSSL, one
# worker), the same ECDSA P-256 certificate and the same files, driven by
# bench/loadgen's HTTPS modes (rustls client, see bench/loadgen/src/tls.rs).
#
#   bench/tls.sh [WORKLOAD…]     WORKLOAD: tls_handshake, tls_hello, tls_10m
#                                (default all three)
#
# Settings come from the environment (see bench/lib.sh): ROUNDS [3],
# DURATION [8] s, WARMUP [1] s, CONNS [64], QUICK=1, RESULTS_TSV,
# MAX_OTHER_CPU, RETRIES, SERVER_CPU, LOADGEN_CPU; SERVERS (default
# "ringtail nginx"); NO_BUILD=1 skips the build (bench/run builds once);
# RINGTAIL (default $MAIN_DIR/target/release/ringtail) is the binary run.
#
# Rows (CONNS connections at a time; client: TLS 1.3 only, X25519, AES-128-GCM
# first as browsers offer, ALPN http/1.1, SNI localhost, never resuming):
#   tls_handshake  a new connection per request: connect, full TLS 1.3
#                  handshake (ECDSA P-256 certificate), GET /hello with
#                  `Connection: close`, read the answer, wait for the
#                  server to close, next connection (handshakes/s)
#   tls_hello      keep-alive GET /hello, one request in flight per
#                  connection (req/s)
#   tls_10m        keep-alive GET of one 10 MiB file over and over (MB/s =
#                  10^6 body bytes received per second in the window)
#
# The certificate is made at run time with the openssl CLI (self-signed
# ECDSA P-256, SAN DNS:localhost and IP:127.0.0.1, CA:FALSE, valid 2 days) in
# the script's temporary directory, removed at exit; nothing is committed.
# Every server is checked first: /hello and the 10 MiB file over HTTPS with
# curl --cacert (certificate verified, body byte for byte), and what
# `openssl s_client -tls1_3` negotiates (protocol, cipher, group, session
# tickets sent) is logged, as is a TLS 1.2 handshake. Then per workload ROUNDS interleaved rounds
# (ringtail, nginx, ringtail, …); servers pinned to CPU $SERVER_CPU, the
# load generator to $LOADGEN_CPU. The load generator measures server CPU
# (all processes of the server: nginx's master and worker), its own and
# the rest of the machine's over exactly its counted window (after the
# warm-up); a run whose other_cpu is above MAX_OTHER_CPU is repeated after
# 5 s, up to RETRIES times. One TSV line per run goes to RESULTS_TSV
# (format: bench/lib.sh emit_tsv); the script ends with its own table
# (values, per server CPU second, ratios) of the TLS rows.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

workloads=("$@")
((${#workloads[@]})) || workloads=(tls_handshake tls_hello tls_10m)
read -ra asked <<< "${SERVERS:-ringtail nginx}"
servers=()
for s in "${asked[@]}"; do
  case $s in
    ringtail | nginx) servers+=("$s") ;;
    *) log "no server $s in $(basename "$0"); skipped" ;;
  esac
done
if ((${#servers[@]} == 0)); then log "none of SERVERS=${SERVERS:-} here; nothing to do"; exit 0; fi
for w in "${workloads[@]}"; do
  case $w in tls_handshake | tls_hello | tls_10m) ;; *) die "unknown workload $w" ;; esac
done

RINGTAIL=${RINGTAIL:-$MAIN_DIR/target/release/ringtail}
LOADGEN=$BENCH_DIR/target/release/loadgen
if [[ ${NO_BUILD:-0} != 1 ]]; then
  log "building (release)"
  (cd "$MAIN_DIR" && cargo build -q --release -p ringtail --bin ringtail)
  (cd "$BENCH_DIR" && cargo build -q --release -p loadgen)
fi
command -v openssl >/dev/null || die "openssl not found (apt-get install openssl; bench/run installs it)"
command -v curl >/dev/null || die "curl not found"
if [[ " ${servers[*]} " == *" ringtail "* ]] \
  && ! "$RINGTAIL" serve --help 2>/dev/null | grep -q -- --tls-cert; then
  die "$RINGTAIL serve has no --tls-cert option (TLS not built into this ringtail yet)"
fi

# ----- certificate and files -------------------------------------------------------
tls=$LIB_TMP/tls
mkdir -p "$tls"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -keyout "$tls/key.pem" -out "$tls/cert.pem" -days 2 -subj /CN=localhost \
  -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
  -addext "basicConstraints=critical,CA:FALSE" 2>/dev/null \
  || die "openssl could not make the certificate"
chmod 644 "$tls/cert.pem" "$tls/key.pem"   # nginx reads them as root; ringtail as us
www=$LIB_TMP/www
mkdir -p "$www" "$LIB_TMP/uploads"
head -c 10485760 /dev/urandom > "$www/10m.bin"
chmod -R a+rX "$www"

declare -A pid port
start() {
  local s=$1 p
  p=$(free_port)
  case $s in
    ringtail)
      # The plain HTTP listener ringtail serve always has goes on a port
      # of its own; only the HTTPS one is measured.
      server_start "$s" "$p" "$RINGTAIL" serve --threads 1 --addr "127.0.0.1:$(free_port)" \
        --tls-addr "127.0.0.1:$p" --tls-cert "$tls/cert.pem" --tls-key "$tls/key.pem" \
        --root "$www" --upload-dir "$LIB_TMP/uploads" --access-log false --log-level warn ;;
    nginx) nginx_start "$p" "$www" "$tls/cert.pem" "$tls/key.pem" ;;
    *) die "unknown server $s" ;;
  esac
  pid[$s]=$SERVER_PID
  port[$s]=$p
}

# check SERVER: /hello and the 10 MiB file over HTTPS with the certificate
# verified; logs what a TLS 1.3 and a TLS 1.2 handshake negotiate.
check() {
  local s=$1 p=${port[$1]} base out code n
  base="https://localhost:${port[$1]}"
  local -a c=(curl -s --max-time 10 --cacert "$tls/cert.pem" --resolve "localhost:$p:127.0.0.1")
  out=$("${c[@]}" -w ' %{http_code}' "$base/hello") || die "$s: no HTTPS answer at $base/hello"
  [[ $out == "Hello, World! 200" ]] || die "$s: unexpected answer at $base/hello: $out"
  for _ in 1 2; do
    code=$("${c[@]}" -o "$LIB_TMP/got" -w '%{http_code}' "$base/10m.bin") || die "$s: no answer at $base/10m.bin"
    [[ $code == 200 ]] || die "$s: status $code at $base/10m.bin"
    cmp -s "$LIB_TMP/got" "$www/10m.bin" || die "$s: wrong body at $base/10m.bin"
  done
  rm -f "$LIB_TMP/got"
  # What a TLS 1.3 handshake negotiates, and how many session tickets the
  # server sends (the load generator ignores them: it never resumes).
  out=$(printf 'GET /hello HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' \
    | timeout 10 openssl s_client -connect "127.0.0.1:$p" -servername localhost -tls1_3 \
      -CAfile "$tls/cert.pem" -verify_return_error -msg -ign_eof 2>&1) \
    || die "$s: openssl s_client -tls1_3 failed: $(tail -n 5 <<< "$out")"
  n=$(grep -c '<<< .*NewSessionTicket' <<< "$out" || true)
  log "$s: TLS 1.3: $(grep -m1 -o 'Peer signature type: .*' <<< "$out"); $(grep -m1 -o 'Negotiated TLS1.3 group: .*\|Server Temp Key: .*' <<< "$out"); $(grep -m1 -o 'Cipher is .*' <<< "$out"); $(grep -m1 -o 'Verify return code: .*' <<< "$out"); $n session tickets sent"
  out=$(timeout 10 openssl s_client -connect "127.0.0.1:$p" -servername localhost -tls1_2 \
    -CAfile "$tls/cert.pem" < /dev/null 2>&1) || true
  log "$s: TLS 1.2: $(grep -m1 -o 'Cipher is .*\|no protocols available\|alert.*' <<< "$out")"
}

# loadgen_run SERVER WORKLOAD: one measured load-generator run (warm-up
# included, inside the same process), repeated while disturbed; sets OUT.
loadgen_run() {
  local s=$1 w=$2 try
  local -a a
  case $w in
    tls_handshake) a=(tls-handshake --url "https://127.0.0.1:${port[$s]}/hello" --expect-body "Hello, World!") ;;
    tls_hello) a=(tls-get --url "https://127.0.0.1:${port[$s]}/hello" --expect-body "Hello, World!") ;;
    tls_10m) a=(tls-get --url "https://127.0.0.1:${port[$s]}/10m.bin" --expect-len 10485760) ;;
  esac
  # Every process of the server (nginx: master and worker), for CPU time.
  local pids
  pids=$(proc_tree "${pid[$s]}" | paste -sd,)
  for ((try = 0; try <= RETRIES; try++)); do
    OUT=$(timeout $((WARMUP + DURATION + 30)) taskset -c "$LOADGEN_CPU" "$LOADGEN" "${a[@]}" \
      --conns "$CONNS" --duration "$DURATION" --warmup "$WARMUP" --server-pid "$pids") \
      || die "loadgen failed against $s ($w)"
    disturbed "$(field other_cpu "$OUT")" || return 0
    log "disturbed, try $((try + 1))/$((RETRIES + 1)): $s: $OUT"
    if ((try < RETRIES)); then sleep 5; fi
  done
}

# tls_table TSV: the TLS rows of TSV as one table: per row the medians of
# both servers, their ratio (ringtail/nginx), the same per second of server
# CPU, and each server's CPU.
tls_table() {
  awk -F'\t' '
    function med(k,   n, i, j, t, a) {
      n = cnt[k]; if (n == 0) return ""
      for (i = 1; i <= n; i++) a[i] = val[k, i] + 0
      for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
      return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    function f(x) { if (x == "") return "—"; if (x >= 100) return sprintf("%.0f", x); return sprintf("%.1f", x) }
    function r(a, b) { if (a == "" || b == "" || b + 0 == 0) return "—"; return sprintf("%.2f×", a / b) }
    /^#/ || NF < 9 { next }
    $1 ~ /^tls_/ {
      for (c = 4; c <= 6; c++) if ($c != "-") { k = $1 SUBSEP $2 SUBSEP c; val[k, ++cnt[k]] = $c }
      runs[$1, $2]++; if (!($1 in seen)) { seen[$1] = 1; order[++nw] = $1 }
    }
    END {
      if (nw == 0) exit
      unit["tls_handshake"] = "handshakes/s"; unit["tls_hello"] = "req/s"; unit["tls_10m"] = "MB/s"
      print "| row | ringtail | nginx | ratio | ringtail per CPU-s | nginx per CPU-s | ratio per CPU-s | server CPU (ringtail / nginx) |"
      print "|---|---:|---:|---:|---:|---:|---:|---:|"
      for (i = 1; i <= nw; i++) {
        w = order[i]
        rv = med(w SUBSEP "ringtail" SUBSEP 4); nv = med(w SUBSEP "nginx" SUBSEP 4)
        rc = med(w SUBSEP "ringtail" SUBSEP 6); nc = med(w SUBSEP "nginx" SUBSEP 6)
        ru = med(w SUBSEP "ringtail" SUBSEP 5); nu = med(w SUBSEP "nginx" SUBSEP 5)
        printf "| %s (%s) | %s | %s | %s | %s | %s | %s | %s / %s |\n", w, unit[w], f(rv), f(nv), r(rv, nv), f(rc), f(nc), r(rc, nc), (ru == "" ? "—" : sprintf("%.2f", ru)), (nu == "" ? "—" : sprintf("%.2f", nu))
      }
      print ""
      print "Medians of the rounds; ratio = ringtail / nginx (above 1 ringtail leads)."
    }' "$1"
}

bench_header
log "servers: ${servers[*]}; $CONNS connections, ${DURATION}s per run (+${WARMUP}s warm-up), $ROUNDS interleaved rounds; $(openssl version)"
for s in "${servers[@]}"; do start "$s"; check "$s"; done

echo "workload round server value answers_per_s p50_us p99_us server_cpu loadgen_cpu value_per_server_cpu_s other_cpu"
for w in "${workloads[@]}"; do
  for round in $(seq "$ROUNDS"); do
    for s in "${servers[@]}"; do
      loadgen_run "$s" "$w"
      value=$(field answers_per_s "$OUT"); per_cpu=$(field answers_per_server_cpu_s "$OUT")
      if [[ $w == tls_10m ]]; then
        value=$(field mb_per_s "$OUT"); per_cpu=$(field mb_per_server_cpu_s "$OUT")
      fi
      echo "$w $round $s $value $(field answers_per_s "$OUT") $(field p50_us "$OUT") $(field p99_us "$OUT") $(field server_cpu "$OUT") $(field loadgen_cpu "$OUT") $per_cpu $(field other_cpu "$OUT")"
      ((round > 1)) || log "$s $w: $(field version "$OUT") $(field suite "$OUT") $(field group "$OUT") alpn=$(field alpn "$OUT")"
      emit_tsv "$w" "$s" "$round" "$value" "$(field server_cpu "$OUT")" "$per_cpu" \
        "$(field p50_us "$OUT")" "$(field p99_us "$OUT")" "$(field other_cpu "$OUT")"
    done
  done
done
for s in "${servers[@]}"; do server_stop "${pid[$s]}"; done

echo
tls_table "$RESULTS_TSV"
if ((LIB_OWN_RESULTS)); then echo; results_tables "$RESULTS_TSV"; fi
