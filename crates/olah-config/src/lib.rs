//! olah-config: olah's command line and `configs.toml`, merged and validated.
//!
//! olah's flags and TOML format work unchanged, with two deliberate fixes:
//!
//! - **Precedence** is built-in defaults < TOML file (`-c`) < command-line flags. (olah ignores
//!   most flags when `-c` is given; here a flag overrides the same key from the file.) The
//!   `mirror-*` keys olah derives from others are derived after merging, only when not given.
//! - **Strictness**: an unknown key or a bad value stops start-up with a one-line
//!   [`ConfigError`] naming the key (and, for the file, the file and line). olah silently
//!   ignores unknown keys.
//!
//! Entry points: [`load`] (process arguments) and [`load_from_args`]; [`load_with_sources`] and
//! [`load_from_args_with_sources`] also say where each value came from ([`Sources`]), and
//! [`Config::to_toml`] writes a configuration back out (`config show`). Access rules:
//! [`AccessRule`] and [`decide`].

#![warn(missing_docs)]

mod cli;
mod file;
mod merge;
mod rules;
mod show;
mod size;
mod values;

use std::ffi::OsString;
use std::path::PathBuf;

pub use rules::{AccessRule, decide};
pub use show::{Origin, REDACTED, Sources};
pub use size::parse_size;
pub use values::{CleanStrategy, Compression, LogFormat, Secret, XetMode};

/// What to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// The mirror (no subcommand).
    Serve,
    /// `model-bin --path DIR`: serve plain directories `DIR/<org>/<repo>/...` as model repos.
    ModelBin {
        /// Root directory (`--path`).
        path: PathBuf,
    },
    /// `prefetch REPO_ID …`: pull a repository's files through a running mirror.
    Prefetch(PrefetchArgs),
    /// `cache ls|verify|rm|gc`: the cache tools, on `repos-path`.
    Cache(CacheCommand),
    /// `config show [--sources]`: the effective configuration.
    ConfigShow {
        /// Also say where each value came from (default, file, flag, environment).
        sources: bool,
    },
}

/// `olah-cli prefetch`'s arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrefetchArgs {
    /// `ns/name` (or a legacy one-segment id).
    pub repo_id: String,
    /// `model`, `dataset` or `space` [default: model].
    pub repo_type: String,
    /// Branch, tag or commit [default: main].
    pub revision: Option<String>,
    /// Glob patterns of paths to take (none = all).
    pub include: Vec<String>,
    /// Glob patterns of paths to skip.
    pub exclude: Vec<String>,
    /// The mirror's base URL [default: `HF_ENDPOINT`, else `http://127.0.0.1:8090`].
    pub endpoint: String,
    /// The caller's Hub token (`--token`, else `HF_TOKEN`).
    pub token: Option<Secret>,
    /// Files downloaded at once [default: 4].
    pub jobs: usize,
}

/// `olah-cli cache …`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheCommand {
    /// `cache ls [--json]`.
    Ls {
        /// Print JSON instead of a table.
        json: bool,
    },
    /// `cache verify`.
    Verify,
    /// `cache rm REPO_ID [--repo-type T]`.
    Rm {
        /// `ns/name`.
        repo_id: String,
        /// `model`, `dataset` or `space`.
        repo_type: String,
    },
    /// `cache gc [--dry-run]`.
    Gc {
        /// Report what would go, remove nothing.
        dry_run: bool,
    },
}

