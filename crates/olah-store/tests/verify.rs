//! The end of a blob's content is released only after the whole content matched its key: a
//! reader of bytes that do not verify gets an error instead of a clean end of body.

mod common;

use std::sync::Arc;

use common::{MemSource, collect, data, key_of};
use olah_store::{BlobKey, BlobStore, MetaDb, StoreError};

const BS: u64 = 64 * 1024;

fn store(dir: &std::path::Path) -> BlobStore {
    let db = Arc::new(MetaDb::open(&dir.join("meta.redb")).unwrap());
    BlobStore::new(dir.join("blobs"), db, BS)
}

#[tokio::test]
async fn a_wrong_key_breaks_the_body_before_its_end() {
    let dir = tempfile::tempdir().unwrap();
    let st = store(dir.path());
    let d = data(300_000, 11);
    let size = d.len() as u64;
    let wrong = BlobKey::Sha256([7; 32]);
    let src = MemSource::new(d.clone(), 0);
    let blob = st.open(wrong, size).await.unwrap();
    let (e, got) = collect(BlobStore::read(blob.clone(), 0, size - 1, Some(src)))
        .await
        .expect_err("the content does not match its key");
    assert!(matches!(e, StoreError::InvalidData(_)), "{e}");
    assert!(
        (got as u64) < size,
        "the end was held back ({got} of {size} bytes)"
    );
    assert!(!blob.status().complete);
    assert_eq!(blob.status().present, 0, "the blob was discarded");
}

#[tokio::test]
async fn a_short_size_breaks_the_body_before_its_end() {
    // The metadata announced fewer bytes than the content has: the prefix does not hash to the
    // key, and a reader must not get it as if it were the whole file.
    let dir = tempfile::tempdir().unwrap();
    let st = store(dir.path());
    let d = data(300_000, 12);
    let short = 200_000u64;
    let src = MemSource::new(d.clone(), 0);
    let blob = st.open(key_of(&d), short).await.unwrap();
    let (e, got) = collect(BlobStore::read(blob, 0, short - 1, Some(src)))
        .await
        .expect_err("a prefix does not match the key");
    assert!(matches!(e, StoreError::InvalidData(_)), "{e}");
    assert!((got as u64) < short);
}

#[tokio::test]
async fn a_body_shorter_than_announced_fails_at_once_without_retries() {
    // The metadata announced more bytes than the source has: its body ends cleanly early. That
    // is wrong data (asking again gets the same), not a cut: one request, then an error.
    let dir = tempfile::tempdir().unwrap();
    let st = store(dir.path());
    let d = data(300_000, 15);
    let long = d.len() as u64 + 1000;
    let src = MemSource::new(d.clone(), 0);
    let blob = st.open(key_of(&d), long).await.unwrap();
    let (e, _) = collect(BlobStore::read(blob, 0, long - 1, Some(src.clone())))
        .await
        .expect_err("the body is short");
    assert!(matches!(e, StoreError::InvalidData(_)), "{e}");
    assert_eq!(src.requests(), 1);
}

#[tokio::test]
async fn followers_and_disk_readers_of_the_end_wait_for_the_verdict() {
    let dir = tempfile::tempdir().unwrap();
    let st = store(dir.path());
    let d = data(400_000, 13);
    let size = d.len() as u64;
    let src = MemSource::new(d.clone(), 1);
    let blob = st.open(key_of(&d), size).await.unwrap();
    let readers: Vec<_> = (0..4)
        .map(|i| {
            let (blob, src) = (blob.clone(), src.clone());
            tokio::spawn(async move {
                collect(BlobStore::read(blob, i * 1000, size - 1, Some(src))).await
            })
        })
        .collect();
    for (i, r) in readers.into_iter().enumerate() {
        let got = r.await.unwrap().unwrap_or_else(|(e, _)| panic!("{e}"));
        assert!(got[..] == d[i * 1000..]);
    }
    assert!(blob.status().complete);
    assert_eq!(src.requests(), 1);
}

#[tokio::test]
async fn a_tail_read_of_a_mostly_uncached_blob_is_served_without_waiting() {
    // Verifying would need the whole file: a footer read is served per range, as before.
    let dir = tempfile::tempdir().unwrap();
    let st = store(dir.path());
    let d = data(1_000_000, 14);
    let size = d.len() as u64;
    let src = MemSource::new(d.clone(), 0);
    let blob = st.open(key_of(&d), size).await.unwrap();
    let got = collect(BlobStore::read(
        blob.clone(),
        size - 100,
        size - 1,
        Some(src),
    ))
    .await
    .unwrap_or_else(|(e, _)| panic!("{e}"));
    assert!(got[..] == d[d.len() - 100..]);
    assert!(!blob.status().complete);
}
