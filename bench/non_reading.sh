#!/usr/bin/env bash
# Server memory under peers that never read (issue 11, item 2).
#
# For each kind of peer (WebSocket pings, 16 KiB WebSocket echo messages,
# pipelined GETs of an 8 MiB file) and each count (1 peer sending up to
# 256 MiB, 50 peers sending up to 64 MiB each), starts a fresh
# `ringtail serve --threads 1` on CPU 0, runs bench/non_reading_peer.py on
# CPU 1 and prints the server's RSS growth. Goal: under 16 MiB for one peer,
# under 64 MiB for 50.
#
# usage: bench/non_reading.sh [RINGTAIL_BINARY]   (default: builds target/release/ringtail)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
main=$(cd "$here/.." && pwd)
bin=${1:-}
if [[ -z $bin ]]; then
    (cd "$main" && cargo build -q --release -p ringtail --bin ringtail)
    bin=${CARGO_TARGET_DIR:-$main/target}/release/ringtail
fi
dir=$(mktemp -d)
pid=
cleanup() {
    [[ -n $pid ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    rm -rf "$dir"
}
trap cleanup EXIT
mkdir -p "$dir/www" "$dir/up"
head -c 8388608 /dev/zero >"$dir/www/big.bin"
echo "# $(date -u '+%F %T UTC') · $(uname -r) · $(git -C "$main" rev-parse --short HEAD) · $bin"
for spec in "ping 1 268435456" "echo 1 268435456" "get 1 268435456" \
    "ping 50 67108864" "echo 50 67108864" "get 50 67108864"; do
    read -r kind n cap <<<"$spec"
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    taskset -c 0 "$bin" serve --threads 1 --addr "127.0.0.1:$port" --root "$dir/www" \
        --upload-dir "$dir/up" --access-log false >"$dir/log" 2>&1 &
    pid=$!
    for _ in $(seq 100); do
        curl -fs -o /dev/null "http://127.0.0.1:$port/big.bin" -r 0-0 && break
        sleep 0.05
    done
    taskset -c 1 python3 "$here/non_reading_peer.py" 127.0.0.1 "$port" "$pid" "$kind" "$n" "$cap"
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    pid=
done
