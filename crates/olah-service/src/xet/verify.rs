//! Background checks of a whole file's chunk hashes against its Xet file hash: pending xorb
//! ranges that pass are promoted to verified, those of a file that fails are discarded.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use olah_store::{XorbRange, XorbStore};

use super::*;

impl XetMirror {
    /// Checks a file's chunk hashes against its Xet file hash once all its ranges are cached
    /// (in the background; one check per file at a time): pending ranges that pass are promoted
    /// to verified, pending ranges of a file that fails are discarded.
    /// `r` is the reconstruction just served: when all its ranges are verified already (every
    /// warm download) nothing is started.
    pub(crate) fn spawn_verify(self: &Arc<Self>, r: &Recon, s: Session, file: String) {
        if self.policy.offline() {
            return;
        }
        let me = self.clone();
        let ranges: Vec<(String, XorbRange)> = r
            .ranges()
            .map(|(x, b)| (x.to_string(), store_range(b)))
            .collect();
        tokio::spawn(async move {
            // Off the async workers: is every range verified already?
            let mut all_verified = true;
            for (x, b) in &ranges {
                if !matches!(me.state.store.coverage(x, *b).await, Ok(Some(true))) {
                    all_verified = false;
                    break;
                }
            }
            if all_verified
                || !me
                    .state
                    .verifying
                    .lock()
                    .expect("xet verifying")
                    .insert(file.clone())
            {
                return;
            }
            let res = me.verify_file(&s, &file).await;
            me.state
                .verifying
                .lock()
                .expect("xet verifying")
                .remove(&file);
            match res {
                Ok(Verdict::Verified(n)) if n > 0 => {
                    tracing::debug!(file = %file, ranges = n, "Xet file hash verified")
                }
                Ok(Verdict::Verified(_)) => {}
                Ok(Verdict::Mismatch(n)) => tracing::error!(
                    file = %file,
                    discarded = n,
                    "Xet file hash mismatch: unverified xorb ranges discarded"
                ),
                Err(why) => tracing::debug!(file = %file, why = %why, "Xet file not verified"),
            }
        });
    }

    async fn verify_file(self: &Arc<Self>, s: &Session, file: &str) -> Result<Verdict, String> {
        let recon = self
            .reconstruction(s, file, None)
            .await
            .map_err(|e| format!("{e:?}"))?;
        if recon.offset != 0 {
            return Err("not a whole-file reconstruction".into());
        }
        let store = self.state.store.clone();
        let needed: Arc<Vec<(String, XorbRange)>> = Arc::new(
            recon
                .ranges()
                .map(|(x, b)| (x.to_string(), store_range(b)))
                .collect(),
        );
        // Wait (bounded) until the client has fetched every range of the file. Ranges arrive
        // and stay: each poll looks only past the ones already seen.
        let deadline = Instant::now() + VERIFY_WAIT;
        let mut seen = 0;
        loop {
            let (st, n2) = (store.clone(), needed.clone());
            seen = tokio::task::spawn_blocking(move || {
                seen + n2[seen..]
                    .iter()
                    .take_while(|(x, r)| st.is_cached(x, *r))
                    .count()
            })
            .await
            .unwrap_or(seen);
            if seen == needed.len() {
                break;
            }
            if Instant::now() > deadline {
                return Err("not every range was fetched".into());
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let file = file.to_string();
        tokio::task::spawn_blocking(move || check_file(&store, &recon, &file))
            .await
            .map_err(|e| e.to_string())?
    }
}

/// How long a file check waits for the client to fetch the file's ranges.
const VERIFY_WAIT: Duration = Duration::from_secs(1800);

/// The outcome of a file hash check: pending ranges promoted, or discarded.
enum Verdict {
    Verified(usize),
    Mismatch(usize),
}

/// The chunk hashes of every term, from the ranges' hash files, against the file hash.
fn check_file(store: &XorbStore, recon: &Recon, file: &str) -> Result<Verdict, String> {
    let mut maps: HashMap<&str, Vec<olah_store::RangeChunks>> = HashMap::new();
    let mut hashes = Vec::new();
    let mut pending: Vec<(String, XorbRange)> = Vec::new();
    for t in &recon.terms {
        let map = maps
            .entry(t.hash.as_str())
            .or_insert_with(|| store.chunk_map(&t.hash));
        let rc = map
            .iter()
            .filter(|m| {
                let first = m.first_chunk as u64;
                first <= t.range.start && t.range.end <= first + m.chunks.len() as u64
            })
            .max_by_key(|m| m.verified)
            .ok_or_else(|| format!("no chunk hashes for a term of xorb {}", t.hash))?;
        let first = rc.first_chunk as u64;
        hashes.extend_from_slice(
            &rc.chunks[(t.range.start - first) as usize..(t.range.end - first) as usize],
        );
        if !rc.verified && !pending.iter().any(|(x, r)| *x == t.hash && *r == rc.range) {
            pending.push((t.hash.clone(), rc.range));
        }
    }
    if pending.is_empty() {
        return Ok(Verdict::Verified(0));
    }
    if olah_xet::file_hash(&hashes).to_hex() == file {
        let n = pending.iter().filter(|(x, r)| store.promote(x, *r)).count();
        Ok(Verdict::Verified(n))
    } else {
        let n = pending.iter().filter(|(x, r)| store.discard(x, *r)).count();
        Ok(Verdict::Mismatch(n))
    }
}
