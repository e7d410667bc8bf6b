//! In-memory backends, for tests (pingora's `memory.rs` idea): [`MemBlocks`], [`MemObjects`]
//! and [`MemIndex`]. They keep the same contracts as the disk and redb ones (the conformance
//! suite in `tests/conformance.rs` runs against both) but nothing survives the process. Bounded only
//! by what tests put in them: not for production.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;

use super::{BlobData, BlockIo, HeldRange, ObjectIo, ReadAt, StagedWrite, XorbUsage};
use crate::error::{Result, StoreError};
use crate::index::{BlobIndex, KvIndex};
use crate::key::{BlobKey, SessionId, XorbRange};
use crate::meta::{BlobRecord, BlobUsage, DEFAULT_API_BUDGET, DEFAULT_SESSION_CAP};
use crate::util::now_ms;

fn eof() -> StoreError {
    StoreError::Io(std::io::Error::from(std::io::ErrorKind::UnexpectedEof))
}

fn read_vec(v: &[u8], off: u64, len: usize) -> Result<Bytes> {
    let s = usize::try_from(off).map_err(|_| eof())?;
    let e = s.checked_add(len).ok_or_else(eof)?;
    v.get(s..e).map(Bytes::copy_from_slice).ok_or_else(eof)
}

type Buf = Arc<Mutex<Vec<u8>>>;

/// Blobs as byte vectors.
#[derive(Default)]
pub struct MemBlocks {
    blobs: Mutex<HashMap<BlobKey, Buf>>,
}

impl MemBlocks {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Test hook: flips one stored byte (simulates a disk that rots).
    pub fn corrupt(&self, key: &BlobKey, off: u64) -> bool {
        let map = self.blobs.lock().expect("mem blobs lock");
        let Some(b) = map.get(key) else { return false };
        let mut v = b.lock().expect("mem blob lock");
        match v.get_mut(off as usize) {
            Some(x) => {
                *x ^= 0xff;
                true
            }
            None => false,
        }
    }

    /// Whether bytes of `key` are stored.
    pub fn contains(&self, key: &BlobKey) -> bool {
        self.blobs.lock().expect("mem blobs lock").contains_key(key)
    }
}

struct MemData(Buf);

#[async_trait]
impl BlobData for MemData {
    async fn read(&self, off: u64, len: usize) -> Result<Bytes> {
        read_vec(&self.0.lock().expect("mem blob lock"), off, len)
    }

    async fn write(&self, off: u64, data: Vec<Bytes>) -> Result<()> {
        let mut v = self.0.lock().expect("mem blob lock");
        let mut pos = off as usize;
        for d in data {
            if v.len() < pos + d.len() {
                v.resize(pos + d.len(), 0);
            }
            v[pos..pos + d.len()].copy_from_slice(&d);
            pos += d.len();
        }
        Ok(())
    }

    async fn reset(&self, size: u64) -> Result<()> {
        let mut v = self.0.lock().expect("mem blob lock");
        v.clear();
        v.resize(size as usize, 0);
        Ok(())
    }
}

#[async_trait]
impl BlockIo for MemBlocks {
    async fn open(&self, key: &BlobKey) -> Result<(Arc<dyn BlobData>, u64)> {
        let b = self
            .blobs
            .lock()
            .expect("mem blobs lock")
            .entry(*key)
            .or_default()
            .clone();
        let len = b.lock().expect("mem blob lock").len() as u64;
        Ok((Arc::new(MemData(b)), len))
    }

    async fn remove(&self, key: &BlobKey) -> Result<()> {
        self.remove_blocking(key)
    }

    fn stored_blocking(&self) -> Result<Vec<(BlobKey, u64)>> {
        Ok(self
            .blobs
            .lock()
            .expect("mem blobs lock")
            .iter()
            .map(|(k, b)| (*k, b.lock().expect("mem blob lock").len() as u64))
            .collect())
    }

    fn read_blocking(&self, key: &BlobKey, off: u64, buf: &mut [u8]) -> Result<()> {
        let b = self
            .blobs
            .lock()
            .expect("mem blobs lock")
            .get(key)
            .cloned()
            .ok_or_else(eof)?;
        let got = read_vec(&b.lock().expect("mem blob lock"), off, buf.len())?;
        buf.copy_from_slice(&got);
        Ok(())
    }

    fn remove_blocking(&self, key: &BlobKey) -> Result<()> {
        self.blobs.lock().expect("mem blobs lock").remove(key);
        Ok(())
    }
}

struct Obj {
    data: Buf,
    verified: bool,
    chunks: Vec<u8>,
    created: u64,
}

type Objs = Arc<Mutex<HashMap<String, BTreeMap<(u64, u64), Obj>>>>;

