//! What the cache holds, per repository, and the cache tools (`olah-cli cache ls|verify|rm|gc`,
//! `/admin/api/cache/*`, the admin page's "top repos by size"). The store knows blobs and xorb
//! ranges by content; this module joins them with the Hub records (`file|{repo}|{commit}|{path}`,
//! `rev|…`) that say which repository and revision a blob belongs to.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use olah_store::{BlobCheck, BlobKey, BlobStore, BlobUsage, MetaDb, XorbStore};
use olah_types::RepoRef;
use serde::{Deserialize, Serialize};

use crate::ServiceError;
use crate::hub::FileMeta;

/// Partial fills nobody touched for this long are garbage (`cache gc`).
pub const STALE_PARTIAL_MS: u64 = 60 * 60 * 1000;

/// One repository in the cache.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RepoSummary {
    /// `model`, `dataset`, `space` or `kernel`.
    pub repo_type: String,
    /// `ns/name` (or a legacy id).
    pub repo_id: String,
    /// Commits (and branch or tag names pointing at them) with cached files.
    pub revisions: Vec<String>,
    /// Cached files (records whose content is at least partly on disk: a blob, or for a Xet
    /// file the xorbs its cached reconstruction names).
    pub files: u64,
    /// Bytes of content on disk for those files, blobs and xorbs (shared content counted in
    /// each repo).
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
    /// What failed (and was dropped): content keys (followed by the repository files that
    /// name them, in parentheses) or `xorb/{hash}/{start}-{end}`.
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
    pub(crate) xorbs: Arc<XorbStore>,
}

/// Runs a blocking database call off the async workers.
async fn off<T: Send + 'static>(
    db: &Arc<MetaDb>,
    f: impl FnOnce(&MetaDb) -> olah_store::Result<T> + Send + 'static,
) -> Result<T, ServiceError> {
    let db = db.clone();
    tokio::task::spawn_blocking(move || f(&db))
        .await
        .map_err(|e| ServiceError::internal(e.to_string()))?
        .map_err(ServiceError::from)
}

/// A `file|{plural}/{id}|{commit}|{path}` record, parsed.
struct FileRecord {
    repo_key: String,
    commit: String,
    path: String,
    key: Option<BlobKey>,
    size: u64,
    xet_hash: Option<String>,
}

fn parse_file_record(k: &str, v: &[u8]) -> Option<FileRecord> {
    let mut parts = k.strip_prefix("file|")?.splitn(3, '|');
    let (repo_key, commit, path) = (parts.next()?, parts.next()?, parts.next()?);
    let meta: FileMeta = serde_json::from_slice(v).ok()?;
    Some(FileRecord {
        repo_key: repo_key.to_string(),
        commit: commit.to_string(),
        path: path.to_string(),
        key: meta.blob_key(),
        size: meta.size,
        xet_hash: meta.xet_hash.map(|h| h.to_ascii_lowercase()),
    })
}

/// `models/ns/name` → (`model`, `ns/name`).
fn split_repo_key(repo_key: &str) -> Option<(&'static str, &str)> {
    let (plural, id) = repo_key.split_once('/')?;
    let kind = olah_types::RepoType::from_api_plural(plural)?;
    Some((kind.singular(), id))
}

impl Catalog {
    /// Xet file hash → the stored xorbs its cached reconstructions name.
    async fn xet_files(
        &self,
        xorb_sizes: &HashMap<String, u64>,
    ) -> Result<HashMap<String, BTreeSet<String>>, ServiceError> {
        let recons = off(&self.db, |db| db.scan_prefix("xrecon|")).await?;
        let mut out: HashMap<String, BTreeSet<String>> = HashMap::new();
        for (k, v) in &recons {
            let Some(file) = k.strip_prefix("xrecon|").and_then(|r| r.split('|').next()) else {
                continue;
            };
            let Ok(recon) = serde_json::from_slice::<crate::xet::Recon>(v) else {
                continue;
            };
            for (h, _) in recon.ranges() {
                if xorb_sizes.contains_key(h) {
                    out.entry(file.to_string())
                        .or_default()
                        .insert(h.to_string());
                }
            }
        }
        Ok(out)
    }

    async fn file_records(&self, prefix: String) -> Result<Vec<FileRecord>, ServiceError> {
        let raw = off(&self.db, move |db| db.scan_prefix(&prefix)).await?;
        Ok(raw
            .iter()
            .filter_map(|(k, v)| parse_file_record(k, v))
            .collect())
    }

