//! `configs.toml`, in olah's format: `[basic]`, `[accessibility]`, `[[accessibility.proxy]]` and
//! `[[accessibility.cache]]`, keys spelled as olah spells them.
//!
//! Every table denies unknown keys, and every value is checked while it is read, so a typo or a
//! bad value fails with the file, the line and the key path (`basic.port`,
//! `accessibility.proxy[2].use_re`).

use std::fmt;
use std::marker::PhantomData;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::merge::Layer;
use crate::{AccessRule, CleanStrategy, Compression, ConfigError, XetMode, parse_size, values};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default)]
    basic: Basic,
    #[serde(default)]
    accessibility: Accessibility,
    #[serde(default)]
    admin: Admin,
}

/// `[admin]` (olah-rs): who may open `/admin` from another address.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Admin {
    token: Option<Spanned<String>>,
    token_file: Option<Spanned<PathBuf>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Basic {
    host: Option<Host>,
    port: Option<u16>,
    ssl_key: Option<OptionalPath>,
    ssl_cert: Option<OptionalPath>,
    repos_path: Option<PathBuf>,
    cache_size_limit: Option<SizeLimit>,
    cache_clean_strategy: Option<Parsed<CleanStrategy>>,
    cache_compression: Option<Parsed<Compression>>,
    cache_block_size: Option<Size>,
    cache_chunk_size: Option<Size>,
    cache_redirect_model: Option<bool>,
    xet_passthrough: Option<bool>,
    xet_passthrough_min_size: Option<Size>,
    metadata_cache_ttl: Option<u64>,
    hf_scheme: Option<Scheme>,
    hf_netloc: Option<Netloc>,
    hf_lfs_netloc: Option<Netloc>,
    mirror_scheme: Option<Scheme>,
    mirror_netloc: Option<Netloc>,
    mirror_lfs_netloc: Option<Netloc>,
    mirrors_path: Option<Vec<PathBuf>>,
    has_lfs_site: Option<bool>,
    log_path: Option<PathBuf>,
    workers: Option<u32>,
    // olah-rs extensions.
    /// Checked after reading, for the same reason as [`RawRule::repo`].
    upstream_hosts: Option<Vec<Spanned<String>>>,
    xet: Option<Parsed<XetMode>>,
    /// Checked after reading, as `upstream_hosts`.
    mirror_names: Option<Vec<Spanned<String>>>,
    max_connections: Option<u32>,
    header_timeout: Option<u64>,
    idle_timeout: Option<u64>,
    log_format: Option<Parsed<crate::LogFormat>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Accessibility {
    offline: Option<bool>,
    proxy: Option<Vec<RawRule>>,
    cache: Option<Vec<RawRule>>,
}

/// A rule table as written. olah's defaults: `allow = false`, `use_re = false`. The pattern is
/// compiled after reading, so that an invalid regex can be reported at its own line (toml only
/// knows the span of the whole array for errors raised inside an array of tables).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    repo: Spanned<String>,
    #[serde(default)]
    allow: bool,
    #[serde(default)]
    use_re: bool,
    /// In olah's rule class but never read; accepted and ignored.
    #[serde(default, rename = "type")]
    _kind: Option<String>,
}

/// Strings checked by a `fn(&str) -> Result<String, String>`.
macro_rules! checked_string {
    ($name:ident, $check:path) => {
        #[derive(Debug)]
        struct $name(String);

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                $check(&s).map(Self).map_err(de::Error::custom)
            }
        }
    };
}

checked_string!(Host, values::host);
checked_string!(Scheme, values::scheme);
checked_string!(Netloc, values::netloc);

/// A string parsed with `FromStr` (the enums).
#[derive(Debug)]
struct Parsed<T>(T);

impl<'de, T: FromStr<Err = String>> Deserialize<'de> for Parsed<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map(Parsed).map_err(de::Error::custom)
    }
}

/// A path where `""` means none (olah's `ssl-key` / `ssl-cert`).
#[derive(Debug)]
struct OptionalPath(Option<PathBuf>);

