# shellcheck shell=bash disable=SC2034
# (SC2034: variables set here are read by the scripts that source this.)
# bench/lib.sh — helpers shared by the benchmark scripts (bench/http.sh,
# bench/static.sh, bench/ws.sh, bench/run). Source it; don't run it:
#
#   source "$(dirname "$0")/lib.sh"
#
# Sourcing it sets `set -euo pipefail`, the variables below, a private
# temporary directory ($LIB_TMP) and an EXIT trap that stops every server
# started with server_start and removes $LIB_TMP. A watchdog process also
# stops those servers if the script itself is killed with SIGKILL.
#
# Settings (environment; defaults in brackets):
#   ROUNDS [3]          interleaved rounds per workload
#   DURATION [8]        seconds measured per run (SECONDS is accepted as an
#                       alias when DURATION is unset)
#   WARMUP [1]          seconds of unmeasured load before each measured run
#   QUICK=1             smoke test: ROUNDS=1 DURATION=2 WARMUP=0 RETRIES=0
#                       (each unless set)
#   MAX_OTHER_CPU [0.10] a run in which the rest of the machine used more
#                       than this fraction of a core is "disturbed"
#   RETRIES [3]         disturbed runs are repeated (after 5 s) this often;
#                       the last try is kept either way
#   RETRY_UNTIL         epoch seconds after which no run is repeated any
#                       more (bench/run sets it to bound its total time)
#   SERVER_CPU [0]      CPU the servers are pinned to (taskset -c)
#   LOADGEN_CPU [1]     CPU the load generators are pinned to
#   CONNS [64]          connections per load-generator run (wrk_measure)
#   RESULTS_TSV         file the results are appended to (see emit_tsv); if
#                       unset, a temporary one, and LIB_OWN_RESULTS=1 tells
#                       the script to print the table itself at the end
# Set by sourcing: BENCH_DIR (this directory), MAIN_DIR (the repository),
# LIB_TMP (temporary directory, world-readable so nginx workers can read
# files kept in it), CLK_TCK.

set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
MAIN_DIR=$(cd "$BENCH_DIR/.." && pwd)

if [[ -z ${DURATION:-} ]]; then
  # SECONDS is special in bash (seconds since the shell started), but a
  # value given in the environment is imported as the start value, and then
  # it is exported to children: read it from the environment right away.
  DURATION=$(printenv SECONDS 2>/dev/null || true)
fi
if [[ ${QUICK:-0} == 1 ]]; then
  ROUNDS=${ROUNDS:-1}; DURATION=${DURATION:-2}; WARMUP=${WARMUP:-0}; RETRIES=${RETRIES:-0}
fi
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-8}
WARMUP=${WARMUP:-1}
MAX_OTHER_CPU=${MAX_OTHER_CPU:-0.10}
RETRIES=${RETRIES:-3}
SERVER_CPU=${SERVER_CPU:-0}
LOADGEN_CPU=${LOADGEN_CPU:-1}
CONNS=${CONNS:-64}
export ROUNDS DURATION WARMUP MAX_OTHER_CPU RETRIES SERVER_CPU LOADGEN_CPU CONNS
CLK_TCK=$(getconf CLK_TCK)
# Descriptors: servers and load generators inherit the hard limit.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

LIB_TMP=$(mktemp -d "${TMPDIR:-/tmp}/ringtail-bench.XXXXXX")
chmod 755 "$LIB_TMP"
: > "$LIB_TMP/pids"
LIB_PIDS=()

if [[ -z ${RESULTS_TSV:-} ]]; then
  RESULTS_TSV=$LIB_TMP/results.tsv
  LIB_OWN_RESULTS=1
else
  LIB_OWN_RESULTS=0
fi
touch "$RESULTS_TSV"

