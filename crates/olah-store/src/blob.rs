//! Block-structured blobs with streaming single-flight fills.
//!
//! A blob is one content-addressed file of known size, cut into fixed-size blocks. Each block is
//! `Missing`, `Present(crc32)` (bytes on disk, checksum in the database) or `Filling` (an upstream
//! fetch is writing it right now). Readers walk the blocks of their range:
//!
//! * `Present`: read the whole block from disk, check its CRC, send the requested slice. A CRC
//!   mismatch marks the block `Missing` again and it is fetched anew; a wrong byte is never sent.
//!   A block checked before on the same, unchanged version of the file (see `trust.rs`) is read
//!   in pieces of [`PIECE`] bytes without the CRC. Every read from disk holds a share of one
//!   budget of bytes for all readers ([`READ_BUDGET`]) until the HTTP layer has written it.
//! * `Filling`: follow the fill. The filler appends upstream chunks to an in-memory buffer of the
//!   block and publishes its length on a `watch` channel; followers send bytes as soon as they
//!   arrive (no waiting for the block or the file), so N clients cause one upstream transfer.
//! * `Missing`: claim the run of consecutive missing blocks the range needs, spawn ONE fill task
//!   for it (one upstream range request) and follow it like any other reader.
//!
//! A fill runs detached from the client that started it, so a disconnecting leader does not cut
//! its followers. If a fill fails (upstream cut, bad status) its unfinished blocks go back to
//! `Missing` — also when the task panics or is dropped (see [`FillGuard`]) — and waiting readers
//! claim them again with their own source.
//!
//! Durability: block bytes are written to the sparse data file first, then the block's CRC is
//! recorded. When the last block is present the whole blob is hashed against its key (sha256 or
//! git blob sha1); only then is it marked complete. A mismatch discards the blob.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use olah_metrics::ServedFrom;
use sha1::Digest as _;
use tokio::sync::{mpsc, watch};

use crate::backend::fs::FsBlocks;
use crate::backend::{BlobData, BlockIo};
use crate::budget::{Evictable, Strategy, Usage, Victim};
use crate::error::{Result, SourceError, StoreError};
use crate::fill::{BlockFill, Claim, FillLock, FillState, InFlight, Progress, Slot};
use crate::index::{BlobIndex, RedbIndex};
use crate::key::BlobKey;
use crate::meta::{BlobRecord, MetaDb};
use crate::trust::Trust;
use crate::util::{blocking, now_ms};

/// Default block size: the unit of persistence, checksumming and partial caching. Small enough
/// that a 1 MiB range read pulls at most 2 blocks (4 MiB) upstream.
pub const DEFAULT_BLOCK_SIZE: u64 = 2 * 1024 * 1024;

/// Bytes per read of a block whose CRC check is trusted (fewer, larger socket writes than a
/// small piece; far less memory per connection than a whole block).
pub const PIECE: u64 = 256 * 1024;

/// Bytes read from disk and not yet written to a client, all readers together: a read waits for
/// its share (so 1,000 slow connections hold at most this much, not a block or more each).
pub const READ_BUDGET: u32 = 16 << 20;

/// Longest a disk read waits for room in [`READ_BUDGET`] before it goes on without a share: the
/// budget bounds memory while clients read, and never lets connections that stopped reading
/// (each holding its last piece) stall the others.
pub const READ_BUDGET_WAIT: std::time::Duration = std::time::Duration::from_millis(100);

/// How many times one reader re-claims blocks after failed fills before giving up.
const MAX_FILL_ATTEMPTS: u32 = 3;

/// Where the bytes of missing blocks come from (the upstream, for the server).
#[async_trait]
pub trait Source: Send + Sync + 'static {
    /// Opens a stream of exactly the bytes `start..=end` (inclusive) of the blob.
    async fn fetch(
        &self,
        start: u64,
        end: u64,
    ) -> Result<BoxStream<'static, Result<Bytes, SourceError>>, SourceError>;
}

/// A stream of blob bytes handed to the HTTP layer.
pub type ByteStream = BoxStream<'static, Result<Bytes, StoreError>>;

/// A stream of blob bytes, each piece with where it came from: a block that was on disk when
/// the read began ([`ServedFrom::cache`]), or bytes that arrived from the upstream during the
/// read — from a fill it led or followed, or from disk where such a fill had written them
/// ([`ServedFrom::upstream`]).
pub type TaggedStream = tokio_stream::wrappers::ReceiverStream<Result<(Bytes, ServedFrom)>>;

/// The blob store: bytes in a [`BlockIo`] backend, state in a [`BlobIndex`].
pub struct BlobStore {
    pub(crate) part: Arc<BlobPart>,
    block_size: u64,
    /// Other parts sharing this cache's size limit (the xorb store).
    others: Mutex<Vec<Arc<dyn Evictable>>>,
    /// Blob loads so far (see [`BlobStore::loads`]).
    loads: std::sync::atomic::AtomicU64,
}

/// What the store shares with its eviction side: the blob part of the cache budget.
pub(crate) struct BlobPart {
    pub(crate) io: Arc<dyn BlockIo>,
    pub(crate) index: Arc<dyn BlobIndex>,
    registry: Arc<Mutex<Registry>>,
    pub(crate) usage: Arc<Usage>,
    /// Last read (ms) per blob, flushed to the index by eviction passes.
    pub(crate) access: Mutex<HashMap<BlobKey, u64>>,
    /// Blocks whose CRC was checked, per file version.
    trust: Arc<Trust>,
    /// The bytes every reader may hold read from disk and not yet sent ([`READ_BUDGET`]).
    reads: Arc<tokio::sync::Semaphore>,
    /// CRC checks of blocks read from disk so far.
    checks: Arc<std::sync::atomic::AtomicU64>,
}

