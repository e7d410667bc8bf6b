//! The HTTP surface: one fallback handler that parses the path with the single route parser and
//! dispatches: proxy rules (serve mode) → the first local source that owns the repo (answered
//! through [`crate::surface`]) → the upstream mirror (serve mode) → else 404 (model-bin mode).
//! One router for both modes, so both get the request span.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use olah_service::ServiceError;
use olah_service::error::{ErrorKind, HubCode, Origin};
use olah_service::source::{
    ByteStream, DirSource, FileBody, FileHead, GitSource, MetaRequest, Outcome, PathsQuery,
    RepoFile, RepoSource, RequestCtx, Sources,
};
use olah_store::BlobStore;
use olah_types::{RepoPath, RepoRef, Revision, Route, parse_route};
use tracing::Instrument;

use crate::error::ApiError;
use crate::mirror::{CachedResponse, Mirror};
use crate::surface;
use crate::xet;

/// What the router answers from: local repository sources (in precedence order) and, in serve
/// mode, the upstream mirror.
#[derive(Clone)]
pub struct App {
    pub sources: Sources,
    pub mirror: Option<Arc<Mirror>>,
}

impl App {
    /// Serve mode: the local git repositories of `mirrors-path` (if any), then the upstream.
    pub fn serve(mirror: Arc<Mirror>) -> Self {
        let roots = mirror.cfg.mirrors_path.clone();
        let sources = if roots.is_empty() {
            Sources::default()
        } else {
            Sources::new(vec![Arc::new(GitSource::new(roots))])
        };
        Self {
            sources,
            mirror: Some(mirror),
        }
    }

    /// Model-bin mode: the directories under `root` as model repos, nothing else.
    pub fn model_bin(root: PathBuf) -> Self {
        Self::local(Sources::new(vec![Arc::new(DirSource::new(root))]))
    }

    /// Local sources only (no upstream).
    pub fn local(sources: Sources) -> Self {
        Self {
            sources,
            mirror: None,
        }
    }
}

/// Shared state of the handlers.
pub type AppState = App;

/// The mirror's router (serve and model-bin modes).
pub fn router(app: App) -> Router {
    Router::new()
        .fallback(dispatch)
        .layer(middleware::from_fn(trace))
        .with_state(app)
}

/// One span per request; handlers record repo, revision, commit, source and cache outcome on it.
async fn trace(req: Request, next: Next) -> Response {
    let span = tracing::info_span!(
        "request",
        method = %req.method(),
        path = %req.uri().path(),
        status = tracing::field::Empty,
        repo = tracing::field::Empty,
        revision = tracing::field::Empty,
        commit = tracing::field::Empty,
        source = tracing::field::Empty,
        cache = tracing::field::Empty,
        upstream_ms = tracing::field::Empty,
    );
    let started = Instant::now();
    let resp = next.run(req).instrument(span.clone()).await;
    span.record("status", resp.status().as_u16());
    span.in_scope(|| tracing::info!(ms = started.elapsed().as_millis() as u64, "response"));
    resp
}

fn auth(headers: &HeaderMap) -> Option<HeaderValue> {
    headers.get(header::AUTHORIZATION).cloned()
}

async fn dispatch(State(app): State<AppState>, req: Request) -> Response {
    route_request(app, req).await
}

/// Largest request body read (paths-info).
const MAX_BODY: usize = 1 << 20;

async fn route_request(app: App, req: Request) -> Response {
    let route = match parse_route(req.uri().path()) {
        Ok(r) => r,
        Err(e) => return surface::render(e.into()),
    };
    if matches!(route, Route::Health) && matches!(*req.method(), Method::GET | Method::HEAD) {
        return "ok".into_response();
    }
    let span = tracing::Span::current();
    if let Some(r) = route.repo() {
        span.record("repo", r.key());
        if let Some(m) = &app.mirror
            && !m.proxy_allowed(r)
        {
            return surface::render(ServiceError::new(
                ErrorKind::Forbidden,
                Origin::Client,
                HubCode::RepoNotFound,
                format!(
                    "{} is not allowed by this mirror's proxy rules",
                    r.id.as_str()
                ),
            ));
        }
    }
    if let Some(r) = route.revision() {
        span.record("revision", r.as_str());
    }
    // A local source that owns the repo answers on its own, never the upstream.
    if let Some(repo) = route.repo()
        && let Some(src) = app.sources.pick(repo).await
    {
        span.record("source", src.name());
        span.record("cache", Outcome::Local.as_str());
        return local(src, route, req).await.unwrap_or_else(|e| {
            if let Some(c) = &e.commit {
                span.record("commit", c.as_str());
            }
            surface::render(e)
        });
    }
    match app.mirror {
        Some(m) => {
            span.record("source", "hub");
            hub_request(m, route, req)
                .await
                .unwrap_or_else(IntoResponse::into_response)
        }
        None => surface::render(no_mirror(&route)),
    }
}

