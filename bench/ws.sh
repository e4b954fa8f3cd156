#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# WebSocket: ringtail's `examples/ws_echo.rs` and `examples/ws_broadcast.rs`
# vs tokio-tungstenite and fastwebsockets (bench/peers/*_server, each
# single-threaded), driven by our load generator (bench/loadgen).
#
#   bench/ws.sh [WORKLOAD…]      default: ws_echo_32 ws_echo_16k
#                                ws_broadcast_1000 ws_idle_10000
#                                ws_idle_deflate_10000
#
# Workloads (the number in the name is the parameter, so e.g.
# `bench/ws.sh ws_broadcast_100 ws_idle_1000` is a smaller smoke run):
#   ws_echo_32, ws_echo_16k  echo, closed loop over CONNS [64] connections,
#                            32 B / 16 KiB binary messages (msgs/s)
#   ws_broadcast_R           R receivers + 1 publisher on /ws/broadcast,
#                            every message to every connection, at most
#                            WINDOW [64] messages in flight (deliveries/s)
#   ws_idle_N                N idle connections, server VmRSS growth per
#                            connection (bytes, lower wins); each server
#                            started fresh, measured once
#   ws_idle_deflate_N        the same, each handshake offering
#                            `permessage-deflate; client_max_window_bits`
#                            as browsers do (ringtail's ws_echo runs with
#                            --deflate and accepts it; the peers do not
#                            implement it and ignore the offer); the
#                            deflate_agreed column counts acceptances
#
# Settings come from the environment (see bench/lib.sh): ROUNDS [3],
# DURATION [8] s, WARMUP [1] s, QUICK=1, RESULTS_TSV, MAX_OTHER_CPU,
# RETRIES, SERVER_CPU, LOADGEN_CPU; CONNS [64] (echo), WINDOW [64]
# (broadcast); SERVERS (default "ringtail tokio-tungstenite fastwebsockets",
# plus "limit" when LIMIT_DIR [../shared/limit] holds it) picks servers;
# NO_BUILD=1 skips the build (bench/run builds once).
#
# limit (LIMIT_DIR, built into target/limit) is not a peer but the
# machine's ceiling: a minimal io_uring loop (its `ws` mode echoes, `bcast`
# relays). Its bcast does not send a message back to its sender, so its
# broadcast runs use `loadgen --no-echo` (R deliveries per message instead
# of R + 1; deliveries/s compare all the same). The tables show it as a
# column, ratios included, but never as the "best peer".
#
# Echo and broadcast: ROUNDS interleaved rounds (ringtail,
# tokio-tungstenite, fastwebsockets, ringtail, …), each WARMUP s of
# unmeasured load plus DURATION s measured. The load generator measures
# server CPU, its own CPU and the rest of the machine's (other_cpu) over
# exactly its counted window (after the warm-up and the handshakes, before
# the broadcast drain), so those numbers are its, not lib.sh's
# measure_run's. A run whose other_cpu is above MAX_OTHER_CPU is repeated
# after 5 s, up to RETRIES times; the last try is kept either way.
# A broadcast run with missing deliveries is reported on stderr.
#
# Prints every run, then a table of medians (with latency and load
# generator CPU); one TSV line per run goes to RESULTS_TSV (format:
# bench/lib.sh emit_tsv). Servers pinned to CPU $SERVER_CPU, the load
# generator to $LOADGEN_CPU; every load-generator run is bounded (its own
# duration, and `timeout`); every server is stopped when the script exits.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

CONNS=${CONNS:-64}
WINDOW=${WINDOW:-64}
workloads=("$@")
((${#workloads[@]})) || workloads=(ws_echo_32 ws_echo_16k ws_broadcast_1000 ws_idle_10000 ws_idle_deflate_10000)
# SERVERS may name servers of other scripts (bench/run passes one list to
# all): this script takes the ones it has.
default_servers="ringtail tokio-tungstenite fastwebsockets"
[[ -f $LIMIT_DIR/Cargo.toml ]] && default_servers+=" limit"
read -ra asked <<< "${SERVERS:-$default_servers}"
servers=()
for s in "${asked[@]}"; do
  case $s in
    ringtail | tokio-tungstenite | fastwebsockets) servers+=("$s") ;;
    limit)
      if [[ -f $LIMIT_DIR/Cargo.toml ]]; then servers+=("$s"); else log "no $LIMIT_DIR: limit skipped"; fi ;;
    *) log "no WebSocket server $s here; skipped" ;;
  esac
