//! Model-bin: plain directories `DIR/<org>/<repo>/…` served as Hub model repos, offline.
//!
//! * Every directory two levels under `DIR` is the model repo `org/repo`; nothing else exists
//!   (datasets, spaces, one-level ids are not owned: `RepoNotFound`).
//! * A repo's files are found by walking its directory on every request (hidden names skipped,
//!   symlinks followed only when their target stays under `DIR`). Its commit id is a synthetic
//!   sha1 over the sorted `(path, size, mtime)` of those files: it changes when a file is added,
//!   removed or touched. Revisions: `main` and that exact sha.
//! * Content hashes (sha256 for LFS-class files, git blob sha1 otherwise) are computed once per
//!   file state, streaming, on blocking threads, single-flight, cached in memory keyed by the
//!   file's `(path, size, mtime, inode, ctime)`.
//! * Request paths never become file system paths: they are looked up in the walked listing,
//!   whose entries are canonical paths checked to be under `DIR`.
//! * A file that changes while it is hashed or opened makes the request start over (walk,
//!   hash, open), a few times, then fail with 503 `ContentChanging`. A file is opened (and its
//!   state checked) before its head is answered; its body is read from that open file.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::UNIX_EPOCH;

use async_trait::async_trait;
use futures::future::{BoxFuture, FutureExt, Shared};
use futures::{StreamExt, TryStreamExt};
use olah_types::{RepoPath, RepoRef, RepoType, Revision, Route};
use sha1::Sha1;
use sha2::{Digest, Sha256};

use super::body::DiskBody;
use super::json::{
    CommitInfo, FileIds, LastCommit, LfsPointer, RefItem, Refs, RepoInfo, Sibling, TreeEntry,
    content_type, git_blob_header, iso8601_ms,
};
use super::{FileHead, MetaAnswer, MetaRequest, Outcome, RepoFile, RepoSource, RequestCtx};
use crate::error::{ErrorKind, HubCode, Origin, ServiceError};

/// Files larger than this are LFS-class whatever their extension.
const LFS_THRESHOLD: u64 = 10 << 20;
/// Extensions (lowercase) of LFS-class files.
const LFS_EXTENSIONS: &[&str] = &[
    "bin",
    "safetensors",
    "gguf",
    "pt",
    "pth",
    "onnx",
    "h5",
    "msgpack",
    "parquet",
];
/// Read size for hashing.
const CHUNK: usize = 1 << 20;
/// Deepest directory nesting walked inside a repo.
const MAX_DEPTH: usize = 64;
/// Most files listed in one repo (bounds memory per request).
const MAX_FILES: usize = 200_000;
/// Attempts of a request whose files change while they are read.
const ATTEMPTS: usize = 3;
/// Hashes computed concurrently for one listing.
const HASH_PARALLELISM: usize = 4;
/// Most file states whose hashes are remembered (older ones are forgotten first).
const MAX_HASHES: usize = 100_000;
/// Title of the one synthetic commit.
const COMMIT_TITLE: &str = "model-bin snapshot";
/// Author of the one synthetic commit.
const COMMIT_AUTHOR: &str = "model-bin";

/// Plain directories under one root, served as model repos.
pub struct DirSource {
    root: PathBuf,
    hashes: HashCache,
}

impl DirSource {
    /// Serves `root/<org>/<repo>/…`.
    pub fn new(root: PathBuf) -> Self {
        Self {
            root,
            hashes: HashCache::default(),
        }
    }

    /// How many file hashes were computed so far (each file state is hashed once).
    pub fn hash_runs(&self) -> u64 {
        self.hashes.runs.load(Ordering::Relaxed)
    }

    async fn state(&self, repo: &RepoRef) -> Result<Arc<RepoState>, ServiceError> {
        let (root, repo) = (self.root.clone(), repo.clone());
        tokio::task::spawn_blocking(move || scan(&root, &repo))
            .await
            .map_err(|e| ServiceError::internal(format!("scan task: {e}")))?
            .map(Arc::new)
    }

    async fn ids(&self, path: &str, f: &FileEntry) -> Result<FileIds, Fail> {
        let lfs = is_lfs(path, f.stamp.size);
        let h = self.hashes.get(f, lfs).await?;
        Ok(FileIds {
            oid: h.oid,
            size: f.stamp.size,
            lfs: h.sha256.map(|sha256| LfsPointer {
                sha256,
                size: f.stamp.size,
            }),
        })
    }

