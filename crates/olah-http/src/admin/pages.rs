//! The HTML pages: `/` (the landing page: what this server is, how to point clients at it) and
//! `/admin` (a static shell whose small inline script polls `/admin/api/stats` and renders it
//! with DOM calls and `textContent` only — repository names and error messages are input, never
//! markup). No external resource and no build step; the page's CSP allows nothing else.

use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, header};

use crate::app::App;

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// `/`: what the mirror is and how to use it, with this mirror's own URL.
pub fn landing(app: &App, headers: &HeaderMap, head: bool) -> Response {
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let base = match &app.mirror {
        Some(m) => m.policy().mirror_base(host),
        // Model-bin mode has no configured public name: the Host the client used, if it looks
        // like one.
        None => format!(
            "http://{}",
            host.filter(|h| plausible_host(h))
                .unwrap_or("<this server's host:port>")
        ),
    };
    let b = escape(&base);
    let what = if app.mirror.is_some() {
        "a caching mirror of the Hugging Face Hub. Point your Hugging Face clients at it: the \
         first download of a file comes from the Hub while the mirror keeps a verified copy; \
         every later download, by anyone, comes from this server's disk."
    } else {
        "serving local model directories (model-bin mode) as Hugging Face Hub repositories. \
         Point your Hugging Face clients at it to load them."
    };
    let body = format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>olah-rs {VERSION} — Hugging Face Hub mirror</title>
<style>{CSS}</style></head>
<body><main>
<h1>olah-rs <small>{VERSION}</small></h1>
<p>This server (<code>{b}</code>) is {what}</p>
<h2>Use it</h2>
<p>With the <code>hf</code> CLI (huggingface_hub):</p>
<pre>export HF_ENDPOINT={b}
hf download gpt2</pre>
<p>From Python:</p>
<pre>from huggingface_hub import snapshot_download
snapshot_download("gpt2", endpoint="{b}")</pre>
<p>With curl (any file, as on the Hub):</p>
<pre>curl -L -O {b}/gpt2/resolve/main/config.json</pre>
<p>Datasets and spaces work the same way (<code>hf download --repo-type dataset …</code>).
Private and gated repositories need your own token (<code>HF_TOKEN</code>), which the mirror
passes to the Hub to check your access.</p>
<h2>Operate it</h2>
<ul>
<li><a href="/admin">/admin</a>: cache, hit ratio, downloads, fills in flight, recent errors
(from this host, or with the admin token)</li>
<li><a href="/metrics">/metrics</a>: Prometheus metrics</li>
<li><a href="/healthz">/healthz</a> and <a href="/readyz">/readyz</a>: liveness and readiness</li>
</ul>
</main></body></html>
"#
    );
    html(body, head)
}

/// `/admin`: the shell; the script fills it from `/admin/api/stats` every few seconds.
pub fn admin(head: bool) -> Response {
    let body = format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>olah-rs admin</title>
<style>{CSS}</style></head>
<body><main class="wide">
<h1>olah-rs <small>admin · <span id="version">{VERSION}</span> · up <span id="uptime">–</span></small></h1>
<p id="status" class="muted">Loading…</p>
<section class="cards">
 <div class="card"><h3>Cache</h3><div class="big" id="cache-size">–</div>
  <div class="bar"><div id="cache-bar"></div></div><div class="muted" id="cache-limit">–</div></div>
 <div class="card"><h3>Hit ratio</h3><div class="big" id="hit-ratio">–</div>
  <div class="muted" id="lookups">–</div></div>
 <div class="card"><h3>Bytes saved</h3><div class="big" id="bytes-saved">–</div>
  <div class="muted">served from the cache</div></div>
 <div class="card"><h3>Upstream bytes</h3><div class="big" id="upstream-total">–</div>
  <div class="muted" id="upstream-split">–</div></div>
</section>
<section class="cols">
 <div><h2>Top repos by size</h2>
  <table><thead><tr><th>Repository</th><th>Files</th><th class="n">Size</th></tr></thead>
  <tbody id="by-size"></tbody></table></div>
 <div><h2>Top repos by downloads</h2>
  <table><thead><tr><th>Repository</th><th class="n">Downloads</th><th class="n">Served</th><th class="n">From upstream</th></tr></thead>
  <tbody id="by-downloads"></tbody></table></div>
</section>
<h2>Fills in flight</h2>
<table><thead><tr><th>Repository</th><th>File</th><th>Progress</th><th class="n">Done</th></tr></thead>
<tbody id="fills"></tbody></table>
<h2>Recent errors</h2>
<table><thead><tr><th>Time</th><th>Status</th><th>Code</th><th>Route</th><th>Repository</th><th>Message</th></tr></thead>
<tbody id="errors"></tbody></table>
</main>
<script>{SCRIPT}</script>
</body></html>
"#
    );
    let mut r = html(body, head);
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn html(body: String, head: bool) -> Response {
    let len = body.len();
    let mut r = if head { String::new() } else { body }.into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    if head {
        h.insert(header::CONTENT_LENGTH, len.into());
    }
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
             connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    r
}

