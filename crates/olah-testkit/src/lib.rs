//! olah-testkit: a faithful fake huggingface.co for tests and benchmarks.
//!
//! [`FakeHub::start`] runs two HTTP/1.1 servers on 127.0.0.1: a **hub host** (what clients use
//! as `HF_ENDPOINT`) and a separate **CDN host** (LFS redirect targets and Xet xorb ranges), so
//! that `huggingface_hub`'s metadata HEAD stops at the cross-origin redirect exactly as it does
//! against huggingface.co (PROTOCOL.md §1.3).
//!
//! Hub host (PROTOCOL.md §2–3, §7):
//! * `HEAD|GET /{[datasets/|spaces/|kernels/]}{repo}/resolve/{rev}/{path}`: regular files 200
//!   with `ETag: "<git sha1>"`, `X-Repo-Commit`, `Content-Length`, `Content-Type`,
//!   `Accept-Ranges` and single-range support (206/416); LFS files 302 to a signed absolute CDN
//!   URL with `ETag` (pointer oid), `X-Linked-Etag: "<sha256>"`, `X-Linked-Size`; Xet files also
//!   `X-Xet-Hash` and `Link: <…xet-read-token…>; rel="xet-auth", <…>; rel="xet-reconstruction-info"`.
//!   Revisions may be branch/tag names, full refs (`refs%2Fpr%2F1`), full or ≥7-digit short shas.
//! * `GET|HEAD /api/{t}s/{repo}[/revision/{rev}]` (`?blobs=true`, `?expand=…`),
//!   `GET /api/{t}s/{repo}/tree/{rev}[/{path}]` (`recursive`, `expand`, `limit`, `cursor`;
//!   absolute `Link: <…>; rel="next"`), `POST …/paths-info/{rev}` (form or JSON),
//!   `GET …/refs[?include_prs=1]`, `GET …/commits/{rev}` (newest first, paginated with `p`),
//!   `GET /api/whoami-v2`, `GET …/xet-read-token/{rev}` (headers + JSON), and the Xet CAS API
//!   under `/cas/` (`v1`/`v2` reconstructions; see [`cas`]).
//! * Errors carry `X-Error-Code`/`X-Error-Message` and `{"error": …}`: `RepoNotFound` (401
//!   anonymous, 404 with a token; also for private repos without an owner token),
//!   `RevisionNotFound` 404, `EntryNotFound` 404 (with `X-Repo-Commit`), `GatedRepo` (401
//!   anonymous, 403 not granted); a token not in [`Fixture::tokens`] gets 401 `Invalid
//!   credentials in Authorization header` on every route.
//!
//! CDN host: `GET|HEAD /lfs/{sha256}?repo=…&Expires=…&Signature=…` (403 on a bad or expired
//! signature; no `Authorization` needed) and `/xorb/default/{hash}?X-Xet-Signed-Range=…`.
//!
//! Observability and faults ([`Stats`], [`Faults`]): request counters per host, method and
//! [`RouteKind`], body bytes per host, a bounded log of recent requests; latency, bandwidth
//! pacing, bodies cut after N bytes, 503 and 429 bursts, scoped to the hub, the CDN or both.
//! The same is reachable over HTTP on the hub host: `GET /__admin/stats`, `POST /__admin/reset`,
//! `GET|POST /__admin/faults`, `GET|POST /__admin/rewrites` (hostile mode: [`Rewrite`] rules
//! that rewrite chosen answers' status, headers and JSON), `GET /__admin/files` (the
//! [`Fixture::manifest`]).
//!
//! The `olah-fakehub` binary serves [`Fixture::standard`] (see [`standard`]).

mod bucket;
pub mod cas;
mod cdn;
pub mod faults;
pub mod fixture;
mod hub;
mod resp;
pub mod rewrite;
pub mod server;
pub mod standard;
pub mod stats;

pub use faults::{Faults, Scope};
pub use fixture::{
    BucketFixture, CommitFixture, Content, FileFixture, Fixture, Kind, RepoFixture, Visibility,
    git_blob_sha1, iso_date, lfs_pointer_text,
};
pub use rewrite::{Rewrite, RewriteHost};
pub use server::{FakeHub, HubState};
pub use stats::{HostKind, LoggedRequest, RouteKind, Stats};