    /// One attempt at a file.
    async fn file_once(
        &self,
        repo: &RepoRef,
        revision: &Revision,
        path: &RepoPath,
    ) -> Result<RepoFile, Fail> {
        let st = self.state(repo).await?;
        st.check_revision(revision)?;
        let Some(f) = st.files.get(path.as_str()) else {
            return Err(ServiceError::entry_not_found(
                format!("Entry not found: {}", path.as_str()),
                Some(st.commit.clone()),
            )
            .into());
        };
        let ids = self.ids(path.as_str(), f).await?;
        let entry = f.clone();
        let file = tokio::task::spawn_blocking(move || open_checked(&entry))
            .await
            .map_err(|e| ServiceError::internal(format!("open task: {e}")))??;
        let etag = ids
            .lfs
            .as_ref()
            .map_or_else(|| ids.oid.clone(), |l| l.sha256.clone());
        Ok(RepoFile {
            head: FileHead {
                commit: Some(st.commit.clone()),
                size: ids.size,
                etag,
                linked: ids.lfs.as_ref().map(|l| (l.sha256.clone(), l.size)),
                xet_hash: None,
                content_type: content_type(path.as_str(), ids.lfs.is_some()),
                outcome: Outcome::Local,
            },
            body: Arc::new(DiskBody::new(file, f.abs.clone())),
        })
    }

    /// One attempt at a metadata answer.
    async fn meta_once(&self, req: &MetaRequest) -> Result<MetaAnswer, Fail> {
        let Some(repo) = req.route.repo() else {
            return Err(
                ServiceError::internal("route without a repository reached model-bin").into(),
            );
        };
        let st = self.state(repo).await?;
        match &req.route {
            Route::RepoInfo { repo } => self.info(&st, repo, req.flag("blobs")).await,
            Route::RevisionInfo { repo, revision } => {
                st.check_revision(revision)?;
                self.info(&st, repo, req.flag("blobs")).await
            }
            Route::Tree { revision, path, .. } => {
                st.check_revision(revision)?;
                let base = match path {
                    None => String::new(),
                    Some(p) if st.dirs.contains(p.as_str()) => p.as_str().to_string(),
                    Some(p) => {
                        return Err(ServiceError::entry_not_found(
                            format!("Entry not found: {}", p.as_str()),
                            Some(st.commit.clone()),
                        )
                        .into());
                    }
                };
                let recursive = req.flag("recursive");
                let prefix = if base.is_empty() {
                    String::new()
                } else {
                    format!("{base}/")
                };
                let wanted = |p: &&String| {
                    p.starts_with(&prefix) && (recursive || !p[prefix.len()..].contains('/'))
                };
                let mut paths: Vec<String> = st
                    .dirs
                    .iter()
                    .filter(wanted)
                    .chain(st.files.keys().filter(wanted))
                    .cloned()
                    .collect();
                paths.sort();
                let v = self.entries(&st, paths, req.flag("expand")).await?;
                Ok(MetaAnswer::json(&v, Some(st.commit.clone()))?)
            }
            Route::PathsInfo { revision, .. } => {
                st.check_revision(revision)?;
                let (asked, expand) = req
                    .paths
                    .as_ref()
                    .map(|q| (q.paths.clone(), q.expand))
                    .unwrap_or_default();
                let paths: Vec<String> = asked
                    .into_iter()
                    .filter(|p| st.files.contains_key(p) || st.dirs.contains(p))
                    .collect();
                let v = self.entries(&st, paths, expand).await?;
                Ok(MetaAnswer::json(&v, Some(st.commit.clone()))?)
            }
            Route::Refs { .. } => {
                let refs = Refs {
                    branches: vec![RefItem {
                        name: "main".into(),
                        reference: "refs/heads/main".into(),
                        target_commit: st.commit.clone(),
                    }],
                    pull_requests: req.flag("include_prs").then(Vec::new),
                    ..Refs::default()
                };
                Ok(MetaAnswer::json(&refs, None)?)
            }
            Route::Commits { revision, .. } => {
                st.check_revision(revision)?;
                let c = CommitInfo::new(
                    st.commit.clone(),
                    COMMIT_TITLE.into(),
                    String::new(),
                    st.date(),
                    COMMIT_AUTHOR.into(),
                )
                .formatted_if(req.has("expand[]", "formatted"));
                Ok(MetaAnswer::json(&[c], Some(st.commit.clone()))?)
            }
            _ => Err(ServiceError::internal("route without metadata reached model-bin").into()),
        }
    }

