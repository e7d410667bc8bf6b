"""A hostile or broken upstream (the fake Hub's hostile mode): redirects that look relative but
name another host never carry the caller's token there nor get cached as the Hub's answer, and
an oversized JSON answer is refused cleanly with bounded memory and nothing cached."""

import json
import os

import pytest

from conftest import http, mirror_only

pytestmark = mirror_only

TOKEN = {"Authorization": "Bearer hf_owner"}

# Locations that URL parsers read as `//host/…` (another host), though they start with one '/'.
SNEAKY = [
    "/\\{cdn}/stolen",
    "/\t/{cdn}/stolen",
    "//{cdn}/stolen",
    "\\\\{cdn}/stolen",
]


def _cdn_requests(hub):
    return [r for r in hub.admin.stats().log if r.get("host") == "cdn"]


@pytest.mark.parametrize("location", SNEAKY)
def test_redirect_to_another_host_carries_no_token_and_is_not_cached(hub, make_mirror, location):
    mirror = make_mirror()
    cdn = hub.netlocs[1]
    loc = location.format(cdn=cdn)
    api = f"{mirror.url}/api/models/acme/tiny"
    hub.admin.reset()
    hub.admin.rewrites(
        # The Hub answers the API and resolve routes with the sneaky redirect...
        {"host": "hub", "path": r"^/api/models/acme/tiny$", "status": 307, "set_headers": {"location": loc}},
        {"host": "hub", "path": r"^/acme/tiny/resolve/", "status": 307, "set_headers": {"location": loc}},
        # ... and the other host would answer with a plausible body if it were asked.
        {
            "host": "cdn",
            "path": r"/stolen",
            "status": 200,
            "body": json.dumps({"id": "evil/planted", "sha": "0" * 40, "siblings": []}),
            "set_headers": {"content-type": "application/json"},
        },
    )
    status, _, body = http(api, headers=TOKEN)
    assert status != 200 and b"evil/planted" not in body, (status, body[:200])
    for method in ("HEAD", "GET"):
        status, _, body = http(f"{mirror.url}/acme/tiny/resolve/main/config.json", method=method, headers=TOKEN)
        assert status != 200 and b"evil/planted" not in body, (method, status)
    leaked = [r for r in _cdn_requests(hub) if r.get("auth")]
    assert not leaked, leaked
    assert not [r for r in _cdn_requests(hub) if "stolen" in r.get("uri", "")], "the other host was contacted"
    # Nothing was cached as the Hub's answer: once the Hub behaves, its own answer is served.
    hub.admin.rewrites()
    status, _, body = http(api, headers=TOKEN)
    assert status == 200 and json.loads(body)["id"] == "acme/tiny", body[:200]


def _vm_hwm_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM")


def _dir_bytes(path):
    total = 0
    for d, _, files in os.walk(path):
        for f in files:
            try:
                total += os.path.getsize(os.path.join(d, f))
            except OSError:
                pass
    return total


@pytest.mark.parametrize("announce_length", [False, True])
def test_oversized_api_answer_is_refused_with_bounded_memory_and_nothing_cached(hub, make_mirror, announce_length):
    mirror = make_mirror()
    tree = f"{mirror.url}/api/models/acme/tiny/tree/main?recursive=true"
    assert http(f"{mirror.url}/api/models/acme/tiny")[0] == 200  # the database exists
    db_before = _dir_bytes(mirror.repos)
    size = 96_000_000
    rule = {"host": "hub", "path": r"/api/models/acme/tiny/tree/", "big_json_array_bytes": size}
    if announce_length:
        # Announced up front (the streamed array has no length of its own).
        rule["set_headers"] = {"content-length": str(size)}
    with hub.admin.rewritten(rule):
        for _ in range(2):
            status, h, body = http(tree)
            assert status == 502, (status, len(body))
            assert h.get("X-Error-Code") == "ProxyInvalidData"
            assert "larger than" in json.loads(body)["error"]
    assert _vm_hwm_kib(mirror.proc.pid) < 300 * 1024, "mirror memory grew with the answer"
    assert _dir_bytes(mirror.repos) - db_before < size // 4, "the answer was cached"
    # Once the Hub answers normally, the tree is served.
    status, _, body = http(tree)
    assert status == 200 and isinstance(json.loads(body), list)
