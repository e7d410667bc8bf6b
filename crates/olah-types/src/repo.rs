//! Repository identities: kind, id, revision and in-repo file path, each validated on
//! construction so that a value of these types is always safe to put in a key, a URL (after
//! encoding) or under a directory.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::RouteError;

/// Kind of Hub repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RepoType {
    /// Models: no URL prefix.
    Model,
    /// Datasets: `datasets/`.
    Dataset,
    /// Spaces: `spaces/`.
    Space,
    /// Kernels: `kernels/`.
    Kernel,
    /// Storage Buckets: `buckets/`. Not a git repository: no revisions, mutable paths, every
    /// file Xet-backed (PROTOCOL-2.md A). Not in [`RepoType::ALL`] (their routes differ), never
    /// parsed by [`RepoType::from_api_plural`].
    Bucket,
}

impl RepoType {
    /// Every git-backed kind (all but [`RepoType::Bucket`]), in declaration order.
    pub const ALL: [Self; 4] = [Self::Model, Self::Dataset, Self::Space, Self::Kernel];

    /// Prefix in file URLs: `""`, `"datasets/"`, `"spaces/"`, `"kernels/"`.
    pub fn url_prefix(self) -> &'static str {
        match self {
            Self::Model => "",
            Self::Dataset => "datasets/",
            Self::Space => "spaces/",
            Self::Kernel => "kernels/",
            Self::Bucket => "buckets/",
        }
    }

    /// Plural used in API URLs and keys: `"models"`, `"datasets"`, `"spaces"`, `"kernels"`.
    pub fn api_plural(self) -> &'static str {
        match self {
            Self::Model => "models",
            Self::Dataset => "datasets",
            Self::Space => "spaces",
            Self::Kernel => "kernels",
            Self::Bucket => "buckets",
        }
    }

    /// Singular name, as huggingface_hub's `repo_type`: `"model"`, `"dataset"`, ….
    pub fn singular(self) -> &'static str {
        match self {
            Self::Model => "model",
            Self::Dataset => "dataset",
            Self::Space => "space",
            Self::Kernel => "kernel",
            Self::Bucket => "bucket",
        }
    }

    /// Parses an API plural (exact, case-sensitive).
    pub fn from_api_plural(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.api_plural() == s)
    }

    /// Parses a singular name (`model`, `dataset`, `space`, `kernel`; exact, case-sensitive).
    pub fn from_singular(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.singular() == s)
    }
}

impl fmt::Display for RepoType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.singular())
    }
}

/// `BadRequest` naming the offending value, escaped and shortened (it may be hostile).
fn invalid(what: &str, value: &str) -> RouteError {
    let shown: String = value.chars().take(80).collect();
    let more = if shown.len() < value.len() { "…" } else { "" };
    RouteError::BadRequest(format!("invalid {what} {shown:?}{more}"))
}

/// Shared by [`Revision`] and [`RepoPath`]: non-empty `/`-separated components, none empty,
/// `.` or `..`, no control character, no backslash (so no leading or trailing `/` either).
fn safe_components(s: &str, max_chars: usize) -> bool {
    !s.is_empty()
        && s.chars().count() <= max_chars
        && !s.chars().any(|c| c.is_control() || c == '\\')
        && s.split('/').all(|c| !matches!(c, "" | "." | ".."))
}

macro_rules! string_newtype {
    ($t:ident) => {
        impl $t {
            /// The value as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $t {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::str::FromStr for $t {
            type Err = RouteError;
            fn from_str(s: &str) -> Result<Self, RouteError> {
                Self::new(s)
            }
        }

        impl TryFrom<String> for $t {
            type Error = RouteError;
            fn try_from(s: String) -> Result<Self, RouteError> {
                Self::new(&s)
            }
        }

        impl From<$t> for String {
            fn from(v: $t) -> String {
                v.0
            }
        }
    };
}

