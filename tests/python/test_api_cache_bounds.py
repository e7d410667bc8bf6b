"""The API response cache is bounded: normalised keys (known query parameters only, paths-info
cached per path, never per body), records under a budget; real clients still hit it on repeat.
And a metadata store that cannot be written (a full disk) never fails a request, and caching
resumes once space is back, without a restart."""

import json
import os
import subprocess
import tempfile
import time

import pytest

from conftest import http, mirror_only, sha256_bytes

pytestmark = mirror_only


def _db_size(m):
    return os.path.getsize(os.path.join(m.repos, "olah-meta.redb"))


def test_anonymous_junk_does_not_grow_the_database(hub, make_mirror):
    m = make_mirror()
    url = f"{m.url}/api/models/acme/tiny/paths-info/main"
    # Warm up: the database reaches its working size.
    status, _, _ = http(url, method="POST", data=b"paths=config.json&expand=false")
    assert status == 200
    status, _, _ = http(f"{m.url}/api/models/acme/tiny")
    assert status == 200
    before = _db_size(m)
    hub.admin.reset()
    for i in range(30):
        junk = "&".join(f"paths=junk/{i}/{j}/" + "x" * 300 for j in range(999))
        status, _, _ = http(
            f"{url}?junk{i}={'q' * 4000}", method="POST", data=f"paths=config.json&{junk}&expand=false".encode()
        )
        assert status == 200
        status, _, _ = http(f"{m.url}/api/models/acme/tiny?blobs=true&junk{i}={'q' * 8000}")
        assert status == 200
    grown = _db_size(m) - before
    assert grown < 2 << 20, f"metadata database grew by {grown} bytes"
    # Unknown parameters never reach the Hub.
    assert not [e for e in hub.admin.stats().log if "junk" in e.get("uri", "").split("?", 1)[-1] and "?" in e.get("uri", "")]


def test_too_many_paths_or_bad_paths_are_refused_with_a_hub_shaped_error(make_mirror):
    m = make_mirror()
    url = f"{m.url}/api/models/acme/tiny/paths-info/main"
    status, h, _ = http(url, method="POST", data="&".join(f"paths=f{i}" for i in range(1001)).encode())
    assert status == 400 and h.get("x-error-code")
    status, h, _ = http(url, method="POST", data=b"paths=../etc/passwd")
    assert status == 400 and h.get("x-error-code")


CLIENT = """
from huggingface_hub import HfApi, snapshot_download
api = HfApi()
tree = sorted((e.path, getattr(e, "size", None)) for e in api.list_repo_tree("acme/tiny", recursive=True))
infos = sorted((e.path, getattr(e, "size", None)) for e in api.get_paths_info("acme/tiny", ["config.json", "model.bin", "sub/dir/a b.txt", "missing.txt"], expand=True))
info = api.model_info("acme/tiny", files_metadata=True)
snap = snapshot_download("acme/tiny", allow_patterns=["*.json", "*.md", "sub/*"])
emit({"tree": tree, "infos": infos, "sha": info.sha, "siblings": sorted(s.rfilename for s in info.siblings), "snap": tree_hashes(snap)})
"""


def test_real_clients_work_and_hit_the_cache_on_repeat(hub, make_mirror, client_env, tmp_path):
    m = make_mirror()
    first = client_env(CLIENT, endpoint=m.url, home=tmp_path / "a").out
    assert ["config.json", 0] not in first["infos"] and len(first["infos"]) == 3, first["infos"]
    hub.admin.reset()
    again = client_env(CLIENT, endpoint=m.url, home=tmp_path / "b").out
    assert again == first
    log = hub.admin.stats()
    # Only the path the Hub does not list is asked again; nothing else goes upstream.
    assert [e["uri"] for e in log.log if "paths-info" not in e.get("uri", "")] == [], log.summary()
    assert len(log.entries(contains="paths-info")) <= 1, log.summary()


