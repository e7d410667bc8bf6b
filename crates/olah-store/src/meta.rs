//! The metadata database (redb): blob records, per-block checksums, and a small JSON key/value
//! space for cached Hub metadata (revisions, file metadata, API responses).
//!
//! redb is embedded, pure Rust and crash-safe (copy-on-write B-trees with atomic commits), so a
//! `kill -9` at any point leaves the database at its last commit.

use std::path::{Path, PathBuf};

use redb::{Database, Durability, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::error::{Result, StoreError};
use crate::key::BlobKey;

const KV: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");
const BLOBS: TableDefinition<&str, &[u8]> = TableDefinition::new("blobs");
const BLOCKS: TableDefinition<(&str, u32), u32> = TableDefinition::new("blocks");

/// What the database knows about one blob.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct BlobRecord {
    /// Total size in bytes.
    pub size: u64,
    /// Block size the blob was cut into when it was created.
    pub block_size: u64,
    /// Every block is present and the whole content matched its content hash.
    pub complete: bool,
    /// Unix milliseconds when the blob was first created (FIFO order).
    pub created: u64,
    /// Unix milliseconds of the last read, persisted lazily (LRU order across restarts).
    #[serde(default)]
    pub last_access: u64,
}

/// Disk usage of one blob, for eviction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobUsage {
    /// The blob.
    pub key: BlobKey,
    /// Bytes of its present blocks.
    pub bytes: u64,
    /// Creation time (ms).
    pub created: u64,
    /// Last access time (ms).
    pub last_access: u64,
}

/// The metadata database.
pub struct MetaDb {
    db: Database,
}

/// Why the database file did not open.
enum OpenError {
    /// The file is damaged (cut short, corrupted): moving it aside is the fix.
    Damaged(String),
    /// Anything else (in use by another process, permissions, a newer format): left alone.
    Other(StoreError),
}

/// Name of the thread that opens the database file.
const OPEN_THREAD: &str = "olah-meta-open";

/// Installs (once) a panic hook that keeps the opener thread's panics (redb's assertions on a
/// damaged file, reported as an error instead) off stderr; every other panic goes to the hook
/// that was there before.
fn quiet_open_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if std::thread::current().name() != Some(OPEN_THREAD) {
                prev(info);
            }
        }));
    });
}

/// Sorts a redb open error into "the file is damaged" and the rest.
fn classify(e: redb::DatabaseError) -> OpenError {
    use redb::{DatabaseError, StorageError};
    match e {
        DatabaseError::Storage(StorageError::Corrupted(why)) => OpenError::Damaged(why),
        DatabaseError::Storage(StorageError::Io(io))
            if matches!(
                io.kind(),
                std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::InvalidData
            ) =>
        {
            OpenError::Damaged(io.to_string())
        }
        DatabaseError::RepairAborted => OpenError::Damaged("its repair failed".into()),
        other => OpenError::Other(other.into()),
    }
}

impl MetaDb {
    /// Opens (or creates) the database file. A damaged file is an error naming it (redb's own
    /// assertions on a truncated file are caught, never a panic).
    pub fn open(path: &Path) -> Result<Self> {
        Self::try_open(path).map_err(|e| match e {
            OpenError::Damaged(why) => StoreError::Db(format!(
                "{} is damaged ({why}); move it aside or delete it: the mirror then starts with a \
                 fresh database",
                path.display()
            )),
            OpenError::Other(e) => StoreError::Db(format!("cannot open {}: {e}", path.display())),
        })
    }

