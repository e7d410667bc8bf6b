"""Downloads with the real huggingface_hub client: every repo type, revision form and path form,
hf_hub_download and snapshot_download, with and without hf_xet."""

import hashlib

import pytest

from conftest import TARGET

# (repo, kind, revision, path). A revision "sha:REF" means the full commit sha REF points at.
CASES = [
    ("acme/tiny", "model", "main", "README.md"),
    ("acme/tiny", "model", "main", "config.json"),
    ("acme/tiny", "model", "main", "model.bin"),
    ("acme/tiny", "model", "main", "sub/dir/a b.txt"),
    ("acme/tiny", "model", "dev", "config.json"),
    ("acme/tiny", "model", "dev", "model.bin"),
    ("acme/tiny", "model", "v1.0", "config.json"),
    ("acme/tiny", "model", "v1.0", "old-only.txt"),
    ("acme/tiny", "model", "sha:v1.0", "old-only.txt"),
    ("acme/tiny", "model", "sha:main", "model.bin"),
    ("acme/tiny", "model", "refs/pr/1", "pr.txt"),
    ("gpt2", "model", "main", "config.json"),
    ("gpt2", "model", "main", "pytorch_model.bin"),
    ("acme/data", "dataset", "main", "README.md"),
    ("acme/data", "dataset", "main", "data/part-0007.jsonl"),
    ("acme/data", "dataset", "refs/convert/parquet", "default/train/0000.parquet"),
    ("acme/space", "space", "main", "app.py"),
]

DOWNLOAD = """
from huggingface_hub import hf_hub_download
p = hf_hub_download({repo!r}, {path!r}, repo_type={kind!r}, revision={rev!r})
storage = p.split("/snapshots/")[0]
ref = os.path.join(storage, "refs", {rev!r})
emit({{
    "sha": sha(p),
    "path": p,
    "blob": blob_name(p),
    "ref": open(ref).read() if os.path.exists(ref) else None,
}})
"""


def resolve_rev(hub, repo, kind, rev):
    if rev.startswith("sha:"):
        return hub.commit(repo, rev[4:], kind)
    return rev


def check_download(hub, res, repo, kind, rev, path):
    want = hub.file(repo, path, rev, kind)
    out = res.out
    assert out["sha"] == want["sha256"], "content differs"
    assert out["path"].endswith(f"/snapshots/{want['commit']}/{path}"), out["path"]
    # The cache blob is named after the etag: sha256 for LFS files, the git blob id otherwise.
    assert out["blob"] == (want["sha256"] if want["lfs"] else want["oid"]), out
    if len(rev) != 40:
        assert out["ref"] == want["commit"], "refs/{rev} must record the resolved commit"


def _id(c):
    return f"{c[1]}:{c[0]}@{c[2]}:{c[3]}"


@pytest.mark.parametrize("repo,kind,rev,path", CASES, ids=[_id(c) for c in CASES])
def test_hf_hub_download_exact_bytes(hub, client_env, repo, kind, rev, path):
    rev = resolve_rev(hub, repo, kind, rev)
    res = client_env(DOWNLOAD.format(repo=repo, path=path, kind=kind, rev=rev))
    check_download(hub, res, repo, kind, rev, path)


@pytest.mark.parametrize("disable_xet", [True, False], ids=["no-xet", "xet"])
@pytest.mark.parametrize("path", ["model.safetensors", "model.bin"])
def test_lfs_and_xet_backed_files_with_and_without_hf_xet(hub, client_env, path, disable_xet):
    res = client_env(DOWNLOAD.format(repo="acme/tiny", path=path, kind="model", rev="main"), disable_xet=disable_xet)
    check_download(hub, res, "acme/tiny", "model", "main", path)


def test_second_download_in_same_cache_is_served_locally(hub, client_env, tmp_path):
    home = tmp_path / "hf"
    code = DOWNLOAD.format(repo="acme/tiny", path="model.bin", kind="model", rev="main")
    first = client_env(code, home=home)
    check_download(hub, first, "acme/tiny", "model", "main", "model.bin")
    assert [u for u in first.urls if u.startswith("GET ")], first.urls
    second = client_env(code, home=home)
    check_download(hub, second, "acme/tiny", "model", "main", "model.bin")
    # A branch is revalidated with one HEAD, but the bytes are not fetched again.
    assert [u for u in second.urls if u.startswith("GET ")] == [], second.urls


SNAPSHOT = """
from huggingface_hub import snapshot_download
p = snapshot_download({repo!r}, repo_type={kind!r}, revision={rev!r}, allow_patterns={allow!r})
emit({{"files": tree_hashes(p), "dir": os.path.basename(p)}})
"""


