#!/usr/bin/env bash
# bench/run.sh — the issue-5 benchmark, one command:
#
#   bash bench/run.sh                      # full run: big.bin = 1 GiB (≈ 8 min on 2 cores)
#   BENCH_SIZE=128M bash bench/run.sh      # quick run (≈ 2.5 min)
#
# In one run, on this machine, with the same fake upstream (target/release/olah-fakehub) and the
# same file (acme/big's big.bin), it measures olah-rs against: direct (no mirror), nginx static
# (sendfile from disk: the limit), nginx proxy_cache + slice (the do-it-yourself mirror) and
# olah 0.5.4 from PyPI (the peer). It writes bench/RESULTS.md (issue 13's rows side by side with
# nginx static first, then every row of issue 5, with the targets marked met / not met),
# bench/results/chart.png and bench/results/results.json (every raw figure).
# What each scenario measures: bench/README.md.
#
# It installs what is missing: nginx and curl (apt-get), olah 0.5.4 in bench/.venv-olah,
# matplotlib + huggingface_hub 2.4.0 in bench/.venv-tools (pip), and builds olah-rs
# (cargo build --release -p olah-cli -p olah-testkit --bins). Everything listens on 127.0.0.1
# only; every server it starts is stopped on exit (its own process groups only) and the work
# directory (bench/work/run.*) is deleted.
#
# Environment (all optional):
#   BENCH_SIZE         size of big.bin: bytes or with K/M/G suffix (powers of 1024) [1G]
#   BENCH_SYSTEMS      comma list of direct,nginx-static,nginx-cache,olah,olah-rs [all]
#   BENCH_LATENCY_MS   upstream latency of the shaped runs [50]
#   BENCH_BW           upstream bandwidth of the shaped runs, bytes/s [50000000 = 400 Mbit/s]
#   BENCH_SLICE        nginx slice size of the proxy_cache mirror [4m]
#   BENCH_PARALLEL     clients of the parallel scenarios [8]
#   BENCH_RANGE_N      1 MiB range reads per system [8]
#   BENCH_COLD_N       cold metadata samples per system (one fresh server each) [7]
#   BENCH_OUT          raw results directory [bench/results]; when set, RESULTS.md goes there too
#                      (else to bench/RESULTS.md)
#   BENCH_TIMEOUT      hard limit of the measuring part, seconds [2400]
#   BENCH_CONNS        connections of the many-connections row [1000]
#   BENCH_CONN_RANGE   bytes of each of their ranged GETs [1M]
#   BENCH_GROW         size of the bigger file of the "memory flat as files grow" row
#                      [1G, or 2 x BENCH_SIZE when that is 1G or more; 0 = skip the row]
#   BENCH_NOTE         a sentence added to RESULTS.md (e.g. "machine busy compiling")
#   BENCH_NO_BUILD=1   use the existing target/release binaries as they are
#   BENCH_OLAH_RS      another olah-cli binary to measure (e.g. a baseline build) [target/release/olah-cli]
#   BENCH_FAKEHUB      another olah-fakehub binary [target/release/olah-fakehub]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
B=$ROOT/bench
CMDLINE=""
for v in $(compgen -e | grep -E '^BENCH_' | grep -v '^BENCH_NOTE$' | sort); do
  if [[ ${!v} =~ ^[A-Za-z0-9_,./:=+-]*$ ]]; then CMDLINE+="$v=${!v} "; else CMDLINE+="$v=$(printf %q "${!v}") "; fi
done
CMDLINE+="bash bench/run.sh $*"

