//! Fixture repositories: what the fake Hub serves.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use bytes::Bytes;
use sha1::Digest as _;

/// Repository kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Model (no URL prefix).
    Model,
    /// Dataset.
    Dataset,
    /// Space.
    Space,
}

impl Kind {
    /// API plural.
    pub fn plural(self) -> &'static str {
        match self {
            Kind::Model => "models",
            Kind::Dataset => "datasets",
            Kind::Space => "spaces",
        }
    }

    /// URL prefix of file routes.
    pub fn prefix(self) -> &'static str {
        match self {
            Kind::Model => "",
            Kind::Dataset => "datasets/",
            Kind::Space => "spaces/",
        }
    }
}

/// Who may read a repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Visibility {
    /// Everyone.
    Public,
    /// Only these tokens; everyone else sees "not found".
    Private(Vec<String>),
    /// Metadata public; files only for these tokens.
    Gated(Vec<String>),
}

/// File content: literal bytes, or a deterministic pseudo-random stream (no memory).
#[derive(Debug, Clone)]
pub enum Content {
    /// Literal.
    Bytes(Bytes),
    /// Generated from a seed.
    Generated {
        /// Seed.
        seed: u64,
        /// Length.
        len: u64,
    },
    /// Generated from a seed, with `patch` written over it at offset `at` (a new revision of a
    /// large file that differs in a small region).
    Patched {
        /// Seed.
        seed: u64,
        /// Length.
        len: u64,
        /// Offset of the patch.
        at: u64,
        /// Replacement bytes.
        patch: Bytes,
    },
}

const GEN_BLOCK: u64 = 64 * 1024;

