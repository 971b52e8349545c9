//! The `gateway` command: compiles a folder of Gateway API manifests and reports their status.
//!
//! ```text
//! cargo run --example gateway -- check --config ../shared/seed-demo
//! ```
//!
//! `check` loads the manifests the way the file source serves them, compiles them, prints the
//! conditions of every GatewayClass, Gateway, Listener and Route, and exits non-zero when any
//! of them is not Accepted, Programmed or ResolvedRefs (or is PartiallyInvalid), or when a
//! manifest does not load. Serving (`gateway run`) arrives with the data plane.

#![allow(clippy::print_stdout)] // a command-line tool: stdout is its output

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use gateway_core::compile::{Options, compile};
use gateway_file::LoadOptions;

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
enum LogFormat {
    Text,
    Json,
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
    let filter = tracing_subscriber::EnvFilter::try_new(&cli.log_level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
    match run(cli.command) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}

fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Check {
            config,
            controller_name,
            default_namespace,
            output,
        } => {
            let load_options = LoadOptions::default().with_default_namespace(default_namespace);
            let snapshot = match gateway_file::load(&config, &load_options) {
                Ok(snapshot) => snapshot,
                Err(error) => {
                    eprintln!("{} does not load:\n{error}", config.display());
                    return Ok(ExitCode::from(1));
                }
            };
            let options = Options {
                controller_name,
                ..Options::default()
            };
            let (ir, status) = compile(&snapshot, &options);
            let text = match output {
                Output::Table => status.to_table(),
                Output::Yaml => serde_saphyr::to_string(&status)?,
                Output::Json => serde_json::to_string_pretty(
                    &serde_json::json!({ "status": status, "config": ir.summary() }),
                )?,
            };
            print!("{text}");
            Ok(if status.all_healthy() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
    }
}
