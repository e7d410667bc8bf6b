//! The Hub's timestamp format.

use std::time::{Duration, UNIX_EPOCH};

/// `2025-01-01T00:00:00.000Z` from milliseconds since the epoch (UTC).
pub(crate) fn iso8601_ms(ms: u64) -> String {
    // Far-future values are clamped to what SystemTime and the formatter can represent.
    let ms = ms.min(253_402_300_799_999); // 9999-12-31T23:59:59.999Z
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}
