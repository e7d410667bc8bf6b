//! The metadata database (redb): blob records, per-block checksums, and a small JSON key/value
//! space for cached Hub metadata (revisions, file metadata, API responses).
//!
//! redb is embedded, pure Rust and crash-safe (copy-on-write B-trees with atomic commits), so a
//! `kill -9` at any point leaves the database at its last commit.

//!
//! A failed commit (a full disk) poisons a redb handle: every later call fails with
//! `PreviousIo`. Every operation goes through [`MetaDb::run`], which notices such I/O errors,
//! drops the handle and reopens the file (redb repairs it on open) on a later call, with an
//! exponential backoff while the reopen keeps failing. Callers see errors meanwhile, never a
//! stuck database.
//!
//! Cached API answers live in their own table under a byte budget (keys and values counted);
//! past it the oldest written records go first (see [`MetaDb::put_api`]).

// redb's own error type is large; it never leaves this module (converted to `StoreError`).
#![allow(clippy::result_large_err)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use redb::{Database, Durability, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::error::{Result, StoreError};
use crate::key::BlobKey;

const KV: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");
const BLOBS: TableDefinition<&str, &[u8]> = TableDefinition::new("blobs");
const BLOCKS: TableDefinition<(&str, u32), u32> = TableDefinition::new("blocks");
/// Cached API answers: key → 8-byte big-endian write time (ms) + JSON.
const API: TableDefinition<&str, &[u8]> = TableDefinition::new("api");
/// Sessions: token hash (32 bytes) → 8-byte big-endian expiry (ms) + 8-byte big-endian write
/// stamp (ns, see `write_stamp`) + opaque value. Newer than the other tables: an older file
/// gains it on open, nothing else changes.
const SESSIONS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("sessions");

/// Default cap on stored sessions (oldest written go first past it).
pub const DEFAULT_SESSION_CAP: u64 = 10_000;

/// Default byte budget of cached API records.
pub const DEFAULT_API_BUDGET: u64 = 64 << 20;

type Opener = Box<dyn Fn() -> std::result::Result<Database, redb::DatabaseError> + Send + Sync>;

/// When the database may be reopened next, and the wait after that.
struct Backoff {
    next: Option<Instant>,
    wait: Duration,
}

const FIRST_RETRY: Duration = Duration::from_millis(200);
const MAX_RETRY: Duration = Duration::from_secs(30);

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
    /// Content size.
    pub size: u64,
    /// Verified complete.
    pub complete: bool,
    /// Creation time (ms).
    pub created: u64,
    /// Last access time (ms).
    pub last_access: u64,
}

