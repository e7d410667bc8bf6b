//! Content-defined chunking as Xet does it (gear hash, PROTOCOL.md §4.5).

/// Chunks are at least this long (except the last).
pub const MIN_CHUNK: usize = 8 * 1024;
/// Chunks are cut here at the latest.
pub const MAX_CHUNK: usize = 128 * 1024;
const MASK: u64 = 0xFFFF_0000_0000_0000;
/// The gear hash depends only on the last 64 bytes, so hashing can start this far before the
/// minimum length.
const WINDOW: usize = 64;

/// Lengths of the chunks of `data`, in order.
pub fn chunk_lengths(data: &[u8]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < data.len() {
        let rest = &data[start..];
        if rest.len() <= MIN_CHUNK {
            out.push(rest.len());
            break;
        }
        let limit = rest.len().min(MAX_CHUNK);
        let from = MIN_CHUNK - WINDOW;
        let mut hasher = gearhash::Hasher::new(&gearhash::DEFAULT_TABLE);
        let mut cut = limit;
        let mut pos = from;
        while pos < limit {
            match hasher.next_match(&rest[pos..limit], MASK) {
                Some(n) => {
                    let len = pos + n;
                    if len >= MIN_CHUNK {
                        cut = len;
                        break;
                    }
                    pos = len;
                }
                None => break,
            }
        }
        out.push(cut);
        start += cut;
    }
    out
}

/// Chunks `data` and hashes each chunk: `(chunk hash, length)`.
pub fn chunk_hashes(data: &[u8]) -> Vec<(crate::XetHash, u64)> {
    let mut off = 0;
    chunk_lengths(data)
        .into_iter()
        .map(|l| {
            let h = crate::chunk_hash(&data[off..off + l]);
            off += l;
            (h, l as u64)
        })
        .collect()
}
