//! Storage Buckets through the mirror (PROTOCOL-2.md A), read side.
//!
//! A bucket is a repository source without revisions whose paths are mutable and whose files are
//! all Xet-backed:
//! * **Content** is cached by Xet hash forever, in the one xorb store the Xet mirror keeps for
//!   model and dataset files ([`XetMirror::bucket_source`], [`XetMirror::bucket_token`]).
//! * **Metadata** (info, tree, paths-info) is the Hub's JSON through the API cache, revalidated
//!   after `metadata-cache-ttl` ([`HubCache::api`]); a file's `path → (xetHash, size)` mapping
//!   (from the resolve `HEAD`) likewise, keyed by bucket and path: an overwritten path is served
//!   stale for at most the TTL, and never from another bucket.
//! * **Access** is the fail-closed gate, per caller, under the bucket's key (`buckets/ns/name`),
//!   online and offline.
//! * The namespace list depends on the caller (`me`): relayed, never cached.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use http::{HeaderMap, HeaderValue, Method, header};
use olah_types::{RepoPath, RepoRef, Route};
use olah_upstream::{HubRequest, Upstream};
use serde::{Deserialize, Serialize};

use crate::access::{AccessGate, Scope};
use crate::common::{Meta, cache_write_failed, header_str, is_refusal, now, read_answer};
use crate::error::{ErrorKind, HubCode, Origin, ServiceError};
use crate::hub::HubCache;
use crate::policy::Policy;
use crate::source::{
    ByteStream, FileBody, FileHead, MetaAnswer, Outcome, PathsQuery, RepoFile, RequestCtx,
};
use crate::xet::XetMirror;

/// The span/metric label of bucket answers.
pub const NAME: &str = "bucket";

/// What a bucket path was last seen to hold (from the Hub's resolve `HEAD`).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct PathRecord {
    hash: String,
    size: u64,
    fetched_at: u64,
}

fn path_key(bucket: &RepoRef, path: &RepoPath) -> String {
    format!("bpath|{}|{}", bucket.key(), path.as_str())
}

/// Storage Buckets through the cache.
pub struct Buckets {
    policy: Policy,
    gate: Arc<AccessGate>,
    db: Meta,
    hub: Arc<HubCache>,
    xet: Arc<XetMirror>,
    upstream: Upstream,
}

/// The answer to a bucket write route: this mirror is read-only.
pub fn read_only(what: &str) -> ServiceError {
    ServiceError::new(
        ErrorKind::Forbidden,
        Origin::Client,
        HubCode::ReadOnly,
        format!("this mirror is read-only: {what} must go to the Hub itself"),
    )
}

/// The answer to the live-follow feed: a 404 stops huggingface_hub's follower cleanly.
pub fn no_events() -> ServiceError {
    ServiceError::new(
        ErrorKind::NotFound,
        Origin::Client,
        HubCode::NotFound,
        "this mirror does not relay the bucket event feed",
    )
}

impl Buckets {
    pub(crate) fn new(
        policy: Policy,
        gate: Arc<AccessGate>,
        db: Meta,
        hub: Arc<HubCache>,
        xet: Arc<XetMirror>,
        upstream: Upstream,
    ) -> Self {
        Self {
            policy,
            gate,
            db,
            hub,
            xet,
            upstream,
        }
    }

    /// Info, tree or paths-info (`paths`: the parsed JSON body) of a bucket: the Hub's JSON
    /// through the API cache (fresh for the TTL, any age offline, stale while the Hub is down
    /// for a caller the gate admits).
    pub async fn meta(
        &self,
        cx: &RequestCtx,
        route: &Route,
        query: Option<&str>,
        paths: Option<&PathsQuery>,
    ) -> Result<MetaAnswer, ServiceError> {
        // Normalised (deduplicated, in order): one cache record per set of paths asked.
        let body = paths.map(|p| {
            Bytes::from(serde_json::json!({"paths": p.paths, "expand": p.expand}).to_string())
        });
        let (c, outcome) = self.hub.api(route, query, body, cx.auth.as_ref()).await?;
        Ok(MetaAnswer {
            status: c.status,
            content_type: c.content_type.clone(),
            body: Bytes::from(c.body.clone()),
            link: c.link.clone(),
            commit: None,
            outcome,
        })
    }

    /// `GET /api/buckets/{ns}`: relayed with the caller's credentials (the answer depends on
    /// them: `me`), never cached.
    pub async fn list(
        &self,
        cx: &RequestCtx,
        route: &Route,
        query: Option<&str>,
    ) -> Result<MetaAnswer, ServiceError> {
        let kept: Vec<&str> = query
            .unwrap_or("")
            .split('&')
            .filter(|p| {
                let name = p.split_once('=').map_or(*p, |(n, _)| n);
                matches!(name, "search" | "cursor" | "limit") && p.len() <= 1024
            })
            .take(8)
            .collect();
        let (status, h, body) = self
            .hub
            .passthrough(route, Some(&kept.join("&")), cx.auth.as_ref())
            .await?;
        Ok(MetaAnswer {
            status: status.as_u16(),
            content_type: header_str(&h, header::CONTENT_TYPE),
            body,
            link: header_str(&h, header::LINK),
            commit: None,
            outcome: Outcome::Miss,
        })
    }

