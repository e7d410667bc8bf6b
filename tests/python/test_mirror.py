"""What only a mirror does: cache hits without upstream traffic, access control on cached content,
single-flight, resume, integrity, offline mode, config rules, and never leaking the upstream."""

import concurrent.futures
import hashlib
import json
import os
import re
import shutil
import subprocess
import time

import pytest

from conftest import http, mirror_only, sha256_file

pytestmark = mirror_only

MiB = 1 << 20


def assert_no_upstream(stats, what=""):
    assert (stats.requests("hub"), stats.requests("cdn"), stats.bytes("hub"), stats.bytes("cdn")) == (0, 0, 0, 0), (
        what,
        stats.summary(),
    )


SNAP = """
from huggingface_hub import snapshot_download
p = snapshot_download({repo!r}, repo_type={kind!r}, revision={rev!r})
emit(tree_hashes(p))
"""

DL = """
from huggingface_hub import hf_hub_download
emit({{f: sha(hf_hub_download({repo!r}, f, repo_type={kind!r}, revision={rev!r})) for f in {files!r}}})
"""


@pytest.mark.parametrize(
    "what,repo,kind,disable_xet",
    [
        ("snapshot", "acme/tiny", "model", True),
        ("snapshot", "acme/tiny", "model", False),
        ("snapshot", "acme/data", "dataset", False),
        ("files", "acme/tiny", "model", False),
        ("files", "gpt2", "model", False),
    ],
)
def test_second_download_makes_zero_upstream_requests(hub, hub_admin, make_mirror, client_env, tmp_path, what, repo, kind, disable_xet):
    m = make_mirror()
    rev = hub.commit(repo, "main", kind)
    want = {p: v["sha256"] for p, v in hub.tree(repo, rev, kind).items()}
    if what == "snapshot":
        code = SNAP.format(repo=repo, kind=kind, rev=rev)
    else:
        want = {p: h for p, h in want.items() if p.endswith((".bin", ".json", ".safetensors"))}
        code = DL.format(repo=repo, kind=kind, rev=rev, files=sorted(want))
    first = client_env(code, endpoint=m.url, home=tmp_path / "a", disable_xet=disable_xet)
    assert first.out == want
    hub_admin.reset()
    second = client_env(code, endpoint=m.url, home=tmp_path / "b", disable_xet=disable_xet)
    assert second.out == want
    assert_no_upstream(hub_admin.stats(), "commit-pinned cache hit")


def test_branch_downloads_within_ttl_make_zero_upstream_requests(hub, hub_admin, make_mirror, client_env, tmp_path):
    m = make_mirror("--metadata-cache-ttl", "600")
    code = DL.format(repo="acme/tiny", kind="model", rev="main", files=["config.json", "model.bin", "model.safetensors"])
    want = {f: hub.file("acme/tiny", f)["sha256"] for f in ["config.json", "model.bin", "model.safetensors"]}
    assert client_env(code, endpoint=m.url, home=tmp_path / "a").out == want
    hub_admin.reset()
    assert client_env(code, endpoint=m.url, home=tmp_path / "b").out == want
    assert_no_upstream(hub_admin.stats(), "branch within TTL")


GATED = """
from huggingface_hub import hf_hub_download
r = catch(lambda: sha(hf_hub_download({repo!r}, {path!r}, revision={rev!r})))
emit(r)
"""


