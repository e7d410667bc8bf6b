"""What only a mirror does: cache hits without upstream traffic, single-flight, resume, no leaks."""

import concurrent.futures
import hashlib
import json
import os
import shutil
import subprocess
import urllib.request

from conftest import mirror_only, sha256_file

pytestmark = mirror_only


def get(url, headers=None):
    req = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(req, timeout=120) as r:
        return r.status, r.headers, r.read()


def test_second_download_makes_zero_upstream_requests(hub, make_mirror, run_client, tmp_path):
    m = make_mirror()
    code = """
    from huggingface_hub import snapshot_download
    p = snapshot_download("acme/tiny", revision={rev!r})
    print(json.dumps(sorted(os.listdir(p))))
    """
    commit = hub.file("models/acme/tiny@main:config.json")["commit"]
    rc, first, err = run_client(m.url, code.format(rev=commit), home=tmp_path / "a")
    assert rc == 0, err
    hub.reset()
    rc, second, err = run_client(m.url, code.format(rev=commit), home=tmp_path / "b")
    assert rc == 0, err
    assert second == first
    s = hub.stats()
    assert (s["hub_requests"], s["cdn_requests"], s["hub_bytes"], s["cdn_bytes"]) == (0, 0, 0, 0), s["log"]


def test_branch_hits_within_ttl_make_zero_upstream_requests(hub, make_mirror):
    m = make_mirror()
    url = f"{m.url}/acme/tiny/resolve/main/model.bin"
    body1 = get(url)[2]
    hub.reset()
    body2 = get(url)[2]
    assert body1 == body2
    assert hashlib.sha256(body2).hexdigest() == hub.file("models/acme/tiny@main:model.bin")["sha256"]
    assert hub.stats()["hub_requests"] == 0 and hub.stats()["cdn_requests"] == 0


def test_eight_concurrent_cold_clients_cost_one_upstream_transfer(hub, make_mirror):
    m = make_mirror()
    want = hub.file("models/acme/big@main:big.bin")
    hub.reset()
    hub.faults(bandwidth_bytes_per_sec=200 << 20, scope="cdn")
    try:
        with concurrent.futures.ThreadPoolExecutor(8) as ex:
            digests = list(ex.map(lambda _: hashlib.sha256(get(f"{m.url}/acme/big/resolve/main/big.bin")[2]).hexdigest(), range(8)))
    finally:
        hub.faults()
    assert digests == [want["sha256"]] * 8
    cdn = hub.stats()["cdn_bytes"]
    assert want["size"] <= cdn <= want["size"] * 1.02, (cdn, want["size"])


def test_range_requests(hub, make_mirror):
    m = make_mirror()
    url = f"{m.url}/acme/big/resolve/main/big.bin"
    hub.reset()
    status, h, body = get(url, {"Range": "bytes=100-199"})
    assert status == 206 and len(body) == 100
    assert h["Content-Range"] == f"bytes 100-199/{64 << 20}"
    assert hub.stats()["cdn_bytes"] <= 8 << 20, "a small range pulls at most a few blocks"
    direct = get(f"{hub.hub}/acme/big/resolve/main/big.bin", {"Range": "bytes=100-199"})[2]
    assert body == direct
    status, h, body = get(url, {"Range": "bytes=-10"})
    assert status == 206 and len(body) == 10
    status, h, body = get(url, {"Range": f"bytes={(64 << 20) - 5}-"})
    assert status == 206 and len(body) == 5
    try:
        get(url, {"Range": f"bytes={64 << 20}-"})
        raise AssertionError("expected 416")
    except urllib.error.HTTPError as e:
        assert e.code == 416
        assert e.headers["Content-Range"] == f"bytes */{64 << 20}"


def test_resume_after_upstream_cut(hub, make_mirror, run_client, tmp_path):
    m = make_mirror()
    want = hub.file("models/acme/big@main:big.bin")
    hub.faults(cut_after_bytes=10 << 20, cut_count=1, scope="cdn")
    try:
        rc, out, err = run_client(
            m.url,
            """
            from huggingface_hub import hf_hub_download
            p = hf_hub_download("acme/big", "big.bin")
            print(json.dumps({"sha": hashlib.sha256(open(p, "rb").read()).hexdigest()}))
            """,
        )
    finally:
        hub.faults()
    assert rc == 0, err
    assert out["sha"] == want["sha256"]


def test_curl_follows_and_gets_exact_bytes(hub, mirror, tmp_path):
    if not shutil.which("curl"):
        import pytest

        pytest.skip("curl not installed")
    out = tmp_path / "model.bin"
    subprocess.run(["curl", "-sfL", "-o", str(out), f"{mirror.url}/acme/tiny/resolve/main/model.bin"], check=True)
    assert sha256_file(out) == hub.file("models/acme/tiny@main:model.bin")["sha256"]