impl<'de> Deserialize<'de> for OptionalPath {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(Self((!s.is_empty()).then(|| PathBuf::from(s))))
    }
}

/// A byte size: a non-negative integer, or a string such as `"100G"`.
#[derive(Debug)]
struct Size(u64);

/// Like [`Size`], and `""` means no limit.
#[derive(Debug)]
struct SizeLimit(Option<u64>);

struct SizeVisitor<T>(PhantomData<T>, bool);

impl<T: From<Option<u64>>> Visitor<'_> for SizeVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a size in bytes, or a string like \"100G\", \"500GB\", \"2TB\"")?;
        if self.1 {
            f.write_str(" or \"\"")?;
        }
        Ok(())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        Ok(T::from(Some(v)))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        u64::try_from(v)
            .map(|v| T::from(Some(v)))
            .map_err(|_| E::custom(format!("{v} is negative (expected a size in bytes)")))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        if self.1 && v.trim().is_empty() {
            return Ok(T::from(None));
        }
        parse_size(v).map(|n| T::from(Some(n))).ok_or_else(|| {
            E::custom(format!(
                "{v:?} is not a size (expected e.g. \"100G\", \"500GB\", \"2TB\", \"1024\")"
            ))
        })
    }
}

impl From<Option<u64>> for Size {
    fn from(v: Option<u64>) -> Self {
        Size(v.unwrap_or_default())
    }
}

impl From<Option<u64>> for SizeLimit {
    fn from(v: Option<u64>) -> Self {
        SizeLimit(v)
    }
}

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(SizeVisitor(PhantomData, false))
    }
}

impl<'de> Deserialize<'de> for SizeLimit {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(SizeVisitor(PhantomData, true))
    }
}

/// A problem found in the text: where (byte span), and what.
struct Problem {
    span: Option<Range<usize>>,
    msg: String,
}

impl From<toml::de::Error> for Problem {
    fn from(e: toml::de::Error) -> Self {
        Problem {
            span: e.span(),
            msg: explain(e.message()),
        }
    }
}

/// Compiles a rule list. olah's semantics, expressed with [`crate::decide`]'s: a list given but
/// empty denies every repository in olah (nothing matches), so it becomes one "deny `*`" rule.
fn rule_list(rules: Vec<RawRule>) -> Result<Vec<AccessRule>, Problem> {
    if rules.is_empty() {
        let deny_all = AccessRule::compile("*".into(), false, false);
        return Ok(vec![deny_all.expect("`*` is a valid pattern")]);
    }
    rules
        .into_iter()
        .map(|r| {
            let span = r.repo.span();
            AccessRule::compile(r.repo.into_inner(), r.allow, r.use_re).map_err(|msg| Problem {
                span: Some(span),
                msg,
            })
        })
        .collect()
}

/// Where the keys of a file were: the 1-based line of each key given (`basic.port`;
/// `accessibility.proxy` is the first `[[accessibility.proxy]]` header; `admin.token` is the
/// line of `token` or `token_file`, whichever gave the token), and the token file, if the token
/// came from one.
#[derive(Debug, Default)]
pub(crate) struct FileKeys {
    pub lines: std::collections::HashMap<String, usize>,
    pub token_file: Option<PathBuf>,
}

/// Reads and checks `path`, returning the keys it gives.
#[cfg(test)]
pub(crate) fn read(path: &Path) -> Result<Layer, ConfigError> {
    read_with_keys(path).map(|(layer, _)| layer)
}

/// Reads and checks `path`, returning the keys it gives and where they were.
pub(crate) fn read_with_keys(path: &Path) -> Result<(Layer, FileKeys), ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let parsed = parse(&text).map(|(layer, (admin_key, token_file))| {
        let mut lines = key_lines(&text);
        if let Some(line) = admin_key.and_then(|k| lines.get(k).copied()) {
            lines.insert("admin.token".into(), line);
        }
        (layer, FileKeys { lines, token_file })
    });
    parsed.map_err(|p| {
        let (line, key) = match p.span {
            Some(span) => (
                Some(line_of(&text, span.start)),
                key_path_at(&text, span.start),
            ),
            None => (None, None),
        };
        let mut msg = p.msg;
        if let Some(hint) = key.as_deref().and_then(misplaced) {
            msg.push_str(&hint);
        }
        ConfigError::File {
            path: path.to_path_buf(),
            line,
            key,
            msg,
        }
    })
}