@pytest.mark.parametrize(
    "repo,path,owner,others,exc",
    [
        ("acme/gated", "weights.bin", "hf_granted", [None, "hf_other"], "GatedRepoError"),
        ("acme/gated", "config.json", "hf_granted", [None, "hf_other"], "GatedRepoError"),
        ("acme/private", "config.json", "hf_owner", [None, "hf_other"], "RepositoryNotFoundError"),
    ],
)
def test_cached_non_public_content_is_refused_to_others(hub, make_mirror, client_env, tmp_path, repo, path, owner, others, exc):
    m = make_mirror()
    want = hub.file(repo, path)
    commit = want["commit"]
    for rev in ("main", commit):
        out = client_env(GATED.format(repo=repo, path=path, rev=rev), endpoint=m.url, token=owner, home=tmp_path / f"owner-{rev}").out
        assert out == {"ok": want["sha256"]}
    for tok in others:
        for rev in ("main", commit):
            out = client_env(GATED.format(repo=repo, path=path, rev=rev), endpoint=m.url, token=tok, home=tmp_path / f"{tok}-{rev}").out
            assert out.get("err") == exc, (tok, rev, out)
    # Raw HTTP, on the cache-hit path (commit-pinned), GET and HEAD.
    url = f"{m.url}/{repo}/resolve/{commit}/{path}"
    for method in ("GET", "HEAD"):
        for tok in others:
            headers = {"Authorization": f"Bearer {tok}"} if tok else {}
            status, h, body = http(url, method=method, headers=headers)
            assert status in (401, 403, 404), (method, tok, status)
            assert h.get("X-Error-Code") == ("GatedRepo" if exc == "GatedRepoError" else "RepoNotFound"), (method, tok, dict(h))
            assert want["sha256"] not in json.dumps(dict(h)), "no metadata of the file leaks"
            assert len(body) < 4096
    status, _, body = http(url, headers={"Authorization": f"Bearer {owner}"})
    assert status == 200 and hashlib.sha256(body).hexdigest() == want["sha256"]
    # Tokens are never written to disk: not in the cache, the database, or the logs.
    m.stop()
    for root, _, names in os.walk(m.dir):
        for n in names:
            with open(os.path.join(root, n), "rb") as f:
                data = f.read()
            for tok in [owner, "hf_other"]:
                assert tok.encode() not in data, (tok, os.path.join(root, n))
    logs = os.path.join(m.dir, "logs")
    text = b"".join(open(os.path.join(logs, f), "rb").read() for f in os.listdir(logs))
    assert f'repo="models/{repo}"'.encode() in text and b'cache="hit"' in text, "--log-path gets one line per request"
    assert b"\x1b[" not in text, "no terminal colours in the log file"


READY_GO = """
from huggingface_hub import hf_hub_download
open(os.environ["READY"], "w").close()
deadline = time.time() + 60
while not os.path.exists(os.environ["GO"]) and time.time() < deadline:
    time.sleep(0.01)
p = hf_hub_download("acme/big", "big.bin")
emit({"sha": sha(p)})
"""


@pytest.mark.parametrize("clients", ["hf_hub_download", "raw-http"])
def test_eight_concurrent_cold_clients_cost_one_upstream_transfer(hub, hub_admin, make_mirror, client_env, tmp_path, clients):
    m = make_mirror()
    want = hub.file("acme/big", "big.bin")
    n = 8
    hub_admin.reset()
    # Slow the CDN so that every client arrives while the first fill is still running.
    with hub_admin.faulted(bandwidth_bytes_per_sec=32 * MiB, scope="cdn"):
        if clients == "hf_hub_download":
            go = tmp_path / "go"
            handles = []
            for i in range(n):
                ready = tmp_path / f"ready{i}"
                handles.append((ready, client_env.spawn(READY_GO, endpoint=m.url, env={"READY": str(ready), "GO": str(go)})))
            deadline = time.time() + 60
            while not all(r.exists() for r, _ in handles) and time.time() < deadline:
                time.sleep(0.05)
            go.touch()
            digests = [client_env.finish(h, timeout=240).out["sha"] for _, h in handles]
        else:

            def fetch(_):
                status, _, body = http(f"{m.url}/acme/big/resolve/main/big.bin", follow=True, timeout=240)
                assert status == 200
                return hashlib.sha256(body).hexdigest()

            with concurrent.futures.ThreadPoolExecutor(n) as ex:
                digests = list(ex.map(fetch, range(n)))
    assert digests == [want["sha256"]] * n
    s = hub_admin.stats()
    cdn = s.bytes("cdn")
    assert want["size"] <= cdn <= want["size"] * 1.02, (cdn, want["size"], s.summary())


