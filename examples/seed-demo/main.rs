//! The seed demo: the gateway serving `examples/seed-demo/` (the manifests the project was
//! first described with) and, in the same process, the backends they route to.
//!
//! ```text
//! cargo run --release --example seed-demo                      # ports shifted by 10000
//! cargo run --release --example seed-demo -- --port-offset 0   # the manifests' own ports
//! cargo run --release --example seed-demo -- call --port 60051 # gRPC client over TLS
//! cargo run --release --example seed-demo -- backends          # only the backends (the Kubernetes guide's backend pod)
//! ```

#![allow(clippy::print_stdout)] // a command-line tool: stdout is its output

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use gateway_examples::grpc::{CallOptions, call_greeter};
use gateway_examples::seed_demo::{self, SeedDemoOptions};
use gateway_examples::serve;
use gateway_examples::{LogFormat, OperationsArgs, init_logging};
use gateway_net::GatewayConfig;

#[derive(Parser)]
#[command(
    name = "seed-demo",
    about = "The seed demo: the gateway and its backends in one process"
)]
struct Cli {
    /// The manifests to serve (default: the `examples/seed-demo` folder of this repository).
    #[arg(long, short = 'c', global = true)]
    config: Option<PathBuf>,
    /// Added to every listener port (80 → 10080, 443 → 10443, 8080 → 18080, 8081 → 18081,
    /// 50051 → 60051 by default); 0 serves the manifests' ports (needs privileges for 80
    /// and 443). The manifests are not edited.
    #[arg(long, default_value_t = seed_demo::DEFAULT_PORT_OFFSET, allow_negative_numbers = true)]
    port_offset: i32,
    /// Serve only GatewayClasses with this controllerName. Default: every GatewayClass.
    #[arg(long)]
    controller_name: Option<String>,
    /// How long open connections may take to finish on shutdown (`30s`, `500ms`, `2m`).
    #[arg(long, default_value = "5s", value_parser = serve::parse_duration)]
    drain_timeout: Duration,
    /// Print every resource's conditions after each reload, not only the problems.
    #[arg(long)]
    print_status: bool,
    #[command(flatten)]
    ops: OperationsArgs,
    /// Log level filter (`error`, `warn`, `info`, `debug`, `trace`, or a tracing directive).
    #[arg(long, global = true, default_value = "warn", env = "GATEWAY_LOG")]
    log_level: String,
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Call the demo's gRPC listener over TLS: list services by reflection, then
    /// `helloworld.Greeter/SayHello` (no grpcurl needed).
    Call {
        /// The gRPC listener's port (60051 with the default offset, 50051 without).
        #[arg(long, default_value_t = 60051)]
        port: u16,
        /// The gateway's address.
        #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
        host: IpAddr,
        /// The `:authority` and TLS server name.
        #[arg(long, default_value = seed_demo::HOSTNAME)]
        authority: String,
        /// The name to greet.
        #[arg(long, default_value = "seed demo")]
        name: String,
        /// Accept any server certificate. For the demo only: by default the client trusts
        /// exactly the certificate of the folder's `platform/selfsigned-tls` Secret.
        #[arg(long)]
        insecure: bool,
    },
    /// Run only the demo's backends, on the ports the seed's Services target (http-echo
    /// 5678, TCP and UDP echo 9000, gRPC greeter 50052), until SIGTERM: the backend pod of
    /// the Kubernetes guide (deploy/README.md).
    Backends {
        /// The address to listen on.
        #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::UNSPECIFIED))]
        bind: IpAddr,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(
        &cli.log_level,
        cli.log_format,
        cli.command.is_none() && !cli.ops.no_access_log,
    );
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the Tokio runtime: {error}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let config = cli.config.unwrap_or_else(seed_demo::default_config_dir);
    match cli.command {
        Some(Command::Call {
            port,
            host,
            authority,
            name,
            insecure,
        }) => {
            call(
                config,
                SocketAddr::new(host, port),
                authority,
                name,
                insecure,
            )
            .await
        }
        Some(Command::Backends { bind }) => backends_only(bind).await,
        None => {
            let mut gateway_config = GatewayConfig::default();
            gateway_config.listener.drain_timeout = cli.drain_timeout;
            gateway_config.access_log = !cli.ops.no_access_log;
            let options = SeedDemoOptions {
                config,
                port_offset: cli.port_offset,
                controller_name: cli.controller_name,
                print_status: cli.print_status,
                quiet: false,
                gateway_config,
                debounce: None,
                admin_address: cli.ops.admin(),
            };
            let demo = seed_demo::run(options)
                .await
                .map_err(|error| anyhow::anyhow!(error))?;
            print!("{}", demo.try_commands().await);
            let signal = serve::shutdown_signal()
                .await
                .context("cannot install signal handlers")?;
            println!("{signal}: draining open connections, then exiting");
            demo.shutdown().await;
            println!("stopped");
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn backends_only(bind: IpAddr) -> anyhow::Result<ExitCode> {
    use gateway_examples::backends;
    let shutdown = tokio_util::sync::CancellationToken::new();
    let at = |port| SocketAddr::new(bind, port);
    let name = std::env::var("HOSTNAME").unwrap_or_else(|_| "seed-demo".into());
    let http = backends::http_echo(at(5678), name.clone(), shutdown.clone()).await?;
    let tcp = backends::tcp_echo(at(9000), shutdown.clone()).await?;
    let udp = backends::udp_echo(at(9000), shutdown.clone()).await?;
    let grpc = backends::grpc_greeter(at(50052), name, shutdown.clone()).await?;
    println!(
        "http-echo on {http}, tcp echo on {tcp}, udp echo on {udp}/udp, gRPC greeter on {grpc}"
    );
    let signal = serve::shutdown_signal()
        .await
        .context("cannot install signal handlers")?;
    println!("{signal}: stopping");
    shutdown.cancel();
    Ok(ExitCode::SUCCESS)
}

async fn call(
    config: PathBuf,
    address: SocketAddr,
    authority: String,
    name: String,
    insecure: bool,
) -> anyhow::Result<ExitCode> {
    let trusted_certificate_pem = if insecure {
        println!("--insecure: the server's certificate is NOT verified (demo only)");
        None
    } else {
        let checked = gateway_examples::check::check(&config, None, "default");
        let pem = match &checked {
            gateway_examples::check::Checked::Compiled { ir, .. } => {
                seed_demo::listener_certificate_pem(ir, "grpc")
            }
            gateway_examples::check::Checked::LoadFailed(_) => None,
        };
        match pem {
            Some(pem) => Some(pem),
            None => anyhow::bail!(
                "{} has no certificate for the grpc listener to trust (the demo made one at \
                 start); pass --insecure to skip verification",
                config.display()
            ),
        }
    };
    let options = CallOptions {
        address,
        authority,
        trusted_certificate_pem,
        name,
    };
    let result = call_greeter(&options)
        .await
        .map_err(|error| anyhow::anyhow!(error))
        .with_context(|| format!("gRPC call to {address} failed"))?;
    println!("services (by reflection):");
    for service in &result.services {
        println!("  {service}");
    }
    println!("helloworld.Greeter/SayHello: {}", result.greeting);
    Ok(ExitCode::SUCCESS)
}
