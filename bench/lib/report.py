"""Renders results.json into RESULTS.md (table, ratios, issue-5 targets) and chart.png."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess

MiB = 1 << 20
SYS = ["direct", "nginx-static", "nginx-cache", "olah", "olah-rs"]
HEAD = {
    "direct": "direct",
    "nginx-static": "nginx static",
    "nginx-cache": "nginx proxy_cache",
    "olah": "olah 0.5.4",
    "olah-rs": "**olah-rs**",
}


def get(R, sysk, row, field):
    try:
        v = R["systems"][sysk]["rows"][row]
    except KeyError:
        return None
    if not isinstance(v, dict) or v.get("pending") or v.get("ok") is False and field != "ok":
        return None
    return v.get(field)


def proc(R, sysk, phase, field):
    try:
        return R["systems"][sysk]["proc"][phase][field]
    except KeyError:
        return None


def fnum(v, unit=""):
    if v is None:
        return "–"
    if isinstance(v, tuple):
        return " / ".join(fnum(x) for x in v) + unit
    a = abs(v)
    if a >= 100:
        s = f"{v:,.0f}"
    elif a >= 10:
        s = f"{v:.1f}"
    elif a >= 1:
        s = f"{v:.2f}"
    else:
        s = f"{v:.3f}"
    return s + unit


class Row:
    """One table row: how to read a value per system, which way is better, the issue's targets."""

    def __init__(self, label, value, better, unit="", targets=(), fmt=None):
        self.label, self.value, self.better, self.unit = label, value, better, unit
        self.targets = targets  # list of (text, check(R, v_rs) -> bool|None)
        self.fmt = fmt

    def cell(self, R, s):
        v = self.value(R, s)
        if self.fmt:
            return self.fmt(R, s)
        return fnum(v, self.unit)


def scalar(row, field, scale=1.0):
    def f(R, s):
        v = get(R, s, row, field)
        return None if v is None else v * scale

    return f


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def at_least(other, factor):
    def chk(R, row):
        r = ratio(row.value(R, "olah-rs"), row.value(R, other))
        return None if r is None else r >= factor

    return chk


def at_most_abs(limit):
    def chk(R, row):
        v = row.value(R, "olah-rs")
        return None if v is None else v <= limit

    return chk


def below_abs(limit):
    def chk(R, row):
        v = row.value(R, "olah-rs")
        return None if v is None else v < limit

    return chk


def ttfb_target(R, row):
    v = row.value(R, "olah-rs")
    d = get(R, "direct", "first_byte_shaped", "p50_ms")
    if v is None or d is None:
        return None
    return v <= d + 50


def p50p99(row):
    def fmt(R, s):
        a, b = get(R, s, row, "p50_ms"), get(R, s, row, "p99_ms")
        return "–" if a is None else f"{fnum(a)} / {fnum(b)}"

    return fmt


