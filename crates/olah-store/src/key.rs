//! Content keys: what a blob is addressed by.

use std::fmt;
use std::str::FromStr;

/// The content address of a cached blob.
///
/// LFS files are addressed by the sha256 of their content (the Hub's `X-Linked-Etag`), regular
/// files by their git blob id (sha1 of `"blob {len}\0" + content`, the Hub's `ETag`). Two repos or
/// revisions that share a file therefore share one blob.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BlobKey {
    /// sha256 of the content.
    Sha256([u8; 32]),
    /// git blob sha1 of the content.
    GitSha1([u8; 20]),
}

impl BlobKey {
    /// Parses a bare lowercase/uppercase hex digest: 64 hex → sha256, 40 hex → git sha1.
    pub fn from_etag(etag: &str) -> Option<Self> {
        let t = etag.trim().trim_start_matches("W/").trim_matches('"');
        match t.len() {
            64 => {
                let mut b = [0u8; 32];
                hex::decode_to_slice(t, &mut b).ok()?;
                Some(Self::Sha256(b))
            }
            40 => {
                let mut b = [0u8; 20];
                hex::decode_to_slice(t, &mut b).ok()?;
                Some(Self::GitSha1(b))
            }
            _ => None,
        }
    }

    /// Lowercase hex of the digest.
    pub fn hex(&self) -> String {
        match self {
            Self::Sha256(b) => hex::encode(b),
            Self::GitSha1(b) => hex::encode(b),
        }
    }

    /// Short kind name used in storage paths and database keys.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Sha256(_) => "sha256",
            Self::GitSha1(_) => "gitsha1",
        }
    }

    /// Relative storage path: `{kind}/{hex[0..2]}/{hex}`. Only hex digits and fixed names,
    /// so it can never escape the store root.
    pub fn rel_path(&self) -> String {
        let h = self.hex();
        format!("{}/{}/{}", self.kind(), &h[..2], h)
    }
}

impl fmt::Display for BlobKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind(), self.hex())
    }
}

impl fmt::Debug for BlobKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for BlobKey {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        let (kind, hex) = s.split_once(':').ok_or(())?;
        let k = Self::from_etag(hex).ok_or(())?;
        (k.kind() == kind).then_some(k).ok_or(())
    }
}

/// One range of one xorb, inclusive offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct XorbRange {
    /// First byte.
    pub start: u64,
    /// Last byte (inclusive).
    pub end: u64,
}

impl XorbRange {
    /// Length in bytes.
    pub fn len(&self) -> u64 {
        self.end - self.start + 1
    }

    /// Never empty (inclusive ranges hold at least one byte).
    pub fn is_empty(&self) -> bool {
        false
    }

    pub(crate) fn contains(&self, o: &XorbRange) -> bool {
        self.start <= o.start && o.end <= self.end
    }
}

/// The key of a Xet session or grant in the index: the sha256 of a token, never the token
/// itself (so the index never holds a credential).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionId([u8; 32]);

impl SessionId {
    /// The id of a token: its sha256.
    pub fn of_token(token: &[u8]) -> Self {
        use sha2::Digest as _;
        Self(sha2::Sha256::digest(token).into())
    }

    /// The raw hash.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A prefix is enough to tell ids apart in logs.
        write!(f, "SessionId({}…)", hex::encode(&self.0[..4]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_etags_and_round_trips() {
        let sha = "09c96df9c4e3be2affce574bf06110e09733afdf5a282f107207e160ae6442e4";
        let k = BlobKey::from_etag(&format!("\"{sha}\"")).unwrap();
        assert_eq!(k.kind(), "sha256");
        assert_eq!(k.hex(), sha);
        assert_eq!(k.to_string().parse::<BlobKey>().unwrap(), k);
        let g = BlobKey::from_etag("W/\"c26a06598120fcdb4ada1894f4a68d491c854d87\"").unwrap();
        assert_eq!(g.kind(), "gitsha1");
        assert_eq!(
            g.rel_path(),
            "gitsha1/c2/c26a06598120fcdb4ada1894f4a68d491c854d87"
        );
        assert!(BlobKey::from_etag("\"abc\"").is_none());
        assert!(BlobKey::from_etag(&"z".repeat(40)).is_none());
        assert!(
            "sha256:c26a06598120fcdb4ada1894f4a68d491c854d87"
                .parse::<BlobKey>()
                .is_err()
        );
    }
}
