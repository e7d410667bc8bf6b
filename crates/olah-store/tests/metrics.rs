//! The store's metrics: pieces of a read tagged by where they came from, fills in flight while a
//! fill runs, evictions and their bytes. One test in a binary of its own (the metrics are
//! process-wide): deltas only.

mod common;

use std::sync::Arc;

use common::{MemSource, data, key_of};
use futures::StreamExt;
use olah_metrics::{ServedFrom, metrics};
use olah_store::{BlobStore, MetaDb, Strategy};

const BS: u64 = 64 * 1024;

/// Everything a tagged read yields: bytes per origin.
async fn tally(mut s: olah_store::TaggedStream) -> (u64, u64) {
    let (mut cache, mut upstream) = (0, 0);
    while let Some(p) = s.next().await {
        let (b, from) = p.expect("read");
        match from {
            ServedFrom::cache => cache += b.len() as u64,
            ServedFrom::upstream => upstream += b.len() as u64,
        }
    }
    (cache, upstream)
}

async fn idle() {
    for _ in 0..400 {
        if metrics().fills_in_flight.get() == 0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    panic!("fills in flight: {}", metrics().fills_in_flight.get());
}

#[tokio::test]
async fn reads_are_tagged_fills_are_counted_and_evictions_too() {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(MetaDb::open(&dir.path().join("meta.redb")).unwrap());
    let st = BlobStore::with_limit(
        dir.path().join("blobs"),
        db,
        BS,
        Some(8 * BS),
        Strategy::Fifo,
    );
    let d = data(4 * BS as usize, 7);
    let len = d.len() as u64;
    let key = key_of(&d);

    // Cold, the first block only: one fill, in flight while its source is slow.
    let blob = st.open(key, len).await.unwrap();
    let slow = MemSource::new(d.clone(), 20);
    let s = BlobStore::read_tagged(blob.clone(), 0, BS - 1, Some(slow));
    let mut s = s;
    let first = s.next().await.unwrap().unwrap();
    assert_eq!(first.1, ServedFrom::upstream);
    assert!(metrics().fills_in_flight.get() >= 1, "a fill is running");
    let mut rest = (0, first.0.len() as u64);
    while let Some(p) = s.next().await {
        rest.1 += p.unwrap().0.len() as u64;
    }
    assert_eq!(rest, (0, BS));
    idle().await;

    // The whole blob: the first block from disk, the rest from a new fill.
    let src = MemSource::new(d.clone(), 0);
    let got = tally(BlobStore::read_tagged(
        blob.clone(),
        0,
        len - 1,
        Some(src.clone()),
    ))
    .await;
    assert_eq!(got, (BS, len - BS));
    assert_eq!(src.requests(), 1);
    idle().await;
    // Again: all from disk; the untagged read yields the same bytes.
    assert_eq!(
        tally(BlobStore::read_tagged(blob.clone(), 0, len - 1, None)).await,
        (len, 0)
    );
    let plain = common::collect(BlobStore::read(blob.clone(), 0, len - 1, None))
        .await
        .unwrap();
    assert!(plain == d);
    for _ in 0..400 {
        if blob.status().complete {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert!(blob.status().complete);
    drop(blob);

    // Past the limit: the first blob (FIFO) goes, counted with its bytes.
    let (n0, b0) = (metrics().evictions.get(), metrics().evicted_bytes.get());
    let d2 = data(6 * BS as usize, 8);
    let b2 = st.open(key_of(&d2), d2.len() as u64).await.unwrap();
    let src2 = MemSource::new(d2.clone(), 0);
    assert_eq!(
        tally(BlobStore::read_tagged(
            b2.clone(),
            0,
            d2.len() as u64 - 1,
            Some(src2)
        ))
        .await,
        (0, d2.len() as u64)
    );
    idle().await;
    for _ in 0..400 {
        if b2.status().complete {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert!(st.usage().bytes() > 8 * BS);
    assert!(st.evict_pass().await.unwrap() >= 1);
    assert_eq!(metrics().evictions.get(), n0 + 1);
    assert_eq!(metrics().evicted_bytes.get(), b0 + len);
    assert_eq!(metrics().fills_in_flight.get(), 0);
}
