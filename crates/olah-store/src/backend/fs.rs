//! The disk backend: today's layout, byte for byte.
//!
//! ```text
//! blobs/{kind}/{hh}/{hex}                   one sparse file per blob
//! xorbs/{hh}/{hash}/{start}-{end}           a verified range (inclusive offsets in the xorb)
//! xorbs/{hh}/{hash}/{start}-{end}.p         a pending range
//! xorbs/{hh}/{hash}/{start}-{end}.c         its first chunk index and chunk hashes
//! xorbs/tmp/{hash}.{start}-{end}.{random}   a staged write
//! ```

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;

use super::{BlobData, BlockIo, FileId, HeldRange, ObjectIo, ReadAt, StagedWrite, XorbUsage};
use crate::error::Result;
use crate::key::{BlobKey, XorbRange};
use crate::util::blocking;

/// Blobs as sparse files under one root.
pub struct FsBlocks {
    root: PathBuf,
    pool: Arc<Pool>,
}

impl FsBlocks {
    /// Blobs under `root` (created on first write).
    pub fn new(root: PathBuf) -> Self {
        Self {
            root,
            pool: Arc::default(),
        }
    }

    fn path(&self, key: &BlobKey) -> PathBuf {
        self.root.join(key.rel_path())
    }
}

/// `len` bytes of `f` from `off`, read on a blocking thread. Read straight into the new
/// buffer's spare capacity (`pread` into uninitialised memory, through rustix's safe API): on
/// the warm path, zeroing a fresh block buffer before every read cost as much CPU as the read.
async fn read_exact_at(f: &Arc<File>, off: u64, len: usize) -> Result<Bytes> {
    let f = f.clone();
    blocking(move || {
        let mut buf = Vec::with_capacity(len);
        while buf.len() < len {
            let at = off + buf.len() as u64;
            let want = len - buf.len();
            let n = match rustix::io::pread(&*f, rustix::buffer::spare_capacity(&mut buf), at) {
                Ok(n) => n,
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(std::io::Error::from(e).into()),
            };
            if n == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("{want} bytes missing at offset {at}"),
                )
                .into());
            }
        }
        // The allocation may hold more than asked for, and a read may fill it.
        buf.truncate(len);
        Ok(Bytes::from(buf))
    })
    .await
}

/// Size of the reused read buffers: the store's trusted pieces (`blob::PIECE`).
const POOL_BUF: usize = 256 * 1024;

/// Idle buffers kept for reuse (2 MiB): more in flight are allocated and freed as usual.
const POOL_KEEP: usize = 8;

/// Read buffers of [`POOL_BUF`] bytes, zeroed once when made and reused after: a read from the
/// page cache can then go straight into one on the async thread (`RWF_NOWAIT`), without a hop
/// to a blocking thread and without zeroing a fresh buffer.
#[derive(Default)]
struct Pool {
    free: std::sync::Mutex<Vec<Vec<u8>>>,
}

/// A pool buffer holding `len` read bytes; back to the pool when the last `Bytes` of it drops.
struct Pooled {
    buf: Vec<u8>,
    len: usize,
    pool: Arc<Pool>,
}

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.buf);
        let mut free = self.pool.free.lock().expect("read pool lock");
        if free.len() < POOL_KEEP {
            free.push(buf);
        }
    }
}

/// `len` (≤ [`POOL_BUF`]) bytes at `off` if the page cache holds all of them, read on this
/// thread without blocking; `None` when any is not cached (or the kernel cannot tell).
#[cfg(target_os = "linux")]
fn read_cached(f: &File, pool: &Arc<Pool>, off: u64, len: usize) -> Option<Bytes> {
    use rustix::io::{Errno, ReadWriteFlags, preadv2};
    if len == 0 || len > POOL_BUF {
        return None;
    }
    let buf = pool.free.lock().expect("read pool lock").pop();
    let mut p = Pooled {
        buf: buf.unwrap_or_else(|| vec![0u8; POOL_BUF]),
        len: 0,
        pool: pool.clone(),
    };
    while p.len < len {
        let mut io = [std::io::IoSliceMut::new(&mut p.buf[p.len..len])];
        match preadv2(f, &mut io, off + p.len as u64, ReadWriteFlags::NOWAIT) {
            Ok(0) => return None,
            Ok(n) => p.len += n,
            Err(Errno::INTR) => continue,
            Err(_) => return None, // EAGAIN: not cached; EOPNOTSUPP: no NOWAIT here
        }
    }
    Some(Bytes::from_owner(p))
}

