"""Fixtures for the real-client suite.

Processes: the test kit's fake Hub (`olah-fakehub`) and the mirror (`olah-cli`), each in its own
process group, always stopped at teardown (also when a fixture fails half-way), and killed by the
kernel if pytest itself dies (PR_SET_PDEATHSIG).

Clients: `client_env` runs a snippet of real `huggingface_hub` code in a subprocess (the library
reads HF_ENDPOINT at import time) with a fresh HF_HOME, records every URL the client's HTTP session
requested, and returns what the snippet passed to `emit(...)`.

Targets: OLAH_TEST_TARGET=mirror (default) points clients at the mirror; OLAH_TEST_TARGET=direct
points them straight at the fake Hub, which checks that the fake is faithful to the real client.
Tests about the mirror's own behaviour are marked `mirror_only`.

Other knobs: OLAH_BIN_DIR (default target/debug), OLAH_TEST_BIG_SIZE (bytes of acme/big's big.bin,
default 64 MiB), OLAH_TEST_KEEP=1 keeps the temp dirs (mirror logs) for inspection.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("OLAH_BIN_DIR", os.path.join(ROOT, "target", "debug"))
TARGET = os.environ.get("OLAH_TEST_TARGET", "mirror")
if TARGET not in ("mirror", "direct"):
    raise RuntimeError(f"OLAH_TEST_TARGET must be 'mirror' or 'direct', not {TARGET!r}")
BIG_SIZE = int(os.environ.get("OLAH_TEST_BIG_SIZE", str(64 << 20)))
KEEP = os.environ.get("OLAH_TEST_KEEP") == "1"
READY_TIMEOUT = 30.0

mirror_only = pytest.mark.skipif(TARGET == "direct", reason="about the mirror's own behaviour (OLAH_TEST_TARGET=direct)")

PLURAL = {"model": "models", "dataset": "datasets", "space": "spaces"}
PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}

# Every process started by this suite, so that nothing survives the session whatever happens.
_LIVE: list["Proc"] = []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sha256_bytes(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def sha256_file(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _child_setup():
    # Own process group (so the whole tree can be signalled), and die with the test runner.
    os.setsid()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


class Proc:
    """A child process in its own process group."""

    def __init__(self, args, **kw):
        self.args = args
        self.p = subprocess.Popen(args, preexec_fn=_child_setup, **kw)
        _LIVE.append(self)

    @property
    def pid(self):
        return self.p.pid

    def alive(self):
        return self.p.poll() is None

    def _signal_group(self, sig):
        try:
            os.killpg(self.p.pid, sig)
        except ProcessLookupError:
            pass

    def stop(self, grace=10.0):
        if self.p.poll() is None:
            self._signal_group(signal.SIGTERM)
            try:
                self.p.wait(grace)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                self.p.wait()
        if self in _LIVE:
            _LIVE.remove(self)

    def kill9(self):
        self._signal_group(signal.SIGKILL)
        self.p.wait()
        if self in _LIVE:
            _LIVE.remove(self)


def pytest_sessionfinish(session, exitstatus):
    for p in list(_LIVE):
        p.stop(grace=5)


def _binary(name):
    path = os.path.join(BIN, name)
    if not os.access(path, os.X_OK):
        pytest.exit(f"{path} is missing: build it first (cargo build --workspace --bins)", returncode=3)
    return path


# --------------------------------------------------------------------------------------------
# Fake Hub


@dataclass
class Stats:
    """A normalised view of GET /__admin/stats."""

    raw: dict
    log: list = field(default_factory=list)

    def requests(self, host=None):
        key = f"{host}_requests"
        if host and key in self.raw:
            return self.raw[key]
        if host is None and "hub_requests" in self.raw:
            return self.raw["hub_requests"] + self.raw.get("cdn_requests", 0)
        return len(self.entries(host=host))

    def bytes(self, host=None):
        if host is None:
            return self.raw.get("hub_bytes", 0) + self.raw.get("cdn_bytes", 0)
        return self.raw[f"{host}_bytes"]

    def entries(self, host=None, method=None, contains=None):
        out = []
        for r in self.log:
            if host and r.get("host") != host:
                continue
            if method and r.get("method") != method:
                continue
            if contains and contains not in r.get("uri", ""):
                continue
            out.append(r)
        return out

    def summary(self):
        return [f"{r.get('host')} {r.get('method')} {r.get('uri')}" for r in self.log[:60]]


class HubAdmin:
    """The fake Hub's admin API: counters, request log, fault injection."""

    def __init__(self, hub_url):
        self.url = hub_url

    def _call(self, what, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            f"{self.url}/__admin/{what}",
            data=data,
            method="GET" if body is None else "POST",
            headers={"Content-Type": "application/json"},
        )
        with _follow_opener.open(req, timeout=10) as r:
            return json.loads(r.read() or b"{}")

    def stats(self) -> Stats:
        raw = self._call("stats")
        return Stats(raw=raw, log=raw.get("log", []))

    def reset(self):
        self._call("reset", {})

    def faults(self, **kw):
        """Replaces the fault knobs (no arguments = clear them)."""
        self._call("faults", kw)

    def rewrites(self, *rules):
        """Hostile mode: replaces the rewrite rules (no arguments = clear them). Each rule is a
        dict as `olah_testkit::Rewrite` takes it: host, method, path (regex on path+query),
        anonymous, times, status, set_headers, remove_headers, json_merge, body,
        big_json_array_bytes."""
        return self._call("rewrites", {"rules": list(rules)})["rules"]

    @contextlib.contextmanager
    def rewritten(self, *rules):
        self.rewrites(*rules)
        try:
            yield
        finally:
            self.rewrites()

    @contextlib.contextmanager
    def faulted(self, **kw):
        self.faults(**kw)
        try:
            yield
        finally:
            self.faults()


