//! The `gateway` command: serves a folder of Gateway API manifests, or checks it.
//!
//! ```text
//! cargo run --example gateway -- run --config ../shared/seed-demo --port-offset 10000
//! cargo run --example gateway -- check --config ../shared/seed-demo
//! ```
//!
//! `run` watches the folder and serves every good version of it: each change is compiled and
//! applied without dropping connections; a change that does not load is reported and the last
//! good configuration keeps serving. SIGTERM or SIGINT drains open connections (within
//! `--drain-timeout`) and exits 0. The admin endpoint (`/metrics`, `/ready`, `/healthz`,
//! `/config`, `/status`) listens on `--admin-address` (127.0.0.1:9901 unless `--no-admin`);
//! the access log goes to stderr with the other logs, in `--log-format`, unless
//! `--no-access-log`.
//!
//! `check` loads the manifests the way the file source serves them, compiles them, prints the
//! conditions of every GatewayClass, Gateway, Listener and Route, and exits non-zero when any
//! of them is not Accepted, Programmed or ResolvedRefs (or is PartiallyInvalid), or when a
//! manifest does not load.

#![allow(clippy::print_stdout)] // a command-line tool: stdout is its output

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use gateway_core::compile::Options;
use gateway_examples::check::{Checked, check};
use gateway_examples::serve::{self, RunOptions};
use gateway_examples::{LogFormat, OperationsArgs, init_logging};
use gateway_file::FileSource;
use gateway_net::admin::{AdminServer, AdminState};
use gateway_net::{Gateway, GatewayConfig};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(
    name = "gateway",
    version,
    about = "An embeddable Kubernetes Gateway API gateway"
)]
struct Cli {
    /// Log level filter (`error`, `warn`, `info`, `debug`, `trace`, or a tracing directive).
    #[arg(long, global = true, default_value = "warn", env = "GATEWAY_LOG")]
    log_level: String,
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum Output {
    /// One row per condition, then problems.
    Table,
    /// The full status objects, as a controller would write them.
    Yaml,
    /// The full status objects and the compiled configuration, as JSON.
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Serve a manifest file or folder, reloading it when it changes.
    Run {
        /// A manifest file or a folder of manifests (read recursively, watched).
        #[arg(long, short = 'c')]
        config: PathBuf,
        /// Serve only GatewayClasses with this controllerName. Default: every GatewayClass
        /// (a folder of manifests is meant to be served whatever class it names).
        #[arg(long)]
        controller_name: Option<String>,
        /// Added to every listener port when binding, for an unprivileged run of manifests
        /// that use ports below 1024 (e.g. 10000: 80 → 10080, 443 → 10443). The manifests
        /// are not edited; status and redirects keep their ports.
        #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
        port_offset: i32,
        /// How long open connections may take to finish on shutdown or when their listener
        /// is removed (`30s`, `500ms`, `2m`).
        #[arg(long, default_value = "30s", value_parser = serve::parse_duration)]
        drain_timeout: Duration,
        /// Print every resource's conditions after each reload, not only the problems.
        #[arg(long)]
        print_status: bool,
        #[command(flatten)]
        ops: OperationsArgs,
        /// Threads serving traffic (Tokio worker threads). Default: one per CPU. The
        /// work-stealing scheduler is kept even for one thread: its next-task slot runs a
        /// task woken by the running one at once, which HTTP/2 (a task per stream) needs;
        /// Tokio's current-thread scheduler measured 5 µs more CPU per request with 16
        /// connections × 32 streams, and 1.5 µs less with HTTP/1.1 (see `bench/`).
        #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
        threads: Option<u16>,
    },
    /// Compile manifests without serving and print every resource's conditions.
    Check {
        /// A manifest file or a folder of manifests (read recursively).
        #[arg(long, short = 'c')]
        config: PathBuf,
        /// Serve only GatewayClasses with this controllerName. Default: every GatewayClass
        /// (a folder of manifests is meant to be served whatever class it names).
        #[arg(long)]
        controller_name: Option<String>,
        /// Namespace for objects that name none (as kubectl does).
        #[arg(long, default_value = "default")]
        default_namespace: String,
        /// Output format.
        #[arg(long, short = 'o', value_enum, default_value_t = Output::Table)]
        output: Output,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let access_log = match &cli.command {
        Command::Run { ops, .. } => !ops.no_access_log,
        Command::Check { .. } => false,
    };
    init_logging(&cli.log_level, cli.log_format, access_log);
    let result = match cli.command {
        Command::Run {
            config,
            controller_name,
            port_offset,
            drain_timeout,
            print_status,
            ops,
            threads,
        } => {
            let mut gateway_config = GatewayConfig::default();
            gateway_config.listener.drain_timeout = drain_timeout;
            gateway_config.access_log = !ops.no_access_log;
            let admin_address = ops.admin();
            let options = RunOptions {
                compile: Options {
                    controller_name,
                    port_offset,
                    ..Options::default()
                },
                print_status,
                quiet: false,
                admin: None,
                output: None,
            };
            let mut runtime = tokio::runtime::Builder::new_multi_thread();
            if let Some(threads) = threads {
                runtime.worker_threads(usize::from(threads));
            }
            runtime
                .enable_all()
                .build()
                .context("cannot start the Tokio runtime")
                .and_then(|runtime| {
                    runtime.block_on(run(config, options, gateway_config, admin_address))
                })
        }
        Command::Check {
            config,
            controller_name,
            default_namespace,
            output,
        } => run_check(config, controller_name, &default_namespace, output),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(
    config: PathBuf,
    mut options: RunOptions,
    gateway_config: GatewayConfig,
    admin_address: Option<SocketAddr>,
) -> anyhow::Result<ExitCode> {
    // The file source's errors already name the path.
    let source = FileSource::new(&config).map_err(|error| anyhow::anyhow!("{error}"))?;
    let errors = source.errors();
    let gateway = Gateway::new(gateway_config);
    // Bound before the first apply, so `/ready` answers 503 until the gateway serves.
    let admin = match admin_address {
        Some(address) => {
            let state = AdminState::new(gateway.clone());
            options.admin = Some(state.clone());
            let server = AdminServer::bind(address, state)
                .await
                .with_context(|| "admin endpoint (change --admin-address or pass --no-admin)")?;
            println!(
                "admin endpoint on http://{}/ (metrics, ready, healthz, config, status)",
                server.local_addr()
            );
            Some(server)
        }
        None => None,
    };
    let shutdown = CancellationToken::new();
    let (applied, applied_rx) = watch::channel(None);
    serve::print_reload_errors(
        errors,
        applied_rx,
        gateway.metrics(),
        true,
        shutdown.clone(),
    );
    let serving = tokio::spawn(serve::serve(
        source,
        gateway.clone(),
        options,
        |_: &mut _| {},
        applied,
        shutdown.clone(),
    ));
    tokio::pin!(serving);
    tokio::select! {
        signal = serve::shutdown_signal() => {
            let signal = signal.context("cannot install signal handlers")?;
            println!("{signal}: draining open connections, then exiting");
            shutdown.cancel();
            // The loop ends at once when cancelled; its result says nothing new here.
            let _ = serving.await;
        }
        result = &mut serving => {
            match result.context("the serving task failed")? {
                Ok(()) => {}
                Err(error) => {
                    eprintln!("{} does not load:\n{error}", config.display());
                    gateway.shutdown().await;
                    return Ok(ExitCode::from(1));
                }
            }
        }
    }
    // The admin endpoint answers `/ready` with 503 while the gateway drains.
    gateway.shutdown().await;
    if let Some(admin) = admin {
        admin.stop().await;
    }
    println!("stopped");
    Ok(ExitCode::SUCCESS)
}

fn run_check(
    config: PathBuf,
    controller_name: Option<String>,
    default_namespace: &str,
    output: Output,
) -> anyhow::Result<ExitCode> {
    let checked = check(&config, controller_name, default_namespace);
    let text = match (&checked, output) {
        (Checked::LoadFailed(_), _) | (_, Output::Table) => checked.to_table(&config),
        (Checked::Compiled { status, .. }, Output::Yaml) => serde_saphyr::to_string(status)?,
        (Checked::Compiled { ir, status }, Output::Json) => serde_json::to_string_pretty(
            &serde_json::json!({ "status": status, "config": ir.summary() }),
        )?,
    };
    if matches!(checked, Checked::LoadFailed(_)) {
        eprint!("{text}");
    } else {
        print!("{text}");
    }
    Ok(ExitCode::from(checked.exit_code()))
}
