//! The one place where errors become HTTP responses.
//!
//! Every error the mirror answers keeps the Hub's shape — `X-Error-Code`, `X-Error-Message` and
//! a JSON `{"error": …}` body — because `huggingface_hub` picks its exception from them
//! (RepositoryNotFound, RevisionNotFound, EntryNotFound, GatedRepo…). Errors relayed from the Hub
//! keep its status, error headers, rate-limit headers and body.
//!
//! A [`ServiceError`] becomes a response here only: [`render`] (or [`HttpError`] where axum
//! wants an `IntoResponse`), with the status chosen by [`status`] from the error's kind.

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use olah_service::{ErrorKind, ServiceError};

/// The HTTP status of a service error kind.
pub fn status(kind: &ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::BadRequest => StatusCode::BAD_REQUEST,
        ErrorKind::Unauthorized => StatusCode::UNAUTHORIZED,
        ErrorKind::Forbidden => StatusCode::FORBIDDEN,
        ErrorKind::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        ErrorKind::RangeNotSatisfiable { .. } => StatusCode::RANGE_NOT_SATISFIABLE,
        ErrorKind::Busy => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::Relayed(r) => r.status,
        ErrorKind::Unavailable { timeout: true } => StatusCode::GATEWAY_TIMEOUT,
        ErrorKind::Unavailable { timeout: false } | ErrorKind::BadUpstream => {
            StatusCode::BAD_GATEWAY
        }
        ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// A [`ServiceError`] on its way to the client: handlers return `Result<Response, HttpError>`
/// and `?` converts.
#[derive(Debug)]
pub struct HttpError(pub ServiceError);

impl From<ServiceError> for HttpError {
    fn from(e: ServiceError) -> Self {
        Self(e)
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        render(self.0)
    }
}

/// The response for a service error: a relayed upstream answer as it came (relayable headers
/// only), else the Hub-shaped JSON error with `X-Error-Code` and `X-Error-Message`, plus
/// `X-Repo-Commit` when the error names a commit and `Content-Range: bytes */size` for a 416.
pub fn render(e: ServiceError) -> Response {
    let status = status(&e.kind);
    if status.is_server_error() {
        tracing::warn!(status = status.as_u16(), error = ?e, "request failed");
    } else {
        tracing::debug!(status = status.as_u16(), error = ?e, "request refused");
    }
    let mut r = match e.kind {
        ErrorKind::Relayed(relayed) => {
            let mut r = Response::new(Body::from(relayed.body));
            *r.status_mut() = relayed.status;
            *r.headers_mut() = relayed.headers;
            return r;
        }
        ErrorKind::RangeNotSatisfiable { size } => {
            let mut r = json_error(status, e.code.as_str(), &e.message);
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            r
        }
        _ => json_error(status, e.code.as_str(), &e.message),
    };
    if let Some(c) = e.commit.as_deref()
        && let Ok(v) = HeaderValue::from_str(c)
    {
        r.headers_mut().insert("x-repo-commit", v);
    }
    r
}

fn json_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = serde_json::json!({ "error": message }).to_string();
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(
        "x-error-code",
        HeaderValue::from_str(code).unwrap_or(HeaderValue::from_static("Error")),
    );
    // Header values must be visible ASCII; keep the message readable but safe.
    let safe: String = message
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect();
    if let Ok(v) = HeaderValue::from_str(&safe) {
        h.insert("x-error-message", v);
    }
    r
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use http::HeaderMap;

    use super::*;

    fn header<'a>(r: &'a Response, name: &str) -> Option<&'a str> {
        r.headers().get(name).and_then(|v| v.to_str().ok())
    }

    #[tokio::test]
    async fn service_errors_render_in_the_hubs_shape() {
        let r = render(ServiceError::entry_not_found(
            "no such file",
            Some("a".repeat(40)),
        ));
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        assert_eq!(header(&r, "x-error-code"), Some("EntryNotFound"));
        assert_eq!(header(&r, "x-error-message"), Some("no such file"));
        assert_eq!(header(&r, "x-repo-commit"), Some("a".repeat(40).as_str()));
        let body = axum::body::to_bytes(r.into_body(), 1024).await.unwrap();
        assert_eq!(&body[..], br#"{"error":"no such file"}"#);

        let r = render(ServiceError::range_not_satisfiable(10));
        assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);
        assert_eq!(header(&r, "content-range"), Some("bytes */10"));

        let r = render(ServiceError::unavailable(true, "slow"));
        assert_eq!(r.status(), StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(header(&r, "x-error-code"), Some("ProxyTimeout"));
        assert_eq!(
            header(&r, "x-error-message"),
            Some("upstream not available: slow")
        );
        assert!(header(&r, "x-repo-commit").is_none());
    }

    #[tokio::test]
    async fn relayed_answers_keep_their_status_headers_and_body() {
        let mut h = HeaderMap::new();
        h.insert("x-error-code", HeaderValue::from_static("GatedRepo"));
        h.insert("set-cookie", HeaderValue::from_static("a=b"));
        let e = ServiceError::relayed(StatusCode::UNAUTHORIZED, &h, Bytes::from_static(b"{}"));
        let r = HttpError(e).into_response();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(header(&r, "x-error-code"), Some("GatedRepo"));
        assert!(header(&r, "set-cookie").is_none());
        let body = axum::body::to_bytes(r.into_body(), 1024).await.unwrap();
        assert_eq!(&body[..], b"{}");
    }
}
