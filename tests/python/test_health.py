"""Liveness and readiness, as an orchestrator probes them: `/healthz` answers while the process
serves, `/readyz` while the cache can be used (503 `NotReady` with the reason otherwise), and
neither ever reaches the upstream."""

import shutil

from conftest import http, mirror_only

pytestmark = mirror_only


def test_health_and_readiness_never_ask_the_upstream_and_readiness_sees_a_lost_cache(
    make_mirror, hub_admin, tmp_path
):
    repos = tmp_path / "repos"
    m = make_mirror(repos=str(repos))
    before = hub_admin.stats().requests()
    for path in ("/healthz", "/health", "/readyz"):
        status, _, body = http(f"{m.url}{path}")
        assert (status, body) == (200, b"ok"), path
    status, _, _ = http(f"{m.url}/readyz", method="POST", data=b"")
    assert status == 405

    # The cache directory disappears under the running mirror (a lost mount).
    shutil.rmtree(repos)
    status, headers, body = http(f"{m.url}/readyz")
    assert status == 503, body
    assert headers["X-Error-Code"] == "NotReady"
    assert "cache directory" in headers["X-Error-Message"]
    status, _, body = http(f"{m.url}/healthz")
    assert (status, body) == (200, b"ok")
    assert hub_admin.stats().requests() == before, "a probe reached the upstream"
