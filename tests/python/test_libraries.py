"""The popular libraries, for real, through the mirror (PROTOCOL-2.md C, D): `datasets.load_dataset`
(parquet and CSV), transformers' `AutoConfig`/`AutoTokenizer.from_pretrained`, `hf download
--include`, and `HfFileSystem` glob/ls/ranged reads.

Each runs first against a cold mirror, then again with a fresh client cache against the warm mirror
(zero upstream requests: the fake Hub's counters), then against the same cache with the mirror
`--offline`. Straight against the fake Hub (OLAH_TEST_TARGET=direct) each runs once, without the
count assertions: the fake must answer the real libraries like the Hub does.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess

import pytest

from conftest import TARGET, http, mirror_only

# No load counter on S3, no safetensors conversion Space: nothing but 127.0.0.1.
LIB_ENV = {
    "HF_UPDATE_DOWNLOAD_COUNTS": "0",
    "DISABLE_SAFETENSORS_CONVERSION": "1",
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
    "TOKENIZERS_PARALLELISM": "false",
}

DATASET = """
from datasets import load_dataset
ds = load_dataset("acme/{name}", split="train")
emit({{"rows": ds.to_list(), "columns": ds.column_names}})
"""

ROWS = [
    {"text": "a cat", "label": 0},
    {"text": "a dog", "label": 1},
    {"text": "the bird", "label": 1},
]

TRANSFORMERS = """
from transformers import AutoConfig, AutoTokenizer
cfg = AutoConfig.from_pretrained("acme/tok")
tok = AutoTokenizer.from_pretrained("acme/tok")
emit({"model_type": cfg.model_type, "n_embd": cfg.n_embd, "ids": tok("The cat zebra")["input_ids"]})
"""

HF_DOWNLOAD = """
import subprocess
hf = os.path.join(os.path.dirname(sys.executable), "hf")
r = subprocess.run([hf, "download", "acme/tok", "--include", "*.json", "--local-dir", "out"],
                   capture_output=True, text=True, timeout=120)
assert r.returncode == 0, r.stderr
got = {}
for root, _, files in os.walk("out"):
    for f in files:
        p = os.path.join(root, f)
        if ".cache" not in p:
            got[os.path.relpath(p, "out")] = hashlib.sha256(open(p, "rb").read()).hexdigest()
emit(got)
"""

HFFS = """
from huggingface_hub import HfFileSystem
fs = HfFileSystem()
out = {
    "glob": sorted(fs.glob("datasets/acme/pq/data/*.parquet")),
    "ls": sorted(e["name"] for e in fs.ls("datasets/acme/csv/data", detail=True)),
}
with fs.open("datasets/acme/csv/data/train.csv", "rb", block_size=4) as f:
    f.seek(5)
    out["range"] = f.read(5).decode()
with fs.open("datasets/acme/pq/data/train-00000-of-00001.parquet", "rb", block_size=4) as f:
    out["magic"] = f.read(4).decode()
    f.seek(-4, 2)
    out["tail"] = f.read(4).decode()
with fs.open("models/acme/tok/model.safetensors.index.json", "rb") as f:
    out["index"] = json.loads(f.read())["weight_map"]