/// The metadata database.
pub struct MetaDb {
    open: Opener,
    /// The live handle; `None` after an I/O error until a reopen succeeds.
    db: RwLock<Option<Arc<Database>>>,
    backoff: Mutex<Backoff>,
    /// Bytes of the API table (keys + values); `None` until counted.
    api_bytes: Mutex<Option<u64>>,
    api_budget: AtomicU64,
    degraded: std::sync::atomic::AtomicBool,
    session_cap: AtomicU64,
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

fn create_tables(db: &Database) -> std::result::Result<(), redb::Error> {
    let tx = db.begin_write()?;
    {
        tx.open_table(KV)?;
        tx.open_table(BLOBS)?;
        tx.open_table(BLOCKS)?;
        tx.open_table(API)?;
        tx.open_table(SESSIONS)?;
    }
    tx.commit()?;
    Ok(())
}

fn is_io(e: &redb::Error) -> bool {
    matches!(e, redb::Error::Io(_) | redb::Error::PreviousIo)
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
    /// damaged (the caller then re-registers what it can: `BlobStore::recover_blobs`).
    /// Any other failure (the file is in use, unreadable, from a newer redb) is an error and the
    /// file is left alone.
    pub fn open_or_recover(path: &Path) -> Result<(Self, Option<(PathBuf, String)>)> {
        match Self::try_open(path) {
            Ok(db) => Ok((db, None)),
            Err(OpenError::Damaged(why)) => {
                let secs = crate::util::now_ms() / 1000;
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
                    tx.open_table(API).map_err(corrupt)?;
                    tx.open_table(SESSIONS).map_err(corrupt)?;
                }
                tx.commit().map_err(|e| OpenError::Other(e.into()))?;
                Ok(db)
            })
            .map_err(|e| OpenError::Other(e.into()))?
            .join();
        match opened {
            Ok(r) => r.map(|db| {
                // A reopen after an I/O error needs no damage handling: redb repairs on open.
                let path = path.to_path_buf();
                Self::with_handle(db, Box::new(move || Database::create(&path)))
            }),
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
        self.write(|db| {
            let tx = db.begin_write()?;
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
        })
    }

    #[cfg(test)]
    fn open_with(open: Opener) -> Result<Self> {
        let db = open()?;
        create_tables(&db).map_err(|e| StoreError::Db(e.to_string()))?;
        Ok(Self::with_handle(db, open))
    }

    fn with_handle(db: Database, open: Opener) -> Self {
        Self {
            open,
            db: RwLock::new(Some(Arc::new(db))),
            backoff: Mutex::new(Backoff {
                next: None,
                wait: FIRST_RETRY,
            }),
            api_bytes: Mutex::new(None),
            api_budget: AtomicU64::new(DEFAULT_API_BUDGET),
            degraded: std::sync::atomic::AtomicBool::new(false),
            session_cap: AtomicU64::new(DEFAULT_SESSION_CAP),
        }
    }

    /// The live handle, reopening the database after an I/O error (at most once per backoff
    /// period while it keeps failing).
    fn handle(&self) -> Result<Arc<Database>> {
        if let Some(db) = self.db.read().expect("metadb lock").as_ref() {
            return Ok(db.clone());
        }
        let mut slot = self.db.write().expect("metadb lock");
        if let Some(db) = slot.as_ref() {
            return Ok(db.clone());
        }
        let mut b = self.backoff.lock().expect("metadb backoff lock");
        if b.next.is_some_and(|t| Instant::now() < t) {
            return Err(StoreError::Db(
                "metadata database unavailable after an I/O error (reopen pending)".into(),
            ));
        }
        // Fails while an operation still holds the poisoned handle: tried again later.
        let opened = (self.open)()
            .map_err(redb::Error::from)
            .and_then(|db| create_tables(&db).map(|()| db));
        match opened {
            Ok(db) => {
                tracing::warn!("metadata database reopened after an I/O error");
                b.next = None;
                b.wait = FIRST_RETRY;
                *self.api_bytes.lock().expect("api bytes lock") = None;
                let db = Arc::new(db);
                *slot = Some(db.clone());
                Ok(db)
            }
            Err(e) => {
                b.next = Some(Instant::now() + b.wait);
                b.wait = (b.wait * 2).min(MAX_RETRY);
                Err(StoreError::Db(format!(
                    "metadata database cannot be reopened: {e}"
                )))
            }
        }
    }

    /// Runs one write; an I/O error marks the store degraded until a write succeeds again.
    fn write<T>(
        &self,
        f: impl FnOnce(&Database) -> std::result::Result<T, redb::Error>,
    ) -> Result<T> {
        let r = self.run(f);
        if r.is_ok() {
            self.degraded.store(false, Ordering::SeqCst);
        }
        r
    }

    /// Whether the last metadata write hit an I/O error (a full disk) and none succeeded since:
    /// callers then serve from the upstream without caching.
    pub fn is_degraded(&self) -> bool {
        self.degraded.load(Ordering::SeqCst)
    }

    /// Runs one operation; an I/O error drops the handle so that a later call reopens it.
    fn run<T>(
        &self,
        f: impl FnOnce(&Database) -> std::result::Result<T, redb::Error>,
    ) -> Result<T> {
        let db = self.handle()?;
        match f(&db) {
            Ok(v) => Ok(v),
            Err(e) => {
                if is_io(&e) {
                    self.degraded.store(true, Ordering::SeqCst);
                    let mut slot = self.db.write().expect("metadb lock");
                    if slot.as_ref().is_some_and(|d| Arc::ptr_eq(d, &db)) {
                        *slot = None;
                        tracing::warn!(error = %e, "metadata database I/O error; it will be reopened");
                    }
                }
                Err(StoreError::Db(e.to_string()))
            }
        }
    }

    /// Makes every earlier commit durable (block records are committed `Eventual`): one empty
    /// `Immediate` commit. Called on shutdown.
    pub fn flush(&self) -> Result<()> {
        self.write(|db| {
            let tx = db.begin_write()?;
            tx.commit()?;
            Ok(())
        })
    }

    /// Reads a JSON value. A value that no longer parses (older format) reads as absent.
    pub fn get_json<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        Ok(self
            .get_raw(key)?
            .and_then(|v| serde_json::from_slice(&v).ok()))
    }