def rows(R):
    thr3 = ("≥ 3 × olah", at_least("olah", 3.0))
    return [
        ("Throughput (MB/s, higher is better)", [
            Row("cold single GET, shaped (50 ms, 50 MB/s)", scalar("cold_single_shaped", "mbps"), "up", "",
                [("≥ 0.95 × direct", at_least("direct", 0.95)), thr3]),
            Row("cold single GET, unshaped", scalar("cold_single_unshaped", "mbps"), "up", "",
                [("≥ 0.95 × direct", at_least("direct", 0.95)), thr3]),
            Row("warm single GET", scalar("warm_single", "mbps"), "up", "",
                [("≥ 0.9 × nginx static", at_least("nginx-static", 0.9)), thr3]),
            Row("warm 8 parallel GETs (aggregate)", scalar("warm8", "agg_mbps"), "up", "",
                [("≥ 0.9 × nginx static", at_least("nginx-static", 0.9)), thr3]),
            Row("8 concurrent cold GETs, shaped (aggregate)", scalar("cold8", "agg_mbps"), "up", "", [thr3]),
            Row("hf_hub_download cold, shaped", scalar("hf_cold", "mbps"), "up", "", [thr3]),
            Row("hf_hub_download warm (fresh client cache)", scalar("hf_warm", "mbps"), "up", "", [thr3]),
            Row("Xet file, hf_hub_download + hf_xet, cold, shaped", scalar("xet_cold", "mbps"), "up", "",
                [("≥ 0.95 × direct", at_least("direct", 0.95))]),
            Row("Xet file, hf_hub_download + hf_xet, warm", scalar("xet_warm", "mbps"), "up", "", [thr3]),
        ]),
        ("Upstream traffic (lower is better)", [
            Row("8 concurrent cold GETs: upstream bytes ÷ file size", scalar("cold8", "upstream_ratio"), "down", "",
                [("≤ 1.02", at_most_abs(1.02))]),
            Row("1 MiB cold range read: max upstream MiB per read", scalar("range_cold", "max_upstream_mib"), "down",
                "", [("≤ 8 MiB", at_most_abs(8.0))]),
            Row("1 MiB cold range read: mean upstream MiB per read", scalar("range_cold", "mean_upstream_mib"),
                "down"),
            Row("upstream requests per warm GET", scalar("warm_single", "upstream_requests_per_get"), "down"),
            Row("Xet warm download: upstream xorb bytes (0 = served by the mirror)", scalar("xet_warm", "upstream_xorb_bytes"),
                "down"),
        ]),
        ("Latency (ms, lower is better)", [
            Row("cold single GET, shaped: time to response headers (curl)", scalar("cold_single_shaped", "ttfb_ms"),
                "down"),
            Row("direct: time to first body byte, shaped (p50; target reference)", scalar("first_byte_shaped", "p50_ms"),
                "down"),
            Row("8 concurrent cold GETs: slowest client's first body byte", scalar("cold8", "ttfb_max_ms"), "down",
                "", [("≤ direct first byte + 50 ms", ttfb_target)]),
            Row("1 MiB range read, cold: p50", scalar("range_cold", "p50_ms"), "down"),
            Row("1 MiB range read, warm: p50", scalar("range_warm", "p50_ms"), "down"),
            Row("GET /api/models/acme/big warm: p50 / p99", scalar("meta_api_warm", "p50_ms"), "down", "",
                [("p50 < 1 ms", below_abs(1.0))], fmt=p50p99("meta_api_warm")),
            Row("HEAD resolve warm: p50 / p99", scalar("meta_head_warm", "p50_ms"), "down", "",
                [("p50 < 1 ms", below_abs(1.0))], fmt=p50p99("meta_head_warm")),
            Row("GET /api/models/acme/big cold: p50 / p99", scalar("meta_api_cold", "p50_ms"), "down",
                fmt=p50p99("meta_api_cold")),
            Row("HEAD resolve cold: p50 / p99", scalar("meta_head_cold", "p50_ms"), "down",
                fmt=p50p99("meta_head_cold")),
        ]),
        ("Server process tree (lower is better)", [
            Row("peak RSS, warm 8 parallel (MiB)", lambda R, s: proc(R, s, "warm8", "peak_rss_mib"), "down", "",
                [("≤ 100 MiB", at_most_abs(100))]),
            Row("peak RSS, 8 concurrent cold (MiB)", lambda R, s: proc(R, s, "cold8", "peak_rss_mib"), "down", "",
                [("≤ 100 MiB", at_most_abs(100))]),
            Row("peak RSS, whole run (MiB)", lambda R, s: max(
                [p["peak_rss_mib"] for p in R["systems"].get(s, {}).get("proc", {}).values()] or [None],
                key=lambda x: x or 0), "down"),
            Row("CPU s, cold single GET unshaped", lambda R, s: proc(R, s, "cold_single_unshaped", "cpu_s"), "down"),
            Row("CPU s, cold single GET shaped", lambda R, s: proc(R, s, "cold_single_shaped", "cpu_s"), "down"),
            Row("CPU s per GiB served, warm 8 parallel", lambda R, s: cpu_per_gib(R, s, "warm8"), "down"),
        ]),
    ]


