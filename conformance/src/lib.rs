//! In-process harness for the upstream Gateway API conformance suite.
//!
//! Finds the suite's data (the upstream manifests and our `cases.yaml` transcription), reads
//! `cases.yaml` into typed structs, and loads a test's manifests into a [`Snapshot`] the way a
//! cluster would hold them: placeholders replaced with our GatewayClass, and every Gateway API
//! object at `metadata.generation` 1 (what the API server assigns on create), so tests can
//! check `observedGeneration`.
//!
//! The suite is located at `../shared/conformance` relative to the workspace root, or at
//! `$GATEWAY_CONFORMANCE_DIR`, which may point at either that folder or a checkout of the
//! upstream repository's `conformance/` folder. A missing suite is an error, never a pass.

use std::collections::BTreeMap;
use std::env;
use std::fmt;
use std::fs;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use gateway_core::model::{ObjectMeta, Snapshot};
use gateway_file::LoadOptions;
use serde::Deserialize;

/// Name of the GatewayClass the harness adds and the placeholders are replaced with.
pub const GATEWAY_CLASS_NAME: &str = "gateway-conformance";
/// controllerName of that class; compile with `Options { controller_name: Some(this) }`.
pub const CONTROLLER_NAME: &str = "example.com/gateway-conformance";
/// Environment variable overriding where the suite is.
pub const DIR_VARIABLE: &str = "GATEWAY_CONFORMANCE_DIR";

