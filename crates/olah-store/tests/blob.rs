//! Behaviour of the blob store: single-flight streaming fills, partial caching, recovery from
//! failed fills, corruption detection and crash-consistent reopen.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use olah_store::{BlobKey, BlobStore, MetaDb, Source, SourceError, StoreError};
use sha2::Digest;

const BS: u64 = 64 * 1024;

struct MemSource {
    data: Bytes,
    requests: AtomicUsize,
    bytes: AtomicU64,
    /// Cut the next `cut_count` bodies after this many bytes.
    cut_after: u64,
    cut_count: AtomicUsize,
    /// Delay between 8 KiB pieces, to let followers attach mid-fill.
    piece_delay_ms: u64,
}

impl MemSource {
    fn new(data: Bytes) -> Arc<Self> {
        Arc::new(Self {
            data,
            requests: AtomicUsize::new(0),
            bytes: AtomicU64::new(0),
            cut_after: 0,
            cut_count: AtomicUsize::new(0),
            piece_delay_ms: 0,
        })
    }
}

#[async_trait]
impl Source for MemSource {
    async fn fetch(
        &self,
        start: u64,
        end: u64,
    ) -> Result<BoxStream<'static, Result<Bytes, SourceError>>, SourceError> {
        self.requests.fetch_add(1, Ordering::SeqCst);
        let body = self.data.slice(start as usize..=end as usize);
        let cut = if self.cut_count.load(Ordering::SeqCst) > 0 {
            self.cut_count.fetch_sub(1, Ordering::SeqCst);
            Some(self.cut_after)
        } else {
            None
        };
        let delay = self.piece_delay_ms;
        let mut pieces = Vec::new();
        let mut off = 0usize;
        while off < body.len() {
            let n = 8192.min(body.len() - off);
            if let Some(c) = cut
                && off as u64 + n as u64 > c
            {
                pieces.push(Err(SourceError::new("cut", None)));
                break;
            }
            pieces.push(Ok(body.slice(off..off + n)));
            off += n;
        }
        let counter = self.bytes.load(Ordering::SeqCst);
        let _ = counter;
        let total = pieces
            .iter()
            .filter_map(|p| p.as_ref().ok())
            .map(|b| b.len() as u64)
            .sum::<u64>();
        self.bytes.fetch_add(total, Ordering::SeqCst);
        Ok(futures::stream::iter(pieces)
            .then(move |p| async move {
                if delay > 0 {
                    tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
                }
                p
            })
            .boxed())
    }
}

fn data(len: usize) -> Bytes {
    let mut v = Vec::with_capacity(len);
    let mut x: u32 = 12345;
    for _ in 0..len {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        v.push((x >> 16) as u8);
    }
    Bytes::from(v)
}

