//! `GET /admin/api/stats`: the admin page's figures as JSON.
//!
//! ```json
//! {
//!   "version": "0.1.0",                 // olah-rs version
//!   "uptime_seconds": 3600,
//!   "cache": { "size_bytes": 123, "limit_bytes": 1000 },   // limit null when none
//!   "lookups": { "hit": 9, "miss": 1, "partial": 0, "stale": 0, "revalidated": 0 },
//!   "hit_ratio": 0.9,                   // (hit + revalidated + stale) / all lookups; null if none
//!   "served_bytes": { "cache": 10, "upstream": 5 },   // body bytes sent to clients
//!   "bytes_saved": 10,                  // = served from the cache: not fetched again upstream
//!   "upstream_bytes": { "file": 5, "xorb": 0, "api": 2, "total": 7 },   // received
//!   "top_repos_by_size": [ RepoSummary… ],      // ≤ 10, largest first; see
//!                                              // olah_service::catalog::RepoSummary
//!   "top_repos_by_downloads": [                 // ≤ 10, most downloads first
//!     { "repo_type": "model", "repo_id": "ns/name", "downloads": 3, "bytes": 30,
//!       "upstream_bytes": 10 } ],               // upstream: fetched by fills
//!   "fills_in_flight": [                        // ≤ 50, oldest first
//!     { "repo_type": "model", "repo_id": "ns/name", "path": "w.bin", "size": 100,
//!       "bytes_total": 100, "bytes_done": 40, "seconds": 2 } ],
//!   "recent_errors": [                          // ≤ 50, newest first
//!     { "time": 1700000000, "status": 502, "code": "ProxyUnavailable", "route": "resolve",
//!       "repo": "models/ns/name", "message": "…" } ]
//! }
//! ```
//!
//! The totals come from `olah_metrics` (the same counters `/metrics` shows), the cache size from
//! the store, the per-repo figures from `olah_service::stats::Activity` (bounded), the sizes per
//! repo from the catalog (rescanned at most every 10 s). A catalog failure leaves
//! `top_repos_by_size` empty and sets `"top_repos_by_size_error"`.

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, header};
use olah_metrics::{Lookup, ServedFrom, UpstreamKind, metrics};
use serde_json::{Value, json};

use crate::app::App;

/// How many repositories each top list shows.
const TOP: usize = 10;
/// Most fills listed.
const MAX_FILLS: usize = 50;

/// The stats document (see the module doc). `None` in model-bin mode.
pub async fn document(app: &App) -> Option<Value> {
    let m = app.mirror.as_ref()?;
    let a = m.activity();
    let mm = metrics();
    let look = |o| mm.lookups(o);
    let (hit, miss, partial, stale, reval) = (
        look(Lookup::hit),
        look(Lookup::miss),
        look(Lookup::partial),
        look(Lookup::stale),
        look(Lookup::revalidated),
    );
    let all = hit + miss + partial + stale + reval;
    let hit_ratio = (all > 0).then(|| (hit + reval + stale) as f64 / all as f64);
    let from_cache = mm.served_total(ServedFrom::cache);
    let up = |k| mm.upstream_total(k);
    let (file, xorb, api) = (
        up(UpstreamKind::file),
        up(UpstreamKind::xorb),
        up(UpstreamKind::api),
    );
    let (size, limit) = m.cache_usage();
    let (by_size, size_error) = match a.repos_by_size(&m.catalog()).await {
        Ok(list) => (list.iter().take(TOP).cloned().collect::<Vec<_>>(), None),
        Err(e) => (Vec::new(), Some(e.message)),
    };
    let mut doc = json!({
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": a.uptime().as_secs(),
        "cache": { "size_bytes": size, "limit_bytes": limit },
        "lookups": {
            "hit": hit, "miss": miss, "partial": partial, "stale": stale, "revalidated": reval,
        },
        "hit_ratio": hit_ratio,
        "served_bytes": {
            "cache": from_cache,
            "upstream": mm.served_total(ServedFrom::upstream),
        },
        "bytes_saved": from_cache,
        "upstream_bytes": { "file": file, "xorb": xorb, "api": api, "total": file + xorb + api },
        "top_repos_by_size": by_size,
        "top_repos_by_downloads": a.top_by_downloads(TOP),
        "fills_in_flight": a.fills(MAX_FILLS),
        "recent_errors": a.errors(),
    });
    if let (Some(e), Some(o)) = (size_error, doc.as_object_mut()) {
        o.insert("top_repos_by_size_error".into(), Value::String(e));
    }
    Some(doc)
}

/// The answer of `/admin/api/stats` (serve mode; the caller checked access and mode).
pub async fn answer(app: &App, head: bool) -> Response {
    let doc = document(app).await.unwrap_or(Value::Null);
    let body = if head { String::new() } else { doc.to_string() };
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}
