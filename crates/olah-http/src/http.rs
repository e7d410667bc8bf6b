//! The HTTP surface: one fallback handler that parses the path with the single route parser and
//! dispatches: proxy rules (serve mode) → for a repo route, the first source that owns the repo
//! (local git, directories, then the upstream Hub), answered through [`crate::surface`] on one
//! path for every source → the Hub-only routes (whoami, Xet token, CAS) → else 404. One router
//! for serve and model-bin modes, so both get the request span.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use olah_metrics::{HttpLabels, MethodLabel, RouteLabels};
use olah_service::error::{ErrorKind, HubCode, Origin};
use olah_service::hub_source::HubSource;
use olah_service::source::{MetaRequest, Outcome, PathsQuery, RepoSource, RequestCtx};
use olah_service::{Mirror, ServiceError};
use olah_types::{RepoRef, Revision, Route, parse_route};
use tracing::Instrument;

use crate::error::render;
use crate::surface;

pub use crate::app::{App, AppState};

/// The mirror's router (serve and model-bin modes).
pub fn router(app: App) -> Router {
    Router::new()
        .fallback(dispatch)
        .layer(middleware::from_fn(trace))
        .with_state(app)
}

use crate::request::{Parsed, route_class};

/// One span per request; handlers record repo, revision, commit, source and cache outcome on it.
/// Counts the request (`olah_http_requests_total{route,method,status}`) and its time to the
/// response head (`olah_http_request_duration_seconds{route}`).
async fn trace(mut req: Request, next: Next) -> Response {
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
    let parsed = parse_route(req.uri().path());
    let route = route_class(&parsed);
    let method = MethodLabel::from_method(req.method().as_str());
    req.extensions_mut().insert(Parsed(parsed));
    let resp = next.run(req).instrument(span.clone()).await;
    let status = resp.status().as_u16();
    span.record("status", status);
    let elapsed = started.elapsed();
    let m = olah_metrics::metrics();
    m.http_requests
        .get_or_create(&HttpLabels {
            route,
            method,
            status,
        })
        .inc();
    m.http_duration
        .get_or_create(&RouteLabels { route })
        .observe(elapsed.as_secs_f64());
    span.in_scope(|| tracing::info!(ms = elapsed.as_millis() as u64, "response"));
    resp
}

fn auth(headers: &HeaderMap) -> Option<HeaderValue> {
    headers.get(header::AUTHORIZATION).cloned()
}

async fn dispatch(State(app): State<AppState>, req: Request) -> Response {
    let uri = req.uri().clone();
    let resp = route_request(app.clone(), req).await;
    // Failures (≥ 500, 429) go to the admin page's error ring.
    crate::admin::note_failure(&app, &uri, &resp);
    resp
}

/// Largest request body read (paths-info).
const MAX_BODY: usize = 1 << 20;

