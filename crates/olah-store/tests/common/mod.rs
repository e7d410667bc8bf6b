//! Helpers shared by the store's hardening tests: an in-memory source that counts its requests.

#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use olah_store::{BlobKey, Source, SourceError, StoreError};
use sha2::Digest;

/// Serves ranges of `data` in 8 KiB pieces, `delay_ms` apart; counts requests.
pub struct MemSource {
    pub data: Bytes,
    pub requests: AtomicUsize,
    pub delay_ms: u64,
}

impl MemSource {
    pub fn new(data: Bytes, delay_ms: u64) -> Arc<Self> {
        Arc::new(Self {
            data,
            requests: AtomicUsize::new(0),
            delay_ms,
        })
    }

    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
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
        let end = end.min(self.data.len() as u64 - 1);
        let body = self.data.slice(start as usize..=end as usize);
        let pieces: Vec<Bytes> = body.chunks(8192).map(|c| body.slice_ref(c)).collect();
        let delay = self.delay_ms;
        Ok(futures::stream::iter(pieces)
            .then(move |p| async move {
                if delay > 0 {
                    tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
                }
                Ok(p)
            })
            .boxed())
    }
}

/// Deterministic pseudo-random bytes.
pub fn data(len: usize, seed: u32) -> Bytes {
    let mut v = Vec::with_capacity(len);
    let mut x: u32 = seed;
    for _ in 0..len {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        v.push((x >> 16) as u8);
    }
    Bytes::from(v)
}

pub fn key_of(d: &[u8]) -> BlobKey {
    BlobKey::Sha256(sha2::Sha256::digest(d).into())
}

/// Everything a read stream yields, or its error together with the bytes received before it.
pub async fn collect(mut s: olah_store::ByteStream) -> Result<Vec<u8>, (StoreError, usize)> {
    let mut out = Vec::new();
    while let Some(c) = s.next().await {
        match c {
            Ok(b) => out.extend_from_slice(&b),
            Err(e) => return Err((e, out.len())),
        }
    }
    Ok(out)
}
