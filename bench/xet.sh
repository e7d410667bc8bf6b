#!/usr/bin/env bash
# Xet through the mirror, measured with the real client (huggingface_hub 2.4.0 + hf_xet 1.8.0 from
# the test venv): one Xet-backed file (acme/xet-big@v1 of the fake Hub, SIZE bytes) downloaded
#   direct        hf_xet straight from the fake Hub's CAS (no mirror)
#   mirror cold   hf_xet through a mirror with an empty cache
#   mirror warm   a second hf_xet client (new HF_HOME)
#   plain 1st     HF_HUB_DISABLE_XET=1 client: the mirror rebuilds the file from its cached xorbs
#   plain 2nd     the same again (now a blob hit)
#   revision 2    hf_xet download of main (4 KiB patched in the middle): upstream xorb bytes
# and the mirror's peak RSS (VmHWM). Upstream bytes come from the fake's counters.
# Usage: bash bench/xet.sh [SIZE_BYTES]   (default 1 GiB; writes bench/results/xet.md)
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE=${1:-1073741824}
BIN=${OLAH_BENCH_BIN:-target/release}
PY=${OLAH_BENCH_PY:-.venv/bin/python}
[ -x "$PY" ] || { echo "no $PY: run scripts/test.sh once (it creates the client venv)"; exit 1; }
if [ -z "${OLAH_BENCH_BIN:-}" ]; then cargo build --release -q -p olah-cli -p olah-testkit --bins; fi
W=$(mktemp -d)
cleanup() { kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$W"; }
trap cleanup EXIT
"$BIN/olah-fakehub" --big-size 1048576 --xet-size "$SIZE" > "$W/hub.json" 2>/dev/null &
for _ in $(seq 1200); do [ -s "$W/hub.json" ] && break; sleep 0.1; done
HUB=$(python3 -c "import json;print(json.load(open('$W/hub.json'))['hub'])")
CDN=$(python3 -c "import json;print(json.load(open('$W/hub.json'))['cdn'])")
PORT=$(python3 -c "import socket;s=socket.socket();s.bind(('127.0.0.1',0));print(s.getsockname()[1])")
"$BIN/olah-cli" --host 127.0.0.1 --port "$PORT" --hf-scheme http --hf-netloc "${HUB#http://}" \
  --hf-lfs-netloc "${CDN#http://}" --repos-path "$W/repos" 2>/dev/null &
MPID=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && break; sleep 0.1; done
M="http://127.0.0.1:$PORT"

reset() { curl -s -X POST "$HUB/__admin/reset" -H 'content-type: application/json' -d '{}' >/dev/null; }
xorb_bytes() { curl -s "$HUB/__admin/stats" | python3 -c "import json,sys;print(json.load(sys.stdin)['xorb_bytes'])"; }
# dl ENDPOINT REVISION DISABLE_XET -> seconds
dl() {
  rm -rf "$W/home"
  HF_HOME="$W/home" HF_ENDPOINT="$1" HF_XET_TELEMETRY_ENABLED=false HF_HUB_DISABLE_XET="$3" \
    HF_HUB_DISABLE_PROGRESS_BARS=1 "$PY" -c "
import time
from huggingface_hub import hf_hub_download
t = time.time(); hf_hub_download('acme/xet-big', 'weights.bin', revision='$2'); print(time.time() - t)"
}
rows=()
row() { # label seconds
  rows+=("| $1 | $(python3 -c "print(f'{$SIZE/$2/1e6:.0f}')") | $(python3 -c "print(f'{$2:.2f}')") | $(xorb_bytes) |")
}
reset; t=$(dl "$HUB" v1 0); row "direct (hf_xet → fake CAS)" "$t"
reset; t=$(dl "$M" v1 0); row "mirror cold (hf_xet)" "$t"
reset; t=$(dl "$M" v1 0); row "mirror warm (hf_xet)" "$t"
reset; t=$(dl "$M" v1 1); row "mirror, plain client after hf_xet (rebuilt from xorbs)" "$t"
reset; t=$(dl "$M" v1 1); row "mirror, plain client again (blob hit)" "$t"
reset; t=$(dl "$M" main 0); row "mirror, revision 2 (4 KiB changed) with hf_xet" "$t"
RSS=$(awk '/VmHWM/ {print int($2/1024)}' "/proc/$MPID/status")
{
  echo "# bench/xet.sh — $(date -u +%Y-%m-%d)"
  echo
  echo "\`bash bench/xet.sh $SIZE\` on $(nproc) cores, $(awk '/MemTotal/ {print int($2/1048576)}' /proc/meminfo) GiB,"
  echo "$(uname -sr); fake Hub on loopback, no shaping; client: huggingface_hub 2.4.0 + hf_xet 1.8.0."
  echo
  echo "| download of a $SIZE-byte Xet file | MB/s | seconds | upstream xorb bytes |"
  echo "|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
  echo
  echo "Mirror peak RSS over the whole run: $RSS MiB."
} | tee bench/results/xet.md
