"""Operating the mirror: `olah-cli config show [--sources]` (the effective configuration, read
back with `-c`), `--log-format json` (one JSON object per line, no token anywhere), and the pip
wheel (`olah-cli` on PATH of a fresh venv)."""

import glob
import json
import os
import shutil
import subprocess
import time
import tomllib

import pytest

from conftest import BIN, ROOT, Proc, free_port, http, mirror_only

pytestmark = mirror_only

SECRET = "hf_secretOps0123456789abcdefXYZ"


def olah(*args, env=None, cwd=None, binary=None):
    """Runs olah-cli to completion: (rc, stdout, stderr)."""
    e = {k: v for k, v in os.environ.items() if not k.startswith(("OLAH_", "HF_"))}
    e.update(env or {})
    p = subprocess.run(
        [binary or os.path.join(BIN, "olah-cli"), *args],
        capture_output=True,
        text=True,
        env=e,
        cwd=cwd,
        timeout=60,
    )
    return p.returncode, p.stdout, p.stderr


# --------------------------------------------------------------------------------------------
# config show


def test_config_show_says_where_each_value_came_from_and_reads_back(tmp_path):
    conf = tmp_path / "olah.toml"
    conf.write_text(
        '[basic]\nport = 9000\ncache-size-limit = "10G"\n\n'
        '[[accessibility.proxy]]\nrepo = "acme/*"\nallow = true\n'
    )
    env = {"OLAH_ADMIN_TOKEN": SECRET}
    args = ["-c", str(conf), "--offline", "config", "show", "--host", "127.0.0.2"]
    rc, out, err = olah(*args, "--sources", env=env, cwd=tmp_path)
    assert rc == 0, err
    assert SECRET not in out + err
    lines = out.splitlines()
    for want in (
        f"port = 9000  # file ({conf}:2)",
        f"cache-size-limit = {10 << 30}  # file ({conf}:3)",
        'host = "127.0.0.2"  # flag --host',
        "offline = true  # flag --offline",
        'repos-path = "./repos"  # default',
        'mirror-netloc = "127.0.0.2:9000"  # derived from host, port',
        f"[[accessibility.proxy]]  # file ({conf}:5)",
        'token = "<redacted>"  # env OLAH_ADMIN_TOKEN',
    ):
        assert want in lines, f"{want!r} not in:\n{out}"

    # It is TOML in olah's layout.
    doc = tomllib.loads(out)
    assert doc["basic"]["port"] == 9000
    assert doc["accessibility"]["proxy"] == [{"repo": "acme/*", "allow": True, "use_re": False}]
    assert doc["admin"]["token"] == "<redacted>"

    # Fed back with -c (and the same environment), it is the same configuration.
    rc, plain, err = olah(*args, env=env, cwd=tmp_path)
    assert rc == 0, err
    assert "#" not in "".join(line for line in plain.splitlines() if not line.startswith("#"))
    shown = tmp_path / "shown.toml"
    shown.write_text(out)
    rc, again, err = olah("-c", str(shown), "config", "show", env=env, cwd=tmp_path)
    assert rc == 0, err
    assert again == plain

    # Without the real token, the placeholder is refused rather than taken as the token.
    rc, _, err = olah("-c", str(shown), "config", "show", cwd=tmp_path)
    assert rc == 2
    assert "admin.token" in err and "<redacted>" in err


def test_config_show_names_a_token_file_not_its_content(tmp_path):
    token_file = tmp_path / "admin.token"
    token_file.write_text(SECRET + "\n")
    rc, out, err = olah("config", "show", "--sources", "--admin-token-file", str(token_file))
    assert rc == 0, err
    assert SECRET not in out + err
    assert f'token_file = "{token_file}"  # flag --admin-token-file' in out.splitlines()
    shown = tmp_path / "shown.toml"
    shown.write_text(out)
    rc, again, err = olah("-c", str(shown), "config", "show", "--sources")
    assert rc == 0, err
    assert f'token_file = "{token_file}"  # file ({shown}:' in again


# --------------------------------------------------------------------------------------------
# --log-format json


def _json_lines(text, where):
    out = []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except ValueError:
            pytest.fail(f"{where}: not a JSON line: {line!r}")
    return out


