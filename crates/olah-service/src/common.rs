//! Small pieces every service part uses: the clock, reading a bounded upstream answer, telling an
//! access refusal from a missing entry, and the metadata database off the async worker threads.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use olah_store::MetaDb;

use crate::error::ServiceError;

/// Unix seconds now.
pub(crate) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub(crate) fn header_str(h: &HeaderMap, name: impl http::header::AsHeaderName) -> Option<String> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_string())
}

pub(crate) fn unquote(s: &str) -> String {
    s.trim()
        .trim_start_matches("W/")
        .trim_matches('"')
        .to_string()
}

/// The metadata database, used from async code: every call runs on the blocking pool.
#[derive(Clone)]
pub(crate) struct Meta(Arc<MetaDb>);

impl Meta {
    pub(crate) fn new(db: Arc<MetaDb>) -> Self {
        Self(db)
    }

    /// The database itself (for the blocking pool and start-up code only).
    pub(crate) fn raw(&self) -> &Arc<MetaDb> {
        &self.0
    }

    /// Runs `f` on the blocking pool.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&MetaDb) -> olah_store::Result<T> + Send + 'static,
    ) -> Result<T, ServiceError> {
        let db = self.0.clone();
        tokio::task::spawn_blocking(move || f(&db))
            .await
            .map_err(|e| ServiceError::internal(e.to_string()))?
            .map_err(|e| ServiceError::internal(e.to_string()))
    }

    /// A JSON record, `None` when absent or unreadable (a cache miss).
    pub(crate) async fn get_json<T: serde::de::DeserializeOwned + Send + 'static>(
        &self,
        key: String,
    ) -> Option<T> {
        self.run(move |db| db.get_json::<T>(&key))
            .await
            .ok()
            .flatten()
    }

    /// An API-cache record, `None` when absent or unreadable.
    pub(crate) async fn get_api<T: serde::de::DeserializeOwned + Send + 'static>(
        &self,
        key: String,
    ) -> Option<T> {
        self.run(move |db| db.get_api::<T>(&key))
            .await
            .ok()
            .flatten()
    }

    /// Whether a record exists under `key`.
    pub(crate) async fn has(&self, key: String) -> bool {
        self.get_json::<serde_json::Value>(key).await.is_some()
    }
}

/// A cache write failed (a full disk, a database being reopened): the request goes on without
/// caching; warns at most once every 10 s.
pub(crate) fn cache_write_failed(e: &ServiceError) {
    static LAST: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let t = now();
    let last = LAST.load(std::sync::atomic::Ordering::Relaxed);
    if t >= last + 10
        && LAST
            .compare_exchange(
                last,
                t,
                std::sync::atomic::Ordering::Relaxed,
                std::sync::atomic::Ordering::Relaxed,
            )
            .is_ok()
    {
        tracing::warn!(error = ?e, "metadata cache write failed; serving without caching");
    }
}

/// Most bytes read from one upstream API answer (JSON listings, reconstructions).
pub(crate) const ANSWER_LIMIT: usize = 16 << 20;

/// Most bytes read from one upstream token answer (a few short fields).
pub(crate) const TOKEN_ANSWER_LIMIT: usize = 64 << 10;

/// Status, headers and whole body of a (small: JSON) upstream answer, at most [`ANSWER_LIMIT`]
/// bytes ([`olah_upstream::Response::read_limited`]; a larger answer is a bad upstream and is
/// never cached).
pub(crate) async fn read_answer(
    resp: olah_upstream::Response,
) -> Result<(StatusCode, HeaderMap, Bytes), ServiceError> {
    let (status, h) = (resp.status(), resp.headers().clone());
    Ok((status, h, resp.read_limited(ANSWER_LIMIT).await?))
}

/// Whether an upstream answer refuses the caller access to the repo (rather than naming a
/// missing file, revision or route): 401, 403, or a 404 `RepoNotFound` (how the Hub answers a
/// token that may not see a private repo).
pub(crate) fn is_refusal(status: StatusCode, h: &HeaderMap) -> bool {
    match status.as_u16() {
        401 | 403 => true,
        404 => matches!(
            h.get("x-error-code").and_then(|v| v.to_str().ok()),
            Some("RepoNotFound" | "GatedRepo")
        ),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use http::HeaderValue;

    #[test]
    fn refusals_are_told_from_missing_entries() {
        let code = |c: &'static str| {
            let mut h = HeaderMap::new();
            h.insert("x-error-code", HeaderValue::from_static(c));
            h
        };
        let none = HeaderMap::new();
        assert!(is_refusal(StatusCode::UNAUTHORIZED, &code("GatedRepo")));
        assert!(is_refusal(StatusCode::FORBIDDEN, &none));
        assert!(is_refusal(StatusCode::NOT_FOUND, &code("RepoNotFound")));
        assert!(!is_refusal(StatusCode::NOT_FOUND, &code("EntryNotFound")));
        assert!(!is_refusal(
            StatusCode::NOT_FOUND,
            &code("RevisionNotFound")
        ));
        assert!(!is_refusal(StatusCode::NOT_FOUND, &none));
        assert!(!is_refusal(StatusCode::SERVICE_UNAVAILABLE, &none));
    }

    #[tokio::test]
    async fn larger_answers_are_refused_as_bad_upstream() {
        let mut r = http::Response::new(reqwest::Body::from(Bytes::from_static(b"[]")));
        r.headers_mut()
            .insert(http::header::CONTENT_LENGTH, (ANSWER_LIMIT + 1).into());
        let e = read_answer(olah_upstream::Response::from(r))
            .await
            .unwrap_err();
        assert!(matches!(e.kind, ErrorKind::BadUpstream), "{e:?}");
        let r = http::Response::new(reqwest::Body::from(Bytes::from_static(b"[1]")));
        let (status, _, body) = read_answer(olah_upstream::Response::from(r)).await.unwrap();
        assert_eq!((status, &body[..]), (StatusCode::OK, &b"[1]"[..]));
    }
}
