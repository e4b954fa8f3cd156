#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Static files: ringtail's `examples/static_files.rs` (Ctx::http_send_file,
# default ServerConfig: files up to `files.cache_max_file` — 256 KiB — are
# kept in memory, larger ones streamed)
# vs nginx (one worker, sendfile, tcp_nopush, open_file_cache), serving the
# same random files from the same directory.
#
#   bench/static.sh [WORKLOAD…]   WORKLOAD: static_1k, static_100k,
#                                 static_10m (default all three)
#
# Settings come from the environment (see bench/lib.sh): ROUNDS [3],
# DURATION [8] s, WARMUP [1] s, CONNS [64], QUICK=1, RESULTS_TSV,
# MAX_OTHER_CPU, RETRIES; SERVERS (default "ringtail nginx"; also
# ringtail_copy = splice off, ringtail_link = linked splices);
# NO_BUILD=1 skips the build; CACHE_MAX_FILE is passed on to ringtail's
# example (largest cached file in bytes).
#
# Rows (keep-alive, `wrk -t1 -cCONNS`, GET of one file over and over):
#   static_1k    1 KiB file, req/s
#   static_100k  100 KiB file, req/s
#   static_10m   10 MiB file, MB/s = 10^6 body bytes per second
#                (requests × 10,485,760 / seconds / 10^6)
#
# Every server is checked first: each file comes back 200 and byte for
# byte. Then per workload ROUNDS interleaved rounds; servers pinned to
# CPU $SERVER_CPU, wrk to $LOADGEN_CPU. One TSV line per run goes to
# RESULTS_TSV (format: bench/lib.sh emit_tsv).
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

declare -A size=([static_1k]=1024 [static_100k]=102400 [static_10m]=10485760)
declare -A file=([static_1k]=1k.bin [static_100k]=100k.bin [static_10m]=10m.bin)
workloads=("$@")
((${#workloads[@]})) || workloads=(static_1k static_100k static_10m)
# SERVERS may name servers of other scripts (bench/run passes one list to
# all): this script takes the ones it has, and does nothing without any.
read -ra asked <<< "${SERVERS:-ringtail nginx}"
servers=()
for s in "${asked[@]}"; do
  case $s in
    ringtail | ringtail_copy | ringtail_link | nginx) servers+=("$s") ;;
    *) log "no server $s in $(basename "$0"); skipped" ;;
  esac
done
if ((${#servers[@]} == 0)); then log "none of SERVERS=${SERVERS:-} here; nothing to do"; exit 0; fi
for w in "${workloads[@]}"; do [[ -n ${size[$w]:-} ]] || die "unknown workload $w"; done

if [[ ${NO_BUILD:-0} != 1 ]]; then
  log "building (release)"
  (cd "$MAIN_DIR" && cargo build -q --release -p ringtail --example static_files)
fi
command -v wrk >/dev/null || die "wrk not found (apt-get install wrk; bench/run installs it)"

www=$LIB_TMP/www
mkdir -p "$www"
for w in static_1k static_100k static_10m; do
  head -c "${size[$w]}" /dev/urandom > "$www/${file[$w]}"
done
chmod -R a+rX "$www"   # nginx's worker runs as an unprivileged user

declare -A pid port
start() {
  local s=$1 p
  p=$(free_port)
  case $s in
    ringtail) server_start "$s" "$p" "$MAIN_DIR/target/release/examples/static_files" "$www" "127.0.0.1:$p" ;;
    # Splice off (FileConfig::splice = false): bodies read into buffers.
    ringtail_copy) server_start "$s" "$p" env SPLICE=0 "$MAIN_DIR/target/release/examples/static_files" "$www" "127.0.0.1:$p" ;;
    # Each pipe's fill and drain linked (FileConfig::splice_link).
    ringtail_link) server_start "$s" "$p" env SPLICE_LINK=1 "$MAIN_DIR/target/release/examples/static_files" "$www" "127.0.0.1:$p" ;;
    nginx) nginx_start "$p" "$www" ;;
    *) die "unknown server $s" ;;
  esac
  pid[$s]=$SERVER_PID
  port[$s]=$p
}

# check SERVER: every file comes back 200 and identical, twice (the second
# time from the servers' caches).
check() {
  local s=$1 w url code
  for w in static_1k static_100k static_10m static_1k static_100k; do
    url="http://127.0.0.1:${port[$s]}/${file[$w]}"
    code=$(curl -s --max-time 10 -o "$LIB_TMP/got" -w '%{http_code}' "$url") || die "$s: no answer at $url"
    [[ $code == 200 ]] || die "$s: status $code at $url"
    cmp -s "$LIB_TMP/got" "$www/${file[$w]}" || die "$s: wrong body at $url"
  done
  rm -f "$LIB_TMP/got"
}

bench_header
log "servers: ${servers[*]}; $CONNS connections, ${DURATION}s per run (+${WARMUP}s warm-up), $ROUNDS interleaved rounds"
for s in "${servers[@]}"; do start "$s"; check "$s"; done

echo "workload round server value req_per_s p50_us p99_us server_cpu wrk_cpu value_per_server_cpu_s other_cpu"
for w in "${workloads[@]}"; do
  for round in $(seq "$ROUNDS"); do
    for s in "${servers[@]}"; do
      # 64 × 10 MiB in flight take longer than wrk's default 2 s timeout.
      wrk_timeout=2
      [[ $w == static_10m ]] && wrk_timeout=10
      wrk_measure "${pid[$s]}" "http://127.0.0.1:${port[$s]}/${file[$w]}" 1 "$wrk_timeout"
      requests=$(field requests "$WRK_OUT")
      rate=$(field req_per_s "$WRK_OUT")
      value=$rate
      per_cpu=$(div "$requests" "$M_SERVER_CPU_S")
      if [[ $w == static_10m ]]; then
        # body bytes per µs = MB/s (10^6 bytes)
        value=$(awk -v n="$requests" -v d="$(field duration_us "$WRK_OUT")" -v b="${size[$w]}" \
          'BEGIN { printf "%.1f", n * b / d }')
        per_cpu=$(awk -v n="$requests" -v c="$M_SERVER_CPU_S" -v b="${size[$w]}" \
          'BEGIN { if (c > 0) printf "%.1f", n * b / 1e6 / c; else print "-" }')
      fi
      p50=$(field p50_us "$WRK_OUT"); p99=$(field p99_us "$WRK_OUT")
      gen_cpu=$(div "$M_GEN_CPU_S" "$M_SECS" %.2f)
      echo "$w $round $s $value $rate $p50 $p99 $M_SERVER_CPU $gen_cpu $per_cpu $M_OTHER_CPU"
      emit_tsv "$w" "$s" "$round" "$value" "$M_SERVER_CPU" "$per_cpu" "$p50" "$p99" "$M_OTHER_CPU"
    done
  done
done
for s in "${servers[@]}"; do server_stop "${pid[$s]}"; done

if ((LIB_OWN_RESULTS)); then echo; results_tables "$RESULTS_TSV"; fi