def cpu_per_gib(R, s, phase):
    c = proc(R, s, phase, "cpu_s")
    if c is None:
        return None
    return c / (R["params"]["parallel"] * R["params"]["size"] / (1 << 30))


WARM_PHASES = ("warm_single", "warm8", "range_warm", "hf_warm", "hf8_warm", "conn1000")


def warm_served(R, s):
    """Bytes served by the warm phases of system `s` (what the warm CPU seconds moved)."""
    P = R["params"]
    d = R["systems"].get(s, {})
    size, n = P["size"], P["parallel"]
    per = {
        "warm_single": P.get("warm_runs", 3) * size,
        "warm8": n * size,
        "range_warm": P["range_n"] * MiB,
        "hf_warm": size,
        "hf8_warm": n * size,
        "conn1000": (d.get("rows", {}).get("conn1000") or {}).get("bytes", 0),
    }
    return sum(per[p] for p in WARM_PHASES if p in d.get("proc", {}))


def warm_cpu(R, s):
    d = R["systems"].get(s, {}).get("proc", {})
    xs = [d[p]["cpu_s"] for p in WARM_PHASES if p in d]
    return sum(xs) if xs else None


def warm_cpu_per_gib(R, s):
    c, b = warm_cpu(R, s), warm_served(R, s)
    return None if c is None or not b else c / (b / (1 << 30))


def warm_peak_rss(R, s):
    d = R["systems"].get(s, {}).get("proc", {})
    xs = [d[p]["peak_rss_mib"] for p in WARM_PHASES if p in d]
    return max(xs) if xs else None


def rss8(R, s):
    xs = [x for x in (proc(R, s, "warm8", "peak_rss_mib"), proc(R, s, "hf8_warm", "peak_rss_mib")) if x is not None]
    return max(xs) if xs else None


