//! The conformance suite: one set of checks run against every backend (garage's `db/test.rs`
//! shape). `disk` is the production pair (sparse files + redb), `mem` the in-memory one. A new
//! backend adds a `Fixture` and one `suite!` line.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::{MemSource, collect, data, key_of};
use futures::StreamExt;
use olah_store::backend::fs::{FsBlocks, FsObjects};
use olah_store::backend::mem::{MemBlocks, MemIndex, MemObjects};
use olah_store::{
    BlobIndex, BlobKey, BlobStore, BlockIo, Expect, KvIndex, KvIndexExt, MetaDb, ObjectIo,
    RedbIndex, SessionId, SourceError, StoreError, Strategy, UpstreamBytes, XorbRange, XorbStore,
};

const BS: u64 = 64 * 1024;
const H: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
const H2: &str = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100";

/// One backend under test: its three parts, and ways to poke at its stored bytes.
trait Fixture: Send + Sync + 'static {
    fn new() -> Self;
    fn blocks(&self) -> Arc<dyn BlockIo>;
    fn objects(&self) -> Arc<dyn ObjectIo>;
    fn blob_index(&self) -> Arc<dyn BlobIndex>;
    fn kv(&self) -> Arc<dyn KvIndex>;
    /// Flips one stored byte of a blob.
    fn corrupt(&self, key: &BlobKey, off: u64);
    /// Flips one stored byte of a verified xorb range.
    fn corrupt_xorb(&self, xorb: &str, r: XorbRange, off: u64);
    /// Plants bytes for a blob without any record (a crash between data and record).
    fn plant(&self, key: &BlobKey, bytes: &[u8]);
    /// Whether any bytes of the blob are stored.
    fn stored(&self, key: &BlobKey) -> bool;
    /// Staged xorb writes left behind (temp files, live stages).
    fn stage_leftovers(&self) -> usize;

    fn blob_store(&self, limit: Option<u64>, strategy: Strategy) -> BlobStore {
        BlobStore::with_backend(self.blocks(), self.blob_index(), BS, limit, strategy)
    }
    /// A xorb store over the backend, as after a restart (sweeps pending ranges).
    fn xorb_store(&self) -> Arc<XorbStore> {
        Arc::new(XorbStore::with_backend(self.objects()).unwrap())
    }
}

struct Disk {
    dir: tempfile::TempDir,
    blocks: Arc<FsBlocks>,
    objects: Arc<FsObjects>,
    index: RedbIndex,
}

impl Fixture for Disk {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = Arc::new(MetaDb::open(&dir.path().join("olah-meta.redb")).unwrap());
        Self {
            blocks: Arc::new(FsBlocks::new(dir.path().join("blobs"))),
            objects: Arc::new(FsObjects::new(dir.path().join("xorbs")).unwrap()),
            index: RedbIndex(db),
            dir,
        }
    }
    fn blocks(&self) -> Arc<dyn BlockIo> {
        self.blocks.clone()
    }
    fn objects(&self) -> Arc<dyn ObjectIo> {
        self.objects.clone()
    }
    fn blob_index(&self) -> Arc<dyn BlobIndex> {
        Arc::new(self.index.clone())
    }
    fn kv(&self) -> Arc<dyn KvIndex> {
        Arc::new(self.index.clone())
    }
    fn corrupt(&self, key: &BlobKey, off: u64) {
        let path = self.blocks.local_path(key).unwrap();
        let mut raw = std::fs::read(&path).unwrap();
        raw[off as usize] ^= 0xff;
        std::fs::write(&path, raw).unwrap();
    }
    fn stored(&self, key: &BlobKey) -> bool {
        self.blocks.local_path(key).unwrap().exists()
    }
    fn corrupt_xorb(&self, xorb: &str, r: XorbRange, off: u64) {
        let path = self
            .dir
            .path()
            .join("xorbs")
            .join(&xorb[..2])
            .join(xorb)
            .join(format!("{}-{}", r.start, r.end));
        let mut raw = std::fs::read(&path).unwrap();
        raw[off as usize] ^= 0xff;
        std::fs::write(&path, raw).unwrap();
    }
    fn plant(&self, key: &BlobKey, bytes: &[u8]) {
        let path = self.blocks.local_path(key).unwrap();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
    fn stage_leftovers(&self) -> usize {
        std::fs::read_dir(self.dir.path().join("xorbs/tmp"))
            .unwrap()
            .count()
    }
}