/// The merged configuration. Names, meanings and defaults follow olah 0.5.4 (`[default]` in each
/// field's doc); [`Config::default`] is exactly what `olah-cli` with no flags and no file gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Address to listen on (`host`, `--host`) [default: `localhost`].
    pub host: String,
    /// Port to listen on (`port`, `--port`) [default: 8090].
    pub port: u16,
    /// TLS private key, PEM (`ssl-key`, `--ssl-key`; `""` = none) [default: none]. Set with
    /// `ssl_cert` or not at all.
    pub ssl_key: Option<PathBuf>,
    /// TLS certificate chain, PEM (`ssl-cert`, `--ssl-cert`; `""` = none) [default: none].
    pub ssl_cert: Option<PathBuf>,
    /// Cache directory (`repos-path`, `--repos-path`) [default: `./repos`].
    pub repos_path: PathBuf,
    /// Cache size limit in bytes (`cache-size-limit`, `--cache-size-limit`: `100G`, `500GB`,
    /// `2TB`, `1.5T`, `1024` or a TOML integer; `""` = none) [default: none].
    pub cache_size_limit: Option<u64>,
    /// What to evict first (`cache-clean-strategy`) [default: LRU].
    pub cache_clean_strategy: CleanStrategy,
    /// `cache-compression`, accepted for compatibility [default: none].
    pub cache_compression: Compression,
    /// Cache block size in bytes (`cache-block-size`, TOML only) [default: none = the store's
    /// own]. Must be > 0, and a multiple of `cache_chunk_size` when both are set.
    pub cache_block_size: Option<u64>,
    /// Chunk size in bytes (`cache-chunk-size`, TOML only) [default: none]. Must be > 0.
    pub cache_chunk_size: Option<u64>,
    /// olah's experimental redirect model (`cache-redirect-model`, TOML only) [default: false].
    pub cache_redirect_model: bool,
    /// olah's Xet pass-through (`xet-passthrough`, TOML only) [default: false].
    pub xet_passthrough: bool,
    /// olah's Xet pass-through threshold in bytes (`xet-passthrough-min-size`, TOML only)
    /// [default: 53687091200 = 50 GiB].
    pub xet_passthrough_min_size: u64,
    /// Seconds revision metadata is reused before revalidating (`metadata-cache-ttl`); 0 =
    /// always revalidate [default: 600].
    pub metadata_cache_ttl: u64,
    /// Upstream scheme, `http` or `https` (`hf-scheme`) [default: `https`].
    pub hf_scheme: String,
    /// Upstream `host[:port]` (`hf-netloc`) [default: `huggingface.co`].
    pub hf_netloc: String,
    /// Upstream LFS CDN `host[:port]` (`hf-lfs-netloc`) [default: `cdn-lfs.huggingface.co`].
    pub hf_lfs_netloc: String,
    /// Scheme clients reach the mirror with (`mirror-scheme`) [default: `http`, or `https`
    /// when `ssl_key` is set].
    pub mirror_scheme: String,
    /// `host[:port]` clients reach the mirror at (`mirror-netloc`) [default: `{host}:{port}`,
    /// with `localhost` for `0.0.0.0` and `::`, and brackets for other IPv6 hosts].
    pub mirror_netloc: String,
    /// `host[:port]` of the mirror's LFS files (`mirror-lfs-netloc`) [default: `mirror_netloc`].
    pub mirror_lfs_netloc: String,
    /// Vestigial olah flag (`has-lfs-site`) [default: false].
    pub has_lfs_site: bool,
    /// Log directory (`log-path`) [default: `./logs`].
    pub log_path: PathBuf,
    /// Worker count (`workers`), accepted; one multi-threaded process serves [default: 1].
    pub workers: u32,
    /// Local git mirror roots (`mirrors-path` list, TOML only) [default: none].
    pub mirrors_path: Vec<PathBuf>,
    /// Never contact the upstream (`[accessibility] offline`, `--offline`) [default: false].
    pub offline: bool,
    /// `[[accessibility.proxy]]` rules, in file order; see [`decide`] [default: none = allow
    /// all]. An explicitly empty list (`proxy = []`) is one deny-all rule, as olah behaves.
    pub proxy_rules: Vec<AccessRule>,
    /// `[[accessibility.cache]]` rules, like `proxy_rules`.
    pub cache_rules: Vec<AccessRule>,
    /// olah-rs: extra `host[:port]`s the mirror may follow upstream redirects to
    /// (`upstream-hosts` list, `--upstream-host` repeatable; the flags replace the file's list)
    /// [default: none].
    pub upstream_hosts: Vec<String>,
    /// olah-rs: how Xet-backed files are offered (`xet = "serve"|"plain"`, `--xet`)
    /// [default: serve].
    pub xet_mode: XetMode,
    /// olah-rs: further `host[:port]`s clients reach the mirror at (`mirror-names` list,
    /// `--mirror-name` repeatable). A request whose `Host` is one of these, `mirror_netloc` or
    /// `mirror_lfs_netloc` gets URLs (Xet `casUrl`, `Link`s) naming that host; any other `Host`
    /// gets `mirror_netloc` [default: none].
    pub mirror_names: Vec<String>,
    /// olah-rs: most client connections open at once; over it, new connections get a `503`
    /// and are closed (`max-connections`, `--max-connections`) [default: none = derived from
    /// the open-file limit].
    pub max_connections: Option<u32>,
    /// olah-rs: seconds a client has to send a request's headers, and to send its first request
    /// after connecting (`header-timeout`, `--header-timeout`) [default: 30].
    pub header_timeout: u64,
    /// olah-rs: seconds a connection may stay open without a request in progress
    /// (`idle-timeout`, `--idle-timeout`) [default: 60].
    pub idle_timeout: u64,
    /// olah-rs: bearer token that opens `/admin` and `/admin/api/*` from any address
    /// (`[admin] token` or `token_file`, `--admin-token`, `--admin-token-file`,
    /// `OLAH_ADMIN_TOKEN`) [default: none = loopback only].
    pub admin_token: Option<Secret>,
    /// olah-rs: log line format, `text` or `json` (`log-format`, `--log-format`)
    /// [default: text].
    pub log_format: LogFormat,
}

