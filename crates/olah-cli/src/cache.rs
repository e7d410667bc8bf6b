//! `olah-cli cache ls|verify|rm|gc` on `repos-path`: directly when no server holds the cache,
//! else through the running server's admin API.

use olah_config::{CacheCommand, Config};

/// Runs one cache tool; returns the exit status.
pub(crate) async fn run(cfg: &Config, cmd: CacheCommand) -> anyhow::Result<i32> {
    let _ = (cfg, cmd);
    anyhow::bail!("cache tools are not built yet")
}
