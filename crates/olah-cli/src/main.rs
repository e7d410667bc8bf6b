//! `olah-cli`: a self-hosted Hugging Face Hub mirror, drop-in for the Python olah.

mod cache;
mod config_show;
mod logging;
mod prefetch;

use std::sync::Arc;

use anyhow::Context;
use olah_config::{Command, Config};

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down");
}

/// Raises the open-file limit to its hard maximum (sockets and cache files are file
/// descriptors) and returns the limit now in force.
fn raise_nofile_limit() -> u64 {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!(error = %e, "cannot raise the open-file limit");
            rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(1024, |(soft, _)| soft)
        }
    }
}

fn main() -> anyhow::Result<()> {
    let (cfg, command) = match olah_config::load() {
        Ok(v) => v,
        Err(olah_config::ConfigError::Help(text)) => {
            print!("{text}");
            return Ok(());
        }
        Err(e) => {
            eprintln!("olah-cli: {e}");
            std::process::exit(2);
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    // The tools: their own exit status, no listener, no log files.
    let code = match command {
        Command::Prefetch(args) => rt.block_on(prefetch::run(args))?,
        Command::Cache(c) => rt.block_on(cache::run(&cfg, c))?,
        Command::ConfigShow { sources } => config_show::run(&cfg, sources)?,
        command => return rt.block_on(run(cfg, command)),
    };
    std::process::exit(code)
}

async fn run(cfg: Config, command: Command) -> anyhow::Result<()> {
    let _guard = logging::init(&cfg)?;
    // TLS material is checked before anything else: a wrong key file stops start-up clearly.
    let tls = match (&cfg.ssl_cert, &cfg.ssl_key) {
        (Some(cert), Some(key)) => {
            Some(olah_http::tls::load_acceptor(cert, key).map_err(anyhow::Error::msg)?)
        }
        _ => None,
    };
    let nofile = raise_nofile_limit();
    let opts = olah_http::serve::ServeOptions {
        max_connections: cfg.max_connections.map_or_else(
            || olah_http::serve::default_max_connections(nofile),
            |n| n as usize,
        ),
        header_timeout: std::time::Duration::from_secs(cfg.header_timeout),
        idle_timeout: std::time::Duration::from_secs(cfg.idle_timeout),
    };
    let addr = format!("{}:{}", cfg.host, cfg.port);
    let tcp = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let local = tcp.local_addr()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mut server_file = None;
    let (app, db) = match command {
        Command::Serve => {
            let cfg = Arc::new(cfg);
            let mirror =
                Arc::new(olah_http::Mirror::open(cfg.clone()).map_err(anyhow::Error::msg)?);
            mirror.start().map_err(anyhow::Error::msg)?;
            tracing::info!(
                listen = %format!("{scheme}://{local}"),
                mirror_url = %cfg.mirror_url(),
                max_connections = opts.max_connections,
                open_file_limit = nofile,
                upstream = %cfg.hf_url(),
                repos_path = %cfg.repos_path.display(),
                offline = cfg.offline,
                "olah-rs mirror ready"
            );
            let bare = cfg.host.trim_start_matches('[').trim_end_matches(']');
            if matches!(bare, "0.0.0.0" | "::") && cfg.mirror_names.is_empty() {
                tracing::warn!(
                    mirror_url = %cfg.mirror_url(),
                    "Xet and pagination URLs name the mirror-netloc unless a request's Host is \
                     listed: set mirror-netloc (or mirror-names) to the names clients use"
                );
            }
            let db = mirror.meta_db().clone();
            server_file = cache::write_server_file(&cfg.repos_path, scheme, local);
            (olah_http::router(olah_http::App::serve(mirror)), Some(db))
        }
        Command::ModelBin { path } => {
            tracing::info!(
                listen = %format!("{scheme}://{local}"),
                path = %path.display(),
                "olah-rs model-bin ready (offline, serving directories as model repos)"
            );
            (olah_http::router(olah_http::App::model_bin(path)), None)
        }
        Command::Prefetch(_) | Command::Cache(_) | Command::ConfigShow { .. } => {
            unreachable!("tools are run by main")
        }
    };
    let served = olah_http::serve::serve(tcp, tls, app, opts, shutdown_signal()).await;
    if let Some(path) = server_file {
        let _ = std::fs::remove_file(path);
    }
    served?;
    // Block records are committed lazily: make them durable before exiting.
    if let Some(db) = db
        && let Err(e) = db.flush()
    {
        tracing::warn!(error = %e, "could not flush the metadata database");
    }
    Ok(())
}