#[derive(Default)]
struct Registry {
    open: HashMap<BlobKey, Weak<Blob>>,
    /// Keys being loaded right now. Every other opener of the key waits for that one load (the
    /// receiver reports when its sender, held by the load task, is dropped): a second load would
    /// reset the records and the data file under the fill the first one started.
    loading: HashMap<BlobKey, watch::Receiver<()>>,
    evicting: HashSet<BlobKey>,
}

/// How long an opener waits for the same key held open with another size (only a lying
/// upstream makes two sizes for one content key) before giving up.
const OTHER_SIZE_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// One open blob (shared by every reader and fill of it).
pub struct Blob {
    key: BlobKey,
    size: u64,
    block_size: u64,
    data: Arc<dyn BlobData>,
    index: Arc<dyn BlobIndex>,
    usage: Arc<Usage>,
    state: Mutex<BlobState>,
    /// Bumped whenever a block changes state or a verification ends: readers holding back the
    /// last bytes of the content wait on it.
    changes: watch::Sender<()>,
    trust: Arc<Trust>,
    reads: Arc<tokio::sync::Semaphore>,
    checks: Arc<std::sync::atomic::AtomicU64>,
}

impl Drop for Blob {
    fn drop(&mut self) {
        // No reader or fill holds it any more: an eviction waiting for it may go on.
        self.usage.poke();
    }
}

struct BlobState {
    slots: Vec<Slot>,
    complete: bool,
    verifying: bool,
    /// Verifications of this blob that failed (its blocks were discarded).
    mismatches: u64,
    /// Blocks that went back to `Missing` so far (a counter, never reset).
    lost: u64,
    /// The verdict of a fill that claimed every block and hashed its bytes as they streamed,
    /// with `lost` when that fill claimed them: used instead of re-reading the file only if no
    /// block was lost since (else another fill supplied bytes this verdict did not see).
    streamed: Option<(bool, u64)>,
}

/// Presence summary of a blob, for tests, logs and admin views.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobStatus {
    /// Blocks in the blob.
    pub blocks: u32,
    /// Blocks present on disk.
    pub present: u32,
    /// Verified against its content hash.
    pub complete: bool,
}

impl BlobStore {
    /// Whether the store can take a write right now (the backend's probe): for readiness
    /// checks, never on a download's path.
    pub async fn probe(&self) -> Result<()> {
        self.part.io.probe().await
    }

    /// A store keeping data files under `root`, without a size limit.
    pub fn new(root: PathBuf, db: Arc<MetaDb>, block_size: u64) -> Self {
        Self::with_limit(root, db, block_size, None, Strategy::Lru)
    }

    /// A disk store (sparse files under `root`, records in `db`) with a size limit enforced by
    /// [`BlobStore::start_evictor`]. Reads the current usage from the database (once, at
    /// start-up: blocking).
    pub fn with_limit(
        root: PathBuf,
        db: Arc<MetaDb>,
        block_size: u64,
        limit: Option<u64>,
        strategy: Strategy,
    ) -> Self {
        Self::with_backend(
            Arc::new(FsBlocks::new(root)),
            Arc::new(RedbIndex(db)),
            block_size,
            limit,
            strategy,
        )
    }

