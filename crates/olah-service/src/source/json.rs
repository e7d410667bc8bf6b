//! The Hub's JSON shapes (PROTOCOL.md §3) for the repositories the mirror answers itself (local
//! git and plain directories): one typed writer for each, so the two sources cannot drift. Also
//! what they share below the JSON: git-lfs pointers, git blob ids, the Hub's timestamps.

use std::time::{Duration, UNIX_EPOCH};

use olah_types::{RepoRef, RepoType};
use serde::Serialize;
use sha1::Sha1;
use sha2::{Digest, Sha256};

/// `GET /api/{t}s/{repo}[/revision/{rev}]` (PROTOCOL.md §3.1).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RepoInfo {
    #[serde(rename = "_id")]
    pub mongo_id: String,
    pub id: String,
    /// Models only (the Hub's legacy name of `id`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_id: Option<String>,
    pub author: String,
    pub sha: String,
    pub last_modified: String,
    pub created_at: String,
    pub private: bool,
    pub gated: bool,
    pub disabled: bool,
    pub downloads: u64,
    pub likes: u64,
    pub tags: Vec<String>,
    pub siblings: Vec<Sibling>,
    pub spaces: Vec<String>,
    pub used_storage: u64,
}

impl RepoInfo {
    /// A local repository's info. `id_seed` makes a stable Hub-style `_id` (24 hex digits).
    pub fn local(
        id_seed: &str,
        repo: &RepoRef,
        sha: &str,
        created_at: String,
        last_modified: String,
        siblings: Vec<Sibling>,
        used_storage: u64,
    ) -> Self {
        let id = hex::encode(Sha256::digest(id_seed.as_bytes()));
        Self {
            mongo_id: id[..24].to_string(),
            id: repo.id.as_str().to_string(),
            model_id: (repo.kind == RepoType::Model).then(|| repo.id.as_str().to_string()),
            author: repo.id.namespace().unwrap_or("").to_string(),
            sha: sha.to_string(),
            last_modified,
            created_at,
            private: false,
            gated: false,
            disabled: false,
            downloads: 0,
            likes: 0,
            tags: Vec::new(),
            siblings,
            spaces: Vec::new(),
            used_storage,
        }
    }
}

/// One file of [`RepoInfo::siblings`]; `blobId`, `size` and `lfs` only with `?blobs=true`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Sibling {
    pub rfilename: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blob_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lfs: Option<SiblingLfs>,
}

impl Sibling {
    /// The sibling of `file`, with its blob details when `blobs`.
    pub fn of(path: &str, file: &FileIds, blobs: bool) -> Self {
        Self {
            rfilename: path.to_string(),
            blob_id: blobs.then(|| file.oid.clone()),
            size: blobs.then_some(file.size),
            lfs: file.lfs.as_ref().filter(|_| blobs).map(|l| SiblingLfs {
                sha256: l.sha256.clone(),
                size: l.size,
                pointer_size: l.pointer_size(),
            }),
        }
    }
}

/// `lfs` of a sibling: note `sha256` here where tree entries say `oid` (PROTOCOL.md §3.1).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SiblingLfs {
    pub sha256: String,
    pub size: u64,
    pub pointer_size: u64,
}

/// What a file is in git terms: its blob id (of the pointer text for an LFS file), the size
/// clients see, and its LFS pointer if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileIds {
    pub oid: String,
    pub size: u64,
    pub lfs: Option<LfsPointer>,
}

/// An entry of a tree listing or a paths-info answer (PROTOCOL.md §3.2, §3.3).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TreeEntry {
    #[serde(rename = "type")]
    pub kind: EntryKind,
    pub oid: String,
    pub size: u64,
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lfs: Option<EntryLfs>,
    /// Only with `expand=true`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_commit: Option<LastCommit>,
}

impl TreeEntry {
    /// A file entry.
    pub fn file(path: &str, f: &FileIds) -> Self {
        Self {
            kind: EntryKind::File,
            oid: f.oid.clone(),
            size: f.size,
            path: path.to_string(),
            lfs: f.lfs.as_ref().map(|l| EntryLfs {
                oid: l.sha256.clone(),
                size: l.size,
                pointer_size: l.pointer_size(),
            }),
            last_commit: None,
        }
    }

