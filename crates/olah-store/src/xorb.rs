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
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::sync::watch;

use crate::blob::blocking;
use crate::error::{Result, SourceError, StoreError};

/// Bytes read from disk per step when streaming a range.
const READ_STEP: u64 = 256 * 1024;

/// One range of one xorb, inclusive offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct XorbRange {
    /// First byte.
    pub start: u64,
    /// Last byte (inclusive).
    pub end: u64,
}

impl XorbRange {
    /// Length in bytes.
    pub fn len(&self) -> u64 {
        self.end - self.start + 1
    }

    /// Never empty (inclusive ranges hold at least one byte).
    pub fn is_empty(&self) -> bool {
        false
    }

    fn contains(&self, o: &XorbRange) -> bool {
        self.start <= o.start && o.end <= self.end
    }
}

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

/// A range file on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Held {
    range: XorbRange,
    verified: bool,
}

impl Held {
    fn name(&self) -> String {
        let base = format!("{}-{}", self.range.start, self.range.end);
        if self.verified { base } else { base + ".p" }
    }
}

fn parse_name(n: &str) -> Option<Held> {
    let (base, verified) = match n.strip_suffix(".p") {
        Some(b) => (b, false),
        None => (n, true),
    };
    let (a, b) = base.split_once('-')?;
    let range = XorbRange {
        start: a.parse().ok()?,
        end: b.parse().ok()?,
    };
    (range.start <= range.end).then_some(Held { range, verified })
}

/// Progress of a fill: bytes written so far, and the outcome once known.
#[derive(Debug, Clone)]
struct Progress {
    written: u64,
    done: Option<std::result::Result<(), String>>,
}

struct Fill {
    range: XorbRange,
    file: Arc<std::fs::File>,
    progress: watch::Receiver<Progress>,
}

/// The xorb range store.
pub struct XorbStore {
    root: PathBuf,
    fills: Mutex<HashMap<String, Vec<Arc<Fill>>>>,
    /// Bytes of published ranges.
    bytes: AtomicU64,
    /// Last read (ms) per xorb.
    access: Mutex<HashMap<String, u64>>,
    /// The cache-wide running total this store reports to (set when attached to a blob store).
    pub(crate) usage: OnceLock<Arc<crate::evict::Usage>>,
}

/// What eviction needs to know of one xorb.
#[derive(Debug, Clone)]
pub(crate) struct XorbUsage {
    pub hash: String,
    pub bytes: u64,
    pub created: u64,
    pub last_access: u64,
}

