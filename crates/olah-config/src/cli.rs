//! The command line: olah's flags, plus ours (`--offline`, `--upstream-host`, `--xet`,
//! `--mirror-name`, `--max-connections`, `--header-timeout`, `--idle-timeout`) and the `model-bin`
//! subcommand.
//!
//! No flag has a clap default: a flag not given is `None`, so the value from the file (or the
//! built-in default) stays. Values are checked while parsing, so errors name the flag.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::builder::TypedValueParser;
use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::merge::Layer;
use crate::{
    CacheCommand, CleanStrategy, Command, Compression, ConfigError, LogFormat, Origin,
    PrefetchArgs, Secret, XetMode, parse_size, values,
};

const AFTER_HELP: &str = "\
Precedence: built-in defaults < configs.toml (-c) < flags. Unlike olah, a flag given together \
with -c overrides the same key from the file. Unknown keys and bad values in the file stop \
start-up with an error naming the file, line and key. Keys that exist only in the file: \
cache-block-size, cache-chunk-size, cache-redirect-model, xet-passthrough, \
xet-passthrough-min-size, mirrors-path and the [accessibility] rules.";

#[derive(Debug, Parser)]
#[command(
    name = "olah-cli",
    version,
    about = "Self-hosted Hugging Face Hub mirror, a drop-in replacement for olah",
    after_help = AFTER_HELP
)]
pub(crate) struct Cli {
    /// configs.toml to read (olah's format); flags given here override its keys [default: none]
    #[arg(short = 'c', long = "config", value_name = "FILE", global = true)]
    config: Option<PathBuf>,

    /// Address to listen on; one host only [default: localhost]
    #[arg(long, value_name = "HOST", value_parser = values::host, global = true)]
    host: Option<String>,

