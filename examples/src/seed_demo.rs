//! The seed demo in one process: the gateway serving `examples/seed-demo/` and the backends
//! its services file names, on loopback.

// The demo's banner (the commands to try each listener) is printed for the person running it.
#![allow(clippy::print_stdout)]

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use gateway_core::ir::{AppProtocol, Ir};
use gateway_core::model::{Resource, Secret, Snapshot};
use gateway_file::FileSource;
use gateway_net::admin::{AdminServer, AdminState};
use gateway_net::{BoundSocket, Gateway, GatewayConfig};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::backends;
use crate::serve::{self, Applied, RunOptions};

/// An error starting the demo.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The namespace and name of the Secret the demo's TLS listeners use.
pub const SECRET: (&str, &str) = ("platform", "selfsigned-tls");

/// The hostname the demo's routes serve.
pub const HOSTNAME: &str = "app.me";

/// The demo's default port offset: 80 → 10080, 443 → 10443, 8080 → 18080, 8081 → 18081,
/// 50051 → 60051, so that no privileges are needed.
pub const DEFAULT_PORT_OFFSET: i32 = 10_000;

/// `examples/seed-demo`, where the manifests are.
pub fn default_config_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("seed-demo")
}

/// How to run the demo.
#[derive(Clone, Debug)]
pub struct SeedDemoOptions {
    /// The manifests (default [`default_config_dir`]).
    pub config: PathBuf,
    /// Added to every listener port.
    pub port_offset: i32,
    /// Serve only GatewayClasses with this controllerName (default: every one).
    pub controller_name: Option<String>,
    /// Print the whole status table after every apply.
    pub print_status: bool,
    /// Print nothing on stdout.
    pub quiet: bool,
    /// Data-plane limits and timeouts.
    pub gateway_config: GatewayConfig,
    /// Quiet period after a file change before reloading (default: the file source's).
    pub debounce: Option<Duration>,
    /// Serve the admin endpoint (`/metrics`, `/ready`, `/healthz`, `/config`, `/status`) on
    /// this address (default: none; the `seed-demo` binary uses 127.0.0.1:9901).
    pub admin_address: Option<SocketAddr>,
}

impl Default for SeedDemoOptions {
    fn default() -> Self {
        SeedDemoOptions {
            config: default_config_dir(),
            port_offset: DEFAULT_PORT_OFFSET,
            controller_name: None,
            print_status: false,
            quiet: false,
            gateway_config: GatewayConfig::default(),
            debounce: None,
            admin_address: None,
        }
    }
}

/// A backend the demo started.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StartedBackend {
    /// The Service it stands for.
    pub service: String,
    /// Where it listens.
    pub address: SocketAddr,
    /// What it speaks.
    pub protocol: AppProtocol,
}

/// The running demo.
#[derive(Debug)]
pub struct SeedDemo {
    gateway: Gateway,
    stop_serving: CancellationToken,
    stop_backends: CancellationToken,
    serving: JoinHandle<Result<(), gateway_file::Error>>,
    applied: watch::Receiver<Option<Applied>>,
    backends: Vec<StartedBackend>,
    port_offset: i32,
    admin: Option<AdminServer>,
}

