"""Fixtures: the test kit's fake Hub and the mirror as real processes, and a runner that drives
the real huggingface_hub client in a subprocess (it reads HF_ENDPOINT at import time).

OLAH_TEST_TARGET=direct points the client straight at the fake Hub instead of the mirror, which
checks that the fake is faithful to the real client."""

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("OLAH_BIN_DIR", os.path.join(ROOT, "target", "debug"))
TARGET = os.environ.get("OLAH_TEST_TARGET", "mirror")
mirror_only = pytest.mark.skipif(TARGET == "direct", reason="about the mirror's own behaviour")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Proc:
    def __init__(self, args, **kw):
        self.p = subprocess.Popen(args, start_new_session=True, **kw)

    def stop(self):
        if self.p.poll() is None:
            os.killpg(self.p.pid, signal.SIGTERM)
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.p.pid, signal.SIGKILL)
                self.p.wait()

    def kill9(self):
        os.killpg(self.p.pid, signal.SIGKILL)
        self.p.wait()


class FakeHub:
    def __init__(self, big_size=64 << 20):
        self.proc = Proc(
            [os.path.join(BIN, "olah-fakehub"), "--big-size", str(big_size)],
            stdout=subprocess.PIPE,
            text=True,
        )
        line = self.proc.p.stdout.readline()
        info = json.loads(line)
        self.hub, self.cdn, self.files = info["hub"], info["cdn"], info["files"]

    def admin(self, what, body=None):
        data = None if body is None else json.dumps(body).encode()
        method = "GET" if what == "stats" else "POST"
        req = urllib.request.Request(f"{self.hub}/__admin/{what}", data=data, method=method)
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    def stats(self):
        return self.admin("stats")

    def reset(self):
        self.admin("reset", {})

    def faults(self, **kw):
        self.admin("faults", kw)

    def file(self, key):
        return self.files[key]


class Mirror:
    def __init__(self, hub, extra_args=(), repos=None):
        self.hub = hub
        self.dir = tempfile.mkdtemp(prefix="olah-test-")
        self.repos = repos or os.path.join(self.dir, "repos")
        self.port = free_port()
        self.extra = list(extra_args)
        self.start()

    def start(self):
        hub_netloc = self.hub.hub.split("//")[1]
        cdn_netloc = self.hub.cdn.split("//")[1]
        self.log = open(os.path.join(self.dir, "mirror.log"), "ab")
        self.proc = Proc(
            [
                os.path.join(BIN, "olah-cli"),
                "--host", "127.0.0.1", "--port", str(self.port),
                "--hf-scheme", "http", "--hf-netloc", hub_netloc, "--hf-lfs-netloc", cdn_netloc,
                "--repos-path", self.repos, "--log-path", os.path.join(self.dir, "logs"),
                *self.extra,
            ],
            stdout=self.log,
            stderr=self.log,
        )
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("mirror did not become ready")

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def stop(self):
        self.proc.stop()
        self.log.close()


@pytest.fixture(scope="session")
def hub():
    h = FakeHub()
    yield h
    h.proc.stop()


@pytest.fixture(scope="session")
def mirror(hub):
    m = Mirror(hub)
    yield m
    m.stop()


@pytest.fixture
def make_mirror(hub):
    made = []

    def make(*args, **kw):
        m = Mirror(hub, args, **kw)
        made.append(m)
        return m

    yield make
    for m in made:
        m.stop()


@pytest.fixture
def endpoint(hub, mirror):
    return hub.hub if TARGET == "direct" else mirror.url


@pytest.fixture
def run_client(tmp_path):
    """Runs a Python snippet with huggingface_hub in a fresh HF_HOME; returns (rc, stdout, stderr).
    The snippet prints JSON on its last line, which is parsed into `out`."""

    def run(endpoint, code, token=None, disable_xet=False, home=None, timeout=240):
        env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
        env.update(
            HF_ENDPOINT=endpoint,
            HF_HOME=str(home or tmp_path / "hf"),
            HF_HUB_DISABLE_TELEMETRY="1",
            HF_HUB_DISABLE_PROGRESS_BARS="1",
            NO_PROXY="127.0.0.1,localhost",
        )
        if token:
            env["HF_TOKEN"] = token
        if disable_xet:
            env["HF_HUB_DISABLE_XET"] = "1"
        script = "import json, hashlib, os\n" + textwrap.dedent(code)
        p = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=timeout)
        out = None
        lines = [l for l in p.stdout.strip().splitlines() if l.strip()]
        if lines:
            try:
                out = json.loads(lines[-1])
            except ValueError:
                out = None
        return p.returncode, out, p.stderr

    return run


def sha256_file(path):
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
