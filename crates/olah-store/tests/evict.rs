//! Eviction keeps its strategy's order: when the first victim is open (being read or filled),
//! the pass waits for it instead of taking a later one, then evicts it once released.

mod common;

use std::sync::Arc;

use common::{MemSource, collect, data, key_of};
use olah_store::{BlobKey, BlobStore, MetaDb, Strategy};

const BS: u64 = 64 * 1024;

fn store(dir: &std::path::Path, limit: u64, strategy: Strategy) -> BlobStore {
    let db = Arc::new(MetaDb::open(&dir.join("meta.redb")).unwrap());
    BlobStore::with_limit(dir.join("blobs"), db, BS, Some(limit), strategy)
}

/// Fills a whole blob; returns it still open.
async fn fill(st: &BlobStore, len: usize, seed: u32) -> (BlobKey, Arc<olah_store::Blob>) {
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
    for _ in 0..500 {
        if blob.status().complete {
            return (key, blob);
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    panic!("blob never verified");
}

#[tokio::test]
async fn large_first_waits_for_the_open_largest_blob_then_evicts_it() {
    let dir = tempfile::tempdir().unwrap();
    // A and B: 4 blocks each; C: 12 blocks. A+B fit, A+B+C does not.
    let st = store(dir.path(), 16 * BS, Strategy::LargeFirst);
    let (a, blob_a) = fill(&st, 4 * BS as usize, 1).await;
    drop(blob_a);
    let (b, blob_b) = fill(&st, 4 * BS as usize, 2).await;
    drop(blob_b);
    // C is the largest and still open (its reader has not let go).
    let (c, blob_c) = fill(&st, 12 * BS as usize, 3).await;
    assert!(st.usage().bytes() > 16 * BS);
    assert_eq!(
        st.evict_pass().await.unwrap(),
        0,
        "nothing smaller goes in C's place"
    );
    for k in [a, b, c] {
        assert!(
            st.data_path(&k).unwrap().exists(),
            "{k} stays while C is open"
        );
    }
    drop(blob_c);
    assert_eq!(st.evict_pass().await.unwrap(), 1);
    assert!(
        !st.data_path(&c).unwrap().exists(),
        "the largest went once released"
    );
    assert!(st.data_path(&a).unwrap().exists() && st.data_path(&b).unwrap().exists());
    assert!(st.usage().bytes() <= 16 * BS);
}

#[tokio::test]
async fn fifo_waits_for_the_open_oldest_blob() {
    let dir = tempfile::tempdir().unwrap();
    let st = store(dir.path(), 10 * BS, Strategy::Fifo);
    let (a, blob_a) = fill(&st, 4 * BS as usize, 4).await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let (b, blob_b) = fill(&st, 4 * BS as usize, 5).await;
    drop(blob_b);
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let (c, blob_c) = fill(&st, 4 * BS as usize, 6).await;
    drop(blob_c);
    assert_eq!(st.evict_pass().await.unwrap(), 0, "A, the oldest, is open");
    assert!([a, b, c].iter().all(|k| st.data_path(k).unwrap().exists()));
    drop(blob_a);
    assert_eq!(st.evict_pass().await.unwrap(), 1);
    assert!(!st.data_path(&a).unwrap().exists());
    assert!(st.data_path(&b).unwrap().exists() && st.data_path(&c).unwrap().exists());
}
