//! Fixture repositories: what the fake Hub serves.
//!
//! A [`Fixture`] is a list of [`RepoFixture`]s. Each repository has a linear list of commits
//! (oldest first; the parent of commit `i` is commit `i - 1`), each holding its **full** tree
//! (`path -> FileFixture`), plus refs (branches, tags, `refs/pr/N`, `refs/convert/*`) pointing at
//! commit indices. Builders copy the previous tree so a new commit only states what changes.
//!
//! File content is either literal bytes or a deterministic pseudo-random stream
//! ([`Content::Generated`]) computed on demand from `(seed, offset)` in 64 KiB blocks, so
//! multi-gigabyte files cost no memory. Hashes (sha256, git blob sha1, Xet chunking) are computed
//! once, streaming, and cached (clones of a [`FileFixture`] share the cache).

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use sha1::Digest as _;

/// Repository kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// Model (no URL prefix).
    Model,
    /// Dataset (`datasets/`).
    Dataset,
    /// Space (`spaces/`).
    Space,
    /// Kernel (`kernels/`).
    Kernel,
}

impl Kind {
    /// All kinds.
    pub const ALL: [Kind; 4] = [Kind::Model, Kind::Dataset, Kind::Space, Kind::Kernel];

    /// API plural (`models`, `datasets`, `spaces`, `kernels`).
    pub fn plural(self) -> &'static str {
        match self {
            Kind::Model => "models",
            Kind::Dataset => "datasets",
            Kind::Space => "spaces",
            Kind::Kernel => "kernels",
        }
    }

    /// Prefix of file routes (`""`, `datasets/`, `spaces/`, `kernels/`).
    pub fn prefix(self) -> &'static str {
        match self {
            Kind::Model => "",
            Kind::Dataset => "datasets/",
            Kind::Space => "spaces/",
            Kind::Kernel => "kernels/",
        }
    }

    /// Singular name as `huggingface_hub` spells `repo_type` (`model`, `dataset`, …).
    pub fn singular(self) -> &'static str {
        match self {
            Kind::Model => "model",
            Kind::Dataset => "dataset",
            Kind::Space => "space",
            Kind::Kernel => "kernel",
        }
    }

    /// Kind from its API plural.
    pub fn from_plural(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.plural() == s)
    }
}

/// Who may read a repository.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Visibility {
    /// Everyone.
    #[default]
    Public,
    /// Only these tokens; everyone else is told the repository does not exist.
    Private {
        /// Owner tokens.
        owners: Vec<String>,
    },
    /// Metadata (info, tree, refs, commits) public; files (resolve, Xet token) only for these tokens.
    Gated {
        /// Tokens that were granted access.
        granted: Vec<String>,
    },
}

/// File content: literal bytes, or a deterministic pseudo-random stream (no memory).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// Literal bytes.
    Bytes(Bytes),
    /// Pseudo-random bytes derived from `(seed, offset)`.
    Generated {
        /// Seed.
        seed: u64,
        /// Length in bytes.
        len: u64,
    },
    /// A generated stream with `patch` written over it at offset `at`: a new revision of a large
    /// file that differs in a small region (shares most Xet chunks with the original).
    Patched {
        /// Seed.
        seed: u64,
        /// Length in bytes.
        len: u64,
        /// Offset of the patch.
        at: u64,
        /// Replacement bytes (clipped to `len`).
        patch: Bytes,
    },
}

/// Size of the generator's blocks (and of the pieces bodies are streamed in).
pub const GEN_BLOCK: u64 = 64 * 1024;

/// Bytes `[block * GEN_BLOCK, … + len)` of the stream of `seed`.
fn gen_block(seed: u64, block: u64, len: usize) -> Vec<u8> {
    // splitmix64 of (seed, block) seeds a xorshift64 generator for the block.
    let mut z = seed
        .wrapping_add(block.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .wrapping_add(0xD1B5_4A32_D192_ED03);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    let mut x = (z ^ (z >> 31)) | 1;
    let mut out = vec![0u8; len];
    for word in out.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        word.copy_from_slice(&x.to_le_bytes()[..word.len()]);
    }
    out
}

impl Content {
    /// Literal UTF-8 text.
    pub fn text(s: &str) -> Self {
        Content::Bytes(Bytes::copy_from_slice(s.as_bytes()))
    }

    /// Length in bytes.
    pub fn len(&self) -> u64 {
        match self {
            Content::Bytes(b) => b.len() as u64,
            Content::Generated { len, .. } | Content::Patched { len, .. } => *len,
        }
    }

