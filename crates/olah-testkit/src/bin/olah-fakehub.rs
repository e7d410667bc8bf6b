//! `olah-fakehub`: the test kit's fake Hub as a process (for the Python suite and benchmarks).
//!
//! Prints one JSON line `{"hub": URL, "cdn": URL, "files": {...}}` and serves until SIGTERM or
//! SIGINT. `files` maps `"{plural}/{id}@{rev}:{path}"` to `{"sha256", "size", "oid"}` for every
//! file at every ref of the standard fixture. Admin: `GET /__admin/stats`, `POST /__admin/reset`,
//! `POST /__admin/faults` on the hub URL.

use std::io::Write;

use clap::Parser;
use olah_testkit::{FakeHub, Fixture};
use serde_json::json;

#[derive(Parser)]
struct Args {
    /// Hub port (0 = ephemeral).
    #[arg(long, default_value_t = 0)]
    hub_port: u16,
    /// CDN port (0 = ephemeral).
    #[arg(long, default_value_t = 0)]
    cdn_port: u16,
    /// Size of acme/big's big.bin.
    #[arg(long, default_value_t = 256 << 20)]
    big_size: u64,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let fixture = Fixture::standard(args.big_size);
    let mut files = serde_json::Map::new();
    for r in &fixture.repos {
        for (name, idx) in &r.refs {
            let short = ["refs/heads/", "refs/tags/"]
                .iter()
                .find_map(|p| name.strip_prefix(p))
                .unwrap_or(name);
            let c = &r.commits[*idx];
            for (p, f) in &c.files {
                let v = json!({"sha256": f.sha256(), "size": f.size(), "oid": f.oid(), "lfs": f.lfs, "commit": c.sha});
                files.insert(
                    format!("{}/{}@{short}:{p}", r.kind.plural(), r.id),
                    v.clone(),
                );
                files.insert(format!("{}/{}@{}:{p}", r.kind.plural(), r.id, c.sha), v);
            }
        }
    }
    let hub = FakeHub::start_on(fixture, args.hub_port, args.cdn_port).await?;
    let line = json!({"hub": hub.hub_url(), "cdn": hub.cdn_url(), "files": files});
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()?;
    drop(out);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    Ok(())
}
