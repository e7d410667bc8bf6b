"""Process groups the benchmark starts, and a /proc sampler for RSS and CPU of a group.

Every server is started in its own session (``setsid``), so its process group id is its pid and
the whole tree (nginx master + workers, uvicorn, ...) is stopped with one ``killpg``. The pgids are
also appended to a file so ``run.sh``'s EXIT trap can stop them if this Python process dies hard.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time

PAGE = os.sysconf("SC_PAGE_SIZE")
HZ = os.sysconf("SC_CLK_TCK")


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False


class Procs:
    """Spawns processes in new sessions and stops their whole group."""

    def __init__(self, pgid_file: str):
        self.pgid_file = pgid_file
        self.live: list[subprocess.Popen] = []

    def spawn(self, argv, stdout_path, stderr_path=None, env=None, cwd=None) -> subprocess.Popen:
        out = open(stdout_path, "ab")
        err = open(stderr_path, "ab") if stderr_path else subprocess.STDOUT
        try:
            p = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env=env,
                cwd=cwd,
                start_new_session=True,
            )
        finally:
            out.close()
            if stderr_path:
                err.close()
        with open(self.pgid_file, "a") as f:
            f.write(f"{p.pid}\n")
        self.live.append(p)
        return p

    def stop(self, p: subprocess.Popen, grace: float = 5.0) -> None:
        """SIGTERM the group, SIGKILL what is left after `grace` seconds."""
        if _group_alive(p.pid):
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if p.poll() is not None and not _group_alive(p.pid):
                break
            time.sleep(0.05)
        if _group_alive(p.pid):
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        if p in self.live:
            self.live.remove(p)

    def stop_all(self) -> None:
        for p in list(reversed(self.live)):
            self.stop(p, grace=3.0)


def group_usage(pgid: int) -> tuple[int, float, int]:
    """(RSS bytes, CPU seconds (user+sys), process count) summed over process group `pgid`."""
    rss = 0
    ticks = 0
    n = 0
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                raw = f.read()
        except OSError:
            continue
        fields = raw[raw.rfind(b")") + 2 :].split()
        # fields[0] = state (stat field 3): pgrp = field 5, utime 14, stime 15, rss 24.
        if int(fields[2]) != pgid:
            continue
        n += 1
        ticks += int(fields[11]) + int(fields[12])
        rss += int(fields[21]) * PAGE
    return rss, ticks / HZ, n


class Monitor(threading.Thread):
    """Samples the watched process group every `interval` seconds (RSS and CPU time)."""

    def __init__(self, interval: float = 0.1):
        super().__init__(daemon=True)
        self.interval = interval
        self.lock = threading.Lock()
        self.pgid: int | None = None
        self.samples: list[tuple[float, int, float]] = []  # (t, rss, cpu) of the watched group
        self.stopped = threading.Event()

    def watch(self, pgid: int | None) -> None:
        with self.lock:
            self.pgid = pgid
            self.samples = []

    def snap(self) -> tuple[float, int, float] | None:
        with self.lock:
            pgid = self.pgid
        if pgid is None:
            return None
        rss, cpu, _ = group_usage(pgid)
        s = (time.monotonic(), rss, cpu)
        with self.lock:
            if self.pgid == pgid:
                self.samples.append(s)
        return s

    def window(self, t0: float, t1: float) -> list[tuple[float, int, float]]:
        with self.lock:
            return [s for s in self.samples if t0 <= s[0] <= t1]

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            try:
                self.snap()
            except Exception:  # a process vanished mid-read: next sample
                pass
