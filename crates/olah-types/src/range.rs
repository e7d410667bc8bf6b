//! HTTP `Range` header parsing and resolution (RFC 9110 §14).

/// One byte-range spec of a `Range: bytes=…` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRangeSpec {
    /// `a-b`: bytes `a..=b` (inclusive).
    FromTo(u64, u64),
    /// `a-`: from `a` to the end.
    From(u64),
    /// `-n`: the last `n` bytes.
    Suffix(u64),
}

/// A `Range` header that is not a valid `bytes=` range set (the server then ignores it and
/// answers 200 with the whole representation, as RFC 9110 allows).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid Range header")]
pub struct RangeParseError;

/// Strips optional whitespace (RFC 9110 `OWS`: spaces and tabs).
fn ows(s: &str) -> &str {
    s.trim_matches([' ', '\t'])
}

/// Parses a decimal position; digits only. Values beyond `u64::MAX` saturate (a huge last
/// position is clamped anyway, a huge first position stays unsatisfiable).
fn position(s: &str) -> Result<u64, RangeParseError> {
    let s = ows(s);
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(RangeParseError);
    }
    Ok(s.bytes().fold(0u64, |n, d| {
        n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    }))
}

/// Parses a `Range` header value: `bytes=0-99`, `bytes=100-`, `bytes=-500`, `bytes=0-1, 5-9`.
///
/// The unit is case-insensitive; optional whitespace around `=`, `,` and `-` and empty list
/// elements (`bytes=0-1,,5-9`) are tolerated. Any other unit, a spec with `last < first`, `-`
/// alone, or no spec at all is an error. Specs are returned in order, neither merged nor sorted.
pub fn parse_range_header(value: &str) -> Result<Vec<ByteRangeSpec>, RangeParseError> {
    let (unit, set) = value.split_once('=').ok_or(RangeParseError)?;
    if !ows(unit).eq_ignore_ascii_case("bytes") {
        return Err(RangeParseError);
    }
    let mut out = Vec::new();
    for part in set.split(',') {
        let part = ows(part);
        if part.is_empty() {
            continue;
        }
        let (first, last) = part.split_once('-').ok_or(RangeParseError)?;
        let spec = match (ows(first).is_empty(), ows(last).is_empty()) {
            (true, false) => ByteRangeSpec::Suffix(position(last)?),
            (false, true) => ByteRangeSpec::From(position(first)?),
            (false, false) => {
                let (a, b) = (position(first)?, position(last)?);
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
    /// Resolves against a representation of `size` bytes: `Some((start, end_inclusive))`, or
    /// `None` when unsatisfiable (answer 416 if no spec of the header is satisfiable).
    ///
    /// RFC 9110 §14.1.2: the end is clamped to `size - 1`; a first position `>= size` is
    /// unsatisfiable; a suffix longer than the representation selects all of it; a zero-length
    /// suffix is unsatisfiable; nothing is satisfiable in an empty representation.
    pub fn resolve(&self, size: u64) -> Option<(u64, u64)> {
        let last = size.checked_sub(1)?;
        match *self {
            Self::FromTo(a, b) => (a <= last).then(|| (a, b.min(last))),
            Self::From(a) => (a <= last).then_some((a, last)),
            Self::Suffix(0) => None,
            Self::Suffix(n) => Some((size.saturating_sub(n), last)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ByteRangeSpec::*;
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_valid_headers() {
        let ok: &[(&str, &[ByteRangeSpec])] = &[
            ("bytes=0-99", &[FromTo(0, 99)]),
            ("bytes=100-", &[From(100)]),
            ("bytes=-500", &[Suffix(500)]),
            ("bytes=0-0", &[FromTo(0, 0)]),
            ("bytes=0-1,5-9", &[FromTo(0, 1), FromTo(5, 9)]),
            (
                "bytes=0-1, 5-9 ,-3",
                &[FromTo(0, 1), FromTo(5, 9), Suffix(3)],
            ),
            (" bytes = 100- ", &[From(100)]),
            ("bytes=\t1 - 2\t", &[FromTo(1, 2)]),
            ("BYTES=1-", &[From(1)]),
            ("bytes=0-1,,5-", &[FromTo(0, 1), From(5)]),
            ("bytes=5-9,0-1", &[FromTo(5, 9), FromTo(0, 1)]),
            ("bytes=0-99999999999999999999999", &[FromTo(0, u64::MAX)]),
            ("bytes=99999999999999999999999-", &[From(u64::MAX)]),
        ];
        for (h, want) in ok {
            assert_eq!(parse_range_header(h).as_deref(), Ok(*want), "{h:?}");
        }
    }

    #[test]
    fn rejects_invalid_headers() {
        for h in [
            "",
            "bytes",
            "bytes=",
            "bytes= ",
            "bytes=,",
            "bytes=-",
            "bytes=5-1",
            "bytes=1-2-3",
            "bytes=a-b",
            "bytes=1",
            "bytes=+1-2",
            "bytes=-+5",
            "bytes=1 0-20",
            "bytes=0x10-",
            "bytes=0-1;5-9",
            "bytes=0-1,x",
            "items=0-1",
            "bits=0-1",
            "0-1",
            "=0-1",
            "bytes==0-1",
            "bytes=１-２",
        ] {
            assert_eq!(parse_range_header(h), Err(RangeParseError), "{h:?}");
        }
    }

    #[test]
    fn resolves_per_rfc_9110() {
        let cases = [
            (FromTo(0, 99), 1000, Some((0, 99))),
            (FromTo(0, 99), 50, Some((0, 49))),
            (FromTo(49, 49), 50, Some((49, 49))),
            (FromTo(50, 60), 50, None),
            (FromTo(0, u64::MAX), 10, Some((0, 9))),
            (From(10), 20, Some((10, 19))),
            (From(19), 20, Some((19, 19))),
            (From(20), 20, None),
            (From(u64::MAX), u64::MAX, None),
            (Suffix(500), 100, Some((0, 99))),
            (Suffix(100), 100, Some((0, 99))),
            (Suffix(10), 100, Some((90, 99))),
            (Suffix(1), 1, Some((0, 0))),
            (Suffix(0), 100, None),
            (Suffix(u64::MAX), 7, Some((0, 6))),
        ];
        for (spec, size, want) in cases {
            assert_eq!(spec.resolve(size), want, "{spec:?} of {size}");
        }
    }

    #[test]
    fn empty_file_satisfies_nothing() {
        for spec in [FromTo(0, 0), FromTo(0, 10), From(0), Suffix(1), Suffix(0)] {
            assert_eq!(spec.resolve(0), None, "{spec:?}");
        }
    }

    proptest! {
        #[test]
        fn resolved_ranges_lie_inside_the_file(
            spec in prop_oneof![
                (any::<u64>(), any::<u64>()).prop_map(|(a, b)| FromTo(a.min(b), a.max(b))),
                any::<u64>().prop_map(From),
                any::<u64>().prop_map(Suffix),
            ],
            size in prop_oneof![0u64..300, any::<u64>()],
        ) {
            if let Some((s, e)) = spec.resolve(size) {
                prop_assert!(s <= e && e < size);
            }
        }

        #[test]
        fn parser_never_panics(h in ".*") {
            let _ = parse_range_header(&h);
        }

        #[test]
        fn formatted_specs_parse_back(a in any::<u64>(), b in any::<u64>()) {
            let (a, b) = (a.min(b), a.max(b));
            let h = format!("bytes={a}-{b}, {a}-,-{b}");
            prop_assert_eq!(
                parse_range_header(&h),
                Ok(vec![FromTo(a, b), From(a), Suffix(b)])
            );
        }
    }
}