    /// Reads a raw value.
    pub fn get_raw(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.run(|db| {
            let tx = db.begin_read()?;
            let t = tx.open_table(KV)?;
            Ok(t.get(key)?.map(|v| v.value().to_vec()))
        })
    }

    /// Writes a JSON value durably.
    pub fn put_json<T: Serialize>(&self, key: &str, value: &T) -> Result<()> {
        let bytes = serde_json::to_vec(value).expect("metadata values always serialize");
        self.put_raw(key, &bytes)
    }

    /// Writes a raw value durably.
    pub fn put_raw(&self, key: &str, bytes: &[u8]) -> Result<()> {
        self.write(|db| {
            let tx = db.begin_write()?;
            {
                let mut t = tx.open_table(KV)?;
                t.insert(key, bytes)?;
            }
            tx.commit()?;
            Ok(())
        })
    }

    /// Deletes a key/value entry.
    pub fn delete(&self, key: &str) -> Result<()> {
        self.write(|db| {
            let tx = db.begin_write()?;
            {
                let mut t = tx.open_table(KV)?;
                t.remove(key)?;
            }
            tx.commit()?;
            Ok(())
        })
    }

    /// Sets the byte budget of cached API records (trimming at once if over) and drops API
    /// records an older version kept in the key/value table.
    pub fn set_api_budget(&self, bytes: u64) -> Result<()> {
        self.api_budget.store(bytes, Ordering::SeqCst);
        self.write(|db| {
            let tx = db.begin_write()?;
            {
                let mut t = tx.open_table(KV)?;
                t.retain_in("api|".."api}", |_, _| false)?;
            }
            tx.commit()?;
            Ok(())
        })?;
        self.trim_api()
    }

    /// Bytes of cached API records (keys and values), counted once then kept up to date.
    pub fn api_bytes(&self) -> Result<u64> {
        let mut total = self.api_bytes.lock().expect("api bytes lock");
        if let Some(n) = *total {
            return Ok(n);
        }
        let n = self.run(|db| {
            let tx = db.begin_read()?;
            let t = tx.open_table(API)?;
            let mut n = 0u64;
            for item in t.iter()? {
                let (k, v) = item?;
                n += (k.value().len() + v.value().len()) as u64;
            }
            Ok(n)
        })?;
        *total = Some(n);
        Ok(n)
    }