    /// Every repository with cached content, largest first.
    pub async fn repos(&self) -> Result<Vec<RepoSummary>, ServiceError> {
        if let Err(e) = self.blobs.flush_access().await {
            tracing::debug!(error = %e, "could not persist access times");
        }
        let infos: HashMap<BlobKey, BlobUsage> = self
            .blobs
            .blob_infos()
            .await?
            .into_iter()
            .map(|i| (i.key, i))
            .collect();
        let files = self.file_records("file|".into()).await?;
        let revs = off(&self.db, |db| db.scan_prefix("rev|")).await?;
        // Xet files whose content is (at least partly) in the xorb store: the xorbs their
        // cached reconstructions name that are stored.
        let xorb_sizes = self.xorbs.sizes().await?;
        let xet_files = self.xet_files(&xorb_sizes).await?;
        #[derive(Default)]
        struct Acc {
            commits: BTreeSet<String>,
            files: u64,
            blobs: HashSet<BlobKey>,
            xorbs: BTreeSet<String>,
            bytes: u64,
            last_ms: u64,
        }
        let mut acc: BTreeMap<String, Acc> = BTreeMap::new();
        for f in files {
            let info = f.key.and_then(|k| infos.get(&k));
            let xorbs = f.xet_hash.as_ref().and_then(|h| xet_files.get(h));
            let on_disk = info.is_some_and(|i| i.bytes > 0) || f.size == 0 || xorbs.is_some();
            if !on_disk {
                continue;
            }
            let a = acc.entry(f.repo_key).or_default();
            if let Some(x) = xorbs {
                a.xorbs.extend(x.iter().cloned());
            }
            a.commits.insert(f.commit);
            a.files += 1;
            if let Some(i) = info {
                if a.blobs.insert(i.key) {
                    a.bytes += i.bytes;
                }
                a.last_ms = a.last_ms.max(i.last_access);
            }
        }
        // Branch and tag names whose commit has cached files.
        let mut names: HashMap<String, BTreeSet<String>> = HashMap::new();
        for (k, v) in &revs {
            let Some(rest) = k.strip_prefix("rev|") else {
                continue;
            };
            let Some((repo_key, rev)) = rest.split_once('|') else {
                continue;
            };
            let Some(commit) = serde_json::from_slice::<serde_json::Value>(v)
                .ok()
                .and_then(|j| j.get("commit")?.as_str().map(str::to_string))
            else {
                continue;
            };
            if acc
                .get(repo_key)
                .is_some_and(|a| a.commits.contains(&commit))
            {
                names
                    .entry(repo_key.to_string())
                    .or_default()
                    .insert(rev.to_string());
            }
        }
        let mut out: Vec<RepoSummary> = acc
            .into_iter()
            .filter_map(|(repo_key, a)| {
                let (kind, id) = split_repo_key(&repo_key)?;
                let mut revisions: Vec<String> = names
                    .remove(&repo_key)
                    .unwrap_or_default()
                    .into_iter()
                    .collect();
                revisions.extend(a.commits);
                Some(RepoSummary {
                    repo_type: kind.to_string(),
                    repo_id: id.to_string(),
                    revisions,
                    files: a.files,
                    bytes: a.bytes
                        + a.xorbs
                            .iter()
                            .filter_map(|x| xorb_sizes.get(x))
                            .sum::<u64>(),
                    last_access: (a.last_ms > 0).then_some(a.last_ms / 1000),
                })
            })
            .collect();
        out.sort_by(|a, b| {
            b.bytes
                .cmp(&a.bytes)
                .then_with(|| a.repo_id.cmp(&b.repo_id))
        });
        Ok(out)
    }

