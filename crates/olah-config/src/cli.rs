//! Command-line flags: olah's, plus ours. No clap defaults, so "not given" is visible and the
//! file's value (or the built-in default) stays.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::{
    Command, Config, ConfigError, parse_compression, parse_size, parse_strategy, parse_xet,
};

#[derive(Debug, Parser)]
#[command(
    name = "olah-cli",
    version,
    about = "Self-hosted Hugging Face Hub mirror (olah-compatible)"
)]
pub(crate) struct Cli {
    /// configs.toml to read; flags given on the command line override its keys
    #[arg(short = 'c', long = "config", global = true)]
    pub config: Option<PathBuf>,
    /// Listen host [default: localhost]
    #[arg(long, global = true)]
    pub host: Option<String>,
    /// Listen port [default: 8090]
    #[arg(long, global = true)]
    pub port: Option<u16>,
    /// TLS private key (PEM)
    #[arg(long = "ssl-key", global = true)]
    pub ssl_key: Option<PathBuf>,
    /// TLS certificate chain (PEM)
    #[arg(long = "ssl-cert", global = true)]
    pub ssl_cert: Option<PathBuf>,
    /// Cache directory [default: ./repos]
    #[arg(long = "repos-path")]
    pub repos_path: Option<PathBuf>,
    /// Cache size limit, e.g. 100G, 500GB, 2TB [default: none]
    #[arg(long = "cache-size-limit")]
    pub cache_size_limit: Option<String>,
    /// Eviction strategy: LRU, FIFO or LARGE_FIRST [default: LRU]
    #[arg(long = "cache-clean-strategy")]
    pub cache_clean_strategy: Option<String>,
    /// none, gzip or lzma (accepted for olah compatibility) [default: none]
    #[arg(long = "cache-compression")]
    pub cache_compression: Option<String>,
    /// Upstream scheme [default: https]
    #[arg(long = "hf-scheme")]
    pub hf_scheme: Option<String>,
    /// Upstream host[:port] [default: huggingface.co]
    #[arg(long = "hf-netloc")]
    pub hf_netloc: Option<String>,
    /// Upstream LFS host[:port] [default: cdn-lfs.huggingface.co]
    #[arg(long = "hf-lfs-netloc")]
    pub hf_lfs_netloc: Option<String>,
    /// Scheme clients use to reach the mirror [default: http, https with --ssl-key]
    #[arg(long = "mirror-scheme")]
    pub mirror_scheme: Option<String>,
    /// host:port clients use to reach the mirror [default: HOST:PORT]
    #[arg(long = "mirror-netloc")]
    pub mirror_netloc: Option<String>,
    /// LFS host:port of the mirror [default: mirror-netloc]
    #[arg(long = "mirror-lfs-netloc")]
    pub mirror_lfs_netloc: Option<String>,
    /// Accepted for olah compatibility
    #[arg(long = "has-lfs-site")]
    pub has_lfs_site: bool,
    /// Log directory [default: ./logs]
    #[arg(long = "log-path", global = true)]
    pub log_path: Option<PathBuf>,
    /// Seconds branch-keyed metadata stays fresh; 0 = always revalidate [default: 600]
    #[arg(long = "metadata-cache-ttl")]
    pub metadata_cache_ttl: Option<u64>,
    /// Accepted for olah compatibility (one multi-threaded process serves) [default: 1]
    #[arg(long)]
    pub workers: Option<u32>,
    /// Serve only from the cache; never contact the upstream
    #[arg(long)]
    pub offline: bool,
    /// Extra host[:port] upstream redirects may lead to (repeatable)
    #[arg(long = "upstream-host")]
    pub upstream_host: Vec<String>,
    /// Xet mode: serve (clients speak Xet to the mirror) or plain (plain HTTP for all) [default: serve]
    #[arg(long)]
    pub xet: Option<String>,
    #[command(subcommand)]
    pub sub: Option<Sub>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Sub {
    /// Serve plain directories DIR/<org>/<repo>/… as model repos, fully offline
    ModelBin {
        /// Root directory
        #[arg(long)]
        path: PathBuf,
    },
}

pub(crate) fn parse<I, T>(args: I) -> Result<Cli, ConfigError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    Cli::try_parse_from(args).map_err(|e| match e.kind() {
        clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
            ConfigError::Help(e.render().to_string())
        }
        _ => ConfigError::Cli(e.render().to_string()),
    })
}

pub(crate) fn command(cli: &Cli) -> Command {
    match &cli.sub {
        Some(Sub::ModelBin { path }) => Command::ModelBin { path: path.clone() },
        None => Command::Serve,
    }
}

/// Applies every flag that was given.
pub(crate) fn apply(cfg: &mut Config, cli: &Cli) -> Result<(), ConfigError> {
    macro_rules! set {
        ($field:ident) => {
            if let Some(v) = &cli.$field {
                cfg.$field = v.clone();
            }
        };
    }
    set!(host);
    set!(port);
    set!(repos_path);
    set!(hf_scheme);
    set!(hf_netloc);
    set!(hf_lfs_netloc);
    set!(mirror_scheme);
    set!(mirror_netloc);
    set!(mirror_lfs_netloc);
    set!(log_path);
    set!(metadata_cache_ttl);
    set!(workers);
    if let Some(v) = &cli.ssl_key {
        cfg.ssl_key = Some(v.clone());
    }
    if let Some(v) = &cli.ssl_cert {
        cfg.ssl_cert = Some(v.clone());
    }
    if let Some(v) = &cli.cache_size_limit {
        cfg.cache_size_limit = if v.trim().is_empty() {
            None
        } else {
            Some(parse_size(v).ok_or_else(|| {
                ConfigError::invalid("cache-size-limit", format!("{v:?} is not a size"))
            })?)
        };
    }
    if let Some(v) = &cli.cache_clean_strategy {
        cfg.cache_clean_strategy = parse_strategy("cache-clean-strategy", v)?;
    }
    if let Some(v) = &cli.cache_compression {
        cfg.cache_compression = parse_compression("cache-compression", v)?;
    }
    if let Some(v) = &cli.xet {
        cfg.xet_mode = parse_xet("xet", v)?;
    }
    if cli.has_lfs_site {
        cfg.has_lfs_site = true;
    }
    if cli.offline {
        cfg.offline = true;
    }
    cfg.upstream_hosts.extend(cli.upstream_host.iter().cloned());
    Ok(())
}
