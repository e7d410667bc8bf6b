//! The xorb range store: byte ranges of Xet xorbs, content-addressed by xorb hash and range.
//!
//! A xorb (PROTOCOL.md §4.4) is immutable and named by its hash, so any byte range of it is
//! immutable too. The store keeps each fetched range as its own file:
//!
//! ```text
//! {root}/{h[0..2]}/{h}/{start}-{end}        a verified range (inclusive offsets in the xorb)
//! {root}/{h[0..2]}/{h}/{start}-{end}.p      a pending range: structurally checked, its chunk
//!                                           hashes not yet checked against a file hash
//! {root}/{h[0..2]}/{h}/{start}-{end}.c      the range's first chunk index and chunk hashes
//! {root}/tmp/{h}.{start}-{end}.{random}     a fill in progress
//! ```
//!
//! A fill becomes a pending range (atomic rename) only after its bytes parsed as whole chunk
//! records, every record decoded (none / LZ4 / byte-grouped LZ4) to its announced length, and the
//! record count was the one the reconstruction announced; the chunk hashes computed on the way
//! are kept beside it. The server then checks a whole file's chunk hashes against its Xet file
//! hash and [`XorbStore::promote`]s the ranges that passed (or removes the xorbs that did not).
//! Pending ranges are served like an in-flight fill (so concurrent clients share one upstream
//! fetch) but never survive a restart: start-up deletes them. A crash or a cut upstream leaves at
//! worst a temp file or a pending range, both swept at start-up. A request is a hit when published ranges cover it; otherwise one fill per
//! (xorb, range) fetches it upstream (single-flight) while every reader streams it from the temp
//! file as it grows, whether or not the reader that started it is still there.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::sync::watch;

use crate::backend::fs::FsObjects;
use crate::backend::{HeldRange as Held, ObjectIo, ReadAt, StagedWrite};
use crate::budget::{Evictable, Usage, Victim};
use crate::error::{Result, SourceError, StoreError};
pub use crate::key::XorbRange;
use crate::util::{blocking, now_ms};

/// Bytes read per step when streaming a range.
const READ_STEP: u64 = 256 * 1024;

/// What a fill must verify.
#[derive(Debug, Clone, Copy)]
pub struct Expect {
    /// Number of chunk records the range holds (from the reconstruction's chunk range), if known.
    pub chunks: Option<u32>,
    /// Index (in the xorb) of the range's first chunk.
    pub first_chunk: u32,
}

/// One cached range of a xorb with the hashes of its chunks.
#[derive(Debug, Clone)]
pub struct RangeChunks {
    /// The byte range.
    pub range: XorbRange,
    /// Promoted (its chunks matched a file hash), or still pending.
    pub verified: bool,
    /// Index of its first chunk in the xorb.
    pub first_chunk: u32,
    /// (chunk hash, decoded length) of each chunk, in order.
    pub chunks: Vec<(olah_xet::XetHash, u64)>,
}

/// Progress of a fill: bytes written so far, and the outcome once known.
#[derive(Debug, Clone)]
struct Progress {
    written: u64,
    done: Option<std::result::Result<(), String>>,
}

struct Fill {
    range: XorbRange,
    reader: Arc<dyn ReadAt>,
    progress: watch::Receiver<Progress>,
}

type Fills = Arc<Mutex<HashMap<String, Vec<Arc<Fill>>>>>;

/// The xorb range store.
pub struct XorbStore {
    pub(crate) io: Arc<dyn ObjectIo>,
    fills: Fills,
    /// Bytes of published ranges.
    bytes: AtomicU64,
    /// Last read (ms) per xorb.
    access: Mutex<HashMap<String, u64>>,
    /// The cache-wide running total this store reports to (set when attached to a cache).
    usage: OnceLock<Arc<Usage>>,
}

/// A stream of verified xorb bytes.
pub type XorbStream = BoxStream<'static, Result<Bytes>>;

/// Upstream bytes of a range, as the fill consumes them.
pub type UpstreamBytes = BoxStream<'static, std::result::Result<Bytes, SourceError>>;

use olah_xet::is_hash_str as is_hash;

impl XorbStore {
    /// A disk store under `root` (created if missing); leftovers of a crash (staged writes,
    /// pending ranges) are removed. Blocking: call it at start-up.
    pub fn open(root: PathBuf) -> Result<Self> {
        Self::with_backend(Arc::new(FsObjects::new(root)?))
    }

