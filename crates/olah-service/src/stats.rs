//! What the mirror is doing, for the admin page: downloads per repository, fills in flight with
//! their progress, and the last errors. Everything here is bounded — the per-repo counters keep
//! at most [`MAX_REPOS`] repositories (the coldest go first), the error ring the last
//! [`MAX_ERRORS`], the fill registry one entry per running fill (fills are bounded by the
//! connection cap) — so no input can grow it. Knows no HTTP: the HTTP layer reports what it saw.
//!
//! The process-wide totals (hit ratio, bytes served and received) are in `olah_metrics`; this
//! module keeps only what needs a repository name, which never becomes a metrics label.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use olah_store::{Source, SourceError};
use olah_types::RepoRef;
use serde::Serialize;

use crate::ServiceError;
use crate::catalog::{Catalog, RepoSummary};

/// Most repositories with download counters; beyond, the coldest are dropped.
pub const MAX_REPOS: u64 = 10_000;
/// Errors kept in the ring.
pub const MAX_ERRORS: usize = 50;
/// Longest error message kept (characters).
const MAX_MESSAGE: usize = 300;
/// How long the catalog's per-repo sizes are reused (a reload loop must not make it rescan).
pub const SIZES_TTL: Duration = Duration::from_secs(10);

/// Download counters of one repository.
#[derive(Debug, Default)]
struct RepoCounters {
    downloads: AtomicU64,
    bytes: AtomicU64,
    upstream_bytes: AtomicU64,
}

/// One repository's downloads, as the admin API lists them.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RepoHits {
    /// `model`, `dataset`, `space` or `kernel`.
    pub repo_type: String,
    /// `ns/name` (or a legacy id).
    pub repo_id: String,
    /// File downloads (GET of a resolve route) answered.
    pub downloads: u64,
    /// Body bytes those answers announced (`Content-Length`).
    pub bytes: u64,
    /// Bytes of its files fetched from the upstream by fills (the rest came from the cache).
    pub upstream_bytes: u64,
}

/// A fill in flight, as the admin API lists it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FillProgress {
    /// `model`, `dataset`, `space` or `kernel`.
    pub repo_type: String,
    /// `ns/name`.
    pub repo_id: String,
    /// The file's path in the repository.
    pub path: String,
    /// The file's size.
    pub size: u64,
    /// Bytes this fill fetches from the upstream (a run of missing blocks, or the whole file).
    pub bytes_total: u64,
    /// Bytes received so far.
    pub bytes_done: u64,
    /// Seconds since the fill started.
    pub seconds: u64,
}

/// One failed request (status ≥ 500, or 429), as the admin API lists it. Never a header or a
/// token: the message is the mirror's own (or the Hub's `X-Error-Message`).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ErrorRecord {
    /// Unix seconds.
    pub time: u64,
    /// HTTP status answered.
    pub status: u16,
    /// Hub error code (`X-Error-Code`), when there was one.
    pub code: Option<String>,
    /// Route class (`resolve`, `api`, `xet`, `cas`, `admin`, `other`).
    pub route: String,
    /// The repository the request was about, if any (`models/ns/name`).
    pub repo: Option<String>,
    /// What went wrong (at most 300 characters).
    pub message: String,
}

struct FillEntry {
    repo: RepoRef,
    path: String,
    size: u64,
    total: u64,
    done: Arc<AtomicU64>,
    started: Instant,
}

#[derive(Default)]
struct Fills {
    next: u64,
    running: HashMap<u64, FillEntry>,
}

/// The mirror's activity (owned by `Mirror`, see `Mirror::activity`).
pub struct Activity {
    started: Instant,
    repos: moka::sync::Cache<RepoRef, Arc<RepoCounters>>,
    fills: Arc<Mutex<Fills>>,
    errors: Mutex<VecDeque<ErrorRecord>>,
    /// The catalog's answer and when it was taken; the lock also makes concurrent readers share
    /// one scan.
    sizes: tokio::sync::Mutex<Option<(Instant, Arc<Vec<RepoSummary>>)>>,
}

impl Default for Activity {
    fn default() -> Self {
        Self::new()
    }
}

impl Activity {
    /// Nothing recorded yet; the uptime starts now.
    pub fn new() -> Self {
        Self {
            started: Instant::now(),
            repos: moka::sync::Cache::new(MAX_REPOS),
            fills: Arc::default(),
            errors: Mutex::new(VecDeque::with_capacity(MAX_ERRORS)),
            sizes: tokio::sync::Mutex::new(None),
        }
    }