def test_json_logs_are_one_object_per_line_and_never_carry_a_token(make_mirror, hub, client_env):
    admin_secret = "olah_admin_" + SECRET
    m = make_mirror("--log-format", "json", "--admin-token", admin_secret)
    auth = {"Authorization": f"Bearer {SECRET}"}
    status, _, _ = http(f"{m.url}/acme/tiny/resolve/main/config.json", headers=auth)
    http(f"{m.url}/api/models/acme/tiny", headers=auth)
    http(f"{m.url}/api/models/acme/private", headers=auth)
    # A real client with a real token, through the mirror.
    r = client_env(
        "from huggingface_hub import hf_hub_download\n"
        "emit(sha(hf_hub_download('acme/gated', 'weights.bin')))\n",
        endpoint=m.url,
        token="hf_granted",
    )
    assert r.out == hub.file("acme/gated", "weights.bin")["sha256"], r
    m.stop()

    stderr = _json_lines(m.log_text(), "stderr")
    files = glob.glob(os.path.join(m.dir, "logs", "olah*.log"))
    assert files, "no log file"
    logged = "".join(open(f, encoding="utf-8").read() for f in files)
    in_file = _json_lines(logged, "log file")
    for what, records in (("stderr", stderr), ("log file", in_file)):
        responses = [rec for rec in records if rec.get("message") == "response"]
        paths = {rec["span"]["path"]: rec["span"] for rec in responses}
        span = paths.get("/acme/tiny/resolve/main/config.json")
        assert span is not None, f"{what}: no request line for the resolve: {paths.keys()}"
        assert span["method"] == "GET" and span["repo"] == "models/acme/tiny"
        assert span["status"] == status, span
        assert all(isinstance(rec["level"], str) and rec["timestamp"] for rec in records)
        assert any(p.endswith("/weights.bin") for p in paths), f"{what}: the client's download"
    text = m.log_text() + logged
    for secret in (SECRET, "hf_granted", admin_secret):
        assert secret not in text, f"{secret} was logged"


# --------------------------------------------------------------------------------------------
# The pip wheel


def _workspace_version():
    with open(os.path.join(ROOT, "Cargo.toml"), "rb") as f:
        return tomllib.load(f)["workspace"]["package"]["version"]


@pytest.fixture
def wheel_venv():
    """The fresh venv scripts/test.sh installed the maturin wheel into (OLAH_WHEEL_VENV)."""
    venv = os.environ.get("OLAH_WHEEL_VENV")
    if not venv:
        pytest.skip("no wheel venv: scripts/test.sh builds and installs the wheel (OLAH_WHEEL_VENV)")
    return venv


def test_the_wheel_puts_olah_cli_on_path_and_it_mirrors(wheel_venv, hub, client_env, tmp_path):
    bindir = os.path.join(wheel_venv, "bin")
    exe = shutil.which("olah-cli", path=bindir)
    assert exe == os.path.join(bindir, "olah-cli"), "olah-cli is not on the venv's PATH"
    version = _workspace_version()
    # pip knows it as the olah-rs distribution, at the workspace's version.
    got = subprocess.run(
        [os.path.join(bindir, "python"), "-c", "import importlib.metadata as m; print(m.version('olah-rs'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert got == version
    rc, out, err = olah("--version", binary=exe)
    assert (rc, out.strip()) == (0, f"olah-cli {version}"), err
    rc, out, err = olah("--help", binary=exe)
    assert rc == 0, err
    for word in ("--cache-size-limit", "--hf-netloc", "prefetch", "config"):
        assert word in out, word

    # The installed binary serves: one download from the fake Hub through it.
    port = free_port()
    hub_netloc, cdn_netloc = hub.netlocs
    log = open(tmp_path / "wheel-mirror.log", "wb")
    proc = Proc(
        [
            exe,
            "--host", "127.0.0.1",
            "--port", str(port),
            "--hf-scheme", "http",
            "--hf-netloc", hub_netloc,
            "--hf-lfs-netloc", cdn_netloc,
            "--repos-path", str(tmp_path / "repos"),
            "--log-path", str(tmp_path / "logs"),
        ],
        stdout=log,
        stderr=log,
        env={**os.environ, "NO_PROXY": "*", "no_proxy": "*"},
    )
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_healthy(url, proc, tmp_path / "wheel-mirror.log")
        want = hub.file("acme/tiny", "model.bin")
        r = client_env(
            "from huggingface_hub import hf_hub_download\n"
            "emit(sha(hf_hub_download('acme/tiny', 'model.bin')))\n",
            endpoint=url,
            disable_xet=True,
        )
        assert r.out == want["sha256"], r
        assert all(u.split(" ", 1)[1].startswith(url) for u in r.urls), r.urls
    finally:
        proc.stop()
        log.close()


def _wait_healthy(url, proc, log_path, timeout=30.0):
    """Waits until the mirror at url answers /healthz (it may take a moment to bind)."""
    deadline = time.time() + timeout
    while True:
        try:
            if http(f"{url}/healthz", timeout=2)[0] == 200:
                return
        except OSError:
            pass
        assert proc.alive(), log_path.read_text()
        assert time.time() < deadline, f"not healthy after {timeout}s:\n{log_path.read_text()}"
        time.sleep(0.1)
