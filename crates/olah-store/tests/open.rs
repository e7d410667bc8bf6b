//! Many first openers of one uncached blob: one load, one upstream fetch, exact bytes for all.

mod common;

use std::sync::Arc;

use common::{MemSource, collect, data, key_of};
use olah_store::{BlobStore, MetaDb};

const BS: u64 = 64 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_first_opens_load_once_and_fetch_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(MetaDb::open(&dir.path().join("meta.redb")).unwrap());
    let st = Arc::new(BlobStore::new(dir.path().join("blobs"), db, BS));
    let d = data(1_500_000, 7);
    let (key, size) = (key_of(&d), d.len() as u64);
    // Slow enough that late openers arrive while the first fill is writing blocks.
    let src = MemSource::new(d.clone(), 1);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..200 {
        let (st, src) = (st.clone(), src.clone());
        tasks.spawn(async move {
            let blob = st.open(key, size).await.unwrap();
            collect(BlobStore::read(blob, 0, size - 1, Some(src))).await
        });
    }
    let mut n = 0;
    while let Some(r) = tasks.join_next().await {
        let got = r
            .unwrap()
            .unwrap_or_else(|(e, at)| panic!("reader failed after {at} bytes: {e}"));
        assert!(
            got == d,
            "a reader got wrong bytes ({} of {size})",
            got.len()
        );
        n += 1;
    }
    assert_eq!(n, 200);
    assert_eq!(st.loads(), 1, "the key was loaded once");
    assert_eq!(src.requests(), 1, "one upstream fetch");
    // The blob verified and stays cached: a new reader needs no source.
    let blob = st.open(key, size).await.unwrap();
    let s = blob.status();
    assert!(s.complete && s.present == s.blocks, "{s:?}");
    assert_eq!(
        collect(BlobStore::read(blob, 0, size - 1, None))
            .await
            .unwrap(),
        d
    );
}