/// Without an upstream (model-bin mode): health answers, nothing else exists.
fn no_mirror(route: &Route) -> ServiceError {
    match route {
        // GET and HEAD were answered before.
        Route::Health => ServiceError::method_not_allowed("only GET and HEAD on /health"),
        Route::Whoami => ServiceError::new(
            ErrorKind::Unauthorized,
            Origin::Client,
            HubCode::Unauthorized,
            "this mirror has no accounts",
        ),
        r => match r.repo() {
            Some(repo) => {
                ServiceError::repo_not_found(format!("Repository {} not found", repo.id.as_str()))
            }
            None => ServiceError::from(olah_types::RouteError::NotFound),
        },
    }
}

/// A request about a repo a local source owns.
async fn local(
    src: Arc<dyn RepoSource>,
    route: Route,
    req: Request,
) -> Result<Response, ServiceError> {
    let span = tracing::Span::current();
    let method = req.method().clone();
    let read = method == Method::GET || method == Method::HEAD;
    let is_head = method == Method::HEAD;
    // A local source never sees the caller's credentials.
    let cx = RequestCtx {
        auth: None,
        host: host_of(req.headers()),
    };
    let query = req.uri().query().map(str::to_string);
    let meta = |paths: Option<PathsQuery>| {
        let src = src.clone();
        let cx = cx.clone();
        let req = MetaRequest {
            route: route.clone(),
            query: query.clone(),
            paths,
        };
        let span = span.clone();
        async move {
            let a = src.meta(&cx, &req).await?;
            if let Some(c) = &a.commit {
                span.record("commit", c.as_str());
            }
            Ok::<_, ServiceError>(a)
        }
    };
    match &route {
        Route::Resolve {
            repo,
            revision,
            path,
        } if read => {
            let f = src.file(&cx, repo, revision, path).await?;
            if let Some(c) = &f.head.commit {
                span.record("commit", c.as_str());
            }
            surface::file_response(f, req.headers(), is_head, HeaderMap::new()).await
        }
        // Local repositories have no Xet storage: nothing announces Xet for them.
        Route::XetReadToken { .. } if read => Err(xet_disabled()),
        Route::PathsInfo { .. } if method == Method::POST => {
            let body = axum::body::to_bytes(req.into_body(), MAX_BODY)
                .await
                .map_err(|_| {
                    ServiceError::bad_request("paths-info body too large or unreadable")
                })?;
            let paths = PathsQuery::parse(&body)?;
            Ok(surface::meta_response(meta(Some(paths)).await?, false))
        }
        Route::RepoInfo { .. }
        | Route::RevisionInfo { .. }
        | Route::Tree { .. }
        | Route::Refs { .. }
        | Route::Commits { .. }
            if read =>
        {
            Ok(surface::meta_response(meta(None).await?, is_head))
        }
        _ => Err(ServiceError::method_not_allowed(format!(
            "{method} is not supported on this route"
        ))),
    }
}

/// 404 `XetDisabled`: this repository's files are served over plain HTTP.
fn xet_disabled() -> ServiceError {
    ServiceError::new(
        ErrorKind::NotFound,
        Origin::Client,
        HubCode::XetDisabled,
        "this mirror serves this repository's files over plain HTTP; Xet is disabled",
    )
}