impl Default for Config {
    /// olah's defaults, with the `mirror-*` keys derived from them.
    fn default() -> Self {
        merge::Layer::default().into_config()
    }
}

/// A configuration problem. `Display` is one line, worded for the operator.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The command line is wrong (unknown flag, bad flag value, missing argument); the message
    /// names the flag.
    #[error("{0}")]
    Cli(String),
    /// `--help` or `--version` was asked for: print the text (several lines) and exit with
    /// success.
    #[error("{0}")]
    Help(String),
    /// The config file could not be read.
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        /// The file (`-c`).
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The config file is not valid: a syntax error, an unknown key, or a bad value.
    #[error("config file {}{}: {msg}", path.display(), file_location(*line, key.as_deref()))]
    File {
        /// The file (`-c`).
        path: PathBuf,
        /// 1-based line, when known.
        line: Option<usize>,
        /// Dotted key path such as `basic.port` or `accessibility.proxy[2].use_re`, when known.
        key: Option<String>,
        /// What is wrong.
        msg: String,
    },
    /// A merged value, or a combination of values, is invalid (see [`Config::validate`]).
    #[error("invalid `{key}`: {msg}")]
    Invalid {
        /// The key, spelled as in the TOML file (`ssl-key`, `cache-block-size`...).
        key: String,
        /// What is wrong.
        msg: String,
    },
}

fn file_location(line: Option<usize>, key: Option<&str>) -> String {
    let mut out = String::new();
    if let Some(line) = line {
        out.push_str(&format!(", line {line}"));
    }
    if let Some(key) = key {
        out.push_str(&format!(", key `{key}`"));
    }
    out
}

impl ConfigError {
    fn invalid(key: &str, msg: impl Into<String>) -> Self {
        Self::Invalid {
            key: key.to_string(),
            msg: msg.into(),
        }
    }
}

/// Loads the configuration from the process arguments ([`std::env::args_os`]); see
/// [`load_from_args`].
pub fn load() -> Result<(Config, Command), ConfigError> {
    load_from_args(std::env::args_os())
}

/// Loads the configuration from `args` (the first is the program name): parses the flags, reads
/// the `-c` file if given, merges defaults < file < flags, derives the `mirror-*` keys not given,
/// and [validates](Config::validate) the result.
///
/// `--help` and `--version` return [`ConfigError::Help`] with the text to print.
pub fn load_from_args<I, T>(args: I) -> Result<(Config, Command), ConfigError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    load_from_args_with_sources(args).map(|(cfg, command, _)| (cfg, command))
}

/// [`load`], and where each value came from.
pub fn load_with_sources() -> Result<(Config, Command, Sources), ConfigError> {
    load_from_args_with_sources(std::env::args_os())
}

