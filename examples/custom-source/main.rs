//! Embedding the gateway with your own configuration source.
//!
//! `FlippingSource` implements [`ConfigSource`] over objects held in memory, as a service
//! registry or a database would: every 5 seconds it emits a new snapshot whose HTTPRoute sends
//! traffic to the other of two Services (blue/green). The loop in `main` is all it takes to
//! serve it: compile each snapshot, apply it, read the report and the status. Open
//! connections and in-flight requests are not cut by a swap.
//!
//! ```text
//! cargo run --example custom-source
//! curl http://127.0.0.1:8080/      # "Hello from blue", then "Hello from green" 5 s later
//! ```

#![allow(clippy::print_stdout)] // an example: stdout is its output

use std::net::SocketAddr;
use std::time::Duration;

use gateway_core::compile::{Options, compile};
use gateway_core::model::{Resource, Snapshot};
use gateway_core::source::ConfigSource;
use gateway_net::{Gateway, GatewayConfig};
use serde_json::json;
use tokio_util::sync::CancellationToken;

/// A configuration source over in-memory objects that flips the route's backend on a timer.
struct FlippingSource {
    timer: tokio::time::Interval,
    blue: SocketAddr,
    green: SocketAddr,
    serving_blue: bool,
}

impl ConfigSource for FlippingSource {
    // This source cannot fail; a real one reports e.g. a lost connection to its registry.
    type Error = std::convert::Infallible;

    async fn next(&mut self) -> Result<Option<Snapshot>, Self::Error> {
        // The first tick is immediate: the initial snapshot, then one per period.
        self.timer.tick().await;
        self.serving_blue = !self.serving_blue;
        Ok(Some(snapshot(self.target(), self.blue, self.green)))
    }
}

impl FlippingSource {
    /// The Service the route sends traffic to in the latest snapshot.
    fn target(&self) -> &'static str {
        if self.serving_blue { "blue" } else { "green" }
    }
}

/// The objects a Kubernetes cluster would hold, written as their manifests.
fn snapshot(target: &str, blue: SocketAddr, green: SocketAddr) -> Snapshot {
    let mut objects = vec![
        json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
               "metadata": {"name": "example"},
               "spec": {"controllerName": "example.com/custom-source"}}),
        json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
               "metadata": {"name": "web", "namespace": "default"},
               "spec": {"gatewayClassName": "example",
                        "listeners": [{"name": "http", "port": 8080, "protocol": "HTTP"}]}}),
        json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
               "metadata": {"name": "app", "namespace": "default"},
               "spec": {"parentRefs": [{"name": "web"}],
                        "rules": [{"backendRefs": [{"name": target, "port": 80}]}]}}),
    ];
    // A Service and an EndpointSlice for each backend, endpoints on loopback.
    for (name, address) in [("blue", blue), ("green", green)] {
        objects.push(json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"ports": [{"port": 80, "targetPort": address.port()}]}}));
        objects.push(
            json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": name, "namespace": "default",
                         "labels": {"kubernetes.io/service-name": name}},
            "addressType": "IPv4",
            "ports": [{"port": address.port(), "protocol": "TCP"}],
            "endpoints": [{"addresses": [address.ip().to_string()],
                           "conditions": {"ready": true}}]}),
        );
    }
    let mut snapshot = Snapshot::default();
    for object in objects {
        match Resource::from_json(object) {
            Ok(resource) => snapshot.extend(resource),
            // The objects above are fixed; a mistake in them is a bug in this example.
            Err(error) => tracing::error!(%error, "an object of the example does not read"),
        }
    }
    snapshot
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();

    // Two backends, on ports the OS picks, for the route to alternate between.
    let backends = CancellationToken::new();
    let loopback: SocketAddr = ([127, 0, 0, 1], 0).into();
    let blue =
        gateway_examples::backends::http_echo(loopback, "blue".into(), backends.clone()).await?;
    let green =
        gateway_examples::backends::http_echo(loopback, "green".into(), backends.clone()).await?;

    let mut source = FlippingSource {
        timer: tokio::time::interval(Duration::from_secs(5)),
        blue,
        green,
        serving_blue: false,
    };
    let gateway = Gateway::new(GatewayConfig::default());
    let options = Options::default(); // every GatewayClass, listeners on 0.0.0.0
    println!("serving http://127.0.0.1:8080/ ; Ctrl-C stops");
    loop {
        let next = tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            next = source.next() => next?,
        };
        let Some(snapshot) = next else { break };
        // Pure and total: bad objects are rejected one by one, in `status`.
        let (ir, mut status) = compile(&snapshot, &options);
        // Binds new sockets, keeps the others, swaps routing atomically.
        let report = gateway.apply(&ir).await;
        if !report.is_complete() {
            eprintln!("not everything is served: {report:?}");
        }
        // What the data plane could not do (a port taken, a certificate refused) goes into
        // the status before anyone reads it.
        report.merge_into(&mut status);
        if !status.all_healthy() {
            eprint!("{}", status.to_table());
        }
        println!("route app now sends traffic to {}", source.target());
    }
    gateway.shutdown().await; // drains open connections
    backends.cancel();
    Ok(())
}
