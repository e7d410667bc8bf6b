"""Xet through the mirror (issue 3): real hf_xet clients speak Xet to the mirror, which serves
the token route, the reconstruction API and xorb ranges from its own cache; plain clients get the
same files rebuilt from the same xorb cache; no client ever reaches the fake Hub's CAS or xorb
host; access to gated Xet files is checked per caller on both paths."""

import hashlib
import http.client as http_client
import json
import os
import re
import subprocess
import time
import urllib.parse

import pytest

from conftest import TARGET, http, mirror_only

REPO = "acme/xet-big"
FILE = "weights.bin"
TELEMETRY_OFF = {"HF_XET_TELEMETRY_ENABLED": "false"}

DL = """
from huggingface_hub import hf_hub_download
emit(sha(hf_hub_download({repo!r}, {path!r}, revision={rev!r})))
"""

SNAP = """
from huggingface_hub import snapshot_download
emit(tree_hashes(snapshot_download({repo!r}, revision={rev!r})))
"""

CLI = """
import subprocess, sys, os
hf = os.path.join(os.path.dirname(sys.executable), "hf")
r = subprocess.run([hf, "download", {repo!r}, {path!r}, "--revision", {rev!r}], capture_output=True, text=True, timeout=300)
assert r.returncode == 0, r.stderr
last = r.stdout.strip().splitlines()[-1].strip()
emit(sha(last.split("path:", 1)[1].strip() if last.startswith("path:") else last))
"""

FS_RANGES = """
from huggingface_hub import HfFileSystem
fs = HfFileSystem()
out = []
with fs.open({repo!r} + "/" + {path!r}, "rb", revision={rev!r}) as f:
    for start, n in {ranges!r}:
        f.seek(start)
        out.append(hashlib.sha256(f.read(n)).hexdigest())
emit(out)
"""


def hub_bytes(hub, repo, path, rev, start, end):
    """Reference bytes straight from the fake Hub (plain resolve → CDN)."""
    status, _, body = http(f"{hub.hub}/{repo}/resolve/{rev}/{path}", headers={"Range": f"bytes={start}-{end}"}, follow=True)
    assert status == 206, status
    return body


def assert_never_bypassed(stats):
    """Every request that reached the fake's token route, CAS API or xorb host came from the
    mirror (its user agent), none from hf_xet or huggingface_hub."""
    xet_entries = [
        r for r in stats.log
        if r.get("uri", "").startswith(("/cas/", "/xorb/")) or "xet-read-token" in r.get("uri", "")
    ]
    strays = [r for r in xet_entries if not (r.get("user_agent") or "").startswith("olah-rs/")]
    assert not strays, strays[:5]
    return xet_entries


def range_files(xdir):
    """(verified, pending) xorb range files under a mirror's xorbs directory."""
    done, pending = [], []
    for d, _, fs in os.walk(xdir):
        if d == os.path.join(xdir, "tmp"):
            continue
        for f in fs:
            if f.endswith(".p"):
                pending.append(os.path.join(d, f))
            elif not f.endswith(".c"):
                done.append(os.path.join(d, f))
    return done, pending


def wait_all_verified(xdir, timeout=20):
    """Waits until the mirror checked the cached ranges against their file hashes."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        done, pending = range_files(xdir)
        if done and not pending:
            return done
        time.sleep(0.1)
    raise AssertionError(f"ranges still pending: {range_files(xdir)}")


def xet_requests_to_mirror(m):
    """(token, reconstruction, xorb) request counts in the mirror's log."""
    log = m.log_text()
    return (
        len(re.findall(r"path=/api/models/[^ ]*/xet-read-token/", log)),
        len(re.findall(r"path=/cas/v[12]/reconstructions/", log)),
        len(re.findall(r"path=/cas/xorb/", log)),
    )