struct Mem {
    blocks: Arc<MemBlocks>,
    objects: Arc<MemObjects>,
    index: Arc<MemIndex>,
}

impl Fixture for Mem {
    fn new() -> Self {
        Self {
            blocks: Arc::new(MemBlocks::new()),
            objects: Arc::new(MemObjects::new()),
            index: Arc::new(MemIndex::new()),
        }
    }
    fn blocks(&self) -> Arc<dyn BlockIo> {
        self.blocks.clone()
    }
    fn objects(&self) -> Arc<dyn ObjectIo> {
        self.objects.clone()
    }
    fn blob_index(&self) -> Arc<dyn BlobIndex> {
        self.index.clone()
    }
    fn kv(&self) -> Arc<dyn KvIndex> {
        self.index.clone()
    }
    fn corrupt(&self, key: &BlobKey, off: u64) {
        assert!(self.blocks.corrupt(key, off));
    }
    fn stored(&self, key: &BlobKey) -> bool {
        self.blocks.contains(key)
    }
    fn corrupt_xorb(&self, xorb: &str, r: XorbRange, off: u64) {
        assert!(self.objects.corrupt(xorb, r, off));
    }
    fn plant(&self, key: &BlobKey, bytes: &[u8]) {
        let blocks = self.blocks.clone();
        let (key, bytes) = (*key, Bytes::copy_from_slice(bytes));
        // The backend's own open creates the entry; a write puts the bytes in.
        std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap()
                .block_on(async {
                    let (d, _) = blocks.open(&key).await.unwrap();
                    d.write(0, vec![bytes]).await.unwrap();
                })
        })
        .join()
        .unwrap();
    }
    fn stage_leftovers(&self) -> usize {
        self.objects.live_stages()
    }
}

// ---- blobs ----------------------------------------------------------------------------------

async fn wait_complete(blob: &olah_store::Blob) {
    for _ in 0..500 {
        if blob.status().complete {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("blob never verified: {:?}", blob.status());
}

async fn blob_fill_is_single_flight_and_then_served_offline<F: Fixture>() {
    let fx = F::new();
    let st = Arc::new(fx.blob_store(None, Strategy::Lru));
    let d = data(5 * BS as usize + 123, 1);
    let (key, size) = (key_of(&d), d.len() as u64);
    let src = MemSource::new(d.clone(), 1);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (st, src) = (st.clone(), src.clone());
        tasks.spawn(async move {
            let blob = st.open(key, size).await.unwrap();
            collect(BlobStore::read(blob, 0, size - 1, Some(src))).await
        });
    }
    while let Some(r) = tasks.join_next().await {
        assert!(r.unwrap().unwrap() == d, "a reader got wrong bytes");
    }
    assert_eq!(src.requests(), 1, "one upstream fetch for every reader");
    let blob = st.open(key, size).await.unwrap();
    wait_complete(&blob).await;
    assert_eq!(blob.status().present, 6);
    let part = collect(BlobStore::read(blob, BS - 3, 2 * BS + 4, None))
        .await
        .unwrap();
    assert_eq!(part, d[(BS - 3) as usize..=(2 * BS + 4) as usize]);
    // A new store over the same backend (a restart) still has it.
    let st2 = fx.blob_store(None, Strategy::Lru);
    let blob = st2.open(key, size).await.unwrap();
    assert!(blob.status().complete);
    assert!(
        collect(BlobStore::read(blob, 0, size - 1, None))
            .await
            .unwrap()
            == d
    );
}

async fn a_rotten_block_fails_its_crc_and_is_refetched<F: Fixture>() {
    let fx = F::new();
    let st = fx.blob_store(None, Strategy::Lru);
    let d = data(3 * BS as usize, 2);
    let (key, size) = (key_of(&d), d.len() as u64);
    let blob = st.open(key, size).await.unwrap();
    collect(BlobStore::read(
        blob.clone(),
        0,
        size - 1,
        Some(MemSource::new(d.clone(), 0)),
    ))
    .await
    .unwrap();
    wait_complete(&blob).await;
    fx.corrupt(&key, BS + 10);
    let err = collect(BlobStore::read(blob.clone(), 0, size - 1, None)).await;
    assert!(
        matches!(err, Err((StoreError::NotCached(_), n)) if n == BS as usize),
        "the rotten block is never served: {err:?}"
    );
    let src = MemSource::new(d.clone(), 0);
    let got = collect(BlobStore::read(
        blob.clone(),
        0,
        size - 1,
        Some(src.clone()),
    ))
    .await
    .unwrap();
    assert!(got == d);
    assert_eq!(src.requests(), 1, "only the rotten block went upstream");
}

async fn wrong_content_is_never_complete<F: Fixture>() {
    let fx = F::new();
    let st = fx.blob_store(None, Strategy::Lru);
    let d = data(2 * BS as usize + 5, 3);
    let mut bad = d.to_vec();
    bad[7] ^= 1;
    let (key, size) = (key_of(&d), d.len() as u64);
    let blob = st.open(key, size).await.unwrap();
    let r = collect(BlobStore::read(
        blob.clone(),
        0,
        size - 1,
        Some(MemSource::new(Bytes::from(bad), 0)),
    ))
    .await;
    match r {
        Err((StoreError::InvalidData(_), n)) => assert!(n < size as usize, "end held back"),
        other => panic!("a wrong body must break before its end: {other:?}"),
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    // Never complete. (A reader still walking the blob may refetch the blocks it needs, so some
    // may be present again; the whole never verifies without the right bytes.)
    assert!(!blob.status().complete);
    let rec = fx.blob_index().blob(&key).await.unwrap().unwrap();
    assert!(!rec.complete);
    let again = collect(BlobStore::read(blob, 0, size - 1, None)).await;
    assert!(again.is_err(), "no whole body offline after a mismatch");
}

// ---- xorbs ----------------------------------------------------------------------------------

fn records(lens: &[usize], seed: u8) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, &n) in lens.iter().enumerate() {
        out.push(0);
        out.extend_from_slice(&(n as u32).to_le_bytes()[..3]);
        out.push(0);
        out.extend_from_slice(&(n as u32).to_le_bytes()[..3]);
        out.extend((0..n).map(|j| (j as u8).wrapping_mul(seed) ^ i as u8));
    }
    out
}