    /// [`MetaDb::open`], but a damaged file is moved aside to `{name}.broken-{unix seconds}` and
    /// a fresh database is created in its place. Returns where the broken file went, if it was
    /// damaged (the caller then re-registers what it can: [`crate::BlobStore::recover_blobs`]).
    /// Any other failure (the file is in use, unreadable, from a newer redb) is an error and the
    /// file is left alone.
    pub fn open_or_recover(path: &Path) -> Result<(Self, Option<(PathBuf, String)>)> {
        match Self::try_open(path) {
            Ok(db) => Ok((db, None)),
            Err(OpenError::Damaged(why)) => {
                let secs = crate::blob::now_ms() / 1000;
                let mut name = path.file_name().unwrap_or_default().to_os_string();
                name.push(format!(".broken-{secs}"));
                let aside = path.with_file_name(name);
                std::fs::rename(path, &aside).map_err(|e| {
                    StoreError::Db(format!(
                        "{} is damaged ({why}) and could not be moved aside: {e}; move it aside \
                         or delete it: the mirror then starts with a fresh database",
                        path.display()
                    ))
                })?;
                let db = Self::open(path)?;
                Ok((db, Some((aside, why))))
            }
            Err(OpenError::Other(e)) => Err(StoreError::Db(format!(
                "cannot open {}: {e}",
                path.display()
            ))),
        }
    }