done
((${#servers[@]})) || die "no WebSocket server in SERVERS=${SERVERS:-}"
need_fds=$((CONNS + 64))
for w in "${workloads[@]}"; do
  case $w in
    ws_echo_32 | ws_echo_16k) ;;
    ws_broadcast_[1-9]* | ws_idle_[1-9]* | ws_idle_deflate_[1-9]*)
      n=${w##*_}
      [[ $n =~ ^[0-9]+$ ]] || die "bad workload $w"
      ((n + 64 > need_fds)) && need_fds=$((n + 64))
      ;;
    *) die "unknown workload $w (ws_echo_32, ws_echo_16k, ws_broadcast_R, ws_idle_N, ws_idle_deflate_N)" ;;
  esac
done
# lib.sh raised the soft limit to the hard one; servers inherit it and the
# load generator raises its own.
ulimit -n "$(ulimit -Hn)"
(($(ulimit -n) >= need_fds)) || die "descriptor limit $(ulimit -n) is below $need_fds"

if [[ ${NO_BUILD:-0} != 1 ]]; then
  log "building (release)"
  (cd "$MAIN_DIR" && cargo build -q --release -p ringtail --example ws_echo --example ws_broadcast)
  (cd "$BENCH_DIR" && cargo build -q --release -p loadgen -p tokio_tungstenite_server -p fastwebsockets_server)
fi
[[ " ${servers[*]} " == *" limit "* ]] && limit_build
loadgen=$BENCH_DIR/target/release/loadgen

# start SERVER MODE: starts SERVER for MODE (echo, echo-deflate,
# broadcast) on a fresh port, pinned; sets pid[SERVER] and url[SERVER] (the
# path MODE uses). ringtail has one example per mode (echo-deflate: ws_echo
# --deflate, accepting permessage-deflate); each peer serves /ws/broadcast
# and echoes on every other path (echo-deflate is its echo).
declare -A pid url
start() {
  local s=$1 mode=$2 p bin path extra=()
  p=$(free_port)
  [[ $mode == echo-deflate && $s != ringtail ]] && mode=echo
  if [[ $s == limit ]]; then
    # limit MODE PORT, on 127.0.0.1, every path
    [[ $mode == echo ]] && mode=ws || mode=bcast
    server_start "$s-$mode" "$p" "$limit_bin" "$mode" "$p"
    pid[$s]=$SERVER_PID
    url[$s]=ws://127.0.0.1:$p/
    return
  fi
  case $s/$mode in
    ringtail/echo) bin=$MAIN_DIR/target/release/examples/ws_echo path=/ws/echo ;;
    ringtail/echo-deflate) bin=$MAIN_DIR/target/release/examples/ws_echo path=/ws/echo extra=(--deflate) ;;
    ringtail/broadcast) bin=$MAIN_DIR/target/release/examples/ws_broadcast path=/ws/broadcast ;;
    tokio-tungstenite/echo) bin=$BENCH_DIR/target/release/tokio_tungstenite_server path=/ ;;
    fastwebsockets/echo) bin=$BENCH_DIR/target/release/fastwebsockets_server path=/ ;;
    */broadcast) bin=$BENCH_DIR/target/release/${s/-/_}_server path=/ws/broadcast ;;
  esac
  server_start "$s-$mode" "$p" "$bin" "127.0.0.1:$p" "${extra[@]}"
  pid[$s]=$SERVER_PID
  url[$s]=ws://127.0.0.1:$p$path
}

# ws_run SERVER ARGS…: one load-generator run against SERVER (its pid is
# passed), repeated while disturbed (see above); sets OUT to its line.
ws_run() {
  local s=$1 try; shift
  for ((try = 0; try <= RETRIES; try++)); do
    OUT=$(timeout $((DURATION + WARMUP + 90)) taskset -c "$LOADGEN_CPU" "$loadgen" "$@" \
      --url "${url[$s]}" --duration "$DURATION" --warmup "$WARMUP" --server-pid "${pid[$s]}") \
      || die "load generator failed against $s: $*"
    disturbed "$(field other_cpu "$OUT")" || return 0
    log "disturbed, try $((try + 1))/$((RETRIES + 1)): $s: $OUT"
    if ((try < RETRIES)); then sleep 5; fi
  done
  return 0
}

# Every measured run, for the medians table at the end:
# workload server value p50_us p99_us server_cpu loadgen_cpu per_cpu other_cpu
details=$LIB_TMP/ws-details

# keys LINE KEY…: the values of KEY… in LINE, space-separated.
keys() {
  local line=$1 k out=""; shift
  for k in "$@"; do out+=" $(field "$k" "$line")"; done
  echo "${out# }"
}

bench_header
log "servers: ${servers[*]}; ${DURATION}s per run (+${WARMUP}s warm-up), $ROUNDS interleaved rounds; echo: $CONNS connections; broadcast: window $WINDOW"

