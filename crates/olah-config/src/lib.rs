//! olah-config: olah's command line and `configs.toml`, merged and validated.
//!
//! Precedence: built-in defaults < TOML file (`-c`) < command-line flags. (olah ignores most flags
//! when `-c` is given; we let them override the file.) Unknown keys and bad values stop start-up
//! with an error that names the key.

mod cli;
mod file;
mod rules;
mod size;

use std::ffi::OsString;
use std::path::PathBuf;

pub use rules::{AccessRule, decide};
pub use size::parse_size;

/// Cache eviction strategy (`cache-clean-strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CleanStrategy {
    /// Least recently used.
    Lru,
    /// First in, first out.
    Fifo,
    /// Largest first.
    LargeFirst,
}

/// `cache-compression` (accepted for compatibility).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// No compression.
    None,
    /// gzip.
    Gzip,
    /// lzma.
    Lzma,
}

/// How Xet-backed files are offered to clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XetMode {
    /// Speak Xet to clients (the mirror serves the CAS).
    Serve,
    /// Strip everything Xet: clients download over plain HTTP.
    PlainHttp,
}

/// What to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// The mirror.
    Serve,
    /// Serve plain directories as model repos.
    ModelBin {
        /// Root directory (`DIR/<org>/<repo>/…`).
        path: PathBuf,
    },
}

/// The merged configuration. Field meanings and defaults follow olah 0.5.4.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Listen host (`localhost`).
    pub host: String,
    /// Listen port (8090).
    pub port: u16,
    /// TLS private key (PEM).
    pub ssl_key: Option<PathBuf>,
    /// TLS certificate chain (PEM).
    pub ssl_cert: Option<PathBuf>,
    /// Cache directory (`./repos`).
    pub repos_path: PathBuf,
    /// Cache size limit in bytes (none).
    pub cache_size_limit: Option<u64>,
    /// Eviction strategy (LRU).
    pub cache_clean_strategy: CleanStrategy,
    /// Compression (none).
    pub cache_compression: Compression,
    /// Block size of the cache (our default when unset).
    pub cache_block_size: Option<u64>,
    /// Chunk size (accepted for compatibility).
    pub cache_chunk_size: Option<u64>,
    /// olah's experimental redirect model (accepted).
    pub cache_redirect_model: bool,
    /// olah's Xet pass-through (accepted).
    pub xet_passthrough: bool,
    /// olah's Xet pass-through threshold.
    pub xet_passthrough_min_size: u64,
    /// Seconds branch-keyed metadata stays fresh (600).
    pub metadata_cache_ttl: u64,
    /// Upstream scheme (`https`).
    pub hf_scheme: String,
    /// Upstream host[:port] (`huggingface.co`).
    pub hf_netloc: String,
    /// Upstream LFS host (`cdn-lfs.huggingface.co`).
    pub hf_lfs_netloc: String,
    /// Scheme clients reach the mirror with.
    pub mirror_scheme: String,
    /// host:port clients reach the mirror at.
    pub mirror_netloc: String,
    /// LFS host:port of the mirror.
    pub mirror_lfs_netloc: String,
    /// Vestigial olah flag.
    pub has_lfs_site: bool,
    /// Log directory (`./logs`).
    pub log_path: PathBuf,
    /// Worker count (accepted; one multi-threaded process serves).
    pub workers: u32,
    /// Local git mirror roots.
    pub mirrors_path: Vec<PathBuf>,
    /// Never contact the upstream.
    pub offline: bool,
    /// `[[accessibility.proxy]]` rules.
    pub proxy_rules: Vec<AccessRule>,
    /// `[[accessibility.cache]]` rules.
    pub cache_rules: Vec<AccessRule>,
    /// Extra hosts upstream redirects may lead to.
    pub upstream_hosts: Vec<String>,
    /// Xet mode.
    pub xet_mode: XetMode,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            host: "localhost".into(),
            port: 8090,
            ssl_key: None,
            ssl_cert: None,
            repos_path: "./repos".into(),
            cache_size_limit: None,
            cache_clean_strategy: CleanStrategy::Lru,
            cache_compression: Compression::None,
            cache_block_size: None,
            cache_chunk_size: None,
            cache_redirect_model: false,
            xet_passthrough: false,
            xet_passthrough_min_size: 53_687_091_200,
            metadata_cache_ttl: 600,
            hf_scheme: "https".into(),
            hf_netloc: "huggingface.co".into(),
            hf_lfs_netloc: "cdn-lfs.huggingface.co".into(),
            mirror_scheme: String::new(),
            mirror_netloc: String::new(),
            mirror_lfs_netloc: String::new(),
            has_lfs_site: false,
            log_path: "./logs".into(),
            workers: 1,
            mirrors_path: Vec::new(),
            offline: false,
            proxy_rules: Vec::new(),
            cache_rules: Vec::new(),
            upstream_hosts: Vec::new(),
            xet_mode: XetMode::Serve,
        }
    }
}

/// A configuration problem, worded for the operator.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Command-line parsing failed.
    #[error("{0}")]
    Cli(String),
    /// `--help` or `--version` was asked for: print it and exit successfully.
    #[error("{0}")]
    Help(String),
    /// The config file could not be read.
    #[error("cannot read config file {path}: {err}")]
    Read {
        /// File.
        path: PathBuf,
        /// Cause.
        err: std::io::Error,
    },
    /// The config file does not parse (unknown key, wrong type…).
    #[error("config file {path}: {msg}")]
    Parse {
        /// File.
        path: PathBuf,
        /// What toml said (names the key and line).
        msg: String,
    },
    /// A value is invalid.
    #[error("invalid value for `{key}`: {msg}")]
    Invalid {
        /// Key (TOML spelling).
        key: &'static str,
        /// Why.
        msg: String,
    },
}