    /// Whether the content is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes `start..end` (exclusive, clipped to the length) as pieces of at most 64 KiB,
    /// computed lazily: iterating a 10 GiB range holds one piece at a time.
    pub fn pieces(&self, start: u64, end: u64) -> impl Iterator<Item = Bytes> + Send + 'static {
        let this = self.clone();
        let end = end.min(self.len());
        let mut pos = start;
        std::iter::from_fn(move || {
            if pos >= end {
                return None;
            }
            let piece = match &this {
                Content::Bytes(b) => b.slice(pos as usize..end.min(pos + GEN_BLOCK) as usize),
                Content::Generated { seed, .. } | Content::Patched { seed, .. } => {
                    let block = pos / GEN_BLOCK;
                    let bstart = block * GEN_BLOCK;
                    let bend = (bstart + GEN_BLOCK).min(end);
                    let mut data = gen_block(*seed, block, (bend - bstart) as usize);
                    if let Content::Patched { at, patch, .. } = &this {
                        let (ps, pe) = (*at, at.saturating_add(patch.len() as u64));
                        let (s, e) = (ps.max(bstart), pe.min(bend));
                        if s < e {
                            data[(s - bstart) as usize..(e - bstart) as usize]
                                .copy_from_slice(&patch[(s - ps) as usize..(e - ps) as usize]);
                        }
                    }
                    Bytes::from(data).slice((pos - bstart) as usize..)
                }
            };
            pos += piece.len() as u64;
            Some(piece)
        })
    }

    /// Bytes `start..end` in one buffer (meant for small ranges).
    pub fn read_range(&self, start: u64, end: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(end.saturating_sub(start).min(1 << 30) as usize);
        for p in self.pieces(start, end) {
            out.extend_from_slice(&p);
        }
        out
    }

    /// All bytes in one buffer (meant for small contents).
    pub fn to_vec(&self) -> Vec<u8> {
        self.read_range(0, self.len())
    }

    /// A cheap identity of the content (no hashing of generated streams): used to derive
    /// commit ids deterministically.
    fn identity(&self) -> String {
        match self {
            Content::Bytes(b) => format!("bytes:{}", git_blob_sha1(b)),
            Content::Generated { seed, len } => format!("gen:{seed}:{len}"),
            Content::Patched {
                seed,
                len,
                at,
                patch,
            } => format!("patch:{seed}:{len}:{at}:{}", git_blob_sha1(patch)),
        }
    }
}

impl From<&str> for Content {
    fn from(s: &str) -> Self {
        Content::text(s)
    }
}

impl From<Bytes> for Content {
    fn from(b: Bytes) -> Self {
        Content::Bytes(b)
    }
}

impl From<Vec<u8>> for Content {
    fn from(b: Vec<u8>) -> Self {
        Content::Bytes(Bytes::from(b))
    }
}

#[derive(Debug, Default)]
struct HashCache {
    sha256: OnceLock<String>,
    git_sha1: OnceLock<String>,
    xet_chunks: OnceLock<Vec<(olah_xet::XetHash, u64)>>,
}

/// One file of a commit.
///
/// `lfs` files are answered on `/resolve` with a 302 to the CDN and listed with an `lfs` block;
/// `xet` files are LFS files that also carry a Xet hash (`xetHash`, `X-Xet-Hash`) and are served
/// by the fake CAS.
#[derive(Debug, Clone)]
pub struct FileFixture {
    content: Content,
    /// Stored in LFS: `/resolve` answers 302 to the CDN, `oid` is the pointer's git sha1.
    pub lfs: bool,
    /// Xet-backed (implies `lfs`): `xetHash` in listings, Xet headers on `/resolve`.
    pub xet: bool,
    cache: Arc<HashCache>,
}

/// Files larger than this are LFS by default.
pub const LFS_THRESHOLD: u64 = 10 << 20;

impl FileFixture {
    /// A file with the default LFS rule: LFS when larger than 10 MiB or when the path ends in
    /// `.bin`, `.safetensors` or `.gguf`. Not Xet.
    pub fn new(path: &str, content: impl Into<Content>) -> Self {
        let content = content.into();
        let lfs = content.len() > LFS_THRESHOLD
            || [".bin", ".safetensors", ".gguf"]
                .iter()
                .any(|e| path.ends_with(e));
        Self {
            content,
            lfs,
            xet: false,
            cache: Arc::default(),
        }
    }

    /// A text file (default LFS rule).
    pub fn text(path: &str, s: &str) -> Self {
        Self::new(path, Content::text(s))
    }

