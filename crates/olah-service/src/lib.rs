//! olah-service: what the mirror does, with no HTTP server in it.
//!
//! * [`error`]: [`ServiceError`] — what went wrong, where it came from (client, upstream,
//!   internal) and the Hub error code; the HTTP layer picks the status from it, in one place.
//! * [`source`]: [`source::RepoSource`] — a place Hub repositories come from (the upstream Hub
//!   through the cache, local git repositories, plain directories), behind one HTTP surface.
//! * [`policy`]: the configured rules (proxy/cache rules, offline, TTL, Xet mode, public base).
//! * [`access`]: the fail-closed access gate ([`access::AccessGate`]).
//! * [`hub`]: the upstream Hub through the cache ([`hub::HubCache`]): resolve, API answers,
//!   paths-info, stale-if-error.
//! * [`xet`]: the Xet mirror ([`xet::XetMirror`]): tokens, reconstructions, signed xorb ranges,
//!   verification, the plain-HTTP rebuild of Xet files.
//! * [`files`]: the bytes of a resolved file (cache, fill source, passthrough).
//! * [`hub_source`]: [`hub_source::HubSource`], the upstream Hub as a [`source::RepoSource`].
//! * [`bucket`]: [`bucket::Buckets`], Storage Buckets (read side) through the API cache, the
//!   access gate and the Xet mirror.
//! * [`flight`]: single-flight (concurrent identical requests share one execution).
//! * [`catalog`]: the cache per repository, and the cache tools.
//! * [`stats`]: the mirror's activity for the admin page ([`stats::Activity`]: downloads per
//!   repo, fills in flight, recent errors; all bounded).
//!
//! Dependencies inside the crate point one way: `lib` → {`hub_source` → `files`, `bucket`} →
//! `hub` → `xet`
//! → `access` → {`policy`, `common`, `flight`, `source`} → `error`; `files` → `stats` →
//! `catalog` → `error`.

pub mod access;
pub mod bucket;
pub mod catalog;
mod common;
pub mod error;
pub mod files;
pub mod flight;
pub mod hub;
pub mod hub_source;
pub mod policy;
pub mod source;
pub mod stats;
pub mod xet;

use std::sync::Arc;

use olah_config::Config;
use olah_store::{BlobStore, MetaDb};
use olah_upstream::Upstream;

pub use crate::error::{ErrorKind, HubCode, Origin, Relayed, ServiceError};

use crate::access::AccessGate;
use crate::common::Meta;
use crate::files::Files;
use crate::hub::HubCache;
use crate::hub_source::HubSource;
use crate::policy::Policy;
use crate::stats::Activity;
use crate::xet::XetMirror;

/// The mirror's services, built once from the configuration. Each part owns only what it needs
/// (narrow, private fields); the HTTP layer reaches them through the accessors.
pub struct Mirror {
    policy: Policy,
    db: Arc<MetaDb>,
    gate: Arc<AccessGate>,
    hub: Arc<HubCache>,
    xet: Arc<XetMirror>,
    files: Arc<Files>,
    source: Arc<HubSource>,
    buckets: Arc<bucket::Buckets>,
    blobs: Arc<BlobStore>,
    activity: Arc<Activity>,
    /// Where a damaged metadata database was moved, and why: [`Mirror::start`] rebuilds the
    /// records of the cached blobs from their data files.
    damaged: std::sync::Mutex<Option<(std::path::PathBuf, String)>>,
    started: std::sync::atomic::AtomicBool,
}

