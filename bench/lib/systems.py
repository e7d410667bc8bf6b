"""The systems under test. Each `start()` begins with an EMPTY cache; `stop()` stops the whole
process group and deletes the cache.

* direct       – the client talks to the fake Hub itself (no mirror; nothing to start).
* nginx-static – nginx serving the file (and a saved copy of the repo-info JSON) from disk with
                 sendfile: the upper limit for warm rows.
* nginx-cache  – nginx proxy_cache in front of the fake Hub, the usual do-it-yourself mirror:
                 metadata and the Hub's 302 are cached, the 302's Location is rewritten into the
                 mirror (/_cdn/), and the CDN bytes are cached in `slice` pieces with
                 proxy_cache_lock (single-flight per slice).
* olah         – olah 0.5.4 from PyPI (its own venv), same flags as olah-rs.
* olah-rs      – target/release/olah-cli.
"""

from __future__ import annotations

import os
import shutil
import socket
import time

from httpc import RawHTTP


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_http(base: str, path: str, timeout: float, proc=None, want_ok=False) -> None:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{base}: server exited with {proc.returncode} during start-up")
        try:
            c = RawHTTP(base, timeout=2)
            st, _, _ = c.request("GET", path)
            c.close()
            if not want_ok or st == 200:
                return
            last = f"status {st}"
        except OSError as e:
            last = str(e)
        time.sleep(0.05)
    raise RuntimeError(f"{base}: not ready after {timeout}s ({last})")


class System:
    key = ""
    label = ""
    kind = ""  # direct | static | cache

    def __init__(self, env):
        self.env = env
        self.proc = None
        self.base = None
        self.starts = 0

    @property
    def pgid(self):
        return self.proc.pid if self.proc else None

    def dir(self, *parts) -> str:
        d = os.path.join(self.env.work, self.key, *parts)
        os.makedirs(d, exist_ok=True)
        return d

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        if self.proc is not None:
            self.env.procs.stop(self.proc)
            self.proc = None
        self.cleanup()

    def cleanup(self) -> None:
        pass


class Direct(System):
    key, label, kind = "direct", "direct", "direct"

    def start(self):
        self.base = self.env.hub
        self.starts += 1


class Mirror(System):
    """A server process on a fresh port with a fresh cache directory."""

    ready_path = "/"
    ready_timeout = 60.0
    want_ok = False

    def binary(self) -> str:
        raise NotImplementedError

    def argv(self, port: int, cache: str, logs: str) -> list[str]:
        """olah's flags, which olah-rs takes unchanged."""
        e = self.env
        return [
            self.binary(), "--host", "127.0.0.1", "--port", str(port),
            "--hf-scheme", "http", "--hf-netloc", e.hub_netloc, "--hf-lfs-netloc", e.cdn_netloc,
            "--repos-path", cache, "--log-path", logs,
        ]  # fmt: skip

    def start(self):
        self.starts += 1
        port = free_port()
        cache = os.path.join(self.env.work, self.key, f"cache{self.starts}")
        shutil.rmtree(cache, ignore_errors=True)
        os.makedirs(cache)
        self.cache = cache
        logs = self.dir("logs")
        self.proc = self.env.procs.spawn(
            self.argv(port, cache, logs),
            os.path.join(logs, "stdout.log"),
            env=self.child_env(),
        )
        self.base = f"http://127.0.0.1:{port}"
        wait_http(self.base, self.ready_path, self.ready_timeout, self.proc, self.want_ok)

    def child_env(self):
        return None

    def cleanup(self):
        if getattr(self, "cache", None):
            shutil.rmtree(self.cache, ignore_errors=True)
            self.cache = None


class OlahRs(Mirror):
    key, label, kind = "olah-rs", "olah-rs", "cache"
    ready_path = "/health"
    want_ok = True

    def binary(self):
        return self.env.olah_rs_bin


class OlahPy(Mirror):
    key, label, kind = "olah", "olah 0.5.4", "cache"
    ready_path = "/__bench_ready"  # any HTTP answer means uvicorn is up

    def binary(self):
        return self.env.olah_py_bin

    def child_env(self):
        env = dict(os.environ)
        env.pop("HF_ENDPOINT", None)
        return env


