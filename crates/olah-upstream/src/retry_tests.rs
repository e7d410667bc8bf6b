//! Retries against local servers that count what reached them.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use http::{HeaderMap, Method};
use olah_metrics::{UpstreamKind, metrics};

use crate::test_server::TestServer;
use crate::{HubRequest, RetryPolicy, Upstream, UpstreamError};

/// A server whose n-th request (from 0) is answered `answers[n]` (the last one repeats).
async fn scripted(answers: Vec<(u16, &'static str)>) -> TestServer {
    let n = Arc::new(AtomicUsize::new(0));
    TestServer::start(move |_| {
        let i = n.fetch_add(1, Ordering::SeqCst).min(answers.len() - 1);
        let (status, extra) = answers[i];
        (status, extra.to_string())
    })
    .await
}

/// Quick backoff, so tests that exhaust retries stay fast.
fn quick() -> RetryPolicy {
    RetryPolicy {
        min_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(40),
        ..RetryPolicy::default()
    }
}

fn upstream(s: &TestServer, policy: RetryPolicy) -> Upstream {
    Upstream::new(&format!("http://127.0.0.1:{}", s.port), &[])
        .unwrap()
        .with_retry(policy)
}

fn get(path: &str) -> HubRequest<'_> {
    HubRequest {
        method: Method::GET,
        path_and_query: path,
        auth: None,
        headers: HeaderMap::new(),
        body: None,
    }
}

#[tokio::test]
async fn a_503_then_200_is_retried_and_succeeds() {
    for status in [502, 503, 504] {
        let s = scripted(vec![(status, ""), (200, "")]).await;
        let up = upstream(&s, quick());
        let resp = up.hub(get("/api/models/a/b")).await.unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{status}");
        assert_eq!(&resp.read_limited(10).await.unwrap()[..], b"ok");
        assert_eq!(s.seen().len(), 2, "{status}");
    }
    // The same for file downloads, absolute URLs and HEADs.
    let s = scripted(vec![(503, ""), (206, "")]).await;
    let up = upstream(&s, quick());
    let r = up.get_following("/f", None, Some((0, 1))).await.unwrap();
    assert_eq!(r.status().as_u16(), 206);
    let s = scripted(vec![(503, ""), (200, "")]).await;
    let up = upstream(&s, quick());
    let u = format!("http://127.0.0.1:{}/xorb", s.port);
    assert_eq!(
        up.get_absolute(UpstreamKind::file, &u, None, None)
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(up.head_absolute(&u).await.unwrap().status(), 200);
    let seen = s.seen();
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert_eq!(seen[2].method, "HEAD");
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let s = scripted(vec![(503, "retry-after: 1\r\n"), (200, "")]).await;
    let up = upstream(&s, quick());
    let t = Instant::now();
    let resp = up.hub(get("/x")).await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert!(t.elapsed() >= Duration::from_secs(1), "{:?}", t.elapsed());
    assert_eq!(s.seen().len(), 2);
}

#[tokio::test]
async fn a_retry_after_past_the_cap_is_passed_on_at_once() {
    for ra in ["3600", "11", "Fri, 31 Dec 9999 23:59:59 GMT"] {
        let header = format!("retry-after: {ra}\r\n");
        let s = scripted(vec![(503, header.leak()), (200, "")]).await;
        let up = upstream(&s, quick());
        let resp = up.hub(get("/x")).await.unwrap();
        assert_eq!(resp.status().as_u16(), 503, "{ra}");
        assert_eq!(resp.headers()["retry-after"].to_str().unwrap(), ra);
        assert_eq!(s.seen().len(), 1, "{ra}");
    }
}

#[tokio::test]
async fn requests_with_a_body_are_not_retried() {
    for (method, body) in [
        (Method::POST, Some(&b"paths=a"[..])),
        (Method::GET, Some(&b"x"[..])),
        (Method::POST, None),
    ] {
        let s = scripted(vec![(503, ""), (200, "")]).await;
        let up = upstream(&s, quick());
        let resp = up
            .hub(HubRequest {
                method: method.clone(),
                path_and_query: "/api/models/a/b/paths-info/main",
                auth: None,
                headers: HeaderMap::new(),
                body: body.map(bytes::Bytes::from_static),
            })
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 503, "{method} {body:?}");
        let seen = s.seen();
        assert_eq!(seen.len(), 1, "{method} {body:?}");
        assert_eq!(seen[0].method, method.as_str());
    }
}

