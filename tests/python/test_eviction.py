"""cache-size-limit + cache-clean-strategy: prompt eviction in strategy order, never under a
reader, and a consistent cache afterwards (an evicted file is fetched again, exact)."""

import hashlib
import os
import time

import pytest

from conftest import http, mirror_only

pytestmark = mirror_only

A = ("acme/tiny", "model.bin")  # 3 MiB
B = ("acme/tiny", "model.safetensors")  # 5 MiB
C = ("gpt2", "pytorch_model.bin")  # 200 kB


def blob_path(m, hub, f):
    sha = hub.file(*f)["sha256"]
    return os.path.join(m.repos, "blobs", "sha256", sha[:2], sha)


def dir_bytes(root):
    """Bytes of cached data under a mirror's repos path (blob and xorb files)."""
    total = 0
    for sub in ("blobs", "xorbs"):
        for d, _, files in os.walk(os.path.join(root, sub)):
            total += sum(os.stat(os.path.join(d, f)).st_blocks * 512 for f in files)
    return total


def fetch(m, hub, f):
    status, _, body = http(f"{m.url}/{f[0]}/resolve/main/{f[1]}", follow=True)
    assert status == 200 and hashlib.sha256(body).hexdigest() == hub.file(*f)["sha256"]
    time.sleep(0.05)


@pytest.mark.parametrize(
    "strategy,order,victim",
    [
        ("LRU", [B, A, B, C], A),  # A is the least recently read
        ("FIFO", [A, B, C], A),  # A came first
        ("LARGE_FIRST", [A, B, C], B),  # B is the largest
    ],
)
def test_eviction_strategy_picks_its_victim_promptly(hub, make_mirror, strategy, order, victim):
    # Plain mode: every file is one blob (in serve mode a Xet file fetched over plain HTTP also
    # leaves its xorbs, see the xorb test below).
    m = make_mirror("--cache-size-limit", "8M", "--cache-clean-strategy", strategy, "--xet", "plain")
    for f in order:
        fetch(m, hub, f)
    deadline = time.time() + 10
    while os.path.exists(blob_path(m, hub, victim)) and time.time() < deadline:
        time.sleep(0.05)
    present = {f: os.path.exists(blob_path(m, hub, f)) for f in (A, B, C)}
    assert present == {f: f != victim for f in (A, B, C)}, present
    # Consistent afterwards: the victim is fetched again, exact, and cached again.
    hub.admin.reset()
    fetch(m, hub, victim)
    assert hub.admin.stats().bytes("cdn") == hub.file(*victim)["size"]


def test_xorbs_count_toward_the_limit_and_are_evicted(hub, make_mirror, client_env, tmp_path):
    """Xorb ranges fetched by hf_xet share the size limit with blobs: the least recently read
    xorb goes first, and the file is fetched again exactly afterwards."""
    m = make_mirror("--cache-size-limit", "8M", "--cache-clean-strategy", "LRU")
    code = """
from huggingface_hub import hf_hub_download
emit(sha(hf_hub_download("acme/tiny", "model.safetensors")))
"""
    env = {"HF_XET_TELEMETRY_ENABLED": "false"}
    want = hub.file(*B)["sha256"]
    assert client_env(code, endpoint=m.url, home=tmp_path / "a", env=env).out == want
    xorbs = os.path.join(m.repos, "xorbs")
    assert dir_bytes(m.repos) >= 5 << 20, "the xorb ranges are cached"
    assert any(files for d, _, files in os.walk(xorbs) if d != os.path.join(xorbs, "tmp"))
    fetch(m, hub, A)  # 3 MiB blob: blobs + xorbs now exceed 8M
    fetch(m, hub, C)
    deadline = time.time() + 10
    while dir_bytes(m.repos) > 8 << 20 and time.time() < deadline:
        time.sleep(0.05)
    assert dir_bytes(m.repos) <= 8 << 20
    assert os.path.exists(blob_path(m, hub, A)) and os.path.exists(blob_path(m, hub, C))
    assert not any(files for d, _, files in os.walk(xorbs) if d != os.path.join(xorbs, "tmp")), "the xorbs went"
    hub.admin.reset()
    assert client_env(code, endpoint=m.url, home=tmp_path / "b", env=env).out == want
    size = hub.file(*B)["size"]
    assert size <= hub.admin.stats().raw["xorb_bytes"] <= size * 1.01


