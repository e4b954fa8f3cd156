#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# HTTP hello-world: ringtail's `examples/hello.rs` vs hyper 1 (tokio
# current-thread), may_minihttp (one may worker) and nginx (one worker,
# `return 200`), all answering GET /hello with 200 "Hello, World!"; and
# `limit` (../shared/limit's `http` mode: the machine's ceiling, not a peer
# — it counts request terminators and answers a fixed 58-byte response,
# no parsing, no Date, no limits) when LIMIT_DIR [../shared/limit] holds it.
# Two more ringtail columns: `serve` (`ringtail serve --threads 1
# --access-log false`: the product's own binary, whose /hello answers the
# same as the example) and `serve_log` (the same with its default access
# log on, written to a file by its own thread: `--access-log-file`), so the
# table says what the access log costs.
#
#   bench/http.sh [WORKLOAD…]     WORKLOAD: http_hello, http_pipelined16
#                                 (default both)
#
# Settings come from the environment (see bench/lib.sh): ROUNDS [3],
# DURATION [8] s, WARMUP [1] s, CONNS [64], QUICK=1, RESULTS_TSV,
# MAX_OTHER_CPU, RETRIES; SERVERS (default "ringtail hyper may_minihttp
# nginx limit") picks servers; NO_BUILD=1 skips the build (bench/run builds
# once); LOAD [loadgen] picks the load generator: `loadgen` (bench/loadgen
# http: one thread on io_uring-free epoll, every answer checked — status
# 200 and its Content-Length — and able to keep more in flight than a
# server answers) or `wrk` (wrk -t1 with bench/wrk.lua; it saturates its
# core before the fastest servers do, see bench/README.md).
#
# Rows:
#   http_hello        keep-alive, CONNS connections, one request in flight
#                     per connection (req/s)
#   http_pipelined16  the same with 16 requests written at once per
#                     connection; the value is answers per second
#
# Every server is checked first: status and body with curl, and 3 batches
# of 16 pipelined requests answered by exactly 16 correct responses each.
# Then per workload ROUNDS interleaved rounds (ringtail, hyper, …,
# ringtail, …); servers pinned to CPU $SERVER_CPU, wrk to $LOADGEN_CPU.
# One TSV line per run goes to RESULTS_TSV (format: bench/lib.sh emit_tsv).
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

workloads=("$@")
((${#workloads[@]})) || workloads=(http_hello http_pipelined16)
# SERVERS may name servers of other scripts (bench/run passes one list to
# all): this script takes the ones it has, and does nothing without any.
default_servers="ringtail serve serve_log hyper may_minihttp nginx"
[[ -f $LIMIT_DIR/Cargo.toml ]] && default_servers+=" limit"
load=${LOAD:-loadgen}
[[ $load == loadgen || $load == wrk ]] || die "LOAD is loadgen or wrk, not $load"
read -ra asked <<< "${SERVERS:-$default_servers}"
servers=()
for s in "${asked[@]}"; do
  case $s in
    ringtail | serve | serve_log | hyper | may_minihttp | nginx) servers+=("$s") ;;
    limit)
      if [[ -f $LIMIT_DIR/Cargo.toml ]]; then servers+=("$s"); else log "no $LIMIT_DIR: limit skipped"; fi ;;
    *) log "no server $s in $(basename "$0"); skipped" ;;
  esac
done
if ((${#servers[@]} == 0)); then log "none of SERVERS=${SERVERS:-} here; nothing to do"; exit 0; fi
for w in "${workloads[@]}"; do
  [[ $w == http_hello || $w == http_pipelined16 ]] || die "unknown workload $w"
done

if [[ ${NO_BUILD:-0} != 1 ]]; then
  log "building (release)"
  (cd "$MAIN_DIR" && cargo build -q --release -p ringtail --bin ringtail --example hello)
  (cd "$BENCH_DIR" && cargo build -q --release -p hyper_hello -p may_minihttp_hello -p loadgen)
fi
[[ " ${servers[*]} " == *" limit "* ]] && limit_build
loadgen=$BENCH_DIR/target/release/loadgen
if [[ $load == wrk ]]; then
  command -v wrk >/dev/null || die "wrk not found (apt-get install wrk; bench/run installs it)"
else
  [[ -x $loadgen ]] || die "no $loadgen (build the bench workspace: cd bench && cargo build --release -p loadgen)"
fi

# start SERVER: starts it on a fresh port; sets pid[SERVER], port[SERVER].
declare -A pid port
start() {
  local s=$1 p
  p=$(free_port)
  case $s in
    ringtail) server_start "$s" "$p" "$MAIN_DIR/target/release/examples/hello" "127.0.0.1:$p" ;;
    hyper) server_start "$s" "$p" "$BENCH_DIR/target/release/hyper_hello" "127.0.0.1:$p" ;;
    may_minihttp) server_start "$s" "$p" "$BENCH_DIR/target/release/may_minihttp_hello" "127.0.0.1:$p" ;;
    nginx) nginx_start "$p" ;;
    limit) server_start "$s" "$p" "$limit_bin" http "$p" ;;
    serve | serve_log)
      local logging=(--access-log false)
      [[ $s == serve_log ]] && logging=(--access-log true --access-log-file "$LIB_TMP/access-$p.log")
      server_start "$s" "$p" "$MAIN_DIR/target/release/ringtail" serve --threads 1 \
        --addr "127.0.0.1:$p" --upload-dir "$LIB_TMP/uploads-$p" "${logging[@]}" ;;
    *) die "unknown server $s" ;;
  esac
  pid[$s]=$SERVER_PID
  port[$s]=$p
}

