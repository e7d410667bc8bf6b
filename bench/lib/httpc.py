"""Clients: curl for bulk transfers, a minimal keep-alive HTTP/1.1 client for latency.

The latency client writes a pre-built request on a raw socket and reads exactly one response
(Content-Length, chunked, or no body for HEAD/204/304), so its own overhead is a few tens of
microseconds; timings are taken around send + complete response.
"""

from __future__ import annotations

import math
import socket
import statistics
import subprocess
import time
from urllib.parse import urlsplit

CURL_FMT = "%{http_code} %{time_starttransfer} %{time_total} %{size_download} %{num_redirects}"


def parse_head(head: bytes) -> tuple[int, dict]:
    """Status and lower-cased headers of a raw HTTP/1.1 response head."""
    lines = head.decode("latin-1").split("\r\n")
    hdrs = {}
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    return int(lines[0].split()[1]), hdrs


def curl_args(url, rng=None, max_time=600, out="/dev/null"):
    a = ["curl", "-sS", "-L", "--max-time", str(int(max_time)), "-o", out, "-w", CURL_FMT]
    if rng is not None:
        a += ["-r", f"{rng[0]}-{rng[1]}"]
    return a + [url]


def parse_curl(out: str) -> dict:
    code, ttfb, total, size, redirects = out.split()
    return {
        "status": int(code),
        "ttfb_s": float(ttfb),
        "total_s": float(total),
        "bytes": int(size),
        "redirects": int(redirects),
    }


def curl_get(url, rng=None, max_time=600, out="/dev/null") -> dict:
    t0 = time.monotonic()
    p = subprocess.run(curl_args(url, rng, max_time, out), capture_output=True, text=True, timeout=max_time + 30)
    r = parse_curl(p.stdout) if p.stdout.strip() else {"status": 0, "ttfb_s": 0, "total_s": 0, "bytes": 0, "redirects": 0}
    r["wall_s"] = time.monotonic() - t0
    if p.returncode != 0:
        r["error"] = p.stderr.strip()[-300:]
    return r