@pytest.mark.parametrize("disable_xet", [True, False], ids=["no-xet", "xet"])
@pytest.mark.parametrize(
    "repo,kind,rev,allow",
    [
        ("acme/tiny", "model", "main", None),
        ("acme/tiny", "model", "v1.0", None),
        ("acme/tiny", "model", "main", ["*.json", "sub/*"]),
        ("acme/data", "dataset", "main", None),
        ("acme/data", "dataset", "refs/convert/parquet", ["default/*"]),
    ],
    ids=["tiny", "tiny@v1.0", "tiny-allow", "data-300-files", "data@parquet"],
)
def test_snapshot_download_every_file_exact(hub, client_env, repo, kind, rev, allow, disable_xet):
    import fnmatch

    res = client_env(SNAPSHOT.format(repo=repo, kind=kind, rev=rev, allow=allow), disable_xet=disable_xet, timeout=240)
    want = hub.tree(repo, rev, kind)
    if allow:
        want = {p: v for p, v in want.items() if any(fnmatch.fnmatch(p, a) for a in allow)}
    assert res.out["dir"] == hub.commit(repo, rev, kind)
    got = res.out["files"]
    assert sorted(got) == sorted(want), {"missing": sorted(set(want) - set(got))[:10], "extra": sorted(set(got) - set(want))[:10]}
    bad = [p for p in want if got[p] != want[p]["sha256"]]
    assert not bad, f"wrong bytes for {bad[:10]}"
    if repo == "acme/data" and rev == "main":
        assert len(got) == 301


