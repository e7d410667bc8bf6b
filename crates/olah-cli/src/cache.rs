//! `olah-cli cache ls|verify|rm|gc` on `repos-path`: directly when no server holds the cache,
//! else through the running server's admin API.
//!
//! A serving `olah-cli` writes `{repos-path}/olah-server.json` (`{"url": …, "pid": …}`, its own
//! listening address in loopback form) after binding and removes it at a clean shutdown. The
//! metadata database admits one process: when opening it fails and that file names a server,
//! the tool asks that server (`/admin/api/cache/{op}`, with the admin token when one is set).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use olah_config::{CacheCommand, Config};
use olah_types::{RepoId, RepoRef, RepoType};
use serde_json::{Value, json};

/// The file a serving process leaves in `repos-path`.
pub(crate) const SERVER_FILE: &str = "olah-server.json";

/// Writes the server file (loopback form of `local` when it listens on every address); returns
/// its path, for removal at shutdown. A failure is logged, never fatal.
pub(crate) fn write_server_file(root: &Path, scheme: &str, local: SocketAddr) -> Option<PathBuf> {
    let ip = match local.ip() {
        IpAddr::V4(v) if v.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v) if v.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    let url = format!("{scheme}://{}", SocketAddr::new(ip, local.port()));
    let path = root.join(SERVER_FILE);
    let body = json!({"url": url, "pid": std::process::id()}).to_string();
    match std::fs::write(&path, body) {
        Ok(()) => Some(path),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot write the server file (cache tools will not find this server)");
            None
        }
    }
}

/// A failure of a tool: the repository is not in the cache (exit 2), or anything else.
enum ToolError {
    NotFound(String),
    Other(anyhow::Error),
}

impl From<anyhow::Error> for ToolError {
    fn from(e: anyhow::Error) -> Self {
        Self::Other(e)
    }
}

/// Where the tools run.
enum Target {
    Direct(olah_http::Mirror),
    Server {
        url: String,
        client: reqwest::Client,
        token: Option<String>,
        /// Why the store did not open directly.
        why: String,
    },
}

/// Runs one cache tool; returns the exit status.
pub(crate) async fn run(cfg: &Config, cmd: CacheCommand) -> anyhow::Result<i32> {
    let target = open(cfg)?;
    let out = match &target {
        Target::Direct(m) => direct(m, &cmd).await,
        Target::Server {
            url,
            client,
            token,
            why,
        } => remote(url, client, token.as_deref(), why, &cmd).await,
    };
    let report = match out {
        Ok(v) => v,
        Err(ToolError::NotFound(msg)) => {
            eprintln!("olah-cli: {msg}");
            return Ok(2);
        }
        Err(ToolError::Other(e)) => return Err(e),
    };
    if let Target::Direct(m) = &target {
        let _ = m.meta_db().flush();
    }
    Ok(print(&cmd, &report))
}

fn open(cfg: &Config) -> anyhow::Result<Target> {
    if !cfg.repos_path.is_dir() {
        anyhow::bail!(
            "no cache at {} (set --repos-path to the mirror's)",
            cfg.repos_path.display()
        );
    }
    let server = cfg.repos_path.join(SERVER_FILE);
    match olah_http::Mirror::open(Arc::new(cfg.clone())) {
        Ok(m) => Ok(Target::Direct(m)),
        Err(why) => {
            let Ok(text) = std::fs::read_to_string(&server) else {
                anyhow::bail!("{why}");
            };
            let url = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| v.get("url")?.as_str().map(str::to_string))
                .with_context(|| format!("{} names no server url", server.display()))?;
            // The server file names our own loopback listener; its certificate (if TLS) is
            // the operator's own, often self-signed.
            let loopback = url.contains("://127.0.0.1:") || url.contains("://[::1]:");
            let client = reqwest::Client::builder()
                .danger_accept_invalid_certs(loopback)
                .build()?;
            Ok(Target::Server {
                url,
                client,
                token: cfg.admin_token.as_ref().map(|t| t.expose().to_string()),
                why,
            })
        }
    }
}

fn repo_ref(repo_id: &str, repo_type: &str) -> Result<RepoRef, ToolError> {
    let kind = RepoType::from_singular(repo_type)
        .with_context(|| format!("unknown repo type {repo_type:?}"))?;
    let id = RepoId::new(repo_id).map_err(|e| anyhow::anyhow!("bad repo id {repo_id:?}: {e}"))?;
    Ok(RepoRef::new(kind, id))
}

async fn direct(m: &olah_http::Mirror, cmd: &CacheCommand) -> Result<Value, ToolError> {
    let cat = m.catalog();
    let v = match cmd {
        CacheCommand::Ls { .. } => serde_json::to_value(cat.repos().await.map_err(svc_err!())?),
        CacheCommand::Verify => serde_json::to_value(cat.verify().await.map_err(svc_err!())?),
        CacheCommand::Rm { repo_id, repo_type } => {
            let repo = repo_ref(repo_id, repo_type)?;
            match cat.remove(&repo).await {
                Ok(r) => serde_json::to_value(r),
                Err(e) if e.code.as_str() == "RepoNotFound" => {
                    return Err(ToolError::NotFound(e.message));
                }
                Err(e) => return Err(ToolError::Other(anyhow::anyhow!("{}", e.message))),
            }
        }
        CacheCommand::Gc { dry_run } => {
            serde_json::to_value(cat.gc(*dry_run).await.map_err(svc_err!())?)
        }
    };
    Ok(v.map_err(anyhow::Error::from)?)
}

