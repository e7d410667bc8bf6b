//! Content-defined chunking as Xet does it (gear hash, PROTOCOL.md §4.5).

/// Chunks are at least this long (except the last).
pub const MIN_CHUNK: usize = 8 * 1024;
/// Chunks are cut here at the latest.
pub const MAX_CHUNK: usize = 128 * 1024;
const MASK: u64 = 0xFFFF_0000_0000_0000;
/// The gear hash depends only on the last 64 bytes, so hashing can start this far before the
/// minimum length.
const WINDOW: usize = 64;

/// Length of the first chunk of `data`. Exact when `data` holds at least [`MAX_CHUNK`] bytes
/// or is the final remainder of the input (so a streaming chunker can call it on a window).
pub fn next_chunk_len(data: &[u8]) -> usize {
    if data.len() <= MIN_CHUNK {
        return data.len();
    }
    let limit = data.len().min(MAX_CHUNK);
    let mut hasher = gearhash::Hasher::new(&gearhash::DEFAULT_TABLE);
    let mut pos = MIN_CHUNK - WINDOW;
    while pos < limit {
        match hasher.next_match(&data[pos..limit], MASK) {
            Some(n) if pos + n >= MIN_CHUNK => return pos + n,
            Some(n) => pos += n,
            None => break,
        }
    }
    limit
}

/// Lengths of the chunks of `data`, in order.
pub fn chunk_lengths(data: &[u8]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < data.len() {
        let n = next_chunk_len(&data[start..]);
        out.push(n);
        start += n;
    }
    out
}

/// Chunks a stream: feed bytes with [`Chunker::push`], take finished chunks as they appear, and
/// call [`Chunker::finish`] at the end. Holds at most about [`MAX_CHUNK`] bytes plus one push.
#[derive(Default)]
pub struct Chunker {
    buf: Vec<u8>,
}

impl Chunker {
    /// Adds bytes; returns the chunks completed by them.
    pub fn push(&mut self, data: &[u8]) -> Vec<Vec<u8>> {
        self.buf.extend_from_slice(data);
        let mut out = Vec::new();
        let mut start = 0;
        while self.buf.len() - start >= MAX_CHUNK {
            let n = next_chunk_len(&self.buf[start..]);
            out.push(self.buf[start..start + n].to_vec());
            start += n;
        }
        self.buf.drain(..start);
        out
    }

    /// The remaining chunks at the end of the input.
    pub fn finish(self) -> Vec<Vec<u8>> {
        chunk_lengths(&self.buf)
            .into_iter()
            .scan(0, |off, n| {
                let c = self.buf[*off..*off + n].to_vec();
                *off += n;
                Some(c)
            })
            .collect()
    }
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
