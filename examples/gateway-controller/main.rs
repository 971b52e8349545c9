//! `gateway-controller`: the gateway configured from the Kubernetes API.
//!
//! ```text
//! cargo run --example gateway-controller -- --kubeconfig ~/.kube/config --port-offset 10000
//! cargo run --example gateway-controller -- --gateway platform/main-gateway
//! ```
//!
//! Every replica watches the Gateway API objects of its controller name (and the Services,
//! EndpointSlices, Namespaces and referenced Secrets they need), compiles each snapshot and
//! serves it. Replicas elect a leader through a Lease; only the leader writes status and, per
//! Gateway, a `type: LoadBalancer` Service (`--provision-services`, on by default) whose
//! load-balancer address becomes the Gateway's `status.addresses`. The
//! probe endpoint (`--probe-address`) answers `/readyz` with 200 once the first full
//! snapshot is applied (503 before, and again while draining) and `/livez` with 200. The
//! admin endpoint (`--admin-address`, as for `gateway run`) serves `/metrics`, `/config`,
//! `/status` and its own stricter `/ready` (every listener served), which is not used as the
//! Kubernetes readiness: a listener that no replica can serve would take every replica out of
//! the Service. SIGTERM or SIGINT: not ready, give up the Lease, drain open connections
//! (within `--drain-timeout`), exit 0.