for w in "${workloads[@]}"; do
  case $w in
    ws_echo_*)
      size=32
      [[ $w == ws_echo_16k ]] && size=16384
      for s in "${servers[@]}"; do start "$s" echo; done
      echo "# $w: echo, $CONNS connections, $size-byte binary messages"
      echo "workload round server msgs_per_s p50_us p99_us server_cpu loadgen_cpu msgs_per_server_cpu_s other_cpu"
      for round in $(seq "$ROUNDS"); do
        for s in "${servers[@]}"; do
          ws_run "$s" echo --conns "$CONNS" --size "$size"
          read -r rate p50 p99 cpu gen per other <<< "$(keys "$OUT" msgs_per_s p50_us p99_us \
            server_cpu loadgen_cpu msgs_per_server_cpu_s other_cpu)"
          echo "$w $round $s $rate $p50 $p99 $cpu $gen $per $other"
          echo "$w $s $rate $p50 $p99 $cpu $gen $per $other" >> "$details"
          emit_tsv "$w" "$s" "$round" "$rate" "$cpu" "$per" "$p50" "$p99" "$other"
        done
      done
      for s in "${servers[@]}"; do server_stop "${pid[$s]}"; done
      ;;
    ws_broadcast_*)
      receivers=${w##*_}
      for s in "${servers[@]}"; do start "$s" broadcast; done
      echo "# $w: broadcast, $receivers receivers + 1 publisher, 32-byte messages, window $WINDOW"
      echo "workload round server deliveries_per_s msgs_per_s p50_us p99_us server_cpu loadgen_cpu deliveries_per_server_cpu_s other_cpu missing"
      for round in $(seq "$ROUNDS"); do
        for s in "${servers[@]}"; do
          noecho=()
          [[ $s == limit ]] && noecho=(--no-echo)
          ws_run "$s" broadcast --receivers "$receivers" --size 32 --window "$WINDOW" "${noecho[@]}"
          read -r rate msgs p50 p99 cpu gen per other missing <<< "$(keys "$OUT" deliveries_per_s \
            msgs_per_s p50_us p99_us server_cpu loadgen_cpu deliveries_per_server_cpu_s other_cpu missing)"
          echo "$w $round $s $rate $msgs $p50 $p99 $cpu $gen $per $other $missing"
          if [[ $missing != 0 ]]; then
            log "WARNING: $s lost $missing deliveries in $w round $round: $OUT"
          fi
          echo "$w $s $rate $p50 $p99 $cpu $gen $per $other" >> "$details"
          emit_tsv "$w" "$s" "$round" "$rate" "$cpu" "$per" "$p50" "$p99" "$other"
        done
      done
      for s in "${servers[@]}"; do server_stop "${pid[$s]}"; done
      ;;
    ws_idle_*)
      n=${w##*_}
      # ws_idle_deflate_N: handshakes offer deflate as browsers do.
      mode=echo offer=() agreed=()
      if [[ $w == ws_idle_deflate_* ]]; then mode=echo-deflate offer=(--deflate) agreed=(deflate_agreed); fi
      echo "# $w: $n idle connections per server (fresh server each)${offer:+, offering permessage-deflate}"
      echo "workload server rss_before_kib rss_mid_kib rss_after_kib bytes_per_conn marginal_bytes_per_conn connect_secs ${agreed[*]}"
      for s in "${servers[@]}"; do
        start "$s" "$mode"
        sleep 0.5
        OUT=$(timeout 300 taskset -c "$LOADGEN_CPU" "$loadgen" idle --url "${url[$s]}" \
          --conns "$n" --server-pid "${pid[$s]}" --settle 2 --hold 1 "${offer[@]}") \
          || die "load generator failed against $s: idle $n"
        echo "$w $s $(keys "$OUT" rss_before_kib rss_mid_kib rss_after_kib bytes_per_conn \
          marginal_bytes_per_conn connect_secs "${agreed[@]}")"
        bytes=$(field bytes_per_conn "$OUT")
        echo "$w $s $bytes - - - - - -" >> "$details"
        emit_tsv "$w" "$s" 1 "$bytes" - - - - -
        server_stop "${pid[$s]}"
      done
      ;;
  esac
  echo
done
echo "# load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"

# Medians per workload and server of every column, and the rate's ratio to
# ringtail (for ws_idle_*, bytes per connection: lower wins).
echo
echo "# medians over $ROUNDS round(s); (×) = value relative to the first server (ringtail)"
echo "workload server value (×) p50_us p99_us server_cpu loadgen_cpu per_server_cpu_s other_cpu"
for w in "${workloads[@]}"; do
  base=""
  for s in "${servers[@]}"; do
    line="$w $s"
    for c in 3 4 5 6 7 8 9; do
      m=$(awk -v w="$w" -v s="$s" -v c="$c" '$1 == w && $2 == s && $c != "-" { print $c }' "$details" | median)
      line+=" ${m:--}"
      if ((c == 3)); then
        [[ -z $base ]] && base=${m:-0}
        line+=" ($(div "${m:-0}" "$base" %.2f×))"
      fi
    done
    echo "$line"
  done
done

if ((LIB_OWN_RESULTS)); then echo; results_tables "$RESULTS_TSV"; fi