#[cfg(not(target_os = "linux"))]
fn read_cached(_: &File, _: &Arc<Pool>, _: u64, _: usize) -> Option<Bytes> {
    None
}

struct FsData(Arc<File>, Arc<Pool>);

#[async_trait]
impl BlobData for FsData {
    async fn read(&self, off: u64, len: usize) -> Result<Bytes> {
        if let Some(b) = read_cached(&self.0, &self.1, off, len) {
            return Ok(b);
        }
        read_exact_at(&self.0, off, len).await
    }

    async fn write(&self, off: u64, data: Vec<Bytes>) -> Result<()> {
        let f = self.0.clone();
        blocking(move || {
            let mut pos = off;
            for d in &data {
                f.write_all_at(d, pos)?;
                pos += d.len() as u64;
            }
            Ok(())
        })
        .await
    }

    async fn reset(&self, size: u64) -> Result<()> {
        let f = self.0.clone();
        blocking(move || {
            f.set_len(0)?;
            f.set_len(size)?;
            Ok(())
        })
        .await
    }

    /// One `fstat` of the open file (no disk access: the inode is in memory while open).
    fn identity(&self) -> Option<FileId> {
        use std::os::unix::fs::MetadataExt;
        let m = self.0.metadata().ok()?;
        let ns = |s: i64, n: i64| s as i128 * 1_000_000_000 + n as i128;
        Some(FileId {
            dev: m.dev(),
            ino: m.ino(),
            len: m.len(),
            mtime_ns: ns(m.mtime(), m.mtime_nsec()),
            ctime_ns: ns(m.ctime(), m.ctime_nsec()),
        })
    }
}

#[async_trait]
impl BlockIo for FsBlocks {
    async fn probe(&self) -> Result<()> {
        // A name no blob can have (blobs live two levels down, under hex directories).
        let root = self.root.clone();
        let path = root.join(format!(".ready-probe-{:016x}", rand::random::<u64>()));
        blocking(move || {
            // A fresh cache has no blob directory yet; its parent (the cache directory) must
            // exist, though: it is never recreated here (a lost mount stays visible).
            if !root.is_dir() {
                std::fs::create_dir(&root)?;
            }
            let res = std::fs::write(&path, b"ok").and_then(|()| File::open(&path)?.sync_all());
            let _ = std::fs::remove_file(&path);
            Ok(res?)
        })
        .await
    }

    async fn open(&self, key: &BlobKey) -> Result<(Arc<dyn BlobData>, u64)> {
        let path = self.path(key);
        let pool = self.pool.clone();
        blocking(move || {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)?;
            let len = file.metadata()?.len();
            Ok((
                Arc::new(FsData(Arc::new(file), pool)) as Arc<dyn BlobData>,
                len,
            ))
        })
        .await
    }

    async fn remove(&self, key: &BlobKey) -> Result<()> {
        let path = self.path(key);
        blocking(move || remove_file(&path)).await
    }

    fn local_path(&self, key: &BlobKey) -> Option<PathBuf> {
        Some(self.path(key))
    }

    fn stored_blocking(&self) -> Result<Vec<(BlobKey, u64)>> {
        let mut out = Vec::new();
        for kind in ["sha256", "gitsha1"] {
            let Ok(shards) = std::fs::read_dir(self.root.join(kind)) else {
                continue;
            };
            for shard in shards.flatten() {
                let shard_name = shard.file_name().to_string_lossy().into_owned();
                let Ok(files) = std::fs::read_dir(shard.path()) else {
                    continue;
                };
                for f in files.flatten() {
                    let name = f.file_name().to_string_lossy().into_owned();
                    let Some(key) = BlobKey::from_etag(&name).filter(|k| {
                        k.kind() == kind && k.hex() == name && k.hex()[..2] == shard_name
                    }) else {
                        continue; // not a data file of ours: left alone
                    };
                    let Ok(meta) = f.metadata() else { continue };
                    out.push((key, meta.len()));
                }
            }
        }
        Ok(out)
    }

    fn read_blocking(&self, key: &BlobKey, off: u64, buf: &mut [u8]) -> Result<()> {
        File::open(self.path(key))?.read_exact_at(buf, off)?;
        Ok(())
    }

    fn remove_blocking(&self, key: &BlobKey) -> Result<()> {
        remove_file(&self.path(key))
    }
}

