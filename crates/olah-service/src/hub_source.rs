//! The upstream Hub through the cache as a [`RepoSource`]: a file is resolve + the access gate
//! (both in [`HubCache::resolve`]) + [`Files::body`]; metadata is the Hub's own JSON, verbatim
//! from the cache, with `xetHash` stripped where the repo is not served over Xet.
//!
//! Lives above [`crate::files`] and [`crate::hub`] (not in `source/`, which they depend on for
//! the trait types), so the crate's modules keep pointing one way.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use olah_metrics::{Lookup, metrics};
use olah_types::{RepoPath, RepoRef, Revision, Route};

use crate::error::ServiceError;
use crate::files::Files;
use crate::hub::{CachedResponse, HubCache};
use crate::source::{FileHead, MetaAnswer, MetaRequest, Outcome, RepoFile, RepoSource, RequestCtx};
use crate::xet::{self, XetMirror};

/// The upstream Hub as a repository source. Owns every repo (it is the last source tried).
pub struct HubSource {
    hub: Arc<HubCache>,
    xet: Arc<XetMirror>,
    files: Arc<Files>,
}

impl HubSource {
    /// The span/metric label of this source.
    pub const NAME: &'static str = "hub";

    pub(crate) fn new(hub: Arc<HubCache>, xet: Arc<XetMirror>, files: Arc<Files>) -> Self {
        Self { hub, xet, files }
    }

    /// A cached (or fresh) API answer as a [`MetaAnswer`]: the Hub's JSON, `xetHash` kept only
    /// where clients speak Xet to the mirror (elsewhere it would send them upstream).
    async fn answer(
        &self,
        cx: &RequestCtx,
        route: &Route,
        c: &CachedResponse,
        outcome: Outcome,
    ) -> MetaAnswer {
        self.xet
            .check_listing(route, &c.body, cx.auth.as_ref())
            .await;
        let body = match route.repo() {
            Some(repo) if self.xet.serves(repo) => c.body.clone(),
            _ => xet::strip_json(&c.body),
        };
        MetaAnswer {
            status: c.status,
            content_type: c.content_type.clone(),
            body: Bytes::from(body),
            link: c.link.clone(),
            commit: None,
            outcome,
        }
    }
}

#[async_trait]
impl RepoSource for HubSource {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    async fn owns(&self, _repo: &RepoRef) -> bool {
        true
    }

    async fn file(
        &self,
        cx: &RequestCtx,
        repo: &RepoRef,
        revision: &Revision,
        path: &RepoPath,
    ) -> Result<RepoFile, ServiceError> {
        let auth = cx.auth.as_ref();
        let res = self.hub.resolve(repo, revision, path, auth).await?;
        if res.meta.xet_hash.is_some() {
            // Learn first whether Xet can be offered at all (an upstream CAS outside the allow
            // list means plain HTTP for this file).
            self.xet.check_cas(repo, &res.commit, auth).await;
        }
        let meta = &res.meta;
        let head = FileHead {
            commit: Some(res.commit.clone()),
            size: meta.size,
            etag: meta.client_etag().to_string(),
            linked: meta
                .linked_etag
                .as_ref()
                .map(|_| (meta.client_etag().to_string(), meta.size)),
            // Advertised only where clients speak Xet to the mirror; the body below still
            // rebuilds a Xet file from the xorb cache either way.
            xet_hash: meta.xet_hash.clone().filter(|_| self.xet.serves(repo)),
            content_type: meta
                .content_type
                .clone()
                .unwrap_or_else(|| "application/octet-stream".into()),
            outcome: res.cache,
        };
        let body = Arc::new(self.files.body(repo, path, &res, auth));
        Ok(RepoFile { head, body })
    }

    async fn meta(&self, cx: &RequestCtx, req: &MetaRequest) -> Result<MetaAnswer, ServiceError> {
        let auth = cx.auth.as_ref();
        let (c, outcome) = match &req.paths {
            Some(paths) => self.hub.paths_info(&req.route, paths, auth).await?,
            None => {
                self.hub
                    .api(&req.route, req.query.as_deref(), None, auth)
                    .await?
            }
        };
        // One cache lookup per metadata answer.
        metrics().lookup(match outcome {
            Outcome::Hit | Outcome::Local => Lookup::hit,
            Outcome::Miss => Lookup::miss,
            Outcome::Revalidated => Lookup::revalidated,
            Outcome::Stale => Lookup::stale,
        });
        Ok(self.answer(cx, &req.route, &c, outcome).await)
    }
}
