//! The metadata index: blob records, block checksums, usage for eviction, and the key/value
//! records the service keeps (cached Hub metadata, the API table, secrets, sessions).
//!
//! Two async traits, [`BlobIndex`] (what the blob store needs) and [`KvIndex`] (what the service
//! needs), implemented by [`RedbIndex`] (the redb [`MetaDb`], each call on a blocking thread so
//! no tokio worker waits on the database) and by `backend::mem::MemIndex` (tests).
//! The `*_blocking` methods are for callers already on a blocking thread (start-up, recovery).
//!
//! Cancel semantics: a dropped future of a write either committed or did not; there is no
//! half-written record (redb commits atomically; the blocking task runs to its end even when the
//! caller's future is dropped).

use std::sync::Arc;

use async_trait::async_trait;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::Result;
use crate::key::{BlobKey, SessionId};
use crate::meta::{BlobRecord, BlobUsage, MetaDb};
use crate::util::blocking;

/// What the blob store keeps about blobs.
#[async_trait]
pub trait BlobIndex: Send + Sync + 'static {
    /// The record of a blob, if any.
    async fn blob(&self, key: &BlobKey) -> Result<Option<BlobRecord>>;
    /// Creates or replaces the record of a blob.
    async fn put_blob(&self, key: &BlobKey, rec: &BlobRecord) -> Result<()>;
    /// `(block index, crc32)` of the blocks recorded present, in index order.
    async fn blocks(&self, key: &BlobKey) -> Result<Vec<(u32, u32)>>;
    /// Records a block present. Called only after its bytes were written; may be lazy about
    /// durability (a lost record means a refetch, never a wrong byte).
    async fn put_block(&self, key: &BlobKey, idx: u32, crc: u32) -> Result<()>;
    /// Forgets one block.
    async fn remove_block(&self, key: &BlobKey, idx: u32) -> Result<()>;
    /// Forgets a blob's record and all its blocks, atomically.
    async fn remove_blob(&self, key: &BlobKey) -> Result<()>;
    /// Every blob with the bytes its present blocks occupy.
    async fn usage(&self) -> Result<Vec<BlobUsage>>;
    /// Persists last-access times of blobs that still exist (never moves one back).
    async fn touch_many(&self, times: Vec<(BlobKey, u64)>) -> Result<()>;
    /// Bytes the index itself holds that count against the cache limit (cached API answers).
    async fn counted_bytes(&self) -> Result<u64>;
    /// Whether the last write failed for lack of space (callers then stop caching).
    fn is_degraded(&self) -> bool;
    /// [`BlobIndex::usage`], blocking (start-up).
    fn usage_blocking(&self) -> Result<Vec<BlobUsage>>;
    /// Records a wholly verified blob with every block checksum, atomically, blocking
    /// (recovery from the data files).
    fn put_verified_blob_blocking(
        &self,
        key: &BlobKey,
        rec: &BlobRecord,
        crcs: &[u32],
    ) -> Result<()>;
}

/// The key/value records the service keeps.
#[async_trait]
pub trait KvIndex: Send + Sync + 'static {
    /// The raw value of a key.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>>;
    /// Writes a value durably.
    async fn put(&self, key: &str, value: Vec<u8>) -> Result<()>;
    /// Deletes a key.
    async fn delete(&self, key: &str) -> Result<()>;
    /// Deletes every key starting with `prefix` (ASCII, non-empty), atomically.
    async fn delete_prefix(&self, prefix: &str) -> Result<()>;
    /// A cached API answer (JSON bytes).
    async fn get_api(&self, key: &str) -> Result<Option<Vec<u8>>>;
    /// Caches an API answer under the table's byte budget (oldest written go first);
    /// `Ok(false)` when it alone exceeds an eighth of the budget and is not kept.
    async fn put_api(&self, key: &str, json: Vec<u8>) -> Result<bool>;
    /// Sets the API table's byte budget (trimming at once).
    async fn set_api_budget(&self, bytes: u64) -> Result<()>;
    /// Bytes of the API table.
    async fn api_bytes(&self) -> Result<u64>;
    /// The secret named `name`, created at random and persisted on first use (atomically).
    async fn secret(&self, name: &str) -> Result<[u8; 32]>;
    /// Stores a session (opaque bytes) until `expires_ms`; the table is capped (oldest out).
    async fn put_session(&self, id: &SessionId, value: Vec<u8>, expires_ms: u64) -> Result<()>;
    /// A session's value unless absent or expired (expired ones are purged).
    async fn session(&self, id: &SessionId) -> Result<Option<Vec<u8>>>;
    /// Forgets a session.
    async fn delete_session(&self, id: &SessionId) -> Result<()>;
    /// Makes every earlier commit durable (shutdown).
    async fn flush(&self) -> Result<()>;
}