fn remove_file(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Xorb ranges as files under one root.
pub struct FsObjects {
    root: PathBuf,
}

impl FsObjects {
    /// Ranges under `root` (created if missing, with its `tmp/`).
    pub fn new(root: PathBuf) -> Result<Self> {
        std::fs::create_dir_all(root.join("tmp"))?;
        Ok(Self { root })
    }

    fn dir(&self, xorb: &str) -> PathBuf {
        self.root.join(&xorb[..2]).join(xorb)
    }
}

fn name(h: HeldRange) -> String {
    let base = format!("{}-{}", h.range.start, h.range.end);
    if h.verified { base } else { base + ".p" }
}

fn side_name(r: XorbRange) -> String {
    format!("{}-{}.c", r.start, r.end)
}

fn parse_name(n: &str) -> Option<HeldRange> {
    let (base, verified) = match n.strip_suffix(".p") {
        Some(b) => (b, false),
        None => (n, true),
    };
    let (a, b) = base.split_once('-')?;
    let range = XorbRange {
        start: a.parse().ok()?,
        end: b.parse().ok()?,
    };
    (range.start <= range.end).then_some(HeldRange { range, verified })
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

fn ms(t: std::io::Result<std::time::SystemTime>) -> u64 {
    t.ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The staged side record next to a staged range.
fn side_tmp(tmp: &Path) -> PathBuf {
    let mut s = tmp.as_os_str().to_os_string();
    s.push(".c");
    PathBuf::from(s)
}

fn fsync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

struct FsReader(Arc<File>);

#[async_trait]
impl ReadAt for FsReader {
    async fn read_at(&self, off: u64, len: usize) -> Result<Bytes> {
        read_exact_at(&self.0, off, len).await
    }
}

/// A temp file under `tmp/`; removed on drop unless committed.
struct FsStaged {
    file: Arc<File>,
    tmp: PathBuf,
    dest: PathBuf,
    range: XorbRange,
    written: u64,
    committed: bool,
}

impl Drop for FsStaged {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.tmp);
            let _ = std::fs::remove_file(side_tmp(&self.tmp));
        }
    }
}

#[async_trait]
impl StagedWrite for FsStaged {
    async fn write(&mut self, data: Bytes) -> Result<()> {
        let (f, off, n) = (self.file.clone(), self.written, data.len() as u64);
        blocking(move || Ok(f.write_all_at(&data, off)?)).await?;
        self.written += n;
        Ok(())
    }

    fn reader(&self) -> Arc<dyn ReadAt> {
        Arc::new(FsReader(self.file.clone()))
    }

    async fn commit(mut self: Box<Self>, chunks: Vec<u8>) -> Result<()> {
        let (file, tmp, dest, range) = (
            self.file.clone(),
            self.tmp.clone(),
            self.dest.clone(),
            self.range,
        );
        blocking(move || {
            file.sync_data()?;
            std::fs::create_dir_all(&dest)?;
            // The chunk hashes first, then the range (pending until a file hash check promotes
            // it), then the directory: both names are durable once this returns.
            let side_tmp = side_tmp(&tmp);
            std::fs::write(&side_tmp, &chunks)?;
            File::open(&side_tmp)?.sync_data()?;
            std::fs::rename(&side_tmp, dest.join(side_name(range)))?;
            let held = HeldRange {
                range,
                verified: false,
            };
            std::fs::rename(&tmp, dest.join(name(held)))?;
            fsync_dir(&dest)?;
            Ok(())
        })
        .await?;
        self.committed = true;
        Ok(())
    }
}

/// Random bits for temp names (no cryptographic need: `create_new` refuses a clash).
fn rand_u64() -> u64 {
    rand::random()
}

#[async_trait]
impl ObjectIo for FsObjects {
    fn list(&self, xorb: &str) -> Result<Vec<HeldRange>> {
        let Ok(rd) = std::fs::read_dir(self.dir(xorb)) else {
            return Ok(Vec::new());
        };
        Ok(rd
            .flatten()
            .filter_map(|e| parse_name(e.file_name().to_str()?))
            .collect())
    }