# lib_cleanup: stops every server started with server_start, the watchdog,
# and removes $LIB_TMP. Runs from the EXIT trap; a script that wants its own
# EXIT trap calls lib_cleanup from it.
lib_cleanup() {
  local p
  for p in "${LIB_PIDS[@]}"; do server_stop "$p"; done
  [[ -n ${LIB_WATCHDOG:-} ]] && kill "$LIB_WATCHDOG" 2>/dev/null
  rm -rf "$LIB_TMP"
}
trap lib_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The watchdog: when this script dies (even by SIGKILL, when no trap runs),
# it kills every PID listed in $LIB_TMP/pids. `tail --pid` polls once a
# second without forking, so it costs nothing measurable.
(
  trap '' INT
  tail --pid=$$ -f /dev/null 2>/dev/null
  while read -r p; do kill "$p" 2>/dev/null; done < "$LIB_TMP/pids" 2>/dev/null
  sleep 1
  rm -rf "$LIB_TMP"
) </dev/null >/dev/null 2>&1 &
LIB_WATCHDOG=$!

# log MESSAGE…: a progress line on stderr, prefixed with "# ".
log() { echo "# $*" >&2; }

# die MESSAGE…: prints MESSAGE on stderr and exits 1 (servers are stopped by
# the EXIT trap).
die() { echo "error: $*" >&2; exit 1; }

# bench_header: prints the two "# …" header lines every result starts
# with: date, kernel, CPU model and count; ringtail's commit (and whether
# crates/ or examples/ had uncommitted changes) and the load average.
bench_header() {
  echo "# $(date -u '+%Y-%m-%d %H:%M:%S UTC') · Linux $(uname -r) · $(lscpu | sed -n 's/^Model name: *//p' | head -1) · $(nproc) CPUs"
  echo "# ringtail $(git -C "$MAIN_DIR" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$MAIN_DIR" diff --quiet HEAD -- crates examples 2>/dev/null || echo ' (+ uncommitted changes)') · load average: $(cut -d' ' -f1-3 /proc/loadavg)"
}

