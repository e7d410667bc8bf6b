//! Human-readable byte sizes, as olah's `cache-size-limit` takes them.
//!
//! `NUMBER[UNIT]` where `UNIT` is `K`, `M`, `G` or `T`, optionally followed by `B` (or `iB`), in
//! any case; all units are powers of 1024 (`1G` = `1GB` = `1GiB` = 2^30 bytes). A bare number
//! (or one ending in just `B`) is bytes. The number may have a fractional part (`1.5T`); the
//! result is rounded down to whole bytes. Arithmetic is exact (no floating point).

/// Parses a size such as `100G`, `500GB`, `2tb`, `1.5T` or `1024` into bytes.
///
/// Returns `None` when the text is not a size (empty, negative, unknown unit like `12Q`) or the
/// value does not fit in a `u64`.
pub fn parse_size(text: &str) -> Option<u64> {
    let t = text.trim().to_ascii_uppercase();
    // Split into the numeric part and the unit suffix.
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let shift = match unit.trim_start() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        "T" | "TB" | "TIB" => 40,
        _ => return None,
    };
    let (int_part, frac_part) = match num.split_once('.') {
        Some((i, f)) => (i, f),
        None => (num, ""),
    };
    if int_part.is_empty() && frac_part.is_empty() {
        return None;
    }
    if frac_part.contains('.') {
        return None;
    }
    let int: u128 = if int_part.is_empty() {
        0
    } else {
        u128::from(int_part.parse::<u64>().ok()?)
    };
    // int < 2^64 and shift <= 40, so this cannot overflow a u128.
    let mut bytes = int << shift;
    if !frac_part.is_empty() {
        // Only the first 18 fractional digits matter for sizes up to 2^64.
        let digits = &frac_part[..frac_part.len().min(18)];
        let frac: u128 = digits.parse().ok()?;
        let scale = 10u128.pow(digits.len() as u32);
        bytes = bytes.checked_add((frac << shift) / scale)?;
    }
    u64::try_from(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn units_are_powers_of_1024_in_any_case() {
        assert_eq!(parse_size("100G"), Some(100 << 30));
        assert_eq!(parse_size("500GB"), Some(500 << 30));
        assert_eq!(parse_size("2TB"), Some(2 << 40));
        assert_eq!(parse_size("2tb"), Some(2 << 40));
        assert_eq!(parse_size("3m"), Some(3 << 20));
        assert_eq!(parse_size("4KiB"), Some(4096));
        assert_eq!(parse_size("1024"), Some(1024));
        assert_eq!(parse_size("1024B"), Some(1024));
        assert_eq!(parse_size(" 10 GB "), Some(10 << 30));
    }

    #[test]
    fn fractions_are_exact_and_round_down() {
        assert_eq!(parse_size("1.5T"), Some(3 << 39));
        assert_eq!(parse_size("0.5K"), Some(512));
        assert_eq!(parse_size(".5K"), Some(512));
        assert_eq!(parse_size("0.1K"), Some(102), "102.4 rounds down");
        assert_eq!(parse_size("1."), Some(1));
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "", " ", "12Q", "G", "-1G", "1.2.3G", "1e3", "1GG", "ten", ".", "1 2G", "1BG",
        ] {
            assert_eq!(parse_size(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn rejects_overflow() {
        assert_eq!(parse_size("18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_size("18446744073709551616"), None);
        assert_eq!(parse_size("16777216T"), None, "2^64 bytes");
        assert_eq!(parse_size("16777215T"), Some(16_777_215u64 << 40));
    }
}