class FakeHub:
    def __init__(self, workdir, big_size=BIG_SIZE):
        self.big_size = big_size
        self.stderr = open(os.path.join(workdir, "fakehub.stderr"), "wb")
        self.proc = Proc(
            [_binary("olah-fakehub"), "--hub-port", "0", "--cdn-port", "0", "--big-size", str(big_size)],
            stdout=subprocess.PIPE,
            stderr=self.stderr,
        )
        try:
            line = self._first_line(READY_TIMEOUT)
            info = json.loads(line)
            self.hub, self.cdn, self.files = info["hub"].rstrip("/"), info["cdn"].rstrip("/"), info["files"]
        except Exception:
            self.stop()
            raise
        self.admin = HubAdmin(self.hub)

    def _first_line(self, timeout):
        out = self.proc.p.stdout
        buf = b""
        deadline = time.time() + timeout
        while b"\n" not in buf:
            left = deadline - time.time()
            if left <= 0 or not self.proc.alive():
                raise RuntimeError(f"olah-fakehub printed no JSON line (got {buf[:200]!r}, rc={self.proc.p.poll()})")
            r, _, _ = select.select([out], [], [], min(left, 0.5))
            if r:
                chunk = os.read(out.fileno(), 1 << 20)
                if not chunk:
                    continue
                buf += chunk
        return buf.split(b"\n", 1)[0].decode()

    @property
    def netlocs(self):
        return [self.hub.split("//", 1)[1], self.cdn.split("//", 1)[1]]

    def file(self, key_or_repo, path=None, rev="main", kind="model"):
        """Expected {sha256, size, oid, lfs, commit} of a file: by full key
        `"{plural}/{id}@{rev}:{path}"`, or by (repo, path, rev, kind)."""
        key = key_or_repo if path is None else f"{PLURAL[kind]}/{key_or_repo}@{rev}:{path}"
        return self.files[key]

    def tree(self, repo, rev="main", kind="model"):
        """{path: info} of every file of a repo at a revision."""
        prefix = f"{PLURAL[kind]}/{repo}@{rev}:"
        return {k[len(prefix):]: v for k, v in self.files.items() if k.startswith(prefix)}

    def commit(self, repo, rev="main", kind="model"):
        commits = {v["commit"] for v in self.tree(repo, rev, kind).values()}
        assert len(commits) == 1, commits
        return commits.pop()

    def stop(self):
        self.proc.stop()
        self.stderr.close()


