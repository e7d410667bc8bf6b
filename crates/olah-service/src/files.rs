//! The bytes of a resolved file: through the blob store (cache, in-flight fill or a new fill),
//! from the Xet rebuild or the Hub's resolve URL as the fill source, or straight from the
//! upstream for a repo the cache rules exclude (or while the metadata store is degraded).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use futures::StreamExt;
use http::HeaderValue;
use olah_metrics::{Lookup, ServedFrom, metrics};
use olah_store::{BlobKey, BlobStore, Source};
use olah_types::{RepoPath, RepoRef};

use crate::common::{Meta, cache_write_failed};
use crate::error::ServiceError;
use crate::hub::{HubCache, Resolved};
use crate::policy::Policy;
use crate::source::{ByteStream, FileBody, Outcome};
use crate::stats::Activity;
use crate::xet::XetMirror;

/// Opens file bodies: owns the blob store and picks the fill source.
pub struct Files {
    policy: Policy,
    db: Meta,
    blobs: Arc<BlobStore>,
    hub: Arc<HubCache>,
    xet: Arc<XetMirror>,
    activity: Arc<Activity>,
}

impl Files {
    pub(crate) fn new(
        policy: Policy,
        db: Meta,
        blobs: Arc<BlobStore>,
        hub: Arc<HubCache>,
        xet: Arc<XetMirror>,
        activity: Arc<Activity>,
    ) -> Self {
        Self {
            policy,
            db,
            blobs,
            hub,
            xet,
            activity,
        }
    }

    /// The body of a file `resolve` answered, for the caller whose `Authorization` is `auth`.
    pub fn body(
        self: &Arc<Self>,
        repo: &RepoRef,
        path: &RepoPath,
        res: &Resolved,
        auth: Option<&HeaderValue>,
    ) -> FileBytes {
        FileBytes {
            files: self.clone(),
            repo: repo.clone(),
            commit: res.commit.clone(),
            path: path.clone(),
            auth: auth.cloned(),
            size: res.meta.size,
            key: res.meta.blob_key(),
            xet_hash: res.meta.xet_hash.clone(),
            tally: Arc::new(Tally::new(res.cache)),
        }
    }
}

/// The cache lookup of one resolve answer: counted once (`olah_cache_lookups_total`) when the
/// answer is over — its head and every body stream opened for it dropped — with what the bytes
/// sent showed. A head outcome (`hit`, `miss`, `revalidated`, `stale`: how the file's metadata
/// was obtained) stands unless the bytes say otherwise: some from disk and some from an upstream
/// fill is `partial`; a metadata hit whose bytes all came from the upstream is a `miss`.
struct Tally {
    head: Outcome,
    cache: AtomicU64,
    upstream: AtomicU64,
    /// What the ranges opened so far found: 0 nothing opened, 1 all cached, 2 some not.
    coverage: std::sync::atomic::AtomicU8,
}

impl Tally {
    fn new(head: Outcome) -> Self {
        Self {
            head,
            cache: AtomicU64::new(0),
            upstream: AtomicU64::new(0),
            coverage: std::sync::atomic::AtomicU8::new(0),
        }
    }

    /// Notes whether a range just opened was wholly cached (a miss sticks).
    fn opened(&self, cached: bool) {
        self.coverage
            .fetch_max(if cached { 1 } else { 2 }, Ordering::Relaxed);
    }

    /// Counts `n` body bytes sent to the client from `from` (the served-bytes metric and this
    /// lookup's split).
    fn served(&self, from: ServedFrom, n: u64) {
        metrics().served(from, n);
        match from {
            ServedFrom::cache => &self.cache,
            ServedFrom::upstream => &self.upstream,
        }
        .fetch_add(n, Ordering::Relaxed);
    }

    fn outcome(&self) -> Option<Lookup> {
        let (cache, upstream) = (
            self.cache.load(Ordering::Relaxed),
            self.upstream.load(Ordering::Relaxed),
        );
        Some(match self.head {
            _ if cache > 0 && upstream > 0 => Lookup::partial,
            Outcome::Hit if upstream > 0 => Lookup::miss,
            Outcome::Hit => Lookup::hit,
            Outcome::Miss => Lookup::miss,
            Outcome::Revalidated => Lookup::revalidated,
            Outcome::Stale => Lookup::stale,
            Outcome::Local => return None,
        })
    }
}

impl Drop for Tally {
    fn drop(&mut self) {
        if let Some(o) = self.outcome() {
            metrics().lookup(o);
        }
    }
}

/// Everything needed to stream byte ranges of one file at one commit.
#[derive(Clone)]
pub struct FileBytes {
    files: Arc<Files>,
    repo: RepoRef,
    commit: String,
    path: RepoPath,
    auth: Option<HeaderValue>,
    size: u64,
    key: Option<BlobKey>,
    xet_hash: Option<String>,
    /// This answer's cache lookup (shared by every range opened for it).
    tally: Arc<Tally>,
}

