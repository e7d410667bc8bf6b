//! The fake Xet CAS: every Xet-flagged fixture file is chunked and packed into xorbs (chunks
//! shared between files or revisions are stored once, as in the real CAS), and served through
//! the v1/v2 reconstruction API and presigned-style xorb range URLs on the CDN host
//! (PROTOCOL.md §4). Xorb records are uncompressed (scheme 0), so xorb bytes are computed from
//! the file content on demand: gigabyte files cost no memory. Chunks of files up to
//! [`COMPRESS_MAX_FILE`] are encoded as xet-core does (LZ4 or byte-grouped LZ4 when that is
//! smaller, PROTOCOL.md §4.4) and kept in memory, so text and tensor-like fixtures are served as
//! genuinely compressed records.

use std::collections::HashMap;

use bytes::Bytes;
use olah_xet::XetHash;
use serde_json::{Value, json};

use crate::fixture::{Content, Fixture};

const MAX_XORB_BYTES: u64 = 64 << 20;
const MAX_XORB_CHUNKS: usize = 8192;
const RECORD_HEADER: u64 = 8;
/// Files up to this size get compressed records (when compression helps).
pub const COMPRESS_MAX_FILE: u64 = 16 << 20;

#[derive(Debug, Clone)]
struct ChunkSrc {
    content: Content,
    offset: u64,
    len: u64,
    hash: XetHash,
    /// The whole record (header + compressed payload) when it is compressed.
    record: Option<Bytes>,
}

#[derive(Debug, Default)]
struct Xorb {
    chunks: Vec<ChunkSrc>,
    /// Byte offset of each record, plus the total length at the end.
    offsets: Vec<u64>,
    hash: XetHash,
}

#[derive(Debug, Clone)]
struct Term {
    xorb: usize,
    start: usize,
    end: usize,
}

#[derive(Debug)]
struct FileLayout {
    size: u64,
    terms: Vec<Term>,
}

/// The CAS index.
#[derive(Debug, Default)]
pub struct Cas {
    xorbs: Vec<Xorb>,
    by_hash: HashMap<String, usize>,
    files: HashMap<String, FileLayout>,
}

/// Why a reconstruction cannot be answered.
pub enum CasError {
    /// Unknown file hash.
    NotFound,
    /// Range start beyond the file.
    Unsatisfiable,
}

impl Cas {
    /// Chunks and packs every Xet file of the fixture.
    pub fn build(fixture: &Fixture) -> Self {
        let mut cas = Cas::default();
        let mut chunk_index: HashMap<XetHash, (usize, usize)> = HashMap::new();
        for f in fixture
            .repos
            .iter()
            .flat_map(|r| r.commits.iter())
            .flat_map(|c| c.files.values())
            .chain(
                fixture
                    .buckets
                    .iter()
                    .flat_map(|b| b.files.values().chain(b.spares.iter())),
            )
            .filter(|f| f.xet)
        {
            let file_hash = f.xet_hash();
            if cas.files.contains_key(&file_hash) {
                continue;
            }
            let mut refs = Vec::new();
            let mut offset = 0;
            for &(hash, len) in f.xet_chunks() {
                let r = *chunk_index.entry(hash).or_insert_with(|| {
                    let need_new = cas.xorbs.last().is_none_or(|x: &Xorb| {
                        x.chunks.len() >= MAX_XORB_CHUNKS
                            || x.offsets.last().copied().unwrap_or(0) + len + RECORD_HEADER
                                > MAX_XORB_BYTES
                    });
                    if need_new {
                        cas.xorbs.push(Xorb {
                            offsets: vec![0],
                            ..Default::default()
                        });
                    }
                    let xi = cas.xorbs.len() - 1;
                    let x = &mut cas.xorbs[xi];
                    let record = (f.size() <= COMPRESS_MAX_FILE)
                        .then(|| {
                            let data: Vec<u8> =
                                f.content().pieces(offset, offset + len).flatten().collect();
                            olah_xet::xorb::encode_record(&data)
                        })
                        .filter(|r| r[4] != 0)
                        .map(Bytes::from);
                    let rec_len = record
                        .as_ref()
                        .map_or(RECORD_HEADER + len, |r| r.len() as u64);
                    x.chunks.push(ChunkSrc {
                        content: f.content().clone(),
                        offset,
                        len,
                        hash,
                        record,
                    });
                    let end = x.offsets.last().copied().unwrap_or(0) + rec_len;
                    x.offsets.push(end);
                    (xi, x.chunks.len() - 1)
                });
                refs.push(r);
                offset += len;
            }
            let mut terms: Vec<Term> = Vec::new();
            for (xi, ci) in refs {
                match terms.last_mut() {
                    Some(t) if t.xorb == xi && t.end == ci => t.end += 1,
                    _ => terms.push(Term {
                        xorb: xi,
                        start: ci,
                        end: ci + 1,
                    }),
                }
            }
            cas.files.insert(
                file_hash,
                FileLayout {
                    size: f.size(),
                    terms,
                },
            );
        }
        for (i, x) in cas.xorbs.iter_mut().enumerate() {
            let list: Vec<(XetHash, u64)> = x.chunks.iter().map(|c| (c.hash, c.len)).collect();
            x.hash = olah_xet::xorb_hash(&list);
            cas.by_hash.insert(x.hash.to_hex(), i);
        }
        cas
    }

