//! What went wrong in the service, where it came from, and the Hub error code a client keys on.
//!
//! The service never picks an HTTP status: `olah-http`'s `error.rs` maps a [`ServiceError`] to
//! a response in one place (status from [`ErrorKind`], `X-Error-Code` from [`HubCode`], the
//! message in `X-Error-Message` and a JSON `{"error": …}` body; a relayed upstream answer is
//! passed on with its own status and relayable headers).
//!
//! [`Origin`] records who caused the error (after pingora-error's `ErrorSource`): an upstream
//! failure may be answered from a stale cache entry, a client error never is, an internal one
//! is logged loudly.

use bytes::Bytes;
use http::{HeaderMap, HeaderName, StatusCode, header};

/// Who caused an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The request itself (bad input, no access, nothing there).
    Client,
    /// The upstream Hub / CDN / CAS (unreachable, timed out, answered an error or garbage).
    Upstream,
    /// The mirror itself (disk, database, a bug).
    Internal,
}

/// The Hub error codes the mirror answers with (`X-Error-Code`). `huggingface_hub` picks its
/// exception from them (RepositoryNotFound, RevisionNotFound, EntryNotFound, GatedRepo…); the
/// `Proxy*`, `OfflineNotCached`, `XetDisabled` and `ContentChanging` codes are the mirror's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HubCode {
    RepoNotFound,
    RevisionNotFound,
    EntryNotFound,
    GatedRepo,
    NotFound,
    BadRequest,
    MethodNotAllowed,
    Unauthorized,
    Forbidden,
    RangeNotSatisfiable,
    OfflineNotCached,
    XetDisabled,
    ContentChanging,
    TooManyConnections,
    NotReady,
    ProxyTimeout,
    ProxyUnavailable,
    ProxyInvalidData,
    InternalError,
    /// A write route: this mirror is read-only.
    ReadOnly,
}

impl HubCode {
    /// The code as sent in `X-Error-Code`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RepoNotFound => "RepoNotFound",
            Self::RevisionNotFound => "RevisionNotFound",
            Self::EntryNotFound => "EntryNotFound",
            Self::GatedRepo => "GatedRepo",
            Self::NotFound => "NotFound",
            Self::BadRequest => "BadRequest",
            Self::MethodNotAllowed => "MethodNotAllowed",
            Self::Unauthorized => "Unauthorized",
            Self::Forbidden => "Forbidden",
            Self::RangeNotSatisfiable => "RangeNotSatisfiable",
            Self::OfflineNotCached => "OfflineNotCached",
            Self::XetDisabled => "XetDisabled",
            Self::ContentChanging => "ContentChanging",
            Self::TooManyConnections => "TooManyConnections",
            Self::NotReady => "NotReady",
            Self::ProxyTimeout => "ProxyTimeout",
            Self::ProxyUnavailable => "ProxyUnavailable",
            Self::ProxyInvalidData => "ProxyInvalidData",
            Self::InternalError => "InternalError",
            Self::ReadOnly => "ReadOnly",
        }
    }
}

/// What kind of failure, which decides the HTTP status (in `olah-http`, nowhere else).
#[derive(Debug, Clone)]
pub enum ErrorKind {
    /// Nothing there, or not visible to the caller (404).
    NotFound,
    /// The request cannot be interpreted (400).
    BadRequest,
    /// The caller must authenticate, or its credentials were refused (401).
    Unauthorized,
    /// Refused whatever the credentials (403).
    Forbidden,
    /// The method is not served on this route (405).
    MethodNotAllowed,
    /// No byte of the requested range exists in a file of `size` bytes (416).
    RangeNotSatisfiable { size: u64 },
    /// The mirror cannot answer now; the client may retry (503).
    Busy,
    /// The upstream answered an error that is passed on as is: status, relayable headers, body.
    Relayed(Box<Relayed>),
    /// The upstream could not be reached (502) or timed out (504), and nothing usable is cached.
    Unavailable { timeout: bool },
    /// The upstream answered something the mirror cannot use (502).
    BadUpstream,
    /// A local failure or a bug (500).
    Internal,
}

