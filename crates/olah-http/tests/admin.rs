//! The landing page, the admin page and `/admin/api/stats` through the one router: access
//! (loopback peer, admin bearer token, 403 otherwise — fail closed without a peer address), the
//! stats document after a real download from the fake Hub, the error ring, model-bin mode.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use olah_config::{Config, Secret};
use olah_http::serve::PeerAddr;
use olah_http::{App, Mirror};
use olah_testkit::{FakeHub, Fixture};
use serde_json::Value;
use tower::ServiceExt;

const LOCAL: &str = "127.0.0.1:50000";
const REMOTE: &str = "192.0.2.7:50000";
const LFS: &str = "/acme/tiny/resolve/main/model.bin";

struct Got {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Got {
    fn h(&self, k: &str) -> &str {
        self.headers
            .get(k)
            .map(|v| v.to_str().expect("ascii"))
            .unwrap_or("")
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("json body")
    }
    fn text(&self) -> String {
        String::from_utf8(self.body.to_vec()).expect("utf-8")
    }
}

/// A request through the router, from `peer` (none: in-process, as without the listener).
async fn call(
    app: &Router,
    method: &str,
    uri: &str,
    peer: Option<&str>,
    headers: &[(&str, &str)],
) -> Got {
    let mut b = http::Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let mut req = b.body(Body::empty()).expect("request");
    if let Some(p) = peer {
        let addr: SocketAddr = p.parse().expect("addr");
        req.extensions_mut().insert(PeerAddr(addr));
    }
    let resp = app.clone().oneshot(req).await.expect("infallible");
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .expect("body");
    Got {
        status,
        headers,
        body,
    }
}

fn netloc(u: &str) -> String {
    u.split_once("//").expect("url").1.to_string()
}

struct Served {
    app: Router,
    _hub: Option<FakeHub>,
    _tmp: tempfile::TempDir,
}

/// A mirror of `hub_netloc` (and CDN) with an optional admin token.
fn mirror_app(
    hub: Option<FakeHub>,
    hub_netloc: String,
    cdn: String,
    token: Option<&str>,
) -> Served {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = Config {
        repos_path: tmp.path().to_path_buf(),
        hf_scheme: "http".into(),
        hf_netloc: hub_netloc,
        hf_lfs_netloc: cdn,
        mirror_scheme: "http".into(),
        mirror_netloc: "mirror.test:8090".into(),
        admin_token: token.map(Secret::new),
        ..Default::default()
    };
    let mirror = Arc::new(Mirror::open(Arc::new(cfg)).expect("mirror"));
    Served {
        app: olah_http::router(App::serve(mirror)),
        _hub: hub,
        _tmp: tmp,
    }
}

async fn with_hub(token: Option<&str>) -> Served {
    let hub = FakeHub::start(Fixture::standard_with(1 << 16, 1 << 16))
        .await
        .expect("fake hub");
    let (h, c) = (netloc(hub.hub_url()), netloc(hub.cdn_url()));
    mirror_app(Some(hub), h, c, token)
}

/// A mirror whose upstream refuses connections (nothing listens on the port).
fn without_upstream() -> Served {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead = l.local_addr().expect("addr").to_string();
    drop(l);
    mirror_app(None, dead.clone(), dead, None)
}

fn assert_forbidden(g: &Got, what: &str) {
    assert_eq!(g.status, StatusCode::FORBIDDEN, "{what}");
    assert_eq!(g.h("x-error-code"), "Forbidden", "{what}");
    assert!(g.json()["error"].as_str().is_some(), "{what}: Hub-shaped");
}

#[tokio::test]
async fn admin_routes_answer_loopback_peers_and_refuse_the_others() {
    let s = without_upstream();
    for uri in ["/admin", "/admin/api/stats"] {
        let ok = call(&s.app, "GET", uri, Some(LOCAL), &[]).await;
        assert_eq!(ok.status, StatusCode::OK, "{uri} from loopback");
        let v6 = call(&s.app, "GET", uri, Some("[::1]:4000"), &[]).await;
        assert_eq!(v6.status, StatusCode::OK, "{uri} from ::1");
        assert_forbidden(&call(&s.app, "GET", uri, Some(REMOTE), &[]).await, uri);
        // No peer address (not through the listener): not loopback.
        assert_forbidden(&call(&s.app, "GET", uri, None, &[]).await, uri);
        // No token configured: a bearer opens nothing.
        let b = call(
            &s.app,
            "GET",
            uri,
            Some(REMOTE),
            &[("authorization", "Bearer anything")],
        )
        .await;
        assert_forbidden(&b, uri);
    }
    // The cache tools pass the same check.
    let tool = call(&s.app, "POST", "/admin/api/cache/gc", Some(REMOTE), &[]).await;
    assert_forbidden(&tool, "cache tool");
    // The landing page is open.
    let landing = call(&s.app, "GET", "/", Some(REMOTE), &[]).await;
    assert_eq!(landing.status, StatusCode::OK);
}

#[tokio::test]
async fn the_admin_token_opens_the_admin_routes_from_anywhere() {
    let s = mirror_app(
        None,
        "127.0.0.1:9".into(),
        "127.0.0.1:9".into(),
        Some("s3cret"),
    );
    let good = [("authorization", "Bearer s3cret")];
    for uri in ["/admin", "/admin/api/stats"] {
        for peer in [Some(REMOTE), None] {
            let g = call(&s.app, "GET", uri, peer, &good).await;
            assert_eq!(g.status, StatusCode::OK, "{uri} {peer:?}");
        }
        for bad in [
            "Bearer s3cre",
            "Bearer s3cretx",
            "Bearer",
            "Basic s3cret",
            "s3cret",
        ] {
            let g = call(&s.app, "GET", uri, Some(REMOTE), &[("authorization", bad)]).await;
            assert_forbidden(&g, bad);
        }
        assert_forbidden(&call(&s.app, "GET", uri, Some(REMOTE), &[]).await, uri);
        // Loopback stays allowed with a token configured.
        let local = call(&s.app, "GET", uri, Some(LOCAL), &[]).await;
        assert_eq!(local.status, StatusCode::OK);
    }
}

#[tokio::test]
async fn stats_list_a_downloaded_repo_and_the_cache_it_fills() {
    let s = with_hub(None).await;
    let before = call(&s.app, "GET", "/admin/api/stats", Some(LOCAL), &[]).await;
    assert_eq!(before.h("content-type"), "application/json");
    let v = before.json();
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(v["top_repos_by_downloads"], serde_json::json!([]));
    for key in [
        "uptime_seconds",
        "cache",
        "lookups",
        "hit_ratio",
        "served_bytes",
        "bytes_saved",
        "upstream_bytes",
        "top_repos_by_size",
        "fills_in_flight",
        "recent_errors",
    ] {
        assert!(v.get(key).is_some(), "{key} missing in {v}");
    }
    for key in ["hit", "miss", "partial", "stale", "revalidated"] {
        assert!(v["lookups"][key].is_u64(), "lookups.{key}");
    }
    for key in ["file", "xorb", "api", "total"] {
        assert!(v["upstream_bytes"][key].is_u64(), "upstream_bytes.{key}");
    }
    assert!(v["cache"]["limit_bytes"].is_null(), "no limit configured");

    let file = call(&s.app, "GET", LFS, None, &[]).await;
    assert_eq!(file.status, StatusCode::OK);
    let size = file.body.len() as u64;
    let again = call(&s.app, "GET", LFS, None, &[]).await;
    assert_eq!(again.status, StatusCode::OK);
    // A HEAD is not a download.
    call(&s.app, "HEAD", LFS, None, &[]).await;

    let v = call(&s.app, "GET", "/admin/api/stats", Some(LOCAL), &[])
        .await
        .json();
    let top = &v["top_repos_by_downloads"][0];
    assert_eq!(top["repo_type"], "model");
    assert_eq!(top["repo_id"], "acme/tiny");
    assert_eq!(top["downloads"], 2);
    assert_eq!(top["bytes"], 2 * size);
    assert_eq!(
        top["upstream_bytes"], size,
        "the first download filled the cache, the second read it"
    );
    assert!(
        v["cache"]["size_bytes"].as_u64().expect("size") >= size,
        "the cache holds the file: {v}"
    );
    assert_eq!(v["fills_in_flight"], serde_json::json!([]), "fills ended");
    assert_eq!(v["recent_errors"], serde_json::json!([]));
}

#[tokio::test]
async fn failed_requests_land_in_the_error_ring_without_headers() {
    let s = without_upstream();
    let failed = call(
        &s.app,
        "GET",
        LFS,
        None,
        &[("authorization", "Bearer hf_secret_token")],
    )
    .await;
    assert!(failed.status.is_server_error(), "{}", failed.status);
    // A 404 is not an error of the mirror.
    call(&s.app, "GET", "/nope/nope/nope", None, &[]).await;
    let v = call(&s.app, "GET", "/admin/api/stats", Some(LOCAL), &[]).await;
    let errors = v.json()["recent_errors"].clone();
    let list = errors.as_array().expect("array");
    assert_eq!(list.len(), 1, "{errors}");
    let e = &list[0];
    assert_eq!(e["status"], failed.status.as_u16());
    assert_eq!(e["route"], "resolve");
    assert_eq!(e["repo"], "models/acme/tiny");
    assert_eq!(e["code"], failed.h("x-error-code"));
    assert!(!e["message"].as_str().expect("message").is_empty());
    assert!(e["time"].as_u64().expect("time") > 1_600_000_000);
    assert!(!v.text().contains("hf_secret_token"), "no token: {errors}");
}

#[tokio::test]
async fn the_landing_page_says_how_to_use_this_mirror() {
    let s = without_upstream();
    let g = call(&s.app, "GET", "/", None, &[("host", "mirror.test:8090")]).await;
    assert_eq!(g.status, StatusCode::OK);
    assert_eq!(g.h("content-type"), "text/html; charset=utf-8");
    let page = g.text();
    for want in [
        "export HF_ENDPOINT=http://mirror.test:8090",
        "hf download gpt2",
        "curl -L -O http://mirror.test:8090/gpt2/resolve/main/config.json",
        "snapshot_download(\"gpt2\", endpoint=\"http://mirror.test:8090\")",
        "href=\"/admin\"",
        env!("CARGO_PKG_VERSION"),
        "caching mirror",
    ] {
        assert!(page.contains(want), "{want} missing in {page}");
    }
    // A Host the mirror does not answer to is never echoed.
    let other = call(&s.app, "GET", "/", None, &[("host", "evil.example")]).await;
    assert!(!other.text().contains("evil.example"));
    let head = call(&s.app, "HEAD", "/", None, &[]).await;
    assert_eq!((head.status, head.body.len()), (StatusCode::OK, 0));
    let post = call(&s.app, "POST", "/", None, &[]).await;
    assert_eq!(post.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn the_admin_page_is_a_self_contained_shell() {
    let s = without_upstream();
    let g = call(&s.app, "GET", "/admin", Some(LOCAL), &[]).await;
    assert_eq!(g.status, StatusCode::OK);
    assert!(
        g.h("content-security-policy")
            .contains("default-src 'none'")
    );
    let page = g.text();
    assert!(page.contains("/admin/api/stats"));
    assert!(!page.contains("innerHTML"), "data goes through textContent");
    assert!(!page.contains("src=\"http"), "no external resource");
    for id in [
        "cache-bar",
        "hit-ratio",
        "by-size",
        "by-downloads",
        "fills",
        "errors",
    ] {
        assert!(page.contains(&format!("id=\"{id}\"")), "{id}");
    }
}

#[tokio::test]
async fn model_bin_mode_has_a_landing_page_and_no_admin() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = olah_http::router(App::model_bin(dir.path().to_path_buf()));
    let g = call(&app, "GET", "/", None, &[("host", "models.local:8000")]).await;
    assert_eq!(g.status, StatusCode::OK);
    let page = g.text();
    assert!(page.contains("model-bin mode"), "{page}");
    assert!(page.contains("export HF_ENDPOINT=http://models.local:8000"));
    let hostile = call(&app, "GET", "/", None, &[("host", "a\"<b>")]).await;
    assert!(!hostile.text().contains("<b>"));
    assert_eq!(
        call(&app, "GET", "/admin", Some(LOCAL), &[]).await.status,
        StatusCode::NOT_FOUND
    );
    assert_forbidden(
        &call(&app, "GET", "/admin", Some(REMOTE), &[]).await,
        "remote",
    );
}
