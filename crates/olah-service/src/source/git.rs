//! `mirrors-path`: local git repositories served as Hub repos, without the upstream.
//!
//! Layout: `{root}/{models|datasets|spaces|kernels}/{ns}/{name}` (a legacy one-segment id is
//! `{root}/{plural}/{name}`), each a non-bare checkout (`.git/`) or a bare repository. The first
//! root holding an openable repository owns the repo; a directory that is not a git repository
//! is ignored (the mirror then proxies as usual).
//!
//! Everything is read from the git history, never from a working tree: revisions are branches
//! (`refs/heads`), tags (`refs/tags`, peeled), any full ref name under `refs/`, or a full or
//! abbreviated (>= 4 hex digits) commit sha; `main` falls back to `HEAD` when the repository has no
//! `main` branch (many local repositories use `master`). A file's ETag is its git blob id; a file
//! whose blob is a git-lfs pointer is served from the repository's LFS store
//! (`{git dir}/lfs/objects/{aa}/{bb}/{sha256}`, or `lfs.storage`) with the pointer's sha256 as
//! ETag/`X-Linked-Etag` and the real size as `X-Linked-Size`, streamed from disk in chunks.
//!
//! git2 is blocking: every repository access runs in `spawn_blocking`, and a repository is opened
//! per request (cheap; refs and packs are always current).
//!
//! Lists (tree, commits) are answered in one page: no `Link: rel="next"` is emitted.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use git2::{ErrorCode, ObjectType, Odb, Oid, Repository, RepositoryOpenFlags, Sort, Tree};
use olah_types::{RepoPath, RepoRef, Revision, Route};

use super::body::{DiskBody, InlineBody};
use super::json::{
    CommitInfo, FileIds, LastCommit, LfsPointer, RefItem, Refs, RepoInfo, Sibling, TreeEntry,
    content_type, iso8601_secs,
};
use super::{
    ByteStream, FileBody, FileHead, MetaAnswer, MetaRequest, Outcome, RepoFile, RepoSource,
    RequestCtx,
};
use crate::error::ServiceError;

/// Regular blobs up to this size are read whole when their head is decided; larger ones are
/// streamed when the object database can (loose objects), else read whole by a blocking producer.
const INLINE_MAX: u64 = 1 << 20;
/// Chunk size of streamed blobs.
const CHUNK: usize = 256 << 10;
/// Most commits walked to find the last commit of expanded tree entries.
const MAX_WALK: usize = 10_000;

type Res<T> = Result<T, ServiceError>;

/// The local git repositories under the configured `mirrors-path` roots.
#[derive(Debug, Clone, Default)]
pub struct GitSource {
    roots: Vec<PathBuf>,
}

impl GitSource {
    /// Repositories under these roots (`mirrors-path`); an empty list owns nothing.
    pub fn new(roots: Vec<PathBuf>) -> Self {
        Self { roots }
    }

    fn candidates(&self, repo: &RepoRef) -> Vec<PathBuf> {
        self.roots.iter().map(|r| repo_dir(r, repo)).collect()
    }

    /// Runs `f` on the repository of `repo` on a blocking thread.
    async fn with_repo<T: Send + 'static>(
        &self,
        repo: &RepoRef,
        f: impl FnOnce(&Repository, &Path) -> Res<T> + Send + 'static,
    ) -> Res<T> {
        let candidates = self.candidates(repo);
        let id = repo.id.as_str().to_string();
        tokio::task::spawn_blocking(move || match open_first(&candidates) {
            None => Err(ServiceError::repo_not_found(format!(
                "Repository {id} not found"
            ))),
            Some(Err(e)) => Err(e),
            Some(Ok((dir, git))) => f(&git, &dir),
        })
        .await
        .map_err(|e| ServiceError::internal(format!("local git task: {e}")))?
    }
}

