use std::io::Write;

use super::*;

fn load(args: &[&str]) -> Result<(Config, Command), ConfigError> {
    let mut v = vec!["olah-cli"];
    v.extend_from_slice(args);
    load_from_args(v)
}

fn toml_file(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f
}

#[test]
fn defaults_match_olah() {
    let (c, cmd) = load(&[]).unwrap();
    assert_eq!(cmd, Command::Serve);
    assert_eq!((c.host.as_str(), c.port), ("localhost", 8090));
    assert_eq!(c.repos_path, PathBuf::from("./repos"));
    assert_eq!(c.hf_url(), "https://huggingface.co");
    assert_eq!(c.hf_lfs_netloc, "cdn-lfs.huggingface.co");
    assert_eq!(c.mirror_url(), "http://localhost:8090");
    assert_eq!(c.metadata_cache_ttl, 600);
    assert_eq!(c.cache_clean_strategy, CleanStrategy::Lru);
    assert_eq!(c.cache_size_limit, None);
    assert!(!c.offline);
    assert_eq!(c.xet_mode, XetMode::Serve);
}

#[test]
fn every_flag_parses() {
    let (c, _) = load(&[
        "--host",
        "0.0.0.0",
        "--port",
        "9001",
        "--repos-path",
        "/tmp/r",
        "--cache-size-limit",
        "500GB",
        "--cache-clean-strategy",
        "LARGE_FIRST",
        "--cache-compression",
        "gzip",
        "--hf-scheme",
        "http",
        "--hf-netloc",
        "127.0.0.1:1",
        "--hf-lfs-netloc",
        "127.0.0.1:2",
        "--log-path",
        "/tmp/l",
        "--metadata-cache-ttl",
        "0",
        "--workers",
        "2",
        "--has-lfs-site",
        "--offline",
        "--upstream-host",
        "127.0.0.1:3",
        "--xet",
        "plain",
    ])
    .unwrap();
    assert_eq!(
        c.mirror_netloc, "localhost:9001",
        "0.0.0.0 is advertised as localhost"
    );
    assert_eq!(c.cache_size_limit, Some(500 << 30));
    assert_eq!(c.cache_clean_strategy, CleanStrategy::LargeFirst);
    assert_eq!(c.cache_compression, Compression::Gzip);
    assert_eq!(c.hf_url(), "http://127.0.0.1:1");
    assert_eq!(c.metadata_cache_ttl, 0);
    assert!(c.offline && c.has_lfs_site);
    assert_eq!(c.upstream_hosts, vec!["127.0.0.1:3".to_string()]);
    assert_eq!(c.xet_mode, XetMode::PlainHttp);
}

#[test]
fn olah_config_file_loads_and_cli_overrides_it() {
    let f = toml_file(
        r#"
[basic]
host = "0.0.0.0"
port = 9000
ssl-key = ""
ssl-cert = ""
repos-path = "./repos"
cache-size-limit = "100G"
cache-clean-strategy = "FIFO"
hf-scheme = "https"
hf-netloc = "huggingface.co"
hf-lfs-netloc = "cdn-lfs.huggingface.co"
mirror-scheme = "http"
mirror-netloc = "localhost:9000"
mirror-lfs-netloc = "localhost:9000"
mirrors-path = ["./mirrors_dir"]
metadata-cache-ttl = 300
cache-block-size = 67108864
cache-chunk-size = 1048576

[accessibility]
offline = false

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
repo = "cais/mmlu"
allow = true
"#,
    );
    let p = f.path().to_str().unwrap();
    let (c, _) = load(&["-c", p]).unwrap();
    assert_eq!(c.port, 9000);
    assert_eq!(c.cache_clean_strategy, CleanStrategy::Fifo);
    assert_eq!(c.cache_size_limit, Some(100 << 30));
    assert_eq!(c.ssl_key, None);
    assert_eq!(c.mirrors_path, vec![PathBuf::from("./mirrors_dir")]);
    assert_eq!(c.proxy_rules.len(), 4);
    assert!(decide(&c.proxy_rules, "mistralai/other"));
    assert!(!decide(&c.proxy_rules, "mistralai/Mistral-7B"));
    assert!(!decide(&c.proxy_rules, "adept/fuyu-8b"));
    assert!(
        !decide(&c.proxy_rules, "nobody/else"),
        "rules present, none matches: deny"
    );
    let (c, _) = load(&["-c", p, "--port", "9100", "--metadata-cache-ttl", "5"]).unwrap();
    assert_eq!(c.port, 9100, "CLI overrides the file");
    assert_eq!(c.metadata_cache_ttl, 5);
    assert_eq!(
        c.mirror_netloc, "localhost:9000",
        "explicit file value kept"
    );
}

