//! `config show`: the effective configuration as a `configs.toml` in olah's format, and where
//! each value came from ([`Sources`]).
//!
//! The text reads back with `-c` to the same [`Config`]: every value is written out (derived
//! `mirror-*` keys too), values that have no TOML spelling (an unset `cache-block-size`...) are
//! comments, and so are the defaults of the rule lists. Secrets are never written: an admin
//! token is `token = "<redacted>"` (which [`Config::validate`] refuses, so a copy cannot start a
//! mirror with that placeholder as its token) or, when it came from a file, `token_file`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::merge::KEYS;
use crate::{AccessRule, Config};

/// What `config show` prints in place of a secret.
pub const REDACTED: &str = "<redacted>";

/// Where one configuration value came from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Origin {
    /// Built-in default (olah's).
    #[default]
    Default,
    /// The `-c` file, at this 1-based line when known.
    File {
        /// The file, as given to `-c`.
        path: PathBuf,
        /// Line of the key (of the first header for a rule list).
        line: Option<usize>,
    },
    /// A command-line flag, spelled `--name`.
    Flag(String),
    /// An environment variable.
    Env(String),
    /// Computed from other keys (olah's `mirror-*` keys); names them.
    Derived(&'static str),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Default => f.write_str("default"),
            Self::File {
                path,
                line: Some(line),
            } => write!(f, "file ({}:{line})", path.display()),
            Self::File { path, line: None } => write!(f, "file ({})", path.display()),
            Self::Flag(flag) => write!(f, "flag {flag}"),
            Self::Env(var) => write!(f, "env {var}"),
            Self::Derived(from) => write!(f, "derived from {from}"),
        }
    }
}

/// Where each key of a loaded [`Config`] came from, by TOML key path (`basic.port`,
/// `accessibility.proxy`, `admin.token`). Kept apart from `Config`, which stays a plain value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sources {
    origins: BTreeMap<&'static str, Origin>,
    admin_token_file: Option<PathBuf>,
}

impl Sources {
    /// The origin of `key` (a TOML key path such as `basic.port`); [`Origin::Default`] for a key
    /// nobody gave.
    pub fn origin(&self, key: &str) -> &Origin {
        static DEFAULT: Origin = Origin::Default;
        self.origins.get(key).unwrap_or(&DEFAULT)
    }

    /// The file the admin token was read from (`--admin-token-file` or `[admin] token_file`).
    pub fn admin_token_file(&self) -> Option<&Path> {
        self.admin_token_file.as_deref()
    }

    pub(crate) fn set(&mut self, key: &'static str, origin: Origin) {
        self.origins.insert(key, origin);
    }

    pub(crate) fn set_admin_token_file(&mut self, file: Option<PathBuf>) {
        self.admin_token_file = file;
    }

    /// Builds the sources from the keys the file and the flags gave.
    pub(crate) fn collect(
        file: Option<(&Path, &crate::merge::Layer, &crate::file::FileKeys)>,
        flags: &crate::merge::Layer,
        admin: Option<crate::cli::AdminFrom>,
    ) -> Sources {
        let mut s = Sources::default();
        if let Some((path, layer, keys)) = file {
            for key in layer.given() {
                let origin = Origin::File {
                    path: path.to_path_buf(),
                    line: keys.lines.get(key).copied(),
                };
                s.set(key, origin);
            }
            if layer.admin_token.is_some() {
                s.set_admin_token_file(keys.token_file.clone());
            }
        }
        for key in flags.given() {
            let flag = KEYS
                .iter()
                .find(|(k, _)| *k == key)
                .map_or("", |(_, flag)| *flag);
            s.set(key, Origin::Flag(flag.to_string()));
        }
        if let Some(admin) = admin {
            s.set("admin.token", admin.origin);
            s.set_admin_token_file(admin.file);
        }
        for (key, from) in [
            ("basic.mirror-scheme", "ssl-key"),
            ("basic.mirror-netloc", "host, port"),
            ("basic.mirror-lfs-netloc", "mirror-netloc"),
        ] {
            if !s.origins.contains_key(key) {
                s.set(key, Origin::Derived(from));
            }
        }
        s
    }
}

/// A TOML string.
fn string(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// A path as a TOML string (a path that is not UTF-8 is written lossily).
fn path(p: &Path) -> String {
    string(&p.to_string_lossy())
}

fn list<T>(items: &[T], each: impl Fn(&T) -> String) -> String {
    let inner: Vec<String> = items.iter().map(each).collect();
    format!("[{}]", inner.join(", "))
}

/// The lines being written, each with the key whose origin it may show.
struct Out<'a> {
    sources: &'a Sources,
    annotate: bool,
    text: String,
}