#[async_trait]
impl RepoSource for GitSource {
    fn name(&self) -> &'static str {
        "git"
    }

    async fn owns(&self, repo: &RepoRef) -> bool {
        if self.roots.is_empty() {
            return false;
        }
        let candidates = self.candidates(repo);
        tokio::task::spawn_blocking(move || open_first(&candidates).is_some())
            .await
            .unwrap_or(false)
    }

    async fn file(
        &self,
        _cx: &RequestCtx,
        repo: &RepoRef,
        revision: &Revision,
        path: &RepoPath,
    ) -> Result<RepoFile, ServiceError> {
        let (rev, path) = (revision.as_str().to_string(), path.as_str().to_string());
        let plan = self
            .with_repo(repo, move |git, dir| {
                let commit = resolve_rev(git, &rev)?;
                plan_file(git, dir, &commit, &path)
            })
            .await?;
        let body: Arc<dyn FileBody> = match plan.source {
            Source::Inline(b) => Arc::new(InlineBody(b)),
            Source::Lfs(p) => {
                let file = tokio::task::spawn_blocking({
                    let p = p.clone();
                    move || std::fs::File::open(p)
                })
                .await
                .map_err(|e| ServiceError::internal(format!("open task: {e}")))?
                .map_err(|e| ServiceError::internal(format!("LFS object {}: {e}", p.display())))?;
                Arc::new(DiskBody::new(file, p))
            }
            Source::Blob { dir, oid } => Arc::new(BlobBody { dir, oid }),
        };
        Ok(RepoFile {
            head: plan.head,
            body,
        })
    }

    async fn meta(&self, _cx: &RequestCtx, req: &MetaRequest) -> Result<MetaAnswer, ServiceError> {
        let route = req.route.clone();
        let Some(repo) = route.repo().cloned() else {
            return Err(ServiceError::internal(
                "route without a repository reached the git source",
            ));
        };
        let req = req.clone();
        self.with_repo(&repo, move |git, _| meta(git, &req)).await
    }
}

/// `{root}/{plural}/{ns}/{name}`: the id is validated by the route parser (no `.`/`..`
/// segments, no separators but the one `/`), so the path stays under the root.
fn repo_dir(root: &Path, repo: &RepoRef) -> PathBuf {
    let mut p = root.join(repo.kind.api_plural());
    for seg in repo.id.as_str().split('/') {
        p.push(seg);
    }
    p
}

/// The first candidate that is a git repository. `None`: none is (not local).
fn open_first(candidates: &[PathBuf]) -> Option<Res<(PathBuf, Repository)>> {
    for dir in candidates {
        if !dir.is_dir() {
            continue;
        }
        match Repository::open_ext(
            dir,
            RepositoryOpenFlags::NO_SEARCH,
            std::iter::empty::<&OsStr>(),
        ) {
            Ok(repo) => return Some(Ok((dir.clone(), repo))),
            Err(e) if e.code() == ErrorCode::Owner => {
                tracing::warn!(dir = %dir.display(), error = %e, "local git repository refused (owner)");
                return Some(Err(ServiceError::internal(format!(
                    "local repository {} is owned by another user (git safe.directory)",
                    dir.display()
                ))));
            }
            Err(e) => {
                tracing::debug!(dir = %dir.display(), error = %e, "not a git repository");
            }
        }
    }
    None
}

fn git_err(e: git2::Error) -> ServiceError {
    ServiceError::internal(format!("local git: {}", e.message()))
}

/// Answers a metadata route (blocking: git2).
fn meta(git: &Repository, req: &MetaRequest) -> Res<MetaAnswer> {
    match &req.route {
        Route::RepoInfo { repo } => {
            let c = resolve_rev(git, "main")?;
            at(&c, &repo_info(git, repo, &c, req.flag("blobs"))?)
        }
        Route::RevisionInfo { repo, revision } => {
            let c = resolve_rev(git, revision.as_str())?;
            at(&c, &repo_info(git, repo, &c, req.flag("blobs"))?)
        }
        Route::Tree { revision, path, .. } => {
            let c = resolve_rev(git, revision.as_str())?;
            let v = tree_listing(
                git,
                &c,
                path.as_ref().map(|p| p.as_str()),
                req.flag("recursive"),
                req.flag("expand"),
            )?;
            at(&c, &v)
        }
        Route::PathsInfo { revision, .. } => {
            let c = resolve_rev(git, revision.as_str())?;
            let (paths, expand) = req
                .paths
                .as_ref()
                .map(|q| (q.paths.as_slice(), q.expand))
                .unwrap_or((&[], false));
            at(&c, &paths_info(git, &c, paths, expand)?)
        }
        Route::Refs { .. } => MetaAnswer::json(&refs(git, req.flag("include_prs"))?, None),
        Route::Commits { revision, .. } => {
            let c = resolve_rev(git, revision.as_str())?;
            let formatted = req.has("expand[]", "formatted");
            at(&c, &commits(git, &c, formatted)?)
        }
        _ => Err(ServiceError::internal(
            "route without metadata reached the git source",
        )),
    }
}