/// Why the harness cannot run.
#[derive(Debug)]
pub struct Error(String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

/// One loopback address per Gateway of `snapshot`, `127.<subnet>.1.<n>` with `n` from 1 in
/// `namespace/name` order: the suite gives every Gateway its own load balancer address, so
/// Gateways of different tests never share a port. The map is what
/// `compile::Options::gateway_addresses` takes.
///
/// # Errors
/// More Gateways than one `/24` holds (254).
pub fn gateway_addresses(
    snapshot: &Snapshot,
    subnet: u8,
) -> Result<BTreeMap<(String, String), IpAddr>, Error> {
    let mut names: Vec<(String, String)> = snapshot
        .gateways
        .iter()
        .map(|g| (g.metadata.namespace().to_owned(), g.metadata.name.clone()))
        .collect();
    names.sort();
    names
        .into_iter()
        .enumerate()
        .map(|(i, key)| match u8::try_from(i + 1) {
            Ok(host) if host < 255 => Ok((key, IpAddr::V4(Ipv4Addr::new(127, subnet, 1, host)))),
            _ => Err(Error(format!("more than 254 Gateways ({})", i + 1))),
        })
        .collect()
}

/// Where the suite's data is.
#[derive(Clone, Debug)]
pub struct Suite {
    /// The upstream `conformance/` folder: holds `base/manifests.yaml` and `tests/*.yaml`.
    pub upstream: PathBuf,
    /// Our `cases.yaml`, when the folder has the shared layout (an upstream checkout has none).
    pub cases_file: Option<PathBuf>,
}

/// How to get the suite, appended to every "not found" error.
const HOW_TO_GET: &str = "get it with `git clone https://github.com/kubernetes-sigs/gateway-api` \
     and set GATEWAY_CONFORMANCE_DIR=<checkout>/conformance, or provide the shared folder \
     (`shared/conformance` next to the workspace, holding cases.yaml and \
     upstream/conformance/{base,tests})";

impl Suite {
    /// Finds the suite: `$GATEWAY_CONFORMANCE_DIR` if set, else `../shared/conformance`
    /// relative to the workspace root.
    ///
    /// # Errors
    ///
    /// When the folder is missing or has neither layout; the message says how to get it.
    pub fn locate() -> Result<Suite, Error> {
        let dir = match env::var_os(DIR_VARIABLE) {
            Some(dir) => PathBuf::from(dir),
            None => Suite::default_dir(),
        };
        Suite::at(&dir)
    }

    /// The shared folder: `../shared/conformance` relative to the workspace root.
    pub fn default_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/conformance")
    }

    /// Uses the suite at `dir`, detecting its layout: the shared folder
    /// (`cases.yaml` + `upstream/conformance/`) or an upstream `conformance/` checkout.
    ///
    /// # Errors
    ///
    /// When `dir` has neither layout.
    pub fn at(dir: &Path) -> Result<Suite, Error> {
        let shared = dir.join("upstream/conformance");
        if shared.join("base/manifests.yaml").is_file() {
            let cases = dir.join("cases.yaml");
            return Ok(Suite {
                upstream: shared,
                cases_file: cases.is_file().then_some(cases),
            });
        }
        if dir.join("base/manifests.yaml").is_file() && dir.join("tests").is_dir() {
            return Ok(Suite {
                upstream: dir.to_owned(),
                cases_file: None,
            });
        }
        Err(Error(format!(
            "Gateway API conformance suite not found at {} (neither {}/base/manifests.yaml nor \
             {}/upstream/conformance/base/manifests.yaml exists); {HOW_TO_GET}",
            dir.display(),
            dir.display(),
            dir.display(),
        )))
    }

    /// Reads `cases.yaml`.
    ///
    /// # Errors
    ///
    /// When the suite has no `cases.yaml` (an upstream checkout) or it does not parse.
    pub fn cases(&self) -> Result<Vec<TestCase>, Error> {
        let Some(path) = &self.cases_file else {
            return Err(Error(format!(
                "{} has no cases.yaml (an upstream checkout carries only manifests)",
                self.upstream.display()
            )));
        };
        let text = read(path)?;
        serde_saphyr::from_str(&text).map_err(|e| Error(format!("{}: {e}", path.display())))
    }

    /// The text of a manifest file, relative to the upstream `conformance/` folder
    /// (`tests/httproute-simple-same-namespace.yaml`), with the placeholders replaced.
    ///
    /// # Errors
    ///
    /// When the file cannot be read.
    pub fn manifest(&self, relative: &str) -> Result<String, Error> {
        Ok(replace_placeholders(&read(&self.upstream.join(relative))?))
    }

    /// Loads our GatewayClass, the base manifests, the given test manifests and `extra`
    /// (further YAML documents, e.g. generated Secrets) into one snapshot, and sets
    /// `metadata.generation` to 1 on every Gateway API object that has none.
    ///
    /// # Errors
    ///
    /// When a file cannot be read or the manifests do not load.
    pub fn load(&self, manifests: &[&str], extra: &str) -> Result<Snapshot, Error> {
        let mut text = gateway_class_manifest();
        for relative in std::iter::once(&"base/manifests.yaml").chain(manifests) {
            text.push_str("\n---\n");
            text.push_str(&self.manifest(relative)?);
        }
        text.push_str("\n---\n");
        text.push_str(extra);
        let mut snapshot = gateway_file::load_str(
            Path::new("conformance.yaml"),
            &text,
            &LoadOptions::default(),
        )
        .map_err(|e| Error(format!("loading {manifests:?}: {e}")))?;
        for meta in gateway_api_metadata(&mut snapshot) {
            meta.generation.get_or_insert(1);
        }
        Ok(snapshot)
    }
}

/// The GatewayClass every test's Gateways name, owned by [`CONTROLLER_NAME`].
pub fn gateway_class_manifest() -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata:\n  name: \
         {GATEWAY_CLASS_NAME}\nspec:\n  controllerName: {CONTROLLER_NAME}\n"
    )
}

/// Replaces the suite's placeholders with our class and controller names.
pub fn replace_placeholders(text: &str) -> String {
    text.replace("{GATEWAY_CLASS_NAME}", GATEWAY_CLASS_NAME)
        .replace("{GATEWAY_CONTROLLER_NAME}", CONTROLLER_NAME)
}