#![allow(clippy::print_stdout)] // a command-line tool: stdout is its output

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use gateway_core::compile::Options;
use gateway_core::model::Snapshot;
use gateway_examples::serve::{self, RunOptions};
use gateway_examples::{LogFormat, OperationsArgs, init_logging};
use gateway_kube::{
    DEFAULT_CONTROLLER_NAME, GatewayRef, KubeSource, KubeSourceOptions, KubeStatusSink,
    LeaderElector, Leadership, LeaseOptions, SecretSelection, ServiceOptions, ServiceProvisioner,
    StatusSinkOptions,
};
use gateway_net::admin::{AdminServer, AdminState};
use gateway_net::{Gateway, GatewayConfig};
use http_body_util::Full;
use hyper::body::Bytes;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(
    name = "gateway-controller",
    version,
    about = "A Gateway API gateway configured from the Kubernetes API"
)]
struct Cli {
    /// Log level filter (`error`, `warn`, `info`, `debug`, `trace`, or a tracing directive).
    #[arg(long, default_value = "info", env = "GATEWAY_LOG")]
    log_level: String,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// A kubeconfig file (its current context). Default: `KUBECONFIG`, `~/.kube/config`,
    /// then the in-cluster service account.
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// The controllerName of the GatewayClasses this gateway serves.
    #[arg(long, default_value = DEFAULT_CONTROLLER_NAME, env = "GATEWAY_CONTROLLER_NAME")]
    controller_name: String,
    /// Serve only this Gateway (`namespace/name`): one deployment per Gateway. Default: every
    /// Gateway of the controller's classes.
    #[arg(long, env = "GATEWAY_NAME")]
    gateway: Option<GatewayRef>,
    /// Read only the Secrets and ConfigMaps with these labels (one watch each), instead of
    /// watching each one a Gateway or BackendTLSPolicy names.
    #[arg(long)]
    secret_label_selector: Option<String>,
    /// Quiet period after the last change before a new configuration is compiled.
    #[arg(long, default_value = "100ms", value_parser = serve::parse_duration)]
    quiet_period: Duration,
    /// Added to every listener port when binding (e.g. 10000: 80 → 10080), for unprivileged
    /// runs; status keeps the manifest's ports.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    port_offset: i32,
    /// Addresses written in `Gateway.status.addresses` (the Service's or load balancer's
    /// address); repeat or separate with commas. With `--provision-services`, each Gateway
    /// reports its own Service's load-balancer addresses instead.
    #[arg(long, env = "GATEWAY_ADVERTISE_ADDRESS", value_delimiter = ',')]
    advertise_address: Vec<IpAddr>,
    /// Give each Gateway its own `type: LoadBalancer` Service (in its namespace, named
    /// `<gateway>-gw`, owned by the Gateway), written by the leader; the Service's
    /// load-balancer address becomes the Gateway's `status.addresses`.
    /// `--provision-services=false`: no Services are made (bring your own).
    #[arg(
        long,
        env = "GATEWAY_PROVISION_SERVICES",
        default_value_t = true,
        num_args = 0..=1,
        default_missing_value = "true",
        action = clap::ArgAction::Set
    )]
    provision_services: bool,
    /// The labels of the gateway pods (`key=value[,key=value]`), as the provisioned Services'
    /// selector. Without it the Services select no pods: nothing reaches the gateway through
    /// them inside the cluster (the single-machine lab routes the addresses itself).
    #[arg(long, value_parser = gateway_kube::parse_selector)]
    service_selector: Option<std::collections::BTreeMap<String, String>>,
    /// Lab mode, for a single machine where the load balancer hands out local addresses
    /// (MetalLB with a 127.0.x.y pool): each Gateway binds its listeners on its Service's
    /// load-balancer IP instead of 0.0.0.0, so several Gateways can use one port; a Gateway
    /// is not bound until its Service has an IP. Needs `--provision-services`.
    #[arg(long)]
    bind_load_balancer_addresses: bool,
    /// How long open connections may take to finish on shutdown.
    #[arg(long, default_value = "30s", value_parser = serve::parse_duration)]
    drain_timeout: Duration,
    /// Where `/readyz` and `/livez` are served (for the kubelet's probes).
    #[arg(long, default_value = "0.0.0.0:8090")]
    probe_address: SocketAddr,
    #[command(flatten)]
    ops: OperationsArgs,
    /// Namespace of the leader-election Lease (the pod's own).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    lease_namespace: String,
    /// Name of the Lease. Default: `embedded-gateway`, or `embedded-gateway-<ns>-<name>`
    /// with `--gateway`, so each Gateway's deployment elects its own leader.
    #[arg(long)]
    lease_name: Option<String>,
    /// This replica's identity in the Lease. Default: the pod name (`POD_NAME`), else the
    /// host name.
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// Write status without electing a leader (a single replica).
    #[arg(long)]
    no_leader_election: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli.log_level, cli.log_format, !cli.ops.no_access_log);
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the Tokio runtime")
        .and_then(|runtime| runtime.block_on(run(cli)));
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    if cli.bind_load_balancer_addresses && !cli.provision_services {
        anyhow::bail!("--bind-load-balancer-addresses needs --provision-services");
    }
    let client = gateway_kube::connect(cli.kubeconfig.as_deref()).await?;

    let mut source_options = KubeSourceOptions::new(&cli.controller_name);
    source_options.gateway = cli.gateway.clone();
    source_options.quiet_period = cli.quiet_period;
    // The load balancer's refusals of a Gateway's Service come as Events.
    source_options.service_events = cli.provision_services;
    if let Some(selector) = &cli.secret_label_selector {
        source_options.secrets = SecretSelection::LabelSelector(selector.clone());
    }
    let source = KubeSource::new(client.clone(), source_options);

    let mut gateway_config = GatewayConfig::default();
    gateway_config.listener.drain_timeout = cli.drain_timeout;
    gateway_config.access_log = !cli.ops.no_access_log;
    let gateway = Gateway::new(gateway_config);
    let (admin_state, admin) = if let Some(address) = cli.ops.admin() {
        let state = AdminState::new(gateway.clone());
        let server = AdminServer::bind(address, state.clone())
            .await
            .with_context(|| "admin endpoint (change --admin-address or pass --no-admin)")?;
        tracing::info!(address = %server.local_addr(), "admin endpoint: /metrics /ready /healthz /config /status");
        (Some(state), Some(server))
    } else {
        (None, None)
    };
    let options = RunOptions {
        compile: Options {
            controller_name: Some(cli.controller_name.clone()),
            port_offset: cli.port_offset,
            advertised_addresses: cli.advertise_address.clone(),
            ..Options::default()
        },
        print_status: false,
        quiet: false,
        admin: admin_state,
        output: None,
    };

    let shutdown = CancellationToken::new();
    let ready = Arc::new(AtomicBool::new(false));
    let probes = serve_probes(cli.probe_address, ready.clone(), shutdown.clone()).await?;

    // Leader election: every replica serves; only the leader writes status.
    let elector_stop = CancellationToken::new();
    let (leadership, elector) = if cli.no_leader_election {
        (Leadership::fixed(true), None)
    } else {
        let identity = cli
            .identity
            .clone()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_else(|| format!("gateway-{}", std::process::id()));
        let name = cli
            .lease_name
            .clone()
            .unwrap_or_else(|| match &cli.gateway {
                Some(g) => format!("embedded-gateway-{}-{}", g.namespace, g.name),
                None => "embedded-gateway".into(),
            });
        let elector = LeaderElector::new(
            client.clone(),
            LeaseOptions::new(&cli.lease_namespace, name, identity),
        );
        let leadership = elector.leadership();
        (
            leadership,
            Some(tokio::spawn(elector.run(elector_stop.clone()))),
        )
    };
    // Per-Gateway Services: planned from every snapshot (their addresses go into that
    // snapshot's compile options), written by the leader.
    let provisioning = cli.provision_services.then(|| {
        let mut options = ServiceOptions::new(&cli.controller_name);
        options.gateway = cli.gateway.clone();
        options.port_offset = cli.port_offset;
        options.selector = cli.service_selector.clone().unwrap_or_default();
        options.bind_load_balancer_addresses = cli.bind_load_balancer_addresses;
        if options.selector.is_empty() {
            tracing::warn!("no --service-selector: the provisioned Services select no pods");
        }
        options
    });
    let (plans, plans_rx) = watch::channel(None);
    let provisioner = provisioning.as_ref().map(|options| {
        let provisioner =
            ServiceProvisioner::new(client.clone(), options).with_leadership(leadership.clone());
        tokio::spawn(provisioner.run(plans_rx, shutdown.clone()))
    });
    let prepare = move |snapshot: &mut Snapshot, options: &mut Options| {
        if let Some(provisioning) = &provisioning {
            let plan = provisioning.plan(snapshot);
            plan.apply_to(options);
            plans.send_replace(Some(Arc::new(plan)));
        }
    };

    let mut sink_options = StatusSinkOptions::new(&cli.controller_name);
    sink_options.gateway = cli.gateway.clone();
    let sink = KubeStatusSink::new(client, sink_options).with_leadership(leadership);

    // Each applied configuration: its status goes to the sink, the first one makes us ready.
    let (applied, mut applied_rx) = watch::channel(None);
    let (statuses, statuses_rx) = watch::channel(None);
    let writer = tokio::spawn(sink.run(statuses_rx, shutdown.clone()));
    let forward = {
        let ready = ready.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    changed = applied_rx.changed() => if changed.is_err() { return },
                }
                let status = applied_rx
                    .borrow_and_update()
                    .as_ref()
                    .map(|a: &serve::Applied| a.status.clone());
                if status.is_some() && !ready.swap(true, Ordering::SeqCst) {
                    tracing::info!("ready: the first full configuration is applied");
                }
                statuses.send_replace(status);
            }
        })
    };

    let serving = tokio::spawn(serve::serve_with(
        source,
        gateway.clone(),
        options,
        prepare,
        applied,
        shutdown.clone(),
    ));
    tokio::pin!(serving);
    let code = tokio::select! {
        signal = serve::shutdown_signal() => {
            let signal = signal.context("cannot install signal handlers")?;
            println!("{signal}: not ready; draining open connections, then exiting");
            ExitCode::SUCCESS
        }
        result = &mut serving => {
            match result.context("the serving task failed")? {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("the Kubernetes source failed: {error}");
                    ExitCode::from(1)
                }
            }
        }
    };
    // Out of the Service's endpoints first, then hand leadership over, then drain.
    ready.store(false, Ordering::SeqCst);
    shutdown.cancel();
    elector_stop.cancel();
    if let Some(elector) = elector {
        let _ = elector.await;
    }
    let _ = tokio::join!(writer, forward, probes);
    if let Some(provisioner) = provisioner {
        let _ = provisioner.await;
    }
    let _ = serving.await;
    gateway.shutdown().await;
    if let Some(admin) = admin {
        admin.stop().await;
    }
    println!("stopped");
    Ok(code)
}

/// Serves `/readyz` (200 when `ready`, 503 otherwise) and `/livez` (200) over HTTP/1.1.
async fn serve_probes(
    address: SocketAddr,
    ready: Arc<AtomicBool>,
    shutdown: CancellationToken,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on {address} for probes"))?;
    tracing::info!(%address, "probes: /readyz, /livez");
    Ok(tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                () = shutdown.cancelled() => return,
                accepted = listener.accept() => accepted,
            };
            let Ok((stream, _)) = accepted else { continue };
            let ready = ready.clone();
            let service = hyper::service::service_fn(move |request: hyper::Request<_>| {
                let (code, body) = match request.uri().path() {
                    "/livez" => (200, "ok\n"),
                    "/readyz" if ready.load(Ordering::SeqCst) => (200, "ready\n"),
                    "/readyz" => (503, "not ready\n"),
                    _ => (404, "not found\n"),
                };
                let response = hyper::Response::builder()
                    .status(code)
                    .header("content-type", "text/plain")
                    .body(Full::new(Bytes::from_static(body.as_bytes())));
                async move { Ok::<_, Infallible>(response.unwrap_or_default()) }
            });
            tokio::spawn(async move {
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await;
            });
        }
    }))
}