    /// Port to listen on [default: 8090]
    #[arg(
        long,
        value_name = "PORT",
        allow_negative_numbers = true,
        global = true
    )]
    port: Option<u16>,

    /// TLS private key (PEM), given with --ssl-cert; "" = no TLS [default: none]
    #[arg(long = "ssl-key", value_name = "FILE", value_parser = any_path(), global = true)]
    ssl_key: Option<PathBuf>,

    /// TLS certificate chain (PEM), given with --ssl-key; "" = no TLS [default: none]
    #[arg(long = "ssl-cert", value_name = "FILE", value_parser = any_path(), global = true)]
    ssl_cert: Option<PathBuf>,

    /// Directory of the cache [default: ./repos]
    #[arg(long = "repos-path", value_name = "DIR", global = true)]
    repos_path: Option<PathBuf>,

    /// Cache size limit: 100G, 500GB, 2TB, 1.5T, 1024 (K/M/G/T = powers of 1024); "" = no
    /// limit [default: no limit]
    #[arg(long = "cache-size-limit", value_name = "SIZE", value_parser = size_limit)]
    cache_size_limit: Option<SizeLimit>,

    /// What to evict first when over the limit: LRU, FIFO or LARGE_FIRST [default: LRU]
    #[arg(long = "cache-clean-strategy", value_name = "STRATEGY")]
    cache_clean_strategy: Option<CleanStrategy>,

    /// none, gzip or lzma; accepted for olah compatibility [default: none]
    #[arg(long = "cache-compression", value_name = "ALGO")]
    cache_compression: Option<Compression>,

    /// Scheme of the upstream Hub: http or https [default: https]
    #[arg(long = "hf-scheme", value_name = "SCHEME", value_parser = values::scheme)]
    hf_scheme: Option<String>,

    /// host[:port] of the upstream Hub [default: huggingface.co]
    #[arg(long = "hf-netloc", value_name = "HOST[:PORT]", value_parser = values::netloc)]
    hf_netloc: Option<String>,

    /// host[:port] of the upstream LFS CDN (legacy routes) [default: cdn-lfs.huggingface.co]
    #[arg(long = "hf-lfs-netloc", value_name = "HOST[:PORT]", value_parser = values::netloc)]
    hf_lfs_netloc: Option<String>,

    /// Scheme clients reach the mirror with [default: http, or https when --ssl-key is set]
    #[arg(long = "mirror-scheme", value_name = "SCHEME", value_parser = values::scheme)]
    mirror_scheme: Option<String>,

    /// host[:port] clients reach the mirror at [default: HOST:PORT, localhost for 0.0.0.0/::]
    #[arg(long = "mirror-netloc", value_name = "HOST[:PORT]", value_parser = values::netloc)]
    mirror_netloc: Option<String>,

    /// host[:port] clients reach the mirror's LFS files at [default: the mirror-netloc]
    #[arg(long = "mirror-lfs-netloc", value_name = "HOST[:PORT]", value_parser = values::netloc)]
    mirror_lfs_netloc: Option<String>,

    /// Accepted for olah compatibility (no effect); =false overrides the file [default: off]
    #[arg(
        long = "has-lfs-site",
        value_name = "BOOL",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true"
    )]
    has_lfs_site: Option<bool>,

    /// Directory of the log files [default: ./logs]
    #[arg(long = "log-path", value_name = "DIR", global = true)]
    log_path: Option<PathBuf>,

    /// Seconds revision metadata is reused before revalidating upstream; 0 = always
    /// revalidate [default: 600]
    #[arg(
        long = "metadata-cache-ttl",
        value_name = "SECONDS",
        allow_negative_numbers = true
    )]
    metadata_cache_ttl: Option<u64>,

    /// Accepted for olah compatibility: one multi-threaded process serves [default: 1]
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    workers: Option<u32>,

    /// Never contact the upstream; serve what the cache holds (olah: [accessibility] offline);
    /// =false overrides the file [default: off]
    #[arg(
        long,
        value_name = "BOOL",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true"
    )]
    offline: Option<bool>,

    /// Extra host[:port] that upstream redirects may lead to (repeatable; replaces the file's
    /// upstream-hosts) [default: none]
    #[arg(long = "upstream-host", value_name = "HOST[:PORT]", value_parser = values::netloc)]
    upstream_host: Vec<String>,

    /// Xet-backed files: serve (clients speak Xet to the mirror) or plain (plain HTTP
    /// downloads for every client) [default: serve]
    #[arg(long, value_name = "MODE")]
    xet: Option<XetMode>,

    /// Further host[:port] clients reach the mirror at; a request naming one of these (or the
    /// mirror-netloc) gets URLs naming it, any other gets the mirror-netloc (repeatable;
    /// replaces the file's mirror-names) [default: none]
    #[arg(long = "mirror-name", value_name = "HOST[:PORT]", value_parser = values::netloc)]
    mirror_name: Vec<String>,

    /// Most client connections open at once; more are refused with 503 [default: derived
    /// from the open-file limit]
    #[arg(long = "max-connections", value_name = "N")]
    max_connections: Option<u32>,

    /// Seconds a client has to send a request's headers (and its first request) [default: 30]
    #[arg(long = "header-timeout", value_name = "SECONDS")]
    header_timeout: Option<u64>,

    /// Seconds a connection may stay open with no request in progress [default: 60]
    #[arg(long = "idle-timeout", value_name = "SECONDS")]
    idle_timeout: Option<u64>,

    /// Bearer token that opens /admin and /admin/api/* from any address (without one: from
    /// loopback only) [default: none]
    #[arg(
        long = "admin-token",
        value_name = "TOKEN",
        env = "OLAH_ADMIN_TOKEN",
        hide_env_values = true,
        global = true
    )]
    admin_token: Option<String>,

    /// File holding the admin token (first line) [default: none]
    #[arg(long = "admin-token-file", value_name = "FILE", global = true)]
    admin_token_file: Option<PathBuf>,

    /// Log line format: text or json (one JSON object per line) [default: text]
    #[arg(long = "log-format", value_name = "FORMAT", global = true)]
    log_format: Option<LogFormat>,

    #[command(subcommand)]
    command: Option<Sub>,
}

/// `--repo-type`'s values.
const REPO_TYPES: [&str; 3] = ["model", "dataset", "space"];

#[derive(Debug, clap::Args)]
struct PrefetchCli {
    /// Repository id, e.g. openai-community/gpt2
    #[arg(value_name = "REPO_ID")]
    repo_id: String,
    /// model, dataset or space [default: model]
    #[arg(long = "repo-type", value_name = "TYPE", default_value = "model",
          value_parser = clap::builder::PossibleValuesParser::new(REPO_TYPES))]
    repo_type: String,
    /// Branch, tag or commit [default: main]
    #[arg(long, value_name = "REV")]
    revision: Option<String>,
    /// Only paths matching this glob (repeatable)
    #[arg(long, value_name = "GLOB")]
    include: Vec<String>,
    /// Skip paths matching this glob (repeatable)
    #[arg(long, value_name = "GLOB")]
    exclude: Vec<String>,
    /// The mirror's URL [default: $HF_ENDPOINT, else http://127.0.0.1:8090]
    #[arg(long, value_name = "URL", env = "HF_ENDPOINT")]
    endpoint: Option<String>,
    /// Hub token for gated or private repos [default: $HF_TOKEN]
    #[arg(long, value_name = "TOKEN", env = "HF_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Files downloaded at once [default: 4]
    #[arg(long, value_name = "N", default_value_t = 4,
          value_parser = clap::value_parser!(u16).range(1..=64))]
    jobs: u16,
}