    /// A store over any object backend; sweeps it first (pending ranges never survive a
    /// restart). Blocking: call it at start-up.
    pub fn with_backend(io: Arc<dyn ObjectIo>) -> Result<Self> {
        io.sweep()?;
        let total = io.usage()?.iter().map(|u| u.bytes).sum();
        Ok(Self {
            io,
            fills: Arc::new(Mutex::new(HashMap::new())),
            bytes: AtomicU64::new(total),
            access: Mutex::new(HashMap::new()),
            usage: OnceLock::new(),
        })
    }

    /// Bytes of published ranges.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::SeqCst)
    }

    fn sub_bytes(&self, n: u64) {
        let _ = self
            .bytes
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |b| {
                Some(b.saturating_sub(n))
            });
        if let Some(u) = self.usage.get() {
            u.sub(n);
        }
    }

    /// Deletes every range of a xorb unless a fill of it is in flight. Readers that already
    /// started keep their open handles. Returns the bytes freed. Blocking.
    pub fn remove(&self, xorb: &str) -> Option<u64> {
        if !is_hash(xorb) {
            return None;
        }
        let freed = remove_unless_filling(&self.fills, self.io.as_ref(), xorb)?;
        self.sub_bytes(freed);
        self.access.lock().expect("xorb access").remove(xorb);
        Some(freed)
    }

    /// Cached ranges of a xorb (verified and pending).
    pub fn ranges(&self, xorb: &str) -> Vec<XorbRange> {
        self.held(xorb).into_iter().map(|h| h.range).collect()
    }

    fn held(&self, xorb: &str) -> Vec<Held> {
        if !is_hash(xorb) {
            return Vec::new();
        }
        self.io.list(xorb).unwrap_or_default()
    }

    /// Every cached range of a xorb with its chunk hashes (ranges without a readable hash file
    /// are left out).
    pub fn chunk_map(&self, xorb: &str) -> Vec<RangeChunks> {
        if !is_hash(xorb) {
            return Vec::new();
        }
        self.held(xorb)
            .into_iter()
            .filter_map(|h| {
                let raw = self.io.chunks(xorb, h.range).ok()??;
                let (first, rest) = raw.split_first_chunk::<4>()?;
                if rest.len() % 40 != 0 {
                    return None;
                }
                let chunks = rest
                    .chunks_exact(40)
                    .map(|c| {
                        let mut hsh = [0u8; 32];
                        hsh.copy_from_slice(&c[..32]);
                        let len = u64::from_le_bytes(c[32..40].try_into().expect("8 bytes"));
                        (olah_xet::XetHash(hsh), len)
                    })
                    .collect();
                Some(RangeChunks {
                    range: h.range,
                    verified: h.verified,
                    first_chunk: u32::from_le_bytes(*first),
                    chunks,
                })
            })
            .collect()
    }

    /// Marks a pending range verified (its chunks matched a file hash). False when it is not
    /// pending (already verified, or gone). Blocking.
    pub fn promote(&self, xorb: &str, range: XorbRange) -> bool {
        is_hash(xorb) && self.io.promote(xorb, range).unwrap_or(false)
    }

    /// Deletes a pending range (and its chunk hashes): its chunks failed a file hash check.
    /// False when it is not pending. Blocking.
    pub fn discard(&self, xorb: &str, range: XorbRange) -> bool {
        if !is_hash(xorb) || !self.io.discard(xorb, range).unwrap_or(false) {
            return false;
        }
        self.sub_bytes(range.len());
        true
    }

    /// Whether every byte of `want` is in verified ranges. An index lookup that may block
    /// briefly (disk: one directory read); prefer calling it off the async workers.
    pub fn is_verified(&self, xorb: &str, want: XorbRange) -> bool {
        is_hash(xorb)
            && self
                .cover_held(xorb, want)
                .is_some_and(|parts| parts.iter().all(|(h, _)| h.verified))
    }

    /// The range files that together cover `want`, as (file, part of `want` it serves), in
    /// order; `None` when some byte is not cached. Verified files are preferred.
    fn cover_held(&self, xorb: &str, want: XorbRange) -> Option<Vec<(Held, XorbRange)>> {
        let have = self.held(xorb);
        let mut out = Vec::new();
        let mut pos = want.start;
        loop {
            // Among ranges holding pos, the one reaching furthest (verified first on a tie).
            let best = have
                .iter()
                .filter(|h| h.range.start <= pos && h.range.end >= pos)
                .max_by_key(|h| (h.range.end, h.verified))?;
            let end = best.range.end.min(want.end);
            out.push((*best, XorbRange { start: pos, end }));
            if end == want.end {
                return Some(out);
            }
            pos = end + 1;
        }
    }

    fn cover(&self, xorb: &str, want: XorbRange) -> Option<Vec<(XorbRange, XorbRange)>> {
        self.cover_held(xorb, want)
            .map(|v| v.into_iter().map(|(h, part)| (h.range, part)).collect())
    }

    /// Whether every byte of `want` is cached. Blocking like [`XorbStore::is_verified`]; async
    /// callers use [`XorbStore::coverage`].
    pub fn is_cached(&self, xorb: &str, want: XorbRange) -> bool {
        is_hash(xorb) && self.cover(xorb, want).is_some()
    }

    /// [`XorbStore::is_cached`] and [`XorbStore::is_verified`] in one lookup, off the async
    /// workers: `None` when some byte is not cached, else whether all of it is verified.
    pub async fn coverage(self: &Arc<Self>, xorb: &str, want: XorbRange) -> Result<Option<bool>> {
        if !is_hash(xorb) {
            return Ok(None);
        }
        let (me, x) = (self.clone(), xorb.to_string());
        blocking(move || {
            Ok(me
                .cover_held(&x, want)
                .map(|parts| parts.iter().all(|(h, _)| h.verified)))
        })
        .await
    }

    /// Bytes `want` of a xorb: from published ranges, or from a fill of `fill` (which must
    /// contain `want`) started with `fetch` or already in flight. `fetch` is only called when a
    /// new fill starts. `None` for `fetch` means offline: a miss is [`StoreError::NotCached`].
    pub async fn read<F, Fut>(
        self: &Arc<Self>,
        xorb: &str,
        want: XorbRange,
        fill: XorbRange,
        expect: Expect,
        fetch: Option<F>,
    ) -> Result<XorbStream>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = std::result::Result<UpstreamBytes, SourceError>> + Send + 'static,
    {
        if !is_hash(xorb) || !fill.contains(&want) {
            return Err(StoreError::InvalidData(format!(
                "bad xorb range request {xorb} {want:?} in {fill:?}"
            )));
        }
        self.access
            .lock()
            .expect("xorb access")
            .insert(xorb.to_string(), now_ms());
        let lookup = {
            let (me, x) = (self.clone(), xorb.to_string());
            blocking(move || Ok(me.cover_held(&x, want))).await?
        };
        if let Some(parts) = lookup {
            // Open every range now: eviction may delete them, open handles stay readable. A
            // pending range may have been promoted since the lookup: try its new state too.
            let want_all = parts.len();
            let mut opened = Vec::with_capacity(want_all);
            for (held, part) in parts {
                let promoted = Held {
                    verified: true,
                    ..held
                };
                let r = match self.io.open(xorb, held).await? {
                    Some(r) => Some(r),
                    None if !held.verified => self.io.open(xorb, promoted).await?,
                    None => None,
                };
                match r {
                    Some(r) => opened.push((r, part.start - held.range.start, part.len())),
                    None => break,
                }
            }
            if opened.len() == want_all {
                return Ok(futures::stream::iter(opened)
                    .flat_map(|(f, off, len)| read_part(f, off, len))
                    .boxed());
            }
            // Evicted between the lookup and the open: fill again.
        }
        let existing = {
            let fills = self.fills.lock().expect("xorb fill lock");
            fills
                .get(xorb)
                .and_then(|v| v.iter().find(|f| f.range.contains(&want)).cloned())
        };
        let f = match existing {
            Some(f) => f,
            None => {
                let Some(fetch) = fetch else {
                    return Err(StoreError::NotCached(format!("xorb {xorb} {want:?}")));
                };
                self.start_fill(xorb, fill, expect, fetch).await?
            }
        };
        Ok(stream_fill(f, want))
    }

    async fn start_fill<F, Fut>(
        self: &Arc<Self>,
        xorb: &str,
        range: XorbRange,
        expect: Expect,
        fetch: F,
    ) -> Result<Arc<Fill>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = std::result::Result<UpstreamBytes, SourceError>> + Send + 'static,
    {
        let staged = self.io.stage(xorb, range).await?;
        let (tx, rx) = watch::channel(Progress {
            written: 0,
            done: None,
        });
        let fill = Arc::new(Fill {
            range,
            reader: staged.reader(),
            progress: rx,
        });
        {
            let mut fills = self.fills.lock().expect("xorb fill lock");
            // Another reader may have started the same fill meanwhile: join it.
            if let Some(f) = fills
                .get(xorb)
                .and_then(|v| v.iter().find(|f| f.range.contains(&range)).cloned())
            {
                // Our staged write is dropped unused: nothing of it stays.
                return Ok(f);
            }
            fills
                .entry(xorb.to_string())
                .or_default()
                .push(fill.clone());
        }
        let fetch = fetch();
        let me = self.clone();
        let xorb = xorb.to_string();
        let in_flight = crate::fill::InFlight::start();
        tokio::spawn(async move {
            let _in_flight = in_flight;
            let mut staged = staged;
            let res = match run_fill(&mut staged, fetch, range, expect, &tx).await {
                Ok(hashes) => {
                    let mut side = expect.first_chunk.to_le_bytes().to_vec();
                    for (h, len) in &hashes {
                        side.extend_from_slice(&h.0);
                        side.extend_from_slice(&len.to_le_bytes());
                    }
                    staged
                        .commit(side)
                        .await
                        .map_err(|e| e.to_string())
                        .inspect(|_| {
                            me.bytes.fetch_add(range.len(), Ordering::SeqCst);
                            if let Some(u) = me.usage.get() {
                                u.add(range.len());
                            }
                        })
                }
                // Dropped without commit: the staged bytes are gone.
                Err(e) => Err(e),
            };
            if let Err(e) = &res {
                tracing::warn!(xorb = %xorb, start = range.start, end = range.end, error = %e, "xorb fill failed");
            }
            // Published (or failed) before the fill leaves the map: a later reader either finds
            // the range file or starts a new fill, never a gap.
            {
                let mut fills = me.fills.lock().expect("xorb fill lock");
                if let Some(v) = fills.get_mut(&xorb) {
                    v.retain(|f| f.range != range);
                    if v.is_empty() {
                        fills.remove(&xorb);
                    }
                }
            }
            tx.send_modify(|p| p.done = Some(res));
        });
        Ok(fill)
    }
}