/// [`load_from_args`], and where each value came from: the file (with its line), a flag, the
/// environment (`OLAH_ADMIN_TOKEN`), derived (`mirror-*`) or the default.
pub fn load_from_args_with_sources<I, T>(args: I) -> Result<(Config, Command, Sources), ConfigError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let parsed = cli::parse(args)?;
    let (from_file, keys) = match &parsed.config {
        Some(path) => file::read_with_keys(path)?,
        None => (merge::Layer::default(), file::FileKeys::default()),
    };
    let sources = Sources::collect(
        parsed.config.as_deref().map(|p| (p, &from_file, &keys)),
        &parsed.layer,
        parsed.admin,
    );
    let cfg = from_file.under(parsed.layer).into_config();
    cfg.validate()?;
    Ok((cfg, parsed.command, sources))
}

impl Config {
    /// Checks every value and the rules between values. [`load_from_args`] calls it; call it
    /// again after changing fields by hand.
    ///
    /// Errors name the key: schemes must be `http`/`https`; netlocs `host[:port]` (no `/`, `@`,
    /// whitespace...); `host` one non-empty host; `ssl-key` and `ssl-cert` both or neither;
    /// `cache-block-size` and `cache-chunk-size` > 0, the block a multiple of the chunk.
    pub fn validate(&self) -> Result<(), ConfigError> {
        values::host(&self.host).map_err(|m| ConfigError::invalid("host", m))?;
        for (key, v) in [
            ("hf-scheme", &self.hf_scheme),
            ("mirror-scheme", &self.mirror_scheme),
        ] {
            match values::scheme(v) {
                Ok(s) if &s == v => {}
                Ok(_) => {
                    return Err(ConfigError::invalid(
                        key,
                        format!("{v:?} must be lower case"),
                    ));
                }
                Err(m) => return Err(ConfigError::invalid(key, m)),
            }
        }
        for (key, v) in [
            ("hf-netloc", &self.hf_netloc),
            ("hf-lfs-netloc", &self.hf_lfs_netloc),
            ("mirror-netloc", &self.mirror_netloc),
            ("mirror-lfs-netloc", &self.mirror_lfs_netloc),
        ] {
            values::netloc(v).map_err(|m| ConfigError::invalid(key, m))?;
        }
        for h in &self.upstream_hosts {
            values::netloc(h).map_err(|m| ConfigError::invalid("upstream-hosts", m))?;
        }
        for h in &self.mirror_names {
            values::netloc(h).map_err(|m| ConfigError::invalid("mirror-names", m))?;
        }
        for (key, v) in [
            ("header-timeout", self.header_timeout),
            ("idle-timeout", self.idle_timeout),
            ("max-connections", self.max_connections.map_or(1, u64::from)),
        ] {
            if v == 0 {
                return Err(ConfigError::invalid(key, "must be greater than 0"));
            }
        }
        match (&self.ssl_key, &self.ssl_cert) {
            (Some(_), None) => {
                return Err(ConfigError::invalid(
                    "ssl-key",
                    "set without ssl-cert (give both, or neither)",
                ));
            }
            (None, Some(_)) => {
                return Err(ConfigError::invalid(
                    "ssl-cert",
                    "set without ssl-key (give both, or neither)",
                ));
            }
            _ => {}
        }
        if self.admin_token.as_ref().map(Secret::expose) == Some(REDACTED) {
            return Err(ConfigError::invalid(
                "admin.token",
                "\"<redacted>\" is what `config show` prints in place of the token: give the \
                 token itself, a token_file, --admin-token-file or OLAH_ADMIN_TOKEN",
            ));
        }
        if self.cache_block_size == Some(0) {
            return Err(ConfigError::invalid(
                "cache-block-size",
                "must be greater than 0",
            ));
        }
        if self.cache_chunk_size == Some(0) {
            return Err(ConfigError::invalid(
                "cache-chunk-size",
                "must be greater than 0",
            ));
        }
        if let (Some(block), Some(chunk)) = (self.cache_block_size, self.cache_chunk_size)
            && block % chunk != 0
        {
            return Err(ConfigError::invalid(
                "cache-block-size",
                format!("{block} is not a multiple of cache-chunk-size ({chunk})"),
            ));
        }
        Ok(())
    }

