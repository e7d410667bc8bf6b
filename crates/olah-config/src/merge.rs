//! Layers and their merge: built-in defaults < TOML file < command line.
//!
//! The file and the command line each produce a [`Layer`] in which every key is an `Option`
//! (`None` = not given). Layers are stacked, the later one winning key by key, and the result is
//! laid over olah's defaults. The `mirror-*` keys that olah derives from others are computed last,
//! from the merged values, and only when no layer gave them.

use std::path::PathBuf;

use crate::values::advertised_netloc;
use crate::{AccessRule, CleanStrategy, Compression, Config, XetMode};

/// One source's keys. `None` means "not given here".
#[derive(Debug, Default, Clone)]
pub(crate) struct Layer {
    pub host: Option<String>,
    pub port: Option<u16>,
    /// `Some(None)`: given as `""` (no TLS).
    pub ssl_key: Option<Option<PathBuf>>,
    pub ssl_cert: Option<Option<PathBuf>>,
    pub repos_path: Option<PathBuf>,
    /// `Some(None)`: given as `""` (no limit).
    pub cache_size_limit: Option<Option<u64>>,
    pub cache_clean_strategy: Option<CleanStrategy>,
    pub cache_compression: Option<Compression>,
    pub cache_block_size: Option<u64>,
    pub cache_chunk_size: Option<u64>,
    pub cache_redirect_model: Option<bool>,
    pub xet_passthrough: Option<bool>,
    pub xet_passthrough_min_size: Option<u64>,
    pub metadata_cache_ttl: Option<u64>,
    pub hf_scheme: Option<String>,
    pub hf_netloc: Option<String>,
    pub hf_lfs_netloc: Option<String>,
    pub mirror_scheme: Option<String>,
    pub mirror_netloc: Option<String>,
    pub mirror_lfs_netloc: Option<String>,
    pub has_lfs_site: Option<bool>,
    pub log_path: Option<PathBuf>,
    pub workers: Option<u32>,
    pub mirrors_path: Option<Vec<PathBuf>>,
    pub offline: Option<bool>,
    pub proxy_rules: Option<Vec<AccessRule>>,
    pub cache_rules: Option<Vec<AccessRule>>,
    pub upstream_hosts: Option<Vec<String>>,
    pub xet_mode: Option<XetMode>,
    pub mirror_names: Option<Vec<String>>,
    pub max_connections: Option<u32>,
    pub header_timeout: Option<u64>,
    pub idle_timeout: Option<u64>,
    pub admin_token: Option<crate::Secret>,
    pub log_format: Option<crate::LogFormat>,
}

impl Layer {
    /// `self` with every key that `top` gives replaced by `top`'s value. Lists are replaced, not
    /// appended to.
    pub fn under(self, top: Layer) -> Layer {
        macro_rules! pick {
            ($($f:ident),* $(,)?) => {
                Layer { $($f: top.$f.or(self.$f)),* }
            };
        }
        pick!(
            host,
            port,
            ssl_key,
            ssl_cert,
            repos_path,
            cache_size_limit,
            cache_clean_strategy,
            cache_compression,
            cache_block_size,
            cache_chunk_size,
            cache_redirect_model,
            xet_passthrough,
            xet_passthrough_min_size,
            metadata_cache_ttl,
            hf_scheme,
            hf_netloc,
            hf_lfs_netloc,
            mirror_scheme,
            mirror_netloc,
            mirror_lfs_netloc,
            has_lfs_site,
            log_path,
            workers,
            mirrors_path,
            offline,
            proxy_rules,
            cache_rules,
            upstream_hosts,
            xet_mode,
            mirror_names,
            max_connections,
            header_timeout,
            idle_timeout,
            admin_token,
            log_format,
        )
    }