    /// Re-hashes every complete blob and verified xorb range; drops what fails.
    pub async fn verify(&self) -> Result<VerifyReport, ServiceError> {
        let mut report = VerifyReport::default();
        let mut bad: Vec<BlobKey> = Vec::new();
        for info in self.blobs.blob_infos().await? {
            if !info.complete {
                continue;
            }
            match self.blobs.check_blob(info.key, info.size).await? {
                BlobCheck::Ok => {}
                BlobCheck::Corrupt => bad.push(info.key),
                BlobCheck::Skipped => continue,
            }
            report.blobs_checked += 1;
            report.bytes_checked += info.size;
        }
        if !bad.is_empty() {
            // Name the repository files whose content failed.
            let files = self.file_records("file|".into()).await?;
            for key in bad {
                let users: BTreeSet<String> = files
                    .iter()
                    .filter(|f| f.key == Some(key))
                    .map(|f| format!("{}/{}", f.repo_key, f.path))
                    .collect();
                tracing::error!(blob = %key, "cache verify: content does not match its hash; dropped");
                report.corrupt.push(if users.is_empty() {
                    key.to_string()
                } else {
                    format!(
                        "{key} ({})",
                        users.into_iter().collect::<Vec<_>>().join(", ")
                    )
                });
            }
        }
        let x = self.xorbs.check_verified().await?;
        report.xorb_ranges_checked = x.ranges;
        report.bytes_checked += x.bytes;
        for (hash, r) in x.corrupt {
            tracing::error!(xorb = %hash, start = r.start, end = r.end, "cache verify: xorb range failed its chunk hashes; dropped");
            report
                .corrupt
                .push(format!("xorb/{hash}/{}-{}", r.start, r.end));
        }
        Ok(report)
    }

    /// Drops one repository's records, and the content (blobs, and the xorbs of its Xet files)
    /// no other repository references; open content is kept. A repository the cache knows
    /// nothing of is `RepoNotFound`.
    pub async fn remove(&self, repo: &RepoRef) -> Result<RemoveReport, ServiceError> {
        let repo_key = repo.key();
        let mine = self.file_records(format!("file|{repo_key}|")).await?;
        let mut kv_keys: Vec<String> = Vec::new();
        for prefix in [
            format!("file|{repo_key}|"),
            format!("rev|{repo_key}|"),
            format!("xmember|{repo_key}|"),
            format!("grant|{repo_key}|"),
        ] {
            let found = off(&self.db, move |db| db.scan_prefix(&prefix)).await?;
            kv_keys.extend(found.into_iter().map(|(k, _)| k));
        }
        for exact in [
            format!("public|Meta|{repo_key}"),
            format!("public|Files|{repo_key}"),
        ] {
            let k = exact.clone();
            if off(&self.db, move |db| db.get_raw(&k)).await?.is_some() {
                kv_keys.push(exact);
            }
        }
        // Cached API answers of this repository: `api|/api/{plural}/{id}` followed by the end,
        // a path, a query or a sub-record (never another repo whose id merely starts the same).
        let api_prefix = format!("api|/api/{}/{}", repo.kind.api_plural(), repo.id);
        let p = api_prefix.clone();
        let api_keys: Vec<String> = off(&self.db, move |db| db.api_keys(&p))
            .await?
            .into_iter()
            .filter(|k| {
                k[api_prefix.len()..]
                    .chars()
                    .next()
                    .is_none_or(|c| matches!(c, '/' | '?' | '|'))
            })
            .collect();
        if kv_keys.is_empty() && api_keys.is_empty() {
            return Err(ServiceError::repo_not_found(format!(
                "{} {} is not in the cache",
                repo.kind.singular(),
                repo.id
            )));
        }
        let mut report = RemoveReport::default();
        let (k2, a2) = (kv_keys.clone(), api_keys.clone());
        off(&self.db, move |db| {
            db.delete_keys(&k2)?;
            db.delete_api(&a2)
        })
        .await?;
        report.removed.extend(kv_keys);
        report.removed.extend(api_keys);
        // Content no other repository's records name.
        let others = self.file_records("file|".into()).await?;
        let still: HashSet<BlobKey> = others.iter().filter_map(|f| f.key).collect();
        let gone: BTreeSet<BlobKey> = mine
            .iter()
            .filter_map(|f| f.key)
            .filter(|k| !still.contains(k))
            .collect();
        for key in gone {
            match self.blobs.drop_blob(&key).await? {
                Some(bytes) => {
                    report.bytes_freed += bytes;
                    report.removed.push(key.to_string());
                }
                None => tracing::warn!(blob = %key, "cache rm: content is open, kept"),
            }
        }
        // Xorbs of its Xet files that no other repository's Xet files name.
        let sizes = self.xorbs.sizes().await?;
        let xet = self.xet_files(&sizes).await?;
        let xorbs_of = |files: &mut dyn Iterator<Item = &FileRecord>| -> BTreeSet<String> {
            files
                .filter_map(|f| xet.get(f.xet_hash.as_deref()?))
                .flatten()
                .cloned()
                .collect()
        };
        let kept = xorbs_of(&mut others.iter());
        for hash in xorbs_of(&mut mine.iter()).difference(&kept) {
            let (store, h) = (self.xorbs.clone(), hash.clone());
            let freed = tokio::task::spawn_blocking(move || store.remove(&h))
                .await
                .map_err(|e| ServiceError::internal(e.to_string()))?;
            match freed {
                Some(bytes) => {
                    report.bytes_freed += bytes;
                    report.removed.push(format!("xorb/{hash}"));
                }
                None => {
                    tracing::warn!(xorb = %hash, "cache rm: a fill of the xorb is running, kept")
                }
            }
        }
        tracing::info!(repo = %repo_key, records = report.removed.len(), bytes = report.bytes_freed, "cache rm");
        Ok(report)
    }