def issue13(R, a):
    """The issue-13 table: warm cost side by side with nginx static, memory, cold rows vs direct."""
    P = R["params"]
    cols = ["nginx-static", "direct", "olah", "olah-rs"]
    rs = "olah-rs"

    def v(f):
        return {s: f(R, s) for s in cols}

    def vs_static(x, k):
        return None if x[rs] is None or x["nginx-static"] is None else x[rs] <= k * x["nginx-static"]

    def ge_static(x, k):
        return None if x[rs] is None or x["nginx-static"] is None else x[rs] >= k * x["nginx-static"]

    def le(x, lim):
        return None if x[rs] is None else x[rs] <= lim

    g = P.get("grow_size") or 0
    gs = (get(R, rs, "grow", "sizes") or {})
    grow_small = (gs.get(str(P["size"])) or {}).get("peak_rss_mib")
    grow_big = (gs.get(str(g)) or {}).get("peak_rss_mib")
    lines = []
    T = []

    def add(label, x, unit, target, ok, ratio_to="nginx-static"):
        r = ratio(x.get(rs), x.get(ratio_to))
        T.append((label, x, unit, f"{r:.2f}× {HEAD[ratio_to].strip('*')}" if r is not None else "–", target, ok))

    x = v(lambda R, s: warm_cpu(R, s))
    add("CPU seconds of all warm runs (server process tree)", x, "", "", None)
    x = v(lambda R, s: warm_cpu_per_gib(R, s))
    add("CPU seconds per GiB served warm", x, "", "≤ 1.5 × nginx static", vs_static(x, 1.5))
    x = v(lambda R, s: warm_peak_rss(R, s))
    add("peak RSS of the process tree, warm runs (MiB)", x, "", "", None)
    x = v(lambda R, s: get(R, s, "warm_single", "mbps"))
    add("warm, one curl (MB/s, median of 3)", x, "", "", None)
    x = v(lambda R, s: get(R, s, "hf_warm", "mbps"))
    add("warm, one huggingface_hub client (MB/s)", x, "", "≥ 0.9 × nginx static", ge_static(x, 0.9))
    x = v(lambda R, s: get(R, s, "hf8_warm", "agg_mbps"))
    add(f"warm, {P['parallel']} huggingface_hub clients, total (MB/s)", x, "", "≥ 0.9 × nginx static",
        ge_static(x, 0.9))
    x = v(lambda R, s: rss8(R, s))
    add(f"peak RSS, warm {P['parallel']} parallel (curl and hf clients) (MiB)", x, "", "≤ 64 MiB", le(x, 64))
    x = v(lambda R, s: proc(R, s, "conn1000", "peak_rss_mib"))
    n = P.get("conns", 1000)
    add(f"peak RSS, {n:,} concurrent connections, {P.get('conn_range', MiB) // 1024:,} KiB range each (MiB)", x, "",
        "≤ 100 MiB", le(x, 100))
    flat = None if grow_small is None or grow_big is None else grow_big <= max(grow_small * 1.1, grow_small + 8)
    T.append((f"peak RSS, fresh server, cold GET + warm GET: {P['size'] / MiB:,.0f} MiB file → {g / MiB:,.0f} MiB file",
              {rs: (grow_small, grow_big)}, "", "–", "flat (≤ +10 % or +8 MiB)", flat))
    for row, lab in (("meta_api_cold", "cold GET /api/models (median ms)"), ("meta_head_cold", "cold HEAD resolve (median ms)")):
        x = v(lambda R, s, row=row: get(R, s, row, "p50_ms"))
        ok = None if x[rs] is None or x["direct"] is None else x[rs] <= x["direct"] + 5
        add(lab, x, "", "≤ direct + 5 ms", ok, "direct")
    x = v(lambda R, s: get(R, s, "cold_single_unshaped", "mbps"))
    add("cold download, unshaped upstream (MB/s)", x, "", "≥ 0.8 × direct", None if x[rs] is None or x["direct"] is None
        else x[rs] >= 0.8 * x["direct"], "direct")

    lines.append("| row | nginx static | direct | olah 0.5.4 | **olah-rs** | ratio | target | met? |")
    lines.append("|---|---:|---:|---:|---:|---:|---|---|")
    for label, x, unit, r, target, ok in T:
        cells = [fnum(x.get(s), unit) for s in cols]
        mark = "" if not target else ("n/a" if ok is None else ("✅ met" if ok else "❌ not met"))
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {r} | {target} | {mark} |")
    return lines


def profiles(out):
    """The head of each perf profile saved next to the raw results (bench/profile-*.sh)."""
    import glob

    L = []
    files = sorted(glob.glob(os.path.join(out, "profile-warm*.txt"))) + sorted(glob.glob(os.path.join(out, "profile-cold*.txt")))
    if not files:
        return L
    L.append("### Profiles (perf, cpu-clock samples of olah-cli)\n")
    L.append("Made by `bench/profile-warm.sh` / `bench/profile-cold.sh` (see their headers), not by this run; "
             "the whole profiles are next to the raw results.\n")
    for f in files:
        with open(f) as fh:
            lines = fh.read().splitlines()
        head = [x for x in lines[:5] if x.strip()]
        syms = []
        if "## olah-cli, by symbol (self time, cpu-clock samples)" in lines:
            i = lines.index("## olah-cli, by symbol (self time, cpu-clock samples)")
            syms = [x for x in lines[i + 1:] if x.strip()][:8]
        L.append(f"`results/{os.path.basename(f)}`:\n")
        L.append("```")
        L.extend(head[1:] if head and head[0].startswith("#") else head)
        L.append(head[0].lstrip("# ") if head and head[0].startswith("#") else "")
        L.extend(syms)
        L.append("```\n")
    return L


def verdict(R, row):
    if not row.targets:
        return "", ""
    texts, marks = [], []
    for text, chk in row.targets:
        texts.append(text)
        ok = chk(R, row)
        marks.append("pending" if ok is None and "pending" in text else ("n/a" if ok is None else ("✅ met" if ok else "❌ not met")))
    return "; ".join(texts), "; ".join(marks)