    /// A generated file of `len` bytes (default LFS rule).
    pub fn generated(path: &str, seed: u64, len: u64) -> Self {
        Self::new(path, Content::Generated { seed, len })
    }

    /// Forces LFS on or off (turning LFS off also turns Xet off).
    pub fn with_lfs(mut self, lfs: bool) -> Self {
        self.lfs = lfs;
        self.xet &= lfs;
        self
    }

    /// Marks the file Xet-backed (implies LFS).
    pub fn xet(mut self) -> Self {
        self.xet = true;
        self.lfs = true;
        self
    }

    /// The content.
    pub fn content(&self) -> &Content {
        &self.content
    }

    /// Size in bytes.
    pub fn size(&self) -> u64 {
        self.content.len()
    }

    /// sha256 (hex) of the content, computed once, streaming.
    pub fn sha256(&self) -> &str {
        self.cache.sha256.get_or_init(|| {
            let mut s = sha2::Sha256::new();
            for p in self.content.pieces(0, self.size()) {
                s.update(&p);
            }
            hex::encode(s.finalize())
        })
    }

    /// Git blob sha1 of the content itself (`sha1("blob {len}\0" + content)`), computed once.
    pub fn git_sha1(&self) -> &str {
        self.cache.git_sha1.get_or_init(|| {
            let mut g = sha1::Sha1::new();
            g.update(format!("blob {}\0", self.size()).as_bytes());
            for p in self.content.pieces(0, self.size()) {
                g.update(&p);
            }
            hex::encode(g.finalize())
        })
    }

    /// The git-lfs pointer text of this file.
    pub fn pointer_text(&self) -> String {
        lfs_pointer_text(self.sha256(), self.size())
    }

    /// Length of the pointer text (`pointerSize`).
    pub fn pointer_size(&self) -> u64 {
        self.pointer_text().len() as u64
    }

    /// The git oid the Hub reports (tree `oid`, sibling `blobId`, `ETag` on `/resolve`): the blob
    /// sha1 of the content, or of the LFS pointer for LFS files.
    pub fn oid(&self) -> String {
        if self.lfs {
            git_blob_sha1(self.pointer_text().as_bytes())
        } else {
            self.git_sha1().to_string()
        }
    }

    /// The etag `huggingface_hub` keys its cache with: sha256 for LFS files (`X-Linked-Etag`),
    /// the git oid otherwise (`ETag`).
    pub fn etag(&self) -> String {
        if self.lfs {
            self.sha256().to_string()
        } else {
            self.oid()
        }
    }

    /// The Xet chunks of the content `(chunk hash, length)`, computed once, streaming.
    pub fn xet_chunks(&self) -> &[(olah_xet::XetHash, u64)] {
        self.cache.xet_chunks.get_or_init(|| {
            let mut ck = olah_xet::Chunker::default();
            let mut out = Vec::new();
            let mut add = |chunks: Vec<Vec<u8>>| {
                for c in chunks {
                    out.push((olah_xet::chunk_hash(&c), c.len() as u64));
                }
            };
            for p in self.content.pieces(0, self.size()) {
                add(ck.push(&p));
            }
            add(ck.finish());
            out
        })
    }

    /// The Xet file hash (64 hex, string form) of the content, as hf_xet computes it.
    pub fn xet_hash(&self) -> String {
        olah_xet::file_hash(self.xet_chunks()).to_hex()
    }

    /// The Xet hash when the file is Xet-backed.
    pub fn xet_hash_opt(&self) -> Option<String> {
        self.xet.then(|| self.xet_hash())
    }

    /// Same content and flags (cheap when `other` is a clone of `self`).
    pub fn same_as(&self, other: &FileFixture) -> bool {
        self.lfs == other.lfs
            && self.xet == other.xet
            && (Arc::ptr_eq(&self.cache, &other.cache) || self.content == other.content)
    }

    /// Computes every hash the server will need (sha256; git sha1 of non-LFS files; Xet chunks).
    pub fn warm(&self) {
        self.sha256();
        if !self.lfs {
            self.git_sha1();
        }
        if self.xet {
            self.xet_chunks();
        }
    }
}

/// `sha1("blob {len}\0" + data)` as hex: the git blob id of `data`.
pub fn git_blob_sha1(data: &[u8]) -> String {
    let mut g = sha1::Sha1::new();
    g.update(format!("blob {}\0", data.len()).as_bytes());
    g.update(data);
    hex::encode(g.finalize())
}

/// The git-lfs pointer text of a file.
pub fn lfs_pointer_text(sha256: &str, size: u64) -> String {
    format!("version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n")
}

