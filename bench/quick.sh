#!/usr/bin/env bash
# Quick figures against the test kit's fake Hub on loopback (not the full issue-5 benchmark):
# cold / warm single-stream throughput of a SIZE-byte file, 8 parallel warm clients, and the
# upstream bytes caused by 8 concurrent cold clients. Usage: bash bench/quick.sh [SIZE_BYTES]
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE=${1:-1073741824}
cargo build --release -q -p olah-cli -p olah-testkit --bins
W=$(mktemp -d); trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$W"' EXIT
target/release/olah-fakehub --big-size "$SIZE" > "$W/hub.json" &
for _ in $(seq 100); do [ -s "$W/hub.json" ] && break; sleep 0.1; done
HUB=$(python3 -c "import json,sys;print(json.load(open('$W/hub.json'))['hub'])")
CDN=$(python3 -c "import json,sys;print(json.load(open('$W/hub.json'))['cdn'])")
start_mirror() {
  PORT=$1; rm -rf "$W/repos$PORT"
  target/release/olah-cli --host 127.0.0.1 --port "$PORT" --hf-scheme http --hf-netloc "${HUB#http://}" \
    --hf-lfs-netloc "${CDN#http://}" --repos-path "$W/repos$PORT" --log-path "$W/logs" 2>/dev/null &
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && break; sleep 0.1; done
}
mbps() { python3 -c "print(f'{$1/1e6:.0f} MB/s')"; }
U=/acme/big/resolve/main/big.bin
echo "file size: $SIZE bytes"
echo "direct (fake CDN): $(mbps "$(curl -s -L -o /dev/null -w '%{speed_download}' "$HUB$U")")"
start_mirror 18901
echo "cold single:       $(mbps "$(curl -s -o /dev/null -w '%{speed_download}' "http://127.0.0.1:18901$U")")"
sleep 1
echo "warm single:       $(mbps "$(curl -s -o /dev/null -w '%{speed_download}' "http://127.0.0.1:18901$U")")"
T0=$(date +%s.%N)
for i in $(seq 8); do curl -s -o /dev/null "http://127.0.0.1:18901$U" & done; wait $(jobs -p | tail -8) 2>/dev/null || true
T1=$(date +%s.%N)
echo "warm 8 parallel:   $(python3 -c "print(f'{8*$SIZE/($T1-$T0)/1e6:.0f} MB/s aggregate')")"
start_mirror 18902
curl -s -X POST "$HUB/__admin/reset" >/dev/null
for i in $(seq 8); do curl -s -o /dev/null "http://127.0.0.1:18902$U" & done
sleep 0.5; while pgrep -f "curl -s -o /dev/null http://127.0.0.1:18902" >/dev/null; do sleep 0.2; done
CDNB=$(curl -s "$HUB/__admin/stats" | python3 -c "import json,sys;print(json.load(sys.stdin)['cdn_bytes'])")
echo "8 concurrent cold: upstream bytes = $CDNB ($(python3 -c "print(f'{$CDNB/$SIZE:.3f}')") x file size)"
RSS=$(ps -o rss= -C olah-cli | sort -n | tail -1)
echo "peak-ish RSS of a mirror after the runs: $((RSS/1024)) MiB"
