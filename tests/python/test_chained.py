"""Chained mirrors (issue 12): an olah-rs mirror whose upstream is another olah-rs mirror
(`--hf-netloc central:port`, the other flags at their defaults). Plain, LFS and Xet downloads and
gated repos work through the chain, and a second edge client costs the central mirror nothing."""

import os
import re
import shutil
import subprocess
import time
import urllib.request

import pytest

from conftest import Mirror, Proc, _binary, free_port, mirror_only
from test_tls import mirror_args

pytestmark = mirror_only

DL = """
from huggingface_hub import hf_hub_download
emit(catch(lambda: sha(hf_hub_download({repo!r}, {path!r}, revision={rev!r}))))
"""

FILES = [
    ("acme/tiny", "config.json"),  # regular git file
    ("acme/big", "big.bin"),  # LFS file (plain HTTP upstream)
    ("acme/xet-big", "weights.bin"),  # Xet file
]


class _Central:
    """Stands in for the fake Hub when a mirror's upstream is another mirror: the hub netloc is
    the central mirror, the LFS host is olah's default (never contacted)."""

    def __init__(self, central):
        self.netlocs = (central.url.split("://", 1)[1], "cdn-lfs.huggingface.co")


def served_requests(m):
    """Requests the mirror answered on Hub routes (resolve, api, xet, cas), from its /metrics."""
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(f"{m.url}/metrics", timeout=10) as r:
        text = r.read().decode()
    total = 0
    for line in text.splitlines():
        if line.startswith("olah_http_requests_total{"):
            route = re.search(r'route="([a-z]+)"', line).group(1)
            if route in ("resolve", "api", "xet", "cas"):
                total += float(line.rsplit(" ", 1)[1])
    return total


@pytest.fixture
def chain(request, hub, make_mirror):
    central = make_mirror()
    edge = Mirror(_Central(central))
    yield central, edge
    if getattr(request.node, "olah_failed", False):
        print(f"---- edge log ----\n{edge.log_text()[-4000:]}")
    edge.cleanup()


@pytest.mark.parametrize("disable_xet", [False, True], ids=["xet-client", "plain-client"])
def test_edge_serves_plain_lfs_and_xet_files_and_second_client_costs_central_nothing(hub, chain, client_env, tmp_path, disable_xet):
    central, edge = chain
    for n, (repo, path) in enumerate(FILES):
        want = hub.file(repo, path)["sha256"]
        for rev in ("main", hub.commit(repo)):
            out = client_env(DL.format(repo=repo, path=path, rev=rev), endpoint=edge.url, home=tmp_path / f"c1-{n}-{rev[:6]}", disable_xet=disable_xet).out
            assert out == {"ok": want}, (repo, path, rev, out)
    before = served_requests(central)
    hub.admin.reset()
    for n, (repo, path) in enumerate(FILES):
        want = hub.file(repo, path)["sha256"]
        out = client_env(DL.format(repo=repo, path=path, rev=hub.commit(repo)), endpoint=edge.url, home=tmp_path / f"c2-{n}", disable_xet=disable_xet).out
        assert out == {"ok": want}, (repo, path, out)
    assert served_requests(central) == before, "the second edge client reached the central mirror"
    assert hub.admin.stats().requests() == 0


def test_gated_repo_through_the_chain_only_for_callers_the_hub_accepts(hub, chain, client_env, tmp_path):
    _, edge = chain
    for repo, path in (("acme/gated", "weights.bin"), ("acme/gated-xet", "model.safetensors")):
        want = hub.file(repo, path)["sha256"]
        for tok in (None, "hf_other"):
            out = client_env(DL.format(repo=repo, path=path, rev="main"), endpoint=edge.url, token=tok, home=tmp_path / f"no-{tok}-{repo[5:]}").out
            assert "ok" not in out, (repo, tok, out)
        out = client_env(DL.format(repo=repo, path=path, rev="main"), endpoint=edge.url, token="hf_granted", home=tmp_path / f"yes-{repo[5:]}").out
        assert out == {"ok": want}, (repo, out)
        # Cached on both mirrors now: still refused to a caller the Hub refuses.
        out = client_env(DL.format(repo=repo, path=path, rev="main"), endpoint=edge.url, token="hf_other", home=tmp_path / f"after-{repo[5:]}").out
        assert "ok" not in out, (repo, out)


