//! The two servers (hub host, CDN host), their shared state, and the admin API.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use axum::body::{Body, HttpBody as _};
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use serde_json::json;
use tokio::net::TcpListener;

use crate::faults::{FaultTable, Faults, Injected, wrap_body};
use crate::fixture::{FileFixture, Fixture};
use crate::resp::{hub_error, json_response};
use crate::rewrite::{Rewrite, RewriteTable};
use crate::stats::{HostKind, LoggedRequest, Recorder, RouteKind, Stats};

/// State shared by both servers (and the Rust test that owns the [`FakeHub`]).
pub struct HubState {
    pub(crate) fixture: Fixture,
    pub(crate) hub_url: String,
    pub(crate) cdn_url: String,
    secret: String,
    pub(crate) recorder: Recorder,
    pub(crate) faults: FaultTable,
    pub(crate) rewrites: RewriteTable,
    pub(crate) cas: crate::cas::Cas,
    /// Xet CAS access tokens issued by the token route → expiry (unix seconds).
    /// CAS tokens: token → (expiry, index of the repo it is scoped to).
    pub(crate) xet_tokens: Mutex<HashMap<String, (u64, usize)>>,
    /// LFS objects by sha256.
    pub(crate) lfs_objects: HashMap<String, FileFixture>,
    /// Storage Buckets as they are now (paths are mutable).
    pub(crate) buckets: Mutex<Vec<crate::bucket::LiveBucket>>,
}

impl HubState {
    /// `http://127.0.0.1:P` of the hub host.
    pub fn hub_url(&self) -> &str {
        &self.hub_url
    }

    /// `http://127.0.0.1:Q` of the CDN host.
    pub fn cdn_url(&self) -> &str {
        &self.cdn_url
    }

    /// The fixture served.
    pub fn fixture(&self) -> &Fixture {
        &self.fixture
    }

    /// Counters and the recent-request log.
    pub fn stats(&self) -> Stats {
        self.recorder.snapshot()
    }

    /// Clears counters and log.
    pub fn reset_stats(&self) {
        self.recorder.reset();
    }

    /// Replaces the fault set of `faults.scope` (`Both` replaces both hosts' sets).
    pub fn set_faults(&self, faults: Faults) {
        self.faults.set(faults);
    }

    /// The faults currently applying to `host`, with the remaining one-shot counts.
    pub fn faults(&self, host: HostKind) -> Faults {
        self.faults.current(host)
    }

    /// Removes every fault.
    pub fn clear_faults(&self) {
        self.faults.set(Faults::none());
    }

    /// Replaces the hostile-mode rules ([`Rewrite`]); an empty list clears them.
    pub fn set_rewrites(&self, rules: Vec<Rewrite>) -> Result<(), String> {
        self.rewrites.set(rules)
    }

    /// The hostile-mode rules in force, with what is left of counted ones.
    pub fn rewrites(&self) -> Vec<Rewrite> {
        self.rewrites.current()
    }

    /// Puts spare content number `spare` of bucket `bucket` at `path` (what
    /// `POST /__admin/bucket-overwrite` does). Returns the new Xet hash.
    pub fn overwrite_bucket_path(&self, bucket: &str, path: &str, spare: u64) -> Option<String> {
        let body = json!({"bucket": bucket, "path": path, "spare": spare}).to_string();
        let r = crate::bucket::overwrite(self, body.as_bytes());
        r.status().is_success().then(|| {
            let b = self.fixture.bucket(bucket)?;
            b.spares.get(spare as usize).map(|f| f.xet_hash())
        })?
    }

    /// A signature for a CDN path and expiry, keyed with a random per-process secret.
    pub(crate) fn sign(&self, what: &str, expires: u64) -> String {
        use sha2::Digest as _;
        let d = sha2::Sha256::digest(format!("{}\n{what}\n{expires}", self.secret).as_bytes());
        hex::encode(&d[..16])
    }

    /// A presigned CDN URL for a content sha256, valid for `ttl` seconds; `tag` is the query
    /// parameter naming what it belongs to (`repo=…` or `bucket=…`, already encoded).
    pub(crate) fn cdn_location(&self, sha256: &str, tag: &str, ttl: u64) -> String {
        let expires = crate::resp::now() + ttl;
        let cdn_path = format!("/lfs/{sha256}");
        format!(
            "{}{cdn_path}?{tag}&Expires={expires}&Signature={}",
            self.cdn_url,
            self.sign(&cdn_path, expires)
        )
    }
}

