//! Binaries composed from the gateway crates, as a user would compose their own.
//!
//! Run them with `cargo run --example NAME`. Each uses only the crates' public APIs; the
//! pieces they share live here:
//!
//! - [`serve`]: `gateway run`'s loop (a [`ConfigSource`](gateway_core::source::ConfigSource)
//!   → compile → [`Gateway::apply`](gateway_net::Gateway::apply)), signals, progress lines;
//! - [`check`]: `gateway check`;
//! - [`seed_demo`], [`backends`], [`grpc`]: the seed demo with its backends in one process,
//!   and a gRPC client for its TLS listener.

pub mod backends;
pub mod check;
pub mod grpc;
pub mod seed_demo;
pub mod serve;

/// Log output format of the binaries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The operations flags of every binary: the admin endpoint and the access log.
#[derive(Clone, Debug, clap::Args)]
pub struct OperationsArgs {
    /// Address of the admin endpoint (`/metrics`, `/ready`, `/healthz`, `/config`,
    /// `/status`). Keep it on loopback or a private interface: it shows the whole
    /// configuration.
    #[arg(long, default_value = "127.0.0.1:9901")]
    pub admin_address: std::net::SocketAddr,
    /// Do not serve the admin endpoint.
    #[arg(long)]
    pub no_admin: bool,
    /// Do not write the access log (one line per HTTP request, on stderr, in
    /// `--log-format`).
    #[arg(long)]
    pub no_access_log: bool,
}

impl OperationsArgs {
    /// Where to serve the admin endpoint, unless `--no-admin`.
    #[must_use]
    pub fn admin(&self) -> Option<std::net::SocketAddr> {
        (!self.no_admin).then_some(self.admin_address)
    }
}

/// Installs the `tracing` subscriber of the binaries: `level` is a level or a tracing
/// directive (an invalid one falls back to `warn`), output goes to stderr in `format`.
///
/// With `access_log`, the access log (target `access_log`, INFO) is shown whatever `level`
/// says, unless `level` names the `access_log` target itself.
pub fn init_logging(level: &str, format: LogFormat, access_log: bool) {
    let mut filter = tracing_subscriber::EnvFilter::try_new(level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    if access_log
        && !level.contains("access_log")
        && let Ok(directive) = "access_log=info".parse()
    {
        filter = filter.add_directive(directive);
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