    /// The upstream Hub's base URL: `{hf_scheme}://{hf_netloc}`.
    pub fn hf_url(&self) -> String {
        format!("{}://{}", self.hf_scheme, self.hf_netloc)
    }

    /// The mirror's base URL as clients see it: `{mirror_scheme}://{mirror_netloc}`.
    pub fn mirror_url(&self) -> String {
        format!("{}://{}", self.mirror_scheme, self.mirror_netloc)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn load(args: &[&str]) -> Result<(Config, Command), ConfigError> {
        load_from_args(std::iter::once("olah-cli").chain(args.iter().copied()))
    }

    fn toml_file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    fn load_file(text: &str, flags: &[&str]) -> Result<Config, ConfigError> {
        let f = toml_file(text);
        let mut args = vec!["-c", f.path().to_str().unwrap()];
        args.extend_from_slice(flags);
        load(&args).map(|(c, _)| c)
    }

    #[test]
    fn defaults_equal_olahs() {
        let (c, cmd) = load(&[]).unwrap();
        assert_eq!(cmd, Command::Serve);
        assert_eq!(c, Config::default());
        assert_eq!(c.host, "localhost");
        assert_eq!(c.port, 8090);
        assert_eq!((c.ssl_key.as_ref(), c.ssl_cert.as_ref()), (None, None));
        assert_eq!(c.repos_path, PathBuf::from("./repos"));
        assert_eq!(c.cache_size_limit, None);
        assert_eq!(c.cache_clean_strategy, CleanStrategy::Lru);
        assert_eq!(c.cache_compression, Compression::None);
        assert_eq!((c.cache_block_size, c.cache_chunk_size), (None, None));
        assert!(!c.cache_redirect_model && !c.xet_passthrough);
        assert_eq!(c.xet_passthrough_min_size, 53_687_091_200);
        assert_eq!(c.metadata_cache_ttl, 600);
        assert_eq!(c.hf_scheme, "https");
        assert_eq!(c.hf_netloc, "huggingface.co");
        assert_eq!(c.hf_lfs_netloc, "cdn-lfs.huggingface.co");
        assert_eq!(c.hf_url(), "https://huggingface.co");
        assert_eq!(c.mirror_scheme, "http");
        assert_eq!(c.mirror_netloc, "localhost:8090");
        assert_eq!(c.mirror_lfs_netloc, "localhost:8090");
        assert_eq!(c.mirror_url(), "http://localhost:8090");
        assert!(!c.has_lfs_site);
        assert_eq!(c.log_path, PathBuf::from("./logs"));
        assert_eq!(c.workers, 1);
        assert!(c.mirrors_path.is_empty());
        assert!(!c.offline);
        assert!(c.proxy_rules.is_empty() && c.cache_rules.is_empty());
        assert!(c.upstream_hosts.is_empty());
        assert_eq!(c.xet_mode, XetMode::Serve);
        assert!(c.mirror_names.is_empty());
        assert_eq!(c.max_connections, None);
        assert_eq!((c.header_timeout, c.idle_timeout), (30, 60));
        c.validate().unwrap();
    }

    #[test]
    fn connection_limits_and_mirror_names_from_file_and_flags() {
        let text = r#"
[basic]
mirror-names = ["mirror.lan:8090", "10.0.0.5:8090"]
max-connections = 100
header-timeout = 5
idle-timeout = 20
"#;
        let c = load_file(text, &[]).unwrap();
        assert_eq!(c.mirror_names, vec!["mirror.lan:8090", "10.0.0.5:8090"]);
        assert_eq!(c.max_connections, Some(100));
        assert_eq!((c.header_timeout, c.idle_timeout), (5, 20));
        let c = load_file(
            text,
            &[
                "--mirror-name",
                "m.lan",
                "--max-connections",
                "7",
                "--header-timeout",
                "2",
                "--idle-timeout",
                "3",
            ],
        )
        .unwrap();
        assert_eq!(c.mirror_names, vec!["m.lan"], "the flags replace the list");
        assert_eq!(c.max_connections, Some(7));
        assert_eq!((c.header_timeout, c.idle_timeout), (2, 3));
        for bad in [
            "[basic]\nmax-connections = 0\n",
            "[basic]\nheader-timeout = 0\n",
            "[basic]\nidle-timeout = 0\n",
            "[basic]\nmirror-names = [\"a/b\"]\n",
        ] {
            assert!(load_file(bad, &[]).is_err(), "{bad}");
        }
    }

    #[test]
    fn flags_override_the_file() {
        let text = r#"
[basic]
host = "0.0.0.0"
port = 9000
metadata-cache-ttl = 300
cache-clean-strategy = "FIFO"
cache-size-limit = "100G"
mirror-netloc = "mirror.lan:9000"
upstream-hosts = ["a.lan", "b.lan"]

[accessibility]
offline = true
"#;
        let c = load_file(text, &[]).unwrap();
        assert_eq!(c.port, 9000);
        assert_eq!(c.metadata_cache_ttl, 300);
        assert!(c.offline);
        let c = load_file(
            text,
            &[
                "--port",
                "9100",
                "--metadata-cache-ttl",
                "5",
                "--cache-size-limit",
                "",
                "--offline=false",
                "--upstream-host",
                "c.lan",
            ],
        )
        .unwrap();
        assert_eq!(c.port, 9100, "flag beats file");
        assert_eq!(c.metadata_cache_ttl, 5);
        assert_eq!(c.cache_size_limit, None, "\"\" clears the file's limit");
        assert!(!c.offline);
        assert_eq!(c.upstream_hosts, vec!["c.lan".to_string()]);
        assert_eq!(
            c.cache_clean_strategy,
            CleanStrategy::Fifo,
            "not given: file's"
        );
        assert_eq!(c.host, "0.0.0.0");
        assert_eq!(
            c.mirror_netloc, "mirror.lan:9000",
            "explicit file value kept"
        );
    }

    #[test]
    fn derived_mirror_keys_use_the_merged_host_port_and_tls() {
        let c = load_file("[basic]\nhost = \"0.0.0.0\"\n", &["--port", "9100"]).unwrap();
        assert_eq!(c.mirror_url(), "http://localhost:9100");
        assert_eq!(c.mirror_lfs_netloc, "localhost:9100");
        let (c, _) = load(&["--host", "::", "--ssl-key", "k", "--ssl-cert", "c"]).unwrap();
        assert_eq!(c.mirror_url(), "https://localhost:8090");
        let (c, _) = load(&["--host", "10.1.2.3", "--mirror-lfs-netloc", "lfs.lan"]).unwrap();
        assert_eq!(c.mirror_netloc, "10.1.2.3:8090");
        assert_eq!(c.mirror_lfs_netloc, "lfs.lan");
        let (c, _) = load(&["--host", "::1"]).unwrap();
        assert_eq!(c.mirror_netloc, "[::1]:8090");
        let c = load_file(
            "[basic]\nssl-key = \"k\"\nssl-cert = \"c\"\nmirror-scheme = \"http\"\n",
            &[],
        )
        .unwrap();
        assert_eq!(c.mirror_scheme, "http", "given explicitly: kept");
    }

    #[test]
    fn errors_name_the_key_and_file() {
        let f = toml_file("[basic]\nprot = 1\n");
        let e = load(&["-c", f.path().to_str().unwrap()])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("prot") && e.contains(&f.path().display().to_string()),
            "{e}"
        );
        let e = load_file("[basic]\ncache-clean-strategy = \"LFU\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("basic.cache-clean-strategy") && e.contains("LFU"),
            "{e}"
        );
        let e = load(&["--cache-size-limit", "12Q"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("--cache-size-limit") && e.contains("12Q"), "{e}");
        let e = load(&["-c", "/nonexistent/c.toml"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent/c.toml"), "{e}");
        // A bad file is reported even when a flag would override the bad key.
        let e = load_file("[basic]\nport = \"abc\"\n", &["--port", "1"]).unwrap_err();
        assert!(e.to_string().contains("basic.port"), "{e}");
    }

    #[test]
    fn cross_key_rules() {
        let e = load(&["--ssl-key", "k.pem"]).unwrap_err().to_string();
        assert!(e.contains("ssl-key") && e.contains("ssl-cert"), "{e}");
        assert!(!e.contains('\n'));
        let e = load_file("[basic]\nssl-cert = \"c.pem\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("invalid `ssl-cert`"), "{e}");
        // The file gives both, the command line clears one.
        let e = load_file(
            "[basic]\nssl-key = \"k\"\nssl-cert = \"c\"\n",
            &["--ssl-cert", ""],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("ssl-key"), "{e}");
        let e = load_file(
            "[basic]\ncache-block-size = \"3M\"\ncache-chunk-size = \"2M\"\n",
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("cache-block-size") && e.contains("multiple"),
            "{e}"
        );
        let e = load_file("[basic]\ncache-block-size = 0\n", &[])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("cache-block-size") && e.contains("greater than 0"),
            "{e}"
        );
        let e = load_file("[basic]\ncache-chunk-size = 0\n", &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("cache-chunk-size"), "{e}");
        let c = load_file(
            "[basic]\ncache-block-size = \"64M\"\ncache-chunk-size = \"1M\"\n",
            &[],
        )
        .unwrap();
        assert_eq!(c.cache_block_size, Some(64 << 20));
    }

    #[test]
    fn validate_checks_hand_built_configs() {
        let ok = Config::default();
        let bad = [
            Config {
                hf_scheme: "ftp".into(),
                ..ok.clone()
            },
            Config {
                mirror_scheme: "HTTP".into(),
                ..ok.clone()
            },
            Config {
                hf_netloc: "https://huggingface.co".into(),
                ..ok.clone()
            },
            Config {
                mirror_netloc: String::new(),
                ..ok.clone()
            },
            Config {
                upstream_hosts: vec!["a b".into()],
                ..ok.clone()
            },
            Config {
                host: String::new(),
                ..ok.clone()
            },
            Config {
                ssl_cert: Some("c".into()),
                ..ok.clone()
            },
            Config {
                cache_block_size: Some(0),
                ..ok.clone()
            },
        ];
        let keys = [
            "hf-scheme",
            "mirror-scheme",
            "hf-netloc",
            "mirror-netloc",
            "upstream-hosts",
            "host",
            "ssl-cert",
            "cache-block-size",
        ];
        for (c, key) in bad.iter().zip(keys) {
            match c.validate() {
                Err(ConfigError::Invalid { key: k, .. }) => assert_eq!(k, key),
                other => panic!("{key}: {other:?}"),
            }
        }
    }

    #[test]
    fn rules_from_the_file_drive_decide() {
        let c = load_file(
            r#"
[[accessibility.proxy]]
repo = "*"
allow = true

[[accessibility.proxy]]
repo = "^acme/.*"
use_re = true
allow = false

[[accessibility.cache]]
repo = "*/*"
allow = true
"#,
            &[],
        )
        .unwrap();
        assert!(decide(&c.proxy_rules, "other/x"));
        assert!(!decide(&c.proxy_rules, "acme/x"), "last match wins");
        assert!(decide(&c.cache_rules, "other/x"));
        assert!(
            !decide(&c.cache_rules, "gpt2"),
            "*/* needs a slash; no match: deny"
        );
    }

    #[test]
    fn model_bin_with_a_file() {
        let f = toml_file("[basic]\nport = 9000\nhost = \"0.0.0.0\"\n");
        let (c, cmd) = load(&[
            "model-bin",
            "--path",
            "/models",
            "-c",
            f.path().to_str().unwrap(),
            "--port",
            "9999",
        ])
        .unwrap();
        assert_eq!(
            cmd,
            Command::ModelBin {
                path: "/models".into()
            }
        );
        assert_eq!(c.port, 9999);
        assert_eq!(c.host, "0.0.0.0");
    }

    #[test]
    fn help_is_not_an_error() {
        match load(&["--help"]) {
            Err(ConfigError::Help(text)) => assert!(text.contains("--cache-size-limit")),
            other => panic!("{other:?}"),
        }
    }
}