impl Mirror {
    /// Opens the store under `cfg.repos_path` (bringing it to the current format: a damaged
    /// database is moved aside, records of older versions and leftovers of a crash are removed)
    /// and builds the services. Starts nothing: [`Mirror::start`] does the start-up work.
    pub fn open(cfg: Arc<Config>) -> Result<Self, String> {
        let root = &cfg.repos_path;
        std::fs::create_dir_all(root)
            .map_err(|e| format!("cannot create repos-path {}: {e}", root.display()))?;
        let (db, damaged) = MetaDb::open_or_recover(&root.join("olah-meta.redb"))
            .map_err(|e| format!("cannot open the metadata database: {e}"))?;
        let db = Arc::new(db);
        // Cached API answers keep to their own budget: an eighth of the size limit, at most the
        // default (bounded even without a limit; counted in the limit's usage total).
        let api_budget = cfg
            .cache_size_limit
            .map_or(olah_store::meta::DEFAULT_API_BUDGET, |l| {
                (l / 8).min(olah_store::meta::DEFAULT_API_BUDGET)
            });
        if let Err(e) = db.set_api_budget(api_budget) {
            tracing::warn!(error = %e, "cannot apply the API cache budget");
        }
        let block = cfg
            .cache_block_size
            .unwrap_or(olah_store::DEFAULT_BLOCK_SIZE);
        let strategy = match cfg.cache_clean_strategy {
            olah_config::CleanStrategy::Lru => olah_store::Strategy::Lru,
            olah_config::CleanStrategy::Fifo => olah_store::Strategy::Fifo,
            olah_config::CleanStrategy::LargeFirst => olah_store::Strategy::LargeFirst,
        };
        let blobs = Arc::new(BlobStore::with_limit(
            root.join("blobs"),
            db.clone(),
            block,
            cfg.cache_size_limit,
            strategy,
        ));
        crate::xet::forget_unproven_memberships(&db)?;
        let mut extra = cfg.upstream_hosts.clone();
        extra.push(cfg.hf_lfs_netloc.clone());
        let upstream = Upstream::new(&cfg.hf_url(), &extra)?;
        let policy = Policy::new(cfg.clone());
        let meta = Meta::new(db.clone());
        let gate = Arc::new(AccessGate::open(
            meta.clone(),
            upstream.clone(),
            policy.clone(),
        )?);
        let xet = Arc::new(XetMirror::open(
            root.join("xorbs"),
            policy.clone(),
            gate.clone(),
            meta.clone(),
            upstream.clone(),
        )?);
        blobs.attach_xorbs(xet.store().clone());
        let hub = Arc::new(HubCache::new(
            policy.clone(),
            gate.clone(),
            meta.clone(),
            upstream.clone(),
            xet.clone(),
        ));
        let buckets = Arc::new(bucket::Buckets::new(
            policy.clone(),
            gate.clone(),
            meta.clone(),
            hub.clone(),
            xet.clone(),
            upstream,
        ));
        let activity = Arc::new(Activity::new());
        let files = Arc::new(Files::new(
            policy.clone(),
            meta,
            blobs.clone(),
            hub.clone(),
            xet.clone(),
            activity.clone(),
        ));
        let source = Arc::new(HubSource::new(hub.clone(), xet.clone(), files.clone()));
        Ok(Self {
            policy,
            db,
            gate,
            hub,
            xet,
            files,
            source,
            buckets,
            blobs,
            activity,
            damaged: std::sync::Mutex::new(damaged),
            started: Default::default(),
        })
    }

