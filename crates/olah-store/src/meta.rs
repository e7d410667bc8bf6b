//! The metadata database (redb): blob records, per-block checksums, and a small JSON key/value
//! space for cached Hub metadata (revisions, file metadata, API responses).
//!
//! redb is embedded, pure Rust and crash-safe (copy-on-write B-trees with atomic commits), so a
//! `kill -9` at any point leaves the database at its last commit.

use std::path::Path;

use redb::{Database, Durability, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::error::Result;
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

impl MetaDb {
    /// Opens (or creates) the database file.
    pub fn open(path: &Path) -> Result<Self> {
        let db = Database::create(path)?;
        let tx = db.begin_write()?;
        {
            tx.open_table(KV)?;
            tx.open_table(BLOBS)?;
            tx.open_table(BLOCKS)?;
        }
        tx.commit()?;
        Ok(Self { db })
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
