"""Issue-5 benchmark: olah-rs against direct, nginx static, nginx proxy_cache and olah 0.5.4.

Run through bench/run.sh (which installs the tools, builds olah-rs and renders the report).
Writes results JSON to --out. Every server is stopped on exit (normal, exception, SIGTERM/SIGINT).
See bench/README.md for what each scenario measures.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import traceback
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from httpc import (  # noqa: E402
    curl_get,
    curl_parallel,
    final_url,
    many_connections,
    one_request,
    stream_get,
    stream_parallel,
    summarize_ms,
    timed_requests,
)
from procs import Monitor, Procs  # noqa: E402
from systems import BY_KEY  # noqa: E402

MiB = 1 << 20
FILE_PATH = "/acme/big/resolve/main/big.bin"
API_PATH = "/api/models/acme/big"
FILE_KEY = "models/acme/big@main:big.bin"
HERE = os.path.dirname(os.path.abspath(__file__))


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class Env:
    """Everything shared by the scenarios: paths, the fake Hub, the monitor, the results."""

    def __init__(self, a):
        self.a = a
        self.size = a.size
        self.work = a.work
        self.procs = Procs(os.path.join(a.work, "pgids"))
        self.mon = Monitor()
        self.mon.start()
        self.olah_rs_bin = a.olah_rs
        self.olah_py_bin = a.olah_py
        self.nginx_bin = a.nginx
        self.nginx_slice = a.nginx_slice
        self.hf_python = a.hf_python
        self.results = {"systems": {}}
        self.cur = None  # results dict of the system being measured
        self.max_time = 120 + self.size / 10e6  # curl bound for one full-file transfer

    # ---- fake Hub ---------------------------------------------------------------------------
    def spawn_hub(self, big_size, xet_size, name):
        """An olah-fakehub on free ports; returns (process, its JSON line)."""
        out = os.path.join(self.work, f"{name}.json")
        proc = self.procs.spawn(
            [self.a.fakehub, "--big-size", str(big_size), "--xet-size", str(xet_size)], out, os.path.join(self.work, f"{name}.log")
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError("olah-fakehub exited during start-up")
            if os.path.getsize(out) > 0:
                with open(out) as f:
                    line = f.readline()
                if line.endswith("\n"):
                    break
            time.sleep(0.05)
        else:
            raise RuntimeError("olah-fakehub did not print its URLs")
        return proc, json.loads(line)

    def start_hub(self):
        self.hub_proc, info = self.spawn_hub(self.size, self.size, "hub")
        self.hub, self.cdn = info["hub"], info["cdn"]
        self.hub_netloc = self.hub.removeprefix("http://")
        self.cdn_netloc = self.cdn.removeprefix("http://")
        self.file_info = info["files"][FILE_KEY]
        assert self.file_info["size"] == self.size, self.file_info

    def admin(self, what, body=None):
        req = urllib.request.Request(
            f"{self.hub}/__admin/{what}",
            data=None if body is None else json.dumps(body).encode(),
            method="GET" if body is None else "POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    def shape(self, on: bool):
        self.admin(
            "faults",
            {"latency_ms": self.a.latency_ms, "bandwidth_bytes_per_sec": self.a.bandwidth} if on else {},
        )

    def counters(self):
        s = self.admin("stats")
        return {
            "cdn_bytes": s["cdn_bytes"],
            "hub_bytes": s["hub_bytes"],
            "xorb_bytes": s.get("xorb_bytes", 0),
            "requests": s["hub_requests"] + s["cdn_requests"],
        }

    def settled_counters(self, quiet=0.3, limit=15.0):
        """Counters once no more upstream bytes flow (a fill may outlive the client's response)."""
        prev = self.counters()
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            time.sleep(quiet)
            cur = self.counters()
            if cur == prev:
                return cur
            prev = cur
        return prev

    @staticmethod
    def delta(a, b):
        return {k: b[k] - a[k] for k in a}

    # ---- static copy of the file (for nginx static and content checks) ---------------------
    def prepare_static(self):
        d = os.path.join(self.work, "static")
        os.makedirs(d, exist_ok=True)
        self.static_file = os.path.join(d, "big.bin")
        self.static_api = os.path.join(d, "api.json")
        self.shape(False)
        r = curl_get(self.hub + FILE_PATH, max_time=self.max_time, out=self.static_file)
        if r["status"] != 200 or r["bytes"] != self.size:
            raise RuntimeError(f"could not fetch big.bin from the fake Hub: {r}")
        h = hashlib.sha256()
        with open(self.static_file, "rb") as f:
            while chunk := f.read(8 * MiB):
                h.update(chunk)
        if h.hexdigest() != self.file_info["sha256"]:
            raise RuntimeError("big.bin from the fake Hub does not match its sha256")
        with urllib.request.urlopen(self.hub + API_PATH, timeout=10) as r, open(self.static_api, "wb") as f:
            f.write(r.read())

    def expected_range(self, off, n):
        with open(self.static_file, "rb") as f:
            f.seek(off)
            return f.read(n)

    # ---- recording ---------------------------------------------------------------------------
    def row(self, name, value):
        self.cur["rows"][name] = value
        log(f"  {self.cur['key']:<13} {name}: {short(value)}")

    @contextlib.contextmanager
    def phase(self, name):
        """Peak RSS and CPU seconds of the running server's process tree during the block."""
        s0 = self.mon.snap()
        try:
            yield
        finally:
            s1 = self.mon.snap()
            if s0 and s1:
                win = self.mon.window(s0[0], s1[0])
                peak = max(s[1] for s in win) if win else max(s0[1], s1[1])
                self.cur["proc"][name] = {
                    "cpu_s": round(s1[2] - s0[2], 3),
                    "peak_rss_mib": round(peak / MiB, 1),
                    "seconds": round(s1[0] - s0[0], 3),
                }

    @contextlib.contextmanager
    def running(self, system, shaped: bool):
        self.shape(shaped)
        system.start()
        self.mon.watch(system.pgid)
        try:
            yield system
        finally:
            self.mon.watch(None)
            system.stop()


def short(v):
    if isinstance(v, dict):
        keep = {k: v[k] for k in list(v)[:8] if not isinstance(v[k], list)}
        return json.dumps(keep, default=str)[:240]
    return str(v)


def mbps(nbytes, seconds):
    return nbytes / seconds / 1e6 if seconds > 0 else 0.0


# ---- scenarios ----------------------------------------------------------------------------------


def full_get(env, base, name):
    c0 = env.counters()
    r = curl_get(base + FILE_PATH, max_time=env.max_time)
    c = env.delta(c0, env.settled_counters())
    ok = r["status"] == 200 and r["bytes"] == env.size
    res = {
        "mbps": mbps(r["bytes"], r["total_s"]),
        "ttfb_ms": r["ttfb_s"] * 1000,
        "seconds": r["total_s"],
        "upstream_bytes": c["cdn_bytes"],
        "upstream_ratio": c["cdn_bytes"] / env.size,
        "upstream_requests": c["requests"],
        "ok": ok,
    }
    if not ok:
        res["error"] = r.get("error") or f"status {r['status']}, {r['bytes']} bytes"
    env.row(name, res)
    return res


def cold_single(env, s, shaped):
    name = "cold_single_shaped" if shaped else "cold_single_unshaped"
    with env.running(s, shaped):
        with env.phase(name):
            full_get(env, s.base, name)


def warm_rows(env, s):
    """One server. A cache system is first filled by the timed shaped cold GET (row
    cold_single_shaped); then every warm scenario runs against the same server."""
    with env.running(s, True):
        if s.kind == "cache":
            with env.phase("cold_single_shaped"):
                r = full_get(env, s.base, "cold_single_shaped")
            if not r["ok"]:
                raise RuntimeError(f"cold fill failed: {r}")
        warm_scenarios(env, s)


def warm_scenarios(env, s):
    warm_n = env.a.warm_runs
    # warm single: median of N runs
    c0 = env.counters()
    runs = []
    with env.phase("warm_single"):
        for _ in range(warm_n):
            r = curl_get(s.base + FILE_PATH, max_time=env.max_time)
            runs.append(r)
    c = env.delta(c0, env.settled_counters())
    ok = all(r["status"] == 200 and r["bytes"] == env.size for r in runs)
    speeds = sorted(mbps(r["bytes"], r["total_s"]) for r in runs)
    env.row(
        "warm_single",
        {
            "mbps": speeds[len(speeds) // 2],
            "runs_mbps": speeds,
            "ttfb_ms": sorted(r["ttfb_s"] for r in runs)[len(runs) // 2] * 1000,
            "upstream_bytes": c["cdn_bytes"],
            "upstream_requests": c["requests"],
            "upstream_requests_per_get": c["requests"] / len(runs),
            "ok": ok,
        },
    )
    # content check (not timed)
    if env.a.verify:
        p = subprocess.run(
            f"curl -sS -L --max-time {int(env.max_time)} '{s.base}{FILE_PATH}' | sha256sum",
            shell=True, capture_output=True, text=True, timeout=env.max_time + 30,
        )  # fmt: skip
        env.cur["verified_sha256"] = p.stdout.split()[0] == env.file_info["sha256"] if p.stdout else False
        log(f"  {s.key:<13} sha256 of a warm GET matches: {env.cur['verified_sha256']}")
    # warm 8 parallel
    n = env.a.parallel
    c0 = env.counters()
    with env.phase("warm8"):
        res, wall = curl_parallel(s.base + FILE_PATH, n, env.max_time)
    c = env.delta(c0, env.settled_counters())
    ok = all(r["status"] == 200 and r["bytes"] == env.size for r in res)
    env.row(
        "warm8",
        {
            "agg_mbps": mbps(n * env.size, wall),
            "wall_s": wall,
            "slowest_client_s": max(r["total_s"] for r in res),
            "upstream_bytes": c["cdn_bytes"],
            "upstream_requests": c["requests"],
            "ok": ok,
        },
    )
    # warm 1 MiB range reads
    range_reads(env, s, "range_warm")
    # warm metadata latency (keep-alive loop)
    meta_warm(env, s)
    # end-to-end warm hf_hub_download (fresh client cache, warm mirror)
    hf_download(env, s, "hf_warm")
    # the same, 8 clients at once
    hf_parallel(env, s, "hf8_warm")
    # 1,000 connections at once, each a ranged GET (issue 13: memory under many connections)
    conn_many(env, s, "conn1000")


def range_reads(env, s, name):
    lat, ups, reqs, bad = [], [], [], 0
    tmp = os.path.join(env.work, "range.part")
    with env.phase(name):
        env.settled_counters()
        for off in env.offsets:
            c0 = env.counters()
            r = curl_get(s.base + FILE_PATH, rng=(off, off + MiB - 1), max_time=120, out=tmp)
            c = env.delta(c0, env.settled_counters())
            lat.append(r["total_s"])
            ups.append(c["cdn_bytes"])
            reqs.append(c["requests"])
            with open(tmp, "rb") as f:
                got = f.read()
            if r["status"] != 206 or got != env.expected_range(off, MiB):
                bad += 1
    os.unlink(tmp)
    res = summarize_ms(lat)
    res.update(
        {
            "upstream_bytes_per_read": ups,
            "max_upstream_mib": max(ups) / MiB,
            "mean_upstream_mib": sum(ups) / len(ups) / MiB,
            "upstream_requests_per_read": sum(reqs) / len(reqs),
            "bad_reads": bad,
            "ok": bad == 0,
        }
    )
    env.row(name, res)


def meta_warm(env, s):
    # Warm: one untimed request fills whatever cache there is, then a keep-alive loop.
    a = env.a
    env.row("meta_api_warm", timed_requests(s.base, "GET", API_PATH, a.meta_n, a.meta_seconds))
    env.row("meta_head_warm", timed_requests(s.base, "HEAD", FILE_PATH, a.meta_n, a.meta_seconds))


def cold_meta_rows(env, s, fresh_server):
    """The cold metadata rows: each sample is ONE request on a new connection, against a fresh
    server with an empty cache when `fresh_server` (else against the running system)."""
    for name, method, path in (("meta_api_cold", "GET", API_PATH), ("meta_head_cold", "HEAD", FILE_PATH)):
        lat, statuses = [], set()
        for _ in range(env.a.cold_n):
            with env.running(s, True) if fresh_server else contextlib.nullcontext():
                t, st = one_request(s.base, method, path)
                lat.append(t)
                statuses.add(st)
        res = summarize_ms(lat)
        res["status"] = sorted(statuses)
        res["ok"] = all(x in (200, 302) for x in statuses)
        env.row(name, res)


def meta_cold(env, s):
    cold_meta_rows(env, s, fresh_server=True)


def cold8(env, s):
    """N clients start the same cold GET at the same instant (Python threads, so the first BODY
    byte of each is timed, not just the response headers)."""
    n = env.a.parallel
    with env.running(s, True):
        c0 = env.counters()
        with env.phase("cold8"):
            res, wall = stream_parallel(s.base + FILE_PATH, n, timeout=60)
        c = env.delta(c0, env.settled_counters())
    ok = all(r.get("status") == 200 and r.get("bytes") == env.size for r in res)
    ttfb = sorted(r.get("ttfb_body_s", float("nan")) * 1000 for r in res)
    out = {
        "agg_mbps": mbps(n * env.size, wall),
        "wall_s": wall,
        "upstream_bytes": c["cdn_bytes"],
        "upstream_ratio": c["cdn_bytes"] / env.size,
        "upstream_requests": c["requests"],
        "ttfb_ms": ttfb,
        "ttfb_max_ms": ttfb[-1],
        "ttfb_p50_ms": ttfb[len(ttfb) // 2],
        "ttfb_head_ms": sorted(r.get("ttfb_head_s", float("nan")) * 1000 for r in res),
        "client_s": sorted(r.get("total_s", float("nan")) for r in res),
        "ok": ok,
    }
    if not ok:
        out["errors"] = [r.get("error") or f"{r.get('status')}/{r.get('bytes')}" for r in res if r.get("bytes") != env.size]
    env.row("cold8", out)


def first_byte(env, s):
    """Direct only: time to the first BODY byte of the file (hub 302 + CDN), shaped; the
    reference of the '8 cold clients: first byte within upstream latency + 50 ms' target."""
    with env.running(s, True):
        lat = []
        for _ in range(env.a.cold_n):
            r = stream_get(s.base + FILE_PATH, timeout=60, first_byte_only=True)
            lat.append(r["ttfb_body_s"])
        res = summarize_ms(lat)
        res["ok"] = True
        env.row("first_byte_shaped", res)


def hf_download(env, s, name, xet=False):
    """hf_hub_download of acme/big (plain HTTP), or with `xet` of acme/xet-big's weights.bin
    (same size, Xet-backed) with hf_xet enabled: through a mirror that serves Xet the client
    talks Xet to the mirror; through one that does not, it gets whatever that mirror answers."""
    home = os.path.join(env.a.hf_dir or env.work, "hf-home")
    shutil.rmtree(home, ignore_errors=True)
    e = dict(os.environ)
    e.update(
        {
            "HF_ENDPOINT": s.base,
            "HF_HOME": home,
            "HF_HUB_DISABLE_XET": "1",
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "HF_HUB_DISABLE_PROGRESS_BARS": "1",
            "HF_HUB_ETAG_TIMEOUT": "30",
            "HF_HUB_DOWNLOAD_TIMEOUT": "60",
        }
    )
    if xet:
        e.pop("HF_HUB_DISABLE_XET")
        e["HF_XET_TELEMETRY_ENABLED"] = "false"
    e.pop("HF_TOKEN", None)
    c0 = env.counters()
    with env.phase(name):
        p = subprocess.run(
            [env.hf_python, os.path.join(HERE, "hfget.py"), *(("acme/xet-big", "weights.bin") if xet else ("acme/big", "big.bin"))],
            capture_output=True, text=True, env=e, timeout=env.max_time + 60,
        )  # fmt: skip
    c = env.delta(c0, env.settled_counters())
    shutil.rmtree(home, ignore_errors=True)
    if p.returncode != 0 or not p.stdout.strip():
        env.row(name, {"ok": False, "error": p.stderr.strip()[-400:]})
        return
    r = json.loads(p.stdout.strip().splitlines()[-1])
    env.row(
        name,
        {
            "mbps": mbps(env.size, r["seconds"]),
            "seconds": r["seconds"],
            "upstream_bytes": c["cdn_bytes"],
            "upstream_xorb_bytes": c["xorb_bytes"],
            "upstream_requests": c["requests"],
            "ok": r["size"] == env.size,
        },
    )


def hf_env(env, s, home):
    e = dict(os.environ)
    e.update(
        {
            "HF_ENDPOINT": s.base,
            "HF_HOME": home,
            "HF_HUB_DISABLE_XET": "1",
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "HF_HUB_DISABLE_PROGRESS_BARS": "1",
            "HF_HUB_ETAG_TIMEOUT": "30",
            "HF_HUB_DOWNLOAD_TIMEOUT": "60",
        }
    )
    e.pop("HF_TOKEN", None)
    return e


def hf_parallel(env, s, name):
    """`parallel` hf_hub_download processes at once (each its own empty HF_HOME), warm mirror:
    total MB/s = clients x size / wall time until the last ends."""
    n = env.a.parallel
    homes = [os.path.join(env.a.hf_dir or env.work, f"hf-home{i}") for i in range(n)]
    c0 = env.counters()
    with env.phase(name):
        t0 = time.monotonic()
        ps = [
            subprocess.Popen(
                [env.hf_python, os.path.join(HERE, "hfget.py"), "acme/big", "big.bin"],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=hf_env(env, s, h),
            )  # fmt: skip
            for h in homes
        ]
        outs = []
        for p in ps:
            try:
                outs.append(p.communicate(timeout=env.max_time + 60) + (p.returncode,))
            except subprocess.TimeoutExpired:
                p.kill()
                outs.append(p.communicate() + (-9,))
        wall = time.monotonic() - t0
    c = env.delta(c0, env.settled_counters())
    for h in homes:
        shutil.rmtree(h, ignore_errors=True)
    sizes = []
    for out, err, rc in outs:
        try:
            sizes.append(json.loads(out.strip().splitlines()[-1])["size"] if rc == 0 else -1)
        except (ValueError, IndexError, KeyError):
            sizes.append(-1)
    ok = all(x == env.size for x in sizes)
    res = {"agg_mbps": mbps(n * env.size, wall), "wall_s": wall, "upstream_bytes": c["cdn_bytes"], "ok": ok}
    if not ok:
        res["error"] = next((err.strip()[-300:] for out, err, rc in outs if rc != 0), "wrong size")
    env.row(name, res)


def conn_many(env, s, name):
    """`conns` connections at once, each a ranged GET of `conn_range` bytes at a random offset of
    the (warm) file, read by one asyncio client; the row is the server's peak RSS meanwhile."""
    n, length = env.a.conns, min(env.a.conn_range, env.size)
    rnd = random.Random(env.a.seed + 1)
    offsets = [rnd.randrange(0, env.size - length + 1) for _ in range(n)]
    url = final_url(s.base + FILE_PATH)
    with env.phase(name):
        r = many_connections(url, n, offsets, length, env.a.conn_seconds)
    r["connections"] = n
    r["range_bytes"] = length
    r["peak_rss_mib"] = env.cur["proc"].get(name, {}).get("peak_rss_mib")
    r["ok"] = r["done"] == n
    env.row(name, r)


def grow(env, s):
    """Memory as files grow: the same steps for the run's file and for a bigger one (a second
    fake Hub with `grow_size`): a fresh server, one unshaped GET that fills it, one warm GET.
    The row is the server's peak RSS over both GETs, per file size."""
    g = env.a.grow_size
    if g <= env.size:
        return
    out = {}
    for size in (env.size, g):
        proc = None
        saved = (env.hub_netloc, env.cdn_netloc)
        try:
            if size == env.size:
                env.shape(False)
            else:
                proc, info = env.spawn_hub(g, 1 << 20, "hub-grow")
                env.hub_netloc = info["hub"].removeprefix("http://")
                env.cdn_netloc = info["cdn"].removeprefix("http://")
            s.start()
            env.hub_netloc, env.cdn_netloc = saved
            env.mon.watch(s.pgid)
            mt = 120 + size / 10e6
            name = f"grow_{size >> 20}m"
            with env.phase(name):
                r1 = curl_get(s.base + FILE_PATH, max_time=mt)
                time.sleep(1.0)
                r2 = curl_get(s.base + FILE_PATH, max_time=mt)
            ok = all(r["status"] == 200 and r["bytes"] == size for r in (r1, r2))
            out[str(size)] = {"peak_rss_mib": env.cur["proc"][name]["peak_rss_mib"], "ok": ok,
                              "warm_mbps": mbps(r2["bytes"], r2["total_s"])}
        finally:
            env.hub_netloc, env.cdn_netloc = saved
            env.mon.watch(None)
            s.stop()
            if proc is not None:
                env.procs.stop(proc)
    env.row("grow", {"sizes": out, "ok": all(v["ok"] for v in out.values())})


def hf_cold(env, s):
    with env.running(s, True):
        hf_download(env, s, "hf_cold")


def range_cold(env, s):
    with env.running(s, True):
        range_reads(env, s, "range_cold")


def xet_rows(env, s):
    """Xet (issue 3): hf_hub_download with hf_xet of a Xet-backed file of the same size, cold
    (fresh server, shaped) then warm (fresh client cache); upstream = the fake's xorb bytes. Direct:
    the cold row only."""
    with env.running(s, True):
        hf_download(env, s, "xet_cold", xet=True)
        if s.key != "direct":
            hf_download(env, s, "xet_warm", xet=True)


# Which scenarios run for which kind of system, in order. A later row (e.g. Xet) is one more
# function here.
PLAN = {
    "direct": [
        ("cold_single_shaped", lambda e, s: cold_single(e, s, True)),
        ("cold_single_unshaped", lambda e, s: cold_single(e, s, False)),
        ("first_byte", lambda e, s: first_byte(e, s)),
        ("range_cold", lambda e, s: range_cold(e, s)),
        ("meta", lambda e, s: direct_meta(e, s)),
        ("hf_cold", lambda e, s: hf_cold(e, s)),
        ("xet", lambda e, s: xet_rows(e, s)),
    ],
    "static": [
        ("warm", lambda e, s: warm_rows(e, s)),
    ],
    "cache": [
        ("cold_single_shaped + warm", lambda e, s: warm_rows(e, s)),
        ("cold_single_unshaped", lambda e, s: cold_single(e, s, False)),
        ("cold8", lambda e, s: cold8(e, s)),
        ("range_cold", lambda e, s: range_cold(e, s)),
        ("hf_cold", lambda e, s: hf_cold(e, s)),
        ("meta_cold", lambda e, s: meta_cold(e, s)),
        ("xet", lambda e, s: xet_rows(e, s)),
        ("grow", lambda e, s: grow(e, s) if s.key == "olah-rs" else None),
    ],
}


def direct_meta(env, s):
    """No cache: 'cold' = one request on a new connection, 'warm' = keep-alive loop."""
    with env.running(s, True):
        meta_warm(env, s)
        cold_meta_rows(env, s, fresh_server=False)


def run_facts(a) -> dict:
    """What was measured, recorded at measuring time (the report may be rendered later)."""

    def sh(cmd):
        try:
            return subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=20).stdout.strip()
        except Exception:
            return ""

    return {
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "git_rev": sh("git rev-parse --short HEAD"),
        "git_dirty": bool(sh("git status --porcelain -- crates")),
        "olah_rs_built": sh(f"date -r {a.olah_rs} '+%Y-%m-%d %H:%M %Z'"),
        "load_before": open("/proc/loadavg").read().split()[:3],
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--systems", default="direct,nginx-static,nginx-cache,olah,olah-rs")
    ap.add_argument("--fakehub", required=True)
    ap.add_argument("--olah-rs", required=True)
    ap.add_argument("--olah-py", required=True)
    ap.add_argument("--nginx", required=True)
    ap.add_argument("--nginx-slice", default="4m")
    ap.add_argument("--hf-python", required=True)
    ap.add_argument("--latency-ms", type=int, default=50)
    ap.add_argument("--bandwidth", type=int, default=50_000_000)
    ap.add_argument("--parallel", type=int, default=8)
    ap.add_argument("--warm-runs", type=int, default=3)
    ap.add_argument("--range-n", type=int, default=8)
    ap.add_argument("--cold-n", type=int, default=7)
    ap.add_argument("--meta-n", type=int, default=2000)
    ap.add_argument("--meta-seconds", type=float, default=3.0)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--no-verify", dest="verify", action="store_false")
    ap.add_argument("--hf-dir", default="", help="where the hf clients' HF_HOMEs go [--work]")
    ap.add_argument("--conns", type=int, default=1000)
    ap.add_argument("--conn-range", type=int, default=1 << 20)
    ap.add_argument("--conn-seconds", type=float, default=60.0)
    ap.add_argument("--grow-size", type=int, default=0)
    a = ap.parse_args()

    def on_signal(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    env = Env(a)
    rnd = random.Random(a.seed)
    env.offsets = [rnd.randrange(0, a.size - MiB) for _ in range(a.range_n)]
    t_start = time.monotonic()
    R = env.results
    R["params"] = {
        "size": a.size,
        "latency_ms": a.latency_ms,
        "bandwidth_bytes_per_sec": a.bandwidth,
        "parallel": a.parallel,
        "warm_runs": a.warm_runs,
        "range_n": a.range_n,
        "range_offsets": env.offsets,
        "cold_n": a.cold_n,
        "meta_n": a.meta_n,
        "meta_seconds": a.meta_seconds,
        "nginx_slice": a.nginx_slice,
        "conns": a.conns,
        "conn_range": a.conn_range,
        "grow_size": a.grow_size,
        "hf_on_tmpfs": a.hf_dir.startswith("/dev/shm"),
        "systems": a.systems.split(","),
    }
    R["meta"] = run_facts(a)
    try:
        log(f"fake Hub with big.bin = {a.size} bytes")
        env.start_hub()
        env.prepare_static()
        for key in a.systems.split(","):
            s = BY_KEY[key](env)
            env.cur = R["systems"][key] = {"key": key, "label": s.label, "rows": {}, "proc": {}, "errors": []}
            t0 = time.monotonic()
            log(f"== {s.label}")
            for step, fn in PLAN[s.kind]:
                try:
                    fn(env, s)
                except SystemExit:
                    raise
                except Exception as e:  # record and go on with the next scenario
                    env.cur["errors"].append(f"{step}: {e!r}")
                    log(f"  {key} {step} FAILED: {e!r}\n{traceback.format_exc()}")
                    s.stop()
                    env.mon.watch(None)
            env.cur["seconds"] = round(time.monotonic() - t0, 1)
            log(f"   {s.label} done in {env.cur['seconds']} s")
            with open(a.out, "w") as f:  # partial results survive a later failure
                json.dump(R, f, indent=1)
    finally:
        R["seconds"] = round(time.monotonic() - t_start, 1)
        with open(a.out, "w") as f:
            json.dump(R, f, indent=1)
        env.mon.stopped.set()
        env.procs.stop_all()
    log(f"results: {a.out} ({R['seconds']} s)")


if __name__ == "__main__":
    main()