#[derive(Debug, Subcommand)]
enum CacheSub {
    /// Repositories in the cache: revisions, files, size, last access
    Ls {
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Re-hash every complete blob and verified xorb range; drop what fails (exit 1 if any)
    Verify,
    /// Drop one repository's cached files and metadata
    Rm {
        /// Repository id
        #[arg(value_name = "REPO_ID")]
        repo_id: String,
        /// model, dataset or space [default: model]
        #[arg(long = "repo-type", value_name = "TYPE", default_value = "model",
              value_parser = clap::builder::PossibleValuesParser::new(REPO_TYPES))]
        repo_type: String,
    },
    /// Remove orphans, stale partial fills and metadata without data
    Gc {
        /// Report what would be removed, remove nothing
        #[arg(long = "dry-run")]
        dry_run: bool,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigSub {
    /// Print the effective configuration (TOML)
    Show {
        /// Say where each value came from: default, file, flag or environment
        #[arg(long)]
        sources: bool,
    },
}

#[derive(Debug, Subcommand)]
enum Sub {
    /// Serve plain directories DIR/<org>/<repo>/... as model repositories (no upstream)
    ModelBin {
        /// Root directory of the models
        #[arg(long, value_name = "DIR")]
        path: PathBuf,
    },
    /// Pull a repository's files through a running mirror so its cache holds them
    Prefetch(PrefetchCli),
    /// Cache tools on --repos-path (through the running server's admin API when it holds the
    /// cache)
    #[command(subcommand)]
    Cache(CacheSub),
    /// The effective configuration
    #[command(subcommand)]
    Config(ConfigSub),
}

/// `--cache-size-limit`'s value: `None` for `""`.
#[derive(Debug, Clone, Copy)]
struct SizeLimit(Option<u64>);

fn size_limit(s: &str) -> Result<SizeLimit, String> {
    if s.trim().is_empty() {
        return Ok(SizeLimit(None));
    }
    parse_size(s)
        .map(|n| SizeLimit(Some(n)))
        .ok_or_else(|| format!("{s:?} is not a size (expected e.g. 100G, 500GB, 2TB, 1024)"))
}

/// Any path, the empty one included (`""` = none for the TLS flags).
fn any_path() -> impl TypedValueParser<Value = PathBuf> {
    clap::builder::OsStringValueParser::new().map(PathBuf::from)
}

/// `""` for a path flag means "none".
fn optional_path(p: Option<PathBuf>) -> Option<Option<PathBuf>> {
    p.map(|p| (!p.as_os_str().is_empty()).then_some(p))
}

/// Where the command line's admin token came from: the flag, `OLAH_ADMIN_TOKEN`, or a token file
/// (then `file` names it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AdminFrom {
    pub origin: Origin,
    pub file: Option<PathBuf>,
}

/// What the command line says: the `-c` file, the flags given, the command, and where the admin
/// token came from (the only key an environment variable can give).
pub(crate) struct Parsed {
    pub config: Option<PathBuf>,
    pub layer: Layer,
    pub command: Command,
    pub admin: Option<AdminFrom>,
}