/// Bytes `[block*64KiB, …)` of a generated stream.
fn gen_block(seed: u64, block: u64, len: usize) -> Vec<u8> {
    let mut x = seed ^ block.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

impl Content {
    /// Length in bytes.
    pub fn len(&self) -> u64 {
        match self {
            Content::Bytes(b) => b.len() as u64,
            Content::Generated { len, .. } | Content::Patched { len, .. } => *len,
        }
    }

    /// Whether empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes `start..end` (exclusive) as a sequence of pieces of at most 64 KiB.
    pub fn pieces(&self, start: u64, end: u64) -> impl Iterator<Item = Bytes> + Send + 'static {
        let this = self.clone();
        let mut pos = start;
        std::iter::from_fn(move || {
            if pos >= end {
                return None;
            }
            let piece = match &this {
                Content::Bytes(b) => {
                    let e = end.min(pos + GEN_BLOCK);
                    b.slice(pos as usize..e as usize)
                }
                Content::Generated { seed, .. } | Content::Patched { seed, .. } => {
                    let block = pos / GEN_BLOCK;
                    let bstart = block * GEN_BLOCK;
                    let bend = (bstart + GEN_BLOCK).min(end);
                    let mut data = gen_block(*seed, block, (bend - bstart) as usize);
                    if let Content::Patched { at, patch, .. } = &this {
                        let (ps, pe) = (*at, *at + patch.len() as u64);
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

    /// All bytes (tests only; small contents).
    pub fn to_vec(&self) -> Vec<u8> {
        self.pieces(0, self.len())
            .flat_map(|b| b.to_vec())
            .collect()
    }
}

/// One file of a commit.
#[derive(Debug, Clone)]
pub struct FileFixture {
    /// Content.
    pub content: Content,
    /// Stored in LFS (served through the CDN with a 302).
    pub lfs: bool,
    /// Also announced as Xet-backed (`xetHash`, `X-Xet-Hash`).
    pub xet: bool,
    hashes: std::sync::Arc<OnceLock<(String, String)>>,
    xet_chunks: std::sync::Arc<OnceLock<Vec<(olah_xet::XetHash, u64)>>>,
}

impl FileFixture {
    /// A file; LFS when larger than 10 MiB or with a weights extension.
    pub fn new(path: &str, content: Content) -> Self {
        let lfs = content.len() > 10 << 20
            || [".bin", ".safetensors", ".gguf", ".parquet"]
                .iter()
                .any(|e| path.ends_with(e));
        Self {
            content,
            lfs,
            xet: false,
            hashes: Default::default(),
            xet_chunks: Default::default(),
        }
    }

    /// Literal bytes.
    pub fn bytes(path: &str, b: impl Into<Bytes>) -> Self {
        Self::new(path, Content::Bytes(b.into()))
    }

    /// Marks the file Xet-backed (implies LFS).
    pub fn xet(mut self) -> Self {
        self.xet = true;
        self.lfs = true;
        self
    }

    /// Size in bytes.
    pub fn size(&self) -> u64 {
        self.content.len()
    }

    /// (sha256, git blob sha1) of the content, computed once.
    fn hashes(&self) -> &(String, String) {
        self.hashes.get_or_init(|| {
            let mut s = sha2::Sha256::new();
            let mut g = sha1::Sha1::new();
            g.update(format!("blob {}\0", self.size()).as_bytes());
            for p in self.content.pieces(0, self.size()) {
                s.update(&p);
                g.update(&p);
            }
            (hex::encode(s.finalize()), hex::encode(g.finalize()))
        })
    }

    /// sha256 of the content.
    pub fn sha256(&self) -> String {
        self.hashes().0.clone()
    }

    /// Git blob oid as the Hub reports it: of the content, or of the LFS pointer for LFS files.
    pub fn oid(&self) -> String {
        if self.lfs {
            git_blob_sha1(lfs_pointer_text(&self.sha256(), self.size()).as_bytes())
        } else {
            self.hashes().1.clone()
        }
    }

    /// The Xet chunks of the content `(chunk hash, length)`, computed once, streaming.
    pub fn xet_chunks(&self) -> &[(olah_xet::XetHash, u64)] {
        self.xet_chunks.get_or_init(|| {
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

    /// The real Xet file hash (string form), as the CAS serves it.
    pub fn xet_hash(&self) -> String {
        olah_xet::file_hash(self.xet_chunks()).to_hex()
    }
}

/// `sha1("blob {len}\0" + data)`.
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

/// One commit: the full tree.
#[derive(Debug, Clone)]
pub struct CommitFixture {
    /// 40-hex id.
    pub sha: String,
    /// Title.
    pub title: String,
    /// Files by path.
    pub files: BTreeMap<String, FileFixture>,
}

/// A repository.
#[derive(Debug, Clone)]
pub struct RepoFixture {
    /// Kind.
    pub kind: Kind,
    /// `ns/name` or legacy `name`.
    pub id: String,
    /// Who may read it.
    pub visibility: Visibility,
    /// Commits, oldest first.
    pub commits: Vec<CommitFixture>,
    /// Refs: full ref name (`refs/heads/main`, `refs/tags/v1.0`, `refs/pr/1`, `refs/convert/parquet`) → commit index.
    pub refs: BTreeMap<String, usize>,
}

impl RepoFixture {
    /// A public repo with one commit on `main`.
    pub fn new(kind: Kind, id: &str, files: Vec<(&str, FileFixture)>) -> Self {
        let mut r = Self {
            kind,
            id: id.into(),
            visibility: Visibility::Public,
            commits: Vec::new(),
            refs: BTreeMap::new(),
        };
        r.commit(
            "initial commit",
            files.into_iter().map(|(p, f)| (p.to_string(), f)).collect(),
            &[],
        );
        r.refs.insert("refs/heads/main".into(), 0);
        r
    }

    /// Adds a commit: the previous tree with `changes` applied (`None` deletes), moving `main`.
    pub fn commit(
        &mut self,
        title: &str,
        changes: BTreeMap<String, FileFixture>,
        deletes: &[&str],
    ) -> usize {
        let mut files = self
            .commits
            .last()
            .map(|c| c.files.clone())
            .unwrap_or_default();
        for d in deletes {
            files.remove(*d);
        }
        files.extend(changes);
        let mut h = sha1::Sha1::new();
        h.update(self.id.as_bytes());
        h.update(title.as_bytes());
        h.update(self.commits.len().to_le_bytes());
        for (p, f) in &files {
            h.update(p.as_bytes());
            h.update(f.size().to_le_bytes());
        }
        self.commits.push(CommitFixture {
            sha: hex::encode(h.finalize()),
            title: title.into(),
            files,
        });
        let idx = self.commits.len() - 1;
        self.refs.insert("refs/heads/main".into(), idx);
        idx
    }

    /// Resolves a revision: ref short name, full ref, full sha or a ≥7-hex prefix.
    pub fn resolve(&self, rev: &str) -> Option<&CommitFixture> {
        for prefix in ["refs/heads/", "refs/tags/", ""] {
            if let Some(i) = self.refs.get(&format!("{prefix}{rev}")) {
                return self.commits.get(*i);
            }
        }
        if rev.len() >= 7 && rev.len() <= 40 && rev.bytes().all(|b| b.is_ascii_hexdigit()) {
            return self.commits.iter().find(|c| c.sha.starts_with(rev));
        }
        None
    }

    /// The commit `main` points at.
    pub fn main(&self) -> &CommitFixture {
        &self.commits[self.refs["refs/heads/main"]]
    }
}

/// Everything the fake Hub serves.
#[derive(Debug, Clone, Default)]
pub struct Fixture {
    /// Repositories.
    pub repos: Vec<RepoFixture>,
    /// Valid tokens.
    pub tokens: Vec<String>,
    /// Tree page size (default 1000).
    pub tree_page_size: usize,
}

impl Fixture {
    /// Finds a repo.
    pub fn repo(&self, kind: Kind, id: &str) -> Option<&RepoFixture> {
        self.repos.iter().find(|r| r.kind == kind && r.id == id)
    }

    /// The default fixture of the `olah-fakehub` binary (see the binary's docs).
    pub fn standard(big_size: u64) -> Self {
        let txt = |s: &str| Content::Bytes(Bytes::from(s.to_string()));
        let mut tiny = RepoFixture::new(
            Kind::Model,
            "acme/tiny",
            vec![
                (
                    "README.md",
                    FileFixture::new("README.md", txt("# tiny\nold readme\n")),
                ),
                (
                    "config.json",
                    FileFixture::new("config.json", txt("{\"model_type\": \"tiny\", \"v\": 1}\n")),
                ),
                (
                    "old-only.txt",
                    FileFixture::new("old-only.txt", txt("only in the first commit\n")),
                ),
            ],
        );
        tiny.refs.insert("refs/tags/v1.0".into(), 0);
        let mut c2 = BTreeMap::new();
        c2.insert(
            "model.bin".to_string(),
            FileFixture::new(
                "model.bin",
                Content::Generated {
                    seed: 1,
                    len: 3 << 20,
                },
            ),
        );
        c2.insert(
            "sub/dir/a b.txt".to_string(),
            FileFixture::new("sub/dir/a b.txt", txt("nested file with a space\n")),
        );
        c2.insert(
            "config.json".to_string(),
            FileFixture::new("config.json", txt("{\"model_type\": \"tiny\", \"v\": 2}\n")),
        );
        let i2 = tiny.commit("add weights", c2, &["old-only.txt"]);
        tiny.refs.insert("refs/heads/dev".into(), i2);
        let mut c3 = BTreeMap::new();
        c3.insert(
            "model.safetensors".to_string(),
            FileFixture::new(
                "model.safetensors",
                Content::Generated {
                    seed: 2,
                    len: 5 << 20,
                },
            )
            .xet(),
        );
        c3.insert(
            "README.md".to_string(),
            FileFixture::new("README.md", txt("# tiny\nA tiny test model.\n")),
        );
        let i3 = tiny.commit("add safetensors", c3, &[]);
        let mut pr = BTreeMap::new();
        pr.insert(
            "pr.txt".to_string(),
            FileFixture::new("pr.txt", txt("from a pull request\n")),
        );
        let ipr = tiny.commit("pr", pr, &[]);
        tiny.refs.insert("refs/pr/1".into(), ipr);
        tiny.refs.insert("refs/heads/main".into(), i3);

        let big = RepoFixture::new(
            Kind::Model,
            "acme/big",
            vec![(
                "big.bin",
                FileFixture::new(
                    "big.bin",
                    Content::Generated {
                        seed: 3,
                        len: big_size,
                    },
                ),
            )],
        );
        let gpt2 = RepoFixture::new(
            Kind::Model,
            "gpt2",
            vec![
                (
                    "config.json",
                    FileFixture::new("config.json", txt("{\"model_type\": \"gpt2\"}\n")),
                ),
                (
                    "pytorch_model.bin",
                    FileFixture::new(
                        "pytorch_model.bin",
                        Content::Generated {
                            seed: 4,
                            len: 200_000,
                        },
                    ),
                ),
            ],
        );
        let mut data_files: Vec<(String, FileFixture)> = (0..300)
            .map(|i| {
                let p = format!("data/part-{i:04}.jsonl");
                let f = FileFixture::new(&p, txt(&format!("{{\"row\": {i}}}\n")));
                (p, f)
            })
            .collect();
        data_files.push((
            "README.md".into(),
            FileFixture::new("README.md", txt("# data\n")),
        ));
        let mut data = RepoFixture::new(Kind::Dataset, "acme/data", Vec::new());
        data.commits.clear();
        data.commit("data", data_files.into_iter().collect(), &[]);
        let mut pq = BTreeMap::new();
        pq.insert(
            "default/train/0000.parquet".to_string(),
            FileFixture::new(
                "default/train/0000.parquet",
                Content::Generated {
                    seed: 5,
                    len: 100_000,
                },
            ),
        );
        let main_idx = data.refs["refs/heads/main"];
        let ipq = data.commit("parquet conversion", pq, &[]);
        data.refs.insert("refs/convert/parquet".into(), ipq);
        data.refs.insert("refs/heads/main".into(), main_idx);
        let space = RepoFixture::new(
            Kind::Space,
            "acme/space",
            vec![("app.py", FileFixture::new("app.py", txt("print('hi')\n")))],
        );
        let mut gated = RepoFixture::new(
            Kind::Model,
            "acme/gated",
            vec![
                (
                    "config.json",
                    FileFixture::new("config.json", txt("{\"gated\": true}\n")),
                ),
                (
                    "weights.bin",
                    FileFixture::new(
                        "weights.bin",
                        Content::Generated {
                            seed: 6,
                            len: 300_000,
                        },
                    ),
                ),
            ],
        );
        gated.visibility = Visibility::Gated(vec!["hf_granted".into()]);
        let mut private = RepoFixture::new(
            Kind::Model,
            "acme/private",
            vec![(
                "config.json",
                FileFixture::new("config.json", txt("{\"private\": true}\n")),
            )],
        );
        private.visibility = Visibility::Private(vec!["hf_owner".into()]);
        Fixture {
            repos: vec![tiny, big, gpt2, data, space, gated, private],
            tokens: vec!["hf_granted".into(), "hf_owner".into(), "hf_other".into()],
            tree_page_size: 100,
        }
    }
}