/// Metadata of every object whose conditions carry `observedGeneration`.
pub fn gateway_api_metadata(snapshot: &mut Snapshot) -> Vec<&mut ObjectMeta> {
    let Snapshot {
        gateway_classes,
        gateways,
        listener_sets,
        http_routes,
        grpc_routes,
        tls_routes,
        tcp_routes,
        udp_routes,
        backend_tls_policies,
        ..
    } = snapshot;
    let mut out: Vec<&mut ObjectMeta> = Vec::new();
    out.extend(gateway_classes.iter_mut().map(|o| &mut o.metadata));
    out.extend(gateways.iter_mut().map(|o| &mut o.metadata));
    out.extend(listener_sets.iter_mut().map(|o| &mut o.metadata));
    out.extend(http_routes.iter_mut().map(|o| &mut o.metadata));
    out.extend(grpc_routes.iter_mut().map(|o| &mut o.metadata));
    out.extend(tls_routes.iter_mut().map(|o| &mut o.metadata));
    out.extend(tcp_routes.iter_mut().map(|o| &mut o.metadata));
    out.extend(udp_routes.iter_mut().map(|o| &mut o.metadata));
    out.extend(backend_tls_policies.iter_mut().map(|o| &mut o.metadata));
    out
}

fn read(path: &Path) -> Result<String, Error> {
    fs::read_to_string(path).map_err(|e| {
        Error(format!(
            "cannot read {}: {e}; the conformance suite is incomplete, {HOW_TO_GET}",
            path.display()
        ))
    })
}

/// One upstream Go test, as transcribed in `cases.yaml`.
#[derive(Clone, Debug, Deserialize)]
pub struct TestCase {
    /// The Go test's `ShortName`.
    pub test: String,
    /// Features it requires.
    #[serde(default)]
    pub features: Vec<String>,
    /// Profiles the test counts in.
    #[serde(default)]
    pub profiles: Profiles,
    /// Manifest files, relative to the upstream `conformance/` folder.
    #[serde(default)]
    pub manifests: Vec<String>,
    /// Whether the test is provisional upstream.
    #[serde(default)]
    pub provisional: bool,
    /// Default Gateway (`namespace/name`) the cases are sent to.
    #[serde(default)]
    pub gateway: Option<String>,
    /// Request/response cases; empty for status-only tests.
    #[serde(default)]
    pub cases: Vec<Case>,
    /// Statistical check (weights), when the test has one.
    #[serde(default)]
    pub distribution: Option<Distribution>,
    /// `main-only (…)` when the test is not in the latest release.
    #[serde(default)]
    pub upstream_status: Option<String>,
    /// What the Go test checks beyond the cases (for status-only tests: everything).
    #[serde(default)]
    pub note: Option<String>,
}

/// `profiles` of a test: profile → `core` / `extended`, or a note saying why it counts in none.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum Profiles {
    /// Profile name → `core` or `extended`.
    Map(BTreeMap<String, String>),
    /// Why the test is in no profile (`none (…)`).
    None(String),
}

impl Default for Profiles {
    fn default() -> Self {
        Profiles::Map(BTreeMap::new())
    }
}

impl TestCase {
    /// Whether the test sends no requests: it asserts status only.
    pub fn status_only(&self) -> bool {
        self.cases.is_empty()
    }
}

/// Header name → value, as `cases.yaml` writes them.
pub type Headers = BTreeMap<String, String>;

/// One request and what must come back (see the header of `cases.yaml` for the rules).
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Case {
    /// Name of the Go subtest, if any.
    #[serde(default)]
    pub subtest: Option<String>,
    /// Name of the case in the Go table, if any.
    #[serde(default)]
    pub name: Option<String>,
    /// Gateway (`namespace/name`) overriding the test's.
    #[serde(default)]
    pub gateway: Option<String>,
    /// Transcriber's note.
    #[serde(default)]
    pub note: Option<String>,
    /// What is sent.
    #[serde(default)]
    pub request: CaseRequest,
    /// What must come back.
    #[serde(default)]
    pub expect: Expect,
}