/// A request the upstream mirror answers.
async fn hub_request(m: Arc<Mirror>, route: Route, req: Request) -> Result<Response, ApiError> {
    let span = tracing::Span::current();
    let method = req.method().clone();
    let is_head = method == Method::HEAD;
    match (&method, route) {
        (
            &Method::GET | &Method::HEAD,
            Route::Resolve {
                repo,
                revision,
                path,
            },
        ) => resolve(&m, &repo, &revision, &path, req.headers(), is_head).await,
        (&Method::GET | &Method::HEAD, Route::Whoami) => {
            let (status, h, body) = m
                .passthrough(&Route::Whoami, auth(req.headers()).as_ref())
                .await?;
            let mut r = Response::new(Body::from(body));
            *r.status_mut() = status;
            copy_header(&h, r.headers_mut(), header::CONTENT_TYPE);
            Ok(r)
        }
        (&Method::GET | &Method::HEAD, Route::XetReadToken { repo, revision }) => {
            let host = host_of(req.headers());
            let (token, exp) = m
                .xet_token(&repo, &revision, auth(req.headers()).as_ref())
                .await?;
            let cas = format!("{}/cas", mirror_base(&m, &host));
            let body = serde_json::json!({"accessToken": token, "exp": exp, "casUrl": cas});
            let mut r = Response::new(Body::from(body.to_string()));
            let h = r.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            for (k, v) in [
                ("x-xet-cas-url", cas),
                ("x-xet-access-token", token),
                ("x-xet-token-expiration", exp.to_string()),
            ] {
                if let Ok(v) = HeaderValue::from_str(&v) {
                    h.insert(k, v);
                }
            }
            Ok(r)
        }
        (&Method::GET, Route::CasReconstruction { version, file }) => {
            let host = host_of(req.headers());
            let h = req.headers();
            let bearer = h
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(str::trim);
            let range = h.get(header::RANGE).and_then(|v| v.to_str().ok());
            let v = m
                .xet_reconstruction(version, &file, range, bearer, &mirror_base(&m, &host))
                .await?;
            let mut r = Response::new(Body::from(v.to_string()));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            Ok(r)
        }
        (&Method::GET, Route::CasXorb { xorb }) => {
            let range = req
                .headers()
                .get(header::RANGE)
                .and_then(|v| v.to_str().ok());
            let (served, stream) = m.xet_xorb(&xorb, req.uri().query(), range).await?;
            let mut r = Response::new(Body::from_stream(stream.map(|r| {
                r.map_err(|e| {
                    tracing::warn!(error = %e, "xorb body aborted");
                    std::io::Error::other(e.to_string())
                })
            })));
            *r.status_mut() = StatusCode::PARTIAL_CONTENT;
            let h = r.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            h.insert(header::CONTENT_LENGTH, served.len().into());
            if let Ok(v) =
                HeaderValue::from_str(&format!("bytes {}-{}/*", served.start, served.end))
            {
                h.insert(header::CONTENT_RANGE, v);
            }
            Ok(r)
        }
        (&Method::POST, route @ Route::PathsInfo { .. }) => {
            let host = host_of(req.headers());
            let a = auth(req.headers());
            let body = axum::body::to_bytes(req.into_body(), 1 << 20)
                .await
                .map_err(|_| ApiError::bad_request("paths-info body too large or unreadable"))?;
            let (c, cache) = m.paths_info(&route, body, a.as_ref()).await?;
            span.record("cache", cache);
            m.xet_check_listing(&route, &c.body, a.as_ref()).await;
            Ok(api_response(&m, &route, &c, &host))
        }
        (&Method::GET | &Method::HEAD, route) if !matches!(route, Route::PathsInfo { .. }) => {
            let host = host_of(req.headers());
            let query = req.uri().query().map(str::to_string);
            let (c, cache) = m
                .api(&route, query.as_deref(), None, auth(req.headers()).as_ref())
                .await?;
            span.record("cache", cache);
            m.xet_check_listing(&route, &c.body, auth(req.headers()).as_ref())
                .await;
            Ok(api_response(&m, &route, &c, &host))
        }
        _ => Err(ApiError::Hub {
            status: StatusCode::METHOD_NOT_ALLOWED,
            code: "MethodNotAllowed",
            message: format!("{method} is not supported on this route"),
        }),
    }
}

fn copy_header(from: &HeaderMap, to: &mut HeaderMap, name: header::HeaderName) {
    if let Some(v) = from.get(&name) {
        to.insert(name, v.clone());
    }
}