@pytest.mark.parametrize("cut_after,cuts", [(10 * MiB, 1), (3 * MiB, 3)])
def test_download_survives_upstream_cuts(hub, hub_admin, make_mirror, client_env, cut_after, cuts):
    m = make_mirror()
    want = hub.file("acme/big", "big.bin")
    hub_admin.reset()
    with hub_admin.faulted(cut_after_bytes=cut_after, cut_count=cuts, scope="cdn"):
        out = client_env(
            """
            from huggingface_hub import hf_hub_download
            emit({"sha": sha(hf_hub_download("acme/big", "big.bin"))})
            """,
            endpoint=m.url,
            timeout=240,
        ).out
    assert out["sha"] == want["sha256"]
    s = hub_admin.stats()
    cdn_gets = s.entries(host="cdn", method="GET")
    assert len(cdn_gets) > cuts, "the cut upstream bodies were retried"
    # Finished blocks are kept: a restart from byte 0 after every cut would cost size + cuts*cut_after.
    assert s.bytes("cdn") <= want["size"] + cuts * cut_after // 2, (s.bytes("cdn"), [r.get("range") for r in cdn_gets])


def test_range_requests(hub, hub_admin, make_mirror, big_file):
    m = make_mirror()
    size = hub.file("acme/big", "big.bin")["size"]
    url = f"{m.url}/acme/big/resolve/main/big.bin"

    def expect(a, n):
        with open(big_file, "rb") as f:
            f.seek(a)
            return f.read(n)

    hub_admin.reset()
    status, h, body = http(url, headers={"Range": "bytes=100-199"}, follow=True)
    assert status == 206 and body == expect(100, 100)
    assert h["Content-Range"] == f"bytes 100-199/{size}"
    assert hub_admin.stats().bytes("cdn") <= 8 * MiB, "a small range pulls at most a few blocks"
    status, h, body = http(url, headers={"Range": "bytes=-10"}, follow=True)
    assert status == 206 and body == expect(size - 10, 10)
    status, h, body = http(url, headers={"Range": f"bytes={size - 5}-"}, follow=True)
    assert status == 206 and body == expect(size - 5, 5)
    status, h, body = http(url, headers={"Range": f"bytes={size}-"}, follow=True)
    assert status == 416
    assert h["Content-Range"] == f"bytes */{size}"
    # If-Range compares strongly (RFC 9110 §13.1.5): the ETag keeps the range, its weak form or a
    # date sends the whole file; If-None-Match compares weakly.
    etag = http(url, method="HEAD")[1]["ETag"]
    for validator, want in [(etag, 206), (f"W/{etag}", 200), ("Wed, 21 Oct 2015 07:28:00 GMT", 200)]:
        status, h, _ = http(url, method="HEAD", headers={"Range": "bytes=0-9", "If-Range": validator})
        assert status == want, validator
        assert h["Content-Length"] == ("10" if want == 206 else str(size))
    assert http(url, method="HEAD", headers={"If-None-Match": f"W/{etag}"})[0] == 304


def test_concurrent_identical_metadata_requests_are_coalesced(hub, hub_admin, make_mirror):
    m = make_mirror()
    hub_admin.reset()
    urls = [f"{m.url}/acme/tiny/resolve/main/config.json"] * 8 + [f"{m.url}/api/models/acme/tiny/tree/main"] * 8
    with hub_admin.faulted(latency_ms=300, scope="hub"):
        with concurrent.futures.ThreadPoolExecutor(16) as ex:
            results = list(ex.map(lambda u: http(u, method="HEAD")[0], urls))
    assert results == [200] * 16
    heads = hub_admin.stats().entries(host="hub", contains="/resolve/")
    trees = hub_admin.stats().entries(host="hub", contains="/tree/")
    assert len(heads) == 1, heads
    assert len(trees) == 1, trees