/// What a case sends.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct CaseRequest {
    /// Port dialled on the Gateway's address.
    #[serde(default)]
    pub port: u16,
    /// HTTP method (GET when absent), or the full gRPC method path.
    #[serde(default)]
    pub method: Option<String>,
    /// Host header; `""` means the gateway address.
    #[serde(default)]
    pub host: Option<String>,
    /// Path and query.
    #[serde(default)]
    pub path: Option<String>,
    /// Request headers.
    #[serde(default)]
    pub headers: Headers,
    /// `grpc-h2c`, `tcp-echo`, `tls-tcp-echo`, `tls-handshake-only`, `udp-echo`, `dns-udp`,
    /// `websocket`; HTTP when absent.
    #[serde(default)]
    pub transport: Option<String>,
    /// Client TLS settings.
    #[serde(default)]
    pub tls: Option<ClientTls>,
    /// `https` for TLS requests.
    #[serde(default)]
    pub scheme: Option<String>,
    /// Whether redirects are followed (they never are here).
    #[serde(default)]
    pub follow_redirects: Option<bool>,
    /// gRPC `:authority` (`""` = the gateway address).
    #[serde(default)]
    pub authority: Option<String>,
    /// gRPC metadata.
    #[serde(default)]
    pub metadata: Headers,
    /// `H2` (HTTP/2 over TLS) or `H2C_PRIOR_KNOWLEDGE`; HTTP/1.1 when absent.
    #[serde(default)]
    pub protocol: Option<String>,
    /// Response headers the echo backend is asked to set (`X-Echo-Set-Header`).
    #[serde(default)]
    pub backend_set_response_headers: Headers,
    /// UDP datagram.
    #[serde(default)]
    pub payload: Option<String>,
    /// WebSocket URL.
    #[serde(default)]
    pub url: Option<String>,
    /// WebSocket Origin.
    #[serde(default)]
    pub origin: Option<String>,
    /// WebSocket messages.
    #[serde(default)]
    pub messages: Vec<WsMessage>,
    /// DNS query (`name TYPE`).
    #[serde(default)]
    pub query: Option<String>,
}

/// Client TLS of a case.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct ClientTls {
    /// ServerName sent.
    #[serde(default)]
    pub sni: Option<String>,
    /// What the client trusts (prose naming a Secret or ConfigMap).
    #[serde(default)]
    pub trust: Option<String>,
    /// Client certificate offered (prose naming a Secret).
    #[serde(default)]
    pub client_cert: Option<String>,
    /// Minimum TLS version.
    #[serde(default)]
    pub min_version: Option<String>,
    /// Verification note.
    #[serde(default)]
    pub verify: Option<String>,
}

/// One WebSocket message of a case.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct WsMessage {
    /// A text frame.
    #[serde(default)]
    pub send_text: Option<String>,
    /// A binary frame, hex encoded.
    #[serde(default)]
    pub send_binary_hex: Option<String>,
}

/// Acceptable status codes: one or a list.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum StatusCodes {
    /// Exactly this one.
    One(u16),
    /// Any of these.
    Any(Vec<u16>),
}

/// What a case expects.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Expect {
    /// HTTP status (200 when absent, for HTTP cases).
    #[serde(default)]
    pub status: Option<StatusCodes>,
    /// Namespace of the pod that must answer.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Prefix of the name of the pod that must answer (`""` = any).
    #[serde(default)]
    pub backend: Option<String>,
    /// What the backend must have seen, replacing the default "exactly the client request".
    #[serde(default)]
    pub request: Option<ExpectRequest>,
    /// Response headers and redirect.
    #[serde(default)]
    pub response: Option<ExpectResponse>,
    /// Final gRPC status (`OK`, `UNIMPLEMENTED`, …).
    #[serde(default)]
    pub grpc_status: Option<String>,
    /// gRPC status the call must not end with.
    #[serde(default)]
    pub grpc_status_not: Option<String>,
    /// Whether the TCP backend itself terminated TLS.
    #[serde(default)]
    pub backend_is_tls: Option<bool>,
    /// SNI the TCP backend saw.
    #[serde(default)]
    pub backend_sni: Option<String>,
    /// The gateway itself answers (no echo body).
    #[serde(default)]
    pub answered_by_gateway: bool,
    /// TLS the backend saw on the gateway→backend connection.
    #[serde(default)]
    pub backend_tls: Option<BackendTls>,
    /// UDP: any reply datagram.
    #[serde(default)]
    pub reply: Option<String>,
    /// gRPC headers the Go test declares but never checks.
    #[serde(default)]
    pub declared_response_headers_unchecked: BTreeMap<String, Vec<String>>,
    /// Mirror backends that must see the request.
    #[serde(default)]
    pub mirrored_to: Vec<Mirror>,
    /// UDP: the Service that must answer.
    #[serde(default)]
    pub service: Option<String>,
    /// The status must not be this (and must be an HTTP response when required).
    #[serde(default)]
    pub status_not: Option<u16>,
    /// A transport error does not count as an answer.
    #[serde(default)]
    pub http_response_required: bool,
    /// The TLS handshake must be cut (EOF / reset).
    #[serde(default)]
    pub connection_rejected: Option<String>,
    /// The HTTPS round trip must fail at the transport level.
    #[serde(default)]
    pub connection_failure: bool,
    /// WebSocket: frames are echoed.
    #[serde(default)]
    pub echo: Option<String>,
    /// DNS: any reply.
    #[serde(default)]
    pub dns_response: Option<String>,
}