    /// The start-up work, separate from building: after a damaged metadata database was moved
    /// aside, re-registers the cached blobs whose content verifies (blocking, proportional to
    /// the cache); then starts the evictor (a background task: call from a Tokio runtime).
    /// Call once before serving; later calls do nothing. Without it the mirror serves, but
    /// nothing is evicted and blobs cached before a database loss are fetched again.
    pub fn start(&self) -> Result<(), String> {
        if self.started.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return Ok(());
        }
        let damaged = self.damaged.lock().map(|mut d| d.take()).unwrap_or(None);
        if let Some((aside, why)) = damaged {
            tracing::warn!(moved_to = %aside.display(), reason = %why,
                "the metadata database was damaged: moved aside, starting with a fresh one; \
                 re-registering the cached blobs that verify");
            let (kept, bytes, dropped) = self
                .blobs
                .recover_blobs()
                .map_err(|e| format!("cannot rebuild the metadata database: {e}"))?;
            tracing::warn!(
                blobs = kept,
                bytes,
                deleted = dropped,
                "cache recovered from the data files (file metadata is fetched again)"
            );
        }
        self.blobs.start_evictor();
        Ok(())
    }

    /// The configured rules.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The access gate.
    pub fn gate(&self) -> &Arc<AccessGate> {
        &self.gate
    }

    /// The upstream Hub through the cache.
    pub fn hub(&self) -> &Arc<HubCache> {
        &self.hub
    }

    /// The Xet mirror.
    pub fn xet(&self) -> &Arc<XetMirror> {
        &self.xet
    }

    /// File bodies.
    pub fn files(&self) -> &Arc<Files> {
        &self.files
    }

    /// The upstream Hub as a repository source (the last of serve mode's sources).
    pub fn source(&self) -> Arc<HubSource> {
        self.source.clone()
    }

    /// Storage Buckets (read side).
    pub fn buckets(&self) -> &Arc<bucket::Buckets> {
        &self.buckets
    }

    /// Whether the mirror can use its cache now: the metadata store is open and not degraded
    /// after an I/O error, and the cache directory takes a write. Never asks the upstream.
    /// `Err` carries the reason (for `/readyz`).
    pub async fn readiness(&self) -> Result<(), String> {
        if self.db.is_degraded() {
            return Err("the metadata store failed a write and is being reopened".into());
        }
        self.blobs
            .probe()
            .await
            .map_err(|e| format!("the cache directory cannot be written: {e}"))
    }

    /// The cache per repository, and the cache tools.
    pub fn catalog(&self) -> catalog::Catalog {
        catalog::Catalog {
            db: self.db.clone(),
            blobs: self.blobs.clone(),
            xorbs: self.xet.store().clone(),
        }
    }

    /// What the mirror is doing (downloads per repo, fills in flight, recent errors).
    pub fn activity(&self) -> &Arc<Activity> {
        &self.activity
    }

    /// Bytes the cache holds now (blobs, xorb ranges, API answers) and the configured limit.
    pub fn cache_usage(&self) -> (u64, Option<u64>) {
        let u = self.blobs.usage();
        (u.bytes(), u.limit())
    }

    /// Sets the cache gauges (`olah_cache_size_bytes`, `olah_cache_limit_bytes`; 0 = no
    /// limit) from the store's running total: call right before reading or encoding them
    /// (`/metrics`, the admin page), so they are right at that moment.
    pub fn refresh_metrics(&self) {
        let usage = self.blobs.usage();
        let m = olah_metrics::metrics();
        m.cache_size
            .set(i64::try_from(usage.bytes()).unwrap_or(i64::MAX));
        m.cache_limit.set(
            usage
                .limit()
                .map_or(0, |l| i64::try_from(l).unwrap_or(i64::MAX)),
        );
    }

    /// The metadata database (to flush it at shutdown).
    pub fn meta_db(&self) -> &Arc<MetaDb> {
        &self.db
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Building spawns nothing (it works outside a Tokio runtime, where a spawn would panic);
    /// `start` does the start-up work once, also after a damaged database was moved aside.
    #[test]
    fn open_builds_only_and_start_does_the_start_up_work() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("olah-meta.redb"), b"not a database").unwrap();
        let cfg = Arc::new(Config {
            repos_path: dir.path().to_path_buf(),
            ..Default::default()
        });
        let m = Mirror::open(cfg).expect("builds without a runtime");
        assert!(
            m.damaged.lock().unwrap().is_some(),
            "recovery is left to start"
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            m.start().expect("start");
            assert!(m.damaged.lock().unwrap().is_none(), "recovered");
            m.start().expect("a second start does nothing");
        });
    }
}