NGINX_COMMON = """\
daemon off;
master_process on;
worker_processes auto;
user root;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  default_type application/octet-stream;
  client_body_temp_path {prefix}/tmp/body;
  proxy_temp_path {prefix}/tmp/proxy;
  fastcgi_temp_path {prefix}/tmp/fastcgi;
  uwsgi_temp_path {prefix}/tmp/uwsgi;
  scgi_temp_path {prefix}/tmp/scgi;
  sendfile on;
  tcp_nopush on;
  tcp_nodelay on;
  keepalive_timeout 65;
  keepalive_requests 100000;
{body}
}}
"""


class Nginx(Mirror):
    ready_path = "/__bench_ready"

    def conf(self, port: int, prefix: str) -> str:
        raise NotImplementedError

    def argv(self, port, cache, logs):
        prefix = cache  # fresh each start: config, pid, temp dirs and the proxy cache
        for d in ("tmp", "cache"):
            os.makedirs(os.path.join(prefix, d), exist_ok=True)
        conf = os.path.join(prefix, "nginx.conf")
        with open(conf, "w") as f:
            f.write(NGINX_COMMON.format(prefix=prefix, body=self.conf(port, prefix)))
        return [self.env.nginx_bin, "-p", prefix, "-c", conf, "-e", os.path.join(prefix, "error.log")]


class NginxStatic(Nginx):
    key, label, kind = "nginx-static", "nginx static", "static"

    def conf(self, port, prefix):
        e = self.env
        return f"""
  server {{
    listen 127.0.0.1:{port};
    location = /acme/big/resolve/main/big.bin {{
      alias {e.static_file};
      etag off;
      add_header X-Repo-Commit {e.file_info['commit']} always;
      add_header ETag '"{e.file_info['sha256']}"' always;
    }}
    location = /api/models/acme/big {{
      default_type application/json;
      alias {e.static_api};
    }}
  }}
"""


class NginxCache(Nginx):
    key, label, kind = "nginx-cache", "nginx proxy_cache", "cache"

    def conf(self, port, prefix):
        # Two server blocks, like a hub mirror + an LFS mirror host: huggingface_hub follows a
        # HEAD's redirect when it stays on the same origin, so the CDN side needs its own port.
        e = self.env
        lfs = free_port()
        return f"""
  proxy_cache_path {prefix}/cache levels=1:2 keys_zone=hf:16m max_size=64g inactive=1d use_temp_path=off;
  upstream hub {{ server {e.hub_netloc}; keepalive 16; }}
  upstream cdn {{ server {e.cdn_netloc}; keepalive 16; }}
  proxy_http_version 1.1;
  proxy_set_header Connection "";
  proxy_cache hf;
  proxy_cache_lock on;
  proxy_cache_methods GET HEAD;
  proxy_ignore_headers Cache-Control Expires Set-Cookie Vary X-Accel-Expires;
  # Hub: repo metadata and resolve answers (the 302 to the CDN) are cached; the 302's Location
  # is rewritten so that the client fetches the bytes through the LFS server below.
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://hub;
      proxy_set_header Host {e.hub_netloc};
      proxy_cache_valid 200 302 10m;
      proxy_redirect http://{e.cdn_netloc}/ http://127.0.0.1:{lfs}/;
    }}
  }}
  # CDN bytes, cached in slices keyed by path (the signed query string is ignored).
  server {{
    listen 127.0.0.1:{lfs};
    location / {{
      slice {e.nginx_slice};
      proxy_pass http://cdn;
      proxy_set_header Host {e.cdn_netloc};
      proxy_set_header Range $slice_range;
      proxy_cache_key $uri$slice_range;
      proxy_cache_valid 200 206 1d;
    }}
  }}
"""


ALL = [Direct, NginxStatic, NginxCache, OlahPy, OlahRs]
BY_KEY = {c.key: c for c in ALL}
