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
//! * [`flight`]: single-flight (concurrent identical requests share one execution).
//!
//! Dependencies inside the crate point one way: `lib` → `hub_source` → `files` → `hub` → `xet`
//! → `access` → {`policy`, `common`, `flight`, `source`} → `error`.

pub mod access;
mod common;
pub mod error;
pub mod files;
pub mod flight;
pub mod hub;
pub mod hub_source;
pub mod policy;
pub mod source;
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
}

impl Mirror {
    /// Opens the store under `cfg.repos_path` and builds the services.
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
        if let Some((aside, why)) = damaged {
            tracing::warn!(moved_to = %aside.display(), reason = %why,
                "the metadata database was damaged: moved aside, starting with a fresh one; \
                 re-registering the cached blobs that verify");
            let (kept, bytes, dropped) = blobs
                .recover_blobs()
                .map_err(|e| format!("cannot rebuild the metadata database: {e}"))?;
            tracing::warn!(
                blobs = kept,
                bytes,
                deleted = dropped,
                "cache recovered from the data files (file metadata is fetched again)"
            );
        }
        blobs.start_evictor();
        let hub = Arc::new(HubCache::new(
            policy.clone(),
            gate.clone(),
            meta.clone(),
            upstream,
            xet.clone(),
        ));
        let files = Arc::new(Files::new(
            policy.clone(),
            meta,
            blobs,
            hub.clone(),
            xet.clone(),
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
        })
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

    /// The metadata database (to flush it at shutdown).
    pub fn meta_db(&self) -> &Arc<MetaDb> {
        &self.db
    }
}