/// Xorb ranges in memory.
#[derive(Default)]
pub struct MemObjects {
    objs: Objs,
    /// Staged writes alive (neither committed nor dropped yet).
    staged: Arc<AtomicUsize>,
}

impl MemObjects {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Staged writes alive right now (a dropped one must not linger).
    pub fn live_stages(&self) -> usize {
        self.staged.load(Ordering::SeqCst)
    }

    /// Test hook: flips one stored byte of a range (simulates a disk that rots).
    pub fn corrupt(&self, xorb: &str, range: XorbRange, off: u64) -> bool {
        let map = self.objs.lock().expect("mem object lock");
        let Some(o) = map.get(xorb).and_then(|m| m.get(&(range.start, range.end))) else {
            return false;
        };
        let mut v = o.data.lock().expect("mem object lock");
        match v.get_mut(off as usize) {
            Some(x) => {
                *x ^= 0xff;
                true
            }
            None => false,
        }
    }
}

struct MemReader(Buf);

#[async_trait]
impl ReadAt for MemReader {
    async fn read_at(&self, off: u64, len: usize) -> Result<Bytes> {
        read_vec(&self.0.lock().expect("mem object lock"), off, len)
    }
}

struct MemStaged {
    buf: Buf,
    objs: Objs,
    live: Arc<AtomicUsize>,
    xorb: String,
    range: XorbRange,
}

impl Drop for MemStaged {
    fn drop(&mut self) {
        self.live.fetch_sub(1, Ordering::SeqCst);
    }
}

#[async_trait]
impl StagedWrite for MemStaged {
    async fn write(&mut self, data: Bytes) -> Result<()> {
        self.buf
            .lock()
            .expect("mem object lock")
            .extend_from_slice(&data);
        Ok(())
    }

    fn reader(&self) -> Arc<dyn ReadAt> {
        Arc::new(MemReader(self.buf.clone()))
    }

    async fn commit(self: Box<Self>, chunks: Vec<u8>) -> Result<()> {
        let obj = Obj {
            data: self.buf.clone(),
            verified: false,
            chunks,
            created: now_ms(),
        };
        self.objs
            .lock()
            .expect("mem objects lock")
            .entry(self.xorb.clone())
            .or_default()
            .insert((self.range.start, self.range.end), obj);
        Ok(())
    }
}

fn obj_len(o: &Obj) -> u64 {
    o.data.lock().expect("mem object lock").len() as u64
}