/// Deletes every range of a xorb unless a fill of it is in flight (checked and removed under
/// the fill lock, so no fill starts meanwhile).
fn remove_unless_filling(fills: &Fills, io: &dyn ObjectIo, xorb: &str) -> Option<u64> {
    let fills = fills.lock().expect("xorb fill lock");
    if fills.contains_key(xorb) {
        return None;
    }
    io.remove_xorb(xorb).ok()
}

/// Copies the upstream stream into the temp file, verifying records on the way; the progress
/// counter moves only past written bytes.
async fn run_fill<Fut>(
    staged: &mut Box<dyn StagedWrite>,
    fetch: Fut,
    range: XorbRange,
    expect: Expect,
    tx: &watch::Sender<Progress>,
) -> std::result::Result<Vec<(olah_xet::XetHash, u64)>, String>
where
    Fut: Future<Output = std::result::Result<UpstreamBytes, SourceError>>,
{
    let mut up = fetch.await.map_err(|e| e.message)?;
    let mut check = RecordCheck::default();
    let mut written = 0u64;
    let total = range.len();
    while let Some(b) = up.next().await {
        let b = b.map_err(|e| e.message)?;
        if written + b.len() as u64 > total {
            return Err("upstream sent more bytes than the range".into());
        }
        check.push(&b).map_err(|e| e.to_string())?;
        let n = b.len() as u64;
        staged.write(b).await.map_err(|e| e.to_string())?;
        written += n;
        tx.send_modify(|p| p.written = written);
    }
    if written != total {
        return Err(format!("upstream sent {written} of {total} bytes"));
    }
    check.finish(expect.chunks).map_err(|e| e.to_string())
}

