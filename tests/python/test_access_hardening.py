"""Access hardening against a Hub that changes its mind or answers oddly (hostile mode of the
fake Hub rewrites chosen answers):

* a repo that stops being public stays closed to anonymous callers during an outage and offline;
* an access probe answered with a redirect grants nothing unless the redirect leads, on an
  allowed host, to a 2xx.
"""

import time

from conftest import http, mirror_only, sha256_bytes

pytestmark = mirror_only

GATED_NOW = {
    "anonymous": True,
    "path": "acme/tiny",
    "status": 401,
    "set_headers": {"x-error-code": "GatedRepo", "x-error-message": "Access to model acme/tiny is restricted."},
}


def _get(m, path, token=None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    status, _, body = http(f"{m.url}/acme/tiny/resolve/main/{path}", headers=headers, follow=True)
    return status, body


def test_a_repo_that_became_gated_stays_closed_during_an_outage_and_offline(hub, make_mirror):
    m = make_mirror()
    want = hub.file("acme/tiny", "model.bin")
    status, body = _get(m, "model.bin")
    assert status == 200 and sha256_bytes(body) == want["sha256"]
    time.sleep(1)  # the fill commits its blocks just after the bytes went out
    with hub.admin.rewritten(GATED_NOW):
        # The mirror sees the Hub refuse an anonymous caller (a file it has not cached yet).
        status, _ = _get(m, "config.json")
        assert status == 401
        # A caller the Hub confirms still gets the cached file (the probe follows the CDN hop).
        status, body = _get(m, "model.bin", token="hf_granted")
        assert status == 200 and sha256_bytes(body) == want["sha256"]
        with hub.admin.faulted(fail_5xx=100000):
            status, _ = _get(m, "model.bin")
            assert status != 200, "an outage must not reopen a repo that stopped being public"
            status, body = _get(m, "model.bin", token="hf_granted")
            assert status == 200 and sha256_bytes(body) == want["sha256"]
    m.restart(["--offline"])
    status, _ = _get(m, "model.bin")
    assert status in (401, 403), status
    status, body = _get(m, "model.bin", token="hf_granted")
    assert status == 200 and sha256_bytes(body) == want["sha256"]


def test_a_refused_metadata_call_closes_the_repo_offline(hub, make_mirror):
    m = make_mirror()
    status, _ = _get(m, "config.json")
    assert status == 200
    with hub.admin.rewritten({**GATED_NOW, "path": "/api/models/acme/tiny", "set_headers": {"x-error-code": "RepoNotFound"}}):
        status, _, _ = http(f"{m.url}/api/models/acme/tiny/revision/v1.0")
        assert status == 401
    m.restart(["--offline"])
    status, _ = _get(m, "config.json")
    assert status in (401, 403), status


def test_a_probe_redirect_grants_only_when_it_leads_to_a_2xx_on_an_allowed_host(hub, make_mirror):
    m = make_mirror()
    # The owner caches the gated file; hf_other has no grant on the Hub.
    status, _, body = http(
        f"{m.url}/acme/gated/resolve/main/weights.bin", headers={"Authorization": "Bearer hf_granted"}, follow=True
    )
    assert status == 200 and sha256_bytes(body) == hub.file("acme/gated", "weights.bin")["sha256"]
    probe = {"method": "HEAD", "path": "^/acme/gated/resolve/", "anonymous": False}
    for rule in (
        {**probe, "status": 302, "set_headers": {"location": "http://203.0.113.7/weights.bin"}},
        {**probe, "status": 302, "remove_headers": ["location"]},
    ):
        with hub.admin.rewritten(rule):
            status, _, body = http(
                f"{m.url}/acme/gated/resolve/main/weights.bin",
                headers={"Authorization": "Bearer hf_other"},
                follow=True,
                timeout=30,
            )
        assert status != 200, (rule, status)
    # The confirmed caller is unaffected.
    status, _, _ = http(
        f"{m.url}/acme/gated/resolve/main/weights.bin", headers={"Authorization": "Bearer hf_granted"}, follow=True
    )
    assert status == 200