#[async_trait]
impl ObjectIo for MemObjects {
    fn list(&self, xorb: &str) -> Result<Vec<HeldRange>> {
        let objs = self.objs.lock().expect("mem objects lock");
        Ok(objs
            .get(xorb)
            .map(|m| {
                m.iter()
                    .map(|((s, e), o)| HeldRange {
                        range: XorbRange { start: *s, end: *e },
                        verified: o.verified,
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    fn chunks(&self, xorb: &str, range: XorbRange) -> Result<Option<Vec<u8>>> {
        let objs = self.objs.lock().expect("mem objects lock");
        Ok(objs
            .get(xorb)
            .and_then(|m| m.get(&(range.start, range.end)))
            .map(|o| o.chunks.clone()))
    }

    fn promote(&self, xorb: &str, range: XorbRange) -> Result<bool> {
        let mut objs = self.objs.lock().expect("mem objects lock");
        match objs
            .get_mut(xorb)
            .and_then(|m| m.get_mut(&(range.start, range.end)))
        {
            Some(o) if !o.verified => {
                o.verified = true;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    fn discard(&self, xorb: &str, range: XorbRange) -> Result<bool> {
        let mut objs = self.objs.lock().expect("mem objects lock");
        let Some(m) = objs.get_mut(xorb) else {
            return Ok(false);
        };
        let pending = m.get(&(range.start, range.end)).map(|o| !o.verified);
        if pending != Some(true) {
            return Ok(false);
        }
        m.remove(&(range.start, range.end));
        if m.is_empty() {
            objs.remove(xorb);
        }
        Ok(true)
    }

    fn remove_xorb(&self, xorb: &str) -> Result<u64> {
        let mut objs = self.objs.lock().expect("mem objects lock");
        let m = objs
            .remove(xorb)
            .ok_or_else(|| StoreError::Io(std::io::ErrorKind::NotFound.into()))?;
        Ok(m.values().map(obj_len).sum())
    }

    fn usage(&self) -> Result<Vec<XorbUsage>> {
        let objs = self.objs.lock().expect("mem objects lock");
        Ok(objs
            .iter()
            .map(|(h, m)| XorbUsage {
                hash: h.clone(),
                bytes: m.values().map(obj_len).sum(),
                created: m.values().map(|o| o.created).min().unwrap_or(0),
            })
            .collect())
    }

    fn sweep(&self) -> Result<()> {
        let mut objs = self.objs.lock().expect("mem objects lock");
        for m in objs.values_mut() {
            m.retain(|_, o| o.verified);
        }
        objs.retain(|_, m| !m.is_empty());
        Ok(())
    }

    async fn open(&self, xorb: &str, held: HeldRange) -> Result<Option<Arc<dyn ReadAt>>> {
        let objs = self.objs.lock().expect("mem objects lock");
        Ok(objs
            .get(xorb)
            .and_then(|m| m.get(&(held.range.start, held.range.end)))
            .filter(|o| o.verified == held.verified)
            .map(|o| Arc::new(MemReader(o.data.clone())) as Arc<dyn ReadAt>))
    }

    async fn stage(&self, xorb: &str, range: XorbRange) -> Result<Box<dyn StagedWrite>> {
        self.staged.fetch_add(1, Ordering::SeqCst);
        Ok(Box::new(MemStaged {
            buf: Arc::default(),
            objs: self.objs.clone(),
            live: self.staged.clone(),
            xorb: xorb.to_string(),
            range,
        }))
    }
}

#[derive(Default)]
struct IndexState {
    blobs: BTreeMap<BlobKey, BlobRecord>,
    blocks: BTreeMap<(BlobKey, u32), u32>,
    kv: BTreeMap<String, Vec<u8>>,
    /// key → (write order, JSON).
    api: BTreeMap<String, (u64, Vec<u8>)>,
    api_budget: u64,
    /// id → (expiry ms, write order, value).
    sessions: HashMap<[u8; 32], (u64, u64, Vec<u8>)>,
    session_cap: u64,
}

/// The metadata index in memory.
pub struct MemIndex {
    st: Mutex<IndexState>,
    seq: AtomicU64,
}

impl Default for MemIndex {
    fn default() -> Self {
        Self {
            st: Mutex::new(IndexState {
                api_budget: DEFAULT_API_BUDGET,
                session_cap: DEFAULT_SESSION_CAP,
                ..IndexState::default()
            }),
            seq: AtomicU64::new(0),
        }
    }
}

impl MemIndex {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the cap on stored sessions.
    pub fn set_session_cap(&self, cap: u64) {
        self.lock().session_cap = cap.max(1);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, IndexState> {
        self.st.lock().expect("mem index lock")
    }

    fn usage_now(&self) -> Vec<BlobUsage> {
        let st = self.lock();
        st.blobs
            .iter()
            .map(|(k, rec)| {
                let bytes = st
                    .blocks
                    .range((*k, 0)..=(*k, u32::MAX))
                    .map(|((_, i), _)| {
                        rec.block_size
                            .min(rec.size.saturating_sub(*i as u64 * rec.block_size))
                    })
                    .sum();
                BlobUsage {
                    key: *k,
                    bytes,
                    size: rec.size,
                    complete: rec.complete,
                    created: rec.created,
                    last_access: rec.last_access.max(rec.created),
                }
            })
            .collect()
    }
}

fn api_total(st: &IndexState) -> u64 {
    st.api
        .iter()
        .map(|(k, (_, v))| (k.len() + 8 + v.len()) as u64)
        .sum()
}

fn trim_api(st: &mut IndexState) {
    let mut n = api_total(st);
    if n <= st.api_budget {
        return;
    }
    let target = st.api_budget / 10 * 9;
    let mut order: Vec<(u64, String)> =
        st.api.iter().map(|(k, (at, _))| (*at, k.clone())).collect();
    order.sort();
    for (_, k) in order {
        if n <= target {
            break;
        }
        if let Some((_, v)) = st.api.remove(&k) {
            n -= (k.len() + 8 + v.len()) as u64;
        }
    }
}

#[async_trait]
impl BlobIndex for MemIndex {
    async fn blob(&self, key: &BlobKey) -> Result<Option<BlobRecord>> {
        Ok(self.lock().blobs.get(key).cloned())
    }
    async fn put_blob(&self, key: &BlobKey, rec: &BlobRecord) -> Result<()> {
        self.lock().blobs.insert(*key, rec.clone());
        Ok(())
    }
    async fn blocks(&self, key: &BlobKey) -> Result<Vec<(u32, u32)>> {
        Ok(self
            .lock()
            .blocks
            .range((*key, 0)..=(*key, u32::MAX))
            .map(|((_, i), c)| (*i, *c))
            .collect())
    }
    async fn put_block(&self, key: &BlobKey, idx: u32, crc: u32) -> Result<()> {
        self.lock().blocks.insert((*key, idx), crc);
        Ok(())
    }
    async fn remove_block(&self, key: &BlobKey, idx: u32) -> Result<()> {
        self.lock().blocks.remove(&(*key, idx));
        Ok(())
    }
    async fn remove_blob(&self, key: &BlobKey) -> Result<()> {
        let mut st = self.lock();
        st.blobs.remove(key);
        st.blocks.retain(|(k, _), _| k != key);
        Ok(())
    }
    async fn usage(&self) -> Result<Vec<BlobUsage>> {
        Ok(self.usage_now())
    }
    async fn touch_many(&self, times: Vec<(BlobKey, u64)>) -> Result<()> {
        let mut st = self.lock();
        for (k, at) in times {
            if let Some(r) = st.blobs.get_mut(&k) {
                r.last_access = r.last_access.max(at);
            }
        }
        Ok(())
    }
    async fn counted_bytes(&self) -> Result<u64> {
        Ok(api_total(&self.lock()))
    }
    fn is_degraded(&self) -> bool {
        false
    }
    fn usage_blocking(&self) -> Result<Vec<BlobUsage>> {
        Ok(self.usage_now())
    }
    fn put_verified_blob_blocking(
        &self,
        key: &BlobKey,
        rec: &BlobRecord,
        crcs: &[u32],
    ) -> Result<()> {
        let mut st = self.lock();
        st.blobs.insert(*key, rec.clone());
        for (i, c) in crcs.iter().enumerate() {
            st.blocks.insert((*key, i as u32), *c);
        }
        Ok(())
    }
}

#[async_trait]
impl KvIndex for MemIndex {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.lock().kv.get(key).cloned())
    }
    async fn put(&self, key: &str, value: Vec<u8>) -> Result<()> {
        self.lock().kv.insert(key.to_string(), value);
        Ok(())
    }
    async fn delete(&self, key: &str) -> Result<()> {
        self.lock().kv.remove(key);
        Ok(())
    }
    async fn delete_prefix(&self, prefix: &str) -> Result<()> {
        self.lock().kv.retain(|k, _| !k.starts_with(prefix));
        Ok(())
    }
    async fn get_api(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.lock().api.get(key).map(|(_, v)| v.clone()))
    }
    async fn put_api(&self, key: &str, json: Vec<u8>) -> Result<bool> {
        let mut st = self.lock();
        if (key.len() + 8 + json.len()) as u64 > st.api_budget / 8 {
            return Ok(false);
        }
        let at = self.seq.fetch_add(1, Ordering::SeqCst);
        st.api.insert(key.to_string(), (at, json));
        trim_api(&mut st);
        Ok(true)
    }
    async fn set_api_budget(&self, bytes: u64) -> Result<()> {
        let mut st = self.lock();
        st.api_budget = bytes;
        st.kv.retain(|k, _| !k.starts_with("api|"));
        trim_api(&mut st);
        Ok(())
    }
    async fn api_bytes(&self) -> Result<u64> {
        Ok(api_total(&self.lock()))
    }
    async fn secret(&self, name: &str) -> Result<[u8; 32]> {
        let mut st = self.lock();
        let v = st
            .kv
            .entry(format!("secret|{name}"))
            .or_insert_with(|| rand::random::<[u8; 32]>().to_vec());
        Ok(<[u8; 32]>::try_from(v.as_slice()).expect("secrets are 32 bytes"))
    }
    async fn put_session(&self, id: &SessionId, value: Vec<u8>, expires_ms: u64) -> Result<()> {
        let now = now_ms();
        let at = self.seq.fetch_add(1, Ordering::SeqCst);
        let mut st = self.lock();
        st.sessions.insert(*id.as_bytes(), (expires_ms, at, value));
        let cap = st.session_cap;
        if st.sessions.len() as u64 > cap {
            st.sessions.retain(|_, (exp, _, _)| *exp > now);
        }
        while st.sessions.len() as u64 > cap {
            let oldest = st
                .sessions
                .iter()
                .min_by_key(|(_, (_, at, _))| *at)
                .map(|(k, _)| *k)
                .expect("non-empty");
            st.sessions.remove(&oldest);
        }
        Ok(())
    }
    async fn session(&self, id: &SessionId) -> Result<Option<Vec<u8>>> {
        let mut st = self.lock();
        match st.sessions.get(id.as_bytes()) {
            Some((exp, _, v)) if *exp > now_ms() => Ok(Some(v.clone())),
            Some(_) => {
                st.sessions.remove(id.as_bytes());
                Ok(None)
            }
            None => Ok(None),
        }
    }
    async fn delete_session(&self, id: &SessionId) -> Result<()> {
        self.lock().sessions.remove(id.as_bytes());
        Ok(())
    }
    async fn flush(&self) -> Result<()> {
        Ok(())
    }
}
