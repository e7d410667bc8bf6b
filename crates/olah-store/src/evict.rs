//! Keeping the cache under `cache-size-limit`.
//!
//! The store keeps a running total of the bytes of present blocks (initialised from the
//! database at start-up, updated on every block write, invalidation and eviction). When a write
//! pushes it over the limit the evictor task wakes at once (not hourly, as olah does) and deletes
//! whole blobs in strategy order until the total is under 90 % of the limit. A blob that is open
//! — being read or filled — is never evicted: when the next victim in strategy order is open the
//! pass stops and the evictor waits for it to be released (so a later, smaller or newer file is
//! not taken in its place; the cache may exceed the limit meanwhile). Same rule for every
//! strategy and for xorbs with a fill in flight. A victim's database records go first, then its
//! file, so a crash mid-eviction leaves at worst an orphan file, never a record without bytes
//! that passes its CRC.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::Notify;

use crate::blob::BlobStore;
use crate::error::Result;
use crate::key::BlobKey;

/// An eviction candidate: a blob, or every cached range of one xorb.
enum Victim {
    Blob(crate::meta::BlobUsage),
    Xorb(crate::xorb::XorbUsage),
}

impl Victim {
    fn bytes(&self) -> u64 {
        match self {
            Self::Blob(u) => u.bytes,
            Self::Xorb(u) => u.bytes,
        }
    }
    fn created(&self) -> u64 {
        match self {
            Self::Blob(u) => u.created,
            Self::Xorb(u) => u.created,
        }
    }
    fn last_access(&self) -> u64 {
        match self {
            Self::Blob(u) => u.last_access,
            Self::Xorb(u) => u.last_access,
        }
    }
}

/// Which blobs go first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Least recently read first.
    Lru,
    /// First created first.
    Fifo,
    /// Largest first.
    LargeFirst,
}

/// The running total and the limit.
#[derive(Debug, Default)]
pub struct Usage {
    bytes: AtomicU64,
    limit: Option<u64>,
    strategy: Option<Strategy>,
    wake: Notify,
}

impl Usage {
    pub(crate) fn new(limit: Option<u64>, strategy: Strategy) -> Self {
        Self {
            bytes: AtomicU64::new(0),
            limit,
            strategy: Some(strategy),
            wake: Notify::new(),
        }
    }

    /// Bytes of present blocks.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::SeqCst)
    }

    pub(crate) fn add(&self, n: u64) {
        let now = self.bytes.fetch_add(n, Ordering::SeqCst) + n;
        if self.limit.is_some_and(|l| now > l) {
            self.wake.notify_one();
        }
    }

    /// Wakes the evictor when the total is over the limit (a blob it may have waited for was
    /// released).
    pub(crate) fn poke(&self) {
        if self.limit.is_some_and(|l| self.bytes() > l) {
            self.wake.notify_one();
        }
    }

    pub(crate) fn sub(&self, n: u64) {
        let _ = self
            .bytes
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |b| {
                Some(b.saturating_sub(n))
            });
    }

    pub(crate) fn set(&self, n: u64) {
        self.bytes.store(n, Ordering::SeqCst);
    }
}

impl BlobStore {
    /// Sets the size limit and starts the evictor task (one pass right away).
    pub fn start_evictor(self: &Arc<Self>) {
        let Some(limit) = self.usage().limit else {
            return;
        };
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let Some(store) = me.upgrade() else { return };
                if store.usage().bytes() > limit {
                    match store.evict_pass().await {
                        Ok(n) if n > 0 => tracing::info!(
                            evicted = n,
                            bytes = store.usage().bytes(),
                            limit,
                            "cache eviction"
                        ),
                        Ok(_) => {}
                        Err(e) => tracing::warn!(error = %e, "cache eviction failed"),
                    }
                }
                let usage = store.usage_arc();
                let still_over = usage.bytes() > limit;
                drop(store);
                if still_over {
                    // The next victim is open (being read or filled): its release wakes us; try
                    // again shortly anyway.
                    let _ = tokio::time::timeout(
                        std::time::Duration::from_millis(500),
                        usage.wake.notified(),
                    )
                    .await;
                } else {
                    usage.wake.notified().await;
                }
            }
        });
    }

    /// Deletes blobs in strategy order until usage is under 90 % of the limit. Returns how many
    /// blobs were deleted.
    pub async fn evict_pass(&self) -> Result<usize> {
        let usage = self.usage_arc();
        let (Some(limit), Some(strategy)) = (usage.limit, usage.strategy) else {
            return Ok(0);
        };
        let target = limit / 10 * 9;
        let times = self.access_times();
        let db = self.db();
        let xorbs = self.xorbs();
        let (blobs, xorb_list, api) = crate::blob::blocking(move || {
            db.touch_many(&times)?;
            let x = xorbs.map(|x| x.usage_list()).unwrap_or_default();
            Ok((db.usage()?, x, db.api_bytes()?))
        })
        .await?;
        // The database and the xorb tree are the truth: resynchronise the running total. Cached
        // API records count too (they keep to their own budget, a slice of the limit).
        usage.set(
            blobs.iter().map(|u| u.bytes).sum::<u64>()
                + xorb_list.iter().map(|u| u.bytes).sum::<u64>()
                + api,
        );
        let mut list: Vec<Victim> = blobs
            .into_iter()
            .map(Victim::Blob)
            .chain(xorb_list.into_iter().map(Victim::Xorb))
            .collect();
        match strategy {
            Strategy::Lru => list.sort_by_key(|v| (v.last_access(), v.created())),
            Strategy::Fifo => list.sort_by_key(|v| v.created()),
            Strategy::LargeFirst => list.sort_by_key(|v| std::cmp::Reverse(v.bytes())),
        }
        let mut evicted = 0;
        for v in list {
            if usage.bytes() <= target {
                break;
            }
            match v {
                Victim::Blob(u) => {
                    if u.bytes == 0 {
                        continue;
                    }
                    if !self.begin_evict(&u.key) {
                        // Open (read, filled or loaded): the strategy's order holds, so wait for
                        // it to be released rather than take a later victim. The cache stays
                        // over the limit meanwhile; the release wakes the evictor.
                        tracing::debug!(blob = %u.key, "next victim is open: eviction waits");
                        break;
                    }
                    let res = self.delete_blob(u.key).await;
                    self.end_evict(&u.key);
                    match res {
                        Ok(()) => {
                            usage.sub(u.bytes);
                            evicted += 1;
                            tracing::debug!(blob = %u.key, bytes = u.bytes, "evicted");
                        }
                        Err(e) => tracing::warn!(blob = %u.key, error = %e, "could not evict"),
                    }
                }
                Victim::Xorb(u) => {
                    let Some(x) = self.xorbs() else { continue };
                    let hash = u.hash.clone();
                    match crate::blob::blocking(move || Ok(x.remove(&hash))).await {
                        Ok(Some(freed)) => {
                            evicted += 1;
                            tracing::debug!(xorb = %u.hash, bytes = freed, "evicted");
                        }
                        // A fill of it is in flight: wait for it, as for an open blob.
                        _ => break,
                    }
                }
            }
        }
        Ok(evicted)
    }

    async fn delete_blob(&self, key: BlobKey) -> Result<()> {
        let db = self.db();
        let path = self.data_path(&key);
        crate::blob::blocking(move || {
            db.remove_blob(&key)?;
            match std::fs::remove_file(&path) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(e.into()),
            }
        })
        .await
    }
}
