//! On-disk compatibility: a cache directory laid out by the code before the storage traits
//! (tables, key strings, value encodings and file paths written here by hand, exactly as that
//! code wrote them) opens and serves offline with the trait-based stores. Plus the records that
//! must survive a restart: the signing secret and sessions.

mod common;

use std::sync::Arc;

use common::{collect, data, key_of};
use futures::StreamExt;
use olah_store::{
    BlobStore, KvIndex, MetaDb, RedbIndex, SessionId, Strategy, XorbRange, XorbStore,
};
use redb::{Database, TableDefinition};

const KV: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");
const BLOBS: TableDefinition<&str, &[u8]> = TableDefinition::new("blobs");
const BLOCKS: TableDefinition<(&str, u32), u32> = TableDefinition::new("blocks");
const API: TableDefinition<&str, &[u8]> = TableDefinition::new("api");

const BS: u64 = 64 * 1024;

#[tokio::test]
async fn a_cache_directory_of_the_previous_layout_opens_and_serves() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let d = data(2 * BS as usize + 77, 9);
    let key = key_of(&d);
    let hex = key.hex();
    // The data file: blobs/{kind}/{hh}/{hex}.
    let p = root.join("blobs/sha256").join(&hex[..2]).join(&hex);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, &d).unwrap();
    // A xorb range: xorbs/{hh}/{hash}/{start}-{end} and its `.c` side file.
    let x = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    let xdir = root.join("xorbs").join(&x[..2]).join(x);
    std::fs::create_dir_all(&xdir).unwrap();
    std::fs::write(xdir.join("0-9"), b"0123456789").unwrap();
    std::fs::write(xdir.join("0-9.c"), 5u32.to_le_bytes()).unwrap();
    // The database, with the four tables of the old code and its encodings.
    {
        let db = Database::create(root.join("olah-meta.redb")).unwrap();
        let tx = db.begin_write().unwrap();
        {
            let rec = format!(
                r#"{{"size":{},"block_size":{BS},"complete":true,"created":1,"last_access":2}}"#,
                d.len()
            );
            tx.open_table(BLOBS)
                .unwrap()
                .insert(key.to_string().as_str(), rec.as_bytes())
                .unwrap();
            let mut b = tx.open_table(BLOCKS).unwrap();
            for (i, c) in d.chunks(BS as usize).enumerate() {
                b.insert((key.to_string().as_str(), i as u32), crc32fast::hash(c))
                    .unwrap();
            }
            tx.open_table(KV)
                .unwrap()
                .insert("rev|m|main", br#"["abc"]"#.as_slice())
                .unwrap();
            let mut api = 5u64.to_be_bytes().to_vec();
            api.extend_from_slice(br#"{"a":1}"#);
            tx.open_table(API)
                .unwrap()
                .insert("api|x", api.as_slice())
                .unwrap();
        }
        tx.commit().unwrap();
    }
    let db = Arc::new(MetaDb::open(&root.join("olah-meta.redb")).unwrap());
    assert_eq!(
        db.get_json::<Vec<String>>("rev|m|main").unwrap(),
        Some(vec!["abc".to_string()])
    );
    assert_eq!(
        db.get_api::<serde_json::Value>("api|x").unwrap(),
        Some(serde_json::json!({"a": 1}))
    );
    let st = BlobStore::with_limit(
        root.join("blobs"),
        db.clone(),
        BS,
        Some(1 << 30),
        Strategy::Lru,
    );
    assert_eq!(st.usage().bytes(), d.len() as u64);
    let blob = st.open(key, d.len() as u64).await.unwrap();
    assert!(blob.status().complete);
    let got = collect(BlobStore::read(blob, 0, d.len() as u64 - 1, None))
        .await
        .unwrap();
    assert!(got == d, "served offline from the old files");
    let xs = XorbStore::open(root.join("xorbs")).unwrap();
    let r = XorbRange { start: 0, end: 9 };
    assert!(xs.is_verified(x, r));
    assert_eq!(xs.chunk_map(x)[0].first_chunk, 5);
    let xs = Arc::new(xs);
    type NoFetch =
        fn() -> futures::future::Ready<Result<olah_store::UpstreamBytes, olah_store::SourceError>>;
    let s = xs
        .read(
            x,
            XorbRange { start: 2, end: 4 },
            XorbRange { start: 2, end: 4 },
            olah_store::Expect {
                chunks: None,
                first_chunk: 0,
            },
            None::<NoFetch>,
        )
        .await
        .unwrap();
    let v: Vec<_> = s.collect().await;
    assert_eq!(&v[0].as_ref().unwrap()[..], b"234");
}

#[tokio::test]
async fn the_secret_and_sessions_survive_a_reopen_and_sessions_are_capped() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("olah-meta.redb");
    let far = 4_000_000_000_000u64;
    let ids: Vec<SessionId> = (0..5)
        .map(|i| SessionId::of_token(format!("hf_token_{i}").as_bytes()))
        .collect();
    let secret = {
        let db = Arc::new(MetaDb::open(&p).unwrap());
        db.set_session_cap(3);
        let idx = RedbIndex(db.clone());
        for (i, id) in ids.iter().enumerate() {
            idx.put_session(id, vec![i as u8], far).await.unwrap();
        }
        assert_eq!(db.session_count().unwrap(), 3, "capped");
        idx.secret("xorb-url").await.unwrap()
    };
    let db = Arc::new(MetaDb::open(&p).unwrap());
    db.set_session_cap(3);
    let idx = RedbIndex(db.clone());
    assert_eq!(idx.secret("xorb-url").await.unwrap(), secret);
    // The oldest two went; the newest three are back after the reopen.
    assert_eq!(idx.session(&ids[0]).await.unwrap(), None);
    assert_eq!(idx.session(&ids[1]).await.unwrap(), None);
    for (i, id) in ids.iter().enumerate().skip(2) {
        assert_eq!(idx.session(id).await.unwrap(), Some(vec![i as u8]));
    }
    // Expired ones are purged when read, and first when over the cap.
    let gone = SessionId::of_token(b"short");
    db.put_session(&gone, b"x", 1).unwrap();
    assert_eq!(
        db.session_count().unwrap(),
        3,
        "the expired one went before any live one"
    );
    assert_eq!(idx.session(&ids[2]).await.unwrap(), Some(vec![2]));
    // The token itself is never stored: only its hash.
    let raw = std::fs::read(&p).unwrap();
    assert!(!raw.windows(10).any(|w| w == b"hf_token_4"));
}

#[tokio::test]
async fn mem_sessions_are_capped_oldest_first() {
    let idx = olah_store::backend::mem::MemIndex::new();
    idx.set_session_cap(2);
    let ids: Vec<SessionId> = (0..3u8).map(|i| SessionId::of_token(&[i])).collect();
    for id in &ids {
        idx.put_session(id, vec![1], u64::MAX).await.unwrap();
    }
    assert_eq!(idx.session(&ids[0]).await.unwrap(), None);
    assert!(idx.session(&ids[1]).await.unwrap().is_some());
    assert!(idx.session(&ids[2]).await.unwrap().is_some());
}