    /// Reads a cached API record.
    pub fn get_api<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        Ok(self
            .get_api_raw(key)?
            .and_then(|j| serde_json::from_slice(&j).ok()))
    }

    /// Reads a cached API record's JSON bytes.
    pub fn get_api_raw(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.run(|db| {
            let tx = db.begin_read()?;
            let t = tx.open_table(API)?;
            Ok(t.get(key)?
                .and_then(|v| v.value().get(8..).map(|j| j.to_vec())))
        })
    }

    /// Stores a cached API record unless it alone exceeds an eighth of the budget (then it is
    /// not kept: `Ok(false)`). Past the budget, the oldest written records are removed until the
    /// table is under 90 % of it.
    pub fn put_api<T: Serialize>(&self, key: &str, value: &T) -> Result<bool> {
        let json = serde_json::to_vec(value).expect("API records always serialize");
        self.put_api_raw(key, &json)
    }

    /// [`MetaDb::put_api`] of JSON bytes.
    pub fn put_api_raw(&self, key: &str, json: &[u8]) -> Result<bool> {
        let size = (key.len() + 8 + json.len()) as u64;
        if size > self.api_budget.load(Ordering::SeqCst) / 8 {
            return Ok(false);
        }
        let mut val = Vec::with_capacity(8 + json.len());
        val.extend_from_slice(&crate::util::now_ms().to_be_bytes());
        val.extend_from_slice(json);
        self.api_bytes()?;
        let mut total = self.api_bytes.lock().expect("api bytes lock");
        let old = self.write(|db| {
            let tx = db.begin_write()?;
            let old = {
                let mut t = tx.open_table(API)?;
                t.insert(key, val.as_slice())?
                    .map(|o| (key.len() + o.value().len()) as u64)
            };
            tx.commit()?;
            Ok(old)
        });
        let old = match old {
            Ok(o) => o,
            Err(e) => {
                *total = None;
                return Err(e);
            }
        };
        let n = total.unwrap_or(0).saturating_sub(old.unwrap_or(0)) + size;
        *total = Some(n);
        let over = n > self.api_budget.load(Ordering::SeqCst);
        drop(total);
        if over {
            self.trim_api()?;
        }
        Ok(true)
    }

    /// Removes the oldest written API records until the table is under 90 % of the budget.
    fn trim_api(&self) -> Result<()> {
        let budget = self.api_budget.load(Ordering::SeqCst);
        let total_now = self.api_bytes()?;
        if total_now <= budget {
            return Ok(());
        }
        let mut total = self.api_bytes.lock().expect("api bytes lock");
        let target = budget / 10 * 9;
        let res = self.write(|db| {
            let tx = db.begin_write()?;
            let left = {
                let mut t = tx.open_table(API)?;
                let mut all: Vec<(u64, String, u64)> = Vec::with_capacity(t.len()? as usize);
                let mut n = 0u64;
                for item in t.iter()? {
                    let (k, v) = item?;
                    let v = v.value();
                    let at = v
                        .get(..8)
                        .and_then(|b| <[u8; 8]>::try_from(b).ok())
                        .map(u64::from_be_bytes)
                        .unwrap_or(0);
                    let size = (k.value().len() + v.len()) as u64;
                    n += size;
                    all.push((at, k.value().to_string(), size));
                }
                all.sort();
                for (_, k, size) in all {
                    if n <= target {
                        break;
                    }
                    t.remove(k.as_str())?;
                    n -= size;
                }
                n
            };
            tx.commit()?;
            Ok(left)
        });
        *total = res.as_ref().ok().copied();
        res.map(|_| ())
    }

    /// Deletes every key/value entry whose key starts with `prefix` (ASCII, non-empty), in one
    /// commit. For one-time migrations of a record kind.
    pub fn delete_prefix(&self, prefix: &str) -> Result<()> {
        let last = *prefix.as_bytes().last().expect("a non-empty prefix");
        assert!(prefix.is_ascii() && last < 0x7f, "an ASCII prefix");
        // Every key with the prefix sorts in [prefix, prefix with its last byte + 1).
        let mut end = prefix[..prefix.len() - 1].to_string();
        end.push(char::from(last + 1));
        self.write(|db| {
            let tx = db.begin_write()?;
            {
                let mut t = tx.open_table(KV)?;
                t.retain_in::<&str, _>(prefix..end.as_str(), |_, _| false)?;
            }
            tx.commit()?;
            Ok(())
        })
    }

    /// The secret named `name`: read, or created at random and persisted in the same
    /// transaction (so two callers racing at start-up get the same one, and a restart keeps it:
    /// URLs signed with it stay valid).
    pub fn secret(&self, name: &str) -> Result<[u8; 32]> {
        let key = format!("secret|{name}");
        self.write(|db| {
            let tx = db.begin_write()?;
            let secret = {
                let mut t = tx.open_table(KV)?;
                let old = t
                    .get(key.as_str())?
                    .and_then(|v| <[u8; 32]>::try_from(v.value()).ok());
                match old {
                    Some(s) => s,
                    None => {
                        let s: [u8; 32] = rand::random();
                        t.insert(key.as_str(), s.as_slice())?;
                        s
                    }
                }
            };
            tx.commit()?;
            Ok(secret)
        })
    }

    /// Sets the cap on stored sessions (trimmed on the next write).
    pub fn set_session_cap(&self, cap: u64) {
        self.session_cap.store(cap.max(1), Ordering::SeqCst);
    }

    /// Stores a session under the hash of its token until `expires_ms` (unix ms). Past the cap,
    /// expired sessions are purged, then the oldest written go.
    pub fn put_session(
        &self,
        id: &crate::key::SessionId,
        value: &[u8],
        expires_ms: u64,
    ) -> Result<()> {
        let now = crate::util::now_ms();
        let mut v = Vec::with_capacity(16 + value.len());
        v.extend_from_slice(&expires_ms.to_be_bytes());
        v.extend_from_slice(&write_stamp().to_be_bytes());
        v.extend_from_slice(value);
        let cap = self.session_cap.load(Ordering::SeqCst);
        self.write(|db| {
            let tx = db.begin_write()?;
            {
                let mut t = tx.open_table(SESSIONS)?;
                t.insert(id.as_bytes().as_slice(), v.as_slice())?;
                if t.len()? > cap {
                    t.retain(|_, v| session_expiry(v) > now)?;
                }
                let n = t.len()?;
                if n > cap {
                    let mut all: Vec<(u64, Vec<u8>)> = Vec::with_capacity(n as usize);
                    for item in t.iter()? {
                        let (k, v) = item?;
                        all.push((session_written(v.value()), k.value().to_vec()));
                    }
                    all.sort();
                    for (_, k) in all.into_iter().take((n - cap) as usize) {
                        t.remove(k.as_slice())?;
                    }
                }
            }
            tx.commit()?;
            Ok(())
        })
    }

    /// A session's value, unless absent or expired (an expired one is purged).
    pub fn session(&self, id: &crate::key::SessionId) -> Result<Option<Vec<u8>>> {
        let now = crate::util::now_ms();
        let found = self.run(|db| {
            let tx = db.begin_read()?;
            let t = tx.open_table(SESSIONS)?;
            Ok(t.get(id.as_bytes().as_slice())?.map(|v| v.value().to_vec()))
        })?;
        match found {
            Some(v) if v.len() >= 16 && session_expiry(&v) > now => Ok(Some(v[16..].to_vec())),
            Some(_) => {
                self.delete_session(id)?;
                Ok(None)
            }
            None => Ok(None),
        }
    }

    /// Forgets a session.
    pub fn delete_session(&self, id: &crate::key::SessionId) -> Result<()> {
        self.write(|db| {
            let tx = db.begin_write()?;
            {
                let mut t = tx.open_table(SESSIONS)?;
                t.remove(id.as_bytes().as_slice())?;
            }
            tx.commit()?;
            Ok(())
        })
    }

    /// Sessions stored (expired ones included until purged).
    pub fn session_count(&self) -> Result<u64> {
        self.run(|db| {
            let tx = db.begin_read()?;
            Ok(tx.open_table(SESSIONS)?.len()?)
        })
    }

    /// The record of a blob, if any.
    pub fn blob(&self, key: &BlobKey) -> Result<Option<BlobRecord>> {
        self.run(|db| {
            let tx = db.begin_read()?;
            let t = tx.open_table(BLOBS)?;
            Ok(t.get(key.to_string().as_str())?
                .and_then(|v| serde_json::from_slice(v.value()).ok()))
        })
    }

    /// Creates or replaces the record of a blob.
    pub fn put_blob(&self, key: &BlobKey, rec: &BlobRecord) -> Result<()> {
        let bytes = serde_json::to_vec(rec).expect("blob records always serialize");
        self.write(|db| {
            let tx = db.begin_write()?;
            {
                let mut t = tx.open_table(BLOBS)?;
                t.insert(key.to_string().as_str(), bytes.as_slice())?;
            }
            tx.commit()?;
            Ok(())
        })
    }

    /// The checksums of the blocks recorded as present: `(block index, crc32)`.
    pub fn blocks(&self, key: &BlobKey) -> Result<Vec<(u32, u32)>> {
        let k = key.to_string();
        self.run(|db| {
            let tx = db.begin_read()?;
            let t = tx.open_table(BLOCKS)?;
            let mut out = Vec::new();
            for item in t.range((k.as_str(), 0u32)..=(k.as_str(), u32::MAX))? {
                let (idx, crc) = item?;
                out.push((idx.value().1, crc.value()));
            }
            Ok(out)
        })
    }

    /// Records a block as present with its checksum.
    ///
    /// Called only after the block's bytes were written to the data file. The commit is
    /// `Eventual`: a crash may forget the record (the block is then fetched again) but can never
    /// record a block whose bytes were not written first, and every read re-checks the CRC.
    pub fn put_block(&self, key: &BlobKey, idx: u32, crc: u32) -> Result<()> {
        let k = key.to_string();
        self.write(|db| {
            let mut tx = db.begin_write()?;
            tx.set_durability(Durability::Eventual);
            {
                let mut t = tx.open_table(BLOCKS)?;
                t.insert((k.as_str(), idx), crc)?;
            }
            tx.commit()?;
            Ok(())
        })
    }

    /// Every blob with the bytes its present blocks occupy.
    pub fn usage(&self) -> Result<Vec<BlobUsage>> {
        Ok(self
            .blob_records()?
            .into_iter()
            .map(|(key, rec, bytes)| BlobUsage {
                key,
                bytes,
                size: rec.size,
                complete: rec.complete,
                created: rec.created,
                last_access: rec.last_access.max(rec.created),
            })
            .collect())
    }

    /// Persists last-access times (ms) of blobs that still exist.
    pub fn touch_many(&self, times: &[(BlobKey, u64)]) -> Result<()> {
        self.write(|db| {
            let tx = db.begin_write()?;
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
                        let bytes =
                            serde_json::to_vec(&rec).expect("blob records always serialize");
                        t.insert(k.as_str(), bytes.as_slice())?;
                    }
                }
            }
            tx.commit()?;
            Ok(())
        })
    }

    /// Forgets one block (after a checksum mismatch).
    pub fn remove_block(&self, key: &BlobKey, idx: u32) -> Result<()> {
        let k = key.to_string();
        self.write(|db| {
            let tx = db.begin_write()?;
            {
                let mut t = tx.open_table(BLOCKS)?;
                t.remove((k.as_str(), idx))?;
            }
            tx.commit()?;
            Ok(())
        })
    }

    /// Forgets a blob: its record and all its block checksums, in one transaction.
    pub fn remove_blob(&self, key: &BlobKey) -> Result<()> {
        let k = key.to_string();
        self.write(|db| {
            let tx = db.begin_write()?;
            {
                let mut b = tx.open_table(BLOBS)?;
                b.remove(k.as_str())?;
                let mut t = tx.open_table(BLOCKS)?;
                t.retain_in((k.as_str(), 0u32)..=(k.as_str(), u32::MAX), |_, _| false)?;
            }
            tx.commit()?;
            Ok(())
        })
    }

    /// Every key/value entry whose key starts with `prefix` (ASCII), in key order (the cache
    /// tools: which records name a repository).
    pub fn scan_prefix(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>> {
        self.run(|db| {
            let tx = db.begin_read()?;
            let t = tx.open_table(KV)?;
            let mut out = Vec::new();
            for item in t.range::<&str>(prefix..)? {
                let (k, v) = item?;
                if !k.value().starts_with(prefix) {
                    break;
                }
                out.push((k.value().to_string(), v.value().to_vec()));
            }
            Ok(out)
        })
    }

    /// Deletes key/value entries, in one commit.
    pub fn delete_keys(&self, keys: &[String]) -> Result<()> {
        self.write(|db| {
            let tx = db.begin_write()?;
            {
                let mut t = tx.open_table(KV)?;
                for k in keys {
                    t.remove(k.as_str())?;
                }
            }
            tx.commit()?;
            Ok(())
        })
    }

    /// Keys of cached API records starting with `prefix`, in key order.
    pub fn api_keys(&self, prefix: &str) -> Result<Vec<String>> {
        self.run(|db| {
            let tx = db.begin_read()?;
            let t = tx.open_table(API)?;
            let mut out = Vec::new();
            for item in t.range::<&str>(prefix..)? {
                let (k, _) = item?;
                if !k.value().starts_with(prefix) {
                    break;
                }
                out.push(k.value().to_string());
            }
            Ok(out)
        })
    }

    /// Deletes cached API records, in one commit; returns the bytes they held.
    pub fn delete_api(&self, keys: &[String]) -> Result<u64> {
        let mut total = self.api_bytes.lock().expect("api bytes lock");
        let freed = self.write(|db| {
            let tx = db.begin_write()?;
            let mut freed = 0u64;
            {
                let mut t = tx.open_table(API)?;
                for k in keys {
                    if let Some(v) = t.remove(k.as_str())? {
                        freed += (k.len() + v.value().len()) as u64;
                    }
                }
            }
            tx.commit()?;
            Ok(freed)
        });
        // Counted again on the next use.
        *total = None;
        freed
    }

    /// Every blob record with the bytes its present blocks occupy (the cache tools).
    pub fn blob_records(&self) -> Result<Vec<(BlobKey, BlobRecord, u64)>> {
        self.run(|db| {
            let tx = db.begin_read()?;
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
                out.push((key, rec, bytes));
            }
            Ok(out)
        })
    }
}