fn host_of(h: &HeaderMap) -> Option<String> {
    h.get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// The base URL clients reach the mirror at, for the URLs the mirror hands out (Xet `casUrl`,
/// `Link`s): the configured scheme and the `Host` the client used when it is one of the names
/// the mirror answers to (`mirror-netloc`, `mirror-lfs-netloc`, `mirror-names`), else
/// `mirror-netloc`. A `Host` is never echoed otherwise: behind a shared cache that ignores it,
/// one request naming another host would send every client's mirror token there.
fn mirror_base(m: &Mirror, host: &Option<String>) -> String {
    let cfg = &m.cfg;
    let netloc = host
        .as_deref()
        .map(str::trim)
        .filter(|h| {
            std::iter::once(&cfg.mirror_netloc)
                .chain([&cfg.mirror_lfs_netloc])
                .chain(&cfg.mirror_names)
                .any(|name| same_netloc(h, name, &cfg.mirror_scheme))
        })
        .unwrap_or(&cfg.mirror_netloc);
    format!("{}://{}", cfg.mirror_scheme, netloc)
}

/// Whether two `host[:port]`s name the same place for `scheme` (case-insensitive host, the
/// scheme's default port implied when absent).
fn same_netloc(a: &str, b: &str, scheme: &str) -> bool {
    let default = if scheme == "https" { "443" } else { "80" };
    let norm = |s: &str| {
        let s = s.to_ascii_lowercase();
        // `host:port` or `[v6]:port`; a bare IPv6 literal has no port.
        let has_port = s.rsplit_once(':').is_some_and(|(h, p)| {
            !p.is_empty()
                && p.bytes().all(|c| c.is_ascii_digit())
                && (!h.contains(':') || h.ends_with(']'))
        });
        if has_port {
            s
        } else {
            format!("{s}:{default}")
        }
    };
    norm(a) == norm(b)
}

fn api_response(m: &Mirror, route: &Route, c: &CachedResponse, host: &Option<String>) -> Response {
    // xetHash stays where clients speak Xet to the mirror; elsewhere it would send them upstream.
    let body = match route.repo() {
        Some(repo) if m.xet_serves(repo) => c.body.clone(),
        _ => xet::strip_json(&c.body),
    };
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = StatusCode::from_u16(c.status).unwrap_or(StatusCode::OK);
    let h = r.headers_mut();
    let ct = c
        .content_type
        .clone()
        .unwrap_or_else(|| "application/json; charset=utf-8".into());
    if let Ok(v) = HeaderValue::from_str(&ct) {
        h.insert(header::CONTENT_TYPE, v);
    }
    if let Some(link) = &c.link {
        let rewritten = rewrite_link(link, m.upstream.hub_base(), &mirror_base(m, host));
        if let Some(v) = rewritten.and_then(|l| HeaderValue::from_str(&l).ok()) {
            h.insert(header::LINK, v);
        }
    }
    r
}

/// Rewrites the Hub origin in a `Link` header to the mirror's, dropping any entry that would
/// still point elsewhere (so a client is never sent upstream) and Xet entries.
pub fn rewrite_link(link: &str, hub_base: &str, mirror_base: &str) -> Option<String> {
    let kept: Vec<String> = link
        .split(',')
        .map(str::trim)
        .filter(|e| !e.contains("rel=\"xet-"))
        .filter_map(|e| {
            let inner = e.strip_prefix('<')?;
            let (url, rest) = inner.split_once('>')?;
            let path = url.strip_prefix(hub_base)?;
            path.starts_with('/')
                .then(|| format!("<{mirror_base}{path}>{rest}"))
        })
        .collect();
    (!kept.is_empty()).then(|| kept.join(", "))
}

async fn resolve(
    m: &Arc<Mirror>,
    repo: &RepoRef,
    revision: &Revision,
    path: &RepoPath,
    req_headers: &HeaderMap,
    is_head: bool,
) -> Result<Response, ApiError> {
    let a = auth(req_headers);
    let started = Instant::now();
    let res = m.resolve(repo, revision, path, a.as_ref()).await?;
    if res.meta.xet_hash.is_some() {
        // Learn first whether Xet can be offered at all (an upstream CAS outside the allow list
        // means plain HTTP for this file).
        m.xet_check_cas(repo, &res.commit, a.as_ref()).await;
    }
    let span = tracing::Span::current();
    span.record("commit", res.commit.as_str());
    span.record("cache", res.cache);
    if res.cache != "hit" {
        span.record("upstream_ms", started.elapsed().as_millis() as u64);
    }
    let meta = &res.meta;
    let size = meta.size;
    let mut extra = HeaderMap::new();
    let put = |h: &mut HeaderMap, k: &'static str, v: &str| {
        if let Ok(v) = HeaderValue::from_str(v) {
            h.insert(k, v);
        }
    };
    if let Some(xh) = meta.xet_hash.as_deref().filter(|_| m.xet_serves(repo)) {
        // Xet clients go to the mirror's token route and CAS; hashes are never rewritten.
        let base = mirror_base(m, &host_of(req_headers));
        let token_route = Route::XetReadToken {
            repo: repo.clone(),
            revision: Revision::new(&res.commit).map_err(|e| ApiError::Internal(e.to_string()))?,
        };
        let refresh = format!("{base}{}", token_route.upstream_path());
        let recon = format!("{base}/cas/v1/reconstructions/{}", xh.to_ascii_lowercase());
        put(&mut extra, "x-xet-hash", xh);
        put(
            &mut extra,
            "link",
            &format!("<{refresh}>; rel=\"xet-auth\", <{recon}>; rel=\"xet-reconstruction-info\""),
        );
        // huggingface.js asks for the file info as JSON (PROTOCOL.md §4.6).
        let wants_fileinfo = req_headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.contains("application/vnd.xet-fileinfo+json"));
        if wants_fileinfo {
            let mut h = extra;
            let etag = format!("\"{}\"", meta.client_etag());
            put(&mut h, "x-repo-commit", &res.commit);
            put(&mut h, "etag", &etag);
            if meta.linked_etag.is_some() {
                put(&mut h, "x-linked-etag", &etag);
                put(&mut h, "x-linked-size", &size.to_string());
            }
            put(&mut h, "accept-ranges", "bytes");
            let body = serde_json::json!({
                "casUrl": format!("{base}/cas"),
                "hash": xh,
                "refreshUrl": refresh,
                "reconstructionUrl": recon,
                "etag": meta.client_etag(),
                "size": size,
            })
            .to_string();
            put(&mut h, "content-type", "application/vnd.xet-fileinfo+json");
            put(&mut h, "content-length", &body.len().to_string());
            let mut r = Response::new(if is_head {
                Body::empty()
            } else {
                Body::from(body)
            });
            *r.headers_mut() = h;
            return Ok(r);
        }
    }
    let file = RepoFile {
        head: FileHead {
            commit: Some(res.commit.clone()),
            size,
            etag: meta.client_etag().to_string(),
            linked: meta
                .linked_etag
                .as_ref()
                .map(|_| (meta.client_etag().to_string(), size)),
            xet_hash: meta.xet_hash.clone(),
            content_type: meta
                .content_type
                .clone()
                .unwrap_or_else(|| "application/octet-stream".into()),
            outcome: match res.cache {
                "hit" => Outcome::Hit,
                "revalidated" => Outcome::Revalidated,
                "stale" => Outcome::Stale,
                _ => Outcome::Miss,
            },
        },
        body: Arc::new(HubBody(FileTarget {
            mirror: m.clone(),
            repo: repo.clone(),
            commit: res.commit.clone(),
            path: path.clone(),
            auth: a.clone(),
            size,
            key: meta.blob_key(),
            xet_hash: meta.xet_hash.clone(),
        })),
    };
    Ok(surface::file_response(file, req_headers, is_head, extra)
        .await
        .unwrap_or_else(surface::render))
}

