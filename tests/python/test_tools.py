"""The operator's tools, with the real binary: `olah-cli prefetch` warms a running mirror (the fake
Hub sees each file once, a real client then downloads through an offline mirror), and
`olah-cli cache ls|verify|rm|gc` on a stopped mirror's cache and through a running server's admin
API."""

import json
import os
import subprocess

from conftest import _binary, mirror_only

pytestmark = mirror_only

FILE_ROUTES = ("resolve", "resolve_cache", "lfs", "xorb")


def cli(*args, timeout=120):
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_") and "proxy" not in k.lower()}
    env.update(NO_PROXY="*", no_proxy="*")
    p = subprocess.run([_binary("olah-cli"), *map(str, args)], capture_output=True, text=True, timeout=timeout, env=env)
    return p.returncode, p.stdout, p.stderr


def prefetch(m, repo, *extra):
    return cli("prefetch", repo, "--endpoint", m.url, *extra)


def file_gets(stats):
    """Upstream GETs that carried file content (resolve, resolve-cache, LFS, xorb; redirects carry
    none)."""
    return [r for r in stats.log if r["method"] == "GET" and r["route"] in FILE_ROUTES and r["status"] in (200, 206)]


def data_file(repos, info):
    """Where the mirror keeps a file's content."""
    if info["lfs"]:
        return os.path.join(repos, "blobs", "sha256", info["sha256"][:2], info["sha256"])
    return os.path.join(repos, "blobs", "gitsha1", info["oid"][:2], info["oid"])


def ls_json(repos):
    rc, out, err = cli("cache", "ls", "--json", "--repos-path", repos)
    assert rc == 0, err
    return {(r["repo_type"], r["repo_id"]): r for r in json.loads(out)}


SNAPSHOT = """
from huggingface_hub import snapshot_download
import os
d = snapshot_download({repo!r})
out = {{}}
for root, _, names in os.walk(d):
    for n in names:
        p = os.path.join(root, n)
        out[os.path.relpath(p, d)] = sha(p)
emit(out)
"""


def test_prefetch_fills_the_cache_once_then_an_offline_mirror_serves_snapshot_download(hub, make_mirror, client_env, tmp_path):
    m = make_mirror()
    tree = hub.tree("gpt2")
    total = sum(f["size"] for f in tree.values())
    hub.admin.reset()
    rc, out, err = prefetch(m, "gpt2", "--jobs", "2")
    assert rc == 0, err
    assert f"prefetched {len(tree)} files, {total} bytes ({total} bytes from upstream)" in out, out
    # Not a terminal: one plain line per finished file.
    for path in tree:
        assert path in err, err
    gets = file_gets(hub.admin.stats())
    assert len(gets) == len(tree), [r["uri"] for r in gets]
    # A re-run costs no upstream file transfer at all.
    hub.admin.reset()
    rc, out, err = prefetch(m, "gpt2")
    assert rc == 0, err
    assert f"prefetched {len(tree)} files, {total} bytes (0 bytes from upstream)" in out, out
    assert file_gets(hub.admin.stats()) == []
    # The cache holds them: a real client downloads the snapshot from an offline mirror.
    m.restart(["--offline"])
    hub.admin.reset()
    got = client_env(SNAPSHOT.format(repo="gpt2"), endpoint=m.url, home=tmp_path / "offline").out
    assert got == {p: f["sha256"] for p, f in tree.items()}
    assert hub.admin.stats().requests() == 0, "offline: nothing upstream"


def test_prefetch_include_exclude_and_missing_repo_or_revision(hub, make_mirror):
    m = make_mirror()
    tree = hub.tree("acme/tiny")
    want = [p for p in tree if p.endswith(".json") or p.startswith("sub/")]
    assert want and len(want) < len(tree)
    hub.admin.reset()
    rc, out, err = prefetch(m, "acme/tiny", "--include", "*.json", "--include", "sub/*", "--exclude", "*.md")
    assert rc == 0, err
    size = sum(tree[p]["size"] for p in want)
    assert f"prefetched {len(want)} files, {size} bytes" in out, out
    fetched = {r["uri"].split("?")[0].rsplit("/", 1)[-1] for r in file_gets(hub.admin.stats())}
    assert "model.bin" not in fetched and "README.md" not in fetched, fetched
    # `*` crosses directories, as fnmatch does.
    rc, out, err = prefetch(m, "acme/tiny", "--include", "*a b.txt")
    assert rc == 0 and "prefetched 1 files" in out, (out, err)

    rc, out, err = prefetch(m, "acme/does-not-exist")
    assert rc == 2, (rc, out, err)
    assert "acme/does-not-exist" in err and "not found" in err, err
    rc, out, err = prefetch(m, "acme/tiny", "--revision", "no-such-branch")
    assert rc == 2, (rc, out, err)
    assert "no-such-branch" in err and "acme/tiny" in err, err


