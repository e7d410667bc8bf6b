//! Logging: stderr and a daily log file under `log-path`, as text (default) or JSON lines
//! (`--log-format json`: one object per line with `timestamp`, `level`, `target`, the event's
//! fields and the current span's fields under `span`; a request's `response` line carries
//! method, path, status, repo, revision, cache... there).

use std::io::IsTerminal;

use anyhow::Context;
use olah_config::{Config, LogFormat};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::field::MakeExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Installs the subscriber; keep the guard alive until exit (it flushes the file writer).
pub(crate) fn init(cfg: &Config) -> anyhow::Result<tracing_appender::non_blocking::WorkerGuard> {
    std::fs::create_dir_all(&cfg.log_path)
        .with_context(|| format!("cannot create log-path {}", cfg.log_path.display()))?;
    let file = tracing_appender::rolling::Builder::new()
        .rotation(tracing_appender::rolling::Rotation::DAILY)
        .filename_prefix("olah")
        .filename_suffix("log")
        .max_log_files(14)
        .build(&cfg.log_path)
        .context("cannot open the log file")?;
    let (file_writer, guard) = tracing_appender::non_blocking(file);
    let filter = EnvFilter::try_from_env("OLAH_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    match cfg.log_format {
        LogFormat::Json => {
            // Both layers format span fields with `JsonFields`; the cached span fields they
            // share are a JSON object that each record merges into, so nothing is duplicated.
            registry
                .with(json_layer(std::io::stderr))
                .with(json_layer(file_writer))
                .init();
        }
        LogFormat::Text => {
            registry
                .with(
                    tracing_subscriber::fmt::layer()
                        .with_ansi(std::io::stderr().is_terminal())
                        .with_writer(std::io::stderr),
                )
                // A field formatter of its own type: span fields formatted for one layer are
                // cached per formatter type, so sharing DefaultFields would leak stderr's colours
                // (and duplicate recorded fields) into the file.
                .with(
                    tracing_subscriber::fmt::layer()
                        .with_ansi(false)
                        .fmt_fields(
                            tracing_subscriber::fmt::format::debug_fn(|w, field, value| {
                                if field.name() == "message" {
                                    write!(w, "{value:?}")
                                } else {
                                    write!(w, "{field}={value:?}")
                                }
                            })
                            .delimited(" "),
                        )
                        .with_writer(file_writer),
                )
                .init();
        }
    }
    Ok(guard)
}

/// One JSON object per line: the event's fields at the top level, the current span's (the
/// request's) under `span`.
fn json_layer<S, W>(writer: W) -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + 'static,
{
    tracing_subscriber::fmt::layer()
        .json()
        .with_current_span(true)
        .with_span_list(false)
        .flatten_event(true)
        .with_writer(writer)
}
