//! The upstream Hub (the fake Hub of olah-testkit on 127.0.0.1:0) as a source through the one
//! router: a miss then a hit with the same headers, conditional requests (strong `If-Range`),
//! ranges and 416, Xet headers, metadata with its `Link` rewritten, and the same header shape
//! as a git source serving the same content.

use std::sync::Arc;

use axum::Router;
use http::StatusCode;
use olah_config::Config;
use olah_http::{App, Mirror};
use olah_testkit::{FakeHub, Fixture, HostKind, RouteKind};

use crate::common::*;

struct Hub {
    hub: FakeHub,
    app: Router,
    _tmp: tempfile::TempDir,
}

async fn hub_app() -> Hub {
    let hub = FakeHub::start(Fixture::standard_with(1 << 16, 1 << 16))
        .await
        .expect("fake hub");
    let tmp = tempfile::tempdir().expect("tempdir");
    let netloc = |u: &str| u.split_once("//").expect("url").1.to_string();
    let cfg = Config {
        repos_path: tmp.path().to_path_buf(),
        hf_scheme: "http".into(),
        hf_netloc: netloc(hub.hub_url()),
        hf_lfs_netloc: netloc(hub.cdn_url()),
        mirror_scheme: "http".into(),
        mirror_netloc: "mirror.test:8090".into(),
        ..Default::default()
    };
    let mirror = Arc::new(Mirror::open(Arc::new(cfg)).expect("mirror"));
    Hub {
        hub,
        app: olah_http::router(App::serve(mirror)),
        _tmp: tmp,
    }
}

/// Every request the fake Hub and CDN received.
fn upstream_total(h: &Hub) -> u64 {
    h.hub
        .stats()
        .requests
        .values()
        .flat_map(|m| m.values())
        .flat_map(|r| r.values())
        .sum()
}

fn upstream_resolves(h: &Hub) -> u64 {
    h.hub.stats().count_route(HostKind::Hub, RouteKind::Resolve)
}

/// The headers a resolve answer must repeat identically (miss and hit, hub and git).
const SHAPE: &[&str] = &[
    "etag",
    "content-length",
    "accept-ranges",
    "x-linked-etag",
    "x-linked-size",
    "content-range",
];

fn names(g: &Got) -> Vec<String> {
    let mut v: Vec<String> = g.headers.keys().map(|k| k.as_str().to_string()).collect();
    v.sort();
    v
}

const LFS: &str = "/acme/tiny/resolve/main/model.bin";

#[tokio::test]
async fn a_hub_file_is_a_miss_then_a_hit_with_the_same_answer() {
    let h = hub_app().await;
    let miss = get(&h.app, LFS).await;
    assert_eq!(miss.status, StatusCode::OK);
    let asked = upstream_resolves(&h);
    assert!(asked >= 1, "a miss asks the Hub");
    // An LFS file: the ETag is its sha256, and the bytes hash to it.
    let sha = sha256_hex(&miss.body);
    assert_eq!(miss.h("etag"), format!("\"{sha}\""));
    assert_eq!(miss.h("x-linked-etag"), format!("\"{sha}\""));
    assert_eq!(miss.h("x-linked-size"), miss.body.len().to_string());
    assert_eq!(miss.h("x-repo-commit").len(), 40);
    let hit = get(&h.app, LFS).await;
    assert_eq!(upstream_resolves(&h), asked, "a hit asks the Hub nothing");
    assert_eq!((hit.status, &hit.body), (miss.status, &miss.body));
    assert_eq!(names(&hit), names(&miss));
    for k in SHAPE.iter().chain(&["x-repo-commit", "content-type"]) {
        assert_eq!(hit.h(k), miss.h(k), "{k}");
    }
    // HEAD: the same headers, no body.
    let head = call(&h.app, "HEAD", LFS, &[]).await;
    assert_eq!((head.status, head.body.len()), (StatusCode::OK, 0));
    assert_eq!(head.h("content-length"), miss.h("content-length"));
    assert_eq!(head.h("etag"), miss.h("etag"));
}

