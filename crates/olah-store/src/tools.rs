//! Store-level work of the cache tools (`olah-cli cache verify|rm|gc`): re-hash what the cache
//! holds, drop one blob, find and remove what no record describes. The store knows no Hub: which
//! repository a blob belongs to is the caller's business.
//!
//! Everything here is safe beside a running server: a blob that is open (read, filled or
//! loaded) is skipped, never removed under its readers, and a xorb with a fill in flight is
//! left alone.

use std::collections::HashMap;

use crate::blob::BlobStore;
use crate::error::Result;
use crate::key::{BlobKey, XorbRange};
use crate::meta::BlobUsage;
use crate::util::{blocking, now_ms};
use crate::xorb::{RecordCheck, XorbStore};

/// What re-hashing one complete blob found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobCheck {
    /// The content matched its key.
    Ok,
    /// It did not (or its data was gone): it was dropped and will be fetched again.
    Corrupt,
    /// It was busy (a verification of it running): not checked this time.
    Skipped,
}

/// Why [`BlobStore::gc_blobs`] removes something.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GcReason {
    /// A data file no record describes.
    OrphanData,
    /// A record whose data file is gone (or has another length).
    RecordWithoutData,
    /// A partial fill nobody touched for longer than the stale age.
    StalePartial,
}

impl GcReason {
    /// A short label for reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OrphanData => "orphan data",
            Self::RecordWithoutData => "record without data",
            Self::StalePartial => "stale partial fill",
        }
    }
}

impl BlobStore {
    /// Persists the in-memory last-access times (so a listing shows recent reads).
    pub async fn flush_access(&self) -> Result<()> {
        let times: Vec<(BlobKey, u64)> =
            std::mem::take(&mut *self.part.access.lock().expect("access map lock"))
                .into_iter()
                .collect();
        if times.is_empty() {
            return Ok(());
        }
        self.part.index.touch_many(times).await
    }

    /// Every blob record, with its bytes on disk (one scan of the index).
    pub async fn blob_infos(&self) -> Result<Vec<BlobUsage>> {
        self.part.index.usage().await
    }

    /// Hashes one complete blob against its key again. A blob whose content does not match, or
    /// whose data is gone, is dropped (records and data, unless a reader holds it open: then
    /// its blocks are forgotten and fetched again on the next read).
    pub async fn check_blob(&self, key: BlobKey, size: u64) -> Result<BlobCheck> {
        let blob = self.open_untouched(key, size).await?;
        let verdict = blob.recheck().await;
        let was_complete = blob.status().complete;
        drop(blob);
        let ok = match verdict {
            Some(ok) => ok,
            // Loaded incomplete although its record said complete: its data was lost.
            None if !was_complete => false,
            None => return Ok(BlobCheck::Skipped),
        };
        if ok {
            return Ok(BlobCheck::Ok);
        }
        self.drop_blob(&key).await?;
        Ok(BlobCheck::Corrupt)
    }

    /// Removes a blob's records and data. `None` when it is open (read or filled right now):
    /// nothing is removed then.
    pub async fn drop_blob(&self, key: &BlobKey) -> Result<Option<u64>> {
        let part = &self.part;
        if !part.begin_evict(key) {
            return Ok(None);
        }
        let res = async {
            let bytes = match part.index.blob(key).await? {
                Some(rec) => part
                    .index
                    .blocks(key)
                    .await?
                    .iter()
                    .map(|(i, _)| {
                        rec.block_size
                            .min(rec.size.saturating_sub(*i as u64 * rec.block_size))
                    })
                    .sum(),
                None => 0,
            };
            // Records first, then the bytes: a crash leaves at worst orphan bytes.
            part.index.remove_blob(key).await?;
            part.io.remove(key).await?;
            part.usage.sub(bytes);
            Ok::<u64, crate::error::StoreError>(bytes)
        }
        .await;
        part.end_evict(key);
        part.access.lock().expect("access map lock").remove(key);
        res.map(Some)
    }