#[tokio::test]
async fn retries_are_bounded() {
    let s = scripted(vec![(503, "")]).await;
    let up = upstream(&s, quick());
    assert_eq!(up.hub(get("/x")).await.unwrap().status().as_u16(), 503);
    assert_eq!(s.seen().len(), 3, "one attempt and the default two retries");
    let s = scripted(vec![(503, "")]).await;
    let up = upstream(
        &s,
        RetryPolicy {
            max_retries: 4,
            ..quick()
        },
    );
    assert_eq!(up.hub(get("/x")).await.unwrap().status().as_u16(), 503);
    assert_eq!(s.seen().len(), 5);
    // Turned off: one attempt.
    let s = scripted(vec![(503, ""), (200, "")]).await;
    let up = upstream(&s, RetryPolicy::none());
    assert_eq!(up.hub(get("/x")).await.unwrap().status().as_u16(), 503);
    assert_eq!(s.seen().len(), 1);
}

#[tokio::test]
async fn rate_limits_are_relayed_unless_enabled() {
    let s = scripted(vec![(429, "retry-after: 0\r\n"), (200, "")]).await;
    let up = upstream(&s, quick());
    assert_eq!(up.hub(get("/x")).await.unwrap().status().as_u16(), 429);
    assert_eq!(s.seen().len(), 1);
    let s = scripted(vec![(429, "retry-after: 0\r\n"), (200, "")]).await;
    let up = upstream(
        &s,
        RetryPolicy {
            retry_rate_limited: true,
            ..quick()
        },
    );
    assert_eq!(up.hub(get("/x")).await.unwrap().status().as_u16(), 200);
    assert_eq!(s.seen().len(), 2);
}

#[tokio::test]
async fn other_answers_are_not_retried() {
    for status in [200, 404, 500, 401] {
        let s = scripted(vec![(status, ""), (200, "")]).await;
        let up = upstream(&s, quick());
        assert_eq!(up.hub(get("/x")).await.unwrap().status().as_u16(), status);
        assert_eq!(s.seen().len(), 1, "{status}");
    }
}

#[tokio::test]
async fn a_body_cut_short_is_an_error_and_not_retried() {
    // 200 announcing 10 bytes, 2 sent, then the connection closes.
    let s = scripted(vec![(200, "content-length: 10\r\n")]).await;
    let up = upstream(&s, quick());
    let resp = up.hub(get("/x")).await.unwrap();
    assert_eq!(resp.content_length(), Some(10));
    let e = resp.read_limited(100).await.unwrap_err();
    assert!(matches!(e, UpstreamError::Unreachable(_)), "{e:?}");
    assert_eq!(s.seen().len(), 1);
}

#[tokio::test]
async fn connect_errors_are_retried_with_backoff() {
    // A port nothing listens on: every attempt is refused.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let up = Upstream::new(&format!("http://127.0.0.1:{port}"), &[])
        .unwrap()
        .with_retry(RetryPolicy {
            min_delay: Duration::from_millis(150),
            max_delay: Duration::from_secs(1),
            ..RetryPolicy::default()
        });
    let t = Instant::now();
    let r = up.hub(get("/x")).await;
    assert!(matches!(r, Err(UpstreamError::Unreachable(_))), "{r:?}");
    // Two retries: at least 150 ms, then at least 300 ms.
    assert!(
        t.elapsed() >= Duration::from_millis(450),
        "{:?}",
        t.elapsed()
    );
}

/// Every attempt is counted with its kind and status (0: no answer), and body bytes as they are
/// read. Deltas only: tests of this binary share the process's metrics (none other uses the
/// `xorb` kind or status 418).
#[tokio::test]
async fn attempts_statuses_and_body_bytes_are_counted() {
    let m = metrics();
    let reqs = |status| {
        m.upstream_requests
            .get_or_create(&olah_metrics::UpstreamLabels {
                kind: UpstreamKind::xorb,
                status,
            })
            .get()
    };
    let (bytes0, r503, r418, seen0) = (
        m.upstream_total(UpstreamKind::xorb),
        reqs(503),
        reqs(418),
        m.upstream_first_byte_count(),
    );
    let s = scripted(vec![(503, ""), (418, "")]).await;
    let up = upstream(&s, quick());
    let u = format!("http://127.0.0.1:{}/xorb", s.port);
    let r = up
        .get_absolute(UpstreamKind::xorb, &u, None, None)
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 418);
    // Nothing read yet: nothing counted.
    assert_eq!(m.upstream_total(UpstreamKind::xorb), bytes0);
    assert_eq!(&r.read_limited(10).await.unwrap()[..], b"ok");
    assert_eq!(m.upstream_total(UpstreamKind::xorb), bytes0 + 2);
    assert_eq!((reqs(503), reqs(418)), (r503 + 1, r418 + 1));
    assert!(m.upstream_first_byte_count() >= seen0 + 2);
    // No answer at all: status 0.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let up = Upstream::new(&format!("http://127.0.0.1:{closed}"), &[])
        .unwrap()
        .with_retry(RetryPolicy::none());
    let r0 = reqs(0);
    let u = format!("http://127.0.0.1:{closed}/xorb");
    assert!(
        up.get_absolute(UpstreamKind::xorb, &u, None, None)
            .await
            .is_err()
    );
    assert_eq!(reqs(0), r0 + 1);
}
