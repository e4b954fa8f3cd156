#!/usr/bin/env bash
# Server memory under many broadcast subscribers that never read.
#
# Starts a fresh `ringtail serve --threads 1` (defaults: ws.max_queued_bytes
# 4 MiB, slow-client policy Close(1008)) on CPU 0 for each case and runs
# bench/stalled_subscribers.py on CPU 1: N subscribers of /ws/broadcast that
# never read, one publisher of 32-byte messages — unpaced, one every 20 µs,
# one every 100 µs (about one per loop turn: each frame then sits in a
# broadcast chunk of its own, the most queue entries per byte). Prints
# RSS before, at the peak and after, and how many subscribers the server
# closed. Each case runs up to SECS (90) seconds.
#
# usage: bench/stalled_subscribers.sh [N] [RINGTAIL_BINARY]   (N: 1000)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
main=$(cd "$here/.." && pwd)
n=${1:-1000}
bin=${2:-}
secs=${SECS:-90}
if [[ -z $bin ]]; then
    (cd "$main" && cargo build -q --release -p ringtail --bin ringtail)
    bin=${CARGO_TARGET_DIR:-$main/target}/release/ringtail
fi
ulimit -n "$(ulimit -Hn)"
dir=$(mktemp -d)
pid=
cleanup() {
    [[ -n $pid ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    rm -rf "$dir"
}
trap cleanup EXIT
echo "# $(date -u '+%F %T UTC') · $(uname -r) · $(git -C "$main" rev-parse --short HEAD) · $bin"
for pace in 0 0.00002 0.0001; do
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    taskset -c 0 "$bin" serve --threads 1 --addr "127.0.0.1:$port" --access-log false >"$dir/log" 2>&1 &
    pid=$!
    for _ in $(seq 100); do
        curl -fs -o /dev/null "http://127.0.0.1:$port/hello" && break
        sleep 0.05
    done
    taskset -c 1 python3 "$here/stalled_subscribers.py" 127.0.0.1 "$port" "$pid" "$n" 32 67108864 "$pace" "$secs"
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    pid=
done