    async fn info(&self, st: &RepoState, repo: &RepoRef, blobs: bool) -> Result<MetaAnswer, Fail> {
        // Owned items: a stream of borrowed ones trips the compiler's Send check.
        let files: Vec<(String, FileEntry)> = st
            .files
            .iter()
            .map(|(p, f)| (p.clone(), f.clone()))
            .collect();
        let siblings: Vec<Sibling> = futures::stream::iter(files)
            .map(|(path, f)| async move {
                if !blobs {
                    return Ok::<_, Fail>(Sibling {
                        rfilename: path,
                        blob_id: None,
                        size: None,
                        lfs: None,
                    });
                }
                Ok(Sibling::of(&path, &self.ids(&path, &f).await?, true))
            })
            .buffered(HASH_PARALLELISM)
            .try_collect()
            .await?;
        let date = st.date();
        let info = RepoInfo::local(
            &format!("model-bin/{}", st.id),
            repo,
            &st.commit,
            date.clone(),
            date,
            siblings,
            st.files.values().map(|f| f.stamp.size).sum(),
        );
        Ok(MetaAnswer::json(&info, Some(st.commit.clone()))?)
    }

    /// Tree entries of `paths` (files and directories of `st`), in order.
    async fn entries(
        &self,
        st: &RepoState,
        paths: Vec<String>,
        expand: bool,
    ) -> Result<Vec<TreeEntry>, Fail> {
        let last = expand.then(|| LastCommit {
            id: st.commit.clone(),
            title: COMMIT_TITLE.into(),
            date: st.date(),
        });
        futures::stream::iter(paths)
            .map(|p| {
                let last = last.clone();
                async move {
                    let mut e = match st.files.get(&p) {
                        Some(f) => TreeEntry::file(&p, &self.ids(&p, f).await?),
                        None => TreeEntry::directory(&p, st.dir_oid(&p)),
                    };
                    e.last_commit = last;
                    Ok::<_, Fail>(e)
                }
            })
            .buffered(HASH_PARALLELISM)
            .try_collect()
            .await
    }
}

/// Runs `attempt` until it does not fail with [`Fail::Changed`], a few times.
async fn retry<T, F, Fut>(mut attempt: F) -> Result<T, ServiceError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, Fail>>,
{
    for _ in 0..ATTEMPTS {
        match attempt().await {
            Ok(v) => return Ok(v),
            Err(Fail::Service(e)) => return Err(e),
            Err(Fail::Changed) => continue,
        }
    }
    Err(ServiceError::new(
        ErrorKind::Busy,
        Origin::Internal,
        HubCode::ContentChanging,
        "files of this repo keep changing while being read; retry later",
    ))
}

#[async_trait]
impl RepoSource for DirSource {
    fn name(&self) -> &'static str {
        "dir"
    }

    async fn owns(&self, repo: &RepoRef) -> bool {
        let (root, repo) = (self.root.clone(), repo.clone());
        tokio::task::spawn_blocking(move || repo_dir(&root, &repo).is_some())
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
        retry(|| self.file_once(repo, revision, path)).await
    }

    async fn meta(&self, _cx: &RequestCtx, req: &MetaRequest) -> Result<MetaAnswer, ServiceError> {
        retry(|| self.meta_once(req)).await
    }
}

// ------------------------------------------------------------------------------------------
// Repo listing

/// What identifies one state of a file: a change of any field means "re-hash".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Stamp {
    size: u64,
    mtime_ns: u128,
    ino: u64,
    ctime_ns: i128,
}

impl Stamp {
    fn of(md: &fs::Metadata) -> Self {
        let mtime_ns = md
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        #[cfg(unix)]
        let (ino, ctime_ns) = {
            use std::os::unix::fs::MetadataExt;
            (
                md.ino(),
                i128::from(md.ctime()) * 1_000_000_000 + i128::from(md.ctime_nsec()),
            )
        };
        #[cfg(not(unix))]
        let (ino, ctime_ns) = (0, 0);
        Self {
            size: md.len(),
            mtime_ns,
            ino,
            ctime_ns,
        }
    }
}

