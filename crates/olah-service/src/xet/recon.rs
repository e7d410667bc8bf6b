//! Reconstructions (the types and v1/v2 forms of [`olah_xet::recon`]) rendered with every xorb
//! URL pointing at the mirror and signed by it, and the mirror's xorb URL query.

use olah_store::XorbRange;
use serde::Deserialize;
use serde_json::Value;

use super::*;

pub use olah_xet::recon::{Fetch, Recon, Span, Term, UpstreamUrl};

/// A reconstruction's fetch range as a xorb store range.
pub(super) fn store_range(b: Span) -> XorbRange {
    XorbRange {
        start: b.start,
        end: b.end,
    }
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
        olah_xet::recon::render(r, version, |h, f| {
            let sig = self.sign(&xorb_msg(h, file, f.chunks, f.bytes, exp));
            format!(
                "{base}/cas/xorb/{h}?f={file}&c={}-{}&b={}-{}&x={exp}&s={sig}",
                f.chunks.start, f.chunks.end, f.bytes.start, f.bytes.end
            )
        })
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
