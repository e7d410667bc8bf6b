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

//!
//! The budget knows no kind of object: every part of the cache (blobs, xorbs) is an
//! [`Evictable`] that lists its candidates and evicts one on request, refusing while it is open.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use tokio::sync::Notify;

use crate::error::Result;

/// An eviction candidate of one part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Victim {
    /// The part's own name for it (a blob key, a xorb hash).
    pub id: String,
    /// Bytes it occupies.
    pub bytes: u64,
    /// Creation time (ms).
    pub created: u64,
    /// Last access time (ms).
    pub last_access: u64,
}

/// A part of the cache that eviction can shrink.
#[async_trait]
pub trait Evictable: Send + Sync + 'static {
    /// Joins a cache-wide total: from now on the part reports its byte changes to `usage`.
    /// Returns false when it already reports to one (then nothing changes).
    fn attach(&self, usage: Arc<Usage>) -> bool;

    /// Every candidate, and the bytes it holds besides them that count against the limit but
    /// are not evicted here (they keep to their own budget). A full scan: eviction passes only.
    async fn candidates(&self) -> Result<(Vec<Victim>, u64)>;

    /// Evicts one candidate unless it is open (read or filled right now): `Ok(Some(freed))`,
    /// or `Ok(None)` when open — the pass then stops and waits for its release, so strategy
    /// order holds. The index records go before the bytes: a crash leaves at worst orphan bytes.
    async fn evict(&self, victim: &Victim) -> Result<Option<u64>>;
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

    /// The limit, if any.
    pub fn limit(&self) -> Option<u64> {
        self.limit
    }

    /// Waits until a write pushes the total over the limit or a release pokes it; at most
    /// `max` when given.
    pub(crate) async fn wait(&self, max: Option<std::time::Duration>) {
        match max {
            Some(d) => {
                let _ = tokio::time::timeout(d, self.wake.notified()).await;
            }
            None => self.wake.notified().await,
        }
    }
}

/// One eviction pass over `parts`: resynchronises the total from their scans, then evicts in
/// strategy order until the total is under 90 % of the limit, stopping at the first victim that
/// is open. Returns how many victims went.
pub async fn pass(usage: &Usage, parts: &[Arc<dyn Evictable>]) -> Result<usize> {
    let (Some(limit), Some(strategy)) = (usage.limit, usage.strategy) else {
        return Ok(0);
    };
    let target = limit / 10 * 9;
    let mut list: Vec<(usize, Victim)> = Vec::new();
    let mut total = 0u64;
    for (i, p) in parts.iter().enumerate() {
        let (vs, other) = p.candidates().await?;
        total += other + vs.iter().map(|v| v.bytes).sum::<u64>();
        list.extend(vs.into_iter().map(|v| (i, v)));
    }
    // The parts' records are the truth: resynchronise the running total.
    usage.set(total);
    match strategy {
        Strategy::Lru => list.sort_by_key(|(_, v)| (v.last_access, v.created)),
        Strategy::Fifo => list.sort_by_key(|(_, v)| v.created),
        Strategy::LargeFirst => list.sort_by_key(|(_, v)| std::cmp::Reverse(v.bytes)),
    }
    let mut evicted = 0;
    for (i, v) in list {
        if usage.bytes() <= target {
            break;
        }
        if v.bytes == 0 {
            continue;
        }
        match parts[i].evict(&v).await {
            Ok(Some(freed)) => {
                evicted += 1;
                let m = olah_metrics::metrics();
                m.evictions.inc();
                m.evicted_bytes.inc_by(freed);
                tracing::debug!(victim = %v.id, bytes = freed, "evicted");
            }
            Ok(None) => {
                // Open: the strategy's order holds, so wait for its release rather than take a
                // later victim. The cache stays over the limit meanwhile.
                tracing::debug!(victim = %v.id, "next victim is open: eviction waits");
                break;
            }
            Err(e) => tracing::warn!(victim = %v.id, error = %e, "could not evict"),
        }
    }
    Ok(evicted)
}
