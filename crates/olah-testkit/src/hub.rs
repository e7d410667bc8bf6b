//! The fake Hub and CDN servers.
#![allow(clippy::result_large_err)] // handlers return axum Responses as their error values

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use bytes::Bytes;
use futures::StreamExt;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use percent_encoding::percent_decode_str;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::fixture::{CommitFixture, FileFixture, Fixture, Kind, RepoFixture, Visibility};

/// Fault knobs, applied to requests of the scoped host kind(s).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Faults {
    /// Added before answering.
    pub latency_ms: u64,
    /// Body pacing (0 = unlimited).
    pub bandwidth_bytes_per_sec: u64,
    /// Abort the next `cut_count` bodies after this many bytes.
    pub cut_after_bytes: Option<u64>,
    /// How many bodies to cut.
    pub cut_count: u32,
    /// Answer the next N requests with 503.
    pub fail_5xx: u32,
    /// Answer the next N requests with 429.
    pub fail_429: u32,
    /// "hub", "cdn" or "" (both).
    pub scope: String,
}

/// One logged request.
#[derive(Debug, Clone, Serialize)]
pub struct LoggedRequest {
    /// hub | cdn
    pub host: &'static str,
    /// Method.
    pub method: String,
    /// Path and query.
    pub uri: String,
    /// Whether `Authorization` was sent.
    pub auth: bool,
    /// `Range` header.
    pub range: Option<String>,
    /// `User-Agent`.
    pub user_agent: Option<String>,
}

/// Counters.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Stats {
    /// Requests to the hub host.
    pub hub_requests: u64,
    /// Requests to the CDN host.
    pub cdn_requests: u64,
    /// Body bytes sent by the hub host.
    pub hub_bytes: u64,
    /// Body bytes sent by the CDN host.
    pub cdn_bytes: u64,
    /// Of `cdn_bytes`, the xorb bytes served to Xet clients.
    pub xorb_bytes: u64,
    /// Recent requests (at most 2000).
    pub log: Vec<LoggedRequest>,
}

/// Shared state of both servers.
pub struct HubState {
    fixture: Fixture,
    hub_url: String,
    cdn_url: String,
    secret: String,
    faults: Mutex<Faults>,
    log: Mutex<Vec<LoggedRequest>>,
    counters: [AtomicU64; 4],
    cas: crate::cas::Cas,
    xet_tokens: Mutex<std::collections::HashSet<String>>,
    xorb_bytes: AtomicU64,
}