@pytest.fixture
def ca_and_leaf(tmp_path):
    """(leaf key, leaf certificate for 127.0.0.1, CA certificate): an organisation's own CA, as
    rustls (webpki) refuses a self-signed CA certificate used as the server's own."""
    d = tmp_path / "pki"
    d.mkdir()
    run = lambda *a: subprocess.run(["openssl", *a], check=True, capture_output=True, cwd=d)
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=test ca")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "leaf.key", "-out", "leaf.csr", "-subj", "/CN=127.0.0.1")
    (d / "ext").write_text("basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
    run("x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "leaf.pem", "-days", "2", "-extfile", "ext")
    return d / "leaf.key", d / "leaf.pem", d / "ca.pem"


@pytest.mark.skipif(not shutil.which("openssl"), reason="openssl CLI needed to make a test certificate")
def test_edge_with_default_flags_reaches_a_tls_central_trusted_through_ssl_cert_file(hub, ca_and_leaf, client_env, tmp_path):
    """The edge gets only `--hf-netloc central:port` (scheme https and the LFS host at their
    defaults); the central's certificate is trusted through the standard SSL_CERT_FILE."""
    key, leaf, crt = ca_and_leaf
    cport, eport = free_port(), free_port()
    central = Proc(mirror_args(hub, tmp_path / "central", cport, key, leaf), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    elog = tmp_path / "edge.log"
    edge = None
    try:
        deadline = time.time() + 30
        while subprocess.run(["curl", "-sf", "--cacert", str(crt), f"https://127.0.0.1:{cport}/health"], capture_output=True).returncode != 0:
            assert time.time() < deadline, "https central not ready"
            time.sleep(0.1)
        with open(elog, "wb") as log:
            edge = Proc(
                [_binary("olah-cli"), "--host", "127.0.0.1", "--port", str(eport), "--hf-netloc", f"127.0.0.1:{cport}",
                 "--repos-path", str(tmp_path / "edge"), "--log-path", str(tmp_path / "edge-logs")],
                stdout=log, stderr=log, env={**os.environ, "SSL_CERT_FILE": str(crt), "NO_PROXY": "*", "no_proxy": "*"},
            )
        edge_url = f"http://127.0.0.1:{eport}"
        deadline = time.time() + 30
        while subprocess.run(["curl", "-sf", f"{edge_url}/health"], capture_output=True).returncode != 0:
            assert time.time() < deadline, "edge not ready"
            time.sleep(0.1)
        for n, (repo, path) in enumerate(FILES):
            want = hub.file(repo, path)["sha256"]
            out = client_env(DL.format(repo=repo, path=path, rev="main"), endpoint=edge_url, home=tmp_path / f"c{n}").out
            assert out == {"ok": want}, (repo, path, out, elog.read_text()[-3000:])
        # The edge refuses a central whose certificate it does not trust.
        edge.stop()
        with open(elog, "ab") as log:
            edge = Proc(
                [_binary("olah-cli"), "--host", "127.0.0.1", "--port", str(eport), "--hf-netloc", f"127.0.0.1:{cport}",
                 "--repos-path", str(tmp_path / "edge2"), "--log-path", str(tmp_path / "edge-logs")],
                stdout=log, stderr=log, env={**{k: v for k, v in os.environ.items() if k != "SSL_CERT_FILE"}, "NO_PROXY": "*", "no_proxy": "*"},
            )
        deadline = time.time() + 30
        while subprocess.run(["curl", "-sf", f"{edge_url}/health"], capture_output=True).returncode != 0:
            assert time.time() < deadline, "edge not ready"
            time.sleep(0.1)
        out = client_env(DL.format(repo="acme/tiny", path="config.json", rev="main"), endpoint=edge_url, home=tmp_path / "untrusted").out
        assert "ok" not in out, out
        assert "certificate" in elog.read_text(), "the log says why the upstream was unreachable"
    finally:
        if edge is not None:
            edge.stop()
        central.stop()
