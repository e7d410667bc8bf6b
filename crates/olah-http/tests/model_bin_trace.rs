//! model-bin mode answers through the one router, so its requests get the request span
//! (a test binary of its own: the log subscriber is per thread, and tests running beside it
//! would settle the callsites' interest without it).

use tower::ServiceExt;

/// Collects what the log subscriber writes.
#[derive(Clone, Default)]
struct Capture(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn model_bin_requests_get_the_request_span() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("acme/m1");
    std::fs::create_dir_all(&p).expect("mkdir");
    std::fs::write(p.join("config.json"), b"{}").expect("write");
    let app = olah_http::router(olah_http::App::model_bin(dir.path().to_path_buf()));
    let cap = Capture::default();
    let sub = tracing_subscriber::fmt()
        .with_writer({
            let cap = cap.clone();
            move || cap.clone()
        })
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(sub);
    let req = http::Request::get("/acme/m1/resolve/main/config.json")
        .body(axum::body::Body::empty())
        .expect("request");
    let resp = app.oneshot(req).await.expect("infallible");
    assert_eq!(resp.status(), http::StatusCode::OK);
    let log = String::from_utf8(cap.0.lock().expect("lock").clone()).expect("utf-8");
    let line = log
        .lines()
        .find(|l| l.contains("response"))
        .unwrap_or_else(|| panic!("no response line in {log:?}"));
    for want in [
        "request{",
        "path=/acme/m1/resolve/main/config.json",
        "repo=",
        "source=\"dir\"",
        "cache=\"local\"",
        "commit=",
    ] {
        assert!(line.contains(want), "{want} missing in {line}");
    }
}