    /// Total length of a xorb's records, if it exists.
    pub fn xorb_len(&self, hash: &str) -> Option<u64> {
        self.by_hash
            .get(hash)
            .map(|&i| *self.xorbs[i].offsets.last().expect("offsets start with 0"))
    }

    /// Number of xorbs.
    pub fn xorb_count(&self) -> usize {
        self.xorbs.len()
    }

    /// Bytes `start..=end` of a xorb's records, as pieces.
    pub fn xorb_bytes(&self, hash: &str, start: u64, end: u64) -> Option<Vec<Bytes>> {
        let x = &self.xorbs[*self.by_hash.get(hash)?];
        let mut out = Vec::new();
        for (i, c) in x.chunks.iter().enumerate() {
            let (rs, re) = (x.offsets[i], x.offsets[i + 1]); // record [rs, re)
            if re <= start || rs > end {
                continue;
            }
            if let Some(r) = &c.record {
                out.push(r.slice((start.max(rs) - rs) as usize..((end + 1).min(re) - rs) as usize));
                continue;
            }
            let mut rec = Vec::with_capacity(RECORD_HEADER as usize);
            rec.push(0u8);
            rec.extend_from_slice(&(c.len as u32).to_le_bytes()[..3]);
            rec.push(0u8);
            rec.extend_from_slice(&(c.len as u32).to_le_bytes()[..3]);
            let hdr = Bytes::from(rec);
            // Header part.
            let (hs, he) = (rs, rs + RECORD_HEADER);
            if he > start && hs <= end {
                out.push(
                    hdr.slice((start.max(hs) - hs) as usize..((end + 1).min(he) - hs) as usize),
                );
            }
            // Payload part.
            let (ps, pe) = (he, re);
            if pe > start && ps <= end {
                let a = start.max(ps) - ps + c.offset;
                let b = (end + 1).min(pe) - ps + c.offset;
                out.extend(c.content.pieces(a, b));
            }
        }
        Some(out)
    }