# free_port: prints a TCP port on 127.0.0.1 that is free right now (the
# kernel picks it: bind to port 0). Every server gets a fresh one, so a
# listener that a killed server releases late never gets in the way.
free_port() {
  if command -v python3 >/dev/null; then
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
    return
  fi
  local p
  for _ in $(seq 200); do
    p=$((20000 + RANDOM % 10000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null \
      && ! ss -Htan "sport = :$p" | grep -q .; then
      echo "$p"; return
    fi
  done
  die "no free port found"
}

# wait_port PORT PID [SECONDS=10]: waits until 127.0.0.1:PORT accepts a
# connection. Fails (returns 1) if PID exits first or time runs out.
wait_port() {
  local port=$1 pid=$2 limit=${3:-10} i
  for ((i = 0; i < limit * 20; i++)); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.05
  done
  return 1
}

# server_start NAME PORT CMD [ARGS…]: starts CMD pinned to $SERVER_CPU with
# its output in $LIB_TMP/NAME.log, waits until it accepts connections on
# 127.0.0.1:PORT, and sets SERVER_PID (the process started: for nginx the
# master, whose workers are its children; see proc_cpu_s). Exits the script
# with the log's tail if the server does not come up within 10 s. The
# server is stopped by lib_cleanup unless stopped before with server_stop.
server_start() {
  local name=$1 port=$2; shift 2
  taskset -c "$SERVER_CPU" "$@" >"$LIB_TMP/$name.log" 2>&1 &
  SERVER_PID=$!
  LIB_PIDS+=("$SERVER_PID")
  echo "$SERVER_PID" >> "$LIB_TMP/pids"
  if ! wait_port "$port" "$SERVER_PID"; then
    tail -n 20 "$LIB_TMP/$name.log" >&2 || true
    die "$name did not start on port $port: $*"
  fi
}

# server_stop PID: SIGTERM, then SIGKILL after 5 s; waits for the process.
# Safe to call twice.
server_stop() {
  local pid=$1 i
  kill "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# proc_tree PID: prints PID and all its descendants (e.g. nginx's master
# and its workers), one a line.
proc_tree() {
  local p
  echo "$1"
  # shellcheck disable=SC2013 # the children files hold space-separated PIDs
  for p in $(cat /proc/"$1"/task/*/children 2>/dev/null); do proc_tree "$p"; done
}

# proc_cpu_s PID…: user + system CPU seconds used so far by the given
# processes (all threads; /proc/PID/stat fields 14 and 15), summed. A PID
# that has exited counts 0.
proc_cpu_s() {
  _proc_ticks "$@"
  awk -v t="$_TICKS" -v hz="$CLK_TCK" 'BEGIN { printf "%.2f\n", t / hz }'
}
_proc_ticks() { # sets _TICKS without forking
  local p s f
  _TICKS=0
  for p in "$@"; do
    { read -r s < "/proc/$p/stat"; } 2>/dev/null || continue
    s=${s##*) }          # the command name may hold spaces and parentheses
    read -ra f <<< "$s"  # f[0] is field 3 (state): utime = f[11], stime = f[12]
    _TICKS=$((_TICKS + f[11] + f[12]))
  done
}

# machine_busy_s: busy CPU seconds of the whole machine so far, all CPUs
# (/proc/stat: user + nice + system + irq + softirq + steal), like
# bench/loadgen's other_cpu.
machine_busy_s() {
  _busy_ticks
  awk -v t="$_TICKS" -v hz="$CLK_TCK" 'BEGIN { printf "%.2f\n", t / hz }'
}
_busy_ticks() { # sets _TICKS without forking
  local _cpu user nice system _idle _iowait irq softirq steal _rest
  read -r _cpu user nice system _idle _iowait irq softirq steal _rest < /proc/stat
  _TICKS=$((user + nice + system + irq + softirq + steal))
}
_children_ticks() { # sets _TICKS: CPU of this shell's waited-for children
  local s f
  read -r s < "/proc/$BASHPID/stat"
  s=${s##*) }
  read -ra f <<< "$s"    # cutime = field 16 = f[13], cstime = f[14]
  _TICKS=$((f[13] + f[14]))
}

# measure_begin PID: starts a measurement window for the server PID (and
# its descendants at this moment, e.g. nginx's worker).
# measure_end: ends it and sets
#   M_SECS          wall seconds of the window
#   M_SERVER_CPU_S  server CPU seconds (user + system) in the window
#   M_SERVER_CPU    M_SERVER_CPU_S / M_SECS: 1.00 = one core busy
#   M_GEN_CPU_S     CPU seconds of the commands this shell ran and waited
#                   for in the window (the load generator: run it in the
#                   foreground or as $(…), not in the background)
#   M_OTHER_CPU     CPU the rest of the machine used in the window, as a
#                   fraction of a core: machine busy time minus server and
#                   load generator. 0.00–0.05 on a quiet machine.
# Between the two, run only the load generator.
measure_begin() {
  mapfile -t _M_PIDS < <(proc_tree "$1")
  _proc_ticks "${_M_PIDS[@]}"; _M_SRV0=$_TICKS
  _busy_ticks; _M_BUSY0=$_TICKS
  _M_T0=$EPOCHREALTIME
  _children_ticks; _M_GEN0=$_TICKS
}
measure_end() {
  _children_ticks; local gen1=$_TICKS
  local t1=$EPOCHREALTIME
  _busy_ticks; local busy1=$_TICKS
  _proc_ticks "${_M_PIDS[@]}"; local srv1=$_TICKS
  read -r M_SECS M_SERVER_CPU_S M_SERVER_CPU M_GEN_CPU_S M_OTHER_CPU < <(awk \
    -v t0="$_M_T0" -v t1="$t1" -v hz="$CLK_TCK" \
    -v s="$((srv1 - _M_SRV0))" -v g="$((gen1 - _M_GEN0))" -v b="$((busy1 - _M_BUSY0))" \
    'BEGIN { secs = t1 - t0; o = (b - s - g) / hz; if (o < 0) o = 0
             printf "%.3f %.2f %.2f %.2f %.2f\n", secs, s / hz, s / hz / secs, g / hz, o / secs }')
}

# disturbed OTHER_CPU: true if a run with this other_cpu is to be repeated:
# OTHER_CPU is above $MAX_OTHER_CPU, and $RETRY_UNTIL (if set) has not
# passed yet. (After RETRY_UNTIL disturbed runs are kept as they are; the
# tables mark them.)
disturbed() {
  if [[ -n ${RETRY_UNTIL:-} ]] && ((EPOCHSECONDS >= RETRY_UNTIL)); then return 1; fi
  awk -v o="$1" -v m="$MAX_OTHER_CPU" 'BEGIN { exit !(o > m) }'
}

# measure_run PID CMD [ARGS…]: runs CMD (the load generator; wrap it in
# `timeout` and `taskset` yourself) inside a measurement window for server
# PID, its stdout in MEASURE_OUT and the M_* variables set as by
# measure_end. A run whose M_OTHER_CPU is above MAX_OTHER_CPU is repeated
# after 5 s, up to RETRIES times; the last try is kept either way. Exits
# the script if CMD fails.
measure_run() {
  local pid=$1 try; shift
  for ((try = 0; try <= RETRIES; try++)); do
    measure_begin "$pid"
    MEASURE_OUT=$("$@") || die "load generator failed (exit $?): $*"
    measure_end
    disturbed "$M_OTHER_CPU" || return 0
    log "disturbed (other_cpu $M_OTHER_CPU > $MAX_OTHER_CPU), try $((try + 1))/$((RETRIES + 1))"
    if ((try < RETRIES)); then sleep 5; fi
  done
}

# field KEY LINE: the value of KEY=… in a line of space-separated key=value
# pairs (bench/loadgen's output, wrk_run's output).
field() { tr ' ' '\n' <<< "$2" | awk -F= -v k="$1" '$1 == k { print $2 }'; }

# median: the median of the numbers on stdin, one a line (the mean of the
# two middle ones for an even count).
median() {
  sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) exit
    if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# div A B [FORMAT=%.0f]: A / B, or "-" if B is 0 or either is "-".
div() {
  awk -v a="$1" -v b="$2" -v f="${3:-%.0f}" \
    'BEGIN { if (a == "-" || b == "-" || b + 0 == 0) print "-"; else printf f "\n", a / b }'
}

# emit_tsv WORKLOAD SERVER ROUND VALUE SERVER_CPU VALUE_PER_SERVER_CPU_S
#          P50_US P99_US OTHER_CPU
# appends one result line to $RESULTS_TSV (tab-separated; an empty
# argument becomes "-"). One line per measured run (the last try of a
# repeated run). Columns:
#   workload   http_hello, http_pipelined16, ws_echo_32, ws_echo_16k,
#              ws_broadcast_1000, ws_idle_10000, ws_idle_deflate_10000,
#              static_1k, static_100k, static_10m, tls_handshake,
#              tls_hello, tls_10m
#   server     ringtail, hyper, may_minihttp, nginx, tokio-tungstenite,
#              fastwebsockets, limit (the ceiling: ../shared/limit, ws rows)
#   round      1…ROUNDS
#   value      the workload's unit: req/s (http_*, static_1k, static_100k;
#              for pipelining: responses/s), msgs/s (ws_echo_*),
#              deliveries/s (ws_broadcast_*), bytes per connection (ws_idle_*,
#              lower is better), MB/s = 10^6 body bytes/s (static_10m,
#              tls_10m), new TLS connections (one full handshake and one
#              request each) per second (tls_handshake), req/s (tls_hello)
#   server_cpu fraction of a core the server used over the run
#   value_per_server_cpu_s  value × seconds / server CPU seconds (units per
#              second of server CPU)
#   p50_us, p99_us  latency percentiles in µs ("-" if unknown)
#   other_cpu  see measure_end
emit_tsv() {
  local out="" v
  (($# == 9)) || die "emit_tsv needs 9 fields, got $#: $*"
  for v in "$@"; do out+="${v:--}"$'\t'; done
  printf '%s\n' "${out%$'\t'}" >> "$RESULTS_TSV"
}

# results_table TSV COLUMN TITLE: prints a markdown table of the medians of
# COLUMN (4 = value, 6 = value per server-CPU-second, 5 = server CPU) over
# the runs in TSV: one row per workload, one column per server measured in
# any row ("—" where a server was not measured), each peer with its ratio to
# ringtail (ringtail/peer, so > 1 means ringtail leads; for lower-is-better
# rows, ws_idle_*, peer/ringtail), and a last column "ringtail vs best
# peer" (the same ratio against the best peer of the row). With COLUMN 5
# no ratios are printed. Lines starting with "#" are ignored.
results_table() {
  awk -F'\t' -v col="$2" -v title="$3" -v maxo="$MAX_OTHER_CPU" '
    function label(w) {
      if (w == "http_hello") return "HTTP /hello keep-alive, 64 conns (req/s)"
      if (w == "http_pipelined16") return "HTTP /hello pipelined ×16, 64 conns (req/s)"
      if (w == "ws_echo_32") return "WS echo 32 B, 64 conns (msgs/s)"
      if (w == "ws_echo_16k") return "WS echo 16 KiB, 64 conns (msgs/s)"
      if (w == "ws_broadcast_1000") return "WS broadcast to 1,000 (deliveries/s)"
      if (w == "ws_idle_10000") return "WS idle RSS @ 10,000 conns (B/conn, lower wins)"
      if (w == "ws_idle_deflate_10000") return "WS idle RSS @ 10,000 conns, deflate offered (B/conn, lower wins)"
      if (w == "static_1k") return "static 1 KiB (req/s)"
      if (w == "static_100k") return "static 100 KiB (req/s)"
      if (w == "static_10m") return "static 10 MiB (MB/s)"
      if (w == "tls_handshake") return "TLS 1.3 new handshakes, ECDSA P-256, 64 conns (handshakes/s)"
      if (w == "tls_hello") return "HTTPS /hello keep-alive, 64 conns (req/s)"
      if (w == "tls_10m") return "HTTPS 10 MiB download, 64 conns (MB/s)"
      return w
    }
    function commas(x,   s, r) {
      s = sprintf("%.0f", x); r = ""
      while (length(s) > 3) { r = "," substr(s, length(s) - 2) r; s = substr(s, 1, length(s) - 3) }
      return s r
    }
    function fmt(x) {
      if (col == 5) return sprintf("%.2f", x)
      if (x >= 1000) return commas(x)
      if (x >= 100) return sprintf("%.0f", x)
      return sprintf("%.1f", x)
    }
    # display width: UTF-8 continuation bytes take no column (mawk counts bytes)
    function dlen(s,   t) { t = s; gsub(/[\200-\277]/, "", t); return length(t) }
    function lower(w) { return w ~ /^ws_idle/ }
    # ratio > 1 means ringtail leads
    function ratio(w, rt, p) {
      if (rt == "" || p == "" || rt + 0 == 0 || p + 0 == 0) return ""
      return lower(w) ? p / rt : rt / p
    }
    function med(k,   n, i, j, t, a) {
      n = cnt[k]; for (i = 1; i <= n; i++) a[i] = val[k, i] + 0
      for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
      return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    BEGIN {
      nw = split("http_hello http_pipelined16 ws_echo_32 ws_echo_16k ws_broadcast_1000 ws_idle_10000 ws_idle_deflate_10000 static_1k static_100k static_10m tls_handshake tls_hello tls_10m", W, " ")
      ns = split("ringtail serve serve_log hyper may_minihttp nginx tokio-tungstenite fastwebsockets limit", S, " ")
      for (i = 1; i <= nw; i++) wknown[W[i]] = 1
      for (i = 1; i <= ns; i++) sknown[S[i]] = 1
    }
    /^#/ || NF < 9 || $1 == "workload" { next }
    {
      if (!($1 in wknown)) { wknown[$1] = 1; W[++nw] = $1 }
      if (!($2 in sknown)) { sknown[$2] = 1; S[++ns] = $2 }
      if ($9 != "-" && $9 + 0 > maxo + 0) dist[$1]++
      runs[$1, $2]++
      if ($col == "-" || $col == "") next
      k = $1 SUBSEP $2; val[k, ++cnt[k]] = $col; used[$2] = 1; wused[$1] = 1
    }
    END {
      nc = 0
      for (i = 1; i <= ns; i++) if (S[i] in used) C[++nc] = S[i]
      if (nc == 0) exit
      nr = 0
      H[0, 0] = "workload"
      for (j = 1; j <= nc; j++) H[0, j] = C[j]
      H[0, nc + 1] = "ringtail vs best peer"
      minr = 1e9; maxr = 0
      for (i = 1; i <= nw; i++) {
        w = W[i]; if (!(w in wused)) continue
        nr++; H[nr, 0] = label(w); rt = ""
        if ((w SUBSEP "ringtail") in cnt) rt = med(w SUBSEP "ringtail")
        best = ""; bestn = ""
        for (j = 1; j <= nc; j++) {
          k = w SUBSEP C[j]
          if (!(k in cnt)) { H[nr, j] = "—"; continue }
          if (cnt[k] < minr) minr = cnt[k]; if (cnt[k] > maxr) maxr = cnt[k]
          m = med(k); H[nr, j] = fmt(m)
          if (C[j] == "ringtail") continue
          r = ratio(w, rt, m)
          if (col != 5 && r != "") H[nr, j] = H[nr, j] sprintf(" (%.2f×)", r)
          # limit is the ceiling, not a peer; serve* and ringtail_* are
          # ringtail itself (its binary, other settings)
          if (r != "" && C[j] != "limit" && C[j] !~ /^(serve|ringtail_)/ && (best == "" || r < best)) { best = r; bestn = C[j] }
        }
        H[nr, nc + 1] = (col == 5 || best == "") ? "" : sprintf("%.2f× (%s)", best, bestn)
        if (w in dist) H[nr, 0] = H[nr, 0] " †"
      }
      for (j = 0; j <= nc + 1; j++) { wd[j] = 3; for (r = 0; r <= nr; r++) if (dlen(H[r, j]) > wd[j]) wd[j] = dlen(H[r, j]) }
      print "### " title
      print ""
      for (r = 0; r <= nr; r++) {
        line = "|"
        for (j = 0; j <= nc + 1; j++) {
          if (j == nc + 1 && col == 5) continue
          cell = H[r, j]; pad = wd[j] - dlen(cell)
          s = ""; for (q = 0; q < pad; q++) s = s " "
          line = line " " (j == 0 ? cell s : s cell) " |"
        }
        print line
        if (r == 0) {
          line = "|"
          for (j = 0; j <= nc + 1; j++) {
            if (j == nc + 1 && col == 5) continue
            s = ""; for (q = 0; q < wd[j]; q++) s = s "-"
            line = line (j == 0 ? " " s " |" : " " substr(s, 2) ": |")
          }
          print line
        }
      }
      print ""
      printf "Medians of %s run(s) per cell", (minr == maxr ? minr : minr "–" maxr)
      if (col != 5) printf "; (×) = ringtail/peer (peer/ringtail for lower-wins rows): above 1 ringtail leads"
      print "."
      for (i = 1; i <= nw; i++) if (W[i] in dist) { printf "† a run of this row kept other_cpu above %s (disturbed machine).\n", maxo; break }
    }' "$1"
}

# results_tables TSV: the three tables bench/run prints: absolute rates,
# rates per second of server CPU, and server CPU.
results_tables() {
  results_table "$1" 4 "Throughput (medians; ratio = ringtail/peer)"
  echo
  results_table "$1" 6 "Per second of server CPU (value ÷ server CPU seconds)"
  echo
  results_table "$1" 5 "Server CPU (fraction of one core, medians)"
}

# ----- HTTP (wrk, nginx) -------------------------------------------------------

# wrk_measure PID URL [DEPTH=1] [TIMEOUT=2]: one measured wrk run against
# server PID:
# WARMUP seconds of unmeasured load first (if WARMUP > 0), then DURATION
# seconds through measure_run (repeated if disturbed), wrk pinned to
# $LOADGEN_CPU with 1 thread and $CONNS connections, each run bounded by
# `timeout`. DEPTH > 1 pipelines DEPTH requests per write (see wrk.lua).
# TIMEOUT (seconds) is wrk's --timeout: answers slower than that are counted
# as timeout errors and left out of the latency percentiles (wrk keeps a
# 8-byte counter per µs up to it, so keep it small).
# Sets WRK_OUT (the key=value line of wrk.lua's done(): requests,
# duration_us, bytes, req_per_s, p50_us, p99_us, errors_*) and the M_*
# variables of measure_end. Warns on stderr if wrk saw errors.
wrk_measure() {
  local pid=$1 url=$2 depth=${3:-1} wrk_timeout=${4:-2} e
  local -a cmd=(taskset -c "$LOADGEN_CPU" wrk -t1 -c"$CONNS" --timeout "${wrk_timeout}s"
    --latency -s "$BENCH_DIR/wrk.lua")
  if ((WARMUP > 0)); then
    timeout $((WARMUP + 30)) "${cmd[@]}" -d"${WARMUP}s" "$url" -- "$depth" >/dev/null \
      || die "wrk warm-up failed: $url"
  fi
  measure_run "$pid" timeout $((DURATION + 30)) "${cmd[@]}" -d"${DURATION}s" "$url" -- "$depth"
  WRK_OUT=$(grep '^requests=' <<< "$MEASURE_OUT") || die "no summary from wrk: $MEASURE_OUT"
  for e in connect read write status timeout; do
    if [[ $(field "errors_$e" "$WRK_OUT") != 0 ]]; then
      log "warning: wrk $url: $e errors: $WRK_OUT"
    fi
  done
}

# ../shared/limit, the machine's ceiling (a column of the HTTP and
# WebSocket rows when LIMIT_DIR holds it), built into target/limit.
LIMIT_DIR=${LIMIT_DIR:-$MAIN_DIR/../shared/limit}
limit_bin=$MAIN_DIR/target/limit/release/limit

# limit_build: builds limit (release) unless NO_BUILD=1 and it is built.
limit_build() {
  if [[ ${NO_BUILD:-0} != 1 || ! -x $limit_bin ]]; then
    log "building limit (release, $LIMIT_DIR)"
    cargo build -q --release --manifest-path "$LIMIT_DIR/Cargo.toml" --target-dir "$MAIN_DIR/target/limit"
  fi
}

# nginx_bin: prints the path of nginx (also looked up in /usr/sbin, which is
# not in every user's PATH).
nginx_bin() {
  command -v nginx 2>/dev/null || { [[ -x /usr/sbin/nginx ]] && echo /usr/sbin/nginx; } \
    || die "nginx not found (apt-get install nginx-light; bench/run installs it)"
}

# nginx_start PORT [ROOT] [CERT KEY]: starts nginx in the foreground (its
# master is SERVER_PID, the one worker its child) on 127.0.0.1:PORT with its
# configuration, logs and temporary paths in $LIB_TMP/nginx-PORT, and waits
# until it accepts connections. /hello answers 200 "Hello, World!"
# (text/plain) from `return`; everything else is a static file under ROOT.
# Configured for speed as nginx's documentation recommends: one worker
# (to match one ringtail event loop), epoll, access log off, sendfile +
# tcp_nopush + tcp_nodelay, open_file_cache for the file descriptors and
# stat results, keep-alive connections never closed for their request
# count during a run.
# With CERT and KEY (PEM files) the listener is HTTPS instead (`listen …
# ssl`, `ssl_protocols TLSv1.2 TLSv1.3`; everything else of nginx's TLS
# left at its defaults: session tickets on, no session cache, ECDH curves
# `auto`, ssl_buffer_size 16k; without kTLS nginx does not sendfile over
# TLS but reads the file into its output buffers and SSL_write()s them).
nginx_start() {
  local port=$1 root=${2:-$LIB_TMP} cert=${3:-} key=${4:-} dir=$LIB_TMP/nginx-$1
  local listen="listen 127.0.0.1:$port;"
  if [[ -n $cert ]]; then
    listen="listen 127.0.0.1:$port ssl;
        ssl_certificate $cert;
        ssl_certificate_key $key;
        ssl_protocols TLSv1.2 TLSv1.3;"
  fi
  mkdir -p "$dir"
  cat > "$dir/nginx.conf" <<NGX
worker_processes 1;
daemon off;
error_log $dir/error.log warn;
pid $dir/nginx.pid;
worker_rlimit_nofile 65536;
events {
    worker_connections 16384;
    use epoll;
}
http {
    access_log off;
    server_tokens off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 300s;
    keepalive_requests 1000000000;
    open_file_cache max=1000 inactive=60s;
    open_file_cache_valid 60s;
    open_file_cache_min_uses 1;
    open_file_cache_errors on;
    default_type application/octet-stream;
    client_body_temp_path $dir/client_body;
    proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fastcgi;
    uwsgi_temp_path $dir/uwsgi;
    scgi_temp_path $dir/scgi;
    server {
        $listen
        root $root;
        location = /hello {
            default_type text/plain;
            return 200 "Hello, World!";
        }
    }
}
NGX
  server_start "nginx-$port" "$port" "$(nginx_bin)" -p "$dir" -c "$dir/nginx.conf"
}