/// Fills finish their last disk write just after the reader got the bytes: wait for it.
async fn wait_present(blob: &olah_store::Blob, n: u32) {
    for _ in 0..500 {
        if blob.status().present == n {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    panic!("blob never reached {n} present blocks: {:?}", blob.status());
}

fn key_of(d: &[u8]) -> BlobKey {
    BlobKey::Sha256(sha2::Sha256::digest(d).into())
}

fn store(dir: &std::path::Path) -> BlobStore {
    let db = Arc::new(MetaDb::open(&dir.join("meta.redb")).unwrap());
    BlobStore::new(dir.join("blobs"), db, BS)
}

async fn collect(s: olah_store::ByteStream) -> Result<Vec<u8>, StoreError> {
    let mut out = Vec::new();
    let mut s = s;
    while let Some(c) = s.next().await {
        out.extend_from_slice(&c?);
    }
    Ok(out)
}

#[tokio::test]
async fn full_read_fills_once_then_serves_from_disk_and_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let st = store(dir.path());
    let d = data(300_000);
    let src = MemSource::new(d.clone());
    let blob = st.open(key_of(&d), d.len() as u64).await.unwrap();
    let got = collect(BlobStore::read(
        blob.clone(),
        0,
        d.len() as u64 - 1,
        Some(src.clone()),
    ))
    .await
    .unwrap();
    assert_eq!(got, d);
    assert_eq!(src.requests.load(Ordering::SeqCst), 1);
    // Verification runs when the last block lands.
    for _ in 0..100 {
        if blob.status().complete {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(blob.status().complete);
    let again = collect(BlobStore::read(blob, 1000, 200_000, None))
        .await
        .unwrap();
    assert_eq!(again, &d[1000..=200_000]);
    assert_eq!(src.requests.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn concurrent_readers_share_one_upstream_transfer_and_stream_while_filling() {
    let dir = tempfile::tempdir().unwrap();
    let st = Arc::new(store(dir.path()));
    let d = data(600_000);
    let src = Arc::new(MemSource {
        piece_delay_ms: 1,
        ..Arc::try_unwrap(MemSource::new(d.clone())).ok().unwrap()
    });
    let key = key_of(&d);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let st = st.clone();
        let src = src.clone();
        let len = d.len() as u64;
        tasks.push(tokio::spawn(async move {
            let blob = st.open(key, len).await.unwrap();
            collect(BlobStore::read(blob, 0, len - 1, Some(src)))
                .await
                .unwrap()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), d);
    }
    assert_eq!(
        src.bytes.load(Ordering::SeqCst),
        d.len() as u64,
        "each byte fetched exactly once"
    );
}

#[tokio::test]
async fn range_read_fetches_only_covering_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let st = store(dir.path());
    let d = data(1_000_000);
    let src = MemSource::new(d.clone());
    let blob = st.open(key_of(&d), d.len() as u64).await.unwrap();
    let got = collect(BlobStore::read(
        blob.clone(),
        200_000,
        200_099,
        Some(src.clone()),
    ))
    .await
    .unwrap();
    assert_eq!(got, &d[200_000..200_100]);
    assert_eq!(
        src.bytes.load(Ordering::SeqCst),
        BS,
        "one block for a 100-byte range"
    );
    wait_present(&blob, 1).await;
    assert!(!blob.status().complete);
}

#[tokio::test]
async fn a_cut_fill_keeps_finished_blocks_and_the_reader_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let st = store(dir.path());
    let d = data(400_000);
    let src = Arc::new(MemSource {
        cut_after: 150_000,
        cut_count: AtomicUsize::new(1),
        ..Arc::try_unwrap(MemSource::new(d.clone())).ok().unwrap()
    });
    let blob = st.open(key_of(&d), d.len() as u64).await.unwrap();
    let got = collect(BlobStore::read(
        blob.clone(),
        0,
        d.len() as u64 - 1,
        Some(src.clone()),
    ))
    .await
    .unwrap();
    assert_eq!(got, d);
    assert_eq!(src.requests.load(Ordering::SeqCst), 2);
    // The second fill started at the first unfinished block (block 2 = 131072), not at 0.
    let fetched = src.bytes.load(Ordering::SeqCst);
    assert!(
        fetched < d.len() as u64 + 150_000,
        "resumed, fetched {fetched}"
    );
}

#[tokio::test]
async fn corrupt_block_on_disk_is_refetched_never_served() {
    let dir = tempfile::tempdir().unwrap();
    let d = data(200_000);
    let key = key_of(&d);
    let path;
    {
        let st = store(dir.path());
        let src = MemSource::new(d.clone());
        let blob = st.open(key, d.len() as u64).await.unwrap();
        collect(BlobStore::read(
            blob.clone(),
            0,
            d.len() as u64 - 1,
            Some(src),
        ))
        .await
        .unwrap();
        wait_present(&blob, 4).await;
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        path = st.data_path(&key).unwrap();
    }
    // Flip one byte in block 1.
    let mut raw = std::fs::read(&path).unwrap();
    raw[BS as usize + 10] ^= 0xff;
    std::fs::write(&path, raw).unwrap();
    let st = store(dir.path());
    let blob = st.open(key, d.len() as u64).await.unwrap();
    assert_eq!(blob.status().present, 4);
    // Offline: the corrupt block cannot be served.
    let err = collect(BlobStore::read(blob.clone(), 0, d.len() as u64 - 1, None)).await;
    assert!(matches!(err, Err(StoreError::NotCached(_))), "{err:?}");
    let src = MemSource::new(d.clone());
    let got = collect(BlobStore::read(
        blob,
        0,
        d.len() as u64 - 1,
        Some(src.clone()),
    ))
    .await
    .unwrap();
    assert_eq!(got, d);
    assert_eq!(
        src.bytes.load(Ordering::SeqCst),
        BS,
        "only the corrupt block refetched"
    );
}

#[tokio::test]
async fn wrong_upstream_content_is_never_marked_complete() {
    let dir = tempfile::tempdir().unwrap();
    let st = store(dir.path());
    let d = data(100_000);
    let mut bad = d.to_vec();
    bad[5] ^= 1;
    let src = MemSource::new(Bytes::from(bad));
    let blob = st.open(key_of(&d), d.len() as u64).await.unwrap();
    let _ = collect(BlobStore::read(
        blob.clone(),
        0,
        d.len() as u64 - 1,
        Some(src),
    ))
    .await;
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let s = blob.status();
    assert!(!s.complete);
    assert_eq!(
        s.present, 0,
        "blocks of a blob failing its hash are discarded"
    );
}

#[tokio::test]
async fn reopen_after_restart_serves_cached_blocks_without_upstream() {
    let dir = tempfile::tempdir().unwrap();
    let d = data(250_000);
    let key = key_of(&d);
    {
        let st = store(dir.path());
        let blob = st.open(key, d.len() as u64).await.unwrap();
        collect(BlobStore::read(
            blob.clone(),
            0,
            99_999,
            Some(MemSource::new(d.clone())),
        ))
        .await
        .unwrap();
        wait_present(&blob, 2).await;
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let st = store(dir.path());
    let blob = st.open(key, d.len() as u64).await.unwrap();
    assert_eq!(blob.status().present, 2);
    let got = collect(BlobStore::read(blob, 10, 120_000, None))
        .await
        .unwrap();
    assert_eq!(got, &d[10..=120_000]);
}

async fn fill_blob(st: &BlobStore, d: &Bytes) -> BlobKey {
    let key = key_of(d);
    let blob = st.open(key, d.len() as u64).await.unwrap();
    collect(BlobStore::read(
        blob.clone(),
        0,
        d.len() as u64 - 1,
        Some(MemSource::new(d.clone())),
    ))
    .await
    .unwrap();
    wait_present(&blob, d.len().div_ceil(BS as usize) as u32).await;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    key
}

fn limited(dir: &std::path::Path, limit: u64, s: olah_store::Strategy) -> Arc<BlobStore> {
    let db = Arc::new(MetaDb::open(&dir.join("meta.redb")).unwrap());
    Arc::new(BlobStore::with_limit(
        dir.join("blobs"),
        db,
        BS,
        Some(limit),
        s,
    ))
}

/// Fills a (2 blocks), b (4 blocks), touches a, then c (1 block) pushes the store over its
/// limit of 6 blocks; returns which of a, b, c survive.
async fn evict_scenario(s: olah_store::Strategy) -> [bool; 3] {
    let dir = tempfile::tempdir().unwrap();
    let st = limited(dir.path(), 6 * BS, s);
    let (a, b, c) = (
        data(2 * BS as usize),
        data(4 * BS as usize + 1).slice(1..),
        data(BS as usize - 7),
    );
    let ka = fill_blob(&st, &a).await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let kb = fill_blob(&st, &b).await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    drop(st.open(ka, a.len() as u64).await.unwrap()); // a read again: most recent
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let kc = fill_blob(&st, &c).await;
    assert!(st.usage().bytes() > 6 * BS);
    st.evict_pass().await.unwrap();
    assert!(
        st.usage().bytes() <= 6 * BS / 10 * 9,
        "{}",
        st.usage().bytes()
    );
    [ka, kb, kc].map(|k| st.data_path(&k).unwrap().exists())
}

#[tokio::test]
async fn eviction_strategies_pick_the_right_victims() {
    use olah_store::Strategy::*;
    assert_eq!(
        evict_scenario(Lru).await,
        [true, false, true],
        "LRU: b is least recently used"
    );
    assert_eq!(
        evict_scenario(LargeFirst).await,
        [true, false, true],
        "LARGE_FIRST: b is largest"
    );
    assert_eq!(
        evict_scenario(Fifo).await,
        [false, true, true],
        "FIFO: a is oldest"
    );
}

#[tokio::test]
async fn an_open_blob_is_never_evicted_and_the_evictor_waits_for_it() {
    let dir = tempfile::tempdir().unwrap();
    let st = limited(dir.path(), 4 * BS, olah_store::Strategy::LargeFirst);
    st.start_evictor();
    let big = data(3 * BS as usize);
    let small = data(2 * BS as usize - 3);
    let kb = fill_blob(&st, &big).await;
    let held = st.open(kb, big.len() as u64).await.unwrap(); // a reader holds the big blob
    let ks = fill_blob(&st, &small).await; // over the limit: the evictor wakes
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert!(st.data_path(&kb).unwrap().exists(), "the open blob stays");
    assert!(
        st.data_path(&ks).unwrap().exists(),
        "the smaller blob is not taken in the largest's place"
    );
    let got = collect(BlobStore::read(held, 0, big.len() as u64 - 1, None))
        .await
        .unwrap();
    assert_eq!(got, big, "the reader is not cut");
    // Released: the evictor (on its own) takes the largest now.
    for _ in 0..400 {
        if !st.data_path(&kb).unwrap().exists() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert!(
        !st.data_path(&kb).unwrap().exists(),
        "the largest went once released"
    );
    assert!(st.data_path(&ks).unwrap().exists());
}

#[tokio::test]
async fn followers_attached_to_a_cut_fill_all_get_exact_bytes_with_one_refetch() {
    let dir = tempfile::tempdir().unwrap();
    let st = Arc::new(store(dir.path()));
    let d = data(600_000);
    let src = Arc::new(MemSource {
        cut_after: 250_000,
        cut_count: AtomicUsize::new(1),
        piece_delay_ms: 1,
        ..Arc::try_unwrap(MemSource::new(d.clone())).ok().unwrap()
    });
    let key = key_of(&d);
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (st, src, len) = (st.clone(), src.clone(), d.len() as u64);
        tasks.push(tokio::spawn(async move {
            let blob = st.open(key, len).await.unwrap();
            collect(BlobStore::read(blob, 0, len - 1, Some(src)))
                .await
                .unwrap()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), d, "every follower gets the exact file");
    }
    // The cut fill kept its finished blocks; the bytes fetched again are at most the unfinished
    // block plus the rest, once (not once per follower).
    let fetched = src.bytes.load(Ordering::SeqCst);
    assert!(
        fetched <= d.len() as u64 + 250_000,
        "refetch happened once: {fetched}"
    );
}

/// A block checked once on a file that then stays unchanged is served without its CRC (in
/// pieces), and any write to the file afterwards — a flipped byte even with the same length —
/// ends that trust: the rotten block is caught, never served.
#[tokio::test]
async fn trusted_blocks_skip_the_crc_until_the_file_changes() {
    let dir = tempfile::tempdir().unwrap();
    let st = store(dir.path());
    // Blocks of 64 KiB; a range across pieces and blocks, and the whole content.
    let d = data(4 * BS as usize + 1000);
    let key = key_of(&d);
    let size = d.len() as u64;
    let blob = st.open(key, size).await.unwrap();
    let got = collect(BlobStore::read(
        blob.clone(),
        0,
        size - 1,
        Some(MemSource::new(d.clone())),
    ))
    .await
    .unwrap();
    assert_eq!(got, d);
    wait_present(&blob, 5).await;
    // A check is recorded only on a file quiet for a while (file times are coarse).
    tokio::time::sleep(std::time::Duration::from_millis(1300)).await;
    let checks = st.crc_checks();
    assert_eq!(
        collect(BlobStore::read(blob.clone(), 0, size - 1, None))
            .await
            .unwrap(),
        d
    );
    assert_eq!(
        st.crc_checks() - checks,
        5,
        "first warm read checks every block"
    );
    let checks = st.crc_checks();
    for (a, b) in [(0, size - 1), (BS - 7, 3 * BS + 11), (size - 5, size - 1)] {
        let got = collect(BlobStore::read(blob.clone(), a, b, None))
            .await
            .unwrap();
        assert_eq!(got, d[a as usize..=b as usize], "{a}-{b}");
    }
    assert_eq!(
        st.crc_checks(),
        checks,
        "checked blocks of an unchanged file are trusted"
    );

    // Flip one byte of block 2 in place (same length, same inode).
    let path = st.data_path(&key).unwrap();
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        let mut b = [0u8; 1];
        std::fs::File::open(&path)
            .unwrap()
            .read_exact_at(&mut b, 2 * BS + 3)
            .unwrap();
        f.write_all_at(&[b[0] ^ 0x01], 2 * BS + 3).unwrap();
    }
    let err = collect(BlobStore::read(blob.clone(), 0, size - 1, None)).await;
    assert!(
        matches!(err, Err(StoreError::NotCached(_))),
        "the rotten block is never served: {err:?}"
    );
    assert!(
        st.crc_checks() > checks,
        "the changed file is checked again"
    );
    let src = MemSource::new(d.clone());
    let got = collect(BlobStore::read(blob, 0, size - 1, Some(src.clone())))
        .await
        .unwrap();
    assert_eq!(got, d);
    assert_eq!(
        src.bytes.load(Ordering::SeqCst),
        BS,
        "only the rotten block refetched"
    );
}

/// A reader that keeps what it read (like a connection whose client stopped reading) holds its
/// share of the reader budget; past the budget, other reads still go on (the budget is soft).
#[tokio::test]
async fn readers_holding_their_pieces_never_stall_other_reads() {
    let dir = tempfile::tempdir().unwrap();
    let st = store(dir.path());
    let d = data(olah_store::READ_BUDGET as usize + 3 * BS as usize);
    let key = key_of(&d);
    let size = d.len() as u64;
    let blob = st.open(key, size).await.unwrap();
    let got = collect(BlobStore::read(
        blob.clone(),
        0,
        size - 1,
        Some(MemSource::new(d.clone())),
    ))
    .await
    .unwrap();
    assert_eq!(got, d);
    wait_present(&blob, size.div_ceil(BS) as u32).await;
    // Hold every piece of a warm read of the whole blob: more than the budget.
    let guard = std::time::Duration::from_secs(60);
    let mut held: Vec<Bytes> = Vec::new();
    let mut s = BlobStore::read(blob.clone(), 0, size - 1, None);
    let hold = async {
        while let Some(piece) = s.next().await {
            held.push(piece.unwrap());
        }
    };
    tokio::time::timeout(guard, hold)
        .await
        .expect("a read past the budget went on");
    assert_eq!(held.iter().map(|b| b.len()).sum::<usize>(), d.len());
    // Another reader, while all of that is still held.
    let other = tokio::time::timeout(
        guard,
        collect(BlobStore::read(blob.clone(), 5, BS * 2, None)),
    )
    .await
    .expect("another read went on")
    .unwrap();
    assert_eq!(other, d[5..=(BS * 2) as usize]);
    drop(held);
}
