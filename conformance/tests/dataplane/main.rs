//! The data-plane half of the upstream Gateway API conformance suite, run in process.
//!
//! For every test of `cases.yaml` with requests: the upstream base manifests and the test's
//! own are loaded into a snapshot; every pod of their Deployments is replaced by an echo server
//! on 127.0.0.1 that answers as the upstream echo image does (HTTP JSON echo, gRPC GrpcEcho,
//! TCP and UDP echo), and EndpointSlices point the Services at them; the snapshot is compiled
//! with each Gateway on its own loopback address (127.N.1.x, N random per run so that two runs
//! on one machine do not collide) and served by one `gateway_net::Gateway`; then
//! each case is sent over real sockets and compared as the Go suite compares it (the rules in
//! the header of `cases.yaml`).
//!
//! Protocols: HTTP cases go over HTTP/1.1 as the Go suite sends them, and again over HTTP/2
//! (prior knowledge on plain listeners, ALPN `h2` on HTTPS) unless the case names its protocol;
//! both must pass. gRPC cases use tonic's client over h2c; TLS cases use rustls with the case's
//! SNI and trust root.
//!
//! Tests whose features the README's conformance feature table marks "not yet" are skipped
//! (and still run, to catch a table that claims less than the suite shows); the table itself is
//! checked against this run. `cargo test -p conformance` prints the report.
// Test harness: broken fixtures and an absent suite fail loudly.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::print_stdout)]

mod certs;
mod check;
mod client;
mod extras;
mod features;
mod grpc;
mod pods;
mod ws;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use conformance::{CONTROLLER_NAME, Suite, TestCase};
use gateway_core::compile::{Options, compile};
use gateway_core::model::Snapshot;
use gateway_net::{Gateway, GatewayConfig};

use crate::certs::Pki;
use crate::pods::Pods;

/// Everything the cases run against.
pub(crate) struct World {
    pub(crate) suite: Suite,
    pub(crate) pki: Pki,
    pub(crate) pods: Pods,
    pub(crate) gateway: Gateway,
    /// Added to every listener port (0 when ports below 1024 can be bound).
    pub(crate) port_offset: u16,
    /// Gateways get 127.`subnet`.1.x.
    pub(crate) subnet: u8,
}

/// Runs only the tests whose name contains its value.
const ONLY: &str = "GATEWAY_CONFORMANCE_RUN";

/// Addresses of the Gateways of one test, by `namespace/name`.
pub(crate) type Addresses = BTreeMap<String, IpAddr>;

/// The outcome of one test.
pub(crate) struct TestRun {
    pub(crate) cases: usize,
    pub(crate) failures: Vec<String>,
    pub(crate) elapsed: Duration,
}

fn main() -> ExitCode {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(run())
}

/// Ports below 1024 need privileges; without them every listener port is shifted (Host
/// headers and redirects keep the manifests' ports, as they would behind a port-mapping load
/// balancer).
fn port_offset() -> u16 {
    match std::net::TcpListener::bind("127.0.1.254:80") {
        Ok(_) => 0,
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => 20_000,
        Err(_) => 0,
    }
}

