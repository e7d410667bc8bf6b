//! Conditional requests and ranges of one file (RFC 9110 §13.1 and §14): what a `GET`/`HEAD`
//! answers given `If-None-Match`, `If-Range` and `Range`. Decided here once for every source of
//! files (the upstream mirror, local git repositories, plain directories).
//!
//! * `If-None-Match` uses the **weak** comparison (§13.1.2): `W/"x"` matches `"x"`; `*` matches.
//! * `If-Range` uses the **strong** comparison (§13.1.5): only a strong entity-tag equal to the
//!   file's ETag keeps the range; a weak tag, another tag or a date (the mirror sends no
//!   `Last-Modified`) means the client's partial copy may be stale, so the whole file is sent.
//! * An invalid `Range`, or more ranges than the caller serves, is ignored (whole file, as the
//!   RFC allows); ranges that cannot be satisfied are dropped; none left is a 416.

use crate::range::parse_range_header;

/// The conditional headers of a request, as raw values.
#[derive(Debug, Clone, Copy, Default)]
pub struct Conditions<'a> {
    /// `If-None-Match`.
    pub if_none_match: Option<&'a str>,
    /// `If-Range`.
    pub if_range: Option<&'a str>,
    /// `Range`.
    pub range: Option<&'a str>,
}

/// What to answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// 304 Not Modified.
    NotModified,
    /// 200 with the whole file.
    Whole,
    /// 206 with these inclusive byte ranges, in request order (one, or several for multipart).
    Ranges(Vec<(u64, u64)>),
    /// 416 Range Not Satisfiable.
    Unsatisfiable,
}

/// One entity-tag of a header: (weak, opaque tag with its quotes).
fn entity_tags(list: &str) -> impl Iterator<Item = (bool, &str)> {
    list.split(',').filter_map(|t| {
        let t = t.trim_matches([' ', '\t']);
        let (weak, tag) = match t.strip_prefix("W/") {
            Some(rest) => (true, rest),
            None => (false, t),
        };
        (tag.len() >= 2 && tag.starts_with('"') && tag.ends_with('"')).then_some((weak, tag))
    })
}

/// Whether `If-None-Match: list` matches the file whose ETag is `"etag"` (weak comparison).
pub fn none_match(list: &str, etag: &str) -> bool {
    list.trim_matches([' ', '\t']) == "*"
        || entity_tags(list).any(|(_, tag)| &tag[1..tag.len() - 1] == etag)
}

/// Whether `If-Range: value` lets a range of the file whose ETag is `"etag"` be served
/// (strong comparison; dates never match since no `Last-Modified` is sent).
pub fn if_range_holds(value: &str, etag: &str) -> bool {
    let v = value.trim_matches([' ', '\t']);
    let mut tags = entity_tags(v);
    match (tags.next(), tags.next()) {
        (Some((false, tag)), None) => tag.len() == v.len() && &tag[1..tag.len() - 1] == etag,
        _ => false,
    }
}

/// Decides the answer for a file of `size` bytes whose ETag (without quotes) is `etag`, serving
/// at most `max_ranges` ranges in one answer.
pub fn decide(etag: &str, size: u64, c: Conditions<'_>, max_ranges: usize) -> Answer {
    if c.if_none_match.is_some_and(|l| none_match(l, etag)) {
        return Answer::NotModified;
    }
    let Some(range) = c.range else {
        return Answer::Whole;
    };
    if c.if_range.is_some_and(|v| !if_range_holds(v, etag)) {
        return Answer::Whole;
    }
    match parse_range_header(range) {
        Ok(specs) if specs.len() <= max_ranges => {
            let r: Vec<(u64, u64)> = specs.iter().filter_map(|s| s.resolve(size)).collect();
            if r.is_empty() {
                Answer::Unsatisfiable
            } else {
                Answer::Ranges(r)
            }
        }
        _ => Answer::Whole,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c<'a>(inm: Option<&'a str>, ir: Option<&'a str>, range: Option<&'a str>) -> Conditions<'a> {
        Conditions {
            if_none_match: inm,
            if_range: ir,
            range,
        }
    }

    #[test]
    fn if_none_match_compares_weakly() {
        for (list, hit) in [
            ("\"abc\"", true),
            ("W/\"abc\"", true),
            ("\"x\", W/\"abc\"", true),
            ("*", true),
            ("\"abcd\"", false),
            ("abc", false),
            ("", false),
        ] {
            assert_eq!(none_match(list, "abc"), hit, "{list:?}");
        }
        assert_eq!(
            decide("abc", 10, c(Some("W/\"abc\""), None, Some("bytes=0-1")), 1),
            Answer::NotModified
        );
    }

    #[test]
    fn if_range_compares_strongly_and_ignores_dates() {
        for (v, holds) in [
            ("\"abc\"", true),
            (" \"abc\" ", true),
            ("W/\"abc\"", false),
            ("\"abd\"", false),
            ("\"abc\", \"abc\"", false),
            ("Wed, 21 Oct 2015 07:28:00 GMT", false),
            ("abc", false),
        ] {
            assert_eq!(if_range_holds(v, "abc"), holds, "{v:?}");
        }
        assert_eq!(
            decide("abc", 10, c(None, Some("W/\"abc\""), Some("bytes=2-3")), 1),
            Answer::Whole
        );
        assert_eq!(
            decide("abc", 10, c(None, Some("\"abc\""), Some("bytes=2-3")), 1),
            Answer::Ranges(vec![(2, 3)])
        );
    }

    #[test]
    fn ranges_resolve_or_fall_back() {
        let d = |r: &str, max| decide("e", 10, c(None, None, Some(r)), max);
        assert_eq!(decide("e", 10, c(None, None, None), 1), Answer::Whole);
        assert_eq!(d("bytes=-3", 1), Answer::Ranges(vec![(7, 9)]));
        assert_eq!(d("bytes=0-1,4-5", 1), Answer::Whole);
        assert_eq!(d("bytes=0-1,4-5", 2), Answer::Ranges(vec![(0, 1), (4, 5)]));
        assert_eq!(d("bytes=0-1,40-50", 2), Answer::Ranges(vec![(0, 1)]));
        assert_eq!(d("bytes=10-", 1), Answer::Unsatisfiable);
        assert_eq!(d("items=0-1", 1), Answer::Whole);
        assert_eq!(
            decide("e", 0, c(None, None, Some("bytes=0-")), 1),
            Answer::Unsatisfiable
        );
    }
}
