#!/usr/bin/env bash
# How long a server pauses for one in-process handover (quiesce → export →
# release → import → resume) with N open WebSocket connections (issue 12;
# goal: under 50 ms at 10,000 on this 2-CPU machine).
#
#   bench/handover.sh            # 1,000 and 10,000 connections, 21 rounds each
#   ROUNDS=11 bench/handover.sh 2000
#
# The server (bench/handover_pause) runs on CPU 0, the connections are held
# by `loadgen idle` on CPU 1. Prints one key=value line per count: median
# and largest pause, the median of each phase, the snapshot's size.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
cargo build -q --release -p handover_pause -p loadgen
counts=("$@")
((${#counts[@]})) || counts=(1000 10000)
echo "# $(date -u '+%F %T UTC') · $(uname -r) · $(git rev-parse --short HEAD) · $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
for n in "${counts[@]}"; do
    taskset -c 0 target/release/handover_pause --loadgen target/release/loadgen \
        --conns "$n" --rounds "${ROUNDS:-21}" --client-cpu 1
done
