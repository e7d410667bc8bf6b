//! `olah-cli config show [--sources]`: the effective configuration as olah's `configs.toml`
//! (it reads back with `-c` to the same configuration; secrets are never printed).

use olah_config::Config;

/// Prints the effective configuration; returns the exit status.
pub(crate) fn run(cfg: &Config, sources: bool) -> anyhow::Result<i32> {
    // The origins come from a second read of the same arguments (cheap, and the same result:
    // `main` loaded them a moment ago), so `main` keeps one load path for every command.
    let (again, _, origins) = olah_config::load_with_sources()?;
    anyhow::ensure!(
        &again == cfg,
        "the configuration changed while it was read (a token file?)"
    );
    print!("{}", cfg.to_toml(&origins, sources));
    Ok(0)
}