def ratio_cell(R, row, other):
    r = ratio(row.value(R, "olah-rs"), row.value(R, other))
    if r is None:
        return "–"
    return f"{r:.2f}×" if r >= 0.1 else f"{r:.2g}×"


def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=20).stdout.strip()
    except Exception:
        return ""


def machine():
    mem = sh("awk '/MemTotal/ {printf \"%.1f GiB\", $2/1048576}' /proc/meminfo")
    cpu = sh("awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo")
    return {
        "nproc": sh("nproc"),
        "memory": mem,
        "kernel": platform.release(),
        "cpu": cpu,
        "os": sh(". /etc/os-release && echo $PRETTY_NAME"),
    }


def render(R, a):
    P = R["params"]
    m = machine()
    meta = R.get("meta") or {  # older results: facts of the tree as it is now
        "date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "git_rev": sh("git rev-parse --short HEAD"),
        "git_dirty": bool(sh("git status --porcelain -- crates")),
        "olah_rs_built": sh("date -r target/release/olah-cli '+%Y-%m-%d %H:%M %Z'"),
        "load_before": a.load_before.split(),
    }
    now = meta["date"]
    rs_rev = meta["git_rev"] + (" + uncommitted changes" if meta["git_dirty"] else "")
    rs_rev += ", binary built " + meta["olah_rs_built"]
    nginx_v = sh(f"{a.nginx} -v 2>&1").replace("nginx version: nginx/", "")
    curl_v = sh("curl --version | head -1 | cut -d' ' -f2")
    olah_v = sh(f"{a.olah_py} -c 'import importlib.metadata as m; print(m.version(\"olah\"))'")
    L = []
    L.append("# olah-rs benchmark (issues 5 and 13)\n")
    L.append(f"- **Date:** {now}. The measuring part took {R.get('seconds', 0):.0f} s.")
    L.append(f"- **Machine:** {m['nproc']} cores ({m['cpu']}), {m['memory']} RAM, kernel {m['kernel']}, {m['os']}. "
             f"Load average before the run: {' '.join(meta['load_before'])}.")
    L.append(f"- **Command:** `{a.command.strip()}`")
    L.append(f"- **Versions:** olah-rs at {rs_rev} (release), olah {olah_v} (PyPI, own venv), nginx {nginx_v} "
             f"(Debian), curl {curl_v}, huggingface_hub 2.4.0.")
    L.append(f"- **File:** acme/big `big.bin`, {P['size']:,} bytes ({P['size'] / MiB:,.0f} MiB), from "
             f"`target/release/olah-fakehub` on 127.0.0.1. **Shaped** = every upstream request delayed "
             f"{P['latency_ms']} ms and each upstream body paced to {P['bandwidth_bytes_per_sec'] / 1e6:.0f} MB/s "
             f"({P['bandwidth_bytes_per_sec'] * 8 / 1e6:.0f} Mbit/s); warm rows run with the shaping on.")
    L.append(f"- nginx proxy_cache uses `slice {P['nginx_slice']}` + `proxy_cache_lock`; {P['parallel']} clients in "
             f"the parallel rows; {P['range_n']} range reads; {P['cold_n']} fresh servers per cold metadata row.")
    if a.note:
        L.append(f"- **Note:** {a.note}")
    L.append("")
    L.append("## Issue 13: the cost of serving, side by side with nginx static\n")
    L.append("Warm runs = the warm single GETs (3 × curl), the warm 8 parallel curls, the warm range reads, "
             f"one and {P['parallel']} parallel huggingface_hub clients and the {P.get('conns', 1000):,} "
             "connections; CPU = user + system seconds of the server's whole process tree during them "
             "(sampled from /proc every 100 ms), per GiB of file bytes those runs served. "
             "Cold metadata = one request on a new connection against a fresh server (median of "
             f"{P['cold_n']}); cold download = one curl of the whole file, unshaped upstream.\n")
    L.extend(issue13(R, a))
    L.append("")
    L.extend(profiles(a.out))
    L.append("## All rows (issue 5)\n")
    errs = [(s, e) for s, d in R["systems"].items() for e in d.get("errors", [])]
    bad = [(s, k) for s, d in R["systems"].items() for k, v in d.get("rows", {}).items()
           if isinstance(v, dict) and v.get("ok") is False]
    L.append("")
    L.append("Ratios are olah-rs ÷ the other system for the row's value (for latency, RSS and CPU rows a ratio "
             "below 1 is better). `–` = not applicable to that system, or not measured. Targets are the "
             "issue's, checked on olah-rs.\n")
    cols = [HEAD[s] for s in SYS] + ["rs ÷ nginx static", "rs ÷ direct", "rs ÷ olah", "target (issue 5)", "met?"]
    for title, rs in rows(R):
        L.append(f"### {title}\n")
        L.append("| scenario | " + " | ".join(cols) + " |")
        L.append("|---|" + "---:|" * len(SYS) + "---:|---:|---:|---|---|")
        for row in rs:
            cells = [row.cell(R, s) for s in SYS]
            t, v = verdict(R, row)
            L.append(f"| {row.label} | " + " | ".join(cells) + " | "
                     + " | ".join(ratio_cell(R, row, o) for o in ("nginx-static", "direct", "olah"))
                     + f" | {t} | {v} |")
        L.append("")
    # details
    L.append("### Details\n")
    for s in SYS:
        d = R["systems"].get(s)
        if not d:
            continue
        c8 = d["rows"].get("cold8")
        parts = []
        if c8 and "ttfb_ms" in c8:
            parts.append("8 cold clients' first byte (ms): " + ", ".join(f"{x:.0f}" for x in c8["ttfb_ms"]))
            parts.append("their finish times (s): " + ", ".join(f"{x:.1f}" for x in c8.get("client_s", [])))
        rc = d["rows"].get("range_cold")
        if rc and "upstream_bytes_per_read" in rc:
            parts.append("upstream MiB per cold range read: "
                         + ", ".join(f"{x / MiB:.1f}" for x in rc["upstream_bytes_per_read"]))
        ws = d["rows"].get("warm_single")
        if ws and "runs_mbps" in ws:
            parts.append("warm single runs (MB/s): " + ", ".join(f"{x:.0f}" for x in ws["runs_mbps"]))
        if "verified_sha256" in d:
            parts.append(f"sha256 of a warm GET correct: {d['verified_sha256']}")
        if parts:
            L.append(f"- **{HEAD[s].strip('*')}**: " + "; ".join(parts) + ".")
    if errs or bad:
        L.append("\n**Failures:** " + "; ".join([f"{s}: {e}" for s, e in errs] + [f"{s}: row {k} failed" for s, k in bad]))
    L.append("\nMethod: see [bench/README.md](README.md). Raw figures: `results/results.json`, chart: "
             "`results/chart.png`, profiles: `results/profile-*.txt`.")
    return "\n".join(L) + "\n"