/// The 1-based line of every `table.key` in `text` (which has parsed already).
fn key_lines(text: &str) -> std::collections::HashMap<String, usize> {
    let mut out = std::collections::HashMap::new();
    let Ok(doc) = DeTable::parse(text) else {
        return out;
    };
    for (table, value) in doc.get_ref().iter() {
        if let DeValue::Table(t) = value.get_ref() {
            for (key, _) in t.iter() {
                let path = format!("{}.{}", table.get_ref(), key.get_ref());
                out.insert(path, line_of(text, key.span().start));
            }
        }
    }
    out
}

/// What gave the admin token (`admin.token` or `admin.token_file`), and the token file.
type AdminKey = (Option<&'static str>, Option<PathBuf>);

/// Parses and checks the text of a config file.
fn parse(text: &str) -> Result<(Layer, AdminKey), Problem> {
    let f: FileConfig = toml::from_str(text)?;
    let b = f.basic;
    let netlocs = |list: Option<Vec<Spanned<String>>>| match list {
        None => Ok(None),
        Some(hosts) => hosts
            .into_iter()
            .map(|h| {
                let span = h.span();
                values::netloc(h.get_ref()).map_err(|msg| Problem {
                    span: Some(span),
                    msg,
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
    };
    let mut admin_key: AdminKey = (None, None);
    let admin_token = match (f.admin.token, f.admin.token_file) {
        (Some(t), _) if !t.get_ref().is_empty() => {
            admin_key.0 = Some("admin.token");
            Some(crate::Secret::new(t.into_inner()))
        }
        (Some(t), None) => {
            return Err(Problem {
                span: Some(t.span()),
                msg: "must not be empty".into(),
            });
        }
        (_, Some(f)) => {
            let span = f.span();
            let token =
                crate::cli::read_secret_file(f.get_ref(), "admin.token_file").map_err(|e| {
                    Problem {
                        span: Some(span),
                        msg: e.to_string(),
                    }
                })?;
            admin_key = (Some("admin.token_file"), Some(f.into_inner()));
            Some(token)
        }
        (None, None) => None,
    };
    let upstream_hosts = netlocs(b.upstream_hosts)?;
    let mirror_names = netlocs(b.mirror_names)?;
    let layer = Layer {
        host: b.host.map(|v| v.0),
        port: b.port,
        ssl_key: b.ssl_key.map(|v| v.0),
        ssl_cert: b.ssl_cert.map(|v| v.0),
        repos_path: b.repos_path,
        cache_size_limit: b.cache_size_limit.map(|v| v.0),
        cache_clean_strategy: b.cache_clean_strategy.map(|v| v.0),
        cache_compression: b.cache_compression.map(|v| v.0),
        cache_block_size: b.cache_block_size.map(|v| v.0),
        cache_chunk_size: b.cache_chunk_size.map(|v| v.0),
        cache_redirect_model: b.cache_redirect_model,
        xet_passthrough: b.xet_passthrough,
        xet_passthrough_min_size: b.xet_passthrough_min_size.map(|v| v.0),
        metadata_cache_ttl: b.metadata_cache_ttl,
        hf_scheme: b.hf_scheme.map(|v| v.0),
        hf_netloc: b.hf_netloc.map(|v| v.0),
        hf_lfs_netloc: b.hf_lfs_netloc.map(|v| v.0),
        mirror_scheme: b.mirror_scheme.map(|v| v.0),
        mirror_netloc: b.mirror_netloc.map(|v| v.0),
        mirror_lfs_netloc: b.mirror_lfs_netloc.map(|v| v.0),
        has_lfs_site: b.has_lfs_site,
        log_path: b.log_path,
        workers: b.workers,
        mirrors_path: b.mirrors_path,
        offline: f.accessibility.offline,
        proxy_rules: f.accessibility.proxy.map(rule_list).transpose()?,
        cache_rules: f.accessibility.cache.map(rule_list).transpose()?,
        upstream_hosts,
        xet_mode: b.xet.map(|v| v.0),
        mirror_names,
        max_connections: b.max_connections,
        header_timeout: b.header_timeout,
        idle_timeout: b.idle_timeout,
        admin_token,
        log_format: b.log_format.map(|v| v.0),
    };
    Ok((layer, admin_key))
}

/// `[basic]` keys, as olah spells them (plus ours).
const BASIC_KEYS: [&str; 31] = [
    "host",
    "port",
    "ssl-key",
    "ssl-cert",
    "repos-path",
    "cache-size-limit",
    "cache-clean-strategy",
    "cache-compression",
    "cache-block-size",
    "cache-chunk-size",
    "cache-redirect-model",
    "xet-passthrough",
    "xet-passthrough-min-size",
    "metadata-cache-ttl",
    "hf-scheme",
    "hf-netloc",
    "hf-lfs-netloc",
    "mirror-scheme",
    "mirror-netloc",
    "mirror-lfs-netloc",
    "mirrors-path",
    "has-lfs-site",
    "log-path",
    "workers",
    "upstream-hosts",
    "xet",
    "mirror-names",
    "max-connections",
    "header-timeout",
    "idle-timeout",
    "log-format",
];

/// `[accessibility]` keys.
const ACCESSIBILITY_KEYS: [&str; 3] = ["offline", "proxy", "cache"];

/// A hint when a known key sits in the wrong table (`offline` in `[basic]`, `port` before any
/// table header...).
fn misplaced(path: &str) -> Option<String> {
    let (table, key) = path.rsplit_once('.').unwrap_or(("", path));
    let home = if BASIC_KEYS.contains(&key) {
        "basic"
    } else if ACCESSIBILITY_KEYS.contains(&key) {
        "accessibility"
    } else {
        return None;
    };
    (table != home).then(|| format!(" (`{key}` belongs in the [{home}] table)"))
}

/// 1-based line of byte `offset`.
fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// One path segment: a key or an array index.
enum Segment {
    Key(String),
    Index(usize),
}

/// The dotted key path (`accessibility.proxy[1].allow`) of the innermost key or value whose
/// span contains `offset`. `None` if the text does not parse.
fn key_path_at(text: &str, offset: usize) -> Option<String> {
    let doc = DeTable::parse(text).ok()?;
    let mut path = Vec::new();
    if !find_in_table(doc.get_ref(), offset, &mut path) {
        return None;
    }
    let mut out = String::new();
    for seg in path {
        match seg {
            Segment::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(&k);
            }
            Segment::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    Some(out)
}

fn find_in_table(table: &DeTable<'_>, offset: usize, path: &mut Vec<Segment>) -> bool {
    for (key, value) in table.iter() {
        path.push(Segment::Key(key.get_ref().to_string()));
        // Deepest match first: a table's span may cover its children.
        if find_in_value(value.get_ref(), offset, path)
            || key.span().contains(&offset)
            || value.span().contains(&offset)
        {
            return true;
        }
        path.pop();
    }
    false
}

fn find_in_value(value: &DeValue<'_>, offset: usize, path: &mut Vec<Segment>) -> bool {
    match value {
        DeValue::Table(t) => find_in_table(t, offset, path),
        DeValue::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                path.push(Segment::Index(i));
                if find_in_value(item.get_ref(), offset, path) || item.span().contains(&offset) {
                    return true;
                }
                path.pop();
            }
            false
        }
        _ => false,
    }
}

/// toml's message on one line, with unknown keys reworded and a "did you mean".
fn explain(msg: &str) -> String {
    let msg = msg.trim().replace('\n', "; ");
    let Some(rest) = msg.strip_prefix("unknown field `") else {
        return msg;
    };
    let Some((unknown, expected)) = rest.split_once('`') else {
        return msg;
    };
    // serde lists the known fields as "`a`, `b`, `c`".
    let known: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    let mut out = format!("unknown key `{unknown}`");
    let best = known
        .iter()
        .map(|k| (edit_distance(unknown, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min();
    if let Some((_, best)) = best {
        out.push_str(&format!(" (did you mean `{best}`?)"));
    } else if !known.is_empty() {
        out.push_str("; expected one of: ");
        out.push_str(&known.join(", "));
    }
    out
}

/// Levenshtein distance (short strings only).
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::decide;

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    fn read_text(text: &str) -> Result<Layer, ConfigError> {
        read(file(text).path())
    }

    /// The error for `text`, checked to name the file, and as (line, key, message).
    fn error(text: &str) -> (Option<usize>, Option<String>, String) {
        let f = file(text);
        let e = read(f.path()).unwrap_err();
        let shown = e.to_string();
        assert!(
            shown.contains(&f.path().display().to_string()),
            "names the file: {shown}"
        );
        assert!(!shown.contains('\n'), "one line: {shown}");
        match e {
            ConfigError::File { line, key, msg, .. } => (line, key, msg),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn every_key() {
        let l = read_text(
            r#"
[basic]
host = "0.0.0.0"
port = 9000
ssl-key = "/tls/key.pem"
ssl-cert = "/tls/cert.pem"
repos-path = "/data/repos"
cache-size-limit = "1.5T"
cache-clean-strategy = "LARGE_FIRST"
cache-compression = "lzma"
cache-block-size = "8MB"
cache-chunk-size = 1048576
cache-redirect-model = true
xet-passthrough = true
xet-passthrough-min-size = "50GB"
metadata-cache-ttl = 0
hf-scheme = "http"
hf-netloc = "127.0.0.1:1"
hf-lfs-netloc = "127.0.0.1:2"
mirror-scheme = "https"
mirror-netloc = "mirror.lan"
mirror-lfs-netloc = "lfs.mirror.lan:8443"
mirrors-path = ["/m1", "/m2"]
has-lfs-site = true
log-path = "/var/log/olah"
workers = 4
upstream-hosts = ["cas.example:443", "127.0.0.1:3"]
xet = "plain"

[accessibility]
offline = true

[[accessibility.proxy]]
repo = "acme/*"
allow = true
type = "model"

[[accessibility.cache]]
repo = "^acme/private-.*"
allow = false
use_re = true
"#,
        )
        .unwrap();
        let c = l.into_config();
        assert_eq!(c.host, "0.0.0.0");
        assert_eq!(c.port, 9000);
        assert_eq!(c.ssl_key, Some("/tls/key.pem".into()));
        assert_eq!(c.ssl_cert, Some("/tls/cert.pem".into()));
        assert_eq!(c.repos_path, PathBuf::from("/data/repos"));
        assert_eq!(c.cache_size_limit, Some(3 << 39));
        assert_eq!(c.cache_clean_strategy, CleanStrategy::LargeFirst);
        assert_eq!(c.cache_compression, Compression::Lzma);
        assert_eq!(c.cache_block_size, Some(8 << 20));
        assert_eq!(c.cache_chunk_size, Some(1 << 20));
        assert!(c.cache_redirect_model && c.xet_passthrough);
        assert_eq!(c.xet_passthrough_min_size, 50 << 30);
        assert_eq!(c.metadata_cache_ttl, 0);
        assert_eq!(c.hf_url(), "http://127.0.0.1:1");
        assert_eq!(c.hf_lfs_netloc, "127.0.0.1:2");
        assert_eq!(c.mirror_url(), "https://mirror.lan");
        assert_eq!(c.mirror_lfs_netloc, "lfs.mirror.lan:8443");
        assert_eq!(c.mirrors_path, vec![PathBuf::from("/m1"), "/m2".into()]);
        assert!(c.has_lfs_site);
        assert_eq!(c.log_path, PathBuf::from("/var/log/olah"));
        assert_eq!(c.workers, 4);
        assert_eq!(c.upstream_hosts, vec!["cas.example:443", "127.0.0.1:3"]);
        assert_eq!(c.xet_mode, XetMode::PlainHttp);
        assert!(c.offline);
        assert_eq!(c.proxy_rules.len(), 1);
        assert!(decide(&c.proxy_rules, "acme/x"));
        assert!(!decide(&c.proxy_rules, "other/x"));
        assert!(c.cache_rules[0].use_re && !c.cache_rules[0].allow);
        assert!(!decide(&c.cache_rules, "acme/private-1"));
        c.validate().unwrap();
    }

    /// The shape of olah's `assets/full_configs.toml` and docker `configs.toml`.
    #[test]
    fn olah_example_config_loads() {
        let c = read_text(
            r#"
[basic]
host = "localhost"
port = 8090
ssl-key = ""
ssl-cert = ""
repos-path = "./repos"
cache-size-limit = ""
cache-clean-strategy = "LRU"
cache-compression = "none"
# comments are fine
metadata-cache-ttl = 600
xet-passthrough = false
xet-passthrough-min-size = "50GB"
hf-scheme = "https"
hf-netloc = "huggingface.co"
hf-lfs-netloc = "cdn-lfs.huggingface.co"
mirror-scheme = "http"
mirror-netloc = "localhost:8090"
mirror-lfs-netloc = "localhost:8090"
mirrors-path = ["./mirrors_dir"]

[accessibility]
offline = false

# allow other or will be in whitelist mode.
[[accessibility.proxy]]
repo = "*"
allow = true

[[accessibility.proxy]]
repo = "*/*"
allow = true

[[accessibility.proxy]]
repo = "cais/mmlu"
allow = true

[[accessibility.proxy]]
repo = "adept/fuyu-8b"
allow = false

[[accessibility.proxy]]
repo = "mistralai/*"
allow = true

[[accessibility.proxy]]
repo = "mistralai/Mistral.*"
allow = false
use_re = true

[[accessibility.cache]]
repo = "*"
allow = true

[[accessibility.cache]]
repo = "*/*"
allow = true

[[accessibility.cache]]
repo = "cais/mmlu"
allow = true

[[accessibility.cache]]
repo = "adept/fuyu-8b"
allow = false
"#,
        )
        .unwrap()
        .into_config();
        assert_eq!((c.host.as_str(), c.port), ("localhost", 8090));
        assert_eq!((c.ssl_key.as_ref(), c.ssl_cert.as_ref()), (None, None));
        assert_eq!(c.cache_size_limit, None);
        assert_eq!(c.mirrors_path, vec![PathBuf::from("./mirrors_dir")]);
        assert_eq!(c.proxy_rules.len(), 6);
        assert_eq!(c.cache_rules.len(), 4);
        assert!(decide(&c.proxy_rules, "anyone/else"));
        assert!(decide(&c.proxy_rules, "mistralai/Mixtral-8x7B"));
        assert!(!decide(&c.proxy_rules, "mistralai/Mistral-7B"));
        assert!(!decide(&c.proxy_rules, "adept/fuyu-8b"));
        assert!(!decide(&c.cache_rules, "adept/fuyu-8b"));
        assert!(decide(&c.cache_rules, "cais/mmlu"));
        c.validate().unwrap();
    }

    #[test]
    fn empty_file_and_empty_tables_give_nothing() {
        for text in ["", "[basic]\n", "[accessibility]\n"] {
            let c = read_text(text).unwrap().into_config();
            assert_eq!(c, crate::Config::default(), "{text:?}");
        }
    }

    #[test]
    fn rule_defaults_follow_olah() {
        let c = read_text("[[accessibility.proxy]]\nrepo = \"acme/*\"\n")
            .unwrap()
            .into_config();
        assert!(!c.proxy_rules[0].allow, "olah's `allow` defaults to false");
        assert!(!c.proxy_rules[0].use_re);
        assert!(!decide(&c.proxy_rules, "acme/x"));
    }

    #[test]
    fn an_empty_rule_list_denies_everything_as_in_olah() {
        let c = read_text("[accessibility]\nproxy = []\n")
            .unwrap()
            .into_config();
        assert!(!decide(&c.proxy_rules, "acme/x"));
        assert!(decide(&c.cache_rules, "acme/x"), "cache list not given");
    }

    #[test]
    fn unknown_key_in_basic_names_key_line_and_suggests() {
        let (line, key, msg) = error("[basic]\nhost = \"h\"\nprot = 1\n");
        assert_eq!(line, Some(3));
        assert_eq!(key.as_deref(), Some("basic.prot"));
        assert!(msg.contains("unknown key `prot`"), "{msg}");
        assert!(msg.contains("did you mean `port`"), "{msg}");
        assert!(
            !msg.contains("expected one of"),
            "no list with a suggestion: {msg}"
        );
    }

    #[test]
    fn unknown_keys_elsewhere() {
        let (line, key, msg) = error(
            "[[accessibility.proxy]]\nrepo = \"a/*\"\nallow = true\n\n\
             [[accessibility.proxy]]\nrepo = \"b/*\"\nregex = true\n",
        );
        assert_eq!(line, Some(7));
        assert_eq!(key.as_deref(), Some("accessibility.proxy[1].regex"));
        assert!(msg.contains("`regex`"), "{msg}");
        let (_, key, msg) = error("[accessibility]\nofline = true\n");
        assert_eq!(key.as_deref(), Some("accessibility.ofline"));
        assert!(msg.contains("did you mean `offline`"), "{msg}");
        let (_, key, msg) = error("[basics]\nport = 1\n");
        assert_eq!(key.as_deref(), Some("basics"));
        assert!(msg.contains("did you mean `basic`"), "{msg}");
        // olah's pre-0.3 keys are not silently ignored.
        let (_, key, _) = error("[basic]\nhf-url = \"https://huggingface.co\"\n");
        assert_eq!(key.as_deref(), Some("basic.hf-url"));
    }

    #[test]
    fn bad_values_name_the_key() {
        let cases = [
            ("[basic]\nport = \"abc\"\n", "basic.port", ""),
            ("[basic]\nport = 70000\n", "basic.port", ""),
            (
                "[basic]\ncache-clean-strategy = \"LFU\"\n",
                "basic.cache-clean-strategy",
                "LFU",
            ),
            (
                "[basic]\ncache-size-limit = \"12Q\"\n",
                "basic.cache-size-limit",
                "12Q",
            ),
            (
                "[basic]\ncache-size-limit = -5\n",
                "basic.cache-size-limit",
                "negative",
            ),
            ("[basic]\nhf-scheme = \"ftp\"\n", "basic.hf-scheme", "ftp"),
            (
                "[basic]\nhf-netloc = \"https://huggingface.co\"\n",
                "basic.hf-netloc",
                "host[:port]",
            ),
            (
                "[basic]\nupstream-hosts = [\"ok:1\", \"bad/x\"]\n",
                "basic.upstream-hosts[1]",
                "bad/x",
            ),
            ("[basic]\nxet = \"on\"\n", "basic.xet", "serve, plain"),
            ("[basic]\nworkers = -1\n", "basic.workers", ""),
            (
                "[basic]\noffline = true\n",
                "basic.offline",
                "accessibility",
            ),
            (
                "[accessibility]\noffline = \"yes\"\n",
                "accessibility.offline",
                "",
            ),
            (
                "[basic]\nmirrors-path = \"/m\"\n",
                "basic.mirrors-path",
                "sequence",
            ),
            (
                "[[accessibility.proxy]]\nrepo = \"a\"\n\n[[accessibility.proxy]]\nrepo = \"b\"\nuse_re = \"yes\"\n",
                "accessibility.proxy[1].use_re",
                "bool",
            ),
            (
                "[[accessibility.cache]]\nallow = true\n",
                "accessibility.cache[0]",
                "repo",
            ),
            (
                "[[accessibility.cache]]\nrepo = \"ok\"\n\n[[accessibility.cache]]\nrepo = \"(\"\nuse_re = true\n",
                "accessibility.cache[1].repo",
                "invalid regex \"(\"",
            ),
        ];
        for (text, want_key, want_msg) in cases {
            let (line, key, msg) = error(text);
            assert_eq!(key.as_deref(), Some(want_key), "{text}: {msg}");
            assert!(line.is_some(), "{text}");
            assert!(msg.contains(want_msg), "{text}: {msg}");
        }
    }

    #[test]
    fn the_display_has_file_line_key_and_reason() {
        let f = file("[basic]\n\nport = \"abc\"\n");
        let shown = read(f.path()).unwrap_err().to_string();
        let want = format!(
            "config file {}, line 3, key `basic.port`: ",
            f.path().display()
        );
        assert!(shown.starts_with(&want), "{shown}");
        assert!(shown.contains("u16"), "{shown}");
    }

    #[test]
    fn syntax_errors_and_missing_files() {
        let (line, key, _) = error("[basic]\nport = \n");
        assert_eq!(line, Some(2));
        assert_eq!(key, None);
        let e = read(Path::new("/nonexistent/olah.toml")).unwrap_err();
        assert!(matches!(e, ConfigError::Read { .. }));
        assert!(e.to_string().contains("/nonexistent/olah.toml"), "{e}");
    }

    #[test]
    fn size_values_accept_integers_and_strings() {
        let c = read_text(
            "[basic]\ncache-size-limit = 1024\ncache-block-size = \"64M\"\ncache-chunk-size = \"1MiB\"\n",
        )
        .unwrap()
        .into_config();
        assert_eq!(c.cache_size_limit, Some(1024));
        assert_eq!(c.cache_block_size, Some(64 << 20));
        assert_eq!(c.cache_chunk_size, Some(1 << 20));
        let (_, key, _) = error("[basic]\ncache-block-size = \"\"\n");
        assert_eq!(
            key.as_deref(),
            Some("basic.cache-block-size"),
            "\"\" only for the limit"
        );
        let (_, key, _) = error("[basic]\ncache-size-limit = 1.5\n");
        assert_eq!(key.as_deref(), Some("basic.cache-size-limit"));
    }

    #[test]
    fn misplaced_keys_get_a_hint() {
        let (_, key, msg) = error("port = 9000\n[basic]\n");
        assert_eq!(key.as_deref(), Some("port"));
        assert!(msg.contains("belongs in the [basic] table"), "{msg}");
        let (_, _, msg) = error("[accessibility]\nhost = \"h\"\n");
        assert!(msg.contains("belongs in the [basic] table"), "{msg}");
    }

    #[test]
    fn the_key_lists_match_the_structs() {
        for key in BASIC_KEYS {
            let e = read_text(&format!("[basic]\n{key} = {{}}\n")).unwrap_err();
            let ConfigError::File { msg, .. } = e else {
                panic!("{e:?}")
            };
            assert!(!msg.contains("unknown key"), "{key}: {msg}");
        }
        for key in ACCESSIBILITY_KEYS {
            let e = read_text(&format!("[accessibility]\n{key} = {{}}\n")).unwrap_err();
            let ConfigError::File { msg, .. } = e else {
                panic!("{e:?}")
            };
            assert!(!msg.contains("unknown key"), "{key}: {msg}");
        }
    }

    #[test]
    fn did_you_mean_only_for_close_keys() {
        assert_eq!(edit_distance("prot", "port"), 2);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        let msg = explain("unknown field `zzzzzz`, expected one of `host`, `port`");
        assert!(!msg.contains("did you mean"), "{msg}");
        assert!(msg.contains("expected one of: host, port"), "{msg}");
    }
}
