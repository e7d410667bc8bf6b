//! HTTP `Range` header parsing (RFC 9110 §14).

/// One byte-range spec of a `Range: bytes=…` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRangeSpec {
    /// `a-b`, inclusive.
    FromTo(u64, u64),
    /// `a-`.
    From(u64),
    /// `-n`: the last n bytes.
    Suffix(u64),
}

/// A `Range` header that is not a valid `bytes=` range set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid Range header")]
pub struct RangeParseError;

/// Parses `bytes=0-99`, `bytes=100-`, `bytes=-500`, `bytes=0-1, 5-9`.
pub fn parse_range_header(value: &str) -> Result<Vec<ByteRangeSpec>, RangeParseError> {
    let (unit, set) = value.trim().split_once('=').ok_or(RangeParseError)?;
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return Err(RangeParseError);
    }
    let num = |s: &str| -> Result<u64, RangeParseError> {
        let s = s.trim();
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(RangeParseError);
        }
        s.parse().map_err(|_| RangeParseError)
    };
    let mut out = Vec::new();
    for part in set.split(',') {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let (a, b) = part.split_once('-').ok_or(RangeParseError)?;
        let spec = match (a.trim().is_empty(), b.trim().is_empty()) {
            (true, false) => ByteRangeSpec::Suffix(num(b)?),
            (false, true) => ByteRangeSpec::From(num(a)?),
            (false, false) => {
                let (a, b) = (num(a)?, num(b)?);
                if b < a {
                    return Err(RangeParseError);
                }
                ByteRangeSpec::FromTo(a, b)
            }
            (true, true) => return Err(RangeParseError),
        };
        out.push(spec);
    }
    if out.is_empty() {
        Err(RangeParseError)
    } else {
        Ok(out)
    }
}

impl ByteRangeSpec {
    /// Resolves against a file size: `Some((start, end_inclusive))`, or `None` when
    /// unsatisfiable (answer 416).
    pub fn resolve(&self, size: u64) -> Option<(u64, u64)> {
        if size == 0 {
            return None;
        }
        match *self {
            Self::FromTo(a, b) => (a < size).then(|| (a, b.min(size - 1))),
            Self::From(a) => (a < size).then(|| (a, size - 1)),
            Self::Suffix(0) => None,
            Self::Suffix(n) => Some((size.saturating_sub(n), size - 1)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ByteRangeSpec::*;

    #[test]
    fn parses_and_resolves() {
        assert_eq!(
            parse_range_header("bytes=0-99").unwrap(),
            vec![FromTo(0, 99)]
        );
        assert_eq!(
            parse_range_header(" bytes = 100- ").unwrap(),
            vec![From(100)]
        );
        assert_eq!(parse_range_header("bytes=-500").unwrap(), vec![Suffix(500)]);
        assert_eq!(
            parse_range_header("bytes=0-1, 5-9").unwrap(),
            vec![FromTo(0, 1), FromTo(5, 9)]
        );
        for bad in [
            "bytes=",
            "bytes=a-b",
            "items=0-1",
            "bytes=5-1",
            "bytes=-",
            "0-1",
            "bytes=1-2-3",
        ] {
            assert!(parse_range_header(bad).is_err(), "{bad}");
        }
        assert_eq!(FromTo(0, 99).resolve(50), Some((0, 49)));
        assert_eq!(FromTo(50, 60).resolve(50), None);
        assert_eq!(From(10).resolve(20), Some((10, 19)));
        assert_eq!(Suffix(500).resolve(100), Some((0, 99)));
        assert_eq!(Suffix(10).resolve(100), Some((90, 99)));
        assert_eq!(Suffix(0).resolve(100), None);
        assert_eq!(From(0).resolve(0), None);
    }
}