def chart(R, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"direct": "#999999", "nginx-static": "#4c72b0", "nginx-cache": "#55a868", "olah": "#dd8452",
              "olah-rs": "#c44e52"}
    panels = [
        ("Throughput, MB/s (higher is better)", True, [
            ("cold shaped", lambda s: get(R, s, "cold_single_shaped", "mbps")),
            ("cold unshaped", lambda s: get(R, s, "cold_single_unshaped", "mbps")),
            ("warm single", lambda s: get(R, s, "warm_single", "mbps")),
            ("warm 8 par.", lambda s: get(R, s, "warm8", "agg_mbps")),
            ("8 cold conc.", lambda s: get(R, s, "cold8", "agg_mbps")),
            ("hf cold", lambda s: get(R, s, "hf_cold", "mbps")),
            ("hf warm", lambda s: get(R, s, "hf_warm", "mbps")),
            ("xet cold", lambda s: get(R, s, "xet_cold", "mbps")),
            ("xet warm", lambda s: get(R, s, "xet_warm", "mbps")),
        ]),
        ("Latency p50, ms (lower is better)", True, [
            ("api warm", lambda s: get(R, s, "meta_api_warm", "p50_ms")),
            ("HEAD warm", lambda s: get(R, s, "meta_head_warm", "p50_ms")),
            ("api cold", lambda s: get(R, s, "meta_api_cold", "p50_ms")),
            ("HEAD cold", lambda s: get(R, s, "meta_head_cold", "p50_ms")),
            ("1 MiB range cold", lambda s: get(R, s, "range_cold", "p50_ms")),
            ("1 MiB range warm", lambda s: get(R, s, "range_warm", "p50_ms")),
            ("8 cold: max TTFB", lambda s: get(R, s, "cold8", "ttfb_max_ms")),
        ]),
        ("Upstream traffic (lower is better)", False, [
            ("8 cold: bytes ÷ file size (target 1.02)", lambda s: get(R, s, "cold8", "upstream_ratio")),
            ("1 MiB range: max upstream MiB ÷ 8 (target 1)", lambda s: (lambda v: None if v is None else v / 8)(
                get(R, s, "range_cold", "max_upstream_mib"))),
        ]),
        ("Server: peak RSS MiB / CPU s (lower is better)", True, [
            ("RSS warm 8", lambda s: proc(R, s, "warm8", "peak_rss_mib")),
            ("RSS 8 cold", lambda s: proc(R, s, "cold8", "peak_rss_mib")),
            ("CPU s cold unshaped", lambda s: proc(R, s, "cold_single_unshaped", "cpu_s")),
            ("CPU s warm 8", lambda s: proc(R, s, "warm8", "cpu_s")),
        ]),
    ]
    fig, axes = plt.subplots(2, 2, figsize=(16, 10))
    for ax, (title, logy, groups) in zip(axes.flat, panels):
        n = len(SYS)
        w = 0.8 / n
        for i, s in enumerate(SYS):
            xs, ys = [], []
            for g, (_, f) in enumerate(groups):
                v = f(s)
                if v is not None and v > 0:
                    xs.append(g + (i - (n - 1) / 2) * w)
                    ys.append(v)
            ax.bar(xs, ys, w, label=HEAD[s].strip("*"), color=colors[s])
        ax.set_xticks(range(len(groups)))
        ax.set_xticklabels([g for g, _ in groups], rotation=20, ha="right", fontsize=9)
        if logy:
            ax.set_yscale("log")
        if "Upstream" in title:
            ax.axhline(1.0, color="k", lw=0.8, ls="--")
        ax.set_title(title, fontsize=11)
        ax.grid(axis="y", alpha=0.3)
    axes.flat[0].legend(fontsize=9)
    P = R["params"]
    fig.suptitle(f"olah-rs vs direct / nginx / olah 0.5.4 — big.bin {P['size'] / MiB:,.0f} MiB, shaped "
                 f"{P['latency_ms']} ms + {P['bandwidth_bytes_per_sec'] / 1e6:.0f} MB/s", fontsize=13)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--command", default="bash bench/run.sh")
    ap.add_argument("--nginx", default="nginx")
    ap.add_argument("--olah-py", default="python3")
    ap.add_argument("--load-before", default="?", help="only for results without run facts")
    ap.add_argument("--note", default="")
    ap.add_argument("--md", default="", help="where RESULTS.md goes [OUT/RESULTS.md]")
    a = ap.parse_args()
    with open(a.results) as f:
        R = json.load(f)
    os.makedirs(a.out, exist_ok=True)
    if os.path.abspath(a.results) != os.path.abspath(os.path.join(a.out, "results.json")):
        shutil.copy(a.results, os.path.join(a.out, "results.json"))
    with open(a.md or os.path.join(a.out, "RESULTS.md"), "w") as f:
        f.write(render(R, a))
    chart(R, os.path.join(a.out, "chart.png"))


if __name__ == "__main__":
    main()