def test_no_eviction_without_a_limit(hub, make_mirror):
    m = make_mirror("--xet", "plain")
    for f in (A, B, C):
        fetch(m, hub, f)
    time.sleep(0.5)
    assert all(os.path.exists(blob_path(m, hub, f)) for f in (A, B, C))


BIG = ("acme/big", "big.bin")  # 64 MiB: LARGE_FIRST's first choice


def slow_read(url, got, started, pause=0.02):
    """Reads `url` in 512 KiB pieces with a pause between them (~25 MB/s at 0.02 s): the read
    spans the evictions the test provokes. Leaves the sha256 in got["sha"]."""
    import urllib.request

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=120) as r:
        h = hashlib.sha256()
        while True:
            piece = r.read(512 * 1024)
            if not piece:
                break
            h.update(piece)
            started.set()
            time.sleep(pause)
        got["sha"] = h.hexdigest()


def test_a_file_being_read_is_not_evicted_and_eviction_waits_for_it(hub, make_mirror):
    """The open largest file is LARGE_FIRST's victim: no smaller file goes in its place while it
    is read; once its reader is done, it goes."""
    import threading

    m = make_mirror("--cache-size-limit", "66M", "--cache-clean-strategy", "LARGE_FIRST")
    fetch(m, hub, BIG)
    got = {}
    started = threading.Event()
    t = threading.Thread(target=slow_read, args=(f"{m.url}/{BIG[0]}/resolve/main/{BIG[1]}", got, started))
    t.start()
    assert started.wait(10)
    fetch(m, hub, A)  # now over the limit
    time.sleep(1)  # the evictor ran (it wakes at once when the limit is crossed)
    assert t.is_alive(), "the reader is still reading"
    assert os.path.exists(blob_path(m, hub, BIG)), "the blob under a reader stays"
    assert os.path.exists(blob_path(m, hub, A)), "no other blob goes in its place"
    t.join(60)
    assert got.get("sha") == hub.file(*BIG)["sha256"], "the reader was not cut"
    deadline = time.time() + 10
    while os.path.exists(blob_path(m, hub, BIG)) and time.time() < deadline:
        time.sleep(0.05)
    assert not os.path.exists(blob_path(m, hub, BIG)), "released, the largest went"
    assert os.path.exists(blob_path(m, hub, A))


def test_large_first_lets_the_filling_largest_file_finish_then_evicts_it(hub, make_mirror):
    """A (3 MiB) and B (5 MiB) are cached; C (64 MiB) is still being filled and read when the
    total crosses the limit. LARGE_FIRST's order holds: A and B stay, C goes once its reader is
    done (the cache exceeds the limit meanwhile)."""
    import threading

    m = make_mirror("--cache-size-limit", "66M", "--cache-clean-strategy", "LARGE_FIRST", "--xet", "plain")
    fetch(m, hub, A)
    fetch(m, hub, B)
    got = {}
    started = threading.Event()
    url = f"{m.url}/{BIG[0]}/resolve/main/{BIG[1]}"
    t = threading.Thread(target=slow_read, args=(url, got, started, 0.04))
    t.start()
    assert started.wait(10)
    size = hub.file(*BIG)["size"]
    # The fill runs ahead of the slow reader: wait until all of C is on disk (over the limit).
    deadline = time.time() + 30
    while time.time() < deadline:
        p = blob_path(m, hub, BIG)
        if os.path.exists(p) and os.stat(p).st_blocks * 512 >= size:
            break
        time.sleep(0.05)
    time.sleep(1)  # the evictor ran
    assert t.is_alive(), "C's reader is still reading"
    present = {f: os.path.exists(blob_path(m, hub, f)) for f in (A, B, BIG)}
    assert present == {A: True, B: True, BIG: True}, present
    t.join(90)
    assert got.get("sha") == hub.file(*BIG)["sha256"], "C's reader was not cut"
    deadline = time.time() + 10
    while os.path.exists(blob_path(m, hub, BIG)) and time.time() < deadline:
        time.sleep(0.05)
    present = {f: os.path.exists(blob_path(m, hub, f)) for f in (A, B, BIG)}
    assert present == {A: True, B: True, BIG: False}, present
