#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# HTTP hello-world: ringtail's `examples/hello.rs` vs hyper 1 (tokio
# current-thread), may_minihttp (one may worker) and nginx (one worker,
# `return 200`), all answering GET /hello with 200 "Hello, World!".
#
#   bench/http.sh [WORKLOAD…]     WORKLOAD: http_hello, http_pipelined16
#                                 (default both)
#
# Settings come from the environment (see bench/lib.sh): ROUNDS [3],
# DURATION [8] s, WARMUP [1] s, CONNS [64], QUICK=1, RESULTS_TSV,
# MAX_OTHER_CPU, RETRIES; SERVERS (default "ringtail hyper may_minihttp
# nginx") picks servers; NO_BUILD=1 skips the build (bench/run builds once).
#
# Rows:
#   http_hello        keep-alive, CONNS connections, one request in flight
#                     per connection: `wrk -t1 -cCONNS` (req/s)
#   http_pipelined16  the same with 16 requests written at once per
#                     connection (bench/wrk.lua -- 16); the value is
#                     responses per second (wrk counts responses)
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
read -ra asked <<< "${SERVERS:-ringtail hyper may_minihttp nginx}"
servers=()
for s in "${asked[@]}"; do
  case $s in
    ringtail | hyper | may_minihttp | nginx) servers+=("$s") ;;
    *) log "no server $s in $(basename "$0"); skipped" ;;
  esac
done
if ((${#servers[@]} == 0)); then log "none of SERVERS=${SERVERS:-} here; nothing to do"; exit 0; fi
for w in "${workloads[@]}"; do
  [[ $w == http_hello || $w == http_pipelined16 ]] || die "unknown workload $w"
done

if [[ ${NO_BUILD:-0} != 1 ]]; then
  log "building (release)"
  (cd "$MAIN_DIR" && cargo build -q --release -p ringtail --example hello)
  (cd "$BENCH_DIR" && cargo build -q --release -p hyper_hello -p may_minihttp_hello)
fi
command -v wrk >/dev/null || die "wrk not found (apt-get install wrk; bench/run installs it)"

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
log "servers: ${servers[*]}; $CONNS connections, ${DURATION}s per run (+${WARMUP}s warm-up), $ROUNDS interleaved rounds"
for s in "${servers[@]}"; do start "$s"; check "$s"; done

echo "workload round server req_per_s p50_us p99_us server_cpu wrk_cpu req_per_server_cpu_s other_cpu"
for w in "${workloads[@]}"; do
  depth=1
  [[ $w == http_pipelined16 ]] && depth=16
  for round in $(seq "$ROUNDS"); do
    for s in "${servers[@]}"; do
      wrk_measure "${pid[$s]}" "http://127.0.0.1:${port[$s]}/hello" "$depth"
      requests=$(field requests "$WRK_OUT")
      rate=$(field req_per_s "$WRK_OUT")
      p50=$(field p50_us "$WRK_OUT"); p99=$(field p99_us "$WRK_OUT")
      # wrk's latency under pipelining is per batch of 16 and its
      # coordinated-omission correction assumes one answer per write: not
      # comparable, so not recorded.
      ((depth == 1)) || { p50=-; p99=-; }
      per_cpu=$(div "$requests" "$M_SERVER_CPU_S")
      gen_cpu=$(div "$M_GEN_CPU_S" "$M_SECS" %.2f)
      echo "$w $round $s $rate $p50 $p99 $M_SERVER_CPU $gen_cpu $per_cpu $M_OTHER_CPU"
      emit_tsv "$w" "$s" "$round" "$rate" "$M_SERVER_CPU" "$per_cpu" "$p50" "$p99" "$M_OTHER_CPU"
    done
  done
done
for s in "${servers[@]}"; do server_stop "${pid[$s]}"; done

if ((LIB_OWN_RESULTS)); then echo; results_tables "$RESULTS_TSV"; fi