/// A running fake Hub.
pub struct FakeHub {
    state: Arc<HubState>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl FakeHub {
    /// Starts both servers on 127.0.0.1 ephemeral ports.
    pub async fn start(fixture: Fixture) -> std::io::Result<Self> {
        Self::start_on(fixture, 0, 0).await
    }

    /// Starts both servers on the given ports (0 = ephemeral).
    pub async fn start_on(
        mut fixture: Fixture,
        hub_port: u16,
        cdn_port: u16,
    ) -> std::io::Result<Self> {
        if fixture.tree_page_size == 0 {
            fixture.tree_page_size = 1000;
        }
        let hub_l = tokio::net::TcpListener::bind(("127.0.0.1", hub_port)).await?;
        let cdn_l = tokio::net::TcpListener::bind(("127.0.0.1", cdn_port)).await?;
        let cas = tokio::task::spawn_blocking({
            let f = fixture.clone();
            move || crate::cas::Cas::build(&f)
        })
        .await
        .map_err(std::io::Error::other)?;
        let state = Arc::new(HubState {
            cas,
            xet_tokens: Mutex::default(),
            xorb_bytes: AtomicU64::new(0),
            fixture,
            hub_url: format!("http://{}", hub_l.local_addr()?),
            cdn_url: format!("http://{}", cdn_l.local_addr()?),
            secret: hex::encode(rand::random::<[u8; 16]>()),
            faults: Mutex::default(),
            log: Mutex::default(),
            counters: Default::default(),
        });
        let hub_app = Router::new().fallback(hub).with_state(state.clone());
        let cdn_app = Router::new().fallback(cdn).with_state(state.clone());
        let tasks = vec![
            tokio::spawn(async move {
                let _ = axum::serve(
                    hub_l,
                    hub_app.into_make_service_with_connect_info::<SocketAddr>(),
                )
                .await;
            }),
            tokio::spawn(async move {
                let _ = axum::serve(
                    cdn_l,
                    cdn_app.into_make_service_with_connect_info::<SocketAddr>(),
                )
                .await;
            }),
        ];
        Ok(Self { state, tasks })
    }

    /// `http://127.0.0.1:P` of the hub host.
    pub fn hub_url(&self) -> &str {
        &self.state.hub_url
    }

    /// `http://127.0.0.1:Q` of the CDN host.
    pub fn cdn_url(&self) -> &str {
        &self.state.cdn_url
    }

    /// The fixture served.
    pub fn fixture(&self) -> &Fixture {
        &self.state.fixture
    }

    /// Counters and request log.
    pub fn stats(&self) -> Stats {
        self.state.stats()
    }

    /// Clears counters and log.
    pub fn reset_stats(&self) {
        self.state.reset();
    }

    /// Replaces the fault knobs.
    pub fn set_faults(&self, f: Faults) {
        *self.state.faults.lock().expect("faults lock") = f;
    }

    /// Stops both servers.
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

const HUB: usize = 0;
const CDN: usize = 1;

impl HubState {
    fn stats(&self) -> Stats {
        Stats {
            hub_requests: self.counters[0].load(Ordering::SeqCst),
            cdn_requests: self.counters[1].load(Ordering::SeqCst),
            hub_bytes: self.counters[2].load(Ordering::SeqCst),
            cdn_bytes: self.counters[3].load(Ordering::SeqCst),
            xorb_bytes: self.xorb_bytes.load(Ordering::SeqCst),
            log: self.log.lock().expect("log lock").clone(),
        }
    }

    fn reset(&self) {
        for c in &self.counters {
            c.store(0, Ordering::SeqCst);
        }
        self.xorb_bytes.store(0, Ordering::SeqCst);
        self.log.lock().expect("log lock").clear();
    }

    fn record(&self, host: usize, req: &Request) {
        self.counters[host].fetch_add(1, Ordering::SeqCst);
        let h = req.headers();
        let mut log = self.log.lock().expect("log lock");
        if log.len() < 2000 {
            log.push(LoggedRequest {
                host: if host == HUB { "hub" } else { "cdn" },
                method: req.method().to_string(),
                uri: req.uri().to_string(),
                auth: h.contains_key(header::AUTHORIZATION),
                range: h
                    .get(header::RANGE)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string),
                user_agent: h
                    .get(header::USER_AGENT)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string),
            });
        }
    }

    /// Takes the faults that apply to this request (consuming one-shot counters).
    fn faults_for(&self, host: usize) -> (Faults, bool, bool, Option<u64>) {
        let mut f = self.faults.lock().expect("faults lock");
        let applies = f.scope.is_empty() || (f.scope == "hub") == (host == HUB);
        if !applies {
            return (Faults::default(), false, false, None);
        }
        let fail5 = f.fail_5xx > 0;
        if fail5 {
            f.fail_5xx -= 1;
        }
        let fail429 = !fail5 && f.fail_429 > 0;
        if fail429 {
            f.fail_429 -= 1;
        }
        let cut = if f.cut_count > 0 && f.cut_after_bytes.is_some() {
            f.cut_count -= 1;
            f.cut_after_bytes
        } else {
            None
        };
        (f.clone(), fail5, fail429, cut)
    }

    fn sign(&self, sha: &str, expires: u64) -> String {
        hex::encode(&sha2_digest(format!("{}:{sha}:{expires}", self.secret).as_bytes())[..16])
    }
}

fn sha2_digest(b: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(b).to_vec()
}

fn err(status: StatusCode, code: &str, msg: &str) -> Response {
    let mut r = Response::new(Body::from(json!({ "error": msg }).to_string()));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if !code.is_empty() {
        h.insert(
            "x-error-code",
            HeaderValue::from_str(code).expect("ascii code"),
        );
    }
    h.insert(
        "x-error-message",
        HeaderValue::from_str(msg).expect("ascii message"),
    );
    r
}

fn json_resp(v: &Value) -> Response {
    let mut r = Response::new(Body::from(v.to_string()));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    r
}

fn token(h: &HeaderMap) -> Option<String> {
    let v = h.get(header::AUTHORIZATION)?.to_str().ok()?;
    Some(v.strip_prefix("Bearer ").unwrap_or(v).trim().to_string())
}

enum Access {
    Ok,
    Denied(Response),
}

/// Repo-level access: private repos look missing to non-owners.
fn repo_access(st: &HubState, repo: &RepoFixture, tok: &Option<String>) -> Access {
    if let Visibility::Private(owners) = &repo.visibility
        && !tok.as_ref().is_some_and(|t| owners.contains(t))
    {
        return Access::Denied(not_found_repo(tok));
    }
    let _ = st;
    Access::Ok
}

