"""Storage Buckets (issue 12, PROTOCOL-2.md A), read side, with the real clients: huggingface_hub's
bucket API (`bucket_info`, `list_bucket_tree`, `get_bucket_paths_info`, `download_bucket_files`,
`sync_bucket`), `HfFileSystem` on `hf://buckets/…`, and huggingface.js. Against the mirror and
straight against the fake Hub; the mirror-only tests cover what the mirror adds: a private bucket
per caller online and offline, an overwritten path served fresh once the TTL passed (and never
another bucket's file), a warm re-download that costs the upstream nothing, write routes refused."""

import hashlib
import json
import os
import subprocess
import time

import pytest

from conftest import TARGET, http, mirror_only

BK = "acme/bk"
OTHER = "acme/bk-other"
PRIVATE = "acme/bk-private"
JS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "js")


def want(hub, bucket, path):
    return hub.files[f"buckets/{bucket}:{path}"]


INFO_TREE = """
from huggingface_hub import HfApi
api = HfApi()
info = api.bucket_info({bk!r})
data = sorted((type(e).__name__, e.path) for e in api.list_bucket_tree({bk!r}, prefix="data", recursive=False))
logs = sorted(e.path for e in api.list_bucket_tree({bk!r}, prefix="logs"))
everything = [e.path for e in api.list_bucket_tree({bk!r}, recursive=True)]
pi = sorted((e.path, e.size, e.xet_hash) for e in api.get_bucket_paths_info({bk!r}, ["data/a.txt", "no/such.txt", "data/empty.txt"]))
emit(dict(info=[info.id, info.private, info.total_files], data=data, logs=logs, everything=everything, pi=pi))
"""


def test_bucket_info_tree_and_paths_info(hub, client_env):
    out = client_env(INFO_TREE.format(bk=BK)).out
    files = sorted(k.split(":", 1)[1] for k in hub.files if k.startswith(f"buckets/{BK}:"))
    assert out["info"] == [BK, False, len(files)]
    assert out["data"] == [
        ["BucketFile", "data/a.txt"],
        ["BucketFile", "data/empty.txt"],
        ["BucketFolder", "data/sub dir"],
    ]
    # The prefix is matched lexically: `logs` also lists `logs.json`.
    assert "logs.json" in out["logs"] and "logs/run1.txt" in out["logs"]
    # 127 files over pages of 100: the `Link` was followed (through the mirror: to the mirror).
    assert sorted(out["everything"]) == files and len(files) > 100
    assert out["pi"] == sorted(
        [p, want(hub, BK, p)["size"], want(hub, BK, p)["xetHash"]] for p in ("data/a.txt", "data/empty.txt")
    )


DOWNLOAD = """
import hashlib, os
from huggingface_hub import HfApi
api = HfApi()
d = os.path.abspath("dl")
paths = {paths!r}
api.download_bucket_files({bk!r}, [(p, os.path.join(d, p)) for p in paths], raise_on_missing_files=True)
emit({{p: sha(os.path.join(d, p)) for p in paths}})
"""

SYNC = """
import os
from huggingface_hub import HfApi
d = os.path.abspath("synced")
HfApi().sync_bucket("hf://buckets/{bk}/data", d)
got = {{}}
for root, _, names in os.walk(d):
    for n in names:
        got[os.path.relpath(os.path.join(root, n), d)] = sha(os.path.join(root, n))
emit(got)
"""


def test_download_bucket_files_and_sync(hub, client_env):
    paths = ["data/a.txt", "data/empty.txt", "big/weights.bin"]
    out = client_env(DOWNLOAD.format(bk=BK, paths=paths)).out
    assert out == {p: want(hub, BK, p)["sha256"] for p in paths}
    out = client_env(SYNC.format(bk=BK)).out
    assert out == {p: want(hub, BK, f"data/{p}")["sha256"] for p in ("a.txt", "empty.txt", "sub dir/c.txt")}