async fn route_request(app: App, mut req: Request) -> Response {
    // Parsed by `trace` (every request of the router passes it).
    let parsed = match req.extensions_mut().remove::<Parsed>() {
        Some(Parsed(p)) => p,
        None => parse_route(req.uri().path()),
    };
    // `datasets` asks `datasets-server.{HF_ENDPOINT host}` for exported dataset infos (and
    // waits up to 100 s for an answer): a name aliased to the mirror gets a quick Hub-shaped 404,
    // whatever the path.
    if host_of(req.headers())
        .is_some_and(|h| h.to_ascii_lowercase().starts_with("datasets-server."))
    {
        return render(ServiceError::new(
            ErrorKind::NotFound,
            Origin::Client,
            HubCode::NotFound,
            "this mirror does not serve the dataset viewer",
        ));
    }
    let route = match parsed {
        Ok(r) => r,
        Err(e) => return render(e.into()),
    };
    // The resolve-cache URL of a regular file is that file at a commit.
    let route = match route {
        Route::ResolveCache { repo, commit, path } => Route::Resolve {
            repo,
            revision: commit,
            path,
        },
        r => r,
    };
    if route == Route::AgentHarnesses && matches!(*req.method(), Method::GET | Method::HEAD) {
        return agent_harnesses();
    }
    if matches!(*req.method(), Method::GET | Method::HEAD) {
        match route {
            // Liveness: the process answers. Readiness: its stores can be used. Neither asks
            // the upstream.
            Route::Health => return "ok".into_response(),
            Route::Ready => return ready(app.mirror.as_deref()).await,
            Route::Metrics => return metrics_answer(app.mirror.as_deref()),
            _ => {}
        }
    }
    match route {
        Route::Landing | Route::Admin(_) => return crate::admin::answer(&app, route, req).await,
        _ => {}
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
    // Storage Buckets (and the write route shared with repositories): their own block.
    if route.is_bucket() {
        return match &app.mirror {
            Some(m) => {
                span.record("source", olah_service::bucket::NAME);
                bucket_request(m, route, req).await.unwrap_or_else(render)
            }
            None => render(no_mirror(&route)),
        };
    }
    // The first source that owns the repo answers every request about it: a local one never
    // involves the upstream.
    if let Some(repo) = route.repo()
        && let Some(src) = app.sources.pick(repo).await
    {
        span.record("source", src.name());
        if src.name() != HubSource::NAME {
            span.record("cache", Outcome::Local.as_str());
        }
        return repo_request(&app, src, route, req)
            .await
            .unwrap_or_else(|e| {
                if let Some(c) = &e.commit {
                    span.record("commit", c.as_str());
                }
                render(e)
            });
    }
    match app.mirror {
        Some(m) if route.repo().is_none() => {
            span.record("source", HubSource::NAME);
            hub_request(m, route, req).await.unwrap_or_else(render)
        }
        _ => render(no_mirror(&route)),
    }
}

/// `/metrics`: the Prometheus text exposition. Open like `/healthz` (scrapers run elsewhere);
/// no label names a repository, path or token. The cache gauges are refreshed from the store
/// first.
fn metrics_answer(mirror: Option<&Mirror>) -> Response {
    if let Some(m) = mirror {
        m.refresh_metrics();
    }
    (
        [(header::CONTENT_TYPE, olah_metrics::CONTENT_TYPE)],
        olah_metrics::encode(),
    )
        .into_response()
}

/// `/readyz`: 200 `ok` when the cache can be used (model-bin mode has no cache: always), else
/// 503 `NotReady` with the reason.
async fn ready(mirror: Option<&Mirror>) -> Response {
    match mirror {
        Some(m) => match m.readiness().await {
            Ok(()) => "ok".into_response(),
            Err(reason) => render(ServiceError::new(
                ErrorKind::Busy,
                Origin::Internal,
                HubCode::NotReady,
                reason,
            )),
        },
        None => "ok".into_response(),
    }
}

/// Without an upstream (model-bin mode): health answers, nothing else exists.
fn no_mirror(route: &Route) -> ServiceError {
    match route {
        // GET and HEAD were answered before.
        Route::Health | Route::Ready => {
            ServiceError::method_not_allowed("only GET and HEAD on /health and /readyz")
        }
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

/// A request about a repo `src` owns, on one path for every source: resolve → `src.file()` →
/// [`surface::file_response`]; metadata → `src.meta()` → [`surface::meta_response`].
async fn repo_request(
    app: &App,
    src: Arc<dyn RepoSource>,
    route: Route,
    req: Request,
) -> Result<Response, ServiceError> {
    let span = tracing::Span::current();
    let method = req.method().clone();
    let read = method == Method::GET || method == Method::HEAD;
    let is_head = method == Method::HEAD;
    let is_hub = src.name() == HubSource::NAME;
    let host = host_of(req.headers());
    // Only the Hub ever sees the caller's credentials.
    let cx = RequestCtx {
        auth: if is_hub { auth(req.headers()) } else { None },
    };
    let base = app
        .mirror
        .as_ref()
        .map(|m| m.policy().mirror_base(host.as_deref()));
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
            span.record("cache", a.outcome.as_str());
            Ok::<_, ServiceError>(a)
        }
    };
    let link_bases = app
        .mirror
        .as_ref()
        .zip(base.as_deref())
        .map(|(m, b)| (m.hub().hub_base(), b));
    match &route {
        Route::Resolve {
            repo,
            revision,
            path,
        } if read => {
            let started = Instant::now();
            let f = src.file(&cx, repo, revision, path).await?;
            if let Some(c) = &f.head.commit {
                span.record("commit", c.as_str());
            }
            let outcome = f.head.outcome;
            span.record("cache", outcome.as_str());
            if !matches!(outcome, Outcome::Hit | Outcome::Local) {
                span.record("upstream_ms", started.elapsed().as_millis() as u64);
            }
            let resp =
                surface::file_response(f, repo, req.headers(), is_head, base.as_deref()).await?;
            // Downloads per repository, for the admin page.
            if let Some(m) = &app.mirror
                && !is_head
                && resp.status().is_success()
            {
                let len = resp
                    .headers()
                    .get(header::CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok()?.parse().ok())
                    .unwrap_or(0);
                m.activity().download(repo, len);
            }
            Ok(resp)
        }
        Route::Raw {
            repo,
            revision,
            path,
        } if read => {
            let f = olah_service::source::raw_view(src.file(&cx, repo, revision, path).await?);
            if let Some(c) = &f.head.commit {
                span.record("commit", c.as_str());
            }
            span.record("cache", f.head.outcome.as_str());
            surface::file_response(f, repo, req.headers(), is_head, base.as_deref()).await
        }
        Route::SafetensorsMetadata { .. } | Route::AuthCheck { .. } if read => match &app.mirror {
            // Asked upstream with the caller's own credentials, never cached.
            Some(m) if is_hub => {
                let (status, h, body) = m.hub().passthrough(&route, None, cx.auth.as_ref()).await?;
                let mut r = Response::new(if is_head {
                    Body::empty()
                } else {
                    Body::from(body)
                });
                *r.status_mut() = status;
                copy_header(&h, r.headers_mut(), header::CONTENT_TYPE);
                Ok(r)
            }
            _ => Err(ServiceError::new(
                ErrorKind::NotFound,
                Origin::Client,
                HubCode::EntryNotFound,
                "not available for a local repository",
            )),
        },
        Route::XetReadToken { repo, revision } if read => match &app.mirror {
            Some(m) if is_hub => xet_token(m, repo, revision, req.headers()).await,
            // Local repositories have no Xet storage: nothing announces Xet for them.
            _ => Err(xet_disabled()),
        },
        Route::PathsInfo { .. } if method == Method::POST => {
            let body = axum::body::to_bytes(req.into_body(), MAX_BODY)
                .await
                .map_err(|_| {
                    ServiceError::bad_request("paths-info body too large or unreadable")
                })?;
            let paths = PathsQuery::parse(&body)?;
            Ok(surface::meta_response(
                meta(Some(paths)).await?,
                false,
                link_bases,
            ))
        }
        Route::RepoInfo { .. }
        | Route::RevisionInfo { .. }
        | Route::Tree { .. }
        | Route::Refs { .. }
        | Route::Commits { .. }
            if read =>
        {
            Ok(surface::meta_response(
                meta(None).await?,
                is_head,
                link_bases,
            ))
        }
        _ => Err(ServiceError::method_not_allowed(format!(
            "{method} is not supported on this route"
        ))),
    }
}

// ------------------------------------------------------------------------------------------
// Storage Buckets (PROTOCOL-2.md A): read routes through `Mirror::buckets`, write routes refused.

async fn bucket_request(m: &Mirror, route: Route, req: Request) -> Result<Response, ServiceError> {
    use olah_service::bucket::{no_events, read_only};
    let method = req.method().clone();
    let read = method == Method::GET || method == Method::HEAD;
    let is_head = method == Method::HEAD;
    let host = host_of(req.headers());
    let base = m.policy().mirror_base(host.as_deref());
    let links = Some((m.hub().hub_base(), base.as_str()));
    let cx = RequestCtx {
        auth: auth(req.headers()),
    };
    let query = req.uri().query().map(str::to_string);
    let span = tracing::Span::current();
    let b = m.buckets();
    match &route {
        Route::BucketInfo { .. } | Route::BucketTree { .. } if read => {
            let a = b.meta(&cx, &route, query.as_deref(), None).await?;
            span.record("cache", a.outcome.as_str());
            Ok(surface::meta_response(a, is_head, links))
        }
        Route::BucketInfo { .. } if method == Method::POST || method == Method::DELETE => {
            Err(read_only("creating or deleting a bucket"))
        }
        Route::BucketList { .. } if read => {
            let a = b.list(&cx, &route, query.as_deref()).await?;
            Ok(surface::meta_response(a, is_head, links))
        }
        Route::BucketPathsInfo { .. } if method == Method::POST => {
            let body = axum::body::to_bytes(req.into_body(), MAX_BODY)
                .await
                .map_err(|_| {
                    ServiceError::bad_request("paths-info body too large or unreadable")
                })?;
            let paths = PathsQuery::parse(&body)?;
            let a = b.meta(&cx, &route, None, Some(&paths)).await?;
            span.record("cache", a.outcome.as_str());
            Ok(surface::meta_response(a, false, links))
        }
        Route::BucketResolve { bucket, path } if read => {
            let started = Instant::now();
            let f = b.file(&cx, bucket, path).await?;
            let outcome = f.head.outcome;
            span.record("cache", outcome.as_str());
            if !matches!(outcome, Outcome::Hit) {
                span.record("upstream_ms", started.elapsed().as_millis() as u64);
            }
            surface::file_response(f, bucket, req.headers(), is_head, Some(&base)).await
        }
        Route::BucketXetReadToken { bucket } if read => {
            let (token, exp) = m.xet().bucket_token(bucket, cx.auth.as_ref()).await?;
            Ok(token_answer(format!("{base}/cas"), token, exp))
        }
        Route::BucketEvents { .. } => Err(no_events()),
        Route::BucketWrite { op, .. } => Err(read_only(&format!("the bucket's {}", op.as_str()))),
        Route::RepoMove => Err(read_only("moving a repository or bucket")),
        _ => Err(ServiceError::method_not_allowed(format!(
            "{method} is not supported on this route"
        ))),
    }
}

/// A Xet token answer (repos and buckets): the mirror's token and CAS URL in JSON (`casUrl`:
/// hf_xet reads it for buckets) and in the `X-Xet-*` headers (huggingface_hub reads them).
fn token_answer(cas: String, token: String, exp: u64) -> Response {
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
    r
}

/// `/api/agent-harnesses`: huggingface_hub's daily question (which environment variables name
/// a coding agent) answered locally: none, so no client request of it reaches the upstream.
fn agent_harnesses() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"standardEnvVars":[],"harnesses":{}}"#,
    )
        .into_response()
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

/// The Xet token route of a Hub repo: access confirmed like a file; the answer is a mirror
/// token and the mirror's CAS URL, in headers and JSON.
async fn xet_token(
    m: &Mirror,
    repo: &RepoRef,
    revision: &Revision,
    headers: &HeaderMap,
) -> Result<Response, ServiceError> {
    let host = host_of(headers);
    let (token, exp) = m
        .xet()
        .token(repo, revision, auth(headers).as_ref())
        .await?;
    let cas = format!("{}/cas", m.policy().mirror_base(host.as_deref()));
    Ok(token_answer(cas, token, exp))
}

/// A request of a Hub-only route (no repository in it): whoami and the Xet CAS.
async fn hub_request(m: Arc<Mirror>, route: Route, req: Request) -> Result<Response, ServiceError> {
    let method = req.method().clone();
    match (&method, route) {
        (&Method::GET | &Method::HEAD, Route::Whoami) => {
            let (status, h, body) = m
                .hub()
                .passthrough(&Route::Whoami, None, auth(req.headers()).as_ref())
                .await?;
            let mut r = Response::new(Body::from(body));
            *r.status_mut() = status;
            copy_header(&h, r.headers_mut(), header::CONTENT_TYPE);
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
