//! `olah-cli prefetch`: pull a repository's files through a running mirror so its cache holds
//! them.

use olah_config::PrefetchArgs;

/// Runs the prefetch; returns the exit status.
pub(crate) async fn run(args: PrefetchArgs) -> anyhow::Result<i32> {
    let _ = args;
    anyhow::bail!("prefetch is not built yet")
}
