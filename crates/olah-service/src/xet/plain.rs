//! Plain HTTP for Xet files: [`XetFileSource`] rebuilds a file's bytes from the xorb store
//! (the same cache Xet clients fill), checking the whole file against its Xet hash.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use http::HeaderValue;
use olah_store::SourceError;
use olah_types::RepoRef;
use olah_xet::rebuild::{TermDecoder, plan};

use super::*;

impl XetMirror {
    pub fn file_source(
        self: &Arc<Self>,
        repo: &RepoRef,
        commit: &str,
        auth: Option<&HeaderValue>,
        file: &str,
        size: u64,
    ) -> Option<Arc<dyn olah_store::Source>> {
        if self.policy.offline() || !self.serves(repo) || !is_hash(file) {
            return None;
        }
        Some(Arc::new(XetFileSource {
            mirror: self.clone(),
            session: Session::new(repo, commit, auth, self.gate.caller(auth), u64::MAX),
            file: file.to_string(),
            size,
        }))
    }
}

impl XetMirror {
    /// The bytes of a Storage Bucket file: rebuilt from the xorb store (cached by Xet hash,
    /// shared with repositories), filling misses upstream with a CAS token of the bucket for
    /// this caller. Unlike [`XetMirror::file_source`] it also works offline (the cached
    /// reconstruction and xorb ranges, for a file known to belong to the bucket): buckets have
    /// no other cache.
    pub fn bucket_source(
        self: &Arc<Self>,
        bucket: &RepoRef,
        auth: Option<&HeaderValue>,
        file: &str,
        size: u64,
    ) -> Option<Arc<dyn olah_store::Source>> {
        if !self.serves(bucket) || !is_hash(file) {
            return None;
        }
        Some(Arc::new(XetFileSource {
            mirror: self.clone(),
            session: Session::new(bucket, "", auth, self.gate.caller(auth), u64::MAX),
            file: file.to_string(),
            size,
        }))
    }
}

/// Rebuilds byte ranges of one Xet file from the xorb store (filling misses upstream).
pub struct XetFileSource {
    mirror: Arc<XetMirror>,
    session: Session,
    file: String,
    size: u64,
}

#[async_trait]
impl olah_store::Source for XetFileSource {
    async fn fetch(
        &self,
        start: u64,
        end: u64,
    ) -> Result<BoxStream<'static, Result<Bytes, SourceError>>, SourceError> {
        // Always the whole-file reconstruction, under the key hf_xet's own query uses, so one
        // cached answer serves both paths.
        let whole = Some((0, Some(self.size.saturating_sub(1))));
        let recon = self
            .mirror
            .reconstruction(&self.session, &self.file, whole)
            .await
            .map_err(|e| SourceError::new(format!("reconstruction failed: {e:?}"), None))?;
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, SourceError>>(4);
        let m = self.mirror.clone();
        m.spawn_verify(&recon, self.session.clone(), self.file.clone());
        // The whole file passes through: check it against its Xet file hash too.
        let verify = (start == 0 && end + 1 == self.size).then(|| self.file.clone());
        tokio::spawn(async move {
            if let Err(e) = produce(&m, &recon, start, end, verify.as_deref(), &tx).await {
                let _ = tx.send(Err(e)).await;
            }
        });
        Ok(tokio_stream::wrappers::ReceiverStream::new(rx).boxed())
    }
}

/// Sends the decoded bytes `start..=end` of the file `recon` describes. With `verify` (the whole
/// file is produced), every chunk is hashed and the last piece is held back until the chunk
/// hashes give the expected Xet file hash; on a mismatch the xorbs involved are dropped from the
/// cache and the reader gets an error instead of the last piece.
async fn produce(
    m: &Arc<XetMirror>,
    recon: &Recon,
    start: u64,
    end: u64,
    verify: Option<&str>,
    tx: &tokio::sync::mpsc::Sender<Result<Bytes, SourceError>>,
) -> Result<(), SourceError> {
    let mut hashes: Vec<(olah_xet::XetHash, u64)> = Vec::new();
    let mut held: Option<Bytes> = None;
    produce_inner(
        m,
        recon,
        start,
        end,
        verify.is_some(),
        &mut hashes,
        &mut held,
        tx,
    )
    .await?;
    if let Some(file) = verify {
        let got = olah_xet::file_hash(&hashes).to_hex();
        if got != file {
            let store = m.state.store.clone();
            let xorbs: Vec<String> = recon.fetch.keys().cloned().collect();
            let _ = tokio::task::spawn_blocking(move || {
                for x in xorbs {
                    store.remove(&x);
                }
            })
            .await;
            tracing::warn!(file = %file, got = %got, "Xet file hash mismatch: its xorbs were dropped");
            return Err(SourceError::corrupt(format!(
                "Xet file hash mismatch: expected {file}, got {got}"
            )));
        }
    }
    if let Some(b) = held {
        let _ = tx.send(Ok(b)).await;
    }
    Ok(())
}

/// The I/O loop around [`olah_xet::rebuild`]: each term part the plan names is decoded from its
/// xorb range as the bytes arrive; every piece but the last goes out at once, the last is left
/// in `held`.
#[allow(clippy::too_many_arguments)]
async fn produce_inner(
    m: &Arc<XetMirror>,
    recon: &Recon,
    start: u64,
    end: u64,
    hash_chunks: bool,
    hashes: &mut Vec<(olah_xet::XetHash, u64)>,
    held: &mut Option<Bytes>,
    tx: &tokio::sync::mpsc::Sender<Result<Bytes, SourceError>>,
) -> Result<(), SourceError> {
    let err = |e: String| SourceError::new(e, None);
    let parts = plan(recon, start, end).map_err(|e| err(e.to_string()))?;
    for part in parts {
        let t = &recon.terms[part.term];
        let range = store_range(part.fetch.bytes);
        let mut s = m
            .xorb_bytes(&t.hash, range, range, part.fetch.chunks)
            .await
            .map_err(|e| err(format!("xorb {}: {e:?}", t.hash)))?;
        let mut dec = TermDecoder::new(t, &part, hash_chunks);
        while dec.needs_more() {
            let bytes = match s.next().await {
                Some(Ok(b)) => b,
                Some(Err(e)) => return Err(err(e.to_string())),
                None => break,
            };
            let out = dec.push(&bytes).map_err(|e| err(e.to_string()))?;
            hashes.extend(out.hashes);
            for piece in out.bytes {
                if let Some(prev) = held.replace(piece)
                    && tx.send(Ok(prev)).await.is_err()
                {
                    return Err(err("the reader went away".into()));
                }
            }
        }
        dec.finish().map_err(|e| err(e.to_string()))?;
    }
    Ok(())
}