#[async_trait]
impl FileBody for FileBytes {
    async fn open(&self, start: u64, end: u64) -> Result<ByteStream, ServiceError> {
        self.stream(start, end).await
    }

    fn cached(&self) -> Option<bool> {
        match self.tally.coverage.load(Ordering::Relaxed) {
            0 => None,
            c => Some(c == 1),
        }
    }
}

impl FileBytes {
    /// Bytes `start..=end`: through the blob store (cache, in-flight fill, or a new fill), or
    /// straight from the upstream for a cache-denied repo.
    pub async fn stream(&self, start: u64, end: u64) -> Result<ByteStream, ServiceError> {
        let f = &self.files;
        // A Xet file is rebuilt from the xorb cache that Xet clients fill too (one cache for
        // both paths); anything else comes from the Hub's resolve URL.
        let xet_source = self.xet_hash.as_deref().and_then(|xh| {
            f.xet.file_source(
                &self.repo,
                &self.commit,
                self.auth.as_ref(),
                &xh.to_ascii_lowercase(),
                self.size,
            )
        });
        let source = xet_source.or_else(|| {
            f.hub.file_source(
                &self.repo,
                &self.commit,
                &self.path,
                self.auth.as_ref(),
                self.size,
            )
        });
        let direct = |source: Option<Arc<dyn Source>>| async move {
            let source = source.ok_or_else(|| {
                ServiceError::from(olah_store::StoreError::NotCached(self.path.as_str().into()))
            })?;
            let s = source
                .fetch(start, end)
                .await
                .map_err(|e| ServiceError::unavailable(false, e.message))?;
            let tally = self.tally.clone();
            tally.opened(false);
            Ok::<ByteStream, ServiceError>(
                s.map(move |r| {
                    // Counted as the HTTP body takes each piece.
                    if let Ok(b) = &r {
                        tally.served(ServedFrom::upstream, b.len() as u64);
                    }
                    r.map_err(|e| std::io::Error::other(e.message))
                })
                .boxed(),
            )
        };
        if !f.policy.cache_allowed(&self.repo) {
            return direct(source).await;
        }
        let key = self
            .key
            .ok_or_else(|| ServiceError::internal("cached file without a content key"))?;
        let size = self.size;
        let degraded_miss = f.db.raw().is_degraded()
            && source.is_some()
            && !f
                .db
                .run(move |db| db.blob(&key))
                .await
                .ok()
                .flatten()
                .is_some_and(|r| r.complete && r.size == size);
        if degraded_miss {
            // The metadata store cannot be written (a full disk): serve from the upstream
            // without caching until a metadata write succeeds again.
            cache_write_failed(&ServiceError::internal(
                "metadata store degraded after an I/O error",
            ));
            return direct(source).await;
        }
        let blob = match f.blobs.open(key, self.size).await {
            Ok(b) => b,
            // The store cannot be written (a full disk, a database being reopened): serve
            // straight from the upstream without caching rather than fail the download.
            Err(e) if source.is_some() => {
                cache_write_failed(&ServiceError::from(e));
                return direct(source).await;
            }
            Err(e) => return Err(e.into()),
        };
        if source.is_none() && !blob.is_cached(start, end) {
            // Offline and not (fully) cached: say so before any header is sent.
            return Err(ServiceError::offline_not_cached(&format!(
                "{} bytes {start}-{end}",
                self.path.as_str()
            )));
        }
        // Each upstream fetch of missing blocks is listed as a fill in flight (admin page).
        let source = source.map(|s| {
            f.activity
                .track(s, &self.repo, self.path.as_str(), self.size)
        });
        let want = end - start + 1;
        let span = tracing::Span::current();
        let me = Arc::new(self.clone());
        let tally = self.tally.clone();
        tally.opened(blob.is_cached(start, end));
        let tagged = BlobStore::read_tagged(blob, start, end, source);
        let counted = tagged.scan(0u64, move |sent, item| {
            if let Ok((b, from)) = &item {
                // Counted as the HTTP body takes each piece: an aborted download counts what
                // left.
                tally.served(*from, b.len() as u64);
                *sent += b.len() as u64;
                if *sent == want {
                    span.in_scope(|| tracing::info!(bytes = *sent, "body complete"));
                }
            }
            match item {
                Ok((b, _)) => futures::future::Either::Left(futures::future::ready(Some(Ok(b)))),
                Err(e) => {
                    let me = me.clone();
                    futures::future::Either::Right(async move {
                        tracing::warn!(error = %e, "body aborted");
                        if matches!(e, olah_store::StoreError::InvalidData(_)) {
                            // Before the client sees the error (and asks again).
                            me.files
                                .hub
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