impl Out<'_> {
    /// A line about `key` (`None`: no origin comment).
    fn line(&mut self, text: &str, key: Option<&str>) {
        self.text.push_str(text);
        if self.annotate
            && let Some(key) = key
        {
            self.text.push_str("  # ");
            self.text.push_str(&self.sources.origin(key).to_string());
        }
        self.text.push('\n');
    }

    /// `name = value` for the key `table.name`.
    fn kv(&mut self, table: &str, name: &str, value: String) {
        let key = format!("{table}.{name}");
        self.line(&format!("{name} = {value}"), Some(&key));
    }

    /// An optional value: `name = value`, or a comment saying what "not set" means.
    fn opt(&mut self, table: &str, name: &str, value: Option<String>, unset: &str) {
        match value {
            Some(v) => self.kv(table, name, v),
            None => {
                let key = format!("{table}.{name}");
                self.line(&format!("# {name}: not set ({unset})"), Some(&key));
            }
        }
    }

    fn rules(&mut self, name: &str, rules: &[AccessRule], none: &str) {
        let key = format!("accessibility.{name}");
        if rules.is_empty() {
            self.line(&format!("# {name}: no rules ({none})"), Some(&key));
            return;
        }
        for (i, r) in rules.iter().enumerate() {
            self.text.push('\n');
            let header = format!("[[accessibility.{name}]]");
            self.line(&header, (i == 0).then_some(key.as_str()));
            self.line(&format!("repo = {}", string(&r.repo)), None);
            self.line(&format!("allow = {}", r.allow), None);
            self.line(&format!("use_re = {}", r.use_re), None);
        }
    }
}