def test_multi_range_answers_multipart_byteranges(hub, make_mirror, big_file):
    import email.parser

    m = make_mirror()
    size = hub.file("acme/big", "big.bin")["size"]
    url = f"{m.url}/acme/big/resolve/main/big.bin"
    status, h, body = http(url, headers={"Range": f"bytes=0-9, 5000000-5000099, -7, {size}-"})
    assert status == 206
    ctype = h["Content-Type"]
    assert ctype.startswith("multipart/byteranges; boundary=")
    assert int(h["Content-Length"]) == len(body)
    msg = email.parser.BytesParser().parsebytes(b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + body)
    parts = [(p["Content-Range"], p.get_payload(decode=True)) for p in msg.get_payload()]
    with open(big_file, "rb") as f:
        def at(a, n):
            f.seek(a)
            return f.read(n)

        want = [
            (f"bytes 0-9/{size}", at(0, 10)),
            (f"bytes 5000000-5000099/{size}", at(5000000, 100)),
            (f"bytes {size - 7}-{size - 1}/{size}", at(size - 7, 7)),
        ]
    assert parts == want, "the unsatisfiable part is dropped, the others are exact"


def test_curl_follows_and_gets_exact_bytes_from_the_mirror(hub, hub_admin, make_mirror, tmp_path):
    if not shutil.which("curl"):
        pytest.skip("curl not installed")
    m = make_mirror()
    cases = [
        ("acme/tiny/resolve/main/model.bin", hub.file("acme/tiny", "model.bin")),
        ("acme/tiny/resolve/main/model.safetensors", hub.file("acme/tiny", "model.safetensors")),
        ("acme/tiny/resolve/main/sub/dir/a%20b.txt", hub.file("acme/tiny", "sub/dir/a b.txt")),
        ("acme/tiny/resolve/refs%2Fpr%2F1/pr.txt", hub.file("acme/tiny", "pr.txt", "refs/pr/1")),
        (
            "datasets/acme/data/resolve/refs%2Fconvert%2Fparquet/default/train/0000.parquet",
            hub.file("acme/data", "default/train/0000.parquet", "refs/convert/parquet", "dataset"),
        ),
    ]
    for path, want in cases:
        out = tmp_path / "out"
        # --proto-redir: curl may only be redirected over http; the Location is checked below.
        p = subprocess.run(
            ["curl", "-sS", "-f", "-L", "--max-redirs", "5", "--noproxy", "*", "-o", str(out), "-w", "%{url_effective}", f"{m.url}/{path}"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert p.returncode == 0, (path, p.stderr)
        assert p.stdout.startswith(m.url + "/"), f"curl ended on {p.stdout}, not on the mirror"
        assert sha256_file(out) == want["sha256"], path


UPSTREAM_PROBES = [
    ("HEAD", "/acme/tiny/resolve/main/config.json"),
    ("HEAD", "/acme/tiny/resolve/main/model.bin"),
    ("HEAD", "/acme/tiny/resolve/main/model.safetensors"),
    ("GET", "/acme/tiny/resolve/main/model.safetensors"),
    ("GET", "/acme/tiny/resolve/refs%2Fpr%2F1/pr.txt"),
    ("GET", "/gpt2/resolve/main/pytorch_model.bin"),
    ("HEAD", "/acme/tiny/resolve/main/nope.txt"),
    ("GET", "/api/models/acme/tiny"),
    ("GET", "/api/models/acme/tiny/revision/main?blobs=true"),
    ("GET", "/api/models/acme/tiny/tree/main?recursive=true&expand=false"),
    ("GET", "/api/models/acme/tiny/tree/main/sub%2Fdir?recursive=false&expand=false"),
    ("GET", "/api/datasets/acme/data/tree/main?recursive=true&expand=false"),
    ("GET", "/api/datasets/acme/data/tree/main/data?recursive=false&expand=false"),
    ("POST", "/api/models/acme/tiny/paths-info/main"),
    ("GET", "/api/models/acme/tiny/refs?include_prs=1"),
    ("GET", "/api/models/acme/tiny/commits/main"),
    ("GET", "/api/models/acme/nope"),
]


def _urls_in_link(value):
    return re.findall(r"<([^>]*)>", value or "")


@pytest.mark.parametrize("xet", ["serve", "plain"])
def test_no_response_points_at_the_upstream(hub, make_mirror, xet):
    """Raw HTTP through the mirror: no header or body names the fake's hub or CDN, redirects stay
    on the mirror, pagination links point at the mirror; Xet hashes stay in serve mode (with Xet
    links to the mirror) and are stripped in plain mode."""
    mirror = make_mirror("--xet", xet)
    seen_xet = False
    for method, path in UPSTREAM_PROBES:
        data = b"paths=config.json&paths=model.safetensors&paths=sub&expand=false" if method == "POST" else None
        headers = {"Content-Type": "application/x-www-form-urlencoded"} if data else {}
        url = mirror.url + path
        for hop in range(6):
            status, h, body = http(url, method=method, data=data, headers=headers)
            text = json.dumps([list(kv) for kv in h.items()]) + body.decode(errors="replace")
            for netloc in hub.netlocs:
                assert netloc not in text, (method, url, status, netloc)
            if xet == "plain":
                assert "xetHash" not in text and "xet_hash" not in text, (method, url)
                assert not any(k.lower().startswith("x-xet-") for k in h.keys()), (method, url, dict(h))
            else:
                seen_xet = seen_xet or "xetHash" in text or "x-xet-hash" in text.lower()
            for link in _urls_in_link(h.get("Link")):
                assert link.startswith(mirror.url + "/") or link.startswith("/"), (url, h.get("Link"))
            if "/tree/" in path and "acme/data" in path:
                assert status == 200
                assert 'rel="next"' in (h.get("Link") or ""), "300+ entries span several pages"
            loc = h.get("Location")
            if not (300 <= status < 400 and loc):
                break
            assert loc.startswith("/") or loc.startswith(mirror.url + "/"), (url, loc)
            url = loc if loc.startswith("http") else mirror.url + loc
        else:
            raise AssertionError(f"redirect loop for {path}")
    if xet == "serve":
        assert seen_xet, "serve mode keeps Xet hashes for Xet clients"


def test_pagination_links_are_followable_through_the_mirror(hub, mirror):
    url = f"{mirror.url}/api/datasets/acme/data/tree/main?recursive=true&expand=false"
    seen = []
    for _ in range(20):
        status, h, body = http(url)
        assert status == 200, (url, status)
        seen += [e["path"] for e in json.loads(body)]
        nxt = [u for u in _urls_in_link(h.get("Link")) if 'rel="next"' in (h.get("Link") or "")]
        if not nxt:
            break
        url = nxt[0] if nxt[0].startswith("http") else mirror.url + nxt[0]
        assert url.startswith(mirror.url + "/")
    assert len(seen) == len(set(seen))
    assert set(hub.tree("acme/data", "main", "dataset")) <= set(seen)


@pytest.mark.parametrize("how", ["flag", "toml"])
def test_offline_mirror_serves_its_cache_without_upstream(hub, hub_admin, make_mirror, client_env, tmp_path, how):
    warm = make_mirror()
    commit = hub.commit("acme/tiny")
    files = ["config.json", "model.bin", "model.safetensors"]
    want = {f: hub.file("acme/tiny", f)["sha256"] for f in files}
    for rev in ("main", commit):
        code = DL.format(repo="acme/tiny", kind="model", rev=rev, files=files)
        assert client_env(code, endpoint=warm.url, home=tmp_path / f"warm-{rev}").out == want
    warm.stop()
    if how == "flag":
        off = make_mirror("--offline", repos=warm.repos)
    else:
        off = make_mirror(config="[accessibility]\noffline = true\n", repos=warm.repos)
    hub_admin.reset()
    for rev in ("main", commit):
        code = DL.format(repo="acme/tiny", kind="model", rev=rev, files=files)
        assert client_env(code, endpoint=off.url, home=tmp_path / f"off-{rev}").out == want, rev
    # Uncached content is an error (raw HTTP: the client would spend ~20 s retrying a 5xx).
    for path in ["/gpt2/resolve/main/config.json", "/acme/tiny/resolve/main/README.md", "/api/models/gpt2"]:
        status, _, _ = http(off.url + path)
        assert status >= 400, (path, status)
    assert_no_upstream(hub_admin.stats(), "offline mirror")


def test_proxy_rules_from_the_config_file(hub, hub_admin, make_mirror, client_env):
    m = make_mirror(config='[[accessibility.proxy]]\nrepo = "acme/*"\nallow = true\n')
    hub_admin.reset()
    out = client_env(
        """
        from huggingface_hub import hf_hub_download
        emit({
            "allowed": catch(lambda: sha(hf_hub_download("acme/tiny", "config.json"))),
            "denied": catch(lambda: hf_hub_download("gpt2", "config.json")),
        })
        """,
        endpoint=m.url,
    ).out
    assert out["allowed"] == {"ok": hub.file("acme/tiny", "config.json")["sha256"]}
    assert out["denied"].get("err") == "RepositoryNotFoundError", out
    assert not hub_admin.stats().entries(contains="gpt2"), "a denied repo causes no upstream traffic"


@pytest.mark.parametrize(
    "config,allowed,denied",
    [
        # Regex, anchored at the start only (olah's re.match); the later deny wins for acme/data.
        ('[[accessibility.proxy]]\nrepo = "^acme/.*"\nallow = true\nuse_re = true\n'
         '[[accessibility.proxy]]\nrepo = "acme/d[a-z]+"\nallow = false\nuse_re = true\n',
         ("acme/tiny", "model"), ("acme/data", "dataset")),
        # Wildcard deny after a catch-all allow.
        ('[[accessibility.proxy]]\nrepo = "*"\nallow = true\n[[accessibility.proxy]]\nrepo = "gpt?"\nallow = false\n',
         ("acme/tiny", "model"), ("gpt2", "model")),
    ],
)
def test_proxy_rules_regex_and_wildcard_last_match_wins(hub, hub_admin, make_mirror, client_env, config, allowed, denied):
    m = make_mirror(config=config)
    hub_admin.reset()
    out = client_env(
        f"""
        from huggingface_hub import HfApi
        api = HfApi()
        emit({{
            "allowed": catch(lambda: api.repo_info({allowed[0]!r}, repo_type={allowed[1]!r}).sha),
            "denied": catch(lambda: api.repo_info({denied[0]!r}, repo_type={denied[1]!r}).sha),
        }})
        """,
        endpoint=m.url,
    ).out
    assert out["allowed"] == {"ok": hub.commit(allowed[0], kind=allowed[1])}, out
    assert out["denied"].get("err") == "RepositoryNotFoundError", out
    assert not hub_admin.stats().entries(contains=denied[0]), "a denied repo causes no upstream traffic"


def test_cache_rules_from_the_config_file(hub, hub_admin, make_mirror, client_env, tmp_path):
    m = make_mirror(config='[[accessibility.cache]]\nrepo = "*"\nallow = true\n\n[[accessibility.cache]]\nrepo = "gpt2"\nallow = false\n')
    for repo in ("acme/tiny", "gpt2"):
        code = DL.format(repo=repo, kind="model", rev=hub.commit(repo), files=["config.json"])
        want = {"config.json": hub.file(repo, "config.json")["sha256"]}
        assert client_env(code, endpoint=m.url, home=tmp_path / f"{repo}-a").out == want
        hub_admin.reset()
        assert client_env(code, endpoint=m.url, home=tmp_path / f"{repo}-b").out == want, "cache-deny still proxies"
        upstream = hub_admin.stats().requests("hub")
        if repo == "gpt2":
            assert upstream > 0, "a cache-denied repo is fetched from upstream every time"
        else:
            assert upstream == 0


def test_kill_9_mid_fill_then_restart_serves_exact_bytes(hub, hub_admin, make_mirror):
    m = make_mirror()
    want = hub.file("acme/big", "big.bin")
    url = f"{m.url}/acme/big/resolve/main/big.bin"
    import urllib.request

    with hub_admin.faulted(bandwidth_bytes_per_sec=20 * MiB, scope="cdn"):
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        resp = opener.open(url, timeout=60)
        resp.read(5 * MiB)
        m.kill9()
        resp.close()
    m.start()
    status, _, body = http(url, follow=True)
    assert status == 200 and hashlib.sha256(body).hexdigest() == want["sha256"]
    hub_admin.reset()
    status, _, body = http(url, follow=True)
    assert status == 200 and hashlib.sha256(body).hexdigest() == want["sha256"]
    assert hub_admin.stats().bytes("cdn") == 0


def test_flipped_byte_on_disk_is_never_served(hub, hub_admin, make_mirror):
    m = make_mirror()
    want = hub.file("acme/tiny", "model.bin")
    url = f"{m.url}/acme/tiny/resolve/main/model.bin"
    assert hashlib.sha256(http(url, follow=True)[2]).hexdigest() == want["sha256"]
    m.stop()
    blobs = [os.path.join(d, n) for d, _, ns in os.walk(m.repos) for n in ns if n == want["sha256"]]
    assert len(blobs) == 1, f"cannot find the cached blob file named {want['sha256']} under {m.repos}"
    with open(blobs[0], "r+b") as f:
        f.seek(1234)
        b = f.read(1)
        f.seek(1234)
        f.write(bytes([b[0] ^ 0xFF]))
    m.start()
    hub_admin.reset()
    status, _, body = http(url, follow=True)
    assert status == 200 and hashlib.sha256(body).hexdigest() == want["sha256"]
    assert 0 < hub_admin.stats().bytes("cdn") <= 2 * MiB, "only the corrupt block is fetched again"


def test_upstream_outage_is_a_gateway_error_not_not_found(hub_admin, make_mirror):
    m = make_mirror()
    with hub_admin.faulted(fail_5xx=1000, scope="hub"):
        status, h, _ = http(f"{m.url}/acme/tiny/resolve/main/README.md")
    assert status in (502, 503, 504), status
    assert h.get("X-Error-Code") not in ("RepoNotFound", "EntryNotFound", "RevisionNotFound")


def test_rate_limit_is_relayed(hub_admin, make_mirror):
    m = make_mirror()
    with hub_admin.faulted(fail_429=1, scope="hub"):
        status, h, _ = http(f"{m.url}/api/models/acme/tiny")
    assert status == 429
    assert h["Retry-After"] == "1"
    assert "RateLimit" in h


def test_cached_content_is_served_while_the_upstream_fails(hub, make_mirror, hub_admin, client_env, tmp_path):
    # TTL 0: every branch request revalidates, so this exercises stale-if-error.
    m = make_mirror("--metadata-cache-ttl", "0")
    code = DL.format(repo="acme/tiny", kind="model", rev="main", files=["model.bin"])
    want = {"model.bin": hub.file("acme/tiny", "model.bin")["sha256"]}
    assert client_env(code, endpoint=m.url, home=tmp_path / "a").out == want
    assert http(f"{m.url}/api/models/acme/tiny/revision/main")[0] == 200  # warm the API cache too
    with hub_admin.faulted(fail_5xx=100000):
        second = client_env(code, endpoint=m.url, home=tmp_path / "b").out
        status, _, body = http(f"{m.url}/api/models/acme/tiny/revision/main")
    assert second == want
    assert status == 200 and json.loads(body)["sha"] == hub.commit("acme/tiny")
