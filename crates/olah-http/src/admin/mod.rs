//! The mirror's own pages: `/` (what the mirror is, how to use it), `/admin` (an HTML page) and
//! `/admin/api/*` (its figures as JSON, and the cache tools run by the server that holds the
//! cache).
//!
//! Access to `/admin*` (the landing page is open):
//! * a request whose connection comes from loopback (127.0.0.0/8, `::1`; the listener puts the
//!   peer in the request as a [`PeerAddr`]) is allowed — note that behind a reverse proxy on
//!   the same host every request comes from loopback: configure an admin token there;
//! * with an admin token configured (`--admin-token`, `[admin] token`…), a request carrying
//!   `Authorization: Bearer <token>` is allowed from anywhere (compared in constant time);
//! * everything else gets 403 `Forbidden` in the Hub's error shape. A request without a peer
//!   address (in-process) counts as not loopback: access fails closed.
//!
//! Model-bin mode (no cache) has the landing page; its `/admin*` routes answer 404 to callers
//! that pass the access check.
//!
//! [`stats`] documents the JSON of `/admin/api/stats`; [`pages`] writes the HTML.

pub mod cache;
pub mod pages;
pub mod stats;

use axum::extract::Request;
use axum::response::Response;
use http::{HeaderMap, Method, header};
use olah_service::{ErrorKind, HubCode, Origin, ServiceError};
use olah_types::{AdminRoute, Route};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::app::App;
use crate::error::render;
use crate::serve::PeerAddr;

/// Answers [`Route::Landing`] and [`Route::Admin`].
pub async fn answer(app: &App, route: Route, req: Request) -> Response {
    let read = matches!(*req.method(), Method::GET | Method::HEAD);
    let head = req.method() == Method::HEAD;
    if let Route::Admin(_) = route
        && !allowed(app, &req)
    {
        return render(forbidden());
    }
    match route {
        Route::Landing if read => pages::landing(app, req.headers(), head),
        Route::Admin(AdminRoute::Cache(op)) => cache::answer(app, op, req).await,
        Route::Admin(_) if app.mirror.is_none() => render(ServiceError::new(
            ErrorKind::NotFound,
            Origin::Client,
            HubCode::NotFound,
            "model-bin mode has no cache to administer",
        )),
        Route::Admin(AdminRoute::Page) if read => pages::admin(head),
        Route::Admin(AdminRoute::Stats) if read => stats::answer(app, head).await,
        _ => render(ServiceError::method_not_allowed(format!(
            "{} is not supported on this route",
            req.method()
        ))),
    }
}

/// 403 for a caller that may not use the admin routes.
fn forbidden() -> ServiceError {
    ServiceError::new(
        ErrorKind::Forbidden,
        Origin::Client,
        HubCode::Forbidden,
        "the admin pages answer loopback callers, or callers with the admin token \
         (Authorization: Bearer <token>)",
    )
}

/// Whether `req` may use the admin routes: the right bearer token (when one is configured), or
/// a loopback peer.
pub fn allowed(app: &App, req: &Request) -> bool {
    let token = app
        .mirror
        .as_ref()
        .and_then(|m| m.policy().config().admin_token.as_ref());
    if let Some(token) = token
        && bearer(req.headers()).is_some_and(|b| same_secret(b, token.expose()))
    {
        return true;
    }
    req.extensions()
        .get::<PeerAddr>()
        .is_some_and(PeerAddr::is_loopback)
}

fn bearer(h: &HeaderMap) -> Option<&str> {
    let v = h.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| rest.trim())
        .filter(|t| !t.is_empty())
}

/// Constant-time comparison (of digests, so that the length leaks nothing either).
fn same_secret(given: &str, want: &str) -> bool {
    let a = Sha256::digest(given.as_bytes());
    let b = Sha256::digest(want.as_bytes());
    !want.is_empty() && bool::from(a.as_slice().ct_eq(b.as_slice()))
}

/// Remembers a failed answer (status ≥ 500, or 429) in the mirror's error ring: status, Hub
/// code and message (the `X-Error-*` headers the mirror wrote or relayed; never another header),
/// route class and repository.
pub(crate) fn note_failure(app: &App, uri: &http::Uri, resp: &Response) {
    let status = resp.status();
    if !(status.is_server_error() || status == http::StatusCode::TOO_MANY_REQUESTS) {
        return;
    }
    let Some(m) = &app.mirror else { return };
    // Parsed again: failures only.
    let parsed = olah_types::parse_route(uri.path());
    let class = crate::request::route_class(&parsed).as_str();
    let route = parsed.ok();
    let h = resp.headers();
    let text = |name: &str| h.get(name).and_then(|v| v.to_str().ok());
    let message = text("x-error-message")
        .map(str::to_string)
        .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_string());
    m.activity().record_error(
        status.as_u16(),
        text("x-error-code"),
        class,
        route.as_ref().and_then(|r| r.repo()).map(|r| r.key()),
        &message,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_are_parsed_and_compared_whole() {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, "Bearer  s3cret ".parse().unwrap());
        assert_eq!(bearer(&h), Some("s3cret"));
        h.insert(header::AUTHORIZATION, "Basic s3cret".parse().unwrap());
        assert_eq!(bearer(&h), None);
        h.insert(header::AUTHORIZATION, "Bearer".parse().unwrap());
        assert_eq!(bearer(&h), None);
        assert!(same_secret("s3cret", "s3cret"));
        assert!(!same_secret("s3cre", "s3cret"));
        assert!(!same_secret("", ""));
    }

    #[test]
    fn loopback_peers_are_recognised() {
        let p = |s: &str| PeerAddr(s.parse().unwrap());
        assert!(p("127.0.0.1:1").is_loopback());
        assert!(p("127.9.9.9:1").is_loopback());
        assert!(p("[::1]:1").is_loopback());
        assert!(p("[::ffff:127.0.0.1]:1").is_loopback());
        assert!(!p("10.0.0.1:1").is_loopback());
        assert!(!p("[::ffff:10.0.0.1]:1").is_loopback());
        assert!(!p("[2001:db8::1]:1").is_loopback());
    }
}