    /// Lays the merged keys over the built-in defaults and derives the `mirror-*` keys not given.
    pub fn into_config(self) -> Config {
        let d = Builtin::default();
        let host = self.host.unwrap_or(d.host);
        let port = self.port.unwrap_or(d.port);
        let ssl_key = self.ssl_key.flatten();
        // olah: http, or https when an ssl-key is set.
        let mirror_scheme = self
            .mirror_scheme
            .unwrap_or_else(|| if ssl_key.is_some() { "https" } else { "http" }.to_string());
        // olah: {host}:{port}, with localhost for the wildcard addresses.
        let mirror_netloc = self
            .mirror_netloc
            .unwrap_or_else(|| advertised_netloc(&host, port));
        let mirror_lfs_netloc = self
            .mirror_lfs_netloc
            .unwrap_or_else(|| mirror_netloc.clone());
        Config {
            host,
            port,
            ssl_key,
            ssl_cert: self.ssl_cert.flatten(),
            repos_path: self.repos_path.unwrap_or(d.repos_path),
            cache_size_limit: self.cache_size_limit.flatten(),
            cache_clean_strategy: self.cache_clean_strategy.unwrap_or_default(),
            cache_compression: self.cache_compression.unwrap_or_default(),
            cache_block_size: self.cache_block_size,
            cache_chunk_size: self.cache_chunk_size,
            cache_redirect_model: self.cache_redirect_model.unwrap_or(false),
            xet_passthrough: self.xet_passthrough.unwrap_or(false),
            xet_passthrough_min_size: self
                .xet_passthrough_min_size
                .unwrap_or(d.xet_passthrough_min_size),
            metadata_cache_ttl: self.metadata_cache_ttl.unwrap_or(d.metadata_cache_ttl),
            hf_scheme: self.hf_scheme.unwrap_or(d.hf_scheme),
            hf_netloc: self.hf_netloc.unwrap_or(d.hf_netloc),
            hf_lfs_netloc: self.hf_lfs_netloc.unwrap_or(d.hf_lfs_netloc),
            mirror_scheme,
            mirror_netloc,
            mirror_lfs_netloc,
            has_lfs_site: self.has_lfs_site.unwrap_or(false),
            log_path: self.log_path.unwrap_or(d.log_path),
            workers: self.workers.unwrap_or(d.workers),
            mirrors_path: self.mirrors_path.unwrap_or_default(),
            offline: self.offline.unwrap_or(false),
            proxy_rules: self.proxy_rules.unwrap_or_default(),
            cache_rules: self.cache_rules.unwrap_or_default(),
            upstream_hosts: self.upstream_hosts.unwrap_or_default(),
            xet_mode: self.xet_mode.unwrap_or_default(),
            mirror_names: self.mirror_names.unwrap_or_default(),
            max_connections: self.max_connections,
            header_timeout: self.header_timeout.unwrap_or(30),
            idle_timeout: self.idle_timeout.unwrap_or(60),
            admin_token: self.admin_token,
            log_format: self.log_format.unwrap_or_default(),
        }
    }
}

/// Every key: its `Layer` field, its name in the TOML file (`table.key`) and its flag.
macro_rules! key_table {
    ($($f:ident => $key:literal, $flag:literal;)*) => {
        /// The TOML key paths, in the order `config show` prints them.
        pub(crate) const KEYS: &[(&str, &str)] = &[$(($key, $flag)),*];

        impl Layer {
            /// The TOML key paths (`basic.port`...) this layer gives.
            pub fn given(&self) -> Vec<&'static str> {
                let mut out = Vec::new();
                $(if self.$f.is_some() {
                    out.push($key);
                })*
                out
            }
        }
    };
}

key_table! {
    host => "basic.host", "--host";
    port => "basic.port", "--port";
    ssl_key => "basic.ssl-key", "--ssl-key";
    ssl_cert => "basic.ssl-cert", "--ssl-cert";
    repos_path => "basic.repos-path", "--repos-path";
    cache_size_limit => "basic.cache-size-limit", "--cache-size-limit";
    cache_clean_strategy => "basic.cache-clean-strategy", "--cache-clean-strategy";
    cache_compression => "basic.cache-compression", "--cache-compression";
    cache_block_size => "basic.cache-block-size", "";
    cache_chunk_size => "basic.cache-chunk-size", "";
    cache_redirect_model => "basic.cache-redirect-model", "";
    xet_passthrough => "basic.xet-passthrough", "";
    xet_passthrough_min_size => "basic.xet-passthrough-min-size", "";
    metadata_cache_ttl => "basic.metadata-cache-ttl", "--metadata-cache-ttl";
    hf_scheme => "basic.hf-scheme", "--hf-scheme";
    hf_netloc => "basic.hf-netloc", "--hf-netloc";
    hf_lfs_netloc => "basic.hf-lfs-netloc", "--hf-lfs-netloc";
    mirror_scheme => "basic.mirror-scheme", "--mirror-scheme";
    mirror_netloc => "basic.mirror-netloc", "--mirror-netloc";
    mirror_lfs_netloc => "basic.mirror-lfs-netloc", "--mirror-lfs-netloc";
    mirrors_path => "basic.mirrors-path", "";
    has_lfs_site => "basic.has-lfs-site", "--has-lfs-site";
    log_path => "basic.log-path", "--log-path";
    workers => "basic.workers", "--workers";
    upstream_hosts => "basic.upstream-hosts", "--upstream-host";
    xet_mode => "basic.xet", "--xet";
    mirror_names => "basic.mirror-names", "--mirror-name";
    max_connections => "basic.max-connections", "--max-connections";
    header_timeout => "basic.header-timeout", "--header-timeout";
    idle_timeout => "basic.idle-timeout", "--idle-timeout";
    log_format => "basic.log-format", "--log-format";
    offline => "accessibility.offline", "--offline";
    proxy_rules => "accessibility.proxy", "";
    cache_rules => "accessibility.cache", "";
    admin_token => "admin.token", "--admin-token";
}

