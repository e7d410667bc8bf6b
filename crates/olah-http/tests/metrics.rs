//! The metrics move where the events happen: a Hub file downloaded cold then warm through the
//! router (the fake Hub of olah-testkit on 127.0.0.1:0), a local file, and `/metrics` itself.
//! One test in a binary of its own: the metrics are process-wide, so it asserts deltas and no
//! other test of this process downloads beside it.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use http::StatusCode;
use olah_config::Config;
use olah_http::{App, Mirror};
use olah_metrics::{
    HttpLabels, Lookup, MethodLabel, RouteClass, ServedFrom, UpstreamKind, metrics,
};
use olah_testkit::{FakeHub, Fixture};
use tower::ServiceExt;

async fn get(app: &Router, uri: &str) -> (StatusCode, bytes::Bytes) {
    let req = http::Request::get(uri)
        .body(Body::empty())
        .expect("request");
    let resp = app.clone().oneshot(req).await.expect("infallible");
    let status = resp.status();
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .expect("body");
    (status, body)
}

/// Everything the test watches, at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Snap {
    miss: u64,
    hit: u64,
    partial: u64,
    served_cache: u64,
    served_upstream: u64,
    upstream_file: u64,
    resolve_ok: u64,
}

fn snap() -> Snap {
    let m = metrics();
    Snap {
        miss: m.lookups(Lookup::miss),
        hit: m.lookups(Lookup::hit),
        partial: m.lookups(Lookup::partial),
        served_cache: m.served_total(ServedFrom::cache),
        served_upstream: m.served_total(ServedFrom::upstream),
        upstream_file: m.upstream_total(UpstreamKind::file),
        resolve_ok: m
            .http_requests
            .get_or_create(&HttpLabels {
                route: RouteClass::resolve,
                method: MethodLabel::GET,
                status: 200,
            })
            .get(),
    }
}

/// Waits until no fill is in flight (a fill task ends right after its last block's write,
/// which may be just after the client has its bytes); fails after 5 s.
async fn wait_idle() {
    for _ in 0..200 {
        if metrics().fills_in_flight.get() == 0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("fills in flight: {}", metrics().fills_in_flight.get());
}

/// Block size of the test's cache (small, so a file spans several blocks).
const BLOCK: u64 = 64 * 1024;

/// The value of an unlabelled sample in an exposition.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
}