/// An upstream error answer passed on to the client.
#[derive(Debug, Clone)]
pub struct Relayed {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// An error of the service layer.
#[derive(Debug, Clone)]
pub struct ServiceError {
    pub kind: ErrorKind,
    pub origin: Origin,
    pub code: HubCode,
    /// Human-readable, sent in `X-Error-Message` and the JSON body (never a token or a URL
    /// carrying credentials).
    pub message: String,
    /// The commit the answer refers to (`X-Repo-Commit` of an `EntryNotFound`), when known.
    pub commit: Option<String>,
}

/// Headers of an upstream error response worth relaying to the client.
pub const RELAYED: &[&str] = &[
    "x-error-code",
    "x-error-message",
    "x-repo-commit",
    "retry-after",
    "ratelimit",
    "ratelimit-policy",
    "x-request-id",
    "www-authenticate",
];

impl ServiceError {
    /// An error with this kind, origin, code and message.
    pub fn new(kind: ErrorKind, origin: Origin, code: HubCode, message: impl Into<String>) -> Self {
        Self {
            kind,
            origin,
            code,
            message: message.into(),
            commit: None,
        }
    }

    /// Records the commit the error refers to.
    pub fn with_commit(mut self, commit: impl Into<String>) -> Self {
        self.commit = Some(commit.into());
        self
    }

    /// 404 `RepoNotFound` (also what a caller without access sees, as on the Hub).
    pub fn repo_not_found(message: impl Into<String>) -> Self {
        Self::new(
            ErrorKind::NotFound,
            Origin::Client,
            HubCode::RepoNotFound,
            message,
        )
    }

    /// 404 `RevisionNotFound`.
    pub fn revision_not_found(message: impl Into<String>) -> Self {
        Self::new(
            ErrorKind::NotFound,
            Origin::Client,
            HubCode::RevisionNotFound,
            message,
        )
    }

    /// 404 `EntryNotFound` at `commit` (sent as `X-Repo-Commit`).
    pub fn entry_not_found(message: impl Into<String>, commit: Option<String>) -> Self {
        let mut e = Self::new(
            ErrorKind::NotFound,
            Origin::Client,
            HubCode::EntryNotFound,
            message,
        );
        e.commit = commit;
        e
    }

    /// 400 `BadRequest`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(
            ErrorKind::BadRequest,
            Origin::Client,
            HubCode::BadRequest,
            message,
        )
    }

    /// 405 `MethodNotAllowed`.
    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(
            ErrorKind::MethodNotAllowed,
            Origin::Client,
            HubCode::MethodNotAllowed,
            message,
        )
    }

    /// 416 for a file of `size` bytes.
    pub fn range_not_satisfiable(size: u64) -> Self {
        Self::new(
            ErrorKind::RangeNotSatisfiable { size },
            Origin::Client,
            HubCode::RangeNotSatisfiable,
            "requested range not satisfiable",
        )
    }

    /// 500: a local failure or a bug.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(
            ErrorKind::Internal,
            Origin::Internal,
            HubCode::InternalError,
            message,
        )
    }

    /// The upstream could not be reached (or timed out) and nothing usable is cached.
    pub fn unavailable(timeout: bool, message: impl Into<String>) -> Self {
        let code = if timeout {
            HubCode::ProxyTimeout
        } else {
            HubCode::ProxyUnavailable
        };
        Self::new(
            ErrorKind::Unavailable { timeout },
            Origin::Upstream,
            code,
            format!("upstream not available: {}", message.into()),
        )
    }

    /// The upstream answered something the mirror cannot use.
    pub fn bad_upstream(message: impl Into<String>) -> Self {
        Self::new(
            ErrorKind::BadUpstream,
            Origin::Upstream,
            HubCode::ProxyInvalidData,
            format!("bad upstream answer: {}", message.into()),
        )
    }

    /// 404 `OfflineNotCached`: offline and `what` is not cached. A 404 (not a 5xx) makes
    /// huggingface_hub raise `LocalEntryNotFoundError` at once instead of retrying.
    pub fn offline_not_cached(what: &str) -> Self {
        Self::new(
            ErrorKind::NotFound,
            Origin::Client,
            HubCode::OfflineNotCached,
            format!("the mirror is offline and has not cached {what}"),
        )
    }

    /// An upstream error answer relayed as is, keeping only its relayable headers.
    pub fn relayed(status: StatusCode, headers: &HeaderMap, body: Bytes) -> Self {
        let mut keep = HeaderMap::new();
        for name in RELAYED {
            for v in headers.get_all(*name) {
                keep.append(HeaderName::from_static(name), v.clone());
            }
        }
        if let Some(ct) = headers.get(header::CONTENT_TYPE) {
            keep.insert(header::CONTENT_TYPE, ct.clone());
        }
        let code = match headers.get("x-error-code").and_then(|v| v.to_str().ok()) {
            Some("RepoNotFound") => HubCode::RepoNotFound,
            Some("RevisionNotFound") => HubCode::RevisionNotFound,
            Some("EntryNotFound") => HubCode::EntryNotFound,
            Some("GatedRepo") => HubCode::GatedRepo,
            _ => HubCode::NotFound,
        };
        Self::new(
            ErrorKind::Relayed(Box::new(Relayed {
                status,
                headers: keep,
                body,
            })),
            Origin::Upstream,
            code,
            format!("upstream answered {}", status.as_u16()),
        )
    }

    /// The upstream is down or failing (unreachable, timeout, 5xx): cached data may stand in.
    pub fn is_outage(&self) -> bool {
        match &self.kind {
            ErrorKind::Unavailable { .. } => true,
            ErrorKind::Relayed(r) => r.status.is_server_error(),
            _ => false,
        }
    }
}