async fn run() -> ExitCode {
    let started = Instant::now();
    let suite = Suite::locate().unwrap_or_else(|e| panic!("{e}"));
    // An upstream checkout has manifests only: the cases then come from the shared folder.
    let tests = match &suite.cases_file {
        Some(_) => suite.cases().unwrap_or_else(|e| panic!("{e}")),
        None => {
            let shared = Suite::at(&Suite::default_dir()).unwrap_or_else(|e| {
                panic!(
                    "{} holds the upstream manifests but no cases.yaml, and the shared folder \
                     with cases.yaml is missing too: {e}",
                    suite.upstream.display()
                )
            });
            println!(
                "manifests from {}, cases from {}",
                suite.upstream.display(),
                shared
                    .cases_file
                    .as_deref()
                    .unwrap_or(&shared.upstream)
                    .display()
            );
            shared.cases().unwrap_or_else(|e| panic!("{e}"))
        }
    };
    let table = features::Table::read().unwrap_or_else(|e| panic!("{e}"));
    let https_names: Vec<String> = tests
        .iter()
        .flat_map(|t| &t.cases)
        .filter_map(|c| c.request.tls.as_ref())
        .filter(|t| {
            t.trust
                .as_deref()
                .is_some_and(|t| t.contains("tls-validity-checks-certificate"))
        })
        .filter_map(|t| t.sni.clone())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let pki = Pki::generate(&https_names);
    // Every pod of every Deployment of the suite, started once.
    let mut texts = vec![
        suite
            .manifest("base/manifests.yaml")
            .expect("base manifests"),
    ];
    // A manifest missing here fails its own test when it is loaded.
    for test in &tests {
        texts.extend(test.manifests.iter().filter_map(|m| suite.manifest(m).ok()));
    }
    let pods = Pods::start(&texts, &pki).await;
    let mut config = GatewayConfig::default();
    config.listener.drain_timeout = Duration::from_secs(1);
    let world = World {
        suite,
        pki,
        pods,
        gateway: Gateway::new(config),
        port_offset: port_offset(),
        subnet: fastrand::u8(20..=250),
    };
    println!("Gateways on 127.{}.1.x", world.subnet);

    let mut results: Vec<(&TestCase, Option<String>, TestRun)> = Vec::new();
    // `GATEWAY_CONFORMANCE_RUN=<part of a test name>` runs only the matching tests (while
    // debugging); the feature table is then not checked.
    let only = std::env::var(ONLY).ok().filter(|o| !o.is_empty());
    for test in tests
        .iter()
        .filter(|t| !t.status_only())
        .filter(|t| only.as_ref().is_none_or(|o| t.test.contains(o.as_str())))
    {
        let skip = table.skip_reason(test);
        let started = Instant::now();
        let mut run = run_test(&world, test).await;
        run.elapsed = started.elapsed();
        results.push((test, skip, run));
    }
    world.gateway.shutdown().await;

    let status_only: Vec<&TestCase> = tests.iter().filter(|t| t.status_only()).collect();
    let mut report = features::report(
        &results,
        &table,
        &status_only,
        world.port_offset,
        only.is_some(),
    );
    if let Some(only) = &only {
        println!("{ONLY}={only}: only matching tests ran; the feature table was not checked");
        report.ok = report.failed == 0;
        if results.is_empty() {
            println!("no test name contains {only:?}");
            report.ok = false;
        }
    }
    println!("{}", report.text);
    println!("data-plane run took {:.1?}", started.elapsed());
    println!(
        "conformance data plane: {} passed, {} failed, {} skipped",
        report.passed, report.failed, report.skipped
    );
    if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Compiles `snapshot` with each Gateway on its own address and serves it; the addresses and
/// what could not be bound.
async fn serve(world: &World, snapshot: &Snapshot) -> (Addresses, Vec<String>) {
    let gateway_addresses =
        conformance::gateway_addresses(snapshot, world.subnet).expect("one /24 of Gateways");
    let addresses: Addresses = gateway_addresses
        .iter()
        .map(|((ns, name), ip)| (format!("{ns}/{name}"), *ip))
        .collect();
    let options = Options {
        controller_name: Some(CONTROLLER_NAME.to_owned()),
        gateway_addresses,
        port_offset: i32::from(world.port_offset),
        ..Options::default()
    };
    let (ir, _status) = compile(snapshot, &options);
    let report = world.gateway.apply(&ir).await;
    let failures = report
        .bind_failures
        .iter()
        .map(|b| format!("gateway could not bind {}: {}", b.address, b.message))
        .collect();
    (addresses, failures)
}

/// What the Go test does to the cluster before a case, as `cases.yaml` names it in the
/// subtest: "after the test deletes ReferenceGrant <namespace>/<name>".
fn edit_before(case: &conformance::Case, snapshot: &mut Snapshot) -> bool {
    let Some(rest) = case
        .subtest
        .as_deref()
        .and_then(|s| s.strip_prefix("after the test deletes ReferenceGrant "))
    else {
        return false;
    };
    let (namespace, name) = rest.split_once('/').unwrap_or(("", rest));
    let before = snapshot.reference_grants.len();
    snapshot
        .reference_grants
        .retain(|g| !(g.metadata.namespace() == namespace && g.metadata.name == name));
    snapshot.reference_grants.len() != before
}

/// Loads a test's manifests, starts serving them, and runs its cases.
async fn run_test(world: &World, test: &TestCase) -> TestRun {
    let refs: Vec<&str> = test.manifests.iter().map(String::as_str).collect();
    let mut snapshot = match world.suite.load(&refs, &world.pki.manifests()) {
        Ok(s) => s,
        Err(e) => {
            return TestRun {
                cases: test.cases.len(),
                failures: vec![format!("manifests do not load: {e}")],
                elapsed: Duration::ZERO,
            };
        }
    };
    world.pods.add_endpoint_slices(&mut snapshot);
    extras::create(&test.test, &mut snapshot);
    let (mut addresses, mut failures) = serve(world, &snapshot).await;
    for (i, case) in test.cases.iter().enumerate() {
        if edit_before(case, &mut snapshot) {
            let (a, f) = serve(world, &snapshot).await;
            addresses = a;
            failures.extend(f);
        }
        if let Err(e) = check::run_case(world, test, case, &addresses).await {
            failures.push(format!("{}: {e}", check::label(i, case)));
        }
    }
    if failures.is_empty()
        && let Err(e) = extras::after(world, test, &addresses).await
    {
        failures.push(format!("after the cases: {e}"));
    }
    if let Some(distribution) = &test.distribution
        && !distribution.expected_fraction.is_empty()
        && let Some(case) = test.cases.first()
        && failures.is_empty()
    {
        let result = match check::target(world, test, case, &addresses) {
            Ok(target) => check::distribution(case, target, distribution).await,
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            failures.push(format!("distribution: {e}"));
        }
    }
    TestRun {
        cases: test.cases.len(),
        failures,
        elapsed: Duration::ZERO,
    }
}
