"""Offline mode keeps gated and private content protected: it is served only to a token the Hub
confirmed for that repo while online (remembered as a salted hash, never the token itself)."""

import os

import pytest

from conftest import http, mirror_only

pytestmark = mirror_only

DL = """
from huggingface_hub import hf_hub_download
emit(catch(lambda: sha(hf_hub_download({repo!r}, {path!r}, revision={rev!r}))))
"""


@pytest.mark.parametrize(
    "repo,path,owner,exc",
    [
        ("acme/gated", "weights.bin", "hf_granted", "GatedRepoError"),
        ("acme/private", "config.json", "hf_owner", None),
    ],
)
def test_offline_serves_non_public_content_only_to_confirmed_tokens(hub, make_mirror, client_env, tmp_path, repo, path, owner, exc):
    m = make_mirror()
    want = hub.file(repo, path)
    for rev in ("main", want["commit"]):
        out = client_env(DL.format(repo=repo, path=path, rev=rev), endpoint=m.url, token=owner, home=tmp_path / f"warm-{rev}").out
        assert out == {"ok": want["sha256"]}
    # Anonymous metadata of a gated repo is public; that must not make its files public.
    status, _, _ = http(f"{m.url}/api/models/{repo}")
    assert status == (200 if exc else 401)
    # The public file of another repo, fetched anonymously while online.
    pub = hub.file("acme/tiny", "config.json")
    out = client_env(DL.format(repo="acme/tiny", path="config.json", rev="main"), endpoint=m.url, home=tmp_path / "warm-pub").out
    assert out == {"ok": pub["sha256"]}
    m.restart(["--offline"])
    hub.admin.reset()
    for rev in ("main", want["commit"]):
        out = client_env(DL.format(repo=repo, path=path, rev=rev), endpoint=m.url, token=owner, home=tmp_path / f"off-owner-{rev}").out
        assert out == {"ok": want["sha256"]}, rev
        for tok in (None, "hf_other"):
            out = client_env(DL.format(repo=repo, path=path, rev=rev), endpoint=m.url, token=tok, home=tmp_path / f"off-{tok}-{rev}").out
            assert "ok" not in out, (tok, rev, out)
            if exc:
                assert out.get("err") == exc, (tok, rev, out)
    out = client_env(DL.format(repo="acme/tiny", path="config.json", rev="main"), endpoint=m.url, home=tmp_path / "off-pub").out
    assert out == {"ok": pub["sha256"]}
    assert hub.admin.stats().requests() == 0, "offline: no upstream request at all"
    m.stop()
    for root, _, names in os.walk(m.repos):
        for n in names:
            with open(os.path.join(root, n), "rb") as f:
                assert owner.encode() not in f.read(), n


def test_offline_misses_raise_the_offline_error_at_once(hub, make_mirror, client_env, tmp_path):
    import time

    m = make_mirror()
    # Only the first 100 bytes of model.bin are cached (one block).
    status, _, _ = http(f"{m.url}/acme/tiny/resolve/main/model.bin", headers={"Range": "bytes=0-99"})
    assert status == 206
    time.sleep(1)  # the fill writes its block just after the bytes went out
    m.restart(["--offline"])
    t0 = time.time()
    out = client_env(
        """
        from huggingface_hub import hf_hub_download
        emit({
            "uncached": catch(lambda: hf_hub_download("gpt2", "config.json")),
            "partial": catch(lambda: hf_hub_download("acme/tiny", "model.bin")),
        })
        """,
        endpoint=m.url,
        home=tmp_path / "c",
    ).out
    assert out["uncached"].get("err") == "LocalEntryNotFoundError", out
    assert out["partial"].get("err") in ("LocalEntryNotFoundError", "HfHubHTTPError"), out
    assert time.time() - t0 < 15, "no retry loop on offline misses"
    # A partially cached file is refused before any header, never a truncated 200.
    status, h, body = http(f"{m.url}/acme/tiny/resolve/main/model.bin")
    assert status == 404 and h["X-Error-Code"] == "OfflineNotCached"
    status, _, body = http(f"{m.url}/acme/tiny/resolve/main/model.bin", headers={"Range": "bytes=10-19"})
    assert status == 206 and len(body) == 10
