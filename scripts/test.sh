#!/usr/bin/env bash
# The whole test suite, from a fresh machine (Rust toolchain and python3; missing Debian packages —
# python3-venv, nodejs + npm, chromium — are installed with apt-get when run as root or with sudo):
#   1. .venv at the repo root with the pinned real clients (tests/python/requirements.txt),
#      and huggingface.js under tests/js (npm),
#      and chromium (apt-get, when missing and possible) for the admin page test,
#   2. debug build of every binary (olah-cli, olah-fakehub, ...), and the pip wheel of olah-cli
#      (maturin) installed into a fresh venv (target/wheel-venv),
#   3. Rust tests (cargo nextest, or cargo test without it),
#   4. the real-client suite (pytest tests/python) against the fake Hub and the mirror.
# Extra arguments go to pytest (e.g. `scripts/test.sh -k snapshot -x`).
# Env: OLAH_TEST_TARGET=direct runs the Python suite against the fake Hub without the mirror;
#      OLAH_TEST_SKIP_RUST=1 skips step 3; PYTHON picks the interpreter for the venv (default python3);
#      OLAH_TEST_TIMEOUT is the per-test timeout in seconds (default 300);
#      OLAH_TEST_WHEEL=dev|release|skip: how the pip wheel is built (default dev, see below).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PYTHON="${PYTHON:-python3}"
VENV=.venv
REQ=tests/python/requirements.txt

# Debian packages the suite needs when they are missing (a fresh machine): as root, or with
# passwordless sudo. Returns non-zero when they cannot be installed.
apt_updated=0
apt_install() {
  local sudo=()
  if [ "$(id -u)" != "0" ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo=(sudo -n); else return 1; fi
  fi
  if [ "$apt_updated" = 0 ]; then
    "${sudo[@]}" apt-get update -qq || return 1
    apt_updated=1
  fi
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
}

if [ ! -x "$VENV/bin/python" ]; then
  echo "== creating $VENV"
  if ! "$PYTHON" -m venv "$VENV"; then
    # Debian splits venv (ensurepip) into its own package.
    rm -rf "$VENV"
    echo "   installing python3-venv (apt-get)"
    apt_install python3-venv
    "$PYTHON" -m venv "$VENV"
  fi
fi
# Install only when the requirements changed since the last successful install.
stamp="$VENV/.olah-test-requirements.sha256"
want="$(sha256sum "$REQ" | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "== installing $REQ"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQ"
  echo "$want" > "$stamp"
fi

# huggingface.js for the Xet tests (pinned in tests/js/package.json; no lock file is kept).
if [ ! -d tests/js/node_modules/@huggingface/hub ]; then
  if ! command -v npm >/dev/null 2>&1; then
    echo "== installing nodejs + npm (apt-get) for the huggingface.js tests"
    apt_install nodejs npm
  fi
  echo "== npm install (tests/js)"
  (cd tests/js && npm install --no-package-lock --no-audit --no-fund --silent)
fi

# Chromium (Debian's package) for the admin page test (tests/python/test_admin.py renders the
# page headless). Installed when missing and possible; without it that test skips, saying so.
if ! command -v chromium >/dev/null 2>&1; then
  echo "== installing chromium (apt-get) for the admin page test"
  apt_install chromium || echo "   could not install chromium: the browser test will skip"
fi

echo "== cargo build --workspace --bins"
cargo build --workspace --bins

# The pip wheel (maturin, binary bindings; pyproject.toml), installed into a fresh venv where
# tests/python/test_ops.py runs its olah-cli. By default it packages the debug build just made
# (same profile and target dir: no rebuild; stored, not compressed: ~10 s); OLAH_TEST_WHEEL=release
# builds what `pip install .` would (release profile: a full release build); =skip leaves it out
# (the wheel test then skips).
WHEEL_MODE="${OLAH_TEST_WHEEL:-dev}"
WHEEL_VENV=target/wheel-venv
case "$WHEEL_MODE" in
  dev) wheel_opts=(--profile dev --compression-method stored) ;;
  release) wheel_opts=(--release) ;;
  skip) ;;
  *) echo "OLAH_TEST_WHEEL must be dev, release or skip, not $WHEEL_MODE" >&2; exit 2 ;;
esac
if [ "$WHEEL_MODE" != skip ]; then
  echo "== wheel ($WHEEL_MODE): maturin build, installed into a fresh $WHEEL_VENV"
  rm -rf target/wheels "$WHEEL_VENV"
  "$VENV/bin/maturin" build --quiet "${wheel_opts[@]}" --out target/wheels
  "$VENV/bin/python" -m venv --without-pip "$WHEEL_VENV"
  "$VENV/bin/python" -m pip --python "$WHEEL_VENV/bin/python" install --quiet --no-index --no-deps \
    --disable-pip-version-check target/wheels/olah_rs-*.whl
  export OLAH_WHEEL_VENV="$PWD/$WHEEL_VENV"
fi

if [ "${OLAH_TEST_SKIP_RUST:-0}" != "1" ]; then
  if cargo nextest --version >/dev/null 2>&1; then
    echo "== cargo nextest run --workspace"
    cargo nextest run --workspace --no-fail-fast
  else
    echo "== cargo test --workspace (cargo-nextest not found)"
    cargo test --workspace --no-fail-fast
  fi
fi

echo "== pytest tests/python (target: ${OLAH_TEST_TARGET:-mirror})"
OLAH_BIN_DIR="$PWD/target/debug" "$VENV/bin/python" -m pytest tests/python -q \
  --timeout "${OLAH_TEST_TIMEOUT:-300}" "$@"

# The same suite with the client talking straight to the fake Hub (no mirror): keeps the fake
# honest against the real client, Xet CAS included. Skipped when a target was chosen explicitly.
if [ -z "${OLAH_TEST_TARGET:-}" ]; then
  echo "== pytest tests/python (target: direct, checks the fake Hub against the real client)"
  OLAH_TEST_TARGET=direct OLAH_BIN_DIR="$PWD/target/debug" "$VENV/bin/python" -m pytest tests/python -q \
    --timeout "${OLAH_TEST_TIMEOUT:-300}" "$@"
fi