#[test]
fn unknown_keys_and_bad_values_name_the_key() {
    let f = toml_file("[basic]\nprot = 1\n");
    let e = load(&["-c", f.path().to_str().unwrap()])
        .unwrap_err()
        .to_string();
    assert!(e.contains("prot"), "{e}");
    let f = toml_file("[[accessibility.proxy]]\nrepo = \"a/*\"\nallow = true\nregex = true\n");
    let e = load(&["-c", f.path().to_str().unwrap()])
        .unwrap_err()
        .to_string();
    assert!(e.contains("regex"), "{e}");
    let f = toml_file("[basic]\ncache-clean-strategy = \"LFU\"\n");
    let e = load(&["-c", f.path().to_str().unwrap()])
        .unwrap_err()
        .to_string();
    assert!(e.contains("cache-clean-strategy"), "{e}");
    let f = toml_file("[basic]\nport = \"abc\"\n");
    let e = load(&["-c", f.path().to_str().unwrap()])
        .unwrap_err()
        .to_string();
    assert!(e.contains("port"), "{e}");
    let e = load(&["--cache-size-limit", "12Q"])
        .unwrap_err()
        .to_string();
    assert!(e.contains("cache-size-limit"), "{e}");
    let e = load(&["--hf-scheme", "ftp"]).unwrap_err().to_string();
    assert!(e.contains("hf-scheme"), "{e}");
    let f = toml_file("[[accessibility.cache]]\nrepo = \"(\"\nuse_re = true\n");
    let e = load(&["-c", f.path().to_str().unwrap()])
        .unwrap_err()
        .to_string();
    assert!(e.contains("accessibility.cache"), "{e}");
    assert!(
        load(&["--ssl-key", "k.pem"])
            .unwrap_err()
            .to_string()
            .contains("ssl-key")
    );
}

#[test]
fn sizes() {
    assert_eq!(parse_size("100G"), Some(100 << 30));
    assert_eq!(parse_size("500GB"), Some(500 << 30));
    assert_eq!(parse_size("2tb"), Some(2 << 40));
    assert_eq!(parse_size("1.5T"), Some(3 << 39));
    assert_eq!(parse_size("1024"), Some(1024));
    assert_eq!(parse_size("12Q"), None);
    assert_eq!(parse_size(""), None);
}

#[test]
fn rules_match_like_olah() {
    let r = |p: &str, re: bool| AccessRule::new(p, true, re).unwrap();
    assert!(r("*", false).matches("acme/tiny"), "* also matches /");
    assert!(r("*/*", false).matches("acme/tiny"));
    assert!(!r("acme/*", false).matches("other/tiny"));
    assert!(r("acme/t?ny", false).matches("acme/tiny"));
    assert!(r("acme/[st]iny", false).matches("acme/tiny"));
    assert!(r("^acme/.*", true).matches("acme/x"));
    assert!(
        r("acme", true).matches("acme/x"),
        "regex anchored at start only"
    );
    assert!(!r("acme", true).matches("x/acme"));
    assert!(decide(&[], "any/thing"), "no rules: allow");
    let rules = vec![
        AccessRule::new("*", true, false).unwrap(),
        AccessRule::new("acme/*", false, false).unwrap(),
    ];
    assert!(!decide(&rules, "acme/x"), "last match wins");
    assert!(decide(&rules, "other/x"));
}

#[test]
fn model_bin_subcommand() {
    let (c, cmd) = load(&["model-bin", "--path", "/models", "--port", "9999"]).unwrap();
    assert_eq!(
        cmd,
        Command::ModelBin {
            path: "/models".into()
        }
    );
    assert_eq!(c.port, 9999);
}
