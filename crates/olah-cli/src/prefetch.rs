//! `olah-cli prefetch`: pull a repository's files through a running mirror so its cache holds
//! them.
//!
//! A client of the mirror like any other: the listings `snapshot_download` asks
//! (`/api/{t}s/{repo}/revision/{rev}` for the commit, then `/tree/{commit}?recursive=true` for
//! every file with its size, page by page), then a GET of each selected file at that commit (so
//! every file comes from one revision), `--jobs` at a time,
//! read to the end and discarded: the point is the mirror's cache. Files the mirror holds cost
//! nothing upstream, so a re-run after an interruption completes the rest. The listings and the
//! branch name are cached by the mirror on the way, so an offline mirror answers them later.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use globset::{Glob, GlobSet, GlobSetBuilder};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use olah_config::PrefetchArgs;
use olah_types::{RepoId, RepoPath, RepoRef, RepoType, Revision, Route};
use serde_json::Value;

/// Most tree pages followed (the Hub pages 1000 entries at a time in recursive listings).
const MAX_PAGES: u32 = 10_000;

/// Attempts per file (connection errors, 5xx answers, cut bodies).
const ATTEMPTS: u32 = 3;

/// The header the mirror sets on a file answer to say where its bytes came from (`hit`: the
/// cache; `miss`: at least partly the upstream). Without it (another mirror, a local source)
/// the summary says the upstream share is unknown.
const CACHE_HEADER: &str = "x-olah-cache";

/// One selected file.
struct Entry {
    path: String,
    size: u64,
}

/// How one file went.
struct Done {
    bytes: u64,
    /// `Some(true)`: the mirror said (part of) it came from the upstream.
    upstream: Option<bool>,
}