impl Config {
    /// This configuration as a `configs.toml` in olah's format (`[basic]`, `[accessibility]` with
    /// the rule lists, `[admin]`) that `-c` reads back to an equal `Config` (see the module
    /// docs for the admin token). With `annotate`, each key is followed by a comment naming its
    /// [`Origin`] from `sources` (`# default`, `# file (path:line)`, `# flag --port`,
    /// `# env OLAH_ADMIN_TOKEN`, `# derived from host, port`).
    pub fn to_toml(&self, sources: &Sources, annotate: bool) -> String {
        let mut o = Out {
            sources,
            annotate,
            text: String::new(),
        };
        let num = |n: u64| n.to_string();
        o.line(
            "# olah-rs effective configuration (olah's configs.toml format; read it with -c)",
            None,
        );
        o.line("[basic]", None);
        let b = "basic";
        o.kv(b, "host", string(&self.host));
        o.kv(b, "port", self.port.to_string());
        o.kv(
            b,
            "ssl-key",
            self.ssl_key.as_deref().map_or(string(""), path),
        );
        o.kv(
            b,
            "ssl-cert",
            self.ssl_cert.as_deref().map_or(string(""), path),
        );
        o.kv(b, "repos-path", path(&self.repos_path));
        o.kv(
            b,
            "cache-size-limit",
            self.cache_size_limit.map_or(string(""), num),
        );
        o.kv(
            b,
            "cache-clean-strategy",
            string(self.cache_clean_strategy.as_str()),
        );
        o.kv(
            b,
            "cache-compression",
            string(self.cache_compression.as_str()),
        );
        o.opt(
            b,
            "cache-block-size",
            self.cache_block_size.map(num),
            "the store's own",
        );
        o.opt(
            b,
            "cache-chunk-size",
            self.cache_chunk_size.map(num),
            "none",
        );
        o.kv(
            b,
            "cache-redirect-model",
            self.cache_redirect_model.to_string(),
        );
        o.kv(b, "xet-passthrough", self.xet_passthrough.to_string());
        o.kv(
            b,
            "xet-passthrough-min-size",
            num(self.xet_passthrough_min_size),
        );
        o.kv(b, "metadata-cache-ttl", num(self.metadata_cache_ttl));
        o.kv(b, "hf-scheme", string(&self.hf_scheme));
        o.kv(b, "hf-netloc", string(&self.hf_netloc));
        o.kv(b, "hf-lfs-netloc", string(&self.hf_lfs_netloc));
        o.kv(b, "mirror-scheme", string(&self.mirror_scheme));
        o.kv(b, "mirror-netloc", string(&self.mirror_netloc));
        o.kv(b, "mirror-lfs-netloc", string(&self.mirror_lfs_netloc));
        o.kv(b, "mirrors-path", list(&self.mirrors_path, |p| path(p)));
        o.kv(b, "has-lfs-site", self.has_lfs_site.to_string());
        o.kv(b, "log-path", path(&self.log_path));
        o.kv(b, "workers", self.workers.to_string());
        o.kv(
            b,
            "upstream-hosts",
            list(&self.upstream_hosts, |h| string(h)),
        );
        o.kv(b, "xet", string(self.xet_mode.as_str()));
        o.kv(b, "mirror-names", list(&self.mirror_names, |h| string(h)));
        o.opt(
            b,
            "max-connections",
            self.max_connections.map(|n| n.to_string()),
            "derived from the open-file limit",
        );
        o.kv(b, "header-timeout", num(self.header_timeout));
        o.kv(b, "idle-timeout", num(self.idle_timeout));
        o.kv(b, "log-format", string(self.log_format.as_str()));

        o.text.push('\n');
        o.line("[accessibility]", None);
        o.kv("accessibility", "offline", self.offline.to_string());
        o.rules("proxy", &self.proxy_rules, "every repository is proxied");
        o.rules("cache", &self.cache_rules, "every repository is cached");

        o.text.push('\n');
        o.line("[admin]", None);
        match (&self.admin_token, sources.admin_token_file()) {
            (None, _) => o.line(
                "# token: not set (the admin pages answer loopback only)",
                Some("admin.token"),
            ),
            (Some(_), Some(file)) => {
                o.line(&format!("token_file = {}", path(file)), Some("admin.token"));
            }
            (Some(_), None) => {
                o.line(
                    &format!("token = {}", string(REDACTED)),
                    Some("admin.token"),
                );
            }
        }
        o.text
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::{Command, ConfigError, load_from_args_with_sources};

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    fn load(args: &[&str]) -> Result<(Config, Command, Sources), ConfigError> {
        load_from_args_with_sources(std::iter::once("olah-cli").chain(args.iter().copied()))
    }

    /// Writes `cfg` out (plain and annotated), reads each back with `-c` and `extra` flags, and
    /// checks the result is `cfg`.
    fn round_trip(cfg: &Config, sources: &Sources, extra: &[&str]) {
        for annotate in [false, true] {
            let text = cfg.to_toml(sources, annotate);
            let f = file(&text);
            let mut args = vec!["-c", f.path().to_str().unwrap()];
            args.extend_from_slice(extra);
            let (back, _, _) = load(&args).unwrap_or_else(|e| panic!("{e}\n{text}"));
            assert_eq!(&back, cfg, "annotate={annotate}:\n{text}");
        }
    }

    const FULL: &str = r#"
[basic]
host = "0.0.0.0"
port = 9000
ssl-key = "/tls/key.pem"
ssl-cert = "/tls/cert \"quoted\".pem"
repos-path = "/data/repos"
cache-size-limit = "1.5T"
cache-clean-strategy = "large_first"
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
mirrors-path = ["/m1", "/m 2"]
has-lfs-site = true
log-path = "/var/log/olah"
workers = 4
upstream-hosts = ["cas.example:443", "127.0.0.1:3"]
xet = "plain"
mirror-names = ["mirror.lan:8090"]
max-connections = 100
header-timeout = 5
idle-timeout = 20
log-format = "json"

[accessibility]
offline = true

[[accessibility.proxy]]
repo = "*"
allow = true

[[accessibility.proxy]]
repo = "^acme/private-.*"
allow = false
use_re = true

[accessibility]
"#;

    #[test]
    fn every_key_round_trips() {
        // (The duplicated [accessibility] header above would be a TOML error: drop it.)
        let text = FULL.trim_end().trim_end_matches("[accessibility]");
        let text = format!(
            "{text}\n[[accessibility.cache]]\nrepo = \"a\\\\b\"\n\n[admin]\ntoken = \"t\"\n"
        );
        let f = file(&text);
        let (cfg, _, sources) = load(&["-c", f.path().to_str().unwrap()]).unwrap();
        assert_eq!(cfg.mirror_scheme, "https", "derived from ssl-key");
        assert_eq!(cfg.proxy_rules.len(), 2);
        assert_eq!(cfg.cache_rules[0].repo, "a\\b");
        // Every key but the derived ones came from the file, with its line.
        for (key, _) in KEYS {
            match sources.origin(key) {
                Origin::File { line: Some(_), .. } => {}
                Origin::Derived(_) if key.starts_with("basic.mirror-") => {}
                other => panic!("{key}: {other:?}"),
            }
        }
        round_trip(&cfg, &sources, &["--admin-token", "t"]);
    }

    #[test]
    fn defaults_and_flags_round_trip() {
        let (cfg, _, sources) = load(&[]).unwrap();
        assert_eq!(cfg, Config::default());
        round_trip(&cfg, &sources, &[]);
        let (cfg, _, sources) = load(&[
            "--port",
            "9100",
            "--host",
            "::1",
            "--cache-size-limit",
            "10G",
            "--upstream-host",
            "a:1",
            "--offline",
            "--log-format",
            "json",
        ])
        .unwrap();
        assert_eq!(cfg.mirror_netloc, "[::1]:9100");
        round_trip(&cfg, &sources, &[]);
    }

    #[test]
    fn an_empty_rule_list_round_trips_as_deny_all() {
        let f = file("[accessibility]\nproxy = []\n");
        let (cfg, _, sources) = load(&["-c", f.path().to_str().unwrap()]).unwrap();
        assert!(!crate::decide(&cfg.proxy_rules, "a/b"));
        round_trip(&cfg, &sources, &[]);
    }

    #[test]
    fn sources_name_default_file_flag_env_and_derived() {
        let f = file(
            "[basic]\nhost = \"0.0.0.0\"\n\nport = 9000\n\n[[accessibility.proxy]]\nrepo = \"*\"\nallow = true\n",
        );
        let p = f.path().to_str().unwrap();
        let (cfg, _, s) = load(&["-c", p, "--port", "9100", "--offline"]).unwrap();
        assert_eq!(cfg.port, 9100);
        assert_eq!(s.origin("basic.port"), &Origin::Flag("--port".into()));
        assert_eq!(
            s.origin("basic.host"),
            &Origin::File {
                path: p.into(),
                line: Some(2)
            }
        );
        assert_eq!(
            s.origin("accessibility.proxy"),
            &Origin::File {
                path: p.into(),
                line: Some(6)
            }
        );
        assert_eq!(
            s.origin("accessibility.offline"),
            &Origin::Flag("--offline".into())
        );
        assert_eq!(s.origin("basic.log-path"), &Origin::Default);
        assert_eq!(
            s.origin("basic.mirror-netloc"),
            &Origin::Derived("host, port")
        );

        let text = cfg.to_toml(&s, true);
        assert!(text.contains("port = 9100  # flag --port\n"), "{text}");
        assert!(
            text.contains(&format!("host = \"0.0.0.0\"  # file ({p}:2)\n")),
            "{text}"
        );
        assert!(text.contains("[[accessibility.proxy]]  # file ("), "{text}");
        assert!(
            text.contains("repos-path = \"./repos\"  # default\n"),
            "{text}"
        );
        assert!(
            text.contains("mirror-netloc = \"localhost:9100\"  # derived from host, port\n"),
            "{text}"
        );
        assert!(
            !cfg.to_toml(&s, false).contains(" # "),
            "no origins unless asked"
        );

        // A given mirror-netloc is no longer derived.
        let (_, _, s) = load(&["--mirror-netloc", "m.lan"]).unwrap();
        assert_eq!(
            s.origin("basic.mirror-netloc"),
            &Origin::Flag("--mirror-netloc".into())
        );
        assert_eq!(
            s.origin("basic.mirror-lfs-netloc"),
            &Origin::Derived("mirror-netloc")
        );
    }

    #[test]
    fn admin_token_is_never_written() {
        let secret = "hf_admin_s3cret_value";
        // From the file: redacted; reading that back is refused rather than taken as a token.
        let f = file(&format!("[admin]\ntoken = \"{secret}\"\n"));
        let (cfg, _, s) = load(&["-c", f.path().to_str().unwrap()]).unwrap();
        let text = cfg.to_toml(&s, true);
        assert!(!text.contains(secret), "{text}");
        assert!(text.contains("token = \"<redacted>\"  # file ("), "{text}");
        let back = file(&text);
        let e = load(&["-c", back.path().to_str().unwrap()]).unwrap_err();
        assert!(e.to_string().contains("admin.token"), "{e}");
        // ...unless the real token comes from elsewhere, as it did for the original.
        round_trip(&cfg, &s, &["--admin-token", secret]);

        // From a token file: the file's path, which reads back to the same token.
        let tf = file(&format!("{secret}\n"));
        let tp = tf.path().to_str().unwrap();
        let (cfg, _, s) = load(&["--admin-token-file", tp]).unwrap();
        assert_eq!(cfg.admin_token.as_ref().unwrap().expose(), secret);
        assert_eq!(s.admin_token_file(), Some(tf.path()));
        let text = cfg.to_toml(&s, true);
        assert!(
            text.contains(&format!("token_file = \"{tp}\"  # flag --admin-token-file")),
            "{text}"
        );
        assert!(!text.contains(secret), "{text}");
        round_trip(&cfg, &s, &[]);

        // A flag on top of a file's token_file: the flag's token, redacted.
        let conf = file(&format!("[admin]\ntoken_file = \"{tp}\"\n"));
        let (cfg, _, s) = load(&[
            "-c",
            conf.path().to_str().unwrap(),
            "--admin-token",
            "other",
        ])
        .unwrap();
        assert_eq!(cfg.admin_token.as_ref().unwrap().expose(), "other");
        assert_eq!(s.admin_token_file(), None);
        let text = cfg.to_toml(&s, true);
        assert!(
            text.contains("token = \"<redacted>\"  # flag --admin-token"),
            "{text}"
        );
    }
}
