#!/usr/bin/env bash
# Where a cold (cache-miss) download spends the mirror's time: perf samples (cpu-clock: this VM
# has no hardware counters) of olah-cli while curl pulls SIZE bytes through it from the fake Hub,
# unshaped, plus the CPU seconds of each process. Writes bench/results/profile-cold.txt.
# Usage: bash bench/profile-cold.sh [SIZE_BYTES]   (default 512 MiB; needs perf: linux-perf)
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE=${1:-536870912}
command -v perf >/dev/null || { echo "perf not found (Debian package linux-perf)"; exit 1; }
[ -n "${OLAH_BENCH_NO_BUILD:-}" ] || cargo build --release -q -p olah-cli -p olah-testkit --bins
W=$(mktemp -d)
cleanup() { kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$W"; }
trap cleanup EXIT
target/release/olah-fakehub --big-size "$SIZE" > "$W/hub.json" 2>/dev/null &
HUBPID=$!
for _ in $(seq 600); do [ -s "$W/hub.json" ] && break; sleep 0.1; done
HUB=$(python3 -c "import json;print(json.load(open('$W/hub.json'))['hub'])")
CDN=$(python3 -c "import json;print(json.load(open('$W/hub.json'))['cdn'])")
PORT=$(python3 -c "import socket;s=socket.socket();s.bind(('127.0.0.1',0));print(s.getsockname()[1])")
target/release/olah-cli --host 127.0.0.1 --port "$PORT" --hf-scheme http --hf-netloc "${HUB#http://}" \
  --hf-lfs-netloc "${CDN#http://}" --repos-path "$W/repos" 2>/dev/null &
MPID=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && break; sleep 0.1; done
cpu() { awk '{print ($14+$15)/100}' "/proc/$1/stat"; }
U=/acme/big/resolve/main/big.bin
direct=$(curl -s -L -o /dev/null -w '%{speed_download}' "$HUB$U")
m0=$(cpu $MPID); h0=$(cpu $HUBPID)
perf record -q -e cpu-clock -F 999 -g -p "$MPID" -o "$W/perf.data" 2>/dev/null &
PERF=$!
sleep 0.5
t0=$(date +%s.%N)
cold=$(curl -s -o /dev/null -w '%{speed_download}' "http://127.0.0.1:$PORT$U")
t1=$(date +%s.%N)
sleep 1 # the fill's final hash check
kill -INT $PERF; wait $PERF 2>/dev/null || true
m1=$(cpu $MPID); h1=$(cpu $HUBPID)
{
  echo "# bench/profile-cold.sh — $(date -u +%Y-%m-%d): cold GET of $SIZE bytes, unshaped"
  echo
  echo "direct (curl from the fake): $(python3 -c "print(f'{$direct/1e6:.0f}')") MB/s;" \
       "through olah-rs, cold: $(python3 -c "print(f'{$cold/1e6:.0f}')") MB/s ($(python3 -c "print(f'{$t1-$t0:.2f}')") s)"
  echo "CPU seconds during the cold GET (+1 s): olah-cli $(python3 -c "print(f'{$m1-$m0:.2f}')"), fake Hub $(python3 -c "print(f'{$h1-$h0:.2f}')") (2 cores in all)"
  echo
  echo "## olah-cli, by symbol (self time, cpu-clock samples)"
  echo
  (perf report -i "$W/perf.data" --no-children --sort sym --stdio -g none 2>/dev/null | grep -E '^ +[0-9]' | head -25) || true
  echo
  echo "## olah-cli, by where the time went (kernel vs the binary vs libc)"
  echo
  (perf report -i "$W/perf.data" --no-children --sort dso --stdio -g none 2>/dev/null | grep -E '^ +[0-9]' | head -8) || true
} | tee bench/results/profile-cold.txt
