//! Xet CAS reconstruction answers (PROTOCOL.md §4.2): the v1 and v2 wire shapes as typed DTOs,
//! one URL-free normal form ([`Recon`]) for both, and the way back from it.
//!
//! * v1: `{"offset_into_first_range", "terms", "fetch_info": {xorb: [{"range", "url",
//!   "url_range"}]}}`
//! * v2: `{"offset_into_first_range", "terms", "xorbs": {xorb: [{"url", "ranges": [{"chunks",
//!   "bytes"}]}]}}`
//!
//! Chunk ranges are end-exclusive, byte ranges end-inclusive; both are refused unless ordered
//! (`start <= end`). Hashes (terms and xorb keys) must be 64 hex digits. Every term must lie
//! inside one fetch range of its xorb. Unknown fields are ignored, as the clients do.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::hash::is_hash_str;

/// A chunk range (end-exclusive) or byte range (end-inclusive), as the CAS writes them.
/// Deserializing refuses `start > end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawSpan")]
pub struct Span {
    /// First.
    pub start: u64,
    /// Last (bytes) or one past the last (chunks).
    pub end: u64,
}

#[derive(Deserialize)]
struct RawSpan {
    start: u64,
    end: u64,
}

impl TryFrom<RawSpan> for Span {
    type Error = String;

    fn try_from(r: RawSpan) -> Result<Self, String> {
        if r.start <= r.end {
            Ok(Self {
                start: r.start,
                end: r.end,
            })
        } else {
            Err(format!(
                "range {}..{} ends before it starts",
                r.start, r.end
            ))
        }
    }
}

/// One term: a chunk range of a xorb, in file order (the same in v1 and v2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Term {
    /// Xorb hash.
    pub hash: String,
    /// Decoded bytes of the chunk range.
    pub unpacked_length: u64,
    /// Chunk range, end-exclusive.
    pub range: Span,
}

/// Where a xorb's chunk range lies in its byte stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fetch {
    /// Chunk range, end-exclusive.
    pub chunks: Span,
    /// Byte range, end-inclusive.
    pub bytes: Span,
}

/// A reconstruction without any URL: content-addressed, so it can be cached and shared.
/// (Its serde form is what the mirror caches: keep the field names.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recon {
    /// Bytes to skip in the first term's decoded data.
    pub offset: u64,
    /// Terms in file order.
    pub terms: Vec<Term>,
    /// Fetch ranges per xorb.
    pub fetch: BTreeMap<String, Vec<Fetch>>,
}

impl Recon {
    /// Every fetch range, as (xorb hash, byte range, end-inclusive).
    pub fn ranges(&self) -> impl Iterator<Item = (&str, Span)> {
        self.fetch
            .iter()
            .flat_map(|(h, list)| list.iter().map(move |f| (h.as_str(), f.bytes)))
    }

    /// The fetch range that holds a term's chunks.
    pub fn fetch_for(&self, t: &Term) -> Option<Fetch> {
        self.fetch
            .get(&t.hash)?
            .iter()
            .find(|f| f.chunks.start <= t.range.start && t.range.end <= f.chunks.end)
            .copied()
    }
}

/// An upstream URL of one fetch range: (xorb hash, byte range, URL).
pub type UpstreamUrl = (String, Span, String);

/// v1 `fetch_info` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchInfoV1 {
    /// Chunk range, end-exclusive.
    pub range: Span,
    /// Presigned URL of the byte range.
    pub url: String,
    /// Byte range, end-inclusive.
    pub url_range: Span,
}

/// v1 answer (`QueryReconstructionResponse`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReconV1 {
    /// Bytes to skip in the first term's decoded data.
    #[serde(default)]
    pub offset_into_first_range: u64,
    /// Terms in file order.
    pub terms: Vec<Term>,
    /// Fetch entries per xorb.
    pub fetch_info: BTreeMap<String, Vec<FetchInfoV1>>,
}

/// v2 chunk and byte range under one URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RangeV2 {
    /// Chunk range, end-exclusive.
    pub chunks: Span,
    /// Byte range, end-inclusive.
    pub bytes: Span,
}