def curl_parallel(url, n, max_time=600) -> tuple[list[dict], float]:
    """Starts `n` curl GETs at once; returns their results and the wall time until the last ended."""
    t0 = time.monotonic()
    ps = [
        subprocess.Popen(curl_args(url, None, max_time), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(n)
    ]
    res = []
    for p in ps:
        try:
            out, err = p.communicate(timeout=max_time + 30)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
        r = parse_curl(out) if out.strip() else {"status": 0, "ttfb_s": 0, "total_s": 0, "bytes": 0, "redirects": 0}
        if p.returncode != 0:
            r["error"] = err.strip()[-300:]
        res.append(r)
    return res, time.monotonic() - t0


class RawHTTP:
    """One keep-alive HTTP/1.1 connection to a base URL (http only)."""

    def __init__(self, base: str, timeout: float = 30.0):
        u = urlsplit(base)
        self.host, self.port = u.hostname, u.port or 80
        self.timeout = timeout
        self.sock = None

    def _connect(self):
        self.sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def close(self):
        if self.sock:
            self.sock.close()
            self.sock = None

    def _fill(self):
        d = self.sock.recv(65536)
        if not d:
            raise ConnectionError("connection closed mid-response")
        self.buf += d

    def _read_exact(self, n):
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _read_line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def request(self, method: str, path: str) -> tuple[int, dict, int]:
        """Sends one request; returns (status, lower-cased headers, body length)."""
        if self.sock is None:
            self._connect()
        req = f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nUser-Agent: olah-bench\r\nAccept: */*\r\n\r\n"
        self.sock.sendall(req.encode())
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        status, hdrs = parse_head(head)
        blen = 0
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            pass
        elif "chunked" in hdrs.get("transfer-encoding", "").lower():
            while True:
                size = int(self._read_line().split(b";")[0], 16)
                if size == 0:
                    while self._read_line():  # trailers up to the empty line
                        pass
                    break
                self._read_exact(size + 2)
                blen += size
        elif "content-length" in hdrs:
            blen = int(hdrs["content-length"])
            self._read_exact(blen)
        else:  # body until close
            try:
                while True:
                    self._fill()
            except ConnectionError:
                pass
            blen = len(self.buf)
            self.buf = b""
            self.close()
        if hdrs.get("connection", "").lower() == "close":
            self.close()
        return status, hdrs, blen


def pct(xs, p):
    """Nearest-rank percentile of a non-empty list."""
    s = sorted(xs)
    k = max(0, min(len(s) - 1, math.ceil(p / 100.0 * len(s)) - 1))
    return s[k]


def summarize_ms(samples_s: list[float]) -> dict:
    ms = [x * 1000 for x in samples_s]
    return {
        "n": len(ms),
        "p50_ms": pct(ms, 50),
        "p99_ms": pct(ms, 99),
        "mean_ms": statistics.fmean(ms),
        "max_ms": max(ms),
    }


def timed_requests(base, method, path, max_n, max_seconds, warmup=5, expect=(200, 302)) -> dict:
    """Keep-alive loop: `warmup` untimed requests, then up to `max_n` timed ones within `max_seconds`."""
    c = RawHTTP(base)
    try:
        st = None
        for _ in range(warmup):
            st, _, _ = c.request(method, path)
        lat = []
        deadline = time.monotonic() + max_seconds
        statuses = set()
        while len(lat) < max_n and (time.monotonic() < deadline or len(lat) < 5):
            t0 = time.perf_counter()
            st, _, _ = c.request(method, path)
            lat.append(time.perf_counter() - t0)
            statuses.add(st)
        r = summarize_ms(lat)
        r["status"] = sorted(statuses)
        r["ok"] = all(s in expect for s in statuses)
        return r
    finally:
        c.close()


def one_request(base, method, path) -> tuple[float, int]:
    """A single request on a new connection (connect included): (seconds, status)."""
    t0 = time.perf_counter()
    c = RawHTTP(base)
    try:
        st, _, _ = c.request(method, path)
    finally:
        c.close()
    return time.perf_counter() - t0, st


def stream_get(url: str, timeout: float = 60.0, first_byte_only: bool = False, max_redirects: int = 5) -> dict:
    """GET `url` following redirects, discarding the body; times the response headers AND the
    first body byte (curl's time_starttransfer is the headers only). With `first_byte_only` the
    connection is dropped after the first body byte."""
    from urllib.parse import urljoin

    t0 = time.perf_counter()
    res = {"status": 0, "bytes": 0, "redirects": 0}
    for _ in range(max_redirects + 1):
        u = urlsplit(url)
        path = (u.path or "/") + (f"?{u.query}" if u.query else "")
        s = socket.create_connection((u.hostname, u.port or 80), timeout=timeout)
        try:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.sendall(
                f"GET {path} HTTP/1.1\r\nHost: {u.netloc}\r\nUser-Agent: olah-bench\r\nAccept: */*\r\n"
                "Connection: close\r\n\r\n".encode()
            )
            buf = b""
            while b"\r\n\r\n" not in buf:
                d = s.recv(65536)
                if not d:
                    raise ConnectionError("closed before the response headers")
                buf += d
            t_head = time.perf_counter()
            head, body = buf.split(b"\r\n\r\n", 1)
            status, hdrs = parse_head(head)
            if 300 <= status < 400 and "location" in hdrs:
                url = urljoin(url, hdrs["location"])
                res["redirects"] += 1
                continue
            res["status"] = status
            res["ttfb_head_s"] = t_head - t0
            chunked = "chunked" in hdrs.get("transfer-encoding", "").lower()
            want = None if chunked else int(hdrs.get("content-length", -1))
            got = len(body)  # raw bytes after the headers (chunk framing included when chunked)
            mv = memoryview(bytearray(1 << 20))
            if got == 0:
                n = s.recv_into(mv)
                got += n
            res["ttfb_body_s"] = time.perf_counter() - t0
            if not first_byte_only:
                while want is None or want < 0 or got < want:
                    n = s.recv_into(mv)
                    if n == 0:
                        break
                    got += n
            res["bytes"] = got
            res["total_s"] = time.perf_counter() - t0
            return res
        finally:
            s.close()
    raise RuntimeError(f"too many redirects for {url}")