def test_cache_tools_on_a_stopped_mirror(hub, make_mirror, client_env, tmp_path):
    m = make_mirror()
    tree = hub.tree("gpt2")
    total = sum(f["size"] for f in tree.values())
    assert prefetch(m, "gpt2")[0] == 0
    assert prefetch(m, "acme/tiny", "--include", "*.json")[0] == 0
    m.stop()
    assert not os.path.exists(os.path.join(m.repos, "olah-server.json")), "removed at shutdown"

    rc, out, err = cli("cache", "ls", "--repos-path", m.repos)
    assert rc == 0, err
    line = next(l for l in out.splitlines() if l.startswith("gpt2 "))
    assert "195.3 KiB" in line and " 2 " in line, line
    repos = ls_json(m.repos)
    g = repos[("model", "gpt2")]
    assert (g["files"], g["bytes"]) == (len(tree), total)
    assert hub.commit("gpt2") in g["revisions"]

    # One flipped byte in the cached weights: verify names it, drops it, exits 1.
    info = tree["pytorch_model.bin"]
    path = data_file(m.repos, info)
    data = bytearray(open(path, "rb").read())
    data[1234] ^= 0x01
    open(path, "wb").write(data)
    rc, out, err = cli("cache", "verify", "--repos-path", m.repos)
    assert rc == 1, (out, err)
    assert "pytorch_model.bin" in out and "1 corrupt" in out, out
    rc, out, err = cli("cache", "verify", "--repos-path", m.repos)
    assert rc == 0 and "0 corrupt" in out, (out, err)
    # A download through the mirror still gets the right bytes (fetched again).
    m.start()
    hub.admin.reset()
    got = client_env(
        """
        from huggingface_hub import hf_hub_download
        emit(sha(hf_hub_download("gpt2", "pytorch_model.bin")))
        """,
        endpoint=m.url,
        home=tmp_path / "after-verify",
    ).out
    assert got == info["sha256"]
    assert len(file_gets(hub.admin.stats())) == 1, "refetched once"
    m.stop()

    # gc removes a planted orphan data file (and only that).
    orphan = os.path.join(m.repos, "blobs", "sha256", "ab", "ab" * 32)
    os.makedirs(os.path.dirname(orphan), exist_ok=True)
    open(orphan, "wb").write(b"nobody's bytes")
    rc, out, err = cli("cache", "gc", "--dry-run", "--repos-path", m.repos)
    assert rc == 0 and "ab" * 32 in out and os.path.exists(orphan), (out, err)
    rc, out, err = cli("cache", "gc", "--repos-path", m.repos)
    assert rc == 0 and "ab" * 32 in out, (out, err)
    assert not os.path.exists(orphan)
    assert ls_json(m.repos)[("model", "gpt2")]["bytes"] == total

    # rm drops the repo and its content; the other repo stays; a second rm is exit 2.
    rc, out, err = cli("cache", "rm", "gpt2", "--repos-path", m.repos)
    assert rc == 0, err
    repos = ls_json(m.repos)
    assert ("model", "gpt2") not in repos and ("model", "acme/tiny") in repos
    assert not os.path.exists(path)
    rc, out, err = cli("cache", "rm", "gpt2", "--repos-path", m.repos)
    assert rc == 2 and "gpt2" in err, (rc, out, err)


def test_cache_tools_through_a_running_server(hub, make_mirror):
    m = make_mirror()
    tree = hub.tree("gpt2")
    assert prefetch(m, "gpt2")[0] == 0
    with open(os.path.join(m.repos, "olah-server.json")) as f:
        assert json.load(f)["url"] == m.url
    # The server holds the database: the tools go through its admin API.
    repos = ls_json(m.repos)
    assert repos[("model", "gpt2")]["files"] == len(tree)
    rc, out, err = cli("cache", "verify", "--repos-path", m.repos)
    assert rc == 0 and "0 corrupt" in out, (out, err)
    rc, out, err = cli("cache", "rm", "gpt2", "--repos-path", m.repos)
    assert rc == 0, err
    assert ("model", "gpt2") not in ls_json(m.repos)
    rc, out, err = cli("cache", "rm", "gpt2", "--repos-path", m.repos)
    assert rc == 2 and "gpt2" in err, (rc, out, err)
    # The server still serves it (fetched again).
    hub.admin.reset()
    rc, out, err = prefetch(m, "gpt2")
    assert rc == 0, err
    assert len(file_gets(hub.admin.stats())) == len(tree)


def test_cache_ls_counts_content_a_xet_client_cached_as_xorbs(hub, make_mirror, client_env, tmp_path):
    m = make_mirror()
    info = hub.file("acme/xet-text", "tokenizer.json")
    assert info["xet"]
    got = client_env(
        """
        from huggingface_hub import hf_hub_download
        emit(sha(hf_hub_download("acme/xet-text", "tokenizer.json")))
        """,
        endpoint=m.url,
        home=tmp_path / "xet",
        env={"HF_XET_TELEMETRY_ENABLED": "false"},
    ).out
    assert got == info["sha256"]
    # hf_xet took the Xet path: no blob was filled, the content is in the xorb store.
    assert not os.path.exists(os.path.join(m.repos, "blobs", "sha256", info["sha256"][:2], info["sha256"]))
    repo = ls_json(m.repos)[("model", "acme/xet-text")]
    assert repo["files"] == 1
    assert 0 < repo["bytes"] < info["size"], repo  # compressed xorb records
    # rm drops its xorbs too (no other repository's Xet files name them).
    rc, out, err = cli("cache", "rm", "acme/xet-text", "--repos-path", m.repos)
    assert rc == 0, err
    assert ("model", "acme/xet-text") not in ls_json(m.repos)
    xorbs = os.path.join(m.repos, "xorbs")
    left = [f for d, _, fs in os.walk(xorbs) if d != os.path.join(xorbs, "tmp") for f in fs]
    assert left == [], left