/// Streams `want` out of a fill as its bytes land on disk.
fn stream_fill(fill: Arc<Fill>, want: XorbRange) -> XorbStream {
    let skip = want.start - fill.range.start;
    let state = (fill.progress.clone(), fill, skip, skip + want.len());
    futures::stream::unfold(state, |(mut rx, fill, pos, end)| async move {
        if pos >= end {
            return None;
        }
        loop {
            let p = rx.borrow_and_update().clone();
            // A failed fill fails its readers, even past bytes already written: those were
            // never verified.
            if let Some(Err(e)) = &p.done {
                let err = StoreError::InvalidData(format!("xorb fill failed: {e}"));
                return Some((Err(err), (rx, fill, end, end)));
            }
            if p.written > pos || p.done.is_some() {
                let avail = p.written.min(end);
                if avail <= pos {
                    let err = StoreError::InvalidData("xorb fill ended short".into());
                    return Some((Err(err), (rx, fill, end, end)));
                }
                let n = (avail - pos).min(READ_STEP);
                let r = fill.reader.read_at(pos, n as usize).await;
                return match r {
                    Ok(b) => Some((Ok(b), (rx, fill, pos + n, end))),
                    Err(e) => Some((Err(e), (rx, fill, end, end))),
                };
            }
            if rx.changed().await.is_err() {
                let err = StoreError::InvalidData("xorb fill vanished".into());
                return Some((Err(err), (rx, fill, end, end)));
            }
        }
    })
    .boxed()
}

