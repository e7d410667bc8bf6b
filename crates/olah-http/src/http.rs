//! The HTTP surface: one fallback handler that parses the path with the single route parser and
//! dispatches to thin handlers. Responses are built here; errors go through
//! [`crate::error::HttpError`].

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
use olah_service::hub::CachedResponse;
use olah_service::{Mirror, ServiceError, xet};
use olah_types::{ConditionalAnswer, RepoPath, RepoRef, Revision, Route, parse_route};
use tracing::Instrument;

use crate::error::HttpError;
use crate::localgit::LocalRepos;

/// What the handlers share: the services, and the local git repositories (`mirrors-path`).
pub struct App {
    /// The mirror's services.
    pub mirror: Arc<Mirror>,
    /// Local git repositories, answered without the upstream.
    pub local: LocalRepos,
}

/// Shared state of the handlers.
pub type AppState = Arc<App>;

/// The mirror's router.
pub fn router(mirror: Arc<Mirror>) -> Router {
    let local = LocalRepos::new(mirror.policy().config().mirrors_path.clone());
    Router::new()
        .fallback(dispatch)
        .layer(middleware::from_fn(trace))
        .with_state(Arc::new(App { mirror, local }))
}

/// One span per request; handlers record repo, revision, commit and cache outcome on it.
async fn trace(req: Request, next: Next) -> Response {
    let span = tracing::info_span!(
        "request",
        method = %req.method(),
        path = %req.uri().path(),
        status = tracing::field::Empty,
        repo = tracing::field::Empty,
        revision = tracing::field::Empty,
        commit = tracing::field::Empty,
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

async fn dispatch(State(m): State<AppState>, req: Request) -> Response {
    match route_request(m, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn route_request(m: AppState, req: Request) -> Result<Response, HttpError> {
    let route = parse_route(req.uri().path()).map_err(ServiceError::from)?;
    let span = tracing::Span::current();
    if let Some(r) = route.repo() {
        span.record("repo", r.key());
        m.mirror.policy().check_proxy(r)?;
    }
    if let Some(r) = route.revision() {
        span.record("revision", r.as_str());
    }
    // mirrors-path: a local git repository answers on its own, never the upstream.
    let req = if route.repo().is_some() && !m.local.is_empty() {
        let (parts, body) = req.into_parts();
        let (body, bytes) = if parts.method == Method::POST {
            let b = axum::body::to_bytes(body, 1 << 20)
                .await
                .map_err(|_| ServiceError::bad_request("request body too large or unreadable"))?;
            (Body::from(b.clone()), Some(b))
        } else {
            (body, None)
        };
        if let Some(answer) = m
            .local
            .handle(
                &parts.method,
                &route,
                parts.uri.query(),
                &parts.headers,
                bytes,
            )
            .await
        {
            // Local answers still use the old error type until localgit.rs is converted.
            return Ok(answer.unwrap_or_else(IntoResponse::into_response));
        }
        Request::from_parts(parts, body)
    } else {
        req
    };
    let method = req.method().clone();
    let is_head = method == Method::HEAD;
    match (&method, route) {
        (&Method::GET, Route::Health) | (&Method::HEAD, Route::Health) => Ok("ok".into_response()),
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
                .mirror
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
                .mirror
                .xet()
                .token(&repo, &revision, auth(req.headers()).as_ref())
                .await?;
            let cas = format!("{}/cas", m.mirror.policy().mirror_base(host.as_deref()));
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
            let base = m.mirror.policy().mirror_base(host.as_deref());
            let v = m
                .mirror
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
            let (served, stream) = m.mirror.xet().xorb(&xorb, req.uri().query(), range).await?;
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
            let (c, cache) = m.mirror.hub().paths_info(&route, body, a.as_ref()).await?;
            span.record("cache", cache);
            m.mirror
                .xet()
                .check_listing(&route, &c.body, a.as_ref())
                .await;
            Ok(api_response(&m, &route, &c, &host))
        }
        (&Method::GET | &Method::HEAD, route) if !matches!(route, Route::PathsInfo { .. }) => {
            let host = host_of(req.headers());
            let query = req.uri().query().map(str::to_string);
            let (c, cache) = m
                .mirror
                .hub()
                .api(&route, query.as_deref(), None, auth(req.headers()).as_ref())
                .await?;
            span.record("cache", cache);
            m.mirror
                .xet()
                .check_listing(&route, &c.body, auth(req.headers()).as_ref())
                .await;
            Ok(api_response(&m, &route, &c, &host))
        }
        _ => Err(ServiceError::method_not_allowed(format!(
            "{method} is not supported on this route"
        ))
        .into()),
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

fn api_response(m: &App, route: &Route, c: &CachedResponse, host: &Option<String>) -> Response {
    // xetHash stays where clients speak Xet to the mirror; elsewhere it would send them upstream.
    let body = match route.repo() {
        Some(repo) if m.mirror.xet().serves(repo) => c.body.clone(),
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
            m.mirror.hub().hub_base(),
            &m.mirror.policy().mirror_base(host.as_deref()),
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
    m: &AppState,
    repo: &RepoRef,
    revision: &Revision,
    path: &RepoPath,
    req_headers: &HeaderMap,
    is_head: bool,
) -> Result<Response, HttpError> {
    let a = auth(req_headers);
    let started = Instant::now();
    let res = m
        .mirror
        .hub()
        .resolve(repo, revision, path, a.as_ref())
        .await?;
    if res.meta.xet_hash.is_some() {
        // Learn first whether Xet can be offered at all (an upstream CAS outside the allow list
        // means plain HTTP for this file).
        m.mirror
            .xet()
            .check_cas(repo, &res.commit, a.as_ref())
            .await;
    }
    let span = tracing::Span::current();
    span.record("commit", res.commit.as_str());
    span.record("cache", res.cache);
    if res.cache != "hit" {
        span.record("upstream_ms", started.elapsed().as_millis() as u64);
    }
    let meta = &res.meta;
    let size = meta.size;
    let etag = format!("\"{}\"", meta.client_etag());
    let mut h = HeaderMap::new();
    let put = |h: &mut HeaderMap, k: &'static str, v: &str| {
        if let Ok(v) = HeaderValue::from_str(v) {
            h.insert(k, v);
        }
    };
    put(&mut h, "x-repo-commit", &res.commit);
    put(&mut h, "etag", &etag);
    if meta.linked_etag.is_some() {
        put(&mut h, "x-linked-etag", &etag);
        put(&mut h, "x-linked-size", &size.to_string());
    }
    put(&mut h, "accept-ranges", "bytes");
    if let Some(xh) = meta
        .xet_hash
        .as_deref()
        .filter(|_| m.mirror.xet().serves(repo))
    {
        // Xet clients go to the mirror's token route and CAS; hashes are never rewritten.
        let base = m
            .mirror
            .policy()
            .mirror_base(host_of(req_headers).as_deref());
        let token_route = Route::XetReadToken {
            repo: repo.clone(),
            revision: Revision::new(&res.commit)
                .map_err(|e| ServiceError::internal(e.to_string()))?,
        };
        let refresh = format!("{base}{}", token_route.upstream_path());
        let recon = format!("{base}/cas/v1/reconstructions/{}", xh.to_ascii_lowercase());
        put(&mut h, "x-xet-hash", xh);
        put(
            &mut h,
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
    put(
        &mut h,
        "content-type",
        meta.content_type
            .as_deref()
            .unwrap_or("application/octet-stream"),
    );
    // Conditional request and ranges: one range → 206; several → 206 multipart/byteranges
    // (unsatisfiable parts dropped, at most MAX_RANGES); none satisfiable → 416.
    let ranges: Option<Vec<(u64, u64)>> = match olah_types::conditional::decide(
        meta.client_etag(),
        size,
        crate::conditional::conditions(req_headers),
        MAX_RANGES,
    ) {
        ConditionalAnswer::NotModified => {
            let mut r = Response::new(Body::empty());
            *r.status_mut() = StatusCode::NOT_MODIFIED;
            *r.headers_mut() = h;
            return Ok(r);
        }
        ConditionalAnswer::Unsatisfiable => {
            return Err(ServiceError::range_not_satisfiable(size).into());
        }
        ConditionalAnswer::Whole => None,
        ConditionalAnswer::Ranges(r) => Some(r),
    };
    let target = m.mirror.files().body(repo, path, &res, a.as_ref());
    let (status, body, len) = match ranges.as_deref() {
        None | Some([_]) => {
            let (status, start, end) = match ranges.as_deref() {
                Some([(a, b)]) => (StatusCode::PARTIAL_CONTENT, *a, *b),
                _ => (StatusCode::OK, 0, size.saturating_sub(1)),
            };
            if status == StatusCode::PARTIAL_CONTENT {
                put(
                    &mut h,
                    "content-range",
                    &format!("bytes {start}-{end}/{size}"),
                );
            }
            let len = if size == 0 { 0 } else { end - start + 1 };
            let body = if is_head || len == 0 {
                Body::empty()
            } else {
                Body::from_stream(target.stream(start, end).await?)
            };
            (status, body, len)
        }
        Some(many) => {
            let boundary = format!("olah-{:016x}", rand::random::<u64>());
            let ct = meta
                .content_type
                .clone()
                .unwrap_or_else(|| "application/octet-stream".into());
            let part_head = |a: u64, b: u64| {
                format!(
                    "\r\n--{boundary}\r\nContent-Type: {ct}\r\nContent-Range: bytes {a}-{b}/{size}\r\n\r\n"
                )
            };
            let tail = format!("\r\n--{boundary}--\r\n");
            let len = many
                .iter()
                .map(|&(a, b)| part_head(a, b).len() as u64 + b - a + 1)
                .sum::<u64>()
                + tail.len() as u64;
            put(
                &mut h,
                "content-type",
                &format!("multipart/byteranges; boundary={boundary}"),
            );
            let body = if is_head {
                Body::empty()
            } else {
                let parts: Vec<(String, u64, u64)> =
                    many.iter().map(|&(a, b)| (part_head(a, b), a, b)).collect();
                let stream = futures::stream::iter(parts)
                    .then(move |(head, a, b)| {
                        let target = target.clone();
                        async move {
                            let head = futures::stream::once(futures::future::ready(Ok(
                                Bytes::from(head),
                            )));
                            match target.stream(a, b).await {
                                Ok(s) => head.chain(s).boxed(),
                                Err(e) => head
                                    .chain(futures::stream::once(futures::future::ready(Err(
                                        std::io::Error::other(format!("{e:?}")),
                                    ))))
                                    .boxed(),
                            }
                        }
                    })
                    .flatten()
                    .chain(futures::stream::once(futures::future::ready(Ok(
                        Bytes::from(tail),
                    ))));
                Body::from_stream(stream)
            };
            (StatusCode::PARTIAL_CONTENT, body, len)
        }
    };
    put(&mut h, "content-length", &len.to_string());
    let mut r = Response::new(body);
    *r.status_mut() = status;
    *r.headers_mut() = h;
    Ok(r)
}

/// Most byte ranges honoured in one multipart request.
const MAX_RANGES: usize = 32;

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
