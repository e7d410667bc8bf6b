//! Rebuilding file bytes from a reconstruction, without I/O: [`plan`] says which decoded bytes
//! of which term a file range needs, and a [`TermDecoder`] turns the bytes of a term's xorb
//! range (chunk records, fed in pieces as they arrive) into those file bytes and, on request,
//! the chunk hashes that verify them.
//!
//! The I/O loop around it is the caller's:
//!
//! ```text
//! for part in plan(&recon, first, last)? {
//!     let term = &recon.terms[part.term];
//!     let mut dec = TermDecoder::new(term, &part, hash_chunks);
//!     let stream = fetch xorb term.hash, bytes part.fetch.bytes;
//!     while dec.needs_more() {
//!         match stream.next() { Some(bytes) => send(dec.push(&bytes)?), None => break }
//!     }
//!     dec.finish()?;
//! }
//! ```

use bytes::{Bytes, BytesMut};

use crate::hash::{XetHash, chunk_hash};
use crate::recon::{Fetch, Recon, Span, Term};
use crate::xorb::{ChunkHeader, HEADER_LEN, XorbError, decode};

/// Why file bytes cannot be rebuilt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RebuildError {
    /// A term has no fetch range holding its chunks.
    #[error("no fetch range for a term of {0}")]
    NoFetch(String),
    /// The terms end before the last byte asked for.
    #[error("reconstruction ends before byte {0}")]
    EndsBefore(u64),
    /// A chunk record does not parse or decode.
    #[error("xorb {hash}: {source}")]
    Record {
        /// Xorb hash.
        hash: String,
        /// What is wrong with the record.
        source: XorbError,
    },
    /// The xorb range ended before the term's last chunk.
    #[error("xorb {hash}: the range ended at chunk {at}, the term ends at chunk {end}")]
    Short {
        /// Xorb hash.
        hash: String,
        /// Index of the first chunk not received.
        at: u64,
        /// End (exclusive) of the term's chunk range.
        end: u64,
    },
    /// The term's chunks decode to another length than announced.
    #[error("term of {hash} decoded to {produced} bytes, announced {announced}")]
    Length {
        /// Xorb hash.
        hash: String,
        /// Decoded bytes (so far, when too many).
        produced: u64,
        /// `unpacked_length` of the term.
        announced: u64,
    },
}

/// The part of one term a file range needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TermPart {
    /// Index of the term in [`Recon::terms`].
    pub term: usize,
    /// The fetch range holding the term's chunks.
    pub fetch: Fetch,
    /// Decoded bytes of the term before the wanted ones.
    pub skip: u64,
    /// Wanted decoded bytes after `skip`.
    pub take: u64,
}

/// The terms (and what of each) that make up file bytes `first..=last`. Refused when a needed
/// term has no fetch range or the terms end before `last`.
pub fn plan(recon: &Recon, first: u64, last: u64) -> Result<Vec<TermPart>, RebuildError> {
    let (first, last) = (i128::from(first), i128::from(last));
    // File position of the term's first decoded byte (the first term starts `offset` early).
    let mut pos = -i128::from(recon.offset);
    let mut parts = Vec::new();
    for (i, t) in recon.terms.iter().enumerate() {
        let t_end = pos + i128::from(t.unpacked_length); // exclusive
        if t_end <= first {
            pos = t_end;
            continue;
        }
        if pos > last {
            break;
        }
        let fetch = recon
            .fetch_for(t)
            .ok_or_else(|| RebuildError::NoFetch(t.hash.clone()))?;
        let (a, b) = (first.max(pos), (last + 1).min(t_end));
        parts.push(TermPart {
            term: i,
            fetch,
            skip: (a - pos) as u64,
            take: (b - a).max(0) as u64,
        });
        pos = t_end;
    }
    if pos <= last {
        return Err(RebuildError::EndsBefore(last as u64));
    }
    Ok(parts)
}

