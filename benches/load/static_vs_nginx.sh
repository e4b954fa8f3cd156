#!/usr/bin/env bash
# Static files: the `static_files` example (Ctx::http_send_file) vs nginx
# (1 worker, sendfile on) serving the same 1 KiB, 100 KiB and 10 MiB files
# from the same directory; keep-alive, interleaved rounds, server pinned to
# CPU 0 and wrk to CPU 1. Prints req/s, transfer rate and requests per
# second of server CPU for each round.
#
#   benches/load/static_vs_nginx.sh [connections=64] [seconds=8] [rounds=3] [files]
#
# files: a subset of "1k.bin 100k.bin 10m.bin" (default all). CACHE_MAX_FILE
# in the environment is passed to the example (largest cached file; default
# 64 KiB, so the 100 KiB file is streamed from disk unless it is raised).
#
# Needs wrk, nginx and bc (apt-get install wrk nginx-light bc). Bounded:
# 3 sizes × rounds × 2 × seconds.
set -euo pipefail
cd "$(dirname "$0")/../.."
conns=${1:-64}; secs=${2:-8}; rounds=${3:-3}; files=${4:-"1k.bin 100k.bin 10m.bin"}
rt_port=18191; ng_port=18192
work=$(mktemp -d)
mkdir -p "$work/www"
head -c 1024 /dev/urandom > "$work/www/1k.bin"
head -c 102400 /dev/urandom > "$work/www/100k.bin"
head -c 10485760 /dev/urandom > "$work/www/10m.bin"
# nginx workers run as an unprivileged user.
chmod -R a+rX "$work"
cat > "$work/nginx.conf" <<NGX
worker_processes 1;
daemon off;
error_log $work/error.log warn;
pid $work/nginx.pid;
events { worker_connections 4096; use epoll; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000000;
    default_type application/octet-stream;
    server {
        listen 127.0.0.1:$ng_port;
        root $work/www;
    }
}
NGX
cargo build -q --release --example static_files
taskset -c 0 target/release/examples/static_files "$work/www" 127.0.0.1:$rt_port >/dev/null 2>&1 &
rt=$!
taskset -c 0 nginx -c "$work/nginx.conf" &
ng_master=$!
trap 'kill $rt $ng_master 2>/dev/null; rm -rf "$work"' EXIT
sleep 1
ng=$(pgrep -P $ng_master | head -1)
for port in $rt_port $ng_port; do
  curl -sf -o /dev/null "http://127.0.0.1:$port/1k.bin" || { echo "no answer on $port" >&2; exit 1; }
done
cpu() { awk '{print $14+$15}' /proc/$1/stat; }
echo "file round server req/s transfer/s server_cpu_s req_per_cpu_s"
for file in $files; do
  for round in $(seq "$rounds"); do
    for t in ringtail:$rt_port:$rt nginx:$ng_port:$ng; do
      IFS=: read -r name port pid <<< "$t"
      c0=$(cpu "$pid")
      out=$(taskset -c 1 wrk -t1 -c"$conns" -d"${secs}s" "http://127.0.0.1:$port/$file")
      c1=$(cpu "$pid")
      rps=$(awk '/Requests\/sec/ {print $2}' <<< "$out")
      xfer=$(awk '/Transfer\/sec/ {print $2}' <<< "$out")
      total=$(awk '/requests in/ {print $1}' <<< "$out")
      errs=$(awk '/Non-2xx|Socket errors/ {print}' <<< "$out")
      [ -n "$errs" ] && echo "  $name: $errs" >&2
      cpu_s=$(echo "($c1-$c0)/100" | bc -l)
      printf "%s %s %s %s %s %.2f %.0f\n" "$file" "$round" "$name" "$rps" "$xfer" "$cpu_s" \
        "$(echo "$total/$cpu_s" | bc -l)"
    done
  done
done