to_bytes() {
  local v=${1^^}
  case $v in
    *G|*GB|*GIB) v=${v%%G*}; echo $((v << 30)) ;;
    *M|*MB|*MIB) v=${v%%M*}; echo $((v << 20)) ;;
    *K|*KB|*KIB) v=${v%%K*}; echo $((v << 10)) ;;
    *) echo "$v" ;;
  esac
}
SIZE=$(to_bytes "${BENCH_SIZE:-1G}")
if [ -n "${BENCH_GROW:-}" ]; then GROW=$(to_bytes "$BENCH_GROW")
elif [ "$SIZE" -ge $((1 << 30)) ]; then GROW=$((SIZE * 2))
else GROW=$((1 << 30)); fi
PARALLEL=${BENCH_PARALLEL:-8}
OUT=${BENCH_OUT:-$B/results}
MD=$B/RESULTS.md
[ -n "${BENCH_OUT:-}" ] && MD=$OUT/RESULTS.md
log() { printf '[run.sh %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

# ---- tools ------------------------------------------------------------------------------------
apt_install() {
  # Never let a package's post-install start a service (e.g. nginx on :80): policy-rc.d says no.
  local guard=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    guard=1
  fi
  (apt-get install -y -q --no-install-recommends "$@" || { apt-get update -q && apt-get install -y -q --no-install-recommends "$@"; }) >&2
  [ -n "$guard" ] && rm -f /usr/sbin/policy-rc.d
  return 0
}
command -v curl >/dev/null || { log "installing curl"; DEBIAN_FRONTEND=noninteractive apt_install curl; }
NGINX=$(command -v nginx || true)
[ -z "$NGINX" ] && [ -x /usr/sbin/nginx ] && NGINX=/usr/sbin/nginx
if [ -z "$NGINX" ]; then
  log "installing nginx (Debian package)"
  DEBIAN_FRONTEND=noninteractive apt_install nginx
  NGINX=/usr/sbin/nginx
fi
if ! "$NGINX" -V 2>&1 | grep -q -- --with-http_slice_module; then
  log "this nginx has no slice module; the proxy_cache mirror caches whole files"
  echo "nginx without slice module is not supported by this script" >&2; exit 1
fi

if [ ! -x "$B/.venv-olah/bin/olah-cli" ]; then
  log "creating bench/.venv-olah with olah==0.5.4 (PyPI)"
  python3 -m venv "$B/.venv-olah"
  "$B/.venv-olah/bin/pip" install -q olah==0.5.4 >&2
fi
if ! "$B/.venv-tools/bin/python" -c 'import matplotlib, huggingface_hub' 2>/dev/null; then
  log "creating bench/.venv-tools (matplotlib, huggingface_hub 2.4.0)"
  python3 -m venv "$B/.venv-tools"
  "$B/.venv-tools/bin/pip" install -q matplotlib huggingface_hub==2.4.0 >&2
fi
PY=$B/.venv-tools/bin/python

if [ "${BENCH_NO_BUILD:-}" != 1 ]; then
  log "cargo build --release -p olah-cli -p olah-testkit --bins"
  cargo build --release -q -p olah-cli -p olah-testkit --bins
fi
OLAH_RS=${BENCH_OLAH_RS:-target/release/olah-cli}
FAKEHUB=${BENCH_FAKEHUB:-target/release/olah-fakehub}
for f in "$OLAH_RS" "$FAKEHUB"; do
  [ -x "$f" ] || { echo "missing $f (build it, or unset BENCH_NO_BUILD)" >&2; exit 1; }
done

# ---- run ---------------------------------------------------------------------------------------
mkdir -p "$B/work" "$OUT"
W=$(mktemp -d "$B/work/run.XXXXXX")
# The huggingface_hub clients write the file they download: on tmpfs when it has room (else the
# client rows measure this machine's disk, not the server), in the work directory otherwise.
HFD=$W
SHM_FREE=$(df -B1 --output=avail /dev/shm 2>/dev/null | tail -1 || echo 0)
if [ "${SHM_FREE:-0}" -gt $((SIZE * (PARALLEL + 2) + (2 << 30))) ]; then
  HFD=$(mktemp -d /dev/shm/olah-bench-hf.XXXXXX)
fi
BENCH_PID=""
cleanup() {
  # Stop the harness (it stops its servers itself), then every process group it started that is
  # still there (the pgids file lists only ours), then delete the work directory.
  if [ -n "$BENCH_PID" ] && kill -0 "$BENCH_PID" 2>/dev/null; then
    kill -TERM "$BENCH_PID" 2>/dev/null || true
    for _ in $(seq 150); do kill -0 "$BENCH_PID" 2>/dev/null || break; sleep 0.1; done
  fi
  if [ -f "$W/pgids" ]; then
    while read -r pg; do
      [ -n "$pg" ] && kill -TERM -- "-$pg" 2>/dev/null || true
    done < "$W/pgids"
    sleep 0.5
    while read -r pg; do
      [ -n "$pg" ] && kill -KILL -- "-$pg" 2>/dev/null || true
    done < "$W/pgids"
  fi
  rm -rf "$W"
  [ "$HFD" != "$W" ] && rm -rf "$HFD"
  return 0
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log "big.bin = $SIZE bytes; work dir $W"
FREE=$(df -B1 --output=avail "$B/work" | tail -1)
NEED=$((SIZE * (4 + PARALLEL) + GROW))
if [ "$FREE" -lt "$NEED" ]; then
  echo "need about $((NEED >> 20)) MiB free under bench/work" >&2; exit 1
fi
set +e
timeout --signal=TERM --kill-after=30 "${BENCH_TIMEOUT:-2400}" \
  "$PY" "$B/lib/bench.py" \
    --size "$SIZE" --work "$W" --out "$W/results.json" \
    --systems "${BENCH_SYSTEMS:-direct,nginx-static,nginx-cache,olah,olah-rs}" \
    --fakehub "$FAKEHUB" --olah-rs "$OLAH_RS" --hf-dir "$HFD" \
    --olah-py "$B/.venv-olah/bin/olah-cli" --nginx "$NGINX" --hf-python "$PY" \
    --nginx-slice "${BENCH_SLICE:-4m}" \
    --latency-ms "${BENCH_LATENCY_MS:-50}" --bandwidth "${BENCH_BW:-50000000}" \
    --conns "${BENCH_CONNS:-1000}" --conn-range "$(to_bytes "${BENCH_CONN_RANGE:-1M}")" --grow-size "$GROW" \
    --parallel "$PARALLEL" --range-n "${BENCH_RANGE_N:-8}" --cold-n "${BENCH_COLD_N:-7}" &
BENCH_PID=$!
wait "$BENCH_PID"
RC=$?
BENCH_PID=""
set -e
[ -s "$W/results.json" ] || { echo "no results (exit $RC)" >&2; exit 1; }
cp "$W/results.json" "$OUT/results.json"
[ $RC -ne 0 ] && log "measuring part exited with $RC: the report shows what was measured"

"$PY" "$B/lib/report.py" --results "$OUT/results.json" --out "$OUT" --md "$MD" --command "$CMDLINE" \
  --nginx "$NGINX" --olah-py "$B/.venv-olah/bin/python" \
  --note "${BENCH_NOTE:-}"
log "wrote $MD, $OUT/chart.png, $OUT/results.json"
exit $RC