fn upstream(
    data: Vec<u8>,
) -> impl FnOnce() -> futures::future::BoxFuture<'static, Result<UpstreamBytes, SourceError>> {
    move || {
        Box::pin(async move {
            let pieces: Vec<Result<Bytes, SourceError>> = data
                .chunks(1000)
                .map(|c| Ok(Bytes::copy_from_slice(c)))
                .collect();
            Ok(futures::stream::iter(pieces).boxed())
        })
    }
}

type NoFetch = fn() -> futures::future::Ready<Result<UpstreamBytes, SourceError>>;

async fn read_all(s: olah_store::XorbStream) -> Result<Vec<u8>, StoreError> {
    let v: Vec<Bytes> = s
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    Ok(v.concat())
}

async fn fill_xorb(st: &Arc<XorbStore>, xorb: &str, data: &[u8], chunks: u32) -> XorbRange {
    let r = XorbRange {
        start: 0,
        end: data.len() as u64 - 1,
    };
    let e = Expect {
        chunks: Some(chunks),
        first_chunk: 3,
    };
    let s = st
        .read(xorb, r, r, e, Some(upstream(data.to_vec())))
        .await
        .unwrap();
    assert_eq!(read_all(s).await.unwrap(), data);
    for _ in 0..200 {
        if st.is_cached(xorb, r) {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("range never published");
}

async fn staged_writes_commit_or_leave_nothing<F: Fixture>() {
    let fx = F::new();
    let io = fx.objects();
    let r = XorbRange { start: 0, end: 9 };
    // Dropped without commit: failed, nothing published, nothing left.
    let mut w = io.stage(H, r).await.unwrap();
    w.write(Bytes::from_static(b"0123456789")).await.unwrap();
    let reader = w.reader();
    assert_eq!(&reader.read_at(2, 3).await.unwrap()[..], b"234");
    drop(w);
    assert!(io.list(H).unwrap().is_empty());
    assert_eq!(fx.stage_leftovers(), 0);
    // Committed: pending with its side record, then promoted.
    let mut w = io.stage(H, r).await.unwrap();
    w.write(Bytes::from_static(b"01234")).await.unwrap();
    w.write(Bytes::from_static(b"56789")).await.unwrap();
    w.commit(b"side".to_vec()).await.unwrap();
    assert_eq!(fx.stage_leftovers(), 0);
    let pending = olah_store::HeldRange {
        range: r,
        verified: false,
    };
    assert_eq!(io.list(H).unwrap(), vec![pending]);
    assert_eq!(io.chunks(H, r).unwrap().as_deref(), Some(&b"side"[..]));
    let got = io.open(H, pending).await.unwrap().unwrap();
    assert_eq!(&got.read_at(0, 10).await.unwrap()[..], b"0123456789");
    assert!(io.promote(H, r).unwrap());
    assert!(!io.promote(H, r).unwrap(), "promoted once");
    assert!(
        !io.discard(H, r).unwrap(),
        "a verified range is not discarded"
    );
    assert!(io.open(H, pending).await.unwrap().is_none());
    assert!(io.usage().unwrap()[0].bytes >= 10);
    assert!(io.remove_xorb(H).unwrap() >= 10);
    assert!(io.list(H).unwrap().is_empty());
}

async fn xorb_ranges_pending_then_promoted_or_discarded<F: Fixture>() {
    let fx = F::new();
    let st = fx.xorb_store();
    let data = records(&[5000, 3000], 9);
    let r = fill_xorb(&st, H, &data, 2).await;
    assert!(st.is_cached(H, r) && !st.is_verified(H, r));
    assert_eq!(st.coverage(H, r).await.unwrap(), Some(false));
    let beyond = XorbRange {
        start: 0,
        end: r.end + 1,
    };
    assert_eq!(st.coverage(H, beyond).await.unwrap(), None);
    let map = st.chunk_map(H);
    assert_eq!(
        (map.len(), map[0].first_chunk, map[0].chunks.len()),
        (1, 3, 2)
    );
    // Served from the store without upstream.
    let sub = XorbRange {
        start: 10,
        end: 5020,
    };
    let none: Option<NoFetch> = None;
    let s = st
        .read(
            H,
            sub,
            sub,
            Expect {
                chunks: None,
                first_chunk: 0,
            },
            none,
        )
        .await;
    assert_eq!(read_all(s.unwrap()).await.unwrap(), data[10..=5020]);
    // A second xorb, discarded.
    let d2 = records(&[700], 4);
    let r2 = fill_xorb(&st, H2, &d2, 1).await;
    let before = st.bytes();
    assert!(st.discard(H2, r2));
    assert_eq!(st.bytes(), before - r2.len());
    assert!(!st.is_cached(H2, r2));
    // Pending ranges do not survive a restart; promoted ones do.
    let st = fx.xorb_store();
    assert!(!st.is_cached(H, r));
    let r = fill_xorb(&st, H, &data, 2).await;
    assert!(st.promote(H, r) && st.is_verified(H, r));
    assert_eq!(st.coverage(H, r).await.unwrap(), Some(true));
    let st = fx.xorb_store();
    assert!(st.is_verified(H, r));
    assert_eq!(st.chunk_map(H)[0].chunks, map[0].chunks);
    assert_eq!(fx.stage_leftovers(), 0);
}

async fn bad_xorb_bytes_are_never_published<F: Fixture>() {
    let fx = F::new();
    let st = fx.xorb_store();
    let data = records(&[100, 200], 3);
    let r = XorbRange {
        start: 0,
        end: data.len() as u64 - 1,
    };
    let e = Expect {
        chunks: Some(3),
        first_chunk: 0,
    };
    let s = st.read(H, r, r, e, Some(upstream(data))).await.unwrap();
    assert!(read_all(s).await.is_err());
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(st.ranges(H).is_empty());
    assert_eq!(fx.stage_leftovers(), 0, "the failed stage left nothing");
}

// ---- index ----------------------------------------------------------------------------------

async fn index_records<F: Fixture>() {
    let fx = F::new();
    let kv = fx.kv();
    kv.put_json("rev|a", &vec![1u8, 2]).await.unwrap();
    kv.put_json("xfile|r|1", &1u8).await.unwrap();
    kv.put_json("xfile}", &1u8).await.unwrap();
    assert_eq!(
        kv.get_json::<Vec<u8>>("rev|a").await.unwrap(),
        Some(vec![1, 2])
    );
    kv.delete_prefix("xfile|").await.unwrap();
    assert_eq!(kv.get_json::<u8>("xfile|r|1").await.unwrap(), None);
    assert_eq!(kv.get_json::<u8>("xfile}").await.unwrap(), Some(1));
    kv.delete("rev|a").await.unwrap();
    assert_eq!(kv.get("rev|a").await.unwrap(), None);
    // The API table keeps to its budget, oldest written out first.
    kv.set_api_budget(16 << 10).await.unwrap();
    let body = "y".repeat(1000);
    for i in 0..60 {
        assert!(
            kv.put_api_json(&format!("api|k{i:03}"), &body)
                .await
                .unwrap()
        );
        assert!(kv.api_bytes().await.unwrap() <= 16 << 10);
    }
    assert_eq!(kv.get_api_json::<String>("api|k000").await.unwrap(), None);
    assert_eq!(
        kv.get_api_json::<String>("api|k059").await.unwrap(),
        Some(body)
    );
    assert!(
        !kv.put_api_json("api|big", &"z".repeat(3 << 10))
            .await
            .unwrap()
    );
    // Secrets: created once, then stable.
    let s1 = kv.secret("xorb-url").await.unwrap();
    assert_eq!(kv.secret("xorb-url").await.unwrap(), s1);
    assert_ne!(kv.secret("other").await.unwrap(), s1);
    // Blob records and blocks.
    let idx = fx.blob_index();
    let (a, b) = (BlobKey::Sha256([1; 32]), BlobKey::Sha256([2; 32]));
    let rec = olah_store::BlobRecord {
        size: 10,
        block_size: 4,
        complete: false,
        created: 5,
        last_access: 0,
    };
    idx.put_blob(&a, &rec).await.unwrap();
    idx.put_block(&a, 2, 33).await.unwrap();
    idx.put_block(&a, 0, 11).await.unwrap();
    idx.put_block(&b, 1, 22).await.unwrap();
    assert_eq!(idx.blocks(&a).await.unwrap(), vec![(0, 11), (2, 33)]);
    let u = idx.usage().await.unwrap();
    assert_eq!((u.len(), u[0].bytes, u[0].last_access), (1, 6, 5));
    idx.touch_many(vec![(a, 99), (b, 7)]).await.unwrap();
    assert_eq!(idx.blob(&a).await.unwrap().unwrap().last_access, 99);
    idx.remove_block(&a, 0).await.unwrap();
    assert_eq!(idx.blocks(&a).await.unwrap(), vec![(2, 33)]);
    idx.remove_blob(&a).await.unwrap();
    assert!(idx.blob(&a).await.unwrap().is_none() && idx.blocks(&a).await.unwrap().is_empty());
    assert_eq!(idx.blocks(&b).await.unwrap(), vec![(1, 22)]);
}

async fn sessions_expire_and_are_capped<F: Fixture>() {
    let fx = F::new();
    let kv = fx.kv();
    let far = 4_000_000_000_000u64;
    let tok = SessionId::of_token(b"hf_secret_token");
    kv.put_session(&tok, b"grant".to_vec(), far).await.unwrap();
    assert_eq!(
        kv.session(&tok).await.unwrap().as_deref(),
        Some(&b"grant"[..])
    );
    assert_eq!(
        kv.session(&SessionId::of_token(b"other")).await.unwrap(),
        None
    );
    let old = SessionId::of_token(b"expired");
    kv.put_session(&old, b"x".to_vec(), 1).await.unwrap();
    assert_eq!(
        kv.session(&old).await.unwrap(),
        None,
        "expired reads as absent"
    );
    kv.delete_session(&tok).await.unwrap();
    assert_eq!(kv.session(&tok).await.unwrap(), None);
}

// ---- eviction -------------------------------------------------------------------------------

async fn fill_blob(st: &BlobStore, len: usize, seed: u32) -> (BlobKey, Arc<olah_store::Blob>) {
    let d = data(len, seed);
    let key = key_of(&d);
    let blob = st.open(key, d.len() as u64).await.unwrap();
    let got = collect(BlobStore::read(
        blob.clone(),
        0,
        d.len() as u64 - 1,
        Some(MemSource::new(d.clone(), 0)),
    ))
    .await
    .unwrap();
    assert!(got == d);
    wait_complete(&blob).await;
    (key, blob)
}

async fn eviction_keeps_order_and_waits_for_an_open_victim<F: Fixture>() {
    let fx = F::new();
    let st = fx.blob_store(Some(16 * BS), Strategy::LargeFirst);
    let (a, blob_a) = fill_blob(&st, 4 * BS as usize, 11).await;
    drop(blob_a);
    let (b, blob_b) = fill_blob(&st, 4 * BS as usize, 12).await;
    drop(blob_b);
    let (c, blob_c) = fill_blob(&st, 12 * BS as usize, 13).await;
    assert!(st.usage().bytes() > 16 * BS);
    assert_eq!(
        st.evict_pass().await.unwrap(),
        0,
        "nothing smaller goes in C's place"
    );
    assert!(fx.stored(&a) && fx.stored(&b) && fx.stored(&c));
    drop(blob_c);
    assert_eq!(st.evict_pass().await.unwrap(), 1);
    assert!(!fx.stored(&c), "the largest went once released");
    assert!(fx.stored(&a) && fx.stored(&b));
    assert!(fx.blob_index().blob(&c).await.unwrap().is_none());
    assert!(st.usage().bytes() <= 16 * BS);
}

async fn blobs_and_xorbs_share_one_budget_in_lru_order<F: Fixture>() {
    let fx = F::new();
    let st = fx.blob_store(Some(9 * BS), Strategy::Lru);
    let xs = fx.xorb_store();
    st.attach_xorbs(xs.clone());
    let data = records(&[60_000, 60_000, 60_000, 60_000], 5);
    let r = fill_xorb(&xs, H, &data, 4).await;
    assert!(xs.promote(H, r));
    for _ in 0..200 {
        if st.usage().bytes() == r.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        st.usage().bytes(),
        r.len(),
        "the xorb counts in the cache total"
    );
    tokio::time::sleep(Duration::from_millis(5)).await;
    let (a, blob_a) = fill_blob(&st, 4 * BS as usize, 21).await;
    drop(blob_a);
    tokio::time::sleep(Duration::from_millis(5)).await;
    let (b, blob_b) = fill_blob(&st, 4 * BS as usize, 22).await;
    drop(blob_b);
    assert!(st.usage().bytes() > 9 * BS);
    // The xorb was read least recently: it goes first, and that is enough.
    assert_eq!(st.evict_pass().await.unwrap(), 1);
    assert!(!xs.is_cached(H, r));
    assert!(fx.stored(&a) && fx.stored(&b));
    assert_eq!(xs.bytes(), 0);
}

// ---- cache tools ----------------------------------------------------------------------------

async fn verify_drops_corrupt_blobs_and_xorb_ranges<F: Fixture>() {
    use olah_store::BlobCheck;
    let fx = F::new();
    let st = fx.blob_store(None, Strategy::Lru);
    let (good, g) = fill_blob(&st, 3 * BS as usize + 5, 1).await;
    let (bad, b) = fill_blob(&st, 2 * BS as usize, 2).await;
    drop((g, b));
    fx.corrupt(&bad, BS + 7);
    assert_eq!(
        st.check_blob(good, 3 * BS + 5).await.unwrap(),
        BlobCheck::Ok
    );
    assert_eq!(
        st.check_blob(bad, 2 * BS).await.unwrap(),
        BlobCheck::Corrupt
    );
    assert!(
        fx.blob_index().blob(&bad).await.unwrap().is_none(),
        "dropped"
    );
    assert!(!fx.stored(&bad));
    assert!(fx.blob_index().blob(&good).await.unwrap().unwrap().complete);
    assert_eq!(st.usage().bytes(), 3 * BS + 5);

    // Verified xorb ranges: re-hashed against their recorded chunk hashes.
    let xs = fx.xorb_store();
    let data = records(&[3000, 5000], 4);
    let r = fill_xorb(&xs, H, &data, 2).await;
    assert!(xs.promote(H, r));
    let r2 = fill_xorb(&xs, H2, &records(&[700], 5), 1).await;
    assert!(xs.promote(H2, r2));
    let ok = xs.check_verified().await.unwrap();
    assert_eq!((ok.ranges, ok.corrupt.len()), (2, 0));
    fx.corrupt_xorb(H, r, 4000);
    let found = xs.check_verified().await.unwrap();
    assert_eq!(found.corrupt, vec![(H.to_string(), r)]);
    assert!(
        !xs.is_cached(H, r),
        "the xorb is dropped, fetched again later"
    );
    assert!(xs.is_verified(H2, r2), "the sound one stays");
}

async fn gc_removes_garbage_but_never_an_open_blob<F: Fixture>() {
    use olah_store::GcReason;
    let fx = F::new();
    let st = fx.blob_store(None, Strategy::Lru);
    let (kept, k) = fill_blob(&st, BS as usize, 3).await;
    drop(k);
    // A partial fill: one block of two, untouched since.
    let d = data(2 * BS as usize, 4);
    let partial = key_of(&d);
    let blob = st.open(partial, d.len() as u64).await.unwrap();
    collect(BlobStore::read(
        blob.clone(),
        0,
        BS - 1,
        Some(MemSource::new(d.clone(), 0)),
    ))
    .await
    .unwrap();
    // Data without a record.
    let orphan = key_of(b"orphan");
    fx.plant(&orphan, b"orphan");
    // While the partial blob is open, it is not garbage (and stale_ms 0 makes it stale).
    let found = st.gc_blobs(0, false).await.unwrap();
    assert_eq!(found, vec![(orphan, GcReason::OrphanData, 6)]);
    assert!(!fx.stored(&orphan));
    drop(blob);
    // "Untouched for longer than 0 ms": let a millisecond pass.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let dry = st.gc_blobs(0, true).await.unwrap();
    assert_eq!(dry.len(), 1);
    assert_eq!(dry[0].1, GcReason::StalePartial);
    assert!(
        fx.blob_index().blob(&partial).await.unwrap().is_some(),
        "dry run"
    );
    // Not stale yet with an hour's grace.
    assert!(st.gc_blobs(3_600_000, false).await.unwrap().is_empty());
    let gone = st.gc_blobs(0, false).await.unwrap();
    assert_eq!(gone, vec![(partial, GcReason::StalePartial, BS)]);
    assert!(fx.blob_index().blob(&partial).await.unwrap().is_none());
    assert!(!fx.stored(&partial));
    assert!(fx.blob_index().blob(&kept).await.unwrap().is_some());
    assert_eq!(st.usage().bytes(), BS);
    // A dropped blob is gone for good; an open one is refused.
    let (other, o) = fill_blob(&st, 100, 9).await;
    assert_eq!(st.drop_blob(&other).await.unwrap(), None, "open");
    drop(o);
    assert_eq!(st.drop_blob(&other).await.unwrap(), Some(100));
    assert!(!fx.stored(&other));
}

macro_rules! suite {
    ($m:ident, $fx:ty) => {
        mod $m {
            use super::*;
            #[tokio::test]
            async fn blob_fill_single_flight() {
                blob_fill_is_single_flight_and_then_served_offline::<$fx>().await
            }
            #[tokio::test]
            async fn blob_crc_recheck() {
                a_rotten_block_fails_its_crc_and_is_refetched::<$fx>().await
            }
            #[tokio::test]
            async fn blob_verify_then_complete() {
                wrong_content_is_never_complete::<$fx>().await
            }
            #[tokio::test]
            async fn staged_write_commit_or_nothing() {
                staged_writes_commit_or_leave_nothing::<$fx>().await
            }
            #[tokio::test]
            async fn xorb_pending_promote_discard() {
                xorb_ranges_pending_then_promoted_or_discarded::<$fx>().await
            }
            #[tokio::test]
            async fn xorb_bad_bytes() {
                bad_xorb_bytes_are_never_published::<$fx>().await
            }
            #[tokio::test]
            async fn index() {
                index_records::<$fx>().await
            }
            #[tokio::test]
            async fn sessions() {
                sessions_expire_and_are_capped::<$fx>().await
            }
            #[tokio::test]
            async fn eviction_order() {
                eviction_keeps_order_and_waits_for_an_open_victim::<$fx>().await
            }
            #[tokio::test]
            async fn tools_verify() {
                verify_drops_corrupt_blobs_and_xorb_ranges::<$fx>().await
            }
            #[tokio::test]
            async fn tools_gc() {
                gc_removes_garbage_but_never_an_open_blob::<$fx>().await
            }
            #[tokio::test]
            async fn shared_budget() {
                blobs_and_xorbs_share_one_budget_in_lru_order::<$fx>().await
            }
        }
    };
}

suite!(disk, Disk);
suite!(mem, Mem);