    /// Time since the mirror was built.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// A file download of `repo` was answered; `bytes` is the body length announced.
    pub fn download(&self, repo: &RepoRef, bytes: u64) {
        let c = self.counters(repo);
        c.downloads.fetch_add(1, Ordering::Relaxed);
        c.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    fn counters(&self, repo: &RepoRef) -> Arc<RepoCounters> {
        self.repos.get_with_by_ref(repo, Arc::default)
    }

    /// The `n` repositories with the most downloads (ties: most bytes, then name).
    pub fn top_by_downloads(&self, n: usize) -> Vec<RepoHits> {
        let mut all: Vec<RepoHits> = self
            .repos
            .iter()
            .map(|(repo, c)| RepoHits {
                repo_type: repo.kind.singular().to_string(),
                repo_id: repo.id.as_str().to_string(),
                downloads: c.downloads.load(Ordering::Relaxed),
                bytes: c.bytes.load(Ordering::Relaxed),
                upstream_bytes: c.upstream_bytes.load(Ordering::Relaxed),
            })
            .collect();
        all.sort_by(|a, b| {
            (b.downloads, b.bytes)
                .cmp(&(a.downloads, a.bytes))
                .then_with(|| (&a.repo_type, &a.repo_id).cmp(&(&b.repo_type, &b.repo_id)))
        });
        all.truncate(n);
        all
    }

    /// A fill of `bytes_total` bytes of `path` (a file of `size` bytes) of `repo` starts; it is
    /// listed until the ticket is dropped.
    pub fn fill_started(
        &self,
        repo: &RepoRef,
        path: &str,
        size: u64,
        bytes_total: u64,
    ) -> FillTicket {
        let done = Arc::new(AtomicU64::new(0));
        let mut f = self.fills.lock().expect("fills lock");
        let id = f.next;
        f.next += 1;
        f.running.insert(
            id,
            FillEntry {
                repo: repo.clone(),
                path: path.to_string(),
                size,
                total: bytes_total,
                done: done.clone(),
                started: Instant::now(),
            },
        );
        FillTicket {
            id,
            done,
            fills: self.fills.clone(),
        }
    }

    /// The fills running now, oldest first (at most `n`).
    pub fn fills(&self, n: usize) -> Vec<FillProgress> {
        let f = self.fills.lock().expect("fills lock");
        let mut list: Vec<(&u64, &FillEntry)> = f.running.iter().collect();
        list.sort_by_key(|(id, _)| **id);
        list.into_iter()
            .take(n)
            .map(|(_, e)| FillProgress {
                repo_type: e.repo.kind.singular().to_string(),
                repo_id: e.repo.id.as_str().to_string(),
                path: e.path.clone(),
                size: e.size,
                bytes_total: e.total,
                bytes_done: e.done.load(Ordering::Relaxed),
                seconds: e.started.elapsed().as_secs(),
            })
            .collect()
    }

    /// Remembers a failed request (the oldest of [`MAX_ERRORS`] goes). The message is cut to
    /// 300 characters.
    pub fn record_error(
        &self,
        status: u16,
        code: Option<&str>,
        route: &str,
        repo: Option<String>,
        message: &str,
    ) {
        let time = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let rec = ErrorRecord {
            time,
            status,
            code: code.map(str::to_string),
            route: route.to_string(),
            repo,
            message: message.chars().take(MAX_MESSAGE).collect(),
        };
        let mut ring = self.errors.lock().expect("errors lock");
        if ring.len() >= MAX_ERRORS {
            ring.pop_front();
        }
        ring.push_back(rec);
    }

    /// The remembered errors, newest first.
    pub fn errors(&self) -> Vec<ErrorRecord> {
        let ring = self.errors.lock().expect("errors lock");
        ring.iter().rev().cloned().collect()
    }

    /// The catalog's repositories (largest first), scanned at most once per [`SIZES_TTL`]:
    /// concurrent callers wait for one scan.
    pub async fn repos_by_size(
        &self,
        catalog: &Catalog,
    ) -> Result<Arc<Vec<RepoSummary>>, ServiceError> {
        let mut slot = self.sizes.lock().await;
        if let Some((at, list)) = slot.as_ref()
            && at.elapsed() < SIZES_TTL
        {
            return Ok(list.clone());
        }
        let list = Arc::new(catalog.repos().await?);
        *slot = Some((Instant::now(), list.clone()));
        Ok(list)
    }
}

/// A fill source that lists each of its upstream fetches as a fill in flight.
struct Tracked {
    inner: Arc<dyn Source>,
    activity: Arc<Activity>,
    repo: RepoRef,
    path: String,
    size: u64,
}

#[async_trait]
impl Source for Tracked {
    async fn fetch(
        &self,
        start: u64,
        end: u64,
    ) -> Result<BoxStream<'static, Result<Bytes, SourceError>>, SourceError> {
        let total = end.saturating_sub(start) + 1;
        let ticket = self
            .activity
            .fill_started(&self.repo, &self.path, self.size, total);
        let s = self.inner.fetch(start, end).await?;
        let repo = self.activity.counters(&self.repo);
        // The ticket lives as long as the stream: the fill leaves the list when it ends or fails.
        Ok(s.inspect(move |r| {
            if let Ok(b) = r {
                ticket.advance(b.len() as u64);
                repo.upstream_bytes
                    .fetch_add(b.len() as u64, Ordering::Relaxed);
            }
        })
        .boxed())
    }
}