    /// A reconstruction for `range` (inclusive; the whole file when `None`), in the v1 or v2
    /// shape. `url` makes a signed xorb URL for (xorb hash, first byte, last byte).
    pub fn reconstruction(
        &self,
        file_hash: &str,
        range: Option<(u64, u64)>,
        v2: bool,
        url: &dyn Fn(&str, u64, u64) -> String,
    ) -> Result<Value, CasError> {
        let f = self.files.get(file_hash).ok_or(CasError::NotFound)?;
        let (a, b) = match range {
            Some((a, _)) if a >= f.size => return Err(CasError::Unsatisfiable),
            Some((a, b)) => (a, b.min(f.size.saturating_sub(1))),
            None if f.size == 0 => {
                return Ok(if v2 {
                    json!({"offset_into_first_range": 0, "terms": [], "xorbs": {}})
                } else {
                    json!({"offset_into_first_range": 0, "terms": [], "fetch_info": {}})
                });
            }
            None => (0, f.size - 1),
        };
        let mut terms = Vec::new();
        let mut offset_into_first = None;
        let mut pos = 0u64;
        for t in &f.terms {
            let x = &self.xorbs[t.xorb];
            let mut first = None;
            let mut last = 0;
            let mut unpacked = 0;
            for ci in t.start..t.end {
                let len = x.chunks[ci].len;
                if pos + len > a && pos <= b {
                    if first.is_none() {
                        first = Some(ci);
                        if offset_into_first.is_none() {
                            offset_into_first = Some(a - pos);
                        }
                    }
                    last = ci;
                    unpacked += len;
                }
                pos += len;
            }
            if let Some(first) = first {
                terms.push((t.xorb, first, last + 1, unpacked));
            }
        }
        let mut term_json = Vec::new();
        let mut v1: serde_json::Map<String, Value> = serde_json::Map::new();
        let mut v2m: serde_json::Map<String, Value> = serde_json::Map::new();
        for (xi, s, e, unpacked) in terms {
            let x = &self.xorbs[xi];
            let h = x.hash.to_hex();
            let (bs, be) = (x.offsets[s], x.offsets[e] - 1);
            term_json.push(
                json!({"hash": h, "unpacked_length": unpacked, "range": {"start": s, "end": e}}),
            );
            let u = url(&h, bs, be);
            v1.entry(h.clone()).or_insert_with(|| json!([])).as_array_mut().expect("array").push(
                json!({"range": {"start": s, "end": e}, "url": u, "url_range": {"start": bs, "end": be}}),
            );
            v2m.entry(h).or_insert_with(|| json!([])).as_array_mut().expect("array").push(
                json!({"url": u, "ranges": [{"chunks": {"start": s, "end": e}, "bytes": {"start": bs, "end": be}}]}),
            );
        }
        let off = offset_into_first.unwrap_or(0);
        Ok(if v2 {
            json!({"offset_into_first_range": off, "terms": term_json, "xorbs": v2m})
        } else {
            json!({"offset_into_first_range": off, "terms": term_json, "fetch_info": v1})
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::{FileFixture, Kind, RepoFixture};

    fn decode_file(cas: &Cas, file_hash: &str, range: Option<(u64, u64)>) -> Vec<u8> {
        let r = cas
            .reconstruction(file_hash, range, false, &|h, s, e| format!("{h}|{s}|{e}"))
            .ok()
            .unwrap();
        let mut out = Vec::new();
        for t in r["terms"].as_array().unwrap() {
            let h = t["hash"].as_str().unwrap();
            let fi = r["fetch_info"][h]
                .as_array()
                .unwrap()
                .iter()
                .find(|f| f["range"] == t["range"])
                .unwrap();
            let (s, e) = (
                fi["url_range"]["start"].as_u64().unwrap(),
                fi["url_range"]["end"].as_u64().unwrap(),
            );
            let raw: Vec<u8> = cas.xorb_bytes(h, s, e).unwrap().concat();
            let chunks = olah_xet::xorb::decode_records(&raw).unwrap();
            let data: Vec<u8> = chunks.concat();
            assert_eq!(data.len() as u64, t["unpacked_length"].as_u64().unwrap());
            out.extend(data);
        }
        let skip = r["offset_into_first_range"].as_u64().unwrap() as usize;
        out.drain(..skip);
        if let Some((a, b)) = range {
            out.truncate((b - a + 1) as usize);
        }
        out
    }

    #[test]
    fn reconstructs_exact_bytes_and_dedups_shared_chunks() {
        let base = Content::Generated {
            seed: 9,
            len: 3_000_000,
        };
        let patched = Content::Patched {
            seed: 9,
            len: 3_000_000,
            at: 1_500_000,
            patch: Bytes::from(vec![7u8; 1000]),
        };
        let mut repo = RepoFixture::with_files(
            Kind::Model,
            "a/b",
            vec![("w.bin", FileFixture::new("w.bin", base.clone()).xet())],
        );
        repo.commit(
            "patch",
            vec![("w.bin", FileFixture::new("w.bin", patched.clone()).xet())],
            &[],
        );
        let fx = Fixture::new(vec![repo], vec![]);
        let cas = Cas::build(&fx);
        let h1 = fx.repos[0].commits[0].files["w.bin"].xet_hash();
        let h2 = fx.repos[0].commits[1].files["w.bin"].xet_hash();
        assert_ne!(h1, h2);
        assert_eq!(decode_file(&cas, &h1, None), base.to_vec());
        assert_eq!(decode_file(&cas, &h2, None), patched.to_vec());
        assert_eq!(
            decode_file(&cas, &h2, Some((1_499_990, 1_500_009))),
            patched.to_vec()[1_499_990..1_500_010]
        );
        // Revision 2 adds only the chunks around the patch.
        let total: u64 = (0..cas.xorb_count())
            .map(|i| *cas.xorbs[i].offsets.last().unwrap())
            .sum();
        assert!(
            total < 3_000_000 + 400_000,
            "shared chunks stored once: {total}"
        );
    }
}