/// A file of a repo: its canonical location (under the root) and its state when walked.
#[derive(Debug, Clone)]
struct FileEntry {
    abs: PathBuf,
    stamp: Stamp,
}

/// A repo as walked for one request.
#[derive(Debug)]
struct RepoState {
    id: String,
    /// Relative `/`-separated path → file.
    files: BTreeMap<String, FileEntry>,
    /// Every directory holding at least one listed file (relative, no trailing `/`).
    dirs: BTreeSet<String>,
    commit: String,
    last_modified_ns: u128,
}

fn repo_not_found(id: &str) -> ServiceError {
    ServiceError::repo_not_found(format!("Repository {id} not found"))
}

/// A file or directory name that can be part of a [`RepoPath`] and is not hidden.
fn listable(name: &str) -> bool {
    !name.is_empty() && !name.starts_with('.') && !name.chars().any(|c| c.is_control() || c == '\\')
}

/// The canonical root and the canonical directory of `repo` under it, if it is a model repo
/// there (blocking).
fn repo_dir(root: &Path, repo: &RepoRef) -> Option<(PathBuf, PathBuf)> {
    let (RepoType::Model, Some(org)) = (repo.kind, repo.id.namespace()) else {
        return None;
    };
    let root = fs::canonicalize(root).ok()?;
    // RepoId segments are validated (no `/`, `..`, leading `.`), so this join stays two levels
    // down; the canonical form is checked anyway (the repo dir may be a symlink).
    let dir = fs::canonicalize(root.join(org).join(repo.id.name())).ok()?;
    (dir.starts_with(&root) && dir != root && dir.is_dir()).then_some((root, dir))
}

/// Walks `root/<org>/<name>` (blocking).
fn scan(root: &Path, repo: &RepoRef) -> Result<RepoState, ServiceError> {
    let id = repo.id.as_str();
    let (root, dir) = repo_dir(root, repo).ok_or_else(|| repo_not_found(id))?;
    let mut files = BTreeMap::new();
    // (canonical dir, relative prefix, canonical dirs from the repo root down to it)
    let mut stack = vec![(dir.clone(), String::new(), vec![dir.clone()])];
    while let Some((abs, prefix, chain)) = stack.pop() {
        let rd = match fs::read_dir(&abs) {
            Ok(rd) => rd,
            Err(e) if prefix.is_empty() => {
                return Err(ServiceError::internal(format!("cannot list {id}: {e}")));
            }
            Err(e) => {
                tracing::warn!(repo = id, dir = prefix, error = %e, "model-bin: unreadable directory skipped");
                continue;
            }
        };
        for ent in rd.flatten() {
            let name = ent.file_name();
            let Some(name) = name.to_str().filter(|n| listable(n)) else {
                continue;
            };
            let rel = if prefix.is_empty() {
                name.to_string()
            } else {
                format!("{prefix}/{name}")
            };
            let Ok(ft) = ent.file_type() else { continue };
            let (real, md) = if ft.is_symlink() {
                let Ok(real) = fs::canonicalize(ent.path()) else {
                    continue; // dangling
                };
                if !real.starts_with(&root) {
                    tracing::debug!(
                        repo = id,
                        path = rel,
                        "model-bin: symlink leaving the root refused"
                    );
                    continue;
                }
                match fs::metadata(&real) {
                    Ok(md) => (real, md),
                    Err(_) => continue,
                }
            } else {
                match ent.metadata() {
                    // `abs` is canonical and `name` is no symlink: the joined path is canonical.
                    Ok(md) => (ent.path(), md),
                    Err(_) => continue,
                }
            };
            if md.is_dir() {
                // A directory already on the way down (symlink loop) is not entered again.
                if chain.len() < MAX_DEPTH && !chain.contains(&real) {
                    let mut chain = chain.clone();
                    chain.push(real.clone());
                    stack.push((real, rel, chain));
                }
            } else if md.is_file() && RepoPath::new(&rel).is_ok() {
                if files.len() >= MAX_FILES {
                    return Err(ServiceError::internal(format!(
                        "{id} has more than {MAX_FILES} files"
                    )));
                }
                files.insert(
                    rel,
                    FileEntry {
                        abs: real,
                        stamp: Stamp::of(&md),
                    },
                );
            }
        }
    }
    let mut dirs = BTreeSet::new();
    for path in files.keys() {
        let mut end = 0;
        while let Some(i) = path[end..].find('/') {
            end += i;
            dirs.insert(path[..end].to_string());
            end += 1;
        }
    }
    let mut h = Sha1::new();
    h.update(b"olah model-bin v1\n");
    for (path, f) in &files {
        h.update(format!("{path}\0{}\0{}\n", f.stamp.size, f.stamp.mtime_ns).as_bytes());
    }
    let last_modified_ns = files
        .values()
        .map(|f| f.stamp.mtime_ns)
        .max()
        .or_else(|| fs::metadata(&dir).ok().map(|m| Stamp::of(&m).mtime_ns))
        .unwrap_or(0);
    Ok(RepoState {
        id: id.to_string(),
        files,
        dirs,
        commit: hex::encode(h.finalize()),
        last_modified_ns,
    })
}