fn read_part(reader: Arc<dyn ReadAt>, offset: u64, len: u64) -> XorbStream {
    futures::stream::unfold(
        (reader, offset, offset + len),
        |(reader, pos, end)| async move {
            if pos >= end {
                return None;
            }
            let n = (end - pos).min(READ_STEP);
            match reader.read_at(pos, n as usize).await {
                Ok(b) => Some((Ok(b), (reader, pos + n, end))),
                Err(e) => Some((Err(e), (reader, end, end))),
            }
        },
    )
    .boxed()
}

#[async_trait]
impl Evictable for XorbStore {
    fn attach(&self, usage: Arc<Usage>) -> bool {
        if self.usage.set(usage.clone()).is_err() {
            return false;
        }
        usage.add(self.bytes());
        true
    }

    async fn candidates(&self) -> Result<(Vec<Victim>, u64)> {
        let access = self.access.lock().expect("xorb access").clone();
        let io = self.io.clone();
        let list = blocking(move || io.usage()).await?;
        let victims = list
            .into_iter()
            .map(|u| Victim {
                last_access: access.get(&u.hash).copied().unwrap_or(u.created),
                id: u.hash,
                bytes: u.bytes,
                created: u.created,
            })
            .collect();
        Ok((victims, 0))
    }

    async fn evict(&self, v: &Victim) -> Result<Option<u64>> {
        if !is_hash(&v.id) {
            return Ok(Some(0));
        }
        let (fills, io, x) = (self.fills.clone(), self.io.clone(), v.id.clone());
        // A fill of it in flight: wait for it, as for an open blob.
        let Some(freed) =
            blocking(move || Ok(remove_unless_filling(&fills, io.as_ref(), &x))).await?
        else {
            return Ok(None);
        };
        self.sub_bytes(freed);
        self.access.lock().expect("xorb access").remove(&v.id);
        Ok(Some(freed))
    }
}

/// Incremental verification of a chunk-record stream: every record parses and decodes to its
/// announced length.
#[derive(Default)]
pub(crate) struct RecordCheck {
    buf: BytesMut,
    records: u32,
    hashes: Vec<(olah_xet::XetHash, u64)>,
}

impl RecordCheck {
    /// Feeds bytes; decodes every record completed by them.
    pub(crate) fn push(&mut self, b: &[u8]) -> std::result::Result<(), olah_xet::xorb::XorbError> {
        self.buf.extend_from_slice(b);
        loop {
            if self.buf.len() < olah_xet::xorb::HEADER_LEN {
                return Ok(());
            }
            let h = olah_xet::xorb::ChunkHeader::parse(&self.buf)?;
            if self.buf.len() < h.record_len() {
                return Ok(());
            }
            let rec = self.buf.split_to(h.record_len());
            let data = olah_xet::xorb::decode(&h, &rec[olah_xet::xorb::HEADER_LEN..])?;
            self.hashes
                .push((olah_xet::chunk_hash(&data), data.len() as u64));
            self.records += 1;
        }
    }