/// A JSON answer about `c`.
fn at<T: serde::Serialize>(c: &git2::Commit<'_>, v: &T) -> Res<MetaAnswer> {
    MetaAnswer::json(v, Some(c.id().to_string()))
}

/// A revision → commit: branch, tag, full ref name, full or abbreviated commit sha.
fn resolve_rev<'r>(git: &'r Repository, rev: &str) -> Res<git2::Commit<'r>> {
    let not_found = || ServiceError::revision_not_found(format!("Invalid rev id: {rev}"));
    let mut names = vec![format!("refs/heads/{rev}"), format!("refs/tags/{rev}")];
    if rev.starts_with("refs/") {
        names.push(rev.to_string());
    }
    for name in &names {
        if let Ok(r) = git.find_reference(name) {
            return r.peel_to_commit().map_err(|_| not_found());
        }
    }
    if rev == "main"
        && let Ok(c) = git.head().and_then(|h| h.peel_to_commit())
    {
        return Ok(c);
    }
    if (4..=40).contains(&rev.len()) && rev.bytes().all(|b| b.is_ascii_hexdigit()) {
        let obj = if rev.len() == 40 {
            Oid::from_str(rev).and_then(|oid| git.find_object(oid, None))
        } else {
            git.find_object_by_prefix(rev, None)
        };
        if let Ok(c) = obj.and_then(|o| o.peel_to_commit()) {
            return Ok(c);
        }
    }
    Err(not_found())
}

/// A blob's ids: its git id, the size clients see, its LFS pointer (only small blobs are read).
fn file_ids(odb: &Odb<'_>, oid: Oid) -> Res<(FileIds, u64)> {
    let (size, _) = odb.read_header(oid).map_err(git_err)?;
    let lfs = if size < super::json::LFS_POINTER_MAX {
        LfsPointer::parse(odb.read(oid).map_err(git_err)?.data())
    } else {
        None
    };
    let blob_size = size as u64;
    Ok((
        FileIds {
            oid: oid.to_string(),
            size: lfs.as_ref().map_or(blob_size, |l| l.size),
            lfs,
        },
        blob_size,
    ))
}

/// The LFS store of a repository: `lfs.storage` (relative to the git dir), else `{git dir}/lfs`.
fn lfs_object_path(git: &Repository, sha256: &str) -> PathBuf {
    let common = git.commondir();
    let storage = git
        .config()
        .ok()
        .and_then(|c| c.get_path("lfs.storage").ok())
        .map(|p| if p.is_absolute() { p } else { common.join(p) })
        .unwrap_or_else(|| common.join("lfs"));
    // `sha256` is 64 validated hex digits: the path stays inside the store.
    storage
        .join("objects")
        .join(&sha256[0..2])
        .join(&sha256[2..4])
        .join(sha256)
}

/// A file to serve.
struct FilePlan {
    head: FileHead,
    source: Source,
}

/// Where a file's bytes come from.
enum Source {
    /// A small blob read whole.
    Inline(Bytes),
    /// A git blob to stream from the repository at `dir`.
    Blob { dir: PathBuf, oid: Oid },
    /// An LFS object file.
    Lfs(PathBuf),
}

fn plan_file(git: &Repository, dir: &Path, commit: &git2::Commit<'_>, path: &str) -> Res<FilePlan> {
    let commit_id = commit.id().to_string();
    let missing = || {
        ServiceError::entry_not_found(
            format!("{path} does not exist at {commit_id}"),
            Some(commit_id.clone()),
        )
    };
    let tree = commit.tree().map_err(git_err)?;
    let entry = match tree.get_path(Path::new(path)) {
        Ok(e) => e,
        Err(e) if e.code() == ErrorCode::NotFound => return Err(missing()),
        Err(e) => return Err(git_err(e)),
    };
    if entry.kind() != Some(ObjectType::Blob) {
        return Err(missing());
    }
    let odb = git.odb().map_err(git_err)?;
    let (ids, blob_size) = file_ids(&odb, entry.id())?;
    let source = if let Some(lfs) = &ids.lfs {
        let p = lfs_object_path(git, &lfs.sha256);
        match std::fs::metadata(&p) {
            Ok(m) if m.is_file() && m.len() == lfs.size => Source::Lfs(p),
            Ok(m) => {
                return Err(ServiceError::internal(format!(
                    "LFS object {} of {path} has {} bytes, its pointer says {}",
                    lfs.sha256,
                    m.len(),
                    lfs.size
                )));
            }
            Err(_) => {
                // Without X-Repo-Commit: the client raises but records no negative cache entry.
                return Err(ServiceError::entry_not_found(
                    format!(
                        "{path}: LFS object {} is not present in the local mirror",
                        lfs.sha256
                    ),
                    None,
                ));
            }
        }
    } else if blob_size <= INLINE_MAX {
        let blob = git.find_blob(entry.id()).map_err(git_err)?;
        Source::Inline(Bytes::copy_from_slice(blob.content()))
    } else {
        Source::Blob {
            dir: dir.to_path_buf(),
            oid: entry.id(),
        }
    };
    let etag = ids
        .lfs
        .as_ref()
        .map_or_else(|| ids.oid.clone(), |l| l.sha256.clone());
    Ok(FilePlan {
        head: FileHead {
            commit: Some(commit_id),
            size: ids.size,
            linked: ids.lfs.as_ref().map(|l| (l.sha256.clone(), l.size)),
            etag,
            xet_hash: None,
            content_type: content_type(path, ids.lfs.is_some()),
            outcome: Outcome::Local,
        },
        source,
    })
}

