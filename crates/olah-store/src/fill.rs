//! The fill lock: who fetches a missing run of blocks, and who waits for it (pingora-cache's
//! `lock.rs` contract).
//!
//! A reader asks [`FillLock::claim`] for the block it needs next and gets one of:
//!
//! * [`Claim::Present`]: the block is stored (with its CRC): read it.
//! * [`Claim::Follow`]: someone is filling it: follow that fill.
//! * [`Claim::Lead`]: it was missing and the reader now holds the permit for the whole run of
//!   consecutive missing blocks its range needs: start ONE upstream fetch for them.
//! * [`Claim::Missing`]: missing, and the reader may not lead (offline).
//!
//! **Drop semantics.** A permit dropped before its blocks are finished — fill error, panic,
//! task cancelled — means the fill failed: its unfinished blocks go back to missing and their
//! followers are told at once, so they claim again (one of them leads the retry). Nobody waits
//! on a dead fill.
//!
//! The in-process implementation is the blob's slot table (`blob.rs`: `Slot::Filling`
//! with a [`BlockFill`] followers stream from). A cluster version (#14) implements the same
//! trait over leases in the index: `Watch` then polls the index for the block, and an expired
//! lease is claimed again.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::watch;

/// The answer to a claim.
pub enum Claim<P, W> {
    /// Stored, with its CRC.
    Present(u32),
    /// Being filled: follow it.
    Follow(W),
    /// Missing and now ours to fill (the permit covers the whole claimed run).
    Lead(P),
    /// Missing, and the caller may not lead.
    Missing,
}

/// Single-flight for block fills.
pub trait FillLock {
    /// What a leader holds: dropping it unfinished fails the fill (see the module docs).
    type Permit;
    /// What a follower watches.
    type Watch;

    /// Claims block `idx` for a reader whose range ends in block `last`. When it is missing and
    /// `lead` is set, claims the run of consecutive missing blocks from `idx` up to `last`.
    fn claim(&self, idx: u32, last: u32, lead: bool) -> Claim<Self::Permit, Self::Watch>;
}

/// One upstream fill in flight (`olah_fills_in_flight`) from its start until this is dropped:
/// held by a fill's permit or task, so a fill that ends any way (done, failed, cancelled)
/// leaves the gauge.
pub(crate) struct InFlight(());

impl InFlight {
    pub(crate) fn start() -> Self {
        olah_metrics::metrics().fills_in_flight.inc();
        Self(())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        olah_metrics::metrics().fills_in_flight.dec();
    }
}

/// The state of one block, as the in-process lock keeps it.
#[derive(Clone)]
pub(crate) enum Slot {
    Missing,
    Present(u32),
    Filling(Arc<BlockFill>),
}

/// The in-flight bytes of one block being filled: what followers of the in-process lock watch.
/// The leader appends upstream chunks and publishes the length on a `watch`; followers send
/// bytes as soon as they arrive.
pub struct BlockFill {
    pub(crate) chunks: Mutex<Vec<Bytes>>,
    pub(crate) progress: watch::Sender<Progress>,
    /// Set before a failure whose delivered bytes are known to be wrong.
    pub(crate) corrupt: std::sync::atomic::AtomicBool,
}

/// Where a block fill stands.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum FillState {
    Running,
    Done,
    Failed,
}

/// Bytes buffered so far and the state.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Progress {
    pub(crate) len: u64,
    pub(crate) state: FillState,
}

impl BlockFill {
    pub(crate) fn new() -> Arc<Self> {
        let (progress, _) = watch::channel(Progress {
            len: 0,
            state: FillState::Running,
        });
        Arc::new(Self {
            chunks: Mutex::new(Vec::new()),
            progress,
            corrupt: std::sync::atomic::AtomicBool::new(false),
        })
    }

    pub(crate) fn push(&self, data: Bytes) {
        let n = data.len() as u64;
        self.chunks.lock().expect("fill buffer lock").push(data);
        self.progress.send_modify(|p| p.len += n);
    }

    pub(crate) fn finish(&self, state: FillState) {
        self.progress.send_modify(|p| p.state = state);
    }

    /// The buffered bytes `from..to` of the block, as zero-copy slices.
    pub(crate) fn slice(&self, from: u64, to: u64) -> Vec<Bytes> {
        let chunks = self.chunks.lock().expect("fill buffer lock");
        let mut out = Vec::new();
        let mut off = 0u64;
        for c in chunks.iter() {
            let (cs, ce) = (off, off + c.len() as u64);
            off = ce;
            if ce <= from {
                continue;
            }
            if cs >= to {
                break;
            }
            let s = from.max(cs) - cs;
            let e = to.min(ce) - cs;
            out.push(c.slice(s as usize..e as usize));
        }
        out
    }
}
