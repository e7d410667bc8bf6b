//! Storage backends: where the bytes of blobs and xorb ranges live.
//!
//! Two traits cut the stores from the filesystem:
//!
//! * [`BlockIo`] + [`BlobData`]: the bytes of blobs, addressed by offset inside one blob (the
//!   block state machine of `blob.rs` sits on top). Disk: one sparse file per blob under
//!   `blobs/{kind}/{hh}/{hex}` ([`fs::FsBlocks`]).
//! * [`ObjectIo`] + [`StagedWrite`]: immutable xorb ranges, written once through a staged write
//!   and then published. Disk: `xorbs/{hh}/{hash}/{start}-{end}[.p]` plus a `.c` chunk-hash side
//!   file, staged under `xorbs/tmp/` ([`fs::FsObjects`]).
//!
//! [`mem`] holds in-memory versions of both, for tests.
//!
//! # Drop and cancel semantics
//!
//! * A [`StagedWrite`] dropped without [`StagedWrite::commit`] has **failed**: nothing of it is
//!   published, and its staged bytes are deleted (disk: the temp file is removed by its drop).
//!   Readers that hold its [`StagedWrite::reader`] keep reading what was written (disk: an
//!   unlinked file stays readable) but must treat it as unverified. A future of `commit` that is
//!   cancelled mid-way leaves either nothing published or the whole range published as pending,
//!   never a partial range (disk: publication is one `rename`).
//! * [`BlobData::write`] that is cancelled may leave some of its bytes written: harmless, since
//!   a block is recorded in the index only after its write returned, and every read re-checks
//!   the block's CRC.
//! * Handles ([`BlobData`], [`ReadAt`]) stay readable after the object was removed (disk: open
//!   files of unlinked paths); removal takes effect for later opens.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;

use crate::error::Result;
use crate::key::{BlobKey, XorbRange};

pub mod fs;
pub mod mem;

/// The bytes of blobs.
#[async_trait]
pub trait BlockIo: Send + Sync + 'static {
    /// Opens the stored bytes of a blob, creating an empty entry when there is none. Returns the
    /// handle and the length stored before the call (0 for a new one).
    async fn open(&self, key: &BlobKey) -> Result<(Arc<dyn BlobData>, u64)>;

    /// Deletes the stored bytes of a blob (absent is not an error). Open handles stay usable.
    async fn remove(&self, key: &BlobKey) -> Result<()>;

    /// Whether the backend takes a write right now (readiness checks): writes and removes a
    /// small probe object. The default (memory) always can.
    async fn probe(&self) -> Result<()> {
        Ok(())
    }

    /// Where the blob's bytes live on the local disk, if they do (tests, admin views).
    fn local_path(&self, _key: &BlobKey) -> Option<PathBuf> {
        None
    }

    /// Start-up recovery only (blocking): every stored blob with its stored length. Entries
    /// that are not blobs of this store are skipped, never deleted.
    fn stored_blocking(&self) -> Result<Vec<(BlobKey, u64)>>;

    /// Start-up recovery only (blocking): fills `buf` from `off` of a stored blob.
    fn read_blocking(&self, key: &BlobKey, off: u64, buf: &mut [u8]) -> Result<()>;

    /// Start-up recovery only (blocking): [`BlockIo::remove`].
    fn remove_blocking(&self, key: &BlobKey) -> Result<()>;
}

/// An open blob's bytes.
#[async_trait]
pub trait BlobData: Send + Sync + 'static {
    /// Reads exactly `len` bytes at `off`.
    async fn read(&self, off: u64, len: usize) -> Result<Bytes>;

    /// Writes `data` contiguously from `off`. On return the bytes are visible to every reader of
    /// the blob. Crash durability is the backend's business: the index records a block only
    /// after its write returned, and reads re-check CRCs.
    async fn write(&self, off: u64, data: Vec<Bytes>) -> Result<()>;

    /// Discards every byte: the blob becomes `size` bytes never written (disk: sparse zeros).
    async fn reset(&self, size: u64) -> Result<()>;

    /// The identity of the stored bytes as they are now, if the backend can tell a change of
    /// them without reading them (disk: the open file's inode and times, one `fstat`). A
    /// backend that cannot returns `None` (the default): every read re-checks its block's CRC.
    fn identity(&self) -> Option<FileId> {
        None
    }
}