/// Typed JSON over [`KvIndex`]. A value that no longer parses (an older format) reads as absent.
#[async_trait]
pub trait KvIndexExt: KvIndex {
    /// Reads a JSON value.
    async fn get_json<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        Ok(self
            .get(key)
            .await?
            .and_then(|v| serde_json::from_slice(&v).ok()))
    }
    /// Writes a JSON value.
    async fn put_json<T: Serialize + Sync>(&self, key: &str, value: &T) -> Result<()> {
        let v = serde_json::to_vec(value).expect("metadata values always serialize");
        self.put(key, v).await
    }
    /// Reads a cached API answer.
    async fn get_api_json<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        Ok(self
            .get_api(key)
            .await?
            .and_then(|v| serde_json::from_slice(&v).ok()))
    }
    /// Caches an API answer.
    async fn put_api_json<T: Serialize + Sync>(&self, key: &str, value: &T) -> Result<bool> {
        let v = serde_json::to_vec(value).expect("API records always serialize");
        self.put_api(key, v).await
    }
}

impl<I: KvIndex + ?Sized> KvIndexExt for I {}

/// The redb database as an async index: every call runs on a blocking thread.
#[derive(Clone)]
pub struct RedbIndex(pub Arc<MetaDb>);

impl RedbIndex {
    /// The database behind it (for blocking callers).
    pub fn db(&self) -> &Arc<MetaDb> {
        &self.0
    }
}

macro_rules! off_thread {
    ($self:ident, |$db:ident| $body:expr) => {{
        let $db = $self.0.clone();
        blocking(move || $body).await
    }};
}

#[async_trait]
impl BlobIndex for RedbIndex {
    async fn blob(&self, key: &BlobKey) -> Result<Option<BlobRecord>> {
        let k = *key;
        off_thread!(self, |db| db.blob(&k))
    }
    async fn put_blob(&self, key: &BlobKey, rec: &BlobRecord) -> Result<()> {
        let (k, r) = (*key, rec.clone());
        off_thread!(self, |db| db.put_blob(&k, &r))
    }
    async fn blocks(&self, key: &BlobKey) -> Result<Vec<(u32, u32)>> {
        let k = *key;
        off_thread!(self, |db| db.blocks(&k))
    }
    async fn put_block(&self, key: &BlobKey, idx: u32, crc: u32) -> Result<()> {
        let k = *key;
        off_thread!(self, |db| db.put_block(&k, idx, crc))
    }
    async fn remove_block(&self, key: &BlobKey, idx: u32) -> Result<()> {
        let k = *key;
        off_thread!(self, |db| db.remove_block(&k, idx))
    }
    async fn remove_blob(&self, key: &BlobKey) -> Result<()> {
        let k = *key;
        off_thread!(self, |db| db.remove_blob(&k))
    }
    async fn usage(&self) -> Result<Vec<BlobUsage>> {
        off_thread!(self, |db| db.usage())
    }
    async fn touch_many(&self, times: Vec<(BlobKey, u64)>) -> Result<()> {
        off_thread!(self, |db| db.touch_many(&times))
    }
    async fn counted_bytes(&self) -> Result<u64> {
        off_thread!(self, |db| db.api_bytes())
    }
    fn is_degraded(&self) -> bool {
        self.0.is_degraded()
    }
    fn usage_blocking(&self) -> Result<Vec<BlobUsage>> {
        self.0.usage()
    }
    fn put_verified_blob_blocking(
        &self,
        key: &BlobKey,
        rec: &BlobRecord,
        crcs: &[u32],
    ) -> Result<()> {
        self.0.put_verified_blob(key, rec, crcs)
    }
}

#[async_trait]
impl KvIndex for RedbIndex {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let k = key.to_string();
        off_thread!(self, |db| db.get_raw(&k))
    }
    async fn put(&self, key: &str, value: Vec<u8>) -> Result<()> {
        let k = key.to_string();
        off_thread!(self, |db| db.put_raw(&k, &value))
    }
    async fn delete(&self, key: &str) -> Result<()> {
        let k = key.to_string();
        off_thread!(self, |db| db.delete(&k))
    }
    async fn delete_prefix(&self, prefix: &str) -> Result<()> {
        let p = prefix.to_string();
        off_thread!(self, |db| db.delete_prefix(&p))
    }
    async fn get_api(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let k = key.to_string();
        off_thread!(self, |db| db.get_api_raw(&k))
    }
    async fn put_api(&self, key: &str, json: Vec<u8>) -> Result<bool> {
        let k = key.to_string();
        off_thread!(self, |db| db.put_api_raw(&k, &json))
    }
    async fn set_api_budget(&self, bytes: u64) -> Result<()> {
        off_thread!(self, |db| db.set_api_budget(bytes))
    }
    async fn api_bytes(&self) -> Result<u64> {
        off_thread!(self, |db| db.api_bytes())
    }
    async fn secret(&self, name: &str) -> Result<[u8; 32]> {
        let n = name.to_string();
        off_thread!(self, |db| db.secret(&n))
    }
    async fn put_session(&self, id: &SessionId, value: Vec<u8>, expires_ms: u64) -> Result<()> {
        let id = *id;
        off_thread!(self, |db| db.put_session(&id, &value, expires_ms))
    }
    async fn session(&self, id: &SessionId) -> Result<Option<Vec<u8>>> {
        let id = *id;
        off_thread!(self, |db| db.session(&id))
    }
    async fn delete_session(&self, id: &SessionId) -> Result<()> {
        let id = *id;
        off_thread!(self, |db| db.delete_session(&id))
    }
    async fn flush(&self) -> Result<()> {
        off_thread!(self, |db| db.flush())
    }
}