/// `YYYY-MM-DDTHH:MM:SS.000Z` of a unix time (the Hub's date format).
pub fn iso_date(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let secs = unix % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.000Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Date of the first commit of every fixture repository (2025-01-01); later commits are a day apart.
pub const EPOCH: u64 = 1_735_689_600;

/// One commit: the full tree.
#[derive(Debug, Clone)]
pub struct CommitFixture {
    /// 40-hex id, derived deterministically from the repo, parent, title, date and tree.
    pub sha: String,
    /// Title (first line of the message).
    pub title: String,
    /// `YYYY-MM-DDTHH:MM:SS.000Z`.
    pub date: String,
    /// Every file of the tree, by path.
    pub files: BTreeMap<String, FileFixture>,
}

/// A repository.
#[derive(Debug, Clone)]
pub struct RepoFixture {
    /// Kind.
    pub kind: Kind,
    /// `ns/name`, or a legacy `name` without namespace.
    pub id: String,
    /// Who may read it.
    pub visibility: Visibility,
    /// Commits, oldest first; commit `i`'s parent is `i - 1`.
    pub commits: Vec<CommitFixture>,
    /// Branch name (`main`) → commit index.
    pub branches: BTreeMap<String, usize>,
    /// Tag name (`v1.0`) → commit index.
    pub tags: BTreeMap<String, usize>,
    /// Pull requests: `(N, commit index)`, served as `refs/pr/N`.
    pub prs: Vec<(u32, usize)>,
    /// Conversion refs: name (`parquet`) → commit index, served as `refs/convert/{name}`.
    pub converts: BTreeMap<String, usize>,
}

impl RepoFixture {
    /// An empty public repository (no commits yet; add some with [`RepoFixture::commit`]).
    pub fn new(kind: Kind, id: &str) -> Self {
        Self {
            kind,
            id: id.into(),
            visibility: Visibility::Public,
            commits: Vec::new(),
            branches: BTreeMap::new(),
            tags: BTreeMap::new(),
            prs: Vec::new(),
            converts: BTreeMap::new(),
        }
    }

    /// A public repository with one commit (`initial commit`) on `main` holding `files`.
    pub fn with_files(kind: Kind, id: &str, files: Vec<(&str, FileFixture)>) -> Self {
        let mut r = Self::new(kind, id);
        r.commit("initial commit", files, &[]);
        r
    }

    /// Sets the visibility (builder style).
    pub fn visibility(mut self, v: Visibility) -> Self {
        self.visibility = v;
        self
    }

    /// Adds a commit whose tree is the previous commit's with `put` added/replaced and `delete`
    /// removed, and moves `main` to it. Returns the commit index.
    pub fn commit<P: Into<String>>(
        &mut self,
        title: &str,
        put: impl IntoIterator<Item = (P, FileFixture)>,
        delete: &[&str],
    ) -> usize {
        let i = self.commit_detached(title, put, delete);
        self.branches.insert("main".into(), i);
        i
    }

    /// Like [`RepoFixture::commit`] but moves no ref (for PR or side commits).
    pub fn commit_detached<P: Into<String>>(
        &mut self,
        title: &str,
        put: impl IntoIterator<Item = (P, FileFixture)>,
        delete: &[&str],
    ) -> usize {
        let mut files = self
            .commits
            .last()
            .map(|c| c.files.clone())
            .unwrap_or_default();
        for d in delete {
            files.remove(*d);
        }
        files.extend(put.into_iter().map(|(p, f)| (p.into(), f)));
        self.commit_tree(title, files)
    }

    /// Adds a commit with exactly this tree (nothing copied from the parent) and moves no ref.
    pub fn commit_tree(&mut self, title: &str, files: BTreeMap<String, FileFixture>) -> usize {
        let idx = self.commits.len();
        let date = iso_date(EPOCH + idx as u64 * 86_400);
        let mut h = sha1::Sha1::new();
        h.update(b"olah-testkit commit\0");
        h.update(self.kind.plural().as_bytes());
        h.update(b"\0");
        h.update(self.id.as_bytes());
        h.update(b"\0");
        if let Some(parent) = self.commits.last() {
            h.update(parent.sha.as_bytes());
        }
        h.update(b"\0");
        h.update(title.as_bytes());
        h.update(b"\0");
        h.update(date.as_bytes());
        for (p, f) in &files {
            h.update(format!("\0{p}\0{}\0{}{}", f.content.identity(), f.lfs, f.xet).as_bytes());
        }
        self.commits.push(CommitFixture {
            sha: hex::encode(h.finalize()),
            title: title.into(),
            date,
            files,
        });
        idx
    }

    /// Points branch `name` at commit `idx`.
    pub fn set_branch(&mut self, name: &str, idx: usize) -> &mut Self {
        self.branches.insert(name.into(), idx);
        self
    }

    /// Points tag `name` at commit `idx`.
    pub fn set_tag(&mut self, name: &str, idx: usize) -> &mut Self {
        self.tags.insert(name.into(), idx);
        self
    }

    /// Adds pull request `refs/pr/{n}` at commit `idx`.
    pub fn add_pr(&mut self, n: u32, idx: usize) -> &mut Self {
        self.prs.retain(|(m, _)| *m != n);
        self.prs.push((n, idx));
        self
    }

    /// Points `refs/convert/{name}` at commit `idx`.
    pub fn set_convert(&mut self, name: &str, idx: usize) -> &mut Self {
        self.converts.insert(name.into(), idx);
        self
    }

    /// Every ref as `(full ref name, commit index)`: `refs/heads/*`, `refs/tags/*`, `refs/pr/*`,
    /// `refs/convert/*`.
    pub fn refs(&self) -> Vec<(String, usize)> {
        let mut out = Vec::new();
        out.extend(
            self.branches
                .iter()
                .map(|(n, i)| (format!("refs/heads/{n}"), *i)),
        );
        out.extend(
            self.tags
                .iter()
                .map(|(n, i)| (format!("refs/tags/{n}"), *i)),
        );
        out.extend(self.prs.iter().map(|(n, i)| (format!("refs/pr/{n}"), *i)));
        out.extend(
            self.converts
                .iter()
                .map(|(n, i)| (format!("refs/convert/{n}"), *i)),
        );
        out
    }

    /// The commit index a revision names: a branch or tag name, a full ref (`refs/heads/x`,
    /// `refs/tags/x`, `refs/pr/N`, `refs/convert/x`), a full commit sha, or a unique prefix of
    /// at least 7 hex digits.
    pub fn resolve_index(&self, rev: &str) -> Option<usize> {
        if rev == "HEAD" {
            return Some(self.main_index());
        }
        if let Some(i) = self.branches.get(rev).or_else(|| self.tags.get(rev)) {
            return Some(*i);
        }
        if let Some(b) = rev.strip_prefix("refs/heads/") {
            return self.branches.get(b).copied();
        }
        if let Some(t) = rev.strip_prefix("refs/tags/") {
            return self.tags.get(t).copied();
        }
        if let Some(n) = rev.strip_prefix("refs/pr/") {
            let n: u32 = n.parse().ok()?;
            return self.prs.iter().find(|(m, _)| *m == n).map(|(_, i)| *i);
        }
        if let Some(c) = rev.strip_prefix("refs/convert/") {
            return self.converts.get(c).copied();
        }
        if (7..=40).contains(&rev.len()) && rev.bytes().all(|b| b.is_ascii_hexdigit()) {
            let rev = rev.to_ascii_lowercase();
            let mut hits = self
                .commits
                .iter()
                .enumerate()
                .filter(|(_, c)| c.sha.starts_with(&rev));
            let first = hits.next()?;
            return hits.next().is_none().then_some(first.0);
        }
        None
    }

    /// The commit a revision names (see [`RepoFixture::resolve_index`]).
    pub fn resolve(&self, rev: &str) -> Option<&CommitFixture> {
        self.resolve_index(rev).and_then(|i| self.commits.get(i))
    }

    /// Index of the default branch's commit (`main`, else the first branch).
    pub fn main_index(&self) -> usize {
        self.branches
            .get("main")
            .or_else(|| self.branches.values().next())
            .copied()
            .unwrap_or(0)
    }

    /// The default branch's commit.
    pub fn main(&self) -> &CommitFixture {
        &self.commits[self.main_index()]
    }

    /// A file at a revision.
    pub fn file(&self, rev: &str, path: &str) -> Option<&FileFixture> {
        self.resolve(rev)?.files.get(path)
    }

    /// The newest commit in the history of `idx` (itself or an ancestor) that changed `path`
    /// (a file, or anything under a directory).
    pub fn last_commit_touching(&self, idx: usize, path: &str) -> usize {
        let dir_prefix = format!("{path}/");
        fn view<'c>(
            c: &'c CommitFixture,
            path: &str,
            dir_prefix: &str,
        ) -> Vec<(&'c String, &'c FileFixture)> {
            c.files
                .iter()
                .filter(|(p, _)| path.is_empty() || *p == path || p.starts_with(dir_prefix))
                .collect()
        }
        let same = |a: &[(&String, &FileFixture)], b: &[(&String, &FileFixture)]| {
            a.len() == b.len()
                && a.iter()
                    .zip(b)
                    .all(|((pa, fa), (pb, fb))| pa == pb && fa.same_as(fb))
        };
        let mut cur = view(&self.commits[idx], path, &dir_prefix);
        for i in (1..=idx).rev() {
            let prev = view(&self.commits[i - 1], path, &dir_prefix);
            if !same(&prev, &cur) {
                return i;
            }
            cur = prev;
        }
        0
    }

    /// Checks that every ref points at an existing commit.
    pub fn validate(&self) -> Result<(), String> {
        if self.commits.is_empty() {
            return Err(format!("repo {}: no commits", self.id));
        }
        for (name, i) in self.refs() {
            if i >= self.commits.len() {
                return Err(format!(
                    "repo {}: {name} points at commit {i} of {}",
                    self.id,
                    self.commits.len()
                ));
            }
        }
        Ok(())
    }
}