/// Runs the prefetch; returns the exit status.
pub(crate) async fn run(args: PrefetchArgs) -> anyhow::Result<i32> {
    let started = Instant::now();
    let kind = RepoType::from_singular(&args.repo_type)
        .ok_or_else(|| anyhow::anyhow!("unknown repo type {:?}", args.repo_type))?;
    let id = RepoId::new(&args.repo_id)
        .map_err(|e| anyhow::anyhow!("bad repo id {:?}: {e}", args.repo_id))?;
    let repo = RepoRef::new(kind, id);
    let rev_text = args.revision.clone().unwrap_or_else(|| "main".into());
    let revision =
        Revision::new(&rev_text).map_err(|e| anyhow::anyhow!("bad revision {rev_text:?}: {e}"))?;
    let include = globs(&args.include)?;
    let exclude = globs(&args.exclude)?;
    let endpoint = args.endpoint.trim_end_matches('/').to_string();
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(30))
        .user_agent(concat!("olah-cli-prefetch/", env!("CARGO_PKG_VERSION")))
        .build()?;
    let token = args.token.as_ref().map(|t| t.expose().to_string());
    let what = format!("{} {} at revision {}", kind.singular(), repo.id, rev_text);

    // The listings a client asks before a snapshot download (so the mirror keeps them too):
    // the revision (its commit, pinned from here on), then the recursive tree at that commit
    // (every file with its size), page by page.
    let info_url = format!(
        "{endpoint}{}",
        Route::RevisionInfo {
            repo: repo.clone(),
            revision: revision.clone(),
        }
        .upstream_path()
    );
    let fail = |e: ListError| -> i32 {
        match e {
            ListError::Refused { status, code, msg } => {
                let why = match code.as_str() {
                    "RepoNotFound" => {
                        format!("repository {} {} not found", kind.singular(), repo.id)
                    }
                    "RevisionNotFound" => format!(
                        "revision {rev_text} not found in {} {}",
                        kind.singular(),
                        repo.id
                    ),
                    "GatedRepo" => format!(
                        "{} {} is gated: accept its conditions on the Hub and pass --token",
                        kind.singular(),
                        repo.id
                    ),
                    _ => format!("{what}: the mirror answered {status}"),
                };
                let detail = if msg.is_empty() {
                    String::new()
                } else {
                    format!(" ({msg})")
                };
                eprintln!("olah-cli prefetch: {why}{detail}");
                2
            }
            ListError::Other(e) => {
                eprintln!("olah-cli prefetch: cannot list {what} through {endpoint}: {e:#}");
                1
            }
        }
    };
    let info = match listing(&client, &info_url, token.as_deref()).await {
        Ok((v, _)) => v,
        Err(e) => return Ok(fail(e)),
    };
    let Some(sha) = info.get("sha").and_then(Value::as_str).map(str::to_string) else {
        eprintln!("olah-cli prefetch: the mirror's listing of {what} names no commit");
        return Ok(1);
    };
    let commit = Revision::new(&sha).map_err(|_| anyhow::anyhow!("bad commit {sha:?}"))?;
    let mut next = Some(format!(
        "{endpoint}{}?recursive=true&expand=false",
        Route::Tree {
            repo: repo.clone(),
            revision: commit.clone(),
            path: None,
        }
        .upstream_path()
    ));
    let mut files: Vec<Entry> = Vec::new();
    let mut pages = 0;
    while let Some(url) = next.take() {
        pages += 1;
        if pages > MAX_PAGES {
            eprintln!("olah-cli prefetch: the tree of {what} has more than {MAX_PAGES} pages");
            return Ok(1);
        }
        let (page, link) = match listing(&client, &url, token.as_deref()).await {
            Ok(v) => v,
            Err(e) => return Ok(fail(e)),
        };
        files.extend(
            page.as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .filter(|e| e.get("type").and_then(Value::as_str) == Some("file"))
                .filter_map(|e| {
                    let path = e.get("path")?.as_str()?.to_string();
                    let size = e.get("size").and_then(Value::as_u64)?;
                    Some(Entry { path, size })
                })
                .filter(|e| include.as_ref().is_none_or(|g| g.is_match(&e.path)))
                .filter(|e| exclude.as_ref().is_none_or(|g| !g.is_match(&e.path))),
        );
        next = link;
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    if !revision.is_commit_sha() {
        remember_revision(
            &client,
            &endpoint,
            token.as_deref(),
            &repo,
            &revision,
            files.first(),
        )
        .await;
    }
    let total: u64 = files.iter().map(|f| f.size).sum();
    let count = files.len();

    let tty = std::io::stderr().is_terminal();
    let multi = MultiProgress::with_draw_target(if tty {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    });
    let total_bar = tty.then(|| {
        let b = multi.add(ProgressBar::new(total));
        b.set_style(
            ProgressStyle::with_template(
                "{prefix:>12} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
            )
            .expect("a valid template")
            .progress_chars("=> "),
        );
        b.set_prefix(format!("{count} files"));
        b
    });
    if !tty {
        eprintln!(
            "prefetching {count} files ({} bytes) of {} {} at {sha} through {endpoint}",
            total,
            kind.singular(),
            repo.id
        );
    }
    let ctx = Arc::new(Ctx {
        client,
        token,
        endpoint,
        repo,
        commit,
        multi,
        total_bar,
        tty,
        read: AtomicU64::new(0),
    });
    let results: Vec<(String, Result<Done, String>)> = futures::stream::iter(files)
        .map(|e| {
            let ctx = ctx.clone();
            async move {
                let r = ctx.fetch(&e).await;
                (e.path, r)
            }
        })
        .buffer_unordered(args.jobs.max(1))
        .collect()
        .await;
    if let Some(b) = &ctx.total_bar {
        b.finish_and_clear();
    }
    let mut failed = 0;
    let (mut bytes, mut upstream, mut told) = (0u64, 0u64, false);
    for (path, r) in &results {
        match r {
            Ok(d) => {
                bytes += d.bytes;
                if let Some(up) = d.upstream {
                    told = true;
                    if up {
                        upstream += d.bytes;
                    }
                }
            }
            Err(e) => {
                failed += 1;
                eprintln!("olah-cli prefetch: {path}: {e}");
            }
        }
    }
    let from_upstream = if told {
        format!("{upstream} bytes")
    } else {
        "unknown".into()
    };
    println!(
        "prefetched {} files, {bytes} bytes ({from_upstream} from upstream) in {:.1} s",
        count - failed,
        started.elapsed().as_secs_f64()
    );
    if failed > 0 {
        eprintln!("olah-cli prefetch: {failed} of {count} files failed; run it again to complete");
        return Ok(1);
    }
    Ok(0)
}

/// One HEAD of a file at the branch or tag name, so the mirror records where the name points
/// (a later download by name, also offline, needs no upstream). A failure only costs a later
/// upstream request.
async fn remember_revision(
    client: &reqwest::Client,
    endpoint: &str,
    token: Option<&str>,
    repo: &RepoRef,
    revision: &Revision,
    first: Option<&Entry>,
) {
    let Some(path) = first.and_then(|e| RepoPath::new(&e.path).ok()) else {
        return;
    };
    let url = format!(
        "{endpoint}{}",
        Route::Resolve {
            repo: repo.clone(),
            revision: revision.clone(),
            path,
        }
        .upstream_path()
    );
    let mut req = client.head(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let _ = req.send().await;
}

enum ListError {
    Refused {
        status: reqwest::StatusCode,
        code: String,
        msg: String,
    },
    Other(anyhow::Error),
}

/// One listing answer (JSON) and its `Link: <…>; rel="next"` page, if any.
async fn listing(
    client: &reqwest::Client,
    url: &str,
    token: Option<&str>,
) -> Result<(Value, Option<String>), ListError> {
    let mut last = None;
    for attempt in 0..ATTEMPTS {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(500 << attempt)).await;
        }
        let mut req = client.get(url);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                last = Some(anyhow::Error::from(e));
                continue;
            }
        };
        let status = resp.status();
        if status.is_server_error() {
            last = Some(anyhow::anyhow!("the mirror answered {status}"));
            continue;
        }
        if !status.is_success() {
            let h = |n: &str| {
                resp.headers()
                    .get(n)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string()
            };
            return Err(ListError::Refused {
                status,
                code: h("x-error-code"),
                msg: h("x-error-message"),
            });
        }
        let next = resp
            .headers()
            .get_all("link")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .find(|l| l.contains("rel=\"next\""))
            .and_then(|l| Some(l.split_once('<')?.1.split_once('>')?.0.to_string()));
        let v = resp
            .json::<Value>()
            .await
            .map_err(|e| ListError::Other(e.into()))?;
        return Ok((v, next));
    }
    Err(ListError::Other(
        last.unwrap_or_else(|| anyhow::anyhow!("no answer")),
    ))
}

