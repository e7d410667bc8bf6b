//! `configs.toml`, olah's format: `[basic]` and `[accessibility]` (+ `[[accessibility.proxy]]`,
//! `[[accessibility.cache]]`). Every table denies unknown keys.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::{
    AccessRule, Config, ConfigError, parse_compression, parse_size, parse_strategy, parse_xet,
};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default)]
    basic: Basic,
    #[serde(default)]
    accessibility: Accessibility,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum SizeValue {
    Int(u64),
    Text(String),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Basic {
    host: Option<String>,
    port: Option<u16>,
    ssl_key: Option<String>,
    ssl_cert: Option<String>,
    repos_path: Option<PathBuf>,
    cache_size_limit: Option<SizeValue>,
    cache_clean_strategy: Option<String>,
    cache_compression: Option<String>,
    cache_block_size: Option<SizeValue>,
    cache_chunk_size: Option<SizeValue>,
    cache_redirect_model: Option<bool>,
    xet_passthrough: Option<bool>,
    xet_passthrough_min_size: Option<SizeValue>,
    metadata_cache_ttl: Option<u64>,
    hf_scheme: Option<String>,
    hf_netloc: Option<String>,
    hf_lfs_netloc: Option<String>,
    mirror_scheme: Option<String>,
    mirror_netloc: Option<String>,
    mirror_lfs_netloc: Option<String>,
    mirrors_path: Option<Vec<PathBuf>>,
    has_lfs_site: Option<bool>,
    log_path: Option<PathBuf>,
    workers: Option<u32>,
    upstream_hosts: Option<Vec<String>>,
    xet: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Accessibility {
    offline: Option<bool>,
    #[serde(default)]
    proxy: Vec<RuleEntry>,
    #[serde(default)]
    cache: Vec<RuleEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleEntry {
    repo: String,
    #[serde(default = "yes")]
    allow: bool,
    #[serde(default)]
    use_re: bool,
    /// Present in olah's class, never read.
    #[serde(default, rename = "type")]
    _kind: Option<String>,
}

fn yes() -> bool {
    true
}

fn size(key: &'static str, v: &SizeValue) -> Result<u64, ConfigError> {
    match v {
        SizeValue::Int(n) => Ok(*n),
        SizeValue::Text(s) => {
            parse_size(s).ok_or_else(|| ConfigError::invalid(key, format!("{s:?} is not a size")))
        }
    }
}

fn rules(key: &'static str, entries: &[RuleEntry]) -> Result<Vec<AccessRule>, ConfigError> {
    entries
        .iter()
        .map(|e| {
            AccessRule::new(&e.repo, e.allow, e.use_re).map_err(|m| ConfigError::invalid(key, m))
        })
        .collect()
}

fn non_empty(s: &Option<String>) -> Option<PathBuf> {
    s.as_deref().filter(|s| !s.is_empty()).map(PathBuf::from)
}

/// Reads `path` and applies its keys to `cfg`.
pub(crate) fn apply(cfg: &mut Config, path: &Path) -> Result<(), ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|err| ConfigError::Read {
        path: path.to_path_buf(),
        err,
    })?;
    let f: FileConfig = toml::from_str(&text).map_err(|e| ConfigError::Parse {
        path: path.to_path_buf(),
        msg: e.to_string(),
    })?;
    let b = f.basic;
    macro_rules! set {
        ($field:ident) => {
            if let Some(v) = b.$field {
                cfg.$field = v;
            }
        };
    }
    set!(host);
    set!(port);
    set!(repos_path);
    set!(cache_redirect_model);
    set!(xet_passthrough);
    set!(metadata_cache_ttl);
    set!(hf_scheme);
    set!(hf_netloc);
    set!(hf_lfs_netloc);
    set!(mirror_scheme);
    set!(mirror_netloc);
    set!(mirror_lfs_netloc);
    set!(mirrors_path);
    set!(has_lfs_site);
    set!(log_path);
    set!(workers);
    set!(upstream_hosts);
    if b.ssl_key.is_some() {
        cfg.ssl_key = non_empty(&b.ssl_key);
    }
    if b.ssl_cert.is_some() {
        cfg.ssl_cert = non_empty(&b.ssl_cert);
    }
    if let Some(v) = &b.cache_size_limit {
        cfg.cache_size_limit = match v {
            SizeValue::Text(s) if s.trim().is_empty() => None,
            v => Some(size("cache-size-limit", v)?),
        };
    }
    if let Some(v) = &b.cache_block_size {
        cfg.cache_block_size = Some(size("cache-block-size", v)?);
    }
    if let Some(v) = &b.cache_chunk_size {
        cfg.cache_chunk_size = Some(size("cache-chunk-size", v)?);
    }
    if let Some(v) = &b.xet_passthrough_min_size {
        cfg.xet_passthrough_min_size = size("xet-passthrough-min-size", v)?;
    }
    if let Some(v) = &b.cache_clean_strategy {
        cfg.cache_clean_strategy = parse_strategy("cache-clean-strategy", v)?;
    }
    if let Some(v) = &b.cache_compression {
        cfg.cache_compression = parse_compression("cache-compression", v)?;
    }
    if let Some(v) = &b.xet {
        cfg.xet_mode = parse_xet("xet", v)?;
    }
    if let Some(o) = f.accessibility.offline {
        cfg.offline = o;
    }
    cfg.proxy_rules = rules("accessibility.proxy", &f.accessibility.proxy)?;
    cfg.cache_rules = rules("accessibility.cache", &f.accessibility.cache)?;
    Ok(())
}