impl ConfigError {
    pub(crate) fn invalid(key: &'static str, msg: impl Into<String>) -> Self {
        Self::Invalid {
            key,
            msg: msg.into(),
        }
    }
}

/// Parses the process arguments.
pub fn load() -> Result<(Config, Command), ConfigError> {
    load_from_args(std::env::args_os())
}

/// Parses the given arguments (the first is the program name).
pub fn load_from_args<I, T>(args: I) -> Result<(Config, Command), ConfigError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = cli::parse(args)?;
    let mut cfg = Config::default();
    if let Some(path) = &cli.config {
        file::apply(&mut cfg, path)?;
    }
    cli::apply(&mut cfg, &cli)?;
    derive_defaults(&mut cfg);
    cfg.validate()?;
    Ok((cfg, cli::command(&cli)))
}

/// Fills `mirror-*` defaults that depend on other keys, unless given.
fn derive_defaults(cfg: &mut Config) {
    if cfg.mirror_scheme.is_empty() {
        cfg.mirror_scheme = if cfg.ssl_key.is_some() {
            "https"
        } else {
            "http"
        }
        .into();
    }
    if cfg.mirror_netloc.is_empty() {
        let host = if cfg.host == "0.0.0.0" || cfg.host == "::" || cfg.host == "[::]" {
            "localhost"
        } else {
            &cfg.host
        };
        cfg.mirror_netloc = format!("{host}:{}", cfg.port);
    }
    if cfg.mirror_lfs_netloc.is_empty() {
        cfg.mirror_lfs_netloc = cfg.mirror_netloc.clone();
    }
}

fn valid_netloc(s: &str) -> bool {
    !s.is_empty() && !s.contains(['/', '@', ' ', '?', '#', '\\'])
}

impl Config {
    /// Checks cross-field rules.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (key, v) in [
            ("hf-scheme", &self.hf_scheme),
            ("mirror-scheme", &self.mirror_scheme),
        ] {
            if v != "http" && v != "https" {
                return Err(ConfigError::invalid(
                    key,
                    format!("{v:?} (expected http or https)"),
                ));
            }
        }
        for (key, v) in [
            ("hf-netloc", &self.hf_netloc),
            ("hf-lfs-netloc", &self.hf_lfs_netloc),
            ("mirror-netloc", &self.mirror_netloc),
            ("mirror-lfs-netloc", &self.mirror_lfs_netloc),
        ] {
            if !valid_netloc(v) {
                return Err(ConfigError::invalid(
                    key,
                    format!("{v:?} is not a host[:port]"),
                ));
            }
        }
        for h in &self.upstream_hosts {
            if !valid_netloc(h) {
                return Err(ConfigError::invalid(
                    "upstream-hosts",
                    format!("{h:?} is not a host[:port]"),
                ));
            }
        }
        if self.ssl_key.is_some() != self.ssl_cert.is_some() {
            return Err(ConfigError::invalid(
                "ssl-key",
                "ssl-key and ssl-cert must be given together",
            ));
        }
        if let (Some(b), Some(c)) = (self.cache_block_size, self.cache_chunk_size)
            && (c == 0 || b % c != 0)
        {
            return Err(ConfigError::invalid(
                "cache-block-size",
                "must be a multiple of cache-chunk-size",
            ));
        }
        if self.cache_block_size == Some(0) {
            return Err(ConfigError::invalid("cache-block-size", "must be > 0"));
        }
        Ok(())
    }

    /// `{hf_scheme}://{hf_netloc}`.
    pub fn hf_url(&self) -> String {
        format!("{}://{}", self.hf_scheme, self.hf_netloc)
    }

    /// `{mirror_scheme}://{mirror_netloc}`.
    pub fn mirror_url(&self) -> String {
        format!("{}://{}", self.mirror_scheme, self.mirror_netloc)
    }
}

pub(crate) fn parse_strategy(key: &'static str, s: &str) -> Result<CleanStrategy, ConfigError> {
    match s.to_ascii_uppercase().as_str() {
        "LRU" => Ok(CleanStrategy::Lru),
        "FIFO" => Ok(CleanStrategy::Fifo),
        "LARGE_FIRST" => Ok(CleanStrategy::LargeFirst),
        _ => Err(ConfigError::invalid(
            key,
            format!("{s:?} (expected LRU, FIFO or LARGE_FIRST)"),
        )),
    }
}

pub(crate) fn parse_compression(key: &'static str, s: &str) -> Result<Compression, ConfigError> {
    match s.to_ascii_lowercase().as_str() {
        "none" | "" => Ok(Compression::None),
        "gzip" => Ok(Compression::Gzip),
        "lzma" => Ok(Compression::Lzma),
        _ => Err(ConfigError::invalid(
            key,
            format!("{s:?} (expected none, gzip or lzma)"),
        )),
    }
}

pub(crate) fn parse_xet(key: &'static str, s: &str) -> Result<XetMode, ConfigError> {
    match s.to_ascii_lowercase().as_str() {
        "serve" => Ok(XetMode::Serve),
        "plain" => Ok(XetMode::PlainHttp),
        _ => Err(ConfigError::invalid(
            key,
            format!("{s:?} (expected serve or plain)"),
        )),
    }
}

#[cfg(test)]
mod tests;