/// Parses the arguments (the first is the program name) into the flags given and the command.
pub(crate) fn parse<I, T>(args: I) -> Result<Parsed, ConfigError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let to_error = |e: clap::Error| match e.kind() {
        clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
            ConfigError::Help(e.render().to_string())
        }
        _ => ConfigError::Cli(one_line(&e.render().to_string())),
    };
    let matches = Cli::command()
        .try_get_matches_from(args)
        .map_err(to_error)?;
    let cli = Cli::from_arg_matches(&matches).map_err(to_error)?;
    let token_source = matches.value_source("admin_token");
    let command = match cli.command {
        Some(Sub::ModelBin { path }) => Command::ModelBin { path },
        Some(Sub::Prefetch(p)) => Command::Prefetch(PrefetchArgs {
            repo_id: p.repo_id,
            repo_type: p.repo_type,
            revision: p.revision,
            include: p.include,
            exclude: p.exclude,
            endpoint: p
                .endpoint
                .filter(|e| !e.trim().is_empty())
                .unwrap_or_else(|| "http://127.0.0.1:8090".to_string()),
            token: p.token.filter(|t| !t.is_empty()).map(Secret::new),
            jobs: usize::from(p.jobs),
        }),
        Some(Sub::Cache(c)) => Command::Cache(match c {
            CacheSub::Ls { json } => CacheCommand::Ls { json },
            CacheSub::Verify => CacheCommand::Verify,
            CacheSub::Rm { repo_id, repo_type } => CacheCommand::Rm { repo_id, repo_type },
            CacheSub::Gc { dry_run } => CacheCommand::Gc { dry_run },
        }),
        Some(Sub::Config(ConfigSub::Show { sources })) => Command::ConfigShow { sources },
        None => Command::Serve,
    };
    let (admin_token, admin) = match (cli.admin_token, cli.admin_token_file) {
        (Some(t), _) if !t.is_empty() => {
            let origin = if token_source == Some(ValueSource::EnvVariable) {
                Origin::Env("OLAH_ADMIN_TOKEN".into())
            } else {
                Origin::Flag("--admin-token".into())
            };
            let from = AdminFrom { origin, file: None };
            (Some(Secret::new(t)), Some(from))
        }
        (_, Some(f)) => {
            let token = read_secret_file(&f, "--admin-token-file")?;
            let origin = Origin::Flag("--admin-token-file".into());
            (
                Some(token),
                Some(AdminFrom {
                    origin,
                    file: Some(f),
                }),
            )
        }
        _ => (None, None),
    };
    let layer = Layer {
        host: cli.host,
        port: cli.port,
        ssl_key: optional_path(cli.ssl_key),
        ssl_cert: optional_path(cli.ssl_cert),
        repos_path: cli.repos_path,
        cache_size_limit: cli.cache_size_limit.map(|s| s.0),
        cache_clean_strategy: cli.cache_clean_strategy,
        cache_compression: cli.cache_compression,
        hf_scheme: cli.hf_scheme,
        hf_netloc: cli.hf_netloc,
        hf_lfs_netloc: cli.hf_lfs_netloc,
        mirror_scheme: cli.mirror_scheme,
        mirror_netloc: cli.mirror_netloc,
        mirror_lfs_netloc: cli.mirror_lfs_netloc,
        has_lfs_site: cli.has_lfs_site,
        log_path: cli.log_path,
        metadata_cache_ttl: cli.metadata_cache_ttl,
        workers: cli.workers,
        offline: cli.offline,
        upstream_hosts: (!cli.upstream_host.is_empty()).then_some(cli.upstream_host),
        xet_mode: cli.xet,
        mirror_names: (!cli.mirror_name.is_empty()).then_some(cli.mirror_name),
        max_connections: cli.max_connections,
        header_timeout: cli.header_timeout,
        idle_timeout: cli.idle_timeout,
        admin_token,
        log_format: cli.log_format,
        ..Layer::default()
    };
    Ok(Parsed {
        config: cli.config,
        layer,
        command,
        admin,
    })
}

/// The first line of a secret file, trimmed; an empty or unreadable file is an error naming the
/// file and `what` (the key or flag).
pub(crate) fn read_secret_file(path: &std::path::Path, what: &str) -> Result<Secret, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::Cli(format!("{what}: cannot read {}: {e}", path.display())))?;
    let line = text.lines().next().unwrap_or("").trim();
    if line.is_empty() {
        return Err(ConfigError::Cli(format!(
            "{what}: {} is empty",
            path.display()
        )));
    }
    Ok(Secret::new(line))
}

