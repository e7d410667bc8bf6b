"""The landing page, the admin page and its JSON as an operator meets them: the landing page names
the mirror's URL and version; after a real huggingface_hub download, `/admin/api/stats` lists the
repo and the bytes; the admin token opens the admin routes (curl); and the page itself, rendered
by a real headless Chromium after its script ran, shows the repo and the figures (a screenshot is
kept under tests/python/artifacts/)."""

import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time

import pytest

from conftest import ROOT, Mirror, _binary, http, mirror_only

pytestmark = mirror_only

ARTIFACTS = os.path.join(ROOT, "tests", "python", "artifacts")
VERSION = None


def _version():
    global VERSION
    if VERSION is None:
        with open(os.path.join(ROOT, "Cargo.toml")) as f:
            for line in f:
                if line.strip().startswith("version") and "=" in line:
                    VERSION = line.split("=", 1)[1].strip().strip('"')
                    break
    return VERSION


def _stats(m, headers=None):
    status, h, body = http(f"{m.url}/admin/api/stats", headers=headers or {})
    assert status == 200, body
    assert h["Content-Type"] == "application/json"
    return json.loads(body)


def test_the_landing_page_names_the_mirror_url_and_version(mirror):
    status, headers, body = http(f"{mirror.url}/")
    assert status == 200
    assert headers["Content-Type"].startswith("text/html")
    page = body.decode()
    assert f"export HF_ENDPOINT={mirror.url}" in page
    assert f"{mirror.url}/gpt2/resolve/main/config.json" in page
    assert f"olah-rs <small>{_version()}</small>" in page
    assert 'href="/admin"' in page


DOWNLOAD = """
from huggingface_hub import hf_hub_download
p = hf_hub_download("acme/tiny", "model.bin")
emit({"sha": sha(p), "size": os.path.getsize(p)})
"""


def test_stats_list_a_repo_downloaded_with_huggingface_hub(make_mirror, client_env, hub):
    m = make_mirror()
    before = _stats(m)
    assert before["version"] == _version()
    assert before["top_repos_by_downloads"] == []
    res = client_env(DOWNLOAD, endpoint=m.url)
    want = hub.file("acme/tiny", "model.bin")
    assert res.out == {"sha": want["sha256"], "size": want["size"]}
    s = _stats(m)
    top = {(r["repo_type"], r["repo_id"]): r for r in s["top_repos_by_downloads"]}
    assert ("model", "acme/tiny") in top, s["top_repos_by_downloads"]
    tiny = top[("model", "acme/tiny")]
    assert tiny["downloads"] >= 1
    assert tiny["bytes"] >= want["size"]
    assert tiny["upstream_bytes"] == want["size"], "one fill fetched the file"
    assert s["cache"]["size_bytes"] >= want["size"], s["cache"]
    assert s["fills_in_flight"] == []
    assert s["uptime_seconds"] >= 0


SLOW_DOWNLOAD = """
from huggingface_hub import hf_hub_download
p = hf_hub_download("acme/big", "big.bin")
emit({"sha": sha(p)})
"""