/// A `Host` value made of host-name characters only (and not absurdly long).
fn plausible_host(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 255
        && h.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b".-:[]_".contains(&c))
}

/// HTML-escapes text for element content and quoted attributes.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const CSS: &str = r#"
:root{--fg:#1f2328;--muted:#656d76;--line:#d0d7de;--bg:#f6f8fa;--accent:#e8a317;--ok:#2da44e;--bad:#cf222e}
*{box-sizing:border-box}
body{margin:0;font:15px/1.5 system-ui,-apple-system,"Segoe UI",sans-serif;color:var(--fg);background:#fff}
main{max-width:760px;margin:0 auto;padding:24px}
main.wide{max-width:1200px}
h1{margin:0 0 8px;font-size:26px}h1 small{font-size:15px;color:var(--muted);font-weight:normal}
h2{font-size:18px;margin:28px 0 8px}h3{margin:0 0 6px;font-size:13px;text-transform:uppercase;letter-spacing:.04em;color:var(--muted)}
pre,code{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:13px}
pre{background:var(--bg);border:1px solid var(--line);border-radius:6px;padding:12px;overflow:auto}
a{color:#0969da}
.muted{color:var(--muted);font-size:13px}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(220px,1fr));gap:16px;margin-top:16px}
.card{border:1px solid var(--line);border-radius:8px;padding:14px 16px;background:#fff}
.big{font-size:26px;font-weight:600;margin-bottom:6px}
.bar{height:10px;background:var(--bg);border:1px solid var(--line);border-radius:5px;overflow:hidden;margin:6px 0}
.bar>div{height:100%;width:0;background:var(--accent)}
.bar.fill{min-width:160px}.bar.fill>div{background:var(--ok)}
.cols{display:grid;grid-template-columns:repeat(auto-fit,minmax(420px,1fr));gap:24px}
table{width:100%;border-collapse:collapse;font-size:14px}
th,td{text-align:left;padding:6px 8px;border-bottom:1px solid var(--line);vertical-align:top}
th{font-size:12px;color:var(--muted);text-transform:uppercase;letter-spacing:.04em}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
td.empty{color:var(--muted);font-style:italic}
td.err{color:var(--bad);font-weight:600}
td.msg{word-break:break-word;max-width:420px}
"#;

/// The page's script: fetch, then build rows with `textContent` (never `innerHTML`).
const SCRIPT: &str = r#"
"use strict";
const $ = (id) => document.getElementById(id);
function bytes(n) {
  if (n === null || n === undefined) return "–";
  const u = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let i = 0, v = Number(n);
  while (v >= 1024 && i < u.length - 1) { v /= 1024; i++; }
  return (i === 0 ? String(v) : v.toFixed(v < 10 ? 2 : 1)) + " " + u[i];
}
function duration(s) {
  const d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60);
  return d ? d + "d " + h + "h" : h ? h + "h " + m + "m" : m + "m " + (s % 60) + "s";
}
function repoName(r) { return (r.repo_type && r.repo_type !== "model" ? r.repo_type + "s/" : "") + r.repo_id; }
function cell(tr, text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  tr.appendChild(td);
  return td;
}
function bar(tr, fraction, cls) {
  const td = document.createElement("td");
  const outer = document.createElement("div");
  outer.className = "bar " + (cls || "");
  const inner = document.createElement("div");
  inner.style.width = Math.max(0, Math.min(100, fraction * 100)).toFixed(1) + "%";
  outer.appendChild(inner);
  td.appendChild(outer);
  tr.appendChild(td);
}
function rows(id, list, columns, emptyText) {
  const body = $(id);
  const fresh = document.createElement("tbody");
  fresh.id = id;
  if (!list || list.length === 0) {
    const tr = document.createElement("tr");
    const td = cell(tr, emptyText, "empty");
    td.colSpan = columns;
    fresh.appendChild(tr);
  } else {
    for (const item of list) fresh.appendChild(item);
  }
  body.replaceWith(fresh);
}
function render(s) {
  $("version").textContent = s.version;
  $("uptime").textContent = duration(s.uptime_seconds);
  const size = s.cache.size_bytes, limit = s.cache.limit_bytes;
  $("cache-size").textContent = bytes(size);
  $("cache-limit").textContent = limit ? "of " + bytes(limit) + " (" + (100 * size / limit).toFixed(1) + " %)" : "no size limit";
  $("cache-bar").style.width = (limit ? Math.min(100, 100 * size / limit) : 0).toFixed(1) + "%";
  const l = s.lookups;
  $("hit-ratio").textContent = s.hit_ratio === null ? "–" : (100 * s.hit_ratio).toFixed(1) + " %";
  $("lookups").textContent = l.hit + " hits · " + l.miss + " misses · " + l.partial + " partial · " + l.revalidated + " revalidated · " + l.stale + " stale";
  $("bytes-saved").textContent = bytes(s.bytes_saved);
  const u = s.upstream_bytes;
  $("upstream-total").textContent = bytes(u.total);
  $("upstream-split").textContent = "files " + bytes(u.file) + " · xorbs " + bytes(u.xorb) + " · api " + bytes(u.api);
  rows("by-size", s.top_repos_by_size.map((r) => {
    const tr = document.createElement("tr");
    cell(tr, repoName(r)); cell(tr, String(r.files)); cell(tr, bytes(r.bytes), "n");
    return tr;
  }), 3, s.top_repos_by_size_error ? "unavailable: " + s.top_repos_by_size_error : "nothing cached yet");
  rows("by-downloads", s.top_repos_by_downloads.map((r) => {
    const tr = document.createElement("tr");
    cell(tr, repoName(r)); cell(tr, String(r.downloads), "n"); cell(tr, bytes(r.bytes), "n"); cell(tr, bytes(r.upstream_bytes), "n");
    return tr;
  }), 4, "no downloads yet");
  rows("fills", s.fills_in_flight.map((f) => {
    const tr = document.createElement("tr");
    cell(tr, repoName(f)); cell(tr, f.path);
    bar(tr, f.bytes_total ? f.bytes_done / f.bytes_total : 0, "fill");
    cell(tr, bytes(f.bytes_done) + " / " + bytes(f.bytes_total), "n");
    return tr;
  }), 4, "no fill running");
  rows("errors", s.recent_errors.map((e) => {
    const tr = document.createElement("tr");
    cell(tr, new Date(e.time * 1000).toLocaleString()); cell(tr, String(e.status), "err");
    cell(tr, e.code || ""); cell(tr, e.route); cell(tr, e.repo || ""); cell(tr, e.message, "msg");
    return tr;
  }), 6, "no errors");
  $("status").textContent = "Updated " + new Date().toLocaleTimeString() + " · refreshes every 3 s";
}
async function refresh() {
  try {
    const r = await fetch("/admin/api/stats", { cache: "no-store", credentials: "same-origin" });
    if (!r.ok) throw new Error("HTTP " + r.status + " " + (r.headers.get("x-error-message") || ""));
    render(await r.json());
  } catch (e) {
    $("status").textContent = "Cannot load /admin/api/stats: " + e.message;
  }
}
refresh();
setInterval(refresh, 3000);
"#;