/// Starts the gateway on `options.config`, waits for its first configuration, then starts
/// the backends that configuration forwards to (every loopback endpoint of a Service a route
/// uses), and returns. A Secret `platform/selfsigned-tls` with a new self-signed certificate
/// for `app.me` is added to every snapshot that has none (nothing is written to the folder).
///
/// # Errors
///
/// When the folder cannot be watched or does not load, or a backend cannot bind its port.
/// Listeners that cannot bind are not errors: they are in [`SeedDemo::applied`]'s report.
pub async fn run(options: SeedDemoOptions) -> Result<SeedDemo, BoxError> {
    let mut source = FileSource::new(&options.config)?;
    if let Some(debounce) = options.debounce {
        source = source.with_debounce(debounce);
    }
    let errors = source.errors();
    let secret = self_signed_secret()?;
    let prepare = move |snapshot: &mut Snapshot| add_secret_if_missing(snapshot, &secret);
    let gateway = Gateway::new(options.gateway_config.clone());
    let admin_state = AdminState::new(gateway.clone());
    // Bound before the first apply, so `/ready` answers 503 until the gateway serves.
    let admin = match options.admin_address {
        Some(address) => Some(
            AdminServer::bind(address, admin_state.clone())
                .await
                .map_err(|error| format!("admin endpoint: {error}"))?,
        ),
        None => None,
    };
    let (sender, mut applied) = watch::channel(None);
    let stop_serving = CancellationToken::new();
    let run_options = RunOptions {
        compile: gateway_core::compile::Options {
            controller_name: options.controller_name.clone(),
            port_offset: options.port_offset,
            ..Default::default()
        },
        print_status: options.print_status,
        quiet: options.quiet,
        admin: Some(admin_state),
        output: None,
    };
    let mut serving = tokio::spawn(serve::serve(
        source,
        gateway.clone(),
        run_options,
        prepare,
        sender,
        stop_serving.clone(),
    ));
    serve::print_reload_errors(
        errors,
        applied.clone(),
        gateway.metrics(),
        !options.quiet,
        stop_serving.clone(),
    );
    let first = loop {
        tokio::select! {
            changed = applied.changed() => {
                if changed.is_err() {
                    // The serving task ended before applying anything: say why.
                    let result = (&mut serving).await;
                    return Err(match result {
                        Ok(Err(error)) => error.into(),
                        Ok(Ok(())) => "the configuration source ended before a first snapshot".into(),
                        Err(error) => error.into(),
                    });
                }
                let first = applied.borrow_and_update().clone();
                if let Some(first) = first { break first; }
            }
            result = &mut serving => {
                return Err(match result {
                    Ok(Err(error)) => error.into(),
                    Ok(Ok(())) => "the configuration source ended before a first snapshot".into(),
                    Err(error) => error.into(),
                });
            }
        }
    };
    let stop_backends = CancellationToken::new();
    let mut demo = SeedDemo {
        gateway,
        stop_serving,
        stop_backends,
        serving,
        applied,
        backends: Vec::new(),
        port_offset: options.port_offset,
        admin,
    };
    match start_backends(&first.ir, &demo.stop_backends).await {
        Ok(started) => demo.backends = started,
        Err(error) => {
            demo.shutdown().await;
            return Err(error);
        }
    }
    Ok(demo)
}

impl SeedDemo {
    /// The gateway serving the demo.
    pub fn gateway(&self) -> &Gateway {
        &self.gateway
    }

    /// Every apply (the first one already happened when [`run`] returned).
    pub fn applied(&self) -> watch::Receiver<Option<Applied>> {
        self.applied.clone()
    }

    /// Where the admin endpoint listens, when it was asked for.
    pub fn admin_address(&self) -> Option<SocketAddr> {
        self.admin.as_ref().map(AdminServer::local_addr)
    }

    /// The backends started.
    pub fn backends(&self) -> &[StartedBackend] {
        &self.backends
    }

    /// The port the demo's listener `name` (`http`, `https`, `tcp`, `udp`, `grpc`) is bound to.
    pub async fn port(&self, listener: &str) -> Option<u16> {
        port_of(&self.gateway.bound().await, listener)
    }

    /// The certificate (PEM) the listener `name` presents, as served now.
    pub fn certificate_pem(&self, listener: &str) -> Option<Vec<u8>> {
        let applied = self.applied.borrow();
        listener_certificate_pem(&applied.as_ref()?.ir, listener)
    }

    /// The commands that try each listener, with the port offset applied.
    pub async fn try_commands(&self) -> String {
        let bound = self.gateway.bound().await;
        let port = |name: &str| port_of(&bound, name).map_or("?".to_owned(), |p| p.to_string());
        let (http, https, tcp, udp, grpc) = (
            port("http"),
            port("https"),
            port("tcp"),
            port("udp"),
            port("grpc"),
        );
        let mut out = String::new();
        let _ = writeln!(
            out,
            "\nThe seed demo is ready (listener ports shifted by --port-offset {}). Try:\n",
            self.port_offset
        );
        let _ = writeln!(out, "  # http: 301 to https://app.me/http-echo");
        let _ = writeln!(
            out,
            "  curl -i -H 'Host: app.me' http://127.0.0.1:{http}/http-echo"
        );
        let _ = writeln!(
            out,
            "  # https: 200 \"Hello from http-echo\" (HTTP/1.1, then HTTP/2); other paths 404"
        );
        let _ = writeln!(
            out,
            "  curl -k --resolve app.me:{https}:127.0.0.1 https://app.me:{https}/http-echo"
        );
        let _ = writeln!(
            out,
            "  curl -k --http2 --resolve app.me:{https}:127.0.0.1 https://app.me:{https}/http-echo"
        );
        let _ = writeln!(
            out,
            "  curl -ik --resolve app.me:{https}:127.0.0.1 https://app.me:{https}/elsewhere"
        );
        let _ = writeln!(out, "  # tcp and udp: type a line, it comes back");
        let _ = writeln!(out, "  nc 127.0.0.1 {tcp}");
        let _ = writeln!(out, "  nc -u 127.0.0.1 {udp}");
        let _ = writeln!(
            out,
            "  # grpc over TLS: list services by reflection, call helloworld.Greeter/SayHello"
        );
        let _ = writeln!(
            out,
            "  cargo run --release --example seed-demo -- call --port {grpc}"
        );
        if let Some(admin) = self.admin_address() {
            let _ = writeln!(
                out,
                "  # admin: metrics, readiness, the configuration and status served"
            );
            let _ = writeln!(
                out,
                "  curl http://{admin}/metrics   # also /ready /healthz /config /status"
            );
        }
        let _ = writeln!(out, "\nBackends (in this process):");
        for backend in &self.backends {
            let _ = writeln!(
                out,
                "  {} on {} ({:?})",
                backend.service, backend.address, backend.protocol
            );
        }
        let _ = writeln!(
            out,
            "\nEdit the manifests and the gateway reloads them. Ctrl-C drains and stops."
        );
        out
    }

