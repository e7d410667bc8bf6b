//! A damaged metadata database: no panic; a clear error naming the file, or (recovery) the file
//! is moved aside and the blobs whose content verifies are registered again.

mod common;

use std::sync::Arc;

use common::{MemSource, collect, data, key_of};
use olah_store::{BlobKey, BlobStore, MetaDb};

const BS: u64 = 64 * 1024;

fn cut(path: &std::path::Path, len: u64) {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len)
        .unwrap();
}

#[test]
fn a_truncated_database_is_an_error_naming_the_file_never_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("olah-meta.redb");
    {
        let db = MetaDb::open(&p).unwrap();
        for i in 0..200 {
            db.put_json(&format!("k{i}"), &vec![i; 100]).unwrap();
        }
    }
    let len = std::fs::metadata(&p).unwrap().len();
    for at in [len / 2, 4096, 100] {
        let q = dir.path().join(format!("cut-{at}.redb"));
        std::fs::copy(&p, &q).unwrap();
        cut(&q, at);
        let e = match MetaDb::open(&q) {
            Ok(_) => panic!("a database cut at {at} of {len} bytes opened"),
            Err(e) => e.to_string(),
        };
        assert!(
            e.contains(q.to_str().unwrap()) && e.contains("move it aside"),
            "{e}"
        );
    }
}

#[tokio::test]
async fn recovery_moves_the_file_aside_and_keeps_the_blobs_that_verify() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("olah-meta.redb");
    let good = data(300_000, 21);
    let partial = data(500_000, 22);
    let (kg, kp) = (key_of(&good), key_of(&partial));
    {
        let db = Arc::new(MetaDb::open(&p).unwrap());
        let st = BlobStore::new(dir.path().join("blobs"), db.clone(), BS);
        let blob = st.open(kg, good.len() as u64).await.unwrap();
        let src = MemSource::new(good.clone(), 0);
        collect(BlobStore::read(
            blob.clone(),
            0,
            good.len() as u64 - 1,
            Some(src),
        ))
        .await
        .unwrap();
        assert!(blob.status().complete);
        // Another blob only partly cached (a range read).
        let blob = st.open(kp, partial.len() as u64).await.unwrap();
        let src = MemSource::new(partial.clone(), 0);
        collect(BlobStore::read(blob, 0, 1000, Some(src)))
            .await
            .unwrap();
        drop(st);
        // Detached fill tasks finish their block writes, then let go of the database.
        for _ in 0..500 {
            if Arc::strong_count(&db) == 1 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        db.flush().unwrap();
    }
    cut(&p, std::fs::metadata(&p).unwrap().len() / 2);
    assert!(MetaDb::open(&p).is_err());
    let (db, damaged) = MetaDb::open_or_recover(&p).unwrap();
    let (aside, _why) = damaged.expect("reported as damaged");
    assert!(aside.exists() && p.exists());
    assert!(
        aside
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("olah-meta.redb.broken-")
    );
    let st = BlobStore::new(dir.path().join("blobs"), Arc::new(db), BS);
    let (kept, bytes, dropped) = st.recover_blobs().unwrap();
    assert_eq!((kept, bytes, dropped), (1, good.len() as u64, 1));
    assert!(
        !st.data_path(&kp).unwrap().exists(),
        "the partial file was deleted"
    );
    // The verified blob is served from disk, with no source at all.
    let blob = st.open(kg, good.len() as u64).await.unwrap();
    assert!(blob.status().complete);
    let got = collect(BlobStore::read(blob, 0, good.len() as u64 - 1, None))
        .await
        .unwrap();
    assert!(got == good);
    // A database in use by another process is no damage: an error naming it, left in place.
    let in_use = match MetaDb::open_or_recover(&p) {
        Ok(_) => panic!("opened twice"),
        Err(e) => e.to_string(),
    };
    assert!(in_use.contains(p.to_str().unwrap()), "{in_use}");
    assert_eq!(
        std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| e
                .as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains(".broken-"))
            .count(),
        1
    );
    // A healthy database is opened as it is.
    let again = MetaDb::open_or_recover(&dir.path().join("other.redb")).unwrap();
    assert!(again.1.is_none());
    let _: BlobKey = kp;
}