/// What the backend must have seen.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct ExpectRequest {
    /// Path and query, exactly.
    #[serde(default)]
    pub path: Option<String>,
    /// Method (GET when absent).
    #[serde(default)]
    pub method: Option<String>,
    /// Host, when given.
    #[serde(default)]
    pub host: Option<String>,
    /// Headers that must be present with these values (repeated values joined with `,`).
    #[serde(default)]
    pub headers: Headers,
    /// Headers that must be missing.
    #[serde(default)]
    pub absent_headers: Vec<String>,
    /// SNI on the gateway→backend TLS connection.
    #[serde(default)]
    pub tls_sni: Option<String>,
    /// Client certificate on the gateway→backend TLS connection.
    #[serde(default)]
    pub tls_client_cert: Option<String>,
}

/// Expected response headers and redirect.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct ExpectResponse {
    /// Exact values.
    #[serde(default)]
    pub headers: Headers,
    /// One of the listed values.
    #[serde(default)]
    pub header_one_of: BTreeMap<String, Vec<String>>,
    /// Must not be present.
    #[serde(default)]
    pub absent_headers: Vec<String>,
    /// Compare without spaces.
    #[serde(default)]
    pub ignore_whitespace: bool,
    /// Expected Location.
    #[serde(default)]
    pub redirect: Option<Redirect>,
}

/// An expected redirect target.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Redirect {
    /// Scheme.
    #[serde(default)]
    pub scheme: Option<String>,
    /// Host, checked when present.
    #[serde(default)]
    pub host: Option<String>,
    /// Port; when absent the Location port must be empty or the scheme's default.
    #[serde(default)]
    pub port: Option<String>,
    /// Path.
    #[serde(default)]
    pub path: Option<String>,
}

/// TLS the backend saw.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct BackendTls {
    /// SNI.
    #[serde(default)]
    pub tls_sni: Option<String>,
    /// Client certificate.
    #[serde(default)]
    pub tls_client_cert: Option<String>,
}

/// A mirror backend that must see the request.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Mirror {
    /// Pod-name prefix.
    #[serde(default)]
    pub backend: String,
    /// Namespace.
    #[serde(default)]
    pub namespace: String,
    /// Share of requests mirrored (percent), when only a fraction is.
    #[serde(default)]
    pub percent: Option<f64>,
}

/// A statistical check over many requests.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Distribution {
    /// Backend → expected share of traffic.
    #[serde(default)]
    pub expected_fraction: BTreeMap<String, f64>,
    /// Requests per round.
    #[serde(default)]
    pub requests: Option<usize>,
    /// Connections per round (TCP).
    #[serde(default)]
    pub connections: Option<usize>,
    /// Allowed absolute deviation.
    #[serde(default)]
    pub tolerance_abs: Option<f64>,
    /// Rounds tried; one passing round suffices.
    #[serde(default)]
    pub max_attempts: Option<usize>,
    /// Requests in flight.
    #[serde(default)]
    pub concurrency: Option<usize>,
}
