"""Prometheus metrics (issue 11): `/metrics` scraped and parsed before and after real-client
downloads, and the counters checked to have moved by the right amounts — a cold download is a
miss whose bytes came from the upstream once, a warm one a hit served from the cache, a Xet
download moves the xorb kind, a small size limit moves the evictions — with no repository name,
path or token in any label."""

import hashlib
import re
import time

import pytest

from conftest import http, mirror_only

pytestmark = mirror_only

TOKEN = "hf_granted"
LFS = ("acme/tiny", "model.bin")  # 3 MiB, LFS
XET = ("acme/xet-text", "weights.f32")  # 1 MiB, Xet
TELEMETRY_OFF = {"HF_XET_TELEMETRY_ENABLED": "false"}

DL = """
from huggingface_hub import hf_hub_download
emit(sha(hf_hub_download({repo!r}, {path!r})))
"""

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\S+)?$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


class Scrape:
    """One parsed exposition: samples as (name, {label: value}, value)."""

    def __init__(self, text):
        self.text = text
        self.samples = []
        for line in text.splitlines():
            if not line or line.startswith("#"):
                continue
            m = _SAMPLE.match(line)
            assert m, f"not a sample line: {line!r}"
            name, labels, value = m.groups()
            self.samples.append((name, dict(_LABEL.findall(labels or "")), float(value)))

    def get(self, name, **labels):
        """The sum of `name`'s samples whose labels include `labels`."""
        want = {k: str(v) for k, v in labels.items()}
        return sum(v for n, ls, v in self.samples if n == name and all(ls.get(k) == x for k, x in want.items()))

    def has(self, name):
        return any(n == name for n, _, _ in self.samples)


def scrape(m):
    status, headers, body = http(f"{m.url}/metrics")
    assert status == 200, status
    assert headers["Content-Type"].startswith(("application/openmetrics-text", "text/plain"))
    return Scrape(body.decode())


def eventually(m, check, timeout=10.0):
    """Scrapes until `check(scrape)` is true (the server finishes its bookkeeping of a response
    right after the client has the last byte); returns the last scrape either way."""
    deadline = time.time() + timeout
    while True:
        s = scrape(m)
        if check(s) or time.time() > deadline:
            return s
        time.sleep(0.05)


def download(client_env, m, tmp_path, f, name, env=None):
    return client_env(DL.format(repo=f[0], path=f[1]), endpoint=m.url, token=TOKEN, home=tmp_path / name, env=env)


def assert_no_private_labels(s, words):
    for name, labels, _ in s.samples:
        for k, v in labels.items():
            for w in words:
                assert w not in v, f"{name}{{{k}={v!r}}} contains {w!r}"


def test_cold_then_warm_download_moves_the_counters_by_the_file_size(hub, make_mirror, client_env, tmp_path):
    m = make_mirror()
    want = hub.file(*LFS)
    size = want["size"]
    s0 = scrape(m)
    for family in (
        "olah_cache_size_bytes",
        "olah_cache_limit_bytes",
        "olah_fills_in_flight",
        "olah_evictions_total",
        "olah_evicted_bytes_total",
        "olah_upstream_first_byte_seconds_count",
    ):
        assert s0.has(family), f"{family} missing:\n{s0.text}"
    assert s0.get("olah_cache_limit_bytes") == 0, "no limit configured"

    # Cold: a miss; the file's bytes came from the upstream once and reached the client once.
    assert download(client_env, m, tmp_path, LFS, "cold").out == want["sha256"]
    served = lambda s: s.get("olah_served_bytes_total")  # noqa: E731
    s1 = eventually(m, lambda s: served(s) - served(s0) >= size and s.get("olah_fills_in_flight") == 0)
    d = lambda name, a, b, **ls: b.get(name, **ls) - a.get(name, **ls)  # noqa: E731
    assert d("olah_http_requests_total", s0, s1, route="resolve") >= 2  # HEAD + GET
    assert d("olah_http_requests_total", s0, s1, route="resolve", method="GET", status=200) >= 1
    assert d("olah_cache_lookups_total", s0, s1, outcome="miss") >= 1
    fetched = d("olah_upstream_bytes_total", s0, s1, kind="file")
    assert size <= fetched <= 1.05 * size, (fetched, size)
    assert d("olah_served_bytes_total", s0, s1) == size
    assert d("olah_served_bytes_total", s0, s1, source="upstream") == size
    assert d("olah_upstream_requests_total", s0, s1, kind="file") >= 1
    assert s1.get("olah_cache_size_bytes") >= size
    assert s1.get("olah_fills_in_flight") == 0, "idle: no fill in flight"

    # Warm, with a fresh client cache: a hit served from the cache, nothing fetched.
    assert download(client_env, m, tmp_path, LFS, "warm").out == want["sha256"]
    s2 = eventually(m, lambda s: served(s) - served(s1) >= size and d("olah_cache_lookups_total", s1, s, outcome="hit") >= 2)
    assert d("olah_cache_lookups_total", s1, s2, outcome="hit") >= 1
    assert d("olah_cache_lookups_total", s1, s2, outcome="miss") == 0
    assert d("olah_served_bytes_total", s1, s2, source="cache") == size
    assert d("olah_served_bytes_total", s1, s2, source="upstream") == 0
    assert d("olah_upstream_bytes_total", s1, s2) == 0
    assert d("olah_upstream_requests_total", s1, s2, kind="file") == 0
    assert d("olah_http_requests_total", s1, s2, route="resolve") >= 2

    # Histograms have counts; other routes have their class.
    assert s2.get("olah_http_request_duration_seconds_count", route="resolve") >= 4
    assert s2.get("olah_http_request_duration_seconds_bucket", route="resolve", le="+Inf") >= 4
    assert s2.get("olah_upstream_first_byte_seconds_count") >= 1
    http(f"{m.url}/api/models/{LFS[0]}")
    http(f"{m.url}/no/such/route/at/all")
    s3 = scrape(m)
    assert d("olah_http_requests_total", s2, s3, route="api") == 1
    assert d("olah_http_requests_total", s2, s3, route="other") == 1
    assert d("olah_http_requests_total", s2, s3, route="admin", method="GET", status=200) >= 1  # the scrape
    assert d("olah_cache_lookups_total", s2, s3) == 1, "one lookup per API answer"

    assert_no_private_labels(s3, ["acme", "tiny", "model.bin", TOKEN, "/"])