/// v2 `xorbs` entry: one URL for one or more ranges of a xorb.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct XorbFetchV2 {
    /// Presigned URL of the ranges.
    pub url: String,
    /// The ranges.
    pub ranges: Vec<RangeV2>,
}

/// v2 answer (`QueryReconstructionResponseV2`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReconV2 {
    /// Bytes to skip in the first term's decoded data.
    #[serde(default)]
    pub offset_into_first_range: u64,
    /// Terms in file order.
    pub terms: Vec<Term>,
    /// Fetch entries per xorb.
    pub xorbs: BTreeMap<String, Vec<XorbFetchV2>>,
}

/// Either answer: `fetch_info` is read when present, else `xorbs`.
#[derive(Deserialize)]
struct AnyRecon {
    #[serde(default)]
    offset_into_first_range: u64,
    terms: Vec<Term>,
    #[serde(default)]
    fetch_info: Option<BTreeMap<String, Vec<FetchInfoV1>>>,
    #[serde(default)]
    xorbs: Option<BTreeMap<String, Vec<XorbFetchV2>>>,
}

fn bad(what: impl std::fmt::Display) -> String {
    format!("malformed reconstruction: {what}")
}

/// Parses an upstream v1 or v2 reconstruction (JSON text) into the URL-free form plus the
/// upstream URL of each (xorb, byte range).
pub fn parse_upstream(body: &[u8]) -> Result<(Recon, Vec<UpstreamUrl>), String> {
    normalise(serde_json::from_slice(body).map_err(bad)?)
}

/// [`parse_upstream`] of an already parsed JSON value.
pub fn parse_upstream_value(v: &serde_json::Value) -> Result<(Recon, Vec<UpstreamUrl>), String> {
    normalise(AnyRecon::deserialize(v).map_err(bad)?)
}

fn normalise(a: AnyRecon) -> Result<(Recon, Vec<UpstreamUrl>), String> {
    if let Some(t) = a.terms.iter().find(|t| !is_hash_str(&t.hash)) {
        return Err(bad(format_args!("term hash {:?}", t.hash)));
    }
    let mut fetch: BTreeMap<String, Vec<Fetch>> = BTreeMap::new();
    let mut urls = Vec::new();
    let mut add = |h: &str, chunks: Span, bytes: Span, url: &str| -> Result<(), String> {
        if !is_hash_str(h) {
            return Err(bad("xorb hash"));
        }
        fetch
            .entry(h.to_string())
            .or_default()
            .push(Fetch { chunks, bytes });
        urls.push((h.to_string(), bytes, url.to_string()));
        Ok(())
    };
    if let Some(m) = &a.fetch_info {
        for (h, list) in m {
            for e in list {
                add(h, e.range, e.url_range, &e.url)?;
            }
        }
    } else if let Some(m) = &a.xorbs {
        for (h, list) in m {
            for e in list {
                for r in &e.ranges {
                    add(h, r.chunks, r.bytes, &e.url)?;
                }
            }
        }
    } else if !a.terms.is_empty() {
        return Err(bad("no fetch_info or xorbs"));
    }
    let recon = Recon {
        offset: a.offset_into_first_range,
        terms: a.terms,
        fetch,
    };
    if let Some(t) = recon.terms.iter().find(|t| recon.fetch_for(t).is_none()) {
        return Err(bad(format_args!("no fetch range for a term of {}", t.hash)));
    }
    Ok((recon, urls))
}

/// The v1 answer of a reconstruction, each fetch range's URL made by `url(xorb, fetch)`.
pub fn render_v1(r: &Recon, url: impl Fn(&str, &Fetch) -> String) -> ReconV1 {
    ReconV1 {
        offset_into_first_range: r.offset,
        terms: r.terms.clone(),
        fetch_info: r
            .fetch
            .iter()
            .map(|(h, list)| {
                let entries = list
                    .iter()
                    .map(|f| FetchInfoV1 {
                        range: f.chunks,
                        url: url(h, f),
                        url_range: f.bytes,
                    })
                    .collect();
                (h.clone(), entries)
            })
            .collect(),
    }
}