fn ms(t: std::io::Result<std::time::SystemTime>) -> u64 {
    t.ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A stream of verified xorb bytes.
pub type XorbStream = BoxStream<'static, Result<Bytes>>;

/// Upstream bytes of a range, as the fill consumes them.
pub type UpstreamBytes = BoxStream<'static, std::result::Result<Bytes, SourceError>>;

use olah_xet::is_hash_str as is_hash;

impl XorbStore {
    /// A store under `root` (created if missing); leftover temp files of a crash are removed.
    pub fn open(root: PathBuf) -> Result<Self> {
        std::fs::create_dir_all(root.join("tmp"))?;
        for e in std::fs::read_dir(root.join("tmp"))?.flatten() {
            let _ = std::fs::remove_file(e.path());
        }
        sweep_unverified(&root);
        let me = Self {
            root,
            fills: Mutex::new(HashMap::new()),
            bytes: AtomicU64::new(0),
            access: Mutex::new(HashMap::new()),
            usage: OnceLock::new(),
        };
        let total = me.usage_list().iter().map(|u| u.bytes).sum();
        me.bytes.store(total, Ordering::SeqCst);
        Ok(me)
    }

    /// Bytes of published ranges.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::SeqCst)
    }

    /// Every xorb with its size and times (walks the tree: for eviction passes).
    pub(crate) fn usage_list(&self) -> Vec<XorbUsage> {
        let access = self.access.lock().expect("xorb access").clone();
        let mut out = Vec::new();
        let Ok(top) = std::fs::read_dir(&self.root) else {
            return out;
        };
        for d in top.flatten().filter(|d| d.file_name() != "tmp") {
            let Ok(xs) = std::fs::read_dir(d.path()) else {
                continue;
            };
            for x in xs.flatten() {
                let hash = x.file_name().to_string_lossy().into_owned();
                if !is_hash(&hash) {
                    continue;
                }
                let meta = x.metadata().ok();
                let created = ms(meta
                    .as_ref()
                    .map(|m| m.modified())
                    .unwrap_or(Err(std::io::ErrorKind::NotFound.into())));
                let bytes = dir_size(&x.path());
                let last_access = access.get(&hash).copied().unwrap_or(created);
                out.push(XorbUsage {
                    hash,
                    bytes,
                    created,
                    last_access,
                });
            }
        }
        out
    }

    /// Deletes every range of a xorb unless a fill of it is in flight. Readers that already
    /// started keep their open files. Returns the bytes freed.
    pub fn remove(&self, xorb: &str) -> Option<u64> {
        if !is_hash(xorb) {
            return None;
        }
        let fills = self.fills.lock().expect("xorb fill lock");
        if fills.contains_key(xorb) {
            return None;
        }
        let dir = self.dir(xorb);
        let freed = dir_size(&dir);
        std::fs::remove_dir_all(&dir).ok()?;
        drop(fills);
        let _ = self
            .bytes
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |b| {
                Some(b.saturating_sub(freed))
            });
        self.access.lock().expect("xorb access").remove(xorb);
        if let Some(u) = self.usage.get() {
            u.sub(freed);
        }
        Some(freed)
    }

    fn dir(&self, xorb: &str) -> PathBuf {
        self.root.join(&xorb[..2]).join(xorb)
    }

    /// Cached ranges of a xorb (verified and pending).
    pub fn ranges(&self, xorb: &str) -> Vec<XorbRange> {
        self.held(xorb).into_iter().map(|h| h.range).collect()
    }

    fn held(&self, xorb: &str) -> Vec<Held> {
        if !is_hash(xorb) {
            return Vec::new();
        }
        let Ok(rd) = std::fs::read_dir(self.dir(xorb)) else {
            return Vec::new();
        };
        rd.flatten()
            .filter_map(|e| parse_name(e.file_name().to_str()?))
            .collect()
    }

    /// Every cached range of a xorb with its chunk hashes (ranges without a readable hash file
    /// are left out).
    pub fn chunk_map(&self, xorb: &str) -> Vec<RangeChunks> {
        if !is_hash(xorb) {
            return Vec::new();
        }
        let dir = self.dir(xorb);
        self.held(xorb)
            .into_iter()
            .filter_map(|h| {
                let raw =
                    std::fs::read(dir.join(format!("{}-{}.c", h.range.start, h.range.end))).ok()?;
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
    /// pending (already verified, or gone).
    pub fn promote(&self, xorb: &str, range: XorbRange) -> bool {
        let Some(pending) = self.pending_path(xorb, range) else {
            return false;
        };
        let done = Held {
            range,
            verified: true,
        };
        std::fs::rename(pending, self.dir(xorb).join(done.name())).is_ok()
    }

    /// Where a pending range of a valid xorb hash lives.
    fn pending_path(&self, xorb: &str, range: XorbRange) -> Option<PathBuf> {
        let held = Held {
            range,
            verified: false,
        };
        is_hash(xorb).then(|| self.dir(xorb).join(held.name()))
    }

    /// Deletes a pending range (and its chunk hashes): its chunks failed a file hash check.
    /// False when it is not pending.
    pub fn discard(&self, xorb: &str, range: XorbRange) -> bool {
        let Some(pending) = self.pending_path(xorb, range) else {
            return false;
        };
        if std::fs::remove_file(pending).is_err() {
            return false;
        }
        let side = format!("{}-{}.c", range.start, range.end);
        let _ = std::fs::remove_file(self.dir(xorb).join(side));
        let _ = self
            .bytes
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |b| {
                Some(b.saturating_sub(range.len()))
            });
        if let Some(u) = self.usage.get() {
            u.sub(range.len());
        }
        true
    }

    /// Whether every byte of `want` is in verified ranges.
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

    /// Whether every byte of `want` is cached.
    pub fn is_cached(&self, xorb: &str, want: XorbRange) -> bool {
        is_hash(xorb) && self.cover(xorb, want).is_some()
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
            .insert(xorb.to_string(), crate::blob::now_ms());
        if let Some(parts) = self.cover_held(xorb, want) {
            // Open every file now: eviction may unlink them, open files stay readable. A pending
            // range may have been promoted (renamed) since the lookup: try its new name too.
            let dir = self.dir(xorb);
            let opened = blocking(move || {
                parts
                    .into_iter()
                    .map(|(held, part)| {
                        let promoted = Held {
                            verified: true,
                            ..held
                        };
                        let f = std::fs::File::open(dir.join(held.name()))
                            .or_else(|_| std::fs::File::open(dir.join(promoted.name())))?;
                        Ok((Arc::new(f), part.start - held.range.start, part.len()))
                    })
                    .collect::<Result<Vec<_>>>()
            })
            .await;
            if let Ok(files) = opened {
                return Ok(futures::stream::iter(files)
                    .flat_map(|(f, off, len)| read_file_part(f, off, len))
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
        let tmp = self.root.join("tmp").join(format!(
            "{xorb}.{}-{}.{:016x}",
            range.start,
            range.end,
            rand_u64()
        ));
        let tmp2 = tmp.clone();
        let file = blocking(move || {
            Ok(std::fs::OpenOptions::new()
                .create_new(true)
                .read(true)
                .write(true)
                .open(&tmp2)?)
        })
        .await?;
        let file = Arc::new(file);
        let (tx, rx) = watch::channel(Progress {
            written: 0,
            done: None,
        });
        let fill = Arc::new(Fill {
            range,
            file: file.clone(),
            progress: rx,
        });
        {
            let mut fills = self.fills.lock().expect("xorb fill lock");
            // Another reader may have started the same fill meanwhile: join it.
            if let Some(f) = fills
                .get(xorb)
                .and_then(|v| v.iter().find(|f| f.range.contains(&range)).cloned())
            {
                let _ = std::fs::remove_file(&tmp);
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
        let dest_dir = self.dir(&xorb);
        tokio::spawn(async move {
            let res = run_fill(&file, fetch, range, expect, &tx).await;
            let res = match res {
                Ok(hashes) => {
                    let (f2, tmp2) = (file.clone(), tmp.clone());
                    blocking(move || {
                        f2.sync_data()?;
                        std::fs::create_dir_all(&dest_dir)?;
                        // The chunk hashes first, then the range (pending until a file hash
                        // check promotes it).
                        let mut side = expect.first_chunk.to_le_bytes().to_vec();
                        for (h, len) in &hashes {
                            side.extend_from_slice(&h.0);
                            side.extend_from_slice(&len.to_le_bytes());
                        }
                        let side_tmp = tmp2.with_extension("c");
                        std::fs::write(&side_tmp, &side)?;
                        std::fs::rename(
                            &side_tmp,
                            dest_dir.join(format!("{}-{}.c", range.start, range.end)),
                        )?;
                        let held = Held {
                            range,
                            verified: false,
                        };
                        std::fs::rename(&tmp2, dest_dir.join(held.name()))?;
                        Ok(())
                    })
                    .await
                    .map_err(|e| e.to_string())
                    .inspect(|_| {
                        me.bytes.fetch_add(range.len(), Ordering::SeqCst);
                        if let Some(u) = me.usage.get() {
                            u.add(range.len());
                        }
                    })
                }
                Err(e) => {
                    let _ = std::fs::remove_file(&tmp);
                    Err(e)
                }
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

/// Start-up: pending ranges were never checked against a file hash: delete them, and chunk-hash
/// files left without their range.
fn sweep_unverified(root: &Path) {
    let Ok(top) = std::fs::read_dir(root) else {
        return;
    };
    for d in top.flatten().filter(|d| d.file_name() != "tmp") {
        let Ok(xs) = std::fs::read_dir(d.path()) else {
            continue;
        };
        for x in xs.flatten() {
            let dir = x.path();
            let Ok(files) = std::fs::read_dir(&dir) else {
                continue;
            };
            let names: Vec<String> = files
                .flatten()
                .map(|f| f.file_name().to_string_lossy().into_owned())
                .collect();
            for n in &names {
                let orphan_hashes = n
                    .strip_suffix(".c")
                    .is_some_and(|base| !names.iter().any(|m| m == base));
                if n.ends_with(".p") || orphan_hashes {
                    let _ = std::fs::remove_file(dir.join(n));
                }
            }
            let _ = std::fs::remove_dir(&dir); // only if now empty
        }
    }
}

/// Bytes of the files directly in `dir` (the ranges of one xorb).
fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter_map(|f| f.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}

/// Copies the upstream stream into the temp file, verifying records on the way; the progress
/// counter moves only past written bytes.
async fn run_fill<Fut>(
    file: &Arc<std::fs::File>,
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
        let f = file.clone();
        let off = written;
        let n = b.len() as u64;
        blocking(move || Ok(f.write_all_at(&b, off)?))
            .await
            .map_err(|e| e.to_string())?;
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
                let f = fill.file.clone();
                let r = blocking(move || {
                    let mut buf = vec![0u8; n as usize];
                    f.read_exact_at(&mut buf, pos)?;
                    Ok(Bytes::from(buf))
                })
                .await;
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

fn read_file_part(file: Arc<std::fs::File>, offset: u64, len: u64) -> XorbStream {
    futures::stream::unfold(
        (file, offset, offset + len),
        |(file, pos, end)| async move {
            if pos >= end {
                return None;
            }
            let n = (end - pos).min(READ_STEP);
            let f = file.clone();
            let r = blocking(move || {
                let mut buf = vec![0u8; n as usize];
                f.read_exact_at(&mut buf, pos)?;
                Ok(Bytes::from(buf))
            })
            .await;
            match r {
                Ok(b) => Some((Ok(b), (file, pos + n, end))),
                Err(e) => Some((Err(e), (file, end, end))),
            }
        },
    )
    .boxed()
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
        let d = store.dir(H);
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