#[tokio::test]
async fn hub_files_answer_conditional_requests_and_ranges() {
    let h = hub_app().await;
    let whole = get(&h.app, LFS).await;
    let etag = whole.h("etag").to_string();
    let weak = format!("W/{etag}");
    let size = whole.body.len();
    // If-None-Match compares weakly: either form is a 304 without a body.
    for tag in [etag.as_str(), weak.as_str()] {
        let g = call(&h.app, "GET", LFS, &[("if-none-match", tag)]).await;
        assert_eq!(
            (g.status, g.body.len()),
            (StatusCode::NOT_MODIFIED, 0),
            "{tag}"
        );
        assert_eq!(g.h("etag"), etag);
    }
    // If-Range compares strongly: the same tag gives the range, a weak one the whole file.
    let r = call(
        &h.app,
        "GET",
        LFS,
        &[("range", "bytes=10-19"), ("if-range", &etag)],
    )
    .await;
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(&r.body[..], &whole.body[10..20]);
    assert_eq!(r.h("content-range"), format!("bytes 10-19/{size}"));
    let w = call(
        &h.app,
        "GET",
        LFS,
        &[("range", "bytes=10-19"), ("if-range", &weak)],
    )
    .await;
    assert_eq!((w.status, &w.body), (StatusCode::OK, &whole.body));
    let other = call(
        &h.app,
        "GET",
        LFS,
        &[("range", "bytes=10-19"), ("if-range", "\"0000\"")],
    )
    .await;
    assert_eq!(other.status, StatusCode::OK);
    // Several ranges: one multipart answer, each part the right bytes, the length exact.
    let m = call(&h.app, "GET", LFS, &[("range", "bytes=0-3,-4")]).await;
    assert_eq!(m.status, StatusCode::PARTIAL_CONTENT);
    assert!(
        m.h("content-type")
            .starts_with("multipart/byteranges; boundary=")
    );
    assert_eq!(m.h("content-length"), m.body.len().to_string());
    let text = m.body.to_vec();
    let find = |needle: &[u8]| text.windows(needle.len()).any(|w| w == needle);
    let mut first = format!("Content-Range: bytes 0-3/{size}\r\n\r\n").into_bytes();
    first.extend_from_slice(&whole.body[..4]);
    let mut last = format!(
        "Content-Range: bytes {}-{}/{size}\r\n\r\n",
        size - 4,
        size - 1
    )
    .into_bytes();
    last.extend_from_slice(&whole.body[size - 4..]);
    assert!(find(&first) && find(&last), "both parts with their bytes");
    // Nothing satisfiable: 416 with the size.
    let u = call(&h.app, "GET", LFS, &[("range", &format!("bytes={size}-"))]).await;
    assert_eq!(u.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(u.h("content-range"), format!("bytes */{size}"));
    assert_eq!(u.code(), Some("RangeNotSatisfiable"));
}

#[tokio::test]
async fn hub_xet_files_link_to_the_mirror() {
    let h = hub_app().await;
    let uri = "/acme/tiny/resolve/main/model.safetensors";
    let g = call(&h.app, "HEAD", uri, &[]).await;
    assert_eq!(g.status, StatusCode::OK);
    let commit = g.h("x-repo-commit").to_string();
    let xh = g.h("x-xet-hash").to_string();
    assert!(!xh.is_empty(), "a Xet file keeps its hash");
    assert_eq!(
        g.h("link"),
        format!(
            "<http://mirror.test:8090/api/models/acme/tiny/xet-read-token/{commit}>; \
             rel=\"xet-auth\", <http://mirror.test:8090/cas/v1/reconstructions/{}>; \
             rel=\"xet-reconstruction-info\"",
            xh.to_ascii_lowercase()
        )
    );
    // The Host the client used names the mirror when it is the mirror's.
    let info = call(
        &h.app,
        "GET",
        uri,
        &[
            ("accept", "application/vnd.xet-fileinfo+json"),
            ("host", "mirror.test:8090"),
        ],
    )
    .await;
    assert_eq!(info.status, StatusCode::OK);
    assert_eq!(info.h("content-type"), "application/vnd.xet-fileinfo+json");
    let v = info.json();
    assert_eq!(v["hash"], xh.as_str());
    assert_eq!(v["casUrl"], "http://mirror.test:8090/cas");
    assert_eq!(v["etag"].as_str(), Some(g.h("etag").trim_matches('"')));
    assert_eq!(
        v["size"].as_u64().map(|s| s.to_string()).as_deref(),
        Some(g.h("content-length"))
    );
    // A regular file has no Xet header.
    let plain = call(&h.app, "HEAD", "/acme/tiny/resolve/main/config.json", &[]).await;
    assert!(plain.headers.get("x-xet-hash").is_none() && plain.headers.get("link").is_none());
}

#[tokio::test]
async fn hub_metadata_is_verbatim_cached_and_links_point_at_the_mirror() {
    let h = hub_app().await;
    let uri = "/api/models/acme/tiny/tree/main?limit=1";
    let first = get(&h.app, uri).await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.json().as_array().map(Vec::len), Some(1));
    let link = first.h("link").to_string();
    assert!(
        link.starts_with("<http://mirror.test:8090/api/models/acme/tiny/tree/main?")
            && link.ends_with("rel=\"next\""),
        "{link}"
    );
    assert_eq!(first.h("content-length"), first.body.len().to_string());
    let trees = || h.hub.stats().count_route(HostKind::Hub, RouteKind::Tree);
    let asked = trees();
    let again = get(&h.app, uri).await;
    assert_eq!(trees(), asked, "the second answer comes from the cache");
    assert_eq!((&again.body, again.h("link")), (&first.body, link.as_str()));
    // paths-info: the same parser and answer shape as the local sources.
    let p = call_body(
        &h.app,
        "POST",
        "/api/models/acme/tiny/paths-info/main",
        &[("content-type", "application/x-www-form-urlencoded")],
        "paths=config.json&paths=nope.txt&expand=false".into(),
    )
    .await;
    assert_eq!(p.status, StatusCode::OK);
    let v = p.json();
    let listed: Vec<&str> = v
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|e| e["path"].as_str())
        .collect();
    assert_eq!(listed, ["config.json"]);
    let bad = call_body(
        &h.app,
        "POST",
        "/api/models/acme/tiny/paths-info/main",
        &[],
        "paths=../etc".into(),
    )
    .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}