    /// A bucket file: its Xet hash and size (the path's mapping, revalidated after the TTL),
    /// the caller's access confirmed, and its bytes from the xorb cache.
    pub async fn file(
        &self,
        cx: &RequestCtx,
        bucket: &RepoRef,
        path: &RepoPath,
    ) -> Result<RepoFile, ServiceError> {
        let auth = cx.auth.as_ref();
        let (rec, outcome) = self.mapping(bucket, path, auth).await?;
        let serves = self.xet.serves(bucket);
        let head = FileHead {
            commit: None,
            size: rec.size,
            etag: rec.hash.clone(),
            linked: Some((rec.hash.clone(), rec.size)),
            xet_hash: serves.then(|| rec.hash.clone()),
            content_type: "application/octet-stream".into(),
            outcome,
        };
        let src = if rec.size == 0 {
            None
        } else {
            Some(
                self.xet
                    .bucket_source(bucket, auth, &rec.hash, rec.size)
                    .ok_or_else(crate::xet::disabled)?,
            )
        };
        Ok(RepoFile {
            head,
            body: Arc::new(XetBody { src }),
        })
    }

    /// The path's current Xet hash and size: the cached mapping while younger than the TTL (or
    /// offline) once the gate admits the caller, else the Hub's resolve `HEAD` with the caller's
    /// credentials.
    async fn mapping(
        &self,
        bucket: &RepoRef,
        path: &RepoPath,
        auth: Option<&HeaderValue>,
    ) -> Result<(PathRecord, Outcome), ServiceError> {
        let caller = self.gate.caller(auth);
        let key = path_key(bucket, path);
        let keep = self.policy.cache_allowed(bucket);
        let cached: Option<PathRecord> = if keep {
            self.db.get_api(key.clone()).await
        } else {
            None
        };
        if let Some(r) = &cached
            && (self.policy.offline() || now().saturating_sub(r.fetched_at) < self.policy.ttl())
        {
            self.gate
                .check(bucket, Scope::Files, &caller, auth, Some(("", path)))
                .await?;
            return Ok((r.clone(), Outcome::Hit));
        }
        if self.policy.offline() {
            return Err(ServiceError::offline_not_cached(&format!(
                "{} in {}",
                path.as_str(),
                bucket.key()
            )));
        }
        let route = Route::BucketResolve {
            bucket: bucket.clone(),
            path: path.clone(),
        };
        let up = route.upstream_path();
        let head = async {
            let resp = self
                .upstream
                .hub(HubRequest {
                    method: Method::HEAD,
                    path_and_query: &up,
                    auth,
                    headers: HeaderMap::new(),
                    body: None,
                })
                .await?;
            let (status, h, body) = read_answer(resp).await?;
            Ok::<_, ServiceError>((status, h, body))
        };
        let (status, h, body) = match head.await {
            Ok(a) => a,
            Err(e)
                if e.is_outage()
                    && cached.is_some()
                    && self
                        .gate
                        .may_serve_without_upstream(&bucket.key(), Scope::Files, &caller)
                        .await =>
            {
                return Ok((cached.expect("checked"), Outcome::Stale));
            }
            Err(e) => return Err(e),
        };
        if !(status.is_success() || status.is_redirection()) {
            let e = ServiceError::relayed(status, &h, body);
            if is_refusal(status, &h) {
                self.gate
                    .refused(&bucket.key(), Scope::Files, &caller, e.clone())
                    .await;
            } else if status.as_u16() == 404 && cached.is_some() {
                // The path is gone: forget what it held.
                let k = key.clone();
                let _ = self.db.run(move |db| db.delete_api(&[k])).await;
            }
            return Err(e);
        }
        let hash = header_str(&h, "x-xet-hash")
            .map(|s| s.to_ascii_lowercase())
            .filter(|s| olah_xet::is_hash_str(s))
            .ok_or_else(|| ServiceError::bad_upstream("bucket file without an X-Xet-Hash"))?;
        let size = header_str(&h, "x-linked-size")
            .or_else(|| {
                status
                    .is_success()
                    .then(|| header_str(&h, header::CONTENT_LENGTH))
                    .flatten()
            })
            .and_then(|s| s.trim().parse::<u64>().ok())
            .ok_or_else(|| ServiceError::bad_upstream("bucket file without a size"))?;
        let rec = PathRecord {
            hash,
            size,
            fetched_at: now(),
        };
        self.gate
            .granted(&bucket.key(), Scope::Files, &caller)
            .await;
        self.xet.learn_files(bucket, vec![rec.hash.clone()]).await;
        if keep {
            let r2 = rec.clone();
            if let Err(e) = self.db.run(move |db| db.put_api(&key, &r2)).await {
                cache_write_failed(&e);
            }
        }
        let outcome = if cached.is_some() {
            Outcome::Revalidated
        } else {
            Outcome::Miss
        };
        // Before the answer advertises Xet: where the upstream's CAS lives.
        self.xet.check_cas(bucket, "", auth).await;
        Ok((rec, outcome))
    }
}

/// A bucket file's bytes: rebuilt from the xorb cache (verified record by record, and the
/// whole file against its Xet hash), nothing for an empty file.
struct XetBody {
    src: Option<Arc<dyn olah_store::Source>>,
}

#[async_trait]
impl FileBody for XetBody {
    async fn open(&self, start: u64, end: u64) -> Result<ByteStream, ServiceError> {
        let Some(src) = &self.src else {
            return Ok(futures::stream::empty().boxed());
        };
        let s = src
            .fetch(start, end)
            .await
            .map_err(|e| ServiceError::bad_upstream(format!("bucket file: {}", e.message)))?;
        Ok(s.map_err(|e| std::io::Error::other(e.message)).boxed())
    }
}