fn globs(patterns: &[String]) -> anyhow::Result<Option<GlobSet>> {
    if patterns.is_empty() {
        return Ok(None);
    }
    let mut b = GlobSetBuilder::new();
    for p in patterns {
        // fnmatch semantics (as `hf download --include`): `*` also matches `/`.
        b.add(Glob::new(p).map_err(|e| anyhow::anyhow!("bad pattern {p:?}: {e}"))?);
    }
    Ok(Some(b.build()?))
}

struct Ctx {
    client: reqwest::Client,
    token: Option<String>,
    endpoint: String,
    repo: RepoRef,
    commit: Revision,
    multi: MultiProgress,
    total_bar: Option<ProgressBar>,
    tty: bool,
    /// Bytes read so far over every file (the total bar).
    read: AtomicU64,
}

impl Ctx {
    async fn fetch(&self, e: &Entry) -> Result<Done, String> {
        let path = RepoPath::new(&e.path).map_err(|err| format!("bad path: {err}"))?;
        let url = format!(
            "{}{}",
            self.endpoint,
            Route::Resolve {
                repo: self.repo.clone(),
                revision: self.commit.clone(),
                path,
            }
            .upstream_path()
        );
        let bar = self.tty.then(|| {
            let b = self.multi.insert_from_back(1, ProgressBar::new(e.size));
            b.set_style(
                ProgressStyle::with_template("{msg:40!} [{bar:20}] {bytes}/{total_bytes}")
                    .expect("a valid template")
                    .progress_chars("=> "),
            );
            b.set_message(e.path.clone());
            b
        });
        let mut last = String::new();
        let mut result = Err(String::new());
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(500 << attempt)).await;
            }
            match self.once(&url, e.size, bar.as_ref()).await {
                Ok(d) => {
                    result = Ok(d);
                    break;
                }
                Err((retry, msg)) => {
                    last = msg;
                    if !retry {
                        break;
                    }
                }
            }
        }
        if result.is_err() {
            result = Err(last);
        }
        if let Some(b) = bar {
            b.finish_and_clear();
            self.multi.remove(&b);
        }
        if !self.tty
            && let Ok(d) = &result
        {
            eprintln!("{} ({} bytes)", e.path, d.bytes);
        }
        result
    }

    /// One GET; `Err((retry?, why))`.
    async fn once(
        &self,
        url: &str,
        size: u64,
        bar: Option<&ProgressBar>,
    ) -> Result<Done, (bool, String)> {
        let mut req = self.client.get(url);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.map_err(|e| (true, e.to_string()))?;
        let status = resp.status();
        if !status.is_success() {
            let msg = resp
                .headers()
                .get("x-error-message")
                .and_then(|v| v.to_str().ok())
                .map(|m| format!(": {m}"))
                .unwrap_or_default();
            return Err((
                status.is_server_error(),
                format!("the mirror answered {status}{msg}"),
            ));
        }
        let upstream = resp
            .headers()
            .get(CACHE_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(|v| !v.eq_ignore_ascii_case("hit"));
        let mut body = resp.bytes_stream();
        let mut got = 0u64;
        let mut counted = 0u64;
        let outcome = loop {
            match body.next().await {
                Some(Ok(chunk)) => {
                    got += chunk.len() as u64;
                    if let Some(b) = bar {
                        b.set_position(got);
                    }
                    if let Some(t) = &self.total_bar {
                        let n = chunk.len() as u64;
                        counted += n;
                        t.set_position(self.read.fetch_add(n, Ordering::Relaxed) + n);
                    }
                }
                Some(Err(e)) => break Err((true, format!("cut after {got} bytes: {e}"))),
                None => break Ok(()),
            }
        };
        // A failed attempt's bytes are read again by the next one: take them off the total.
        let undo = |ctx: &Self| {
            if let Some(t) = &ctx.total_bar {
                t.set_position(ctx.read.fetch_sub(counted, Ordering::Relaxed) - counted);
            }
        };
        if let Err(e) = outcome {
            undo(self);
            return Err(e);
        }
        if got != size {
            undo(self);
            return Err((true, format!("{got} bytes read, {size} expected")));
        }
        Ok(Done {
            bytes: got,
            upstream,
        })
    }
}