def test_a_running_fill_is_listed_with_its_progress(make_mirror, client_env, hub, hub_admin):
    m = make_mirror()
    want = hub.file("acme/big", "big.bin")
    # Slow the transfer so that the fill is still running while we look.
    rate = max(want["size"] // 8, 1 << 20)
    seen = None
    with hub_admin.faulted(bandwidth_bytes_per_sec=rate):
        h = client_env.spawn(SLOW_DOWNLOAD, endpoint=m.url)
        deadline = time.time() + 60
        while time.time() < deadline:
            fills = _stats(m)["fills_in_flight"]
            big = [f for f in fills if f["path"] == "big.bin"]
            if big and 0 < big[0]["bytes_done"] < big[0]["bytes_total"]:
                seen = big[0]
                break
            time.sleep(0.05)
        res = client_env.finish(h, timeout=240)
    assert res.out == {"sha": want["sha256"]}
    assert seen is not None, "no fill in progress was listed"
    assert (seen["repo_type"], seen["repo_id"], seen["size"]) == ("model", "acme/big", want["size"])
    assert seen["bytes_total"] <= want["size"]
    s = _stats(m)
    assert s["fills_in_flight"] == [], "the fill left the list when it ended"
    big = [r for r in s["top_repos_by_downloads"] if r["repo_id"] == "acme/big"]
    assert big and big[0]["upstream_bytes"] == want["size"], s["top_repos_by_downloads"]


def _rate_limited(m, hub_admin):
    """One request the Hub answers 429 (relayed to the caller, so a failure of the mirror's)."""
    with hub_admin.faulted(fail_429=1, scope="hub"):
        status, _, _ = http(f"{m.url}/api/models/acme/tiny", headers={"Authorization": "Bearer hf_user_secret"})
    assert status == 429


def test_failed_requests_are_listed_without_their_credentials(make_mirror, hub_admin):
    m = make_mirror()
    _rate_limited(m, hub_admin)
    http(f"{m.url}/acme/tiny/resolve/main/no-such-file")  # a 404 is not a failure of the mirror
    status, _, body = http(f"{m.url}/admin/api/stats")
    assert status == 200
    errors = json.loads(body)["recent_errors"]
    assert len(errors) == 1, errors
    e = errors[0]
    assert (e["status"], e["route"], e["repo"]) == (429, "api", "models/acme/tiny"), e
    assert e["time"] > 1_600_000_000
    assert b"hf_user_secret" not in body


def _non_loopback_ipv4():
    try:
        out = subprocess.run(["hostname", "-I"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    for addr in out.split():
        if ":" not in addr and not addr.startswith("127."):
            try:
                with socket.socket() as s:
                    s.bind((addr, 0))
                return addr
            except OSError:
                continue
    return None


class HostMirror(Mirror):
    """A mirror listening on `host` (this machine's non-loopback address), reached there."""

    def __init__(self, hub, host, extra_args=()):
        self.host = host
        super().__init__(hub, extra_args)


def _curl(url, *args):
    r = subprocess.run(
        ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--noproxy", "*", *args, url],
        capture_output=True,
        text=True,
        timeout=30,
    )
    return int(r.stdout or 0)


TOKEN = "admin-test-token-5d1c"


def test_the_admin_token_opens_the_admin_routes(make_mirror, hub, request):
    if shutil.which("curl") is None:
        pytest.skip("curl not found")
    # From loopback, with a token configured: the token is not needed, a wrong one is ignored.
    m = make_mirror("--admin-token", TOKEN)
    assert _curl(f"{m.url}/admin/api/stats") == 200
    assert _curl(f"{m.url}/admin/api/stats", "-H", f"Authorization: Bearer {TOKEN}") == 200
    host = _non_loopback_ipv4()
    if host is None:
        pytest.skip("no non-loopback IPv4 address on this machine: only the loopback path was tested")
    # From this machine's non-loopback address the peer is not loopback: the token decides.
    wide = HostMirror(hub, host, ["--admin-token", TOKEN])
    request.addfinalizer(wide.cleanup)
    for path in ("/admin", "/admin/api/stats"):
        url = f"{wide.url}{path}"
        assert _curl(url, "-H", f"Authorization: Bearer {TOKEN}") == 200, path
        assert _curl(url) == 403, path
        assert _curl(url, "-H", f"Authorization: Bearer {TOKEN}x") == 403, path
    status, headers, body = http(f"{wide.url}/admin/api/stats")
    assert status == 403 and headers["X-Error-Code"] == "Forbidden"
    # The landing page stays open.
    assert _curl(f"{wide.url}/") == 200
    # Without a token configured, a non-loopback caller is refused whatever it sends.
    bare = HostMirror(hub, host)
    request.addfinalizer(bare.cleanup)
    assert _curl(f"{bare.url}/admin/api/stats", "-H", f"Authorization: Bearer {TOKEN}") == 403


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _browser(args, url, timeout=120):
    profile = tempfile.mkdtemp(prefix="olah-chromium-")
    try:
        r = subprocess.run(
            [
                _chromium(),
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-proxy-server",
                f"--user-data-dir={profile}",
                "--virtual-time-budget=5000",
                *args,
                url,
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    return r


def test_the_admin_page_renders_a_downloaded_repo_in_chromium(make_mirror, client_env, hub_admin):
    if _chromium() is None:
        pytest.skip("chromium not found (scripts/test.sh installs it with apt-get when it can)")
    m = make_mirror()
    client_env(DOWNLOAD, endpoint=m.url)
    # Again with a fresh client cache: served from the mirror's cache (a hit, bytes saved).
    client_env(DOWNLOAD, endpoint=m.url)
    _rate_limited(m, hub_admin)
    s = _stats(m)
    assert s["cache"]["size_bytes"] > 0
    assert s["lookups"]["hit"] >= 1 and s["bytes_saved"] > 0, s

    r = _browser(["--dump-dom"], f"{m.url}/admin")
    assert r.returncode == 0, r.stderr[-2000:]
    # What the script rendered (its own text left out).
    dom = re.sub(r"<script>.*?</script>", "", r.stdout, flags=re.S)
    # The table rows and figures exist only after the script rendered the JSON.
    assert re.search(r"<td>acme/tiny</td><td class=\"n\">\d+</td>", dom), dom[-3000:]
    assert re.search(r'id="status"[^>]*>Updated ', dom), "the stats were loaded"
    assert "Cannot load" not in dom
    cache = re.search(r'id="cache-size">([^<]*)<', dom).group(1)
    assert re.fullmatch(r"[\d.]+ (B|KiB|MiB|GiB)", cache), cache
    assert re.search(r'id="cache-limit"[^>]*>no size limit<', dom)
    assert re.search(r'id="version">' + re.escape(_version()) + "<", dom)
    assert ">no fill running<" in dom
    # The catalog's sizes and the hit ratio the metrics give.
    by_size = re.search(r'id="by-size">(.*?)</tbody>', dom, flags=re.S).group(1)
    assert "<td>acme/tiny</td>" in by_size, by_size
    ratio = re.search(r'id="hit-ratio">([^<]*)<', dom).group(1)
    assert re.fullmatch(r"\d+(\.\d+)? ?%", ratio), ratio
    assert re.search(r'id="bytes-saved">[\d.]+ (B|KiB|MiB)<', dom), "bytes saved shown"
    assert re.search(r'<td class="err">429</td>.*?<td>models/acme/tiny</td>', dom, flags=re.S), "the error row"

    os.makedirs(ARTIFACTS, exist_ok=True)
    shot = os.path.join(ARTIFACTS, "admin.png")
    if os.path.exists(shot):
        os.remove(shot)
    r = _browser([f"--screenshot={shot}", "--window-size=1280,900", "--hide-scrollbars"], f"{m.url}/admin")
    assert r.returncode == 0, r.stderr[-2000:]
    with open(shot, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n", "a PNG screenshot"
    assert os.path.getsize(shot) > 10_000


def test_a_model_warmed_with_prefetch_can_be_watched_on_the_admin_page(make_mirror, hub, hub_admin):
    """The operator's story: `olah-cli prefetch` warms a repo while `/admin/api/stats` lists its
    fill with progress; afterwards the repo is in the cache (top by size) and a re-run costs the
    upstream nothing."""
    m = make_mirror()
    want = hub.file("acme/big", "big.bin")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_") and "proxy" not in k.lower()}
    env.update(NO_PROXY="*", no_proxy="*")
    cmd = [_binary("olah-cli"), "prefetch", "acme/big", "--endpoint", m.url]
    seen = None
    with hub_admin.faulted(bandwidth_bytes_per_sec=max(want["size"] // 8, 1 << 20)):
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        try:
            deadline = time.time() + 60
            while time.time() < deadline and p.poll() is None:
                fills = [f for f in _stats(m)["fills_in_flight"] if f["repo_id"] == "acme/big"]
                if fills and 0 < fills[0]["bytes_done"] < fills[0]["bytes_total"]:
                    seen = fills[0]
                    break
                time.sleep(0.05)
            out, err = p.communicate(timeout=240)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert p.returncode == 0, err
    assert seen is not None and seen["path"] == "big.bin", "the prefetch's fill was listed in flight"
    assert re.search(r"prefetched \d+ files, \d+ bytes \((\d+) bytes from upstream\)", out), out
    s = _stats(m)
    assert s["fills_in_flight"] == []
    # Sizes come from a catalog scan the page reuses for 10 s: the one taken while polling above
    # may predate the fill.
    deadline = time.time() + 30
    while "acme/big" not in {r["repo_id"] for r in s["top_repos_by_size"]} and time.time() < deadline:
        time.sleep(0.5)
        s = _stats(m)
    by_size = {r["repo_id"]: r for r in s["top_repos_by_size"]}
    assert by_size["acme/big"]["bytes"] >= want["size"], s["top_repos_by_size"]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0 and "(0 bytes from upstream)" in r.stdout, (r.stdout, r.stderr)
