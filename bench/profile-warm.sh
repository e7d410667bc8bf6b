#!/usr/bin/env bash
# Where warm serving (a cached file, curl downloads) spends the mirror's time: perf samples
# (cpu-clock: this VM has no hardware counters) of olah-cli during N warm GETs of SIZE bytes,
# and `perf stat -e task-clock` of the same GETs. Writes bench/results/profile-warm[-LABEL].txt.
# Usage: bash bench/profile-warm.sh [SIZE_BYTES] [N]   (default 256 MiB, 3; needs perf: linux-perf)
# Environment: PROFILE_OLAH_RS (another olah-cli binary, e.g. a baseline), PROFILE_WHAT (its
# name in the output), PROFILE_LABEL (output file suffix),
# PROFILE_CONNS=N (the load is N concurrent 1 MiB ranged GETs from one asyncio client instead
# of the curls: bench/lib/httpc.py's many_connections), OLAH_BENCH_NO_BUILD=1.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE=${1:-268435456}
N=${2:-3}
BIN=${PROFILE_OLAH_RS:-target/release/olah-cli}
HUBBIN=${PROFILE_FAKEHUB:-target/release/olah-fakehub}
OUT=bench/results/profile-warm${PROFILE_LABEL:+-$PROFILE_LABEL}.txt
command -v perf >/dev/null || { echo "perf not found (Debian package linux-perf)"; exit 1; }
[ -n "${OLAH_BENCH_NO_BUILD:-}" ] || cargo build --release -q -p olah-cli -p olah-testkit --bins
W=$(mktemp -d)
cleanup() { kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$W"; }
trap cleanup EXIT
"$HUBBIN" --big-size "$SIZE" --xet-size 1048576 > "$W/hub.json" 2>/dev/null &
HUBPID=$!
for _ in $(seq 600); do [ -s "$W/hub.json" ] && break; sleep 0.1; done
HUB=$(python3 -c "import json;print(json.load(open('$W/hub.json'))['hub'])")
CDN=$(python3 -c "import json;print(json.load(open('$W/hub.json'))['cdn'])")
PORT=$(python3 -c "import socket;s=socket.socket();s.bind(('127.0.0.1',0));print(s.getsockname()[1])")
"$BIN" --host 127.0.0.1 --port "$PORT" --hf-scheme http --hf-netloc "${HUB#http://}" \
  --hf-lfs-netloc "${CDN#http://}" --repos-path "$W/repos" 2>/dev/null &
MPID=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && break; sleep 0.1; done
U="http://127.0.0.1:$PORT/acme/big/resolve/main/big.bin"
curl -s -L -o /dev/null "$U" # fill
sleep 2                      # the fill's hash check; the file quiet
curl -s -L -o /dev/null "$U" # first warm read (checks every block)
perf stat -e task-clock -p "$MPID" -o "$W/stat.txt" &
STAT=$!
perf record -q -e cpu-clock -F 999 -g -p "$MPID" -o "$W/perf.data" 2>/dev/null &
PERF=$!
sleep 0.5
speeds=""
if [ -n "${PROFILE_CONNS:-}" ]; then
  load=$(python3 -c "
import random, sys
sys.path.insert(0, 'bench/lib')
from httpc import many_connections
r = random.Random(6)
offs = [r.randrange(0, $SIZE - (1 << 20)) for _ in range($PROFILE_CONNS)]
res = many_connections('$U', $PROFILE_CONNS, offs, 1 << 20, 60)
print(f\"{res['done']} of $PROFILE_CONNS GETs done in {res['wall_s']:.1f} s\")")
else
  for _ in $(seq "$N"); do speeds+="$(curl -s -L -o /dev/null -w '%{speed_download}' "$U") "; done
  load="curl MB/s: $(for s in $speeds; do python3 -c "print(f'{$s/1e6:.0f}', end=' ')"; done)"
fi
kill -INT $PERF $STAT; wait $PERF 2>/dev/null || true; wait $STAT 2>/dev/null || true
{
  if [ -n "${PROFILE_CONNS:-}" ]; then what="$PROFILE_CONNS concurrent 1 MiB ranged GETs"; else what="$N warm GETs"; fi
  echo "# bench/profile-warm.sh — $(date -u +%Y-%m-%d): $what of a cached $SIZE-byte file, ${PROFILE_WHAT:-$(basename "$BIN")}"
  echo
  echo "$load"
  echo "perf stat of olah-cli during the GETs: $(grep -E 'task-clock' "$W/stat.txt" | sed 's/^ *//')"
  echo
  echo "## olah-cli, by symbol (self time, cpu-clock samples)"
  echo
  (perf report -i "$W/perf.data" --no-children --sort sym --stdio -g none 2>/dev/null | grep -E '^ +[0-9]' | head -25) || true
  echo
  echo "## olah-cli, by where the time went (kernel vs the binary vs libc)"
  echo
  (perf report -i "$W/perf.data" --no-children --sort dso --stdio -g none 2>/dev/null | grep -E '^ +[0-9]' | head -8) || true
} | tee "$OUT"
