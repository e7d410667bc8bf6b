//! Xet hashes: chunk hashes, the aggregated (Merkle) hash of a chunk sequence, file and xorb
//! hashes, and the Hub's string form (PROTOCOL.md §4.5).

use std::fmt;
use std::str::FromStr;

/// Whether `s` is a hash in the Hub's string form as URLs and JSON carry it: 64 lowercase hex
/// digits (safe to use as a path component).
pub fn is_hash_str(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Key of chunk hashes.
pub const DATA_KEY: [u8; 32] = [
    102, 151, 245, 119, 91, 149, 80, 222, 49, 53, 203, 172, 165, 151, 24, 28, 157, 228, 33, 16,
    155, 235, 43, 88, 180, 208, 176, 75, 147, 173, 242, 41,
];

/// Key of internal Merkle nodes.
pub const INTERNAL_NODE_KEY: [u8; 32] = [
    1, 126, 197, 199, 165, 71, 41, 150, 253, 148, 102, 102, 180, 138, 2, 230, 93, 221, 83, 111, 55,
    199, 109, 210, 248, 99, 82, 230, 74, 83, 113, 63,
];

/// Key of term verification hashes (shards).
pub const VERIFICATION_KEY: [u8; 32] = [
    127, 24, 87, 214, 206, 86, 237, 102, 18, 127, 249, 19, 231, 165, 195, 243, 164, 205, 38, 213,
    181, 219, 73, 230, 65, 36, 152, 127, 40, 251, 148, 195,
];

/// A 32-byte Xet hash (chunk, xorb or file).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct XetHash(pub [u8; 32]);

/// A string that is not 64 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a Xet hash: expected 64 hex digits")]
pub struct BadHash;

impl XetHash {
    /// The Hub's string form: each 8-byte word printed as a little-endian u64 (16 hex digits).
    pub fn to_hex(&self) -> String {
        let mut out = String::with_capacity(64);
        for w in self.0.chunks_exact(8) {
            let v = u64::from_le_bytes(w.try_into().expect("8-byte word"));
            out.push_str(&format!("{v:016x}"));
        }
        out
    }

    /// Parses the string form.
    pub fn from_hex(s: &str) -> Result<Self, BadHash> {
        if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(BadHash);
        }
        let mut out = [0u8; 32];
        for (i, w) in out.chunks_exact_mut(8).enumerate() {
            let v = u64::from_str_radix(&s[i * 16..i * 16 + 16], 16).map_err(|_| BadHash)?;
            w.copy_from_slice(&v.to_le_bytes());
        }
        Ok(Self(out))
    }

    fn word(&self, i: usize) -> u64 {
        u64::from_le_bytes(self.0[i * 8..i * 8 + 8].try_into().expect("8-byte word"))
    }
}

impl fmt::Display for XetHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for XetHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "XetHash({})", self.to_hex())
    }
}

impl FromStr for XetHash {
    type Err = BadHash;
    fn from_str(s: &str) -> Result<Self, BadHash> {
        Self::from_hex(s)
    }
}

/// Hash of one chunk's (uncompressed) bytes.
pub fn chunk_hash(data: &[u8]) -> XetHash {
    XetHash(*blake3::keyed_hash(&DATA_KEY, data).as_bytes())
}

/// Most children of one internal node; the mean is 4.
const MAX_CHILDREN: usize = 8;
const MEAN_BRANCHING: u64 = 4;

/// Where the next group of `nodes` ends (its length).
fn next_cut(nodes: &[(XetHash, u64)]) -> usize {
    if nodes.len() <= 2 {
        return nodes.len();
    }
    let end = (MAX_CHILDREN + 1).min(nodes.len());
    for (i, (h, _)) in nodes.iter().enumerate().take(end).skip(2) {
        if h.word(3) % MEAN_BRANCHING == 0 {
            return i + 1;
        }
    }
    end
}

fn merge(nodes: &[(XetHash, u64)]) -> (XetHash, u64) {
    let mut text = String::with_capacity(nodes.len() * 90);
    let mut len = 0;
    for (h, l) in nodes {
        text.push_str(&format!("{} : {l}\n", h.to_hex()));
        len += l;
    }
    (
        XetHash(*blake3::keyed_hash(&INTERNAL_NODE_KEY, text.as_bytes()).as_bytes()),
        len,
    )
}

/// The aggregated hash of a sequence of `(chunk hash, chunk length)`; all zeros when empty.
pub fn merkle_root(chunks: &[(XetHash, u64)]) -> XetHash {
    if chunks.is_empty() {
        return XetHash::default();
    }
    let mut level: Vec<(XetHash, u64)> = chunks.to_vec();
    while level.len() > 1 {
        let mut next = Vec::with_capacity(level.len() / 2 + 1);
        let mut i = 0;
        while i < level.len() {
            let cut = next_cut(&level[i..]);
            next.push(merge(&level[i..i + cut]));
            i += cut;
        }
        level = next;
    }
    level[0].0
}

/// The hash of a xorb: the aggregated hash of its chunks.
pub fn xorb_hash(chunks: &[(XetHash, u64)]) -> XetHash {
    merkle_root(chunks)
}

/// The hash of a file: keyed (zero key) over the aggregated hash of its chunks; all zeros for an
/// empty file.
pub fn file_hash(chunks: &[(XetHash, u64)]) -> XetHash {
    if chunks.is_empty() {
        return XetHash::default();
    }
    XetHash(*blake3::keyed_hash(&[0u8; 32], &merkle_root(chunks).0).as_bytes())
}

/// The verification hash of a term (the raw chunk hashes of its range), used in shards.
pub fn verification_hash(chunk_hashes: &[XetHash]) -> XetHash {
    let mut h = blake3::Hasher::new_keyed(&VERIFICATION_KEY);
    for c in chunk_hashes {
        h.update(&c.0);
    }
    XetHash(*h.finalize().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_form_reverses_each_word() {
        let mut b = [0u8; 32];
        for (i, x) in b.iter_mut().enumerate() {
            *x = i as u8;
        }
        let h = XetHash(b);
        let s = h.to_hex();
        assert!(s.starts_with("0706050403020100"), "{s}");
        assert_eq!(XetHash::from_hex(&s).unwrap(), h);
        assert!(XetHash::from_hex("zz").is_err());
        assert!(XetHash::from_hex(&"g".repeat(64)).is_err());
    }

    #[test]
    fn empty_file_hash_is_zero_and_single_chunk_root_is_the_chunk() {
        assert_eq!(file_hash(&[]), XetHash::default());
        let c = chunk_hash(b"hello");
        assert_eq!(merkle_root(&[(c, 5)]), c);
    }
}
