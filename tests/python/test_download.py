"""Downloads with the real huggingface_hub client: every repo type, revision form and path form."""

import pytest

from conftest import TARGET, mirror_only

CASES = [
    ("acme/tiny", "model", "main", "config.json"),
    ("acme/tiny", "model", "main", "model.bin"),
    ("acme/tiny", "model", "main", "model.safetensors"),
    ("acme/tiny", "model", "dev", "config.json"),
    ("acme/tiny", "model", "v1.0", "old-only.txt"),
    ("acme/tiny", "model", "refs/pr/1", "pr.txt"),
    ("acme/tiny", "model", "main", "sub/dir/a b.txt"),
    ("gpt2", "model", "main", "pytorch_model.bin"),
    ("acme/data", "dataset", "main", "data/part-0007.jsonl"),
    ("acme/data", "dataset", "refs/convert/parquet", "default/train/0000.parquet"),
    ("acme/space", "space", "main", "app.py"),
]

PLURAL = {"model": "models", "dataset": "datasets", "space": "spaces"}


@pytest.mark.parametrize("repo,kind,rev,path", CASES)
def test_hf_hub_download_exact_bytes(hub, endpoint, run_client, repo, kind, rev, path):
    want = hub.file(f"{PLURAL[kind]}/{repo}@{rev}:{path}")
    rc, out, err = run_client(
        endpoint,
        f"""
        from huggingface_hub import hf_hub_download
        p = hf_hub_download({repo!r}, {path!r}, repo_type={kind!r}, revision={rev!r})
        print(json.dumps({{"sha": hashlib.sha256(open(p, "rb").read()).hexdigest(), "path": p}}))
        """,
    )
    assert rc == 0, err
    assert out["sha"] == want["sha256"]
    assert f"/snapshots/{want['commit']}/" in out["path"]


def test_download_by_full_commit_sha(hub, endpoint, run_client):
    want = hub.file("models/acme/tiny@v1.0:old-only.txt")
    rc, out, err = run_client(
        endpoint,
        f"""
        from huggingface_hub import hf_hub_download
        p = hf_hub_download("acme/tiny", "old-only.txt", revision={want['commit']!r})
        print(json.dumps({{"sha": hashlib.sha256(open(p, "rb").read()).hexdigest()}}))
        """,
    )
    assert rc == 0, err
    assert out["sha"] == want["sha256"]


@pytest.mark.parametrize("disable_xet", [False, True])
def test_snapshot_download_model(hub, endpoint, run_client, disable_xet):
    rc, out, err = run_client(
        endpoint,
        """
        from huggingface_hub import snapshot_download
        p = snapshot_download("acme/tiny")
        files = {}
        for root, _, names in os.walk(p):
            for n in names:
                full = os.path.join(root, n)
                files[os.path.relpath(full, p)] = hashlib.sha256(open(full, "rb").read()).hexdigest()
        print(json.dumps(files))
        """,
        disable_xet=disable_xet,
    )
    assert rc == 0, err
    expected = {k.split(":", 1)[1]: v["sha256"] for k, v in hub.files.items() if k.startswith("models/acme/tiny@main:")}
    assert out == expected


def test_snapshot_download_dataset_with_hundreds_of_files(hub, endpoint, run_client):
    rc, out, err = run_client(
        endpoint,
        """
        from huggingface_hub import snapshot_download
        p = snapshot_download("acme/data", repo_type="dataset")
        n = 0
        bad = []
        for root, _, names in os.walk(p):
            for name in names:
                n += 1
        print(json.dumps({"n": n, "row7": open(os.path.join(p, "data", "part-0007.jsonl")).read()}))
        """,
    )
    assert rc == 0, err
    assert out["n"] == 301
    assert out["row7"] == '{"row": 7}\n'


def test_list_repo_tree_paginates_through_the_endpoint(hub, endpoint, run_client, make_mirror):
    if TARGET != "direct":
        endpoint = make_mirror().url  # a cold mirror, so every page goes upstream
    hub.reset()
    rc, out, err = run_client(
        endpoint,
        """
        from huggingface_hub import list_repo_tree
        entries = list(list_repo_tree("acme/data", repo_type="dataset", recursive=True))
        print(json.dumps({"n": len(entries), "files": len([e for e in entries if hasattr(e, "size") and e.path.startswith("data/")])}))
        """,
    )
    assert rc == 0, err
    assert out["files"] == 300
    if TARGET != "direct":
        # Every page request the hub saw came from the mirror (its user agent), none from the client.
        tree_reqs = [r for r in hub.stats()["log"] if "/tree/" in r["uri"]]
        assert len(tree_reqs) >= 4, tree_reqs
        assert all("olah-rs" in (r["user_agent"] or "") for r in tree_reqs)


def test_hf_file_system_ranged_reads(hub, endpoint, run_client):
    want = hub.file("models/acme/big@main:big.bin")
    rc, out, err = run_client(
        endpoint,
        """
        from huggingface_hub import HfFileSystem
        fs = HfFileSystem()
        with fs.open("acme/big/big.bin", "rb") as f:
            f.seek(5_000_000)
            a = f.read(1000)
            f.seek(40_000_000)
            b = f.read(3)
        with fs.open("acme/big/big.bin", "rb") as f:
            f.seek(0)
            c = f.read(100)
        print(json.dumps({"a": a.hex(), "b": b.hex(), "c": c.hex()}))
        """,
    )
    assert rc == 0, err
    assert len(bytes.fromhex(out["a"])) == 1000 and len(bytes.fromhex(out["b"])) == 3
    # Compare with a plain ranged GET straight from the fake Hub.
    import urllib.request

    def direct(a, n):
        req = urllib.request.Request(f"{hub.hub}/acme/big/resolve/main/big.bin", headers={"Range": f"bytes={a}-{a + n - 1}"})
        with urllib.request.urlopen(req) as r:
            return r.read().hex()

    assert out["a"] == direct(5_000_000, 1000)
    assert out["b"] == direct(40_000_000, 3)
    assert out["c"] == direct(0, 100)
    assert want["size"] == 64 << 20
