//! `olah-fakehub`: the test kit's fake Hub as a process (for the Python real-client suite and
//! benchmarks).
//!
//! ```text
//! olah-fakehub [--hub-port 0] [--cdn-port 0] [--big-size 268435456] [--xet-size 33554432]
//! ```
//! Serves [`Fixture::standard`] (documented in `olah_testkit::standard`) on 127.0.0.1, prints
//! ONE JSON line to stdout once both servers accept connections, and serves until SIGTERM or
//! SIGINT (stdin is ignored):
//! `{"hub": "http://127.0.0.1:P", "cdn": "http://127.0.0.1:Q", "files": {KEY: INFO, …}}`
//! where KEY is `"{plural}/{id}@{rev}:{path}"` (rev: branch/tag short name, `refs/pr/N`,
//! `refs/convert/NAME`, or a 40-hex commit sha) and INFO is
//! `{"sha256", "size", "oid", "etag", "lfs", "xet", "xetHash", "commit"}`.
//! Admin API on the hub URL: `GET /__admin/stats`, `POST /__admin/reset`,
//! `GET|POST /__admin/faults`, `GET /__admin/files`. Logs go to stderr (`RUST_LOG`, default `warn`).

use std::io::Write;

use clap::Parser;
use olah_testkit::{FakeHub, Fixture};
use serde_json::json;

#[derive(Parser)]
#[command(
    name = "olah-fakehub",
    about = "A fake huggingface.co (hub + CDN) for tests"
)]
struct Args {
    /// Hub port on 127.0.0.1 (0 = ephemeral).
    #[arg(long, default_value_t = 0)]
    hub_port: u16,
    /// CDN port on 127.0.0.1 (0 = ephemeral).
    #[arg(long, default_value_t = 0)]
    cdn_port: u16,
    /// Size in bytes of acme/big's big.bin.
    #[arg(long, default_value_t = 256 << 20)]
    big_size: u64,
    /// Size in bytes of acme/xet-big's weights.bin (Xet; two revisions).
    #[arg(long, default_value_t = 32 << 20)]
    xet_size: u64,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let args = Args::parse();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let hub = FakeHub::start_on(
        Fixture::standard_with(args.big_size, args.xet_size),
        args.hub_port,
        args.cdn_port,
    )
    .await?;
    let line = json!({
        "hub": hub.hub_url(),
        "cdn": hub.cdn_url(),
        "files": hub.fixture().manifest(),
    });
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}")?;
        out.flush()?;
    }
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    Ok(())
}