type IoStream = futures::stream::BoxStream<'static, Result<Bytes, std::io::Error>>;

/// The upstream mirror's file bytes as a [`FileBody`] (a small adapter until `FileTarget`
/// moves into the service).
struct HubBody(FileTarget);

#[async_trait::async_trait]
impl FileBody for HubBody {
    async fn open(&self, start: u64, end: u64) -> Result<ByteStream, ServiceError> {
        self.0.stream(start, end).await.map_err(to_service)
    }
}

/// An [`ApiError`] as a [`ServiceError`] (until `ApiError` goes).
fn to_service(e: ApiError) -> ServiceError {
    match e {
        ApiError::Upstream {
            status,
            headers,
            body,
        } => ServiceError::relayed(status, &headers, body),
        ApiError::Hub {
            status,
            code,
            message,
        } => {
            let kind = match status {
                StatusCode::BAD_REQUEST => ErrorKind::BadRequest,
                StatusCode::UNAUTHORIZED => ErrorKind::Unauthorized,
                StatusCode::FORBIDDEN => ErrorKind::Forbidden,
                StatusCode::NOT_FOUND => ErrorKind::NotFound,
                StatusCode::METHOD_NOT_ALLOWED => ErrorKind::MethodNotAllowed,
                StatusCode::SERVICE_UNAVAILABLE => ErrorKind::Busy,
                _ => ErrorKind::Internal,
            };
            let code = [
                HubCode::RepoNotFound,
                HubCode::RevisionNotFound,
                HubCode::EntryNotFound,
                HubCode::GatedRepo,
                HubCode::NotFound,
                HubCode::BadRequest,
                HubCode::MethodNotAllowed,
                HubCode::Unauthorized,
                HubCode::Forbidden,
                HubCode::OfflineNotCached,
                HubCode::XetDisabled,
                HubCode::ContentChanging,
                HubCode::TooManyConnections,
            ]
            .into_iter()
            .find(|c| c.as_str() == code)
            .unwrap_or(HubCode::InternalError);
            ServiceError::new(kind, Origin::Client, code, message)
        }
        ApiError::Unavailable { timeout, message } => ServiceError::unavailable(timeout, message),
        ApiError::BadUpstream(m) => ServiceError::bad_upstream(m),
        ApiError::RangeNotSatisfiable { size } => ServiceError::range_not_satisfiable(size),
        ApiError::Internal(m) => ServiceError::internal(m),
    }
}

