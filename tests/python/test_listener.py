"""The mirror's listener and the URLs it hands out: slowloris and idle sockets are closed, the
number of open connections is capped with a clean refusal, and the request's Host is never echoed
into Xet or pagination URLs unless it is a configured name of the mirror."""

import http.client as http_client
import json
import re
import socket
import time

import pytest

from conftest import http, mirror_only

pytestmark = mirror_only

XET_REPO = "acme/xet-big"
XET_FILE = "weights.bin"


def _connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x00" * 8)
    return s


def _closed_by_peer(s, wait):
    """True when the peer closed `s` (EOF or reset) within `wait` seconds; anything it sent is
    read and dropped."""
    s.settimeout(wait)
    deadline = time.time() + wait
    try:
        while time.time() < deadline:
            s.settimeout(max(0.05, deadline - time.time()))
            if not s.recv(65536):
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False
    return False


def _read_all(s, wait=5):
    s.settimeout(wait)
    out = b""
    try:
        while True:
            b = s.recv(65536)
            if not b:
                break
            out += b
    except (socket.timeout, ConnectionResetError):
        pass
    return out


def test_slowloris_and_idle_sockets_are_closed_while_service_goes_on(make_mirror):
    """200 sockets that send a partial request head (some trickling a byte now and then), or
    nothing at all, are closed by the header timeout; a keep-alive connection with no request is
    closed by the idle timeout; normal requests are served meanwhile."""
    mirror = make_mirror("--header-timeout", "2", "--idle-timeout", "3")
    port = mirror.port
    socks = []
    try:
        for i in range(200):
            s = _connect(port)
            if i % 4:
                s.sendall(b"GET /api/models/acme/tiny HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            socks.append(s)
        # Normal service while the slow sockets are open.
        status, _, body = http(f"{mirror.url}/health", timeout=10)
        assert (status, body) == (200, b"ok")
        # Trickle one byte on a quarter of them for longer than the timeout.
        for _ in range(6):
            for s in socks[1::4]:
                try:
                    s.send(b"a")
                except OSError:
                    pass
            time.sleep(0.5)
        # Every socket is closed within a bounded time (timeout 2 s, plus slack).
        deadline = time.time() + 15
        still_open = [s for s in socks if not _closed_by_peer(s, max(0.01, deadline - time.time()))]
        assert not still_open, f"{len(still_open)} of {len(socks)} slow sockets still open"
        # An idle keep-alive connection after a request is closed too.
        c = http_client.HTTPConnection("127.0.0.1", port, timeout=10)
        c.request("GET", "/health")
        r = c.getresponse()
        assert (r.status, r.read()) == (200, b"ok")
        assert _closed_by_peer(c.sock, 15), "idle keep-alive connection still open"
        c.close()
        status, _, _ = http(f"{mirror.url}/health", timeout=10)
        assert status == 200
    finally:
        for s in socks:
            s.close()


def test_connections_over_the_cap_are_refused_cleanly_and_service_recovers(make_mirror):
    cap = 20
    mirror = make_mirror("--max-connections", str(cap), "--header-timeout", "60", "--idle-timeout", "60")
    port = mirror.port
    idle, extra = [], []
    try:
        # Hold every slot with a silent socket (one refused while an earlier connection, such
        # as the readiness probe, still held its slot is replaced).
        for _ in range(5):
            idle += [_connect(port) for _ in range(cap - len(idle))]
            time.sleep(0.5)
            refused = [s for s in idle if _closed_by_peer(s, 0.05)]
            extra += refused
            idle = [s for s in idle if s not in refused]
            if len(idle) == cap:
                break
        assert len(idle) == cap
        # Every further connection gets a Hub-shaped 503 with Retry-After and is closed.
        for _ in range(10):
            s = _connect(port)
            extra.append(s)
            s.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            answer = _read_all(s)
            head, _, body = answer.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 503"), answer[:200]
            headers = head.decode().lower()
            assert "retry-after:" in headers and "x-error-code: toomanyconnections" in headers, head
            assert "error" in json.loads(body)
        status, h, _ = http(f"{mirror.url}/health", timeout=10)
        assert status == 503 and h.get("Retry-After"), status
        # The mirror is still alive and serves again once the idle sockets go away.
        for s in idle:
            s.close()
        idle = []
        deadline = time.time() + 10
        while True:
            status, _, body = http(f"{mirror.url}/health", timeout=10)
            if status == 200 or time.time() > deadline:
                break
            time.sleep(0.2)
        assert (status, body) == (200, b"ok")
        assert mirror.proc.alive()
    finally:
        for s in idle + extra:
            s.close()


def _urls_in_link(value):
    return re.findall(r"<([^>]*)>", value or "")


@pytest.mark.parametrize("listed", [False, True])
def test_request_host_is_not_echoed_into_handed_out_urls(hub, make_mirror, listed):
    """A request naming another Host gets casUrl, X-Xet-Cas-Url and Xet/pagination Links that
    name the mirror-netloc; a Host listed in --mirror-name is echoed."""
    name = "mirror.lan:8090"
    mirror = make_mirror(*(["--mirror-name", name] if listed else []))
    host = name if listed else "evil.example"
    want = f"http://{name}" if listed else mirror.url
    h = {"Host": host}

    status, hd, body = http(f"{mirror.url}/api/models/{XET_REPO}/xet-read-token/main", headers=h)
    assert status == 200, body
    assert json.loads(body)["casUrl"] == f"{want}/cas"
    assert hd["X-Xet-Cas-Url"] == f"{want}/cas"

    status, hd, _ = http(f"{mirror.url}/{XET_REPO}/resolve/main/{XET_FILE}", method="HEAD", headers=h)
    assert status == 200, status
    links = _urls_in_link(hd.get("Link"))
    assert len(links) == 2 and all(u.startswith(f"{want}/") for u in links), hd.get("Link")

    status, hd, _ = http(f"{mirror.url}/api/datasets/acme/data/tree/main?recursive=true&expand=false", headers=h)
    assert status == 200
    links = _urls_in_link(hd.get("Link"))
    assert links and all(u.startswith(f"{want}/") for u in links), hd.get("Link")
    for v in (hd.get("Link"), body):
        assert "evil.example" not in str(v)
