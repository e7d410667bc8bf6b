//! Value types and the checks shared by the command line, the TOML file and
//! [`Config::validate`](crate::Config::validate). Every parser returns a one-line reason that the
//! caller wraps with the key (and file) it came from.

use std::fmt;
use std::str::FromStr;

/// Cache eviction strategy (`cache-clean-strategy`). Spelled `LRU`, `FIFO`, `LARGE_FIRST` (any
/// case).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CleanStrategy {
    /// Least recently used first (`LRU`, the default).
    #[default]
    Lru,
    /// Oldest first (`FIFO`).
    Fifo,
    /// Largest first (`LARGE_FIRST`).
    LargeFirst,
}

impl CleanStrategy {
    /// The spelling used in olah's flags and TOML.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Lru => "LRU",
            Self::Fifo => "FIFO",
            Self::LargeFirst => "LARGE_FIRST",
        }
    }
}

impl FromStr for CleanStrategy {
    /// A one-line reason.
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_uppercase().as_str() {
            "LRU" => Ok(Self::Lru),
            "FIFO" => Ok(Self::Fifo),
            "LARGE_FIRST" => Ok(Self::LargeFirst),
            _ => Err(format!("{s:?} is not one of LRU, FIFO, LARGE_FIRST")),
        }
    }
}

impl fmt::Display for CleanStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `cache-compression`: `none`, `gzip` or `lzma` (any case). Accepted for olah compatibility.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    /// No compression (`none`, the default; `""` is read as `none`).
    #[default]
    None,
    /// `gzip`.
    Gzip,
    /// `lzma`.
    Lzma,
}

impl Compression {
    /// The spelling used in olah's flags and TOML.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Gzip => "gzip",
            Self::Lzma => "lzma",
        }
    }
}

impl FromStr for Compression {
    /// A one-line reason.
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "none" | "" => Ok(Self::None),
            "gzip" => Ok(Self::Gzip),
            "lzma" => Ok(Self::Lzma),
            _ => Err(format!("{s:?} is not one of none, gzip, lzma")),
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How Xet-backed files are offered to clients (`xet` key / `--xet`; an olah-rs extension).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum XetMode {
    /// `serve` (default): the mirror speaks Xet to clients and serves the CAS from its cache.
    #[default]
    Serve,
    /// `plain`: everything Xet is stripped, so clients download every file over plain HTTP.
    PlainHttp,
}

impl XetMode {
    /// The spelling used in the flag and TOML.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Serve => "serve",
            Self::PlainHttp => "plain",
        }
    }
}

impl FromStr for XetMode {
    /// A one-line reason.
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "serve" => Ok(Self::Serve),
            "plain" => Ok(Self::PlainHttp),
            _ => Err(format!("{s:?} is not one of serve, plain")),
        }
    }
}