/// A git repository with the Hub's `config.json` (regular) and `model.bin` (LFS) bytes.
fn git_twin(root: &std::path::Path, config: &[u8], weights: &[u8]) -> Router {
    let repo = root.join("models/acme/tiny");
    std::fs::create_dir_all(&repo).expect("mkdir");
    write(&repo, "config.json", config);
    write(&repo, "model.bin", pointer(weights).as_bytes());
    git(&repo, DATE1, &["init", "-q"]);
    put_lfs_object(&repo.join(".git"), weights);
    git(&repo, DATE1, &["add", "-A"]);
    git(&repo, DATE1, &["commit", "-q", "-m", "one"]);
    git_app(vec![root.to_path_buf()])
}

#[tokio::test]
async fn a_hub_file_and_a_git_file_with_the_same_content_answer_alike() {
    let h = hub_app().await;
    let cfg = get(&h.app, "/acme/tiny/resolve/main/config.json").await;
    let lfs = get(&h.app, LFS).await;
    assert_eq!((cfg.status, lfs.status), (StatusCode::OK, StatusCode::OK));
    let tmp = tempfile::tempdir().expect("tempdir");
    let git = git_twin(tmp.path(), &cfg.body, &lfs.body);
    // A regular file's ETag is its git blob id on both.
    assert_eq!(cfg.h("etag"), format!("\"{}\"", blob_id(&cfg.body)));
    for uri in ["/acme/tiny/resolve/main/config.json", LFS] {
        for (method, headers) in [
            ("GET", vec![]),
            ("HEAD", vec![]),
            ("GET", vec![("range", "bytes=1-5")]),
            ("GET", vec![("range", "bytes=0-0,2-3")]),
        ] {
            let a = call(&h.app, method, uri, &headers).await;
            let b = call(&git, method, uri, &headers).await;
            let what = format!("{method} {uri} {headers:?}");
            assert_eq!(a.status, b.status, "{what}");
            assert_eq!(names(&a), names(&b), "{what}");
            for k in SHAPE {
                assert_eq!(a.h(k), b.h(k), "{k} of {what}");
            }
            if !a.h("content-type").starts_with("multipart/") {
                assert_eq!(a.body, b.body, "{what}");
            }
        }
    }
}

#[tokio::test]
async fn health_and_readiness_answer_without_the_upstream_and_readiness_sees_an_unwritable_cache() {
    let h = hub_app().await;
    let before = upstream_total(&h);
    for path in ["/health", "/healthz", "/readyz"] {
        let g = get(&h.app, path).await;
        assert_eq!(g.status, StatusCode::OK, "{path}");
        assert_eq!(&g.body[..], b"ok", "{path}");
    }
    let post = call(&h.app, "POST", "/readyz", &[]).await;
    assert_eq!(post.status, StatusCode::METHOD_NOT_ALLOWED);
    // The cache directory goes away (a lost mount): not ready, with the reason, still no
    // upstream request; liveness is unaffected.
    std::fs::remove_dir_all(h._tmp.path()).expect("remove the cache directory");
    let g = get(&h.app, "/readyz").await;
    assert_eq!(g.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(g.code(), Some("NotReady"));
    assert!(
        g.h("x-error-message").contains("cache directory"),
        "{}",
        g.h("x-error-message")
    );
    assert_eq!(get(&h.app, "/healthz").await.status, StatusCode::OK);
    assert_eq!(upstream_total(&h), before, "no upstream request");
}