def test_hf_file_system_ranged_reads(hub, client_env, big_file):
    size = hub.file("acme/big", "big.bin")["size"]
    spans = [(0, 100), (5_000_000, 1000), (size // 2 - 7, 70_001), (size - 3, 3), (2 << 20, 4 << 20)]
    res = client_env(
        f"""
        from huggingface_hub import HfFileSystem
        fs = HfFileSystem()
        out = {{}}
        with fs.open("acme/big/big.bin", "rb", block_size=1 << 20) as f:
            for a, n in {spans!r}:
                f.seek(a)
                out[f"{{a}}+{{n}}"] = hashlib.sha256(f.read(n)).hexdigest()
        with fs.open("acme/big/big.bin", "rb") as f:  # buffered, default block size
            f.seek({size // 3})
            out["buffered"] = hashlib.sha256(f.read(12345)).hexdigest()
        out["nested"] = fs.read_text("acme/tiny/sub/dir/a b.txt")
        out["dataset"] = fs.read_text("datasets/acme/data/data/part-0123.jsonl")
        out["info_size"] = fs.info("acme/big/big.bin")["size"]
        out["ls_count"] = len(fs.ls("datasets/acme/data/data", detail=False))
        emit(out)
        """,
    )
    out = res.out
    with open(big_file, "rb") as f:
        for a, n in spans:
            f.seek(a)
            assert out[f"{a}+{n}"] == hashlib.sha256(f.read(n)).hexdigest(), (a, n)
        f.seek(size // 3)
        assert out["buffered"] == hashlib.sha256(f.read(12345)).hexdigest()
    assert out["nested"] == "nested file with a space\n"
    assert out["dataset"] == '{"row": 123}\n'
    assert out["info_size"] == size
    assert out["ls_count"] == 300, "a 300-entry directory spans several tree pages"


def test_list_repo_tree_paginates_through_the_endpoint(hub, hub_admin, client_env, make_mirror):
    endpoint = hub.hub if TARGET == "direct" else make_mirror().url  # a cold mirror: pages go upstream
    hub_admin.reset()
    res = client_env(
        """
        from huggingface_hub import list_repo_tree
        from huggingface_hub.hf_api import RepoFile
        entries = list(list_repo_tree("acme/data", repo_type="dataset", recursive=True))
        emit({
            "paths": [e.path for e in entries],
            "files": {e.path: e.blob_id for e in entries if isinstance(e, RepoFile)},
        })
        """,
        endpoint=endpoint,
    )
    want = hub.tree("acme/data", "main", "dataset")
    assert len(res.out["paths"]) == len(set(res.out["paths"])), "duplicate entries across pages"
    assert {p: want[p]["oid"] for p in want} == res.out["files"]
    assert len(res.out["paths"]) >= 301
    tree_upstream = hub_admin.stats().entries(host="hub", contains="/api/datasets/acme/data/tree/")
    pages = [r for r in tree_upstream if "cursor=" in r["uri"]]
    client_pages = [u for u in res.urls if "/tree/" in u]
    if TARGET == "direct":
        # The fake pages its listing (100 entries a page) and the client follows Link rel=next.
        assert len(client_pages) >= 4, client_pages
        assert len(pages) >= 3
    else:
        # The client only talked to the mirror (checked by client_env for every URL); the later
        # pages the hub served were therefore fetched by the mirror.
        assert client_pages and all(u.split(" ", 1)[1].startswith(endpoint) for u in client_pages)
        assert len(pages) >= 3, [r["uri"] for r in tree_upstream]


def test_hub_api_calls(hub, client_env):
    tiny_main = hub.commit("acme/tiny")
    res = client_env(
        """
        from huggingface_hub import HfApi
        api = HfApi()
        info = api.model_info("acme/tiny", files_metadata=True)
        refs = api.list_repo_refs("acme/tiny", include_pull_requests=True)
        drefs = api.list_repo_refs("acme/data", repo_type="dataset")
        commits = api.list_repo_commits("acme/tiny", revision="dev")
        sub = list(api.list_repo_tree("acme/tiny", path_in_repo="sub/dir"))
        paths = api.get_paths_info("acme/tiny", ["config.json", "model.bin", "nope.txt", "sub"], revision="v1.0")
        emit({
            "sha": info.sha,
            "siblings": {s.rfilename: [s.size, s.blob_id, s.lfs.sha256 if s.lfs else None] for s in info.siblings},
            "v1": api.model_info("acme/tiny", revision="v1.0").sha,
            "pr": api.model_info("acme/tiny", revision="refs/pr/1").sha,
            "dataset": api.dataset_info("acme/data").sha,
            "space": api.space_info("acme/space").sha,
            "legacy": api.model_info("gpt2").sha,
            "gated": api.model_info("acme/gated").gated,
            "branches": sorted(b.name for b in refs.branches),
            "tags": {t.name: t.target_commit for t in refs.tags},
            "prs": [p.ref for p in refs.pull_requests],
            "converts": [c.name for c in drefs.converts],
            "commits": [c.commit_id for c in commits],
            "sub": [e.path for e in sub],
            "paths": sorted(p.path for p in paths),
            "exists": [api.file_exists("acme/tiny", "config.json"), api.file_exists("acme/tiny", "nope"),
                       api.repo_exists("acme/tiny"), api.repo_exists("acme/nope")],
        })
        """,
    )
    o = res.out
    tree = hub.tree("acme/tiny")
    assert o["sha"] == tiny_main
    assert o["siblings"] == {
        p: [v["size"], v["oid"], v["sha256"] if v["lfs"] else None] for p, v in tree.items()
    }
    assert o["v1"] == hub.commit("acme/tiny", "v1.0")
    assert o["pr"] == hub.commit("acme/tiny", "refs/pr/1")
    assert o["dataset"] == hub.commit("acme/data", "main", "dataset")
    assert o["space"] == hub.commit("acme/space", "main", "space")
    assert o["legacy"] == hub.commit("gpt2")
    assert o["gated"] in ("manual", "auto")
    assert o["branches"] == ["dev", "main"]
    assert o["tags"] == {"v1.0": hub.commit("acme/tiny", "v1.0")}
    assert o["prs"] == ["refs/pr/1"]
    assert o["converts"] == ["parquet"]
    assert o["commits"][0] == hub.commit("acme/tiny", "dev") and o["commits"][-1] == hub.commit("acme/tiny", "v1.0")
    assert o["sub"] == ["sub/dir/a b.txt"]
    assert o["paths"] == ["config.json"], "v1.0 has no model.bin; unknown paths are omitted"
    assert o["exists"] == [True, False, True, False]


@pytest.mark.parametrize(
    "repo,kind,rev,path",
    [
        ("acme/tiny", "model", "main", "config.json"),
        ("acme/tiny", "model", "main", "model.bin"),
        ("acme/tiny", "model", "main", "model.safetensors"),
        ("acme/tiny", "model", "dev", "sub/dir/a b.txt"),
        ("acme/tiny", "model", "refs/pr/1", "pr.txt"),
        ("acme/data", "dataset", "refs/convert/parquet", "default/train/0000.parquet"),
    ],
    ids=lambda v: str(v),
)
def test_file_metadata_matches_the_hub(hub, client_env, repo, kind, rev, path):
    res = client_env(
        f"""
        from huggingface_hub import get_hf_file_metadata, hf_hub_url
        m = get_hf_file_metadata(hf_hub_url({repo!r}, {path!r}, repo_type={kind!r}, revision={rev!r}))
        emit({{"commit": m.commit_hash, "etag": m.etag, "size": m.size, "location": m.location,
               "xet": m.xet_file_data.file_hash if m.xet_file_data else None}})
        """
    )
    want = hub.file(repo, path, rev, kind)
    out = res.out
    assert out["commit"] == want["commit"]  # X-Repo-Commit
    assert out["etag"] == (want["sha256"] if want["lfs"] else want["oid"])  # X-Linked-Etag / ETag
    assert out["size"] == want["size"]  # X-Linked-Size / Content-Length
    # Xet hashes are passed through unchanged (they key client caches).
    assert out["xet"] == (want["xetHash"] if want["xet"] else None)
    if TARGET != "direct":
        assert out["location"].startswith(res.endpoint + "/"), out["location"]
