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
use futures::StreamExt;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use olah_service::error::{ErrorKind, HubCode, Origin};
use olah_service::hub::CachedResponse;
use olah_service::source::{
    DirSource, FileHead, GitSource, MetaRequest, Outcome, PathsQuery, RepoFile, RepoSource,
    RequestCtx, Sources,
};
use olah_service::{Mirror, ServiceError, xet};
use olah_types::{RepoPath, RepoRef, Revision, Route, parse_route};
use tracing::Instrument;

use crate::error::render;
use crate::surface;

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
        let roots = mirror.policy().config().mirrors_path.clone();
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
        Err(e) => return render(e.into()),
    };
    if matches!(route, Route::Health) && matches!(*req.method(), Method::GET | Method::HEAD) {
        return "ok".into_response();
    }
    let span = tracing::Span::current();
    if let Some(r) = route.repo() {
        span.record("repo", r.key());
        if let Some(m) = &app.mirror
            && let Err(e) = m.policy().check_proxy(r)
        {
            return render(e);
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
            render(e)
        });
    }
    match app.mirror {
        Some(m) => {
            span.record("source", "hub");
            hub_request(m, route, req).await.unwrap_or_else(render)
        }
        None => render(no_mirror(&route)),
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
async fn hub_request(m: Arc<Mirror>, route: Route, req: Request) -> Result<Response, ServiceError> {
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
                .hub()
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
                .xet()
                .token(&repo, &revision, auth(req.headers()).as_ref())
                .await?;
            let cas = format!("{}/cas", m.policy().mirror_base(host.as_deref()));
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
            let base = m.policy().mirror_base(host.as_deref());
            let v = m
                .xet()
                .reconstruction_json(version, &file, range, bearer, &base)
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
            let (served, stream) = m.xet().xorb(&xorb, req.uri().query(), range).await?;
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
                .map_err(|_| {
                    ServiceError::bad_request("paths-info body too large or unreadable")
                })?;
            let (c, cache) = m.hub().paths_info(&route, body, a.as_ref()).await?;
            span.record("cache", cache);
            m.xet().check_listing(&route, &c.body, a.as_ref()).await;
            Ok(api_response(&m, &route, &c, &host))
        }
        (&Method::GET | &Method::HEAD, route) if !matches!(route, Route::PathsInfo { .. }) => {
            let host = host_of(req.headers());
            let query = req.uri().query().map(str::to_string);
            let (c, cache) = m
                .hub()
                .api(&route, query.as_deref(), None, auth(req.headers()).as_ref())
                .await?;
            span.record("cache", cache);
            m.xet()
                .check_listing(&route, &c.body, auth(req.headers()).as_ref())
                .await;
            Ok(api_response(&m, &route, &c, &host))
        }
        _ => Err(ServiceError::method_not_allowed(format!(
            "{method} is not supported on this route"
        ))),
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

fn api_response(m: &Mirror, route: &Route, c: &CachedResponse, host: &Option<String>) -> Response {
    // xetHash stays where clients speak Xet to the mirror; elsewhere it would send them upstream.
    let body = match route.repo() {
        Some(repo) if m.xet().serves(repo) => c.body.clone(),
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
        let rewritten = rewrite_link(
            link,
            m.hub().hub_base(),
            &m.policy().mirror_base(host.as_deref()),
        );
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
) -> Result<Response, ServiceError> {
    let a = auth(req_headers);
    let started = Instant::now();
    let res = m.hub().resolve(repo, revision, path, a.as_ref()).await?;
    if res.meta.xet_hash.is_some() {
        // Learn first whether Xet can be offered at all (an upstream CAS outside the allow list
        // means plain HTTP for this file).
        m.xet().check_cas(repo, &res.commit, a.as_ref()).await;
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
    if let Some(xh) = meta.xet_hash.as_deref().filter(|_| m.xet().serves(repo)) {
        // Xet clients go to the mirror's token route and CAS; hashes are never rewritten.
        let base = m.policy().mirror_base(host_of(req_headers).as_deref());
        let token_route = Route::XetReadToken {
            repo: repo.clone(),
            revision: Revision::new(&res.commit)
                .map_err(|e| ServiceError::internal(e.to_string()))?,
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
        body: Arc::new(m.files().body(repo, path, &res, a.as_ref())),
    };
    surface::file_response(file, req_headers, is_head, extra).await
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
}
