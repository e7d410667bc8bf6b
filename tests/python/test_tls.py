"""TLS: --ssl-key/--ssl-cert serve https with rustls; a client trusting the certificate downloads
through it; bad key material stops start-up with a clear message."""

import os
import shutil
import subprocess
import time

import pytest

from conftest import Proc, _binary, free_port, mirror_only

pytestmark = [
    mirror_only,
    pytest.mark.skipif(not shutil.which("openssl"), reason="openssl CLI needed to make a test certificate"),
]


@pytest.fixture
def cert(tmp_path):
    key, crt = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(crt),
         "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True,
    )
    return key, crt


def mirror_args(hub, tmp_path, port, key, crt):
    return [
        _binary("olah-cli"), "--host", "127.0.0.1", "--port", str(port),
        "--ssl-key", str(key), "--ssl-cert", str(crt),
        "--hf-scheme", "http", "--hf-netloc", hub.hub.split("//")[1], "--hf-lfs-netloc", hub.cdn.split("//")[1],
        "--repos-path", str(tmp_path / "repos"), "--log-path", str(tmp_path / "logs"),
    ]


def test_https_mirror_serves_a_client_that_trusts_its_certificate(hub, client_env, cert, tmp_path):
    key, crt = cert
    port = free_port()
    p = Proc(mirror_args(hub, tmp_path, port, key, crt), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 30
        while time.time() < deadline:
            r = subprocess.run(["curl", "-sf", "--cacert", str(crt), f"https://127.0.0.1:{port}/health"], capture_output=True)
            if r.returncode == 0:
                break
            time.sleep(0.1)
        else:
            raise AssertionError("https mirror not ready")
        # Plain http on the TLS port gets nothing useful.
        r = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", f"http://127.0.0.1:{port}/health"], capture_output=True, text=True)
        assert r.stdout != "200"
        res = client_env(
            """
            from huggingface_hub import hf_hub_download
            emit({"config": sha(hf_hub_download("acme/tiny", "config.json")), "bin": sha(hf_hub_download("acme/tiny", "model.bin"))})
            """,
            endpoint=f"https://127.0.0.1:{port}",
            env={"SSL_CERT_FILE": str(crt)},
        )
        assert res.out == {
            "config": hub.file("acme/tiny", "config.json")["sha256"],
            "bin": hub.file("acme/tiny", "model.bin")["sha256"],
        }
    finally:
        p.stop()


@pytest.mark.parametrize("broken", ["missing", "garbage", "mismatch"])
def test_bad_key_material_stops_startup_with_a_clear_message(hub, cert, tmp_path, broken):
    key, crt = cert
    if broken == "missing":
        key = tmp_path / "nope.pem"
    elif broken == "garbage":
        key.write_text("not a key\n")
    else:
        other = tmp_path / "other"
        other.mkdir()
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(other / "k.pem"), "-out", str(other / "c.pem"),
             "-days", "2", "-subj", "/CN=x"],
            check=True, capture_output=True,
        )
        key = other / "k.pem"
    r = subprocess.run(mirror_args(hub, tmp_path, free_port(), key, crt), capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    assert "ssl-key" in r.stderr, r.stderr