FS = """
import hashlib
from huggingface_hub import HfFileSystem
fs = HfFileSystem()
root = "hf://buckets/{bk}"
ls = sorted(e["name"] for e in fs.ls(root + "/data", detail=True))
glob = sorted(fs.glob(root + "/many/f00*.txt"))
with fs.open(root + "/big/weights.bin", "rb") as f:
    f.seek({start})
    part = hashlib.sha256(f.read({n})).hexdigest()
fs.get_file(root + "/data/sub dir/c.txt", "c.txt")
emit(dict(ls=ls, glob=glob, part=part, got=sha("c.txt")))
"""


def test_hf_file_system_on_buckets(hub, client_env):
    start, n = 1_000_003, 70_000
    # The oracle: the same bytes straight from the fake Hub (resolve → CDN, Range).
    status, _, body = http(
        f"{hub.hub}/buckets/{BK}/resolve/big/weights.bin", headers={"Range": f"bytes={start}-{start + n - 1}"}, follow=True
    )
    assert status == 206 and len(body) == n
    out = client_env(FS.format(bk=BK, start=start, n=n)).out
    assert out["ls"] == [f"buckets/{BK}/data/a.txt", f"buckets/{BK}/data/empty.txt", f"buckets/{BK}/data/sub dir"]
    assert out["glob"] == [f"buckets/{BK}/many/f00{i}.txt" for i in range(10)]
    assert out["part"] == hashlib.sha256(body).hexdigest()
    assert out["got"] == want(hub, BK, "data/sub dir/c.txt")["sha256"]