/// What one [`TermDecoder::push`] produced.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// Wanted file bytes, in order.
    pub bytes: Vec<Bytes>,
    /// Hash and length of every chunk of the term decoded (when asked for).
    pub hashes: Vec<(XetHash, u64)>,
}

/// Decodes one term from its xorb range's bytes.
#[derive(Debug)]
pub struct TermDecoder {
    hash: String,
    /// The term's chunk range (end-exclusive).
    range: Span,
    announced: u64,
    /// Window of wanted decoded bytes: `[skip, skip + take)`.
    skip: u64,
    take: u64,
    hash_chunks: bool,
    buf: BytesMut,
    /// Index of the next record in the stream.
    next: u64,
    /// Decoded bytes of the term so far.
    produced: u64,
}

impl TermDecoder {
    /// A decoder for `term`'s part `part` (from [`plan`]); the bytes fed start at the first
    /// record of `part.fetch`. With `hash_chunks`, every chunk of the term is decoded and
    /// hashed; without, decoding stops once the wanted bytes are out.
    pub fn new(term: &Term, part: &TermPart, hash_chunks: bool) -> Self {
        Self {
            hash: term.hash.clone(),
            range: term.range,
            announced: term.unpacked_length,
            skip: part.skip,
            take: part.take,
            hash_chunks,
            buf: BytesMut::new(),
            next: part.fetch.chunks.start,
            produced: 0,
        }
    }

    /// The wanted bytes are out and the rest of the term need not be decoded: the window ends
    /// inside the term and no chunk hashes are wanted.
    fn satisfied(&self) -> bool {
        !self.hash_chunks
            && self.skip + self.take < self.announced
            && self.produced >= self.skip + self.take
    }

    /// Whether more bytes of the xorb range are needed.
    pub fn needs_more(&self) -> bool {
        self.next < self.range.end && !self.satisfied()
    }

    fn record_err(&self, source: XorbError) -> RebuildError {
        RebuildError::Record {
            hash: self.hash.clone(),
            source,
        }
    }