#[tokio::test]
async fn downloads_move_the_metrics_by_what_was_sent_and_fetched() {
    let hub = FakeHub::start(Fixture::standard_with(1 << 16, 1 << 16))
        .await
        .expect("fake hub");
    let tmp = tempfile::tempdir().expect("tempdir");
    let netloc = |u: &str| u.split_once("//").expect("url").1.to_string();
    let cfg = Config {
        repos_path: tmp.path().join("cache"),
        hf_scheme: "http".into(),
        hf_netloc: netloc(hub.hub_url()),
        hf_lfs_netloc: netloc(hub.cdn_url()),
        mirror_scheme: "http".into(),
        mirror_netloc: "mirror.test:8090".into(),
        cache_size_limit: Some(1 << 30),
        cache_block_size: Some(BLOCK),
        ..Default::default()
    };
    let mirror = Arc::new(Mirror::open(Arc::new(cfg)).expect("mirror"));
    let app = olah_http::router(App::serve(mirror));
    const LFS: &str = "/acme/tiny/resolve/main/model.bin";
    const SMALL: &str = "/gpt2/resolve/main/pytorch_model.bin"; // 200 000 B: 4 blocks

    // Cold: a miss, every byte fetched from the upstream once and sent as it arrived.
    let before = snap();
    let (status, body) = get(&app, LFS).await;
    assert_eq!(status, StatusCode::OK);
    let size = body.len() as u64;
    assert!(size > 0);
    let cold = snap();
    assert_eq!(cold.resolve_ok, before.resolve_ok + 1);
    assert_eq!(cold.miss, before.miss + 1, "{before:?} {cold:?}");
    assert_eq!(cold.hit, before.hit);
    let fetched = cold.upstream_file - before.upstream_file;
    assert!(
        fetched >= size && fetched <= size + size / 20,
        "{fetched} for {size}"
    );
    let sent =
        (cold.served_cache - before.served_cache) + (cold.served_upstream - before.served_upstream);
    assert_eq!(sent, size, "{before:?} {cold:?}");
    assert_eq!(cold.served_upstream - before.served_upstream, size);

    // Warm: a hit, every byte from the cache, nothing fetched.
    wait_idle().await;
    let (status, again) = get(&app, LFS).await;
    assert_eq!((status, &again), (StatusCode::OK, &body));
    let warm = snap();
    assert_eq!(warm.hit, cold.hit + 1, "{cold:?} {warm:?}");
    assert_eq!((warm.miss, warm.partial), (cold.miss, cold.partial));
    assert_eq!(warm.served_cache, cold.served_cache + size);
    assert_eq!(warm.served_upstream, cold.served_upstream);
    assert_eq!(warm.upstream_file, cold.upstream_file);
    assert_eq!(warm.resolve_ok, cold.resolve_ok + 1);

    // A range request of the cached file: only the bytes sent count.
    let req = http::Request::get(LFS)
        .header("range", "bytes=10-19")
        .body(Body::empty())
        .expect("request");
    let resp = app.clone().oneshot(req).await.expect("infallible");
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
    let part = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .expect("body");
    assert_eq!(part.len(), 10);
    assert_eq!(snap().served_cache, warm.served_cache + 10);

    // Partial: the first block cached by a range request, then the whole file: the first block
    // comes from disk, the rest from a fill.
    let r0 = snap();
    let req = http::Request::get(SMALL)
        .header("range", "bytes=0-9")
        .body(Body::empty())
        .expect("request");
    let resp = app.clone().oneshot(req).await.expect("infallible");
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
    let _ = axum::body::to_bytes(resp.into_body(), usize::MAX).await;
    // Its block written (until then a reader follows the fill's buffer: upstream bytes).
    wait_idle().await;
    let r1 = snap();
    assert_eq!(r1.miss, r0.miss + 1);
    assert_eq!(r1.served_upstream, r0.served_upstream + 10);
    let (status, whole) = get(&app, SMALL).await;
    assert_eq!(status, StatusCode::OK);
    let small = whole.len() as u64;
    assert!(small > 2 * BLOCK);
    let r2 = snap();
    assert_eq!(r2.partial, r1.partial + 1, "{r1:?} {r2:?}");
    assert_eq!((r2.miss, r2.hit), (r1.miss, r1.hit));
    assert_eq!(r2.served_cache, r1.served_cache + BLOCK);
    assert_eq!(r2.served_upstream, r1.served_upstream + small - BLOCK);
    assert_eq!(r2.upstream_file, r1.upstream_file + small - BLOCK);

    // `/metrics`: the families with their closed label sets, the cache gauges refreshed from the
    // store, nothing of the repository in any label.
    let (status, text) = get(&app, "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    let text = String::from_utf8(text.to_vec()).expect("utf-8");
    for want in [
        "olah_http_requests_total{route=\"resolve\",method=\"GET\",status=\"200\"}",
        "olah_cache_lookups_total{outcome=\"hit\"}",
        "olah_upstream_bytes_total{kind=\"file\"}",
        "olah_upstream_requests_total{kind=\"file\",status=\"206\"}",
        "olah_http_request_duration_seconds_count{route=\"resolve\"}",
        "olah_upstream_first_byte_seconds_count",
    ] {
        assert!(text.contains(want), "{want} missing in\n{text}");
    }
    let cached = sample(&text, "olah_cache_size_bytes").expect("cache size");
    assert!(cached >= size as f64, "cache size {cached} < {size}");
    assert_eq!(
        sample(&text, "olah_cache_limit_bytes"),
        Some((1u64 << 30) as f64)
    );
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        assert!(
            !line.contains("acme")
                && !line.contains("model.bin")
                && !line.contains("tiny")
                && !line.contains("gpt2"),
            "{line}"
        );
    }
    // The fills are over: none in flight (a fill's task ends right after its last block's
    // write).
    wait_idle().await;

    // A local source's bytes count as cache.
    let root = tmp.path().join("models");
    std::fs::create_dir_all(root.join("acme/m1")).expect("mkdir");
    std::fs::write(root.join("acme/m1/config.json"), b"{\"a\": 1}").expect("write");
    let local = olah_http::router(App::model_bin(root));
    let s0 = snap();
    let (status, body) = get(&local, "/acme/m1/resolve/main/config.json").await;
    assert_eq!(status, StatusCode::OK);
    let s1 = snap();
    assert_eq!(s1.served_cache, s0.served_cache + body.len() as u64);
    assert_eq!(s1.served_upstream, s0.served_upstream);
    assert_eq!((s1.hit, s1.miss), (s0.hit, s0.miss), "no cache lookup");

    // An unparseable path is `other`.
    let other = |m: &olah_metrics::Metrics| {
        m.http_requests
            .get_or_create(&HttpLabels {
                route: RouteClass::other,
                method: MethodLabel::GET,
                status: 404,
            })
            .get()
    };
    let o0 = other(metrics());
    let (status, _) = get(&app, "/no/such/thing/here").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(other(metrics()), o0 + 1);
}