    /// Data files no record describes, records whose data is gone, and partial fills untouched
    /// for `stale_ms`: removed (or, `dry_run`, only listed), skipping open blobs. Returns
    /// (key, reason, bytes on disk) of each.
    pub async fn gc_blobs(
        &self,
        stale_ms: u64,
        dry_run: bool,
    ) -> Result<Vec<(BlobKey, GcReason, u64)>> {
        self.flush_access().await?;
        let part = &self.part;
        let io = part.io.clone();
        let stored: HashMap<BlobKey, u64> = blocking(move || io.stored_blocking())
            .await?
            .into_iter()
            .collect();
        let records = self.blob_infos().await?;
        let now = now_ms();
        let mut found = Vec::new();
        for r in &records {
            match stored.get(&r.key) {
                Some(len) if *len == r.size => {
                    if !r.complete && r.last_access.saturating_add(stale_ms) < now {
                        found.push((r.key, GcReason::StalePartial, r.bytes));
                    }
                }
                _ => found.push((r.key, GcReason::RecordWithoutData, r.bytes)),
            }
        }
        let recorded: std::collections::HashSet<BlobKey> = records.iter().map(|r| r.key).collect();
        for (key, len) in &stored {
            if !recorded.contains(key) {
                found.push((*key, GcReason::OrphanData, *len));
            }
        }
        found.sort_by_key(|(k, _, _)| k.to_string());
        if dry_run {
            return Ok(found);
        }
        let mut done = Vec::new();
        for (key, why, bytes) in found {
            if !part.begin_evict(&key) {
                continue; // open: busy, not garbage
            }
            let res = async {
                // Checked again under the guard: a load may have recorded it meanwhile.
                let rec = part.index.blob(&key).await?;
                match why {
                    GcReason::OrphanData if rec.is_some() => return Ok(false),
                    GcReason::StalePartial
                        if rec.as_ref().is_none_or(|r| {
                            r.complete || r.last_access.max(r.created) + stale_ms >= now
                        }) =>
                    {
                        return Ok(false);
                    }
                    _ => {}
                }
                if rec.is_some() {
                    let used: u64 = part
                        .index
                        .usage()
                        .await?
                        .iter()
                        .find(|u| u.key == key)
                        .map_or(0, |u| u.bytes);
                    part.index.remove_blob(&key).await?;
                    part.usage.sub(used);
                }
                part.io.remove(&key).await?;
                Ok::<bool, crate::error::StoreError>(true)
            }
            .await;
            part.end_evict(&key);
            if res? {
                done.push((key, why, bytes));
            }
        }
        Ok(done)
    }
}

/// What re-hashing the verified xorb ranges found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct XorbCheck {
    /// Verified ranges re-hashed.
    pub ranges: u64,
    /// Bytes read.
    pub bytes: u64,
    /// Ranges whose bytes no longer give their recorded chunk hashes (their xorb was dropped):
    /// `(xorb hash, range)`.
    pub corrupt: Vec<(String, XorbRange)>,
}

/// Bytes read per step when re-hashing a xorb range.
const XORB_STEP: u64 = 1 << 20;

impl XorbStore {
    /// Bytes stored per xorb (hash → bytes of its ranges).
    pub async fn sizes(&self) -> Result<HashMap<String, u64>> {
        let io = self.io.clone();
        let list = blocking(move || io.usage()).await?;
        Ok(list.into_iter().map(|u| (u.hash, u.bytes)).collect())
    }

    /// Re-hashes every verified range: its bytes must still parse as chunk records whose hashes
    /// and lengths are the ones recorded when it was verified. A xorb with a failing range is
    /// removed (unless a fill of it is in flight), so it is fetched again.
    pub async fn check_verified(&self) -> Result<XorbCheck> {
        let io = self.io.clone();
        let xorbs = blocking(move || io.usage()).await?;
        let mut report = XorbCheck::default();
        for x in xorbs {
            let hash = x.hash.clone();
            let map = {
                let me_io = self.io.clone();
                let h = hash.clone();
                blocking(move || {
                    let held = me_io.list(&h)?;
                    let mut out = Vec::new();
                    for r in held.into_iter().filter(|r| r.verified) {
                        out.push((r, me_io.chunks(&h, r.range)?));
                    }
                    Ok(out)
                })
                .await?
            };
            let mut bad = Vec::new();
            for (held, side) in map {
                report.ranges += 1;
                let ok = match self.io.open(&hash, held).await? {
                    None => continue, // removed meanwhile
                    Some(reader) => {
                        let mut check = RecordCheck::default();
                        let mut off = 0u64;
                        let len = held.range.len();
                        let mut ok = true;
                        while off < len {
                            let n = (len - off).min(XORB_STEP);
                            match reader.read_at(off, n as usize).await {
                                Ok(b) => {
                                    if check.push(&b).is_err() {
                                        ok = false;
                                        break;
                                    }
                                }
                                Err(_) => {
                                    ok = false;
                                    break;
                                }
                            }
                            off += n;
                        }
                        report.bytes += off;
                        ok && match (check.finish(None), side) {
                            (Ok(hashes), Some(side)) => side_matches(&side, &hashes),
                            _ => false,
                        }
                    }
                };
                if !ok {
                    bad.push(held.range);
                }
            }
            if !bad.is_empty() {
                let me_hash = hash.clone();
                let removed = {
                    // `remove` is blocking (one directory removal).
                    let freed = self.remove(&me_hash);
                    freed.is_some()
                };
                if !removed {
                    tracing::warn!(xorb = %hash, "corrupt xorb range kept: a fill of it is running");
                }
                for r in bad {
                    report.corrupt.push((hash.clone(), r));
                }
            }
        }
        Ok(report)
    }
}

/// Whether a range's side record (first chunk index, then 32-byte hash + 8-byte length per
/// chunk) lists exactly these chunks.
fn side_matches(side: &[u8], hashes: &[(olah_xet::XetHash, u64)]) -> bool {
    let Some((_, rest)) = side.split_first_chunk::<4>() else {
        return false;
    };
    rest.len() == hashes.len() * 40
        && rest.chunks_exact(40).zip(hashes).all(|(c, (h, len))| {
            c[..32] == h.0 && u64::from_le_bytes(c[32..40].try_into().expect("8 bytes")) == *len
        })
}