def stream_parallel(url: str, n: int, timeout: float) -> tuple[list[dict], float]:
    """`n` threads start stream_get at the same instant; returns results and the wall time."""
    import threading

    barrier = threading.Barrier(n + 1)
    out: list[dict] = [{} for _ in range(n)]

    def worker(i):
        barrier.wait()
        try:
            out[i] = stream_get(url, timeout=timeout)
        except Exception as e:  # recorded, not raised
            out[i] = {"status": 0, "bytes": 0, "error": repr(e)}

    ts = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(n)]
    for t in ts:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in ts:
        t.join()
    return out, time.perf_counter() - t0


def final_url(url: str, timeout: float = 30.0, max_redirects: int = 5) -> str:
    """Where a GET of `url` ends after its redirects (asked with a 1-byte range, body dropped)."""
    from urllib.parse import urljoin

    for _ in range(max_redirects + 1):
        u = urlsplit(url)
        path = (u.path or "/") + (f"?{u.query}" if u.query else "")
        s = socket.create_connection((u.hostname, u.port or 80), timeout=timeout)
        try:
            s.sendall(
                f"GET {path} HTTP/1.1\r\nHost: {u.netloc}\r\nRange: bytes=0-0\r\nConnection: close\r\n\r\n".encode()
            )
            buf = b""
            while b"\r\n\r\n" not in buf:
                d = s.recv(65536)
                if not d:
                    raise ConnectionError("closed before the response headers")
                buf += d
            status, hdrs = parse_head(buf.split(b"\r\n\r\n", 1)[0])
        finally:
            s.close()
        if 300 <= status < 400 and "location" in hdrs:
            url = urljoin(url, hdrs["location"])
            continue
        return url
    raise RuntimeError(f"too many redirects for {url}")


def many_connections(url: str, n: int, offsets: list[int], length: int, seconds: float) -> dict:
    """`n` connections at once (asyncio, one thread), each one ranged GET of `length` bytes at
    its offset, every body read to the end. Bounded in time: whatever is not done after
    `seconds` is cut. Returns counts (done, failed, bytes) and the wall time."""
    import asyncio

    u = urlsplit(url)
    path = (u.path or "/") + (f"?{u.query}" if u.query else "")
    host, port = u.hostname, u.port or 80
    res = {"done": 0, "failed": 0, "bytes": 0, "errors": {}}

    async def one(i, start_gate):
        await start_gate.wait()
        off = offsets[i % len(offsets)]
        try:
            r, w = await asyncio.open_connection(host, port, limit=1 << 20)
            w.write(
                f"GET {path} HTTP/1.1\r\nHost: {u.netloc}\r\nRange: bytes={off}-{off + length - 1}\r\n"
                "Connection: close\r\n\r\n".encode()
            )
            await w.drain()
            head = await r.readuntil(b"\r\n\r\n")
            status, hdrs = parse_head(head[:-4])
            want = int(hdrs.get("content-length", -1))
            got = 0
            while True:
                d = await r.read(1 << 16)
                if not d:
                    break
                got += len(d)
            w.close()
            res["bytes"] += got
            if status == 206 and got == want == length:
                res["done"] += 1
            else:
                res["failed"] += 1
                k = f"status {status}, {got} of {want} bytes"
                res["errors"][k] = res["errors"].get(k, 0) + 1
        except Exception as e:  # counted, not raised
            res["failed"] += 1
            k = type(e).__name__
            res["errors"][k] = res["errors"].get(k, 0) + 1

    async def main():
        gate = asyncio.Event()
        tasks = [asyncio.create_task(one(i, gate)) for i in range(n)]
        await asyncio.sleep(0)
        t0 = time.perf_counter()
        gate.set()
        done, pending = await asyncio.wait(tasks, timeout=seconds)
        for t in pending:
            t.cancel()
        res["cut"] = len(pending)
        res["failed"] += len(pending)
        if pending:
            await asyncio.wait(pending, timeout=5)
        return time.perf_counter() - t0

    res["wall_s"] = asyncio.run(main())
    return res