/// clap's rendered error on one line: the "error:" line and any tip, without the usage text.
fn one_line(rendered: &str) -> String {
    let parts: Vec<&str> = rendered
        .lines()
        .map(str::trim)
        .filter(|l| {
            !l.is_empty() && !l.starts_with("Usage:") && !l.starts_with("For more information")
        })
        .map(|l| l.strip_prefix("error: ").unwrap_or(l))
        .collect();
    format!("command line: {}", parts.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(args: &[&str]) -> Result<(Option<PathBuf>, Layer, Command), ConfigError> {
        parse(std::iter::once("olah-cli").chain(args.iter().copied()))
            .map(|p| (p.config, p.layer, p.command))
    }

    fn cli_error(args: &[&str]) -> String {
        let e = flags(args).unwrap_err();
        assert!(matches!(e, ConfigError::Cli(_)), "{e:?}");
        let shown = e.to_string();
        assert!(!shown.contains('\n'), "one line: {shown:?}");
        shown
    }

    #[test]
    fn nothing_given_is_all_none() {
        let (config, l, cmd) = flags(&[]).unwrap();
        assert_eq!(config, None);
        assert_eq!(cmd, Command::Serve);
        assert!(l.port.is_none() && l.host.is_none() && l.offline.is_none());
        assert!(l.upstream_hosts.is_none() && l.has_lfs_site.is_none());
        assert!(l.cache_size_limit.is_none() && l.ssl_key.is_none());
    }

    #[test]
    fn each_flag_parses() {
        let (config, l, _) = flags(&[
            "-c",
            "olah.toml",
            "--host",
            "0.0.0.0",
            "--port",
            "9001",
            "--ssl-key",
            "k.pem",
            "--ssl-cert",
            "c.pem",
            "--repos-path",
            "/tmp/r",
            "--cache-size-limit",
            "500GB",
            "--cache-clean-strategy",
            "large_first",
            "--cache-compression",
            "gzip",
            "--hf-scheme",
            "http",
            "--hf-netloc",
            "127.0.0.1:1",
            "--hf-lfs-netloc",
            "127.0.0.1:2",
            "--mirror-scheme",
            "https",
            "--mirror-netloc",
            "mirror.lan:443",
            "--mirror-lfs-netloc",
            "lfs.lan",
            "--has-lfs-site",
            "--log-path",
            "/tmp/l",
            "--metadata-cache-ttl",
            "0",
            "--workers",
            "2",
            "--offline",
            "--upstream-host",
            "127.0.0.1:3",
            "--upstream-host",
            "cas.lan",
            "--xet",
            "plain",
        ])
        .unwrap();
        assert_eq!(config, Some(PathBuf::from("olah.toml")));
        assert_eq!(l.host.as_deref(), Some("0.0.0.0"));
        assert_eq!(l.port, Some(9001));
        assert_eq!(l.ssl_key, Some(Some("k.pem".into())));
        assert_eq!(l.ssl_cert, Some(Some("c.pem".into())));
        assert_eq!(l.repos_path, Some("/tmp/r".into()));
        assert_eq!(l.cache_size_limit, Some(Some(500 << 30)));
        assert_eq!(l.cache_clean_strategy, Some(CleanStrategy::LargeFirst));
        assert_eq!(l.cache_compression, Some(Compression::Gzip));
        assert_eq!(l.hf_scheme.as_deref(), Some("http"));
        assert_eq!(l.hf_netloc.as_deref(), Some("127.0.0.1:1"));
        assert_eq!(l.hf_lfs_netloc.as_deref(), Some("127.0.0.1:2"));
        assert_eq!(l.mirror_scheme.as_deref(), Some("https"));
        assert_eq!(l.mirror_netloc.as_deref(), Some("mirror.lan:443"));
        assert_eq!(l.mirror_lfs_netloc.as_deref(), Some("lfs.lan"));
        assert_eq!(l.has_lfs_site, Some(true));
        assert_eq!(l.log_path, Some("/tmp/l".into()));
        assert_eq!(l.metadata_cache_ttl, Some(0));
        assert_eq!(l.workers, Some(2));
        assert_eq!(l.offline, Some(true));
        assert_eq!(
            l.upstream_hosts,
            Some(vec!["127.0.0.1:3".to_string(), "cas.lan".to_string()])
        );
        assert_eq!(l.xet_mode, Some(XetMode::PlainHttp));
    }

    #[test]
    fn long_config_flag_and_equals_forms() {
        let (config, l, _) =
            flags(&["--config=/etc/olah.toml", "--port=1", "--offline=false"]).unwrap();
        assert_eq!(config, Some(PathBuf::from("/etc/olah.toml")));
        assert_eq!(l.port, Some(1));
        assert_eq!(
            l.offline,
            Some(false),
            "--offline=false can override a file"
        );
        let (_, l, _) = flags(&["--has-lfs-site=false"]).unwrap();
        assert_eq!(l.has_lfs_site, Some(false));
    }

    #[test]
    fn empty_strings_clear_optional_values() {
        let (_, l, _) =
            flags(&["--ssl-key", "", "--ssl-cert", "", "--cache-size-limit", ""]).unwrap();
        assert_eq!(l.ssl_key, Some(None));
        assert_eq!(l.ssl_cert, Some(None));
        assert_eq!(l.cache_size_limit, Some(None));
    }

    #[test]
    fn bad_values_name_the_flag() {
        for (args, flag, value) in [
            (&["--port", "abc"][..], "--port", "abc"),
            (&["--port", "70000"][..], "--port", "70000"),
            (
                &["--cache-size-limit", "12Q"][..],
                "--cache-size-limit",
                "12Q",
            ),
            (
                &["--cache-clean-strategy", "LFU"][..],
                "--cache-clean-strategy",
                "LFU",
            ),
            (
                &["--cache-compression", "zstd"][..],
                "--cache-compression",
                "zstd",
            ),
            (&["--hf-scheme", "ftp"][..], "--hf-scheme", "ftp"),
            (&["--mirror-scheme", "ws"][..], "--mirror-scheme", "ws"),
            (&["--hf-netloc", "http://x"][..], "--hf-netloc", "http://x"),
            (&["--upstream-host", "a@b"][..], "--upstream-host", "a@b"),
            (&["--xet", "on"][..], "--xet", "on"),
            (&["--host", "a,b"][..], "--host", "a,b"),
            (
                &["--metadata-cache-ttl", "-1"][..],
                "--metadata-cache-ttl",
                "",
            ),
            (&["--offline=maybe"][..], "--offline", "maybe"),
        ] {
            let e = cli_error(args);
            assert!(e.contains(flag), "{args:?}: {e}");
            assert!(e.contains(value), "{args:?}: {e}");
        }
    }

    #[test]
    fn unknown_flags_are_errors_with_a_tip() {
        let e = cli_error(&["--prot", "1"]);
        assert!(e.contains("--prot"), "{e}");
        assert!(e.contains("--port"), "tip: {e}");
        assert!(e.starts_with("command line: "), "{e}");
    }

    #[test]
    fn bare_bool_flags_do_not_swallow_the_subcommand() {
        let (_, l, cmd) = flags(&["--offline", "model-bin", "--path", "/m"]).unwrap();
        assert_eq!(l.offline, Some(true));
        assert_eq!(cmd, Command::ModelBin { path: "/m".into() });
    }

    #[test]
    fn model_bin_subcommand() {
        let (config, l, cmd) = flags(&[
            "model-bin",
            "--path",
            "/models",
            "--host",
            "0.0.0.0",
            "--port",
            "9999",
            "--ssl-key",
            "k.pem",
            "--ssl-cert",
            "c.pem",
            "-c",
            "x.toml",
        ])
        .unwrap();
        assert_eq!(
            cmd,
            Command::ModelBin {
                path: "/models".into()
            }
        );
        assert_eq!(l.port, Some(9999));
        assert_eq!(l.host.as_deref(), Some("0.0.0.0"));
        assert_eq!(l.ssl_key, Some(Some("k.pem".into())));
        assert_eq!(config, Some(PathBuf::from("x.toml")));
        let e = cli_error(&["model-bin"]);
        assert!(e.contains("--path"), "{e}");
    }

    #[test]
    fn help_lists_every_flag_with_its_default() {
        let Err(ConfigError::Help(text)) = flags(&["--help"]) else {
            panic!("--help is not an error")
        };
        for flag in [
            "--config",
            "--host",
            "--port",
            "--ssl-key",
            "--ssl-cert",
            "--repos-path",
            "--cache-size-limit",
            "--cache-clean-strategy",
            "--cache-compression",
            "--hf-scheme",
            "--hf-netloc",
            "--hf-lfs-netloc",
            "--mirror-scheme",
            "--mirror-netloc",
            "--mirror-lfs-netloc",
            "--has-lfs-site",
            "--log-path",
            "--metadata-cache-ttl",
            "--workers",
            "--offline",
            "--upstream-host",
            "--xet",
            "model-bin",
        ] {
            assert!(text.contains(flag), "{flag} missing from help");
        }
        for default in [
            "[default: localhost]",
            "[default: 8090]",
            "[default: ./repos]",
            "[default: LRU]",
            "[default: https]",
            "[default: huggingface.co]",
            "[default: 600]",
            "[default: serve]",
            "overrides",
        ] {
            assert!(text.contains(default), "{default} missing from help");
        }
        assert!(matches!(flags(&["--version"]), Err(ConfigError::Help(_))));
    }
}
