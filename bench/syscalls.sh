#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# System calls per keep-alive request (issue 17's row): ringtail's
# examples/hello and ../shared/limit (the machine's ceiling, if present)
# under the same load — wrk, 64 connections, one request in flight each —
# with the server's system calls counted by `perf stat -e
# raw_syscalls:sys_enter` over 5 s of the run; requests from wrk over the
# same run (requests/s × 5 s). ROUNDS interleaved rounds; server on
# $SERVER_CPU, wrk on $LOADGEN_CPU.
#
#   bench/syscalls.sh
#
# The figure depends on the load: wrk (epoll, one request per connection in
# flight) leaves the server idle between small batches, so each turn
# carries few completions; a load generator that keeps more in flight gives
# fewer calls per request. Compare servers within one run only.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"
command -v perf >/dev/null || die "perf not found"
command -v wrk >/dev/null || die "wrk not found"
if [[ ${NO_BUILD:-0} != 1 ]]; then
  (cd "$MAIN_DIR" && cargo build -q --release -p ringtail --example hello) || die "build failed"
fi
limit_src=$MAIN_DIR/../shared/limit
servers=(ringtail)
if [[ -f $limit_src/Cargo.toml ]]; then
  cargo build -q --release --manifest-path "$limit_src/Cargo.toml" \
    --target-dir "$MAIN_DIR/target/limit" || die "limit did not build"
  servers+=(limit)
fi
bench_header "syscalls per keep-alive request"
echo "server round requests_per_s syscalls_per_s syscalls_per_request"
for ((r = 1; r <= ROUNDS; r++)); do
  for s in "${servers[@]}"; do
    p=$(free_port)
    case $s in
      ringtail) server_start "$s" "$p" "$MAIN_DIR/target/release/examples/hello" "127.0.0.1:$p" ;;
      limit) server_start "$s" "$p" "$MAIN_DIR/target/limit/release/limit" http "$p" ;;
    esac
    taskset -c "$LOADGEN_CPU" wrk -t1 -c64 -d7s "http://127.0.0.1:$p/hello" > "$LIB_TMP/wrk.out" &
    wrk_pid=$!
    sleep 1
    calls=$(perf stat -x, -e raw_syscalls:sys_enter -p "$SERVER_PID" -- sleep 5 2>&1 >/dev/null \
      | awk -F, '/raw_syscalls/ { print $1 }')
    wait "$wrk_pid"
    rps=$(awk '/Requests\/sec/ { print $2 }' "$LIB_TMP/wrk.out")
    server_stop "$SERVER_PID"
    awk -v s="$s" -v r="$r" -v rps="$rps" -v c="$calls" \
      'BEGIN { printf "%s %d %.0f %.0f %.3f\n", s, r, rps, c / 5, c / 5 / rps }'
  done
done
