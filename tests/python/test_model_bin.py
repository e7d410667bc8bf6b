"""model-bin mode: `olah-cli model-bin --path DIR` serves plain directories DIR/<org>/<repo>/… as
model repos, fully offline, to the real huggingface_hub client."""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import tempfile
import time
import urllib.error

import pytest

from conftest import KEEP, READY_TIMEOUT, Proc, _binary, _follow_opener, free_port, http

BIG_SIZE = 12 << 20  # > 10 MiB, and LFS-class by extension too


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write(root, rel, data: bytes):
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


class ModelBin:
    """A model-bin server over a temp directory holding acme/m1."""

    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix="olah-test-modelbin-")
        self.root = os.path.join(self.tmp, "models")
        self.files = {
            "config.json": b'{"model_type": "tiny", "hidden_size": 8}\n',
            "sub/dir/x.txt": b"nested file\n",
            "model.safetensors": random.Random(1234).randbytes(BIG_SIZE),
        }
        for rel, data in self.files.items():
            write(self.root, f"acme/m1/{rel}", data)
        write(self.root, "acme/m1/.hidden", b"not served")
        write(self.root, "acme/m1/.git/HEAD", b"not served")
        self.port = free_port()
        self.log = open(os.path.join(self.tmp, "model-bin.log"), "ab")
        self.proc = Proc(
            [
                _binary("olah-cli"),
                "model-bin",
                "--path", self.root,
                "--host", "127.0.0.1",
                "--port", str(self.port),
                "--log-path", os.path.join(self.tmp, "logs"),
            ],
            stdout=self.log,
            stderr=self.log,
            env={**os.environ, "NO_PROXY": "*", "no_proxy": "*"},
        )
        try:
            self._wait_ready()
        except Exception:
            self.cleanup()
            raise

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def _wait_ready(self):
        deadline = time.time() + READY_TIMEOUT
        last = None
        while time.time() < deadline:
            if not self.proc.alive():
                raise RuntimeError(f"olah-cli model-bin exited with {self.proc.p.poll()}:\n{self.log_text()[-3000:]}")
            try:
                with _follow_opener.open(f"{self.url}/health", timeout=2) as r:
                    if r.status == 200:
                        return
                    last = r.status
            except (OSError, urllib.error.HTTPError) as e:
                last = e
            time.sleep(0.1)
        raise RuntimeError(f"model-bin not healthy after {READY_TIMEOUT}s ({last}):\n{self.log_text()[-3000:]}")

    def log_text(self):
        try:
            with open(os.path.join(self.tmp, "model-bin.log"), "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def cleanup(self):
        self.proc.stop()
        self.log.close()
        if not KEEP:
            shutil.rmtree(self.tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def mb():
    server = ModelBin()
    yield server
    server.cleanup()


def expected_etag(rel: str, data: bytes) -> str:
    return sha256(data) if rel.endswith(".safetensors") or len(data) > 10 << 20 else git_blob_sha1(data)


def test_hf_hub_download_each_file(mb, client_env):
    res = client_env(
        """
        from huggingface_hub import hf_hub_download
        out = {}
        for path in ["config.json", "sub/dir/x.txt", "model.safetensors"]:
            p = hf_hub_download("acme/m1", path)
            out[path] = {"sha": sha(p), "blob": blob_name(p), "commit": p.split("/snapshots/")[1].split("/")[0]}
        emit(out)
        """,
        endpoint=mb.url,
    )
    commits = {v["commit"] for v in res.out.values()}
    assert len(commits) == 1 and len(commits.pop()) == 40, res.out
    for rel, data in mb.files.items():
        got = res.out[rel]
        assert got["sha"] == sha256(data), rel
        # The cache blob is named after the etag: sha256 for LFS-class files, git blob id otherwise.
        assert got["blob"] == expected_etag(rel, data), rel


def test_snapshot_download_gets_every_visible_file(mb, client_env):
    res = client_env(
        """
        from huggingface_hub import HfApi, snapshot_download
        commit = HfApi().model_info("acme/m1").sha
        p = snapshot_download("acme/m1")
        emit({"sha": commit, "dir": os.path.basename(p), "files": tree_hashes(p)})
        """,
        endpoint=mb.url,
    )
    assert res.out["dir"] == res.out["sha"]
    assert res.out["files"] == {rel: sha256(data) for rel, data in mb.files.items()}


def test_metadata_info_tree_paths_info_refs_commits(mb, client_env):
    res = client_env(
        """
        from huggingface_hub import HfApi, get_hf_file_metadata, hf_hub_url
        api = HfApi()
        info = api.model_info("acme/m1", files_metadata=True)
        meta = get_hf_file_metadata(hf_hub_url("acme/m1", "model.safetensors"))
        small = get_hf_file_metadata(hf_hub_url("acme/m1", "config.json"))
        def entry(e):
            d = {"type": type(e).__name__, "path": e.path}
            if hasattr(e, "size"):
                d["size"] = e.size
                d["blob_id"] = e.blob_id
                d["lfs"] = e.lfs.sha256 if e.lfs else None
            return d
        emit({
            "id": info.id,
            "sha": info.sha,
            "private": info.private,
            "siblings": {s.rfilename: [s.size, s.blob_id, s.lfs.sha256 if s.lfs else None] for s in info.siblings},
            "meta": [meta.etag, meta.size, meta.commit_hash],
            "small": [small.etag, small.size],
            "tree": [entry(e) for e in api.list_repo_tree("acme/m1", recursive=True)],
            "top": [entry(e) for e in api.list_repo_tree("acme/m1")],
            "subdir": [entry(e) for e in api.list_repo_tree("acme/m1", path_in_repo="sub/dir")],
            "paths": [entry(e) for e in api.get_paths_info("acme/m1", ["config.json", "sub", "nope.txt"])],
            "refs": [[b.name, b.target_commit] for b in api.list_repo_refs("acme/m1").branches],
            "commits": [c.commit_id for c in api.list_repo_commits("acme/m1")],
        })
        """,
        endpoint=mb.url,
    )
    out = res.out
    sha = out["sha"]
    big = mb.files["model.safetensors"]
    assert out["id"] == "acme/m1" and out["private"] is False and len(sha) == 40
    assert set(out["siblings"]) == set(mb.files), "hidden files must not be listed"
    assert out["siblings"]["model.safetensors"][0] == BIG_SIZE
    assert out["siblings"]["model.safetensors"][2] == sha256(big)
    assert out["siblings"]["config.json"][1] == git_blob_sha1(mb.files["config.json"])
    assert out["siblings"]["config.json"][2] is None
    assert out["meta"] == [sha256(big), BIG_SIZE, sha]
    assert out["small"] == [git_blob_sha1(mb.files["config.json"]), len(mb.files["config.json"])]

    files = {e["path"]: e for e in out["tree"] if e["type"] == "RepoFile"}
    folders = {e["path"] for e in out["tree"] if e["type"] == "RepoFolder"}
    assert set(files) == set(mb.files)
    assert folders == {"sub", "sub/dir"}
    assert files["model.safetensors"]["lfs"] == sha256(big)
    assert files["model.safetensors"]["size"] == BIG_SIZE
    pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256(big)}\nsize {BIG_SIZE}\n".encode()
    assert files["model.safetensors"]["blob_id"] == git_blob_sha1(pointer)
    assert files["sub/dir/x.txt"]["blob_id"] == git_blob_sha1(mb.files["sub/dir/x.txt"])
    assert {e["path"] for e in out["top"]} == {"config.json", "model.safetensors", "sub"}
    assert [e["path"] for e in out["subdir"]] == ["sub/dir/x.txt"]
    assert sorted((e["type"], e["path"]) for e in out["paths"]) == [("RepoFile", "config.json"), ("RepoFolder", "sub")]
    assert out["refs"] == [["main", sha]]
    assert out["commits"] == [sha]


def test_errors_map_to_client_exceptions(mb, client_env):
    res = client_env(
        """
        from huggingface_hub import HfApi, hf_hub_download
        emit({
            "repo": catch(hf_hub_download, "acme/nope", "config.json"),
            "repo_info": catch(HfApi().model_info, "acme/nope"),
            "dataset": catch(hf_hub_download, "acme/m1", "config.json", repo_type="dataset"),
            "entry": catch(hf_hub_download, "acme/m1", "nope.txt"),
            "hidden": catch(hf_hub_download, "acme/m1", ".hidden"),
            "revision": catch(hf_hub_download, "acme/m1", "config.json", revision="v1.0"),
            "revision_info": catch(HfApi().model_info, "acme/m1", revision="dev"),
        })
        """,
        endpoint=mb.url,
    )
    out = res.out
    for k in ("repo", "repo_info", "dataset"):
        assert "RepositoryNotFoundError" in out[k]["mro"], (k, out[k])
    for k in ("entry", "hidden"):
        assert "EntryNotFoundError" in out[k]["mro"], (k, out[k])
    for k in ("revision", "revision_info"):
        assert "RevisionNotFoundError" in out[k]["mro"], (k, out[k])


def test_file_added_on_disk_shows_up_in_a_new_snapshot(mb, client_env):
    write(mb.root, "acme/grow/a.txt", b"first\n")
    code = """
        from huggingface_hub import snapshot_download
        p = snapshot_download("acme/grow")
        emit({"commit": os.path.basename(p), "files": tree_hashes(p)})
        """
    home = mb.tmp + "/grow-home"
    first = client_env(code, endpoint=mb.url, home=home).out
    assert first["files"] == {"a.txt": sha256(b"first\n")}
    write(mb.root, "acme/grow/sub/b.txt", b"second\n")
    second = client_env(code, endpoint=mb.url, home=home).out
    assert second["commit"] != first["commit"]
    assert second["files"] == {"a.txt": sha256(b"first\n"), "sub/b.txt": sha256(b"second\n")}


def test_range_and_headers_over_raw_http(mb):
    big = mb.files["model.safetensors"]
    url = f"{mb.url}/acme/m1/resolve/main/model.safetensors"
    status, h, body = http(url, method="HEAD")
    assert status == 200 and body == b""
    assert h["ETag"] == f'"{sha256(big)}"'
    assert h["X-Linked-Etag"] == f'"{sha256(big)}"'
    assert h["X-Linked-Size"] == str(BIG_SIZE)
    assert h["Content-Length"] == str(BIG_SIZE)
    assert h["Accept-Ranges"] == "bytes"
    assert len(h["X-Repo-Commit"]) == 40

    start = (1 << 20) - 3  # across a read-chunk boundary
    status, h, body = http(url, headers={"Range": f"bytes={start}-{start + 99}"})
    assert status == 206
    assert h["Content-Range"] == f"bytes {start}-{start + 99}/{BIG_SIZE}"
    assert body == big[start : start + 100]
    status, h, body = http(url, headers={"Range": "bytes=-64"})
    assert status == 206 and body == big[-64:]
    status, h, _ = http(url, headers={"Range": f"bytes={BIG_SIZE}-"})
    assert status == 416
    assert h["Content-Range"] == f"bytes */{BIG_SIZE}"

    status, h, body = http(f"{mb.url}/acme/m1/resolve/main/config.json")
    assert status == 200 and body == mb.files["config.json"]
    assert h["ETag"] == f'"{git_blob_sha1(mb.files["config.json"])}"'
    assert "X-Linked-Etag" not in h

    status, h, _ = http(f"{mb.url}/acme/m1/resolve/main/missing.txt", method="HEAD")
    assert status == 404 and h["X-Error-Code"] == "EntryNotFound" and len(h["X-Repo-Commit"]) == 40
    status, h, _ = http(f"{mb.url}/api/models/nobody/nothing")
    assert status == 404 and h["X-Error-Code"] == "RepoNotFound"


def test_nothing_outside_the_root_is_reachable(mb):
    outside = os.path.join(mb.tmp, "outside.txt")
    with open(outside, "wb") as f:
        f.write(b"private")
    link = os.path.join(mb.root, "acme", "m1", "leak.txt")
    os.symlink(outside, link)
    try:
        status, h, _ = http(f"{mb.url}/acme/m1/resolve/main/leak.txt")
        assert status == 404 and h["X-Error-Code"] == "EntryNotFound"
        for raw in ("/acme/m1/resolve/main/..%2F..%2Foutside.txt", "/acme/m1/resolve/main/%2E%2E/x"):
            status, _, body = http(mb.url + raw)
            assert status in (400, 404) and b"private" not in body, raw
    finally:
        os.unlink(link)