macro_rules! svc_err {
    () => {
        |e| ToolError::Other(anyhow::anyhow!("{}", e.message))
    };
}
use svc_err;

async fn remote(
    url: &str,
    client: &reqwest::Client,
    token: Option<&str>,
    why: &str,
    cmd: &CacheCommand,
) -> Result<Value, ToolError> {
    let (op, body) = match cmd {
        CacheCommand::Ls { .. } => ("ls", None),
        CacheCommand::Verify => ("verify", Some(json!({}))),
        CacheCommand::Rm { repo_id, repo_type } => {
            repo_ref(repo_id, repo_type)?;
            (
                "rm",
                Some(json!({"repo_id": repo_id, "repo_type": repo_type})),
            )
        }
        CacheCommand::Gc { dry_run } => ("gc", Some(json!({"dry_run": dry_run}))),
    };
    let endpoint = format!("{}/admin/api/cache/{op}", url.trim_end_matches('/'));
    let mut req = match body {
        None => client.get(&endpoint),
        Some(b) => client.post(&endpoint).json(&b),
    };
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.with_context(|| {
        format!(
            "the store did not open ({why}) and the server named in {SERVER_FILE} \
                 ({url}) did not answer"
        )
    })?;
    let status = resp.status();
    let code = resp
        .headers()
        .get("x-error-code")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let message = resp
        .headers()
        .get("x-error-message")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    if status.is_success() {
        return Ok(resp.json::<Value>().await.map_err(anyhow::Error::from)?);
    }
    if status == reqwest::StatusCode::NOT_FOUND && code == "RepoNotFound" {
        return Err(ToolError::NotFound(message));
    }
    if status == reqwest::StatusCode::FORBIDDEN {
        return Err(ToolError::Other(anyhow::anyhow!(
            "the server at {url} refused the cache tool (403): set the admin token \
             (--admin-token, --admin-token-file or OLAH_ADMIN_TOKEN) to the server's"
        )));
    }
    Err(ToolError::Other(anyhow::anyhow!(
        "the server at {url} answered {status} to cache {op}: {message}"
    )))
}

/// Prints a report; returns the exit status.
fn print(cmd: &CacheCommand, v: &Value) -> i32 {
    match cmd {
        CacheCommand::Ls { json: true } => {
            println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
            0
        }
        CacheCommand::Ls { json: false } => {
            print_table(v.as_array().map(Vec::as_slice).unwrap_or_default());
            0
        }
        CacheCommand::Verify => {
            let n = |k: &str| v.get(k).and_then(Value::as_u64).unwrap_or(0);
            let corrupt = strings(v.get("corrupt"));
            for c in &corrupt {
                println!("corrupt (dropped, fetched again on the next request): {c}");
            }
            println!(
                "verified {} blobs and {} xorb ranges, {} read: {} corrupt",
                n("blobs_checked"),
                n("xorb_ranges_checked"),
                human(n("bytes_checked")),
                corrupt.len()
            );
            i32::from(!corrupt.is_empty())
        }
        CacheCommand::Rm { repo_id, repo_type } => {
            let removed = strings(v.get("removed"));
            let freed = v.get("bytes_freed").and_then(Value::as_u64).unwrap_or(0);
            println!(
                "removed {repo_type} {repo_id}: {} records and blobs, {} freed",
                removed.len(),
                human(freed)
            );
            0
        }
        CacheCommand::Gc { dry_run } => {
            let removed = strings(v.get("removed"));
            let freed = v.get("bytes_freed").and_then(Value::as_u64).unwrap_or(0);
            let verb = if *dry_run { "would remove" } else { "removed" };
            for r in &removed {
                println!("{verb}: {r}");
            }
            println!("gc {verb} {} items, {}", removed.len(), human(freed));
            0
        }
    }
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn print_table(repos: &[Value]) {
    let rows: Vec<[String; 6]> = repos
        .iter()
        .map(|r| {
            let s = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            let revs = strings(r.get("revisions"));
            let revs = revs
                .iter()
                .map(|x| {
                    if x.len() == 40 && x.bytes().all(|b| b.is_ascii_hexdigit()) {
                        x[..8].to_string()
                    } else {
                        x.clone()
                    }
                })
                .collect::<Vec<_>>()
                .join(",");
            [
                s("repo_id"),
                s("repo_type"),
                revs,
                r.get("files")
                    .and_then(Value::as_u64)
                    .unwrap_or(0)
                    .to_string(),
                human(r.get("bytes").and_then(Value::as_u64).unwrap_or(0)),
                r.get("last_access")
                    .and_then(Value::as_u64)
                    .map_or_else(|| "-".into(), ago),
            ]
        })
        .collect();
    let head = ["REPO", "TYPE", "REVISIONS", "FILES", "SIZE", "LAST ACCESS"];
    let mut w: Vec<usize> = head.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(c);
            } else {
                out.push_str(&format!("{c:<width$}  ", width = w[i]));
            }
        }
        println!("{}", out.trim_end());
    };
    line(head.to_vec());
    for r in &rows {
        line(r.iter().map(String::as_str).collect());
    }
    if rows.is_empty() {
        println!("(the cache holds no repository files)");
    }
}

/// `1536` → `1.5 KiB`.
pub(crate) fn human(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn ago(secs: u64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let d = now.saturating_sub(secs);
    match d {
        0..60 => format!("{d}s ago"),
        60..3600 => format!("{}m ago", d / 60),
        3600..86400 => format!("{}h ago", d / 3600),
        _ => format!("{}d ago", d / 86400),
    }
}