fn not_found_repo(tok: &Option<String>) -> Response {
    let status = if tok.is_some() {
        StatusCode::NOT_FOUND
    } else {
        StatusCode::UNAUTHORIZED
    };
    err(status, "RepoNotFound", "Repository Not Found")
}

fn file_access(repo: &RepoFixture, tok: &Option<String>) -> Access {
    if let Visibility::Gated(granted) = &repo.visibility {
        match tok {
            None => {
                return Access::Denied(err(
                    StatusCode::UNAUTHORIZED,
                    "GatedRepo",
                    "Access to this model is restricted. You must be authenticated.",
                ));
            }
            Some(t) if !granted.contains(t) => {
                return Access::Denied(err(
                    StatusCode::FORBIDDEN,
                    "GatedRepo",
                    "Access to this model is restricted and you are not in the authorized list.",
                ));
            }
            _ => {}
        }
    }
    Access::Ok
}

fn decode(s: &str) -> String {
    percent_decode_str(s).decode_utf8_lossy().into_owned()
}

/// Splits `[datasets/|spaces/]{id…}` off the segments, trying two-segment ids first.
fn find_repo<'a>(
    f: &'a Fixture,
    kind: Kind,
    segs: &[String],
    marker: &str,
) -> Option<(&'a RepoFixture, usize)> {
    for n in [2usize, 1] {
        if segs.len() > n
            && segs[n] == marker
            && let Some(r) = f.repo(kind, &segs[..n].join("/"))
        {
            return Some((r, n));
        }
        if marker.is_empty()
            && segs.len() >= n
            && let Some(r) = f.repo(kind, &segs[..n].join("/"))
        {
            return Some((r, n));
        }
    }
    None
}

async fn apply_latency(f: &Faults) {
    if f.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(f.latency_ms)).await;
    }
}

async fn hub(State(st): State<Arc<HubState>>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    if let Some(admin) = path.strip_prefix("/__admin/") {
        return admin_route(&st, admin, req).await;
    }
    st.record(HUB, &req);
    if path == "/v1/telemetry" {
        let mut r = Response::new(Body::empty());
        *r.status_mut() = StatusCode::NO_CONTENT;
        return r;
    }
    let (faults, fail5, fail429, cut) = st.faults_for(HUB);
    apply_latency(&faults).await;
    if fail5 {
        return err(StatusCode::SERVICE_UNAVAILABLE, "", "injected 503");
    }
    if fail429 {
        let mut r = err(StatusCode::TOO_MANY_REQUESTS, "", "rate limited");
        let h = r.headers_mut();
        h.insert("retry-after", HeaderValue::from_static("1"));
        h.insert("ratelimit", HeaderValue::from_static("\"api\";r=0;t=1"));
        h.insert(
            "ratelimit-policy",
            HeaderValue::from_static("\"fixed window\";\"api\";q=500;w=300"),
        );
        return r;
    }
    if let Some(rest) = path.strip_prefix("/cas/") {
        return cas_route(&st, rest, &req);
    }
    let tok = token(req.headers());
    if let Some(t) = &tok
        && !st.fixture.tokens.contains(t)
    {
        return err(
            StatusCode::UNAUTHORIZED,
            "",
            "Invalid credentials in Authorization header",
        );
    }

    route_hub(&st, req, tok, &faults, cut).await
}