    /// Removes orphans (data files no record describes), stale partial fills (untouched for
    /// [`STALE_PARTIAL_MS`]) and records without data. Content that no repository file names
    /// is kept: its file records are fetched again on the next request and find it.
    pub async fn gc(&self, dry_run: bool) -> Result<RemoveReport, ServiceError> {
        let found = self.blobs.gc_blobs(STALE_PARTIAL_MS, dry_run).await?;
        let mut report = RemoveReport {
            dry_run,
            ..Default::default()
        };
        for (key, why, bytes) in found {
            report.removed.push(format!("{key} ({})", why.as_str()));
            report.bytes_freed += bytes;
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use olah_config::Config;
    use olah_types::{RepoId, RepoType};
    use sha2::Digest;

    struct Setup {
        _dir: tempfile::TempDir,
        mirror: crate::Mirror,
    }

    fn setup() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let cfg = Arc::new(Config {
            repos_path: dir.path().to_path_buf(),
            ..Default::default()
        });
        let mirror = crate::Mirror::open(cfg).unwrap();
        Setup { _dir: dir, mirror }
    }

    fn repo(id: &str) -> RepoRef {
        RepoRef::new(RepoType::Model, RepoId::new(id).unwrap())
    }

    /// Stores `data` as a complete blob and records it as `path` of `repo` at `commit`.
    async fn cache_file(
        m: &crate::Mirror,
        repo: &RepoRef,
        commit: &str,
        path: &str,
        data: &[u8],
    ) -> BlobKey {
        let hex = hex::encode(sha2::Sha256::digest(data));
        let key: BlobKey = format!("sha256:{hex}").parse().unwrap();
        let blob = m.blobs.open(key, data.len() as u64).await.unwrap();
        struct Src(bytes::Bytes);
        #[async_trait::async_trait]
        impl olah_store::Source for Src {
            async fn fetch(
                &self,
                start: u64,
                end: u64,
            ) -> Result<
                futures::stream::BoxStream<'static, Result<bytes::Bytes, olah_store::SourceError>>,
                olah_store::SourceError,
            > {
                let b = self.0.slice(start as usize..=end as usize);
                Ok(Box::pin(futures::stream::iter([Ok(b)])))
            }
        }
        let src: Arc<dyn olah_store::Source> = Arc::new(Src(bytes::Bytes::copy_from_slice(data)));
        let mut s = BlobStore::read(blob.clone(), 0, data.len() as u64 - 1, Some(src));
        use futures::StreamExt;
        while let Some(c) = s.next().await {
            c.unwrap();
        }
        assert!(blob.status().complete);
        let meta = FileMeta {
            size: data.len() as u64,
            etag: "0".repeat(40),
            linked_etag: Some(hex),
            xet_hash: None,
            content_type: None,
        };
        m.db.put_json(&format!("file|{}|{commit}|{path}", repo.key()), &meta)
            .unwrap();
        m.db.put_json(
            &format!("rev|{}|main", repo.key()),
            &serde_json::json!({"commit": commit, "fetched_at": 1}),
        )
        .unwrap();
        key
    }

    const C1: &str = "1111111111111111111111111111111111111111";

    #[tokio::test]
    async fn ls_rm_and_shared_content() {
        let s = setup();
        let m = &s.mirror;
        let (a, b) = (repo("acme/a"), repo("acme/b"));
        let shared = cache_file(m, &a, C1, "w.bin", &[7u8; 5000]).await;
        cache_file(m, &b, C1, "w.bin", &[7u8; 5000]).await;
        let own = cache_file(m, &a, C1, "x.bin", &[9u8; 3000]).await;
        m.db.put_api_raw("api|/api/models/acme/a/revision/main", b"{}")
            .unwrap();
        m.db.put_api_raw("api|/api/models/acme/ab", b"{}").unwrap();
        let cat = m.catalog();
        let list = cat.repos().await.unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].repo_id, "acme/a");
        assert_eq!((list[0].files, list[0].bytes), (2, 8000));
        assert_eq!(list[0].revisions, vec!["main".to_string(), C1.to_string()]);
        assert_eq!(list[0].repo_type, "model");