def test_metadata_headers_match_the_hub_and_nothing_points_upstream(hub, mirror, run_client):
    up_hosts = [hub.hub.split("//")[1], hub.cdn.split("//")[1]]
    rc, out, err = run_client(
        mirror.url,
        """
        from huggingface_hub import get_hf_file_metadata, hf_hub_url
        r = {}
        for f in ["config.json", "model.bin", "model.safetensors"]:
            m = get_hf_file_metadata(hf_hub_url("acme/tiny", f))
            r[f] = {"commit": m.commit_hash, "etag": m.etag, "size": m.size, "xet": m.xet_file_data is not None}
        print(json.dumps(r))
        """,
    )
    assert rc == 0, err
    for f, meta in out.items():
        want = hub.file(f"models/acme/tiny@main:{f}")
        assert meta["commit"] == want["commit"]
        assert meta["size"] == want["size"]
        assert meta["etag"] == (want["sha256"] if want["lfs"] else want["oid"])
        assert meta["xet"] is False, "Xet info is stripped until the mirror serves Xet"
    for path in [
        "/acme/tiny/resolve/main/model.safetensors",
        "/api/models/acme/tiny/tree/main?recursive=true",
        "/api/datasets/acme/data/tree/main?recursive=true",
        "/api/models/acme/tiny/revision/main?blobs=true",
    ]:
        _, h, body = get(mirror.url + path)
        blob = json.dumps(dict(h)) + body.decode(errors="replace")
        for host in up_hosts:
            assert host not in blob, (path, host)
        assert "xetHash" not in blob and "x-xet" not in blob.lower()
        if "data/tree" in path:
            assert h["Link"].startswith(f"<{mirror.url}/api/datasets/acme/data/tree/")


def test_kill_9_mid_fill_then_restart_serves_exact_bytes(hub, make_mirror):
    m = make_mirror()
    want = hub.file("models/acme/big@main:big.bin")
    hub.faults(bandwidth_bytes_per_sec=20 << 20, scope="cdn")
    try:
        req = urllib.request.urlopen(f"{m.url}/acme/big/resolve/main/big.bin", timeout=60)
        req.read(5 << 20)
        m.proc.kill9()
        req.close()
    finally:
        hub.faults()
    m.log.close()
    m.start()
    body = get(f"{m.url}/acme/big/resolve/main/big.bin")[2]
    assert hashlib.sha256(body).hexdigest() == want["sha256"]
    hub.reset()
    body = get(f"{m.url}/acme/big/resolve/main/big.bin")[2]
    assert hashlib.sha256(body).hexdigest() == want["sha256"]
    assert hub.stats()["cdn_bytes"] == 0


def test_flipped_byte_on_disk_is_never_served(hub, make_mirror):
    m = make_mirror()
    want = hub.file("models/acme/tiny@main:model.bin")
    url = f"{m.url}/acme/tiny/resolve/main/model.bin"
    get(url)
    m.stop()
    blob = os.path.join(m.repos, "blobs", "sha256", want["sha256"][:2], want["sha256"])
    with open(blob, "r+b") as f:
        f.seek(1234)
        b = f.read(1)
        f.seek(1234)
        f.write(bytes([b[0] ^ 0xFF]))
    m.start()
    hub.reset()
    body = get(url)[2]
    assert hashlib.sha256(body).hexdigest() == want["sha256"]
    assert 0 < hub.stats()["cdn_bytes"] <= 2 << 20, "only the corrupt block is fetched again"


def test_cached_content_is_served_while_the_upstream_fails(hub, make_mirror, run_client, tmp_path):
    # TTL 0: every branch request revalidates, so this exercises stale-if-error.
    m = make_mirror("--metadata-cache-ttl", "0")
    code = """
    from huggingface_hub import hf_hub_download
    p = hf_hub_download("acme/tiny", "model.bin")
    print(json.dumps({"sha": hashlib.sha256(open(p, "rb").read()).hexdigest()}))
    """
    rc, out, err = run_client(m.url, code, home=tmp_path / "a")
    assert rc == 0, err
    get(f"{m.url}/api/models/acme/tiny/revision/main")  # warm the API cache too
    hub.faults(fail_5xx=1000)
    try:
        rc, out2, err = run_client(m.url, code, home=tmp_path / "b")
        status, _, body = get(f"{m.url}/api/models/acme/tiny/revision/main")
    finally:
        hub.faults()
    assert rc == 0, err
    assert out2 == out == {"sha": hub.file("models/acme/tiny@main:model.bin")["sha256"]}
    assert status == 200 and json.loads(body)["sha"] == hub.file("models/acme/tiny@main:model.bin")["commit"]
