"""Hardening of the store through the mirror: concurrent first downloads of one file (one load,
one upstream fetch, exact bytes for all), content that fails verification (never served as a
complete body; its metadata is dropped so the mirror recovers once the upstream is honest) and a
damaged metadata database (recovered at start-up from the blobs that verify)."""

import concurrent.futures
import glob
import hashlib
import http.client
import os
import time
import urllib.request

import pytest

from conftest import http, mirror_only

pytestmark = mirror_only

TINY = ("acme/tiny", "model.bin")  # LFS, 3 MiB
GPT2 = ("gpt2", "pytorch_model.bin")  # LFS, 200 kB
SMALL_BLOCKS = """
[basic]
cache-block-size = "64K"
"""

_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def url_of(m, f):
    return f"{m.url}/{f[0]}/resolve/main/{f[1]}"


def get(url, timeout=60):
    """("ok", status, body) for a body read to its clean end, ("broken", status, bytes read)
    when the connection broke before it, ("status", code, body) for an HTTP error."""
    import urllib.error

    try:
        with _opener.open(url, timeout=timeout) as r:
            got = b""
            try:
                while True:
                    piece = r.read(256 * 1024)
                    if not piece:
                        break
                    got += piece
            except (http.client.IncompleteRead, ConnectionError, OSError):
                return ("broken", r.status, len(got))
            length = r.headers.get("Content-Length")
            if length is not None and int(length) != len(got):
                # read(n) returns b"" at a closed connection instead of raising.
                return ("broken", r.status, len(got))
            return ("ok", r.status, got)
    except urllib.error.HTTPError as e:
        return ("status", e.code, e.read())
    except (http.client.HTTPException, ConnectionError) as e:
        return ("broken", None, repr(e))


def test_many_concurrent_first_gets_of_one_file_fetch_it_once(hub, make_mirror):
    m = make_mirror("--xet", "plain", config=SMALL_BLOCKS)
    want = hub.file(*TINY)
    hub.admin.reset()
    n = 150
    with concurrent.futures.ThreadPoolExecutor(max_workers=n) as pool:
        results = list(pool.map(lambda _: get(url_of(m, TINY)), range(n)))
    bad = [(k, s, len(b) if isinstance(b, bytes) else b) for k, s, b in results
           if k != "ok" or s != 200 or hashlib.sha256(b).hexdigest() != want["sha256"]]
    assert not bad, f"{len(bad)} of {n} clients got no exact file: {bad[:5]}"
    st = hub.admin.stats()
    cdn_gets = st.entries(host="cdn", method="GET")
    assert st.bytes("cdn") == want["size"] and len(cdn_gets) == 1, (st.bytes("cdn"), st.summary())
    # Cached and verified: the next download does not touch the CDN.
    hub.admin.reset()
    k, s, body = get(url_of(m, TINY))
    assert (k, s) == ("ok", 200) and hashlib.sha256(body).hexdigest() == want["sha256"]
    assert hub.admin.stats().bytes("cdn") == 0


@pytest.mark.parametrize("lie", ["short", "long", "hash"])
def test_content_that_fails_verification_is_never_served_complete_and_is_asked_again(hub, make_mirror, lie):
    """One lying resolve HEAD (a wrong X-Linked-Size, or a wrong X-Linked-Etag): the download
    that follows must not end cleanly (the end of the content is held back until its hash
    matched, or the size check fails first), and the metadata of that answer is dropped: the
    next download asks the Hub again, gets the honest answer, is exact and stays cached."""
    m = make_mirror("--xet", "plain")
    f = hub.file(*TINY)
    lies = {
        "short": {"X-Linked-Size": str(f["size"] - 1000)},
        "long": {"X-Linked-Size": str(f["size"] + 1000)},
        "hash": {"X-Linked-Etag": '"' + "ab" * 32 + '"'},
    }
    hub.admin.rewrites(
        {"method": "HEAD", "path": "^/acme/tiny/resolve/main/model\\.bin$", "set_headers": lies[lie], "times": 1}
    )
    kind, status, got = get(url_of(m, TINY))
    assert kind != "ok", f"a complete-looking {status} answer of {len(got)} bytes for a lying HEAD"
    kind, status, body = get(url_of(m, TINY))
    assert (kind, status) == ("ok", 200), (kind, status, body if kind != "ok" else len(body))
    assert hashlib.sha256(body).hexdigest() == f["sha256"], "honest again: the exact file"
    hub.admin.reset()
    kind, status, body = get(url_of(m, TINY))
    assert (kind, status) == ("ok", 200) and hashlib.sha256(body).hexdigest() == f["sha256"]
    assert hub.admin.stats().bytes("cdn") == 0, "cached under the honest metadata"


def test_a_truncated_metadata_database_is_recovered_at_restart(hub, make_mirror):
    m = make_mirror("--xet", "plain")
    for f in (TINY, GPT2):
        status, _, body = http(url_of(m, f), follow=True)
        assert status == 200 and hashlib.sha256(body).hexdigest() == hub.file(*f)["sha256"]
    time.sleep(0.2)  # the last block writes and the verification settle
    m.stop()
    db = os.path.join(m.repos, "olah-meta.redb")
    with open(db, "r+b") as f:
        f.truncate(os.path.getsize(db) // 2)
    m.start()  # used to exit 101 with a redb assertion
    broken = glob.glob(db + ".broken-*")
    assert len(broken) == 1, os.listdir(m.repos)
    log = m.log_text()
    assert "damaged" in log and "cache recovered" in log, log[-3000:]
    # The blobs that verified are served from disk: only metadata is asked upstream again.
    hub.admin.reset()
    for f in (TINY, GPT2):
        status, _, body = http(url_of(m, f), follow=True)
        assert status == 200 and hashlib.sha256(body).hexdigest() == hub.file(*f)["sha256"]
    assert hub.admin.stats().bytes("cdn") == 0
    # A restart with the fresh database is an ordinary one.
    m.restart()
    assert len(glob.glob(db + ".broken-*")) == 1