/// One tree entry.
enum Entry {
    Dir { path: String, oid: Oid },
    File { path: String, ids: FileIds },
}

impl Entry {
    fn path(&self) -> &str {
        match self {
            Entry::Dir { path, .. } | Entry::File { path, .. } => path,
        }
    }

    fn to_json(&self) -> TreeEntry {
        match self {
            Entry::Dir { path, oid } => TreeEntry::directory(path, oid.to_string()),
            Entry::File { path, ids } => TreeEntry::file(path, ids),
        }
    }
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}/{name}")
    }
}

/// Entries of `tree` (pre-order, git order), descending into subtrees when `recursive`.
/// Submodules and entries whose name is not UTF-8 are skipped.
fn walk(
    git: &Repository,
    odb: &Odb<'_>,
    tree: &Tree<'_>,
    prefix: &str,
    recursive: bool,
    out: &mut Vec<Entry>,
) -> Res<()> {
    for te in tree.iter() {
        let Ok(name) = te.name() else { continue };
        let path = join(prefix, name);
        match te.kind() {
            Some(ObjectType::Tree) => {
                out.push(Entry::Dir {
                    path: path.clone(),
                    oid: te.id(),
                });
                if recursive {
                    let sub = git.find_tree(te.id()).map_err(git_err)?;
                    walk(git, odb, &sub, &path, true, out)?;
                }
            }
            Some(ObjectType::Blob) => out.push(Entry::File {
                path,
                ids: file_ids(odb, te.id())?.0,
            }),
            _ => {}
        }
    }
    Ok(())
}

/// Entries as JSON, with `lastCommit` when `expand`.
fn entries_json(
    git: &Repository,
    commit: &git2::Commit<'_>,
    entries: &[Entry],
    expand: bool,
) -> Res<Vec<TreeEntry>> {
    let mut out: Vec<TreeEntry> = entries.iter().map(Entry::to_json).collect();
    if expand {
        let paths: Vec<&str> = entries.iter().map(Entry::path).collect();
        let last = last_commits(git, commit, &paths)?;
        for e in &mut out {
            e.last_commit = last.get(e.path.as_str()).cloned();
        }
    }
    Ok(out)
}

/// The last commit (from `commit` back) that changed each of `paths`: the newest commit whose
/// entry differs from its first parent's. The walk is bounded ([`MAX_WALK`]); paths still
/// unchanged at its end get the oldest commit walked.
fn last_commits(
    git: &Repository,
    commit: &git2::Commit<'_>,
    paths: &[&str],
) -> Res<HashMap<String, LastCommit>> {
    let mut pending: Vec<&str> = paths.to_vec();
    let mut found = HashMap::new();
    let mut walk = git.revwalk().map_err(git_err)?;
    walk.set_sorting(Sort::TOPOLOGICAL | Sort::TIME)
        .map_err(git_err)?;
    walk.push(commit.id()).map_err(git_err)?;
    let id_at = |tree: &Tree<'_>, p: &str| tree.get_path(Path::new(p)).ok().map(|e| e.id());
    let mut last_seen = None;
    for oid in walk.take(MAX_WALK) {
        if pending.is_empty() {
            break;
        }
        let c = git.find_commit(oid.map_err(git_err)?).map_err(git_err)?;
        let tree = c.tree().map_err(git_err)?;
        let parent = c.parent(0).ok().and_then(|p| p.tree().ok());
        let info = LastCommit {
            id: c.id().to_string(),
            title: lossy(c.summary_bytes()),
            date: iso8601_secs(c.time().seconds()),
        };
        pending.retain(|p| {
            let changed = match &parent {
                None => true,
                Some(pt) => id_at(&tree, p) != id_at(pt, p),
            };
            if changed {
                found.insert(p.to_string(), info.clone());
            }
            !changed
        });
        last_seen = Some(info);
    }
    if let Some(info) = last_seen {
        for p in pending {
            found.insert(p.to_string(), info.clone());
        }
    }
    Ok(found)
}