/// A running fake Hub: a hub host and a CDN host on 127.0.0.1.
///
/// Dropping it (or [`FakeHub::shutdown`]) aborts both servers and all their connections.
pub struct FakeHub {
    state: Arc<HubState>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl FakeHub {
    /// Starts both servers on ephemeral ports of 127.0.0.1. Hashes of every file (and the Xet
    /// CAS layout) are computed before this returns.
    pub async fn start(fixture: Fixture) -> std::io::Result<Self> {
        Self::start_on(fixture, 0, 0).await
    }

    /// Starts both servers on the given ports of 127.0.0.1 (0 = ephemeral).
    pub async fn start_on(
        mut fixture: Fixture,
        hub_port: u16,
        cdn_port: u16,
    ) -> std::io::Result<Self> {
        fixture
            .validate()
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        if fixture.tree_page_size == 0 {
            fixture.tree_page_size = 1000;
        }
        let hub_l = TcpListener::bind(("127.0.0.1", hub_port)).await?;
        let cdn_l = TcpListener::bind(("127.0.0.1", cdn_port)).await?;
        let (fixture, cas, lfs_objects) = tokio::task::spawn_blocking(move || {
            let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
            fixture.warm(threads);
            let cas = crate::cas::Cas::build(&fixture);
            let mut lfs = HashMap::new();
            for f in fixture.all_files() {
                if f.lfs {
                    lfs.entry(f.sha256().to_string())
                        .or_insert_with(|| f.clone());
                }
            }
            (fixture, cas, lfs)
        })
        .await
        .map_err(std::io::Error::other)?;
        let state = Arc::new(HubState {
            hub_url: format!("http://{}", hub_l.local_addr()?),
            cdn_url: format!("http://{}", cdn_l.local_addr()?),
            secret: hex::encode(rand::random::<[u8; 16]>()),
            recorder: Recorder::default(),
            faults: FaultTable::default(),
            rewrites: RewriteTable::default(),
            cas,
            xet_tokens: Mutex::default(),
            lfs_objects,
            buckets: Mutex::new(crate::bucket::live(&fixture)),
            fixture,
        });
        let tasks = vec![
            tokio::spawn(accept_loop(hub_l, state.clone(), HostKind::Hub)),
            tokio::spawn(accept_loop(cdn_l, state.clone(), HostKind::Cdn)),
        ];
        Ok(Self { state, tasks })
    }

    /// `http://127.0.0.1:P` of the hub host (what clients use as `HF_ENDPOINT`).
    pub fn hub_url(&self) -> &str {
        &self.state.hub_url
    }

    /// `http://127.0.0.1:Q` of the CDN host (LFS redirects and xorb URLs point here).
    pub fn cdn_url(&self) -> &str {
        &self.state.cdn_url
    }

    /// The shared state (stats, faults, fixture).
    pub fn state(&self) -> &Arc<HubState> {
        &self.state
    }

    /// The fixture served.
    pub fn fixture(&self) -> &Fixture {
        &self.state.fixture
    }

    /// Counters and the recent-request log.
    pub fn stats(&self) -> Stats {
        self.state.stats()
    }

    /// Clears counters and log.
    pub fn reset_stats(&self) {
        self.state.reset_stats();
    }

    /// Replaces the fault set of `faults.scope`.
    pub fn set_faults(&self, faults: Faults) {
        self.state.set_faults(faults);
    }

    /// The faults currently applying to `host`.
    pub fn faults(&self, host: HostKind) -> Faults {
        self.state.faults(host)
    }

    /// Removes every fault.
    pub fn clear_faults(&self) {
        self.state.clear_faults();
    }

    /// Replaces the hostile-mode rules (see [`Rewrite`]); an empty list clears them.
    pub fn set_rewrites(&self, rules: Vec<Rewrite>) -> Result<(), String> {
        self.state.set_rewrites(rules)
    }

    /// Stops both servers and drops every open connection.
    pub fn shutdown(&mut self) {
        for t in self.tasks.drain(..) {
            t.abort();
        }
    }
}

impl Drop for FakeHub {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Accepts connections; each is served on a task of a `JoinSet` owned by this loop, so
/// aborting the loop aborts every connection too.
async fn accept_loop(l: TcpListener, st: Arc<HubState>, host: HostKind) {
    let mut conns = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            acc = l.accept() => {
                let Ok((sock, _)) = acc else {
                    // E.g. out of file descriptors: back off instead of spinning.
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    continue;
                };
                let _ = sock.set_nodelay(true);
                let st = st.clone();
                conns.spawn(async move {
                    let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                        let st = st.clone();
                        async move { Ok::<_, Infallible>(handle(st, host, req.map(Body::new)).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(sock), svc)
                        .await;
                });
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

fn classify(host: HostKind, path: &str) -> RouteKind {
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let at = |i: usize| segs.get(i).copied().unwrap_or("");
    match host {
        HostKind::Cdn => match at(0) {
            "lfs" => RouteKind::Lfs,
            "xorb" => RouteKind::Xorb,
            _ => RouteKind::Other,
        },
        HostKind::Hub => {
            if at(0) == "api" {
                if at(1) == "whoami-v2" {
                    return RouteKind::Whoami;
                }
                if at(1) == "resolve-cache" {
                    return RouteKind::ResolveCache;
                }
                if crate::fixture::Kind::from_plural(at(1)).is_none() {
                    return RouteKind::Other;
                }
                let kw = |s: &str| match s {
                    "revision" => Some(RouteKind::RepoInfo),
                    "tree" => Some(RouteKind::Tree),
                    "paths-info" => Some(RouteKind::PathsInfo),
                    "refs" => Some(RouteKind::Refs),
                    "commits" => Some(RouteKind::Commits),
                    "xet-read-token" => Some(RouteKind::XetToken),
                    _ => None,
                };
                return kw(at(4)).or_else(|| kw(at(3))).unwrap_or(
                    if segs.len() <= 4 && !at(2).is_empty() {
                        RouteKind::RepoInfo
                    } else {
                        RouteKind::Other
                    },
                );
            }
            if at(0) == "cas" || path == "/v1/telemetry" {
                return RouteKind::Cas;
            }
            let off = usize::from(matches!(at(0), "datasets" | "spaces" | "kernels"));
            if at(off + 1) == "resolve" || at(off + 2) == "resolve" {
                RouteKind::Resolve
            } else if at(off + 1) == "raw" || at(off + 2) == "raw" {
                RouteKind::Raw
            } else {
                RouteKind::Other
            }
        }
    }
}

/// Every request of both hosts goes through here: admin, counters, faults, auth, routing,
/// body wrapping, log.
async fn handle(st: Arc<HubState>, host: HostKind, req: Request<Body>) -> Response<Body> {
    let path = req.uri().path().to_string();
    if host == HostKind::Hub
        && let Some(what) = path.strip_prefix("/__admin/")
    {
        let what = what.to_string();
        return admin(&st, &what, req).await;
    }
    let route = classify(host, &path);
    let method = req.method().clone();
    let seq = st.recorder.arrive(host, method.as_str(), route);
    let h = req.headers();
    let hstr = |n: header::HeaderName| h.get(n).and_then(|v| v.to_str().ok()).map(str::to_string);
    let mut entry = LoggedRequest {
        seq,
        host,
        method: method.to_string(),
        uri: req
            .uri()
            .path_and_query()
            .map_or_else(|| path.clone(), |p| p.to_string()),
        route,
        auth: h.contains_key(header::AUTHORIZATION),
        range: hstr(header::RANGE),
        user_agent: hstr(header::USER_AGENT),
        status: 0,
    };
    let rewrite = st.rewrites.plan(host, &req);
    let rf = st.faults.for_request(host);
    if !rf.latency.is_zero() {
        tokio::time::sleep(rf.latency).await;
    }
    let mut resp = match rf.injected {
        Injected::Fail503 => hub_error(
            StatusCode::SERVICE_UNAVAILABLE,
            None,
            "Service Unavailable (injected)",
        ),
        Injected::Fail429 => {
            let mut r = hub_error(
                StatusCode::TOO_MANY_REQUESTS,
                None,
                "Too Many Requests (injected)",
            );
            let h = r.headers_mut();
            h.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            h.insert("ratelimit", HeaderValue::from_static("\"api\";r=0;t=1"));
            h.insert(
                "ratelimit-policy",
                HeaderValue::from_static("\"fixed window\";\"api\";q=500;w=300"),
            );
            r
        }
        Injected::None => match host {
            HostKind::Hub => crate::hub::route(&st, req).await,
            HostKind::Cdn => crate::cdn::route(&st, req).await,
        },
    };
    if !rewrite.is_empty() {
        resp = rewrite.apply(&method, resp).await;
    }
    if host == HostKind::Hub {
        resp.headers_mut().insert(
            "x-request-id",
            HeaderValue::from_str(&format!("Root=1-fake-{seq:08x}")).expect("ascii"),
        );
    }
    let status = resp.status();
    if !resp.headers().contains_key(header::CONTENT_LENGTH)
        && status != StatusCode::NO_CONTENT
        && let Some(n) = resp.body().size_hint().exact()
    {
        resp.headers_mut().insert(header::CONTENT_LENGTH, n.into());
    }
    let resp = if method == Method::HEAD {
        resp.map(|_| Body::empty())
    } else {
        resp.map(|b| wrap_body(b, rf.body, st.clone(), host, route))
    };
    entry.status = status.as_u16();
    tracing::debug!(host = host.as_str(), method = %entry.method, uri = %entry.uri, status = entry.status, "request");
    st.recorder.log(entry);
    resp
}

async fn admin(st: &Arc<HubState>, what: &str, req: Request<Body>) -> Response<Body> {
    let method = req.method().clone();
    match (method, what) {
        (Method::GET, "stats") => json_response(&serde_json::to_value(st.stats()).expect("stats")),
        (Method::POST, "reset") => {
            st.reset_stats();
            json_response(&json!({"ok": true}))
        }
        (Method::GET, "faults") => json_response(&faults_json(st)),
        (Method::POST, "faults") => {
            let body = axum::body::to_bytes(req.into_body(), 1 << 16)
                .await
                .unwrap_or_default();
            let parsed = if body.iter().all(u8::is_ascii_whitespace) {
                Ok(Faults::none())
            } else {
                serde_json::from_slice::<Faults>(&body)
            };
            match parsed {
                Ok(f) => {
                    st.set_faults(f);
                    json_response(&faults_json(st))
                }
                Err(e) => hub_error(StatusCode::BAD_REQUEST, None, &format!("bad faults: {e}")),
            }
        }
        (Method::GET, "rewrites") => json_response(&json!({"rules": st.rewrites()})),
        (Method::POST, "rewrites") => {
            #[derive(serde::Deserialize)]
            #[serde(deny_unknown_fields)]
            struct Rules {
                #[serde(default)]
                rules: Vec<Rewrite>,
            }
            let body = axum::body::to_bytes(req.into_body(), 1 << 20)
                .await
                .unwrap_or_default();
            let parsed = if body.iter().all(u8::is_ascii_whitespace) {
                Ok(Rules { rules: Vec::new() })
            } else {
                serde_json::from_slice::<Rules>(&body).map_err(|e| e.to_string())
            };
            match parsed.and_then(|r| st.set_rewrites(r.rules)) {
                Ok(()) => json_response(&json!({"rules": st.rewrites()})),
                Err(e) => hub_error(StatusCode::BAD_REQUEST, None, &format!("bad rewrites: {e}")),
            }
        }
        (Method::GET, "files") => json_response(&serde_json::Value::Object(st.fixture.manifest())),
        (Method::POST, "bucket-overwrite") => {
            let body = axum::body::to_bytes(req.into_body(), 1 << 20)
                .await
                .unwrap_or_default();
            crate::bucket::overwrite(st, &body)
        }
        _ => hub_error(StatusCode::NOT_FOUND, None, "unknown admin route"),
    }
}

fn faults_json(st: &HubState) -> serde_json::Value {
    json!({"hub": st.faults(HostKind::Hub), "cdn": st.faults(HostKind::Cdn)})
}
