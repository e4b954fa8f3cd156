#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# HTTP against the machine's ceiling (issue 17): ringtail's examples/hello
# and ../shared/limit (if present) under the same load from `bench/loadgen
# http` (64 keep-alive connections; DEPTHS: requests written at once per
# connection, default "1 16"), with the server's system calls counted by
# `perf stat -e raw_syscalls:sys_enter` over 4 s of each run. Prints, per
# run: answers/s, answers per server-CPU-second, system calls per answer.
# ROUNDS interleaved rounds; server on $SERVER_CPU, loadgen on $LOADGEN_CPU.
#
#   bench/syscalls.sh
#
# System calls per request depend on the load: the fewer requests a turn
# finds, the more `io_uring_enter`s per request. Compare servers within one
# run only. (Set LOAD=wrk for wrk -t1 -c64 at depth 1 instead.)
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"
command -v perf >/dev/null || die "perf not found"
read -ra depths <<< "${DEPTHS:-1 16}"
load=${LOAD:-loadgen}
if [[ ${NO_BUILD:-0} != 1 ]]; then
  (cd "$MAIN_DIR" && cargo build -q --release -p ringtail --example hello) || die "build failed"
  (cd "$BENCH_DIR" && cargo build -q --release -p loadgen) || die "build failed"
fi
limit_src=$MAIN_DIR/../shared/limit
servers=(ringtail)
if [[ -f $limit_src/Cargo.toml ]]; then
  cargo build -q --release --manifest-path "$limit_src/Cargo.toml" \
    --target-dir "$MAIN_DIR/target/limit" || die "limit did not build"
  servers+=(limit)
fi
[[ $load == wrk ]] && depths=(1)
bench_header "HTTP vs limit, load: $load"
echo "server depth round answers_per_s per_server_cpu_s syscalls_per_answer loadgen_cpu"
for d in "${depths[@]}"; do
  for ((r = 1; r <= ROUNDS; r++)); do
    for s in "${servers[@]}"; do
      p=$(free_port)
      case $s in
        ringtail) server_start "$s" "$p" "$MAIN_DIR/target/release/examples/hello" "127.0.0.1:$p" ;;
        limit) server_start "$s" "$p" "$MAIN_DIR/target/limit/release/limit" http "$p" ;;
      esac
      (sleep 2; perf stat -x, -e raw_syscalls:sys_enter -p "$SERVER_PID" -- sleep 4 \
        2> "$LIB_TMP/perf.out" > /dev/null) &
      perf_pid=$!
      if [[ $load == wrk ]]; then
        out=$(taskset -c "$LOADGEN_CPU" wrk -t1 -c64 -d7s "http://127.0.0.1:$p/hello")
        rps=$(awk '/Requests\/sec/ { print $2 }' <<< "$out")
        percpu=-; lcpu=-
      else
        out=$(taskset -c "$LOADGEN_CPU" "$BENCH_DIR/target/release/loadgen" http \
          --url "http://127.0.0.1:$p/hello" --conns 64 --depth "$d" --duration 6 \
          --warmup 1 --server-pid "$SERVER_PID") || die "loadgen failed against $s"
        rps=$(field answers_per_s "$out")
        percpu=$(field answers_per_server_cpu_s "$out")
        lcpu=$(field loadgen_cpu "$out")
      fi
      wait "$perf_pid"
      calls=$(awk -F, '/raw_syscalls/ { print $1 }' "$LIB_TMP/perf.out")
      server_stop "$SERVER_PID"
      awk -v s="$s" -v d="$d" -v r="$r" -v rps="$rps" -v pc="$percpu" -v c="$calls" -v l="$lcpu" \
        'BEGIN { printf "%s %d %d %.0f %s %.3f %s\n", s, d, r, rps, pc, c / 4 / rps, l }'
    done
  done
done