    /// Feeds the next bytes of the xorb range; returns what they completed. Bytes past the
    /// term's last chunk are ignored.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Decoded, RebuildError> {
        let mut out = Decoded::default();
        if !self.needs_more() {
            return Ok(out);
        }
        self.buf.extend_from_slice(bytes);
        while self.needs_more() && self.buf.len() >= HEADER_LEN {
            let h = ChunkHeader::parse(&self.buf).map_err(|e| self.record_err(e))?;
            if self.buf.len() < h.record_len() {
                break;
            }
            let rec = self.buf.split_to(h.record_len());
            let idx = self.next;
            self.next += 1;
            if idx < self.range.start {
                continue;
            }
            let data = decode(&h, &rec[HEADER_LEN..]).map_err(|e| self.record_err(e))?;
            if self.hash_chunks {
                out.hashes.push((chunk_hash(&data), data.len() as u64));
            }
            let c0 = self.produced;
            self.produced += data.len() as u64;
            if self.produced > self.announced {
                return Err(RebuildError::Length {
                    hash: self.hash.clone(),
                    produced: self.produced,
                    announced: self.announced,
                });
            }
            let (a, b) = (
                self.skip.max(c0),
                (self.skip + self.take).min(self.produced),
            );
            if a < b {
                out.bytes
                    .push(Bytes::from(data).slice((a - c0) as usize..(b - c0) as usize));
            }
        }
        Ok(out)
    }

    /// Checks, once the xorb range has ended or [`Self::needs_more`] is false, that the term
    /// was decoded as far as needed and to its announced length.
    pub fn finish(self) -> Result<(), RebuildError> {
        if self.satisfied() {
            return Ok(());
        }
        if self.next < self.range.end {
            return Err(RebuildError::Short {
                hash: self.hash,
                at: self.next,
                end: self.range.end,
            });
        }
        if self.produced != self.announced {
            return Err(RebuildError::Length {
                hash: self.hash,
                produced: self.produced,
                announced: self.announced,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::xorb::encode_record;

    const X: &str = "1111111111111111111111111111111111111111111111111111111111111111";
    const Y: &str = "2222222222222222222222222222222222222222222222222222222222222222";

    /// Chunk `i` of a test xorb: `len` bytes of a pattern (compressible for even `i`).
    fn chunk(i: u64, len: usize) -> Vec<u8> {
        (0..len)
            .map(|j| {
                if i.is_multiple_of(2) {
                    (j / 64) as u8
                } else {
                    (j as u64 * 31 + i * 7) as u8
                }
            })
            .collect()
    }

    /// A xorb of chunks with the given lengths: (records, byte offset of each record + end).
    fn xorb(lens: &[usize]) -> (Vec<u8>, Vec<u64>) {
        let mut bytes = Vec::new();
        let mut offs = vec![0];
        for (i, &n) in lens.iter().enumerate() {
            bytes.extend(encode_record(&chunk(i as u64, n)));
            offs.push(bytes.len() as u64);
        }
        (bytes, offs)
    }

    /// The file made of `X` chunks 1..3 then `Y` chunk 0, its recon, and the xorbs' bytes.
    fn sample() -> (Vec<u8>, Recon, BTreeMap<&'static str, Vec<u8>>) {
        let (xb, xo) = xorb(&[100, 200, 300, 400]);
        let (yb, yo) = xorb(&[50]);
        let file: Vec<u8> = [chunk(1, 200), chunk(2, 300), chunk(0, 50)].concat();
        let span = |start, end| Span { start, end };
        let recon = Recon {
            offset: 0,
            terms: vec![
                Term {
                    hash: X.into(),
                    unpacked_length: 500,
                    range: span(1, 3),
                },
                Term {
                    hash: Y.into(),
                    unpacked_length: 50,
                    range: span(0, 1),
                },
            ],
            fetch: BTreeMap::from([
                (
                    X.to_string(),
                    vec![Fetch {
                        chunks: span(0, 4),
                        bytes: span(0, xo[4] - 1),
                    }],
                ),
                (
                    Y.to_string(),
                    vec![Fetch {
                        chunks: span(0, 1),
                        bytes: span(0, yo[1] - 1),
                    }],
                ),
            ]),
        };
        (file, recon, BTreeMap::from([(X, xb), (Y, yb)]))
    }

    /// File bytes and chunk hashes.
    type Rebuilt = (Vec<u8>, Vec<(XetHash, u64)>);

    /// Rebuilds `first..=last` feeding each xorb range in pieces of `piece` bytes.
    fn rebuild(
        recon: &Recon,
        xorbs: &BTreeMap<&str, Vec<u8>>,
        first: u64,
        last: u64,
        piece: usize,
        hash_chunks: bool,
    ) -> Result<Rebuilt, RebuildError> {
        let (mut out, mut hashes) = (Vec::new(), Vec::new());
        for part in plan(recon, first, last)? {
            let t = &recon.terms[part.term];
            let bytes = &xorbs[t.hash.as_str()]
                [part.fetch.bytes.start as usize..=part.fetch.bytes.end as usize];
            let mut dec = TermDecoder::new(t, &part, hash_chunks);
            let mut pieces = bytes.chunks(piece);
            while dec.needs_more() {
                let Some(p) = pieces.next() else { break };
                let d = dec.push(p)?;
                out.extend(d.bytes.iter().flat_map(|b| b.iter().copied()));
                hashes.extend(d.hashes);
            }
            dec.finish()?;
        }
        Ok((out, hashes))
    }

    #[test]
    fn rebuilds_every_range_in_any_piece_size() {
        let (file, recon, xorbs) = sample();
        let n = file.len() as u64;
        for (a, b) in [
            (0, n - 1),
            (0, 0),
            (199, 200),
            (150, 520),
            (499, 500),
            (n - 1, n - 1),
        ] {
            for piece in [1, 7, 1000, 1 << 20] {
                for hash in [false, true] {
                    let (got, _) = rebuild(&recon, &xorbs, a, b, piece, hash).unwrap();
                    assert_eq!(got, file[a as usize..=b as usize], "{a}-{b} by {piece}");
                }
            }
        }
        // An offset into the first term shifts the file.
        let recon2 = Recon {
            offset: 120,
            ..recon.clone()
        };
        let (got, _) = rebuild(&recon2, &xorbs, 0, 9, 13, false).unwrap();
        assert_eq!(got, file[120..130]);
        assert_eq!(
            rebuild(&recon2, &xorbs, 0, n - 120, 13, false).unwrap_err(),
            RebuildError::EndsBefore(n - 120)
        );
    }

    #[test]
    fn chunk_hashes_cover_whole_terms() {
        let (file, recon, xorbs) = sample();
        let (_, hashes) = rebuild(&recon, &xorbs, 10, 20, 64, true).unwrap();
        assert_eq!(
            hashes,
            vec![
                (chunk_hash(&chunk(1, 200)), 200),
                (chunk_hash(&chunk(2, 300)), 300)
            ]
        );
        let (_, all) = rebuild(&recon, &xorbs, 0, file.len() as u64 - 1, 64, true).unwrap();
        assert_eq!(all.len(), 3);
        // Without hashes the decoder stops once the wanted bytes are out.
        let t = &recon.terms[0];
        let part = plan(&recon, 0, 10).unwrap()[0];
        let mut dec = TermDecoder::new(t, &part, false);
        let d = dec.push(&xorbs[X]).unwrap();
        assert!(!dec.needs_more());
        assert_eq!(d.bytes.concat(), file[..11]);
        dec.finish().unwrap();
    }

    #[test]
    fn planning_picks_the_overlapping_terms() {
        let (_, recon, _) = sample();
        let p = plan(&recon, 450, 520).unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!((p[0].term, p[0].skip, p[0].take), (0, 450, 50));
        assert_eq!((p[1].term, p[1].skip, p[1].take), (1, 0, 21));
        let p = plan(&recon, 500, 500).unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!((p[0].term, p[0].skip, p[0].take), (1, 0, 1));
        assert_eq!(plan(&recon, 0, 550), Err(RebuildError::EndsBefore(550)));
        let mut orphan = recon.clone();
        orphan.fetch.remove(Y);
        assert_eq!(
            plan(&orphan, 0, 549),
            Err(RebuildError::NoFetch(Y.to_string()))
        );
        assert_eq!(plan(&orphan, 0, 499).unwrap().len(), 1, "Y is not needed");
    }

    #[test]
    fn bad_xorb_bytes_are_refused() {
        let (file, recon, xorbs) = sample();
        let last = file.len() as u64 - 1;
        // Cut short: the range ends inside the term.
        let (_, offs) = xorb(&[100, 200, 300, 400]);
        let mut cut = xorbs.clone();
        let x = cut.get_mut(X).unwrap();
        x.truncate(offs[2] as usize + 3); // inside chunk 2's header
        let mut r = recon.clone();
        r.fetch.get_mut(X).unwrap()[0].bytes.end = x.len() as u64 - 1;
        assert!(matches!(
            rebuild(&r, &cut, 0, last, 100, false),
            Err(RebuildError::Short { at: 2, end: 3, .. })
        ));
        // Announced length wrong either way.
        for len in [499, 501] {
            let mut r = recon.clone();
            r.terms[0].unpacked_length = len;
            r.terms[1].unpacked_length = 50 + 500 - len;
            let e = rebuild(&r, &xorbs, 0, last, 100, true).unwrap_err();
            assert!(matches!(e, RebuildError::Length { .. }), "{len}: {e}");
        }
        // A record that does not parse.
        let mut bad = xorbs.clone();
        bad.get_mut(Y).unwrap()[0] = 9;
        assert!(matches!(
            rebuild(&recon, &bad, 0, last, 100, false),
            Err(RebuildError::Record { .. })
        ));
    }
}