# check SERVER: a GET answered 200 "Hello, World!", and pipelining answered
# in full and in order.
check() {
  local s=$1 url="http://127.0.0.1:${port[$1]}/hello" out
  out=$(curl -s --max-time 5 -w ' %{http_code}' "$url") || die "$s: no answer at $url"
  [[ $out == "Hello, World! 200" ]] || die "$s: unexpected answer at $url: $out"
  timeout 20 python3 - "${port[$s]}" <<'PY' || die "$s: pipelining check failed"
import socket, sys
port, depth = int(sys.argv[1]), 16
s = socket.create_connection(("127.0.0.1", port), timeout=5)
batch = b"GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" * depth
for _ in range(3):
    s.sendall(batch)
    buf, n = b"", 0
    while n < depth:
        end = buf.find(b"\r\n\r\n")
        if end >= 0:
            lines = buf[:end].decode("latin-1").split("\r\n")
            length = [int(l.split(":", 1)[1]) for l in lines if l.lower().startswith("content-length:")]
            assert lines[0].split()[1] == "200" and length, lines
            if len(buf) >= end + 4 + length[0]:
                assert buf[end + 4:end + 4 + length[0]] == b"Hello, World!"
                buf, n = buf[end + 4 + length[0]:], n + 1
                continue
        data = s.recv(65536)
        assert data, f"connection closed after {n} of {depth} answers"
        buf += data
    assert not buf, f"more than {depth} answers: {buf[:80]!r}"
PY
}

bench_header
# loadgen_measure PID URL DEPTH: one bench/loadgen http run; loadgen
# measures the server's CPU and the rest of the machine's over its own
# counting window (after its warm-up). Repeated while disturbed (see
# bench/lib.sh measure_run). Sets REQUESTS, RATE, P50, P99 (per batch of
# DEPTH requests), PER_CPU, and M_SERVER_CPU, M_OTHER_CPU, GEN_CPU.
loadgen_measure() {
  local pid=$1 url=$2 depth=$3 out try tree
  # loadgen reads one process's CPU: for nginx (a master and one worker)
  # that is the worker, which does all the work.
  mapfile -t tree < <(proc_tree "$pid")
  ((${#tree[@]} == 2)) && pid=${tree[1]}
  for ((try = 0; try <= RETRIES; try++)); do
    out=$(timeout $((DURATION + WARMUP + 30)) taskset -c "$LOADGEN_CPU" "$loadgen" http \
      --url "$url" --conns "$CONNS" --depth "$depth" --duration "$DURATION" --warmup "$WARMUP" \
      --server-pid "$pid") || die "loadgen failed against $url"
    disturbed "$(field other_cpu "$out")" || break
    log "disturbed, try $((try + 1))/$((RETRIES + 1)): $out"
    if ((try < RETRIES)); then sleep 5; fi
  done
  REQUESTS=$(field answers "$out"); RATE=$(field answers_per_s "$out")
  P50=$(field p50_us "$out"); P99=$(field p99_us "$out")
  PER_CPU=$(field answers_per_server_cpu_s "$out")
  M_SERVER_CPU=$(field server_cpu "$out"); M_OTHER_CPU=$(field other_cpu "$out")
  GEN_CPU=$(field loadgen_cpu "$out")
}

log "servers: ${servers[*]}; load: $load; $CONNS connections, ${DURATION}s per run (+${WARMUP}s warm-up), $ROUNDS interleaved rounds"
for s in "${servers[@]}"; do start "$s"; check "$s"; done

echo "workload round server req_per_s p50_us p99_us server_cpu load_cpu req_per_server_cpu_s other_cpu"
for w in "${workloads[@]}"; do
  depth=1
  [[ $w == http_pipelined16 ]] && depth=16
  for round in $(seq "$ROUNDS"); do
    for s in "${servers[@]}"; do
      url="http://127.0.0.1:${port[$s]}/hello"
      if [[ $load == wrk ]]; then
        wrk_measure "${pid[$s]}" "$url" "$depth"
        rate=$(field req_per_s "$WRK_OUT")
        p50=$(field p50_us "$WRK_OUT"); p99=$(field p99_us "$WRK_OUT")
        per_cpu=$(div "$(field requests "$WRK_OUT")" "$M_SERVER_CPU_S")
        gen_cpu=$(div "$M_GEN_CPU_S" "$M_SECS" %.2f)
      else
        loadgen_measure "${pid[$s]}" "$url" "$depth"
        rate=$RATE p50=$P50 p99=$P99 per_cpu=$PER_CPU gen_cpu=$GEN_CPU
      fi
      # Latency under pipelining is per batch of 16 (and wrk's
      # coordinated-omission correction assumes one answer per write): not
      # comparable with depth 1, so not recorded.
      ((depth == 1)) || { p50=-; p99=-; }
      echo "$w $round $s $rate $p50 $p99 $M_SERVER_CPU $gen_cpu $per_cpu $M_OTHER_CPU"
      emit_tsv "$w" "$s" "$round" "$rate" "$M_SERVER_CPU" "$per_cpu" "$p50" "$p99" "$M_OTHER_CPU"
    done
  done
done
for s in "${servers[@]}"; do server_stop "${pid[$s]}"; done

if ((LIB_OWN_RESULTS)); then echo; results_tables "$RESULTS_TSV"; fi