/// The v2 answer of a reconstruction (one URL per fetch range), URLs made by `url`.
pub fn render_v2(r: &Recon, url: impl Fn(&str, &Fetch) -> String) -> ReconV2 {
    ReconV2 {
        offset_into_first_range: r.offset,
        terms: r.terms.clone(),
        xorbs: r
            .fetch
            .iter()
            .map(|(h, list)| {
                let entries = list
                    .iter()
                    .map(|f| XorbFetchV2 {
                        url: url(h, f),
                        ranges: vec![RangeV2 {
                            chunks: f.chunks,
                            bytes: f.bytes,
                        }],
                    })
                    .collect();
                (h.clone(), entries)
            })
            .collect(),
    }
}

/// The answer of a reconstruction in version 1 or 2 (any other version: 2) as JSON.
pub fn render(r: &Recon, version: u8, url: impl Fn(&str, &Fetch) -> String) -> serde_json::Value {
    let v = if version == 1 {
        serde_json::to_value(render_v1(r, url))
    } else {
        serde_json::to_value(render_v2(r, url))
    };
    v.expect("a reconstruction serializes")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const X: &str = "1111111111111111111111111111111111111111111111111111111111111111";
    const Y: &str = "2222222222222222222222222222222222222222222222222222222222222222";

    fn parse(v: &serde_json::Value) -> Result<(Recon, Vec<UpstreamUrl>), String> {
        let a = parse_upstream(v.to_string().as_bytes());
        let b = parse_upstream_value(v);
        assert_eq!(a.is_ok(), b.is_ok(), "{v}");
        if let (Ok(a), Ok(b)) = (&a, &b) {
            assert_eq!(a, b);
        }
        b
    }

    #[test]
    fn v1_and_v2_normalise_to_the_same_reconstruction() {
        let v1 = json!({"offset_into_first_range": 5, "terms": [{"hash": X, "unpacked_length": 10, "range": {"start": 1, "end": 3}}],
            "fetch_info": {X: [{"range": {"start": 0, "end": 4}, "url": "http://cdn/x?sig", "url_range": {"start": 0, "end": 99}}]}});
        let v2 = json!({"offset_into_first_range": 5, "terms": [{"hash": X, "unpacked_length": 10, "range": {"start": 1, "end": 3}}],
            "xorbs": {X: [{"url": "http://cdn/x?sig", "ranges": [{"chunks": {"start": 0, "end": 4}, "bytes": {"start": 0, "end": 99}}]}]}});
        let (a, ua) = parse(&v1).unwrap();
        let (b, ub) = parse(&v2).unwrap();
        assert_eq!(a, b);
        assert_eq!(ua, ub);
        assert_eq!(a.offset, 5);
        assert_eq!(
            ua,
            vec![(
                X.to_string(),
                Span { start: 0, end: 99 },
                "http://cdn/x?sig".to_string()
            )]
        );
        assert_eq!(
            a.fetch_for(&a.terms[0]),
            Some(Fetch {
                chunks: Span { start: 0, end: 4 },
                bytes: Span { start: 0, end: 99 }
            })
        );
        assert_eq!(
            a.ranges().collect::<Vec<_>>(),
            vec![(X, Span { start: 0, end: 99 })]
        );
    }

    #[test]
    fn malformed_answers_are_refused() {
        let term = |h: &str, s: u64, e: u64| json!({"hash": h, "unpacked_length": 10, "range": {"start": s, "end": e}});
        let fetch = |s: u64, e: u64| json!([{"range": {"start": s, "end": e}, "url": "u", "url_range": {"start": 0, "end": 99}}]);
        let ok = json!({"terms": [term(X, 1, 3)], "fetch_info": {X: fetch(0, 4)}});
        assert!(parse(&ok).is_ok());
        assert_eq!(parse(&ok).unwrap().0.offset, 0, "offset defaults to 0");
        for bad in [
            // A term without a fetch range.
            json!({"terms": [term(X, 5, 6)], "fetch_info": {X: fetch(0, 4)}}),
            json!({"terms": [term(X, 1, 3)], "fetch_info": {Y: fetch(0, 4)}}),
            // Bad hashes.
            json!({"terms": [term("abc", 1, 3)], "fetch_info": {"abc": fetch(0, 4)}}),
            json!({"terms": [term(&"g".repeat(64), 1, 3)], "fetch_info": {X: fetch(0, 4)}}),
            json!({"terms": [term(X, 1, 3)], "fetch_info": {X: fetch(0, 4), "zz": fetch(0, 4)}}),
            // Unordered ranges.
            json!({"terms": [term(X, 3, 1)], "fetch_info": {X: fetch(0, 4)}}),
            json!({"terms": [term(X, 1, 3)], "fetch_info": {X: fetch(4, 0)}}),
            json!({"terms": [term(X, 1, 3)], "fetch_info": {X: [{"range": {"start": 0, "end": 4}, "url": "u", "url_range": {"start": 9, "end": 1}}]}}),
            // Missing or mistyped fields.
            json!({"fetch_info": {}}),
            json!({"terms": [term(X, 1, 3)]}),
            json!({"terms": [{"hash": X, "range": {"start": 1, "end": 3}}], "fetch_info": {X: fetch(0, 4)}}),
            json!({"terms": [{"hash": X, "unpacked_length": -1, "range": {"start": 1, "end": 3}}], "fetch_info": {X: fetch(0, 4)}}),
            json!({"terms": [term(X, 1, 3)], "fetch_info": {X: [{"range": {"start": 0, "end": 4}, "url_range": {"start": 0, "end": 9}}]}}),
            json!({"terms": [term(X, 1, 3)], "xorbs": {X: [{"url": "u"}]}}),
            json!({"terms": [term(X, 1, 3)], "xorbs": {X: [{"url": "u", "ranges": [{"chunks": {"start": 0, "end": 4}}]}]}}),
            json!([]),
        ] {
            let e = parse(&bad).unwrap_err();
            assert!(e.starts_with("malformed reconstruction"), "{e}");
        }
        assert!(parse_upstream(b"not json").is_err());
        // An empty file: no terms, no fetch ranges needed.
        let (r, urls) = parse(&json!({"terms": []})).unwrap();
        assert!(r.terms.is_empty() && urls.is_empty());
    }

    #[test]
    fn rendered_answers_parse_back_with_the_urls_given() {
        let v2 = json!({"offset_into_first_range": 7, "terms": [
                {"hash": X, "unpacked_length": 10, "range": {"start": 1, "end": 3}},
                {"hash": Y, "unpacked_length": 4, "range": {"start": 0, "end": 1}},
                {"hash": X, "unpacked_length": 6, "range": {"start": 8, "end": 9}}],
            "xorbs": {
                X: [{"url": "a", "ranges": [{"chunks": {"start": 0, "end": 4}, "bytes": {"start": 0, "end": 99}},
                                            {"chunks": {"start": 8, "end": 9}, "bytes": {"start": 200, "end": 299}}]}],
                Y: [{"url": "b", "ranges": [{"chunks": {"start": 0, "end": 1}, "bytes": {"start": 0, "end": 11}}]}]}});
        let (r, _) = parse(&v2).unwrap();
        let url = |h: &str, f: &Fetch| format!("http://m/{h}/{}-{}", f.bytes.start, f.bytes.end);
        for version in [1, 2] {
            let out = render(&r, version, url);
            let key = if version == 1 { "fetch_info" } else { "xorbs" };
            assert!(out.get(key).is_some(), "{out}");
            let (back, urls) = parse(&out).unwrap();
            assert_eq!(back, r, "v{version}");
            assert_eq!(urls.len(), 3);
            for (h, b, u) in urls {
                assert_eq!(u, format!("http://m/{h}/{}-{}", b.start, b.end));
            }
        }
        // The cached form round-trips through serde.
        let cached = serde_json::to_string(&r).unwrap();
        assert_eq!(serde_json::from_str::<Recon>(&cached).unwrap(), r);
        assert!(cached.contains("\"offset\":7"), "{cached}");
    }
}