/// A Storage Bucket (PROTOCOL-2.md A): Xet files by path, no revisions. Paths can be
/// overwritten at run time through the admin API (`POST /__admin/bucket-overwrite`) with one of
/// the [`BucketFixture::spares`].
#[derive(Debug, Clone)]
pub struct BucketFixture {
    /// `ns/name`.
    pub id: String,
    /// `Some(tokens)`: private, visible to these tokens only (others get `RepoNotFound`).
    pub owners: Option<Vec<String>>,
    /// The files (each made Xet-backed).
    pub files: BTreeMap<String, FileFixture>,
    /// Contents an admin call can put at a path: in the CAS from the start, listed nowhere.
    pub spares: Vec<FileFixture>,
}

impl BucketFixture {
    /// A public bucket with these files (made Xet-backed).
    pub fn new(id: &str, files: Vec<(&str, FileFixture)>) -> Self {
        Self {
            id: id.to_string(),
            owners: None,
            files: files
                .into_iter()
                .map(|(p, f)| (p.to_string(), f.xet()))
                .collect(),
            spares: Vec::new(),
        }
    }

    /// Makes the bucket private to these tokens.
    pub fn private(mut self, owners: &[&str]) -> Self {
        self.owners = Some(owners.iter().map(|s| s.to_string()).collect());
        self
    }