# --------------------------------------------------------------------------------------------
# Mirror


class Mirror:
    # The address the mirror listens on and is reached at.
    host = "127.0.0.1"

    def __init__(self, hub: FakeHub, extra_args=(), config=None, repos=None, port=None):
        self.hub = hub
        self.dir = tempfile.mkdtemp(prefix="olah-test-mirror-")
        self.repos = repos or os.path.join(self.dir, "repos")
        self.port = port or free_port()
        self.extra = [str(a) for a in extra_args]
        if config is not None:
            cfg = os.path.join(self.dir, "configs.toml")
            with open(cfg, "w") as f:
                f.write(textwrap.dedent(config))
            self.extra = ["-c", cfg, *self.extra]
        self.proc = None
        self.log = None
        self.start()

    @property
    def url(self):
        return f"http://{self.host}:{self.port}"

    def start(self):
        hub_netloc, cdn_netloc = self.hub.netlocs
        self.log = open(os.path.join(self.dir, "mirror.log"), "ab")
        self.proc = Proc(
            [
                _binary("olah-cli"),
                "--host", self.host,
                "--port", str(self.port),
                "--hf-scheme", "http",
                "--hf-netloc", hub_netloc,
                "--hf-lfs-netloc", cdn_netloc,
                "--repos-path", self.repos,
                "--log-path", os.path.join(self.dir, "logs"),
                *self.extra,
            ],
            stdout=self.log,
            stderr=self.log,
            env={**os.environ, "NO_PROXY": "*", "no_proxy": "*"},
        )
        try:
            self._wait_ready()
        except Exception:
            self.stop()
            raise

    def _wait_ready(self):
        deadline = time.time() + READY_TIMEOUT
        last = None
        while time.time() < deadline:
            if not self.proc.alive():
                raise RuntimeError(f"olah-cli exited with {self.proc.p.poll()}:\n{self.log_text()[-3000:]}")
            try:
                with _follow_opener.open(f"{self.url}/health", timeout=2) as r:
                    if r.status == 200:
                        return
                    last = r.status
            except (OSError, urllib.error.HTTPError) as e:
                last = e
            time.sleep(0.1)
        raise RuntimeError(f"olah-cli not healthy after {READY_TIMEOUT}s ({last}):\n{self.log_text()[-3000:]}")

    def log_text(self):
        try:
            with open(os.path.join(self.dir, "mirror.log"), "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def stop(self):
        if self.proc is not None:
            self.proc.stop()
        if self.log is not None and not self.log.closed:
            self.log.close()

    def kill9(self):
        self.proc.kill9()
        self.log.close()

    def restart(self, extra_args=None):
        self.stop()
        if extra_args is not None:
            self.extra = [str(a) for a in extra_args]
        self.start()

    def cleanup(self):
        self.stop()
        if not KEEP:
            shutil.rmtree(self.dir, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# Client runner

_PRELUDE = r'''
import atexit as _atexit, hashlib, json, os, sys, time
import huggingface_hub as _hh
from huggingface_hub.utils import _http as _hh_http

_URLS = []

def _record(request):
    _URLS.append(request.method + " " + str(request.url))

async def _arecord(request):
    _record(request)

def _client_factory():
    c = _hh_http.default_client_factory()
    hooks = c.event_hooks
    hooks["request"] = list(hooks.get("request", [])) + [_record]
    c.event_hooks = hooks
    return c

def _async_client_factory():
    c = _hh_http.default_async_client_factory()
    hooks = c.event_hooks
    hooks["request"] = list(hooks.get("request", [])) + [_arecord]
    c.event_hooks = hooks
    return c

_hh.set_client_factory(_client_factory)
_hh.set_async_client_factory(_async_client_factory)

def _dump_urls():
    with open(os.environ["OLAH_TEST_URL_LOG"], "w") as f:
        json.dump(_URLS, f)
_atexit.register(_dump_urls)

def emit(obj):
    """The snippet's result, handed back to the test."""
    with open(os.environ["OLAH_TEST_RESULT"], "w") as f:
        json.dump(obj, f)

def sha(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()

def tree_hashes(root):
    out = {}
    for d, _, names in os.walk(root):
        for n in names:
            full = os.path.join(d, n)
            out[os.path.relpath(full, root)] = sha(full)
    return out

def blob_name(snapshot_path):
    """The cache blob name a snapshot entry points at (the client's etag)."""
    return os.path.basename(os.readlink(snapshot_path))

def catch(fn, *a, **kw):
    try:
        return {"ok": fn(*a, **kw)}
    except Exception as e:
        resp = getattr(e, "response", None)
        return {
            "err": type(e).__name__,
            "mro": [c.__name__ for c in type(e).__mro__],
            "status": getattr(resp, "status_code", None),
            "msg": str(e)[:600],
        }
'''


@dataclass
class ClientResult:
    rc: int
    out: object
    stdout: str
    stderr: str
    urls: list
    endpoint: str

    def __str__(self):
        return f"rc={self.rc}\nout={self.out!r}\nstderr:\n{self.stderr[-4000:]}\nurls={self.urls[:40]}"


class ClientEnv:
    """Runs huggingface_hub code in a subprocess against an endpoint."""

    def __init__(self, tmp_path_factory, default_endpoint, hub: FakeHub):
        self._tmp = tmp_path_factory
        self._default_endpoint = default_endpoint
        self.hub = hub
        self._running = []

    def close(self):
        """Kills clients a failed test left running."""
        for proc in self._running:
            if proc.alive():
                proc.kill9()
            else:
                proc.stop()
        self._running.clear()

    def env(self, endpoint, home, token=None, disable_xet=False, extra=None):
        env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
        env.update(
            HF_ENDPOINT=endpoint,
            HF_HOME=str(home),
            HF_HUB_DISABLE_TELEMETRY="1",
            HF_HUB_DISABLE_PROGRESS_BARS="1",
            HF_HUB_ETAG_TIMEOUT="30",
            HF_HUB_DOWNLOAD_TIMEOUT="60",
            NO_PROXY="*",
            no_proxy="*",
            PYTHONUNBUFFERED="1",
        )
        for k in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
            env.pop(k, None)
        if token is not None:
            env["HF_TOKEN"] = token
        if disable_xet:
            env["HF_HUB_DISABLE_XET"] = "1"
        env.update(extra or {})
        return env

    def _files(self):
        d = self._tmp.mktemp("client")
        return d, d / "hf_home", d / "result.json", d / "urls.json"

    def spawn(self, code, endpoint=None, token=None, disable_xet=False, home=None, env=None):
        """Starts a client without waiting; `finish(handle)` collects it."""
        endpoint = endpoint or self._default_endpoint()
        d, default_home, result, urls = self._files()
        e = self.env(endpoint, home or default_home, token, disable_xet, env)
        e["OLAH_TEST_RESULT"], e["OLAH_TEST_URL_LOG"] = str(result), str(urls)
        script = d / "client.py"
        script.write_text(_PRELUDE + "\n" + textwrap.dedent(code))
        proc = Proc([sys.executable, str(script)], env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=str(d))
        self._running.append(proc)
        return (proc, endpoint, result, urls)

    def finish(self, handle, timeout=180, check=True, same_origin=True):
        proc, endpoint, result, urls = handle
        try:
            stdout, stderr = proc.p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill9()
            stdout, stderr = proc.p.communicate()
            stderr += f"\n[client killed after {timeout}s]"
        proc.stop()
        if proc in self._running:
            self._running.remove(proc)
        out = json.loads(result.read_text()) if result.exists() else None
        url_list = json.loads(urls.read_text()) if urls.exists() else []
        res = ClientResult(proc.p.returncode, out, stdout, stderr, url_list, endpoint)
        if check:
            assert res.rc == 0, f"client failed:\n{res}"
            assert res.out is not None, f"client emitted nothing:\n{res}"
        if same_origin and endpoint != self.hub.hub:
            # Through a mirror, the client must never be sent anywhere else.
            stray = [u for u in url_list if not u.split(" ", 1)[1].startswith(endpoint + "/")]
            assert not stray, f"client requests that left the mirror: {stray[:10]}"
        return res

    def __call__(self, code, endpoint=None, token=None, disable_xet=False, home=None, env=None, timeout=180, check=True, same_origin=True):
        h = self.spawn(code, endpoint=endpoint, token=token, disable_xet=disable_xet, home=home, env=env)
        return self.finish(h, timeout=timeout, check=check, same_origin=same_origin)


# --------------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="session")
def hub(tmp_path_factory):
    h = FakeHub(str(tmp_path_factory.mktemp("fakehub")))
    yield h
    h.stop()


@pytest.fixture(scope="session")
def hub_admin(hub) -> HubAdmin:
    return hub.admin


@pytest.fixture(autouse=True)
def _clear_faults(hub):
    yield
    try:
        hub.admin.faults()
        hub.admin.rewrites()
    except OSError:
        pass


@pytest.fixture(scope="session")
def mirror(hub):
    m = Mirror(hub)
    yield m
    m.cleanup()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.when == "call":
        item.olah_failed = rep.failed


def _show_logs_if_failed(request, mirrors):
    if getattr(request.node, "olah_failed", False):
        for m in mirrors:
            print(f"---- mirror {m.url} log (tail) ----\n{m.log_text()[-4000:]}")


@pytest.fixture
def make_mirror(request, hub):
    """make_mirror(*extra_args, config=TOML_TEXT, repos=DIR, port=P) -> Mirror (stopped at teardown)."""
    made = []

    def make(*args, config=None, repos=None, port=None):
        m = Mirror(hub, args, config=config, repos=repos, port=port)
        made.append(m)
        return m

    yield make
    _show_logs_if_failed(request, made)
    for m in made:
        m.cleanup()


@pytest.fixture
def endpoint(request, hub):
    """What clients point HF_ENDPOINT at: the session mirror, or the fake Hub in direct mode."""
    if TARGET == "direct":
        return hub.hub
    return request.getfixturevalue("mirror").url


@pytest.fixture
def client_env(request, tmp_path_factory, hub):
    def default_endpoint():
        return request.getfixturevalue("endpoint")

    env = ClientEnv(tmp_path_factory, default_endpoint, hub)
    yield env
    env.close()


# --------------------------------------------------------------------------------------------
# Raw HTTP helpers


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


_raw_opener = urllib.request.build_opener(NoRedirect, urllib.request.ProxyHandler({}))
_follow_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http(url, method="GET", headers=None, data=None, follow=False, timeout=120):
    """(status, headers, body) without raising on HTTP errors; redirects not followed by default."""
    req = urllib.request.Request(url, method=method, headers=headers or {}, data=data)
    opener = _follow_opener if follow else _raw_opener
    try:
        with opener.open(req, timeout=timeout) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


@pytest.fixture(scope="session")
def big_file(hub, tmp_path_factory):
    """acme/big's big.bin fetched straight from the fake (the oracle for ranged reads), checked
    against the sha256 the fake announced."""
    want = hub.file("acme/big", "big.bin")
    path = tmp_path_factory.mktemp("oracle") / "big.bin"
    req = urllib.request.Request(f"{hub.hub}/acme/big/resolve/main/big.bin")
    h = hashlib.sha256()
    with _follow_opener.open(req, timeout=120) as r, open(path, "wb") as f:
        for chunk in iter(lambda: r.read(1 << 20), b""):
            h.update(chunk)
            f.write(chunk)
    assert h.hexdigest() == want["sha256"] and os.path.getsize(path) == want["size"]
    return path