fn tree_listing(
    git: &Repository,
    commit: &git2::Commit<'_>,
    path: Option<&str>,
    recursive: bool,
    expand: bool,
) -> Res<Vec<TreeEntry>> {
    let root = commit.tree().map_err(git_err)?;
    let odb = git.odb().map_err(git_err)?;
    let mut out = Vec::new();
    match path {
        None => walk(git, &odb, &root, "", recursive, &mut out)?,
        Some(p) => {
            let entry = root.get_path(Path::new(p)).map_err(|_| {
                ServiceError::entry_not_found(
                    format!("{p} does not exist at {}", commit.id()),
                    Some(commit.id().to_string()),
                )
            })?;
            // A file path lists nothing (as the fake Hub does); a directory lists its content.
            if entry.kind() == Some(ObjectType::Tree) {
                let sub = git.find_tree(entry.id()).map_err(git_err)?;
                walk(git, &odb, &sub, p, recursive, &mut out)?;
            }
        }
    }
    entries_json(git, commit, &out, expand)
}

fn paths_info(
    git: &Repository,
    commit: &git2::Commit<'_>,
    paths: &[String],
    expand: bool,
) -> Res<Vec<TreeEntry>> {
    let root = commit.tree().map_err(git_err)?;
    let odb = git.odb().map_err(git_err)?;
    let mut out = Vec::new();
    for p in paths {
        let Ok(te) = root.get_path(Path::new(p)) else {
            continue;
        };
        match te.kind() {
            Some(ObjectType::Tree) => out.push(Entry::Dir {
                path: p.to_string(),
                oid: te.id(),
            }),
            Some(ObjectType::Blob) => out.push(Entry::File {
                path: p.to_string(),
                ids: file_ids(&odb, te.id())?.0,
            }),
            _ => {}
        }
    }
    entries_json(git, commit, &out, expand)
}

fn repo_info(
    git: &Repository,
    repo: &RepoRef,
    commit: &git2::Commit<'_>,
    blobs: bool,
) -> Res<RepoInfo> {
    let root = commit.tree().map_err(git_err)?;
    let odb = git.odb().map_err(git_err)?;
    let mut entries = Vec::new();
    walk(git, &odb, &root, "", true, &mut entries)?;
    let mut used = 0u64;
    let siblings: Vec<Sibling> = entries
        .iter()
        .filter_map(|e| match e {
            Entry::Dir { .. } => None,
            Entry::File { path, ids } => {
                used += ids.size;
                Some(Sibling::of(path, ids, blobs))
            }
        })
        .collect();
    // The oldest commit reachable from this one: the repository's creation date.
    let mut walk = git.revwalk().map_err(git_err)?;
    walk.set_sorting(Sort::TOPOLOGICAL | Sort::REVERSE)
        .map_err(git_err)?;
    walk.push(commit.id()).map_err(git_err)?;
    let first = walk
        .next()
        .transpose()
        .map_err(git_err)?
        .and_then(|oid| git.find_commit(oid).ok())
        .map_or(commit.time().seconds(), |c| c.time().seconds());
    Ok(RepoInfo::local(
        &repo.key(),
        repo,
        &commit.id().to_string(),
        iso8601_secs(first),
        iso8601_secs(commit.time().seconds()),
        siblings,
        used,
    ))
}