impl RepoState {
    fn check_revision(&self, rev: &Revision) -> Result<(), ServiceError> {
        if rev.as_str() == "main" || rev.as_str() == self.commit {
            Ok(())
        } else {
            Err(ServiceError::revision_not_found(format!(
                "Invalid rev id: {}",
                rev.as_str()
            )))
        }
    }

    fn date(&self) -> String {
        iso8601_ms(u64::try_from(self.last_modified_ns / 1_000_000).unwrap_or(u64::MAX))
    }

    /// Files under `dir/` (`dir` empty = the whole repo), in path order.
    fn files_under<'a>(&'a self, dir: &str) -> impl Iterator<Item = (&'a String, &'a FileEntry)> {
        let prefix = if dir.is_empty() {
            String::new()
        } else {
            format!("{dir}/")
        };
        self.files
            .range(prefix.clone()..)
            .take_while(move |(p, _)| p.starts_with(&prefix))
    }

    /// A synthetic tree id: changes whenever a file below the directory changes.
    fn dir_oid(&self, dir: &str) -> String {
        let mut h = Sha1::new();
        h.update(format!("tree {dir}\0").as_bytes());
        for (path, f) in self.files_under(dir) {
            h.update(format!("{path}\0{}\0{}\n", f.stamp.size, f.stamp.mtime_ns).as_bytes());
        }
        hex::encode(h.finalize())
    }
}

fn is_lfs(path: &str, size: u64) -> bool {
    size > LFS_THRESHOLD
        || path
            .rsplit_once('.')
            .map(|(_, ext)| ext.to_ascii_lowercase())
            .is_some_and(|ext| !ext.contains('/') && LFS_EXTENSIONS.contains(&ext.as_str()))
}

// ------------------------------------------------------------------------------------------
// Content hashes

/// Hashes of one file state.
#[derive(Debug, Clone)]
struct FileHash {
    /// Git blob id: of the content, or of the LFS pointer for LFS-class files.
    oid: String,
    /// sha256 of the content, for LFS-class files.
    sha256: Option<String>,
}

/// Why an attempt failed: an answer, or "files changed while read, try again".
#[derive(Debug, Clone)]
enum Fail {
    Service(ServiceError),
    Changed,
}

impl From<ServiceError> for Fail {
    fn from(e: ServiceError) -> Self {
        Self::Service(e)
    }
}

type HashFuture = Shared<BoxFuture<'static, Result<FileHash, Fail>>>;

/// Single-flight, in-memory cache of file hashes, keyed by file state and bounded
/// ([`MAX_HASHES`], moka's eviction). A cached value is the (shared) hashing itself, which runs
/// detached on a blocking thread: a client that goes away does not cancel it, the next one
/// picks up its result — a HEAD of a file of many GB may outlast the client's timeout, its
/// retry must not start over.
struct HashCache {
    map: moka::sync::Cache<(PathBuf, bool, Stamp), HashFuture>,
    /// Hash computations started (observability and tests).
    runs: AtomicU64,
}

impl Default for HashCache {
    fn default() -> Self {
        Self {
            map: moka::sync::Cache::new(MAX_HASHES as u64),
            runs: AtomicU64::new(0),
        }
    }
}

