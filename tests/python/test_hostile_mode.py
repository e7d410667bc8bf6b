"""The fake Hub's hostile mode (rewrite rules), checked straight against the fake: the security
tests rely on it doing exactly what a rule says and nothing more."""

import json

from conftest import http


def test_rules_filter_by_path_method_and_caller_and_expire(hub):
    url = f"{hub.hub}/api/models/acme/tiny"
    rule = {
        "path": r"^/api/models/acme/tiny$",
        "method": "GET",
        "anonymous": True,
        "times": 2,
        "status": 401,
        "set_headers": {"x-error-code": "GatedRepo"},
    }
    with hub.admin.rewritten(rule):
        s, h, _ = http(url)
        assert (s, h["x-error-code"]) == (401, "GatedRepo")
        # A caller with a token and another method are not matched.
        s, _, _ = http(url, headers={"Authorization": "Bearer hf_other"})
        assert s == 200
        s, _, _ = http(url, method="HEAD")
        assert s == 200
        assert http(url)[0] == 401
        # Used up after two matches.
        assert http(url)[0] == 200
        assert hub.admin.rewrites(rule)[0]["times"] == 2
    assert http(url)[0] == 200


def test_json_merge_reaches_nested_objects_and_array_entries(hub):
    with hub.admin.rewritten(
        {"path": r"^/api/models/acme/tiny$", "json_merge": {"cardData": {"planted": {"xetHash": "ab" * 32}}}},
        {"path": r"/tree/", "json_merge": {"xetHash": "cd" * 32}},
    ):
        s, _, body = http(f"{hub.hub}/api/models/acme/tiny")
        assert s == 200
        info = json.loads(body)
        assert info["cardData"]["planted"]["xetHash"] == "ab" * 32
        assert info["id"] == "acme/tiny"
        s, _, body = http(f"{hub.hub}/api/models/acme/tiny/tree/main")
        entries = json.loads(body)
        assert s == 200 and entries and all(e["xetHash"] == "cd" * 32 for e in entries)


def test_body_replacements_and_big_arrays_are_well_formed(hub):
    with hub.admin.rewritten({"path": r"/tree/", "big_json_array_bytes": 2_000_000}):
        s, _, body = http(f"{hub.hub}/api/models/acme/tiny/tree/main")
        assert s == 200 and len(body) >= 2_000_000
        assert len(json.loads(body)) > 10_000
    with hub.admin.rewritten({"path": r"^/api/models/acme/tiny$", "body": "not json", "status": 503}):
        s, h, body = http(f"{hub.hub}/api/models/acme/tiny")
        assert (s, body, h["content-length"]) == (503, b"not json", "8")
    # A bad regex is refused and leaves no rule behind.
    s, _, _ = http(
        f"{hub.hub}/__admin/rewrites",
        method="POST",
        data=json.dumps({"rules": [{"path": "("}]}).encode(),
        headers={"Content-Type": "application/json"},
    )
    assert s == 400
    assert hub.admin.rewrites() == []