@pytest.mark.parametrize("how", ["hf_hub_download", "snapshot_download", "hf download", "HfFileSystem"])
def test_xet_clients_get_exact_bytes(hub, hub_admin, client_env, endpoint, how):
    """Each real client downloads the Xet-backed file with hf_xet; through the mirror, every
    Xet request goes to the mirror and only the mirror talks to the fake's CAS."""
    info = hub.file(REPO, FILE, "v1")
    assert info["xet"]
    hub_admin.reset()
    if how == "hf_hub_download":
        res = client_env(DL.format(repo=REPO, path=FILE, rev="v1"), env=TELEMETRY_OFF, timeout=300)
        assert res.out == info["sha256"]
    elif how == "snapshot_download":
        res = client_env(SNAP.format(repo=REPO, rev="main"), env=TELEMETRY_OFF, timeout=300)
        assert res.out == {FILE: hub.file(REPO, FILE, "main")["sha256"]}
    elif how == "hf download":
        res = client_env(CLI.format(repo=REPO, path=FILE, rev="v1"), env=TELEMETRY_OFF, timeout=300)
        assert res.out == info["sha256"]
    else:
        size = info["size"]
        ranges = [(0, 1000), (size // 2 - 10, 5000), (size - 4096, 4096), (12345678 % size, 1 << 20)]
        res = client_env(FS_RANGES.format(repo=REPO, path=FILE, rev="v1", ranges=ranges), env=TELEMETRY_OFF, timeout=300)
        want = [hashlib.sha256(hub_bytes(hub, REPO, FILE, "v1", s, min(s + n, size) - 1)).hexdigest() for s, n in ranges]
        assert res.out == want
    if TARGET == "mirror":
        assert_never_bypassed(hub_admin.stats())


@mirror_only
def test_second_client_on_either_path_costs_zero_upstream(hub, hub_admin, make_mirror, client_env, tmp_path):
    """hf_xet fills the xorb cache; a second hf_xet client, a client without Xet and curl are then
    served from it with no upstream request at all."""
    m = make_mirror()
    info = hub.file(REPO, FILE, "v1")
    code = DL.format(repo=REPO, path=FILE, rev="v1")
    first = client_env(code, endpoint=m.url, home=tmp_path / "a", env=TELEMETRY_OFF, timeout=300)
    assert first.out == info["sha256"]
    assert_never_bypassed(hub_admin.stats())
    assert xet_requests_to_mirror(m)[2] > 0, "hf_xet fetched xorbs from the mirror"
    size = info["size"]
    tail_ref = hub_bytes(hub, REPO, FILE, "v1", size - 100000, size - 1)
    hub_admin.reset()
    again = client_env(code, endpoint=m.url, home=tmp_path / "b", env=TELEMETRY_OFF, timeout=300)
    assert again.out == info["sha256"]
    plain = client_env(code, endpoint=m.url, home=tmp_path / "c", disable_xet=True, timeout=300)
    assert plain.out == info["sha256"]
    status, h, body = http(f"{m.url}/{REPO}/resolve/v1/{FILE}", headers={"Range": f"bytes={size - 100000}-"})
    assert status == 206 and h["Content-Range"] == f"bytes {size - 100000}-{size - 1}/{size}"
    assert body == tail_ref
    s = hub_admin.stats()
    assert (s.requests("hub"), s.requests("cdn"), s.raw["xorb_bytes"]) == (0, 0, 0), s.summary()


@mirror_only
def test_plain_client_first_then_xet_client_costs_zero_upstream(hub, hub_admin, make_mirror, client_env, tmp_path):
    """A plain download of a Xet file is rebuilt from xorbs (verified by sha256) and fills the
    same cache hf_xet then reads."""
    m = make_mirror()
    info = hub.file(REPO, FILE, "v1")
    code = DL.format(repo=REPO, path=FILE, rev="v1")
    hub_admin.reset()
    assert client_env(code, endpoint=m.url, home=tmp_path / "a", disable_xet=True, timeout=300).out == info["sha256"]
    s = hub_admin.stats()
    assert s.raw["requests"].get("cdn", {}).get("GET", {}).get("lfs", 0) == 0, "rebuilt from xorbs, not the LFS CDN"
    assert s.raw["xorb_bytes"] >= info["size"]
    assert_never_bypassed(s)
    hub_admin.reset()
    assert client_env(code, endpoint=m.url, home=tmp_path / "b", env=TELEMETRY_OFF, timeout=300).out == info["sha256"]
    s = hub_admin.stats()
    assert (s.requests("hub"), s.requests("cdn")) == (0, 0), s.summary()


@mirror_only
@pytest.mark.parametrize("second", ["xet", "plain"])
def test_revision_2_costs_only_the_changed_chunks(hub, hub_admin, make_mirror, client_env, tmp_path, second):
    """v1 of a large file through hf_xet, then main (4 KiB changed in the middle): upstream xorb
    bytes for main are about one chunk, not the file, on either path."""
    m = make_mirror()
    v1, v2 = hub.file(REPO, FILE, "v1"), hub.file(REPO, FILE, "main")
    assert v1["xetHash"] != v2["xetHash"]
    hub_admin.reset()
    assert client_env(DL.format(repo=REPO, path=FILE, rev="v1"), endpoint=m.url, home=tmp_path / "a", env=TELEMETRY_OFF, timeout=300).out == v1["sha256"]
    first = hub_admin.stats().raw["xorb_bytes"]
    assert first >= v1["size"]
    hub_admin.reset()
    res = client_env(
        DL.format(repo=REPO, path=FILE, rev="main"), endpoint=m.url, home=tmp_path / "b",
        disable_xet=second == "plain", env=TELEMETRY_OFF, timeout=300,
    )
    assert res.out == v2["sha256"]
    s = hub_admin.stats()
    second_bytes = s.raw["xorb_bytes"]
    print(f"\nrevision 2 ({second}): {second_bytes} upstream xorb bytes for a {v2['size']}-byte file "
          f"(revision 1 cost {first})")
    # A 4 KiB patch touches at most two chunks (≤ 128 KiB each) of the content-defined chunking.
    assert 0 < second_bytes <= 2 * (128 << 10) + 64, second_bytes
    assert s.raw["requests"].get("cdn", {}).get("GET", {}).get("lfs", 0) == 0
    assert_never_bypassed(s)


@mirror_only
def test_concurrent_cold_xet_clients_share_one_upstream_fetch(hub, hub_admin, make_mirror, client_env, tmp_path):
    m = make_mirror()
    info = hub.file(REPO, FILE, "v1")
    code = DL.format(repo=REPO, path=FILE, rev="v1")
    hub_admin.reset()
    handles = [client_env.spawn(code, endpoint=m.url, home=tmp_path / f"h{i}", env=TELEMETRY_OFF) for i in range(4)]
    for h in handles:
        assert client_env.finish(h, timeout=300).out == info["sha256"]
    s = hub_admin.stats()
    # Xorb bytes of the file = its size plus 8 bytes of header per chunk.
    assert info["size"] <= s.raw["xorb_bytes"] <= info["size"] * 1.01, s.raw["xorb_bytes"]
    assert_never_bypassed(s)


GATED = "acme/gated-xet"
GFILE = "model.safetensors"


def _dl_error(client_env, url, token, disable_xet, home):
    code = f"""
from huggingface_hub import hf_hub_download
try:
    p = hf_hub_download({GATED!r}, {GFILE!r})
    emit({{"ok": sha(p)}})
except Exception as e:
    emit({{"error": type(e).__name__}})
"""
    return client_env(code, endpoint=url, token=token, disable_xet=disable_xet, home=home, env=TELEMETRY_OFF, timeout=300).out


@mirror_only
def test_gated_xet_file_only_for_callers_the_hub_accepts(hub, hub_admin, make_mirror, client_env, tmp_path):
    m = make_mirror()
    want = hub.file(GATED, GFILE)["sha256"]
    for token in (None, "hf_other", "hf_bogus"):
        out = _dl_error(client_env, m.url, token, False, tmp_path / f"before-{token}")
        assert "error" in out, (token, out)
    assert _dl_error(client_env, m.url, "hf_granted", False, tmp_path / "granted") == {"ok": want}
    # Cached now: still refused to everyone the Hub refuses, on both paths.
    for token in (None, "hf_other", "hf_bogus"):
        for disable_xet in (False, True):
            out = _dl_error(client_env, m.url, token, disable_xet, tmp_path / f"after-{token}-{disable_xet}")
            assert out.get("error") in ("GatedRepoError", "HfHubHTTPError", "RepositoryNotFoundError", "LocalEntryNotFoundError"), (token, disable_xet, out)
    assert _dl_error(client_env, m.url, "hf_granted", True, tmp_path / "granted-plain") == {"ok": want}
    # Raw: the token route refuses without a token; a mirror token for a public repo does not
    # open the gated file's reconstruction.
    status, _, _ = http(f"{m.url}/api/models/{GATED}/xet-read-token/main")
    assert status in (401, 403)
    status, h, _ = http(f"{m.url}/api/models/acme/tiny/xet-read-token/main")
    assert status == 200
    tok = h["X-Xet-Access-Token"]
    gated_hash = hub.file(GATED, GFILE)["xetHash"]
    status, _, body = http(f"{m.url}/cas/v1/reconstructions/{gated_hash}", headers={"Authorization": f"Bearer {tok}"})
    assert status in (401, 403, 404), (status, body[:200])
    assert b"/cas/xorb/" not in body


@mirror_only
def test_token_route_and_signed_xorb_urls(hub, make_mirror):
    """The token route answers headers and JSON pointing at the mirror; reconstructions need the
    mirror token; xorb URLs are the mirror's own, signed, and refuse tampering."""
    m = make_mirror()
    info = hub.file(REPO, FILE, "v1")
    status, h, body = http(f"{m.url}/api/models/{REPO}/xet-read-token/v1")
    assert status == 200
    j = json.loads(body)
    assert j["casUrl"] == h["X-Xet-Cas-Url"] == f"{m.url}/cas"
    assert j["accessToken"] == h["X-Xet-Access-Token"] and int(h["X-Xet-Token-Expiration"]) == j["exp"]
    for netloc in hub.netlocs:
        assert netloc not in body.decode() + json.dumps(dict(h))
    # One session per (repo, revision, caller): asking again returns the same token.
    assert json.loads(http(f"{m.url}/api/models/{REPO}/xet-read-token/v1")[2])["accessToken"] == j["accessToken"]
    other = http(f"{m.url}/api/models/{REPO}/xet-read-token/v1", headers={"Authorization": "Bearer hf_granted"})
    assert other[0] == 200 and json.loads(other[2])["accessToken"] != j["accessToken"]
    recon = f"{m.url}/cas/v2/reconstructions/{info['xetHash']}"
    assert http(recon)[0] == 401
    assert http(recon, headers={"Authorization": "Bearer olx_nope"})[0] == 401
    status, _, body = http(recon, headers={"Authorization": f"Bearer {j['accessToken']}", "Range": "bytes=1000-2999"})
    assert status == 200, body[:300]
    r = json.loads(body)
    for netloc in hub.netlocs:
        assert netloc not in body.decode()
    (xorb, entries), = list(r["xorbs"].items())[:1]
    entry = entries[0]
    url = entry["url"]
    assert url.startswith(f"{m.url}/cas/xorb/{xorb}?")
    rng = entry["ranges"][0]["bytes"]
    ok = http(url, headers={"Range": f"bytes={rng['start']}-{rng['end']}"})
    assert ok[0] == 206 and len(ok[2]) == rng["end"] - rng["start"] + 1
    # v1 answers the same terms.
    status, _, body1 = http(recon.replace("/v2/", "/v1/"), headers={"Authorization": f"Bearer {j['accessToken']}", "Range": "bytes=1000-2999"})
    assert status == 200 and json.loads(body1)["terms"] == r["terms"]
    # Tampering: a wider byte range, another signature, an expired stamp.
    u = urllib.parse.urlsplit(url)
    q = dict(urllib.parse.parse_qsl(u.query))
    for k, v in (("b", f"{rng['start']}-{rng['end'] + 1000}"), ("s", "0" * len(q["s"])), ("x", "1")):
        bad = urllib.parse.urlunsplit(u._replace(query=urllib.parse.urlencode({**q, k: v})))
        assert http(bad, headers={"Range": f"bytes={rng['start']}-{rng['end']}"})[0] == 403, k
    assert http(f"{m.url}/cas/xorb/{xorb}")[0] == 403


@mirror_only
def test_xet_downloads_work_offline_from_the_cache(hub, hub_admin, make_mirror, client_env, tmp_path):
    m = make_mirror()
    info = hub.file(REPO, FILE, "v1")
    code = DL.format(repo=REPO, path=FILE, rev=info["commit"])
    assert client_env(code, endpoint=m.url, home=tmp_path / "a", env=TELEMETRY_OFF, timeout=300).out == info["sha256"]
    # Only verified ranges survive a restart (pending ones are swept at start-up).
    wait_all_verified(os.path.join(m.repos, "xorbs"))
    m.restart(["--offline"])
    hub_admin.reset()
    assert client_env(code, endpoint=m.url, home=tmp_path / "b", env=TELEMETRY_OFF, timeout=300).out == info["sha256"]
    s = hub_admin.stats()
    assert (s.requests("hub"), s.requests("cdn")) == (0, 0), s.summary()
    assert xet_requests_to_mirror(m)[2] > 0, "served over Xet from the cache"


@mirror_only
def test_xorb_urls_and_mirror_tokens_survive_a_restart(hub, hub_admin, make_mirror, client_env, tmp_path):
    """The xorb-URL secret and the Xet sessions live in the index: after a restart a xorb URL
    signed before it still serves its range, a mirror token issued before it still opens the
    cached reconstruction (a tampered one does not), and a fresh hf_xet client downloads the file
    from the cache."""
    m = make_mirror()
    info = hub.file(REPO, FILE, "v1")
    code = DL.format(repo=REPO, path=FILE, rev=info["commit"])
    assert client_env(code, endpoint=m.url, home=tmp_path / "a", env=TELEMETRY_OFF, timeout=300).out == info["sha256"]
    wait_all_verified(os.path.join(m.repos, "xorbs"))
    tok = json.loads(http(f"{m.url}/api/models/{REPO}/xet-read-token/{info['commit']}")[2])["accessToken"]
    recon = f"{m.url}/cas/v2/reconstructions/{info['xetHash']}"
    status, _, body = http(recon, headers={"Authorization": f"Bearer {tok}"})
    assert status == 200, body[:300]
    entry = next(iter(json.loads(body)["xorbs"].values()))[0]
    url, rng = entry["url"], entry["ranges"][0]["bytes"]
    m.restart()
    hub_admin.reset()
    ok = http(url, headers={"Range": f"bytes={rng['start']}-{rng['end']}"})
    assert ok[0] == 206 and len(ok[2]) == rng["end"] - rng["start"] + 1
    status, _, again = http(recon, headers={"Authorization": f"Bearer {tok}"})
    assert status == 200 and json.loads(again)["terms"] == json.loads(body)["terms"]
    tampered = tok[:-1] + ("1" if tok[-1] == "0" else "0")
    assert http(recon, headers={"Authorization": f"Bearer {tampered}"})[0] == 401
    assert client_env(code, endpoint=m.url, home=tmp_path / "b", env=TELEMETRY_OFF, timeout=300).out == info["sha256"]
    s = hub_admin.stats()
    # No file bytes and no reconstruction from the upstream: all from the cache.
    assert s.raw["xorb_bytes"] == 0 and not s.entries(host="cdn", method="GET"), s.summary()
    assert not s.entries(contains="/reconstructions/"), s.summary()
    with open(os.path.join(m.repos, "olah-meta.redb"), "rb") as f:
        assert tok.encode() not in f.read(), "no token is written to disk"


@mirror_only
def test_plain_mode_strips_xet(hub, make_mirror, client_env, tmp_path):
    m = make_mirror("--xet", "plain")
    info = hub.file(REPO, FILE, "v1")
    res = client_env(
        f"""
from huggingface_hub import get_hf_file_metadata, hf_hub_url, hf_hub_download
meta = get_hf_file_metadata(hf_hub_url({REPO!r}, {FILE!r}, revision="v1"))
emit({{"xet": meta.xet_file_data is not None, "sha": sha(hf_hub_download({REPO!r}, {FILE!r}, revision="v1"))}})
""",
        endpoint=m.url, home=tmp_path / "a", env=TELEMETRY_OFF, timeout=300,
    )
    assert res.out == {"xet": False, "sha": info["sha256"]}
    assert xet_requests_to_mirror(m) == (0, 0, 0)
    assert http(f"{m.url}/api/models/{REPO}/xet-read-token/v1")[0] == 404


JS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "js")


@mirror_only
def test_huggingface_js_downloads_over_xet(hub, hub_admin, make_mirror):
    """huggingface.js (@huggingface/hub, installed by scripts/test.sh) reads the file info as
    xet-fileinfo JSON, then uses the v2 reconstruction only, through the mirror."""
    assert os.path.isdir(os.path.join(JS_DIR, "node_modules", "@huggingface", "hub")), "run scripts/test.sh (npm install)"
    m = make_mirror()
    info = hub.file(REPO, FILE, "v1")
    size = info["size"]
    slices = [(0, 1000), (size // 2, size // 2 + 70000)]
    want = [hashlib.sha256(hub_bytes(hub, REPO, FILE, "v1", a, b - 1)).hexdigest() for a, b in slices]
    hub_admin.reset()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    r = subprocess.run(
        ["node", "download.mjs", m.url, REPO, FILE, "v1", *[f"{a}:{b}" for a, b in slices]],
        cwd=JS_DIR, env=env, capture_output=True, text=True, timeout=300,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out == {"sha256": info["sha256"], "size": size, "xet": True, "ranges": want}
    assert_never_bypassed(hub_admin.stats())
    tok, recon, xorb = xet_requests_to_mirror(m)
    assert tok >= 1 and recon >= 1 and xorb >= 1, (tok, recon, xorb)
    assert "path=/cas/v2/reconstructions/" in m.log_text(), "huggingface.js uses v2"


@mirror_only
def test_a_corrupted_xorb_range_is_caught_by_the_file_hash_and_refetched(hub, hub_admin, make_mirror, client_env, tmp_path):
    """A byte flipped in a cached xorb range (uncompressed records pass every structural check)
    is caught when a plain download rebuilds the whole file and checks its Xet file hash: the
    client never gets the bad byte, the xorbs are dropped and fetched again."""
    m = make_mirror()
    info = hub.file("acme/tiny", "model.safetensors")
    code = """
from huggingface_hub import hf_hub_download
emit(sha(hf_hub_download("acme/tiny", "model.safetensors")))
"""
    assert client_env(code, endpoint=m.url, home=tmp_path / "a", env=TELEMETRY_OFF).out == info["sha256"]
    xdir = os.path.join(m.repos, "xorbs")
    wait_all_verified(xdir)
    ranges = [os.path.join(d, f) for d, _, fs in os.walk(xdir) if d != os.path.join(xdir, "tmp") for f in fs]
    ranges = [r for r in ranges if not r.endswith(".c")]
    assert ranges
    victim = max(ranges, key=os.path.getsize)
    with open(victim, "r+b") as f:
        f.seek(os.path.getsize(victim) // 2)
        b = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([b[0] ^ 0xFF]))
    try:
        status, _, body = http(f"{m.url}/acme/tiny/resolve/main/model.safetensors")
        assert status != 200, "the corrupted rebuild must not complete"
    except http_client.IncompleteRead:
        pass  # the body was cut before its last bytes: the client knows it failed
    assert not os.path.exists(victim), "the xorb was dropped"
    hub_admin.reset()
    status, _, body = http(f"{m.url}/acme/tiny/resolve/main/model.safetensors")
    assert status == 200 and hashlib.sha256(body).hexdigest() == info["sha256"]
    assert hub_admin.stats().raw["xorb_bytes"] >= info["size"], "fetched again from the upstream"


@pytest.mark.parametrize("path", ["tokenizer.json", "weights.f32"])
def test_compressed_xorb_records_lz4_and_byte_grouped(hub, hub_admin, client_env, endpoint, path):
    """Xet files stored as LZ4 (text) and byte-grouped LZ4 (float tensors) records: hf_xet through
    the mirror and a plain client rebuilt by the mirror both get the exact bytes (direct mode
    checks that hf_xet accepts the fake's compressed xorbs)."""
    info = hub.file("acme/xet-text", path)
    assert info["xet"]
    code = f"""
from huggingface_hub import hf_hub_download
emit(sha(hf_hub_download("acme/xet-text", {path!r})))
"""
    hub_admin.reset()
    assert client_env(code, env=TELEMETRY_OFF).out == info["sha256"]
    xorb = hub_admin.stats().raw["xorb_bytes"]
    assert xorb < info["size"] * 0.8, f"records are compressed ({xorb} xorb bytes for {info['size']})"
    if TARGET == "mirror":
        assert_never_bypassed(hub_admin.stats())
        assert client_env(code, disable_xet=True).out == info["sha256"]


@mirror_only
def test_xorb_ranges_are_verified_against_the_file_hash_and_bad_ones_discarded(hub, hub_admin, make_mirror, client_env, tmp_path):
    """Xet path: every range the mirror fetched is promoted to verified once the file's chunk
    hashes match its Xet file hash; when the upstream sends a well-formed but wrong xorb (one
    flipped payload byte) the range is discarded, never kept, and the next client gets the file
    fetched again, exact."""
    m = make_mirror()
    xdir = os.path.join(m.repos, "xorbs")
    code = DL.format(repo="acme/gated-xet", path="model.safetensors", rev="main")
    info = hub.file("acme/gated-xet", "model.safetensors")
    # A healthy download: everything ends verified.
    assert client_env(code, endpoint=m.url, token="hf_granted", home=tmp_path / "a", env=TELEMETRY_OFF).out == info["sha256"]
    wait_all_verified(xdir)
    # A corrupted one (another file, so nothing is cached yet).
    info2 = hub.file("acme/tiny", "model.safetensors")
    hub_admin.faults(corrupt_xorbs=1, scope="cdn")
    # hf_xet itself does not check chunk hashes on download, so this client may well end up with
    # the bad byte: the mirror cannot stop a stream it is already passing through. What it must
    # not do is keep the range.
    client_env(DL.format(repo="acme/tiny", path="model.safetensors", rev="main"), endpoint=m.url,
               home=tmp_path / "b", env=TELEMETRY_OFF, check=False)
    hub_admin.faults()
    deadline = time.time() + 20
    while time.time() < deadline and "Xet file hash mismatch" not in m.log_text():
        time.sleep(0.1)
    assert "Xet file hash mismatch" in m.log_text()
    done, pending = range_files(xdir)
    assert not pending, pending
    # The good file's ranges are still there; the bad range is gone: the next client refetches.
    hub_admin.reset()
    assert client_env(DL.format(repo="acme/tiny", path="model.safetensors", rev="main"), endpoint=m.url,
                      home=tmp_path / "c", env=TELEMETRY_OFF).out == info2["sha256"]
    assert hub_admin.stats().raw["xorb_bytes"] >= info2["size"]
    wait_all_verified(xdir)