/// What a file's metadata says of its version: any write through the filesystem moves its
/// ctime (which no one can set back), a replaced file has another inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileId {
    /// Device.
    pub dev: u64,
    /// Inode.
    pub ino: u64,
    /// Length in bytes.
    pub len: u64,
    /// Last modification (ns since the epoch).
    pub mtime_ns: i128,
    /// Last status change (ns since the epoch).
    pub ctime_ns: i128,
}

impl FileId {
    /// Whether neither time is later than `quiet` before `at`.
    pub fn quiet_since(&self, at: std::time::SystemTime, quiet: std::time::Duration) -> bool {
        let Ok(at) = at.duration_since(std::time::UNIX_EPOCH) else {
            return false;
        };
        let limit = at.as_nanos() as i128 - quiet.as_nanos() as i128;
        self.mtime_ns.max(self.ctime_ns) <= limit
    }
}

/// A stored range of a xorb: verified, or pending (structurally checked, not yet proven by a
/// file hash).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeldRange {
    /// The byte range.
    pub range: XorbRange,
    /// Promoted (`true`) or pending.
    pub verified: bool,
}

/// What eviction needs to know of one xorb.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XorbUsage {
    /// The xorb hash (hex).
    pub hash: String,
    /// Bytes of all its stored ranges.
    pub bytes: u64,
    /// When it was first stored (ms).
    pub created: u64,
}

/// Immutable xorb ranges.
///
/// The index methods (`list`, `chunks`, `promote`, `discard`, `remove_xorb`, `usage`, `sweep`)
/// are synchronous and may block briefly (disk: one directory read or rename): the store calls
/// them from blocking threads, except the cheap presence lookups noted on
/// `XorbStore::is_cached`. Byte transfer is async.
#[async_trait]
pub trait ObjectIo: Send + Sync + 'static {
    /// The ranges stored of a xorb (verified and pending). `xorb` is a validated hash.
    fn list(&self, xorb: &str) -> Result<Vec<HeldRange>>;

    /// The chunk-hash side record of a stored range, as written by [`StagedWrite::commit`].
    fn chunks(&self, xorb: &str, range: XorbRange) -> Result<Option<Vec<u8>>>;

    /// Pending → verified. False when the range is not pending (verified already, or gone).
    fn promote(&self, xorb: &str, range: XorbRange) -> Result<bool>;

    /// Deletes a pending range and its side record. False when it is not pending.
    fn discard(&self, xorb: &str, range: XorbRange) -> Result<bool>;

    /// Deletes every range of a xorb; returns the bytes freed.
    fn remove_xorb(&self, xorb: &str) -> Result<u64>;

    /// Every stored xorb with its bytes (a full scan: start-up and eviction passes only).
    fn usage(&self) -> Result<Vec<XorbUsage>>;

    /// Start-up: deletes staged leftovers of a crash and every pending range (pending ranges
    /// never survive a restart), and side records without their range.
    fn sweep(&self) -> Result<()>;

    /// Opens a stored range for reading; `None` when it is gone.
    async fn open(&self, xorb: &str, held: HeldRange) -> Result<Option<Arc<dyn ReadAt>>>;

    /// Starts a staged write of a range (see the module docs for drop semantics).
    async fn stage(&self, xorb: &str, range: XorbRange) -> Result<Box<dyn StagedWrite>>;
}

/// Positional reads of a stored or staged object.
#[async_trait]
pub trait ReadAt: Send + Sync + 'static {
    /// Reads exactly `len` bytes at `off`.
    async fn read_at(&self, off: u64, len: usize) -> Result<Bytes>;
}

/// A write in progress of one immutable range (pingora's `HandleMiss`): dropped without
/// [`StagedWrite::commit`] it has failed and leaves nothing behind.
#[async_trait]
pub trait StagedWrite: Send + Sync + 'static {
    /// Appends bytes.
    async fn write(&mut self, data: Bytes) -> Result<()>;

    /// Reads of what was written so far (followers stream a fill while it runs).
    fn reader(&self) -> Arc<dyn ReadAt>;

    /// Publishes the range as pending, with its chunk-hash side record written first. Disk:
    /// fsync, side file (temp + rename), range rename, directory fsync.
    async fn commit(self: Box<Self>, chunks: Vec<u8>) -> Result<()>;
}