/// A validated repo id: `ns/name`, or a legacy one-segment `name` (`gpt2`).
///
/// Each segment follows the Hub's rules: 1–96 characters from `A-Z a-z 0-9 . _ -`, not starting
/// or ending with `.` or `-`, and containing neither `--` nor `..`. A segment can therefore never
/// be `.`/`..`, contain `/`, or need percent-encoding.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RepoId(String);

/// Maximum length of one repo id segment.
pub const MAX_REPO_ID_SEGMENT: usize = 96;

/// Whether `s` is a valid single repo id segment (namespace or name).
pub fn is_valid_repo_id_segment(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_REPO_ID_SEGMENT
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        && !s.starts_with(['.', '-'])
        && !s.ends_with(['.', '-'])
        && !s.contains("--")
        && !s.contains("..")
}

impl RepoId {
    /// Validates `ns/name` or `name`.
    pub fn new(s: &str) -> Result<Self, RouteError> {
        match s.split_once('/') {
            Some((ns, name)) => Self::from_parts(Some(ns), name),
            None => Self::from_parts(None, s),
        }
        .map_err(|_| invalid("repo id", s))
    }

    /// Builds an id from separate segments; a segment containing `/` is rejected.
    pub fn from_parts(namespace: Option<&str>, name: &str) -> Result<Self, RouteError> {
        let ok = namespace.is_none_or(is_valid_repo_id_segment) && is_valid_repo_id_segment(name);
        match (ok, namespace) {
            (false, Some(ns)) => Err(invalid("repo id", &format!("{ns}/{name}"))),
            (false, None) => Err(invalid("repo id", name)),
            (true, Some(ns)) => Ok(Self(format!("{ns}/{name}"))),
            (true, None) => Ok(Self(name.to_string())),
        }
    }

    /// The namespace (user or org), `None` for a legacy id.
    pub fn namespace(&self) -> Option<&str> {
        self.0.split_once('/').map(|(n, _)| n)
    }

    /// The repository name (the last segment).
    pub fn name(&self) -> &str {
        self.0.split_once('/').map_or(&self.0, |(_, n)| n)
    }

    /// The segments: `[ns, name]` or `[name]`.
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }

    /// The first segment: the namespace, or the name of a legacy id.
    pub fn first_segment(&self) -> &str {
        self.namespace().unwrap_or(&self.0)
    }
}
string_newtype!(RepoId);

/// A repository: kind and id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RepoRef {
    /// Kind.
    pub kind: RepoType,
    /// Id.
    pub id: RepoId,
}

impl RepoRef {
    /// Pairs a kind and an id.
    pub fn new(kind: RepoType, id: RepoId) -> Self {
        Self { kind, id }
    }

    /// Stable key `"{plural}/{id}"`, e.g. `models/acme/tiny` (also the `Display` form).
    pub fn key(&self) -> String {
        format!("{}/{}", self.kind.api_plural(), self.id)
    }
}

impl fmt::Display for RepoRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind.api_plural(), self.id)
    }
}

/// Maximum length of a revision, in characters.
pub const MAX_REVISION_CHARS: usize = 256;

/// A percent-decoded revision: branch, tag, commit sha, `refs/pr/1`, `refs/convert/parquet`.
///
/// 1–256 characters; `/`-separated components, none empty, `.` or `..` (so no leading or
/// trailing `/`); no control character and no backslash.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Revision(String);

impl Revision {
    /// Validates a decoded revision.
    pub fn new(s: &str) -> Result<Self, RouteError> {
        if safe_components(s, MAX_REVISION_CHARS) {
            Ok(Self(s.to_string()))
        } else {
            Err(invalid("revision", s))
        }
    }

    /// Exactly 40 lowercase hex digits (a full commit sha).
    pub fn is_commit_sha(&self) -> bool {
        self.0.len() == 40
            && self
                .0
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    }
}
string_newtype!(Revision);

/// Maximum length of a file path, in characters.
pub const MAX_REPO_PATH_CHARS: usize = 1024;

/// A decoded, validated relative file path inside a repo, `/`-separated.
///
/// 1–1024 characters; no empty, `.` or `..` component (so no leading or trailing `/`); no control
/// character (NUL included) and no backslash; the first component is not a Windows drive
/// (`C:`). Joined to a directory (`dir.join(path)`) it therefore always stays inside it,
/// on Unix and on Windows.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RepoPath(String);