impl HashCache {
    async fn get(&self, f: &FileEntry, lfs: bool) -> Result<FileHash, Fail> {
        let key = (f.abs.clone(), lfs, f.stamp);
        let fut = self.map.get_with(key.clone(), || {
            self.runs.fetch_add(1, Ordering::Relaxed);
            let (abs, stamp) = (f.abs.clone(), f.stamp);
            let task = tokio::task::spawn_blocking(move || hash_file(&abs, stamp, lfs));
            async move {
                task.await.unwrap_or_else(|e| {
                    Err(ServiceError::internal(format!("hash task: {e}")).into())
                })
            }
            .boxed()
            .shared()
        });
        let res = fut.await;
        if res.is_err() {
            // Failures are not remembered.
            self.map.invalidate(&key);
        }
        res
    }
}

/// Hashes a file in chunks (blocking); `Changed` when it is not in state `stamp` throughout.
fn hash_file(abs: &Path, stamp: Stamp, lfs: bool) -> Result<FileHash, Fail> {
    let io_err =
        |e: io::Error| Fail::from(ServiceError::internal(format!("{}: {e}", abs.display())));
    let mut file = fs::File::open(abs).map_err(io_err)?;
    if Stamp::of(&file.metadata().map_err(io_err)?) != stamp {
        return Err(Fail::Changed);
    }
    let mut sha256 = Sha256::new();
    let mut sha1 = Sha1::new();
    if !lfs {
        sha1.update(git_blob_header(stamp.size));
    }
    let mut buf = vec![0u8; CHUNK];
    let mut total = 0u64;
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_err(e)),
        };
        total += n as u64;
        if lfs {
            sha256.update(&buf[..n]);
        } else {
            sha1.update(&buf[..n]);
        }
    }
    if total != stamp.size || Stamp::of(&file.metadata().map_err(io_err)?) != stamp {
        return Err(Fail::Changed);
    }
    Ok(if lfs {
        let sha = hex::encode(sha256.finalize());
        let pointer = LfsPointer {
            sha256: sha.clone(),
            size: stamp.size,
        };
        FileHash {
            oid: super::json::git_blob_oid(pointer.text().as_bytes()),
            sha256: Some(sha),
        }
    } else {
        FileHash {
            oid: hex::encode(sha1.finalize()),
            sha256: None,
        }
    })
}

/// Opens a walked file; `Changed` when it is no longer in its walked state.
fn open_checked(f: &FileEntry) -> Result<fs::File, Fail> {
    let io_err =
        |e: io::Error| Fail::from(ServiceError::internal(format!("{}: {e}", f.abs.display())));
    let file = fs::File::open(&f.abs).map_err(io_err)?;
    if Stamp::of(&file.metadata().map_err(io_err)?) != f.stamp {
        return Err(Fail::Changed);
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha1_matches_known_vectors() {
        let hexsha = |chunks: &[&[u8]]| {
            let mut h = Sha1::new();
            for c in chunks {
                h.update(c);
            }
            hex::encode(h.finalize())
        };
        assert_eq!(hexsha(&[]), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
        assert_eq!(
            hexsha(&[b"abc"]),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        let million = vec![b'a'; 1_000_000];
        let want = "34aa973cd4c4daa4f61eeb2bdbad27316534016f";
        assert_eq!(hexsha(&[&million]), want);
        let pieces: Vec<&[u8]> = million.chunks(37).collect();
        assert_eq!(hexsha(&pieces), want);
    }

    #[test]
    fn lfs_class_by_extension_or_size() {
        assert!(is_lfs("model.safetensors", 10));
        assert!(is_lfs("a/b/W.BIN", 10));
        assert!(is_lfs("x.gguf", 0));
        assert!(!is_lfs("config.json", LFS_THRESHOLD));
        assert!(is_lfs("config.json", LFS_THRESHOLD + 1));
        assert!(!is_lfs("bin", 10));
        assert!(!is_lfs("dir.bin/readme", 10));
    }

    #[test]
    fn hashing_a_file_that_changed_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.txt");
        fs::write(&p, b"hello world\n").unwrap();
        let stamp = Stamp::of(&fs::metadata(&p).unwrap());
        let h = hash_file(&p, stamp, false).unwrap();
        assert_eq!(h.oid, "3b18e512dba79e4c8300dd08aeb37f8e728b8dad");
        fs::write(&p, b"hello world, longer\n").unwrap();
        assert!(matches!(hash_file(&p, stamp, false), Err(Fail::Changed)));
        let f = FileEntry { abs: p, stamp };
        assert!(matches!(open_checked(&f), Err(Fail::Changed)));
    }
}