    /// A store over any backend and index. Reads the current usage from the index (blocking:
    /// call it at start-up).
    pub fn with_backend(
        io: Arc<dyn BlockIo>,
        index: Arc<dyn BlobIndex>,
        block_size: u64,
        limit: Option<u64>,
        strategy: Strategy,
    ) -> Self {
        let usage = Arc::new(Usage::new(limit, strategy));
        match index.usage_blocking() {
            Ok(list) => usage.set(list.iter().map(|u| u.bytes).sum()),
            Err(e) => tracing::warn!(error = %e, "cannot read cache usage"),
        }
        Self {
            part: Arc::new(BlobPart {
                io,
                index,
                registry: Arc::new(Mutex::new(Registry::default())),
                usage,
                access: Mutex::new(HashMap::new()),
                trust: Arc::new(Trust::default()),
                reads: Arc::new(tokio::sync::Semaphore::new(READ_BUDGET as usize)),
                checks: Arc::new(std::sync::atomic::AtomicU64::new(0)),
            }),
            block_size: block_size.max(4096),
            others: Mutex::new(Vec::new()),
            loads: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Puts another part (the xorb store) under this cache's size limit: its bytes count toward
    /// the limit and eviction passes consider its objects with the blobs, in the same strategy
    /// order. A part that already reports to a cache is left alone.
    pub fn attach_xorbs(&self, x: Arc<dyn Evictable>) {
        if x.attach(self.part.usage.clone()) {
            self.others.lock().expect("parts lock").push(x);
        }
    }

    /// Bytes cached and the limit.
    pub fn usage(&self) -> &Usage {
        &self.part.usage
    }

    /// How many times a blob was loaded (once per key while it stays open).
    pub fn loads(&self) -> u64 {
        self.loads.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Blocks read from disk and CRC-checked so far (warm reads of trusted blocks skip it).
    pub fn crc_checks(&self) -> u64 {
        self.part.checks.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Where a blob's bytes live on the local disk, if the backend is a disk.
    pub fn data_path(&self, key: &BlobKey) -> Option<PathBuf> {
        self.part.io.local_path(key)
    }

    /// Sets the size limit and starts the evictor task (one pass right away).
    pub fn start_evictor(self: &Arc<Self>) {
        let Some(limit) = self.usage().limit() else {
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
                let usage = store.part.usage.clone();
                let still_over = usage.bytes() > limit;
                drop(store);
                // Still over: the next victim is open; its release wakes us, try again
                // shortly anyway.
                let max = still_over.then_some(std::time::Duration::from_millis(500));
                usage.wait(max).await;
            }
        });
    }

    /// Evicts in strategy order (blobs and attached parts together) until usage is under 90 %
    /// of the limit. Returns how many victims went.
    pub async fn evict_pass(&self) -> Result<usize> {
        let mut parts: Vec<Arc<dyn Evictable>> = vec![self.part.clone()];
        parts.extend(self.others.lock().expect("parts lock").iter().cloned());
        crate::budget::pass(&self.part.usage, &parts).await
    }

    /// Opens a blob of the given size, loading what is already cached. Every caller of the same
    /// key shares one [`Blob`], which is what makes fills single-flight, and the key is loaded
    /// once: concurrent openers wait for the first one's load. Waits while the blob is being
    /// evicted, or while it is open with another size (until that one is released).
    pub async fn open(&self, key: BlobKey, size: u64) -> Result<Arc<Blob>> {
        self.part
            .access
            .lock()
            .expect("access map lock")
            .insert(key, now_ms());
        self.open_untouched(key, size).await
    }

    /// [`BlobStore::open`] without counting it as a read (the cache tools).
    pub(crate) async fn open_untouched(&self, key: BlobKey, size: u64) -> Result<Arc<Blob>> {
        let mut evict_waits = 0;
        let other_size_until = std::time::Instant::now() + OTHER_SIZE_WAIT;
        let done = loop {
            let loading = {
                let mut r = self.part.registry.lock().expect("open-blob registry lock");
                match r.open.get(&key).and_then(Weak::upgrade) {
                    Some(b) if b.size == size => return Ok(b),
                    Some(_) => {
                        if std::time::Instant::now() > other_size_until {
                            return Err(StoreError::Io(std::io::Error::other(format!(
                                "{key} is open with another size"
                            ))));
                        }
                        None
                    }
                    None => match r.loading.get(&key) {
                        // A live load: wait for it. (A dead one, whose task panicked, is retried.)
                        Some(rx) if rx.has_changed().is_ok() => Some(rx.clone()),
                        _ if r.evicting.contains(&key) && evict_waits < 2000 => {
                            evict_waits += 1;
                            None
                        }
                        _ => {
                            let (tx, rx) = watch::channel(());
                            r.loading.insert(key, rx);
                            break tx;
                        }
                    },
                }
            };
            match loading {
                // Resolves when the load is over (its sender is dropped).
                Some(mut rx) => while rx.changed().await.is_ok() {},
                None => tokio::time::sleep(std::time::Duration::from_millis(5)).await,
            }
        };
        self.loads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let part = self.part.clone();
        let block_size = self.block_size;
        let registry = self.part.registry.clone();
        // The load runs as a task of its own and registers its blob itself, before its waiters
        // wake: an opener cancelled mid-load (its client gone) cannot let a second load start
        // beside the running one.
        let task = tokio::spawn(async move {
            let loaded = load_blob(&part, key, size, block_size).await;
            let mut r = registry.lock().expect("open-blob registry lock");
            r.loading.remove(&key);
            let blob = Arc::new(loaded?);
            if r.open.len() > 1024 {
                r.open.retain(|_, w| w.strong_count() > 0);
            }
            r.open.insert(key, Arc::downgrade(&blob));
            drop(r);
            drop(done);
            Ok(blob)
        });
        task.await
            .map_err(|e| StoreError::Io(std::io::Error::other(e.to_string())))?
    }

    /// Rebuilds the blob records of a fresh database from the data files (after a damaged
    /// database was moved aside): every file under `sha256/` and `gitsha1/` whose whole content
    /// hashes to the key its path names is recorded complete, with its block checksums; every
    /// other data file (partial, wrong) is deleted. Blocking: call it at start-up, before
    /// serving. Returns (blobs kept, their bytes, files deleted).
    pub fn recover_blobs(&self) -> Result<(usize, u64, usize)> {
        let (mut kept, mut bytes, mut dropped) = (0usize, 0u64, 0usize);
        let io = &self.part.io;
        for (key, size) in io.stored_blocking()? {
            match self.recover_one(key, size) {
                Ok(true) => {
                    kept += 1;
                    bytes += size;
                }
                Ok(false) => {
                    dropped += 1;
                    let _ = io.remove_blocking(&key);
                }
                Err(e) => {
                    tracing::warn!(blob = %key, error = %e, "could not recover a cached blob")
                }
            }
        }
        self.part.usage.add(bytes);
        Ok((kept, bytes, dropped))
    }

    /// Hashes one stored blob against its key, with a CRC per block; records it when it matches.
    fn recover_one(&self, key: BlobKey, size: u64) -> Result<bool> {
        let mut h = ContentHasher::new(&key, size);
        let mut crcs = Vec::with_capacity(size.div_ceil(self.block_size) as usize);
        let mut buf = vec![0u8; self.block_size as usize];
        let mut off = 0u64;
        while off < size {
            let n = (size - off).min(self.block_size) as usize;
            self.part.io.read_blocking(&key, off, &mut buf[..n])?;
            h.update(&buf[..n]);
            crcs.push(crc32fast::hash(&buf[..n]));
            off += n as u64;
        }
        if !h.matches(&key) {
            return Ok(false);
        }
        let rec = BlobRecord {
            size,
            block_size: self.block_size,
            complete: true,
            created: now_ms(),
            last_access: 0,
        };
        self.part
            .index
            .put_verified_blob_blocking(&key, &rec, &crcs)?;
        Ok(true)
    }

    /// Streams bytes `start..=end` of the blob, filling missing blocks from `source` (or failing
    /// with [`StoreError::NotCached`] when there is none). The stream is produced by a task that
    /// stops when the receiver is dropped; at most a few blocks are buffered.
    pub fn read(
        blob: Arc<Blob>,
        start: u64,
        end: u64,
        source: Option<Arc<dyn Source>>,
    ) -> ByteStream {
        Self::read_tagged(blob, start, end, source)
            .map(|r| r.map(|(b, _)| b))
            .boxed()
    }

    /// [`BlobStore::read`], each piece tagged with where it came from (for the served-bytes
    /// metric, see [`TaggedStream`]).
    pub fn read_tagged(
        blob: Arc<Blob>,
        start: u64,
        end: u64,
        source: Option<Arc<dyn Source>>,
    ) -> TaggedStream {
        let (tx, rx) = mpsc::channel(2);
        tokio::spawn(async move {
            if let Err(e) = blob.read_into(start, end, source, &tx).await {
                let _ = tx.send(Err(e)).await;
            }
        });
        TaggedStream::new(rx)
    }
}

async fn load_blob(part: &BlobPart, key: BlobKey, size: u64, block_size: u64) -> Result<Blob> {
    let (data, stored_len) = part.io.open(&key).await?;
    let index = &part.index;
    let mut rec = index.blob(&key).await?;
    let usable =
        matches!(&rec, Some(r) if r.size == size && stored_len == size && r.block_size > 0);
    if !usable {
        // New blob, or a record that does not match the stored bytes: start from scratch.
        if let Some(old) = &rec {
            let gone: u64 = index
                .blocks(&key)
                .await?
                .iter()
                .map(|(i, _)| {
                    old.block_size
                        .min(old.size.saturating_sub(*i as u64 * old.block_size))
                })
                .sum();
            part.usage.sub(gone);
        }
        index.remove_blob(&key).await?;
        data.reset(size).await?;
        let r = BlobRecord {
            size,
            block_size,
            complete: false,
            created: now_ms(),
            last_access: 0,
        };
        index.put_blob(&key, &r).await?;
        rec = Some(r);
    }
    let rec = rec.expect("record set above");
    let nblocks = size.div_ceil(rec.block_size) as usize;
    let mut slots = vec![Slot::Missing; nblocks];
    for (idx, crc) in index.blocks(&key).await? {
        if let Some(s) = slots.get_mut(idx as usize) {
            *s = Slot::Present(crc);
        }
    }
    let complete = rec.complete && slots.iter().all(|s| matches!(s, Slot::Present(_)));
    Ok(Blob {
        key,
        size,
        block_size: rec.block_size,
        data,
        index: index.clone(),
        usage: part.usage.clone(),
        state: Mutex::new(BlobState {
            slots,
            complete,
            verifying: false,
            mismatches: 0,
            lost: 0,
            streamed: None,
        }),
        changes: watch::channel(()).0,
        trust: part.trust.clone(),
        reads: part.reads.clone(),
        checks: part.checks.clone(),
    })
}

impl Blob {
    /// The blob's content key.
    pub fn key(&self) -> BlobKey {
        self.key
    }

    /// Total size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// What is cached of this blob.
    pub fn status(&self) -> BlobStatus {
        let st = self.state.lock().expect("blob state lock");
        BlobStatus {
            blocks: st.slots.len() as u32,
            present: st
                .slots
                .iter()
                .filter(|s| matches!(s, Slot::Present(_)))
                .count() as u32,
            complete: st.complete,
        }
    }

    /// True when every block of `start..=end` is on disk (a read would need no upstream).
    pub fn is_cached(&self, start: u64, end: u64) -> bool {
        if self.size == 0 {
            return true;
        }
        let st = self.state.lock().expect("blob state lock");
        let (a, b) = (
            (start / self.block_size) as usize,
            (end / self.block_size) as usize,
        );
        st.slots[a..=b.min(st.slots.len() - 1)]
            .iter()
            .all(|s| matches!(s, Slot::Present(_)))
    }

    fn block_len(&self, idx: u32) -> u64 {
        let start = idx as u64 * self.block_size;
        self.block_size.min(self.size - start)
    }

    async fn read_into(
        self: &Arc<Self>,
        start: u64,
        end: u64,
        source: Option<Arc<dyn Source>>,
        tx: &mpsc::Sender<Result<(Bytes, ServedFrom)>>,
    ) -> Result<()> {
        if self.size == 0 || start > end || end >= self.size {
            return Ok(());
        }
        let first = (start / self.block_size) as u32;
        // Which blocks of the range were on disk when the read began: their bytes are `cache`,
        // every other byte arrived from the upstream during this read (`upstream`), also when a
        // fill wrote its block to disk before the reader got there.
        let (mismatches, mut on_disk) = {
            let st = self.state.lock().expect("blob state lock");
            let last = (end / self.block_size) as usize;
            let on_disk: Vec<bool> = st.slots[first as usize..=last]
                .iter()
                .map(|s| matches!(s, Slot::Present(_)))
                .collect();
            (st.mismatches, on_disk)
        };
        let from = |on_disk: &[bool], idx: u32| {
            if on_disk[(idx - first) as usize] {
                ServedFrom::cache
            } else {
                ServedFrom::upstream
            }
        };
        // The piece that ends the content is released only once the whole content verified:
        // no reader gets a clean end of body with bytes that did not match the content hash.
        let mut held: Option<(Bytes, ServedFrom)> = None;
        let mut pos = start;
        let mut failures = 0u32;
        while pos <= end {
            let idx = (pos / self.block_size) as u32;
            let block_start = idx as u64 * self.block_size;
            let block_end = block_start + self.block_len(idx); // exclusive
            let want_end = (end + 1).min(block_end); // exclusive
            match self.next_step(idx, end, source.as_ref()) {
                Claim::Missing => {
                    return Err(StoreError::NotCached(format!("{} block {idx}", self.key)));
                }
                Claim::Present(crc) => {
                    let tag = from(&on_disk, idx);
                    // Checked before on this version of the file: read just the next piece, no
                    // CRC; it counts only if the file is still that version after the read.
                    if self.trusted(idx, crc) {
                        let n = (want_end - pos).min(PIECE);
                        let piece = self.read_budgeted(pos, n as usize).await?;
                        if self.trusted(idx, crc) {
                            pos += n;
                            if pos == self.size {
                                held = Some((piece, tag));
                            } else if tx.send(Ok((piece, tag))).await.is_err() {
                                return Ok(());
                            }
                            continue;
                        }
                    }
                    let checked = std::time::SystemTime::now();
                    let id = self.data.identity();
                    let data = self
                        .read_budgeted(block_start, self.block_len(idx) as usize)
                        .await?;
                    self.checks
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if crc32fast::hash(&data) != crc {
                        tracing::warn!(blob = %self.key, block = idx, "block checksum mismatch; refetching");
                        self.trust.forget(&self.key);
                        self.invalidate(idx, crc).await;
                        on_disk[(idx - first) as usize] = false;
                        continue;
                    }
                    self.trust.record(&self.key, id, checked, idx, crc);
                    let slice =
                        data.slice((pos - block_start) as usize..(want_end - block_start) as usize);
                    if want_end == self.size {
                        held = Some((slice, tag));
                    } else if tx.send(Ok((slice, tag))).await.is_err() {
                        return Ok(());
                    }
                    pos = want_end;
                }
                Claim::Lead(_) => unreachable!("next_step starts the fills it leads"),
                Claim::Follow(fill) => {
                    let mut rx = fill.progress.subscribe();
                    loop {
                        let off = pos - block_start;
                        let p = match rx
                            .wait_for(|p| p.len > off || p.state != FillState::Running)
                            .await
                        {
                            Ok(p) => *p,
                            Err(_) => Progress {
                                len: 0,
                                state: FillState::Failed,
                            },
                        };
                        if p.len > off {
                            let upto = p.len.min(want_end - block_start);
                            let mut parts = fill.slice(off, upto);
                            if block_start + upto == self.size {
                                held = parts.pop().map(|p| (p, ServedFrom::upstream));
                            }
                            for part in parts {
                                if tx.send(Ok((part, ServedFrom::upstream))).await.is_err() {
                                    return Ok(());
                                }
                            }
                            pos = block_start + upto;
                            failures = 0;
                            if pos >= want_end {
                                break;
                            }
                        } else if p.state == FillState::Failed
                            && fill.corrupt.load(std::sync::atomic::Ordering::SeqCst)
                        {
                            return Err(StoreError::InvalidData(format!(
                                "the source of {} delivered wrong bytes",
                                self.key
                            )));
                        } else if p.state == FillState::Failed {
                            failures += 1;
                            if failures >= MAX_FILL_ATTEMPTS {
                                return Err(StoreError::Source(SourceError::new(
                                    format!(
                                        "upstream fill of {} failed {failures} times",
                                        self.key
                                    ),
                                    None,
                                )));
                            }
                            break;
                        } else {
                            // Done with len <= off cannot happen: a done block has its full length.
                            break;
                        }
                    }
                }
            }
        }
        if let Some(last) = held {
            self.settle(first, mismatches).await?;
            let _ = tx.send(Ok(last)).await;
        }
        Ok(())
    }

    /// Waits until the content is verified, for a reader of blocks `first..` holding back the
    /// end of the content. Fails when a verification failed since the reader started
    /// (`mismatches` then) or a block of the reader's range was lost before one could run.
    /// A reader of a range that does not start at 0 waits only when the blocks before its range
    /// are on disk already; else the verification would depend on fetches it did not ask for
    /// (a footer read would wait for another client's whole download) and its range is served
    /// as it is, checked per block (and by the source) only.
    async fn settle(self: &Arc<Self>, first: u32, mismatches: u64) -> Result<()> {
        let mut changes = self.changes.subscribe();
        loop {
            let verify_now = {
                let mut st = self.state.lock().expect("blob state lock");
                if st.mismatches != mismatches {
                    return Err(StoreError::InvalidData(format!(
                        "the content of {} does not match its hash",
                        self.key
                    )));
                }
                if st.complete {
                    return Ok(());
                }
                let missing = |s: &Slot| matches!(s, Slot::Missing);
                if st.slots[first as usize..].iter().any(missing) {
                    return Err(StoreError::InvalidData(format!(
                        "a block of {} was lost before its content was verified",
                        self.key
                    )));
                }
                if !st.slots[..first as usize]
                    .iter()
                    .all(|s| matches!(s, Slot::Present(_)))
                {
                    return Ok(());
                }
                let all_present = st.slots.iter().all(|s| matches!(s, Slot::Present(_)));
                // Every block on disk but no verification running (loaded so after a crash, or
                // the fill that wrote the last block found it running): run it here.
                let run = all_present && !st.verifying;
                if run {
                    st.verifying = true;
                }
                run
            };
            if verify_now {
                self.verify_all().await;
                continue;
            }
            if changes.changed().await.is_err() {
                return Err(StoreError::InvalidData(format!(
                    "{} closed while it was verified",
                    self.key
                )));
            }
        }
    }

    /// Decides what to do for block `idx`, claiming a run of missing blocks when needed and
    /// then starting its fill (the reader follows it like any other).
    fn next_step(
        self: &Arc<Self>,
        idx: u32,
        end: u64,
        source: Option<&Arc<dyn Source>>,
    ) -> Claim<FillGuard, Arc<BlockFill>> {
        let last = (end / self.block_size) as u32;
        match self.claim(idx, last, source.is_some()) {
            Claim::Lead(guard) => {
                let first = guard.fills[0]
                    .clone()
                    .expect("a fresh claim holds every fill");
                let source = source.expect("only a reader with a source leads").clone();
                tokio::spawn(run_fill(guard, source));
                Claim::Follow(first)
            }
            other => other,
        }
    }

    /// Whether block `idx` (recorded with `crc`) was CRC-checked on the file as it is now.
    fn trusted(&self, idx: u32, crc: u32) -> bool {
        self.trust.holds(&self.key, self.data.identity(), idx, crc)
    }

    /// `len` bytes at `off`, read once the reader budget has room for them; the share is given
    /// back when the last piece of the returned bytes is dropped (written to the client).
    async fn read_budgeted(&self, off: u64, len: usize) -> Result<Bytes> {
        let share = u32::try_from(len).unwrap_or(u32::MAX).clamp(1, READ_BUDGET);
        // Soft: clients that stop reading keep their last piece (and its share) until their
        // connection ends, so a reader that waited READ_BUDGET_WAIT goes on without a share
        // rather than letting a few stalled connections stall every download.
        let permit = match tokio::time::timeout(
            READ_BUDGET_WAIT,
            self.reads.clone().acquire_many_owned(share),
        )
        .await
        {
            Ok(p) => {
                Some(p.map_err(|_| StoreError::Io(std::io::Error::other("read budget closed")))?)
            }
            Err(_) => None,
        };
        let data = self.data.read(off, len).await?;
        Ok(Bytes::from_owner(Budgeted {
            data,
            _share: permit,
        }))
    }

    /// Forgets a block whose bytes do not match its checksum (only if nobody replaced it since).
    async fn invalidate(&self, idx: u32, crc: u32) {
        {
            let mut st = self.state.lock().expect("blob state lock");
            if matches!(st.slots[idx as usize], Slot::Present(c) if c == crc) {
                st.slots[idx as usize] = Slot::Missing;
                st.lost += 1;
                st.complete = false;
                self.usage.sub(self.block_len(idx));
            }
        }
        self.changes.send_replace(());
        let key = self.key;
        if let Err(e) = self.index.remove_block(&key, idx).await {
            tracing::warn!(blob = %key, error = %e, "could not forget corrupt block");
        }
    }

    /// Writes a finished block and records it present.
    async fn commit_block(&self, idx: u32, data: Vec<Bytes>, crc: u32) -> Result<()> {
        let off = idx as u64 * self.block_size;
        self.data.write(off, data).await?;
        self.index.put_block(&self.key, idx, crc).await?;
        let all_present = {
            let mut st = self.state.lock().expect("blob state lock");
            st.slots[idx as usize] = Slot::Present(crc);
            self.usage.add(self.block_len(idx));
            let all = !st.complete
                && !st.verifying
                && st.slots.iter().all(|s| matches!(s, Slot::Present(_)));
            if all {
                st.verifying = true;
            }
            all
        };
        self.changes.send_replace(());
        if all_present {
            self.verify_all().await;
        }
        Ok(())
    }

    /// Hashes the whole content against the key (the caller set `verifying`): marks the blob
    /// complete, or discards every block. Readers holding back the end of the content learn
    /// the outcome through `changes`.
    async fn verify_all(&self) {
        let key = self.key;
        let streamed = {
            let mut st = self.state.lock().expect("blob state lock");
            let lost = st.lost;
            st.streamed
                .take()
                .filter(|(_, at)| *at == lost)
                .map(|(ok, _)| ok)
        };
        let ok = match streamed {
            Some(true) => self.mark_complete().await.map(|()| true),
            Some(false) => Ok(false),
            None => self.verify().await,
        }
        .unwrap_or_else(|e| {
            tracing::warn!(blob = %key, error = %e, "verification failed to run");
            false
        });
        {
            let mut st = self.state.lock().expect("blob state lock");
            st.verifying = false;
            st.streamed = None;
            if ok {
                st.complete = true;
            } else {
                st.mismatches += 1;
                st.lost += 1;
                let mut gone = 0;
                for (i, s) in st.slots.iter_mut().enumerate() {
                    if matches!(s, Slot::Present(_)) {
                        *s = Slot::Missing;
                        gone += self.block_size.min(self.size - i as u64 * self.block_size);
                    }
                }
                self.usage.sub(gone);
            }
        }
        if !ok {
            tracing::error!(blob = %key, "content hash mismatch: discarding cached blob");
            let _ = reset_blob_record(self.index.as_ref(), &key).await;
        }
        self.changes.send_replace(());
    }
}

/// Bytes read from disk holding their share of the reader budget.
struct Budgeted {
    data: Bytes,
    _share: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl AsRef<[u8]> for Budgeted {
    fn as_ref(&self) -> &[u8] {
        &self.data
    }
}

/// Drops every block record of a blob and marks it incomplete.
async fn reset_blob_record(index: &dyn BlobIndex, key: &BlobKey) -> Result<()> {
    let rec = index.blob(key).await?;
    index.remove_blob(key).await?;
    if let Some(mut r) = rec {
        r.complete = false;
        index.put_blob(key, &r).await?;
    }
    Ok(())
}

/// Bytes hashed per step when verifying a whole blob.
const VERIFY_STEP: u64 = 1 << 20;

impl Blob {
    /// Hashes a complete blob's content against its key again (the cache tools' verify). On a
    /// mismatch every block is discarded, as after a failed fill. `None` when the blob is not
    /// complete or a verification of it is running already; else whether it matched.
    pub(crate) async fn recheck(&self) -> Option<bool> {
        let before = {
            let mut st = self.state.lock().expect("blob state lock");
            if !st.complete || st.verifying {
                return None;
            }
            st.complete = false;
            st.verifying = true;
            st.streamed = None;
            st.mismatches
        };
        self.verify_all().await;
        let st = self.state.lock().expect("blob state lock");
        Some(st.mismatches == before && st.complete)
    }

    /// Hashes the whole content against the key (reads off the backend, hashes on a blocking
    /// thread); marks the blob complete on success.
    async fn verify(&self) -> Result<bool> {
        let mut h = ContentHasher::new(&self.key, self.size);
        let mut off = 0u64;
        while off < self.size {
            let n = (self.size - off).min(VERIFY_STEP) as usize;
            let chunk = self.data.read(off, n).await?;
            h = blocking(move || {
                h.update(&chunk);
                Ok(h)
            })
            .await?;
            off += n as u64;
        }
        let ok = h.matches(&self.key);
        if ok {
            self.mark_complete().await?;
        }
        Ok(ok)
    }

    async fn mark_complete(&self) -> Result<()> {
        if let Some(mut r) = self.index.blob(&self.key).await? {
            r.complete = true;
            self.index.put_blob(&self.key, &r).await?;
        }
        Ok(())
    }
}

/// The content hash a key names (sha256, or git's blob sha1), fed the content in order.
enum ContentHasher {
    Sha256(sha2::Sha256),
    GitSha1(sha1::Sha1),
}

impl ContentHasher {
    fn new(key: &BlobKey, size: u64) -> Self {
        match key {
            BlobKey::Sha256(_) => Self::Sha256(sha2::Sha256::new()),
            BlobKey::GitSha1(_) => {
                let mut h = sha1::Sha1::new();
                h.update(format!("blob {size}\0").as_bytes());
                Self::GitSha1(h)
            }
        }
    }

    fn update(&mut self, data: &[u8]) {
        match self {
            Self::Sha256(h) => h.update(data),
            Self::GitSha1(h) => h.update(data),
        }
    }

    fn matches(self, key: &BlobKey) -> bool {
        match (self, key) {
            (Self::Sha256(h), BlobKey::Sha256(want)) => h.finalize()[..] == want[..],
            (Self::GitSha1(h), BlobKey::GitSha1(want)) => h.finalize()[..] == want[..],
            _ => false,
        }
    }
}

/// The in-process lock is the blob's slot table.
impl FillLock for Arc<Blob> {
    type Permit = FillGuard;
    type Watch = Arc<BlockFill>;

    fn claim(&self, idx: u32, last: u32, lead: bool) -> Claim<FillGuard, Arc<BlockFill>> {
        let mut st = self.state.lock().expect("blob state lock");
        match &st.slots[idx as usize] {
            Slot::Present(crc) => Claim::Present(*crc),
            Slot::Filling(f) => Claim::Follow(f.clone()),
            Slot::Missing if !lead => Claim::Missing,
            Slot::Missing => {
                let mut stop = idx;
                while stop <= last && matches!(st.slots[stop as usize], Slot::Missing) {
                    stop += 1;
                }
                let fills: Vec<Arc<BlockFill>> = (idx..stop).map(|_| BlockFill::new()).collect();
                for (i, f) in fills.iter().enumerate() {
                    st.slots[idx as usize + i] = Slot::Filling(f.clone());
                }
                Claim::Lead(FillGuard {
                    _in_flight: InFlight::start(),
                    blob: self.clone(),
                    first: idx,
                    fills: fills.into_iter().map(Some).collect(),
                    corrupt: false,
                    lost_at: st.lost,
                })
            }
        }
    }
}

/// The permit of the in-process fill lock: owns the claimed blocks of one fill. Whatever way the fill ends — error, panic, or the task
/// being dropped — every block it did not finish goes back to `Missing` and its followers are
/// told, so nobody waits forever on a dead fill.
pub struct FillGuard {
    /// Counts the fill in flight until the permit is dropped (done, failed or cancelled).
    _in_flight: InFlight,
    blob: Arc<Blob>,
    first: u32,
    /// Unfinished blocks' fills. A finished block's entry is dropped at once, so the fill holds
    /// at most one block in memory however large the file (followers keep their own `Arc`).
    fills: Vec<Option<Arc<BlockFill>>>,
    /// The fill failed because the source found its bytes wrong.
    corrupt: bool,
    /// The blob's `lost` counter when the blocks were claimed.
    lost_at: u64,
}

impl Drop for FillGuard {
    fn drop(&mut self) {
        let mut st = self.blob.state.lock().expect("blob state lock");
        for (i, f) in self.fills.iter().enumerate() {
            let idx = self.first + i as u32;
            let Some(f) = f else { continue };
            if let Slot::Filling(cur) = &st.slots[idx as usize]
                && Arc::ptr_eq(cur, f)
            {
                st.slots[idx as usize] = Slot::Missing;
                st.lost += 1;
            }
            if self.corrupt {
                f.corrupt.store(true, std::sync::atomic::Ordering::SeqCst);
            }
            f.finish(FillState::Failed);
        }
        drop(st);
        self.blob.changes.send_replace(());
    }
}

/// Block writes a fill keeps in flight while it reads on from the upstream (each holds one block
/// in memory): the upstream is not paused for every disk write.
const COMMITS_IN_FLIGHT: usize = 4;

async fn run_fill(mut guard: FillGuard, source: Arc<dyn Source>) {
    let blob = guard.blob.clone();
    let end_block = guard.first + guard.fills.len() as u32; // exclusive
    let start = guard.first as u64 * blob.block_size;
    let stop = (end_block as u64 * blob.block_size).min(blob.size) - 1;
    let mut committed: Vec<(u32, u32)> = Vec::new();
    let mut writes: tokio::task::JoinSet<Result<(u32, u32)>> = tokio::task::JoinSet::new();
    let result: Result<()> = async {
        let mut stream = source.fetch(start, stop).await?;
        let mut cur = guard.first;
        let mut filled = 0u64;
        let mut crc = crc32fast::Hasher::new();
        // A fill that claimed every block sees the whole content in order: hash it on the way.
        let nblocks = blob.size.div_ceil(blob.block_size) as u32;
        let mut content =
            (guard.first == 0 && end_block == nblocks).then(|| ContentHasher::new(&blob.key, blob.size));
        while let Some(chunk) = stream.next().await {
            let mut chunk = chunk?;
            while !chunk.is_empty() {
                if cur >= end_block {
                    return Err(StoreError::InvalidData(
                        "upstream sent more bytes than requested".into(),
                    ));
                }
                let fill = guard.fills[(cur - guard.first) as usize]
                    .clone()
                    .expect("the current block's fill is held until it is handed to its write");
                let blen = blob.block_len(cur);
                let take = (blen - filled).min(chunk.len() as u64) as usize;
                let part = chunk.split_to(take);
                // Followers get the bytes first: they send them while this task hashes.
                fill.push(part.clone());
                crc.update(&part);
                if let Some(h) = content.as_mut() {
                    h.update(&part);
                }
                filled += take as u64;
                if filled == blen {
                    if cur + 1 == end_block
                        && let Some(h) = content.take()
                    {
                        // Before the last block's write, whose commit runs the verification.
                        let ok = h.matches(&blob.key);
                        let mut st = blob.state.lock().expect("blob state lock");
                        st.streamed = Some((ok, guard.lost_at));
                    }
                    while writes.len() >= COMMITS_IN_FLIGHT
                        && let Some(r) = writes.join_next().await
                    {
                        committed.push(join_write(r)?);
                    }
                    let data = fill.chunks.lock().expect("fill buffer lock").clone();
                    let sum = std::mem::take(&mut crc).finalize();
                    let (b, idx) = (blob.clone(), cur);
                    writes.spawn(async move {
                        // The block's fill is finished by its write, whatever the outcome:
                        // readers either find it present or claim it again.
                        let r = b.commit_block(idx, data, sum).await;
                        if r.is_err() {
                            let mut st = b.state.lock().expect("blob state lock");
                            if matches!(&st.slots[idx as usize], Slot::Filling(f) if Arc::ptr_eq(f, &fill))
                            {
                                st.slots[idx as usize] = Slot::Missing;
                                st.lost += 1;
                            }
                            drop(st);
                            b.changes.send_replace(());
                        }
                        fill.finish(if r.is_ok() {
                            FillState::Done
                        } else {
                            FillState::Failed
                        });
                        r.map(|()| (idx, sum))
                    });
                    guard.fills[(cur - guard.first) as usize] = None;
                    cur += 1;
                    filled = 0;
                }
            }
        }
        while let Some(r) = writes.join_next().await {
            committed.push(join_write(r)?);
        }
        if cur != end_block {
            return Err(StoreError::InvalidData(format!(
                "upstream body ended early at block {cur} of {}..{end_block}",
                guard.first
            )));
        }
        Ok(())
    }
    .await;
    // Writes still in flight finish on their own (each settles its block).
    while let Some(r) = writes.join_next().await {
        if let Ok(Ok(c)) = r {
            committed.push(c);
        }
    }
    if let Err(e) = result {
        tracing::warn!(blob = %blob.key, error = %e, "fill failed");
        // A body that ends cleanly short of (or runs past) the range asked is no cut
        // connection: the source's size is not the blob's, and a retry would get the same.
        if matches!(&e, StoreError::Source(s) if s.corrupt)
            || matches!(&e, StoreError::InvalidData(_))
        {
            // What this fill already committed came from the same wrong source: forget it.
            guard.corrupt = true;
            for (idx, crc) in committed {
                blob.invalidate(idx, crc).await;
            }
        }
    }
    drop(guard);
}

/// The outcome of one block write task: (block, crc) once committed.
fn join_write(
    r: std::result::Result<Result<(u32, u32)>, tokio::task::JoinError>,
) -> Result<(u32, u32)> {
    r.map_err(|e| StoreError::Io(std::io::Error::other(e.to_string())))?
}

impl BlobPart {
    /// Marks a blob as being evicted unless it is open (read, filled or loaded right now).
    pub(crate) fn begin_evict(&self, key: &BlobKey) -> bool {
        let mut r = self.registry.lock().expect("open-blob registry lock");
        if r.open.get(key).is_some_and(|w| w.strong_count() > 0) || r.loading.contains_key(key) {
            return false;
        }
        r.open.remove(key);
        r.evicting.insert(*key)
    }

    pub(crate) fn end_evict(&self, key: &BlobKey) {
        self.registry
            .lock()
            .expect("open-blob registry lock")
            .evicting
            .remove(key);
    }
}

#[async_trait]
impl Evictable for BlobPart {
    fn attach(&self, _usage: Arc<Usage>) -> bool {
        false // the blob part owns the cache's total
    }

    async fn candidates(&self) -> Result<(Vec<Victim>, u64)> {
        let times: Vec<(BlobKey, u64)> =
            std::mem::take(&mut *self.access.lock().expect("access map lock"))
                .into_iter()
                .collect();
        self.index.touch_many(times).await?;
        let list = self.index.usage().await?;
        let other = self.index.counted_bytes().await?;
        let victims = list
            .into_iter()
            .map(|u| Victim {
                id: u.key.to_string(),
                bytes: u.bytes,
                created: u.created,
                last_access: u.last_access,
            })
            .collect();
        Ok((victims, other))
    }

    async fn evict(&self, v: &Victim) -> Result<Option<u64>> {
        let Ok(key) = v.id.parse::<BlobKey>() else {
            return Ok(Some(0));
        };
        if !self.begin_evict(&key) {
            return Ok(None);
        }
        // Records first, then the bytes: a crash leaves at worst orphan bytes.
        let res = async {
            self.index.remove_blob(&key).await?;
            self.io.remove(&key).await
        }
        .await;
        self.end_evict(&key);
        res?;
        self.usage.sub(v.bytes);
        Ok(Some(v.bytes))
    }
}
