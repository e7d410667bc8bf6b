//! olah-testkit: a faithful fake huggingface.co for tests and benchmarks.
//!
//! [`FakeHub`] runs a hub host and a separate CDN host on 127.0.0.1: resolve (200 for regular
//! files, 302 to the CDN for LFS with `X-Linked-Etag`/`X-Linked-Size`, Xet headers for Xet
//! files), the repo/revision/tree/paths-info/refs/commits/whoami/xet-read-token APIs, gated and
//! private repos, Hub error codes, tree pagination with absolute `Link`s, Range, request and byte
//! counters, and fault knobs (latency, bandwidth, cut bodies, 503/429 bursts). The `olah-fakehub`
//! binary serves [`Fixture::standard`] for the Python real-client suite.

pub mod cas;
pub mod fixture;
pub mod hub;

pub use fixture::{
    CommitFixture, Content, FileFixture, Fixture, Kind, RepoFixture, Visibility, git_blob_sha1,
    lfs_pointer_text,
};
pub use hub::{FakeHub, Faults, LoggedRequest, Stats};