impl RepoPath {
    /// Validates a decoded path.
    pub fn new(s: &str) -> Result<Self, RouteError> {
        let drive = matches!(s.as_bytes(), [l, b':', ..] if l.is_ascii_alphabetic());
        if safe_components(s, MAX_REPO_PATH_CHARS) && !drive {
            Ok(Self(s.to_string()))
        } else {
            Err(invalid("file path", s))
        }
    }

    /// The components, in order (never empty, `.` or `..`).
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }

    /// The last component.
    pub fn file_name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }
}
string_newtype!(RepoPath);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_type_names_round_trip() {
        for t in RepoType::ALL {
            assert_eq!(RepoType::from_api_plural(t.api_plural()), Some(t));
            assert_eq!(RepoType::from_singular(t.singular()), Some(t));
            assert_eq!(t.to_string(), t.singular());
        }
        assert_eq!(RepoType::Model.url_prefix(), "");
        assert_eq!(RepoType::Dataset.url_prefix(), "datasets/");
        assert_eq!(RepoType::Space.url_prefix(), "spaces/");
        assert_eq!(RepoType::Kernel.url_prefix(), "kernels/");
        for bad in ["Models", "model", "", "dataset "] {
            assert_eq!(RepoType::from_api_plural(bad), None, "{bad}");
        }
        assert_eq!(RepoType::from_singular("models"), None);
    }

    #[test]
    fn repo_ids() {
        for ok in [
            "gpt2",
            "bert-base-uncased",
            "acme/tiny",
            "a/b",
            "Org_1/model.v2",
            "_x/y_",
        ] {
            assert_eq!(RepoId::new(ok).unwrap().as_str(), ok);
        }
        let id = RepoId::new("acme/tiny").unwrap();
        assert_eq!(
            (id.namespace(), id.name(), id.first_segment()),
            (Some("acme"), "tiny", "acme")
        );
        assert_eq!(id.segments().collect::<Vec<_>>(), ["acme", "tiny"]);
        let legacy = RepoId::new("gpt2").unwrap();
        assert_eq!((legacy.namespace(), legacy.name()), (None, "gpt2"));
        let long = "a".repeat(97);
        for bad in [
            "",
            "/",
            "a/",
            "/a",
            "a/b/c",
            ".",
            "..",
            "a/..",
            "-a",
            "a-",
            ".a",
            "a.",
            "a--b",
            "a..b",
            "a b",
            "a%2Fb",
            "a\\b",
            "é",
            long.as_str(),
        ] {
            assert!(RepoId::new(bad).is_err(), "{bad:?}");
        }
        assert!(RepoId::new(&"a".repeat(96)).is_ok());
        assert!(RepoId::from_parts(Some("a/b"), "c").is_err());
        assert!(RepoId::from_parts(None, "a/b").is_err());
        assert_eq!(RepoId::from_parts(Some("a"), "b").unwrap(), id_of("a/b"));
    }

    fn id_of(s: &str) -> RepoId {
        RepoId::new(s).unwrap()
    }

    #[test]
    fn repo_ref_key() {
        let r = RepoRef::new(RepoType::Dataset, id_of("acme/data"));
        assert_eq!(r.key(), "datasets/acme/data");
        assert_eq!(r.to_string(), r.key());
        assert_eq!(
            RepoRef::new(RepoType::Model, id_of("gpt2")).key(),
            "models/gpt2"
        );
    }

    #[test]
    fn revisions() {
        for ok in [
            "main",
            "v1.0",
            "refs/pr/1",
            "refs/convert/parquet",
            "a..b",
            "...",
            "x y",
        ] {
            assert_eq!(Revision::new(ok).unwrap().as_str(), ok);
        }
        let long = "a".repeat(257);
        for bad in [
            "",
            ".",
            "..",
            "/main",
            "main/",
            "refs//pr",
            "../x",
            "x/../y",
            "x/..",
            "./x",
            "a\\b",
            "a\0b",
            "a\nb",
            "\u{7f}",
            long.as_str(),
        ] {
            assert!(Revision::new(bad).is_err(), "{bad:?}");
        }
        assert!(Revision::new(&"é".repeat(256)).is_ok(), "limit is in chars");
        let sha = "0123456789abcdef0123456789abcdef01234567";
        assert!(Revision::new(sha).unwrap().is_commit_sha());
        for not_sha in [&sha[..39], &sha.to_uppercase(), "main"] {
            assert!(
                !Revision::new(not_sha).unwrap().is_commit_sha(),
                "{not_sha}"
            );
        }
        assert!(!Revision::new(&format!("{sha}0")).unwrap().is_commit_sha());
        assert!(
            !Revision::new("0123456789abcdef0123456789abcdef0123456g")
                .unwrap()
                .is_commit_sha()
        );
    }

    #[test]
    fn repo_paths() {
        for ok in [
            "config.json",
            "sub/dir/a b.txt",
            "日本語/ファイル.bin",
            ".gitattributes",
            "a/...",
            "ab:c",
            "dir/C:x",
        ] {
            assert_eq!(RepoPath::new(ok).unwrap().as_str(), ok);
        }
        let long = "a".repeat(1025);
        for bad in [
            "",
            "/",
            "/etc/passwd",
            "a/",
            "a//b",
            ".",
            "..",
            "../x",
            "a/../b",
            "a/./b",
            "a/..",
            "a\\..\\b",
            "a\0b",
            "a\tb",
            "a\u{85}b",
            "C:x",
            "c:/x",
            "a:b",
            long.as_str(),
        ] {
            assert!(RepoPath::new(bad).is_err(), "{bad:?}");
        }
        let p = RepoPath::new("sub/dir/f.txt").unwrap();
        assert_eq!(p.segments().collect::<Vec<_>>(), ["sub", "dir", "f.txt"]);
        assert_eq!(p.file_name(), "f.txt");
    }

    #[test]
    fn joined_paths_stay_inside() {
        use std::path::{Component, Path};
        let base = Path::new("/srv/cache/blobs");
        for p in ["a", "a/b/c.txt", "...", "a..b/c"] {
            let joined = base.join(RepoPath::new(p).unwrap().as_str());
            assert!(joined.starts_with(base), "{p}");
            assert!(
                joined
                    .strip_prefix(base)
                    .unwrap()
                    .components()
                    .all(|c| matches!(c, Component::Normal(_))),
                "{p}"
            );
        }
    }

    #[test]
    fn conversions_and_serde_validate() {
        let e: Result<Revision, _> = String::from("..").try_into();
        assert!(matches!(e, Err(RouteError::BadRequest(_))));
        let e = "a/../b".parse::<RepoPath>();
        assert!(e.is_err());
        assert_eq!(String::from(id_of("acme/tiny")), "acme/tiny");
        assert!(matches!(
            "bad id!".parse::<RepoId>(),
            Err(RouteError::BadRequest(m)) if m.contains("bad id!")
        ));
        // Deserialising goes through the validating constructor.
        let r: RepoRef = serde_json::from_str(r#"{"kind":"dataset","id":"acme/data"}"#).unwrap();
        assert_eq!(r.key(), "datasets/acme/data");
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"kind":"dataset","id":"acme/data"}"#
        );
        assert!(serde_json::from_str::<RepoPath>(r#""../etc/passwd""#).is_err());
        assert!(serde_json::from_str::<RepoId>(r#""a/b/c""#).is_err());
        assert!(serde_json::from_str::<Revision>(r#""refs/pr/1""#).is_ok());
    }

    #[test]
    fn error_message_is_escaped_and_bounded() {
        let hostile = format!("x\n{}", "y".repeat(1000));
        let RouteError::BadRequest(m) = RepoPath::new(&format!("../{hostile}")).unwrap_err() else {
            panic!("not a bad request")
        };
        assert!(!m.contains('\n'), "{m}");
        assert!(m.len() < 200, "{m}");
    }
}