emit(out)
"""

CASES = {
    "parquet": (DATASET.format(name="pq"), {"rows": ROWS, "columns": ["text", "label"]}),
    "csv": (DATASET.format(name="csv"), {"rows": ROWS, "columns": ["text", "label"]}),
    "transformers": (
        TRANSFORMERS,
        {"model_type": "gpt2", "n_embd": 8, "ids": [4, 2, 0]},
    ),
    "hf_download": (HF_DOWNLOAD, None),
    "hffs": (
        HFFS,
        {
            "glob": ["datasets/acme/pq/data/train-00000-of-00001.parquet"],
            "ls": ["datasets/acme/csv/data/train.csv"],
            "range": "label",
            "magic": "PAR1",
            "tail": "PAR1",
            "index": {
                "a.weight": "model-00001-of-00002.safetensors",
                "b.weight": "model-00002-of-00002.safetensors",
            },
        },
    ),
}


def expected(hub, case):
    code, want = CASES[case]
    if want is None:  # hf download --include "*.json"
        want = {p: hub.file("acme/tok", p)["sha256"] for p in hub.tree("acme/tok") if p.endswith(".json")}
    return code, want


def run(client_env, code, endpoint=None, home=None):
    res = client_env(code, endpoint=endpoint, home=home, env=LIB_ENV, same_origin=False, timeout=240)
    if TARGET == "direct":
        return res  # the fake Hub's LFS CDN is another origin
    # The only request allowed elsewhere: the dataset-viewer host `datasets` derives from HF_ENDPOINT.
    stray = [
        u for u in res.urls
        if not u.split(" ", 1)[1].startswith(res.endpoint + "/") and "://datasets-server." not in u
    ]
    assert not stray, stray[:10]
    return res


@pytest.mark.parametrize("case", list(CASES))
def test_library_online_warm_and_offline(hub, hub_admin, make_mirror, client_env, tmp_path, case):
    code, want = expected(hub, case)
    if TARGET == "direct":
        assert run(client_env, code).out == want
        return
    m = make_mirror()
    assert run(client_env, code, endpoint=m.url, home=tmp_path / "cold").out == want
    hub_admin.reset()
    res = run(client_env, code, endpoint=m.url, home=tmp_path / "warm")
    assert res.out == want
    stats = hub_admin.stats()
    assert stats.requests() == 0, ("warm mirror asked upstream", stats.summary(), res.urls)
    m.restart(["--offline"])
    hub_admin.reset()
    assert run(client_env, code, endpoint=m.url, home=tmp_path / "offline").out == want
    assert hub_admin.stats().requests() == 0


@mirror_only
def test_missing_files_are_cached_with_their_headers(hub, hub_admin, make_mirror):
    """A 404 EntryNotFound at a commit is kept like a 200: answered again (also offline) with
    X-Error-Code, X-Error-Message and X-Repo-Commit and no upstream request; an access refusal
    is never kept."""
    m = make_mirror()
    sha = hub.commit("acme/tok")
    # A file served makes the repo known public (offline, the access gate admits only that).
    assert http(m.url + "/acme/tok/resolve/main/config.json")[0] == 200
    urls = [
        f"/acme/tok/resolve/{sha}/vocab.json",
        "/acme/tok/resolve/main/merges.txt",
        "/api/models/acme/tok/tree/main/additional_chat_templates?recursive=false&expand=false",
    ]
    first = {}
    for u in urls:
        for method in ("HEAD", "GET"):
            status, h, _ = http(m.url + u, method=method)
            assert status == 404, (u, method)
            assert h["X-Error-Code"] == "EntryNotFound", (u, dict(h))
            assert h["X-Repo-Commit"] == sha
            assert h["X-Error-Message"]
            first[u] = h["X-Error-Message"]
    hub_admin.reset()
    m.restart(["--offline"])
    for u in urls:
        status, h, _ = http(m.url + u, method="HEAD")
        assert (status, h["X-Error-Code"], h["X-Repo-Commit"]) == (404, "EntryNotFound", sha), u
        assert h["X-Error-Message"] == first[u]
    assert hub_admin.stats().requests() == 0
    # Access refusals are asked again every time (never cached), online.
    m.restart([])
    for _ in range(2):
        hub_admin.reset()
        status, h, _ = http(m.url + "/acme/private/resolve/main/nope.txt", method="HEAD")
        assert status in (401, 404) and h["X-Error-Code"] == "RepoNotFound"
        assert hub_admin.stats().requests() >= 1


@mirror_only
def test_small_library_routes(hub, hub_admin, mirror):
    sha = hub.commit("acme/tiny")
    cfg = hub.file("acme/tiny", "config.json")
    # The resolve-cache URL the Hub redirects a regular file to, on the mirror's own origin.
    status, h, body = http(f"{mirror.url}/api/resolve-cache/models/acme/tiny/{sha}/config.json?x=&etag=%22y%22")
    assert status == 200 and h["X-Repo-Commit"] == sha
    assert hashlib.sha256(body).hexdigest() == cfg["sha256"]
    status, h, body = http(
        f"{mirror.url}/api/resolve-cache/models/acme/tiny/{sha}/config.json", headers={"Range": "bytes=1-3"}
    )
    assert status == 206 and h["Content-Range"].startswith("bytes 1-3/")
    # The mirror answers a regular file's resolve itself (it follows the Hub's 307).
    status, h, _ = http(f"{mirror.url}/acme/tiny/resolve/main/config.json?noContentDisposition=1", method="HEAD")
    assert status == 200 and h["X-Repo-Commit"] == sha and "Location" not in h
    # /raw/: the git blob (an LFS file's pointer), with ranges.
    status, _, body = http(f"{mirror.url}/acme/tiny/raw/main/model.bin")
    big = hub.file("acme/tiny", "model.bin")
    assert status == 200 and body.decode() == (
        f"version https://git-lfs.github.com/spec/v1\noid sha256:{big['sha256']}\nsize {big['size']}\n"
    )
    status, _, body = http(f"{mirror.url}/acme/tiny/raw/{sha}/config.json", headers={"Range": "bytes=0-0"})
    assert (status, body) == (206, b"{")
    # huggingface.js shapes: revision HEAD, unencoded refs in tree URLs.
    status, _, body = http(f"{mirror.url}/api/models/acme/tiny/revision/HEAD")
    assert status == 200 and json.loads(body)["sha"] == sha
    status, _, body = http(f"{mirror.url}/api/models/acme/tiny/tree/refs/pr/1")
    assert status == 200 and "pr.txt" in [e["path"] for e in json.loads(body)]
    # auth-check and safetensors-metadata pass through with the caller's credentials.
    assert http(f"{mirror.url}/api/models/acme/gated/auth-check")[0] == 401
    assert http(f"{mirror.url}/api/models/acme/gated/auth-check", headers={"Authorization": "Bearer hf_granted"})[0] == 200
    status, _, body = http(f"{mirror.url}/api/models/acme/tok/safetensors-metadata/model.safetensors.index.json")
    assert status == 200 and json.loads(body)["headers"]["model-00001-of-00002.safetensors"]["a.weight"]["shape"] == [2]
    # Answered by the mirror itself, nothing upstream.
    hub_admin.reset()
    status, _, body = http(f"{mirror.url}/api/agent-harnesses")
    assert status == 200 and "harnesses" in json.loads(body)
    status, h, _ = http(f"{mirror.url}/info?dataset=acme/pq", headers={"Host": "datasets-server.127.0.0.1"})
    assert status == 404 and h["X-Error-Code"] == "NotFound"
    assert hub_admin.stats().requests() == 0


JS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "js")


def test_huggingface_js_request_shapes(hub, hub_admin, endpoint):
    """huggingface.js's own shapes (tests/js/shapes.mjs): tree URLs with an unencoded
    `refs/pr/1` and path, paths-info as JSON with `lastCommit`, `revision/HEAD`, `/raw/` HEADs,
    and a regular file's download (Range probe, slices) through the resolve-cache redirect."""
    assert os.path.isdir(os.path.join(JS_DIR, "node_modules", "@huggingface", "hub")), "run scripts/test.sh (npm install)"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    r = subprocess.run(["node", "shapes.mjs", endpoint], cwd=JS_DIR, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    pr = hub.tree("acme/tiny", "refs/pr/1")
    cfg = hub.file("acme/tiny", "config.json")
    assert out["prFiles"] == sorted({p.split("/")[0] for p in pr})
    assert out["subFiles"] == sorted(p for p in pr if p.startswith("sub/dir/"))
    assert out["paths"] == [
        ["config.json", "file", cfg["size"], True],
        ["model.bin", "file", hub.file("acme/tiny", "model.bin")["size"], True],
    ]
    assert out["sha"] == hub.commit("acme/tiny")
    assert (out["exists"], out["missing"]) == (True, False)
    assert out["sha256"] == cfg["sha256"]
    assert out["slice"] == out["config"][2:12]