    /// Adds spare contents (made Xet-backed).
    pub fn with_spares(mut self, spares: Vec<FileFixture>) -> Self {
        self.spares = spares.into_iter().map(FileFixture::xet).collect();
        self
    }
}

/// Everything the fake Hub serves.
#[derive(Debug, Clone)]
pub struct Fixture {
    /// Repositories.
    pub repos: Vec<RepoFixture>,
    /// Storage Buckets.
    pub buckets: Vec<BucketFixture>,
    /// Valid tokens (`Authorization: Bearer <token>`); any other token is refused with 401.
    pub tokens: Vec<String>,
    /// Tree listing page size (default 1000; listings with `expand=true` use at most 50).
    pub tree_page_size: usize,
}

impl Default for Fixture {
    fn default() -> Self {
        Self {
            repos: Vec::new(),
            buckets: Vec::new(),
            tokens: Vec::new(),
            tree_page_size: 1000,
        }
    }
}

impl Fixture {
    /// A fixture with these repos and tokens and the default page size.
    pub fn new(repos: Vec<RepoFixture>, tokens: Vec<&str>) -> Self {
        Self {
            repos,
            tokens: tokens.into_iter().map(String::from).collect(),
            ..Self::default()
        }
    }

    /// Finds a repo.
    pub fn repo(&self, kind: Kind, id: &str) -> Option<&RepoFixture> {
        self.repos.iter().find(|r| r.kind == kind && r.id == id)
    }

    /// A file of a repo at a revision.
    pub fn file(&self, kind: Kind, id: &str, rev: &str, path: &str) -> Option<&FileFixture> {
        self.repo(kind, id)?.file(rev, path)
    }

    /// Every distinct file of every commit (by content identity), e.g. to warm hashes.
    pub fn all_files(&self) -> Vec<&FileFixture> {
        let mut seen = std::collections::HashSet::new();
        self.repos
            .iter()
            .flat_map(|r| r.commits.iter())
            .flat_map(|c| c.files.values())
            .chain(
                self.buckets
                    .iter()
                    .flat_map(|b| b.files.values().chain(b.spares.iter())),
            )
            .filter(|f| seen.insert(Arc::as_ptr(&f.cache)))
            .collect()
    }

    /// Finds a bucket.
    pub fn bucket(&self, id: &str) -> Option<&BucketFixture> {
        self.buckets.iter().find(|b| b.id == id)
    }