/// Everything needed to stream byte ranges of one file at one commit.
#[derive(Clone)]
struct FileTarget {
    mirror: Arc<Mirror>,
    repo: RepoRef,
    commit: String,
    path: RepoPath,
    auth: Option<HeaderValue>,
    size: u64,
    key: Option<olah_store::BlobKey>,
    xet_hash: Option<String>,
}

impl FileTarget {
    /// Bytes `start..=end`: through the blob store (cache, in-flight fill, or a new fill), or
    /// straight from the upstream for a cache-denied repo.
    async fn stream(&self, start: u64, end: u64) -> Result<IoStream, ApiError> {
        let m = &self.mirror;
        // A Xet file is rebuilt from the xorb cache that Xet clients fill too (one cache for
        // both paths); anything else comes from the Hub's resolve URL.
        let xet_source = self.xet_hash.as_deref().and_then(|xh| {
            m.xet_file_source(
                &self.repo,
                &self.commit,
                self.auth.as_ref(),
                &xh.to_ascii_lowercase(),
                self.size,
            )
        });
        let source = xet_source.or_else(|| {
            m.file_source(
                &self.repo,
                &self.commit,
                &self.path,
                self.auth.as_ref(),
                self.size,
            )
        });
        let direct = |source: Option<Arc<dyn olah_store::Source>>| async move {
            let source = source.ok_or_else(|| {
                ApiError::from(olah_store::StoreError::NotCached(self.path.as_str().into()))
            })?;
            let s = source
                .fetch(start, end)
                .await
                .map_err(|e| ApiError::Unavailable {
                    timeout: false,
                    message: e.message,
                })?;
            Ok::<IoStream, ApiError>(
                s.map(|r| r.map_err(|e| std::io::Error::other(e.message)))
                    .boxed(),
            )
        };
        if !m.cache_allowed(&self.repo) {
            return direct(source).await;
        }
        let key = self
            .key
            .ok_or_else(|| ApiError::Internal("cached file without a content key".into()))?;
        if m.db.is_degraded()
            && source.is_some()
            && !m
                .db
                .blob(&key)
                .ok()
                .flatten()
                .is_some_and(|r| r.complete && r.size == self.size)
        {
            // The metadata store cannot be written (a full disk): serve from the upstream
            // without caching until a metadata write succeeds again.
            m.cache_write_failed(&ApiError::Internal(
                "metadata store degraded after an I/O error".into(),
            ));
            return direct(source).await;
        }
        let blob = match m.blobs.open(key, self.size).await {
            Ok(b) => b,
            // The store cannot be written (a full disk, a database being reopened): serve
            // straight from the upstream without caching rather than fail the download.
            Err(e) if source.is_some() => {
                m.cache_write_failed(&ApiError::from(e));
                return direct(source).await;
            }
            Err(e) => return Err(e.into()),
        };
        if source.is_none() && !blob.is_cached(start, end) {
            // Offline and not (fully) cached: say so before any header is sent.
            return Err(crate::mirror::offline_miss(&format!(
                "{} bytes {start}-{end}",
                self.path.as_str()
            )));
        }
        let want = end - start + 1;
        let span = tracing::Span::current();
        let me = Arc::new(self.clone());
        let counted = BlobStore::read(blob, start, end, source).scan(0u64, move |sent, item| {
            if let Ok(b) = &item {
                *sent += b.len() as u64;
                if *sent == want {
                    span.in_scope(|| tracing::info!(bytes = *sent, "body complete"));
                }
            }
            match item {
                Ok(b) => futures::future::Either::Left(futures::future::ready(Some(Ok(b)))),
                Err(e) => {
                    let me = me.clone();
                    futures::future::Either::Right(async move {
                        tracing::warn!(error = %e, "body aborted");
                        if matches!(e, olah_store::StoreError::InvalidData(_)) {
                            // Before the client sees the error (and asks again).
                            me.mirror
                                .content_rejected(&me.repo, &me.commit, &me.path)
                                .await;
                        }
                        Some(Err(std::io::Error::other(e.to_string())))
                    })
                }
            }
        });
        Ok(counted.boxed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_rewrite_points_at_the_mirror_and_drops_foreign_entries() {
        let l = "<https://huggingface.co/api/models/a/b/tree/main?recursive=true&cursor=xyz>; rel=\"next\"";
        assert_eq!(
            rewrite_link(l, "https://huggingface.co", "http://m:8090").unwrap(),
            "<http://m:8090/api/models/a/b/tree/main?recursive=true&cursor=xyz>; rel=\"next\""
        );
        assert!(
            rewrite_link(
                "<https://evil.example/x>; rel=\"next\"",
                "https://huggingface.co",
                "http://m"
            )
            .is_none()
        );
        assert!(
            rewrite_link(
                "<https://huggingface.co.evil/x>; rel=\"next\"",
                "https://huggingface.co",
                "http://m"
            )
            .is_none()
        );
        let x = "<https://huggingface.co/api/models/a/b/xet-read-token/s>; rel=\"xet-auth\"";
        assert!(rewrite_link(x, "https://huggingface.co", "http://m").is_none());
    }

    #[test]
    fn file_body_errors_render_as_before_through_the_adapter() {
        let mut relayed = HeaderMap::new();
        relayed.insert("x-error-code", HeaderValue::from_static("GatedRepo"));
        for e in [
            crate::mirror::offline_miss("a.bin bytes 0-9"),
            ApiError::Unavailable {
                timeout: true,
                message: "slow".into(),
            },
            ApiError::Unavailable {
                timeout: false,
                message: "down".into(),
            },
            ApiError::BadUpstream("garbage".into()),
            ApiError::RangeNotSatisfiable { size: 7 },
            ApiError::Internal("disk".into()),
            ApiError::not_found("gone"),
            ApiError::from_upstream(StatusCode::UNAUTHORIZED, &relayed, Bytes::new()),
        ] {
            let before = e.clone().into_response();
            let after = surface::render(to_service(e.clone()));
            assert_eq!(before.status(), after.status(), "{e:?}");
            for h in ["x-error-code", "x-error-message", "content-range"] {
                assert_eq!(
                    before.headers().get(h),
                    after.headers().get(h),
                    "{h} of {e:?}"
                );
            }
        }
    }

    #[test]
    fn netlocs_compare_with_the_default_port_and_any_case() {
        assert!(same_netloc("Mirror.LAN", "mirror.lan:80", "http"));
        assert!(same_netloc("mirror.lan:443", "mirror.lan", "https"));
        assert!(!same_netloc("mirror.lan:443", "mirror.lan", "http"));
        assert!(same_netloc("127.0.0.1:8090", "127.0.0.1:8090", "http"));
        assert!(!same_netloc("127.0.0.1:8091", "127.0.0.1:8090", "http"));
        assert!(same_netloc("[::1]:8090", "[::1]:8090", "http"));
        assert!(same_netloc("[::1]", "[::1]:80", "http"));
        assert!(!same_netloc("evil.example", "mirror.lan", "http"));
        assert!(!same_netloc(
            "mirror.lan.evil.example:80",
            "mirror.lan:80",
            "http"
        ));
    }
}
