//! The one place where errors become HTTP responses.
//!
//! Every error the mirror answers keeps the Hub's shape — `X-Error-Code`, `X-Error-Message` and
//! a JSON `{"error": …}` body — because `huggingface_hub` picks its exception from them
//! (RepositoryNotFound, RevisionNotFound, EntryNotFound, GatedRepo…). Errors relayed from the Hub
//! keep its status, error headers, rate-limit headers and body.
//!
//! A [`ServiceError`] becomes a response through [`HttpError`] (status from [`status`]). The old
//! [`ApiError`] stays only while `localgit.rs` and `modelbin.rs` still return it.

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
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

impl From<ServiceError> for ApiError {
    /// For the local sources' old error type, until they return [`ServiceError`] themselves.
    fn from(e: ServiceError) -> Self {
        let status = status(&e.kind);
        match e.kind {
            ErrorKind::Relayed(r) => Self::Upstream {
                status: r.status,
                headers: r.headers,
                body: r.body,
            },
            ErrorKind::RangeNotSatisfiable { size } => Self::RangeNotSatisfiable { size },
            _ => Self::Hub {
                status,
                code: e.code.as_str(),
                message: e.message,
            },
        }
    }
}

/// Headers of an upstream error response worth relaying to the client.
const RELAYED: &[&str] = &[
    "x-error-code",
    "x-error-message",
    "x-repo-commit",
    "retry-after",
    "ratelimit",
    "ratelimit-policy",
    "x-request-id",
    "www-authenticate",
];

/// An error answer of the mirror.
#[derive(Debug, Clone)]
pub enum ApiError {
    /// The Hub answered with an error: relayed as is (status, error headers, body).
    Upstream {
        status: StatusCode,
        headers: HeaderMap,
        body: Bytes,
    },
    /// The mirror answers on its own with a Hub-style error code.
    Hub {
        status: StatusCode,
        code: &'static str,
        message: String,
    },
    /// The upstream could not be reached or timed out, and nothing usable is cached.
    Unavailable { timeout: bool, message: String },
    /// The upstream answered something the mirror cannot use.
    BadUpstream(String),
    /// Range not satisfiable for a file of this size.
    RangeNotSatisfiable { size: u64 },
    /// A bug or local failure (disk, database).
    Internal(String),
}

impl ApiError {
    /// 404 RepoNotFound-style error of the mirror itself.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::Hub {
            status: StatusCode::NOT_FOUND,
            code: "RepoNotFound",
            message: message.into(),
        }
    }

    /// 400 for a request the mirror refuses to interpret.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::Hub {
            status: StatusCode::BAD_REQUEST,
            code: "BadRequest",
            message: message.into(),
        }
    }

    /// Keeps the relayable headers of an upstream error response.
    pub fn from_upstream(status: StatusCode, headers: &HeaderMap, body: Bytes) -> Self {
        let mut keep = HeaderMap::new();
        for name in RELAYED {
            for v in headers.get_all(*name) {
                keep.append(HeaderName::from_static(name), v.clone());
            }
        }
        if let Some(ct) = headers.get(header::CONTENT_TYPE) {
            keep.insert(header::CONTENT_TYPE, ct.clone());
        }
        Self::Upstream {
            status,
            headers: keep,
            body,
        }
    }

    /// The upstream is down or failing (unreachable, timeout, 5xx): cached data may stand in.
    pub fn is_outage(&self) -> bool {
        match self {
            Self::Unavailable { .. } => true,
            Self::Upstream { status, .. } => status.is_server_error(),
            _ => false,
        }
    }

    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Upstream { status, .. } | Self::Hub { status, .. } => *status,
            Self::Unavailable { timeout: true, .. } => StatusCode::GATEWAY_TIMEOUT,
            Self::Unavailable { timeout: false, .. } | Self::BadUpstream(_) => {
                StatusCode::BAD_GATEWAY
            }
            Self::RangeNotSatisfiable { .. } => StatusCode::RANGE_NOT_SATISFIABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<olah_types::RouteError> for ApiError {
    fn from(e: olah_types::RouteError) -> Self {
        match e {
            olah_types::RouteError::NotFound => Self::Hub {
                status: StatusCode::NOT_FOUND,
                code: "NotFound",
                message: "Sorry, we can't find the page you are looking for.".into(),
            },
            olah_types::RouteError::BadRequest(msg) => Self::bad_request(msg),
        }
    }
}

impl From<olah_store::StoreError> for ApiError {
    fn from(e: olah_store::StoreError) -> Self {
        match e {
            olah_store::StoreError::Source(s) => Self::Unavailable {
                timeout: false,
                message: s.message,
            },
            olah_store::StoreError::NotCached(m) => ServiceError::offline_not_cached(&m).into(),
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<olah_upstream::UpstreamError> for ApiError {
    fn from(e: olah_upstream::UpstreamError) -> Self {
        match e {
            olah_upstream::UpstreamError::Timeout(m) => Self::Unavailable {
                timeout: true,
                message: m,
            },
            olah_upstream::UpstreamError::Unreachable(m) => Self::Unavailable {
                timeout: false,
                message: m,
            },
            other => Self::BadUpstream(other.to_string()),
        }
    }
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

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::warn!(status = status.as_u16(), error = ?self, "request failed");
        } else {
            tracing::debug!(status = status.as_u16(), error = ?self, "request refused");
        }
        match self {
            Self::Upstream {
                status,
                headers,
                body,
            } => {
                let mut r = Response::new(Body::from(body));
                *r.status_mut() = status;
                *r.headers_mut() = headers;
                r
            }
            Self::Hub {
                status,
                code,
                message,
            } => json_error(status, code, &message),
            Self::Unavailable { timeout, message } => json_error(
                status,
                if timeout {
                    "ProxyTimeout"
                } else {
                    "ProxyUnavailable"
                },
                &format!("upstream not available: {message}"),
            ),
            Self::BadUpstream(m) => json_error(
                status,
                "ProxyInvalidData",
                &format!("bad upstream answer: {m}"),
            ),
            Self::RangeNotSatisfiable { size } => {
                let mut r = json_error(
                    status,
                    "RangeNotSatisfiable",
                    "requested range not satisfiable",
                );
                if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                    r.headers_mut().insert(header::CONTENT_RANGE, v);
                }
                r
            }
            Self::Internal(m) => json_error(status, "InternalError", &m),
        }
    }
}

#[cfg(test)]
mod tests {
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

    #[test]
    fn the_old_error_type_answers_as_the_service_error_would() {
        let e = ServiceError::new(
            ErrorKind::Forbidden,
            olah_service::Origin::Client,
            olah_service::HubCode::RepoNotFound,
            "x",
        );
        assert_eq!(ApiError::from(e.clone()).status(), status(&e.kind));
        assert_eq!(
            ApiError::from(olah_service::xet::disabled()).status(),
            StatusCode::NOT_FOUND
        );
    }
}
