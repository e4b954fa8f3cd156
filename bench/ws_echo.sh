#!/usr/bin/env bash
# WebSocket echo and idle memory: ringtail's `ws_echo` example vs
# tokio-tungstenite and fastwebsockets (each single-threaded), driven by our
# load generator (bench/loadgen). Servers pinned to CPU 0, loadgen to CPU 1.
#
#   bench/ws_echo.sh [conns=64] [seconds=8] [rounds=3] [idle_conns=10000]
#
# Echo: for 32 B and 16 KiB messages, `rounds` interleaved rounds
# (ringtail, tokio-tungstenite, fastwebsockets, ringtail, …) of `seconds`
# each (+1 s warm-up), closed loop over `conns` connections. Prints every run
# and then a table of medians: msgs/s, p50/p99 round trip, server and loadgen
# CPU (fraction of a core) and messages per server-CPU-second, with ratios
# to ringtail. Idle: each server started fresh, `idle_conns` connections
# opened and held, server VmRSS growth per connection.
#
# A run during which the rest of the machine used more than MAX_OTHER_CPU
# (default 0.10) of a core is repeated after 5 s, up to RETRIES (default 3)
# times; the last try is kept either way (its other_cpu column shows it).
#
# Bounded: every loadgen run is time-limited (and wrapped in `timeout`);
# every server is killed on exit. Needs taskset (util-linux) and a hard
# descriptor limit above idle_conns + 64 (`ulimit -Hn`).
set -euo pipefail
cd "$(dirname "$0")"
bench=$PWD
main=$(cd .. && pwd)
conns=${1:-64}; secs=${2:-8}; rounds=${3:-3}; idle_conns=${4:-10000}
max_other=${MAX_OTHER_CPU:-0.10}; retries=${RETRIES:-3}
sizes=(32 16384)
names=(ringtail tokio-tungstenite fastwebsockets)
ports=(19101 19102 19103)

# Descriptors: the servers inherit this limit (the loadgen raises its own).
ulimit -n "$(ulimit -Hn)"
if (( $(ulimit -n) < idle_conns + 64 )); then
  echo "descriptor limit $(ulimit -n) is below $idle_conns + 64; lower idle_conns" >&2
  exit 1
fi

echo "# building (release)" >&2
(cd "$main" && cargo build -q --release -p ringtail --example ws_echo)
cargo build -q --release --workspace
bins=("$main/target/release/examples/ws_echo"
      "$bench/target/release/tokio_tungstenite_server"
      "$bench/target/release/fastwebsockets_server")
paths=(/ws/echo / /)
loadgen=$bench/target/release/loadgen

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

# start_server INDEX PORT: starts server INDEX pinned to CPU 0, waits until
# it accepts connections; sets $spid. (Each phase uses its own ports: a
# killed io_uring server's listener is released a moment after it exits.)
start_server() {
  local i=$1 port=$2
  taskset -c 0 "${bins[$i]}" "127.0.0.1:$port" >/dev/null 2>&1 &
  spid=$!
  pids+=("$spid")
  for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  echo "${names[$i]} did not start" >&2
  exit 1
}
stop_server() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

# field KEY LINE: the value of KEY=… in a loadgen output line.
field() { tr ' ' '\n' <<< "$2" | awk -F= -v k="$1" '$1 == k { print $2 }'; }
median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

results=$(mktemp)
trap 'cleanup; rm -f "$results"' EXIT

echo "# $(date -u '+%Y-%m-%d %H:%M:%S UTC') · Linux $(uname -r) · $(lscpu | sed -n 's/^Model name: *//p') · $(nproc) CPUs"
echo "# ringtail $(git -C "$main" rev-parse --short HEAD)$(git -C "$main" diff --quiet HEAD -- crates examples || echo ' (+ uncommitted changes)') · load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"

declare -A spids
for i in "${!names[@]}"; do start_server "$i" "${ports[$i]}"; spids[$i]=$spid; done