/// A strictly increasing write stamp (unix ns, bumped past the last one): orders sessions
/// written within the same millisecond.
fn write_stamp() -> u64 {
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let prev = LAST
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |l| Some(now.max(l + 1)))
        .unwrap_or(0);
    now.max(prev + 1)
}

fn session_expiry(v: &[u8]) -> u64 {
    v.get(..8)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map_or(0, u64::from_be_bytes)
}

fn session_written(v: &[u8]) -> u64 {
    v.get(8..16)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map_or(0, u64::from_be_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;

    /// A file backend whose writes fail like a full disk while `full` is set.
    #[derive(Debug)]
    struct FullDisk {
        inner: redb::backends::FileBackend,
        full: Arc<AtomicBool>,
    }

    impl FullDisk {
        fn check(&self) -> std::io::Result<()> {
            if self.full.load(Ordering::SeqCst) {
                Err(std::io::Error::from(std::io::ErrorKind::StorageFull))
            } else {
                Ok(())
            }
        }
    }

    impl redb::StorageBackend for FullDisk {
        fn len(&self) -> std::io::Result<u64> {
            self.inner.len()
        }
        fn read(&self, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
            self.inner.read(offset, len)
        }
        fn set_len(&self, len: u64) -> std::io::Result<()> {
            self.check()?;
            self.inner.set_len(len)
        }
        fn sync_data(&self, eventual: bool) -> std::io::Result<()> {
            self.check()?;
            self.inner.sync_data(eventual)
        }
        fn write(&self, offset: u64, data: &[u8]) -> std::io::Result<()> {
            self.check()?;
            self.inner.write(offset, data)
        }
    }

    #[test]
    fn a_failed_commit_does_not_take_the_database_down() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta.redb");
        let full = Arc::new(AtomicBool::new(false));
        let (p, f) = (path.clone(), full.clone());
        let db = MetaDb::open_with(Box::new(move || {
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&p)?;
            redb::Builder::new().create_with_backend(FullDisk {
                inner: redb::backends::FileBackend::new(file)?,
                full: f.clone(),
            })
        }))
        .unwrap();
        db.put_json("rev|a", &1u32).unwrap();
        full.store(true, Ordering::SeqCst);
        assert!(db.put_json("rev|b", &2u32).is_err());
        assert!(db.put_json("rev|c", &3u32).is_err());
        assert!(db.is_degraded());
        // Space is freed: the database comes back without a restart (after its backoff).
        full.store(false, Ordering::SeqCst);
        let mut ok = false;
        for _ in 0..100 {
            if db.put_json("rev|d", &4u32).is_ok() {
                ok = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(ok, "the database did not recover");
        assert!(!db.is_degraded());
        assert_eq!(db.get_json::<u32>("rev|a").unwrap(), Some(1));
        assert_eq!(db.get_json::<u32>("rev|d").unwrap(), Some(4));
        assert_eq!(db.get_json::<u32>("rev|b").unwrap(), None);
    }

    #[test]
    fn api_records_stay_within_their_budget_oldest_first() {
        let dir = tempfile::tempdir().unwrap();
        let db = MetaDb::open(&dir.path().join("meta.redb")).unwrap();
        db.put_json("api|legacy", &"x").unwrap();
        db.set_api_budget(64 << 10).unwrap();
        assert_eq!(db.get_json::<String>("api|legacy").unwrap(), None);
        let body = "y".repeat(1000);
        for i in 0..300 {
            assert!(db.put_api(&format!("api|k{i:04}"), &body).unwrap());
            assert!(db.api_bytes().unwrap() <= 64 << 10);
        }
        assert_eq!(db.get_api::<String>("api|k0000").unwrap(), None);
        assert_eq!(db.get_api::<String>("api|k0299").unwrap(), Some(body));
        // Recounting from the table agrees with the running total.
        let counted = db.api_bytes().unwrap();
        *db.api_bytes.lock().unwrap() = None;
        assert_eq!(db.api_bytes().unwrap(), counted);
        // One record larger than an eighth of the budget is not kept.
        assert!(!db.put_api("api|big", &"z".repeat(9 << 10)).unwrap());
        assert_eq!(db.get_api::<String>("api|big").unwrap(), None);
    }

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
