//! olah-xet: Xet content addressing, without I/O — chunk/xorb/file hashes and their string form,
//! content-defined chunking, xorb chunk records (PROTOCOL.md §4.4–4.5), the CAS reconstruction
//! answers (§4.2) and rebuilding file bytes from them. Built on the
//! `blake3`, `gearhash` and `lz4_flex` crates the official xet-core uses, and checked against
//! hashes produced by the official `hf_xet` (tests/fixtures).

pub mod chunk;
pub mod hash;
pub mod rebuild;
pub mod recon;
pub mod xorb;

pub use chunk::{Chunker, chunk_hashes, chunk_lengths, next_chunk_len};
pub use hash::{
    XetHash, chunk_hash, file_hash, is_hash_str, merkle_root, verification_hash, xorb_hash,
};
pub use rebuild::{Decoded, RebuildError, TermDecoder, TermPart, plan};
pub use recon::{Fetch, Recon, Span, Term, UpstreamUrl, parse_upstream, parse_upstream_value};