impl std::fmt::Display for ServiceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({:?}): {}",
            self.code.as_str(),
            self.origin,
            self.message
        )
    }
}

impl std::error::Error for ServiceError {}

impl From<olah_types::RouteError> for ServiceError {
    fn from(e: olah_types::RouteError) -> Self {
        match e {
            olah_types::RouteError::NotFound => Self::new(
                ErrorKind::NotFound,
                Origin::Client,
                HubCode::NotFound,
                "Sorry, we can't find the page you are looking for.",
            ),
            olah_types::RouteError::BadRequest(msg) => Self::bad_request(msg),
        }
    }
}

impl From<olah_store::StoreError> for ServiceError {
    fn from(e: olah_store::StoreError) -> Self {
        match e {
            olah_store::StoreError::Source(s) => Self::unavailable(false, s.message),
            olah_store::StoreError::NotCached(m) => Self::offline_not_cached(&m),
            other => Self::internal(other.to_string()),
        }
    }
}

impl From<olah_upstream::UpstreamError> for ServiceError {
    fn from(e: olah_upstream::UpstreamError) -> Self {
        match e {
            olah_upstream::UpstreamError::Timeout(m) => Self::unavailable(true, m),
            olah_upstream::UpstreamError::Unreachable(m) => Self::unavailable(false, m),
            other => Self::bad_upstream(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relayed_errors_keep_only_relayable_headers_and_learn_the_hub_code() {
        let mut h = HeaderMap::new();
        h.insert("x-error-code", "GatedRepo".parse().unwrap());
        h.insert("set-cookie", "a=b".parse().unwrap());
        h.insert("retry-after", "3".parse().unwrap());
        let e = ServiceError::relayed(StatusCode::UNAUTHORIZED, &h, Bytes::from_static(b"{}"));
        assert_eq!(e.code, HubCode::GatedRepo);
        assert_eq!(e.origin, Origin::Upstream);
        let ErrorKind::Relayed(r) = &e.kind else {
            panic!("not relayed: {e:?}")
        };
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert!(r.headers.get("set-cookie").is_none());
        assert_eq!(r.headers.get("retry-after").unwrap(), "3");
        assert!(!e.is_outage());
    }

    #[test]
    fn outages_are_unreachable_timeouts_and_relayed_5xx_only() {
        assert!(ServiceError::unavailable(true, "t").is_outage());
        assert!(
            ServiceError::relayed(StatusCode::BAD_GATEWAY, &HeaderMap::new(), Bytes::new())
                .is_outage()
        );
        assert!(!ServiceError::repo_not_found("x").is_outage());
        assert!(!ServiceError::bad_upstream("x").is_outage());
    }
}
