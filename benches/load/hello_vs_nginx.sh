#!/usr/bin/env bash
# HTTP keep-alive hello-world: the `hello` example vs nginx (1 worker,
# `return 200`), interleaved rounds, server pinned to CPU 0 and wrk to CPU 1.
# Prints req/s and requests per second of server CPU for each round.
#
#   benches/load/hello_vs_nginx.sh [connections=64] [seconds=8] [rounds=3]
#
# Needs wrk, nginx and bc (apt-get install wrk nginx-light bc). Bounded:
# rounds × 2 × seconds.
set -euo pipefail
cd "$(dirname "$0")/../.."
conns=${1:-64}; secs=${2:-8}; rounds=${3:-3}
rt_port=18189; ng_port=18190
work=$(mktemp -d)
cat > "$work/nginx.conf" <<NGX
worker_processes 1;
daemon off;
error_log $work/error.log warn;
pid $work/nginx.pid;
events { worker_connections 4096; use epoll; }
http {
    access_log off;
    keepalive_requests 100000000;
    server {
        listen 127.0.0.1:$ng_port;
        location / { default_type text/plain; return 200 "Hello, World!"; }
    }
}
NGX
cargo build -q --release --example hello
taskset -c 0 target/release/examples/hello 127.0.0.1:$rt_port >/dev/null 2>&1 &
rt=$!
taskset -c 0 nginx -c "$work/nginx.conf" &
ng_master=$!
trap 'kill $rt $ng_master 2>/dev/null; rm -rf "$work"' EXIT
sleep 1
ng=$(pgrep -P $ng_master | head -1)
cpu() { awk '{print $14+$15}' /proc/$1/stat; }
echo "round server req/s server_cpu_s req_per_cpu_s"
for round in $(seq "$rounds"); do
  for t in ringtail:$rt_port:$rt nginx:$ng_port:$ng; do
    IFS=: read -r name port pid <<< "$t"
    c0=$(cpu "$pid")
    out=$(taskset -c 1 wrk -t1 -c"$conns" -d"${secs}s" "http://127.0.0.1:$port/hello")
    c1=$(cpu "$pid")
    rps=$(awk '/Requests\/sec/ {print $2}' <<< "$out")
    total=$(awk '/requests in/ {print $1}' <<< "$out")
    cpu_s=$(echo "($c1-$c0)/100" | bc -l)
    printf "%s %s %s %.2f %.0f\n" "$round" "$name" "$rps" "$cpu_s" "$(echo "$total/$cpu_s" | bc -l)"
  done
done