    /// The stream must end on a record boundary with the expected record count. Returns the
    /// (hash, length) of every chunk.
    pub(crate) fn finish(
        self,
        chunks: Option<u32>,
    ) -> std::result::Result<Vec<(olah_xet::XetHash, u64)>, String> {
        if !self.buf.is_empty() {
            return Err(format!(
                "{} trailing bytes after the last whole chunk record",
                self.buf.len()
            ));
        }
        match chunks {
            Some(n) if n != self.records => Err(format!(
                "{} chunk records, the reconstruction announced {n}",
                self.records
            )),
            _ => Ok(self.hashes),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exp(chunks: Option<u32>) -> Expect {
        Expect {
            chunks,
            first_chunk: 0,
        }
    }

    type NoFetch = fn() -> futures::future::Ready<std::result::Result<UpstreamBytes, SourceError>>;

    const H: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

    fn records(lens: &[usize], seed: u8) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, &n) in lens.iter().enumerate() {
            let data: Vec<u8> = (0..n)
                .map(|j| (j as u8).wrapping_mul(seed) ^ i as u8)
                .collect();
            out.push(0);
            out.extend_from_slice(&(n as u32).to_le_bytes()[..3]);
            out.push(0);
            out.extend_from_slice(&(n as u32).to_le_bytes()[..3]);
            out.extend_from_slice(&data);
        }
        out
    }

    fn upstream(
        data: Vec<u8>,
        calls: Arc<std::sync::atomic::AtomicUsize>,
    ) -> impl FnOnce() -> futures::future::BoxFuture<
        'static,
        std::result::Result<UpstreamBytes, SourceError>,
    > {
        move || {
            calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Box::pin(async move {
                let pieces: Vec<std::result::Result<Bytes, SourceError>> = data
                    .chunks(1000)
                    .map(|c| Ok(Bytes::copy_from_slice(c)))
                    .collect();
                Ok(futures::stream::iter(pieces).boxed())
            })
        }
    }

    async fn collect(s: XorbStream) -> Result<Vec<u8>> {
        let v: Vec<Bytes> = s
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<_>>()?;
        Ok(v.concat())
    }

    #[tokio::test]
    async fn fill_publishes_and_then_serves_sub_ranges_without_upstream() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(XorbStore::open(dir.path().to_path_buf()).unwrap());
        let data = records(&[5000, 3000, 7000], 7);
        let all = XorbRange {
            start: 0,
            end: data.len() as u64 - 1,
        };
        let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let got = store
            .read(
                H,
                all,
                all,
                exp(Some(3)),
                Some(upstream(data.clone(), calls.clone())),
            )
            .await
            .unwrap();
        assert_eq!(collect(got).await.unwrap(), data);
        // Wait for publication.
        for _ in 0..100 {
            if store.is_cached(H, all) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert!(store.is_cached(H, all));
        let sub = XorbRange {
            start: 5008,
            end: 8015,
        };
        let none: Option<NoFetch> = None;
        let got = store.read(H, sub, sub, exp(None), none).await.unwrap();
        assert_eq!(collect(got).await.unwrap(), data[5008..=8015]);
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert!(
            std::fs::read_dir(dir.path().join("tmp"))
                .unwrap()
                .next()
                .is_none()
        );
    }