def test_a_xet_download_moves_the_xorb_kind(hub, make_mirror, client_env, tmp_path):
    m = make_mirror()
    want = hub.file(*XET)
    s0 = scrape(m)
    assert download(client_env, m, tmp_path, XET, "xet", env=TELEMETRY_OFF).out == want["sha256"]
    s1 = eventually(m, lambda s: s.get("olah_fills_in_flight") == 0)
    d = lambda name, **ls: s1.get(name, **ls) - s0.get(name, **ls)  # noqa: E731
    assert d("olah_http_requests_total", route="xet") >= 1
    assert d("olah_http_requests_total", route="cas") >= 2  # reconstruction + xorb range(s)
    assert d("olah_upstream_bytes_total", kind="xorb") > 0
    assert d("olah_upstream_requests_total", kind="xorb") >= 1
    # The xorb ranges the client got were filled from the upstream for it.
    assert d("olah_served_bytes_total", source="upstream") > 0
    assert_no_private_labels(s1, ["acme", "xet-text", "weights", TOKEN, want["sha256"]])


def test_a_size_limit_moves_the_eviction_counters(hub, make_mirror):
    limit = 8 << 20
    m = make_mirror("--cache-size-limit", "8M", "--cache-clean-strategy", "FIFO", "--xet", "plain")
    s0 = scrape(m)
    assert s0.get("olah_cache_limit_bytes") == limit
    files = [("acme/tiny", "model.bin"), ("acme/tiny", "model.safetensors"), ("gpt2", "pytorch_model.bin")]
    total = 0
    for f in files:
        status, _, body = http(f"{m.url}/{f[0]}/resolve/main/{f[1]}", follow=True)
        assert status == 200 and hashlib.sha256(body).hexdigest() == hub.file(*f)["sha256"]
        total += len(body)
    assert total > limit
    s1 = eventually(m, lambda s: s.get("olah_evictions_total") >= 1 and s.get("olah_cache_size_bytes") <= limit)
    assert s1.get("olah_evictions_total") - s0.get("olah_evictions_total") >= 1
    # FIFO: the first file (3 MiB) went.
    assert s1.get("olah_evicted_bytes_total") - s0.get("olah_evicted_bytes_total") >= hub.file(*files[0])["size"]
    assert 0 < s1.get("olah_cache_size_bytes") <= limit
    assert s1.get("olah_fills_in_flight") == 0


@pytest.mark.parametrize("path", ["/metrics"])
def test_metrics_need_no_credentials_and_never_reach_the_upstream(hub, make_mirror, path):
    m = make_mirror()
    hub.admin.reset()
    status, headers, body = http(f"{m.url}{path}")
    assert status == 200
    assert b"# TYPE olah_http_requests counter" in body
    assert hub.admin.stats().requests() == 0