impl Activity {
    /// `source`, with each of its fetches (the fills of missing blocks of `path` of `repo`, a
    /// file of `size` bytes) listed in [`Activity::fills`] while it runs.
    pub fn track(
        self: &Arc<Self>,
        source: Arc<dyn Source>,
        repo: &RepoRef,
        path: &str,
        size: u64,
    ) -> Arc<dyn Source> {
        Arc::new(Tracked {
            inner: source,
            activity: self.clone(),
            repo: repo.clone(),
            path: path.to_string(),
            size,
        })
    }
}

/// A fill in flight: [`FillTicket::advance`] as bytes arrive; dropping it ends the fill's entry.
pub struct FillTicket {
    id: u64,
    done: Arc<AtomicU64>,
    fills: Arc<Mutex<Fills>>,
}

impl FillTicket {
    /// `bytes` more were received.
    pub fn advance(&self, bytes: u64) {
        self.done.fetch_add(bytes, Ordering::Relaxed);
    }
}

impl Drop for FillTicket {
    fn drop(&mut self) {
        if let Ok(mut f) = self.fills.lock() {
            f.running.remove(&self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use olah_types::{RepoId, RepoType};

    fn repo(id: &str) -> RepoRef {
        RepoRef::new(RepoType::Model, RepoId::new(id).unwrap())
    }

    #[test]
    fn downloads_are_counted_per_repo_and_ranked() {
        let a = Activity::new();
        a.download(&repo("acme/a"), 10);
        a.download(&repo("acme/b"), 5);
        a.download(&repo("acme/b"), 5);
        let top = a.top_by_downloads(10);
        assert_eq!(top.len(), 2);
        assert_eq!(
            top[0],
            RepoHits {
                repo_type: "model".into(),
                repo_id: "acme/b".into(),
                downloads: 2,
                bytes: 10,
                upstream_bytes: 0,
            }
        );
        assert_eq!(top[1].repo_id, "acme/a");
        assert_eq!(a.top_by_downloads(1).len(), 1);
    }

    #[test]
    fn a_fill_is_listed_with_its_progress_until_its_ticket_drops() {
        let a = Activity::new();
        let t = a.fill_started(&repo("acme/a"), "w.bin", 100, 60);
        t.advance(20);
        t.advance(5);
        let f = a.fills(10);
        assert_eq!(f.len(), 1);
        assert_eq!((f[0].path.as_str(), f[0].size), ("w.bin", 100));
        assert_eq!((f[0].bytes_total, f[0].bytes_done), (60, 25));
        drop(t);
        assert!(a.fills(10).is_empty());
    }

    /// A source whose bytes the test hands out one chunk at a time.
    struct Chunks(Mutex<Option<tokio::sync::mpsc::Receiver<Bytes>>>);

    #[async_trait]
    impl Source for Chunks {
        async fn fetch(
            &self,
            _start: u64,
            _end: u64,
        ) -> Result<BoxStream<'static, Result<Bytes, SourceError>>, SourceError> {
            let rx = self.0.lock().unwrap().take().expect("one fetch");
            Ok(tokio_stream::wrappers::ReceiverStream::new(rx)
                .map(Ok)
                .boxed())
        }
    }

    #[tokio::test]
    async fn a_tracked_source_lists_each_fetch_with_its_progress() {
        let a = Arc::new(Activity::new());
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let src = a.track(
            Arc::new(Chunks(Mutex::new(Some(rx)))),
            &repo("acme/a"),
            "dir/w.bin",
            1000,
        );
        let mut s = src.fetch(100, 399).await.unwrap();
        let f = a.fills(10);
        assert_eq!(f.len(), 1);
        assert_eq!(
            (f[0].repo_id.as_str(), f[0].path.as_str()),
            ("acme/a", "dir/w.bin")
        );
        assert_eq!(
            (f[0].size, f[0].bytes_total, f[0].bytes_done),
            (1000, 300, 0)
        );
        tx.send(Bytes::from(vec![0u8; 120])).await.unwrap();
        assert_eq!(s.next().await.unwrap().unwrap().len(), 120);
        assert_eq!(a.fills(10)[0].bytes_done, 120);
        assert_eq!(
            a.top_by_downloads(1)[0].upstream_bytes,
            120,
            "counted for the repo"
        );
        drop(tx);
        assert!(s.next().await.is_none());
        drop(s);
        assert!(a.fills(10).is_empty(), "an ended fill leaves the list");
    }

    #[test]
    fn the_error_ring_keeps_the_last_fifty_newest_first() {
        let a = Activity::new();
        for i in 0..60u16 {
            a.record_error(500 + i, Some("X"), "api", None, &"m".repeat(1000));
        }
        let e = a.errors();
        assert_eq!(e.len(), MAX_ERRORS);
        assert_eq!(e[0].status, 559);
        assert_eq!(e[MAX_ERRORS - 1].status, 510);
        assert_eq!(e[0].message.len(), MAX_MESSAGE);
    }
}