    #[tokio::test]
    async fn bad_records_are_never_published() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(XorbStore::open(dir.path().to_path_buf()).unwrap());
        let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        // Wrong record count.
        let data = records(&[100, 200], 3);
        let r = XorbRange {
            start: 0,
            end: data.len() as u64 - 1,
        };
        let s = store
            .read(
                H,
                r,
                r,
                exp(Some(3)),
                Some(upstream(data.clone(), calls.clone())),
            )
            .await
            .unwrap();
        assert!(collect(s).await.is_err());
        // Truncated record (range cut inside a record).
        let cut = data.len() - 10;
        let r2 = XorbRange {
            start: 0,
            end: cut as u64 - 1,
        };
        let s = store
            .read(
                H,
                r2,
                r2,
                exp(None),
                Some(upstream(data[..cut].to_vec(), calls.clone())),
            )
            .await
            .unwrap();
        assert!(collect(s).await.is_err());
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(store.ranges(H).is_empty());
        assert!(!store.is_cached(H, r));
    }

    #[tokio::test]
    async fn concurrent_readers_share_one_fill() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(XorbStore::open(dir.path().to_path_buf()).unwrap());
        let data = records(&[60_000, 60_000, 60_000, 10], 5);
        let all = XorbRange {
            start: 0,
            end: data.len() as u64 - 1,
        };
        let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..6 {
            let (store, data, calls) = (store.clone(), data.clone(), calls.clone());
            tasks.push(tokio::spawn(async move {
                let s = store
                    .read(
                        H,
                        all,
                        all,
                        exp(Some(4)),
                        Some(upstream(data.clone(), calls)),
                    )
                    .await
                    .unwrap();
                assert_eq!(collect(s).await.unwrap(), data);
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    /// Fills the whole of `data` as range `r` (chunks from `first`) and waits until it is kept.
    async fn fill_and_wait(
        store: &Arc<XorbStore>,
        data: &[u8],
        r: XorbRange,
        first: u32,
        calls: &Arc<std::sync::atomic::AtomicUsize>,
    ) {
        let n = olah_xet::xorb::decode_records(data).unwrap().len() as u32;
        let expect = Expect {
            chunks: Some(n),
            first_chunk: first,
        };
        let s = store
            .read(
                H,
                r,
                r,
                expect,
                Some(upstream(data.to_vec(), calls.clone())),
            )
            .await
            .unwrap();
        collect(s).await.unwrap();
        for _ in 0..100 {
            if store.is_cached(H, r) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn ranges_stay_pending_until_promoted_and_pending_ones_do_not_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(XorbStore::open(dir.path().to_path_buf()).unwrap());
        let data = records(&[5000, 3000], 9);
        let r = XorbRange {
            start: 0,
            end: data.len() as u64 - 1,
        };
        let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        fill_and_wait(&store, &data, r, 7, &calls).await;
        assert!(store.is_cached(H, r) && !store.is_verified(H, r));
        let map = store.chunk_map(H);
        assert_eq!(map.len(), 1);
        assert_eq!(map[0].first_chunk, 7);
        let want: Vec<_> = olah_xet::xorb::decode_records(&data)
            .unwrap()
            .iter()
            .map(|c| (olah_xet::chunk_hash(c), c.len() as u64))
            .collect();
        assert_eq!(map[0].chunks, want);
        // Unverified ranges are gone after a restart.
        drop(store);
        let store = Arc::new(XorbStore::open(dir.path().to_path_buf()).unwrap());
        assert!(!store.is_cached(H, r));
        // Verified ones stay.
        fill_and_wait(&store, &data, r, 7, &calls).await;
        assert!(store.promote(H, r));
        assert!(store.is_verified(H, r));
        drop(store);
        let store = XorbStore::open(dir.path().to_path_buf()).unwrap();
        assert!(store.is_verified(H, r));
        assert_eq!(store.chunk_map(H)[0].chunks, want);
    }

    #[test]
    fn cover_joins_ranges_and_reports_gaps() {
        let dir = tempfile::tempdir().unwrap();
        let store = XorbStore::open(dir.path().to_path_buf()).unwrap();
        let d = dir.path().join(&H[..2]).join(H);
        std::fs::create_dir_all(&d).unwrap();
        for n in ["0-99", "100-199", "150-299", "400-499"] {
            std::fs::write(d.join(n), b"").unwrap();
        }
        assert!(store.is_cached(
            H,
            XorbRange {
                start: 10,
                end: 250
            }
        ));
        assert!(!store.is_cached(
            H,
            XorbRange {
                start: 10,
                end: 350
            }
        ));
        assert!(store.is_cached(
            H,
            XorbRange {
                start: 400,
                end: 499
            }
        ));
        assert!(!store.is_cached("../etc", XorbRange { start: 0, end: 1 }));
        let parts = store
            .cover(
                H,
                XorbRange {
                    start: 50,
                    end: 250,
                },
            )
            .unwrap();
        assert_eq!(parts.len(), 3);
        assert_eq!(
            parts[2].1,
            XorbRange {
                start: 200,
                end: 250
            }
        );
    }
}