impl fmt::Display for XetMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How log lines are written to stderr and the log file (`log-format`, `--log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// `text` (default): one human-readable line per event.
    #[default]
    Text,
    /// `json`: one JSON object per line, for log shippers.
    Json,
}

impl LogFormat {
    /// The spelling used in the flag and TOML.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Json => "json",
        }
    }
}

impl FromStr for LogFormat {
    /// A one-line reason.
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            _ => Err(format!("{s:?} is not one of text, json")),
        }
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A secret value (a token): compared and used, never shown. `Debug` and `Display` print
/// `<redacted>`, so a config dump or a log line cannot leak it; [`Secret::expose`] gives the text.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The secret text (compare in constant time where an attacker chooses the other side).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// `http` or `https` (any case), returned in lower case.
pub(crate) fn scheme(s: &str) -> Result<String, String> {
    let lower = s.trim().to_ascii_lowercase();
    match lower.as_str() {
        "http" | "https" => Ok(lower),
        _ => Err(format!("{s:?} is not http or https")),
    }
}

/// A `host[:port]` as used in URLs: a name or IPv4 address, or a bracketed IPv6 address, and an
/// optional numeric port. No scheme, path, user info, query or whitespace.
pub(crate) fn netloc(s: &str) -> Result<String, String> {
    let bad = || format!("{s:?} is not a host[:port] (no scheme, path or user info)");
    if s.is_empty() {
        return Err("must not be empty (expected host[:port])".into());
    }
    if s.chars().any(|c| {
        c.is_whitespace() || c.is_control() || matches!(c, '/' | '\\' | '@' | '?' | '#' | ',')
    }) {
        return Err(bad());
    }
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        // [v6]:port
        let (addr, after) = rest.split_once(']').ok_or_else(bad)?;
        if addr.is_empty()
            || !addr
                .chars()
                .all(|c| c.is_ascii_hexdigit() || ":.%".contains(c))
        {
            return Err(bad());
        }
        match after {
            "" => (addr, None),
            p => (addr, Some(p.strip_prefix(':').ok_or_else(bad)?)),
        }
    } else {
        match s.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    if host.is_empty() || host.contains(['[', ']']) {
        return Err(bad());
    }
    if let Some(p) = port
        && (p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) || p.parse::<u16>().is_err())
    {
        return Err(format!("{s:?}: the port must be a number from 0 to 65535"));
    }
    Ok(s.to_string())
}

/// A listen host: a name or an IP address (IPv6 with or without brackets), one only.
pub(crate) fn host(s: &str) -> Result<String, String> {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    if s.contains(',') {
        return Err(format!("{s:?}: only one host can be given"));
    }
    if s.chars()
        .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '/' | '\\' | '@' | '?' | '#'))
    {
        return Err(format!("{s:?} is not a host name or IP address"));
    }
    Ok(s.to_string())
}

/// `host:port` for URLs built from a listen host: `0.0.0.0` and `::` become `localhost`, and an
/// IPv6 literal gets brackets.
pub(crate) fn advertised_netloc(host: &str, port: u16) -> String {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if bare == "0.0.0.0" || bare == "::" {
        format!("localhost:{port}")
    } else if bare.contains(':') {
        format!("[{bare}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_parse_in_any_case_and_round_trip() {
        for s in [
            CleanStrategy::Lru,
            CleanStrategy::Fifo,
            CleanStrategy::LargeFirst,
        ] {
            assert_eq!(s.as_str().parse::<CleanStrategy>(), Ok(s));
            assert_eq!(s.as_str().to_lowercase().parse::<CleanStrategy>(), Ok(s));
        }
        for c in [Compression::None, Compression::Gzip, Compression::Lzma] {
            assert_eq!(c.to_string().parse::<Compression>(), Ok(c));
        }
        assert_eq!("".parse::<Compression>(), Ok(Compression::None));
        assert_eq!("plain".parse::<XetMode>(), Ok(XetMode::PlainHttp));
        assert_eq!("Serve".parse::<XetMode>(), Ok(XetMode::Serve));
        assert!("LFU".parse::<CleanStrategy>().unwrap_err().contains("LFU"));
        assert!("zstd".parse::<Compression>().is_err());
        assert!("xet".parse::<XetMode>().is_err());
    }

    #[test]
    fn schemes() {
        assert_eq!(scheme("http").unwrap(), "http");
        assert_eq!(scheme("HTTPS").unwrap(), "https");
        assert!(scheme("ftp").unwrap_err().contains("ftp"));
        assert!(scheme("").is_err());
    }

    #[test]
    fn netlocs() {
        for ok in [
            "huggingface.co",
            "127.0.0.1:8080",
            "localhost:0",
            "[::1]",
            "[::1]:443",
            "hub.example.org:65535",
        ] {
            assert_eq!(netloc(ok).as_deref(), Ok(ok), "{ok}");
        }
        for bad in [
            "",
            "https://huggingface.co",
            "huggingface.co/",
            "user@host",
            "a b",
            "host:",
            "host:abc",
            "host:65536",
            ":80",
            "::1",
            "[::1",
            "[::1]x",
            "[zz]:1",
            "a,b",
        ] {
            assert!(netloc(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn hosts() {
        for ok in ["localhost", "0.0.0.0", "::", "::1", "[::1]", "my-host.lan"] {
            assert!(host(ok).is_ok(), "{ok}");
        }
        assert!(host("").is_err());
        assert!(host("a,b").unwrap_err().contains("one host"));
        assert!(host("a b").is_err());
    }

    #[test]
    fn advertised_host() {
        assert_eq!(advertised_netloc("0.0.0.0", 1), "localhost:1");
        assert_eq!(advertised_netloc("::", 2), "localhost:2");
        assert_eq!(advertised_netloc("[::]", 2), "localhost:2");
        assert_eq!(advertised_netloc("::1", 3), "[::1]:3");
        assert_eq!(advertised_netloc("[::1]", 3), "[::1]:3");
        assert_eq!(advertised_netloc("10.0.0.5", 4), "10.0.0.5:4");
        assert_eq!(advertised_netloc("mirror.lan", 5), "mirror.lan:5");
    }
}
