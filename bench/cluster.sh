#!/usr/bin/env bash
# Broadcast across ringtail processes through Redis (issue 15): deliveries/s
# and publish → delivery latency for 1,000 receivers of `/ws/broadcast`,
#   single   one `ringtail serve` (no --cluster): every receiver on it;
#   cluster  two `ringtail serve --cluster`: receivers split over both, the
#            publisher on the first (half the deliveries cross Redis).
# Both ringtail processes run one loop on CPU 0 (SERVER_CPU); the load
# generator and redis-server share CPU 1 (LOADGEN_CPU). ROUNDS [3]
# interleaved rounds of DURATION [8] s after WARMUP [1] s; each line gives
# the CPU seconds used per process in the counted window.
#
#   bench/cluster.sh
#   ROUNDS=1 DURATION=3 bench/cluster.sh     # a smoke run
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
ROUNDS=${ROUNDS:-3} DURATION=${DURATION:-8} WARMUP=${WARMUP:-1}
SERVER_CPU=${SERVER_CPU:-0} LOADGEN_CPU=${LOADGEN_CPU:-1}
RECEIVERS=${RECEIVERS:-1000} SIZE=${SIZE:-64} WINDOW=${WINDOW:-64}
command -v redis-server >/dev/null || { echo "redis-server missing (apt install redis-server)" >&2; exit 1; }
if [[ -z "${NO_BUILD:-}" ]]; then
    (cd "$root" && cargo build -q --release -p ringtail)
    (cd "$here" && cargo build -q --release -p loadgen)
fi
rt="$root/target/release/ringtail"
lg="$here/target/release/loadgen"
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cpu_s() { awk '{print ($14+$15)/100}' "/proc/$1/stat"; }

rport=$(free_port)
taskset -c "$LOADGEN_CPU" redis-server --port "$rport" --bind 127.0.0.1 --save "" --appendonly no \
    --loglevel warning >/dev/null &
redis_pid=$!; pids+=("$redis_pid")
sleep 0.3

serve() { # NAME [--cluster URL]: starts one loop on SERVER_CPU; prints "PID ADDR"
    local log="$work/$1.log"; shift
    taskset -c "$SERVER_CPU" "$rt" serve --addr 127.0.0.1:0 --threads 1 --access-log false \
        --upload-dir "$work/up" "$@" >"$log" 2>&1 &
    local pid=$!
    for _ in $(seq 100); do
        grep -q "serving HTTP" "$log" && break
        sleep 0.05
    done
    echo "$pid $(grep -o 'http://[0-9.:]*' "$log" | head -1 | sed 's#http://##')"
}

read -r s_pid s_addr < <(serve single)
pids+=("$s_pid")
read -r a_pid a_addr < <(serve a --cluster "redis://127.0.0.1:$rport")
read -r b_pid b_addr < <(serve b --cluster "redis://127.0.0.1:$rport")
pids+=("$a_pid" "$b_pid")
sleep 1

echo "# $(date -u '+%F %T UTC') · $(uname -r) · $(cd "$root" && git rev-parse --short HEAD) · $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "# receivers=$RECEIVERS size=$SIZE window=$WINDOW duration=$DURATION"
run() { # NAME URL [URL2]
    local name=$1 url=$2 url2=${3:-}
    local c0=() c1=() p
    for p in "$s_pid" "$a_pid" "$b_pid" "$redis_pid"; do c0+=("$(cpu_s "$p")"); done
    local extra=()
    [[ -n "$url2" ]] && extra=(--url2 "ws://$url2/ws/broadcast")
    local out
    out=$(taskset -c "$LOADGEN_CPU" "$lg" broadcast --url "ws://$url/ws/broadcast" "${extra[@]}" \
        --receivers "$RECEIVERS" --size "$SIZE" --window "$WINDOW" --text \
        --duration "$DURATION" --warmup "$WARMUP")
    for p in "$s_pid" "$a_pid" "$b_pid" "$redis_pid"; do c1+=("$(cpu_s "$p")"); done
    local d=() i
    for i in 0 1 2 3; do d+=("$(awk -v a="${c0[$i]}" -v b="${c1[$i]}" 'BEGIN{printf "%.2f", b-a}')"); done
    echo "$name $out cpu_single=${d[0]} cpu_a=${d[1]} cpu_b=${d[2]} cpu_redis=${d[3]}"
}
for _ in $(seq "$ROUNDS"); do
    run single "$s_addr"
    run cluster "$a_addr" "$b_addr"
done
echo "# cluster counters: a: $(curl -s "http://$a_addr/metrics" | grep -E '^ringtail_cluster_(published|received|dropped)_total' | tr '\n' ' ')"
