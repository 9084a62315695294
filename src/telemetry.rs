//! Logging through `tracing`: human-readable by default, JSON lines on request.

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global log subscriber (level from `RUST_LOG`, default `info`). Calling it twice
/// keeps the first.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _already_installed = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