    /// Checks refs and ids.
    pub fn validate(&self) -> Result<(), String> {
        for (i, r) in self.repos.iter().enumerate() {
            r.validate()?;
            if r.id.is_empty() || r.id.split('/').count() > 2 || r.id.split('/').any(str::is_empty)
            {
                return Err(format!("bad repo id {:?}", r.id));
            }
            if self.repos[..i]
                .iter()
                .any(|o| o.kind == r.kind && o.id == r.id)
            {
                return Err(format!("duplicate repo {}/{}", r.kind.plural(), r.id));
            }
        }
        Ok(())
    }

    /// Computes every file hash the servers need (streaming, once), using up to `threads`
    /// threads.
    pub fn warm(&self, threads: usize) {
        let files = self.all_files();
        let next = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..threads.max(1) {
                s.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(f) = files.get(i) else { break };
                        f.warm();
                    }
                });
            }
        });
    }

    /// Expected metadata of every file at every ref and every commit, keyed
    /// `"{plural}/{id}@{rev}:{path}"` where `rev` is a branch or tag short name (`main`,
    /// `v1.0`), a full ref for PRs and conversions (`refs/pr/1`, `refs/convert/parquet`), or a
    /// 40-hex commit sha. Values: `{"sha256", "size", "oid", "etag", "lfs", "xet", "xetHash",
    /// "commit"}`.
    pub fn manifest(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut out = serde_json::Map::new();
        // Buckets: `buckets/{id}:{path}` for files, `buckets/{id}#spare{i}` for spares.
        for b in &self.buckets {
            let entry = |f: &FileFixture| serde_json::json!({"sha256": f.sha256(), "size": f.size(), "xetHash": f.xet_hash()});
            for (p, f) in &b.files {
                out.insert(format!("buckets/{}:{p}", b.id), entry(f));
            }
            for (i, f) in b.spares.iter().enumerate() {
                out.insert(format!("buckets/{}#spare{i}", b.id), entry(f));
            }
        }
        for r in &self.repos {
            let mut revs: Vec<(String, usize)> = Vec::new();
            revs.extend(r.branches.iter().map(|(n, i)| (n.clone(), *i)));
            revs.extend(r.tags.iter().map(|(n, i)| (n.clone(), *i)));
            revs.extend(r.prs.iter().map(|(n, i)| (format!("refs/pr/{n}"), *i)));
            revs.extend(
                r.converts
                    .iter()
                    .map(|(n, i)| (format!("refs/convert/{n}"), *i)),
            );
            revs.extend(
                r.commits
                    .iter()
                    .enumerate()
                    .map(|(i, c)| (c.sha.clone(), i)),
            );
            for (rev, i) in revs {
                let c = &r.commits[i];
                for (p, f) in &c.files {
                    out.insert(
                        format!("{}/{}@{rev}:{p}", r.kind.plural(), r.id),
                        serde_json::json!({
                            "sha256": f.sha256(),
                            "size": f.size(),
                            "oid": f.oid(),
                            "etag": f.etag(),
                            "lfs": f.lfs,
                            "xet": f.xet,
                            "xetHash": f.xet_hash_opt(),
                            "commit": c.sha,
                        }),
                    );
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_blob_sha1_matches_git() {
        assert_eq!(
            git_blob_sha1(b""),
            "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"
        );
        assert_eq!(
            git_blob_sha1(b"hello\n"),
            "ce013625030ba8dba906f756967f9e9ca394464a"
        );
        let f = FileFixture::text("hello.txt", "hello\n");
        assert!(!f.lfs);
        assert_eq!(f.oid(), "ce013625030ba8dba906f756967f9e9ca394464a");
        assert_eq!(f.etag(), f.oid());
    }

    #[test]
    fn lfs_pointer_and_oid() {
        let f = FileFixture::generated("w.bin", 7, 1000);
        assert!(f.lfs, ".bin is LFS");
        let ptr = f.pointer_text();
        assert!(ptr.starts_with("version https://git-lfs.github.com/spec/v1\noid sha256:"));
        assert!(ptr.ends_with("\nsize 1000\n"));
        assert_eq!(f.oid(), git_blob_sha1(ptr.as_bytes()));
        assert_eq!(f.etag(), f.sha256());
        assert_eq!(f.sha256().len(), 64);
        let plain = FileFixture::generated("w.dat", 7, 1000);
        assert!(!plain.lfs);
        assert_ne!(plain.oid(), f.oid());
        assert!(FileFixture::generated("big.dat", 1, LFS_THRESHOLD + 1).lfs);
        assert!(FileFixture::text("m.gguf", "x").lfs);
        let x = FileFixture::text("a.txt", "x").xet();
        assert!(x.lfs && x.xet && x.xet_hash().len() == 64);
    }

    #[test]
    fn generated_content_is_deterministic_and_sliceable() {
        let c = Content::Generated {
            seed: 42,
            len: 300_000,
        };
        let all = c.to_vec();
        assert_eq!(all.len(), 300_000);
        assert_eq!(all, c.to_vec());
        assert_eq!(c.read_range(65_530, 131_080), all[65_530..131_080]);
        assert!(c.pieces(0, 300_000).all(|p| p.len() as u64 <= GEN_BLOCK));
        let other = Content::Generated {
            seed: 43,
            len: 300_000,
        };
        assert_ne!(other.to_vec(), all);
        // Not trivially repetitive: blocks differ.
        assert_ne!(
            all[..1024],
            all[GEN_BLOCK as usize..GEN_BLOCK as usize + 1024]
        );
        let p = Content::Patched {
            seed: 42,
            len: 300_000,
            at: 65_530,
            patch: Bytes::from_static(b"0123456789abcdef"),
        };
        let pv = p.to_vec();
        assert_eq!(&pv[65_530..65_546], b"0123456789abcdef");
        assert_eq!(pv[..65_530], all[..65_530]);
        assert_eq!(pv[65_546..], all[65_546..]);
    }

    #[test]
    fn sha256_is_streamed_and_cached() {
        let f = FileFixture::generated("x.bin", 3, 200_000);
        use sha2::Digest;
        let want = hex::encode(sha2::Sha256::digest(f.content().to_vec()));
        assert_eq!(f.sha256(), want);
        let g = f.clone();
        assert!(
            std::ptr::eq(f.sha256(), g.sha256()),
            "clones share the cache"
        );
    }

    #[test]
    fn revisions_resolve() {
        let mut r = RepoFixture::with_files(
            Kind::Model,
            "a/b",
            vec![("x.txt", FileFixture::text("x.txt", "1"))],
        );
        let c1 = r.commit("two", vec![("x.txt", FileFixture::text("x.txt", "2"))], &[]);
        let c2 = r.commit_detached("pr", vec![("y.txt", FileFixture::text("y.txt", "y"))], &[]);
        r.set_tag("v1", 0).add_pr(1, c2).set_branch("dev", 0);
        r.set_convert("parquet", c1);
        assert_eq!(r.resolve_index("main"), Some(c1));
        assert_eq!(r.resolve_index("refs/heads/main"), Some(c1));
        assert_eq!(r.resolve_index("v1"), Some(0));
        assert_eq!(r.resolve_index("refs/tags/v1"), Some(0));
        assert_eq!(r.resolve_index("refs/pr/1"), Some(c2));
        assert_eq!(r.resolve_index("refs/pr/2"), None);
        assert_eq!(r.resolve_index("refs/convert/parquet"), Some(c1));
        let sha = r.commits[c2].sha.clone();
        assert_eq!(r.resolve_index(&sha), Some(c2));
        assert_eq!(r.resolve_index(&sha[..7]), Some(c2));
        assert_eq!(r.resolve_index(&sha[..7].to_uppercase()), Some(c2));
        assert_eq!(r.resolve_index(&sha[..6]), None, "short shas need 7 digits");
        assert_eq!(r.resolve_index("nope"), None);
        assert!(
            r.commits[c2].files.contains_key("x.txt"),
            "trees are copied"
        );
        assert_eq!(r.last_commit_touching(c2, "x.txt"), c1);
        assert_eq!(r.last_commit_touching(c2, "y.txt"), c2);
        assert_eq!(r.last_commit_touching(c1, ""), c1);
        // Distinct, deterministic commit ids.
        let mut again = RepoFixture::with_files(
            Kind::Model,
            "a/b",
            vec![("x.txt", FileFixture::text("x.txt", "1"))],
        );
        again.commit("two", vec![("x.txt", FileFixture::text("x.txt", "2"))], &[]);
        assert_eq!(again.commits[1].sha, r.commits[1].sha);
        assert_ne!(r.commits[0].sha, r.commits[1].sha);
        assert!(r.validate().is_ok());
        r.set_tag("broken", 99);
        assert!(r.validate().is_err());
    }

    #[test]
    fn dates() {
        assert_eq!(iso_date(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso_date(EPOCH), "2025-01-01T00:00:00.000Z");
        assert_eq!(iso_date(951_782_400 + 3661), "2000-02-29T01:01:01.000Z");
    }
}