    fn chunks(&self, xorb: &str, range: XorbRange) -> Result<Option<Vec<u8>>> {
        match std::fs::read(self.dir(xorb).join(side_name(range))) {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn promote(&self, xorb: &str, range: XorbRange) -> Result<bool> {
        let dir = self.dir(xorb);
        let (p, v) = (
            HeldRange {
                range,
                verified: false,
            },
            HeldRange {
                range,
                verified: true,
            },
        );
        Ok(std::fs::rename(dir.join(name(p)), dir.join(name(v))).is_ok())
    }

    fn discard(&self, xorb: &str, range: XorbRange) -> Result<bool> {
        let dir = self.dir(xorb);
        let p = HeldRange {
            range,
            verified: false,
        };
        if std::fs::remove_file(dir.join(name(p))).is_err() {
            return Ok(false);
        }
        let _ = std::fs::remove_file(dir.join(side_name(range)));
        Ok(true)
    }

    fn remove_xorb(&self, xorb: &str) -> Result<u64> {
        let dir = self.dir(xorb);
        let freed = dir_size(&dir);
        std::fs::remove_dir_all(&dir)?;
        Ok(freed)
    }

    fn usage(&self) -> Result<Vec<XorbUsage>> {
        let mut out = Vec::new();
        let Ok(top) = std::fs::read_dir(&self.root) else {
            return Ok(out);
        };
        for d in top.flatten().filter(|d| d.file_name() != "tmp") {
            let Ok(xs) = std::fs::read_dir(d.path()) else {
                continue;
            };
            for x in xs.flatten() {
                let hash = x.file_name().to_string_lossy().into_owned();
                if !olah_xet::is_hash_str(&hash) {
                    continue;
                }
                let created = ms(x.metadata().and_then(|m| m.modified()));
                out.push(XorbUsage {
                    bytes: dir_size(&x.path()),
                    hash,
                    created,
                });
            }
        }
        Ok(out)
    }

    fn sweep(&self) -> Result<()> {
        for e in std::fs::read_dir(self.root.join("tmp"))?.flatten() {
            let _ = std::fs::remove_file(e.path());
        }
        let Ok(top) = std::fs::read_dir(&self.root) else {
            return Ok(());
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
        Ok(())
    }

    async fn open(&self, xorb: &str, held: HeldRange) -> Result<Option<Arc<dyn ReadAt>>> {
        let path = self.dir(xorb).join(name(held));
        blocking(move || match File::open(&path) {
            Ok(f) => Ok(Some(Arc::new(FsReader(Arc::new(f))) as Arc<dyn ReadAt>)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        })
        .await
    }

    async fn stage(&self, xorb: &str, range: XorbRange) -> Result<Box<dyn StagedWrite>> {
        let tmp = self.root.join("tmp").join(format!(
            "{xorb}.{}-{}.{:016x}",
            range.start,
            range.end,
            rand_u64()
        ));
        let t = tmp.clone();
        let file = blocking(move || {
            Ok(std::fs::OpenOptions::new()
                .create_new(true)
                .read(true)
                .write(true)
                .open(&t)?)
        })
        .await?;
        Ok(Box::new(FsStaged {
            file: Arc::new(file),
            tmp,
            dest: self.dir(xorb),
            range,
            written: 0,
            committed: false,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn positional_reads_return_exactly_the_bytes_asked_for_or_fail_past_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let f = Arc::new(File::open(&path).unwrap());
        for (off, len) in [(0u64, 1usize), (7, 4096), (1000, 65_536), (34_464, 65_536)] {
            let got = read_exact_at(&f, off, len).await.unwrap();
            assert_eq!(
                &got[..],
                &data[off as usize..off as usize + len],
                "{off}+{len}"
            );
        }
        assert!(
            read_exact_at(&f, 99_990, 11).await.is_err(),
            "one byte past the end"
        );
        assert!(read_exact_at(&f, 200_000, 1).await.is_err());
    }

    #[tokio::test]
    async fn reads_from_the_page_cache_reuse_buffers_and_return_exact_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let data: Vec<u8> = (0..600_000u32).map(|i| (i % 253) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let f = File::open(&path).unwrap();
        let _ = std::fs::read(&path).unwrap(); // in the page cache now
        let pool = Arc::new(Pool::default());
        for (off, len) in [
            (0u64, POOL_BUF),
            (13, 1000),
            (599_000, 1000),
            (300_000, POOL_BUF),
        ] {
            // Whether the kernel answers without blocking is its business; when it does, the
            // bytes are exact.
            if let Some(got) = read_cached(&f, &pool, off, len) {
                assert_eq!(
                    &got[..],
                    &data[off as usize..off as usize + len],
                    "{off}+{len}"
                );
            }
        }
        assert!(read_cached(&f, &pool, 599_999, 2).is_none(), "past the end");
        assert!(
            read_cached(&f, &pool, 0, POOL_BUF + 1).is_none(),
            "bigger than a buffer"
        );
        assert!(pool.free.lock().unwrap().len() <= POOL_KEEP);
        // The data handle: exact bytes whichever way they were read.
        let fd = FsData(Arc::new(File::open(&path).unwrap()), pool.clone());
        for (off, len) in [(0u64, 1usize), (77, POOL_BUF), (1, 2 * POOL_BUF + 5)] {
            let got = fd.read(off, len).await.unwrap();
            assert_eq!(
                &got[..],
                &data[off as usize..off as usize + len],
                "{off}+{len}"
            );
        }
    }
}