        let r = cat.remove(&a).await.unwrap();
        assert!(r.removed.iter().any(|k| k == &own.to_string()));
        assert!(
            !r.removed.iter().any(|k| k == &shared.to_string()),
            "b still uses it"
        );
        assert!(
            r.removed
                .iter()
                .any(|k| k == "api|/api/models/acme/a/revision/main")
        );
        assert!(!r.removed.iter().any(|k| k == "api|/api/models/acme/ab"));
        assert_eq!(r.bytes_freed, 3000);
        let list = cat.repos().await.unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].repo_id, "acme/b");
        assert!(m.db.blob(&own).unwrap().is_none());
        assert!(m.db.blob(&shared).unwrap().is_some());
        // Unknown now.
        let e = cat.remove(&a).await.unwrap_err();
        assert_eq!(e.code, crate::HubCode::RepoNotFound);
    }

    #[tokio::test]
    async fn verify_drops_a_corrupt_blob_and_names_it() {
        let s = setup();
        let m = &s.mirror;
        let a = repo("acme/a");
        let good = cache_file(m, &a, C1, "good.bin", &[1u8; 4000]).await;
        let bad = cache_file(m, &a, C1, "bad.bin", &[2u8; 4000]).await;
        let path = m.blobs.data_path(&bad).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[100] ^= 0xff;
        std::fs::write(&path, bytes).unwrap();
        let cat = m.catalog();
        let r = cat.verify().await.unwrap();
        assert_eq!(r.blobs_checked, 2);
        assert_eq!(r.corrupt.len(), 1);
        assert!(
            r.corrupt[0].starts_with(&bad.to_string()),
            "{:?}",
            r.corrupt
        );
        assert!(r.corrupt[0].contains("models/acme/a/bad.bin"));
        assert!(m.db.blob(&bad).unwrap().is_none(), "dropped");
        assert!(m.db.blob(&good).unwrap().unwrap().complete);
        let again = cat.verify().await.unwrap();
        assert!(again.corrupt.is_empty());
        assert_eq!(again.blobs_checked, 1);
    }

    #[tokio::test]
    async fn gc_removes_orphans_and_records_without_data_but_not_open_blobs() {
        let s = setup();
        let m = &s.mirror;
        let a = repo("acme/a");
        let kept = cache_file(m, &a, C1, "k.bin", &[3u8; 100]).await;
        let lost = cache_file(m, &a, C1, "l.bin", &[4u8; 100]).await;
        std::fs::remove_file(m.blobs.data_path(&lost).unwrap()).unwrap();
        // A data file no record describes.
        let orphan: BlobKey = format!("sha256:{}", "ab".repeat(32)).parse().unwrap();
        let op = m.blobs.data_path(&orphan).unwrap();
        std::fs::create_dir_all(op.parent().unwrap()).unwrap();
        std::fs::write(&op, b"junk").unwrap();
        let cat = m.catalog();
        let dry = cat.gc(true).await.unwrap();
        assert!(dry.dry_run);
        assert_eq!(dry.removed.len(), 2, "{:?}", dry.removed);
        assert!(op.exists(), "a dry run removes nothing");
        let r = cat.gc(false).await.unwrap();
        assert_eq!(r.removed.len(), 2, "{:?}", r.removed);
        assert!(r.removed.iter().any(|l| l.starts_with(&orphan.to_string())));
        assert!(r.removed.iter().any(|l| l.starts_with(&lost.to_string())));
        assert!(!op.exists());
        assert!(m.db.blob(&lost).unwrap().is_none());
        assert!(m.db.blob(&kept).unwrap().is_some());
        // An open blob without a record yet is not garbage.
        let busy: BlobKey = format!("sha256:{}", "cd".repeat(32)).parse().unwrap();
        let held = m.blobs.open(busy, 10).await.unwrap();
        m.db.remove_blob(&busy).unwrap();
        let r = cat.gc(false).await.unwrap();
        assert!(r.removed.is_empty(), "{:?}", r.removed);
        drop(held);
    }
}