async fn route_hub(
    st: &Arc<HubState>,
    req: Request,
    tok: Option<String>,
    faults: &Faults,
    cut: Option<u64>,
) -> Response {
    let raw = req.uri().path().trim_start_matches('/').to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let segs: Vec<String> = raw.split('/').map(decode).collect();
    if segs.first().map(String::as_str) == Some("api") {
        return api(st, req, &segs[1..], &query, tok).await;
    }
    let (kind, rest) = match segs.first().map(String::as_str) {
        Some("datasets") => (Kind::Dataset, &segs[1..]),
        Some("spaces") => (Kind::Space, &segs[1..]),
        _ => (Kind::Model, &segs[..]),
    };
    let Some((repo, n)) = find_repo(&st.fixture, kind, rest, "resolve") else {
        let exists_shape = rest.iter().any(|s| s == "resolve");
        return if exists_shape {
            not_found_repo(&tok)
        } else {
            err(StatusCode::NOT_FOUND, "", "Not Found")
        };
    };
    if rest.len() < n + 3 {
        return err(StatusCode::NOT_FOUND, "", "Not Found");
    }
    if let Access::Denied(r) = repo_access(st, repo, &tok) {
        return r;
    }
    let rev = &rest[n + 1];
    let Some(commit) = repo.resolve(rev) else {
        return err(
            StatusCode::NOT_FOUND,
            "RevisionNotFound",
            &format!("Invalid rev id: {rev}"),
        );
    };
    let fpath = rest[n + 2..].join("/");
    if let Access::Denied(r) = file_access(repo, &tok) {
        return r;
    }
    let Some(file) = commit.files.get(&fpath) else {
        let mut r = err(
            StatusCode::NOT_FOUND,
            "EntryNotFound",
            &format!("{fpath} does not exist on \"{rev}\""),
        );
        r.headers_mut().insert(
            "x-repo-commit",
            HeaderValue::from_str(&commit.sha).expect("hex"),
        );
        return r;
    };
    let mut h = HeaderMap::new();
    let hv = |s: &str| HeaderValue::from_str(s).expect("header value");
    h.insert("x-repo-commit", hv(&commit.sha));
    h.insert(header::ACCEPT_RANGES, hv("bytes"));
    if file.lfs {
        let sha = file.sha256();
        let expires = now() + 3600;
        let loc = format!(
            "{}/lfs/{sha}?repo={}&Expires={expires}&Signature={}",
            st.cdn_url,
            repo.id.replace('/', "%2F"),
            st.sign(&sha, expires)
        );
        h.insert(header::LOCATION, hv(&loc));
        h.insert(header::ETAG, hv(&format!("\"{}\"", file.oid())));
        h.insert("x-linked-etag", hv(&format!("\"{sha}\"")));
        h.insert("x-linked-size", hv(&file.size().to_string()));
        if file.xet {
            h.insert("x-xet-hash", hv(&file.xet_hash()));
            h.insert(
                header::LINK,
                hv(&format!(
                    "<{}/api/{}/{}/xet-read-token/{}>; rel=\"xet-auth\", <{}/cas/v1/reconstructions/{}>; rel=\"xet-reconstruction-info\"",
                    st.hub_url,
                    repo.kind.plural(),
                    repo.id,
                    commit.sha,
                    st.hub_url,
                    file.xet_hash()
                )),
            );
        }
        h.insert(header::CONTENT_LENGTH, hv("0"));
        let mut r = Response::new(Body::empty());
        *r.status_mut() = StatusCode::FOUND;
        *r.headers_mut() = h;
        return r;
    }
    h.insert(header::ETAG, hv(&format!("\"{}\"", file.oid())));
    h.insert(header::CONTENT_TYPE, hv(content_type(&fpath)));
    serve_content(
        st,
        HUB,
        req.method() == Method::HEAD,
        req.headers(),
        file,
        h,
        faults,
        cut,
    )
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next() {
        Some("json") => "application/json",
        Some("txt" | "md" | "py" | "jsonl") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[allow(clippy::too_many_arguments)]
fn serve_content(
    st: &Arc<HubState>,
    host: usize,
    head: bool,
    req_h: &HeaderMap,
    file: &FileFixture,
    mut h: HeaderMap,
    faults: &Faults,
    cut: Option<u64>,
) -> Response {
    let size = file.size();
    let mut status = StatusCode::OK;
    let (mut start, mut end) = (0u64, size);
    if let Some(r) = req_h.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        match parse_single_range(r, size) {
            Some(Some((a, b))) => {
                status = StatusCode::PARTIAL_CONTENT;
                start = a;
                end = b + 1;
                h.insert(
                    header::CONTENT_RANGE,
                    HeaderValue::from_str(&format!("bytes {a}-{b}/{size}")).expect("ascii"),
                );
            }
            Some(None) => {
                let mut r = err(
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    "",
                    "Range Not Satisfiable",
                );
                r.headers_mut().insert(
                    header::CONTENT_RANGE,
                    HeaderValue::from_str(&format!("bytes */{size}")).expect("ascii"),
                );
                return r;
            }
            None => {}
        }
    }
    h.insert(
        header::CONTENT_LENGTH,
        HeaderValue::from_str(&(end - start).to_string()).expect("ascii"),
    );
    let body = if head {
        Body::empty()
    } else {
        let st = st.clone();
        let bw = faults.bandwidth_bytes_per_sec;
        let mut sent = 0u64;
        let pieces = file.content.pieces(start, end);
        let stream = futures::stream::iter(pieces).then(move |p| {
            let st = st.clone();
            let n = p.len() as u64;
            let over = cut.is_some_and(|c| sent + n > c);
            sent += n;
            async move {
                if bw > 0 {
                    tokio::time::sleep(Duration::from_secs_f64(n as f64 / bw as f64)).await;
                }
                if over {
                    return Err(std::io::Error::other("injected cut"));
                }
                st.counters[2 + host].fetch_add(n, Ordering::SeqCst);
                Ok::<Bytes, std::io::Error>(p)
            }
        });
        Body::from_stream(stream)
    };
    let mut r = Response::new(body);
    *r.status_mut() = status;
    *r.headers_mut() = h;
    r
}

/// `None` = ignore the header; `Some(None)` = unsatisfiable.
fn parse_single_range(v: &str, size: u64) -> Option<Option<(u64, u64)>> {
    let spec = v.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let (a, b) = (a.trim(), b.trim());
    let r = if a.is_empty() {
        let n: u64 = b.parse().ok()?;
        (n > 0 && size > 0).then(|| (size.saturating_sub(n), size - 1))
    } else {
        let a: u64 = a.parse().ok()?;
        let b: u64 = if b.is_empty() {
            size.saturating_sub(1)
        } else {
            b.parse::<u64>().ok()?.min(size.saturating_sub(1))
        };
        (a < size && a <= b).then_some((a, b))
    };
    Some(r)
}

async fn cdn(State(st): State<Arc<HubState>>, req: Request) -> Response {
    st.record(CDN, &req);
    let (faults, fail5, _, cut) = st.faults_for(CDN);
    apply_latency(&faults).await;
    if fail5 {
        return err(StatusCode::SERVICE_UNAVAILABLE, "", "injected 503");
    }
    if let Some(hash) = req.uri().path().strip_prefix("/xorb/default/") {
        return xorb_route(&st, hash, &req);
    }
    let Some(sha) = req.uri().path().strip_prefix("/lfs/") else {
        return err(StatusCode::NOT_FOUND, "", "Not Found");
    };
    let q: BTreeMap<String, String> =
        serde_urlencoded::from_str(req.uri().query().unwrap_or("")).unwrap_or_default();
    let expires: u64 = q.get("Expires").and_then(|e| e.parse().ok()).unwrap_or(0);
    if expires < now() || q.get("Signature") != Some(&st.sign(sha, expires)) {
        return err(
            StatusCode::FORBIDDEN,
            "",
            "Request signature does not match",
        );
    }
    let file = st
        .fixture
        .repos
        .iter()
        .flat_map(|r| r.commits.iter())
        .flat_map(|c| c.files.values())
        .find(|f| f.lfs && f.sha256() == sha);
    let Some(file) = file else {
        return err(StatusCode::NOT_FOUND, "", "NoSuchKey");
    };
    let mut h = HeaderMap::new();
    h.insert(
        header::ETAG,
        HeaderValue::from_str(&format!("\"{sha}\"")).expect("hex"),
    );
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    serve_content(
        &st,
        CDN,
        req.method() == Method::HEAD,
        req.headers(),
        file,
        h,
        &faults,
        cut,
    )
}

async fn admin_route(st: &Arc<HubState>, what: &str, req: Request) -> Response {
    match what {
        "stats" => json_resp(&serde_json::to_value(st.stats()).expect("stats serialize")),
        "reset" => {
            st.reset();
            json_resp(&json!({"ok": true}))
        }
        "faults" => {
            let body = axum::body::to_bytes(req.into_body(), 1 << 16)
                .await
                .unwrap_or_default();
            match serde_json::from_slice::<Faults>(&body) {
                Ok(f) => {
                    *st.faults.lock().expect("faults lock") = f;
                    json_resp(&json!({"ok": true}))
                }
                Err(e) => err(StatusCode::BAD_REQUEST, "", &format!("bad faults: {e}")),
            }
        }
        _ => err(StatusCode::NOT_FOUND, "", "Not Found"),
    }
}

fn entry(path: &str, f: &FileFixture) -> Value {
    let mut e = json!({"type": "file", "oid": f.oid(), "size": f.size(), "path": path});
    if f.lfs {
        let ptr = crate::fixture::lfs_pointer_text(&f.sha256(), f.size());
        e["lfs"] = json!({"oid": f.sha256(), "size": f.size(), "pointerSize": ptr.len()});
    }
    if f.xet {
        e["xetHash"] = json!(f.xet_hash());
    }
    e
}

fn dir_entry(path: &str) -> Value {
    json!({"type": "directory", "oid": crate::fixture::git_blob_sha1(path.as_bytes()), "size": 0, "path": path})
}

fn repo_info(repo: &RepoFixture, c: &CommitFixture, blobs: bool) -> Value {
    let siblings: Vec<Value> = c
        .files
        .iter()
        .map(|(p, f)| {
            let mut s = json!({"rfilename": p});
            if blobs {
                s["blobId"] = json!(f.oid());
                s["size"] = json!(f.size());
                if f.lfs {
                    let ptr = crate::fixture::lfs_pointer_text(&f.sha256(), f.size());
                    s["lfs"] =
                        json!({"sha256": f.sha256(), "size": f.size(), "pointerSize": ptr.len()});
                }
            }
            s
        })
        .collect();
    json!({
        "_id": "65f0000000000000000000aa",
        "id": repo.id,
        "author": repo.id.split_once('/').map(|(a, _)| a).unwrap_or(""),
        "sha": c.sha,
        "lastModified": "2025-01-01T00:00:00.000Z",
        "createdAt": "2024-01-01T00:00:00.000Z",
        "private": matches!(repo.visibility, Visibility::Private(_)),
        "gated": if matches!(repo.visibility, Visibility::Gated(_)) { json!("manual") } else { json!(false) },
        "disabled": false,
        "downloads": 0,
        "likes": 0,
        "tags": [],
        "siblings": siblings,
    })
}

async fn api(
    st: &Arc<HubState>,
    req: Request,
    segs: &[String],
    query: &str,
    tok: Option<String>,
) -> Response {
    if segs == ["whoami-v2"] {
        return match tok {
            Some(t) => json_resp(
                &json!({"type": "user", "name": format!("user-{}", &t[3..]), "auth": {"type": "access_token"}}),
            ),
            None => err(
                StatusCode::UNAUTHORIZED,
                "",
                "Invalid username or password.",
            ),
        };
    }
    let kind = match segs.first().map(String::as_str) {
        Some("models") => Kind::Model,
        Some("datasets") => Kind::Dataset,
        Some("spaces") => Kind::Space,
        _ => return err(StatusCode::NOT_FOUND, "", "Not Found"),
    };
    let rest = &segs[1..];
    const KW: &[&str] = &[
        "revision",
        "tree",
        "paths-info",
        "refs",
        "commits",
        "xet-read-token",
    ];
    let mut found = None;
    for n in [2usize, 1] {
        if rest.len() >= n
            && (rest.len() == n || KW.contains(&rest[n].as_str()))
            && let Some(r) = st.fixture.repo(kind, &rest[..n].join("/"))
        {
            found = Some((r, n));
            break;
        }
    }
    let Some((repo, n)) = found else {
        return not_found_repo(&tok);
    };
    if let Access::Denied(r) = repo_access(st, repo, &tok) {
        return r;
    }
    let q: Vec<(String, String)> = serde_urlencoded::from_str(query).unwrap_or_default();
    let qget = |k: &str| q.iter().find(|(a, _)| a == k).map(|(_, v)| v.as_str());
    let tail = &rest[n..];
    let rev_of = |r: &str| {
        repo.resolve(r).ok_or_else(|| {
            err(
                StatusCode::NOT_FOUND,
                "RevisionNotFound",
                &format!("Invalid rev id: {r}"),
            )
        })
    };
    let blobs = qget("blobs") == Some("true");
    match tail.first().map(String::as_str) {
        None => json_resp(&repo_info(repo, repo.main(), blobs)),
        Some("revision") if tail.len() == 2 => match rev_of(&tail[1]) {
            Ok(c) => json_resp(&repo_info(repo, c, blobs)),
            Err(r) => r,
        },
        Some("refs") => {
            let mut v = json!({"branches": [], "tags": [], "converts": []});
            let mut prs = Vec::new();
            for (name, idx) in &repo.refs {
                let sha = &repo.commits[*idx].sha;
                if let Some(b) = name.strip_prefix("refs/heads/") {
                    v["branches"]
                        .as_array_mut()
                        .expect("array")
                        .push(json!({"name": b, "ref": name, "targetCommit": sha}));
                } else if let Some(t) = name.strip_prefix("refs/tags/") {
                    v["tags"]
                        .as_array_mut()
                        .expect("array")
                        .push(json!({"name": t, "ref": name, "targetCommit": sha}));
                } else if let Some(c) = name.strip_prefix("refs/convert/") {
                    v["converts"]
                        .as_array_mut()
                        .expect("array")
                        .push(json!({"name": c, "ref": name, "targetCommit": sha}));
                } else {
                    prs.push(json!({"name": name, "ref": name, "targetCommit": sha}));
                }
            }
            if qget("include_prs") == Some("1") || qget("include_prs") == Some("true") {
                v["pullRequests"] = json!(prs);
            }
            json_resp(&v)
        }
        Some("commits") if tail.len() == 2 => match rev_of(&tail[1]) {
            Ok(c) => {
                let idx = repo
                    .commits
                    .iter()
                    .position(|x| x.sha == c.sha)
                    .expect("commit of repo");
                let list: Vec<Value> = repo.commits[..=idx]
                    .iter()
                    .rev()
                    .map(|c| json!({"id": c.sha, "title": c.title, "message": "", "date": "2025-01-01T00:00:00.000Z", "authors": [{"user": "alice"}]}))
                    .collect();
                json_resp(&json!(list))
            }
            Err(r) => r,
        },
        Some("xet-read-token") if tail.len() == 2 => {
            if let Access::Denied(r) = file_access(repo, &tok) {
                return r;
            }
            let exp = now() + 3600;
            let cas = format!("{}/cas", st.hub_url);
            let xet_token = format!("xet_{}", hex::encode(rand::random::<[u8; 12]>()));
            st.xet_tokens
                .lock()
                .expect("token set lock")
                .insert(xet_token.clone());
            let mut r = json_resp(&json!({"accessToken": xet_token, "exp": exp, "casUrl": cas}));
            let h = r.headers_mut();
            h.insert("x-xet-cas-url", HeaderValue::from_str(&cas).expect("ascii"));
            h.insert(
                "x-xet-access-token",
                HeaderValue::from_str(&xet_token).expect("ascii"),
            );
            h.insert(
                "x-xet-token-expiration",
                HeaderValue::from_str(&exp.to_string()).expect("ascii"),
            );
            r
        }
        Some("paths-info") if tail.len() == 2 => {
            let c = match rev_of(&tail[1]) {
                Ok(c) => c,
                Err(r) => return r,
            };
            let body = axum::body::to_bytes(req.into_body(), 1 << 20)
                .await
                .unwrap_or_default();
            let form: Vec<(String, String)> =
                serde_urlencoded::from_bytes(&body).unwrap_or_default();
            let out: Vec<Value> = form
                .iter()
                .filter(|(k, _)| k == "paths")
                .filter_map(|(_, p)| {
                    let p = p.trim_matches('/');
                    c.files.get(p).map(|f| entry(p, f)).or_else(|| {
                        c.files
                            .keys()
                            .any(|k| k.starts_with(&format!("{p}/")))
                            .then(|| dir_entry(p))
                    })
                })
                .collect();
            json_resp(&json!(out))
        }
        Some("tree") if tail.len() >= 2 => {
            let c = match rev_of(&tail[1]) {
                Ok(c) => c,
                Err(r) => return r,
            };
            let base = tail[2..].join("/").trim_matches('/').to_string();
            tree(st, repo, c, &base, &q)
        }
        _ => err(StatusCode::NOT_FOUND, "", "Not Found"),
    }
}

fn tree(
    st: &Arc<HubState>,
    repo: &RepoFixture,
    c: &CommitFixture,
    base: &str,
    q: &[(String, String)],
) -> Response {
    let qget = |k: &str| q.iter().find(|(a, _)| a == k).map(|(_, v)| v.as_str());
    let recursive = qget("recursive") == Some("true") || qget("recursive") == Some("True");
    let prefix = if base.is_empty() {
        String::new()
    } else {
        format!("{base}/")
    };
    if !base.is_empty()
        && !c.files.keys().any(|k| k.starts_with(&prefix))
        && !c.files.contains_key(base)
    {
        return err(
            StatusCode::NOT_FOUND,
            "EntryNotFound",
            &format!("{base} does not exist"),
        );
    }
    let mut entries: BTreeMap<String, Value> = BTreeMap::new();
    for (p, f) in &c.files {
        let Some(rel) = p.strip_prefix(&prefix) else {
            continue;
        };
        let parts: Vec<&str> = rel.split('/').collect();
        for i in 1..parts.len() {
            if recursive || i == 1 {
                let d = format!("{prefix}{}", parts[..i].join("/"));
                entries.entry(d.clone()).or_insert_with(|| dir_entry(&d));
            }
        }
        if recursive || parts.len() == 1 {
            entries.insert(p.clone(), entry(p, f));
        }
    }
    let page = qget("limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(st.fixture.tree_page_size)
        .max(1);
    let start: usize = qget("cursor").and_then(|c| c.parse().ok()).unwrap_or(0);
    let all: Vec<Value> = entries.into_values().collect();
    let end = (start + page).min(all.len());
    let mut r = json_resp(&json!(all[start.min(all.len())..end]));
    if end < all.len() {
        let mut q2: Vec<(String, String)> =
            q.iter().filter(|(k, _)| k != "cursor").cloned().collect();
        q2.push(("cursor".into(), end.to_string()));
        let path = if base.is_empty() {
            String::new()
        } else {
            format!("/{}", base.replace('/', "%2F"))
        };
        let link = format!(
            "<{}/api/{}/{}/tree/{}{path}?{}>; rel=\"next\"",
            st.hub_url,
            repo.kind.plural(),
            repo.id,
            c.sha,
            serde_urlencoded::to_string(&q2).expect("query")
        );
        r.headers_mut().insert(
            header::LINK,
            HeaderValue::from_str(&link).expect("ascii link"),
        );
    }
    r
}

/// `bytes=a-b` (inclusive) or `bytes=a-`.
fn simple_range(h: &HeaderMap) -> Option<(u64, u64)> {
    let v = h
        .get(header::RANGE)?
        .to_str()
        .ok()?
        .trim()
        .strip_prefix("bytes=")?;
    let (a, b) = v.split_once('-')?;
    let a = a.trim().parse().ok()?;
    let b = if b.trim().is_empty() {
        u64::MAX
    } else {
        b.trim().parse().ok()?
    };
    (a <= b).then_some((a, b))
}

/// `/cas/v1|v2/reconstructions/{file_hash}` with a CAS token from the token route.
fn cas_route(st: &Arc<HubState>, rest: &str, req: &Request) -> Response {
    let tok = token(req.headers());
    if !tok.is_some_and(|t| st.xet_tokens.lock().expect("token set lock").contains(&t)) {
        return err(StatusCode::UNAUTHORIZED, "", "invalid CAS token");
    }
    let (v2, hash) = if let Some(h) = rest.strip_prefix("v2/reconstructions/") {
        (true, h)
    } else if let Some(h) = rest.strip_prefix("v1/reconstructions/") {
        (false, h)
    } else {
        return err(StatusCode::NOT_FOUND, "", "Not Found");
    };
    let exp = now() + 3600;
    let url = |h: &str, s: u64, e: u64| {
        format!(
            "{}/xorb/default/{h}?X-Xet-Signed-Range=bytes%3D{s}-{e}&Expires={exp}&Signature={}",
            st.cdn_url,
            st.sign(&format!("{h}:{s}-{e}"), exp)
        )
    };
    match st
        .cas
        .reconstruction(hash, simple_range(req.headers()), v2, &url)
    {
        Ok(v) => json_resp(&v),
        Err(crate::cas::CasError::NotFound) => err(StatusCode::NOT_FOUND, "", "file not found"),
        Err(crate::cas::CasError::Unsatisfiable) => err(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "",
            "range not satisfiable",
        ),
    }
}

/// Presigned xorb range URLs: the signature covers the xorb and a byte range; the request's
/// `Range` must lie inside it. No `Authorization` is needed (or looked at).
fn xorb_route(st: &Arc<HubState>, hash: &str, req: &Request) -> Response {
    let q: BTreeMap<String, String> =
        serde_urlencoded::from_str(req.uri().query().unwrap_or("")).unwrap_or_default();
    let exp: u64 = q.get("Expires").and_then(|e| e.parse().ok()).unwrap_or(0);
    let signed = q
        .get("X-Xet-Signed-Range")
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| {
            let (a, b) = r.split_once('-')?;
            Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok()?))
        });
    let Some((ss, se)) = signed else {
        return err(StatusCode::FORBIDDEN, "", "missing signed range");
    };
    if exp < now() || q.get("Signature") != Some(&st.sign(&format!("{hash}:{ss}-{se}"), exp)) {
        return err(
            StatusCode::FORBIDDEN,
            "",
            "Request signature does not match",
        );
    }
    let Some(len) = st.cas.xorb_len(hash) else {
        return err(StatusCode::NOT_FOUND, "", "NoSuchKey");
    };
    let Some((a, b)) = simple_range(req.headers()) else {
        return err(StatusCode::FORBIDDEN, "", "a Range is required");
    };
    let b = b.min(len - 1);
    if a < ss || b > se || a > b {
        return err(StatusCode::FORBIDDEN, "", "range outside the signed range");
    }
    let pieces = st.cas.xorb_bytes(hash, a, b).unwrap_or_default();
    let n: u64 = pieces.iter().map(|p| p.len() as u64).sum();
    st.counters[2 + CDN].fetch_add(n, Ordering::SeqCst);
    st.xorb_bytes.fetch_add(n, Ordering::SeqCst);
    let mut r = Response::new(Body::from_stream(futures::stream::iter(
        pieces.into_iter().map(Ok::<Bytes, std::io::Error>),
    )));
    *r.status_mut() = StatusCode::PARTIAL_CONTENT;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_LENGTH,
        HeaderValue::from_str(&n.to_string()).expect("ascii"),
    );
    h.insert(
        header::CONTENT_RANGE,
        HeaderValue::from_str(&format!("bytes {a}-{b}/{len}")).expect("ascii"),
    );
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    r
}