    fn try_open(path: &Path) -> Result<Self, OpenError> {
        let p = path.to_path_buf();
        // redb asserts (panics) on some damaged files, e.g. one cut short. Open it on a thread of
        // its own whose panic is caught (and kept off stderr by `quiet_open_panics`).
        quiet_open_panics();
        let opened = std::thread::Builder::new()
            .name(OPEN_THREAD.into())
            .spawn(move || -> Result<Database, OpenError> {
                let db = Database::create(&p).map_err(classify)?;
                let tx = db.begin_write().map_err(|e| OpenError::Other(e.into()))?;
                {
                    let corrupt = |e: redb::TableError| match e {
                        redb::TableError::Storage(redb::StorageError::Corrupted(why)) => {
                            OpenError::Damaged(why)
                        }
                        e => OpenError::Other(e.into()),
                    };
                    tx.open_table(KV).map_err(corrupt)?;
                    tx.open_table(BLOBS).map_err(corrupt)?;
                    tx.open_table(BLOCKS).map_err(corrupt)?;
                }
                tx.commit().map_err(|e| OpenError::Other(e.into()))?;
                Ok(db)
            })
            .map_err(|e| OpenError::Other(e.into()))?
            .join();
        match opened {
            Ok(r) => r.map(|db| Self { db }),
            Err(panic) => {
                let why = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "redb refused it".into());
                Err(OpenError::Damaged(why))
            }
        }
    }

    /// Records a blob whose whole content was verified: its record and every block's checksum,
    /// in one transaction (used when the database is rebuilt from the data files).
    pub fn put_verified_blob(&self, key: &BlobKey, rec: &BlobRecord, crcs: &[u32]) -> Result<()> {
        let k = key.to_string();
        let bytes = serde_json::to_vec(rec).expect("blob records always serialize");
        let tx = self.db.begin_write()?;
        {
            let mut b = tx.open_table(BLOBS)?;
            b.insert(k.as_str(), bytes.as_slice())?;
            let mut t = tx.open_table(BLOCKS)?;
            for (i, crc) in crcs.iter().enumerate() {
                t.insert((k.as_str(), i as u32), *crc)?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Makes every earlier commit durable (block records are committed `Eventual`): one empty
    /// `Immediate` commit. Called on shutdown.
    pub fn flush(&self) -> Result<()> {
        let tx = self.db.begin_write()?;
        tx.commit()?;
        Ok(())
    }

    /// Reads a JSON value. A value that no longer parses (older format) reads as absent.
    pub fn get_json<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(KV)?;
        Ok(t.get(key)?
            .and_then(|v| serde_json::from_slice(v.value()).ok()))
    }

    /// Writes a JSON value durably.
    pub fn put_json<T: Serialize>(&self, key: &str, value: &T) -> Result<()> {
        let bytes = serde_json::to_vec(value).expect("metadata values always serialize");
        let tx = self.db.begin_write()?;
        {
            let mut t = tx.open_table(KV)?;
            t.insert(key, bytes.as_slice())?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Deletes a key/value entry.
    pub fn delete(&self, key: &str) -> Result<()> {
        let tx = self.db.begin_write()?;
        {
            let mut t = tx.open_table(KV)?;
            t.remove(key)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Deletes every key/value entry whose key starts with `prefix` (ASCII, non-empty), in one
    /// commit. For one-time migrations of a record kind.
    pub fn delete_prefix(&self, prefix: &str) -> Result<()> {
        let last = *prefix.as_bytes().last().expect("a non-empty prefix");
        assert!(prefix.is_ascii() && last < 0x7f, "an ASCII prefix");
        // Every key with the prefix sorts in [prefix, prefix with its last byte + 1).
        let mut end = prefix[..prefix.len() - 1].to_string();
        end.push(char::from(last + 1));
        let tx = self.db.begin_write()?;
        {
            let mut t = tx.open_table(KV)?;
            t.retain_in::<&str, _>(prefix..end.as_str(), |_, _| false)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// The record of a blob, if any.
    pub fn blob(&self, key: &BlobKey) -> Result<Option<BlobRecord>> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(BLOBS)?;
        Ok(t.get(key.to_string().as_str())?
            .and_then(|v| serde_json::from_slice(v.value()).ok()))
    }

    /// Creates or replaces the record of a blob.
    pub fn put_blob(&self, key: &BlobKey, rec: &BlobRecord) -> Result<()> {
        let bytes = serde_json::to_vec(rec).expect("blob records always serialize");
        let tx = self.db.begin_write()?;
        {
            let mut t = tx.open_table(BLOBS)?;
            t.insert(key.to_string().as_str(), bytes.as_slice())?;
        }
        tx.commit()?;
        Ok(())
    }

    /// The checksums of the blocks recorded as present: `(block index, crc32)`.
    pub fn blocks(&self, key: &BlobKey) -> Result<Vec<(u32, u32)>> {
        let k = key.to_string();
        let tx = self.db.begin_read()?;
        let t = tx.open_table(BLOCKS)?;
        let mut out = Vec::new();
        for item in t.range((k.as_str(), 0u32)..=(k.as_str(), u32::MAX))? {
            let (idx, crc) = item?;
            out.push((idx.value().1, crc.value()));
        }
        Ok(out)
    }

    /// Records a block as present with its checksum.
    ///
    /// Called only after the block's bytes were written to the data file. The commit is
    /// `Eventual`: a crash may forget the record (the block is then fetched again) but can never
    /// record a block whose bytes were not written first, and every read re-checks the CRC.
    pub fn put_block(&self, key: &BlobKey, idx: u32, crc: u32) -> Result<()> {
        let k = key.to_string();
        let mut tx = self.db.begin_write()?;
        tx.set_durability(Durability::Eventual);
        {
            let mut t = tx.open_table(BLOCKS)?;
            t.insert((k.as_str(), idx), crc)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Every blob with the bytes its present blocks occupy.
    pub fn usage(&self) -> Result<Vec<BlobUsage>> {
        let tx = self.db.begin_read()?;
        let blobs = tx.open_table(BLOBS)?;
        let blocks = tx.open_table(BLOCKS)?;
        let mut out = Vec::new();
        for item in blobs.iter()? {
            let (k, v) = item?;
            let Ok(key) = k.value().parse::<BlobKey>() else {
                continue;
            };
            let Ok(rec) = serde_json::from_slice::<BlobRecord>(v.value()) else {
                continue;
            };
            let ks = k.value().to_string();
            let mut bytes = 0u64;
            for b in blocks.range((ks.as_str(), 0u32)..=(ks.as_str(), u32::MAX))? {
                let (idx, _) = b?;
                let start = idx.value().1 as u64 * rec.block_size;
                bytes += rec.block_size.min(rec.size.saturating_sub(start));
            }
            out.push(BlobUsage {
                key,
                bytes,
                created: rec.created,
                last_access: rec.last_access.max(rec.created),
            });
        }
        Ok(out)
    }

    /// Persists last-access times (ms) of blobs that still exist.
    pub fn touch_many(&self, times: &[(BlobKey, u64)]) -> Result<()> {
        let tx = self.db.begin_write()?;
        {
            let mut t = tx.open_table(BLOBS)?;
            for (key, at) in times {
                let k = key.to_string();
                let rec = t
                    .get(k.as_str())?
                    .and_then(|v| serde_json::from_slice::<BlobRecord>(v.value()).ok());
                if let Some(mut rec) = rec
                    && rec.last_access < *at
                {
                    rec.last_access = *at;
                    let bytes = serde_json::to_vec(&rec).expect("blob records always serialize");
                    t.insert(k.as_str(), bytes.as_slice())?;
                }
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Forgets one block (after a checksum mismatch).
    pub fn remove_block(&self, key: &BlobKey, idx: u32) -> Result<()> {
        let k = key.to_string();
        let tx = self.db.begin_write()?;
        {
            let mut t = tx.open_table(BLOCKS)?;
            t.remove((k.as_str(), idx))?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Forgets a blob: its record and all its block checksums, in one transaction.
    pub fn remove_blob(&self, key: &BlobKey) -> Result<()> {
        let k = key.to_string();
        let tx = self.db.begin_write()?;
        {
            let mut b = tx.open_table(BLOBS)?;
            b.remove(k.as_str())?;
            let mut t = tx.open_table(BLOCKS)?;
            t.retain_in((k.as_str(), 0u32)..=(k.as_str(), u32::MAX), |_, _| false)?;
        }
        tx.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_scoped_per_blob_and_removed_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let db = MetaDb::open(&dir.path().join("meta.redb")).unwrap();
        let a = BlobKey::Sha256([1; 32]);
        let b = BlobKey::Sha256([2; 32]);
        let rec = BlobRecord {
            size: 10,
            block_size: 4,
            complete: false,
            created: 1,
            last_access: 0,
        };
        db.put_blob(&a, &rec).unwrap();
        db.put_block(&a, 0, 11).unwrap();
        db.put_block(&a, 2, 33).unwrap();
        db.put_block(&b, 1, 22).unwrap();
        assert_eq!(db.blocks(&a).unwrap(), vec![(0, 11), (2, 33)]);
        db.remove_block(&a, 0).unwrap();
        assert_eq!(db.blocks(&a).unwrap(), vec![(2, 33)]);
        db.remove_blob(&a).unwrap();
        assert!(db.blob(&a).unwrap().is_none());
        assert!(db.blocks(&a).unwrap().is_empty());
        assert_eq!(db.blocks(&b).unwrap(), vec![(1, 22)]);
    }

    #[test]
    fn json_round_trip_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("meta.redb");
        {
            let db = MetaDb::open(&p).unwrap();
            db.put_json("rev|x", &vec!["a".to_string()]).unwrap();
        }
        let db = MetaDb::open(&p).unwrap();
        assert_eq!(
            db.get_json::<Vec<String>>("rev|x").unwrap(),
            Some(vec!["a".to_string()])
        );
        db.delete("rev|x").unwrap();
        assert_eq!(db.get_json::<Vec<String>>("rev|x").unwrap(), None);
    }

    #[test]
    fn delete_prefix_removes_only_that_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let db = MetaDb::open(&dir.path().join("meta.redb")).unwrap();
        for k in [
            "xfile",
            "xfile|a|1",
            "xfile|b|2",
            "xfile}",
            "xfilez",
            "xf",
            "rev|x",
        ] {
            db.put_json(k, &1u8).unwrap();
        }
        db.delete_prefix("xfile|").unwrap();
        for (k, kept) in [
            ("xfile", true),
            ("xfile|a|1", false),
            ("xfile|b|2", false),
            ("xfile}", true),
            ("xfilez", true),
            ("xf", true),
            ("rev|x", true),
        ] {
            assert_eq!(db.get_json::<u8>(k).unwrap().is_some(), kept, "{k}");
        }
    }
}
