"""`mirrors-path`: local git repositories served as Hub repos with the real client, and never a
request to the upstream for them.

The repositories are built with the git CLI: `models/local/demo` is a non-bare checkout (main with
two commits, a `dev` branch, an annotated tag `v1`, a nested file and a git-lfs pointer whose object
sits in `.git/lfs/objects/`, written by hand: no git-lfs binary); `datasets/local/bare` is a bare
clone of it with the LFS object in `lfs/objects/`.
"""

import hashlib
import os
import subprocess

import pytest

from conftest import http, mirror_only

pytestmark = mirror_only

DATE1 = "2024-03-01T12:00:00Z"
DATE2 = "2024-03-02T08:30:15Z"
README = {"v1": b"hello v1\n", "dev": b"hello dev\n", "main": b"hello v2\n"}
NESTED = b"nested v1\n"
CONFIG = b'{"model_type": "demo"}\n'
ATTRS = b"*.bin filter=lfs diff=lfs merge=lfs -text\n"
LFS = bytes((i * 7 + i // 13) & 0xFF for i in range(300_000))


def sha256(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def blob_id(b: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(b) + b).hexdigest()


POINTER = f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256(LFS)}\nsize {len(LFS)}\n".encode()


def git(cwd, date, *args) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL=os.devnull,
        GIT_AUTHOR_DATE=date,
        GIT_COMMITTER_DATE=date,
    )
    base = ["git", "-c", "user.name=Tester", "-c", "user.email=t@example.invalid", "-c", "init.defaultBranch=main", "-c", "gc.auto=0"]
    r = subprocess.run(base + list(args), cwd=cwd, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"git {args}: {r.stderr}"
    return r.stdout.strip()


def write(path, data: bytes):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def put_lfs_object(store):
    h = sha256(LFS)
    write(os.path.join(store, "objects", h[:2], h[2:4], h), LFS)


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("mirrors"))
    repo = os.path.join(root, "models", "local", "demo")
    os.makedirs(repo)
    git(repo, DATE1, "init", "-q")
    write(os.path.join(repo, "README.md"), README["v1"])
    write(os.path.join(repo, "sub", "dir", "nested.txt"), NESTED)
    write(os.path.join(repo, ".gitattributes"), ATTRS)
    write(os.path.join(repo, "weights.bin"), POINTER)
    put_lfs_object(os.path.join(repo, ".git", "lfs"))
    git(repo, DATE1, "add", "-A")
    git(repo, DATE1, "commit", "-q", "-m", "first")
    c1 = git(repo, DATE1, "rev-parse", "HEAD")
    git(repo, DATE1, "tag", "-a", "v1", "-m", "release v1")
    git(repo, DATE1, "checkout", "-q", "-b", "dev")
    write(os.path.join(repo, "README.md"), README["dev"])
    git(repo, DATE2, "commit", "-q", "-am", "dev change")
    dev = git(repo, DATE2, "rev-parse", "HEAD")
    git(repo, DATE2, "checkout", "-q", "main")
    write(os.path.join(repo, "README.md"), README["main"])
    write(os.path.join(repo, "config.json"), CONFIG)
    git(repo, DATE2, "add", "-A")
    git(repo, DATE2, "commit", "-q", "-m", "second")
    c2 = git(repo, DATE2, "rev-parse", "HEAD")
    # Uncommitted edits in the working tree are never served.
    write(os.path.join(repo, "README.md"), b"uncommitted\n")
    bare = os.path.join(root, "datasets", "local", "bare")
    git(root, DATE2, "clone", "-q", "--bare", repo, bare)
    git(bare, DATE2, "repack", "-adq")
    put_lfs_object(os.path.join(bare, "lfs"))
    return {"root": root, "repo": repo, "c1": c1, "c2": c2, "dev": dev, "sub_tree": git(repo, DATE1, "rev-parse", "main:sub")}


def files_at(rev):
    """{path: bytes} of the demo repo at a revision name."""
    out = {".gitattributes": ATTRS, "README.md": README[rev], "sub/dir/nested.txt": NESTED, "weights.bin": LFS}
    if rev == "main":
        out["config.json"] = CONFIG
    return out


def etag_of(path, content):
    return sha256(content) if path == "weights.bin" else blob_id(content)


@pytest.fixture
def local_mirror(make_mirror, hub, local):
    m = make_mirror(config=f'[basic]\nmirrors-path = ["{local["root"]}"]\n')
    hub.admin.reset()
    yield m
    s = hub.admin.stats()
    assert not s.entries(contains="local/"), f"the upstream was asked about a local repo: {s.summary()}"


def no_upstream(hub):
    s = hub.admin.stats()
    assert s.requests() == 0, f"upstream requests for local repos: {s.summary()}"


DOWNLOADS = """
from huggingface_hub import hf_hub_download
out = []
for rev, path in {cases!r}:
    p = hf_hub_download("local/demo", path, revision=rev)
    storage = p.split("/snapshots/")[0]
    ref = os.path.join(storage, "refs", rev)
    out.append({{
        "rev": rev, "path": path, "sha": sha(p), "blob": blob_name(p),
        "commit": p.split("/snapshots/")[1].split("/")[0],
        "ref": open(ref).read() if os.path.exists(ref) else None,
    }})
emit(out)
"""


def test_hf_hub_download_by_branch_tag_and_sha(hub, local, local_mirror, client_env):
    revs = {"main": local["c2"], "dev": local["dev"], "v1": local["c1"], local["c1"]: local["c1"], local["c2"][:10]: local["c2"]}
    names = {"main": "main", "dev": "dev", "v1": "v1", local["c1"]: "v1", local["c2"][:10]: "main"}
    cases = [(rev, path) for rev in revs for path in ("README.md", "weights.bin", "sub/dir/nested.txt")]
    cases.append(("main", "config.json"))
    res = client_env(DOWNLOADS.format(cases=cases), endpoint=local_mirror.url)
    assert len(res.out) == len(cases)
    for got in res.out:
        rev, path = got["rev"], got["path"]
        content = files_at(names[rev])[path]
        assert got["sha"] == sha256(content), got
        assert got["commit"] == revs[rev], "snapshot folder named by the real commit"
        assert got["blob"] == etag_of(path, content), got
        if len(rev) != 40:
            assert got["ref"] == revs[rev], got
    no_upstream(hub)


SNAPSHOT = """
from huggingface_hub import snapshot_download
out = {{}}
for rev in {revs!r}:
    p = snapshot_download("local/demo", revision=rev)
    out[rev] = {{"commit": os.path.basename(p), "files": tree_hashes(p)}}
emit(out)
"""


def test_snapshot_download_gets_every_file(hub, local, local_mirror, client_env):
    res = client_env(SNAPSHOT.format(revs=["main", "v1"]), endpoint=local_mirror.url)
    for rev, commit in (("main", local["c2"]), ("v1", local["c1"])):
        got = res.out[rev]
        assert got["commit"] == commit
        assert got["files"] == {p: sha256(b) for p, b in files_at(rev).items()}, rev
    no_upstream(hub)


API = """
from huggingface_hub import HfApi
api = HfApi()
refs = api.list_repo_refs("local/demo")
commits = api.list_repo_commits("local/demo")
dev_commits = api.list_repo_commits("local/demo", revision="dev")
info = api.model_info("local/demo", revision="v1", files_metadata=True)
tree = api.list_repo_tree("local/demo", recursive=True)
sub = api.list_repo_tree("local/demo", path_in_repo="sub/dir", revision="dev")
paths = api.get_paths_info("local/demo", ["weights.bin", "sub", "README.md", "missing.txt"], revision="dev")
def item(x):
    d = {"path": x.path, "kind": type(x).__name__}
    if hasattr(x, "blob_id"):
        d.update(blob_id=x.blob_id, size=x.size, lfs=(x.lfs.sha256, x.lfs.size, x.lfs.pointer_size) if x.lfs else None)
    else:
        d.update(tree_id=x.tree_id)
    return d
emit({
    "branches": sorted((b.name, b.ref, b.target_commit) for b in refs.branches),
    "tags": sorted((t.name, t.ref, t.target_commit) for t in refs.tags),
    "commits": [(c.commit_id, c.title, c.authors, c.created_at.isoformat()) for c in commits],
    "dev_commits": [c.commit_id for c in dev_commits],
    "info_sha": info.sha,
    "siblings": sorted((s.rfilename, s.blob_id, s.size, s.lfs.sha256 if s.lfs else None) for s in info.siblings),
    "tree": [item(x) for x in tree],
    "sub": [item(x) for x in sub],
    "paths": [item(x) for x in paths],
})
"""


def test_hfapi_refs_commits_info_tree_and_paths_info(hub, local, local_mirror, client_env):
    out = client_env(API, endpoint=local_mirror.url).out
    c1, c2, dev = local["c1"], local["c2"], local["dev"]
    assert out["branches"] == [["dev", "refs/heads/dev", dev], ["main", "refs/heads/main", c2]]
    assert out["tags"] == [["v1", "refs/tags/v1", c1]]
    assert out["commits"] == [
        [c2, "second", ["Tester"], "2024-03-02T08:30:15+00:00"],
        [c1, "first", ["Tester"], "2024-03-01T12:00:00+00:00"],
    ]
    assert out["dev_commits"] == [dev, c1]
    assert out["info_sha"] == c1
    assert out["siblings"] == sorted(
        [p, blob_id(POINTER if p == "weights.bin" else b), len(b), sha256(LFS) if p == "weights.bin" else None]
        for p, b in files_at("v1").items()
    )
    lfs_item = {"path": "weights.bin", "kind": "RepoFile", "blob_id": blob_id(POINTER), "size": len(LFS), "lfs": [sha256(LFS), len(LFS), len(POINTER)]}
    files = {x["path"]: x for x in out["tree"]}
    assert sorted(files) == sorted([*files_at("main"), "sub", "sub/dir"])
    assert files["weights.bin"] == lfs_item
    assert files["config.json"] == {"path": "config.json", "kind": "RepoFile", "blob_id": blob_id(CONFIG), "size": len(CONFIG), "lfs": None}
    assert files["sub"] == {"path": "sub", "kind": "RepoFolder", "tree_id": local["sub_tree"]}
    assert out["sub"] == [{"path": "sub/dir/nested.txt", "kind": "RepoFile", "blob_id": blob_id(NESTED), "size": len(NESTED), "lfs": None}]
    paths = {x["path"]: x for x in out["paths"]}
    assert sorted(paths) == ["README.md", "sub", "weights.bin"], "unknown paths are omitted"
    assert paths["weights.bin"] == lfs_item
    assert paths["README.md"]["blob_id"] == blob_id(README["dev"])
    assert paths["sub"]["kind"] == "RepoFolder"
    no_upstream(hub)


ERRORS = """
from huggingface_hub import hf_hub_download
storage = os.path.join(os.environ["HF_HOME"], "hub", "models--local--demo")
emit({
    "missing_file": catch(hf_hub_download, "local/demo", "nope.txt"),
    "missing_in_old_rev": catch(hf_hub_download, "local/demo", "config.json", revision="v1"),
    "bad_branch": catch(hf_hub_download, "local/demo", "README.md", revision="no-such-branch"),
    "bad_sha": catch(hf_hub_download, "local/demo", "README.md", revision="0" * 40),
    "no_exist": sorted(
        os.path.relpath(os.path.join(d, n), storage)
        for d, _, ns in os.walk(os.path.join(storage, ".no_exist")) for n in ns
    ),
})
"""


def test_missing_files_and_revisions_raise_the_hub_errors(hub, local, local_mirror, client_env):
    out = client_env(ERRORS, endpoint=local_mirror.url).out
    for k in ("missing_file", "missing_in_old_rev"):
        assert out[k]["err"] == "RemoteEntryNotFoundError", out[k]
        assert "EntryNotFoundError" in out[k]["mro"]
    for k in ("bad_branch", "bad_sha"):
        assert out[k]["err"] == "RevisionNotFoundError", out[k]
    # The 404s carried X-Repo-Commit: the client recorded negative cache entries at real commits.
    assert out["no_exist"] == sorted([f".no_exist/{local['c1']}/config.json", f".no_exist/{local['c2']}/nope.txt"])
    no_upstream(hub)


def test_raw_http_head_get_and_ranges(hub, local, local_mirror):
    url = f"{local_mirror.url}/local/demo/resolve/v1/weights.bin"
    size, sha = len(LFS), sha256(LFS)
    status, h, body = http(url, method="HEAD")
    assert status == 200 and body == b""
    assert h["ETag"] == f'"{sha}"' and h["X-Linked-Etag"] == f'"{sha}"'
    assert h["X-Linked-Size"] == str(size) and h["Content-Length"] == str(size)
    assert h["X-Repo-Commit"] == local["c1"] and h["Accept-Ranges"] == "bytes"
    status, h, body = http(url)
    assert status == 200 and body == LFS
    for rng, a, b in (("bytes=100-199", 100, 199), ("bytes=-10", size - 10, size - 1), (f"bytes={size - 5}-", size - 5, size - 1)):
        status, h, body = http(url, headers={"Range": rng})
        assert status == 206, rng
        assert h["Content-Range"] == f"bytes {a}-{b}/{size}"
        assert body == LFS[a : b + 1], rng
    status, h, _ = http(url, headers={"Range": f"bytes={size}-"})
    assert status == 416 and h["Content-Range"] == f"bytes */{size}"
    # A regular file: ETag is the git blob id, ranges work too.
    status, h, body = http(f"{local_mirror.url}/local/demo/resolve/main/README.md", headers={"Range": "bytes=6-7"})
    assert status == 206 and body == b"v2"
    assert h["ETag"] == f'"{blob_id(README["main"])}"' and "X-Linked-Etag" not in h
    # Repo info and a revision route.
    status, h, body = http(f"{local_mirror.url}/api/models/local/demo/revision/{local['c1'][:8]}")
    assert status == 200 and f'"sha":"{local["c1"]}"' in body.decode()
    no_upstream(hub)


def test_bare_repository_as_a_dataset(hub, local, local_mirror, client_env):
    res = client_env(
        """
        from huggingface_hub import hf_hub_download, snapshot_download
        p = snapshot_download("local/bare", repo_type="dataset")
        w = hf_hub_download("local/bare", "weights.bin", repo_type="dataset", revision="v1")
        emit({"commit": os.path.basename(p), "files": tree_hashes(p), "w": sha(w), "w_blob": blob_name(w)})
        """,
        endpoint=local_mirror.url,
    )
    assert res.out["commit"] == local["c2"]
    assert res.out["files"] == {p: sha256(b) for p, b in files_at("main").items()}
    assert res.out["w"] == res.out["w_blob"] == sha256(LFS)
    no_upstream(hub)


def test_other_repos_are_still_proxied(hub, local_mirror, client_env):
    want = hub.file("acme/tiny", "config.json")
    res = client_env(
        'from huggingface_hub import hf_hub_download\nemit(sha(hf_hub_download("acme/tiny", "config.json")))',
        endpoint=local_mirror.url,
    )
    assert res.out == want["sha256"]
    assert hub.admin.stats().entries(contains="acme/tiny"), "a repo that is not local goes upstream"
