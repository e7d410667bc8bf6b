"""Xet against a hostile repo owner or an unexpected upstream (hardening issue, findings 1 and 14).

* A Xet file hash planted in a public repo's owner-written metadata (its card) must not make the
  mirror serve a gated file's cached reconstruction to callers of that public repo: membership
  of a file in a repo comes only from the Hub's own per-file fields (or the upstream CAS).
* An upstream whose token route names a CAS outside the allow list gets its Xet files served
  over plain HTTP: clients finish quickly with exact bytes, and the log says once which host to
  add with `--upstream-host`.
"""

import json
import re

import pytest

from conftest import http, mirror_only
from test_xet import DL, SNAP, TELEMETRY_OFF, xet_requests_to_mirror

GATED = "acme/gated-xet"
GFILE = "model.safetensors"
PUBLIC = "acme/tiny"


def _recon(m, repo, file_hash, token=None, rng=None):
    """Asks the mirror's CAS for `file_hash` with a mirror Xet token issued for `repo` (as
    `token`, or anonymous): (token route status, reconstruction status, body)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    status, h, _ = http(f"{m.url}/api/models/{repo}/xet-read-token/main", headers=headers)
    if status != 200:
        return status, None, b""
    h2 = {"Authorization": f"Bearer {h['X-Xet-Access-Token']}"}
    if rng:
        h2["Range"] = rng
    s, _, body = http(f"{m.url}/cas/v2/reconstructions/{file_hash}", headers=h2)
    return status, s, body


@mirror_only
def test_a_gated_xet_hash_planted_in_a_public_card_opens_nothing(hub, hub_admin, make_mirror, client_env, tmp_path):
    m = make_mirror()
    gated = hub.file(GATED, GFILE)
    planted = {"xetHash": gated["xetHash"]}
    # The owner of the public repo writes the gated file's (public) Xet hash into the card and
    # other free-form places; nested in tree entries too.
    with hub_admin.rewritten(
        {
            "path": rf"^/api/models/{PUBLIC}(/revision/[^/?]+)?(\?|$)",
            "json_merge": {"cardData": {**planted, "files": [planted]}, "config": planted, **planted},
        },
        {"path": rf"^/api/models/{PUBLIC}/tree/", "json_merge": {"lastCommit": planted}},
    ):
        for path in ("", "/revision/main", "/tree/main?recursive=true"):
            status, _, body = http(f"{m.url}/api/models/{PUBLIC}{path}")
            assert status == 200 and gated["xetHash"] in body.decode(), (path, status)
    # Someone with access pulls the gated file over Xet through the mirror: its reconstruction
    # and xorb ranges are cached now.
    code = f"""
from huggingface_hub import hf_hub_download
emit(sha(hf_hub_download({GATED!r}, {GFILE!r})))
"""
    res = client_env(code, endpoint=m.url, token="hf_granted", home=tmp_path / "granted", env=TELEMETRY_OFF, timeout=300)
    assert res.out == gated["sha256"]
    assert xet_requests_to_mirror(m)[1] > 0, "the gated file went over Xet"
    # The Range hf_xet sent is the key of the cached reconstruction.
    whole = f"bytes=0-{gated['size'] - 1}"

    def check(when):
        # Sanity: the granted caller does get the cached reconstruction of the gated file.
        st, s, body = _recon(m, GATED, gated["xetHash"], token="hf_granted", rng=whole)
        assert (st, s) == (200, 200), (when, st, s, body[:300])
        xorbs = list(json.loads(body)["xorbs"])
        # Anonymous, with a mirror token of the public repo: neither the reconstruction nor any
        # xorb URL of the gated file.
        for rng in (whole, None):
            st, s, body = _recon(m, PUBLIC, gated["xetHash"], rng=rng)
            assert st == 200, (when, st)
            assert s in (401, 403, 404), (when, rng, s, body[:300])
            text = body.decode(errors="replace")
            assert "/cas/xorb/" not in text and not any(x in text for x in xorbs), (when, rng, text[:300])

    check("online")
    m.restart(["--offline"])
    check("offline")
    m.restart([])
    check("after restart")


FOREIGN_CAS = "http://127.0.0.2:1/cas"
LOG_LINE = "--upstream-host 127.0.0.2:1"


@mirror_only
@pytest.mark.parametrize("first", ["hf_hub_download", "snapshot_download"])
def test_an_upstream_cas_outside_the_allow_list_means_plain_http(hub, hub_admin, make_mirror, client_env, tmp_path, first):
    """The upstream's token route names a CAS host the mirror may not contact: resolve and tree
    answers stop advertising Xet, so hf_xet-enabled clients download over plain HTTP (the mirror
    fills from the Hub's resolve URL); one log line names the host and the flag."""
    m = make_mirror()
    hub_admin.rewrites({
        "path": r"/xet-read-token/",
        "json_merge": {"casUrl": FOREIGN_CAS},
        "set_headers": {"x-xet-cas-url": FOREIGN_CAS},
    })
    tiny = hub.file(PUBLIC, "model.safetensors")
    big = hub.file("acme/xet-big", "weights.bin", "main")
    dl = lambda home: client_env(DL.format(repo=PUBLIC, path="model.safetensors", rev="main"), endpoint=m.url, home=tmp_path / home, env=TELEMETRY_OFF, timeout=90)
    snap = lambda home: client_env(SNAP.format(repo="acme/xet-big", rev="main"), endpoint=m.url, home=tmp_path / home, env=TELEMETRY_OFF, timeout=90)
    hub_admin.reset()
    # A cold mirror (nothing known about the upstream's CAS yet), through the resolve HEAD or the
    # tree listing first; then the other path, and each once more from the cache.
    order = [dl, snap] if first == "hf_hub_download" else [snap, dl]
    for i, step in enumerate(order + order):
        out = step(f"c{i}").out
        assert out == (tiny["sha256"] if step is dl else {"weights.bin": big["sha256"]}), (i, out)
    # No client ever reached the mirror's Xet routes; the mirror never called the foreign CAS
    # (nor the fake's own); the files came from the CDN's plain LFS path.
    assert xet_requests_to_mirror(m) == (0, 0, 0)
    s = hub_admin.stats()
    assert not [r for r in s.log if r.get("uri", "").startswith(("/cas/", "/xorb/"))], s.summary()
    assert s.entries(host="cdn", contains="/lfs/"), s.summary()
    # Raw: no Xet in resolve headers or listings.
    st, h, _ = http(f"{m.url}/{PUBLIC}/resolve/main/model.safetensors", method="HEAD")
    assert st in (200, 302) and "X-Xet-Hash" not in h and "xet-" not in (h.get("Link") or ""), dict(h)
    st, _, body = http(f"{m.url}/api/models/acme/xet-big/tree/main")
    assert st == 200 and "xetHash" not in body.decode()
    # The mirror's token route is off too (not retryable), rather than a 502.
    assert http(f"{m.url}/api/models/{PUBLIC}/xet-read-token/main")[0] == 404
    log = m.log_text()
    assert log.count(LOG_LINE) == 1, re.findall(r".*upstream-host.*", log)
    # The upstream's CAS becomes allowed again (the rule is gone): nothing sticks beyond the next
    # verdict, which only a due check would fetch; Xet clients still get exact bytes meanwhile.
    hub_admin.rewrites()
    assert dl("after").out == tiny["sha256"]