def run_js(endpoint, bucket, path, token=None):
    assert os.path.isdir(os.path.join(JS_DIR, "node_modules", "@huggingface", "hub")), "run scripts/test.sh (npm install)"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    if token:
        env["HF_TOKEN"] = token
    r = subprocess.run(["node", "bucket.mjs", endpoint, bucket, path], cwd=JS_DIR, capture_output=True, text=True, timeout=180, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_huggingface_js_on_buckets(hub, endpoint):
    out = run_js(endpoint, BK, "big/weights.bin")
    files = sorted(k.split(":", 1)[1] for k in hub.files if k.startswith(f"buckets/{BK}:"))
    assert sorted(out["files"]) == files
    assert out["exists"] is True and out["missing"] is False
    w = want(hub, BK, "big/weights.bin")
    assert (out["sha256"], out["size"]) == (w["sha256"], w["size"])


PRIVATE_DL = """
import os
from huggingface_hub import HfApi
api = HfApi()
def get():
    api.bucket_info({bk!r})
    api.download_bucket_files({bk!r}, [("secret/plan.txt", os.path.abspath("plan.txt"))], raise_on_missing_files=True)
    return sha("plan.txt")
emit(catch(get))
"""


def test_private_bucket_per_caller(hub, client_env, tmp_path):
    w = want(hub, PRIVATE, "secret/plan.txt")
    out = client_env(PRIVATE_DL.format(bk=PRIVATE), token="hf_owner", home=tmp_path / "owner").out
    assert out == {"ok": w["sha256"]}
    for tok in (None, "hf_other"):
        out = client_env(PRIVATE_DL.format(bk=PRIVATE), token=tok, home=tmp_path / f"h-{tok}").out
        assert out.get("err") == "BucketNotFoundError", (tok, out)


@mirror_only
def test_bucket_read_routes_point_at_the_mirror(hub, mirror):
    status, h, body = http(f"{mirror.url}/buckets/{BK}/resolve/data%2Fa.txt", method="HEAD")
    w = want(hub, BK, "data/a.txt")
    assert status == 200, (status, body)
    assert h["X-Xet-Hash"] == w["xetHash"] and int(h["X-Linked-Size"]) == w["size"]
    assert h["Link"] == (
        f'<{mirror.url}/api/buckets/{BK}/xet-read-token>; rel="xet-auth", '
        f'<{mirror.url}/cas/v1/reconstructions/{w["xetHash"]}>; rel="xet-reconstruction-info"'
    )
    assert h["ETag"] and "X-Repo-Commit" not in h
    status, h, body = http(f"{mirror.url}/api/buckets/{BK}/xet-read-token")
    assert status == 200
    j = json.loads(body)
    assert j["casUrl"] == h["X-Xet-Cas-Url"] == f"{mirror.url}/cas"
    assert j["accessToken"] == h["X-Xet-Access-Token"]
    for netloc in hub.netlocs:
        assert netloc not in body.decode() + json.dumps(dict(h))
    # The tree's `Link` is rewritten to the mirror.
    status, h, _ = http(f"{mirror.url}/api/buckets/{BK}/tree?recursive=true")
    assert status == 200 and h["Link"].startswith(f"<{mirror.url}/api/buckets/{BK}/tree?") and 'rel="next"' in h["Link"]
    # A ranged plain GET, as HfFileSystem reads.
    status, h, body = http(f"{mirror.url}/buckets/{BK}/resolve/data/a.txt", headers={"Range": "bytes=2-5"})
    assert status == 206 and h["Content-Range"] == f"bytes 2-5/{w['size']}" and len(body) == 4


@mirror_only
def test_write_routes_and_events_get_a_clear_refusal(hub, mirror):
    hub.admin.reset()
    for method, path in [
        ("POST", f"/api/buckets/{BK}"),
        ("POST", "/api/buckets/acme/new-bucket"),
        ("DELETE", f"/api/buckets/{BK}"),
        ("PUT", f"/api/buckets/{BK}/settings"),
        ("POST", f"/api/buckets/{BK}/batch"),
        ("GET", f"/api/buckets/{BK}/xet-write-token"),
        ("POST", "/api/repos/move"),
    ]:
        status, h, _ = http(f"{mirror.url}{path}", method=method, data=b"{}" if method != "GET" else None, headers={"Authorization": "Bearer hf_owner"})
        assert status == 403, (method, path, status)
        assert h["X-Error-Code"] == "ReadOnly" and "read-only" in h["X-Error-Message"], (method, path)
    status, h, _ = http(f"{mirror.url}/api/buckets/{BK}/events", headers={"Accept": "text/event-stream"})
    assert status == 404 and h["X-Error-Message"]
    assert hub.admin.stats().requests() == 0, "nothing reached the Hub"


CREATE = """
from huggingface_hub import HfApi
from huggingface_hub.errors import HfHubHTTPError
try:
    HfApi().create_bucket("acme/new-bucket")
    emit("created")
except HfHubHTTPError as e:
    emit([e.response.status_code, str(e)])
"""


@mirror_only
def test_create_bucket_gets_the_read_only_error(client_env):
    out = client_env(CREATE, token="hf_owner").out
    assert out[0] == 403 and "read-only" in out[1]


@mirror_only
def test_warm_bucket_download_costs_the_upstream_nothing_and_works_offline(hub, make_mirror, client_env, tmp_path):
    m = make_mirror()
    paths = ["data/a.txt", "big/weights.bin"]
    expect = {p: want(hub, BK, p)["sha256"] for p in paths}
    assert client_env(DOWNLOAD.format(bk=BK, paths=paths), endpoint=m.url, home=tmp_path / "a").out == expect
    synced = {p: want(hub, BK, f"data/{p}")["sha256"] for p in ("a.txt", "empty.txt", "sub dir/c.txt")}
    assert client_env(SYNC.format(bk=BK), endpoint=m.url, home=tmp_path / "s1").out == synced
    w = want(hub, PRIVATE, "secret/plan.txt")
    out = client_env(PRIVATE_DL.format(bk=PRIVATE), endpoint=m.url, token="hf_owner", home=tmp_path / "p").out
    assert out == {"ok": w["sha256"]}
    hub.admin.reset()
    # Warm, fresh client cache: no xorb byte from the upstream, no reconstruction.
    assert client_env(DOWNLOAD.format(bk=BK, paths=paths), endpoint=m.url, home=tmp_path / "b").out == expect
    stats = hub.admin.stats()
    assert not stats.entries(contains="/xorb/") and not stats.entries(contains="/cas/"), stats.summary()
    # Offline: the same answers from the cache, the private bucket only to its confirmed owner.
    m.restart(["--offline"])
    hub.admin.reset()
    assert client_env(DOWNLOAD.format(bk=BK, paths=paths), endpoint=m.url, home=tmp_path / "c").out == expect
    assert client_env(SYNC.format(bk=BK), endpoint=m.url, home=tmp_path / "s2").out == synced
    out = client_env(PRIVATE_DL.format(bk=PRIVATE), endpoint=m.url, token="hf_owner", home=tmp_path / "d").out
    assert out == {"ok": w["sha256"]}
    for tok in (None, "hf_other"):
        out = client_env(PRIVATE_DL.format(bk=PRIVATE), endpoint=m.url, token=tok, home=tmp_path / f"e-{tok}").out
        assert "ok" not in out, (tok, out)
    assert hub.admin.stats().requests() == 0, "offline: no upstream request"


READ = """
from huggingface_hub import HfFileSystem
emit(HfFileSystem().cat_file("hf://buckets/{bk}/logs/run1.txt").decode())
"""


@mirror_only
def test_an_overwritten_path_is_served_fresh_after_the_ttl_and_never_from_another_bucket(hub, make_mirror, client_env, tmp_path):
    ttl = 2
    m = make_mirror("--metadata-cache-ttl", str(ttl))
    original = client_env(READ.format(bk=BK), endpoint=m.url, home=tmp_path / "a").out
    other = client_env(READ.format(bk=OTHER), endpoint=m.url, home=tmp_path / "b").out
    assert original != other
    new = hub.admin._call("bucket-overwrite", {"bucket": BK, "path": "logs/run1.txt", "spare": 0})
    try:
        assert new["xetHash"] == hub.files[f"buckets/{BK}#spare0"]["xetHash"]
        time.sleep(ttl + 1)
        got = client_env(READ.format(bk=BK), endpoint=m.url, home=tmp_path / "c").out
        assert got == "run 1, overwritten with a longer text\n"
        # Paths-info and the listing agree with the new content.
        status, _, body = http(
            f"{m.url}/api/buckets/{BK}/paths-info", method="POST", data=json.dumps({"paths": ["logs/run1.txt"]}).encode(),
            headers={"Content-Type": "application/json"},
        )
        assert status == 200 and json.loads(body)[0]["xetHash"] == new["xetHash"]
        # The other bucket's file at the same path is still its own.
        assert client_env(READ.format(bk=OTHER), endpoint=m.url, home=tmp_path / "d").out == other
    finally:
        hub.admin._call("bucket-overwrite", {"bucket": BK, "path": "logs/run1.txt", "spare": 1})
    time.sleep(ttl + 1)
    assert client_env(READ.format(bk=BK), endpoint=m.url, home=tmp_path / "e").out == original


LIST = """
from huggingface_hub import HfApi
emit(sorted(b.id for b in HfApi().list_buckets({ns!r})))
"""


def test_list_buckets_of_a_namespace_per_caller(client_env, tmp_path):
    assert client_env(LIST.format(ns="acme"), home=tmp_path / "anon").out == [BK, OTHER]
    assert client_env(LIST.format(ns="acme"), token="hf_owner", home=tmp_path / "owner").out == [BK, OTHER, PRIVATE]
    # No namespace: `me`, the caller's own buckets.
    assert client_env(LIST.format(ns=None), token="hf_owner", home=tmp_path / "me").out == [PRIVATE]