/// olah 0.5.4's built-in defaults for the keys that are not `false`, empty or derived.
struct Builtin {
    host: String,
    port: u16,
    repos_path: PathBuf,
    xet_passthrough_min_size: u64,
    metadata_cache_ttl: u64,
    hf_scheme: String,
    hf_netloc: String,
    hf_lfs_netloc: String,
    log_path: PathBuf,
    workers: u32,
}

impl Default for Builtin {
    fn default() -> Self {
        Self {
            host: "localhost".into(),
            port: 8090,
            repos_path: "./repos".into(),
            xet_passthrough_min_size: 50 << 30,
            metadata_cache_ttl: 600,
            hf_scheme: "https".into(),
            hf_netloc: "huggingface.co".into(),
            hf_lfs_netloc: "cdn-lfs.huggingface.co".into(),
            log_path: "./logs".into(),
            workers: 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_layer_gives_olah_defaults_with_derived_mirror_keys() {
        let c = Layer::default().into_config();
        assert_eq!(c.host, "localhost");
        assert_eq!(c.port, 8090);
        assert_eq!(c.xet_passthrough_min_size, 53_687_091_200);
        assert_eq!(c.mirror_scheme, "http");
        assert_eq!(c.mirror_netloc, "localhost:8090");
        assert_eq!(c.mirror_lfs_netloc, "localhost:8090");
    }

    #[test]
    fn top_layer_wins_key_by_key_and_replaces_lists() {
        let file = Layer {
            port: Some(9000),
            host: Some("10.0.0.1".into()),
            upstream_hosts: Some(vec!["a:1".into(), "b:2".into()]),
            cache_size_limit: Some(Some(5)),
            ..Layer::default()
        };
        let cli = Layer {
            port: Some(9100),
            upstream_hosts: Some(vec!["c:3".into()]),
            cache_size_limit: Some(None),
            ..Layer::default()
        };
        let c = file.under(cli).into_config();
        assert_eq!(c.port, 9100, "given on top: wins");
        assert_eq!(c.host, "10.0.0.1", "not given on top: kept");
        assert_eq!(c.upstream_hosts, vec!["c:3".to_string()], "replaced");
        assert_eq!(c.cache_size_limit, None, "\"\" on top clears the limit");
    }

    #[test]
    fn derived_keys_follow_the_merged_values_unless_given() {
        let file = Layer {
            host: Some("0.0.0.0".into()),
            ssl_key: Some(Some("k.pem".into())),
            ssl_cert: Some(Some("c.pem".into())),
            ..Layer::default()
        };
        let cli = Layer {
            port: Some(9443),
            ..Layer::default()
        };
        let c = file.clone().under(cli).into_config();
        assert_eq!(c.mirror_scheme, "https", "ssl-key set: https");
        assert_eq!(c.mirror_netloc, "localhost:9443", "0.0.0.0 -> localhost");
        assert_eq!(c.mirror_lfs_netloc, "localhost:9443");

        let cli = Layer {
            mirror_scheme: Some("http".into()),
            mirror_netloc: Some("mirror.lan:80".into()),
            ..Layer::default()
        };
        let c = file.under(cli).into_config();
        assert_eq!(c.mirror_scheme, "http", "given: kept even with TLS");
        assert_eq!(c.mirror_netloc, "mirror.lan:80");
        assert_eq!(
            c.mirror_lfs_netloc, "mirror.lan:80",
            "follows mirror-netloc"
        );
    }
}
