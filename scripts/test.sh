#!/usr/bin/env bash
# The whole test suite, from a fresh machine: Rust tests, then the real-client suite
# (huggingface_hub + hf_xet from the Python package index, in .venv) against the test kit's
# fake Hub and the mirror.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r tests/python/requirements.txt

cargo build --workspace --bins
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast
else
  cargo test --workspace --no-fail-fast
fi

OLAH_BIN_DIR="$PWD/target/debug" .venv/bin/python -m pytest tests/python -q -p no:cacheprovider --timeout 300
