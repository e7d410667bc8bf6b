//! Which blocks of which blob files were CRC-checked, and on which version of the file.
//!
//! A warm read of a block whose CRC was checked before, on the same file that has not changed
//! since, skips the CRC (it cost an eighth of the CPU of serving warm bytes) and reads the block
//! in small pieces instead of whole (memory per connection). The record is only trusted while:
//!
//! * the file's identity ([`FileId`]: device, inode, length, mtime, ctime) is the one seen
//!   before the check, both before and after each piece is read. Any write to the file through
//!   the filesystem — our own fills, a tool, a person — moves its ctime, which no one can set
//!   back, so the record of every block of that file stops counting;
//! * the file had been quiet for [`QUIET`] when the check began (file times are coarse: a write
//!   in the same clock tick as the check could otherwise leave the times unchanged);
//! * the record is younger than [`TTL`]: then every block is checked again, so a block rotting
//!   on the medium under an unchanged inode is caught within that time at the latest (and by
//!   the content hash of `cache verify`).
//!
//! Backends without a file identity (memory) are never trusted: every read checks the CRC.
//! The record is memory only and bounded ([`MAX_BLOBS`] blobs): a restart checks again.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use crate::backend::FileId;
use crate::key::BlobKey;

/// How long a CRC check is trusted.
pub(crate) const TTL: Duration = Duration::from_secs(300);

/// How long a file must have been unchanged before a check of it is recorded.
pub(crate) const QUIET: Duration = Duration::from_secs(1);

/// Blobs with a record; the oldest record goes first when a new blob needs room.
const MAX_BLOBS: usize = 4096;

struct Entry {
    id: FileId,
    since: Instant,
    /// Block index → the CRC it was checked against.
    blocks: HashMap<u32, u32>,
}

/// The record of checked blocks (one per store).
#[derive(Default)]
pub(crate) struct Trust {
    map: Mutex<HashMap<BlobKey, Entry>>,
}

impl Trust {
    /// Whether block `idx` of `key`, expected to have `crc`, was checked on the file that has
    /// identity `id` now.
    pub(crate) fn holds(&self, key: &BlobKey, id: Option<FileId>, idx: u32, crc: u32) -> bool {
        let Some(id) = id else { return false };
        let map = self.map.lock().expect("trust lock");
        map.get(key).is_some_and(|e| {
            e.id == id && e.since.elapsed() < TTL && e.blocks.get(&idx) == Some(&crc)
        })
    }

    /// Records that block `idx` of `key` matched `crc` in bytes read after `id` was taken at
    /// `checked` (wall clock): only when the file had been quiet for [`QUIET`] by then.
    pub(crate) fn record(
        &self,
        key: &BlobKey,
        id: Option<FileId>,
        checked: SystemTime,
        idx: u32,
        crc: u32,
    ) {
        let Some(id) = id else { return };
        if !id.quiet_since(checked, QUIET) {
            return;
        }
        let mut map = self.map.lock().expect("trust lock");
        if map.len() >= MAX_BLOBS && !map.contains_key(key) {
            let oldest = map.iter().min_by_key(|(_, e)| e.since).map(|(k, _)| *k);
            if let Some(k) = oldest {
                map.remove(&k);
            }
        }
        let e = map.entry(*key).or_insert_with(|| Entry {
            id,
            since: Instant::now(),
            blocks: HashMap::new(),
        });
        if e.id != id || e.since.elapsed() >= TTL {
            *e = Entry {
                id,
                since: Instant::now(),
                blocks: HashMap::new(),
            };
        }
        e.blocks.insert(idx, crc);
    }

    /// Forgets every block of `key` (a CRC mismatch, a reset).
    pub(crate) fn forget(&self, key: &BlobKey) {
        self.map.lock().expect("trust lock").remove(key);
    }
}
