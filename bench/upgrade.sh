#!/usr/bin/env bash
# How long `ringtail ctl upgrade` pauses a running `ringtail serve` with N
# open WebSocket connections and some echo traffic (issue 13), and how long
# the whole command takes.
#
#   bench/upgrade.sh                 # 1,000 and 10,000 connections
#   bench/upgrade.sh 1000            # one count
#   ROUNDS=3 ECHO_CONNS=0 bench/upgrade.sh 2000
#
# Two copies of the release binary, stamped with the build ids "bench-a"
# and "bench-b" (the 32-byte field after RINGTAIL-BUILD-ID:), take turns:
# a → b → a … , ROUNDS (5) upgrades to each. The server runs THREADS (1)
# event loops pinned to CPU 0 (the new process inherits the pinning); the
# N idle connections are held by `loadgen idle` and ECHO_CONNS (8)
# connections of closed-loop 32-byte echo by `loadgen echo`, both on CPU 1.
# Every answer must be ok, carry the other build id and have taken over at
# least N + ECHO_CONNS connections; the echo client fails if a single echo
# is lost, wrong, or its connection closes.
#
# Prints, per count, one key=value line: the median and largest pause_ms
# (the old process stops serving → the new one has resumed) and total_ms
# (command received → new process confirmed), the median of each phase of
# the pause, the snapshot size, and the echo client's own line (its max_us
# is the longest an echo waited, the pause included).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
ROUNDS=${ROUNDS:-5}
THREADS=${THREADS:-1}
ECHO_CONNS=${ECHO_CONNS:-8}
SERVER_CPU=${SERVER_CPU:-0}
LOADGEN_CPU=${LOADGEN_CPU:-1}
counts=("$@")
((${#counts[@]})) || counts=(1000 10000)

(cd "$repo" && cargo build -q --release -p ringtail)
(cd "$here" && cargo build -q --release -p loadgen)
ringtail=$repo/target/release/ringtail
loadgen=$here/target/release/loadgen
ulimit -n "$(ulimit -Hn)"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/ringtail-upgrade-bench.XXXXXX")
pids=()
stop_all() {
    local p
    # The server's pid changes with every upgrade: the pid file has the
    # current one.
    if [[ -s $tmp/pid ]]; then pids+=("$(cat "$tmp/pid")"); fi
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do
        # Reaps our own children quietly; a server started by an upgrade
        # is not ours to wait for.
        wait "$p" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.05; done
    done
    pids=()
    rm -f "$tmp/pid"
}
trap 'stop_all; rm -rf "$tmp"' EXIT

# stamp SRC DST ID: a copy of SRC whose build id field says ID.
stamp() {
    local n off
    n=$(grep -obUaF 'RINGTAIL-BUILD-ID:' "$1" | wc -l)
    [[ $n == 1 ]] || { echo "$1: the build id marker occurs $n times" >&2; exit 1; }
    off=$(grep -obUaF 'RINGTAIL-BUILD-ID:' "$1" | cut -d: -f1)
    cp "$1" "$2"
    { printf '%s' "$3"; head -c $((32 - ${#3})) /dev/zero; } |
        dd of="$2" bs=1 seek=$((off + 18)) conv=notrunc status=none
}
stamp "$ringtail" "$tmp/ringtail-a" bench-a
stamp "$ringtail" "$tmp/ringtail-b" bench-b

# wait_for WHAT COMMAND…: runs COMMAND every 0.1 s until it succeeds, at
# most 120 s.
wait_for() {
    local what=$1 i
    shift
    for i in $(seq 1200); do
        if "$@"; then return 0; fi
        sleep 0.1
    done
    echo "timed out waiting for $what" >&2
    exit 1
}

# at_least N: the server reports at least N open WebSocket connections.
at_least() {
    local c
    c=$("$ringtail" ctl --control "$tmp/ctl.sock" status |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["connections"]["websocket"])') || return 1
    ((c >= $1))
}

echo "# $(date -u '+%F %T UTC') · $(uname -r) · $(git -C "$repo" rev-parse --short HEAD) · $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs) · threads=$THREADS rounds=$ROUNDS echo_conns=$ECHO_CONNS"
for n in "${counts[@]}"; do
    : > "$tmp/log"
    : > "$tmp/answers"
    taskset -c "$SERVER_CPU" "$tmp/ringtail-a" serve --threads "$THREADS" \
        --addr 127.0.0.1:0 --control "$tmp/ctl.sock" --pid-file "$tmp/pid" \
        --upload-dir "$tmp/uploads" --access-log false 2> "$tmp/log" > /dev/null &
    pids+=($!)
    wait_for "the server's address" grep -q 'serving HTTP and WebSocket' "$tmp/log"
    wait_for "the pid file" test -s "$tmp/pid"
    addr=$(grep -m1 -o 'http://[0-9.:]*' "$tmp/log")
    url="ws://${addr#http://}/ws/echo"
    # The idle connections, held well past the upgrades. `loadgen idle`
    # reads a process's memory around its connects: it is given its own
    # shell's pid, which does not change (the server's does).
    taskset -c "$LOADGEN_CPU" "$loadgen" idle --url "$url" --conns "$n" \
        --server-pid "$$" --settle 0 --hold 100000 > "$tmp/idle.out" &
    pids+=($!)
    # `ctl status` counts are refreshed every second.
    wait_for "$n connections" at_least "$n"
    echo_pid=
    if ((ECHO_CONNS > 0)); then
        # Echo traffic for the whole series (a little over 1 s per
        # upgrade), and some before and after.
        taskset -c "$LOADGEN_CPU" "$loadgen" echo --url "$url" --conns "$ECHO_CONNS" \
            --size 32 --warmup 0 --duration $((3 * ROUNDS + 4)) > "$tmp/echo.out" &
        echo_pid=$!
        pids+=("$echo_pid")
        sleep 1
    fi
    build=bench-a
    for i in $(seq $((2 * ROUNDS))); do
        if [[ $build == bench-a ]]; then next=b build=bench-b; else next=a build=bench-a; fi
        "$ringtail" ctl --control "$tmp/ctl.sock" upgrade --binary "$tmp/ringtail-$next" \
            >> "$tmp/answers" || { echo "upgrade $i failed:" >&2; tail -5 "$tmp/answers" "$tmp/log" >&2; exit 1; }
        python3 - "$tmp/answers" "$build" $((n + ECHO_CONNS)) <<'EOF'
import json, sys
a = json.loads(open(sys.argv[1]).read().splitlines()[-1])
assert a["ok"] and a["build"] == sys.argv[2], a
assert a["connections"] >= int(sys.argv[3]), f"{a['connections']} connections taken over: {a}"
EOF
        sleep 1
    done
    echo_line=
    if [[ -n $echo_pid ]]; then
        wait "$echo_pid" || { echo "the echo client failed (a connection dropped?)" >&2; exit 1; }
        echo_line=" echo: $(cat "$tmp/echo.out")"
    fi
    python3 - "$tmp/answers" "$n" "$echo_line" <<'EOF'
import json, statistics, sys
answers = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def col(k, phase=False):
    return [a["phases"][k] if phase else a[k] for a in answers]
out = [f"conns={sys.argv[2]}", f"upgrades={len(answers)}",
       f"taken_over={min(col('connections'))}"]
for k in ("pause_ms", "total_ms"):
    v = col(k)
    out.append(f"{k}_median={statistics.median(v):.2f} {k}_max={max(v):.2f}")
if all("phases" in a for a in answers):
    for k in answers[0]["phases"]:
        out.append(f"{k}_median={statistics.median(col(k, True)):.2f}")
if all("snapshot_bytes" in a for a in answers):
    out.append(f"snapshot_bytes={answers[-1]['snapshot_bytes']}")
print(" ".join(out) + sys.argv[3])
EOF
    stop_all
done