    /// A directory entry with its tree id.
    pub fn directory(path: &str, oid: String) -> Self {
        Self {
            kind: EntryKind::Directory,
            oid,
            size: 0,
            path: path.to_string(),
            lfs: None,
            last_commit: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    File,
    Directory,
}

/// `lfs` of a tree entry.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EntryLfs {
    pub oid: String,
    pub size: u64,
    pub pointer_size: u64,
}

/// `lastCommit` of an expanded tree entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LastCommit {
    pub id: String,
    pub title: String,
    pub date: String,
}

/// `GET /api/{t}s/{repo}/refs[?include_prs=1]` (PROTOCOL.md §3.4): `pullRequests` only when
/// asked for, as the Hub.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Refs {
    pub branches: Vec<RefItem>,
    pub converts: Vec<RefItem>,
    pub tags: Vec<RefItem>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pull_requests: Option<Vec<RefItem>>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RefItem {
    pub name: String,
    #[serde(rename = "ref")]
    pub reference: String,
    pub target_commit: String,
}

/// One commit of `GET /api/{t}s/{repo}/commits/{rev}` (PROTOCOL.md §3.5): `formatted` only with
/// `expand[]=formatted`.
#[derive(Debug, Clone, Serialize)]
pub struct CommitInfo {
    pub id: String,
    pub title: String,
    pub message: String,
    pub date: String,
    pub authors: Vec<Author>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub formatted: Option<Formatted>,
}

impl CommitInfo {
    /// A commit by `author` (without `formatted`).
    pub fn new(id: String, title: String, message: String, date: String, author: String) -> Self {
        Self {
            id,
            title,
            message,
            date,
            authors: vec![Author { user: author }],
            formatted: None,
        }
    }