echo "# echo: $conns connections, ${secs}s per run (+1s warm-up), $rounds interleaved rounds"
echo "round size server msgs_per_s p50_us p99_us server_cpu loadgen_cpu msgs_per_server_cpu_s other_cpu"
for size in "${sizes[@]}"; do
  for round in $(seq "$rounds"); do
    for i in "${!names[@]}"; do
      # A run disturbed by other work on the machine (other_cpu above
      # MAX_OTHER_CPU) is repeated, up to RETRIES times, after a pause.
      for try in $(seq 0 "$retries"); do
        out=$(timeout $((secs + 60)) taskset -c 1 "$loadgen" echo \
          --url "ws://127.0.0.1:${ports[$i]}${paths[$i]}" --conns "$conns" --size "$size" \
          --duration "$secs" --warmup 1 --server-pid "${spids[$i]}")
        awk -v o="$(field other_cpu "$out")" -v m="$max_other" 'BEGIN { exit !(o > m) }' || break
        echo "# disturbed, try $((try + 1))/$((retries + 1)): $out" >&2
        if (( try < retries )); then sleep 5; fi
      done
      line="$round $size ${names[$i]}"
      for k in msgs_per_s p50_us p99_us server_cpu loadgen_cpu msgs_per_server_cpu_s other_cpu; do
        line+=" $(field "$k" "$out")"
      done
      echo "$line" | tee -a "$results"
    done
  done
done
for i in "${!names[@]}"; do stop_server "${spids[$i]}"; done

echo
echo "# idle: $idle_conns connections per server (fresh server each)"
echo "server rss_before_kib rss_mid_kib rss_after_kib bytes_per_conn marginal_bytes_per_conn connect_secs"
declare -A idle_bytes idle_marginal
for i in "${!names[@]}"; do
  port=$((ports[i] + 10))
  start_server "$i" "$port"
  sleep 0.5
  out=$(timeout 300 taskset -c 1 "$loadgen" idle \
    --url "ws://127.0.0.1:$port${paths[$i]}" --conns "$idle_conns" \
    --server-pid "$spid" --settle 2 --hold 1)
  idle_bytes[$i]=$(field bytes_per_conn "$out")
  idle_marginal[$i]=$(field marginal_bytes_per_conn "$out")
  line="${names[$i]}"
  for k in rss_before_kib rss_mid_kib rss_after_kib bytes_per_conn marginal_bytes_per_conn connect_secs; do
    line+=" $(field "$k" "$out")"
  done
  echo "$line"
  stop_server "$spid"
done

echo "# load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "# medians over $rounds rounds; (×) = ratio to ringtail"
printf "%-24s" "workload"
for n in "${names[@]}"; do printf " %21s" "$n"; done
echo
ratio() { awk -v m="$1" -v b="$2" 'BEGIN { if (b + 0 == 0) print "-"; else printf "%.2f×", m / b }'; }
row() { # row LABEL SIZE COLUMN FORMAT: medians of COLUMN (awk field) per server
  local label=$1 size=$2 col=$3 fmt=$4 noratio=${5:-} base="" m
  printf "%-24s" "$label"
  for n in "${names[@]}"; do
    m=$(awk -v s="$size" -v n="$n" -v c="$col" '$2 == s && $3 == n { print $c }' "$results" | median)
    [[ -z $base ]] && base=$m
    [[ -n $noratio ]] && base=0
    printf " %12s (%6s)" "$(printf "$fmt" "$m")" "$(ratio "$m" "$base")"
  done
  echo
}
for size in "${sizes[@]}"; do
  row "echo ${size}B msgs/s" "$size" 4 "%.0f"
  row "echo ${size}B p50 µs" "$size" 5 "%.1f"
  row "echo ${size}B p99 µs" "$size" 6 "%.1f"
  row "echo ${size}B srv cpu" "$size" 7 "%.2f"
  row "echo ${size}B gen cpu" "$size" 8 "%.2f"
  row "echo ${size}B msg/cpu-s" "$size" 9 "%.0f"
  row "echo ${size}B other cpu" "$size" 10 "%.2f" noratio
done
printf "%-24s" "idle B/conn @$idle_conns"
for i in "${!names[@]}"; do
  printf " %12s (%6s)" "${idle_bytes[$i]}" "$(ratio "${idle_bytes[$i]}" "${idle_bytes[0]}")"
done
echo
printf "%-24s" "  marginal (2nd half)"
for i in "${!names[@]}"; do
  printf " %12s (%6s)" "${idle_marginal[$i]}" "$(ratio "${idle_marginal[$i]}" "${idle_marginal[0]}")"
done
echo
