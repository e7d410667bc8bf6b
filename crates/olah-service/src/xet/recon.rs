//! Reconstructions: one URL-free form for the CAS's v1 and v2 answers, rendered back with
//! every xorb URL pointing at the mirror and signed by it.

use std::collections::BTreeMap;

use olah_store::XorbRange;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::*;

// ------------------------------------------------------------------------------------------
// Reconstructions: one normalised form for v1 and v2.

/// A chunk range (end-exclusive) or byte range (end-inclusive), as the CAS writes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Span {
    /// First.
    pub start: u64,
    /// Last (bytes) or one past the last (chunks).
    pub end: u64,
}

/// One term: a chunk range of a xorb, in file order.
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
    /// Every fetch range, as (xorb hash, byte range).
    pub fn ranges(&self) -> impl Iterator<Item = (&str, XorbRange)> {
        self.fetch.iter().flat_map(|(h, list)| {
            list.iter().map(move |f| {
                (
                    h.as_str(),
                    XorbRange {
                        start: f.bytes.start,
                        end: f.bytes.end,
                    },
                )
            })
        })
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

use olah_xet::is_hash_str as is_hash;

fn span(v: &Value) -> Option<Span> {
    let s = Span {
        start: v.get("start")?.as_u64()?,
        end: v.get("end")?.as_u64()?,
    };
    (s.start <= s.end).then_some(s)
}

/// Parses an upstream v1 or v2 reconstruction into the URL-free form plus the upstream URL of
/// each (xorb, byte range).
pub fn parse_upstream(v: &Value) -> Result<(Recon, Vec<UpstreamUrl>), String> {
    let bad = |what: &str| format!("malformed reconstruction: {what}");
    let offset = v
        .get("offset_into_first_range")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let mut terms = Vec::new();
    for t in v
        .get("terms")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("terms"))?
    {
        let hash = t.get("hash").and_then(Value::as_str).unwrap_or_default();
        if !is_hash(hash) {
            return Err(bad("term hash"));
        }
        terms.push(Term {
            hash: hash.to_string(),
            unpacked_length: t
                .get("unpacked_length")
                .and_then(Value::as_u64)
                .ok_or_else(|| bad("unpacked_length"))?,
            range: t.get("range").and_then(span).ok_or_else(|| bad("range"))?,
        });
    }
    let mut fetch: BTreeMap<String, Vec<Fetch>> = BTreeMap::new();
    let mut urls = Vec::new();
    let mut add = |h: &str, chunks: Span, bytes: Span, url: &str| -> Result<(), String> {
        if !is_hash(h) {
            return Err(bad("xorb hash"));
        }
        fetch
            .entry(h.to_string())
            .or_default()
            .push(Fetch { chunks, bytes });
        urls.push((h.to_string(), bytes, url.to_string()));
        Ok(())
    };
    if let Some(m) = v.get("fetch_info").and_then(Value::as_object) {
        for (h, list) in m {
            for e in list.as_array().ok_or_else(|| bad("fetch_info"))? {
                add(
                    h,
                    e.get("range").and_then(span).ok_or_else(|| bad("range"))?,
                    e.get("url_range")
                        .and_then(span)
                        .ok_or_else(|| bad("url_range"))?,
                    e.get("url")
                        .and_then(Value::as_str)
                        .ok_or_else(|| bad("url"))?,
                )?;
            }
        }
    } else if let Some(m) = v.get("xorbs").and_then(Value::as_object) {
        for (h, list) in m {
            for e in list.as_array().ok_or_else(|| bad("xorbs"))? {
                let url = e
                    .get("url")
                    .and_then(Value::as_str)
                    .ok_or_else(|| bad("url"))?;
                for r in e
                    .get("ranges")
                    .and_then(Value::as_array)
                    .ok_or_else(|| bad("ranges"))?
                {
                    add(
                        h,
                        r.get("chunks")
                            .and_then(span)
                            .ok_or_else(|| bad("chunks"))?,
                        r.get("bytes").and_then(span).ok_or_else(|| bad("bytes"))?,
                        url,
                    )?;
                }
            }
        }
    } else if !terms.is_empty() {
        return Err(bad("no fetch_info or xorbs"));
    }
    let recon = Recon {
        offset,
        terms,
        fetch,
    };
    if let Some(t) = recon.terms.iter().find(|t| recon.fetch_for(t).is_none()) {
        return Err(bad(&format!("no fetch range for a term of {}", t.hash)));
    }
    Ok((recon, urls))
}

/// The message the mirror signs for one xorb URL.
pub(super) fn xorb_msg(xorb: &str, file: &str, c: Span, b: Span, exp: u64) -> String {
    format!(
        "{xorb}|{file}|{}-{}|{}-{}|{exp}",
        c.start, c.end, b.start, b.end
    )
}

impl XetState {
    /// A reconstruction in the v1 or v2 shape with every xorb URL pointing at the mirror.
    pub fn render(&self, r: &Recon, version: u8, base: &str, file: &str) -> Value {
        let exp = now() + TOKEN_TTL;
        let url = |h: &str, f: &Fetch| {
            let sig = self.sign(&xorb_msg(h, file, f.chunks, f.bytes, exp));
            format!(
                "{base}/cas/xorb/{h}?f={file}&c={}-{}&b={}-{}&x={exp}&s={sig}",
                f.chunks.start, f.chunks.end, f.bytes.start, f.bytes.end
            )
        };
        let terms: Vec<Value> = r
            .terms
            .iter()
            .map(
                |t| json!({"hash": t.hash, "unpacked_length": t.unpacked_length, "range": t.range}),
            )
            .collect();
        let mut m = serde_json::Map::new();
        for (h, list) in &r.fetch {
            let entries: Vec<Value> = list
                .iter()
                .map(|f| {
                    if version == 1 {
                        json!({"range": f.chunks, "url": url(h, f), "url_range": f.bytes})
                    } else {
                        json!({"url": url(h, f), "ranges": [{"chunks": f.chunks, "bytes": f.bytes}]})
                    }
                })
                .collect();
            m.insert(h.clone(), Value::Array(entries));
        }
        let key = if version == 1 { "fetch_info" } else { "xorbs" };
        json!({"offset_into_first_range": r.offset, "terms": terms, key: m})
    }
}

/// The query of a mirror xorb URL.
#[derive(Deserialize)]
pub(super) struct XorbQuery {
    pub(super) f: String,
    pub(super) c: String,
    pub(super) b: String,
    pub(super) x: u64,
    pub(super) s: String,
}

pub(super) fn parse_span(s: &str) -> Option<Span> {
    let (a, b) = s.split_once('-')?;
    let s = Span {
        start: a.parse().ok()?,
        end: b.parse().ok()?,
    };
    (s.start <= s.end).then_some(s)
}

/// `bytes=a-b` or `bytes=a-` (inclusive), as Xet clients send it.
pub fn simple_range(v: Option<&str>) -> Result<Option<XetRange>, &'static str> {
    const BAD: &str = "Range must be bytes=START-END";
    let Some(v) = v else { return Ok(None) };
    let r = v.trim().strip_prefix("bytes=").ok_or(BAD)?;
    let (a, b) = r.split_once('-').ok_or(BAD)?;
    let a: u64 = a.trim().parse().map_err(|_| BAD)?;
    let b: Option<u64> = if b.trim().is_empty() {
        None
    } else {
        Some(b.trim().parse().map_err(|_| BAD)?)
    };
    if b.is_some_and(|b| b < a) {
        return Err(BAD);
    }
    Ok(Some((a, b)))
}
