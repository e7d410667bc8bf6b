"""Hub-shaped errors: the real client raises the right exception through the mirror."""

import pytest

from conftest import mirror_only

DL = """
from huggingface_hub import hf_hub_download
try:
    p = hf_hub_download({repo!r}, {path!r}, revision={rev!r})
    print(json.dumps({{"ok": hashlib.sha256(open(p, "rb").read()).hexdigest()}}))
except Exception as e:
    print(json.dumps({{"err": type(e).__name__, "mro": [c.__name__ for c in type(e).__mro__]}}))
"""


def download(run_client, endpoint, repo, path, rev="main", token=None, home=None):
    rc, out, err = run_client(endpoint, DL.format(repo=repo, path=path, rev=rev), token=token, home=home)
    assert rc == 0, err
    return out


@pytest.mark.parametrize(
    "repo,path,rev,exc",
    [
        ("acme/nope", "config.json", "main", "RepositoryNotFoundError"),
        ("acme/tiny", "config.json", "no-such-branch", "RevisionNotFoundError"),
        ("acme/tiny", "no-such-file.json", "main", "EntryNotFoundError"),
        ("acme/private", "config.json", "main", "RepositoryNotFoundError"),
        ("acme/gated", "config.json", "main", "GatedRepoError"),
    ],
)
def test_error_types(endpoint, run_client, repo, path, rev, exc):
    out = download(run_client, endpoint, repo, path, rev)
    assert exc in out.get("mro", []), out


def test_gated_with_tokens(hub, endpoint, run_client, tmp_path):
    want = hub.file("models/acme/gated@main:weights.bin")["sha256"]
    ok = download(run_client, endpoint, "acme/gated", "weights.bin", token="hf_granted", home=tmp_path / "a")
    assert ok == {"ok": want}
    # A separate client cache: the client would otherwise fall back to its own cached copy.
    out = download(run_client, endpoint, "acme/gated", "weights.bin", token="hf_other", home=tmp_path / "b")
    assert "GatedRepoError" in out["mro"], out


def test_private_with_owner_token(hub, endpoint, run_client):
    want = hub.file("models/acme/private@main:config.json")["sha256"]
    assert download(run_client, endpoint, "acme/private", "config.json", token="hf_owner") == {"ok": want}


@mirror_only
def test_gated_file_cached_for_one_user_is_refused_to_others(hub, make_mirror, run_client, tmp_path):
    m = make_mirror()
    want = hub.file("models/acme/gated@main:weights.bin")["sha256"]
    assert download(run_client, m.url, "acme/gated", "weights.bin", token="hf_granted", home=tmp_path / "a") == {"ok": want}
    for tok, home in [(None, "b"), ("hf_other", "c")]:
        out = download(run_client, m.url, "acme/gated", "weights.bin", token=tok, home=tmp_path / home)
        assert "GatedRepoError" in out["mro"], (tok, out)
    # Also by commit sha (the cache-hit path) and over raw HTTP.
    import urllib.error
    import urllib.request

    commit = hub.file("models/acme/gated@main:weights.bin")["commit"]
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(f"{m.url}/acme/gated/resolve/{commit}/weights.bin")
    assert e.value.code in (401, 403)
    assert e.value.headers["X-Error-Code"] == "GatedRepo"


@mirror_only
def test_upstream_outage_is_a_gateway_error_not_not_found(hub, make_mirror):
    import urllib.error
    import urllib.request

    m = make_mirror()
    hub.faults(fail_5xx=50, scope="hub")
    try:
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(f"{m.url}/acme/tiny/resolve/main/README.md")
        assert e.value.code in (502, 503, 504)
    finally:
        hub.faults()


@mirror_only
def test_rate_limit_is_relayed(hub, make_mirror):
    import urllib.error
    import urllib.request

    m = make_mirror()
    hub.faults(fail_429=1, scope="hub")
    try:
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(f"{m.url}/api/models/acme/tiny")
        assert e.value.code == 429
        assert e.value.headers["Retry-After"] == "1"
        assert "RateLimit" in e.value.headers
    finally:
        hub.faults()