    /// Adds `formatted` when `yes`.
    pub fn formatted_if(mut self, yes: bool) -> Self {
        self.formatted = yes.then(|| Formatted {
            title: html_escape(&self.title),
            message: html_escape(&self.message),
        });
        self
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Author {
    pub user: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Formatted {
    pub title: String,
    pub message: String,
}

fn html_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

// ------------------------------------------------------------------------------------------
// Below the JSON

/// A git-lfs pointer is smaller than this (git-lfs spec).
pub const LFS_POINTER_MAX: usize = 1024;

/// A git-lfs pointer: the sha256 and size of the content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LfsPointer {
    /// Lowercase hex sha256 of the content (64 digits, validated).
    pub sha256: String,
    pub size: u64,
}

impl LfsPointer {
    /// The pointer text (spec v1), as git stores it.
    pub fn text(&self) -> String {
        format!(
            "version https://git-lfs.github.com/spec/v1\noid sha256:{}\nsize {}\n",
            self.sha256, self.size
        )
    }

    /// Length of [`text`](Self::text) (`pointerSize`).
    pub fn pointer_size(&self) -> u64 {
        self.text().len() as u64
    }

    /// Parses a git-lfs pointer (spec v1): `version …\noid sha256:{64 hex}\nsize {n}\n`.
    pub fn parse(data: &[u8]) -> Option<Self> {
        if data.len() >= LFS_POINTER_MAX {
            return None;
        }
        let text = std::str::from_utf8(data).ok()?;
        let mut lines = text.lines();
        let version = lines.next()?.strip_prefix("version ")?;
        if !matches!(
            version,
            "https://git-lfs.github.com/spec/v1" | "https://hawser.github.com/spec/v1"
        ) {
            return None;
        }
        let (mut sha256, mut size) = (None, None);
        for line in lines {
            let (k, v) = line.split_once(' ')?;
            match k {
                "oid" => {
                    let hex = v.strip_prefix("sha256:")?;
                    if hex.len() != 64
                        || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
                    {
                        return None;
                    }
                    sha256 = Some(hex.to_string());
                }
                "size" => {
                    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                        return None;
                    }
                    size = Some(v.parse().ok()?);
                }
                _ => {}
            }
        }
        Some(Self {
            sha256: sha256?,
            size: size?,
        })
    }
}

/// The header git hashes before a blob's content.
pub fn git_blob_header(size: u64) -> Vec<u8> {
    format!("blob {size}\0").into_bytes()
}

/// The git blob id of `content` (`git hash-object`).
pub fn git_blob_oid(content: &[u8]) -> String {
    let mut h = Sha1::new();
    h.update(git_blob_header(content.len() as u64));
    h.update(content);
    hex::encode(h.finalize())
}

/// `2025-01-01T00:00:00.000Z` from milliseconds since the epoch (UTC).
pub fn iso8601_ms(ms: u64) -> String {
    // Far-future values are clamped to what SystemTime and the formatter can represent.
    let ms = ms.min(253_402_300_799_999); // 9999-12-31T23:59:59.999Z
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

/// [`iso8601_ms`] of a Unix time in seconds (times before the epoch clamp to it).
pub fn iso8601_secs(secs: i64) -> String {
    iso8601_ms(u64::try_from(secs).unwrap_or(0).saturating_mul(1000))
}

/// The `Content-Type` of a file served by a local source: `application/octet-stream` for LFS
/// files (model weights and other large binaries), else guessed from the extension, text in
/// UTF-8.
pub fn content_type(path: &str, lfs: bool) -> String {
    if lfs {
        return "application/octet-stream".into();
    }
    let m = mime_guess::from_path(path).first_or_octet_stream();
    if m.type_() == mime_guess::mime::TEXT && m.get_param("charset").is_none() {
        format!("{m}; charset=utf-8")
    } else {
        m.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha256_hex(b: &[u8]) -> String {
        hex::encode(Sha256::digest(b))
    }

    #[test]
    fn pointers_parse_and_format_round_trip() {
        let p = LfsPointer {
            sha256: sha256_hex(b"abc"),
            size: 3,
        };
        assert_eq!(LfsPointer::parse(p.text().as_bytes()), Some(p.clone()));
        assert_eq!(p.pointer_size(), p.text().len() as u64);
        assert!(
            LfsPointer::parse(b"version https://git-lfs.github.com/spec/v1\nsize 3\n").is_none()
        );
        assert!(LfsPointer::parse(b"hello\n").is_none());
        assert!(LfsPointer::parse(p.text().replace("sha256:", "sha1:").as_bytes()).is_none());
        assert!(LfsPointer::parse(p.text().to_uppercase().as_bytes()).is_none());
    }

    #[test]
    fn git_blob_ids_and_dates() {
        assert_eq!(
            git_blob_oid(b""),
            "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"
        );
        assert_eq!(
            git_blob_oid(b"hello world\n"),
            "3b18e512dba79e4c8300dd08aeb37f8e728b8dad"
        );
        assert_eq!(iso8601_secs(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601_secs(1_735_689_599), "2024-12-31T23:59:59.000Z");
        assert_eq!(iso8601_secs(951_825_600), "2000-02-29T12:00:00.000Z");
        assert_eq!(iso8601_secs(-1), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            iso8601_ms(1_709_164_800_000 + 3_723_456),
            "2024-02-29T01:02:03.456Z"
        );
        assert_eq!(iso8601_ms(u64::MAX), "9999-12-31T23:59:59.999Z");
    }

    #[test]
    fn content_types() {
        assert_eq!(content_type("config.json", false), "application/json");
        assert_eq!(content_type("a/x.txt", false), "text/plain; charset=utf-8");
        assert_eq!(
            content_type("README.md", false),
            "text/markdown; charset=utf-8"
        );
        assert_eq!(
            content_type("model.safetensors", true),
            "application/octet-stream"
        );
        assert_eq!(
            content_type("config.json", true),
            "application/octet-stream"
        );
        assert_eq!(content_type("noext", false), "application/octet-stream");
    }

    #[test]
    fn json_shapes_follow_the_hub() {
        let refs = Refs::default();
        assert_eq!(
            serde_json::to_value(&refs).unwrap(),
            serde_json::json!({"branches": [], "converts": [], "tags": []})
        );
        let c = CommitInfo::new("c".into(), "a<b".into(), "".into(), "d".into(), "u".into());
        let v = serde_json::to_value(&c).unwrap();
        assert!(v.get("formatted").is_none());
        let v = serde_json::to_value(c.formatted_if(true)).unwrap();
        assert_eq!(v["formatted"]["title"], "a&lt;b");
        let f = FileIds {
            oid: "o".into(),
            size: 3,
            lfs: Some(LfsPointer {
                sha256: "s".repeat(64),
                size: 3,
            }),
        };
        let e = serde_json::to_value(TreeEntry::file("p", &f)).unwrap();
        assert_eq!(e["type"], "file");
        assert_eq!(e["lfs"]["oid"], "s".repeat(64));
        assert!(e.get("lastCommit").is_none());
        let s = serde_json::to_value(Sibling::of("p", &f, true)).unwrap();
        assert_eq!(s["lfs"]["sha256"], "s".repeat(64));
        assert_eq!(s["blobId"], "o");
        let s = serde_json::to_value(Sibling::of("p", &f, false)).unwrap();
        assert_eq!(s, serde_json::json!({"rfilename": "p"}));
    }
}