    /// Stops accepting, drains open connections (within the drain timeout), then stops the
    /// backends.
    pub async fn shutdown(self) {
        self.stop_serving.cancel();
        if let Err(error) = self.serving.await {
            tracing::warn!(%error, "the serving task failed");
        }
        self.gateway.shutdown().await;
        if let Some(admin) = self.admin {
            admin.stop().await;
        }
        self.stop_backends.cancel();
    }
}

/// The port the listener `name` is bound to in `bound`.
pub fn port_of(bound: &[BoundSocket], listener: &str) -> Option<u16> {
    bound
        .iter()
        .find(|s| s.listeners.iter().any(|l| l.name == listener))
        .map(|s| s.local.port())
}

/// The certificate (PEM) the listener `name` presents in `ir`.
pub fn listener_certificate_pem(ir: &Ir, listener: &str) -> Option<Vec<u8>> {
    ir.binds
        .iter()
        .flat_map(|b| &b.listeners)
        .find(|l| l.id.name == listener)
        .and_then(|l| l.tls.as_ref())
        .and_then(|tls| tls.certificates.first())
        .map(|c| c.chain_pem.to_vec())
}

/// A `kubernetes.io/tls` Secret `platform/selfsigned-tls` with a new self-signed certificate
/// for `app.me` and `*.app.me`.
///
/// # Errors
///
/// When the certificate cannot be made (a crypto backend error).
pub fn self_signed_secret() -> Result<Secret, BoxError> {
    let certified =
        rcgen::generate_simple_self_signed(vec![HOSTNAME.to_owned(), format!("*.{HOSTNAME}")])?;
    let value = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": { "name": SECRET.1, "namespace": SECRET.0 },
        "type": "kubernetes.io/tls",
        "stringData": {
            "tls.crt": certified.cert.pem(),
            "tls.key": certified.signing_key.serialize_pem(),
        },
    });
    match Resource::from_json(value)? {
        Some(Resource::Secret(secret)) => Ok(secret),
        _ => Err("a Secret manifest did not read as a Secret".into()),
    }
}

/// Adds `secret` unless the snapshot already has a Secret with its namespace and name.
pub fn add_secret_if_missing(snapshot: &mut Snapshot, secret: &Secret) {
    let same = |s: &Secret| {
        s.metadata.name == secret.metadata.name && s.metadata.namespace == secret.metadata.namespace
    };
    if !snapshot.secrets.iter().any(same) {
        snapshot.secrets.push(secret.clone());
    }
}

/// Every Service backend `ir` forwards to, with its endpoints.
pub fn backends_of(ir: &Ir) -> BTreeSet<(String, SocketAddr, AppProtocol)> {
    ir.service_backends()
        .flat_map(|s| {
            s.endpoints
                .iter()
                .map(|e| (s.service.name.clone(), *e, s.protocol))
        })
        .collect()
}

/// Starts a backend for every loopback endpoint `ir` forwards to: an HTTP echo for HTTP/1.1
/// backends, a gRPC greeter for h2c ones, TCP and UDP echoes for L4 ones.
///
/// # Errors
///
/// When a backend cannot bind its address (another program, or another demo, has it).
pub async fn start_backends(
    ir: &Ir,
    shutdown: &CancellationToken,
) -> Result<Vec<StartedBackend>, BoxError> {
    let mut started = Vec::new();
    for (service, address, protocol) in backends_of(ir) {
        if !address.ip().is_loopback() {
            tracing::warn!(%address, service, "not a loopback endpoint: no demo backend started");
            continue;
        }
        let token = shutdown.clone();
        let result = match protocol {
            AppProtocol::Http1 => backends::http_echo(address, service.clone(), token).await,
            AppProtocol::H2c => backends::grpc_greeter(address, service.clone(), token).await,
            AppProtocol::Tcp => backends::tcp_echo(address, token).await,
            AppProtocol::Udp => backends::udp_echo(address, token).await,
        };
        let address = result.map_err(|error| {
            format!("cannot start the demo backend {service} ({protocol:?}) on {address}: {error}")
        })?;
        started.push(StartedBackend {
            service,
            address,
            protocol,
        });
    }
    Ok(started)
}
