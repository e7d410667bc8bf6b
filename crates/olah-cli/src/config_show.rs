//! `olah-cli config show [--sources]`.

use olah_config::Config;

/// Prints the effective configuration; returns the exit status.
pub(crate) fn run(cfg: &Config, sources: bool) -> anyhow::Result<i32> {
    let _ = (cfg, sources);
    anyhow::bail!("config show is not built yet")
}