fn refs(git: &Repository, include_prs: bool) -> Res<Refs> {
    let mut all: Vec<(String, String)> = Vec::new();
    for r in git.references().map_err(git_err)? {
        let Ok(r) = r else { continue };
        let Ok(name) = r.name().map(str::to_string) else {
            continue;
        };
        if let Ok(c) = r.peel_to_commit() {
            all.push((name, c.id().to_string()));
        }
    }
    all.sort();
    let mut out = Refs::default();
    let mut prs = Vec::new();
    for (name, sha) in &all {
        let item = |short: &str| RefItem {
            name: short.to_string(),
            reference: name.clone(),
            target_commit: sha.clone(),
        };
        if let Some(b) = name.strip_prefix("refs/heads/") {
            out.branches.push(item(b));
        } else if let Some(t) = name.strip_prefix("refs/tags/") {
            out.tags.push(item(t));
        } else if let Some(c) = name.strip_prefix("refs/convert/") {
            out.converts.push(item(c));
        } else if name.starts_with("refs/pr/") {
            prs.push(item(name));
        }
    }
    out.pull_requests = include_prs.then_some(prs);
    Ok(out)
}

fn commits(git: &Repository, commit: &git2::Commit<'_>, formatted: bool) -> Res<Vec<CommitInfo>> {
    let mut walk = git.revwalk().map_err(git_err)?;
    walk.set_sorting(Sort::TOPOLOGICAL | Sort::TIME)
        .map_err(git_err)?;
    walk.push(commit.id()).map_err(git_err)?;
    let mut out = Vec::new();
    for oid in walk {
        let c = git.find_commit(oid.map_err(git_err)?).map_err(git_err)?;
        out.push(
            CommitInfo::new(
                c.id().to_string(),
                lossy(c.summary_bytes()),
                lossy(c.body_bytes()).trim_end().to_string(),
                iso8601_secs(c.time().seconds()),
                String::from_utf8_lossy(c.author().name_bytes()).into_owned(),
            )
            .formatted_if(formatted),
        );
    }
    Ok(out)
}

fn lossy(b: Option<&[u8]>) -> String {
    b.map(|b| String::from_utf8_lossy(b).into_owned())
        .unwrap_or_default()
}

/// A (large) git blob, streamed from the repository at `dir`.
struct BlobBody {
    dir: PathBuf,
    oid: Oid,
}

#[async_trait]
impl FileBody for BlobBody {
    async fn open(&self, start: u64, end: u64) -> Result<ByteStream, ServiceError> {
        Ok(blob_stream(
            self.dir.clone(),
            self.oid,
            start,
            end - start + 1,
        ))
    }

    /// Local bytes: nothing comes from the upstream.
    fn cached(&self) -> Option<bool> {
        Some(true)
    }
}

/// Bytes `start..start+len` of a (large) git blob: a blocking producer reads the object (as a
/// stream when the object database can, i.e. loose objects; else whole) and hands chunks over a
/// bounded channel. It stops when the body is dropped.
fn blob_stream(dir: PathBuf, oid: Oid, start: u64, len: u64) -> ByteStream {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, io::Error>>(4);
    tokio::task::spawn_blocking(move || {
        let send = |chunk: Result<Bytes, io::Error>| tx.blocking_send(chunk).is_ok();
        let res = (|| -> Result<(), io::Error> {
            let repo = Repository::open_ext(
                &dir,
                RepositoryOpenFlags::NO_SEARCH,
                std::iter::empty::<&OsStr>(),
            )
            .map_err(io::Error::other)?;
            let odb = repo.odb().map_err(io::Error::other)?;
            if let Ok((mut reader, _, _)) = odb.reader(oid) {
                let mut skip = start;
                let mut left = len;
                let mut buf = vec![0u8; CHUNK];
                while left > 0 {
                    let n = reader.read(&mut buf)?;
                    if n == 0 {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "git blob ended early",
                        ));
                    }
                    let mut piece = &buf[..n];
                    let drop = skip.min(piece.len() as u64) as usize;
                    skip -= drop as u64;
                    piece = &piece[drop..];
                    let take = left.min(piece.len() as u64) as usize;
                    if take > 0 {
                        left -= take as u64;
                        if !send(Ok(Bytes::copy_from_slice(&piece[..take]))) {
                            return Ok(());
                        }
                    }
                }
                return Ok(());
            }
            let blob = repo.find_blob(oid).map_err(io::Error::other)?;
            let content = blob.content();
            let end = start.saturating_add(len);
            if end > content.len() as u64 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "git blob shorter than its size",
                ));
            }
            for piece in content[start as usize..end as usize].chunks(CHUNK) {
                if !send(Ok(Bytes::copy_from_slice(piece))) {
                    return Ok(());
                }
            }
            Ok(())
        })();
        if let Err(e) = res {
            let _ = tx.blocking_send(Err(e));
        }
    });
    futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
    .boxed()
}