def test_paths_info_is_composed_from_per_path_entries_and_accepts_json(hub, make_mirror):
    m = make_mirror()
    url = f"{m.url}/api/models/acme/tiny/paths-info/main"
    status, _, body = http(url, method="POST", data=b"paths=config.json&paths=README.md&expand=true")
    assert status == 200
    both = {e["path"]: e for e in json.loads(body)}
    assert set(both) == {"config.json", "README.md"}
    hub.admin.reset()
    # huggingface.js sends JSON; the entries are served from the cache, one path at a time.
    status, _, body = http(
        url,
        method="POST",
        data=json.dumps({"paths": ["README.md"], "expand": True}).encode(),
        headers={"Content-Type": "application/json"},
    )
    assert status == 200 and json.loads(body) == [both["README.md"]]
    assert hub.admin.stats().requests() == 0
    # A new path next to cached ones: one upstream request, for that path only.
    status, _, body = http(url, method="POST", data=b"paths=config.json&paths=sub/dir/a%20b.txt&expand=true")
    assert status == 200
    assert [e["path"] for e in json.loads(body)] == ["config.json", "sub/dir/a b.txt"]
    assert hub.admin.stats().requests() == 1
    # expand=false entries are separate records (the Hub's answer differs).
    status, _, body = http(url, method="POST", data=b"paths=config.json&expand=false")
    assert status == 200 and "lastCommit" not in json.loads(body)[0]


@pytest.fixture
def small_disk():
    d = tempfile.mkdtemp(prefix="olah-test-tmpfs-")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", d], capture_output=True, text=True)
    if r.returncode != 0:
        os.rmdir(d)
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    try:
        yield d
    finally:
        subprocess.run(["umount", "-l", d], check=False)
        os.rmdir(d)


def _fill(path):
    """Fills the file system (unbuffered writes, down to single pages)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (1 << 20, 4096):
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError:
                pass
    finally:
        os.close(fd)


def test_a_full_disk_never_fails_a_request_and_caching_resumes_without_restart(hub, make_mirror, small_disk):
    m = make_mirror(repos=os.path.join(small_disk, "repos"))
    try:
        cfg = hub.file("acme/tiny", "config.json")
        status, _, body = http(f"{m.url}/acme/tiny/resolve/main/config.json")
        assert status == 200 and sha256_bytes(body) == cfg["sha256"]
        _fill(os.path.join(small_disk, "filler"))
        # Uncached metadata and an uncached file: answered from the upstream.
        status, _, _ = http(f"{m.url}/api/models/acme/tiny/revision/main?expand=sha")
        assert status == 200
        status, _, _ = http(f"{m.url}/api/models/acme/tiny/tree/main?recursive=true")
        assert status == 200
        model = hub.file("acme/tiny", "model.bin")
        status, _, body = http(f"{m.url}/acme/tiny/resolve/main/model.bin", follow=True)
        assert status == 200 and sha256_bytes(body) == model["sha256"]
        status, _, body = http(f"{m.url}/acme/tiny/resolve/main/README.md", follow=True)
        assert status == 200
        # What is cached is still served.
        status, _, body = http(f"{m.url}/acme/tiny/resolve/main/config.json")
        assert status == 200 and sha256_bytes(body) == cfg["sha256"]
        os.remove(os.path.join(small_disk, "filler"))
        # Space is back: caching resumes (the database is reopened after its backoff).
        cached = False
        for _ in range(60):
            status, _, _ = http(f"{m.url}/api/models/acme/tiny/revision/main?expand=sha")
            assert status == 200
            hub.admin.reset()
            status, _, _ = http(f"{m.url}/api/models/acme/tiny/revision/main?expand=sha")
            assert status == 200
            if hub.admin.stats().requests() == 0:
                cached = True
                break
            time.sleep(0.5)
        assert cached, "API answers are not cached again after space was freed"
        status, _, body = http(f"{m.url}/acme/tiny/resolve/main/model.bin", follow=True)
        assert status == 200 and sha256_bytes(body) == model["sha256"]
        time.sleep(1)  # the fill commits its last blocks just after the bytes went out
        hub.admin.reset()
        status, _, body = http(f"{m.url}/acme/tiny/resolve/main/model.bin", follow=True)
        assert status == 200 and sha256_bytes(body) == model["sha256"]
        assert hub.admin.stats().requests() == 0, "the file is cached again"
    finally:
        m.stop()
